#ifndef GPTB_SERVER_COORDINATOR_COORDINATOR_H_
#define GPTB_SERVER_COORDINATOR_COORDINATOR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/longrunning/operations.pb.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/build_orchestrator.h"
#include "server/coordinator/coordinator_context.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/model_jobs.h"
#include "server/coordinator/operations.h"
#include "server/coordinator/rendezvous.h"
#include "server/coordinator/worker_connection.h"
#include "server/coordinator/worker_liveness.h"

namespace gptb::coordinator {

// The coordinator's logic, independent of gRPC serving, as one front for its parts: builds
// (BuildOrchestrator), train and save jobs (ModelJobs), worker liveness and recovery
// (WorkerLiveness), long-running operations (Operations), describe (model_description.h), and
// here the models' reads, watch and delete. Every method is thread-safe and returns absl::Status
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
  // `cancelled` (the client went away or its deadline passed) stops the work between its steps.
  absl::StatusOr<gptbuilder::v1::PlanDescription> PlanModel(
      const gptbuilder::v1::PlanModelRequest& request,
      const std::function<bool()>& cancelled = [] { return false; });
  absl::StatusOr<google::longrunning::Operation> BuildModel(
      const gptbuilder::v1::BuildModelRequest& request) {
    return builds_.BuildModel(request);
  }
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
  // See ModelJobs.
  absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::SaveCheckpointRequest& request,
      const std::function<bool()>& cancelled = {}) {
    return jobs_.SaveCheckpoint(request, cancelled);
  }
  absl::Status TrainStep(const gptbuilder::v1::TrainStepRequest& request,
                         const std::function<bool(const gptbuilder::v1::TrainStepResult&)>& write,
                         const std::function<bool()>& cancelled) {
    return jobs_.TrainStep(request, write, cancelled);
  }

  absl::StatusOr<gptbuilder::v1::RegisterWorkerResponse> RegisterWorker(
      const gptbuilder::v1::RegisterWorkerRequest& request) {
    return liveness_.RegisterWorker(request);
  }
  gptbuilder::v1::HeartbeatResponse Heartbeat(const gptbuilder::v1::HeartbeatRequest& request) {
    return liveness_.Heartbeat(request);
  }

  // google.longrunning.Operations over builds ("operations/<build id>").
  absl::StatusOr<google::longrunning::Operation> GetOperation(const std::string& name) const {
    return operations_.GetOperation(name);
  }
  absl::StatusOr<google::longrunning::Operation> WaitOperation(
      const std::string& name, absl::Time deadline, const std::function<bool()>& cancelled) {
    return operations_.WaitOperation(name, deadline, cancelled);
  }
  absl::Status CancelOperation(const std::string& name) {
    return operations_.CancelOperation(name);
  }

  // True while at least one worker is READY (the coordinator's readiness).
  bool HasReadyWorkers() const;
  // Follows HasReadyWorkers: called at once and on every change (see WorkerLiveness).
  void SetReadinessListener(std::function<void(bool)> listener) {
    liveness_.SetReadinessListener(std::move(listener));
  }
  CoordinatorSnapshot Snapshot() const;

 private:
  CoordinatorContext ctx_;
  BuildOrchestrator builds_;
  ModelJobs jobs_;
  WorkerLiveness liveness_;
  Operations operations_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_COORDINATOR_H_
