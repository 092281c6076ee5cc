#ifndef GPTB_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_
#define GPTB_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_

#include "google/longrunning/operations.grpc.pb.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "rpc/auth.h"
#include "server/coordinator/coordinator.h"

namespace gptb::coordinator {

// gptbuilder.v1.Coordinator over gRPC: each handler checks the bearer token when the method
// mutates, calls Coordinator, and converts the status once.
class CoordinatorService final : public gptbuilder::v1::Coordinator::Service {
 public:
  CoordinatorService(Coordinator* coordinator, rpc::BearerToken token)
      : coordinator_(coordinator), token_(std::move(token)) {}

  grpc::Status ValidateConfig(grpc::ServerContext* context,
                              const gptbuilder::v1::ValidateConfigRequest* request,
                              gptbuilder::v1::ValidateConfigResponse* response) override;
  grpc::Status PlanModel(grpc::ServerContext* context,
                         const gptbuilder::v1::PlanModelRequest* request,
                         gptbuilder::v1::PlanDescription* response) override;
  grpc::Status BuildModel(grpc::ServerContext* context,
                          const gptbuilder::v1::BuildModelRequest* request,
                          google::longrunning::Operation* response) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext* context,
                              const gptbuilder::v1::SaveCheckpointRequest* request,
                              gptbuilder::v1::SaveCheckpointResponse* response) override;
  grpc::Status TrainStep(grpc::ServerContext* context,
                         const gptbuilder::v1::TrainStepRequest* request,
                         grpc::ServerWriter<gptbuilder::v1::TrainStepResult>* writer) override;
  grpc::Status WatchBuild(grpc::ServerContext* context,
                          const gptbuilder::v1::WatchBuildRequest* request,
                          grpc::ServerWriter<gptbuilder::v1::BuildEvent>* writer) override;
  grpc::Status GetModel(grpc::ServerContext* context,
                        const gptbuilder::v1::GetModelRequest* request,
                        gptbuilder::v1::Model* response) override;
  grpc::Status ListModels(grpc::ServerContext* context,
                          const gptbuilder::v1::ListModelsRequest* request,
                          gptbuilder::v1::ListModelsResponse* response) override;
  grpc::Status DeleteModel(grpc::ServerContext* context,
                           const gptbuilder::v1::DeleteModelRequest* request,
                           gptbuilder::v1::DeleteModelResponse* response) override;
  grpc::Status DescribeModel(grpc::ServerContext* context,
                             const gptbuilder::v1::DescribeModelRequest* request,
                             gptbuilder::v1::DescribeModelResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context,
                           const gptbuilder::v1::ListWorkersRequest* request,
                           gptbuilder::v1::ListWorkersResponse* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const gptbuilder::v1::RegisterWorkerRequest* request,
                              gptbuilder::v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const gptbuilder::v1::HeartbeatRequest* request,
                         gptbuilder::v1::HeartbeatResponse* response) override;

 private:
  Coordinator* coordinator_;
  rpc::BearerToken token_;
};

// google.longrunning.Operations over the coordinator's builds.
class OperationsService final : public google::longrunning::Operations::Service {
 public:
  OperationsService(Coordinator* coordinator, rpc::BearerToken token)
      : coordinator_(coordinator), token_(std::move(token)) {}

  grpc::Status GetOperation(grpc::ServerContext* context,
                            const google::longrunning::GetOperationRequest* request,
                            google::longrunning::Operation* response) override;
  grpc::Status CancelOperation(grpc::ServerContext* context,
                               const google::longrunning::CancelOperationRequest* request,
                               google::protobuf::Empty* response) override;
  grpc::Status WaitOperation(grpc::ServerContext* context,
                             const google::longrunning::WaitOperationRequest* request,
                             google::longrunning::Operation* response) override;

 private:
  Coordinator* coordinator_;
  rpc::BearerToken token_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_COORDINATOR_SERVICE_H_
