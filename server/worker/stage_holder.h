#ifndef GPTB_SERVER_WORKER_STAGE_HOLDER_H_
#define GPTB_SERVER_WORKER_STAGE_HOLDER_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/rank_model.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "gptbuilder/v1/worker.pb.h"
#include "server/worker/worker_metrics.h"

namespace gptb::worker {

// core's BuildRankModel, or a fake in tests.
using RankBuilder = std::function<absl::StatusOr<std::unique_ptr<model::RankModel>>(
    const model::RankBuildOptions&)>;

class BuildSession;

// What a worker holds: its slots, the builds running on them (one thread per rank) and the
// models whose every local rank finished. A model is held only when all of its ranks on this
// worker built; when one fails or the build is cancelled, the others are asked to stop and
// everything of that build is released as its ranks return. Thread-safe.
class StageHolder {
 public:
  StageHolder(std::vector<gptbuilder::v1::Slot> slots, std::string bind_address,
              RankBuilder builder, WorkerMetrics* metrics = nullptr);
  // Cancels running builds and waits for their threads (bounded by their timeouts).
  ~StageHolder();

  // Starts building the request's ranks on their slots. FAILED_PRECONDITION when a slot is
  // unknown or busy (a rank of a released build may still be timing out), or the model is
  // already held or building here; INVALID_ARGUMENT for a request without ranks.
  absl::StatusOr<std::shared_ptr<BuildSession>> StartBuild(
      const gptbuilder::v1::BuildStagesRequest& request);

  // Releases the model's held ranks now and cancels a build of it in progress (its ranks are
  // released as they return). An empty `build_id` matches any build. Idempotent.
  gptbuilder::v1::ReleaseModelResponse Release(const std::string& model,
                                               const std::string& build_id);

  // The parameter tables of the model's ranks held here, with checksums. NOT_FOUND when not
  // held; FAILED_PRECONDITION while building.
  absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> Describe(
      const std::string& model) const;

  // The ranks of a model held here (ascending), kept alive by the returned pointers even if the
  // model is released meanwhile. NOT_FOUND when not held; FAILED_PRECONDITION while building.
  struct HeldRanks {
    std::string build_id;
    std::vector<std::pair<int, std::shared_ptr<model::RankModel>>> ranks;
  };
  absl::StatusOr<HeldRanks> Held(const std::string& model) const;

  // Called (outside the lock) with a model's name whenever Release dropped its held ranks, so
  // that state kept beside the held ranks (optimizers) goes with them. Set before serving.
  void SetReleaseListener(std::function<void(const std::string&)> listener) {
    release_listener_ = std::move(listener);
  }

  // Where this worker's ranks may read and write checkpoints (--checkpoint-root; empty:
  // anywhere the process can reach). Builds load from, and saves write to, paths that resolve
  // inside it (core/checkpoint/checkpoint_directory.h). Set before serving.
  void SetCheckpointRoot(std::string root) { checkpoint_root_ = std::move(root); }
  const std::string& checkpoint_root() const { return checkpoint_root_; }

  // The held models, for (re-)registration.
  std::vector<gptbuilder::v1::HeldModel> HeldModels() const;
  std::vector<std::string> HeldModelNames() const;
  const std::vector<gptbuilder::v1::Slot>& slots() const { return slots_; }
  // The intra-op threads each rank thread runs with (the slots' `threads`; 0: LibTorch's).
  int threads_per_rank() const { return slots_.empty() ? 0 : slots_.front().threads(); }
  WorkerSnapshot Snapshot() const;

 private:
  struct Build;
  struct RankResult;
  friend class BuildSession;

  void RunRank(std::shared_ptr<Build> build, int rank, int slot);
  void OnRankDone(const std::shared_ptr<Build>& build, int rank,
                  absl::StatusOr<std::unique_ptr<model::RankModel>> result, double seconds);
  void FreeSlotsLocked(const Build& build);
  // Destroys rank models outside the lock and returns freed memory to the OS.
  static void Destroy(std::vector<std::shared_ptr<model::RankModel>> models);

  const std::vector<gptbuilder::v1::Slot> slots_;
  const std::string bind_address_;
  const RankBuilder builder_;
  WorkerMetrics* metrics_;
  std::function<void(const std::string&)> release_listener_;
  std::string checkpoint_root_;

  mutable std::mutex mu_;
  std::condition_variable threads_done_;
  int running_threads_ = 0;
  enum class SlotState { kFree, kBuilding, kHolding };
  struct SlotUse {
    SlotState state = SlotState::kFree;
    std::string model;
    std::string build_id;
    int rank = 0;
  };
  std::vector<SlotUse> slot_use_;
  // Notified whenever a slot becomes free (a rank of a cancelled build returned).
  std::condition_variable slot_freed_;
  std::map<std::string, std::shared_ptr<Build>> building_;  // by model
  std::map<std::string, std::shared_ptr<Build>> held_;      // by model
};

// The event stream of one BuildStages call.
class BuildSession {
 public:
  enum class Next { kEvent, kIdle, kFinished };
  // The next progress event, waiting up to `wait`; kFinished once every rank has returned and
  // every event was taken.
  Next Poll(gptbuilder::v1::RankProgress* event, std::chrono::milliseconds wait);
  // Asks every rank to stop; what they built is released when they return.
  void Cancel();
  // After kFinished: OK when every rank holds its stages, else the first rank's error (or
  // CANCELLED).
  absl::Status status() const;

 private:
  friend class StageHolder;
  explicit BuildSession(std::shared_ptr<StageHolder::Build> build) : build_(std::move(build)) {}
  std::shared_ptr<StageHolder::Build> build_;
};

// core's phase as the API's BuildPhase.
gptbuilder::v1::BuildPhase ToProtoPhase(model::BuildPhase phase);

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_STAGE_HOLDER_H_
