#ifndef GPTB_CORE_MODEL_ATTENTION_H_
#define GPTB_CORE_MODEL_ATTENTION_H_

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "core/layer_spec/module_spec.h"
#include "core/model/layers.h"

namespace gptb::model {

// Rotary position embedding (Megatron's RotaryEmbedding): rotary_percent of each head's
// channels, base rotary_base, optional Llama-3.1 scaling and sequence-length interpolation;
// rotate-half layout, or adjacent pairs with rotary_interleaved. With position_embedding_type
// "yarn", Megatron's YarnRotaryEmbedding (the yarn_* fields) and its concentration factor on
// cos and sin.
class Rotary {
 public:
  // `local`: the sliding-window layers' embedding of a Gemma 3 model (rotary_base_local, no
  // frequency scaling); otherwise, with rotary_base_local set, the global layers' frequencies
  // are divided by rope_scaling_factor (Bridge's Gemma3RotaryEmbedding).
  explicit Rotary(const gptbuilder::v1::GPTModelConfig& config, bool local = false);
  // Frequencies for positions [0, seq_len): [s, 1, 1, rotary_dim].
  torch::Tensor Frequencies(int64_t seq_len, const torch::Device& device) const;
  // Applies the rotation to t [s, b, heads, d].
  torch::Tensor Apply(const torch::Tensor& t, const torch::Tensor& freqs) const;

 private:
  torch::Tensor inv_freq_;
  double interpolation_ = 1.0;
  double mscale_ = 1.0;  // YaRN's concentration factor (1 for plain RoPE)
  bool interleaved_ = false;
};

// Whether Megatron's layer `layer_number` (1-based) attends through window_size
// (is_layer_window_attention): never without a window; with window_attn_skip_freq N every layer
// whose number is not a multiple of N; with a 0/1 list the layer's entry; otherwise every layer.
bool IsWindowAttentionLayer(const gptbuilder::v1::TransformerConfig& t, int layer_number);

// SelfAttention with GQA, a causal mask, optional q/k layernorm and RoPE. Registration order as
// Megatron: (core_attention.softmax_offset), linear_proj, linear_qkv, q_layernorm, k_layernorm.
// The local qkv rows are the rank's slice of the grouped layout [q heads of group j, k_j, v_j].
// Core attention as Megatron's DotProductAttention: on a sliding-window layer the mask keeps key
// j for query i iff i - left <= j <= i + right (window_size [left, right]; validation requires
// left >= 0 and right 0, where Megatron's local attention and Transformer Engine agree), else the
// causal mask; softmax_type "off-by-one" adds a zero logit to every row's denominator,
// "learnable" the head's softmax_offset.
class SelfAttention : public torch::nn::Module {
 public:
  SelfAttention(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                const std::string& prefix, const std::string& qkv_name = "linear_qkv",
                const std::string& proj_name = "linear_proj", bool fused_norm_override = false,
                bool qkv_first = false);
  // x [s, b, h] -> [s, b, h] (bias included); [s/t, b, h] in and out with sequence parallelism
  // (`rotary_freqs` always cover the whole sequence). `rotary_freqs` undefined without RoPE.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                        const Rotary* rotary);

 private:
  std::shared_ptr<ColumnParallelLinear> linear_qkv_;
  std::shared_ptr<RowParallelLinear> linear_proj_;
  std::shared_ptr<Norm> q_layernorm_;
  std::shared_ptr<Norm> k_layernorm_;
  bool qk_l2_norm_ = false;
  double l2_eps_ = 1e-6;
  std::shared_ptr<torch::nn::Module> core_attention_;
  torch::Tensor softmax_offset_;
  bool off_by_one_ = false;
  std::optional<std::pair<int64_t, int64_t>> window_;  // [left, right] on window layers
  ParallelContext* parallel_;
  int64_t heads_, groups_, head_dim_;
  int tp_, tp_rank_;
  bool output_gate_;
  double dropout_;
  at::Generator* dropout_generator_;
  double softmax_scale_;
  std::optional<double> softcap_;  // attn_logit_softcapping
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_ATTENTION_H_
