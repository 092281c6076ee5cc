#include "core/config/config_loader.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/config_emitter.h"
#include "core/config/finalize.h"
#include "core/layer_spec/layer_specs.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::gptb::config::testing::FieldsAndReasons;
using ::gptb::config::testing::TinyLlama;
using ::gptb::config::testing::TinyMoe;
using ::gptbuilder::v1::GPTModelConfig;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Example(const std::string& name) {
  return std::string(GPTB_SOURCE_DIR) + "/examples/" + name;
}

LoadedConfig MustLoad(const std::string& text, ConfigFormat format = ConfigFormat::kAuto) {
  absl::StatusOr<LoadedConfig> loaded = LoadConfigText(text, format);
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  return loaded.ok() ? *loaded : LoadedConfig();
}

std::vector<std::pair<std::string, std::string>> LoadProblems(const std::string& text) {
  absl::StatusOr<LoadedConfig> loaded = LoadConfigText(text);
  EXPECT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  return FieldsAndReasons(loaded.status());
}

constexpr char kTinyLlamaYaml[] = R"(
transformer:
  num_layers: 4
  hidden_size: 64
  num_attention_heads: 8
  num_query_groups: 2
  ffn_hidden_size: 176
  normalization: RMSNorm
  activation_func: silu
  gated_linear_unit: true
  add_bias_linear: false
vocab_size: 1000
should_pad_vocab: true
seq_length: 128
position_embedding_type: rope
transformer_layer_spec: local
)";

TEST(ConfigLoader, YamlIsNestedLikeTheSchema) {
  const LoadedConfig loaded = MustLoad(kTinyLlamaYaml);
  EXPECT_EQ(loaded.source_format, "yaml");
  EXPECT_TRUE(MessageDifferencer::Equals(loaded.model, TinyLlama())) << loaded.model.DebugString();
}

TEST(ConfigLoader, JsonLoadsTheSameMessage) {
  const LoadedConfig loaded = MustLoad(R"({
    "transformer": {"num_layers": 4, "hidden_size": 64, "num_attention_heads": 8,
                    "num_query_groups": 2, "ffn_hidden_size": 176, "normalization": "RMSNorm",
                    "activation_func": "silu", "gated_linear_unit": true,
                    "add_bias_linear": false},
    "vocab_size": 1000, "should_pad_vocab": true, "seq_length": 128,
    "position_embedding_type": "rope", "transformer_layer_spec": "local"
  })");
  EXPECT_EQ(loaded.source_format, "json");
  EXPECT_TRUE(MessageDifferencer::Equals(loaded.model, TinyLlama()));
}

TEST(ConfigLoader, TextProtoLoadsTheSameMessageAndSections) {
  const LoadedConfig loaded = MustLoad(R"(
    # a comment
    transformer {
      num_layers: 4 hidden_size: 64 num_attention_heads: 8 num_query_groups: 2
      ffn_hidden_size: 176 normalization: "RMSNorm" activation_func: "silu"
      gated_linear_unit: true add_bias_linear: false
    }
    vocab_size: 1000
    should_pad_vocab: true
    seq_length: 128
    position_embedding_type: "rope"
    transformer_layer_spec { name: "local" }
    ddp { grad_reduce_in_fp32: true }
    build { seed: 7 }
  )");
  EXPECT_EQ(loaded.source_format, "textproto");
  EXPECT_TRUE(MessageDifferencer::Equals(loaded.model, TinyLlama())) << loaded.model.DebugString();
  EXPECT_TRUE(loaded.ddp.grad_reduce_in_fp32());
  EXPECT_EQ(loaded.build.seed(), 7);
}

TEST(ConfigLoader, TextProtoUnknownFieldSuggestsTheClosest) {
  absl::StatusOr<LoadedConfig> loaded =
      LoadConfigText("transformer { num_layer: 4 }", ConfigFormat::kTextProto, "model.txtpb");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(FieldsAndReasons(loaded.status()), ElementsAre(Pair("model.txtpb", "PARSE_ERROR")));
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("'num_layer' is not a field of TransformerConfig. Did you mean "
                        "'num_layers'?"));
}

TEST(ConfigLoader, FormatFromPathAndContent) {
  EXPECT_EQ(FormatFromPath("a/b.yaml"), ConfigFormat::kYaml);
  EXPECT_EQ(FormatFromPath("b.YML"), ConfigFormat::kYaml);
  EXPECT_EQ(FormatFromPath("config.json"), ConfigFormat::kJson);
  EXPECT_EQ(FormatFromPath("m.textproto"), ConfigFormat::kTextProto);
  EXPECT_EQ(FormatFromPath("m.txtpb"), ConfigFormat::kTextProto);
  EXPECT_EQ(FormatFromPath("m.pbtxt"), ConfigFormat::kTextProto);
  EXPECT_EQ(FormatFromPath("model.conf"), ConfigFormat::kAuto);
  EXPECT_EQ(DetectFormat("# c\n  {\"vocab_size\": 1}"), ConfigFormat::kJson);
  EXPECT_EQ(DetectFormat("vocab_size: 1\ntransformer {\n num_layers: 1\n}\n"),
            ConfigFormat::kTextProto);
  EXPECT_EQ(DetectFormat("transformer:\n  num_layers: 1 # {\n"), ConfigFormat::kYaml);
}

TEST(ConfigLoader, SectionsDdpAndBuild) {
  const LoadedConfig loaded = MustLoad(std::string(kTinyLlamaYaml) + R"(
ddp:
  grad_reduce_in_fp32: true
  bucket_size: 40000000
  param_name_patterns_for_fp32_local_accumulation: "*.bias"
build:
  seed: 7
  wrap_with_ddp: no
)");
  EXPECT_TRUE(loaded.ddp.grad_reduce_in_fp32());
  EXPECT_EQ(loaded.ddp.bucket_size(), 40000000);
  EXPECT_THAT(loaded.ddp.param_name_patterns_for_fp32_local_accumulation(), ElementsAre("*.bias"));
  EXPECT_EQ(loaded.build.seed(), 7);
  EXPECT_FALSE(loaded.build.wrap_with_ddp());
}

TEST(ConfigLoader, UnknownKeysSuggestTheClosestField) {
  const auto problems = LoadProblems(R"(
transformer:
  num_layer: 4
  hiden_size: 64
seq_lenght: 10
num_attention_heads: 8
ddpp: {}
)");
  EXPECT_THAT(problems, Contains(Pair("transformer.num_layer", "UNKNOWN_FIELD")));
  EXPECT_THAT(problems, Contains(Pair("transformer.hiden_size", "UNKNOWN_FIELD")));
  EXPECT_THAT(problems, Contains(Pair("seq_lenght", "UNKNOWN_FIELD")));
  EXPECT_THAT(problems, Contains(Pair("num_attention_heads", "UNKNOWN_FIELD")));
  EXPECT_THAT(problems, Contains(Pair("ddpp", "UNKNOWN_FIELD")));
  absl::StatusOr<LoadedConfig> loaded = LoadConfigText("transformer:\n  num_layer: 4\n");
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("transformer.num_layer: 'num_layer' is not a field of TransformerConfig. "
                        "Did you mean 'num_layers'?"));
  loaded = LoadConfigText("num_attention_heads: 8\nseq_lenght: 1\n");
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("'num_attention_heads' is a TransformerConfig field; put it under "
                        "'transformer:'."));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("Did you mean 'seq_length'?"));
}

TEST(ConfigLoader, TypeChecksWithFieldPaths) {
  const auto problems = LoadProblems(R"(
transformer:
  num_layers: four
  hidden_size: 3000000000
  num_attention_heads: "8"
  add_bias_linear: maybe
  moe_layer_freq: [1, x]
  hidden_dropout: high
vocab_size: [1, 2]
)");
  EXPECT_THAT(problems, Contains(Pair("transformer.num_layers", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("transformer.hidden_size", "OUT_OF_RANGE")));
  EXPECT_THAT(problems, Contains(Pair("transformer.num_attention_heads", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("transformer.add_bias_linear", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("transformer.moe_layer_freq[1]", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("transformer.hidden_dropout", "TYPE_MISMATCH")));
  EXPECT_THAT(problems, Contains(Pair("vocab_size", "TYPE_MISMATCH")));
  EXPECT_EQ(problems.size(), 7u);
}

TEST(ConfigLoader, ValueForms) {
  const LoadedConfig loaded = MustLoad(R"(
transformer:
  num_layers: 4.0             # an integral float is an integer
  hidden_size: 64
  num_attention_heads: 8
  kv_channels: null           # null leaves a field unset
  moe_layer_freq: 2           # one scalar for a repeated field
  window_size: [4095, 0]
  layernorm_epsilon: 1e-6
  hidden_dropout: 0
  add_bias_linear: False
  _target_: megatron.bridge.models.transformer_config.TransformerConfig
_builder_: megatron.bridge.models.GPTModelBuilder
rotary_base: 5.0e5
vocab_size: 1000
hf_model_id: "123"
)");
  const auto& t = loaded.model.transformer();
  EXPECT_EQ(t.num_layers(), 4);
  EXPECT_FALSE(t.has_kv_channels());
  EXPECT_THAT(t.moe_layer_freq(), ElementsAre(2));
  EXPECT_THAT(t.window_size(), ElementsAre(4095, 0));
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-6);
  EXPECT_TRUE(t.has_hidden_dropout());
  EXPECT_EQ(t.hidden_dropout(), 0.0);
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_TRUE(t.has_add_bias_linear());
  EXPECT_EQ(loaded.model.rotary_base(), 500000);
  EXPECT_EQ(loaded.model.hf_model_id(), "123");
}

TEST(ConfigLoader, LayerSpecForms) {
  EXPECT_EQ(MustLoad("transformer_layer_spec: modelopt\n").model.transformer_layer_spec().name(),
            "modelopt");
  EXPECT_EQ(
      MustLoad("transformer_layer_spec: {name: local}\n").model.transformer_layer_spec().name(),
      "local");
  const LoadedConfig custom = MustLoad(R"(
transformer_layer_spec:
  module: TransformerLayer
  params: {hidden_dropout: 0.0}
  submodules:
    self_attention:
      module: SelfAttention
      submodules:
        core_attention: DotProductAttention
    mlp: MLP
)");
  const gptbuilder::v1::ModuleSpec& spec = custom.model.transformer_layer_spec().custom();
  EXPECT_EQ(spec.module(), "TransformerLayer");
  EXPECT_EQ(spec.params().at("hidden_dropout"), "0.0");
  EXPECT_EQ(spec.submodules().at("mlp").module(), "MLP");
  EXPECT_EQ(spec.submodules().at("self_attention").submodules().at("core_attention").module(),
            "DotProductAttention");
}

TEST(ConfigLoader, DuplicateKeysAndSyntaxErrors) {
  EXPECT_THAT(LoadProblems("vocab_size: 1\nvocab_size: 2\n"),
              Contains(Pair("vocab_size", "DUPLICATE_KEY")));
  absl::StatusOr<LoadedConfig> loaded =
      LoadConfigText("transformer:\n  num_layers: [1, 2\n", ConfigFormat::kYaml, "bad.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(FieldsAndReasons(loaded.status()), ElementsAre(Pair("bad.yaml", "PARSE_ERROR")));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("line "));
  EXPECT_THAT(LoadProblems(""), ElementsAre(Pair("config", "EMPTY_CONFIG")));
  EXPECT_THAT(LoadProblems("- a\n- b\n"), ElementsAre(Pair("config", "TYPE_MISMATCH")));
}

// Config text arrives over the wire (ConfigText), so a short document must not make the loader
// do unbounded work: aliases are counted each time they are used, nesting is bounded, both before
// anything is converted.
TEST(ConfigLoader, AliasBombsAndDeepNestingAreRefusedBeforeConversion) {
  // 2^30 values once expanded, in under 1 KiB.
  std::string bomb = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 30; ++i) {
    absl::StrAppend(&bomb, "a", i, ": &a", i, " [*a", i - 1, ", *a", i - 1, "]\n");
  }
  EXPECT_THAT(LoadProblems(bomb), ElementsAre(Pair("config", "LIMIT_EXCEEDED")));
  // The same through a custom layer spec tree, which the converter would build as messages.
  std::string spec_bomb = "s0: &s0 {module: TransformerLayer}\n";
  for (int i = 1; i <= 24; ++i) {
    absl::StrAppend(&spec_bomb, "s", i, ": &s", i, " {module: TransformerLayer, submodules: {x: *s",
                    i - 1, ", y: *s", i - 1, "}}\n");
  }
  absl::StrAppend(&spec_bomb, "transformer_layer_spec: *s24\n");
  EXPECT_THAT(LoadProblems(spec_bomb), ElementsAre(Pair("config", "LIMIT_EXCEEDED")));
  std::string deep = "transformer: ";
  for (int i = 0; i <= kMaxConfigDepth; ++i) deep += "[";
  for (int i = 0; i <= kMaxConfigDepth; ++i) deep += "]";
  EXPECT_THAT(LoadProblems(deep), ElementsAre(Pair("config", "LIMIT_EXCEEDED")));
  // Within the bounds the document loads as before.
  absl::StatusOr<LoadedConfig> loaded =
      LoadConfigText(std::string(kTinyLlamaYaml) + "ddp: &d {overlap_grad_reduce: true}\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->ddp.overlap_grad_reduce());
}

TEST(ConfigLoader, FormatNames) {
  EXPECT_EQ(ConfigFormatByName(""), ConfigFormat::kAuto);
  EXPECT_EQ(ConfigFormatByName("auto"), ConfigFormat::kAuto);
  EXPECT_EQ(ConfigFormatByName("yaml"), ConfigFormat::kYaml);
  EXPECT_EQ(ConfigFormatByName("json"), ConfigFormat::kJson);
  EXPECT_EQ(ConfigFormatByName("textproto"), ConfigFormat::kTextProto);
  EXPECT_EQ(ConfigFormatByName("toml"), std::nullopt);
}

TEST(ConfigLoader, MissingFileIsNotFound) {
  absl::StatusOr<LoadedConfig> loaded = LoadConfigFile("/nonexistent/model.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
}

TEST(ConfigLoader, ExamplesLoadAndFinalize) {
  for (const char* name :
       {"default.yaml", "gpt2-small.yaml", "llama3-8b.yaml", "qwen3-8b.yaml", "mixtral-8x7b.yaml",
        "tiny-gpt.yaml", "tiny-llama.yaml", "tiny-moe.yaml"}) {
    absl::StatusOr<LoadedConfig> loaded = LoadConfigFile(Example(name));
    ASSERT_TRUE(loaded.ok()) << name << ": " << loaded.status().message();
    absl::StatusOr<LoadedConfig> resolved = FinalizeLoaded(*loaded);
    EXPECT_TRUE(resolved.ok()) << name << ": " << resolved.status().message();
  }
  absl::StatusOr<LoadedConfig> tiny_moe = LoadConfigFile(Example("tiny-moe.yaml"));
  ASSERT_TRUE(tiny_moe.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(tiny_moe->model.transformer(), [] {
    GPTModelConfig c = TinyMoe();
    c.mutable_transformer()->set_moe_grouped_gemm(false);
    return c.transformer();
  }()));
  // The default model builds on 4 ranks as tp 2 x pp 2.
  EXPECT_TRUE(FinalizeLoaded(*LoadConfigFile(Example("default.yaml")), FinalizeOptions{4}).ok());
}

// ---- Emitting and the round trip ---------------------------------------------------------------

GPTModelConfig RichConfig() {
  GPTModelConfig c = TinyMoe();
  auto* t = c.mutable_transformer();
  t->set_tensor_model_parallel_size(2);
  t->set_pipeline_model_parallel_size(2);
  t->set_virtual_pipeline_model_parallel_size(2);
  t->set_num_layers(8);
  for (int v : {1, 0, 1, 0, 1, 0, 1, 0}) t->add_moe_layer_freq(v);
  t->set_layernorm_epsilon(1e-6);
  t->set_init_method_std(0.006);
  t->set_hidden_dropout(0.0);
  t->add_window_size(127);
  t->add_window_size(0);
  t->set_moe_aux_loss_coeff(1e-3);
  t->set_params_dtype("torch.bfloat16");
  t->set_bf16(true);
  c.set_rotary_base(500000);
  c.set_rotary_percent(0.5);
  c.set_hf_model_id("example/model");
  c.set_seq_len_interpolation_factor(1.0 / 3.0);
  c.set_tp_comm_overlap_cfg("{\"qkv_fprop\": {\"method\": \"ring_exchange\"}}");
  auto* spec = c.mutable_transformer_layer_spec()->mutable_custom();
  layer_spec::ToProto(*layer_spec::GetGptLayerLocalSpec(std::nullopt, false, false, "RMSNorm"),
                      spec);
  (*spec->mutable_params())["note"] = "true";
  return c;
}

TEST(ConfigEmitter, ResolvedYamlRoundTripsExactly) {
  std::vector<GPTModelConfig> models = {TinyLlama(), TinyMoe(), RichConfig()};
  for (const char* name : {"default.yaml", "gpt2-small.yaml", "mixtral-8x7b.yaml"}) {
    models.push_back(LoadConfigFile(Example(name))->model);
  }
  for (const GPTModelConfig& model : models) {
    LoadedConfig config;
    config.model = model;
    config.ddp.set_bucket_size(12345);
    config.build.set_seed(99);
    absl::StatusOr<LoadedConfig> resolved = FinalizeLoaded(config);
    ASSERT_TRUE(resolved.ok()) << resolved.status().message();
    for (const bool json : {false, true}) {
      const std::string text = json ? EmitJson(*resolved) : EmitYaml(*resolved);
      const LoadedConfig reloaded = MustLoad(text);
      EXPECT_TRUE(MessageDifferencer::Equals(reloaded.model, resolved->model)) << text;
      EXPECT_TRUE(MessageDifferencer::Equals(reloaded.ddp, resolved->ddp));
      EXPECT_TRUE(MessageDifferencer::Equals(reloaded.build, resolved->build));
      absl::StatusOr<LoadedConfig> again = FinalizeLoaded(reloaded);
      ASSERT_TRUE(again.ok()) << again.status().message();
      EXPECT_TRUE(MessageDifferencer::Equals(again->model, resolved->model));
    }
  }
}

// window_attn_skip_freq is Megatron's int-or-list like moe_layer_freq: one value is the int form
// both ways.
TEST(ConfigEmitter, WindowAttnSkipFreqKeepsItsIntAndListForms) {
  for (const char* form : {"4", "[1, 1, 0, 1]"}) {
    const LoadedConfig loaded = MustLoad(absl::StrCat(R"(
transformer:
  num_layers: 4
  hidden_size: 64
  num_attention_heads: 8
  window_size: [127, 0]
  window_attn_skip_freq: )",
                                                      form, "\n"));
    const std::string yaml = EmitYaml(loaded.model);
    EXPECT_THAT(yaml, HasSubstr(absl::StrCat("\n  window_attn_skip_freq: ", form, "\n")));
    const LoadedConfig reloaded = MustLoad(yaml);
    EXPECT_TRUE(MessageDifferencer::Equals(reloaded.model, loaded.model)) << form;
  }
}

TEST(ConfigEmitter, WritesNullsScalarsAndFloats) {
  LoadedConfig config;
  config.model = TinyLlama();
  const std::string yaml = EmitYaml(*FinalizeLoaded(config));
  EXPECT_THAT(yaml, HasSubstr("\n  virtual_pipeline_model_parallel_size: null\n"));
  EXPECT_THAT(yaml, HasSubstr("\n  moe_layer_freq: 1\n"));
  EXPECT_THAT(yaml, HasSubstr("\n  layernorm_epsilon: 1.0e-05\n"));
  EXPECT_THAT(yaml, HasSubstr("\ntransformer_layer_spec: local\n"));
  EXPECT_THAT(yaml, HasSubstr("\nhf_model_id: null\n"));
  EXPECT_THAT(yaml, HasSubstr("\nddp:\n  grad_reduce_in_fp32: false\n"));
  EXPECT_THAT(yaml, HasSubstr("\nbuild:\n"));
  const std::string json = EmitJson(config.model);
  EXPECT_THAT(json, HasSubstr("\"transformer_layer_spec\": \"local\""));
  EXPECT_THAT(json, HasSubstr("\"hf_model_id\": null"));
  // Strings YAML would read as something else are quoted.
  GPTModelConfig odd;
  odd.set_hf_model_id("yes");
  odd.set_tp_comm_overlap_cfg("E|(tt|)*2,L");
  const std::string odd_yaml = EmitYaml(odd);
  EXPECT_THAT(odd_yaml, HasSubstr("hf_model_id: \"yes\""));
  EXPECT_THAT(odd_yaml, HasSubstr("tp_comm_overlap_cfg: \"E|(tt|)*2,L\""));
  EXPECT_TRUE(MessageDifferencer::Equals(MustLoad(odd_yaml).model, odd));
}

}  // namespace
}  // namespace gptb::config
