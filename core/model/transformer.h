#ifndef GPTB_CORE_MODEL_TRANSFORMER_H_
#define GPTB_CORE_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/layer_spec/module_spec.h"
#include "core/model/attention.h"
#include "core/model/layers.h"
#include "core/model/moe.h"
#include "core/model/multi_latent_attention.h"

namespace gptb::model {

// A decoder layer built from its spec node (TransformerLayer): pre-norm attention and MLP (or
// MoE) blocks with residual connections and bias-dropout-add.
class TransformerLayer : public torch::nn::Module {
 public:
  TransformerLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                   const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                        const Rotary* rotary);
  // Auxiliary losses of MoE layers from the last forward (undefined when none).
  torch::Tensor aux_loss() const { return moe_ ? moe_->aux_loss() : torch::Tensor(); }
  // The layer's MoE block, or null for a dense layer.
  MoeLayer* moe() const { return moe_.get(); }

 private:
  std::shared_ptr<Norm> input_layernorm_;
  std::shared_ptr<SelfAttention> self_attention_;
  std::shared_ptr<MlaSelfAttention> mla_attention_;  // instead of self_attention_ for MLA
  std::shared_ptr<Norm> pre_mlp_layernorm_;
  std::shared_ptr<Mlp> mlp_;
  std::shared_ptr<MoeLayer> moe_;
  double dropout_;
  at::Generator* dropout_generator_;  // HiddenDropoutGenerator
};

// Transformer Engine's TransformerLayer as the full-TE spec builds it: self_attention
// {layernorm_qkv, proj} and layernorm_mlp {layer_norm_weight, fc1_weight, fc2_weight, ...}.
class TeTransformerLayer : public torch::nn::Module {
 public:
  TeTransformerLayer(const ModuleContext& ctx, const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                        const Rotary* rotary);

 private:
  std::shared_ptr<SelfAttention> self_attention_;
  std::shared_ptr<torch::nn::Module> layernorm_mlp_;
  std::unique_ptr<NormParams> mlp_norm_;
  torch::Tensor fc1_weight_, fc1_bias_, fc2_weight_, fc2_bias_;
  ParallelContext* parallel_;
  Activation activation_;
  bool gated_;
  double glu_offset_;
  double dropout_;
  at::Generator* dropout_generator_;  // HiddenDropoutGenerator
  bool sequence_parallel_;
};

// Megatron's MultiTokenPredictionLayer (parameters; the MTP forward belongs to training).
class MtpLayer : public torch::nn::Module {
 public:
  MtpLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec, const std::string& prefix);
  // One MTP depth: h' = layer(eh_proj([enorm(emb); hnorm(h)])), then its final norm.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& embedded,
                        const torch::Tensor& rotary_freqs, const Rotary* rotary);
  const TransformerLayer& mtp_model_layer() const { return *mtp_model_layer_; }

 private:
  std::shared_ptr<Norm> enorm_, hnorm_, final_layernorm_;
  std::shared_ptr<ColumnParallelLinear> eh_proj_;
  std::shared_ptr<TransformerLayer> mtp_model_layer_;
  ParallelContext* parallel_;
  bool sequence_parallel_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_TRANSFORMER_H_
