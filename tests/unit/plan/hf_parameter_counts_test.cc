// A downloaded model's Hugging Face config.json plans as is (Megatron's rules), and the planned model has the
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
  // Megatron's rules only: the parameter count does not depend on whether this build computes
  // every value (Mistral's 4096-token sliding window is refused by validation).
  config::FinalizeOptions options_megatron;
  options_megatron.world_size = 1;
  options_megatron.refuse_unsupported = false;
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized =
      config::Finalize(loaded->model, options_megatron);
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
                                           Published{"mixtral-8x7b.json", 46702792704}),
                         [](const ::testing::TestParamInfo<Published>& info) {
                           std::string name = info.param.file;
                           name = name.substr(0, name.find(".json"));
                           for (char& c : name) {
                             if (c == '-' || c == '.') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace gptb::plan
