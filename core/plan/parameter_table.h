#ifndef GPTB_CORE_PLAN_PARAMETER_TABLE_H_
#define GPTB_CORE_PLAN_PARAMETER_TABLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype/dtype.h"
#include "core/layer_spec/layer_specs.h"
#include "core/plan/pipeline_layout.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::plan {

// A contiguous range [start, start + length) of a canonical tensor along its partition dim.
struct Piece {
  int64_t start = 0;
  int64_t length = 0;
  bool operator==(const Piece& o) const { return start == o.start && length == o.length; }
};

// How a parameter is initialised (Megatron's init methods, section 6 of the core spec).
struct InitMethod {
  enum class Kind { kNormal, kConstant };
  Kind kind = Kind::kNormal;
  double value = 0.0;  // the std for kNormal, the value for kConstant
  static InitMethod Normal(double std) { return {Kind::kNormal, std}; }
  static InitMethod Constant(double v) { return {Kind::kConstant, v}; }
};

// One named parameter of a stage, as Megatron Core registers it on this rank, and the
// canonical (unsharded, layout-independent) tensor it is a shard of.
struct ParamInfo {
  std::string name;  // module-local state-dict name, e.g. decoder.layers.0.mlp.linear_fc1.weight
  std::vector<int64_t> shape;  // shape on this rank
  DType dtype = DType::kFloat32;
  // The canonical tensor: global layer / expert / MTP indices and Transformer-Engine key names
  // (input_layernorm.weight -> self_attention.linear_qkv.layer_norm_weight, as Megatron's
  // sharded_state_dict_keys_map does), so every spec and layout maps to the same names. A tied
  // output layer's canonical tensor is embedding.word_embeddings.weight.
  std::string canonical_name;
  std::vector<int64_t> canonical_shape;
  // The local tensor is the concatenation along `partition_dim` of `pieces` of the canonical
  // tensor (one piece for vocab/column/row-parallel slices, two for a gated fc1 [gate_r; up_r]).
  // partition_dim -1: the local tensor is the whole canonical tensor.
  int partition_dim = -1;
  std::vector<Piece> pieces;
  InitMethod init;
  // Megatron's tensor attributes.
  bool tensor_model_parallel = false;
  int partition_stride = 1;
  bool is_expert = false;         // allreduce=False: gradients reduce over expt_dp
  bool shared_embedding = false;  // a tied or MTP copy of the word embeddings
  // Megatron's `sequence_parallel` attribute: a replicated parameter applied to this rank's
  // shard of the sequence (norms, row-parallel biases, the router, the shared-expert gate), set
  // when transformer.sequence_parallel is on.
  bool sequence_parallel = false;
  // finalize_model_grads sums this replicated parameter's gradient over the tensor-parallel
  // group (_allreduce_non_tensor_model_parallel_grads), because each TP rank computes only a
  // partial gradient: the sequence_parallel parameters (each rank sees its part of the
  // sequence) and, with qk_layernorm, the q/k norms (each rank normalises its own heads).
  bool sum_grad_over_tp = false;

  // Plans only hold parameters whose element and byte counts (local and canonical) fit in
  // int64 (ModelPlan::Create checks), so these never overflow.
  int64_t numel() const;
  int64_t bytes() const { return numel() * static_cast<int64_t>(DTypeSize(dtype)); }
};

// Where a stage sits: its chunk of the pipeline and the rank's shard coordinates.
struct StageCoords {
  int tp_rank = 0;
  int etp_rank = 0;
  int ep_rank = 0;
};

// Everything the parameter walk needs that does not change within a chunk.
struct StageContext {
  const gptbuilder::v1::GPTModelConfig* config = nullptr;  // finalized
  int64_t vocab_size = 0;                                  // padded (or as configured)
  DType dtype = DType::kFloat32;  // dtype of the built parameters (after Float16Module)
  // torch.nn.Embedding is created in fp32 whatever params_dtype is; only Float16Module casts it.
  DType position_embedding_dtype = DType::kFloat32;
  const ChunkLayout* chunk = nullptr;
  const layer_spec::StageLayerSpecs* specs = nullptr;
  const std::vector<layer_spec::ModuleSpecPtr>* mtp_specs = nullptr;  // null: no MTP on this chunk
  // Parameters the walk may still list (decremented per parameter); null: unbounded. When it
  // runs out the walk stops and PlanStageParameters is RESOURCE_EXHAUSTED.
  int64_t* remaining_params = nullptr;
};

// Megatron Core's GPTModel.named_parameters() for one stage, in registration order: embedding
// (pre_process or MTP chunk), decoder layers (module-local indices), final norm, MTP layers,
// output layer (absent when pre_process and tied). INVALID_ARGUMENT for module combinations
// Megatron cannot build (e.g. biases on experts with expert TP > 1); RESOURCE_EXHAUSTED when
// context.remaining_params runs out.
absl::StatusOr<std::vector<ParamInfo>> PlanStageParameters(const StageContext& context,
                                                           const StageCoords& coords);

// The stage's persistent buffers in the order Megatron's state_dict lists them: each MoE
// router's expert_bias ([num_moe_experts], fp32, zeros) when moe_router_enable_expert_bias,
// decoder layers then MTP layers. Replicated: the same on every tp / ep rank.
absl::StatusOr<std::vector<ParamInfo>> PlanStageBuffers(const StageContext& context);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PARAMETER_TABLE_H_
