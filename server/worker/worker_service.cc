#include "server/worker/worker_service.h"

#include "rpc/grpc_status.h"

namespace gptb::worker {

using rpc::ToGrpcStatus;

grpc::Status WorkerService::BuildStages(
    grpc::ServerContext* context, const gptbuilder::v1::BuildStagesRequest* request,
    grpc::ServerWriter<gptbuilder::v1::BuildStagesEvent>* writer) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  absl::StatusOr<std::shared_ptr<BuildSession>> session = holder_->StartBuild(*request);
  if (!session.ok()) return rpc::ToGrpcStatus(session.status());
  gptbuilder::v1::BuildStagesEvent event;
  while (true) {
    // The coordinator gave up (or died): stop the ranks; they release as they return.
    if (context->IsCancelled()) {
      (*session)->Cancel();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the coordinator cancelled the build");
    }
    switch ((*session)->Poll(event.mutable_progress(), std::chrono::milliseconds(100))) {
      case BuildSession::Next::kEvent:
        if (!writer->Write(event)) (*session)->Cancel();
        break;
      case BuildSession::Next::kIdle:
        break;
      case BuildSession::Next::kFinished:
        return rpc::ToGrpcStatus((*session)->status());
    }
  }
}

grpc::Status WorkerService::ReleaseModel(grpc::ServerContext* context,
                                         const gptbuilder::v1::ReleaseModelRequest* request,
                                         gptbuilder::v1::ReleaseModelResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  *response = holder_->Release(request->model(), request->build_id());
  return grpc::Status::OK;
}

grpc::Status WorkerService::DescribeModel(grpc::ServerContext* context,
                                          const gptbuilder::v1::DescribeHeldModelRequest* request,
                                          gptbuilder::v1::DescribeHeldModelResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> described =
      holder_->Describe(request->model());
  if (!described.ok()) return rpc::ToGrpcStatus(described.status());
  *response = *std::move(described);
  return grpc::Status::OK;
}

grpc::Status WorkerService::TrainStep(grpc::ServerContext* context,
                                      const gptbuilder::v1::WorkerTrainStepRequest* request,
                                      gptbuilder::v1::WorkerTrainStepResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse> stepped =
      jobs_.TrainStep(*request, [context] { return context->IsCancelled(); });
  if (!stepped.ok()) return rpc::ToGrpcStatus(stepped.status());
  *response = *std::move(stepped);
  return grpc::Status::OK;
}

grpc::Status WorkerService::SaveCheckpoint(
    grpc::ServerContext* context, const gptbuilder::v1::WorkerSaveCheckpointRequest* request,
    gptbuilder::v1::WorkerSaveCheckpointResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse> saved =
      jobs_.SaveCheckpoint(*request, [context] { return context->IsCancelled(); });
  if (!saved.ok()) return rpc::ToGrpcStatus(saved.status());
  *response = *std::move(saved);
  return grpc::Status::OK;
}

}  // namespace gptb::worker
