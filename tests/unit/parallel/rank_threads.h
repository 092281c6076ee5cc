#ifndef GPTB_TESTS_UNIT_PARALLEL_RANK_THREADS_H_
#define GPTB_TESTS_UNIT_PARALLEL_RANK_THREADS_H_

// Multi-rank tests in the style of c10d's C++ tests: every rank is a thread of this process,
// each with its own TCPStore client of one server on a free loopback port, over Gloo on
// 127.0.0.1 with short timeouts.

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/parallel/process_group_collection.h"
#include "core/parallel/torch_status.h"
#include "core/plan/rank_topology.h"

namespace gptb::testing {

inline constexpr std::chrono::milliseconds kTestTimeout{10000};

// A TCPStore server on a free port of 127.0.0.1.
class StoreServer {
 public:
  explicit StoreServer(std::chrono::milliseconds timeout = kTestTimeout) {
    c10d::TCPStoreOptions options;
    options.port = 0;
    options.isServer = true;
    options.waitWorkers = false;
    options.timeout = timeout;
    server_ = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  }
  int port() const { return server_->getPort(); }
  // A new client connection (one per rank thread).
  c10::intrusive_ptr<c10d::Store> Client(std::chrono::milliseconds timeout = kTestTimeout) const {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(port());
    options.isServer = false;
    options.timeout = timeout;
    return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  }

 private:
  c10::intrusive_ptr<c10d::TCPStore> server_;
};

// Runs fn(rank, store) for ranks [0, world) on one thread each and joins them. An exception on a
// rank thread is a test failure naming the rank.
inline void RunRanks(int world,
                     const std::function<void(int rank, c10::intrusive_ptr<c10d::Store>)>& fn,
                     std::chrono::milliseconds timeout = kTestTimeout) {
  StoreServer server(timeout);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        fn(rank, server.Client(timeout));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "rank " << rank << ": " << parallel::ExceptionMessage(e);
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

inline plan::RankTopology Topology(int world, int tp, int pp, int cp = 1, int ep = 1, int etp = 1) {
  plan::RankTopology::Options options;
  options.world_size = world;
  options.tensor_model_parallel_size = tp;
  options.pipeline_model_parallel_size = pp;
  options.context_parallel_size = cp;
  options.expert_model_parallel_size = ep;
  options.expert_tensor_parallel_size = etp;
  absl::StatusOr<plan::RankTopology> topology = plan::RankTopology::Create(options);
  if (!topology.ok()) throw std::runtime_error(std::string(topology.status().message()));
  return *std::move(topology);
}

inline parallel::ProcessGroupOptions TestGroupOptions(
    std::chrono::milliseconds timeout = kTestTimeout) {
  parallel::ProcessGroupOptions options;
  options.timeout = timeout;
  options.gloo_threads = 1;
  return options;
}

// The collection of `rank`, or a thrown error (which RunRanks reports).
inline parallel::ProcessGroupCollection MakeGroups(const plan::RankTopology& topology, int rank,
                                                   c10::intrusive_ptr<c10d::Store> store) {
  absl::StatusOr<parallel::ProcessGroupCollection> groups =
      parallel::ProcessGroupCollection::Create(topology, rank, std::move(store),
                                               TestGroupOptions());
  if (!groups.ok()) throw std::runtime_error(groups.status().ToString());
  return *std::move(groups);
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_PARALLEL_RANK_THREADS_H_
