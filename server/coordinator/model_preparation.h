#ifndef GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_
#define GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/loaded_config.h"
#include "core/plan/model_plan.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "gptbuilder/v1/model.pb.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::coordinator {

// A config finalized and planned for a world: what admission and the build start from.
struct PreparedModel {
  config::LoadedConfig finalized;
  int world_size = 0;
  std::optional<plan::ModelPlan> plan;
  double validate_seconds = 0;
  double plan_seconds = 0;
};

// Finalize (every violation at once, INVALID_ARGUMENT with a BadRequest) then plan. A
// `world_size` of 0 takes the smallest world the parallel sizes allow.
absl::StatusOr<PreparedModel> PrepareModel(const gptbuilder::v1::GPTModelConfig& config,
                                           const gptbuilder::v1::DistributedDataParallelConfig& ddp,
                                           const gptbuilder::v1::BuildOptions& build,
                                           int world_size);

// Checks a BuildModel's `load_from` against the prepared model before anything is placed: the
// checkpoint opens (a canonical checkpoint or a Hugging Face directory), its config is
// compatible with the model's and every canonical tensor the plan needs is stored with a
// usable shape (core/checkpoint CheckpointReader::Bind). NOT_FOUND or INVALID_ARGUMENT, each
// naming `load_from` and the path.
absl::Status CheckLoadFrom(const std::string& path, const PreparedModel& prepared);

// The plan of an already finalized model (describe and recovery re-derive it; never recomputed
// differently from the build's).
absl::StatusOr<plan::ModelPlan> PlanFinalized(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, int world_size);

// Model-state bytes each rank's build allocates: parameters + gradient buffers.
std::vector<int64_t> RankBuildBytes(const plan::ModelPlan& plan);
std::vector<std::vector<int>> TensorParallelGroups(const plan::ModelPlan& plan);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_
