#include "server/coordinator/coordinator.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/plan/plan_description.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/log.h"
#include "server/coordinator/model_description.h"
#include "server/coordinator/model_preparation.h"

namespace gptb::coordinator {

using gptbuilder::v1::BuildEvent;
using gptbuilder::v1::Model;
using gptbuilder::v1::RankProgress;

namespace {

// How often a watch looks at its caller's cancellation when nothing changes.
constexpr absl::Duration kCancelPoll = absl::Milliseconds(200);

google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

bool Terminal(Model::State state) {
  return state == Model::READY || state == Model::FAILED || state == Model::RELEASING;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<Rendezvous> rendezvous,
                         std::shared_ptr<WorkerConnector> connector, CoordinatorMetrics* metrics)
    : ctx_(options, std::move(rendezvous), std::move(connector), metrics),
      builds_(&ctx_),
      jobs_(&ctx_),
      liveness_(&ctx_, &builds_, &jobs_),
      operations_(&ctx_, &builds_) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Start() { liveness_.Start(); }

void Coordinator::Shutdown() {
  {
    MutexLock lock(&ctx_.mu);
    ctx_.stopping = true;
  }
  ctx_.changed.NotifyAll();
  builds_.StopAll();
  liveness_.Stop();
}

// ---- Validate / plan ----------------------------------------------------------------------

absl::StatusOr<gptbuilder::v1::ValidateConfigResponse> Coordinator::ValidateConfig(
    const gptbuilder::v1::ValidateConfigRequest& request) {
  absl::StatusOr<PreparedModel> prepared = PrepareRequested(request, ctx_.options.limits);
  if (!prepared.ok()) return prepared.status();
  gptbuilder::v1::ValidateConfigResponse response;
  *response.mutable_config() = prepared->finalized.model;
  *response.mutable_ddp() = prepared->finalized.ddp;
  *response.mutable_build() = prepared->finalized.build;
  response.set_padded_vocab_size(prepared->plan->padded_vocab_size());
  return response;
}

absl::StatusOr<gptbuilder::v1::PlanDescription> Coordinator::PlanModel(
    const gptbuilder::v1::PlanModelRequest& request, const std::function<bool()>& cancelled) {
  int first_rank = 0, num_ranks = 0;
  if (absl::Status page = ParsePlanPage(request, &first_rank, &num_ranks); !page.ok()) return page;
  absl::StatusOr<PreparedModel> prepared = PrepareRequested(request, ctx_.options.limits);
  if (!prepared.ok()) return prepared.status();
  if (cancelled()) return absl::CancelledError("the PlanModel call was cancelled");
  plan::DescribeOptions page;
  page.first_rank = first_rank;
  page.num_ranks = num_ranks;
  page.process_groups = false;
  gptbuilder::v1::PlanDescription description = plan::DescribePlan(*prepared->plan, page);
  const int end = first_rank + description.ranks_size();
  if (end < prepared->plan->world_size()) description.set_next_page_token(absl::StrCat(end));
  return description;
}

// ---- Watch / get / list -------------------------------------------------------------------

absl::Status Coordinator::WatchBuild(const gptbuilder::v1::WatchBuildRequest& request,
                                     const std::function<bool(const BuildEvent&)>& write,
                                     const std::function<bool()>& cancelled) {
  uint64_t seen = 0;
  uint64_t rank_cursor = 0;
  while (true) {
    std::vector<BuildEvent> events;
    bool terminal = false;
    {
      MutexLock lock(&ctx_.mu);
      ctx_.changed.WaitFor(&ctx_.mu, kCancelPoll, [&] {
        ctx_.mu.AssertHeld();
        return ctx_.models.Version(request.name()) != seen || ctx_.stopping;
      });
      if (cancelled()) return absl::CancelledError("the watch was cancelled");
      const Model* model = ctx_.models.Find(request.name());
      if (model == nullptr) {
        return absl::NotFoundError(seen == 0
                                       ? absl::StrCat("model '", request.name(), "' not found")
                                       : absl::StrCat("model '", request.name(), "' was released"));
      }
      if (ctx_.stopping) return absl::UnavailableError("the coordinator is shutting down");
      const uint64_t version = ctx_.models.Version(request.name());
      if (version == seen) continue;
      seen = version;
      if (request.rank_events()) {
        for (const RankProgress& progress :
             ctx_.models.RankEventsSince(request.name(), &rank_cursor)) {
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
  MutexLock lock(&ctx_.mu);
  const Model* model = ctx_.models.Find(name);
  if (model == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' not found; `gptb models` lists the models"));
  }
  return *model;
}

gptbuilder::v1::ListModelsResponse Coordinator::ListModels() const {
  MutexLock lock(&ctx_.mu);
  gptbuilder::v1::ListModelsResponse response;
  for (Model& model : ctx_.models.List()) *response.add_models() = std::move(model);
  return response;
}

gptbuilder::v1::ListWorkersResponse Coordinator::ListWorkers() const {
  MutexLock lock(&ctx_.mu);
  gptbuilder::v1::ListWorkersResponse response;
  for (gptbuilder::v1::WorkerInfo& worker : ctx_.workers.List()) {
    *response.add_workers() = std::move(worker);
  }
  return response;
}

// ---- Delete / describe --------------------------------------------------------------------

absl::StatusOr<gptbuilder::v1::DeleteModelResponse> Coordinator::DeleteModel(
    const std::string& name, absl::Time deadline) {
  Release release;
  {
    MutexLock lock(&ctx_.mu);
    const Model* model = ctx_.models.Find(name);
    if (model == nullptr) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
    }
    if (model->state() == Model::RELEASING) {
      return absl::AbortedError(absl::StrCat("model '", name, "' is already being released"));
    }
    if (std::optional<std::string> busy = jobs_.BusyWithLocked(name); busy.has_value()) {
      if (*busy != "training") {
        return absl::FailedPreconditionError(
            absl::StrCat("model '", name, "' is busy ", *busy, "; release it when the save ends"));
      }
      // A train step is aborted at its ranks' next micro-batch: releasing is what was asked.
      jobs_.AbortLocked(name, absl::StrCat("model '", name, "' was released while training"));
    }
    release = Release{name, model->build_id(), WorkersOf(*model)};
    ctx_.models.Transition(name, Model::RELEASING, "released by request", absl::Now())
        .IgnoreError();
    builds_.FailBuildLocked(name, "",
                            absl::CancelledError("the model was deleted while it was building"),
                            BuildFailureCause::kStopped);
  }
  ctx_.changed.NotifyAll();
  server::Log(absl::StrCat("releasing model '", name, "'"));
  ctx_.ReleaseOnWorkers(release, deadline);
  gptbuilder::v1::DeleteModelResponse response;
  {
    MutexLock lock(&ctx_.mu);
    const Model* model = ctx_.models.Find(name);
    if (model != nullptr && model->build_id() == release.build_id) {
      *response.mutable_model() = *model;
      ctx_.models.Remove(name);
      ctx_.failures.erase(release.build_id);
    }
  }
  ctx_.changed.NotifyAll();
  return response;
}

absl::StatusOr<gptbuilder::v1::DescribeModelResponse> Coordinator::DescribeModel(
    const std::string& name, absl::Time deadline) {
  return coordinator::DescribeModel(ctx_, name, deadline);
}

// ---- Readiness and metrics ----------------------------------------------------------------

bool Coordinator::HasReadyWorkers() const {
  MutexLock lock(&ctx_.mu);
  return ctx_.workers.ReadyCount() > 0;
}

CoordinatorSnapshot Coordinator::Snapshot() const {
  MutexLock lock(&ctx_.mu);
  CoordinatorSnapshot s;
  for (const auto& [state, count] : ctx_.models.CountByState()) {
    s.models_by_state[ModelStateName(state)] = count;
  }
  for (const gptbuilder::v1::WorkerInfo& w : ctx_.workers.List()) {
    ++s.workers_by_state[w.state() == gptbuilder::v1::WorkerInfo::READY ? "ready" : "lost"];
    if (w.state() != gptbuilder::v1::WorkerInfo::READY) continue;
    for (const gptbuilder::v1::Slot& slot : w.slots()) {
      (slot.model().empty() ? s.slots_free : s.slots_used) += 1;
    }
  }
  s.heartbeat_age_seconds = ctx_.workers.HeartbeatAges(absl::Now());
  return s;
}

}  // namespace gptb::coordinator
