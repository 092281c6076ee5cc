// The plan's one encoding (plan_description.h) and the JSON made from it (plan_format.h).
#include "core/plan/plan_description.h"

#include <set>
#include <string>

#include "core/config/finalize.h"
#include "core/plan/plan_format.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

ModelPlan TinyPlan(int tp, int pp, int vp, int world) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(64);
  t->set_num_attention_heads(4);
  t->set_tensor_model_parallel_size(tp);
  t->set_pipeline_model_parallel_size(pp);
  if (vp > 1) t->set_virtual_pipeline_model_parallel_size(vp);
  c.set_vocab_size(1000);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = config::Finalize(c);
  EXPECT_TRUE(finalized.ok()) << finalized.status();
  PlanOptions options;
  options.world_size = world;
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(*finalized, options);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

TEST(PlanDescription, CarriesEveryStageOfThePlanWithItsLayersAndParameters) {
  const ModelPlan plan = TinyPlan(2, 2, 2, 8);
  const gptbuilder::v1::PlanDescription described = DescribePlan(plan);
  EXPECT_EQ(described.world_size(), 8);
  EXPECT_EQ(described.parallel().dp(), 2);
  EXPECT_EQ(described.parallel().vp(), 2);
  ASSERT_EQ(described.stages_size(), static_cast<int>(plan.stages().size()));
  for (int i = 0; i < described.stages_size(); ++i) {
    const StagePlan& s = plan.stages()[i];
    const gptbuilder::v1::StageDescription& d = described.stages(i);
    EXPECT_EQ(d.vp_stage(), *s.vp_stage);
    EXPECT_EQ(std::vector<int>(d.layers().begin(), d.layers().end()), s.layers);
    EXPECT_EQ(d.layer_spec(), s.layer_spec);
    EXPECT_EQ(d.param_bytes(), s.param_bytes);
    ASSERT_EQ(d.params_size(), static_cast<int>(s.params.size()));
    EXPECT_EQ(d.params(0).name(), s.params[0].name);
    EXPECT_FALSE(d.params(0).has_checksum());
  }
  ASSERT_EQ(described.ranks_size(), 8);
  for (int r = 0; r < 8; ++r) {
    const RankPlan rank = plan.Rank(r);
    EXPECT_EQ(described.ranks(r).dp_rank(), rank.coords.dp);
    EXPECT_EQ(described.ranks(r).optimizer_bytes(), rank.memory.optimizer_bytes);
    const int tp_group = described.ranks(r).groups().at("tp");
    const auto& members = described.process_groups().at("tp").groups(tp_group).ranks();
    EXPECT_EQ(std::vector<int>(members.begin(), members.end()),
              plan.topology().Group(GroupKind::kTp, r));
  }
}

TEST(PlanToJson, HasTheContractKeysAndNullsForAbsentGroupsAndVp) {
  const nlohmann::json json = PlanToJson(DescribePlan(TinyPlan(2, 2, 1, 4)));
  for (const char* key :
       {"padded_vocab_size", "world_size", "parallel", "total_params", "stages", "ranks"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  EXPECT_TRUE(json["parallel"]["vp"].is_null());
  const nlohmann::json& stage = json["stages"][0];
  for (const char* key :
       {"tp_rank", "pp_rank", "ep_rank", "etp_rank", "vp_stage", "pre_process", "post_process",
        "layers", "mtp_layers", "layer_spec", "params", "num_params", "param_bytes"}) {
    EXPECT_TRUE(stage.contains(key)) << key;
  }
  EXPECT_TRUE(stage["vp_stage"].is_null());
  EXPECT_FALSE(stage["params"][0].contains("checksum"));
  const nlohmann::json& groups = json["ranks"][0]["groups"];
  EXPECT_EQ(groups.size(), kAllGroupKinds.size());
  EXPECT_EQ(groups["tp"], 0);
  EXPECT_EQ(json["process_groups"]["tp"][groups["tp"].get<int>()], nlohmann::json({0, 1}));
}

TEST(StageToJson, AddsAChecksumOfSixteenHexDigitsWhereTheDescriptionHasOne) {
  gptbuilder::v1::StageDescription stage = DescribeStage(TinyPlan(1, 1, 1, 1).stages()[0]);
  stage.mutable_params(0)->set_checksum(0xabc);
  const nlohmann::json json = StageToJson(stage);
  EXPECT_EQ(json["params"][0]["checksum"], "0000000000000abc");
  EXPECT_FALSE(json["params"][1].contains("checksum"));
}

}  // namespace
}  // namespace gptb::plan
