#include "server/worker/rank_jobs.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/canonical_checkpoint.h"

namespace gptb::worker {

namespace {

// Under the table's lock: a released model's running job stops at its next check.
template <typename Entries>
void AbortAndErase(Entries& entries, const std::string& model) {
  auto it = entries.find(model);
  if (it == entries.end()) return;
  if (it->second->abort != nullptr) *it->second->abort = true;
  entries.erase(it);
}

}  // namespace

RankJobs::RankJobs(StageHolder* holder) : holder_(holder), shared_(std::make_shared<Shared>()) {
  holder_->SetReleaseListener([shared = shared_](const std::string& model) {
    std::lock_guard<std::mutex> lock(shared->mu);
    AbortAndErase(shared->entries, model);
  });
}

void RankJobs::Drop(const std::string& model) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  AbortAndErase(shared_->entries, model);
}

absl::Status RankJobs::RunOnEveryRank(const std::string& model, const std::string& build_id,
                                      const std::string& what, const Job& job,
                                      const std::function<bool()>& cancelled) {
  absl::StatusOr<StageHolder::HeldRanks> held = holder_->Held(model);
  if (!held.ok()) return held.status();
  if (!build_id.empty() && held->build_id != build_id) {
    return absl::FailedPreconditionError(absl::StrCat("this worker holds build ", held->build_id,
                                                      " of model '", model, "', not ", build_id));
  }
  std::shared_ptr<Entry> entry;
  std::vector<std::pair<int, std::shared_ptr<RankSlot>>> slots;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    std::shared_ptr<Entry>& e = shared_->entries[model];
    if (e == nullptr || e->build_id != held->build_id) {
      e = std::make_shared<Entry>();
      e->build_id = held->build_id;
    }
    if (e->busy) {
      return absl::AbortedError(absl::StrCat("model '", model,
                                             "' is busy on this worker (a train step or save is "
                                             "still running); try again when it ends"));
    }
    e->busy = true;
    e->abort = std::make_shared<std::atomic<bool>>(false);
    entry = e;
    for (auto& [rank, rank_model] : held->ranks) {
      std::shared_ptr<RankSlot>& slot = entry->ranks[rank];
      if (slot == nullptr) slot = std::make_shared<RankSlot>();
      slot->model = rank_model;
      slot->abort = e->abort;
      slots.emplace_back(rank, slot);
    }
  }
  const std::shared_ptr<std::atomic<bool>> abort = entry->abort;

  // The ranks' threads own everything they touch: the call may return before they end.
  struct Run {
    std::mutex mu;
    std::condition_variable done;
    int remaining = 0;  // ranks not done (under mu)
    int holding = 0;    // ranks still holding the model (under shared mu)
    std::map<int, absl::Status> statuses;
  };
  auto run = std::make_shared<Run>();
  run->remaining = static_cast<int>(slots.size());
  run->holding = run->remaining;
  const int threads = holder_->threads_per_rank();
  for (auto& [rank, slot] : slots) {
    std::thread([run, shared = shared_, entry, rank = rank, slot = slot, job = Job(job), what,
                 threads]() mutable {
      // OpenMP keeps the thread count per thread: a fresh thread would take every core.
      if (threads > 0) at::set_num_threads(threads);
      absl::Status status;
      try {
        status = job(rank, *slot);
      } catch (const std::exception& e) {
        status = absl::InternalError(absl::StrCat(what, ": ", e.what()));
      }
      {
        // The references to the model go before anyone can see it idle (once it is, a release
        // frees it at once), and before the caller is told this rank is done (it may start the
        // next job at once).
        std::lock_guard<std::mutex> lock(shared->mu);
        slot.reset();
        if (--run->holding == 0) entry->busy = false;
        entry.reset();
      }
      // Nothing of the model's outlives the signal below (the last reference to the job table,
      // with the models of a released entry, may be this thread's).
      shared.reset();
      job = nullptr;
      {
        std::lock_guard<std::mutex> lock(run->mu);
        run->statuses[rank] = status;
        --run->remaining;
      }
      run->done.notify_all();
    }).detach();
  }
  std::unique_lock<std::mutex> lock(run->mu);
  while (run->remaining > 0) {
    if (cancelled() || abort->load()) {
      *abort = true;
      return absl::CancelledError(absl::StrCat(
          what, " of model '", model,
          "' was aborted (cancelled, past its deadline, or the model was released); its ranks "
          "stop at their next micro-batch"));
    }
    run->done.wait_for(lock, std::chrono::milliseconds(100));
  }
  for (const auto& [rank, status] : run->statuses) {
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("rank ", rank, ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse> RankJobs::TrainStep(
    const gptbuilder::v1::WorkerTrainStepRequest& request, const std::function<bool()>& cancelled) {
  auto step = std::make_shared<train::TrainRequest>();
  step->batch = request.batch();
  step->options = request.options();
  struct Results {
    std::mutex mu;
    std::map<int, train::TrainStepResult> by_rank;
  };
  auto results = std::make_shared<Results>();
  absl::Status status = RunOnEveryRank(
      request.model(), request.build_id(), "train step",
      [step, results](int rank, RankSlot& slot) -> absl::Status {
        if (slot.trainer == nullptr) {
          slot.trainer = std::make_unique<train::RankTrainer>(slot.model.get());
        }
        train::TrainRequest request = *step;
        request.cancelled = [abort = slot.abort] { return abort != nullptr && abort->load(); };
        absl::StatusOr<train::TrainStepResult> result = slot.trainer->Step(request);
        if (!result.ok()) return result.status();
        std::lock_guard<std::mutex> lock(results->mu);
        results->by_rank[rank] = *result;
        return absl::OkStatus();
      },
      cancelled);
  if (!status.ok()) return status;
  gptbuilder::v1::WorkerTrainStepResponse response;
  std::lock_guard<std::mutex> lock(results->mu);
  for (const auto& [rank, result] : results->by_rank) {
    gptbuilder::v1::RankTrainStepResult* out = response.add_ranks();
    out->set_rank(rank);
    *out->mutable_result() = TrainStepResultToProto(result);
  }
  return response;
}

absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse> RankJobs::SaveCheckpoint(
    const gptbuilder::v1::WorkerSaveCheckpointRequest& request,
    const std::function<bool()>& cancelled) {
  checkpoint::SaveOptions options;
  const std::string format = request.format().empty() ? "canonical" : request.format();
  std::optional<checkpoint::CheckpointFormat> parsed = checkpoint::ParseCheckpointFormat(format);
  if (!parsed.has_value() || *parsed == checkpoint::CheckpointFormat::kAuto) {
    return absl::InvalidArgumentError(
        absl::StrCat("format: '", format, "' is not canonical or huggingface"));
  }
  options.format = *parsed;
  options.hf_model_type = request.hf_model_type();
  options.overwrite = request.overwrite();
  options.root = holder_->checkpoint_root();
  struct Results {
    std::mutex mu;
    std::map<int, checkpoint::SaveStats> by_rank;
  };
  auto results = std::make_shared<Results>();
  absl::Status status = RunOnEveryRank(
      request.model(), request.build_id(), "checkpoint save",
      [options, path = request.path(), results](int rank, RankSlot& slot) -> absl::Status {
        absl::StatusOr<checkpoint::SaveStats> stats =
            checkpoint::SaveCheckpoint(*slot.model, path, options);
        if (!stats.ok()) return stats.status();
        std::lock_guard<std::mutex> lock(results->mu);
        results->by_rank[rank] = *stats;
        return absl::OkStatus();
      },
      cancelled);
  if (!status.ok()) return status;
  gptbuilder::v1::WorkerSaveCheckpointResponse response;
  std::lock_guard<std::mutex> lock(results->mu);
  for (const auto& [rank, stats] : results->by_rank) {
    gptbuilder::v1::RankSaveResult* out = response.add_ranks();
    out->set_rank(rank);
    out->set_bytes_written(static_cast<int64_t>(stats.bytes_written));
    out->set_files(stats.files);
    out->set_seconds(stats.seconds);
  }
  return response;
}

gptbuilder::v1::TrainStepResult TrainStepResultToProto(const train::TrainStepResult& result) {
  gptbuilder::v1::TrainStepResult out;
  out.set_iteration(result.iteration);
  out.set_loss(result.loss);
  out.set_mtp_loss(result.mtp_loss);
  out.set_aux_loss(result.aux_loss);
  out.set_grad_norm(result.grad_norm);
  out.set_learning_rate(result.learning_rate);
  out.set_loss_scale(result.loss_scale);
  out.set_skipped(result.skipped);
  out.set_tokens(result.tokens);
  out.set_tokens_per_second(result.tokens_per_second);
  gptbuilder::v1::StepTimings* seconds = out.mutable_seconds();
  seconds->set_data(result.seconds.data);
  seconds->set_forward_backward(result.seconds.forward_backward);
  seconds->set_p2p_wait(result.seconds.p2p_wait);
  seconds->set_grad_sync(result.seconds.grad_sync);
  seconds->set_optimizer(result.seconds.optimizer);
  seconds->set_total(result.seconds.total);
  return out;
}

}  // namespace gptb::worker
