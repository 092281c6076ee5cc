#include "core/model/multi_latent_attention.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"
#include "core/model/yarn_frequencies.h"

namespace gptb::model {
namespace {

bool IsKind(const layer_spec::ModuleSpec* node, layer_spec::ModuleKind kind) {
  if (node == nullptr) return false;
  const layer_spec::ModuleInfo* info = layer_spec::FindModule(node->module);
  return info != nullptr && info->kind == kind;
}

}  // namespace

MlaRotary::MlaRotary(const gptbuilder::v1::GPTModelConfig& config) {
  const auto& t = config.transformer();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const double base = config.rotary_base();
  if (t.rope_type() == "yarn") {
    YarnParameters yarn;
    yarn.dim = t.qk_pos_emb_head_dim();
    yarn.base = base;
    yarn.scaling_factor = t.rotary_scaling_factor();
    yarn.original_max_positions = t.original_max_position_embeddings();
    yarn.beta_fast = t.beta_fast();
    yarn.beta_slow = t.beta_slow();
    inv_freq_ = YarnInverseFrequencies(yarn);
    mscale_ = YarnConcentrationFactor(yarn.scaling_factor, t.mscale(), t.mscale_all_dim());
  } else {
    int64_t dim = t.qk_pos_emb_head_dim();
    if (config.rotary_percent() < 1.0) dim = static_cast<int64_t>(dim * config.rotary_percent());
    inv_freq_ = 1.0 / torch::pow(base, torch::arange(0, dim, 2, f32) / static_cast<double>(dim));
  }
}

torch::Tensor MlaRotary::Frequencies(int64_t seq_len, const torch::Device& device) const {
  torch::Tensor positions = torch::arange(seq_len, torch::TensorOptions().dtype(torch::kFloat32));
  torch::Tensor freqs = torch::outer(positions, inv_freq_);
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  return emb.reshape({seq_len, 1, 1, emb.size(-1)}).to(device);
}

torch::Tensor MlaRotary::Apply(const torch::Tensor& t, const torch::Tensor& freqs) const {
  const int64_t rot = freqs.size(-1);
  torch::Tensor part = t.narrow(-1, 0, rot);
  // MLA's checkpoints store the rotary channels as interleaved pairs; rotate them as halves.
  part = torch::cat({part.slice(-1, 0, rot, 2), part.slice(-1, 1, rot, 2)}, -1);
  torch::Tensor cos = (torch::cos(freqs) * mscale_).to(t.dtype());
  torch::Tensor sin = (torch::sin(freqs) * mscale_).to(t.dtype());
  std::vector<torch::Tensor> halves = part.chunk(2, -1);
  torch::Tensor rotated = torch::cat({-halves[1], halves[0]}, -1);
  torch::Tensor out = part * cos + rotated * sin;
  if (rot == t.size(-1)) return out;
  return torch::cat({out, t.narrow(-1, rot, t.size(-1) - rot)}, -1);
}

std::shared_ptr<ColumnParallelLinear> MlaSelfAttention::MakeLinear(
    const ModuleContext& ctx, const layer_spec::ModuleSpec& spec, const std::string& prefix,
    const std::string& slot) {
  const layer_spec::ModuleSpec* node = spec.Submodule(slot);
  if (node == nullptr) throw BuildError(prefix + ": MLASelfAttention needs " + slot);
  const bool fused = IsKind(node, layer_spec::ModuleKind::kLayerNormColumnParallelLinear);
  const bool duplicated = IsKind(node, layer_spec::ModuleKind::kDuplicatedLinear);
  // A split down projection (local spec) is gathered, as Megatron does after it.
  const bool gather =
      !duplicated && (slot == "linear_q_down_proj" || slot == "linear_kv_down_proj");
  return register_module(slot,
                         std::make_shared<ColumnParallelLinear>(
                             ctx, prefix + slot + ".", fused,
                             duplicated ? LinearComm::kNone : LinearComm::kTensorParallel, gather));
}

MlaSelfAttention::MlaSelfAttention(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                                   const std::string& prefix)
    : rotary_(*ctx.model), parallel_(ctx.parallel) {
  const auto& t = *ctx.config;
  local_heads_ = t.num_attention_heads() / t.tensor_model_parallel_size();
  qk_head_dim_ = t.qk_head_dim();
  pos_dim_ = t.qk_pos_emb_head_dim();
  v_head_dim_ = t.v_head_dim();
  kv_lora_rank_ = t.kv_lora_rank();
  dropout_ = t.attention_dropout();
  // Attention dropout from Megatron's tensor-parallel stream (each rank's own heads).
  dropout_generator_ = ctx.parallel->dropout_generator(ParallelContext::RngStream::kTensorParallel);
  // Megatron: the YaRN mscale of rotary_scaling_factor and mscale_all_dim, whatever rope_type.
  const double mscale = YarnMscale(t.rotary_scaling_factor(), t.mscale_all_dim());
  softmax_scale_ = mscale * mscale / std::sqrt(static_cast<double>(qk_head_dim_ + pos_dim_));
  // Registration order: (core_attention has no parameters) linear_proj, the query projections,
  // the key/value projections, then the standalone norms.
  linear_proj_ = register_module("linear_proj",
                                 std::make_shared<RowParallelLinear>(ctx, prefix + "linear_proj."));
  if (spec.Submodule("linear_q_proj") != nullptr) {
    linear_q_proj_ = MakeLinear(ctx, spec, prefix, "linear_q_proj");
  } else {
    linear_q_down_proj_ = MakeLinear(ctx, spec, prefix, "linear_q_down_proj");
    linear_q_up_proj_ = MakeLinear(ctx, spec, prefix, "linear_q_up_proj");
  }
  linear_kv_down_proj_ = MakeLinear(ctx, spec, prefix, "linear_kv_down_proj");
  linear_kv_up_proj_ = MakeLinear(ctx, spec, prefix, "linear_kv_up_proj");
  for (const char* slot : {"q_layernorm", "kv_layernorm"}) {
    if (!IsKind(spec.Submodule(slot), layer_spec::ModuleKind::kNorm)) continue;
    auto norm = register_module(slot, std::make_shared<Norm>(ctx, prefix + slot + "."));
    (std::string(slot) == "q_layernorm" ? q_layernorm_ : kv_layernorm_) = norm;
  }
}

torch::Tensor MlaSelfAttention::forward(const torch::Tensor& x) {
  const int64_t s = x.size(0), b = x.size(1);
  // Down projections (full width on every rank).
  torch::Tensor q;
  if (linear_q_proj_) {
    q = linear_q_proj_->forward(x);
  } else {
    torch::Tensor q_compressed = linear_q_down_proj_->forward(x);
    if (q_layernorm_) q_compressed = q_layernorm_->forward(q_compressed);
    q = linear_q_up_proj_->forward(q_compressed);
  }
  torch::Tensor kv_combined = linear_kv_down_proj_->forward(x);
  torch::Tensor kv_compressed = kv_combined.narrow(-1, 0, kv_lora_rank_);
  // The rotary key is shared by every head, and each rank's heads use it: its gradient is the
  // sum over all ranks' heads. (Megatron d98e8a64 sums it only with sequence parallelism, so its
  // tensor-parallel gradient of these rows holds only the rank's own heads.)
  torch::Tensor k_pos =
      parallel_->CopyToTensorParallelRegion(kv_combined.narrow(-1, kv_lora_rank_, pos_dim_));
  if (kv_layernorm_) kv_compressed = kv_layernorm_->forward(kv_compressed);
  torch::Tensor kv = linear_kv_up_proj_->forward(kv_compressed);

  // Up projections: this rank's heads.
  q = q.view({s, b, local_heads_, qk_head_dim_ + pos_dim_});
  kv = kv.view({s, b, local_heads_, qk_head_dim_ + v_head_dim_});
  torch::Tensor q_no_pe = q.narrow(-1, 0, qk_head_dim_);
  torch::Tensor q_pe = q.narrow(-1, qk_head_dim_, pos_dim_);
  torch::Tensor k_no_pe = kv.narrow(-1, 0, qk_head_dim_);
  torch::Tensor v = kv.narrow(-1, qk_head_dim_, v_head_dim_);
  const torch::Tensor freqs = rotary_.Frequencies(s, x.device());
  q_pe = rotary_.Apply(q_pe, freqs);
  k_pos = rotary_.Apply(k_pos.unsqueeze(2), freqs).expand({s, b, local_heads_, pos_dim_});
  torch::Tensor query = torch::cat({q_no_pe, q_pe}, -1);
  torch::Tensor key = torch::cat({k_no_pe, k_pos}, -1);

  // Causal softmax attention in fp32: [b, heads, s, d].
  torch::Tensor qt = query.permute({1, 2, 0, 3}).to(torch::kFloat32);
  torch::Tensor kt = key.permute({1, 2, 0, 3}).to(torch::kFloat32);
  torch::Tensor vt = v.permute({1, 2, 0, 3});
  torch::Tensor scores = torch::matmul(qt, kt.transpose(-1, -2)) * softmax_scale_;
  torch::Tensor causal =
      torch::ones({s, s}, torch::TensorOptions().dtype(torch::kBool).device(x.device())).triu(1);
  scores = scores.masked_fill(causal, -std::numeric_limits<float>::infinity());
  torch::Tensor probs = torch::softmax(scores, -1);
  probs = MaybeDropout(probs, dropout_, is_training(), dropout_generator_).to(vt.dtype());
  torch::Tensor context = torch::matmul(probs, vt);      // [b, heads, s, v]
  context = context.permute({2, 0, 1, 3}).contiguous();  // [s, b, heads, v]
  return linear_proj_->forward(context.view({s, b, local_heads_ * v_head_dim_}));
}

}  // namespace gptb::model
