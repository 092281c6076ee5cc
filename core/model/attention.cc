#include "core/model/attention.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"
#include "core/model/yarn_frequencies.h"

namespace gptb::model {
namespace {

// Llama-3.1 frequency scaling (Megatron's apply_rope_scaling with its defaults).
torch::Tensor ScaleFrequencies(const torch::Tensor& inv_freq, double factor) {
  const double low_freq_factor = 1.0, high_freq_factor = 4.0, original = 8192.0;
  const double low_wavelen = original / low_freq_factor;
  const double high_wavelen = original / high_freq_factor;
  torch::Tensor wavelen = 2 * M_PI / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv_freq / factor, inv_freq);
  torch::Tensor smooth =
      (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

}  // namespace

bool IsWindowAttentionLayer(const gptbuilder::v1::TransformerConfig& t, int layer_number) {
  if (t.window_size_size() == 0) return false;
  const auto& freq = t.window_attn_skip_freq();
  if (freq.empty()) return true;
  if (freq.size() == 1) return freq[0] != 0 && layer_number % freq[0] != 0;
  if (layer_number < 1 || layer_number > freq.size()) {
    throw BuildError(absl::StrCat("transformer.window_attn_skip_freq: no entry for layer ",
                                  layer_number, " (", freq.size(), " entries)"));
  }
  return freq[layer_number - 1] != 0;
}

Rotary::Rotary(const gptbuilder::v1::GPTModelConfig& config, bool local) {
  const auto& t = config.transformer();
  interleaved_ = t.rotary_interleaved();
  if (config.position_embedding_type() == "yarn") {
    // Megatron's YarnRotaryEmbedding rotates all kv_channels (validation refuses rotary_percent,
    // interpolation, Llama-3.1 scaling and interleaving with it); the attention applies the
    // concentration factor to cos and sin of both queries and keys.
    YarnParameters yarn;
    yarn.dim = t.kv_channels();
    yarn.base = config.rotary_base();
    yarn.scaling_factor = t.yarn_rotary_scaling_factor();
    yarn.original_max_positions = t.yarn_original_max_position_embeddings();
    yarn.beta_fast = t.yarn_beta_fast();
    yarn.beta_slow = t.yarn_beta_slow();
    yarn.round_to_int = t.yarn_correction_range_round_to_int();
    inv_freq_ = YarnInverseFrequencies(yarn);
    mscale_ =
        YarnConcentrationFactor(yarn.scaling_factor, t.yarn_mscale(), t.yarn_mscale_all_dim());
    return;
  }
  int64_t dim = static_cast<int64_t>(t.kv_channels() * config.rotary_percent());
  dim -= dim % 2;
  torch::Tensor exponents =
      torch::arange(0, dim, 2, torch::TensorOptions().dtype(torch::kFloat32)) /
      static_cast<double>(dim);
  const double base = local ? config.rotary_base_local() : config.rotary_base();
  inv_freq_ = 1.0 / torch::pow(base, exponents);
  if (config.rope_scaling()) inv_freq_ = ScaleFrequencies(inv_freq_, config.rope_scaling_factor());
  // Bridge's Gemma3RotaryEmbedding: the global layers' frequencies divided linearly.
  if (config.has_rotary_base_local() && !local) {
    inv_freq_ = inv_freq_ / config.rope_scaling_factor();
  }
  if (config.has_seq_len_interpolation_factor())
    interpolation_ = config.seq_len_interpolation_factor();
}

torch::Tensor Rotary::Frequencies(int64_t seq_len, const torch::Device& device) const {
  torch::Tensor positions = torch::arange(seq_len, torch::TensorOptions().dtype(torch::kFloat32));
  if (interpolation_ != 1.0) positions = positions / interpolation_;
  torch::Tensor freqs = torch::outer(positions, inv_freq_);  // [s, dim/2]
  torch::Tensor emb = interleaved_ ? torch::stack({freqs, freqs}, -1).reshape({seq_len, -1})
                                   : torch::cat({freqs, freqs}, -1);
  return emb.reshape({seq_len, 1, 1, emb.size(-1)}).to(device);
}

torch::Tensor Rotary::Apply(const torch::Tensor& t, const torch::Tensor& freqs) const {
  const int64_t rot = freqs.size(-1);
  torch::Tensor t_rot = t.narrow(-1, 0, rot);
  torch::Tensor cos = (torch::cos(freqs) * mscale_).to(t.dtype());
  torch::Tensor sin = (torch::sin(freqs) * mscale_).to(t.dtype());
  torch::Tensor rotated;
  if (interleaved_) {
    torch::Tensor x1 = t_rot.slice(-1, 0, rot, 2), x2 = t_rot.slice(-1, 1, rot, 2);
    rotated = torch::stack({-x2, x1}, -1).reshape(t_rot.sizes());
  } else {
    std::vector<torch::Tensor> halves = t_rot.chunk(2, -1);
    rotated = torch::cat({-halves[1], halves[0]}, -1);
  }
  torch::Tensor out = t_rot * cos + rotated * sin;
  if (rot == t.size(-1)) return out;
  return torch::cat({out, t.narrow(-1, rot, t.size(-1) - rot)}, -1);
}

SelfAttention::SelfAttention(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                             const std::string& prefix, const std::string& qkv_name,
                             const std::string& proj_name, bool fused_norm_override, bool qkv_first)
    : parallel_(ctx.parallel) {
  const auto& t = *ctx.config;
  heads_ = t.num_attention_heads();
  groups_ = t.num_query_groups();
  head_dim_ = t.kv_channels();
  tp_ = t.tensor_model_parallel_size();
  tp_rank_ = ctx.parallel->rank(ParallelContext::Group::kTensor);
  output_gate_ = t.attention_output_gate();
  dropout_ = t.attention_dropout();
  // Megatron draws attention dropout from the tensor-parallel stream: each rank's heads are its
  // own (with sequence parallelism the whole block runs in that stream).
  dropout_generator_ = ctx.parallel->dropout_generator(ParallelContext::RngStream::kTensorParallel);
  softmax_scale_ =
      t.has_softmax_scale() ? t.softmax_scale() : 1.0 / std::sqrt(static_cast<double>(head_dim_));
  // Bridge's Gemma2DotProductAttention: scores scaled by 1/sqrt(query_pre_attn_scalar), then
  // capped (validation excludes softmax_scale with it).
  if (ctx.model->has_query_pre_attn_scalar()) {
    softmax_scale_ = 1.0 / std::sqrt(static_cast<double>(ctx.model->query_pre_attn_scalar()));
  }
  if (ctx.model->has_attn_logit_softcapping()) softcap_ = ctx.model->attn_logit_softcapping();
  l2_eps_ = t.layernorm_epsilon();
  off_by_one_ = t.softmax_type() == "off-by-one";
  if (IsWindowAttentionLayer(t, ctx.layer_number)) {
    window_ = std::make_pair(int64_t{t.window_size(0)}, int64_t{t.window_size(1)});
  }
  // core_attention holds softmax_offset with softmax_type "learnable".
  const std::string offset = prefix + "core_attention.softmax_offset";
  if (ctx.params->Has(offset)) {
    core_attention_ = register_module("core_attention", std::make_shared<torch::nn::Module>());
    softmax_offset_ =
        core_attention_->register_parameter("softmax_offset", ctx.params->Take(offset));
  }
  // Megatron registers linear_proj before linear_qkv; TE's MultiheadAttention the other way.
  if (!qkv_first) {
    linear_proj_ = register_module(
        proj_name, std::make_shared<RowParallelLinear>(ctx, prefix + proj_name + "."));
  }
  bool fused = fused_norm_override;
  if (const layer_spec::ModuleSpec* qkv = spec.Submodule("linear_qkv")) {
    const layer_spec::ModuleInfo* info = layer_spec::FindModule(qkv->module);
    fused = fused || (info != nullptr &&
                      info->kind == layer_spec::ModuleKind::kLayerNormColumnParallelLinear);
  }
  linear_qkv_ = register_module(
      qkv_name, std::make_shared<ColumnParallelLinear>(ctx, prefix + qkv_name + ".", fused));
  if (qkv_first) {
    linear_proj_ = register_module(
        proj_name, std::make_shared<RowParallelLinear>(ctx, prefix + proj_name + "."));
  }
  for (const char* slot : {"q_layernorm", "k_layernorm"}) {
    const layer_spec::ModuleSpec* norm = spec.Submodule(slot);
    if (norm == nullptr) continue;
    const layer_spec::ModuleInfo* info = layer_spec::FindModule(norm->module);
    if (info != nullptr && info->kind == layer_spec::ModuleKind::kL2Norm) qk_l2_norm_ = true;
    if (info == nullptr || info->kind != layer_spec::ModuleKind::kNorm) continue;
    auto module = register_module(slot, std::make_shared<Norm>(ctx, prefix + slot + "."));
    (std::string(slot) == "q_layernorm" ? q_layernorm_ : k_layernorm_) = module;
  }
}

torch::Tensor SelfAttention::forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                                     const Rotary* rotary) {
  // With sequence parallelism x is this rank's part of the sequence; linear_qkv gathers it.
  torch::Tensor qkv = linear_qkv_->forward(x);  // [s, b, local rows]
  const int64_t s = qkv.size(0), b = qkv.size(1);
  const int64_t per_group = heads_ / groups_ + 2 + (output_gate_ ? heads_ / groups_ : 0);
  torch::Tensor q, k, v, gate;
  int64_t local_heads = heads_ / tp_;
  if (groups_ % tp_ == 0) {
    const int64_t local_groups = groups_ / tp_;
    torch::Tensor grouped = qkv.view({s, b, local_groups, per_group, head_dim_});
    const int64_t qh = heads_ / groups_;
    q = grouped.narrow(3, 0, qh);
    int64_t next = qh;
    if (output_gate_) {
      gate = grouped.narrow(3, next, qh).reshape({s, b, local_heads, head_dim_});
      next += qh;
    }
    k = grouped.narrow(3, next, 1).squeeze(3);
    v = grouped.narrow(3, next + 1, 1).squeeze(3);
    q = q.reshape({s, b, local_heads, head_dim_});
  } else {
    // Fewer query groups than TP ranks: a group's k/v rows live on one rank but serve several;
    // Megatron gathers and slices. Construction supports it; this forward does not.
    throw std::runtime_error(absl::StrCat("forward with num_query_groups (", groups_,
                                          ") not divisible by tensor_model_parallel_size (", tp_,
                                          ") is not supported"));
  }
  if (q_layernorm_) q = q_layernorm_->forward(q);
  if (k_layernorm_) k = k_layernorm_->forward(k);
  if (qk_l2_norm_) {
    // Megatron's L2Norm: x * rsqrt(mean(x^2) + layernorm_epsilon), in fp32.
    auto l2 = [this](const torch::Tensor& t) {
      const torch::Tensor f = t.to(torch::kFloat32);
      return (f * torch::rsqrt(f.pow(2).mean(-1, true) + l2_eps_)).to(t.dtype());
    };
    q = l2(q);
    k = l2(k);
  }
  if (rotary != nullptr && rotary_freqs.defined()) {
    q = rotary->Apply(q, rotary_freqs);
    k = rotary->Apply(k, rotary_freqs);
  }
  // [s, b, heads, d] -> [b, heads, s, d]; each kv head serves heads/groups query heads.
  const int64_t kv_heads = k.size(2);
  torch::Tensor qt = q.permute({1, 2, 0, 3});
  torch::Tensor kt = k.permute({1, 2, 0, 3});
  torch::Tensor vt = v.permute({1, 2, 0, 3});
  if (kv_heads != local_heads) {
    const int64_t repeat = local_heads / kv_heads;
    kt = kt.repeat_interleave(repeat, 1);
    vt = vt.repeat_interleave(repeat, 1);
  }
  torch::Tensor context;  // [b, heads, s, d]
  if (!softmax_offset_.defined() && !off_by_one_ && !window_.has_value() && !softcap_.has_value() &&
      (dropout_ <= 0.0 || !is_training()) && qt.scalar_type() == torch::kFloat32) {
    // The same causal softmax(q k^T * scale) v in fp32, computed blockwise by LibTorch's fused
    // kernel (no [b, heads, s, s] scores and probabilities in memory, fully masked blocks
    // skipped): half the time of the explicit path on CPU. A kernel choice, as Megatron's
    // flash/fused backends are for its unfused DotProductAttention; results agree to fp32
    // rounding. The explicit path stays for what the kernel cannot express (softmax offsets,
    // sliding windows, capped scores, dropout with its mask drawn as Megatron draws it,
    // half-precision inputs whose scores are computed in fp32 there).
    context =
        at::scaled_dot_product_attention(qt, kt, vt, /*attn_mask=*/std::nullopt,
                                         /*dropout_p=*/0.0, /*is_causal=*/true, softmax_scale_);
  } else {
    torch::Tensor scores =
        torch::matmul(qt.to(torch::kFloat32), kt.transpose(-1, -2).to(torch::kFloat32)) *
        softmax_scale_;
    if (softcap_.has_value()) scores = torch::tanh(scores / *softcap_) * *softcap_;
    // Masked positions: key j is hidden from query i.
    torch::Tensor masked;
    const auto bools = torch::TensorOptions().dtype(torch::kBool).device(qkv.device());
    if (window_.has_value()) {
      // Megatron's get_sliding_window_causal_mask (sq == skv): keep -left <= j - i <= right.
      masked = torch::ones({s, s}, bools).triu(-window_->first).tril(window_->second).logical_not();
    } else {
      masked = torch::ones({s, s}, bools).triu(1);
    }
    scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
    torch::Tensor probs;
    if (softmax_offset_.defined() || off_by_one_) {
      // Softmax with an offset (SoftmaxOne): an extra logit per head in the denominator, the
      // learnable softmax_offset or 0 for off-by-one.
      torch::Tensor offset = softmax_offset_.defined()
                                 ? softmax_offset_.to(torch::kFloat32).view({1, local_heads, 1, 1})
                                 : torch::zeros({1, local_heads, 1, 1}, scores.options());
      offset = offset.expand({b, local_heads, s, 1});
      probs = torch::softmax(torch::cat({scores, offset}, -1), -1).narrow(-1, 0, s);
    } else {
      probs = torch::softmax(scores, -1);
    }
    probs = MaybeDropout(probs, dropout_, is_training(), dropout_generator_).to(vt.dtype());
    context = torch::matmul(probs, vt);
  }
  context = context.permute({2, 0, 1, 3}).contiguous();  // [s, b, heads, d]
  if (gate.defined()) context = context * torch::sigmoid(gate);
  context = context.view({s, b, local_heads * head_dim_});
  return linear_proj_->forward(context);
}

}  // namespace gptb::model
