#include "core/config/overrides.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::gptb::config::testing::FieldsAndReasons;
using ::gptb::config::testing::TinyLlama;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;

LoadedConfig Base() {
  LoadedConfig config;
  config.model = TinyLlama();
  return config;
}

TEST(Overrides, PlainKeysResolveOuterFirstThenTransformer) {
  LoadedConfig config = Base();
  ASSERT_TRUE(
      ApplyOverrides({"hidden_size=256", "rotary_base=500000", "vocab_size=32000"}, &config).ok());
  EXPECT_EQ(config.model.transformer().hidden_size(), 256);  // a TransformerConfig field
  EXPECT_EQ(config.model.rotary_base(), 500000);             // GPTModelConfig's own field
  EXPECT_EQ(config.model.vocab_size(), 32000);
}

TEST(Overrides, DottedPathsReachEverySection) {
  LoadedConfig config = Base();
  ASSERT_TRUE(
      ApplyOverrides({"transformer.num_layers=8", "ddp.grad_reduce_in_fp32=true", "build.seed=7",
                      "model.seq_length=256", "transformer_layer_spec.name=transformer_engine"},
                     &config)
          .ok());
  EXPECT_EQ(config.model.transformer().num_layers(), 8);
  EXPECT_TRUE(config.ddp.grad_reduce_in_fp32());
  EXPECT_EQ(config.build.seed(), 7);
  EXPECT_EQ(config.model.seq_length(), 256);
  EXPECT_EQ(config.model.transformer_layer_spec().name(), "transformer_engine");
}

TEST(Overrides, ValuesAreReadByTheFieldType) {
  LoadedConfig config = Base();
  ASSERT_TRUE(
      ApplyOverrides({"moe_layer_freq=[1,0,1,0]", "layernorm_epsilon=1e-6", "add_bias_linear=true",
                      "transformer_layer_spec=local", "pipeline_model_parallel_layout=E|(tt|)*2,L",
                      "hf_model_id='quoted/name'", "window_size=[4095, 0]",
                      "ddp.param_name_patterns_for_fp32_local_accumulation=*.bias"},
                     &config)
          .ok());
  const auto& t = config.model.transformer();
  EXPECT_THAT(t.moe_layer_freq(), ElementsAre(1, 0, 1, 0));
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-6);
  EXPECT_TRUE(t.add_bias_linear());
  EXPECT_EQ(config.model.transformer_layer_spec().name(), "local");
  EXPECT_EQ(t.pipeline_model_parallel_layout(), "E|(tt|)*2,L");
  EXPECT_EQ(config.model.hf_model_id(), "quoted/name");
  EXPECT_THAT(t.window_size(), ElementsAre(4095, 0));
  EXPECT_THAT(config.ddp.param_name_patterns_for_fp32_local_accumulation(), ElementsAre("*.bias"));
}

TEST(Overrides, NullClearsAndLaterOverridesWin) {
  LoadedConfig config = Base();
  ASSERT_TRUE(ApplyOverrides(
                  {"num_query_groups=null", "vocab_size=", "seq_length=1", "seq_length=2"}, &config)
                  .ok());
  EXPECT_FALSE(config.model.transformer().has_num_query_groups());
  EXPECT_FALSE(config.model.has_vocab_size());
  EXPECT_EQ(config.model.seq_length(), 2);
}

TEST(Overrides, UnknownKeysAreErrorsNamingTheKey) {
  LoadedConfig config = Base();
  absl::Status status = ApplyOverrides({"hiden_size=3"}, &config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("Neither GPTModelConfig nor TransformerConfig declares a field named "
                        "'hiden_size'. Did you mean 'hidden_size'?"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("declares a field"));
  status = ApplyOverrides({"grad_reduce_in_fp32=true"}, &config);
  EXPECT_THAT(std::string(status.message()), HasSubstr("Did you mean 'ddp.grad_reduce_in_fp32'?"));
  status = ApplyOverrides({"transformer.num_layer=3"}, &config);
  EXPECT_THAT(FieldsAndReasons(status),
              ElementsAre(Pair("transformer.num_layer", "UNKNOWN_FIELD")));
  EXPECT_THAT(std::string(status.message()), HasSubstr("Did you mean 'num_layers'?"));
  status = ApplyOverrides({"vocab_size.x=3"}, &config);
  EXPECT_THAT(FieldsAndReasons(status), ElementsAre(Pair("vocab_size.x", "UNKNOWN_FIELD")));
}

TEST(Overrides, EveryBadOverrideIsReportedAndGoodOnesApply) {
  LoadedConfig config = Base();
  absl::Status status = ApplyOverrides(
      {"num_layers=x", "nope=1", "hidden_size=128", "no_equals_sign", "ddp.bucket_size=big"},
      &config);
  ASSERT_FALSE(status.ok());
  const auto problems = FieldsAndReasons(status);
  EXPECT_THAT(problems, SizeIs(4));
  EXPECT_THAT(problems, Contains(Pair("transformer.num_layers", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("nope", "UNKNOWN_FIELD")));
  EXPECT_THAT(problems, Contains(Pair("no_equals_sign", "INVALID_OVERRIDE")));
  EXPECT_THAT(problems, Contains(Pair("ddp.bucket_size", "TYPE_MISMATCH")));
  EXPECT_THAT(std::string(status.message()), HasSubstr("--set num_layers=x: expected an integer"));
  EXPECT_EQ(config.model.transformer().hidden_size(), 128);
}

TEST(Overrides, ModelOnlyFormRejectsSections) {
  gptbuilder::v1::GPTModelConfig model = TinyLlama();
  EXPECT_TRUE(ApplyOverrides({"num_layers=2"}, &model).ok());
  EXPECT_EQ(model.transformer().num_layers(), 2);
  absl::Status status = ApplyOverrides({"ddp.bucket_size=1"}, &model);
  EXPECT_THAT(FieldsAndReasons(status), ElementsAre(Pair("ddp.bucket_size", "UNKNOWN_FIELD")));
}

}  // namespace
}  // namespace gptb::config
