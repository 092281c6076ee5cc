#include "server/coordinator/worker_connection.h"

#include "grpcpp/client_context.h"
#include "rpc/grpc_status.h"

namespace gptb::coordinator {

// The cancel function runs under the lock, so ClearCancel() guarantees it never runs after the
// call it cancels has returned (it is a non-blocking TryCancel).
void CallCanceller::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  if (cancel_) cancel_();
}

bool CallCanceller::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void CallCanceller::SetCancel(std::function<void()> cancel) {
  std::lock_guard<std::mutex> lock(mu_);
  cancel_ = std::move(cancel);
  if (cancelled_ && cancel_) cancel_();
}

void CallCanceller::ClearCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancel_ = nullptr;
}

namespace {

using gptbuilder::v1::Worker;

class GrpcWorkerConnection : public WorkerConnection {
 public:
  GrpcWorkerConnection(std::shared_ptr<grpc::Channel> channel, rpc::BearerToken token)
      : stub_(Worker::NewStub(channel)), token_(std::move(token)) {}

  absl::Status BuildStages(
      const gptbuilder::v1::BuildStagesRequest& request, absl::Time deadline,
      const std::function<void(const gptbuilder::v1::RankProgress&)>& on_progress,
      CallCanceller* canceller) override {
    grpc::ClientContext context;
    Prepare(&context, deadline);
    canceller->SetCancel([&context] { context.TryCancel(); });
    std::unique_ptr<grpc::ClientReader<gptbuilder::v1::BuildStagesEvent>> reader =
        stub_->BuildStages(&context, request);
    gptbuilder::v1::BuildStagesEvent event;
    while (reader->Read(&event)) on_progress(event.progress());
    grpc::Status status = reader->Finish();
    canceller->ClearCancel();
    return rpc::FromGrpcStatus(status);
  }

  absl::StatusOr<gptbuilder::v1::ReleaseModelResponse> ReleaseModel(
      const gptbuilder::v1::ReleaseModelRequest& request, absl::Time deadline) override {
    grpc::ClientContext context;
    Prepare(&context, deadline);
    gptbuilder::v1::ReleaseModelResponse response;
    absl::Status status = rpc::FromGrpcStatus(stub_->ReleaseModel(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> DescribeModel(
      const gptbuilder::v1::DescribeHeldModelRequest& request, absl::Time deadline) override {
    grpc::ClientContext context;
    Prepare(&context, deadline);
    gptbuilder::v1::DescribeHeldModelResponse response;
    absl::Status status = rpc::FromGrpcStatus(stub_->DescribeModel(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse> TrainStep(
      const gptbuilder::v1::WorkerTrainStepRequest& request, absl::Time deadline,
      CallCanceller* canceller) override {
    grpc::ClientContext context;
    Prepare(&context, deadline);
    canceller->SetCancel([&context] { context.TryCancel(); });
    gptbuilder::v1::WorkerTrainStepResponse response;
    grpc::Status status = stub_->TrainStep(&context, request, &response);
    canceller->ClearCancel();
    if (!status.ok()) return rpc::FromGrpcStatus(status);
    return response;
  }

  absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::WorkerSaveCheckpointRequest& request, absl::Time deadline,
      CallCanceller* canceller) override {
    grpc::ClientContext context;
    Prepare(&context, deadline);
    if (canceller != nullptr) canceller->SetCancel([&context] { context.TryCancel(); });
    gptbuilder::v1::WorkerSaveCheckpointResponse response;
    absl::Status status = rpc::FromGrpcStatus(stub_->SaveCheckpoint(&context, request, &response));
    if (canceller != nullptr) canceller->ClearCancel();
    if (!status.ok()) return status;
    return response;
  }

 private:
  void Prepare(grpc::ClientContext* context, absl::Time deadline) {
    context->set_deadline(absl::ToChronoTime(deadline));
    token_.Attach(context);
  }

  std::unique_ptr<Worker::Stub> stub_;
  rpc::BearerToken token_;
};

}  // namespace

std::shared_ptr<WorkerConnection> GrpcWorkerConnector::Connect(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connections_.find(address);
  if (it != connections_.end()) return it->second;
  auto connection =
      std::make_shared<GrpcWorkerConnection>(rpc::MakeChannel(address, credentials_), token_);
  connections_[address] = connection;
  return connection;
}

}  // namespace gptb::coordinator
