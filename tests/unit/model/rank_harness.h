#ifndef GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_
#define GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_

// Builds a whole world of ranks in one process: one thread per rank, a TCPStore server on a free
// loopback port, Gloo groups on 127.0.0.1 (the c10d test style).

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "core/model/rank_model.h"
#include "gtest/gtest.h"

namespace gptb::testing {

struct World {
  std::vector<std::unique_ptr<model::RankModel>> ranks;
  c10::intrusive_ptr<c10d::TCPStore> server;  // kept alive while the ranks use their groups
};

inline c10::intrusive_ptr<c10d::TCPStore> StartStore() {
  c10d::TCPStoreOptions options;
  options.port = 0;
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(30);
  return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
}

// Builds every rank of `world_size` concurrently; fails the test on any rank's error.
inline World BuildWorld(const gptbuilder::v1::GPTModelConfig& config, int world_size,
                        gptbuilder::v1::BuildOptions build = {},
                        gptbuilder::v1::DistributedDataParallelConfig ddp = {}) {
  World world;
  world.server = StartStore();
  world.ranks.resize(world_size);
  std::vector<std::thread> threads;
  std::mutex mu;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      model::RankBuildOptions options;
      options.config = config;
      options.build = build;
      options.ddp = ddp;
      options.world_size = world_size;
      options.rank = rank;
      options.store_port = world.server->getPort();
      options.store_prefix = "test/";
      options.timeout = std::chrono::seconds(30);
      options.ranks_per_process = world_size;
      absl::StatusOr<std::unique_ptr<model::RankModel>> built = model::BuildRankModel(options);
      std::lock_guard<std::mutex> lock(mu);
      if (!built.ok()) {
        ADD_FAILURE() << "rank " << rank << ": " << built.status();
        return;
      }
      world.ranks[rank] = *std::move(built);
    });
  }
  for (auto& t : threads) t.join();
  return world;
}

// Runs fn(rank) on one thread per rank and joins.
template <typename Fn>
void OnEveryRank(int world_size, Fn fn) {
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        fn(rank);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "rank " << rank << ": " << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_
