#include "core/model/moe.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"
#include "core/model/dense_linear.h"

namespace gptb::model {

MoeLayer::MoeLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                   const std::string& prefix)
    : parallel_(ctx.parallel), activation_(*ctx.config) {
  const auto& t = *ctx.config;
  num_experts_ = t.num_moe_experts();
  local_experts_ = num_experts_ / t.expert_model_parallel_size();
  topk_ = t.moe_router_topk();
  score_function_ = t.moe_router_score_function();
  pre_softmax_ = t.moe_router_pre_softmax();
  if (t.has_moe_router_topk_scaling_factor()) topk_scaling_ = t.moe_router_topk_scaling_factor();
  if (t.has_moe_router_group_topk() && t.moe_router_group_topk() > 0) {
    num_groups_ = t.moe_router_num_groups();
    group_topk_ = t.moe_router_group_topk();
  }
  aux_coeff_ = t.moe_router_load_balancing_type() == "aux_loss" ? t.moe_aux_loss_coeff() : 0.0;

  auto router = register_module("router", std::make_shared<torch::nn::Module>());
  router_weight_ = router->register_parameter("weight", ctx.params->Take(prefix + "router.weight"));
  if (ctx.params->Has(prefix + "router.bias")) {
    router_bias_ = router->register_parameter("bias", ctx.params->Take(prefix + "router.bias"));
  }
  if (t.moe_router_enable_expert_bias()) {
    // fp32 whatever the parameters' dtype (Megatron's _maintain_float32_expert_bias); the plan
    // lists expert_bias among the stage's buffers, so checkpoints carry it. The counts are not
    // persistent (Megatron's local_tokens_per_expert has persistent=False).
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(router_weight_.device());
    expert_bias_ = router->register_buffer("expert_bias", torch::zeros({num_experts_}, f32));
    tokens_per_expert_ = torch::zeros({num_experts_}, f32);
  }

  const layer_spec::ModuleSpec* experts_spec = spec.Submodule("experts");
  const layer_spec::ModuleInfo* info =
      experts_spec ? layer_spec::FindModule(experts_spec->module) : nullptr;
  auto experts = register_module("experts", std::make_shared<torch::nn::Module>());
  const std::string ep = prefix + "experts.";
  experts_.resize(local_experts_);
  if (info != nullptr && info->kind == layer_spec::ModuleKind::kGroupedMlp) {
    // TEGroupedMLP: linear_fc1.weight<j> / bias<j>, then linear_fc2.weight<j> / bias<j>.
    auto fc1 = experts->register_module("linear_fc1", std::make_shared<torch::nn::Module>());
    auto fc2 = experts->register_module("linear_fc2", std::make_shared<torch::nn::Module>());
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t j = 0; j < local_experts_; ++j) {
        const std::string w = absl::StrCat("weight", j), b = absl::StrCat("bias", j);
        auto& module = pass == 0 ? fc1 : fc2;
        const std::string base = ep + (pass == 0 ? "linear_fc1." : "linear_fc2.");
        (pass == 0 ? experts_[j].fc1_weight : experts_[j].fc2_weight) =
            module->register_parameter(w, ctx.params->Take(base + w));
      }
      for (int64_t j = 0; j < local_experts_; ++j) {
        const std::string b = absl::StrCat("bias", j);
        auto& module = pass == 0 ? fc1 : fc2;
        const std::string base = ep + (pass == 0 ? "linear_fc1." : "linear_fc2.");
        if (ctx.params->Has(base + b)) {
          (pass == 0 ? experts_[j].fc1_bias : experts_[j].fc2_bias) =
              module->register_parameter(b, ctx.params->Take(base + b));
        }
      }
    }
  } else {
    // SequentialMLP: local_experts.<j>.linear_fc1 / linear_fc2.
    auto list = experts->register_module("local_experts", std::make_shared<torch::nn::Module>());
    for (int64_t j = 0; j < local_experts_; ++j) {
      auto mlp = list->register_module(absl::StrCat(j), std::make_shared<torch::nn::Module>());
      const std::string base = absl::StrCat(ep, "local_experts.", j, ".");
      for (const char* fc : {"linear_fc1", "linear_fc2"}) {
        auto lin = mlp->register_module(fc, std::make_shared<torch::nn::Module>());
        const std::string p = base + fc + ".";
        torch::Tensor w = lin->register_parameter("weight", ctx.params->Take(p + "weight"));
        torch::Tensor b;
        if (ctx.params->Has(p + "bias"))
          b = lin->register_parameter("bias", ctx.params->Take(p + "bias"));
        if (std::string(fc) == "linear_fc1") {
          experts_[j].fc1_weight = w;
          experts_[j].fc1_bias = b;
        } else {
          experts_[j].fc2_weight = w;
          experts_[j].fc2_bias = b;
        }
      }
    }
  }

  const std::string shared = prefix + "shared_experts.";
  if (ctx.params->Has(shared + "linear_fc1.weight")) {
    shared_experts_ = register_module("shared_experts", std::make_shared<Mlp>(ctx, shared, false));
    if (ctx.params->Has(shared + "gate_weight")) {
      shared_gate_ = shared_experts_->register_parameter("gate_weight",
                                                         ctx.params->Take(shared + "gate_weight"));
    }
  }
  ep_rank_ = 0;
  // The first local expert's canonical index tells which experts this rank holds.
  if (local_experts_ > 0) {
    const std::string first = info != nullptr && info->kind == layer_spec::ModuleKind::kGroupedMlp
                                  ? ep + "linear_fc1.weight0"
                                  : ep + "local_experts.0.linear_fc1.weight";
    const std::string& canonical = ctx.params->Info(first).canonical_name;
    const std::string marker = "local_experts.";
    const size_t at = canonical.rfind(marker);
    const int64_t global = std::stoll(canonical.substr(at + marker.size()));
    ep_rank_ = static_cast<int>(global / local_experts_);
  }
}

// Megatron's group_limited_topk (DeepSeek's device / node-limited routing): the experts form
// num_groups equal groups; each token keeps the group_topk groups with the largest sum of their
// top (topk / group_topk) scores and takes its topk experts among those groups' experts. (The
// load-balancing loss keeps the plain top-k, as Megatron's compute_routing_scores_for_aux_loss.)
std::tuple<torch::Tensor, torch::Tensor> MoeLayer::TopK(const torch::Tensor& scores) const {
  if (group_topk_ <= 0) return torch::topk(scores, topk_, -1);
  const int64_t n = scores.size(0);
  torch::Tensor group_scores =
      std::get<0>(scores.view({n, num_groups_, -1}).topk(topk_ / group_topk_, -1)).sum(-1);
  torch::Tensor group_idx = std::get<1>(torch::topk(group_scores, group_topk_, -1));
  torch::Tensor group_mask = torch::zeros_like(group_scores).scatter_(1, group_idx, 1.0);
  torch::Tensor expert_mask = group_mask.unsqueeze(-1)
                                  .expand({n, num_groups_, num_experts_ / num_groups_})
                                  .reshape({n, num_experts_});
  return torch::topk(
      scores.masked_fill(expert_mask.logical_not(), -std::numeric_limits<float>::infinity()), topk_,
      -1);
}

void MoeLayer::UpdateExpertBias(const torch::Tensor& tokens_per_expert, double rate) {
  torch::NoGradGuard no_grad;
  // get_updated_expert_bias: bias += rate * sign(mean count - count).
  torch::Tensor offset = tokens_per_expert.mean() - tokens_per_expert;
  expert_bias_.add_(torch::sign(offset) * rate);
}

torch::Tensor MoeLayer::RunExpert(const Expert& e, const torch::Tensor& tokens) const {
  torch::Tensor h = activation_(DenseLinear(tokens, e.fc1_weight, e.fc1_bias));
  torch::Tensor y = DenseLinear(h, e.fc2_weight);
  if (e.fc2_bias.defined()) y = y + e.fc2_bias;  // expert biases need expert TP 1
  return y;
}

torch::Tensor MoeLayer::forward(const torch::Tensor& x) {
  const int64_t s = x.size(0), b = x.size(1), hidden = x.size(2);
  torch::Tensor tokens = x.reshape({s * b, hidden});

  // Route the local tokens (fp32 logits, as Megatron's router computes them).
  torch::Tensor logits =
      torch::linear(tokens.to(torch::kFloat32), router_weight_.to(torch::kFloat32),
                    router_bias_.defined() ? router_bias_.to(torch::kFloat32) : torch::Tensor());
  torch::Tensor probs, indices, scores;
  if (score_function_ == "sigmoid") {
    scores = torch::sigmoid(logits);
    if (expert_bias_.defined()) {
      // The bias only chooses the experts; the routing weights are the unbiased scores.
      indices = std::get<1>(TopK(scores + expert_bias_));
      probs = scores.gather(1, indices);
    } else {
      std::tie(probs, indices) = TopK(scores);
    }
    if (topk_ > 1) probs = probs / (probs.sum(-1, true) + 1e-20);
  } else if (pre_softmax_) {
    scores = torch::softmax(logits, -1);
    std::tie(probs, indices) = TopK(scores);
  } else {
    torch::Tensor top;
    std::tie(top, indices) = TopK(logits);
    probs = torch::softmax(top, -1);
    scores = torch::softmax(logits, -1);
  }
  if (topk_scaling_ != 1.0) probs = probs * topk_scaling_;
  if (expert_bias_.defined() && torch::GradMode::is_enabled()) {
    // Megatron's _apply_expert_bias: count the tokens routed to each expert in forwards that
    // record gradients (not evaluation); FinalizeGrads updates expert_bias from the counts.
    torch::NoGradGuard no_grad;
    tokens_per_expert_.scatter_add_(0, indices.reshape({-1}),
                                    torch::ones({indices.numel()}, tokens_per_expert_.options()));
  }

  if (aux_coeff_ > 0.0 && is_training()) {
    // Switch load balancing (switch_load_balancing_loss_func): E * coeff / (k * T^2) *
    // sum_e (slots routed to e) * (sum of e's scores), on the normalised scores and their own
    // top-k (compute_routing_scores_for_aux_loss). The slot counts are summed over the
    // tensor-parallel group and T is the tokens of the whole group: under sequence parallelism
    // each rank holds part of the sequence, so every rank's loss is its share of the whole
    // sequence's and the shares sum (with the router's gradients, over TP) to it.
    torch::Tensor aux_scores = scores;
    if (score_function_ == "sigmoid") aux_scores = scores / (scores.sum(-1, true) + 1e-20);
    torch::Tensor aux_indices = std::get<1>(torch::topk(aux_scores, topk_, -1));
    torch::Tensor counts = torch::zeros({num_experts_}, logits.options())
                               .scatter_add_(0, aux_indices.reshape({-1}),
                                             torch::ones({aux_indices.numel()}, logits.options()));
    counts = parallel_->ReduceFromTensorParallelRegion(counts);
    const double total = static_cast<double>(logits.size(0)) *
                         static_cast<double>(parallel_->size(ParallelContext::Group::kTensor));
    aux_loss_ =
        (aux_scores.sum(0) * counts).sum() * (static_cast<double>(num_experts_) * aux_coeff_ /
                                              (static_cast<double>(topk_) * total * total));
  } else {
    aux_loss_ = torch::Tensor();
  }

  // Dispatch: every rank of the tp-ep group sees every block of tokens.
  torch::Tensor all_tokens =
      parallel_->AllGatherFirstDim(tokens, ParallelContext::Group::kTensorExpert);
  torch::Tensor all_probs =
      parallel_->AllGatherFirstDim(probs, ParallelContext::Group::kTensorExpert);
  torch::Tensor all_indices =
      parallel_->AllGatherFirstDim(indices, ParallelContext::Group::kTensorExpert);

  torch::Tensor out = torch::zeros({all_tokens.size(0), hidden}, all_tokens.options());
  for (int64_t j = 0; j < local_experts_; ++j) {
    const int64_t global = ep_rank_ * local_experts_ + j;
    torch::Tensor hit = all_indices.eq(global);  // [N, k]
    torch::Tensor rows = hit.any(-1).nonzero().squeeze(-1);
    if (rows.numel() == 0) continue;
    torch::Tensor weight = (all_probs * hit.to(all_probs.dtype())).sum(-1).index_select(0, rows);
    torch::Tensor y = RunExpert(experts_[j], all_tokens.index_select(0, rows));
    out = out.index_add(0, rows, y * weight.unsqueeze(-1).to(y.dtype()));
  }
  torch::Tensor combined =
      parallel_->ReduceScatterFirstDim(out, ParallelContext::Group::kTensorExpert);
  torch::Tensor result = combined.view({s, b, hidden});
  if (shared_experts_) {
    torch::Tensor shared = shared_experts_->forward(x);
    if (shared_gate_.defined()) shared = shared * torch::sigmoid(torch::linear(x, shared_gate_));
    result = result + shared;
  }
  return result;
}

}  // namespace gptb::model
