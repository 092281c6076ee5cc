// The plan's stages must equal what real Megatron Core builds (tests/golden/), exactly: the same
// set of (tp_rank, pp_rank, ep_rank, vp_stage) positions, the same pre/post flags, and per stage
// the same parameter names in the same registration order with the same shapes.
#include <map>
#include <set>
#include <tuple>

#include "core/plan/model_plan.h"
#include "gtest/gtest.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::plan {
namespace {

using StageId = std::tuple<int, int, int, int>;  // tp, pp, ep, vp (-1 = None)

class GoldenPlanTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPlanTest, StagesMatchMegatronCore) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  const gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
  PlanOptions options;
  options.world_size = golden["layout"]["world_size"];
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(config, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->padded_vocab_size(), golden["config"]["padded_vocab_size"].get<int64_t>());

  std::map<StageId, const StagePlan*> ours;
  for (const StagePlan& s : plan->stages()) {
    ours[{s.tp_rank, s.pp_rank, s.ep_rank, s.vp_stage.value_or(-1)}] = &s;
  }
  std::set<StageId> theirs;
  for (const nlohmann::json& rank : golden["ranks"]) {
    const StageId id{rank["tp_rank"], rank["pp_rank"], rank["ep_rank"],
                     rank["vp_stage"].is_null() ? -1 : rank["vp_stage"].get<int>()};
    theirs.insert(id);
    auto it = ours.find(id);
    ASSERT_NE(it, ours.end()) << "missing stage tp=" << std::get<0>(id) << " pp=" << std::get<1>(id)
                              << " ep=" << std::get<2>(id) << " vp=" << std::get<3>(id);
    const StagePlan& stage = *it->second;
    EXPECT_EQ(stage.pre_process, rank["pre_process"].get<bool>());
    EXPECT_EQ(stage.post_process, rank["post_process"].get<bool>());
    EXPECT_EQ(stage.num_params, rank["num_params"].get<int64_t>());
    std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
    for (const nlohmann::json& p : rank["params"]) {
      expected.emplace_back(p[0].get<std::string>(), p[1].get<std::vector<int64_t>>());
    }
    std::vector<std::pair<std::string, std::vector<int64_t>>> actual;
    for (const ParamInfo& p : stage.params) actual.emplace_back(p.name, p.shape);
    EXPECT_EQ(actual, expected) << "stage tp=" << stage.tp_rank << " pp=" << stage.pp_rank
                                << " ep=" << stage.ep_rank;
  }
  EXPECT_EQ(ours.size(), theirs.size()) << "the plan has stages Megatron does not";
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenPlanTest, ::testing::ValuesIn(testing::GoldenFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace gptb::plan
