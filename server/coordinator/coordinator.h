#ifndef GPTB_SERVER_COORDINATOR_COORDINATOR_H_
#define GPTB_SERVER_COORDINATOR_COORDINATOR_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/config/limits.h"
#include "google/longrunning/operations.pb.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/model_registry.h"
#include "server/coordinator/rendezvous.h"
#include "server/coordinator/worker_connection.h"
#include "server/coordinator/worker_registry.h"

namespace gptb::coordinator {

struct CoordinatorOptions {
  // Workers heart-beat this often; one silent for `heartbeat_timeout` is LOST, which fails the
  // builds and models it holds ranks of.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(6);
  // The store and process-group timeout every rank builds with: how long a rank waits for a
  // peer that never comes (a dead worker) before it gives up and releases.
  absl::Duration rank_timeout = absl::Seconds(120);
  // The deadline of a whole build's BuildStages calls.
  absl::Duration build_deadline = absl::Hours(6);
  // Release and describe calls to workers.
  absl::Duration worker_rpc_timeout = absl::Seconds(30);
  // A model recovered after a restart fails when not every rank's worker re-registered by then.
  absl::Duration recovery_grace = absl::Seconds(60);
  absl::Duration sweep_period = absl::Milliseconds(100);
  // What one validate, plan or build request may ask for (core/config/limits.h).
  config::Limits limits;
  // When set (resolved), load_from must resolve inside it and save paths must lie inside it
  // (--checkpoint-root; the workers enforce their own).
  std::string checkpoint_root;
};

// The coordinator's logic, independent of gRPC serving: Finalize -> plan -> admit -> place ->
// rendezvous -> dispatch BuildStages -> aggregate progress -> record; worker registration,
// liveness and recovery after a restart. Every method is thread-safe and returns absl::Status
// codes as the API documents them (coordinator.proto).
class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, std::unique_ptr<Rendezvous> rendezvous,
              std::shared_ptr<WorkerConnector> connector, CoordinatorMetrics* metrics = nullptr);
  ~Coordinator();

  // Starts the liveness sweeper.
  void Start();
  // Cancels running builds (they fail and release), stops the sweeper and waits for both.
  void Shutdown();

  absl::StatusOr<gptbuilder::v1::ValidateConfigResponse> ValidateConfig(
      const gptbuilder::v1::ValidateConfigRequest& request);
  absl::StatusOr<gptbuilder::v1::PlanModelResponse> PlanModel(
      const gptbuilder::v1::PlanModelRequest& request);
  absl::StatusOr<google::longrunning::Operation> BuildModel(
      const gptbuilder::v1::BuildModelRequest& request);
  // Calls `write` with the model's state now and after every change, until READY, FAILED or
  // RELEASING (OK), `write` returns false or `cancelled` turns true (CANCELLED).
  absl::Status WatchBuild(const gptbuilder::v1::WatchBuildRequest& request,
                          const std::function<bool(const gptbuilder::v1::BuildEvent&)>& write,
                          const std::function<bool()>& cancelled);
  absl::StatusOr<gptbuilder::v1::Model> GetModel(const std::string& name) const;
  gptbuilder::v1::ListModelsResponse ListModels() const;
  absl::StatusOr<gptbuilder::v1::DeleteModelResponse> DeleteModel(const std::string& name,
                                                                  absl::Time deadline);
  absl::StatusOr<gptbuilder::v1::DescribeModelResponse> DescribeModel(const std::string& name,
                                                                      absl::Time deadline);
  gptbuilder::v1::ListWorkersResponse ListWorkers() const;
  // Runs `request.steps()` train steps (at least one) on a READY model, calling `write` with
  // each step's result (rank 0's report, with the slowest rank's time). Stops after the step in
  // flight when `write` returns false or `cancelled` turns true (CANCELLED). NOT_FOUND,
  // FAILED_PRECONDITION (not READY), ABORTED (already training); INVALID_ARGUMENT or
  // FAILED_PRECONDITION from the ranks when every rank rejects the request before communicating
  // (sizes, batch, changed optimizer settings): the model is untouched. Any other failure of a
  // step leaves the ranks inconsistent: the model becomes FAILED and is released.
  // Saves a READY model (every rank writes its slices; see coordinator.proto). INVALID_ARGUMENT
  // for a bad path or format, NOT_FOUND, FAILED_PRECONDITION (not READY), ABORTED (training or
  // saving), and the workers' errors (ALREADY_EXISTS, ...). A failed save leaves the model READY.
  absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::SaveCheckpointRequest& request);
  absl::Status TrainStep(const gptbuilder::v1::TrainStepRequest& request,
                         const std::function<bool(const gptbuilder::v1::TrainStepResult&)>& write,
                         const std::function<bool()>& cancelled);

  absl::StatusOr<gptbuilder::v1::RegisterWorkerResponse> RegisterWorker(
      const gptbuilder::v1::RegisterWorkerRequest& request);
  gptbuilder::v1::HeartbeatResponse Heartbeat(const gptbuilder::v1::HeartbeatRequest& request);

  // google.longrunning.Operations over builds ("operations/<build id>").
  absl::StatusOr<google::longrunning::Operation> GetOperation(const std::string& name) const;
  absl::StatusOr<google::longrunning::Operation> WaitOperation(
      const std::string& name, absl::Time deadline, const std::function<bool()>& cancelled);
  absl::Status CancelOperation(const std::string& name);

  // True while at least one worker is READY (the coordinator's readiness).
  bool HasReadyWorkers() const;
  CoordinatorSnapshot Snapshot() const;

 private:
  struct BuildJob;
  // A model's train step or checkpoint save in flight (one at a time): what it is, and its
  // worker calls, cancelled when a worker is lost.
  struct TrainCalls {
    std::string what;  // "training", "saving a checkpoint"
    std::string build_id;
    std::map<std::string, std::string> addresses;  // worker -> address
    std::vector<std::shared_ptr<CallCanceller>> calls;
    std::string lost;  // why the calls were cancelled
  };
  struct ModelJobDone;
  // Under mu_: marks the READY model `name` busy with `what`, or says why it cannot be.
  absl::StatusOr<std::shared_ptr<TrainCalls>> StartModelJobLocked(const std::string& name,
                                                                  const std::string& what);
  struct Release {
    std::string model;
    std::string build_id;
    std::vector<std::string> workers;
  };

  void SweepLoop();
  void RunBuild(std::shared_ptr<BuildJob> job);
  void OnRankProgress(BuildJob* job, const std::string& worker,
                      const gptbuilder::v1::RankProgress& progress);
  void FinishBuild(BuildJob* job);
  // Releases `release` on its workers (outside the lock), then frees its slots when the model
  // still has that build.
  void ReleaseOnWorkers(const Release& release, absl::Time deadline);
  // Under mu_: the model lost ranks (`reason`): fails its build, or marks it FAILED and returns
  // what to release.
  std::optional<Release> FailModelLocked(const std::string& model, const std::string& reason,
                                         const std::string& exclude_worker);
  google::longrunning::Operation OperationLocked(const gptbuilder::v1::Model& model) const;
  const gptbuilder::v1::Model* FindByBuildIdLocked(const std::string& build_id) const;
  std::string NewBuildId();

  const CoordinatorOptions options_;
  std::unique_ptr<Rendezvous> rendezvous_;
  std::shared_ptr<WorkerConnector> connector_;
  CoordinatorMetrics* metrics_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  WorkerRegistry workers_;
  ModelRegistry models_;
  std::map<std::string, std::shared_ptr<BuildJob>> jobs_;        // running builds, by model
  std::map<std::string, absl::Status> failures_;                 // by build id
  std::map<std::string, std::shared_ptr<TrainCalls>> training_;  // by model
  int active_jobs_ = 0;
  bool stopping_ = false;
  uint64_t build_counter_ = 0;
  std::thread sweeper_;
};

// Model names: [a-z0-9] then up to 62 of [a-z0-9._-], ending in [a-z0-9].
bool IsValidModelName(const std::string& name);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_COORDINATOR_H_
