#include "core/model/rank_model.h"

#include "absl/status/status.h"

namespace gptb::model {

const char* BuildPhaseName(BuildPhase phase) {
  switch (phase) {
    case BuildPhase::kProcessGroups:
      return "process_groups";
    case BuildPhase::kConstruct:
      return "construct";
    case BuildPhase::kInitialize:
      return "init";
    case BuildPhase::kWrap:
      return "wrap";
    case BuildPhase::kDone:
      return "done";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<RankModel>> BuildRankModel(const RankBuildOptions& options) {
  (void)options;
  return absl::UnimplementedError("BuildRankModel: the LibTorch builder is not implemented yet");
}

}  // namespace gptb::model
