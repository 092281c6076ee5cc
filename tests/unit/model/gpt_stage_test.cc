// Built stages hold exactly the plan's tensors (and so Megatron Core's: the plan matches the
// golden files), and a single-rank stage's forward behaves like a causal language model.
#include "core/model/gpt_stage.h"

#include <map>

#include "core/plan/model_plan.h"
#include "gtest/gtest.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::model {
namespace {

struct Built {
  std::vector<std::shared_ptr<GptStage>> stages;
};

absl::StatusOr<plan::ModelPlan> PlanFor(const gptbuilder::v1::GPTModelConfig& config, int world) {
  plan::PlanOptions options;
  options.world_size = world;
  return plan::ModelPlan::Create(config, options);
}

std::shared_ptr<GptStage> BuildStage(const gptbuilder::v1::GPTModelConfig& config,
                                     const plan::ModelPlan& plan, const plan::StagePlan& stage,
                                     ParallelContext* parallel) {
  const plan::ChunkLayout& chunk = plan.layout().Chunk(stage.pp_rank, stage.chunk_index);
  auto specs = layer_spec::ResolveStageLayerSpecs(config, chunk.LayerIds());
  EXPECT_TRUE(specs.ok());
  auto mtp = layer_spec::MtpBlockSpec(config, *specs, chunk.num_mtp_layers);
  EXPECT_TRUE(mtp.ok());
  return std::make_shared<GptStage>(plan.config(), stage, *specs, *mtp, parallel, torch::kCPU);
}

class GoldenStageTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenStageTest, NamedParametersEqualThePlanAndMegatron) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  for (const char* spec_name : {"local", "transformer_engine"}) {
    gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
    config.mutable_transformer_layer_spec()->set_name(spec_name);
    absl::StatusOr<plan::ModelPlan> plan = PlanFor(config, golden["layout"]["world_size"]);
    ASSERT_TRUE(plan.ok()) << plan.status();
    LocalParallelContext parallel;
    for (const plan::StagePlan& stage : plan->stages()) {
      std::shared_ptr<GptStage> built = BuildStage(config, *plan, stage, &parallel);
      std::vector<std::pair<std::string, std::vector<int64_t>>> held, planned;
      for (const auto& item : built->named_parameters()) {
        held.emplace_back(item.key(), item.value().sizes().vec());
      }
      for (const plan::ParamInfo& p : stage.params) planned.emplace_back(p.name, p.shape);
      EXPECT_EQ(held, planned) << spec_name << " stage pp=" << stage.pp_rank
                               << " tp=" << stage.tp_rank;
    }
  }
  // And the local-spec stages against the golden names directly.
  gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
  absl::StatusOr<plan::ModelPlan> plan = PlanFor(config, golden["layout"]["world_size"]);
  ASSERT_TRUE(plan.ok());
  LocalParallelContext parallel;
  for (const nlohmann::json& rank : golden["ranks"]) {
    const int vp = rank["vp_stage"].is_null() ? -1 : rank["vp_stage"].get<int>();
    const plan::StagePlan* stage = nullptr;
    for (const plan::StagePlan& s : plan->stages()) {
      if (s.tp_rank == rank["tp_rank"] && s.pp_rank == rank["pp_rank"] &&
          s.ep_rank == rank["ep_rank"] && s.vp_stage.value_or(-1) == vp) {
        stage = &s;
      }
    }
    ASSERT_NE(stage, nullptr);
    std::shared_ptr<GptStage> built = BuildStage(config, *plan, *stage, &parallel);
    std::map<std::string, std::vector<int64_t>> held, expected;
    for (const auto& item : built->named_parameters())
      held[item.key()] = item.value().sizes().vec();
    for (const nlohmann::json& p : rank["params"])
      expected[p[0]] = p[1].get<std::vector<int64_t>>();
    EXPECT_TRUE(held == expected) << "golden rank " << rank["global_rank"];
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenStageTest, ::testing::ValuesIn(testing::GoldenFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// A single-rank model: logits have the right shape, are finite, and are causal (changing a
// later token leaves earlier positions' logits unchanged); backward reaches every parameter.
class SingleRankForwardTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SingleRankForwardTest, CausalLogitsAndGradients) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
  auto* t = config.mutable_transformer();
  t->set_tensor_model_parallel_size(1);
  t->set_pipeline_model_parallel_size(1);
  t->clear_virtual_pipeline_model_parallel_size();
  t->set_expert_model_parallel_size(1);
  t->set_expert_tensor_parallel_size(1);
  t->clear_num_layers_in_first_pipeline_stage();
  t->set_hidden_dropout(0.0);
  t->set_attention_dropout(0.0);
  absl::StatusOr<plan::ModelPlan> plan = PlanFor(config, 1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  LocalParallelContext parallel;
  std::shared_ptr<GptStage> stage = BuildStage(config, *plan, plan->stages()[0], &parallel);
  torch::manual_seed(0);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : stage->parameters()) p.normal_(0, 0.05);
  }
  torch::Tensor ids = torch::randint(0, 1000, {2, 16}, torch::kLong);
  torch::Tensor logits = stage->forward(ids);
  ASSERT_EQ(logits.sizes().vec(), (std::vector<int64_t>{2, 16, plan->padded_vocab_size()}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  torch::Tensor changed = ids.clone();
  changed.index_put_({torch::indexing::Slice(), 10},
                     (ids.index({torch::indexing::Slice(), 10}) + 1) % 1000);
  torch::Tensor other = stage->forward(changed);
  EXPECT_TRUE(torch::allclose(logits.narrow(1, 0, 10), other.narrow(1, 0, 10)));
  EXPECT_FALSE(torch::allclose(logits.narrow(1, 10, 6), other.narrow(1, 10, 6)));
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                            ids.roll(-1, 1).reshape({-1}));
  loss.backward();
  for (const auto& item : stage->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    if (item.key().find("experts") == std::string::npos) {  // an expert may get no tokens
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, SingleRankForwardTest,
                         ::testing::Values("A_tp1_pp1", "B_tp1_pp1", "D_tp1_pp1_ep1"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace gptb::model
