#ifndef GPTB_CORE_PARALLEL_PROCESS_GROUP_COLLECTION_H_
#define GPTB_CORE_PARALLEL_PROCESS_GROUP_COLLECTION_H_

#include <c10/core/Device.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "core/plan/rank_topology.h"

namespace gptb::parallel {

using ProcessGroupPtr = c10::intrusive_ptr<c10d::ProcessGroup>;
using StorePtr = c10::intrusive_ptr<c10d::Store>;

// Which c10d backend carries the collectives. kNccl exists only in builds with GPTB_WITH_CUDA;
// asking for it elsewhere is FAILED_PRECONDITION.
enum class Backend { kGloo, kNccl };
const char* BackendName(Backend backend);  // "gloo", "nccl"

struct ProcessGroupOptions {
  // One timeout for the store and every group: rendezvous, collectives and p2p all give up
  // after it (Megatron's subgroups silently keep a 10-30 minute default; here nothing does).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  Backend backend = Backend::kGloo;
  // Gloo's transport address: `gloo_interface` (e.g. "eth0") when set, else `gloo_hostname`
  // (an address or a resolvable name of this host; the worker passes its own).
  std::string gloo_hostname = "127.0.0.1";
  std::string gloo_interface;
  // Worker threads per Gloo group (c10d's default is 2).
  int gloo_threads = 2;
  // The CUDA device index of this rank (NCCL only).
  int cuda_device = 0;
  // Namespace of the rendezvous keys on the store. Collections built over the same store at the
  // same time (two builds) must use different prefixes, or wrap the store in a PrefixStore.
  std::string key_prefix = "gptb/pg";
};

// The c10d store key prefix of a group: derived from the group kind and its members only, so all
// members agree without coordination and no two groups of a topology share keys. Member lists
// longer than 16 ranks are abbreviated to first, last, count and a hash of the list.
std::string GroupStorePrefix(const std::string& key_prefix, plan::GroupKind kind,
                             const std::vector<int>& members);

// The process groups ONE rank belongs to (Megatron's ProcessGroupCollection), created over a
// shared c10d store: each group on its own PrefixStore, groups of one rank without any network
// setup. Ranks of a group must create it with the same topology, options and store.
//
// Each rank needs its own store client (one TCPStore connection per rank thread): a TCPStore
// client serialises its blocking waits, so ranks sharing one would block each other's
// rendezvous until the timeout. An in-process HashStore may be shared.
//
// Thread safety: the accessors are const and safe from any thread; c10d groups themselves may be
// used from one thread per group at a time (collectives on a group are ordered).
class ProcessGroupCollection {
 public:
  // Creates the groups `rank` belongs to, in the fixed order of plan::kAllGroupKinds (every
  // member follows the same order, so creation cannot deadlock). Applies options.timeout to
  // `store` as well. Errors: INVALID_ARGUMENT for a bad rank/store/option, FAILED_PRECONDITION
  // for a backend this build lacks, DEADLINE_EXCEEDED when a peer does not join a group within
  // the timeout, UNAVAILABLE when the store cannot be reached or a peer closed its connection. On
  // error every group created so far is released (their threads joined) before returning. On
  // success this rank's side of each group is connected; a slower peer may still be finishing its
  // side, so destroying the groups right away (without a collective first) can fail that peer's
  // Create.
  static absl::StatusOr<ProcessGroupCollection> Create(const plan::RankTopology& topology, int rank,
                                                       StorePtr store,
                                                       const ProcessGroupOptions& options);

  ProcessGroupCollection(ProcessGroupCollection&&) noexcept;
  ProcessGroupCollection& operator=(ProcessGroupCollection&&) noexcept;
  ProcessGroupCollection(const ProcessGroupCollection&) = delete;
  ProcessGroupCollection& operator=(const ProcessGroupCollection&) = delete;
  ~ProcessGroupCollection();

  int global_rank() const { return rank_; }
  int world_size() const { return world_size_; }
  Backend backend() const { return backend_; }
  // The device collectives run on: CPU for Gloo, cuda:<cuda_device> for NCCL.
  c10::Device device() const { return device_; }

  // Whether this rank belongs to a group of `kind` (false only for embd / pos_embd on middle
  // pipeline ranks, and after Shutdown()).
  bool has(plan::GroupKind kind) const;
  // The group of `kind`; null when the rank has none.
  const ProcessGroupPtr& group(plan::GroupKind kind) const;
  // Group-local size and rank; 0 and -1 when the rank has no group of `kind`.
  int size(plan::GroupKind kind) const;
  int rank(plan::GroupKind kind) const;
  // Global ranks of the group, in Megatron's member order (group-local rank = index).
  const std::vector<int>& members(plan::GroupKind kind) const;

  // Wall time Create() spent, in seconds: in total and per group kind (0 for absent groups).
  double creation_seconds() const { return creation_seconds_; }
  double creation_seconds(plan::GroupKind kind) const;
  // Groups that needed a rendezvous (size > 1); the others are local.
  int num_networked_groups() const;

  // Drops this collection's references to its groups. A group is destroyed, and its worker
  // threads joined, when its last holder (this collection, a DDP wrapper...) lets go; Gloo work
  // in flight ends with an error after at most the timeout, so no thread outlives that.
  void Shutdown();

 private:
  struct Entry {
    ProcessGroupPtr group;
    std::vector<int> members;
    int rank = -1;
    double seconds = 0.0;
  };
  static constexpr size_t kNumKinds = plan::kAllGroupKinds.size();

  ProcessGroupCollection() = default;
  const Entry& entry(plan::GroupKind kind) const { return entries_[static_cast<size_t>(kind)]; }

  int rank_ = 0;
  int world_size_ = 0;
  Backend backend_ = Backend::kGloo;
  c10::Device device_{c10::kCPU};
  std::array<Entry, kNumKinds> entries_;
  double creation_seconds_ = 0.0;
};

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_PROCESS_GROUP_COLLECTION_H_
