#ifndef GPTB_TESTS_UNIT_TRAIN_TRAIN_HARNESS_H_
#define GPTB_TESTS_UNIT_TRAIN_TRAIN_HARNESS_H_

// A whole world of ranks in one process (one thread per rank, a TCPStore on a free loopback
// port, Gloo on 127.0.0.1), built and trained together.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/config/finalize.h"
#include "core/model/rank_model.h"
#include "core/train/train_step.h"
#include "gtest/gtest.h"

namespace gptb::testing {

// A tiny GPT-2-style model (golden config A, shorter sequences): 4 layers, hidden 64, 4 heads,
// vocabulary 1000 padded to 1024 for tp 1 and 2, tied embeddings, no dropout, fp32.
inline gptbuilder::v1::GPTModelConfig TinyGpt() {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(64);
  t->set_num_attention_heads(4);
  t->set_ffn_hidden_size(256);
  t->set_normalization("LayerNorm");
  t->set_activation_func("gelu");
  t->set_add_bias_linear(true);
  t->set_hidden_dropout(0.0);
  t->set_attention_dropout(0.0);
  c.set_vocab_size(1000);
  c.set_should_pad_vocab(true);
  c.set_make_vocab_size_divisible_by(128);
  c.set_seq_length(32);
  c.set_position_embedding_type("learned_absolute");
  c.set_share_embeddings_and_output_weights(true);
  c.mutable_transformer_layer_spec()->set_name("local");
  return c;
}

struct Layout {
  int tp = 1, pp = 1, vp = 0, ep = 1, dp = 1;
  int etp = 0;  // expert_tensor_parallel_size; 0: Megatron's default (tp)
  bool sequence_parallel = false;
};

inline int WorldSize(const Layout& l) { return l.tp * l.pp * l.dp; }

inline gptbuilder::v1::GPTModelConfig WithLayout(gptbuilder::v1::GPTModelConfig c,
                                                 const Layout& l) {
  auto* t = c.mutable_transformer();
  t->set_tensor_model_parallel_size(l.tp);
  t->set_pipeline_model_parallel_size(l.pp);
  if (l.vp > 0) {
    t->set_virtual_pipeline_model_parallel_size(l.vp);
  } else {
    t->clear_virtual_pipeline_model_parallel_size();
  }
  t->set_expert_model_parallel_size(l.ep);
  if (l.etp > 0) {
    t->set_expert_tensor_parallel_size(l.etp);
  } else {
    t->clear_expert_tensor_parallel_size();
  }
  t->set_sequence_parallel(l.sequence_parallel);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f =
      config::Finalize(c, config::FinalizeOptions{WorldSize(l)});
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *f : c;
}

struct World {
  c10::intrusive_ptr<c10d::TCPStore> server;  // outlives the ranks' groups
  std::vector<std::unique_ptr<model::RankModel>> ranks;
  std::vector<std::unique_ptr<train::RankTrainer>> trainers;
};

struct WorldOptions {
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  gptbuilder::v1::BuildOptions build;
  std::chrono::milliseconds timeout{30000};
};

// Builds every rank concurrently and gives each a trainer; fails the test on any error.
inline std::unique_ptr<World> BuildWorld(const gptbuilder::v1::GPTModelConfig& config,
                                         int world_size, const WorldOptions& options = {}) {
  auto world = std::make_unique<World>();
  c10d::TCPStoreOptions store;
  store.port = 0;
  store.isServer = true;
  store.waitWorkers = false;
  store.timeout = std::chrono::seconds(30);
  world->server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store);
  world->ranks.resize(world_size);
  std::vector<std::thread> threads;
  std::mutex mu;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      model::RankBuildOptions o;
      o.config = config;
      o.build = options.build;
      o.ddp = options.ddp;
      o.world_size = world_size;
      o.rank = rank;
      o.store_port = world->server->getPort();
      o.store_prefix = "train/";
      o.timeout = options.timeout;
      o.ranks_per_process = world_size;
      auto built = model::BuildRankModel(o);
      std::lock_guard<std::mutex> lock(mu);
      if (!built.ok()) {
        ADD_FAILURE() << "rank " << rank << ": " << built.status();
        return;
      }
      world->ranks[rank] = *std::move(built);
    });
  }
  for (auto& t : threads) t.join();
  for (auto& r : world->ranks) {
    world->trainers.push_back(r ? std::make_unique<train::RankTrainer>(r.get()) : nullptr);
  }
  return world;
}

// Runs fn(rank) on one thread per rank and joins.
template <typename Fn>
void OnEveryRank(int world_size, Fn fn) {
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] { fn(rank); });
  }
  for (auto& t : threads) t.join();
}

// Runs `steps` train steps on every rank; returns each rank's results (a failed step fails the
// test and stops that rank).
inline std::vector<std::vector<train::TrainStepResult>> Train(World& world,
                                                              const train::TrainRequest& request,
                                                              int steps) {
  const int n = static_cast<int>(world.ranks.size());
  std::vector<std::vector<train::TrainStepResult>> results(n);
  OnEveryRank(n, [&](int rank) {
    for (int s = 0; s < steps; ++s) {
      absl::StatusOr<train::TrainStepResult> r = world.trainers[rank]->Step(request);
      if (!r.ok()) {
        ADD_FAILURE() << "rank " << rank << " step " << s << ": " << r.status();
        return;
      }
      results[rank].push_back(*r);
    }
  });
  return results;
}

// A request: synthetic batches (or `tokens`), Adam with clipping, fixed sizes.
inline train::TrainRequest Request(int micro_batch_size, int micro_batches, double lr = 1e-3) {
  train::TrainRequest r;
  r.batch.set_synthetic_seed(7);
  r.options.set_micro_batch_size(micro_batch_size);
  r.options.set_num_micro_batches(micro_batches);
  r.options.mutable_optimizer()->set_lr(lr);
  r.options.mutable_optimizer()->set_clip_grad(1.0);
  return r;
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_TRAIN_TRAIN_HARNESS_H_
