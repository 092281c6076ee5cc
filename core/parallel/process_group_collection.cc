#include "core/parallel/process_group_collection.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <utility>
#ifdef GPTB_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/parallel/local_process_group.h"
#include "core/parallel/torch_status.h"

namespace gptb::parallel {
namespace {

using plan::GroupKind;

// What the backend seam decides: the device collectives run on and how a networked group is
// made. Called once per collection; the factory may be called once per group (size > 1).
struct BackendChoice {
  c10::Device device{c10::kCPU};
  std::function<ProcessGroupPtr(const StorePtr& store, int rank, int size)> create;
};

// A c10d backend (ProcessGroupGloo, ProcessGroupNCCL) is not a ProcessGroup since LibTorch 2.0:
// the group fronts one backend per device type and routes each collective to it.
ProcessGroupPtr GroupOf(const StorePtr& store, int rank, int size, c10::DeviceType device,
                        c10d::ProcessGroup::BackendType type,
                        c10::intrusive_ptr<c10d::Backend> backend) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, size);
  group->setDefaultBackend(type);
  group->setBackend(device, type, std::move(backend));
  return group;
}

// The backend seam: the only place that names a c10d backend or a device type.
absl::StatusOr<BackendChoice> ChooseBackend(const ProcessGroupOptions& options) {
  BackendChoice choice;
  switch (options.backend) {
    case Backend::kGloo: {
      // One transport device (one listening socket and event loop) for all groups of the rank.
      auto device = std::make_shared<std::shared_ptr<::gloo::transport::Device>>();
      choice.device = c10::Device(c10::kCPU);
      choice.create = [options, device](const StorePtr& store, int rank, int size) {
        if (*device == nullptr) {
          *device = options.gloo_interface.empty()
                        ? c10d::ProcessGroupGloo::createDeviceForHostname(options.gloo_hostname)
                        : c10d::ProcessGroupGloo::createDeviceForInterface(options.gloo_interface);
        }
        auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
        gloo_options->devices = {*device};
        gloo_options->threads = options.gloo_threads;
        return GroupOf(
            store, rank, size, c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO,
            c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options));
      };
      return choice;
    }
    case Backend::kNccl: {
#ifdef GPTB_WITH_CUDA
      choice.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.cuda_device));
      choice.create = [options](const StorePtr& store, int rank, int size) {
        auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
        nccl_options->timeout = options.timeout;
        return GroupOf(
            store, rank, size, c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL,
            c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl_options));
      };
      return choice;
#else
      return absl::FailedPreconditionError(
          "backend nccl needs a build with -DGPTB_WITH_CUDA=ON against a CUDA LibTorch; this "
          "build supports gloo only");
#endif
    }
  }
  return absl::InvalidArgumentError("unknown process group backend");
}

std::string MembersText(const std::vector<int>& members) {
  return absl::StrCat("[", absl::StrJoin(members, ","), "]");
}

}  // namespace

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kGloo:
      return "gloo";
    case Backend::kNccl:
      return "nccl";
  }
  return "?";
}

std::string GroupStorePrefix(const std::string& key_prefix, GroupKind kind,
                             const std::vector<int>& members) {
  std::string ranks;
  if (members.size() <= 16) {
    ranks = absl::StrJoin(members, ",");
  } else {
    // FNV-1a over the member list: long groups (dp over 1000 ranks) keep short keys.
    uint64_t hash = 1469598103934665603ull;
    for (int m : members) {
      for (int b = 0; b < 4; ++b) {
        hash ^= static_cast<uint64_t>((static_cast<uint32_t>(m) >> (8 * b)) & 0xff);
        hash *= 1099511628211ull;
      }
    }
    ranks = absl::StrCat(members.front(), "..", members.back(), ",n", members.size(), ",h",
                         absl::Hex(hash));
  }
  return absl::StrCat(key_prefix, "/", plan::GroupName(kind), "/", ranks, "/");
}

absl::StatusOr<ProcessGroupCollection> ProcessGroupCollection::Create(
    const plan::RankTopology& topology, int rank, StorePtr store,
    const ProcessGroupOptions& options) {
  if (rank < 0 || rank >= topology.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside the world of ", topology.world_size(), " ranks"));
  }
  if (!store) return absl::InvalidArgumentError("process groups need a c10d store; got null");
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("process group timeout must be positive; got ",
                                                   options.timeout.count(), " ms"));
  }
  if (options.gloo_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo_threads must be at least 1; got ", options.gloo_threads));
  }
  absl::StatusOr<BackendChoice> backend = ChooseBackend(options);
  if (!backend.ok()) return backend.status();

  const auto start = std::chrono::steady_clock::now();
  ProcessGroupCollection collection;
  collection.rank_ = rank;
  collection.world_size_ = topology.world_size();
  collection.backend_ = options.backend;
  collection.device_ = backend->device;
  absl::Status status =
      CallTorch("process group store", [&] { store->setTimeout(options.timeout); });
  if (!status.ok()) return status;

  for (GroupKind kind : plan::kAllGroupKinds) {
    Entry& entry = collection.entries_[static_cast<size_t>(kind)];
    entry.members = topology.Group(kind, rank);
    if (entry.members.empty()) continue;
    const auto group_start = std::chrono::steady_clock::now();
    const int size = static_cast<int>(entry.members.size());
    for (int i = 0; i < size; ++i) {
      if (entry.members[i] == rank) entry.rank = i;
    }
    if (entry.rank < 0) {
      return absl::InternalError(absl::StrCat("topology gives rank ", rank, " the ",
                                              plan::GroupName(kind), " group ",
                                              MembersText(entry.members), " without it"));
    }
    if (size == 1) {
      entry.group = c10::make_intrusive<LocalProcessGroup>();
    } else {
      const std::string what = absl::StrCat(
          "creating ", BackendName(options.backend), " process group ", plan::GroupName(kind),
          " (global ranks ", MembersText(entry.members), ", this rank ", entry.rank, " of ", size,
          ", timeout ", options.timeout.count(), " ms)");
      absl::StatusOr<ProcessGroupPtr> group = CallTorchOr(what, [&] {
        auto group_store = c10::make_intrusive<c10d::PrefixStore>(
            GroupStorePrefix(options.key_prefix, kind, entry.members), store);
        return backend->create(group_store, entry.rank, size);
      });
      // Returning drops `collection`, which releases the groups created so far.
      if (!group.ok()) return group.status();
      entry.group = *std::move(group);
    }
    entry.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - group_start).count();
  }
  collection.creation_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return collection;
}

ProcessGroupCollection::ProcessGroupCollection(ProcessGroupCollection&&) noexcept = default;
ProcessGroupCollection& ProcessGroupCollection::operator=(ProcessGroupCollection&&) noexcept =
    default;
ProcessGroupCollection::~ProcessGroupCollection() { Shutdown(); }

bool ProcessGroupCollection::has(GroupKind kind) const { return entry(kind).group.defined(); }

const ProcessGroupPtr& ProcessGroupCollection::group(GroupKind kind) const {
  return entry(kind).group;
}

int ProcessGroupCollection::size(GroupKind kind) const {
  return has(kind) ? static_cast<int>(entry(kind).members.size()) : 0;
}

int ProcessGroupCollection::rank(GroupKind kind) const { return has(kind) ? entry(kind).rank : -1; }

const std::vector<int>& ProcessGroupCollection::members(GroupKind kind) const {
  return entry(kind).members;
}

double ProcessGroupCollection::creation_seconds(GroupKind kind) const {
  return entry(kind).seconds;
}

int ProcessGroupCollection::num_networked_groups() const {
  int n = 0;
  for (const Entry& e : entries_) n += (e.group.defined() && e.members.size() > 1) ? 1 : 0;
  return n;
}

void ProcessGroupCollection::Shutdown() {
  // Destroy in reverse creation order; a Gloo group's destructor joins its worker threads.
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) it->group.reset();
}

}  // namespace gptb::parallel
