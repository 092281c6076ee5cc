// A downloaded model's Hugging Face config.json plans as is, and the planned model has the
// published parameter count.
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/plan/model_plan.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

struct Published {
  const char* file;
  int64_t params;
};

class HfParameterCountTest : public ::testing::TestWithParam<Published> {};

TEST_P(HfParameterCountTest, PlannedModelHasThePublishedSize) {
  const std::string path =
      std::string(GPTB_SOURCE_DIR) + "/tests/unit/config/testdata/" + GetParam().file;
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = config::Finalize(loaded->model, {1});
  ASSERT_TRUE(finalized.ok()) << finalized.status();
  PlanOptions options;
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(*finalized, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->TotalParameters(), GetParam().params);
  EXPECT_EQ(plan->stages()[0].num_params, GetParam().params)
      << "one rank holds the whole model (a tied output layer adds nothing)";
}

INSTANTIATE_TEST_SUITE_P(Families, HfParameterCountTest,
                         ::testing::Values(Published{"gpt2.json", 124439808},
                                           Published{"llama3-8b.json", 8030261248},
                                           Published{"llama3.1-8b.json", 8030261248},
                                           Published{"mistral-7b-v0.1.json", 7241732096},
                                           Published{"qwen2-7b.json", 7615616512},
                                           Published{"qwen3-8b.json", 8190735360},
                                           Published{"mixtral-8x7b.json", 46702792704},
                                           // transformers' Qwen3MoeForCausalLM of the model
                                           // cards' config.json (30.5B and 235B in total).
                                           Published{"qwen3-30b-a3b.json", 30532122624},
                                           Published{"qwen3-235b-a22b.json", 235093634560},
                                           // transformers' GptOssForCausalLM of the model
                                           // cards' config.json, unquantized (20.9B and
                                           // 116.8B).
                                           Published{"gpt-oss-20b.json", 20914757184},
                                           Published{"gpt-oss-120b.json", 116829156672},
                                           // DeepSeek-V3 in gptbuilder's schema (the card's
                                           // config.json sizes): transformers' 671026404352
                                           // of DeepseekV3ForCausalLM plus the MTP layer
                                           // (its MoE layer, enorm, hnorm, eh_proj and final
                                           // norm: 11610067968; the card's 685B also counts
                                           // the MTP copies of the embedding and head).
                                           Published{"deepseek-v3-megatron.yaml", 682636472320}),
                         [](const ::testing::TestParamInfo<Published>& info) {
                           std::string name = info.param.file;
                           name = name.substr(0, name.find_last_of('.'));
                           for (char& c : name) {
                             if (c == '-' || c == '.') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace gptb::plan
