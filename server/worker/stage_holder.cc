#include "server/worker/stage_holder.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rpc/grpc_status.h"
#include "server/common/log.h"

namespace gptb::worker {

using gptbuilder::v1::RankProgress;

gptbuilder::v1::BuildPhase ToProtoPhase(model::BuildPhase phase) {
  switch (phase) {
    case model::BuildPhase::kProcessGroups:
      return gptbuilder::v1::BUILD_PHASE_PROCESS_GROUPS;
    case model::BuildPhase::kConstruct:
      return gptbuilder::v1::BUILD_PHASE_CONSTRUCT;
    case model::BuildPhase::kInitialize:
      return gptbuilder::v1::BUILD_PHASE_INIT;
    case model::BuildPhase::kWrap:
      return gptbuilder::v1::BUILD_PHASE_WRAP;
    case model::BuildPhase::kDone:
      return gptbuilder::v1::BUILD_PHASE_DONE;
  }
  return gptbuilder::v1::BUILD_PHASE_UNSPECIFIED;
}

namespace {

// The Prometheus / progress key of a core phase (same spelling as model::BuildPhaseName, kept
// here so the worker's logic does not link LibTorch).
const char* PhaseKey(model::BuildPhase phase) {
  switch (phase) {
    case model::BuildPhase::kProcessGroups:
      return "process_groups";
    case model::BuildPhase::kConstruct:
      return "construct";
    case model::BuildPhase::kInitialize:
      return "init";
    case model::BuildPhase::kWrap:
      return "wrap";
    case model::BuildPhase::kDone:
      return "done";
  }
  return "";
}

RankProgress ToProto(const model::BuildProgress& p) {
  RankProgress out;
  out.set_rank(p.rank);
  out.set_phase(ToProtoPhase(p.phase));
  out.set_layers_built(p.layers_built);
  out.set_layers_total(p.layers_total);
  out.set_bytes_initialized(p.bytes_initialized);
  out.set_bytes_total(p.bytes_total);
  out.set_phase_seconds(p.phase_seconds);
  return out;
}

}  // namespace

struct StageHolder::RankResult {
  int slot = 0;
  std::shared_ptr<model::RankModel> model;
  int64_t num_params = 0;
};

// One BuildStages request: its ranks' threads, their events and results.
struct StageHolder::Build {
  gptbuilder::v1::BuildStagesRequest request;
  std::atomic<bool> cancelled{false};

  std::mutex mu;
  std::condition_variable changed;
  std::deque<RankProgress> events;
  int running = 0;
  bool finished = false;
  absl::Status failure;
  std::map<int, RankResult> ranks;
  std::map<int, RankProgress> last;  // each rank's latest progress, for its final event

  // Queues an event, coalescing a rank's consecutive progress within one phase so that a
  // slow reader sees the latest numbers rather than a backlog.
  void Push(const RankProgress& event) {
    {
      std::lock_guard<std::mutex> lock(mu);
      last[event.rank()] = event;
      for (auto it = events.rbegin(); it != events.rend(); ++it) {
        if (it->rank() != event.rank()) continue;
        if (it->phase() == event.phase() && !it->has_result() && !event.has_result()) {
          *it = event;
          changed.notify_all();
          return;
        }
        break;
      }
      events.push_back(event);
    }
    changed.notify_all();
  }
};

StageHolder::StageHolder(std::vector<gptbuilder::v1::Slot> slots, std::string bind_address,
                         RankBuilder builder, WorkerMetrics* metrics)
    : slots_(std::move(slots)),
      bind_address_(std::move(bind_address)),
      builder_(std::move(builder)),
      metrics_(metrics),
      slot_use_(slots_.size()) {}

StageHolder::~StageHolder() {
  std::vector<std::shared_ptr<model::RankModel>> models;
  {
    std::unique_lock<std::mutex> lock(mu_);
    for (auto& [name, build] : building_) build->cancelled = true;
    threads_done_.wait(lock, [this] { return running_threads_ == 0; });
    for (auto& [name, build] : held_) {
      for (auto& [rank, result] : build->ranks) models.push_back(std::move(result.model));
    }
    held_.clear();
  }
  Destroy(std::move(models));
}

absl::StatusOr<std::shared_ptr<BuildSession>> StageHolder::StartBuild(
    const gptbuilder::v1::BuildStagesRequest& request) {
  if (request.ranks().empty()) {
    return absl::InvalidArgumentError("BuildStages names no ranks to build");
  }
  auto build = std::make_shared<Build>();
  build->request = request;
  {
    std::unique_lock<std::mutex> lock(mu_);
    // A slot still running a rank of a cancelled build (released, or failed, a moment ago)
    // frees as soon as that rank notices, usually within a layer's initialisation: wait for it
    // rather than send the coordinator away while its other slots are free.
    const auto patience = std::chrono::milliseconds(
        std::min<int64_t>(request.timeout_ms() > 0 ? request.timeout_ms() : 60000, 30000));
    const auto until = std::chrono::steady_clock::now() + patience;
    auto draining = [&] {
      for (const gptbuilder::v1::RankAssignment& a : request.ranks()) {
        if (a.slot() < 0 || a.slot() >= static_cast<int>(slots_.size())) continue;
        const SlotUse& use = slot_use_[a.slot()];
        if (use.state != SlotState::kBuilding) continue;
        auto it = building_.find(use.model);
        if (it == building_.end() || it->second->request.build_id() != use.build_id ||
            it->second->cancelled.load()) {
          return true;
        }
      }
      return false;
    };
    while (draining() && std::chrono::steady_clock::now() < until) {
      slot_freed_.wait_until(lock, until);
    }
    const std::string& name = request.model();
    if (auto it = held_.find(name); it != held_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("this worker already holds model '", name,
                                                        "' (build ", it->second->request.build_id(),
                                                        "); release it first"));
    }
    if (auto it = building_.find(name); it != building_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("this worker is already building model '",
                                                        name, "' (build ",
                                                        it->second->request.build_id(), ")"));
    }
    for (const gptbuilder::v1::RankAssignment& a : request.ranks()) {
      if (a.slot() < 0 || a.slot() >= static_cast<int>(slots_.size())) {
        return absl::FailedPreconditionError(absl::StrCat("rank ", a.rank(), " is assigned slot ",
                                                          a.slot(), " but this worker has ",
                                                          slots_.size(), " slots"));
      }
      const SlotUse& use = slot_use_[a.slot()];
      if (use.state != SlotState::kFree) {
        return absl::FailedPreconditionError(absl::StrCat(
            "slot ", a.slot(), " is still ",
            use.state == SlotState::kBuilding ? "running" : "holding", " rank ", use.rank,
            " of model '", use.model, "'",
            use.state == SlotState::kBuilding ? " (a cancelled build waiting for its timeout)" : "",
            "; retry shortly"));
      }
    }
    for (const gptbuilder::v1::RankAssignment& a : request.ranks()) {
      slot_use_[a.slot()] = {SlotState::kBuilding, name, request.build_id(), a.rank()};
      build->ranks[a.rank()].slot = a.slot();
    }
    build->running = request.ranks_size();
    running_threads_ += request.ranks_size();
    building_[name] = build;
  }
  for (const gptbuilder::v1::RankAssignment& a : request.ranks()) {
    // The coordinator's rendezvous phase ends when every worker has its ranks under way.
    RankProgress started;
    started.set_rank(a.rank());
    started.set_phase(gptbuilder::v1::BUILD_PHASE_RENDEZVOUS);
    build->Push(started);
    std::thread([this, build, rank = a.rank(), slot = a.slot()] {
      RunRank(build, rank, slot);
    }).detach();
  }
  return std::shared_ptr<BuildSession>(new BuildSession(build));
}

void StageHolder::RunRank(std::shared_ptr<Build> build, int rank, int slot) {
  // OpenMP keeps the thread count per thread: a fresh rank thread would take every core.
  if (threads_per_rank() > 0) at::set_num_threads(threads_per_rank());
  const gptbuilder::v1::BuildStagesRequest& request = build->request;
  model::RankBuildOptions options;
  options.config = request.config();
  options.ddp = request.ddp();
  options.build = request.build();
  options.world_size = request.world_size();
  options.rank = rank;
  options.store_host = request.store_host();
  options.store_port = request.store_port();
  options.store_prefix = request.store_prefix();
  options.bind_address = bind_address_;
  options.timeout =
      std::chrono::milliseconds(request.timeout_ms() > 0 ? request.timeout_ms() : 60000);
  options.device = slots_[slot].device();
  options.load_from = request.load_from();
  options.load.root = checkpoint_root_;
  // The ranks of this worker share its cores while they initialise.
  options.ranks_per_process = static_cast<int>(slots_.size());
  Build* raw = build.get();
  options.on_progress = [raw](const model::BuildProgress& p) { raw->Push(ToProto(p)); };
  options.cancelled = [raw] { return raw->cancelled.load(); };
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<model::RankModel>> result =
      absl::InternalError("the builder did not run");
  try {
    result = builder_(options);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("rank ", rank, " threw: ", e.what()));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  OnRankDone(build, rank, std::move(result), seconds);
}

void StageHolder::OnRankDone(const std::shared_ptr<Build>& build, int rank,
                             absl::StatusOr<std::unique_ptr<model::RankModel>> result,
                             double seconds) {
  RankProgress final_event;
  {
    // The final event keeps the rank's last counts (layers, bytes) so that totals hold.
    std::lock_guard<std::mutex> lock(build->mu);
    auto it = build->last.find(rank);
    if (it != build->last.end()) final_event = it->second;
  }
  final_event.set_rank(rank);
  final_event.set_phase(gptbuilder::v1::BUILD_PHASE_DONE);
  final_event.set_phase_seconds(seconds);
  std::vector<std::shared_ptr<model::RankModel>> to_destroy;
  std::string outcome;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::lock_guard<std::mutex> build_lock(build->mu);
    if (result.ok()) {
      std::shared_ptr<model::RankModel> held = *std::move(result);
      for (const auto& [phase, phase_seconds] : held->phase_seconds()) {
        (*final_event.mutable_phase_seconds_by_phase())[PhaseKey(phase)] = phase_seconds;
        if (metrics_ != nullptr) metrics_->ObserveRankPhase(PhaseKey(phase), phase_seconds);
      }
      final_event.set_parameter_bytes(held->parameter_bytes());
      final_event.set_gradient_bytes(held->gradient_bytes());
      RankResult& r = build->ranks[rank];
      r.num_params = held->plan().Rank(rank).memory.num_params;
      r.model = std::move(held);
      outcome = build->cancelled ? "cancelled" : "ready";
      *final_event.mutable_result() = rpc::ToRpcStatus(absl::OkStatus());
    } else {
      absl::Status status(result.status().code(),
                          absl::StrCat("rank ", rank, ": ", result.status().message()));
      if (build->failure.ok() && !build->cancelled) build->failure = status;
      build->cancelled = true;  // the siblings cannot finish without this rank
      outcome = status.code() == absl::StatusCode::kCancelled ? "cancelled" : "failed";
      final_event.set_phase(gptbuilder::v1::BUILD_PHASE_UNSPECIFIED);
      *final_event.mutable_result() = rpc::ToRpcStatus(result.status());
    }
    --build->running;
    if (build->running == 0) {
      const std::string& name = build->request.model();
      auto it = building_.find(name);
      if (it != building_.end() && it->second == build) building_.erase(it);
      if (build->cancelled || !build->failure.ok()) {
        for (auto& [r, rank_result] : build->ranks) {
          if (rank_result.model != nullptr) to_destroy.push_back(std::move(rank_result.model));
        }
        FreeSlotsLocked(*build);
        if (metrics_ != nullptr && !to_destroy.empty()) {
          metrics_->RanksReleased(static_cast<int>(to_destroy.size()));
        }
      } else {
        held_[name] = build;
        for (const auto& [r, rank_result] : build->ranks) {
          slot_use_[rank_result.slot].state = SlotState::kHolding;
        }
      }
      build->finished = true;
    }
    build->events.push_back(final_event);
  }
  build->changed.notify_all();
  server::Log(absl::StrCat(
      "model '", build->request.model(), "' rank ", rank, ": ", outcome, " after ",
      absl::StrFormat("%.3f", seconds), "s",
      final_event.result().code() == 0 ? "" : absl::StrCat(": ", final_event.result().message())));
  if (metrics_ != nullptr) metrics_->RankFinished(outcome);
  Destroy(std::move(to_destroy));
  // Last: once the count drops, the destructor may destroy this holder.
  std::lock_guard<std::mutex> lock(mu_);
  --running_threads_;
  threads_done_.notify_all();
}

void StageHolder::FreeSlotsLocked(const Build& build) {
  for (const auto& [rank, result] : build.ranks) {
    SlotUse& use = slot_use_[result.slot];
    if (use.model == build.request.model() && use.build_id == build.request.build_id()) {
      use = SlotUse();
    }
  }
  slot_freed_.notify_all();
}

void StageHolder::Destroy(std::vector<std::shared_ptr<model::RankModel>> models) {
  if (models.empty()) return;
  models.clear();
  // Large tensors freed by many threads sit in glibc arenas; hand them back to the OS so that a
  // released model visibly frees the worker's memory.
  malloc_trim(0);
}

gptbuilder::v1::ReleaseModelResponse StageHolder::Release(const std::string& model,
                                                          const std::string& build_id) {
  gptbuilder::v1::ReleaseModelResponse response;
  std::vector<std::shared_ptr<model::RankModel>> to_destroy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = held_.find(model);
        it != held_.end() && (build_id.empty() || it->second->request.build_id() == build_id)) {
      std::shared_ptr<Build> build = it->second;
      held_.erase(it);
      for (auto& [rank, result] : build->ranks) {
        if (result.model == nullptr) continue;
        response.set_bytes_released(response.bytes_released() + result.model->parameter_bytes() +
                                    result.model->gradient_bytes());
        response.set_ranks_released(response.ranks_released() + 1);
        to_destroy.push_back(std::move(result.model));
      }
      FreeSlotsLocked(*build);
    }
    if (auto it = building_.find(model);
        it != building_.end() && (build_id.empty() || it->second->request.build_id() == build_id)) {
      it->second->cancelled = true;  // its ranks release themselves as they return
    }
  }
  if (metrics_ != nullptr && response.ranks_released() > 0) {
    metrics_->RanksReleased(response.ranks_released());
  }
  // Only when the held build itself went: a release of another build of the name must not drop
  // the held one's optimizer state.
  if (release_listener_ && response.ranks_released() > 0) release_listener_(model);
  Destroy(std::move(to_destroy));
  return response;
}

absl::StatusOr<StageHolder::HeldRanks> StageHolder::Held(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(model);
  if (it == held_.end()) {
    if (building_.count(model)) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", model, "' is still building on this worker"));
    }
    return absl::NotFoundError(absl::StrCat("this worker holds no ranks of model '", model, "'"));
  }
  HeldRanks held;
  held.build_id = it->second->request.build_id();
  for (const auto& [rank, result] : it->second->ranks) {
    if (result.model == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", model, "' is being released on this worker"));
    }
    held.ranks.emplace_back(rank, result.model);
  }
  return held;
}

absl::StatusOr<gptbuilder::v1::DescribeHeldModelResponse> StageHolder::Describe(
    const std::string& model) const {
  std::shared_ptr<Build> build;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = held_.find(model);
    if (it == held_.end()) {
      if (building_.count(model)) {
        return absl::FailedPreconditionError(
            absl::StrCat("model '", model, "' is still building on this worker"));
      }
      return absl::NotFoundError(absl::StrCat("this worker holds no ranks of model '", model, "'"));
    }
    build = it->second;
  }
  // Held models are immutable and kept alive by `build` even if released meanwhile.
  gptbuilder::v1::DescribeHeldModelResponse response;
  response.set_model(model);
  response.set_build_id(build->request.build_id());
  for (const auto& [rank, result] : build->ranks) {
    std::shared_ptr<model::RankModel> held = result.model;
    if (held == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", model, "' was released while being described"));
    }
    gptbuilder::v1::HeldRankDescription* out = response.add_ranks();
    out->set_rank(rank);
    out->set_slot(result.slot);
    out->set_device(slots_[result.slot].device());
    try {
      absl::StatusOr<std::vector<gptbuilder::v1::StageDescription>> stages = held->Describe();
      if (!stages.ok()) return stages.status();
      for (gptbuilder::v1::StageDescription& stage : *stages) *out->add_stages() = std::move(stage);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("describing rank ", rank, ": ", e.what()));
    }
    out->set_parameter_bytes(held->parameter_bytes());
    out->set_gradient_bytes(held->gradient_bytes());
    for (const auto& [phase, seconds] : held->phase_seconds()) {
      (*out->mutable_phase_seconds())[PhaseKey(phase)] = seconds;
    }
  }
  return response;
}

std::vector<gptbuilder::v1::HeldModel> StageHolder::HeldModels() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<gptbuilder::v1::HeldModel> out;
  for (const auto& [name, build] : held_) {
    gptbuilder::v1::HeldModel held;
    held.set_name(name);
    held.set_build_id(build->request.build_id());
    *held.mutable_config() = build->request.config();
    *held.mutable_ddp() = build->request.ddp();
    *held.mutable_build() = build->request.build();
    held.set_world_size(build->request.world_size());
    for (const auto& [rank, result] : build->ranks) {
      if (result.model == nullptr) continue;
      auto* r = held.add_ranks();
      r->set_rank(rank);
      r->set_slot(result.slot);
      r->set_parameter_bytes(result.model->parameter_bytes());
      r->set_gradient_bytes(result.model->gradient_bytes());
    }
    out.push_back(std::move(held));
  }
  return out;
}

std::vector<std::string> StageHolder::HeldModelNames() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, build] : held_) out.push_back(name);
  return out;
}

WorkerSnapshot StageHolder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  WorkerSnapshot s;
  s.models = static_cast<int>(held_.size());
  for (const auto& [name, build] : held_) {
    for (const auto& [rank, result] : build->ranks) {
      if (result.model == nullptr) continue;
      s.parameters += result.num_params;
      s.parameter_bytes += result.model->parameter_bytes();
      s.gradient_bytes += result.model->gradient_bytes();
    }
  }
  for (const SlotUse& use : slot_use_) {
    switch (use.state) {
      case SlotState::kFree:
        ++s.slots_free;
        break;
      case SlotState::kBuilding:
        ++s.slots_building;
        break;
      case SlotState::kHolding:
        ++s.slots_holding;
        break;
    }
  }
  return s;
}

BuildSession::Next BuildSession::Poll(gptbuilder::v1::RankProgress* event,
                                      std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(build_->mu);
  build_->changed.wait_for(lock, wait,
                           [this] { return !build_->events.empty() || build_->finished; });
  if (!build_->events.empty()) {
    *event = std::move(build_->events.front());
    build_->events.pop_front();
    return Next::kEvent;
  }
  return build_->finished ? Next::kFinished : Next::kIdle;
}

void BuildSession::Cancel() { build_->cancelled = true; }

absl::Status BuildSession::status() const {
  std::lock_guard<std::mutex> lock(build_->mu);
  if (!build_->failure.ok()) return build_->failure;
  if (build_->cancelled) return absl::CancelledError("the build was cancelled");
  return absl::OkStatus();
}

}  // namespace gptb::worker
