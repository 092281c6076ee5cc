#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checkpoint/checkpoint_directory.h"
#include "core/checkpoint/posix_file.h"
#include "core/config/violations.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/grpc_status.h"
#include "server/common/log.h"
#include "server/common/status_details.h"
#include "server/coordinator/model_preparation.h"
#include "server/coordinator/placement.h"

namespace gptb::coordinator {

using gptbuilder::v1::BuildEvent;
using gptbuilder::v1::Model;
using gptbuilder::v1::RankPlacement;
using gptbuilder::v1::RankProgress;

namespace {

constexpr char kOperationPrefix[] = "operations/";

google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

bool Terminal(Model::State state) {
  return state == Model::READY || state == Model::FAILED || state == Model::RELEASING;
}

std::string RankList(const std::vector<int>& ranks) {
  return absl::StrCat("[", absl::StrJoin(ranks, ", "), "]");
}

std::vector<int> RanksOn(const Model& model, const std::string& worker) {
  std::vector<int> ranks;
  for (const RankPlacement& p : model.placement()) {
    if (p.worker() == worker) ranks.push_back(p.rank());
  }
  return ranks;
}

// A train step's request refused by a rank before any communication (its checks of sizes,
// batch and optimizer settings): every rank refuses it alike and the model is unchanged.
bool IsRejection(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

std::vector<std::string> WorkersOf(const Model& model) {
  std::set<std::string> workers;
  for (const RankPlacement& p : model.placement()) workers.insert(p.worker());
  return {workers.begin(), workers.end()};
}

absl::Status InvalidName(const std::string& name) {
  config::Violations violations;
  violations.Add("name", name.empty() ? "REQUIRED" : "INVALID_NAME",
                 name.empty() ? "a model name is required (--name)"
                              : absl::StrCat("'", config::Excerpt(name, 80),
                                             "' is not a valid model name: use 1-63 characters "
                                             "[a-z0-9._-], starting and ending with [a-z0-9]"));
  return violations.ToStatus();
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

// One running build: the request every worker gets (less its ranks), the calls to cancel, and
// the first failure.
struct Coordinator::BuildJob {
  std::string model;
  std::string build_id;
  gptbuilder::v1::BuildStagesRequest request;
  std::vector<RankPlacement> placement;
  absl::Time start;
  absl::Time dispatched;

  std::mutex mu;
  std::condition_variable changed;
  absl::Status failure;
  int failure_rank = 0;  // the Cause of `failure`
  int calls_done = 0;
  std::vector<std::shared_ptr<CallCanceller>> calls;
  std::set<std::string> workers_started;
  std::set<int> ranks_done;

  // Why a build fails, from consequence to root cause: when several failures arrive, the reason
  // a person reads is the most fundamental one (a killed worker's peers report broken
  // connections a moment before its own stream is seen to break).
  enum Cause { kRankFailed = 1, kWorkerLost = 2, kStopped = 3 };

  // Records a failure; RunBuild then cancels every call (their workers release what they
  // built) after a short grace in which a more fundamental cause may still arrive.
  void Fail(absl::Status status, Cause cause) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure.ok() && failure_rank >= cause) return;
      failure = std::move(status);
      failure_rank = cause;
    }
    changed.notify_all();
  }
  void CancelCalls() {
    std::vector<std::shared_ptr<CallCanceller>> to_cancel;
    {
      std::lock_guard<std::mutex> lock(mu);
      to_cancel = calls;
    }
    for (const auto& call : to_cancel) call->Cancel();
  }
  absl::Status Failure() {
    std::lock_guard<std::mutex> lock(mu);
    return failure;
  }
};

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<Rendezvous> rendezvous,
                         std::shared_ptr<WorkerConnector> connector, CoordinatorMetrics* metrics)
    : options_(options),
      rendezvous_(std::move(rendezvous)),
      connector_(std::move(connector)),
      metrics_(metrics) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Start() {
  sweeper_ = std::thread([this] { SweepLoop(); });
}

void Coordinator::Shutdown() {
  std::vector<std::shared_ptr<BuildJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !sweeper_.joinable() && active_jobs_ == 0) return;
    stopping_ = true;
    for (const auto& [name, job] : jobs_) jobs.push_back(job);
  }
  changed_.notify_all();
  for (const auto& job : jobs) {
    job->Fail(absl::UnavailableError("the coordinator shut down during the build; build again"),
              BuildJob::kStopped);
  }
  if (sweeper_.joinable()) sweeper_.join();
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [this] { return active_jobs_ == 0; });
}

std::string Coordinator::NewBuildId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(absl::Hex(rng() & 0xffffffffffff, absl::kZeroPad12), "-", ++build_counter_);
}

// ---- Validate / plan ----------------------------------------------------------------------

absl::StatusOr<gptbuilder::v1::ValidateConfigResponse> Coordinator::ValidateConfig(
    const gptbuilder::v1::ValidateConfigRequest& request) {
  absl::StatusOr<PreparedModel> prepared =
      PrepareModel(request.config(), request.ddp(), request.build(), request.world_size(),
                   options_.limits);
  if (!prepared.ok()) return prepared.status();
  gptbuilder::v1::ValidateConfigResponse response;
  *response.mutable_config() = prepared->finalized.model;
  *response.mutable_ddp() = prepared->finalized.ddp;
  *response.mutable_build() = prepared->finalized.build;
  response.set_padded_vocab_size(prepared->plan->padded_vocab_size());
  return response;
}

absl::StatusOr<gptbuilder::v1::PlanModelResponse> Coordinator::PlanModel(
    const gptbuilder::v1::PlanModelRequest& request) {
  int first_rank = 0, num_ranks = 0;
  if (absl::Status page = ParsePlanPage(request, &first_rank, &num_ranks); !page.ok()) return page;
  absl::StatusOr<PreparedModel> prepared =
      PrepareModel(request.config(), request.ddp(), request.build(), request.world_size(),
                   options_.limits);
  if (!prepared.ok()) return prepared.status();
  return PlanToProto(*prepared->plan, first_rank, num_ranks);
}

// ---- Build ------------------------------------------------------------------------------------

absl::StatusOr<google::longrunning::Operation> Coordinator::BuildModel(
    const gptbuilder::v1::BuildModelRequest& request) {
  auto reject = [this](absl::Status status) {
    if (metrics_ != nullptr) metrics_->BuildRejected(status.code());
    return status;
  };
  if (!IsValidModelName(request.name())) return reject(InvalidName(request.name()));
  const absl::Time start = absl::Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
    const Model* existing = models_.Find(request.name());
    if (existing != nullptr && !request.request_id().empty() &&
        *models_.RequestId(request.name()) == request.request_id()) {
      return OperationLocked(*existing);  // an idempotent retry
    }
    if (existing != nullptr) {
      Model probe;
      probe.set_name(request.name());
      return reject(models_.Add(probe, "", start));  // ALREADY_EXISTS, naming its state
    }
  }
  absl::StatusOr<PreparedModel> prepared =
      PrepareModel(request.config(), request.ddp(), request.build(), request.world_size(),
                   options_.limits);
  if (!prepared.ok()) return reject(prepared.status());
  const plan::ModelPlan& plan = *prepared->plan;
  if (!request.load_from().empty()) {
    if (absl::Status checked =
            CheckLoadFrom(request.load_from(), *prepared, options_.checkpoint_root);
        !checked.ok()) {
      return reject(checked);
    }
  }

  std::shared_ptr<BuildJob> job;
  Model model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (models_.Find(request.name()) != nullptr) {
      // Checked again: another call may have taken the name meanwhile.
      if (!request.request_id().empty() &&
          *models_.RequestId(request.name()) == request.request_id()) {
        return OperationLocked(*models_.Find(request.name()));
      }
      Model probe;
      probe.set_name(request.name());
      return reject(models_.Add(probe, "", start));  // ALREADY_EXISTS, naming its state
    }
    PlacementRequest placement_request{TensorParallelGroups(plan), RankBuildBytes(plan)};
    absl::StatusOr<std::vector<RankPlacement>> placement =
        PlaceRanks(placement_request, workers_.Capacity());
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

    const std::string build_id = NewBuildId();
    model.set_build_id(build_id);
    model.set_operation(absl::StrCat(kOperationPrefix, build_id));
    model.set_state(Model::BUILDING);
    absl::Status added = models_.Add(model, request.request_id(), start);
    if (!added.ok()) return reject(added);
    for (const RankPlacement& p : model.placement()) workers_.Occupy(p, model.name());

    job = std::make_shared<BuildJob>();
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
    r.set_store_host(rendezvous_ != nullptr ? rendezvous_->host() : "127.0.0.1");
    r.set_store_port(rendezvous_ != nullptr ? rendezvous_->port() : 0);
    r.set_store_prefix(absl::StrCat("gptb/", model.name(), "/", build_id, "/"));
    r.set_timeout_ms(absl::ToInt64Milliseconds(options_.rank_timeout));
    r.set_load_from(model.load_from());
    jobs_[model.name()] = job;
    ++active_jobs_;
    if (metrics_ != nullptr) {
      metrics_->ObservePhase("validate", prepared->validate_seconds);
      metrics_->ObservePhase("plan", prepared->plan_seconds);
    }
  }
  server::Log(absl::StrCat("building model '", model.name(), "' (", model.operation(), ") on ",
                           model.world_size(), " ranks over ", WorkersOf(model).size(),
                           " workers"));
  std::thread([this, job] { RunBuild(job); }).detach();
  std::lock_guard<std::mutex> lock(mu_);
  const Model* current = models_.Find(request.name());
  return OperationLocked(current != nullptr ? *current : model);
}

void Coordinator::RunBuild(std::shared_ptr<BuildJob> job) {
  // One BuildStages call per worker, each on its own thread.
  std::map<std::string, std::vector<RankPlacement>> by_worker;
  for (const RankPlacement& p : job->placement) by_worker[p.worker()].push_back(p);
  std::map<std::string, std::string> addresses;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [worker, ranks] : by_worker) {
      const gptbuilder::v1::WorkerInfo* w = workers_.Find(worker);
      if (w != nullptr) addresses[worker] = w->address();
    }
  }
  job->dispatched = absl::Now();
  std::vector<std::thread> calls;
  for (const auto& [worker, ranks] : by_worker) {
    auto canceller = std::make_shared<CallCanceller>();
    {
      std::lock_guard<std::mutex> lock(job->mu);
      job->calls.push_back(canceller);
    }
    gptbuilder::v1::BuildStagesRequest request = job->request;
    for (const RankPlacement& p : ranks) {
      gptbuilder::v1::RankAssignment* a = request.add_ranks();
      a->set_rank(p.rank());
      a->set_slot(p.slot());
    }
    const std::string address = addresses.count(worker) ? addresses[worker] : "";
    calls.emplace_back([this, job, worker, address, request, canceller] {
      absl::Status status =
          absl::UnavailableError(absl::StrCat("worker ", worker, " left before the build started"));
      if (!address.empty()) {
        status = connector_->Connect(address)->BuildStages(
            request, absl::Now() + options_.build_deadline,
            [&](const RankProgress& progress) { OnRankProgress(job.get(), worker, progress); },
            canceller.get());
      }
      // A call we cancelled ends CANCELLED; anything else is this worker's own failure.
      if (!status.ok() &&
          !(canceller->cancelled() && status.code() == absl::StatusCode::kCancelled)) {
        std::vector<int> ranks;
        for (const auto& a : request.ranks()) ranks.push_back(a.rank());
        const bool lost = status.code() == absl::StatusCode::kUnavailable;
        job->Fail(
            absl::Status(
                status.code() == absl::StatusCode::kCancelled ? absl::StatusCode::kAborted
                                                              : status.code(),
                absl::StrCat("worker ", worker, " (", address, ") ",
                             lost ? "was lost while building ranks " : "failed building ranks ",
                             RankList(ranks), ": ", status.message())),
            lost ? BuildJob::kWorkerLost : BuildJob::kRankFailed);
      }
      {
        std::lock_guard<std::mutex> lock(job->mu);
        ++job->calls_done;
      }
      job->changed.notify_all();
    });
  }
  // Wait for the calls to end or for a failure; on a failure, give a more fundamental cause a
  // moment to arrive, then cancel the rest.
  const int num_calls = static_cast<int>(calls.size());
  {
    std::unique_lock<std::mutex> lock(job->mu);
    job->changed.wait(lock, [&] { return job->calls_done == num_calls || !job->failure.ok(); });
    if (job->calls_done < num_calls) {
      job->changed.wait_for(lock, std::chrono::milliseconds(300),
                            [&] { return job->calls_done == num_calls; });
    }
  }
  if (!job->Failure().ok()) job->CancelCalls();
  for (std::thread& t : calls) t.join();
  FinishBuild(job.get());
}

void Coordinator::OnRankProgress(BuildJob* job, const std::string& worker,
                                 const RankProgress& progress) {
  absl::Status rank_failure;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* model = models_.Find(job->model);
    if (model == nullptr || model->build_id() != job->build_id) return;
    bool all_started = false;
    {
      std::lock_guard<std::mutex> job_lock(job->mu);
      if (job->workers_started.insert(worker).second) {
        all_started = job->workers_started.size() == WorkersOf(*model).size();
      }
      if (progress.has_result() && progress.result().code() == 0) {
        job->ranks_done.insert(progress.rank());
      }
    }
    if (all_started) {
      const double seconds = absl::ToDoubleSeconds(absl::Now() - job->dispatched);
      models_.SetPhaseSeconds(job->model, "rendezvous", seconds);
      if (metrics_ != nullptr) metrics_->ObservePhase("rendezvous", seconds);
    }
    models_.UpdateRank(job->model, progress, absl::Now());
    if (progress.has_result() && progress.result().code() != 0) {
      rank_failure = server::FromRpcStatus(progress.result());
    }
  }
  changed_.notify_all();
  if (!rank_failure.ok()) {
    job->Fail(absl::Status(rank_failure.code(),
                           absl::StrCat("rank ", progress.rank(), " on worker ", worker,
                                        " failed: ", rank_failure.message())),
              BuildJob::kRankFailed);
  }
}

void Coordinator::FinishBuild(BuildJob* job) {
  absl::Status failure = job->Failure();
  {
    std::lock_guard<std::mutex> lock(job->mu);
    if (failure.ok() && job->ranks_done.size() != job->placement.size()) {
      failure = absl::InternalError(absl::StrCat("the workers ended the build with ",
                                                 job->ranks_done.size(), " of ",
                                                 job->placement.size(), " ranks built"));
    }
  }
  std::optional<Release> release;
  std::string result = "ready";
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* model = models_.Find(job->model);
    if (model != nullptr && model->build_id() == job->build_id &&
        model->state() == Model::BUILDING) {
      if (failure.ok()) {
        models_.Transition(job->model, Model::READY, "", absl::Now()).IgnoreError();
        if (metrics_ != nullptr) {
          for (const auto& [phase, seconds] : model->progress().phase_seconds()) {
            if (phase != "validate" && phase != "plan" && phase != "rendezvous") {
              metrics_->ObservePhase(phase, seconds);
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
        models_.Transition(job->model, Model::FAILED, reason, absl::Now()).IgnoreError();
        failures_[job->build_id] = failure;
        release = Release{job->model, job->build_id, WorkersOf(*model)};
      }
    } else if (!failure.ok()) {
      result = "cancelled";  // deleted (or replaced) while building; the deleter releases
    }
    auto it = jobs_.find(job->model);
    if (it != jobs_.end() && it->second->build_id == job->build_id) jobs_.erase(it);
  }
  changed_.notify_all();
  server::Log(absl::StrCat(
      "model '", job->model, "': build ", result, " after ",
      absl::FormatDuration(absl::Trunc(absl::Now() - job->start, absl::Milliseconds(1))),
      failure.ok() ? "" : absl::StrCat(": ", failure.message())));
  if (release.has_value()) ReleaseOnWorkers(*release, absl::Now() + options_.worker_rpc_timeout);
  if (metrics_ != nullptr) {
    metrics_->BuildFinished(result, absl::ToDoubleSeconds(absl::Now() - job->start));
  }
  // Last, and notified under the lock: once the count drops, Shutdown may return and the
  // coordinator be destroyed.
  std::lock_guard<std::mutex> lock(mu_);
  --active_jobs_;
  changed_.notify_all();
}

void Coordinator::ReleaseOnWorkers(const Release& release, absl::Time deadline) {
  std::vector<std::pair<std::string, std::string>> targets;  // worker, address
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& worker : release.workers) {
      if (!workers_.IsReady(worker)) continue;  // a lost worker releases when it re-registers
      targets.emplace_back(worker, workers_.Find(worker)->address());
    }
  }
  std::vector<std::thread> calls;
  for (const auto& [worker, address] : targets) {
    calls.emplace_back([this, &release, deadline, address = address] {
      gptbuilder::v1::ReleaseModelRequest request;
      request.set_model(release.model);
      request.set_build_id(release.build_id);
      // A failed release is retried through heartbeat reconciliation.
      connector_->Connect(address)->ReleaseModel(request, deadline).status().IgnoreError();
    });
  }
  for (std::thread& t : calls) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  const Model* model = models_.Find(release.model);
  if (model == nullptr || model->build_id() == release.build_id) {
    workers_.FreeModel(release.model);
  }
}

// ---- Watch / get / list ---------------------------------------------------------------------

absl::Status Coordinator::WatchBuild(const gptbuilder::v1::WatchBuildRequest& request,
                                     const std::function<bool(const BuildEvent&)>& write,
                                     const std::function<bool()>& cancelled) {
  uint64_t seen = 0;
  uint64_t rank_cursor = 0;
  while (true) {
    std::vector<BuildEvent> events;
    bool terminal = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait_for(lock, std::chrono::milliseconds(200),
                        [&] { return models_.Version(request.name()) != seen || stopping_; });
      if (cancelled()) return absl::CancelledError("the watch was cancelled");
      const Model* model = models_.Find(request.name());
      if (model == nullptr) {
        return absl::NotFoundError(seen == 0
                                       ? absl::StrCat("model '", request.name(), "' not found")
                                       : absl::StrCat("model '", request.name(), "' was released"));
      }
      if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
      const uint64_t version = models_.Version(request.name());
      if (version == seen) continue;
      seen = version;
      if (request.rank_events()) {
        for (const RankProgress& progress : models_.RankEventsSince(request.name(), &rank_cursor)) {
          BuildEvent event;
          event.set_model(model->name());
          *event.mutable_time() = Now();
          event.set_state(model->state());
          *event.mutable_progress() = model->progress();
          *event.mutable_rank() = progress;
          events.push_back(std::move(event));
        }
      }
      BuildEvent event;
      event.set_model(model->name());
      *event.mutable_time() = Now();
      event.set_state(model->state());
      event.set_reason(model->reason());
      *event.mutable_progress() = model->progress();
      events.push_back(std::move(event));
      terminal = Terminal(model->state());
    }
    for (const BuildEvent& event : events) {
      if (!write(event)) return absl::CancelledError("the watcher went away");
    }
    if (terminal) return absl::OkStatus();
  }
}

absl::StatusOr<Model> Coordinator::GetModel(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Model* model = models_.Find(name);
  if (model == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' not found; `gptb models` lists the models"));
  }
  return *model;
}

gptbuilder::v1::ListModelsResponse Coordinator::ListModels() const {
  std::lock_guard<std::mutex> lock(mu_);
  gptbuilder::v1::ListModelsResponse response;
  for (Model& model : models_.List()) *response.add_models() = std::move(model);
  return response;
}

gptbuilder::v1::ListWorkersResponse Coordinator::ListWorkers() const {
  std::lock_guard<std::mutex> lock(mu_);
  gptbuilder::v1::ListWorkersResponse response;
  for (gptbuilder::v1::WorkerInfo& worker : workers_.List())
    *response.add_workers() = std::move(worker);
  return response;
}

// ---- Delete / describe ----------------------------------------------------------------------

absl::StatusOr<gptbuilder::v1::DeleteModelResponse> Coordinator::DeleteModel(
    const std::string& name, absl::Time deadline) {
  std::shared_ptr<BuildJob> job;
  Release release;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* model = models_.Find(name);
    if (model == nullptr) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
    }
    if (model->state() == Model::RELEASING) {
      return absl::AbortedError(absl::StrCat("model '", name, "' is already being released"));
    }
    if (auto busy = training_.find(name); busy != training_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", name, "' is busy ", busy->second->what,
                       "; cancel its TrainStep call (it stops after the step in flight) or wait "
                       "for the save, then release it"));
    }
    release = Release{name, model->build_id(), WorkersOf(*model)};
    auto it = jobs_.find(name);
    if (it != jobs_.end()) job = it->second;
    models_.Transition(name, Model::RELEASING, "released by request", absl::Now()).IgnoreError();
  }
  changed_.notify_all();
  if (job != nullptr) {
    job->Fail(absl::CancelledError("the model was deleted while it was building"),
              BuildJob::kStopped);
  }
  server::Log(absl::StrCat("releasing model '", name, "'"));
  ReleaseOnWorkers(release, deadline);
  gptbuilder::v1::DeleteModelResponse response;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* model = models_.Find(name);
    if (model != nullptr && model->build_id() == release.build_id) {
      *response.mutable_model() = *model;
      models_.Remove(name);
      failures_.erase(release.build_id);
    }
  }
  changed_.notify_all();
  return response;
}

absl::StatusOr<gptbuilder::v1::DescribeModelResponse> Coordinator::DescribeModel(
    const std::string& name, absl::Time deadline) {
  Model model;
  std::map<std::string, std::string> addresses;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* found = models_.Find(name);
    if (found == nullptr) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
    if (found->state() != Model::READY) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "' is ", ModelStateName(found->state()),
          "; describe reads the stages of a READY model (`gptb watch ", name, "` follows it)"));
    }
    model = *found;
    for (const std::string& worker : WorkersOf(model)) {
      const gptbuilder::v1::WorkerInfo* w = workers_.Find(worker);
      if (w == nullptr) return absl::UnavailableError(absl::StrCat("worker ", worker, " is gone"));
      addresses[worker] = w->address();
    }
  }
  absl::StatusOr<plan::ModelPlan> plan =
      PlanFinalized(model.config(), model.ddp(), model.build(), model.world_size(),
                    options_.limits);
  if (!plan.ok()) return plan.status();

  // Ask every worker at once.
  std::map<std::string, absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse>> answers;
  for (const auto& [worker, address] : addresses) answers.emplace(worker, absl::UnknownError(""));
  {
    std::vector<std::thread> calls;
    for (auto& [worker, answer] : answers) {
      calls.emplace_back([&, address = addresses[worker], answer = &answer] {
        gptbuilder::v1::DescribeHeldModelRequest request;
        request.set_model(name);
        *answer = connector_->Connect(address)->DescribeModel(request, deadline);
      });
    }
    for (std::thread& t : calls) t.join();
  }
  std::map<int, std::pair<std::string, const gptbuilder::v1::HeldRankDescription*>> ranks;
  for (const auto& [worker, answer] : answers) {
    if (!answer.ok()) {
      return absl::Status(
          answer.status().code(),
          absl::StrCat("describing the ranks on worker ", worker, ": ", answer.status().message()));
    }
    for (const auto& rank : answer->ranks()) ranks[rank.rank()] = {worker, &rank};
  }

  gptbuilder::v1::DescribeModelResponse response;
  *response.mutable_model() = model;
  response.set_padded_vocab_size(plan->padded_vocab_size());
  response.set_world_size(model.world_size());
  const size_t num_stages = plan->stages().size();
  std::vector<std::optional<gptbuilder::v1::StageDescription>> stages(num_stages);
  std::set<int> inconsistent;
  for (int r = 0; r < model.world_size(); ++r) {
    auto it = ranks.find(r);
    if (it == ranks.end()) {
      return absl::DataLossError(
          absl::StrCat("no worker reports holding rank ", r, " of model '", name, "'"));
    }
    const auto& [worker, held] = it->second;
    const plan::RankPlan rank_plan = plan->Rank(r);
    gptbuilder::v1::RankSummary* summary = response.add_ranks();
    summary->set_rank(r);
    summary->set_worker(worker);
    summary->set_slot(held->slot());
    summary->set_device(held->device());
    summary->set_parameter_bytes(held->parameter_bytes());
    summary->set_gradient_bytes(held->gradient_bytes());
    *summary->mutable_phase_seconds() = held->phase_seconds();
    if (held->stages_size() != static_cast<int>(rank_plan.stages.size())) {
      return absl::DataLossError(absl::StrCat("rank ", r, " holds ", held->stages_size(),
                                              " model chunks; the plan has ",
                                              rank_plan.stages.size()));
    }
    for (int chunk = 0; chunk < held->stages_size(); ++chunk) {
      const int index = rank_plan.stages[chunk];
      summary->add_stages(index);
      const gptbuilder::v1::StageDescription& stage = held->stages(chunk);
      if (!stages[index].has_value()) {
        stages[index] = stage;
        continue;
      }
      // A data-parallel replica: every checksum must match the first holder's.
      const auto& first = *stages[index];
      bool same = first.params_size() == stage.params_size();
      for (int i = 0; same && i < stage.params_size(); ++i) {
        same = first.params(i).checksum() == stage.params(i).checksum();
      }
      if (!same) inconsistent.insert(index);
    }
  }
  for (size_t i = 0; i < num_stages; ++i) {
    if (!stages[i].has_value()) {
      return absl::DataLossError(absl::StrCat("no rank holds stage ", i, " of the plan"));
    }
    *response.add_stages() = *stages[i];
  }
  for (int index : inconsistent) response.add_inconsistent_stages(index);
  return response;
}

// ---- Training and checkpoints ----------------------------------------------------------------

// Ends a model job: whatever happened, the model is no longer busy.
struct Coordinator::ModelJobDone {
  Coordinator* self;
  std::string name;
  ~ModelJobDone() {
    std::lock_guard<std::mutex> lock(self->mu_);
    self->training_.erase(name);
  }
};

absl::StatusOr<std::shared_ptr<Coordinator::TrainCalls>> Coordinator::StartModelJobLocked(
    const std::string& name, const std::string& what) {
  const Model* model = models_.Find(name);
  if (model == nullptr) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  if (model->state() != Model::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' is ", ModelStateName(model->state()),
                     "; only a READY model can be ", what == "training" ? "trained" : "saved"));
  }
  if (auto busy = training_.find(name); busy != training_.end()) {
    return absl::AbortedError(absl::StrCat("model '", name, "' is busy ", busy->second->what,
                                           " (one train or save call at a time); try again when "
                                           "it ends"));
  }
  auto calls = std::make_shared<TrainCalls>();
  calls->what = what;
  calls->build_id = model->build_id();
  for (const std::string& worker : WorkersOf(*model)) {
    const gptbuilder::v1::WorkerInfo* w = workers_.Find(worker);
    if (w == nullptr) return absl::UnavailableError(absl::StrCat("worker ", worker, " is gone"));
    calls->addresses[worker] = w->address();
  }
  training_[name] = calls;
  return calls;
}

absl::StatusOr<gptbuilder::v1::SaveCheckpointResponse> Coordinator::SaveCheckpoint(
    const gptbuilder::v1::SaveCheckpointRequest& request) {
  const std::string& name = request.model();
  config::Violations violations;
  if (name.empty()) violations.Add("model", "REQUIRED", "the name of a READY model to save");
  // The workers resolve the path (and enforce their own checkpoint roots); refuse here what
  // no worker would take.
  if (absl::Status path = checkpoint::CheckCheckpointPath(request.path()); !path.ok()) {
    for (const config::FieldViolation& v : config::ViolationsFromStatus(path)) {
      violations.Add(v.field, v.reason,
                     absl::StrCat(v.description, " (an absolute directory path visible to every "
                                                 "worker)"));
    }
  } else if (!options_.checkpoint_root.empty() &&
             !checkpoint::IsWithin(request.path(), options_.checkpoint_root)) {
    violations.Add("path", "OUTSIDE_CHECKPOINT_ROOT",
                   absl::StrCat("checkpoints are saved only inside ", options_.checkpoint_root,
                                " (--checkpoint-root)"));
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
  std::shared_ptr<TrainCalls> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<std::shared_ptr<TrainCalls>> started =
        StartModelJobLocked(name, "saving a checkpoint");
    if (!started.ok()) return started.status();
    calls = *started;
  }
  ModelJobDone done{this, name};
  gptbuilder::v1::WorkerSaveCheckpointRequest save;
  save.set_model(name);
  save.set_build_id(calls->build_id);
  save.set_path(request.path());
  save.set_format(format);
  save.set_hf_model_type(request.hf_model_type());
  save.set_overwrite(request.overwrite());
  const absl::Time start = absl::Now();
  // Every worker at once: the ranks agree on the outcome among themselves (a rank that fails
  // makes every rank fail), so each call is left to finish.
  std::map<std::string, absl::StatusOr<gptbuilder::v1::WorkerSaveCheckpointResponse>> answers;
  for (const auto& [worker, address] : calls->addresses) {
    answers.emplace(worker, absl::UnknownError("no answer"));
  }
  {
    std::vector<std::thread> threads;
    for (auto& [worker, answer] : answers) {
      threads.emplace_back([&, address = calls->addresses.at(worker), answer = &answer] {
        *answer = connector_->Connect(address)->SaveCheckpoint(
            save, absl::Now() + options_.build_deadline);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  gptbuilder::v1::SaveCheckpointResponse response;
  response.set_path(request.path());
  response.set_format(format);
  response.set_seconds(seconds);
  for (const auto& [worker, answer] : answers) {
    if (!answer.ok()) {
      if (metrics_ != nullptr) metrics_->CheckpointSaved(false, 0, seconds);
      return absl::Status(answer.status().code(),
                          absl::StrCat("saving model '", name, "' to ", request.path(), ": worker ",
                                       worker, ": ", answer.status().message()));
    }
    for (const auto& rank : answer->ranks()) {
      response.set_bytes_written(response.bytes_written() + rank.bytes_written());
      response.set_files(std::max(response.files(), rank.files()));
    }
  }
  if (metrics_ != nullptr) metrics_->CheckpointSaved(true, response.bytes_written(), seconds);
  server::Log(absl::StrCat("model '", name, "' saved to ", request.path(), " (", format, ", ",
                           response.bytes_written(), " bytes in ", seconds, " s)"));
  return response;
}

absl::Status Coordinator::TrainStep(
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
    if (metrics_ != nullptr) metrics_->TrainStepFailed("rejected");
    return violations.ToStatus();
  }
  std::shared_ptr<TrainCalls> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<std::shared_ptr<TrainCalls>> started = StartModelJobLocked(name, "training");
    if (!started.ok()) return started.status();
    calls = *started;
  }
  ModelJobDone done{this, name};
  const std::string build_id = calls->build_id;
  const std::map<std::string, std::string> addresses = calls->addresses;

  gptbuilder::v1::WorkerTrainStepRequest step_request;
  step_request.set_model(name);
  step_request.set_build_id(build_id);
  *step_request.mutable_batch() = request.batch();
  *step_request.mutable_options() = request.options();
  const int steps = std::max(1, request.steps());
  for (int step = 0; step < steps; ++step) {
    if (cancelled()) {
      return absl::CancelledError(
          absl::StrCat("training of model '", name, "' was cancelled after ", step, " steps"));
    }
    const absl::Time start = absl::Now();
    // Every worker at once: the ranks meet in their collectives. The first failure cancels the
    // other calls, whose ranks would otherwise wait for the lost ones until their timeout.
    std::map<std::string, absl::StatusOr<gptbuilder::v1::WorkerTrainStepResponse>> answers;
    std::map<std::string, std::shared_ptr<CallCanceller>> cancellers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls->calls.clear();
      for (const auto& [worker, address] : addresses) {
        answers.emplace(worker, absl::UnknownError("no answer"));
        cancellers[worker] = std::make_shared<CallCanceller>();
        calls->calls.push_back(cancellers[worker]);
        if (!calls->lost.empty()) cancellers[worker]->Cancel();
      }
    }
    // The first real failure cancels the other calls, whose ranks would otherwise wait for the
    // lost ones until their timeout, but only after a short grace: when a worker dies, its
    // peers' ranks often report the broken connection before the dead worker's own call ends,
    // and the dead worker is the cause worth naming.
    std::mutex state_mu;
    std::condition_variable state_changed;
    int running = static_cast<int>(answers.size());
    std::optional<absl::Time> failed_at;
    std::string first_failed;  // the worker whose call failed first (not counting cancellations)
    std::vector<std::thread> threads;
    for (auto& [worker, answer] : answers) {
      threads.emplace_back([&, worker = worker, answer = &answer] {
        *answer = connector_->Connect(addresses.at(worker))
                      ->TrainStep(step_request, absl::Now() + options_.build_deadline,
                                  cancellers[worker].get());
        {
          std::lock_guard<std::mutex> lock(state_mu);
          --running;
          if (!answer->ok() && answer->status().code() != absl::StatusCode::kCancelled) {
            if (first_failed.empty()) first_failed = worker;
            // A rejected request is rejected by every worker before any communication: let
            // them all answer, so that a rejection can be told from a failure.
            if (!IsRejection(answer->status()) && !failed_at) failed_at = absl::Now();
          }
        }
        state_changed.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> lock(state_mu);
      bool cancelled_others = false;
      while (running > 0) {
        if (!cancelled_others && failed_at && absl::Now() - *failed_at > absl::Seconds(2)) {
          for (auto& [worker, canceller] : cancellers) canceller->Cancel();
          cancelled_others = true;
        }
        state_changed.wait_for(lock, std::chrono::milliseconds(50));
      }
    }
    // A client that cancels waits for the step in flight: the ranks cannot stop mid-step.
    for (std::thread& t : threads) t.join();
    if (first_failed.empty()) {
      for (const auto& [worker, answer] : answers) {
        if (!answer.ok()) first_failed = worker;  // only cancellations (a lost worker)
      }
    }
    // A call that failed outside any rank (workers prefix their ranks' errors with "rank N:")
    // means the worker itself is gone: that is the cause.
    for (const auto& [worker, answer] : answers) {
      if (!answer.ok() && answer.status().code() != absl::StatusCode::kCancelled &&
          !absl::StartsWith(answer.status().message(), "rank ") && !IsRejection(answer.status())) {
        first_failed = worker;
        break;
      }
    }

    if (!first_failed.empty()) {
      const absl::Status& failure = answers.at(first_failed).status();
      std::string lost;
      {
        std::lock_guard<std::mutex> lock(mu_);
        lost = calls->lost;
      }
      bool rejected = lost.empty();
      for (const auto& [worker, answer] : answers) rejected &= IsRejection(answer.status());
      if (rejected) {
        // Every rank checks the same request the same way before communicating: the model is
        // as it was.
        if (metrics_ != nullptr) metrics_->TrainStepFailed("rejected");
        return absl::Status(failure.code(), absl::StrCat("train step rejected by worker ",
                                                         first_failed, ": ", failure.message()));
      }
      if (metrics_ != nullptr) metrics_->TrainStepFailed("failed");
      const std::string reason = lost.empty()
                                     ? absl::StrCat("train step ", step, " failed on worker ",
                                                    first_failed, ": ", failure.message())
                                     : absl::StrCat("train step ", step, " failed: ", lost);
      std::optional<Release> release;
      {
        std::lock_guard<std::mutex> lock(mu_);
        const Model* model = models_.Find(name);
        if (model != nullptr && model->build_id() == build_id) {
          release = FailModelLocked(name, reason, /*exclude_worker=*/"");
        }
      }
      changed_.notify_all();
      if (release.has_value())
        ReleaseOnWorkers(*release, absl::Now() + options_.worker_rpc_timeout);
      server::Log(absl::StrCat("model '", name, "': ", reason));
      return absl::Status(lost.empty() ? failure.code() : absl::StatusCode::kUnavailable,
                          absl::StrCat(reason,
                                       "; the model is FAILED and was released (its ranks' states "
                                       "diverged); build it again"));
    }

    std::map<int, gptbuilder::v1::TrainStepResult> ranks;
    for (const auto& [worker, answer] : answers) {
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
    const double wall = absl::ToDoubleSeconds(absl::Now() - start);
    if (metrics_ != nullptr) {
      metrics_->TrainStepDone(wall, result.tokens(),
                              wall > 0 ? static_cast<double>(result.tokens()) / wall : 0.0,
                              result.loss());
    }
    if (!write(result)) {
      return absl::CancelledError(
          absl::StrCat("the caller went away after ", step + 1, " steps of model '", name, "'"));
    }
  }
  return absl::OkStatus();
}

// ---- Workers --------------------------------------------------------------------------------

std::optional<Coordinator::Release> Coordinator::FailModelLocked(const std::string& name,
                                                                 const std::string& reason,
                                                                 const std::string& exclude) {
  const Model* model = models_.Find(name);
  if (model == nullptr) return std::nullopt;
  auto job = jobs_.find(name);
  if (job != jobs_.end()) {
    job->second->Fail(absl::UnavailableError(reason), BuildJob::kWorkerLost);
    return std::nullopt;  // the build's own thread releases
  }
  if (model->state() != Model::READY && model->state() != Model::RECOVERING) return std::nullopt;
  if (auto training = training_.find(name); training != training_.end()) {
    training->second->lost = reason;
    for (const auto& call : training->second->calls) call->Cancel();
  }
  Release release{name, model->build_id(), {}};
  for (const std::string& worker : WorkersOf(*model)) {
    if (worker != exclude) release.workers.push_back(worker);
  }
  models_
      .Transition(name, Model::FAILED,
                  absl::StrCat(reason, "; the other ranks were released; build the model again"),
                  absl::Now())
      .IgnoreError();
  failures_[model->build_id()] = absl::UnavailableError(reason);
  return release;
}

absl::StatusOr<gptbuilder::v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const gptbuilder::v1::RegisterWorkerRequest& request) {
  config::Violations violations;
  if (request.name().empty()) violations.Add("name", "REQUIRED", "a worker name is required");
  if (request.address().empty()) {
    violations.Add("address", "REQUIRED", "the address the coordinator reaches the worker at");
  }
  if (request.slots().empty()) violations.Add("slots", "REQUIRED", "a worker needs a slot");
  if (!violations.empty()) return violations.ToStatus();

  gptbuilder::v1::RegisterWorkerResponse response;
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  std::vector<Release> releases;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = absl::Now();
    const std::vector<std::string> before = workers_.ModelsOn(request.name());
    workers_.Register(request, now);
    server::Log(absl::StrCat("worker ", request.name(), " registered from ", request.address(),
                             " with ", request.slots_size(), " slots and ",
                             request.held_models_size(), " held models"));
    std::set<std::string> held;
    for (const gptbuilder::v1::HeldModel& h : request.held_models()) {
      const Model* model = models_.Find(h.name());
      if (model == nullptr) {
        // Seen for the first time since this coordinator started: recover it.
        Model recovered;
        recovered.set_name(h.name());
        recovered.set_state(Model::RECOVERING);
        *recovered.mutable_config() = h.config();
        *recovered.mutable_ddp() = h.ddp();
        *recovered.mutable_build() = h.build();
        recovered.set_world_size(h.world_size());
        recovered.set_build_id(h.build_id());
        recovered.set_operation(absl::StrCat(kOperationPrefix, h.build_id()));
        if (absl::StatusOr<plan::ModelPlan> plan =
                PlanFinalized(h.config(), h.ddp(), h.build(), h.world_size(), options_.limits);
            plan.ok()) {
          recovered.set_total_params(plan->TotalParameters());
        }
        models_.Add(recovered, "", now).IgnoreError();
        model = models_.Find(h.name());
      }
      if (model->build_id() != h.build_id() || model->state() == Model::FAILED ||
          model->state() == Model::RELEASING) {
        response.add_release_models(h.name());
        continue;
      }
      held.insert(h.name());
      Model* editable = models_.Mutable(h.name());
      // Replace this worker's placements with what it reports.
      std::vector<RankPlacement> kept;
      for (const RankPlacement& p : editable->placement()) {
        if (p.worker() != request.name()) kept.push_back(p);
      }
      int64_t held_bytes = 0;
      for (const RankPlacement& p : kept) held_bytes += p.planned_bytes();
      for (const gptbuilder::v1::HeldModel::HeldRank& rank : h.ranks()) {
        RankPlacement p;
        p.set_rank(rank.rank());
        p.set_worker(request.name());
        p.set_slot(rank.slot());
        for (const gptbuilder::v1::Slot& slot : request.slots()) {
          if (slot.index() == rank.slot()) p.set_device(slot.device());
        }
        p.set_planned_bytes(rank.parameter_bytes() + rank.gradient_bytes());
        held_bytes += p.planned_bytes();
        kept.push_back(p);
      }
      std::sort(kept.begin(), kept.end(),
                [](const RankPlacement& a, const RankPlacement& b) { return a.rank() < b.rank(); });
      editable->clear_placement();
      for (const RankPlacement& p : kept) {
        *editable->add_placement() = p;
        if (p.worker() == request.name()) workers_.Occupy(p, h.name());
      }
      editable->set_held_bytes(held_bytes);
      if (editable->state() == Model::RECOVERING) {
        std::set<int> ranks;
        for (const RankPlacement& p : kept) ranks.insert(p.rank());
        if (static_cast<int>(ranks.size()) == editable->world_size()) {
          models_.Transition(h.name(), Model::READY, "", now).IgnoreError();
        } else {
          std::vector<int> missing;
          for (int r = 0; r < editable->world_size(); ++r) {
            if (!ranks.count(r)) missing.push_back(r);
          }
          models_
              .Transition(h.name(), Model::RECOVERING,
                          absl::StrCat("recovered after a coordinator restart; waiting for the "
                                       "workers holding ranks ",
                                       RankList(missing), " to register"),
                          now)
              .IgnoreError();
        }
      }
    }
    // Models this worker held ranks of but no longer reports: it restarted and lost them.
    for (const std::string& name : before) {
      if (held.count(name)) continue;
      std::optional<Release> release = FailModelLocked(
          name,
          absl::StrCat("worker ", request.name(), " restarted and no longer holds ranks ",
                       RankList(RanksOn(*models_.Find(name), request.name()))),
          request.name());
      if (release.has_value()) releases.push_back(*release);
    }
  }
  changed_.notify_all();
  for (const Release& release : releases) {
    ReleaseOnWorkers(release, absl::Now() + options_.worker_rpc_timeout);
  }
  return response;
}

gptbuilder::v1::HeartbeatResponse Coordinator::Heartbeat(
    const gptbuilder::v1::HeartbeatRequest& request) {
  gptbuilder::v1::HeartbeatResponse response;
  std::lock_guard<std::mutex> lock(mu_);
  if (!workers_.Heartbeat(request.name(), absl::Now())) {
    response.set_register_again(true);
    return response;
  }
  for (const std::string& name : request.held_models()) {
    const Model* model = models_.Find(name);
    if (model == nullptr || model->state() == Model::FAILED ||
        RanksOn(*model, request.name()).empty()) {
      response.add_release_models(name);
    }
  }
  return response;
}

void Coordinator::SweepLoop() {
  while (true) {
    std::vector<Release> releases;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait_for(lock, absl::ToChronoMilliseconds(options_.sweep_period),
                        [this] { return stopping_; });
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (const std::string& worker : workers_.SweepLost(now, options_.heartbeat_timeout)) {
        if (metrics_ != nullptr) metrics_->WorkerLost();
        server::Log(absl::StrCat("worker ", worker, " lost: no heartbeat for ",
                                 absl::FormatDuration(options_.heartbeat_timeout)));
        const std::string address = workers_.Find(worker)->address();
        for (const std::string& name : workers_.ModelsOn(worker)) {
          std::optional<Release> release = FailModelLocked(
              name,
              absl::StrCat("worker ", worker, " (", address, ") stopped heart-beating for ",
                           absl::FormatDuration(options_.heartbeat_timeout), "; its ranks ",
                           RankList(RanksOn(*models_.Find(name), worker)), " are gone"),
              worker);
          if (release.has_value()) releases.push_back(*release);
        }
      }
      for (const Model& model : models_.List()) {
        if (model.state() != Model::RECOVERING) continue;
        const absl::Time since = absl::FromUnixNanos(
            google::protobuf::util::TimeUtil::TimestampToNanoseconds(model.create_time()));
        if (now - since < options_.recovery_grace) continue;
        std::optional<Release> release =
            FailModelLocked(model.name(),
                            absl::StrCat("not every worker holding a rank re-registered within ",
                                         absl::FormatDuration(options_.recovery_grace),
                                         " of the coordinator's restart (", model.reason(), ")"),
                            "");
        if (release.has_value()) releases.push_back(*release);
      }
    }
    if (!releases.empty()) changed_.notify_all();
    for (const Release& release : releases) {
      ReleaseOnWorkers(release, absl::Now() + options_.worker_rpc_timeout);
    }
  }
}

bool Coordinator::HasReadyWorkers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_.ReadyCount() > 0;
}

CoordinatorSnapshot Coordinator::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  CoordinatorSnapshot s;
  for (const auto& [state, count] : models_.CountByState()) {
    s.models_by_state[ModelStateName(state)] = count;
  }
  for (const gptbuilder::v1::WorkerInfo& w : workers_.List()) {
    ++s.workers_by_state[w.state() == gptbuilder::v1::WorkerInfo::READY ? "ready" : "lost"];
    if (w.state() != gptbuilder::v1::WorkerInfo::READY) continue;
    for (const gptbuilder::v1::Slot& slot : w.slots()) {
      (slot.model().empty() ? s.slots_free : s.slots_used) += 1;
    }
  }
  s.heartbeat_age_seconds = workers_.HeartbeatAges(absl::Now());
  return s;
}

// ---- Operations -----------------------------------------------------------------------------

google::longrunning::Operation Coordinator::OperationLocked(const Model& model) const {
  google::longrunning::Operation op;
  op.set_name(model.operation());
  gptbuilder::v1::BuildMetadata metadata;
  metadata.set_model(model.name());
  metadata.set_state(model.state());
  *metadata.mutable_progress() = model.progress();
  *metadata.mutable_create_time() = model.create_time();
  op.mutable_metadata()->PackFrom(metadata);
  if (model.state() == Model::READY) {
    op.set_done(true);
    op.mutable_response()->PackFrom(model);
  } else if (model.state() == Model::FAILED) {
    op.set_done(true);
    auto it = failures_.find(model.build_id());
    absl::Status failure = it != failures_.end() ? it->second : absl::AbortedError(model.reason());
    *op.mutable_error() = server::ToRpcStatus(absl::Status(failure.code(), model.reason()));
  }
  return op;
}

const Model* Coordinator::FindByBuildIdLocked(const std::string& build_id) const {
  for (const Model& model : models_.List()) {
    if (model.build_id() == build_id) return models_.Find(model.name());
  }
  return nullptr;
}

absl::StatusOr<google::longrunning::Operation> Coordinator::GetOperation(
    const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (name.rfind(kOperationPrefix, 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("operation names look like ", kOperationPrefix,
                                                   "<build id>; got '", name, "'"));
  }
  const Model* model = FindByBuildIdLocked(name.substr(sizeof(kOperationPrefix) - 1));
  if (model == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("operation '", name, "' not found (its model may have been released)"));
  }
  return OperationLocked(*model);
}

absl::StatusOr<google::longrunning::Operation> Coordinator::WaitOperation(
    const std::string& name, absl::Time deadline, const std::function<bool()>& cancelled) {
  while (true) {
    absl::StatusOr<google::longrunning::Operation> op = GetOperation(name);
    if (!op.ok() || op->done() || absl::Now() >= deadline || cancelled()) return op;
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  }
}

absl::Status Coordinator::CancelOperation(const std::string& name) {
  absl::StatusOr<google::longrunning::Operation> op = GetOperation(name);
  if (!op.ok()) return op.status();
  std::shared_ptr<BuildJob> job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Model* model = FindByBuildIdLocked(name.substr(sizeof(kOperationPrefix) - 1));
    if (model == nullptr)
      return absl::NotFoundError(absl::StrCat("operation '", name, "' not found"));
    auto it = jobs_.find(model->name());
    if (it != jobs_.end() && it->second->build_id == model->build_id()) job = it->second;
  }
  if (job != nullptr) {
    job->Fail(absl::CancelledError("the build was cancelled (CancelOperation)"),
              BuildJob::kStopped);
  }
  return absl::OkStatus();
}

}  // namespace gptb::coordinator
