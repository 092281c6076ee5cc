#ifndef GPTB_SERVER_COORDINATOR_BUILD_ORCHESTRATOR_H_
#define GPTB_SERVER_COORDINATOR_BUILD_ORCHESTRATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/longrunning/operations.pb.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/coordinator_context.h"

namespace gptb::coordinator {

// Why a build fails, from consequence to root cause: when several failures arrive, the reason a
// person reads is the most fundamental one (a killed worker's peers report broken connections a
// moment before its own stream is seen to break).
enum class BuildFailureCause { kRankFailed = 1, kWorkerLost = 2, kStopped = 3 };

// Builds: Finalize -> plan -> admit -> place -> rendezvous -> one BuildStages call per worker ->
// aggregate progress -> READY, or FAILED with every rank released. Each build runs on its own
// thread; a failure of any rank, a lost worker, a delete, a cancel or a shutdown fails it and
// cancels its calls.
class BuildOrchestrator {
 public:
  explicit BuildOrchestrator(CoordinatorContext* context) : ctx_(context) {}

  // Admits and places the model, then starts its build (see coordinator.proto BuildModel).
  absl::StatusOr<google::longrunning::Operation> BuildModel(
      const gptbuilder::v1::BuildModelRequest& request) ABSL_LOCKS_EXCLUDED(ctx_->mu);

  // Fails the running build of `model` (of `build_id` when not empty) for `why`; false when it
  // has none. The build's thread cancels its calls, releases and records the failure.
  bool FailBuildLocked(const std::string& model, const std::string& build_id, absl::Status why,
                       BuildFailureCause cause) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);
  bool FailBuild(const std::string& model, const std::string& build_id, absl::Status why,
                 BuildFailureCause cause) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  // Fails every running build (the coordinator shuts down) and waits for their threads.
  void StopAll() ABSL_LOCKS_EXCLUDED(ctx_->mu);

 private:
  struct BuildJob;
  void RunBuild(const std::shared_ptr<BuildJob>& job) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  void OnRankProgress(BuildJob* job, const std::string& worker,
                      const gptbuilder::v1::RankProgress& progress) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  void FinishBuild(BuildJob* job) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  std::string NewBuildIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);

  CoordinatorContext* const ctx_;
  std::map<std::string, std::shared_ptr<BuildJob>> jobs_ ABSL_GUARDED_BY(ctx_->mu);  // by model
  int active_jobs_ ABSL_GUARDED_BY(ctx_->mu) = 0;
  uint64_t build_counter_ ABSL_GUARDED_BY(ctx_->mu) = 0;
};

// Model names: [a-z0-9] then up to 62 of [a-z0-9._-], ending in [a-z0-9].
bool IsValidModelName(const std::string& name);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_BUILD_ORCHESTRATOR_H_
