// Process-group setup time per rank: gptbuilder's ProcessGroupCollection (only the groups a rank
// belongs to, each on its own PrefixStore, size-1 groups local) against a baseline modelled on
// Megatron's initialize_model_parallel without use_local_synchronization: every rank takes part in
// the creation of EVERY group of the topology (a store barrier over the whole world per group),
// and members create the same Gloo groups. All ranks are threads of this process on 127.0.0.1.
//
// Usage: process_group_collection_bench [repetitions]   (prints one line per topology)

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/parallel/local_process_group.h"
#include "core/parallel/process_group_collection.h"

namespace {

using gptb::parallel::ProcessGroupCollection;
using gptb::parallel::ProcessGroupOptions;
using gptb::plan::GroupKind;
using gptb::plan::RankTopology;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTimeout{30000};

c10::intrusive_ptr<c10d::TCPStore> Server() {
  c10d::TCPStoreOptions o;
  o.port = 0;
  o.isServer = true;
  o.waitWorkers = false;
  o.timeout = kTimeout;
  return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", o);
}

c10::intrusive_ptr<c10d::Store> Client(int port) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(port);
  o.isServer = false;
  o.timeout = kTimeout;
  return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", o);
}

// Waits until all `count` threads arrived (C++17 has no std::latch).
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (--count_ == 0) cv_.notify_all();
    cv_.wait(lock, [&] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

// Runs fn(rank, store) on every rank; returns the slowest rank's seconds. fn returns what it
// created, held until every rank is done: a rank that tore its groups down at once could close
// connections a slower peer is still handshaking on.
template <typename Fn>
double TimeRanks(int world, Fn fn) {
  auto server = Server();
  std::vector<double> seconds(world);
  std::vector<std::thread> threads;
  Latch done(world);
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      auto store = Client(server->getPort());
      const auto start = Clock::now();
      auto held = fn(rank, store);
      seconds[rank] = std::chrono::duration<double>(Clock::now() - start).count();
      done.ArriveAndWait();
    });
  }
  for (auto& t : threads) t.join();
  return *std::max_element(seconds.begin(), seconds.end());
}

ProcessGroupOptions Options() {
  ProcessGroupOptions o;
  o.timeout = kTimeout;
  return o;
}

double Collection(const RankTopology& topology, int* networked) {
  return TimeRanks(topology.world_size(), [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    auto groups = ProcessGroupCollection::Create(topology, rank, store, Options());
    if (!groups.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", rank, groups.status().ToString().c_str());
      std::exit(1);
    }
    if (rank == 0) *networked = groups->num_networked_groups();
    return *std::move(groups);
  });
}

double Baseline(const RankTopology& topology) {
  const int world = topology.world_size();
  return TimeRanks(world, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    auto device = c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    std::vector<gptb::parallel::ProcessGroupPtr> held;
    int serial = 0;
    for (GroupKind kind : gptb::plan::kAllGroupKinds) {
      for (const std::vector<int>& members : topology.AllGroups(kind)) {
        // The world-wide barrier every new_group call made.
        const std::string key = absl::StrCat("barrier/", serial++);
        if (store->add(key, 1) == world) store->set(key + "/done", std::vector<uint8_t>{1});
        store->wait({key + "/done"});
        auto it = std::find(members.begin(), members.end(), rank);
        if (it == members.end()) continue;
        const int local = static_cast<int>(it - members.begin());
        if (members.size() == 1) {
          held.push_back(c10::make_intrusive<gptb::parallel::LocalProcessGroup>());
          continue;
        }
        auto options = c10d::ProcessGroupGloo::Options::create(kTimeout);
        options->devices = {device};
        auto prefixed = c10::make_intrusive<c10d::PrefixStore>(
            gptb::parallel::GroupStorePrefix("base", kind, members), store);
        const int size = static_cast<int>(members.size());
        auto group = c10::make_intrusive<c10d::ProcessGroup>(prefixed, local, size);
        group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
        group->setBackend(
            c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO,
            c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, local, size, options));
        held.push_back(group);
      }
    }
    return held;
  });
}

RankTopology Make(int world, int tp, int pp, int ep) {
  RankTopology::Options o;
  o.world_size = world;
  o.tensor_model_parallel_size = tp;
  o.pipeline_model_parallel_size = pp;
  o.expert_model_parallel_size = ep;
  o.expert_tensor_parallel_size = 1;
  return *RankTopology::Create(o);
}

}  // namespace

int main(int argc, char** argv) {
  const int repetitions = argc > 1 ? std::atoi(argv[1]) : 3;
  struct Case {
    int world, tp, pp, ep;
  };
  const Case cases[] = {{4, 2, 2, 1}, {8, 2, 2, 1}, {8, 2, 2, 2}, {16, 2, 2, 2}, {16, 4, 2, 1}};
  std::printf("%-26s %8s %14s %14s %8s\n", "topology (networked/all)", "groups", "collection_ms",
              "baseline_ms", "speedup");
  for (const Case& c : cases) {
    const RankTopology topology = Make(c.world, c.tp, c.pp, c.ep);
    int total_groups = 0;
    for (GroupKind kind : gptb::plan::kAllGroupKinds) {
      total_groups += static_cast<int>(topology.AllGroups(kind).size());
    }
    double best_collection = 1e9, best_baseline = 1e9;
    int networked = 0;
    for (int r = 0; r < repetitions; ++r) {
      best_collection = std::min(best_collection, Collection(topology, &networked));
      best_baseline = std::min(best_baseline, Baseline(topology));
    }
    const std::string name = absl::StrCat("w", c.world, " tp", c.tp, " pp", c.pp, " ep", c.ep, " (",
                                          networked, "/", total_groups, ")");
    std::printf("%-26s %8d %14.1f %14.1f %7.1fx\n", name.c_str(), total_groups,
                best_collection * 1e3, best_baseline * 1e3, best_baseline / best_collection);
  }
  return 0;
}
