#ifndef GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_
#define GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_

// Builds a whole world of ranks in one process: one thread per rank, a TCPStore server on a free
// loopback port, Gloo groups on 127.0.0.1 (the c10d test style).

#include <torch/torch.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/distributed/distributed_data_parallel.h"
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

// max |a - b| / max |b| (max |a - b| when b is all zero), in float64.
inline double MaxRelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor d = a.to(torch::kFloat64) - b.to(torch::kFloat64);
  const double diff = d.numel() == 0 ? 0.0 : d.abs().max().item<double>();
  const double scale = b.numel() == 0 ? 0.0 : b.abs().max().item<double>();
  return scale > 0.0 ? diff / scale : diff;
}

// Every parameter's gradient (each chunk's DDP main_grad) assembled into its canonical tensor
// (float32) from the slices the ranks hold. Copies held by several ranks (replicas,
// tensor-parallel copies of unsharded tensors, tied embedding copies) must agree within
// `tolerance` (MaxRelativeError): a copy that differs is a gradient left partial per rank, and
// fails the test naming the tensor.
inline std::map<std::string, torch::Tensor> CanonicalGradients(const World& world, double tolerance,
                                                               const std::string& what) {
  std::map<std::string, torch::Tensor> out, covered;
  for (size_t r = 0; r < world.ranks.size(); ++r) {
    const model::RankModel& rank = *world.ranks[r];
    for (size_t c = 0; c < rank.stages().size(); ++c) {
      const auto& stage = rank.stages()[c];
      size_t i = 0;
      for (const auto& item : stage->named_parameters()) {
        const plan::ParamInfo& info = stage->plan().params.at(i++);
        const distributed::DistributedDataParallel* ddp = rank.ddp(static_cast<int>(c));
        torch::Tensor grad =
            (ddp ? ddp->main_grad(item.key()) : item.value().grad()).detach().to(torch::kFloat32);
        if (!grad.defined()) {
          ADD_FAILURE() << what << ": " << info.canonical_name << " has no gradient";
          continue;
        }
        torch::Tensor& full = out[info.canonical_name];
        torch::Tensor& seen = covered[info.canonical_name];
        if (!full.defined()) {
          full = torch::zeros(info.canonical_shape, torch::kFloat32);
          seen = torch::zeros(info.canonical_shape, torch::kBool);
        }
        std::vector<std::array<torch::Tensor, 3>> blocks;  // canonical block, seen, local
        if (info.partition_dim < 0) {
          blocks.push_back({full, seen, grad});
        } else {
          int64_t local = 0;
          for (const plan::Piece& piece : info.pieces) {
            const int d = info.partition_dim;
            blocks.push_back({full.narrow(d, piece.start, piece.length),
                              seen.narrow(d, piece.start, piece.length),
                              grad.narrow(d, local, piece.length)});
            local += piece.length;
          }
        }
        for (auto& [target, mask, source] : blocks) {
          if (mask.any().item<bool>()) {
            const double e = MaxRelativeError(source, target);
            EXPECT_LE(e, tolerance) << what << ": the copies of " << info.canonical_name
                                    << "'s gradient differ (max relative " << e << ", rank " << r
                                    << "): a gradient left partial per rank";
            continue;
          }
          target.copy_(source);
          mask.fill_(true);
        }
      }
    }
  }
  for (const auto& [name, seen] : covered) {
    EXPECT_TRUE(seen.all().item<bool>()) << what << ": " << name << " not fully held";
  }
  return out;
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_MODEL_RANK_HARNESS_H_
