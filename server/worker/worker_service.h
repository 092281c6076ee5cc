#ifndef GPTB_SERVER_WORKER_WORKER_SERVICE_H_
#define GPTB_SERVER_WORKER_WORKER_SERVICE_H_

#include "gptbuilder/v1/worker.grpc.pb.h"
#include "rpc/auth.h"
#include "server/worker/rank_jobs.h"
#include "server/worker/stage_holder.h"

namespace gptb::worker {

// gptbuilder.v1.Worker over gRPC: translates to StageHolder. Every method needs the bearer
// token when one is configured (only the coordinator calls workers).
class WorkerService final : public gptbuilder::v1::Worker::Service {
 public:
  WorkerService(StageHolder* holder, rpc::BearerToken token)
      : holder_(holder), token_(std::move(token)), jobs_(holder) {}

  grpc::Status BuildStages(grpc::ServerContext* context,
                           const gptbuilder::v1::BuildStagesRequest* request,
                           grpc::ServerWriter<gptbuilder::v1::BuildStagesEvent>* writer) override;
  grpc::Status ReleaseModel(grpc::ServerContext* context,
                            const gptbuilder::v1::ReleaseModelRequest* request,
                            gptbuilder::v1::ReleaseModelResponse* response) override;
  grpc::Status DescribeModel(grpc::ServerContext* context,
                             const gptbuilder::v1::DescribeHeldModelRequest* request,
                             gptbuilder::v1::DescribeHeldModelResponse* response) override;
  grpc::Status TrainStep(grpc::ServerContext* context,
                         const gptbuilder::v1::WorkerTrainStepRequest* request,
                         gptbuilder::v1::WorkerTrainStepResponse* response) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext* context,
                              const gptbuilder::v1::WorkerSaveCheckpointRequest* request,
                              gptbuilder::v1::WorkerSaveCheckpointResponse* response) override;

 private:
  StageHolder* holder_;
  rpc::BearerToken token_;
  RankJobs jobs_;
};

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_WORKER_SERVICE_H_
