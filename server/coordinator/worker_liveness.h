#ifndef GPTB_SERVER_COORDINATOR_WORKER_LIVENESS_H_
#define GPTB_SERVER_COORDINATOR_WORKER_LIVENESS_H_

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/build_orchestrator.h"
#include "server/coordinator/coordinator_context.h"
#include "server/coordinator/model_jobs.h"

namespace gptb::coordinator {

// Worker registration and heartbeats, the sweep that marks silent workers LOST (failing what
// they held ranks of), and recovery after a coordinator restart: a re-registering worker reports
// the models it holds, which come back RECOVERING and turn READY once every rank is reported
// (or FAILED after the grace).
class WorkerLiveness {
 public:
  WorkerLiveness(CoordinatorContext* context, BuildOrchestrator* builds, ModelJobs* jobs)
      : ctx_(context), builds_(builds), jobs_(jobs) {}
  ~WorkerLiveness() { Stop(); }

  // Starts and stops the sweeper thread.
  void Start();
  void Stop() ABSL_LOCKS_EXCLUDED(ctx_->mu);

  absl::StatusOr<gptbuilder::v1::RegisterWorkerResponse> RegisterWorker(
      const gptbuilder::v1::RegisterWorkerRequest& request) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  gptbuilder::v1::HeartbeatResponse Heartbeat(const gptbuilder::v1::HeartbeatRequest& request)
      ABSL_LOCKS_EXCLUDED(ctx_->mu);

  // Called with true when the first worker is READY and with false when none is (the
  // coordinator's readiness), at once with the current value, and after every change; null
  // stops the calls. Calls never overlap.
  void SetReadinessListener(std::function<void(bool)> listener) ABSL_LOCKS_EXCLUDED(ctx_->mu);

 private:
  void SweepLoop() ABSL_LOCKS_EXCLUDED(ctx_->mu);
  // The model lost ranks (`reason`): fails its build, or aborts its job and marks it FAILED and
  // returns what to release (every worker but `exclude_worker`).
  std::optional<Release> LoseRanksLocked(const std::string& model, const std::string& reason,
                                         const std::string& exclude_worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);
  // Places the ranks `worker` reports holding of model `held` (recovering it when unknown);
  // false when the worker should release it instead.
  bool AdoptHeldLocked(const gptbuilder::v1::RegisterWorkerRequest& worker,
                       const gptbuilder::v1::HeldModel& held, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);
  void PublishReadiness() ABSL_LOCKS_EXCLUDED(ctx_->mu, readiness_mu_);

  CoordinatorContext* const ctx_;
  BuildOrchestrator* const builds_;
  ModelJobs* const jobs_;
  std::thread sweeper_;

  Mutex readiness_mu_ ABSL_ACQUIRED_BEFORE(ctx_->mu);
  std::function<void(bool)> readiness_listener_ ABSL_GUARDED_BY(readiness_mu_);
  std::optional<bool> published_ready_ ABSL_GUARDED_BY(readiness_mu_);
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_WORKER_LIVENESS_H_
