#ifndef GPTB_SERVER_WORKER_RANK_JOBS_H_
#define GPTB_SERVER_WORKER_RANK_JOBS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/train/train_step.h"
#include "gptbuilder/v1/worker.pb.h"
#include "server/worker/stage_holder.h"

namespace gptb::worker {

// Work that runs on every held rank of a model at once (one thread per rank, since the ranks
// meet in collectives): train steps now, checkpoint saves later. One job per model at a time.
// Per-rank state that lives as long as the held model (each rank's RankTrainer, with its
// optimizer) is kept here and dropped when the model is released. Thread-safe.
class RankJobs {
 public:
  // Registers itself as `holder`'s release listener; `holder` must outlive this object.
  explicit RankJobs(StageHolder* holder);

  // What a job sees of one rank.
  struct RankSlot {
    std::shared_ptr<model::RankModel> model;
    std::unique_ptr<train::RankTrainer> trainer;  // created by the first train step
    // The running job's abort flag: set when its call is cancelled or the model released, so
    // that a long train step stops at its next micro-batch instead of running on unobserved.
    std::shared_ptr<const std::atomic<bool>> abort;
  };
  using Job = std::function<absl::Status(int rank, RankSlot& slot)>;

  // Runs `job` on every held rank of `model` concurrently and waits for all of them. NOT_FOUND
  // / FAILED_PRECONDITION as StageHolder::Held; FAILED_PRECONDITION when `build_id` (if not
  // empty) is not the held build; ABORTED while another job of the model runs here. When
  // `cancelled` turns true (or the model is released) the job's abort flag is set
  // (RankSlot::abort, which a train step polls between micro-batches) and the call returns
  // CANCELLED at once; the ranks end on their own (a collective in flight cannot be interrupted;
  // the process-group timeout bounds it) and the model stays busy until they do. Otherwise OK,
  // or the lowest failing rank's error prefixed with its rank.
  absl::Status RunOnEveryRank(const std::string& model, const std::string& build_id,
                              const std::string& what, const Job& job,
                              const std::function<bool()>& cancelled);

  // One train step on every held rank of the request's model.
  absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse> TrainStep(
      const gptbuilder::v1::WorkerTrainStepRequest& request,
      const std::function<bool()>& cancelled);

  // Saves the request's model: every held rank writes its slices (core/checkpoint
  // SaveCheckpoint).
  absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse> SaveCheckpoint(
      const gptbuilder::v1::WorkerSaveCheckpointRequest& request,
      const std::function<bool()>& cancelled);

  // Forgets the model's per-rank state (its optimizers); a running job keeps what it uses
  // until it ends.
  void Drop(const std::string& model);

 private:
  struct Entry {
    std::string build_id;
    std::map<int, std::shared_ptr<RankSlot>> ranks;
    bool busy = false;
    std::shared_ptr<std::atomic<bool>> abort;  // the running job's
  };
  struct Shared {
    std::mutex mu;
    std::map<std::string, std::shared_ptr<Entry>> entries;  // by model
  };

  StageHolder* holder_;
  std::shared_ptr<Shared> shared_;
};

// core's step report as the API's message.
gptbuilder::v1::TrainStepResult TrainStepResultToProto(const train::TrainStepResult& result);

}  // namespace gptb::worker

#endif  // GPTB_SERVER_WORKER_RANK_JOBS_H_
