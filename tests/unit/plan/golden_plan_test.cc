// The plan's stages must equal what real Megatron Core builds (tests/golden/), exactly: the same
// set of (tp_rank, pp_rank, ep_rank, vp_stage) positions, the same pre/post flags, and per stage
// the same parameter names in the same registration order with the same shapes.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/config/finalize.h"
#include "core/plan/model_plan.h"
#include "gtest/gtest.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::plan {
namespace {

using StageId = std::tuple<int, int, int, int>;  // tp, pp, ep, vp (-1 = None)

class GoldenPlanTest : public ::testing::TestWithParam<std::string> {};

// Finalize derives what Megatron's TransformerConfig.__post_init__ derived for the golden run.
TEST_P(GoldenPlanTest, FinalizeDerivesMegatronsResolvedValues) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  const nlohmann::json& r = golden["config"]["transformer_config_resolved"];
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = config::Finalize(
      testing::GoldenUserConfig(golden), {golden["layout"]["world_size"].get<int64_t>()});
  ASSERT_TRUE(finalized.ok()) << finalized.status();
  const gptbuilder::v1::TransformerConfig& t = finalized->transformer();
  EXPECT_EQ(t.num_query_groups(), r["num_query_groups"].get<int>());
  EXPECT_EQ(t.kv_channels(), r["kv_channels"].get<int>());
  EXPECT_EQ(t.ffn_hidden_size(), r["ffn_hidden_size"].get<int>());
  EXPECT_EQ(t.expert_tensor_parallel_size(), r["expert_tensor_parallel_size"].get<int>());
  EXPECT_EQ(t.has_moe_ffn_hidden_size(), !r["moe_ffn_hidden_size"].is_null());
  if (t.has_moe_ffn_hidden_size()) {
    EXPECT_EQ(t.moe_ffn_hidden_size(), r["moe_ffn_hidden_size"].get<int>());
  }
  EXPECT_DOUBLE_EQ(t.embedding_init_method_std(), r["embedding_init_method_std"].get<double>());
  EXPECT_EQ(t.microbatch_group_size_per_vp_stage(),
            r["microbatch_group_size_per_vp_stage"].get<int>());
  EXPECT_EQ(t.layernorm_epsilon(), r["layernorm_epsilon"].get<double>());
  EXPECT_EQ(t.sequence_parallel(), r["sequence_parallel"].get<bool>());
}

TEST_P(GoldenPlanTest, StagesMatchMegatronCore) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = config::Finalize(
      testing::GoldenUserConfig(golden), {golden["layout"]["world_size"].get<int64_t>()});
  ASSERT_TRUE(finalized.ok()) << finalized.status();
  const gptbuilder::v1::GPTModelConfig config = *finalized;
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

// The Transformer Engine spec holds the same tensors under TE's keys: the input norm inside
// linear_qkv, the dense pre-MLP norm inside linear_fc1 (MoE layers keep pre_mlp_layernorm), and
// with grouped GEMM the experts as linear_fc1.weight<j>. Megatron's own key map (the local spec's
// sharded_state_dict_keys_map) turns the golden local names into the TE names.
std::string ToTeName(const std::string& local, bool moe, bool grouped) {
  std::string name = local;
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t pos = name.find(from);
    if (pos != std::string::npos) name.replace(pos, from.size(), to);
  };
  replace("input_layernorm.", "self_attention.linear_qkv.layer_norm_");
  if (!moe) replace("pre_mlp_layernorm.", "mlp.linear_fc1.layer_norm_");  // golden MoE: every layer
  if (grouped) {
    const std::string marker = "mlp.experts.local_experts.";
    size_t pos = name.find(marker);
    if (pos != std::string::npos) {
      size_t dot = name.find('.', pos + marker.size());
      const std::string j = name.substr(pos + marker.size(), dot - pos - marker.size());
      const std::string rest = name.substr(dot + 1);  // linear_fc1.weight
      name = name.substr(0, pos) + "mlp.experts." + rest + j;
    }
  }
  return name;
}

TEST_P(GoldenPlanTest, TransformerEngineSpecHoldsTheSameTensorsUnderTeNames) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  for (bool grouped : {false, true}) {
    gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
    config.mutable_transformer_layer_spec()->set_name("transformer_engine");
    if (!config.transformer().has_num_moe_experts() && grouped) continue;
    config.mutable_transformer()->set_moe_grouped_gemm(grouped);
    PlanOptions options;
    options.world_size = golden["layout"]["world_size"];
    absl::StatusOr<ModelPlan> plan = ModelPlan::Create(config, options);
    ASSERT_TRUE(plan.ok()) << plan.status();
    std::map<StageId, const StagePlan*> ours;
    for (const StagePlan& s : plan->stages()) {
      ours[{s.tp_rank, s.pp_rank, s.ep_rank, s.vp_stage.value_or(-1)}] = &s;
    }
    for (const nlohmann::json& rank : golden["ranks"]) {
      const StageId id{rank["tp_rank"], rank["pp_rank"], rank["ep_rank"],
                       rank["vp_stage"].is_null() ? -1 : rank["vp_stage"].get<int>()};
      ASSERT_TRUE(ours.count(id));
      std::map<std::string, std::vector<int64_t>> expected, actual;
      for (const nlohmann::json& p : rank["params"]) {
        expected[ToTeName(p[0].get<std::string>(), config.transformer().has_num_moe_experts(),
                          grouped)] = p[1].get<std::vector<int64_t>>();
      }
      for (const ParamInfo& p : ours[id]->params) actual[p.name] = p.shape;
      EXPECT_TRUE(actual == expected) << "grouped=" << grouped << " stage " << rank["global_rank"];
    }
  }
}

// Canonical tensors do not depend on the layout: every shard of every stage maps into a
// canonical tensor whose shape is the same in every layout of the same config.
TEST_P(GoldenPlanTest, CanonicalTensorsAreLayoutIndependent) {
  const nlohmann::json golden = testing::LoadGolden(GetParam());
  gptbuilder::v1::GPTModelConfig config = testing::GoldenResolvedConfig(golden);
  PlanOptions options;
  options.world_size = golden["layout"]["world_size"];
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(config, options);
  ASSERT_TRUE(plan.ok());
  // Reference: the same model on one rank.
  gptbuilder::v1::GPTModelConfig single = config;
  auto* t = single.mutable_transformer();
  t->set_tensor_model_parallel_size(1);
  t->set_pipeline_model_parallel_size(1);
  t->clear_virtual_pipeline_model_parallel_size();
  t->set_expert_model_parallel_size(1);
  t->set_expert_tensor_parallel_size(1);
  t->clear_num_layers_in_first_pipeline_stage();
  PlanOptions one;
  absl::StatusOr<ModelPlan> reference = ModelPlan::Create(single, one);
  ASSERT_TRUE(reference.ok());
  std::map<std::string, std::vector<int64_t>> canonical;
  for (const ParamInfo& p : reference->stages()[0].params)
    canonical[p.canonical_name] = p.canonical_shape;
  // Each canonical element is held by exactly tp-replication... check coverage per canonical
  // tensor along its partition dim: the union of pieces over the distinct stages is the whole.
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> covered;
  for (const StagePlan& s : plan->stages()) {
    for (const ParamInfo& p : s.params) {
      ASSERT_TRUE(canonical.count(p.canonical_name)) << p.canonical_name;
      EXPECT_EQ(canonical[p.canonical_name], p.canonical_shape) << p.canonical_name;
      if (p.partition_dim < 0) {
        covered[p.canonical_name].push_back({0, p.canonical_shape[0]});
      } else {
        for (const Piece& piece : p.pieces) {
          covered[p.canonical_name].push_back({piece.start, piece.start + piece.length});
        }
      }
    }
  }
  EXPECT_EQ(covered.size(), canonical.size());
  for (auto& [name, ranges] : covered) {
    std::sort(ranges.begin(), ranges.end());
    int64_t reach = 0;
    for (const auto& [begin, end] : ranges) {
      EXPECT_LE(begin, reach) << name << " has a gap";
      reach = std::max(reach, end);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenPlanTest, ::testing::ValuesIn(testing::GoldenFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace gptb::plan
