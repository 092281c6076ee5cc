#ifndef GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_
#define GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/limits.h"
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

// Finalize (every violation at once, INVALID_ARGUMENT with a BadRequest) then plan, both within
// `limits` (a config over one is refused before any work). A `world_size` of 0 takes the
// smallest world the parallel sizes allow; a negative one is invalid.
absl::StatusOr<PreparedModel> PrepareModel(const gptbuilder::v1::GPTModelConfig& config,
                                           const gptbuilder::v1::DistributedDataParallelConfig& ddp,
                                           const gptbuilder::v1::BuildOptions& build,
                                           int world_size, const config::Limits& limits = {});

// The config a ValidateConfig, PlanModel or BuildModel request carries, not yet finalized: its
// config, ddp and build messages as they are, or its config_text loaded by the loader `gptb`
// uses (core/config/config_loader.h: YAML, JSON, text proto, Hugging Face config.json) with its
// overrides applied in order (core/config/overrides.h). INVALID_ARGUMENT, one violation per
// problem, when both forms are set, the text is over config::kMaxConfigTextBytes, does not
// parse, or an override does not apply.
absl::StatusOr<config::LoadedConfig> RequestedConfig(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, const gptbuilder::v1::ConfigText* text);

// PrepareModel of what `request` (any of the three) carries, for its world_size.
template <typename Request>
absl::StatusOr<PreparedModel> PrepareRequested(const Request& request,
                                               const config::Limits& limits) {
  absl::StatusOr<config::LoadedConfig> loaded =
      RequestedConfig(request.config(), request.ddp(), request.build(),
                      request.has_config_text() ? &request.config_text() : nullptr);
  if (!loaded.ok()) return loaded.status();
  return PrepareModel(loaded->model, loaded->ddp, loaded->build, request.world_size(), limits);
}

// Checks a BuildModel's `load_from` against the prepared model before anything is placed: the
// checkpoint opens (a canonical checkpoint or a Hugging Face directory), its config is
// compatible with the model's and every canonical tensor the plan needs is stored with a
// usable shape (core/checkpoint CheckpointReader::Bind). NOT_FOUND or INVALID_ARGUMENT, each
// naming `load_from` and the path; PERMISSION_DENIED for a path outside `root` (when set).
absl::Status CheckLoadFrom(const std::string& path, const PreparedModel& prepared,
                           const std::string& root = "");

// The plan of an already finalized model (describe and recovery re-derive it; never recomputed
// differently from the build's).
absl::StatusOr<plan::ModelPlan> PlanFinalized(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, int world_size, const config::Limits& limits = {});

// Model-state bytes each rank's build allocates: parameters + gradient buffers, and the
// optimizer state a first train step adds when `for_training`.
std::vector<int64_t> RankBuildBytes(const plan::ModelPlan& plan, bool for_training = false);
std::vector<std::vector<int>> TensorParallelGroups(const plan::ModelPlan& plan);

// PlanModel's paging: the first rank and the page size a request asks for. INVALID_ARGUMENT
// (naming page_size or page_token) for a negative size or a token this service did not issue.
inline constexpr int kDefaultPlanPageSize = 1000;
inline constexpr int kMaxPlanPageSize = 10000;
absl::Status ParsePlanPage(const gptbuilder::v1::PlanModelRequest& request, int* first_rank,
                           int* num_ranks);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_MODEL_PREPARATION_H_
