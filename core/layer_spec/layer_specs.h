#ifndef GPTB_CORE_LAYER_SPEC_LAYER_SPECS_H_
#define GPTB_CORE_LAYER_SPEC_LAYER_SPECS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layer_spec/module_spec.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::layer_spec {

// The layer-spec functions of Megatron Core (`get_gpt_layer_local_spec`,
// `get_gpt_layer_with_transformer_engine_spec`, `get_gpt_decoder_block_spec`,
// `get_gpt_mtp_block_spec`, `get_gpt_modelopt_spec`) and of Megatron-Bridge's gpt_builder
// (`local_layer_spec`, `transformer_engine_layer_spec`, `transformer_engine_full_layer_spec`,
// `modelopt_transformer_layer_spec`, `default_layer_spec`, `mtp_block_spec`), as data.
//
// All config arguments are FINALIZED configs (core/config/finalize.h): derived values set.

// get_gpt_layer_local_spec: Megatron-Core-only modules (ColumnParallelLinear, RowParallelLinear,
// torch/apex norms). `num_experts` unset gives a dense MLP, set gives a MoELayer with
// SequentialMLP experts (the local backend has no grouped GEMM).
ModuleSpecPtr GetGptLayerLocalSpec(std::optional<int> num_experts, bool moe_grouped_gemm,
                                   bool qk_layernorm, const std::string& normalization,
                                   bool qk_l2_norm = false, bool multi_latent_attention = false);

// get_gpt_layer_with_transformer_engine_spec: the input norm is fused into
// linear_qkv (TELayerNormColumnParallelLinear) and, for dense MLPs, the pre-MLP norm into
// linear_fc1; MoE layers keep a separate pre_mlp_layernorm (TENorm). TEGroupedMLP experts with
// moe_grouped_gemm, else SequentialMLP over TE linears.
ModuleSpecPtr GetGptLayerWithTransformerEngineSpec(std::optional<int> num_experts,
                                                   bool moe_grouped_gemm, bool qk_layernorm,
                                                   bool qk_l2_norm = false,
                                                   bool multi_latent_attention = false);

// Per-layer specs for the given global decoder layer ids, dense or MoE by moe_layer_freq
// (get_gpt_decoder_block_spec's pattern, sliced to a stage). `backend` is "local" or
// "transformer_engine".
BlockSpec GetGptDecoderBlockSpec(const gptbuilder::v1::TransformerConfig& config,
                                 const std::string& backend, const std::vector<int>& layer_ids);

// Bridge's named spec functions. Those that depend on the stage (block specs) take the
// stage's global decoder layer ids.
LayerSpecChoice LocalLayerSpec(const gptbuilder::v1::GPTModelConfig& config,
                               const std::vector<int>& layer_ids);
LayerSpecChoice TransformerEngineLayerSpec(const gptbuilder::v1::GPTModelConfig& config,
                                           const std::vector<int>& layer_ids);
// Fails (UNIMPLEMENTED-free, INVALID_ARGUMENT) for MoE models: the full-TE layer is dense only.
absl::StatusOr<LayerSpecChoice> TransformerEngineFullLayerSpec(
    const gptbuilder::v1::GPTModelConfig& config, const std::vector<int>& layer_ids);
LayerSpecChoice ModelOptTransformerLayerSpec(const gptbuilder::v1::GPTModelConfig& config,
                                             const std::vector<int>& layer_ids);
// Bridge's selection order: ModelOpt when restore_modelopt_state, else full-TE when
// use_transformer_engine_full_layer_spec, else the TE spec.
absl::StatusOr<LayerSpecChoice> DefaultLayerSpec(const gptbuilder::v1::GPTModelConfig& config,
                                                 const std::vector<int>& layer_ids);

// The stage's resolved decoder specs: transformer_layer_spec (a name or a custom tree) applied
// to the stage's layers. Returns one spec per built layer plus the final-norm module.
struct StageLayerSpecs {
  std::string spec_name;  // the named spec that was used, or "custom"
  LayerSpecChoice choice;
  std::vector<ModuleSpecPtr> layers;  // one per built decoder layer
  std::string final_layernorm;        // module name of decoder.final_layernorm
  bool transformer_engine = false;    // the decoder uses TE-structured modules
};
absl::StatusOr<StageLayerSpecs> ResolveStageLayerSpecs(const gptbuilder::v1::GPTModelConfig& config,
                                                       const std::vector<int>& layer_ids);

// Bridge's mtp_block_spec: nullopt when mtp_num_layers is unset; otherwise the MTP layer specs
// for `num_mtp_layers_to_build` layers (TE backend, as Bridge passes use_transformer_engine=True),
// whose inner layer is the stage's last decoder layer spec, or default_layer_spec when the
// stage's block has no layers. Each MTP layer spec is a "MultiTokenPredictionLayer" node with
// enorm, hnorm, eh_proj, mtp_model_layer and layer_norm slots.
absl::StatusOr<std::optional<std::vector<ModuleSpecPtr>>> MtpBlockSpec(
    const gptbuilder::v1::GPTModelConfig& config, const StageLayerSpecs& stage,
    int num_mtp_layers_to_build);

// The first norm of the decoder (layers and final norm) that is one of torch's own norms
// (IsTorchNorm), as "<slot path>: <module>" (e.g. "input_layernorm: RMSNorm"), or nullopt; also
// nullopt when the specs cannot be resolved (Finalize reports that separately). Megatron Core
// refuses those norms with sequence parallelism.
std::optional<std::string> FindTorchNorm(const gptbuilder::v1::GPTModelConfig& config);

// Megatron's QKNormConfigResolver, which MLASelfAttention runs when it is constructed: from an
// MLASelfAttention spec node and the config, the modules it really builds. With q_lora_rank 0
// (None) the query is linear_q_proj, else linear_q_down_proj -> q_layernorm -> linear_q_up_proj;
// with qk_layernorm off the q/kv norms are IdentityOp (a norm or a fused norm-linear in the
// spec is an error); with qk_layernorm on, a spec without an explicit norm gets the backend's
// fused norm + linear for the up projection (TELayerNormColumnParallelLinear; the local backend
// has none, an error), and an explicit norm needs a plain linear. With q_lora_rank 0 and
// qk_layernorm on, linear_q_proj itself becomes the fused norm + linear (Megatron-Bridge issue
// #5261: an extra query norm over the hidden states). The backend is transformer_impl's.
// The result has only the slots that hold modules, in the module's construction order.
// INVALID_ARGUMENT naming the slot for the combinations Megatron rejects.
absl::StatusOr<ModuleSpecPtr> ResolveMlaAttention(const ModuleSpec& attention,
                                                  const gptbuilder::v1::TransformerConfig& config);

// MoE pattern of every global decoder layer (1 = MoE) from moe_layer_freq; all 0 when dense.
std::vector<int> MoeLayerPattern(const gptbuilder::v1::TransformerConfig& config);

}  // namespace gptb::layer_spec

#endif  // GPTB_CORE_LAYER_SPEC_LAYER_SPECS_H_
