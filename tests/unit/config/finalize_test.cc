#include "core/config/finalize.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/config/config_loader.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::gptb::config::testing::FieldsAndReasons;
using ::gptb::config::testing::TinyLlama;
using ::gptb::config::testing::TinyMoe;
using ::gptbuilder::v1::GPTModelConfig;
using ::gptbuilder::v1::TransformerConfig;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using FD = google::protobuf::FieldDescriptor;

GPTModelConfig MustFinalize(const GPTModelConfig& config, FinalizeOptions options = {}) {
  absl::StatusOr<GPTModelConfig> resolved = Finalize(config, options);
  EXPECT_TRUE(resolved.ok()) << resolved.status().message();
  return resolved.ok() ? *resolved : GPTModelConfig();
}

// Megatron's and Bridge's derivations for values this build refuses (sequence parallelism, fp32
// residuals, layer scaling, fast_gelu): checked with the refusals left out (they are tested in
// field_support_test.cc).
GPTModelConfig MustFinalizeMegatronRules(const GPTModelConfig& config) {
  FinalizeOptions options;
  options.refuse_unsupported = false;
  return MustFinalize(config, options);
}

// ---- Defaults ----------------------------------------------------------------------------------

// Bridge's GPTModelConfig defaults (bridge-gpt-builder.md §2.1 and the ModelConfig base §1.1).
TEST(GPTModelConfigDefaults, EqualBridgeTable) {
  const GPTModelConfig c;
  EXPECT_FALSE(c.has_transformer_layer_spec());  // the default_layer_spec selector
  EXPECT_FALSE(c.has_vocab_size());
  EXPECT_EQ(c.make_vocab_size_divisible_by(), 128);
  EXPECT_FALSE(c.should_pad_vocab());
  EXPECT_EQ(c.seq_length(), 1024);
  EXPECT_FALSE(c.fp16_lm_cross_entropy());
  EXPECT_TRUE(c.parallel_output());
  EXPECT_FALSE(c.share_embeddings_and_output_weights());
  EXPECT_EQ(c.position_embedding_type(), "learned_absolute");
  EXPECT_EQ(c.rotary_percent(), 1.0);
  EXPECT_EQ(c.rotary_base(), 10000);
  EXPECT_FALSE(c.rope_scaling());
  EXPECT_EQ(c.rope_scaling_factor(), 8.0);
  EXPECT_TRUE(c.scatter_embedding_sequence_parallel());
  EXPECT_FALSE(c.has_seq_len_interpolation_factor());
  EXPECT_FALSE(c.has_tp_comm_overlap_cfg());
  EXPECT_FALSE(c.use_transformer_engine_full_layer_spec());
  EXPECT_FALSE(c.use_transformer_engine_op_fuser());
  EXPECT_FALSE(c.has_use_arbitrary_attention_mask());
  EXPECT_FALSE(c.restore_modelopt_state());
  EXPECT_FALSE(c.has_hf_model_id());
}

TEST(Finalize, SetsEveryDefaultExplicitlyAndLeavesPythonNoneUnset) {
  const GPTModelConfig resolved = MustFinalize(TinyLlama());
  const google::protobuf::Message* messages[] = {&resolved, &resolved.transformer()};
  for (const google::protobuf::Message* m : messages) {
    const google::protobuf::Descriptor* d = m->GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* field = d->field(i);
      if (field->is_repeated() || !field->has_default_value()) continue;
      EXPECT_TRUE(m->GetReflection()->HasField(*m, field)) << field->full_name();
    }
  }
  const TransformerConfig& t = resolved.transformer();
  EXPECT_FALSE(t.has_virtual_pipeline_model_parallel_size());
  EXPECT_FALSE(t.has_mtp_num_layers());
  EXPECT_FALSE(t.has_softmax_scale());
  EXPECT_FALSE(t.has_num_moe_experts());
  EXPECT_FALSE(t.has_moe_ffn_hidden_size());
  EXPECT_FALSE(t.has_pipeline_dtype());  // pp == 1
  EXPECT_FALSE(t.has_recompute_granularity());
  EXPECT_FALSE(t.has_fp8());
  EXPECT_FALSE(t.has_tensor_parallel_num_weight_shards());
  EXPECT_FALSE(resolved.has_seq_len_interpolation_factor());
  EXPECT_FALSE(resolved.has_use_arbitrary_attention_mask());
  EXPECT_FALSE(resolved.has_hf_model_id());
}

// ---- Derived values ----------------------------------------------------------------------------

TEST(Finalize, DerivesMegatronValues) {
  GPTModelConfig config;
  TransformerConfig* t = config.mutable_transformer();
  t->set_num_layers(2);
  t->set_hidden_size(256);
  t->set_num_attention_heads(8);
  t->set_tensor_model_parallel_size(2);
  t->set_pipeline_model_parallel_size(2);
  t->set_params_dtype("torch.bfloat16");
  t->set_init_method_std(0.01);
  config.set_vocab_size(1024);
  const GPTModelConfig r = MustFinalize(config);
  const TransformerConfig& rt = r.transformer();
  EXPECT_EQ(rt.ffn_hidden_size(), 1024);           // 4h
  EXPECT_EQ(rt.kv_channels(), 32);                 // h / n
  EXPECT_EQ(rt.num_query_groups(), 8);             // n
  EXPECT_EQ(rt.expert_tensor_parallel_size(), 2);  // tp
  EXPECT_EQ(rt.embedding_init_method_std(), 0.01);
  EXPECT_EQ(rt.params_dtype(), "bfloat16");
  EXPECT_EQ(rt.pipeline_dtype(), "bfloat16");  // params_dtype when pp > 1
  EXPECT_EQ(rt.autocast_dtype(), "bfloat16");
  EXPECT_EQ(rt.microbatch_group_size_per_vp_stage(), 2);  // pp
  EXPECT_THAT(rt.moe_layer_freq(), ElementsAre(1));
  EXPECT_EQ(r.transformer_layer_spec().name(), "default");
}

TEST(Finalize, MoeFfnDefaultsToFfn) {
  EXPECT_EQ(MustFinalize(TinyMoe()).transformer().moe_ffn_hidden_size(), 176);
}

TEST(Finalize, SequenceParallelIsSilentlyOffWithoutTensorParallelism) {
  GPTModelConfig config = TinyLlama();
  config.mutable_transformer()->set_sequence_parallel(true);
  EXPECT_FALSE(MustFinalize(config).transformer().sequence_parallel());
  config.mutable_transformer()->set_tensor_model_parallel_size(2);
  // With TP the norms must support it (torch's, which the local spec builds, do not).
  config.mutable_transformer_layer_spec()->set_name("transformer_engine");
  EXPECT_TRUE(MustFinalize(config).transformer().sequence_parallel());
}

TEST(Finalize, Fp32ResidualForcesFp32PipelineDtype) {
  GPTModelConfig config = TinyLlama();
  TransformerConfig* t = config.mutable_transformer();
  t->set_fp32_residual_connection(true);
  t->set_params_dtype("bf16");
  EXPECT_FALSE(MustFinalizeMegatronRules(config).transformer().has_pipeline_dtype());  // pp 1
  t->set_pipeline_model_parallel_size(2);
  EXPECT_EQ(MustFinalizeMegatronRules(config).transformer().pipeline_dtype(), "float32");
}

TEST(Finalize, NormalizesDtypeAndActivationSpellings) {
  const std::pair<const char*, const char*> dtypes[] = {
      {"torch.float32", "float32"}, {"fp32", "float32"},
      {"32-true", "float32"},       {"torch.float", "float32"},
      {"bf16", "bfloat16"},         {"bf16-mixed", "bfloat16"},
      {"bfloat16", "bfloat16"},     {"torch.bfloat16", "bfloat16"},
      {"fp16", "float16"},          {"16-mixed", "float16"},
      {"torch.half", "float16"},    {"torch.float16", "float16"},
  };
  for (const auto& [spelling, canonical] : dtypes) {
    GPTModelConfig config = TinyLlama();
    config.mutable_transformer()->set_params_dtype(spelling);
    EXPECT_EQ(MustFinalize(config).transformer().params_dtype(), canonical) << spelling;
  }
  const std::pair<const char*, const char*> activations[] = {
      {"relu2", "squared_relu"},
      {"gelu_pytorch_tanh", "fast_gelu"},
      {"torch.nn.functional.silu", "silu"},
      {"quick_gelu", "quick_gelu"},
  };
  for (const auto& [spelling, canonical] : activations) {
    GPTModelConfig config = TinyLlama();
    config.mutable_transformer()->set_activation_func(spelling);
    EXPECT_EQ(MustFinalizeMegatronRules(config).transformer().activation_func(), canonical)
        << spelling;
  }
}

TEST(Finalize, MigratesEnableCudaGraphAndLayerScaling) {
  GPTModelConfig config = TinyLlama();
  TransformerConfig* t = config.mutable_transformer();
  t->set_enable_cuda_graph(true);
  t->set_use_te_rng_tracker(true);
  t->set_apply_query_key_layer_scaling(true);
  t->set_attention_softmax_in_fp32(false);
  t->set_moe_expert_capacity_factor(-1.0);
  const TransformerConfig rt = MustFinalizeMegatronRules(config).transformer();
  EXPECT_EQ(rt.cuda_graph_impl(), "local");
  EXPECT_FALSE(rt.enable_cuda_graph());
  EXPECT_TRUE(rt.attention_softmax_in_fp32());
  EXPECT_FALSE(rt.has_moe_expert_capacity_factor());  // negative means "no capacity"
}

TEST(Finalize, MoeFfnIsDroppedForMixedDenseModels) {
  GPTModelConfig config = TinyLlama();
  config.mutable_transformer()->set_moe_ffn_hidden_size(64);
  config.mutable_transformer()->add_moe_layer_freq(2);
  EXPECT_FALSE(MustFinalize(config).transformer().has_moe_ffn_hidden_size());
}

TEST(Finalize, IsIdempotent) {
  for (const GPTModelConfig& config : {TinyLlama(), TinyMoe()}) {
    const GPTModelConfig once = MustFinalize(config);
    const GPTModelConfig twice = MustFinalize(once);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(once, twice));
  }
  GPTModelConfig graphs = TinyLlama();
  graphs.mutable_transformer()->set_enable_cuda_graph(true);
  graphs.mutable_transformer()->set_use_te_rng_tracker(true);
  const GPTModelConfig once = MustFinalize(graphs);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(once, MustFinalize(once)));
}

// ---- Reporting ---------------------------------------------------------------------------------

TEST(Finalize, ReturnsEveryViolationAtOnceWithFieldPaths) {
  GPTModelConfig config = TinyLlama();
  TransformerConfig* t = config.mutable_transformer();
  t->set_num_attention_heads(6);  // not divisible by tp 4, nor by num_query_groups 4
  t->set_num_query_groups(4);
  t->set_tensor_model_parallel_size(4);
  t->set_hidden_size(60);  // divisible by 6
  t->set_normalization("rmsnorm");
  config.clear_vocab_size();
  absl::StatusOr<GPTModelConfig> r = Finalize(config, FinalizeOptions{6});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  const auto violations = FieldsAndReasons(r.status());
  EXPECT_THAT(violations,
              Contains(Pair("transformer.num_attention_heads", "HEADS_NOT_DIVISIBLE_BY_TP")));
  EXPECT_THAT(violations,
              Contains(Pair("transformer.num_query_groups", "QUERY_GROUPS_NOT_DIVIDING_HEADS")));
  EXPECT_THAT(violations, Contains(Pair("transformer.normalization", "INVALID_VALUE")));
  EXPECT_THAT(violations, Contains(Pair("vocab_size", "REQUIRED")));
  EXPECT_THAT(violations, Contains(Pair("world_size", "WORLD_SIZE_NOT_DIVISIBLE")));
  // The message has one `field: description` line per violation.
  const std::string message(r.status().message());
  EXPECT_EQ(static_cast<size_t>(std::count(message.begin(), message.end(), '\n')) + 1,
            violations.size());
  EXPECT_THAT(message, HasSubstr("transformer.normalization: normalization 'rmsnorm' is not "
                                 "accepted; use 'LayerNorm' or 'RMSNorm'. Did you mean "
                                 "'RMSNorm'?"));
  EXPECT_THAT(message, HasSubstr("tensor_model_parallel_size values that divide it: 1, 2, 3, 6"));
}

TEST(Finalize, DescribesWhatWouldBeValid) {
  GPTModelConfig config = TinyLlama();
  config.mutable_transformer()->set_num_query_groups(3);
  absl::StatusOr<GPTModelConfig> r = Finalize(config);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("valid num_query_groups: 1, 2, 4, 8"));
}

// ---- Bridge's finalize test vectors (test_gpt_builder.py TestGPTModelConfigFinalize) ----------

TEST(FinalizeBridgeVectors, ModelChunks) {
  GPTModelConfig config = TinyLlama();
  TransformerConfig* t = config.mutable_transformer();
  t->set_num_layers(6);
  t->set_pipeline_model_parallel_size(2);
  t->set_virtual_pipeline_model_parallel_size(2);
  absl::StatusOr<GPTModelConfig> r = Finalize(config);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("Make sure the number of model chunks is the same across all pipeline "
                        "stages."));
  t->set_num_layers(8);
  EXPECT_TRUE(Finalize(config).ok());
}

TEST(FinalizeBridgeVectors, CudaGraphsNeedTheTeRngTracker) {
  GPTModelConfig config = TinyLlama();
  config.mutable_transformer()->set_cuda_graph_impl("local");
  absl::StatusOr<GPTModelConfig> r = Finalize(config);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("Transformer engine's RNG tracker is required for cudagraphs, it can be "
                        "enabled with use_te_rng_tracker=True'."));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("RNG tracker"));
  config.mutable_transformer()->set_use_te_rng_tracker(true);
  EXPECT_TRUE(Finalize(config).ok());
}

// Bridge's `(first or last) is not None`: first=0 with last=None is "not asymmetric", so the
// model-chunk rule still applies; first=None with last set is asymmetric.
TEST(FinalizeBridgeVectors, FirstOrLastUsesPythonOrSemantics) {
  GPTModelConfig config = TinyLlama();
  TransformerConfig* t = config.mutable_transformer();
  t->set_num_layers(6);
  t->set_pipeline_model_parallel_size(2);
  t->set_virtual_pipeline_model_parallel_size(2);
  t->set_num_layers_in_first_pipeline_stage(0);
  EXPECT_THAT(
      FieldsAndReasons(Finalize(config).status()),
      Contains(Pair("transformer.virtual_pipeline_model_parallel_size", "VP_CHUNKS_UNEVEN")));
  t->clear_num_layers_in_first_pipeline_stage();
  t->set_num_layers_in_last_pipeline_stage(2);
  const auto with_last = FieldsAndReasons(Finalize(config).status());
  EXPECT_THAT(with_last,
              ::testing::Not(Contains(
                  Pair("transformer.virtual_pipeline_model_parallel_size", "VP_CHUNKS_UNEVEN"))));
}

// ---- Parity with Megatron's resolved TransformerConfig (tests/golden) ------------------------

nlohmann::json ReadGolden(const std::string& name) {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/tests/golden/" + name);
  EXPECT_TRUE(in.good()) << name;
  return nlohmann::json::parse(in);
}

// The golden configurations come from the examples with the golden layout applied.
GPTModelConfig GoldenModel(const nlohmann::json& golden) {
  const std::string name = golden["config"]["name"];
  const std::string file = name == "A"   ? "tiny-gpt.yaml"
                           : name == "D" ? "tiny-moe.yaml"
                                         : "tiny-llama.yaml";
  absl::StatusOr<LoadedConfig> loaded =
      LoadConfigFile(std::string(GPTB_SOURCE_DIR) + "/examples/" + file);
  EXPECT_TRUE(loaded.ok()) << loaded.status().message();
  GPTModelConfig config = loaded->model;
  TransformerConfig* t = config.mutable_transformer();
  const nlohmann::json& kwargs = golden["config"]["transformer_config_kwargs"];
  t->set_num_layers(kwargs["num_layers"].get<int>());
  if (kwargs.contains("num_layers_in_first_pipeline_stage")) {
    t->set_num_layers_in_first_pipeline_stage(kwargs["num_layers_in_first_pipeline_stage"]);
  }
  const nlohmann::json& layout = golden["layout"];
  t->set_tensor_model_parallel_size(layout["tp"]);
  t->set_pipeline_model_parallel_size(layout["pp"]);
  if (!layout["vp"].is_null()) t->set_virtual_pipeline_model_parallel_size(layout["vp"]);
  t->set_expert_model_parallel_size(layout["ep"]);
  // The harness's construction switches.
  const nlohmann::json& resolved = golden["config"]["transformer_config_resolved"];
  t->set_perform_initialization(resolved["perform_initialization"]);
  t->set_use_cpu_initialization(resolved["use_cpu_initialization"]);
  return config;
}

TEST(FinalizeGoldenParity, ResolvedFieldsEqualMegatronsForEveryGoldenLayout) {
  const std::string names[] = {
      "A_tp1_pp1.json",     "A_tp2_pp2_vp2.json", "B_tp1_pp2.json",         "B_tp2_pp2_vp2.json",
      "D_tp1_pp1_ep2.json", "D_tp2_pp2_ep2.json", "D_tp2_pp2_vp2_ep1.json", "E_tp2_pp2.json",
  };
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const nlohmann::json golden = ReadGolden(name);
    const GPTModelConfig resolved = MustFinalize(
        GoldenModel(golden), FinalizeOptions{golden["layout"]["world_size"].get<int64_t>()});
    const TransformerConfig& t = resolved.transformer();
    const google::protobuf::Reflection* r = t.GetReflection();
    const nlohmann::json& megatron = golden["config"]["transformer_config_resolved"];
    int compared = 0;
    for (const auto& [key, value] : megatron.items()) {
      const FD* field = TransformerConfig::descriptor()->FindFieldByName(key);
      if (field == nullptr) continue;  // a Megatron field this schema does not carry
      ++compared;
      if (field->is_repeated()) {
        if (value.is_null()) {
          EXPECT_EQ(r->FieldSize(t, field), 0) << key;
        } else if (value.is_number()) {  // moe_layer_freq's int form
          ASSERT_EQ(r->FieldSize(t, field), 1) << key;
          EXPECT_EQ(r->GetRepeatedInt32(t, field, 0), value.get<int>()) << key;
        }
        continue;
      }
      if (value.is_null()) {
        EXPECT_FALSE(r->HasField(t, field)) << key;
        continue;
      }
      ASSERT_TRUE(r->HasField(t, field)) << key;
      switch (field->cpp_type()) {
        case FD::CPPTYPE_INT32:
          EXPECT_EQ(r->GetInt32(t, field), value.get<int>()) << key;
          break;
        case FD::CPPTYPE_INT64:
          EXPECT_EQ(r->GetInt64(t, field), value.get<int64_t>()) << key;
          break;
        case FD::CPPTYPE_DOUBLE:
          EXPECT_DOUBLE_EQ(r->GetDouble(t, field), value.get<double>()) << key;
          break;
        case FD::CPPTYPE_BOOL:
          EXPECT_EQ(r->GetBool(t, field), value.get<bool>()) << key;
          break;
        case FD::CPPTYPE_STRING:
          EXPECT_EQ(r->GetString(t, field), value.get<std::string>()) << key;
          break;
        default:
          ADD_FAILURE() << "unexpected field type for " << key;
      }
    }
    EXPECT_GT(compared, 100);
  }
}

// ---- FinalizeLoaded ----------------------------------------------------------------------------

TEST(FinalizeLoaded, PrefixesSectionViolations) {
  LoadedConfig loaded;
  loaded.model = TinyLlama();
  loaded.model.mutable_transformer()->set_num_layers(0);
  loaded.ddp.set_num_buckets(0);
  loaded.build.set_use_megatron_fsdp(true);
  loaded.build.set_use_torch_fsdp2(true);
  absl::StatusOr<LoadedConfig> r = FinalizeLoaded(loaded);
  ASSERT_FALSE(r.ok());
  const auto violations = FieldsAndReasons(r.status());
  EXPECT_THAT(violations, Contains(Pair("transformer.num_layers", "NOT_POSITIVE")));
  EXPECT_THAT(violations, Contains(Pair("ddp.num_buckets", "NOT_POSITIVE")));
  EXPECT_THAT(violations, Contains(Pair("build.use_torch_fsdp2", "CONFLICT")));
}

TEST(FinalizeLoaded, FillsSectionDefaults) {
  LoadedConfig loaded;
  loaded.model = TinyLlama();
  loaded.source_format = "yaml";
  absl::StatusOr<LoadedConfig> r = FinalizeLoaded(loaded);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->ddp.has_grad_reduce_in_fp32());
  EXPECT_EQ(r->ddp.data_parallel_sharding_strategy(), "no_shard");
  EXPECT_TRUE(r->build.has_seed());
  EXPECT_EQ(r->build.seed(), 1234);
  EXPECT_EQ(r->source_format, "yaml");
}

}  // namespace
}  // namespace gptb::config
