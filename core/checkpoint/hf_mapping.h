#ifndef GPTB_CORE_CHECKPOINT_HF_MAPPING_H_
#define GPTB_CORE_CHECKPOINT_HF_MAPPING_H_

// Hugging Face checkpoint layouts of the supported families, as data: for each canonical tensor
// the HF tensor(s) holding it and how (as is, transposed, q/k/v regrouped, gate/up concatenated),
// turned into TensorRoutes (tensor_route.h) that read and write only the slices a rank holds.
//
//   canonical (Megatron, TE names)               Llama / Mistral / Qwen2 / Qwen3 / Mixtral /
//                                                Qwen3-MoE
//   embedding.word_embeddings.weight             model.embed_tokens.weight
//   decoder.layers.L.self_attention.linear_qkv.  model.layers.L.input_layernorm.weight
//     layer_norm_weight
//   ...linear_qkv.weight / .bias                 self_attn.{q,k,v}_proj.weight / .bias: rows
//                                                regrouped per query group [q.. , k, v]
//   ...linear_proj.weight                        self_attn.o_proj.weight
//   ...q_layernorm / k_layernorm.weight          self_attn.q_norm / k_norm.weight (Qwen3)
//   ...mlp.linear_fc1.layer_norm_weight          post_attention_layernorm.weight
//     (MoE: pre_mlp_layernorm.weight)
//   ...mlp.linear_fc1.weight                     mlp.gate_proj.weight ; mlp.up_proj.weight
//   ...mlp.linear_fc2.weight                     mlp.down_proj.weight
//   ...mlp.router.weight                         block_sparse_moe.gate.weight (Mixtral)
//   ...mlp.experts.local_experts.E.linear_fc1    block_sparse_moe.experts.E.w1 ; .w3
//   ...mlp.experts.local_experts.E.linear_fc2    block_sparse_moe.experts.E.w2
//   ...mlp.router.weight                         mlp.gate.weight (Qwen3-MoE)
//   ...mlp.experts.local_experts.E.linear_fc1    mlp.experts.E.gate_proj ; .up_proj
//   ...mlp.experts.local_experts.E.linear_fc2    mlp.experts.E.down_proj
//   decoder.final_layernorm.weight               model.norm.weight
//   output_layer.weight                          lm_head.weight (untied only)
//
//   DeepSeek-V2 / V3 (as Llama for embeddings, norms, dense MLPs and the output layer):
//   ...input_layernorm.weight                    model.layers.L.input_layernorm.weight
//   ...linear_q_down_proj.weight                 self_attn.q_a_proj.weight
//   ...linear_q_up_proj.layer_norm_weight        self_attn.q_a_layernorm.weight
//   ...linear_q_up_proj.weight                   self_attn.q_b_proj.weight
//   ...linear_kv_down_proj.weight                self_attn.kv_a_proj_with_mqa.weight
//   ...linear_kv_up_proj.layer_norm_weight       self_attn.kv_a_layernorm.weight
//   ...linear_kv_up_proj.weight                  self_attn.kv_b_proj.weight
//   ...linear_proj.weight                        self_attn.o_proj.weight
//   ...mlp.router.weight / .expert_bias          mlp.gate.weight / .e_score_correction_bias
//   ...mlp.experts.local_experts.E.linear_fc1/2  mlp.experts.E.{gate,up}_proj ; .down_proj
//   ...mlp.shared_experts.linear_fc1 / fc2       mlp.shared_experts.{gate,up}_proj ; .down_proj
//   mtp.layers.M.{enorm,hnorm,eh_proj}.weight    model.layers.<num_layers + M>.same
//   mtp.layers.M.mtp_model_layer.<layer>         model.layers.<num_layers + M>.<layer's HF name>
//   mtp.layers.M.final_layernorm.weight          model.layers.<num_layers + M>.shared_head.norm
//   GPT-OSS (Llama's attention names, with biases), experts fused per layer:
//   ...self_attention.core_attention.             self_attn.sinks
//     softmax_offset
//   ...mlp.router.weight / .bias                 mlp.router.weight / .bias
//   ...mlp.experts.local_experts.E.linear_fc1.   mlp.experts.gate_up_proj [E, h, 2f][E]: gate
//     weight / .bias                             and up interleaved along the last axis,
//                                                transposed; gate_up_proj_bias [E, 2f][E]
//   ...mlp.experts.local_experts.E.linear_fc2.   mlp.experts.down_proj [E, f, h][E] transposed;
//     weight / .bias                             down_proj_bias [E, h][E]
//
//   GPT-2 (Conv1D weights are stored [in, out], i.e. transposed):
//   embedding.word_embeddings / position_embeddings  transformer.wte / wpe.weight
//   ...linear_qkv.layer_norm_weight / _bias      transformer.h.L.ln_1.weight / .bias
//   ...linear_qkv.weight / .bias                 attn.c_attn.weight (transposed) / .bias: the
//                                                fused [q; k; v] columns regrouped per head
//   ...linear_proj.weight / .bias                attn.c_proj.weight (transposed) / .bias
//   ...mlp.linear_fc1.layer_norm_weight / _bias  ln_2.weight / .bias
//   ...mlp.linear_fc1.weight / .bias             mlp.c_fc.weight (transposed) / .bias
//   ...mlp.linear_fc2.weight / .bias             mlp.c_proj.weight (transposed) / .bias
//   decoder.final_layernorm.weight / .bias       transformer.ln_f.weight / .bias
//
// Vocabulary tensors keep the HF row count (config.json's vocab_size); the model's extra padding
// rows are not stored. Checkpoints of the bare base model (GPT2Model, LlamaModel) store the names
// without the "transformer." / "model." prefix; the importer detects that.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/tensor_route.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::checkpoint {

enum class HfFamily {
  kGpt2,
  kLlama,
  kMistral,
  kQwen2,
  kQwen3,
  kMixtral,
  kQwen3Moe,
  kGptOss,
  kDeepseekV2,
  kDeepseekV3,
  kGemma2,
  kGemma3Text
};

// config.json's model_type: "gpt2", "llama", "mistral", "qwen2", "qwen3", "mixtral",
// "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3", "gemma2", "gemma3_text".
const char* HfModelType(HfFamily family);
std::optional<HfFamily> ParseHfModelType(std::string_view model_type);

// The prefix of the base model's tensors in a *ForCausalLM checkpoint: "transformer." for GPT-2,
// "model." otherwise.
const char* HfBasePrefix(HfFamily family);

// The family a model exports as when none is named: gpt2 for learned absolute positions with
// LayerNorm; gemma3_text with post_linear_layernorm and qk_layernorm, gemma2 with
// post_linear_layernorm; multi-latent attention deepseek_v3 with sigmoid routing, else deepseek_v2;
// for RMSNorm gated models gpt_oss with experts and learnable softmax offsets, qwen3_moe with
// experts and qk_layernorm, mixtral with experts, qwen3 with qk_layernorm, qwen2 with a qkv bias,
// mistral with a sliding window, llama otherwise. INVALID_ARGUMENT when the model is none of these
// (see CheckHfRepresentable).
absl::StatusOr<HfFamily> InferHfFamily(const gptbuilder::v1::GPTModelConfig& config);

// OK when `family`'s transformers implementation computes what a model of `config` computes
// (norm, gating and activation, positions, biases, qk norms, experts; no MTP, output gate,
// learnable softmax offset, interleaved rope or post-norm residuals). INVALID_ARGUMENT with one
// violation per field otherwise.
absl::Status CheckHfRepresentable(HfFamily family, const gptbuilder::v1::GPTModelConfig& config);

// The route of every tensor of `tensors` (CanonicalTensors of a model of `config`) into a
// checkpoint of `family` whose base-model tensors carry `base_prefix` (HfBasePrefix, or "" for a
// bare base model). Vocabulary tensors' routes cover `vocab_rows` rows (at most their own).
// UNIMPLEMENTED naming the tensor when a canonical tensor has no counterpart in the family.
absl::StatusOr<std::vector<TensorRoute>> HfRoutes(HfFamily family,
                                                  const gptbuilder::v1::GPTModelConfig& config,
                                                  const std::vector<CanonicalTensor>& tensors,
                                                  int64_t vocab_rows,
                                                  const std::string& base_prefix);

// Stored tensors an importer may find without a canonical counterpart and skip: buffers older
// transformers versions saved (GPT-2's attn.bias / attn.masked_bias, rotary inv_freq) and, for a
// tied model, lm_head.weight.
bool IsIgnorableHfTensor(std::string_view name, bool tied);

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_HF_MAPPING_H_
