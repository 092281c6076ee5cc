#include "server/coordinator/build_orchestrator.h"

#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/violations.h"
#include "rpc/grpc_status.h"
#include "server/common/log.h"
#include "server/coordinator/model_preparation.h"
#include "server/coordinator/operations.h"
#include "server/coordinator/placement.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;
using gptbuilder::v1::RankPlacement;
using gptbuilder::v1::RankProgress;

namespace {

// After a build's first failure, how long a more fundamental cause may still arrive before the
// calls still running are cancelled.
constexpr absl::Duration kFailureGrace = absl::Milliseconds(300);

absl::Status InvalidName(const std::string& name) {
  config::Violations violations;
  violations.Add("name", name.empty() ? "REQUIRED" : "INVALID_NAME",
                 name.empty() ? "a model name is required (--name)"
                              : absl::StrCat("'", config::Excerpt(name, 80),
                                             "' is not a valid model name: use 1-63 characters "
                                             "[a-z0-9._-], starting and ending with [a-z0-9]"));
  return violations.ToStatus();
}

// ALREADY_EXISTS naming the state of the model that holds `name`.
absl::Status NameTaken(ModelRegistry& models, const std::string& name, absl::Time now) {
  Model probe;
  probe.set_name(name);
  return models.Add(probe, "", now);
}

}  // namespace

bool IsValidModelName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// One running build: the request every worker gets (less its ranks), its calls, and the first
// failure.
struct BuildOrchestrator::BuildJob {
  explicit BuildJob(std::shared_ptr<WorkerConnector> connector)
      : calls(std::move(connector),
              WorkerFanOut::Options{.cancel_after_failure = kFailureGrace, .is_failure = {}}) {}

  std::string model;
  std::string build_id;
  gptbuilder::v1::BuildStagesRequest request;
  std::vector<RankPlacement> placement;
  absl::Time start;
  absl::Time dispatched;
  WorkerFanOut calls;

  Mutex mu;
  absl::Status failure ABSL_GUARDED_BY(mu);
  BuildFailureCause cause ABSL_GUARDED_BY(mu) = BuildFailureCause::kRankFailed;
  std::set<std::string> workers_started ABSL_GUARDED_BY(mu);
  std::set<int> ranks_done ABSL_GUARDED_BY(mu);

  // Records a failure unless a more fundamental one is already recorded; the calls still
  // running are cancelled (their workers release what they built) after a short grace in which
  // a more fundamental cause may still arrive.
  void Fail(absl::Status status, BuildFailureCause why) {
    {
      MutexLock lock(&mu);
      if (!failure.ok() && cause >= why) return;
      failure = std::move(status);
      cause = why;
    }
    calls.Fail();
  }
  absl::Status Failure() {
    MutexLock lock(&mu);
    return failure;
  }
};

std::string BuildOrchestrator::NewBuildIdLocked() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(absl::Hex(rng() & 0xffffffffffff, absl::kZeroPad12), "-", ++build_counter_);
}

absl::StatusOr<google::longrunning::Operation> BuildOrchestrator::BuildModel(
    const gptbuilder::v1::BuildModelRequest& request) {
  auto reject = [this](absl::Status status) {
    if (ctx_->metrics != nullptr) ctx_->metrics->BuildRejected(status.code());
    return status;
  };
  if (!IsValidModelName(request.name())) return reject(InvalidName(request.name()));
  const absl::Time start = absl::Now();
  {
    MutexLock lock(&ctx_->mu);
    if (ctx_->stopping) return absl::UnavailableError("the coordinator is shutting down");
    const Model* existing = ctx_->models.Find(request.name());
    if (existing != nullptr && !request.request_id().empty() &&
        *ctx_->models.RequestId(request.name()) == request.request_id()) {
      return OperationOf(*existing, ctx_->failures);  // an idempotent retry
    }
    if (existing != nullptr) return reject(NameTaken(ctx_->models, request.name(), start));
  }
  absl::StatusOr<PreparedModel> prepared = PrepareRequested(request, ctx_->options.limits);
  if (!prepared.ok()) return reject(prepared.status());
  const plan::ModelPlan& plan = *prepared->plan;
  if (!request.load_from().empty()) {
    if (absl::Status checked =
            CheckLoadFrom(request.load_from(), *prepared, ctx_->options.checkpoint_root);
        !checked.ok()) {
      return reject(checked);
    }
  }

  std::shared_ptr<BuildJob> job;
  Model model;
  {
    MutexLock lock(&ctx_->mu);
    if (const Model* existing = ctx_->models.Find(request.name()); existing != nullptr) {
      // Checked again: another call may have taken the name meanwhile.
      if (!request.request_id().empty() &&
          *ctx_->models.RequestId(request.name()) == request.request_id()) {
        return OperationOf(*existing, ctx_->failures);
      }
      return reject(NameTaken(ctx_->models, request.name(), start));
    }
    PlacementRequest placement_request{
        TensorParallelGroups(plan), RankBuildBytes(plan, request.for_training()), request.device()};
    absl::StatusOr<std::vector<RankPlacement>> placement =
        PlaceRanks(placement_request, ctx_->workers.Capacity());
    if (!placement.ok()) return reject(placement.status());

    model.set_name(request.name());
    *model.mutable_config() = prepared->finalized.model;
    *model.mutable_ddp() = prepared->finalized.ddp;
    *model.mutable_build() = prepared->finalized.build;
    model.set_world_size(prepared->world_size);
    model.set_load_from(request.load_from());
    for (const RankPlacement& p : *placement) *model.add_placement() = p;
    model.set_total_params(plan.TotalParameters());
    (*model.mutable_progress()->mutable_phase_seconds())["validate"] = prepared->validate_seconds;
    (*model.mutable_progress()->mutable_phase_seconds())["plan"] = prepared->plan_seconds;

    if (request.validate_only()) {
      google::longrunning::Operation op;
      op.set_name(absl::StrCat(kOperationPrefix, "validate-only"));
      op.set_done(true);
      op.mutable_response()->PackFrom(model);
      return op;
    }

    const std::string build_id = NewBuildIdLocked();
    model.set_build_id(build_id);
    model.set_operation(absl::StrCat(kOperationPrefix, build_id));
    model.set_state(Model::BUILDING);
    absl::Status added = ctx_->models.Add(model, request.request_id(), start);
    if (!added.ok()) return reject(added);
    for (const RankPlacement& p : model.placement()) ctx_->workers.Occupy(p, model.name());

    job = std::make_shared<BuildJob>(ctx_->connector);
    job->model = model.name();
    job->build_id = build_id;
    job->placement.assign(model.placement().begin(), model.placement().end());
    job->start = start;
    gptbuilder::v1::BuildStagesRequest& r = job->request;
    r.set_model(model.name());
    r.set_build_id(build_id);
    *r.mutable_config() = model.config();
    *r.mutable_ddp() = model.ddp();
    *r.mutable_build() = model.build();
    r.set_world_size(model.world_size());
    r.set_store_host(ctx_->rendezvous != nullptr ? ctx_->rendezvous->host() : "127.0.0.1");
    r.set_store_port(ctx_->rendezvous != nullptr ? ctx_->rendezvous->port() : 0);
    r.set_store_prefix(absl::StrCat("gptb/", model.name(), "/", build_id, "/"));
    r.set_timeout_ms(absl::ToInt64Milliseconds(ctx_->options.rank_timeout));
    r.set_load_from(model.load_from());
    jobs_[model.name()] = job;
    ++active_jobs_;
    if (ctx_->metrics != nullptr) {
      ctx_->metrics->ObservePhase("validate", prepared->validate_seconds);
      ctx_->metrics->ObservePhase("plan", prepared->plan_seconds);
    }
  }
  ctx_->changed.NotifyAll();
  server::Log(absl::StrCat("building model '", model.name(), "' (", model.operation(), ") on ",
                           model.world_size(), " ranks over ", WorkersOf(model).size(),
                           " workers"));
  std::thread([this, job] { RunBuild(job); }).detach();
  MutexLock lock(&ctx_->mu);
  const Model* current = ctx_->models.Find(request.name());
  return OperationOf(current != nullptr ? *current : model, ctx_->failures);
}

void BuildOrchestrator::RunBuild(const std::shared_ptr<BuildJob>& job) {
  // One BuildStages call per worker, each with the worker's ranks.
  std::map<std::string, std::vector<RankPlacement>> by_worker;
  for (const RankPlacement& p : job->placement) by_worker[p.worker()].push_back(p);
  WorkerAddresses addresses;
  {
    MutexLock lock(&ctx_->mu);
    for (const auto& [worker, ranks] : by_worker) {
      const gptbuilder::v1::WorkerInfo* w = ctx_->workers.Find(worker);
      addresses[worker] = w != nullptr ? w->address() : "";  // "": it left
    }
  }
  job->dispatched = absl::Now();
  job->calls.Run(
      addresses, absl::Now() + ctx_->options.build_deadline,
      [&](const std::string& worker, WorkerConnection* connection, absl::Time deadline,
          CallCanceller* canceller) {
        gptbuilder::v1::BuildStagesRequest request = job->request;
        std::vector<int> ranks;
        for (const RankPlacement& p : by_worker.at(worker)) {
          gptbuilder::v1::RankAssignment* a = request.add_ranks();
          a->set_rank(p.rank());
          a->set_slot(p.slot());
          ranks.push_back(p.rank());
        }
        absl::Status status = absl::UnavailableError(
            absl::StrCat("worker ", worker, " left before the build started"));
        if (connection != nullptr) {
          status = connection->BuildStages(
              request, deadline,
              [&](const RankProgress& progress) { OnRankProgress(job.get(), worker, progress); },
              canceller);
        }
        // A call we cancelled ends CANCELLED; anything else is this worker's own failure.
        if (!status.ok() &&
            !(canceller->cancelled() && status.code() == absl::StatusCode::kCancelled)) {
          const bool lost = status.code() == absl::StatusCode::kUnavailable;
          job->Fail(
              absl::Status(
                  status.code() == absl::StatusCode::kCancelled ? absl::StatusCode::kAborted
                                                                : status.code(),
                  absl::StrCat("worker ", worker, " (", addresses.at(worker), ") ",
                               lost ? "was lost while building ranks " : "failed building ranks ",
                               RankList(ranks), ": ", status.message())),
              lost ? BuildFailureCause::kWorkerLost : BuildFailureCause::kRankFailed);
        }
        return status;
      });
  FinishBuild(job.get());
}

void BuildOrchestrator::OnRankProgress(BuildJob* job, const std::string& worker,
                                       const RankProgress& progress) {
  absl::Status rank_failure;
  {
    MutexLock lock(&ctx_->mu);
    const Model* model = ctx_->models.Find(job->model);
    if (model == nullptr || model->build_id() != job->build_id) return;
    bool all_started = false;
    {
      MutexLock job_lock(&job->mu);
      if (job->workers_started.insert(worker).second) {
        all_started = job->workers_started.size() == WorkersOf(*model).size();
      }
      if (progress.has_result() && progress.result().code() == 0) {
        job->ranks_done.insert(progress.rank());
      }
    }
    if (all_started) {
      const double seconds = absl::ToDoubleSeconds(absl::Now() - job->dispatched);
      ctx_->models.SetPhaseSeconds(job->model, "rendezvous", seconds);
      if (ctx_->metrics != nullptr) ctx_->metrics->ObservePhase("rendezvous", seconds);
    }
    ctx_->models.UpdateRank(job->model, progress, absl::Now());
    if (progress.has_result() && progress.result().code() != 0) {
      rank_failure = rpc::FromRpcStatus(progress.result());
    }
  }
  ctx_->changed.NotifyAll();
  if (!rank_failure.ok()) {
    job->Fail(absl::Status(rank_failure.code(),
                           absl::StrCat("rank ", progress.rank(), " on worker ", worker,
                                        " failed: ", rank_failure.message())),
              BuildFailureCause::kRankFailed);
  }
}

void BuildOrchestrator::FinishBuild(BuildJob* job) {
  absl::Status failure = job->Failure();
  {
    MutexLock lock(&job->mu);
    if (failure.ok() && job->ranks_done.size() != job->placement.size()) {
      failure = absl::InternalError(absl::StrCat("the workers ended the build with ",
                                                 job->ranks_done.size(), " of ",
                                                 job->placement.size(), " ranks built"));
    }
  }
  std::optional<Release> release;
  std::string result = "ready";
  {
    MutexLock lock(&ctx_->mu);
    const Model* model = ctx_->models.Find(job->model);
    if (model != nullptr && model->build_id() == job->build_id &&
        model->state() == Model::BUILDING) {
      if (failure.ok()) {
        ctx_->models.Transition(job->model, Model::READY, "", absl::Now()).IgnoreError();
        if (ctx_->metrics != nullptr) {
          for (const auto& [phase, seconds] : model->progress().phase_seconds()) {
            if (phase != "validate" && phase != "plan" && phase != "rendezvous") {
              ctx_->metrics->ObservePhase(phase, seconds);
            }
          }
        }
      } else {
        result = failure.code() == absl::StatusCode::kCancelled ? "cancelled" : "failed";
        std::string reason(failure.message());
        if (failure.code() != absl::StatusCode::kCancelled) {
          absl::StrAppend(&reason,
                          "; every other rank was released; fix the cause and build again");
        }
        ctx_->models.Transition(job->model, Model::FAILED, reason, absl::Now()).IgnoreError();
        ctx_->failures[job->build_id] = failure;
        release = Release{job->model, job->build_id, WorkersOf(*model)};
      }
    } else if (!failure.ok()) {
      result = "cancelled";  // deleted (or replaced) while building; the deleter releases
    }
    auto it = jobs_.find(job->model);
    if (it != jobs_.end() && it->second->build_id == job->build_id) jobs_.erase(it);
  }
  ctx_->changed.NotifyAll();
  server::Log(absl::StrCat(
      "model '", job->model, "': build ", result, " after ",
      absl::FormatDuration(absl::Trunc(absl::Now() - job->start, absl::Milliseconds(1))),
      failure.ok() ? "" : absl::StrCat(": ", failure.message())));
  if (release.has_value()) {
    ctx_->ReleaseOnWorkers(*release, absl::Now() + ctx_->options.worker_rpc_timeout);
  }
  if (ctx_->metrics != nullptr) {
    ctx_->metrics->BuildFinished(result, absl::ToDoubleSeconds(absl::Now() - job->start));
  }
  // The build's rendezvous is over (every call ended): its keys go, so that the store does not
  // grow with every build (80 keys per 4-rank build) nor keep them readable.
  if (ctx_->rendezvous != nullptr) ctx_->rendezvous->DeletePrefix(job->request.store_prefix());
  // Last, and notified under the lock: once the count drops, StopAll may return and the
  // coordinator be destroyed.
  MutexLock lock(&ctx_->mu);
  --active_jobs_;
  ctx_->changed.NotifyAll();
}

bool BuildOrchestrator::FailBuildLocked(const std::string& model, const std::string& build_id,
                                        absl::Status why, BuildFailureCause cause) {
  auto it = jobs_.find(model);
  if (it == jobs_.end() || (!build_id.empty() && it->second->build_id != build_id)) return false;
  it->second->Fail(std::move(why), cause);
  return true;
}

bool BuildOrchestrator::FailBuild(const std::string& model, const std::string& build_id,
                                  absl::Status why, BuildFailureCause cause) {
  MutexLock lock(&ctx_->mu);
  return FailBuildLocked(model, build_id, std::move(why), cause);
}

void BuildOrchestrator::StopAll() {
  MutexLock lock(&ctx_->mu);
  for (const auto& [name, job] : jobs_) {
    job->Fail(absl::UnavailableError("the coordinator shut down during the build; build again"),
              BuildFailureCause::kStopped);
  }
  ctx_->changed.Wait(&ctx_->mu, [this] {
    ctx_->mu.AssertHeld();
    return active_jobs_ == 0;
  });
}

}  // namespace gptb::coordinator
