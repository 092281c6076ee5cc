#ifndef GPTB_CORE_MODEL_MOE_H_
#define GPTB_CORE_MODEL_MOE_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/layer_spec/module_spec.h"
#include "core/model/layers.h"

namespace gptb::model {

// Megatron's MoELayer with the all-gather token dispatcher: route the rank's tokens with the
// replicated TopKRouter, all-gather tokens and routing over the expert grid's tp-ep group, run
// the rank's local experts (each split over expert-TP, no communication of their own), and
// reduce-scatter the weighted expert outputs back (which also sums the expert-TP partials).
// Shared experts run on the dense TP group. Registration order: router, experts,
// shared_experts. Under sequence parallelism the rank's tokens are its part of the sequence
// ([s/t, b, h] in and out); the alltoall dispatcher moves the same tokens to the same experts
// (without token dropping), so it computes the same function.
class MoeLayer : public torch::nn::Module {
 public:
  MoeLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec, const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& x);  // [s, b, h] -> [s, b, h]
  // The load-balancing auxiliary loss of the last forward (moe_aux_loss_coeff times Switch's
  // E * sum_e f_e * P_e), or an undefined tensor when the coefficient is 0. Under sequence
  // parallelism it is this rank's share: the shares of the tensor-parallel ranks sum to the
  // whole sequence's loss.
  const torch::Tensor& aux_loss() const { return aux_loss_; }
  // With moe_router_enable_expert_bias (undefined otherwise): the persistent fp32 expert_bias
  // buffer, added to the sigmoid scores only to choose the top-k experts, and the tokens this
  // rank routed to each expert (fp32) in forwards with gradients on since the counts were
  // last zeroed.
  const torch::Tensor& expert_bias() const { return expert_bias_; }
  torch::Tensor& tokens_per_expert() { return tokens_per_expert_; }
  // Megatron's get_updated_expert_bias from counts summed over the tp-dp-cp group:
  // expert_bias += rate * sign(mean count - count). (The caller zeroes the local counts.)
  void UpdateExpertBias(const torch::Tensor& tokens_per_expert, double rate);

 private:
  struct Expert {
    torch::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  };
  torch::Tensor RunExpert(const Expert& expert, const torch::Tensor& tokens) const;
  // torch::topk over the experts, or Megatron's group_limited_topk when moe_router_group_topk
  // is set: (values, indices) of the top-k per token.
  std::tuple<torch::Tensor, torch::Tensor> TopK(const torch::Tensor& scores) const;

  ParallelContext* parallel_;
  torch::Tensor router_weight_, router_bias_;
  torch::Tensor expert_bias_, tokens_per_expert_;  // moe_router_enable_expert_bias
  std::vector<Expert> experts_;
  std::shared_ptr<Mlp> shared_experts_;
  torch::Tensor shared_gate_;
  MlpActivation activation_;
  int64_t num_experts_, local_experts_, topk_;
  int64_t num_groups_ = 0, group_topk_ = 0;  // group-limited routing when group_topk_ > 0
  int ep_rank_;
  std::string score_function_;
  bool pre_softmax_;
  double topk_scaling_ = 1.0;
  double aux_coeff_ = 0.0;
  torch::Tensor aux_loss_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_MOE_H_
