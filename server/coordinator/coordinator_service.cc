#include "server/coordinator/coordinator_service.h"

#include <chrono>

#include "google/protobuf/util/time_util.h"
#include "rpc/grpc_status.h"

namespace gptb::coordinator {
namespace {

using rpc::ToGrpcStatus;

// Sets *response from a StatusOr and converts the status.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return rpc::ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// Calls to workers made while serving `context` get less time than the caller gave us.
absl::Time FanOut(const grpc::ServerContext& context, absl::Duration budget) {
  return absl::FromChrono(rpc::FanOutDeadline(context, absl::ToChronoMilliseconds(budget)));
}

constexpr absl::Duration kFanOutBudget = absl::Seconds(60);

// A call whose client went away or whose deadline passed (while it waited for a thread, or
// while it was served) gets no work and no answer worth sending: the limits bound one request's
// work, this stops the work nobody waits for.
grpc::Status Abandoned(const grpc::ServerContext& context) {
  const bool expired = std::chrono::system_clock::now() >= context.deadline();
  return grpc::Status(
      expired ? grpc::StatusCode::DEADLINE_EXCEEDED : grpc::StatusCode::CANCELLED,
      expired ? "the call's deadline passed before it was answered" : "the call was cancelled");
}

}  // namespace

grpc::Status CoordinatorService::ValidateConfig(
    grpc::ServerContext* context, const gptbuilder::v1::ValidateConfigRequest* request,
    gptbuilder::v1::ValidateConfigResponse* response) {
  if (context->IsCancelled()) return Abandoned(*context);
  grpc::Status status = Reply(coordinator_->ValidateConfig(*request), response);
  return context->IsCancelled() ? Abandoned(*context) : status;
}

grpc::Status CoordinatorService::PlanModel(grpc::ServerContext* context,
                                           const gptbuilder::v1::PlanModelRequest* request,
                                           gptbuilder::v1::PlanDescription* response) {
  if (context->IsCancelled()) return Abandoned(*context);
  grpc::Status status = Reply(
      coordinator_->PlanModel(*request, [context] { return context->IsCancelled(); }), response);
  return context->IsCancelled() ? Abandoned(*context) : status;
}

grpc::Status CoordinatorService::BuildModel(grpc::ServerContext* context,
                                            const gptbuilder::v1::BuildModelRequest* request,
                                            google::longrunning::Operation* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return Reply(coordinator_->BuildModel(*request), response);
}

grpc::Status CoordinatorService::WatchBuild(
    grpc::ServerContext* context, const gptbuilder::v1::WatchBuildRequest* request,
    grpc::ServerWriter<gptbuilder::v1::BuildEvent>* writer) {
  return rpc::ToGrpcStatus(coordinator_->WatchBuild(
      *request, [writer](const gptbuilder::v1::BuildEvent& event) { return writer->Write(event); },
      [context] { return context->IsCancelled(); }));
}

grpc::Status CoordinatorService::SaveCheckpoint(
    grpc::ServerContext* context, const gptbuilder::v1::SaveCheckpointRequest* request,
    gptbuilder::v1::SaveCheckpointResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return Reply(coordinator_->SaveCheckpoint(*request, [context] { return context->IsCancelled(); }),
               response);
}

grpc::Status CoordinatorService::TrainStep(
    grpc::ServerContext* context, const gptbuilder::v1::TrainStepRequest* request,
    grpc::ServerWriter<gptbuilder::v1::TrainStepResult>* writer) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return rpc::ToGrpcStatus(coordinator_->TrainStep(
      *request,
      [writer](const gptbuilder::v1::TrainStepResult& result) { return writer->Write(result); },
      [context] { return context->IsCancelled(); }));
}

grpc::Status CoordinatorService::GetModel(grpc::ServerContext*,
                                          const gptbuilder::v1::GetModelRequest* request,
                                          gptbuilder::v1::Model* response) {
  return Reply(coordinator_->GetModel(request->name()), response);
}

grpc::Status CoordinatorService::ListModels(grpc::ServerContext*,
                                            const gptbuilder::v1::ListModelsRequest*,
                                            gptbuilder::v1::ListModelsResponse* response) {
  *response = coordinator_->ListModels();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DeleteModel(grpc::ServerContext* context,
                                             const gptbuilder::v1::DeleteModelRequest* request,
                                             gptbuilder::v1::DeleteModelResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return Reply(coordinator_->DeleteModel(request->name(), FanOut(*context, kFanOutBudget)),
               response);
}

grpc::Status CoordinatorService::DescribeModel(grpc::ServerContext* context,
                                               const gptbuilder::v1::DescribeModelRequest* request,
                                               gptbuilder::v1::DescribeModelResponse* response) {
  return Reply(coordinator_->DescribeModel(request->name(), FanOut(*context, kFanOutBudget)),
               response);
}

grpc::Status CoordinatorService::ListWorkers(grpc::ServerContext*,
                                             const gptbuilder::v1::ListWorkersRequest*,
                                             gptbuilder::v1::ListWorkersResponse* response) {
  *response = coordinator_->ListWorkers();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RegisterWorker(
    grpc::ServerContext* context, const gptbuilder::v1::RegisterWorkerRequest* request,
    gptbuilder::v1::RegisterWorkerResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return Reply(coordinator_->RegisterWorker(*request), response);
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context,
                                           const gptbuilder::v1::HeartbeatRequest* request,
                                           gptbuilder::v1::HeartbeatResponse* response) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  *response = coordinator_->Heartbeat(*request);
  return grpc::Status::OK;
}

grpc::Status OperationsService::GetOperation(
    grpc::ServerContext*, const google::longrunning::GetOperationRequest* request,
    google::longrunning::Operation* response) {
  return Reply(coordinator_->GetOperation(request->name()), response);
}

grpc::Status OperationsService::CancelOperation(
    grpc::ServerContext* context, const google::longrunning::CancelOperationRequest* request,
    google::protobuf::Empty*) {
  if (absl::Status auth = token_.Verify(*context); !auth.ok()) return rpc::ToGrpcStatus(auth);
  return rpc::ToGrpcStatus(coordinator_->CancelOperation(request->name()));
}

grpc::Status OperationsService::WaitOperation(
    grpc::ServerContext* context, const google::longrunning::WaitOperationRequest* request,
    google::longrunning::Operation* response) {
  // AIP-151: wait at most the request's timeout, and never past the call's deadline.
  absl::Duration timeout = absl::Seconds(60);
  if (request->has_timeout()) {
    timeout = absl::Nanoseconds(
        google::protobuf::util::TimeUtil::DurationToNanoseconds(request->timeout()));
  }
  return Reply(coordinator_->WaitOperation(request->name(), FanOut(*context, timeout),
                                           [context] { return context->IsCancelled(); }),
               response);
}

}  // namespace gptb::coordinator
