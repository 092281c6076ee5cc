#include "core/checkpoint/canonical_checkpoint.h"

#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"

namespace gptb::checkpoint {

HeldTensors HeldTensorsOf(const model::RankModel& model) {
  HeldTensors held;
  for (const auto& stage : model.stages()) {
    held.emplace_back();
    const std::vector<plan::ParamInfo>& infos = stage->plan().params;
    size_t i = 0;
    for (const auto& item : stage->named_parameters()) {
      if (i >= infos.size()) break;
      held.back().push_back({&infos[i++], item.value()});
    }
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
  absl::StatusOr<SaveStats> saved = gathered.ok()
                                        ? SaveWeights(model.plan(), model.rank(), model.groups(),
                                                      HeldTensorsOf(model), path, options)
                                        : absl::StatusOr<SaveStats>(gathered);
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
  return LoadWeights(model.plan(), HeldTensorsOf(model), path, options);
}

}  // namespace gptb::checkpoint
