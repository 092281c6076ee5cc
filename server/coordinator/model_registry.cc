#include "server/coordinator/model_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace gptb::coordinator {
namespace {

using gptbuilder::v1::BuildPhase;
using gptbuilder::v1::RankProgress;
using Model = gptbuilder::v1::Model;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

const char* ModelStateName(Model::State state) {
  switch (state) {
    case Model::BUILDING:
      return "building";
    case Model::READY:
      return "ready";
    case Model::FAILED:
      return "failed";
    case Model::RELEASING:
      return "releasing";
    case Model::RECOVERING:
      return "recovering";
    default:
      return "unspecified";
  }
}

const char* PhaseKey(BuildPhase phase) {
  switch (phase) {
    case gptbuilder::v1::BUILD_PHASE_VALIDATE:
      return "validate";
    case gptbuilder::v1::BUILD_PHASE_PLAN:
      return "plan";
    case gptbuilder::v1::BUILD_PHASE_RENDEZVOUS:
      return "rendezvous";
    case gptbuilder::v1::BUILD_PHASE_PROCESS_GROUPS:
      return "process_groups";
    case gptbuilder::v1::BUILD_PHASE_CONSTRUCT:
      return "construct";
    case gptbuilder::v1::BUILD_PHASE_INIT:
      return "init";
    case gptbuilder::v1::BUILD_PHASE_WRAP:
      return "wrap";
    case gptbuilder::v1::BUILD_PHASE_DONE:
      return "done";
    default:
      return "";
  }
}

bool ModelRegistry::Allowed(Model::State from, Model::State to) {
  if (from == to) return true;
  switch (from) {
    case Model::BUILDING:
      return to == Model::READY || to == Model::FAILED || to == Model::RELEASING;
    case Model::READY:
      return to == Model::FAILED || to == Model::RELEASING;
    case Model::FAILED:
      return to == Model::RELEASING;
    case Model::RECOVERING:
      return to == Model::READY || to == Model::FAILED || to == Model::RELEASING;
    case Model::RELEASING:
      return false;
    default:
      return false;
  }
}

absl::Status ModelRegistry::Add(Model model, const std::string& request_id, absl::Time now) {
  if (models_.count(model.name()) > 0) {
    const Model& existing = models_.at(model.name()).model;
    return absl::AlreadyExistsError(absl::StrCat(
        "model '", model.name(), "' already exists (", ModelStateName(existing.state()),
        existing.reason().empty() ? "" : absl::StrCat(": ", existing.reason()),
        "); release it first (gptb release ", model.name(), ") or choose another --name"));
  }
  Entry entry;
  *model.mutable_create_time() = ToProto(now);
  *model.mutable_update_time() = ToProto(now);
  entry.ranks.resize(std::max(0, model.world_size()));
  for (int r = 0; r < model.world_size(); ++r) entry.ranks[r].set_rank(r);
  entry.model = std::move(model);
  entry.request_id = request_id;
  Aggregate(&entry);
  models_.emplace(entry.model.name(), std::move(entry));
  return absl::OkStatus();
}

void ModelRegistry::Remove(const std::string& name) { models_.erase(name); }

const Model* ModelRegistry::Find(const std::string& name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second.model;
}

Model* ModelRegistry::Mutable(const std::string& name) {
  auto it = models_.find(name);
  if (it == models_.end()) return nullptr;
  ++it->second.version;
  return &it->second.model;
}

const std::string* ModelRegistry::RequestId(const std::string& name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second.request_id;
}

std::vector<Model> ModelRegistry::List() const {
  std::vector<Model> out;
  for (const auto& [name, entry] : models_) out.push_back(entry.model);
  return out;
}

std::map<Model::State, int> ModelRegistry::CountByState() const {
  std::map<Model::State, int> out;
  for (const auto& [name, entry] : models_) ++out[entry.model.state()];
  return out;
}

absl::Status ModelRegistry::Transition(const std::string& name, Model::State to,
                                       const std::string& reason, absl::Time now) {
  auto it = models_.find(name);
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
  Model& model = it->second.model;
  if (!Allowed(model.state(), to)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", name, "' is ", ModelStateName(model.state()), ", not ", ModelStateName(to)));
  }
  model.set_state(to);
  model.set_reason(reason);
  // A FAILED model's ranks were released (or are being): it holds nothing any more.
  if (to == Model::FAILED || to == Model::RELEASING) model.set_held_bytes(0);
  *model.mutable_update_time() = ToProto(now);
  ++it->second.version;
  return absl::OkStatus();
}

void ModelRegistry::UpdateRank(const std::string& name, const RankProgress& progress,
                               absl::Time now) {
  auto it = models_.find(name);
  if (it == models_.end() || it->second.model.state() != Model::BUILDING) return;
  Entry& entry = it->second;
  if (progress.rank() < 0 || progress.rank() >= static_cast<int>(entry.ranks.size())) return;
  RankProgress& latest = entry.ranks[progress.rank()];
  // Keep the finished phases' durations across events of later phases.
  auto phases = latest.phase_seconds_by_phase();
  if (progress.phase() != latest.phase() &&
      latest.phase() != gptbuilder::v1::BUILD_PHASE_UNSPECIFIED) {
    phases[PhaseKey(latest.phase())] = latest.phase_seconds();
  }
  latest = progress;
  for (const auto& [phase, seconds] : phases) {
    latest.mutable_phase_seconds_by_phase()->insert({phase, seconds});
  }
  entry.rank_events.push_back(progress);
  if (entry.rank_events.size() > kMaxRankEvents) {
    entry.rank_events.pop_front();
    ++entry.first_event_seq;
  }
  Aggregate(&entry);
  *entry.model.mutable_update_time() = ToProto(now);
  ++entry.version;
}

void ModelRegistry::SetPhaseSeconds(const std::string& name, const std::string& phase,
                                    double seconds) {
  auto it = models_.find(name);
  if (it == models_.end()) return;
  (*it->second.model.mutable_progress()->mutable_phase_seconds())[phase] = seconds;
  ++it->second.version;
}

void ModelRegistry::SetHeldBytes(const std::string& name, int64_t bytes) {
  auto it = models_.find(name);
  if (it == models_.end()) return;
  it->second.model.set_held_bytes(bytes);
  ++it->second.version;
}

uint64_t ModelRegistry::Version(const std::string& name) const {
  auto it = models_.find(name);
  return it == models_.end() ? 0 : it->second.version;
}

std::vector<RankProgress> ModelRegistry::RankEventsSince(const std::string& name,
                                                         uint64_t* cursor) const {
  std::vector<RankProgress> out;
  auto it = models_.find(name);
  if (it == models_.end()) return out;
  const Entry& entry = it->second;
  uint64_t seq = std::max(*cursor, entry.first_event_seq);
  for (; seq < entry.first_event_seq + entry.rank_events.size(); ++seq) {
    out.push_back(entry.rank_events[seq - entry.first_event_seq]);
  }
  *cursor = seq;
  return out;
}

void ModelRegistry::Aggregate(Entry* entry) {
  gptbuilder::v1::BuildProgress* p = entry->model.mutable_progress();
  // Coordinator-side phases are set separately; rank phases are recomputed.
  auto phase_seconds = p->phase_seconds();
  p->Clear();
  p->set_ranks_total(static_cast<int>(entry->ranks.size()));
  int64_t held_bytes = 0;
  for (const RankProgress& r : entry->ranks) {
    // A rank reports a phase when it finishes it (then progress within the next).
    if (r.phase() >= gptbuilder::v1::BUILD_PHASE_PROCESS_GROUPS) {
      p->set_ranks_with_process_groups(p->ranks_with_process_groups() + 1);
    }
    if (r.phase() == gptbuilder::v1::BUILD_PHASE_DONE) p->set_ranks_done(p->ranks_done() + 1);
    p->set_layers_built(p->layers_built() + r.layers_built());
    p->set_layers_total(p->layers_total() + r.layers_total());
    p->set_bytes_initialized(p->bytes_initialized() + r.bytes_initialized());
    p->set_bytes_total(p->bytes_total() + r.bytes_total());
    held_bytes += r.parameter_bytes() + r.gradient_bytes();
    for (const auto& [phase, seconds] : r.phase_seconds_by_phase()) {
      auto found = phase_seconds.find(phase);
      if (found == phase_seconds.end() || found->second < seconds) phase_seconds[phase] = seconds;
    }
  }
  *p->mutable_phase_seconds() = std::move(phase_seconds);
  if (held_bytes > 0) entry->model.set_held_bytes(held_bytes);
}

}  // namespace gptb::coordinator
