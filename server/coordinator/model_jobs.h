#ifndef GPTB_SERVER_COORDINATOR_MODEL_JOBS_H_
#define GPTB_SERVER_COORDINATOR_MODEL_JOBS_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/coordinator_context.h"

namespace gptb::coordinator {

// The jobs a READY model runs on its workers, one at a time: train steps and checkpoint saves.
class ModelJobs {
 public:
  explicit ModelJobs(CoordinatorContext* context) : ctx_(context) {}

  // Runs `request.steps()` train steps (at least one) on a READY model, calling `write` with
  // each step's result (rank 0's report, with the slowest rank's time). Stops when `write`
  // returns false (CANCELLED). NOT_FOUND, FAILED_PRECONDITION (not READY), ABORTED (already
  // training); RESOURCE_EXHAUSTED when a step of the requested sizes would not fit some rank's
  // slot (train/step_memory.h) and INVALID_ARGUMENT or FAILED_PRECONDITION from the ranks when
  // every rank rejects the request before communicating (sizes, batch, changed optimizer
  // settings): the model is untouched. When `cancelled` turns true (the client cancelled, its
  // deadline passed) or the model is released, the step in flight is aborted at its ranks' next
  // micro-batch; that, like any other failure of a step, leaves the ranks inconsistent: the
  // model becomes FAILED and is released.
  absl::Status TrainStep(const gptbuilder::v1::TrainStepRequest& request,
                         const std::function<bool(const gptbuilder::v1::TrainStepResult&)>& write,
                         const std::function<bool()>& cancelled) ABSL_LOCKS_EXCLUDED(ctx_->mu);
  // Saves a READY model (every rank writes its slices; see coordinator.proto). INVALID_ARGUMENT
  // for a bad path or format, NOT_FOUND, FAILED_PRECONDITION (not READY), ABORTED (training or
  // saving), and the workers' errors (ALREADY_EXISTS, ...). A failed save leaves the model READY.
  // When `cancelled` turns true the call returns CANCELLED without waiting for the workers.
  absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::SaveCheckpointRequest& request,
      const std::function<bool()>& cancelled = {}) ABSL_LOCKS_EXCLUDED(ctx_->mu);

  // What the model is busy with ("training", "saving a checkpoint"); nullopt when idle.
  std::optional<std::string> BusyWithLocked(const std::string& model) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);
  // The model lost ranks (`reason`): its job's calls are cancelled and the job fails naming it.
  void AbortLocked(const std::string& model, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);

 private:
  // A model's train step or checkpoint save in flight: what it is, and the calls of its
  // current round, cancelled when a worker is lost.
  struct Job {
    std::string what;  // "training", "saving a checkpoint"
    std::string build_id;
    WorkerAddresses addresses;
    std::shared_ptr<WorkerFanOut> calls;
    std::string lost;  // why the calls were cancelled
  };
  class Running;

  // Marks the READY model `name` busy with `what`, or says why it cannot be.
  absl::StatusOr<std::shared_ptr<Job>> StartLocked(const std::string& name, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);
  // One train step on every worker; OK with the step's result, or the status TrainStep returns.
  absl::StatusOr<gptbuilder::v1::TrainStepResult> RunStep(
      Job& job, const gptbuilder::v1::WorkerTrainStepRequest& request, int step,
      const std::function<bool()>& cancelled) ABSL_LOCKS_EXCLUDED(ctx_->mu);

  CoordinatorContext* const ctx_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(ctx_->mu);  // by model
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_MODEL_JOBS_H_
