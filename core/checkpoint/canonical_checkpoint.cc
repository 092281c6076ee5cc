#include "core/checkpoint/canonical_checkpoint.h"

#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"

namespace gptb::checkpoint {

absl::StatusOr<HeldTensors> HeldTensorsOf(const model::RankModel& model) {
  HeldTensors held;
  for (const auto& stage : model.stages()) {
    held.emplace_back();
    auto tensors = stage->CheckpointTensors();
    if (!tensors.ok()) return tensors.status();
    for (auto& [info, tensor] : *tensors) held.back().push_back({info, tensor});
  }
  return held;
}

absl::StatusOr<SaveStats> SaveCheckpoint(const model::RankModel& model, const std::string& path,
                                         const SaveOptions& options) {
  const int chunks = static_cast<int>(model.stages().size());
  absl::Status gathered;
  for (int c = 0; c < chunks && gathered.ok(); ++c) {
    if (distributed::FullyShardedDataParallel* fsdp = model.fsdp(c);
        fsdp != nullptr && !fsdp->gathered()) {
      gathered = fsdp->Gather();
    }
  }
  absl::StatusOr<HeldTensors> held =
      gathered.ok() ? HeldTensorsOf(model) : absl::StatusOr<HeldTensors>(gathered);
  absl::StatusOr<SaveStats> saved =
      held.ok() ? SaveWeights(model.plan(), model.rank(), model.groups(), *held, path, options)
                : absl::StatusOr<SaveStats>(held.status());
  for (int c = 0; c < chunks; ++c) {
    if (distributed::FullyShardedDataParallel* fsdp = model.fsdp(c);
        fsdp != nullptr && fsdp->gathered()) {
      fsdp->Release();
    }
  }
  return saved;
}

absl::StatusOr<LoadStats> LoadCheckpoint(model::RankModel& model, const std::string& path,
                                         const LoadOptions& options) {
  for (int c = 0; c < static_cast<int>(model.stages().size()); ++c) {
    if (model.fsdp(c) != nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rank ", model.rank(), ": chunk ", c,
          " is sharded FSDP-style; load checkpoints at build time (load_from) instead"));
    }
  }
  absl::StatusOr<HeldTensors> held = HeldTensorsOf(model);
  if (!held.ok()) return held.status();
  return LoadWeights(model.plan(), *held, path, options);
}

}  // namespace gptb::checkpoint
