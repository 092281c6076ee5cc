// Multi-rank builds (ranks as threads over Gloo on 127.0.0.1): parallelism-invariant
// initialisation, tensor/pipeline-parallel forward and every parameter's gradient equal to the
// single-rank model's, and initialisation statistics.
#include <cmath>
#include <map>

#include "core/config/finalize.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/cross_entropy.h"
#include "core/parallel/pipeline_p2p.h"
#include "core/train/finalize_grads.h"
#include "tests/unit/model/rank_harness.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::model {
namespace {

struct Layout {
  int tp, pp, vp, ep;
};

gptbuilder::v1::GPTModelConfig ConfigFor(const std::string& golden_name, const Layout& layout) {
  gptbuilder::v1::GPTModelConfig c = testing::GoldenUserConfig(testing::LoadGolden(golden_name));
  auto* t = c.mutable_transformer();
  t->set_tensor_model_parallel_size(layout.tp);
  t->set_pipeline_model_parallel_size(layout.pp);
  if (layout.vp > 0) {
    t->set_virtual_pipeline_model_parallel_size(layout.vp);
  } else {
    t->clear_virtual_pipeline_model_parallel_size();
  }
  t->set_expert_model_parallel_size(layout.ep);
  t->clear_num_layers_in_first_pipeline_stage();
  t->set_hidden_dropout(0.0);
  t->set_attention_dropout(0.0);
  return c;
}

int WorldSize(const gptbuilder::v1::GPTModelConfig& c) {
  const auto& t = c.transformer();
  const int model = t.tensor_model_parallel_size() * t.pipeline_model_parallel_size();
  const int expert = t.expert_model_parallel_size() * t.tensor_model_parallel_size() *
                     t.pipeline_model_parallel_size();
  return std::max(model, expert);
}

gptbuilder::v1::GPTModelConfig Finalized(const gptbuilder::v1::GPTModelConfig& c, int world) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = config::Finalize(c, {world});
  EXPECT_TRUE(f.ok()) << f.status();
  return *f;
}

// Every canonical tensor assembled from the shards the ranks hold; replicated copies must agree.
std::map<std::string, torch::Tensor> Canonical(const testing::World& world) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& rank : world.ranks) {
    for (const auto& stage : rank->stages()) {
      size_t i = 0;
      for (const auto& item : stage->named_parameters()) {
        const plan::ParamInfo& info = stage->plan().params[i++];
        torch::Tensor& full = out[info.canonical_name];
        if (!full.defined()) full = torch::full(info.canonical_shape, NAN, item.value().options());
        if (info.partition_dim < 0) {
          if (!torch::isnan(full).all().item<bool>()) {
            EXPECT_TRUE(torch::equal(full, item.value()))
                << info.canonical_name << " replicas differ";
          }
          full.copy_(item.value());
          continue;
        }
        int64_t local = 0;
        for (const plan::Piece& piece : info.pieces) {
          torch::Tensor target = full.narrow(info.partition_dim, piece.start, piece.length);
          torch::Tensor source = item.value().narrow(info.partition_dim, local, piece.length);
          if (!torch::isnan(target).all().item<bool>()) {  // a data-parallel replica's shard
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

class InvarianceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(InvarianceTest, CanonicalWeightsAreBitIdenticalAcrossLayouts) {
  const bool moe = GetParam().rfind("D", 0) == 0;
  std::vector<Layout> layouts = {
      {1, 1, 0, 1}, {2, 1, 0, 1}, {1, 2, 0, 1}, {2, 2, 0, 1}, {2, 2, 2, 1}};
  if (moe) layouts.insert(layouts.end(), {{1, 1, 0, 2}, {2, 2, 0, 2}});
  std::map<std::string, torch::Tensor> reference;
  for (const Layout& layout : layouts) {
    gptbuilder::v1::GPTModelConfig c = ConfigFor(GetParam(), layout);
    const int world = WorldSize(c);
    testing::World built = testing::BuildWorld(Finalized(c, world), world);
    ASSERT_FALSE(HasFailure());
    std::map<std::string, torch::Tensor> canonical = Canonical(built);
    if (reference.empty()) {
      reference = std::move(canonical);
      continue;
    }
    ASSERT_EQ(canonical.size(), reference.size());
    for (const auto& [name, tensor] : reference) {
      ASSERT_TRUE(canonical.count(name)) << name;
      EXPECT_TRUE(torch::equal(canonical[name], tensor))
          << name << " differs at tp=" << layout.tp << " pp=" << layout.pp << " vp=" << layout.vp
          << " ep=" << layout.ep;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, InvarianceTest,
                         ::testing::Values("A_tp1_pp1", "B_tp1_pp1", "D_tp1_pp1_ep1"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.substr(0, 1);
                         });

// Runs the pipeline forward (and, with `backward`, the backward) of a built world on a batch;
// returns the full-vocabulary logits [b, s, V] from the last stage.
torch::Tensor PipelineForward(testing::World& world, const torch::Tensor& ids, bool backward) {
  const int world_size = static_cast<int>(world.ranks.size());
  const auto& t = world.ranks[0]->plan().config().transformer();
  const int64_t hidden = t.hidden_size();
  torch::Tensor result;
  std::mutex mu;
  testing::OnEveryRank(world_size, [&](int r) {
    RankModel& model = *world.ranks[r];
    const parallel::ProcessGroupCollection* groups = model.groups();
    const parallel::ProcessGroupPtr pp =
        groups ? groups->group(plan::GroupKind::kPp) : parallel::ProcessGroupPtr();
    const bool has_pp = groups != nullptr && groups->size(plan::GroupKind::kPp) > 1;
    const std::vector<int64_t> shape = {ids.size(1), ids.size(0), hidden};
    std::vector<torch::Tensor> inputs, outputs;
    torch::Tensor logits;
    for (const auto& stage : model.stages()) {
      stage->eval();
      torch::Tensor in;
      if (stage->pre_process()) {
        in = ids;
      } else {
        absl::StatusOr<torch::Tensor> received = parallel::RecvForward(shape, torch::kFloat32, pp);
        if (!received.ok()) throw std::runtime_error(std::string(received.status().message()));
        in = received->requires_grad_(true);
      }
      torch::Tensor out = stage->forward(in);
      inputs.push_back(in);
      outputs.push_back(out);
      if (stage->post_process()) {
        logits = out;
      } else if (has_pp) {
        absl::Status s = parallel::SendForward(out, pp);
        if (!s.ok()) throw std::runtime_error(std::string(s.message()));
      }
    }
    if (backward) {
      for (int c = static_cast<int>(model.stages().size()) - 1; c >= 0; --c) {
        const auto& stage = model.stages()[c];
        if (stage->post_process()) {
          const parallel::ProcessGroupPtr tp =
              groups ? groups->group(plan::GroupKind::kTp) : parallel::ProcessGroupPtr();
          torch::Tensor loss =
              groups ? parallel::VocabParallelCrossEntropy(logits, ids.roll(-1, 1), tp).mean()
                     : torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                            ids.roll(-1, 1).reshape({-1}));
          loss.backward();
        } else {
          absl::StatusOr<torch::Tensor> grad = parallel::RecvBackward(shape, torch::kFloat32, pp);
          if (!grad.ok()) throw std::runtime_error(std::string(grad.status().message()));
          outputs[c].backward(*grad);
        }
        if (!stage->pre_process() && has_pp) {
          absl::Status s = parallel::SendBackward(inputs[c].grad(), pp);
          if (!s.ok()) throw std::runtime_error(std::string(s.message()));
        }
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

class ForwardTest : public ::testing::TestWithParam<std::string> {};

// Megatron's finalize_model_grads on every rank (data-parallel means, tied embedding sums).
void FinalizeEveryRank(testing::World& world) {
  testing::OnEveryRank(static_cast<int>(world.ranks.size()), [&](int r) {
    absl::Status s = train::FinalizeGrads(*world.ranks[r]);
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  });
}

TEST_P(ForwardTest, ParallelLogitsAndEveryGradientEqualSingleRank) {
  torch::manual_seed(7);
  const torch::Tensor ids = torch::randint(0, 1000, {2, 32}, torch::kLong);
  gptbuilder::v1::GPTModelConfig single = ConfigFor(GetParam(), {1, 1, 0, 1});
  testing::World reference = testing::BuildWorld(Finalized(single, 1), 1);
  ASSERT_FALSE(HasFailure());
  const torch::Tensor expected = PipelineForward(reference, ids, true);
  FinalizeEveryRank(reference);
  const std::map<std::string, torch::Tensor> expected_grads =
      testing::CanonicalGradients(reference, 0.0, "one rank");
  ASSERT_FALSE(HasFailure());
  std::vector<Layout> layouts = {{2, 2, 0, 1}, {2, 2, 2, 1}};
  if (GetParam().rfind("D", 0) == 0) layouts = {{2, 2, 0, 2}, {1, 2, 0, 2}, {1, 1, 0, 2}};
  for (const Layout& layout : layouts) {
    const std::string where =
        "tp=" + std::to_string(layout.tp) + " pp=" + std::to_string(layout.pp) +
        " vp=" + std::to_string(layout.vp) + " ep=" + std::to_string(layout.ep);
    gptbuilder::v1::GPTModelConfig c = ConfigFor(GetParam(), layout);
    const int world = WorldSize(c);
    testing::World built = testing::BuildWorld(Finalized(c, world), world);
    ASSERT_FALSE(HasFailure());
    torch::Tensor logits = PipelineForward(built, ids, true);
    ASSERT_TRUE(logits.defined());
    EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-5))
        << "max diff " << (logits - expected).abs().max().item<double>() << " at " << where;
    // MoE with tensor parallelism trains only with sequence parallelism (TrainStep refuses it
    // otherwise: each TP rank would route the whole sequence); logits only there.
    if (GetParam().rfind("D", 0) == 0 && layout.tp > 1) continue;
    FinalizeEveryRank(built);
    // Every parameter's gradient, gathered to its canonical tensor, is one rank's.
    const std::map<std::string, torch::Tensor> grads =
        testing::CanonicalGradients(built, 1e-6, where);
    ASSERT_EQ(grads.size(), expected_grads.size()) << where;
    for (const auto& [name, want] : expected_grads) {
      auto it = grads.find(name);
      ASSERT_TRUE(it != grads.end()) << name << " at " << where;
      EXPECT_LE(testing::MaxRelativeError(it->second, want), 1e-5) << name << " at " << where;
      if (name.find("experts") == std::string::npos) {
        EXPECT_GT(want.abs().sum().item<double>(), 0.0) << name;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ForwardTest,
                         ::testing::Values("A_tp1_pp1", "B_tp1_pp1", "D_tp1_pp1_ep1"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.substr(0, 1);
                         });

// Two data-parallel replicas start equal (data_parallel_random_init draws them differently, then
// DDP broadcasts) and after backward + FinishGradSync both hold the mean of their gradients,
// which equals the mean of the gradients a single rank computes for each half of the batch.
TEST(DataParallel, ReplicasStartEqualAndGradientsAreAveraged) {
  gptbuilder::v1::GPTModelConfig c = ConfigFor("B_tp1_pp1", {1, 1, 0, 1});
  torch::manual_seed(3);
  const torch::Tensor batches[2] = {torch::randint(0, 1000, {2, 16}, torch::kLong),
                                    torch::randint(0, 1000, {2, 16}, torch::kLong)};
  auto loss_of = [](GptStage& stage, const torch::Tensor& ids) {
    torch::Tensor logits = stage.forward(ids);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                ids.roll(-1, 1).reshape({-1}));
  };
  // Reference: one rank, each batch separately.
  testing::World single = testing::BuildWorld(Finalized(c, 1), 1);
  ASSERT_FALSE(HasFailure());
  std::map<std::string, torch::Tensor> expected;
  for (const torch::Tensor& ids : batches) {
    RankModel& model = *single.ranks[0];
    model.ddp(0)->ZeroGradBuffer();
    loss_of(*model.stages()[0], ids).backward();
    ASSERT_TRUE(model.ddp(0)->FinishGradSync().ok());
    for (const auto& item : model.stages()[0]->named_parameters()) {
      torch::Tensor g = model.ddp(0)->main_grad(item.key()).clone() / 2;
      expected[item.key()] = expected.count(item.key()) ? expected[item.key()] + g : g;
    }
  }
  gptbuilder::v1::BuildOptions build;
  build.set_data_parallel_random_init(true);
  testing::World world = testing::BuildWorld(Finalized(c, 2), 2, build);
  ASSERT_FALSE(HasFailure());
  (void)Canonical(world);  // replicas are equal after the broadcast
  testing::OnEveryRank(2, [&](int r) {
    RankModel& model = *world.ranks[r];
    loss_of(*model.stages()[0], batches[r]).backward();
    absl::Status s = model.ddp(0)->FinishGradSync();
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  });
  for (const auto& item : world.ranks[0]->stages()[0]->named_parameters()) {
    torch::Tensor g0 = world.ranks[0]->ddp(0)->main_grad(item.key());
    torch::Tensor g1 = world.ranks[1]->ddp(0)->main_grad(item.key());
    EXPECT_TRUE(torch::equal(g0, g1)) << item.key();
    EXPECT_TRUE(torch::allclose(g0, expected[item.key()], 1e-5, 1e-6)) << item.key();
  }
}

// Each initialised tensor follows its distribution: normal(0, std) for weights (scaled for
// linear_proj / fc2), zero biases, unit norm weights.
TEST(InitStatistics, EachTensorMatchesItsDistribution) {
  gptbuilder::v1::GPTModelConfig c = ConfigFor("A_tp1_pp1", {1, 1, 0, 1});
  c.mutable_transformer()->set_hidden_size(256);
  c.mutable_transformer()->set_ffn_hidden_size(1024);
  testing::World built = testing::BuildWorld(Finalized(c, 1), 1);
  ASSERT_FALSE(HasFailure());
  const double std = 0.02, scaled = 0.02 / std::sqrt(2.0 * 4);
  for (const auto& stage : built.ranks[0]->stages()) {
    size_t i = 0;
    for (const auto& item : stage->named_parameters()) {
      const plan::ParamInfo& info = stage->plan().params[i++];
      const torch::Tensor v = item.value().to(torch::kFloat64);
      const std::string& n = info.name;
      if (n.find("layernorm") != std::string::npos || n.find("norm.weight") != std::string::npos) {
        if (n.size() > 4 && n.compare(n.size() - 4, 4, "bias") == 0) {
          EXPECT_EQ(v.abs().max().item<double>(), 0.0) << n;
        } else {
          EXPECT_EQ(v.min().item<double>(), 1.0) << n;
          EXPECT_EQ(v.max().item<double>(), 1.0) << n;
        }
      } else if (n.size() > 4 && n.compare(n.size() - 4, 4, "bias") == 0) {
        EXPECT_EQ(v.abs().max().item<double>(), 0.0) << n;
      } else {
        const bool out =
            n.find("linear_proj") != std::string::npos || n.find("linear_fc2") != std::string::npos;
        const double want = out ? scaled : std;
        EXPECT_NEAR(v.mean().item<double>(), 0.0, 5 * want / std::sqrt(v.numel())) << n;
        EXPECT_NEAR(v.std().item<double>(), want, 0.05 * want) << n;
      }
    }
  }
}

}  // namespace
}  // namespace gptb::model
