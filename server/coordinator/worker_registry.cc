#include "server/coordinator/worker_registry.h"

#include <set>

#include "google/protobuf/util/time_util.h"

namespace gptb::coordinator {
namespace {

using google::protobuf::util::TimeUtil;
using gptbuilder::v1::WorkerInfo;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

void WorkerRegistry::Register(const gptbuilder::v1::RegisterWorkerRequest& request,
                              absl::Time now) {
  Record record;
  WorkerInfo& w = record.info;
  w.set_name(request.name());
  w.set_address(request.address());
  w.set_state(WorkerInfo::READY);
  w.set_version(request.version());
  for (int i = 0; i < request.slots_size(); ++i) {
    gptbuilder::v1::Slot* slot = w.add_slots();
    slot->set_index(request.slots(i).index());
    slot->set_device(request.slots(i).device());
    slot->set_memory_bytes(request.slots(i).memory_bytes());
    slot->set_threads(request.slots(i).threads());
  }
  *w.mutable_register_time() = ToProto(now);
  *w.mutable_last_heartbeat() = ToProto(now);
  record.last_heartbeat = now;
  workers_[request.name()] = std::move(record);
}

bool WorkerRegistry::Heartbeat(const std::string& name, absl::Time now) {
  auto it = workers_.find(name);
  if (it == workers_.end()) return false;
  it->second.last_heartbeat = now;
  *it->second.info.mutable_last_heartbeat() = ToProto(now);
  it->second.info.set_state(WorkerInfo::READY);
  return true;
}

std::vector<std::string> WorkerRegistry::SweepLost(absl::Time now, absl::Duration timeout) {
  std::vector<std::string> lost;
  for (auto& [name, record] : workers_) {
    if (record.info.state() == WorkerInfo::READY && now - record.last_heartbeat > timeout) {
      record.info.set_state(WorkerInfo::LOST);
      lost.push_back(name);
    }
  }
  return lost;
}

std::vector<std::string> WorkerRegistry::ForgetLost(absl::Time now, absl::Duration timeout,
                                                    absl::Duration retention) {
  std::vector<std::string> forgotten;
  for (auto it = workers_.begin(); it != workers_.end();) {
    const Record& record = it->second;
    bool holds = false;
    for (const gptbuilder::v1::Slot& slot : record.info.slots()) holds |= !slot.model().empty();
    if (record.info.state() == WorkerInfo::LOST && !holds &&
        now - record.last_heartbeat > timeout + retention) {
      forgotten.push_back(it->first);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  return forgotten;
}

void WorkerRegistry::Remove(const std::string& name) { workers_.erase(name); }

const WorkerInfo* WorkerRegistry::Find(const std::string& name) const {
  auto it = workers_.find(name);
  return it == workers_.end() ? nullptr : &it->second.info;
}

bool WorkerRegistry::IsReady(const std::string& name) const {
  const WorkerInfo* w = Find(name);
  return w != nullptr && w->state() == WorkerInfo::READY;
}

std::vector<WorkerCapacity> WorkerRegistry::Capacity() const {
  std::vector<WorkerCapacity> out;
  for (const auto& [name, record] : workers_) {
    if (record.info.state() != WorkerInfo::READY) continue;
    WorkerCapacity capacity;
    capacity.worker = name;
    for (const gptbuilder::v1::Slot& slot : record.info.slots()) {
      capacity.slots.push_back(
          {slot.index(), slot.device(), slot.memory_bytes(), slot.model().empty()});
    }
    out.push_back(std::move(capacity));
  }
  return out;
}

int WorkerRegistry::ReadyCount() const {
  int n = 0;
  for (const auto& [name, record] : workers_) n += record.info.state() == WorkerInfo::READY ? 1 : 0;
  return n;
}

void WorkerRegistry::Occupy(const gptbuilder::v1::RankPlacement& placement,
                            const std::string& model) {
  auto it = workers_.find(placement.worker());
  if (it == workers_.end()) return;
  for (gptbuilder::v1::Slot& slot : *it->second.info.mutable_slots()) {
    if (slot.index() == placement.slot()) {
      slot.set_model(model);
      slot.set_rank(placement.rank());
    }
  }
}

void WorkerRegistry::FreeModel(const std::string& model) {
  for (auto& [name, record] : workers_) {
    for (gptbuilder::v1::Slot& slot : *record.info.mutable_slots()) {
      if (slot.model() == model) {
        slot.clear_model();
        slot.clear_rank();
      }
    }
  }
}

std::vector<std::string> WorkerRegistry::ModelsOn(const std::string& worker) const {
  std::set<std::string> models;
  const WorkerInfo* w = Find(worker);
  if (w == nullptr) return {};
  for (const gptbuilder::v1::Slot& slot : w->slots()) {
    if (!slot.model().empty()) models.insert(slot.model());
  }
  return {models.begin(), models.end()};
}

std::vector<WorkerInfo> WorkerRegistry::List() const {
  std::vector<WorkerInfo> out;
  for (const auto& [name, record] : workers_) out.push_back(record.info);
  return out;
}

std::map<std::string, double> WorkerRegistry::HeartbeatAges(absl::Time now) const {
  std::map<std::string, double> out;
  for (const auto& [name, record] : workers_) {
    out[name] = absl::ToDoubleSeconds(now - record.last_heartbeat);
  }
  return out;
}

}  // namespace gptb::coordinator
