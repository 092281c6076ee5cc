#ifndef GPTB_CORE_PLAN_MODEL_PLAN_H_
#define GPTB_CORE_PLAN_MODEL_PLAN_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/config/limits.h"
#include "core/plan/parameter_table.h"
#include "core/plan/pipeline_layout.h"
#include "core/plan/rank_topology.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::plan {

// One distinct stage: a model chunk (pp rank, vp stage) at one shard position (tp rank, expert
// TP rank, ep rank). Every rank holding this position holds exactly these tensors.
struct StagePlan {
  int tp_rank = 0;
  int pp_rank = 0;
  int ep_rank = 0;
  int etp_rank = 0;
  std::optional<int> vp_stage;
  int chunk_index = 0;
  bool pre_process = false;
  bool post_process = false;
  std::vector<int> layers;      // global decoder layer indices
  std::vector<int> mtp_layers;  // global MTP layer indices
  std::string layer_spec;       // the named spec used ("local", "transformer_engine", ...)
  std::vector<ParamInfo> params;
  // Persistent buffers (state-dict entries that are not parameters): the MoE routers'
  // expert_bias (moe_router_enable_expert_bias), fp32. Checkpoints and HF export carry them; the
  // optimizer, num_params and the memory sums do not count them.
  std::vector<ParamInfo> buffers;
  // What a checkpoint holds of the stage: params, then buffers.
  std::vector<ParamInfo> checkpoint_tensors;
  int64_t num_params = 0;
  int64_t param_bytes = 0;
  int64_t expert_params = 0;  // parameters whose gradients reduce over expt_dp
  // Memory sums of `params` (memory.h), so a rank's memory is O(its chunks) to compute.
  int64_t grad_bytes = 0;
  int64_t dense_optimizer_bytes = 0;   // unsharded Adam state of the non-expert parameters
  int64_t expert_optimizer_bytes = 0;  // ... and of the expert parameters
};

// Bytes one rank needs for the model state (documented in memory.h).
struct RankMemory {
  int64_t num_params = 0;
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t total_bytes() const { return param_bytes + grad_bytes + optimizer_bytes; }
};

struct RankPlan {
  RankCoords coords;
  std::vector<int> stages;  // indices into ModelPlan::stages, one per model chunk
  RankMemory memory;
};

struct PlanOptions {
  int world_size = 1;
  gptbuilder::v1::BuildOptions build;
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  std::string order = "tp-cp-ep-dp-pp";
  // Distinct stages plus their parameters that planning may list (config::Limits); past it
  // Create is RESOURCE_EXHAUSTED before the memory is spent.
  int64_t max_plan_tensors = config::Limits().max_plan_tensors;
};

// A plan is a pure function of (finalized config, world size, build options): topology,
// per-chunk layers and pre/post flags, every parameter of every distinct stage, bytes per rank.
class ModelPlan {
 public:
  // `config` must be finalized (core/config/finalize.h). INVALID_ARGUMENT when the world does
  // not fit the parallel sizes, the layer spec cannot be built or a size does not fit in 64 bits;
  // RESOURCE_EXHAUSTED past options.max_plan_tensors.
  static absl::StatusOr<ModelPlan> Create(const gptbuilder::v1::GPTModelConfig& config,
                                          const PlanOptions& options);

  const gptbuilder::v1::GPTModelConfig& config() const { return config_; }
  const PlanOptions& options() const { return options_; }
  int world_size() const { return options_.world_size; }
  int64_t padded_vocab_size() const { return vocab_size_; }
  const RankTopology& topology() const { return topology_; }
  const PipelineLayout& layout() const { return layout_; }
  // Distinct stages ordered by (pp rank, chunk, tp rank, ep rank, expert TP rank).
  const std::vector<StagePlan>& stages() const { return stages_; }
  DType dtype() const { return dtype_; }

  // The stage index a rank holds for a chunk.
  int StageIndex(const RankCoords& coords, int chunk_index) const;
  // Coordinates, stages and memory of one global rank.
  RankPlan Rank(int rank) const;
  // Sum over the distinct (tp, pp, ep, etp, chunk) positions of their canonical tensors counted
  // once: the model's parameter count (tied and MTP embedding copies excluded).
  int64_t TotalParameters() const;

 private:
  ModelPlan(const gptbuilder::v1::GPTModelConfig& config, PlanOptions options,
            RankTopology topology, PipelineLayout layout)
      : config_(config),
        options_(std::move(options)),
        topology_(std::move(topology)),
        layout_(std::move(layout)) {}

  gptbuilder::v1::GPTModelConfig config_;
  PlanOptions options_;
  RankTopology topology_;
  PipelineLayout layout_;
  int64_t vocab_size_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<StagePlan> stages_;
  // (chunk, pp rank, tp rank, ep rank, expert-TP rank) -> index into stages_. A map: the dense
  // array of every combination can be far larger than the world.
  absl::flat_hash_map<std::array<int, 5>, int> stage_index_;
};

// The smallest world a finalized config fits: pp * lcm(tp * cp, etp * ep) (data-parallel size 1
// on the dense grid, enough ranks for the expert grid). PlanModel, BuildModel and `gptb plan`
// take it when no world size is given.
int MinimalWorldSize(const gptbuilder::v1::GPTModelConfig& finalized);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_MODEL_PLAN_H_
