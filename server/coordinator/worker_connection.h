#ifndef GPTB_SERVER_COORDINATOR_WORKER_CONNECTION_H_
#define GPTB_SERVER_COORDINATOR_WORKER_CONNECTION_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gptbuilder/v1/worker.grpc.pb.h"
#include "rpc/auth.h"
#include "rpc/credentials.h"

namespace gptb::coordinator {

// Cancels one in-flight call from another thread (thread-safe, idempotent).
class CallCanceller {
 public:
  void Cancel();
  bool cancelled() const;
  // The connection registers how to cancel its call; runs at once when already cancelled.
  void SetCancel(std::function<void()> cancel);
  void ClearCancel();

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> cancel_;
};

// The coordinator's view of one worker's Worker service (an interface so that the coordinator's
// logic is tested with fakes).
class WorkerConnection {
 public:
  virtual ~WorkerConnection() = default;
  // Runs BuildStages, calling `on_progress` for every event, until the stream ends; returns its
  // final status. `canceller` aborts the call.
  virtual absl::Status BuildStages(
      const gptbuilder::v1::BuildStagesRequest& request, absl::Time deadline,
      const std::function<void(const gptbuilder::v1::RankProgress&)>& on_progress,
      CallCanceller* canceller) = 0;
  virtual absl::StatusOr<gptbuilder::v1::ReleaseModelResponse> ReleaseModel(
      const gptbuilder::v1::ReleaseModelRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> DescribeModel(
      const gptbuilder::v1::DescribeHeldModelRequest& request, absl::Time deadline) = 0;
  // One train step on the worker's ranks of a model; `canceller` aborts the call.
  virtual absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse> TrainStep(
      const gptbuilder::v1::WorkerTrainStepRequest& request, absl::Time deadline,
      CallCanceller* canceller) {
    (void)request, (void)deadline, (void)canceller;
    return absl::UnimplementedError("this worker connection cannot train");
  }
  // `canceller` (may be null) ends the call; the worker's ranks finish the save on their own.
  virtual absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::WorkerSaveCheckpointRequest& request, absl::Time deadline,
      CallCanceller* canceller) {
    (void)request, (void)deadline, (void)canceller;
    return absl::UnimplementedError("this worker connection cannot save checkpoints");
  }
};

class WorkerConnector {
 public:
  virtual ~WorkerConnector() = default;
  // A connection to the worker at `address` (HOST:PORT); may be cached.
  virtual std::shared_ptr<WorkerConnection> Connect(const std::string& address) = 0;
};

// Connections over gRPC with the daemon's TLS files and bearer token; one channel per address.
class GrpcWorkerConnector : public WorkerConnector {
 public:
  GrpcWorkerConnector(std::shared_ptr<grpc::ChannelCredentials> credentials, rpc::BearerToken token)
      : credentials_(std::move(credentials)), token_(std::move(token)) {}
  std::shared_ptr<WorkerConnection> Connect(const std::string& address) override;

 private:
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  rpc::BearerToken token_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<WorkerConnection>> connections_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_WORKER_CONNECTION_H_
