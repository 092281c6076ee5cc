#include "server/coordinator/model_preparation.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/checkpoint_manifest.h"
#include "core/checkpoint/checkpoint_reader.h"
#include "core/config/finalize.h"
#include "core/config/violations.h"

namespace gptb::coordinator {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<plan::ModelPlan> PlanFinalized(
    const gptbuilder::v1::GPTModelConfig& config,
    const gptbuilder::v1::DistributedDataParallelConfig& ddp,
    const gptbuilder::v1::BuildOptions& build, int world_size) {
  plan::PlanOptions options;
  options.world_size = world_size;
  options.ddp = ddp;
  options.build = build;
  return plan::ModelPlan::Create(config, options);
}

absl::StatusOr<PreparedModel> PrepareModel(const gptbuilder::v1::GPTModelConfig& config,
                                           const gptbuilder::v1::DistributedDataParallelConfig& ddp,
                                           const gptbuilder::v1::BuildOptions& build,
                                           int world_size) {
  PreparedModel out;
  auto start = std::chrono::steady_clock::now();
  config::LoadedConfig loaded;
  loaded.model = config;
  loaded.ddp = ddp;
  loaded.build = build;
  config::FinalizeOptions options;
  if (world_size > 0) options.world_size = world_size;
  absl::StatusOr<config::LoadedConfig> finalized = config::FinalizeLoaded(loaded, options);
  if (!finalized.ok()) return finalized.status();
  out.finalized = *std::move(finalized);
  out.validate_seconds = SecondsSince(start);

  start = std::chrono::steady_clock::now();
  out.world_size = world_size > 0 ? world_size : plan::MinimalWorldSize(out.finalized.model);
  absl::StatusOr<plan::ModelPlan> plan =
      PlanFinalized(out.finalized.model, out.finalized.ddp, out.finalized.build, out.world_size);
  if (!plan.ok()) return plan.status();
  out.plan.emplace(*std::move(plan));
  out.plan_seconds = SecondsSince(start);
  return out;
}

std::vector<int64_t> RankBuildBytes(const plan::ModelPlan& plan) {
  std::vector<int64_t> bytes(plan.world_size());
  for (int r = 0; r < plan.world_size(); ++r) {
    const plan::RankMemory memory = plan.Rank(r).memory;
    bytes[r] = memory.param_bytes + memory.grad_bytes;
  }
  return bytes;
}

std::vector<std::vector<int>> TensorParallelGroups(const plan::ModelPlan& plan) {
  return plan.topology().AllGroups(plan::GroupKind::kTp);
}

absl::Status CheckLoadFrom(const std::string& path, const PreparedModel& prepared) {
  auto fail = [&](const absl::Status& status) {
    if (status.code() != absl::StatusCode::kInvalidArgument) {
      return absl::Status(
          status.code(),
          absl::StrCat("load_from: ", status.message(),
                       status.code() == absl::StatusCode::kNotFound
                           ? " (the path must be visible to the coordinator and to every worker)"
                           : ""));
    }
    // The checkpoint's own field violations (config fields that differ) stay as they are,
    // after one naming load_from.
    const std::vector<config::FieldViolation> found = config::ViolationsFromStatus(status);
    config::Violations violations;
    violations.Add("load_from", "INVALID_CHECKPOINT",
                   found.empty() ? std::string(status.message())
                                 : absl::StrCat("the checkpoint at ", path,
                                                " does not fit the requested model"));
    for (const config::FieldViolation& v : found) violations.Add(v.field, v.reason, v.description);
    return violations.ToStatus();
  };
  absl::StatusOr<std::unique_ptr<checkpoint::CheckpointReader>> reader =
      checkpoint::CheckpointReader::Open(path);
  if (!reader.ok()) return fail(reader.status());
  absl::StatusOr<std::vector<checkpoint::CanonicalTensor>> tensors =
      checkpoint::CanonicalTensors(*prepared.plan);
  if (!tensors.ok()) return fail(tensors.status());
  absl::Status bound = (*reader)->Bind(prepared.finalized.model, *tensors);
  if (!bound.ok()) return fail(bound);
  return absl::OkStatus();
}

}  // namespace gptb::coordinator
