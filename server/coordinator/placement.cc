#include "server/coordinator/placement.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/config/violations.h"
#include "core/plan/plan_format.h"
#include "rpc/status_details.h"

namespace gptb::coordinator {
namespace {

using gptbuilder::v1::RankPlacement;
using plan::HumanBytes;

constexpr size_t kMaxListedViolations = 8;

// The free slot of `worker` that holds `bytes` with the least budget to spare.
std::optional<size_t> BestSlot(const WorkerCapacity& worker, int64_t bytes) {
  std::optional<size_t> best;
  for (size_t i = 0; i < worker.slots.size(); ++i) {
    const SlotCapacity& slot = worker.slots[i];
    if (!slot.free || slot.memory_bytes < bytes) continue;
    if (!best.has_value() || slot.memory_bytes < worker.slots[*best].memory_bytes) best = i;
  }
  return best;
}

int FreeSlots(const WorkerCapacity& worker) {
  int n = 0;
  for (const SlotCapacity& slot : worker.slots) n += slot.free ? 1 : 0;
  return n;
}

// Places every rank of `group` on `worker` when it can hold all of them; changes nothing and
// returns false otherwise.
bool PlaceGroupOn(const std::vector<int>& group, const std::vector<int64_t>& rank_bytes,
                  WorkerCapacity* worker, std::vector<RankPlacement>* out) {
  WorkerCapacity trial = *worker;
  std::vector<RankPlacement> placed;
  // Largest ranks first, so that a big rank is not starved by a small one taking its slot.
  std::vector<int> order = group;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return rank_bytes[a] > rank_bytes[b]; });
  for (int rank : order) {
    std::optional<size_t> slot = BestSlot(trial, rank_bytes[rank]);
    if (!slot.has_value()) return false;
    trial.slots[*slot].free = false;
    RankPlacement p;
    p.set_rank(rank);
    p.set_worker(trial.worker);
    p.set_slot(trial.slots[*slot].index);
    p.set_device(trial.slots[*slot].device);
    p.set_planned_bytes(rank_bytes[rank]);
    placed.push_back(std::move(p));
  }
  *worker = std::move(trial);
  out->insert(out->end(), placed.begin(), placed.end());
  return true;
}

// The device type of a slot: "cuda" for "cuda:3", "cpu" for "cpu".
std::string DeviceType(const std::string& device) { return device.substr(0, device.find(':')); }

// The workers with only their slots of `type`.
std::vector<WorkerCapacity> SlotsOfType(const std::vector<WorkerCapacity>& workers,
                                        const std::string& type) {
  std::vector<WorkerCapacity> out;
  for (const WorkerCapacity& w : workers) {
    WorkerCapacity kept{w.worker, {}};
    for (const SlotCapacity& s : w.slots) {
      if (DeviceType(s.device) == type) kept.slots.push_back(s);
    }
    out.push_back(std::move(kept));
  }
  return out;
}

int RegisteredSlots(const std::vector<WorkerCapacity>& workers) {
  int n = 0;
  for (const WorkerCapacity& w : workers) n += static_cast<int>(w.slots.size());
  return n;
}

}  // namespace

absl::StatusOr<std::vector<RankPlacement>> PlaceRanks(const PlacementRequest& request,
                                                      const std::vector<WorkerCapacity>& all) {
  const int world = static_cast<int>(request.rank_bytes.size());
  std::string device = request.device;
  if (device != "" && device != "cpu" && device != "cuda") {
    config::Violations violations;
    violations.Add("device", "UNKNOWN_DEVICE_TYPE",
                   absl::StrCat("'", device,
                                "' is not a device type: use cpu, cuda, or leave it "
                                "empty (cuda when every rank has a registered CUDA slot, else "
                                "cpu)"));
    return violations.ToStatus();
  }
  if (device.empty()) device = RegisteredSlots(SlotsOfType(all, "cuda")) >= world ? "cuda" : "cpu";
  const std::vector<WorkerCapacity> workers = SlotsOfType(all, device);
  int registered = 0, free = 0;
  int64_t largest_budget = 0;
  for (const WorkerCapacity& w : workers) {
    registered += static_cast<int>(w.slots.size());
    free += FreeSlots(w);
    for (const SlotCapacity& s : w.slots) largest_budget = std::max(largest_budget, s.memory_bytes);
  }
  if (registered < world) {
    const int other = RegisteredSlots(all) - registered;
    std::string hint =
        "start more workers (or give them more --slots), or build with a smaller world size";
    if (device == "cuda") {
      hint = absl::StrCat(
          "workers register CUDA slots when they run a -DGPTB_WITH_CUDA=ON build and see CUDA "
          "devices",
          other > 0 ? absl::StrCat("; ", other,
                                   " cpu slots are registered (build "
                                   "with device cpu to use them)")
                    : "");
    }
    return rpc::PreconditionFailedError(
        "NOT_ENOUGH_SLOTS",
        absl::StrCat("the model needs ", world, " ", device, " slots (one per rank) but ",
                     registered, " are registered on ", workers.size(), " live workers; ", hint),
        {{"WORKERS", "slots",
          absl::StrCat(world, " ", device, " slots needed, ", registered, " registered")}});
  }

  std::vector<rpc::QuotaViolation> too_large;
  for (int rank = 0; rank < world; ++rank) {
    if (request.rank_bytes[rank] > largest_budget && too_large.size() < kMaxListedViolations) {
      too_large.push_back({absl::StrCat("rank ", rank),
                           absl::StrCat("needs ", HumanBytes(request.rank_bytes[rank]),
                                        "; the largest slot holds ", HumanBytes(largest_budget))});
    }
  }
  if (!too_large.empty()) {
    return rpc::ResourceExhaustedError(
        "RANK_TOO_LARGE",
        absl::StrCat(too_large.front().subject, " ", too_large.front().description,
                     "; use more tensor/pipeline parallelism, a smaller model, or workers with a "
                     "larger --slot-memory-bytes"),
        too_large);
  }
  if (free < world) {
    return rpc::ResourceExhaustedError(
        "NOT_ENOUGH_FREE_SLOTS",
        absl::StrCat("the model needs ", world, " slots but only ", free, " of ", registered,
                     " are free; release a model or add workers"),
        {{"slots", absl::StrCat(world, " needed, ", free, " free")}});
  }

  std::vector<WorkerCapacity> state = workers;
  std::vector<RankPlacement> placed;
  for (const std::vector<int>& group : request.tp_groups) {
    // Best fit: the worker with the fewest free slots that still holds the whole group.
    std::vector<size_t> order(state.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return FreeSlots(state[a]) < FreeSlots(state[b]); });
    bool done = false;
    for (size_t i : order) {
      if (FreeSlots(state[i]) >= static_cast<int>(group.size()) &&
          PlaceGroupOn(group, request.rank_bytes, &state[i], &placed)) {
        done = true;
        break;
      }
    }
    if (done) continue;
    // No single worker holds it: spread it, each rank on the worker with the most free slots.
    for (int rank : group) {
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return FreeSlots(state[a]) > FreeSlots(state[b]);
      });
      bool rank_done = false;
      for (size_t i : order) {
        if (PlaceGroupOn({rank}, request.rank_bytes, &state[i], &placed)) {
          rank_done = true;
          break;
        }
      }
      if (!rank_done) {
        return rpc::ResourceExhaustedError(
            "NOT_ENOUGH_SLOT_MEMORY",
            absl::StrCat("no free slot can hold rank ", rank, " (",
                         HumanBytes(request.rank_bytes[rank]),
                         "); release a model or add workers with a larger --slot-memory-bytes"),
            {{absl::StrCat("rank ", rank),
              absl::StrCat("needs ", HumanBytes(request.rank_bytes[rank]))}});
      }
    }
  }
  std::sort(placed.begin(), placed.end(),
            [](const RankPlacement& a, const RankPlacement& b) { return a.rank() < b.rank(); });
  return placed;
}

}  // namespace gptb::coordinator
