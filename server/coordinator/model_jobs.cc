#include "server/coordinator/model_jobs.h"

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint/checkpoint_directory.h"
#include "core/config/violations.h"
#include "core/train/step_memory.h"
#include "server/common/log.h"
#include "server/coordinator/model_preparation.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;

namespace {

// How long after a train step's first real failure the calls still running are cancelled: when
// a worker dies, its peers' ranks often report the broken connection before the dead worker's
// own call ends, and the dead worker is the cause worth naming.
constexpr absl::Duration kTrainFailureGrace = absl::Seconds(2);

// A train step's request refused by a rank before any communication (its checks of sizes,
// batch and optimizer settings): every rank refuses it alike and the model is unchanged.
bool IsRejection(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

// The worker a failed train step is blamed on; "" when every call succeeded. A call that failed
// outside any rank (workers prefix their ranks' errors with "rank N:") means the worker itself
// is gone: that is the cause. Otherwise the first call to fail, not counting cancellations;
// when there are only cancellations (a lost worker cancelled them), any cancelled one.
std::string BlamedWorker(const FanOutAnswers<gptbuilder::v1::WorkerTrainStepResponse>& answers) {
  for (const auto& [worker, answer] : answers.by_worker) {
    if (!answer.ok() && answer.status().code() != absl::StatusCode::kCancelled &&
        !absl::StartsWith(answer.status().message(), "rank ") && !IsRejection(answer.status())) {
      return worker;
    }
  }
  for (const std::string& worker : answers.end_order) {
    const absl::Status& status = answers.by_worker.at(worker).status();
    if (!status.ok() && status.code() != absl::StatusCode::kCancelled) return worker;
  }
  std::string cancelled;
  for (const auto& [worker, answer] : answers.by_worker) {
    if (!answer.ok()) cancelled = worker;
  }
  return cancelled;
}

// Polls `cancelled` (the client cancelled, or its deadline passed) while a round of worker calls
// runs, and calls `on_cancel` once when it turns true: a handler must not keep waiting on work
// its client no longer waits for.
class CancelWatcher {
 public:
  CancelWatcher(const std::function<bool()>& cancelled, std::function<void()> on_cancel)
      : thread_([this, &cancelled, on_cancel = std::move(on_cancel)] {
          MutexLock lock(&mu_);
          while (!over_) {
            if (cancelled && cancelled()) {
              fired_ = true;
              on_cancel();
              return;
            }
            done_.WaitFor(&mu_, absl::Milliseconds(50), [this] {
              mu_.AssertHeld();
              return over_;
            });
          }
        }) {}
  ~CancelWatcher() { Stop(); }
  // Ends the watch; whether `on_cancel` ran.
  bool Stop() {
    {
      MutexLock lock(&mu_);
      over_ = true;
    }
    done_.NotifyAll();
    if (thread_.joinable()) thread_.join();
    MutexLock lock(&mu_);
    return fired_;
  }

 private:
  Mutex mu_;
  CondVar done_;
  bool over_ ABSL_GUARDED_BY(mu_) = false;
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

// Ends a model job: whatever happened, the model is no longer busy.
class ModelJobs::Running {
 public:
  Running(ModelJobs* jobs, std::string name) : jobs_(jobs), name_(std::move(name)) {}
  ~Running() {
    MutexLock lock(&jobs_->ctx_->mu);
    jobs_->jobs_.erase(name_);
  }

 private:
  ModelJobs* const jobs_;
  const std::string name_;
};

std::optional<std::string> ModelJobs::BusyWithLocked(const std::string& model) const {
  auto it = jobs_.find(model);
  if (it == jobs_.end()) return std::nullopt;
  return it->second->what;
}

void ModelJobs::AbortLocked(const std::string& model, const std::string& reason) {
  auto it = jobs_.find(model);
  if (it == jobs_.end()) return;
  it->second->lost = reason;
  if (it->second->calls != nullptr) it->second->calls->CancelAll();
}

absl::StatusOr<std::shared_ptr<ModelJobs::Job>> ModelJobs::StartLocked(const std::string& name,
                                                                       const std::string& what) {
  const Model* model = ctx_->models.Find(name);
  if (model == nullptr) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  if (model->state() != Model::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' is ", ModelStateName(model->state()),
                     "; only a READY model can be ", what == "training" ? "trained" : "saved"));
  }
  if (std::optional<std::string> busy = BusyWithLocked(name); busy.has_value()) {
    return absl::AbortedError(absl::StrCat("model '", name, "' is busy ", *busy,
                                           " (one train or save call at a time); try again when "
                                           "it ends"));
  }
  auto job = std::make_shared<Job>();
  job->what = what;
  job->build_id = model->build_id();
  absl::StatusOr<WorkerAddresses> addresses = ctx_->AddressesOfLocked(*model);
  if (!addresses.ok()) return addresses.status();
  job->addresses = *std::move(addresses);
  jobs_[name] = job;
  return job;
}

absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> ModelJobs::SaveCheckpoint(
    const gptbuilder::v1::SaveCheckpointRequest& request, const std::function<bool()>& cancelled) {
  const std::string& name = request.model();
  config::Violations violations;
  if (name.empty()) violations.Add("model", "REQUIRED", "the name of a READY model to save");
  // The workers resolve the path (and enforce their own checkpoint roots); refuse here what
  // no worker would take.
  if (absl::Status path = checkpoint::CheckCheckpointPath(request.path()); !path.ok()) {
    for (const config::FieldViolation& v : config::ViolationsFromStatus(path)) {
      violations.Add(v.field, v.reason,
                     absl::StrCat(v.description,
                                  " (an absolute directory path visible to every "
                                  "worker)"));
    }
  }
  const std::string format = request.format().empty() ? "canonical" : request.format();
  if (format != "canonical" && format != "huggingface") {
    violations.Add("format", "INVALID_VALUE",
                   absl::StrCat("format must be canonical or huggingface, got '", format, "'"));
  }
  if (!request.hf_model_type().empty() && format != "huggingface") {
    violations.Add("hf_model_type", "INVALID_VALUE",
                   "hf_model_type applies only to format huggingface");
  }
  if (!violations.empty()) return violations.ToStatus();
  // The coordinator's --checkpoint-root confines saves too, even when a worker was started
  // without one (its own root is checked again there, after symlinks on its file system).
  if (!ctx_->options.checkpoint_root.empty()) {
    absl::Status inside = checkpoint::CheckReadPath(request.path(), ctx_->options.checkpoint_root);
    if (inside.code() == absl::StatusCode::kPermissionDenied) {
      return absl::PermissionDeniedError(absl::StrCat("path: ", inside.message()));
    }
  }
  std::shared_ptr<Job> job;
  auto calls = std::make_shared<WorkerFanOut>(ctx_->connector);
  {
    MutexLock lock(&ctx_->mu);
    absl::StatusOr<std::shared_ptr<Job>> started = StartLocked(name, "saving a checkpoint");
    if (!started.ok()) return started.status();
    job = *started;
    job->calls = calls;
  }
  Running running(this, name);
  gptbuilder::v1::WorkerSaveCheckpointRequest save;
  save.set_model(name);
  save.set_build_id(job->build_id);
  save.set_path(request.path());
  save.set_format(format);
  save.set_hf_model_type(request.hf_model_type());
  save.set_overwrite(request.overwrite());
  const absl::Time start = absl::Now();
  // Every worker at once: the ranks agree on the outcome among themselves (a rank that fails
  // makes every rank fail), so each call is left to finish.
  // A client that goes away (or whose deadline passes) is not waited for: the calls end and
  // the workers' ranks finish the save on their own (the checkpoint appears only if it
  // completes).
  CancelWatcher watcher(cancelled, [&calls] { calls->CancelAll(); });
  const FanOutAnswers<gptbuilder::v1::WorkerSaveCheckpointResponse> answers =
      calls->Collect<gptbuilder::v1::WorkerSaveCheckpointResponse>(
          job->addresses, start + ctx_->options.build_deadline,
          [&save](WorkerConnection& connection, absl::Time deadline, CallCanceller* canceller) {
            return connection.SaveCheckpoint(save, deadline, canceller);
          });
  watcher.Stop();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (std::optional<WorkerFailure> failed = answers.FirstFailure(); failed.has_value()) {
    // The ranks agree on failures: the others answer ABORTED naming the failing rank, whose own
    // worker's error is the one to show (ALREADY_EXISTS, PERMISSION_DENIED, ...).
    for (const auto& [worker, answer] : answers.by_worker) {
      if (!answer.ok() && answer.status().code() != absl::StatusCode::kAborted) {
        failed = WorkerFailure{worker, answer.status()};
        break;
      }
    }
    if (ctx_->metrics != nullptr) ctx_->metrics->CheckpointSaved(false, 0, seconds);
    return absl::Status(failed->status.code(),
                        absl::StrCat("saving model '", name, "' to ", request.path(), ": worker ",
                                     failed->worker, ": ", failed->status.message()));
  }
  gptbuilder::v1::SaveCheckpointResponse response;
  response.set_path(request.path());
  response.set_format(format);
  response.set_seconds(seconds);
  for (const auto& [worker, answer] : answers.by_worker) {
    for (const auto& rank : answer->ranks()) {
      response.set_bytes_written(response.bytes_written() + rank.bytes_written());
      response.set_files(std::max(response.files(), rank.files()));
    }
  }
  if (ctx_->metrics != nullptr) {
    ctx_->metrics->CheckpointSaved(true, response.bytes_written(), seconds);
  }
  server::Log(absl::StrCat("model '", name, "' saved to ", request.path(), " (", format, ", ",
                           response.bytes_written(), " bytes in ", seconds, " s)"));
  return response;
}

absl::Status ModelJobs::TrainStep(
    const gptbuilder::v1::TrainStepRequest& request,
    const std::function<bool(const gptbuilder::v1::TrainStepResult&)>& write,
    const std::function<bool()>& cancelled) {
  const std::string& name = request.model();
  config::Violations violations;
  if (name.empty()) violations.Add("model", "REQUIRED", "the name of a READY model to train");
  if (request.steps() < 0) {
    violations.Add("steps", "OUT_OF_RANGE",
                   absl::StrCat("steps must be >= 0 (0 runs one step), got ", request.steps()));
  }
  if (request.batch().source_case() == gptbuilder::v1::TrainBatch::SOURCE_NOT_SET) {
    violations.Add("batch", "REQUIRED",
                   "set one of batch.tokens, batch.synthetic_seed or batch.data_path");
  }
  if (!violations.empty()) {
    if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("rejected");
    return violations.ToStatus();
  }
  if (request.options().num_micro_batches() > train::kMaxMicroBatches) {
    if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("rejected");
    config::Violations too_many;
    too_many.Add("options.num_micro_batches", "LIMIT_EXCEEDED",
                 absl::StrCat("num_micro_batches ", request.options().num_micro_batches(),
                              " is over the limit of ", train::kMaxMicroBatches,
                              " per step (a fixed bound); run more steps instead"));
    return too_many.ToStatus();
  }
  std::shared_ptr<Job> job;
  Model model;
  std::vector<int64_t> budgets;
  {
    MutexLock lock(&ctx_->mu);
    absl::StatusOr<std::shared_ptr<Job>> started = StartLocked(name, "training");
    if (!started.ok()) return started.status();
    job = *started;
    model = *ctx_->models.Find(name);
    budgets.assign(model.world_size(), 0);
    for (const gptbuilder::v1::RankPlacement& p : model.placement()) {
      const gptbuilder::v1::WorkerInfo* w = ctx_->workers.Find(p.worker());
      if (w == nullptr || p.rank() < 0 || p.rank() >= model.world_size()) continue;
      for (const gptbuilder::v1::Slot& slot : w->slots()) {
        if (slot.index() == p.slot()) budgets[p.rank()] = slot.memory_bytes();
      }
    }
  }
  Running running(this, name);
  // What a step of these sizes needs on each rank, against its slot's budget, before any
  // worker is asked: 10^9-sequence micro-batches used to fail a rank with bad_alloc, and that
  // failed the model for everyone.
  {
    absl::StatusOr<plan::ModelPlan> plan = PlanFinalized(model.config(), model.ddp(), model.build(),
                                                         model.world_size(), ctx_->options.limits);
    if (!plan.ok()) return plan.status();
    const int64_t seq_length = request.options().has_seq_length() ? request.options().seq_length()
                                                                  : model.config().seq_length();
    // The request's own bounds first (the workers check them too): a sequence longer than the
    // model's is INVALID_ARGUMENT whatever memory it would take.
    if (seq_length < 1 || seq_length > model.config().seq_length()) {
      if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("rejected");
      config::Violations bad;
      bad.Add("options.seq_length", "OUT_OF_RANGE",
              absl::StrCat("options.seq_length ", seq_length, " is outside [1, ",
                           model.config().seq_length(), "], the model's seq_length"));
      return bad.ToStatus();
    }
    if (absl::Status fits = train::CheckStepMemory(*plan, budgets, request.options(),
                                                   std::max<int64_t>(seq_length, 1));
        !fits.ok()) {
      if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("rejected");
      return fits;
    }
  }

  gptbuilder::v1::WorkerTrainStepRequest step_request;
  step_request.set_model(name);
  step_request.set_build_id(job->build_id);
  *step_request.mutable_batch() = request.batch();
  *step_request.mutable_options() = request.options();
  const int steps = std::max(1, request.steps());
  for (int step = 0; step < steps; ++step) {
    if (cancelled()) {
      return absl::CancelledError(
          absl::StrCat("training of model '", name, "' was cancelled after ", step, " steps"));
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<gptbuilder::v1::TrainStepResult> result =
        RunStep(*job, step_request, step, cancelled);
    if (!result.ok()) return result.status();
    const double wall = absl::ToDoubleSeconds(absl::Now() - start);
    result->mutable_seconds()->set_rpc(std::max(0.0, wall - result->slowest_rank_seconds()));
    if (ctx_->metrics != nullptr) {
      ctx_->metrics->TrainStepDone(wall, result->tokens(),
                                   wall > 0 ? static_cast<double>(result->tokens()) / wall : 0.0,
                                   result->loss());
    }
    if (!write(*result)) {
      return absl::CancelledError(
          absl::StrCat("the caller went away after ", step + 1, " steps of model '", name, "'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<gptbuilder::v1::TrainStepResult> ModelJobs::RunStep(
    Job& job, const gptbuilder::v1::WorkerTrainStepRequest& request, int step,
    const std::function<bool()>& cancelled) {
  const std::string& name = request.model();
  // Every worker at once: the ranks meet in their collectives. A rejected request is rejected
  // by every worker before any communication, so rejections are let to finish (a rejection
  // can then be told from a failure); a real failure cancels the others after the grace.
  auto calls = std::make_shared<WorkerFanOut>(
      ctx_->connector,
      WorkerFanOut::Options{
          .cancel_after_failure = kTrainFailureGrace, .is_failure = [](const absl::Status& status) {
            return !status.ok() && status.code() != absl::StatusCode::kCancelled &&
                   !IsRejection(status);
          }});
  {
    MutexLock lock(&ctx_->mu);
    job.calls = calls;
    if (!job.lost.empty()) calls->CancelAll();
  }
  // A client that cancels, or whose deadline passes, aborts the step in flight: the calls are
  // cancelled and each worker stops its ranks at their next micro-batch. The ranks are then out
  // of step, so the model fails and is released below.
  CancelWatcher watcher(cancelled, [&] {
    {
      MutexLock lock(&ctx_->mu);
      if (job.lost.empty()) {
        job.lost =
            absl::StrCat("the TrainStep call was cancelled or passed its deadline during step ",
                         step, ", which aborted the step");
      }
    }
    calls->CancelAll();
  });
  const FanOutAnswers<gptbuilder::v1::WorkerTrainStepResponse> answers =
      calls->Collect<gptbuilder::v1::WorkerTrainStepResponse>(
          job.addresses, absl::Now() + ctx_->options.build_deadline,
          [&request](WorkerConnection& connection, absl::Time deadline, CallCanceller* canceller) {
            return connection.TrainStep(request, deadline, canceller);
          });
  const bool aborted = watcher.Stop();

  if (const std::string blamed = BlamedWorker(answers); !blamed.empty()) {
    const absl::Status& failure = answers.by_worker.at(blamed).status();
    std::string lost;
    {
      MutexLock lock(&ctx_->mu);
      lost = job.lost;
    }
    bool rejected = lost.empty();
    for (const auto& [worker, answer] : answers.by_worker) rejected &= IsRejection(answer.status());
    if (rejected) {
      // Every rank checks the same request the same way before communicating: the model is as
      // it was.
      if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("rejected");
      return absl::Status(failure.code(), absl::StrCat("train step rejected by worker ", blamed,
                                                       ": ", failure.message()));
    }
    if (ctx_->metrics != nullptr) ctx_->metrics->TrainStepFailed("failed");
    const std::string reason = lost.empty()
                                   ? absl::StrCat("train step ", step, " failed on worker ", blamed,
                                                  ": ", failure.message())
                                   : absl::StrCat("train step ", step, " failed: ", lost);
    std::optional<Release> release;
    {
      MutexLock lock(&ctx_->mu);
      const Model* model = ctx_->models.Find(name);
      if (model != nullptr && model->build_id() == job.build_id) {
        release = ctx_->MarkFailedLocked(name, reason, /*exclude_worker=*/"");
      }
    }
    ctx_->changed.NotifyAll();
    if (release.has_value()) {
      ctx_->ReleaseOnWorkers(*release, absl::Now() + ctx_->options.worker_rpc_timeout);
    }
    server::Log(absl::StrCat("model '", name, "': ", reason));
    return absl::Status(aborted        ? absl::StatusCode::kCancelled
                        : lost.empty() ? failure.code()
                                       : absl::StatusCode::kUnavailable,
                        absl::StrCat(reason,
                                     "; the model is FAILED and was released (its ranks' states "
                                     "diverged); build it again"));
  }

  std::map<int, gptbuilder::v1::TrainStepResult> ranks;
  for (const auto& [worker, answer] : answers.by_worker) {
    for (const auto& r : answer->ranks()) ranks[r.rank()] = r.result();
  }
  auto first = ranks.find(0);
  if (first == ranks.end()) {
    return absl::DataLossError(
        absl::StrCat("no worker reported rank 0 of model '", name, "' after train step ", step));
  }
  gptbuilder::v1::TrainStepResult result = first->second;
  double slowest = 0.0;
  for (const auto& [rank, r] : ranks) slowest = std::max(slowest, r.seconds().total());
  result.set_slowest_rank_seconds(slowest);
  return result;
}

}  // namespace gptb::coordinator
