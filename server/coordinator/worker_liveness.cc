#include "server/coordinator/worker_liveness.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/violations.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/log.h"
#include "server/coordinator/model_preparation.h"
#include "server/coordinator/operations.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;
using gptbuilder::v1::RankPlacement;

void WorkerLiveness::Start() {
  sweeper_ = std::thread([this] { SweepLoop(); });
}

void WorkerLiveness::Stop() {
  {
    MutexLock lock(&ctx_->mu);
    ctx_->stopping = true;
  }
  ctx_->changed.NotifyAll();
  if (sweeper_.joinable()) sweeper_.join();
}

std::optional<Release> WorkerLiveness::LoseRanksLocked(const std::string& name,
                                                       const std::string& reason,
                                                       const std::string& exclude_worker) {
  if (ctx_->models.Find(name) == nullptr) return std::nullopt;
  if (builds_->FailBuildLocked(name, "", absl::UnavailableError(reason),
                               BuildFailureCause::kWorkerLost)) {
    return std::nullopt;  // the build's own thread releases
  }
  std::optional<Release> release = ctx_->MarkFailedLocked(name, reason, exclude_worker);
  if (release.has_value()) jobs_->AbortLocked(name, reason);
  return release;
}

bool WorkerLiveness::AdoptHeldLocked(const gptbuilder::v1::RegisterWorkerRequest& request,
                                     const gptbuilder::v1::HeldModel& h, absl::Time now) {
  const Model* model = ctx_->models.Find(h.name());
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
            PlanFinalized(h.config(), h.ddp(), h.build(), h.world_size(), ctx_->options.limits);
        plan.ok()) {
      recovered.set_total_params(plan->TotalParameters());
    }
    ctx_->models.Add(recovered, "", now).IgnoreError();
    model = ctx_->models.Find(h.name());
  }
  if (model->build_id() != h.build_id() || model->state() == Model::FAILED ||
      model->state() == Model::RELEASING) {
    return false;
  }
  Model* editable = ctx_->models.Mutable(h.name());
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
    if (p.worker() == request.name()) ctx_->workers.Occupy(p, h.name());
  }
  editable->set_held_bytes(held_bytes);
  if (editable->state() == Model::RECOVERING) {
    std::set<int> ranks;
    for (const RankPlacement& p : kept) ranks.insert(p.rank());
    if (static_cast<int>(ranks.size()) == editable->world_size()) {
      ctx_->models.Transition(h.name(), Model::READY, "", now).IgnoreError();
    } else {
      std::vector<int> missing;
      for (int r = 0; r < editable->world_size(); ++r) {
        if (!ranks.count(r)) missing.push_back(r);
      }
      ctx_->models
          .Transition(h.name(), Model::RECOVERING,
                      absl::StrCat("recovered after a coordinator restart; waiting for the "
                                   "workers holding ranks ",
                                   RankList(missing), " to register"),
                      now)
          .IgnoreError();
    }
  }
  return true;
}

absl::StatusOr<gptbuilder::v1::RegisterWorkerResponse> WorkerLiveness::RegisterWorker(
    const gptbuilder::v1::RegisterWorkerRequest& request) {
  config::Violations violations;
  if (request.name().empty()) violations.Add("name", "REQUIRED", "a worker name is required");
  if (request.address().empty()) {
    violations.Add("address", "REQUIRED", "the address the coordinator reaches the worker at");
  }
  if (request.slots().empty()) violations.Add("slots", "REQUIRED", "a worker needs a slot");
  if (!violations.empty()) return violations.ToStatus();

  gptbuilder::v1::RegisterWorkerResponse response;
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(ctx_->options.heartbeat_interval));
  std::vector<Release> releases;
  {
    MutexLock lock(&ctx_->mu);
    const absl::Time now = absl::Now();
    const std::vector<std::string> before = ctx_->workers.ModelsOn(request.name());
    ctx_->workers.Register(request, now);
    server::Log(absl::StrCat("worker ", request.name(), " registered from ", request.address(),
                             " with ", request.slots_size(), " slots and ",
                             request.held_models_size(), " held models"));
    std::set<std::string> held;
    for (const gptbuilder::v1::HeldModel& h : request.held_models()) {
      if (AdoptHeldLocked(request, h, now)) {
        held.insert(h.name());
      } else {
        response.add_release_models(h.name());
      }
    }
    // Models this worker held ranks of but no longer reports: it restarted and lost them.
    for (const std::string& name : before) {
      if (held.count(name)) continue;
      std::optional<Release> release = LoseRanksLocked(
          name,
          absl::StrCat("worker ", request.name(), " restarted and no longer holds ranks ",
                       RankList(RanksOn(*ctx_->models.Find(name), request.name()))),
          request.name());
      if (release.has_value()) releases.push_back(*release);
    }
  }
  ctx_->changed.NotifyAll();
  PublishReadiness();
  for (const Release& release : releases) {
    ctx_->ReleaseOnWorkers(release, absl::Now() + ctx_->options.worker_rpc_timeout);
  }
  return response;
}

gptbuilder::v1::HeartbeatResponse WorkerLiveness::Heartbeat(
    const gptbuilder::v1::HeartbeatRequest& request) {
  gptbuilder::v1::HeartbeatResponse response;
  {
    MutexLock lock(&ctx_->mu);
    if (!ctx_->workers.Heartbeat(request.name(), absl::Now())) {
      response.set_register_again(true);
      return response;
    }
    for (const std::string& name : request.held_models()) {
      const Model* model = ctx_->models.Find(name);
      if (model == nullptr || model->state() == Model::FAILED ||
          RanksOn(*model, request.name()).empty()) {
        response.add_release_models(name);
      }
    }
  }
  PublishReadiness();  // a LOST worker heart-beating again is READY again
  return response;
}

void WorkerLiveness::SweepLoop() {
  while (true) {
    std::vector<Release> releases;
    bool lost_any = false;
    {
      MutexLock lock(&ctx_->mu);
      ctx_->changed.WaitFor(&ctx_->mu, ctx_->options.sweep_period, [this] {
        ctx_->mu.AssertHeld();
        return ctx_->stopping;
      });
      if (ctx_->stopping) return;
      const absl::Time now = absl::Now();
      for (const std::string& worker :
           ctx_->workers.SweepLost(now, ctx_->options.heartbeat_timeout)) {
        lost_any = true;
        if (ctx_->metrics != nullptr) ctx_->metrics->WorkerLost();
        server::Log(absl::StrCat("worker ", worker, " lost: no heartbeat for ",
                                 absl::FormatDuration(ctx_->options.heartbeat_timeout)));
        const std::string address = ctx_->workers.Find(worker)->address();
        for (const std::string& name : ctx_->workers.ModelsOn(worker)) {
          std::optional<Release> release = LoseRanksLocked(
              name,
              absl::StrCat("worker ", worker, " (", address, ") stopped heart-beating for ",
                           absl::FormatDuration(ctx_->options.heartbeat_timeout), "; its ranks ",
                           RankList(RanksOn(*ctx_->models.Find(name), worker)), " are gone"),
              worker);
          if (release.has_value()) releases.push_back(*release);
        }
      }
      for (const std::string& worker : ctx_->workers.ForgetLost(
               now, ctx_->options.heartbeat_timeout, ctx_->options.lost_worker_retention)) {
        server::Log(absl::StrCat("worker ", worker, " forgotten: lost for more than ",
                                 absl::FormatDuration(ctx_->options.lost_worker_retention)));
      }
      for (const Model& model : ctx_->models.List()) {
        if (model.state() != Model::RECOVERING) continue;
        const absl::Time since = absl::FromUnixNanos(
            google::protobuf::util::TimeUtil::TimestampToNanoseconds(model.create_time()));
        if (now - since < ctx_->options.recovery_grace) continue;
        std::optional<Release> release =
            LoseRanksLocked(model.name(),
                            absl::StrCat("not every worker holding a rank re-registered within ",
                                         absl::FormatDuration(ctx_->options.recovery_grace),
                                         " of the coordinator's restart (", model.reason(), ")"),
                            "");
        if (release.has_value()) releases.push_back(*release);
      }
    }
    if (!releases.empty()) ctx_->changed.NotifyAll();
    if (lost_any) PublishReadiness();
    for (const Release& release : releases) {
      ctx_->ReleaseOnWorkers(release, absl::Now() + ctx_->options.worker_rpc_timeout);
    }
  }
}

void WorkerLiveness::SetReadinessListener(std::function<void(bool)> listener) {
  {
    MutexLock lock(&readiness_mu_);
    readiness_listener_ = std::move(listener);
    published_ready_.reset();
  }
  PublishReadiness();
}

void WorkerLiveness::PublishReadiness() {
  MutexLock lock(&readiness_mu_);
  if (!readiness_listener_) return;
  bool ready;
  {
    MutexLock state_lock(&ctx_->mu);
    ready = ctx_->workers.ReadyCount() > 0;
  }
  if (published_ready_ == ready) return;
  published_ready_ = ready;
  readiness_listener_(ready);
}

}  // namespace gptb::coordinator
