#ifndef GPTB_TESTS_UNIT_CHECKPOINT_CHECKPOINT_HARNESS_H_
#define GPTB_TESTS_UNIT_CHECKPOINT_CHECKPOINT_HARNESS_H_

// Whole worlds of ranks in one process (a thread per rank, Gloo on 127.0.0.1) for checkpoint
// tests: build with load options, save from every rank, assemble canonical tensors from the
// shards, run the pipeline forward.

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/checkpoint/canonical_checkpoint.h"
#include "core/config/finalize.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/pipeline_p2p.h"
#include "tests/unit/model/rank_harness.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::testing {

struct Layout {
  int tp = 1, pp = 1, vp = 0, ep = 1;
};

inline std::string LayoutName(const Layout& l) {
  return "tp" + std::to_string(l.tp) + "_pp" + std::to_string(l.pp) + "_vp" + std::to_string(l.vp) +
         "_ep" + std::to_string(l.ep);
}

inline void SetLayout(gptbuilder::v1::GPTModelConfig& c, const Layout& layout) {
  auto* t = c.mutable_transformer();
  t->set_tensor_model_parallel_size(layout.tp);
  t->set_pipeline_model_parallel_size(layout.pp);
  if (layout.vp > 0) {
    t->set_virtual_pipeline_model_parallel_size(layout.vp);
  } else {
    t->clear_virtual_pipeline_model_parallel_size();
  }
  t->set_expert_model_parallel_size(layout.ep);
  t->clear_expert_tensor_parallel_size();
  t->clear_num_layers_in_first_pipeline_stage();
}

// A golden model (A: GPT-2-like, B: Llama-like GQA, D: MoE) in `layout`, without dropout.
inline gptbuilder::v1::GPTModelConfig GoldenConfig(const std::string& golden,
                                                   const Layout& layout) {
  gptbuilder::v1::GPTModelConfig c = GoldenUserConfig(LoadGolden(golden));
  SetLayout(c, layout);
  c.mutable_transformer()->set_hidden_dropout(0.0);
  c.mutable_transformer()->set_attention_dropout(0.0);
  return c;
}

inline int WorldSize(const gptbuilder::v1::GPTModelConfig& c) {
  const auto& t = c.transformer();
  const int model = t.tensor_model_parallel_size() * t.pipeline_model_parallel_size();
  const int expert = t.expert_model_parallel_size() * t.tensor_model_parallel_size() *
                     t.pipeline_model_parallel_size();
  return std::max(model, expert);
}

inline gptbuilder::v1::GPTModelConfig Finalized(const gptbuilder::v1::GPTModelConfig& c,
                                                int world) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = config::Finalize(c, {world});
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *f : c;
}

struct BuiltWorld {
  World world;
  std::vector<absl::Status> statuses;  // per rank
  bool ok() const {
    for (const auto& s : statuses) {
      if (!s.ok()) return false;
    }
    return true;
  }
};

// Builds every rank; `customize` edits each rank's options (load_from, seed...). Errors are
// returned per rank, not reported as failures.
inline BuiltWorld BuildWith(const gptbuilder::v1::GPTModelConfig& config, int world_size,
                            const std::function<void(model::RankBuildOptions&)>& customize = {}) {
  BuiltWorld out;
  out.world.server = StartStore();
  out.world.ranks.resize(world_size);
  out.statuses.resize(world_size);
  std::vector<std::thread> threads;
  std::mutex mu;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      model::RankBuildOptions options;
      options.config = config;
      options.world_size = world_size;
      options.rank = rank;
      options.store_port = out.world.server->getPort();
      options.store_prefix = "test/";
      options.timeout = std::chrono::seconds(30);
      options.ranks_per_process = world_size;
      if (customize) customize(options);
      absl::StatusOr<std::unique_ptr<model::RankModel>> built = model::BuildRankModel(options);
      std::lock_guard<std::mutex> lock(mu);
      out.statuses[rank] = built.status();
      if (built.ok()) out.world.ranks[rank] = *std::move(built);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// SaveCheckpoint on every rank at once; the per-rank results.
inline std::vector<absl::StatusOr<checkpoint::SaveStats>> SaveWorld(
    const World& world, const std::string& path, const checkpoint::SaveOptions& options = {}) {
  std::vector<absl::StatusOr<checkpoint::SaveStats>> results(world.ranks.size(),
                                                             absl::UnknownError("not run"));
  OnEveryRank(static_cast<int>(world.ranks.size()), [&](int r) {
    results[r] = checkpoint::SaveCheckpoint(*world.ranks[r], path, options);
  });
  return results;
}

// Every canonical tensor assembled from the shards the ranks hold; replicas must agree.
inline std::map<std::string, torch::Tensor> Canonical(const World& world) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& rank : world.ranks) {
    for (const auto& stage : rank->stages()) {
      size_t i = 0;
      for (const auto& item : stage->named_parameters()) {
        const plan::ParamInfo& info = stage->plan().params[i++];
        const torch::Tensor value = item.value().detach();
        torch::Tensor& full = out[info.canonical_name];
        if (!full.defined()) full = torch::full(info.canonical_shape, NAN, value.options());
        if (info.partition_dim < 0) {
          if (!torch::isnan(full).all().item<bool>()) {
            EXPECT_TRUE(torch::equal(full, value)) << info.canonical_name << " replicas differ";
          }
          full.copy_(value);
          continue;
        }
        int64_t local = 0;
        for (const plan::Piece& piece : info.pieces) {
          torch::Tensor target = full.narrow(info.partition_dim, piece.start, piece.length);
          torch::Tensor source = value.narrow(info.partition_dim, local, piece.length);
          if (!torch::isnan(target).all().item<bool>()) {
            EXPECT_TRUE(torch::equal(target, source)) << info.canonical_name << " replicas differ";
          }
          target.copy_(source);
          local += piece.length;
        }
      }
    }
  }
  for (const auto& [name, tensor] : out) {
    EXPECT_FALSE(torch::isnan(tensor).any().item<bool>()) << name << " not fully covered";
  }
  return out;
}

// Asserts two canonical maps hold the same names and bit-identical tensors.
inline void ExpectSameCanonical(const std::map<std::string, torch::Tensor>& a,
                                const std::map<std::string, torch::Tensor>& b,
                                const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, tensor] : a) {
    auto it = b.find(name);
    ASSERT_TRUE(it != b.end()) << what << ": " << name << " missing";
    EXPECT_TRUE(tensor.sizes() == it->second.sizes() && tensor.dtype() == it->second.dtype() &&
                torch::equal(tensor, it->second))
        << what << ": " << name << " differs";
  }
}

// The pipeline forward of a built world on token ids [b, s]: full-vocabulary logits [b, s, V].
inline torch::Tensor PipelineForward(World& world, const torch::Tensor& ids) {
  const int world_size = static_cast<int>(world.ranks.size());
  const int64_t hidden = world.ranks[0]->plan().config().transformer().hidden_size();
  torch::Tensor result;
  std::mutex mu;
  OnEveryRank(world_size, [&](int r) {
    torch::NoGradGuard no_grad;
    model::RankModel& model = *world.ranks[r];
    const parallel::ProcessGroupCollection* groups = model.groups();
    const parallel::ProcessGroupPtr pp =
        groups ? groups->group(plan::GroupKind::kPp) : parallel::ProcessGroupPtr();
    const bool has_pp = groups != nullptr && groups->size(plan::GroupKind::kPp) > 1;
    const std::vector<int64_t> shape = {ids.size(1), ids.size(0), hidden};
    torch::Tensor logits;
    for (const auto& stage : model.stages()) {
      stage->eval();
      torch::Tensor in;
      if (stage->pre_process()) {
        in = ids;
      } else {
        absl::StatusOr<torch::Tensor> received = parallel::RecvForward(shape, torch::kFloat32, pp);
        if (!received.ok()) throw std::runtime_error(std::string(received.status().message()));
        in = *received;
      }
      torch::Tensor out = stage->forward(in);
      if (stage->post_process()) {
        logits = out;
      } else if (has_pp) {
        absl::Status s = parallel::SendForward(out, pp);
        if (!s.ok()) throw std::runtime_error(std::string(s.message()));
      }
    }
    if (logits.defined()) {
      torch::Tensor full =
          groups ? parallel::AllGather(logits.detach(), groups->group(plan::GroupKind::kTp), -1)
                 : logits.detach();
      std::lock_guard<std::mutex> lock(mu);
      if (groups == nullptr || groups->rank(plan::GroupKind::kTp) == 0) result = full;
    }
  });
  return result;
}

// A fresh directory under the test binary's temporary area.
inline std::string TempDir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gptb_ckpt_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir.parent_path());
  return dir.string();
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_CHECKPOINT_CHECKPOINT_HARNESS_H_
