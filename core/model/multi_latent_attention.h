#ifndef GPTB_CORE_MODEL_MULTI_LATENT_ATTENTION_H_
#define GPTB_CORE_MODEL_MULTI_LATENT_ATTENTION_H_

#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/layer_spec/module_spec.h"
#include "core/model/layers.h"

namespace gptb::model {

// The rotary embedding multi-latent attention applies to the qk_pos_emb_head_dim channels of
// each query head and to the shared key position channels: Megatron's RotaryEmbedding
// (rope_type "rope": rotary_base, rotary_percent) or YarnRotaryEmbedding (rope_type "yarn":
// rotary_scaling_factor, original_max_position_embeddings, beta_fast/slow, mscale,
// mscale_all_dim), applied with MLA's de-interleaving (channels 0, 2, 4, ... then 1, 3, 5, ...,
// rotated as halves) and YaRN's concentration factor on cos and sin.
class MlaRotary {
 public:
  explicit MlaRotary(const gptbuilder::v1::GPTModelConfig& config);
  // Angles for positions [0, seq_len): [s, 1, 1, rotary_dim] (halves repeated).
  torch::Tensor Frequencies(int64_t seq_len, const torch::Device& device) const;
  // t [s, b, heads, qk_pos_emb_head_dim] rotated.
  torch::Tensor Apply(const torch::Tensor& t, const torch::Tensor& freqs) const;

 private:
  torch::Tensor inv_freq_;
  double mscale_ = 1.0;  // YaRN's concentration factor (1 for rope)
};

// Megatron's MLASelfAttention: queries through linear_q_proj, or compressed by
// linear_q_down_proj, normalised (q_layernorm or the fused norm of linear_q_up_proj) and expanded
// by linear_q_up_proj; keys and values from one compressed latent (linear_kv_down_proj, whose
// last qk_pos_emb_head_dim channels are the shared rotary key), normalised and expanded by
// linear_kv_up_proj; causal softmax attention with scale mscale^2 / sqrt(qk_head_dim +
// qk_pos_emb_head_dim); linear_proj back to the hidden size. Heads are split across TP ranks; the
// down projections are replicated (TE / ModelOpt) or split and gathered (local spec). Built from
// a spec resolved by layer_spec::ResolveMlaAttention, registering in Megatron's order.
class MlaSelfAttention : public torch::nn::Module {
 public:
  MlaSelfAttention(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                   const std::string& prefix);
  // x [s, b, h] -> [s, b, h] (bias included).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::shared_ptr<ColumnParallelLinear> MakeLinear(const ModuleContext& ctx,
                                                   const layer_spec::ModuleSpec& spec,
                                                   const std::string& prefix,
                                                   const std::string& slot);

  std::shared_ptr<RowParallelLinear> linear_proj_;
  std::shared_ptr<ColumnParallelLinear> linear_q_proj_, linear_q_down_proj_, linear_q_up_proj_,
      linear_kv_down_proj_, linear_kv_up_proj_;
  std::shared_ptr<Norm> q_layernorm_, kv_layernorm_;
  MlaRotary rotary_;
  ParallelContext* parallel_;
  int64_t local_heads_, qk_head_dim_, pos_dim_, v_head_dim_, kv_lora_rank_;
  double dropout_;
  at::Generator* dropout_generator_;
  double softmax_scale_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_MULTI_LATENT_ATTENTION_H_
