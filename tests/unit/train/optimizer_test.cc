// The optimizer against hand-computed updates: two Adam steps (bias correction, decoupled decay
// that skips biases and norms), SGD with global-norm clipping, fp32 main weights for bf16
// parameters, and the distributed optimizer's shards.
#include "core/train/optimizer.h"

#include <cmath>
#include <map>

#include "core/model/gpt_stage.h"
#include "gmock/gmock.h"
#include "tests/unit/train/train_harness.h"

namespace gptb::train {
namespace {

using Params = std::map<std::string, torch::Tensor>;

Params Snapshot(const model::RankModel& model, torch::Dtype dtype = torch::kFloat64) {
  Params out;
  for (const auto& item : model.stages()[0]->named_parameters()) {
    out[item.key()] = item.value().detach().to(dtype).clone();
  }
  return out;
}

Params Grads(const model::RankModel& model) {
  Params out;
  for (const auto& item : model.stages()[0]->named_parameters()) {
    out[item.key()] = model.ddp(0)->main_grad(item.key()).to(torch::kFloat64).clone();
  }
  return out;
}

bool Decays(const std::string& name, const torch::Tensor& p) {
  return !(name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) && p.dim() > 1;
}

double GlobalNorm(const Params& grads) {
  double sum = 0.0;
  for (const auto& [name, g] : grads) sum += g.pow(2).sum().item<double>();
  return std::sqrt(sum);
}

TEST(OptimizerTest, TwoAdamStepsMatchTheHandComputedUpdate) {
  auto world = testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), {}), 1);
  ASSERT_FALSE(HasFailure());
  model::RankModel& model = *world->ranks[0];
  TrainRequest request = testing::Request(2, 2, 0.01);
  auto* o = request.options.mutable_optimizer();
  o->set_adam_beta1(0.9);
  o->set_adam_beta2(0.95);
  o->set_adam_eps(1e-8);
  o->set_weight_decay(0.1);
  o->set_clip_grad(0.0);
  const double lr = 0.01, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;

  Params p0 = Snapshot(model);
  auto r1 = world->trainers[0]->Step(request);
  ASSERT_TRUE(r1.ok()) << r1.status();
  Params g1 = Grads(model), p1 = Snapshot(model);
  EXPECT_NEAR(r1->grad_norm, GlobalNorm(g1), 1e-5 * GlobalNorm(g1));
  EXPECT_DOUBLE_EQ(r1->learning_rate, lr);
  auto r2 = world->trainers[0]->Step(request);
  ASSERT_TRUE(r2.ok()) << r2.status();
  Params g2 = Grads(model), p2 = Snapshot(model);
  EXPECT_NE(r1->loss, r2->loss);

  int decayed = 0, not_decayed = 0;
  for (const auto& [name, before] : p0) {
    const double decay = Decays(name, before) ? wd : 0.0;
    (decay > 0 ? decayed : not_decayed)++;
    // Step 1: m = (1 - b1) g, v = (1 - b2) g^2, bias corrections 1 - b1 and 1 - b2.
    const torch::Tensor m1 = (1 - b1) * g1[name], v1 = (1 - b2) * g1[name].pow(2);
    const torch::Tensor want1 =
        before * (1 - lr * decay) - (lr / (1 - b1)) * m1 / (v1.sqrt() / std::sqrt(1 - b2) + eps);
    EXPECT_LT((p1[name] - want1).abs().max().item<double>(), 2e-6) << name << " step 1";
    const torch::Tensor m2 = b1 * m1 + (1 - b1) * g2[name];
    const torch::Tensor v2 = b2 * v1 + (1 - b2) * g2[name].pow(2);
    const torch::Tensor want2 =
        p1[name] * (1 - lr * decay) -
        (lr / (1 - b1 * b1)) * m2 / (v2.sqrt() / std::sqrt(1 - b2 * b2) + eps);
    EXPECT_LT((p2[name] - want2).abs().max().item<double>(), 2e-6) << name << " step 2";
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(not_decayed, 0);
  // The optimizer's moments are the hand-computed ones.
  for (const Optimizer::Segment& seg : world->trainers[0]->optimizer()->segments()) {
    const torch::Tensor m2 = (b1 * (1 - b1) * g1[seg.name] + (1 - b1) * g2[seg.name]).view({-1});
    EXPECT_LT((seg.exp_avg.to(torch::kFloat64) - m2).abs().max().item<double>(), 1e-7) << seg.name;
  }
}

TEST(OptimizerTest, ClipsByTheGlobalNorm) {
  for (const double clip : {0.05, 1e6}) {
    SCOPED_TRACE("clip_grad " + std::to_string(clip));
    auto world = testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), {}), 1);
    ASSERT_FALSE(HasFailure());
    model::RankModel& model = *world->ranks[0];
    TrainRequest request = testing::Request(2, 2, 0.1);
    auto* o = request.options.mutable_optimizer();
    o->set_optimizer("sgd");
    o->set_sgd_momentum(0.0);
    o->set_weight_decay(0.0);
    o->set_clip_grad(clip);
    Params p0 = Snapshot(model);
    auto r = world->trainers[0]->Step(request);
    ASSERT_TRUE(r.ok()) << r.status();
    Params g = Grads(model), p1 = Snapshot(model);
    const double norm = GlobalNorm(g);
    EXPECT_NEAR(r->grad_norm, norm, 1e-5 * norm);
    const double coeff = std::min(1.0, clip / (norm + 1e-6));
    if (clip < 1) {
      EXPECT_LT(coeff, 0.5) << "the test needs a norm above the clip";
    }
    for (const auto& [name, before] : p0) {
      const torch::Tensor want = before - 0.1 * coeff * g[name];
      EXPECT_LT((p1[name] - want).abs().max().item<double>(), 1e-6) << name;
    }
  }
}

TEST(OptimizerTest, Bf16ParametersKeepFp32MainWeights) {
  gptbuilder::v1::GPTModelConfig c = testing::TinyGpt();
  c.mutable_transformer()->set_bf16(true);
  c.mutable_transformer()->set_params_dtype("bfloat16");
  auto world = testing::BuildWorld(testing::WithLayout(c, {}), 1);
  ASSERT_FALSE(HasFailure());
  const auto results = testing::Train(*world, testing::Request(2, 2, 1e-3), 3);
  ASSERT_EQ(results[0].size(), 3u);
  EXPECT_TRUE(std::isfinite(results[0].back().loss));
  const Optimizer* opt = world->trainers[0]->optimizer();
  ASSERT_NE(opt, nullptr);
  for (const Optimizer::Segment& seg : opt->segments()) {
    EXPECT_EQ(seg.model.scalar_type(), torch::kBFloat16) << seg.name;
    EXPECT_EQ(seg.main.scalar_type(), torch::kFloat32) << seg.name;
    EXPECT_TRUE(torch::equal(seg.model, seg.main.to(torch::kBFloat16))) << seg.name;
  }
  // lr 1e-3 steps are below bf16's resolution for most weights: only the fp32 copy keeps them.
  int64_t differs = 0;
  for (const Optimizer::Segment& seg : opt->segments()) {
    differs += (seg.main != seg.model.to(torch::kFloat32)).sum().item<int64_t>();
  }
  EXPECT_GT(differs, 0);
}

TEST(OptimizerTest, DistributedOptimizerShardsStateAndKeepsReplicasEqual) {
  testing::WorldOptions options;
  options.ddp.set_use_distributed_optimizer(true);
  auto world =
      testing::BuildWorld(testing::WithLayout(testing::TinyGpt(), {1, 1, 0, 1, 2}), 2, options);
  ASSERT_FALSE(HasFailure());
  testing::Train(*world, testing::Request(2, 2, 1e-3), 2);
  ASSERT_FALSE(HasFailure());
  int64_t params = 0, covered = 0;
  for (const auto& item : world->ranks[0]->stages()[0]->named_parameters()) {
    params += item.value().numel();
  }
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> ranges;
  for (int rank = 0; rank < 2; ++rank) {
    int64_t mine = 0;
    for (const Optimizer::Segment& seg : world->trainers[rank]->optimizer()->segments()) {
      mine += seg.main.numel();
      ranges[seg.name].emplace_back(seg.offset, seg.offset + seg.main.numel());
    }
    EXPECT_LT(mine, params) << "rank " << rank << " holds state for every parameter";
    covered += mine;
  }
  EXPECT_EQ(covered, params);
  for (auto& [name, list] : ranges) {
    std::sort(list.begin(), list.end());
    for (size_t i = 1; i < list.size(); ++i) EXPECT_LE(list[i - 1].second, list[i].first) << name;
  }
  const Params a = Snapshot(*world->ranks[0]), b = Snapshot(*world->ranks[1]);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
}

}  // namespace
}  // namespace gptb::train
