// The schema walk: every field of the model schema is classified exactly once in
// core/config/field_support.cc, every field of Megatron Core's TransformerConfig (read from its
// source into testdata/megatron_config_fields.tsv by megatron_config_fields.py) is in the schema
// with Megatron's default, every refused value is refused by Finalize with a reason naming the
// field, and performance-only fields are accepted and reported.
#include "core/config/field_support.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/config/finalize.h"
#include "core/config/overrides.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::gptb::config::testing::FieldsAndReasons;
using ::gptb::config::testing::TinyLlama;
using ::gptb::config::testing::TinyMoe;
using ::gptbuilder::v1::GPTModelConfig;
using ::gptbuilder::v1::TransformerConfig;
using ::testing::Contains;
using ::testing::Pair;
using FD = google::protobuf::FieldDescriptor;

// Every (message, field) reachable from GPTModelConfig through message-typed fields (map values
// included), each message once.
std::vector<std::pair<std::string, std::string>> SchemaFields() {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<const google::protobuf::Descriptor*> seen;
  std::vector<const google::protobuf::Descriptor*> todo = {GPTModelConfig::descriptor()};
  while (!todo.empty()) {
    const google::protobuf::Descriptor* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      out.push_back({d->name(), f->name()});
      if (f->cpp_type() != FD::CPPTYPE_MESSAGE) continue;
      const google::protobuf::Descriptor* sub = f->message_type();
      if (f->is_map()) {
        const FD* value = sub->map_value();
        if (value->cpp_type() == FD::CPPTYPE_MESSAGE) todo.push_back(value->message_type());
      } else {
        todo.push_back(sub);
      }
    }
  }
  return out;
}

TEST(FieldSupportTable, EveryFieldOfTheSchemaIsClassifiedExactlyOnce) {
  std::map<std::pair<std::string, std::string>, int> count;
  for (const FieldSupportEntry& e : FieldSupportTable()) {
    ++count[{std::string(e.message), std::string(e.field)}];
    EXPECT_FALSE(e.why.empty()) << e.message << "." << e.field << " says nothing about why";
  }
  const auto fields = SchemaFields();
  EXPECT_GE(fields.size(), 340u);  // the walk reached the nested messages
  for (const auto& field : fields) {
    EXPECT_EQ(count[field], 1) << field.first << "." << field.second
                               << " must be in exactly one list of core/config/field_support.cc";
  }
  // And nothing in the table that the schema does not have.
  const std::set<std::pair<std::string, std::string>> schema(fields.begin(), fields.end());
  for (const auto& [field, n] : count) {
    EXPECT_TRUE(schema.count(field)) << field.first << "." << field.second << " is not a field";
  }
}

struct MegatronField {
  std::string name, cls, annotation, default_text;
};

std::vector<MegatronField> MegatronFields() {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) +
                   "/tests/unit/config/testdata/megatron_config_fields.tsv");
  std::vector<MegatronField> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    if (cols.size() != 4) continue;
    out.push_back({cols[0], cols[1], cols[2], cols[3]});
  }
  return out;
}

TEST(MegatronFields, TheListWasReadFromMegatron) {
  const std::vector<MegatronField> fields = MegatronFields();
  // 305 of ModelParallelConfig + TransformerConfig (306 non-callable, less the private
  // _cpu_offloading_context) and the 14 MLATransformerConfig adds.
  EXPECT_EQ(fields.size(), 319u);
  std::set<std::string> names;
  for (const MegatronField& f : fields) EXPECT_TRUE(names.insert(f.name).second) << f.name;
}

// Repeated fields whose Megatron default is a value rather than None / []: the empty list stands
// for it (moe_layer_freq's [1] is derived by Finalize; cuda_graph_modules' "full" is the empty
// list in Megatron's own normalization).
const std::set<std::string> kRepeatedWithValueDefault = {"moe_layer_freq", "cuda_graph_modules"};

TEST(MegatronFields, EachIsInTheSchemaWithMegatronsDefault) {
  const google::protobuf::Descriptor* d = TransformerConfig::descriptor();
  for (const MegatronField& m : MegatronFields()) {
    SCOPED_TRACE(m.name);
    const FD* f = d->FindFieldByName(m.name);
    ASSERT_NE(f, nullptr) << "transformer." << m.name << " is not in the schema";
    const std::string& def = m.default_text;
    if (f->is_repeated()) {
      EXPECT_TRUE(def == "None" || def == "[]" || kRepeatedWithValueDefault.count(m.name))
          << "repeated field with Megatron default " << def;
      continue;
    }
    if (def == "None") {
      EXPECT_FALSE(f->has_default_value()) << "Megatron's default is None";
      EXPECT_TRUE(f->has_presence());
      continue;
    }
    ASSERT_TRUE(f->has_default_value()) << "Megatron's default is " << def;
    switch (f->cpp_type()) {
      case FD::CPPTYPE_BOOL:
        EXPECT_EQ(f->default_value_bool() ? "True" : "False", def);
        break;
      case FD::CPPTYPE_INT32:
      case FD::CPPTYPE_INT64:
      case FD::CPPTYPE_DOUBLE: {
        double expected = 0;
        ASSERT_TRUE(absl::SimpleAtod(def, &expected)) << def;
        const double actual = f->cpp_type() == FD::CPPTYPE_DOUBLE ? f->default_value_double()
                              : f->cpp_type() == FD::CPPTYPE_INT32
                                  ? static_cast<double>(f->default_value_int32())
                                  : static_cast<double>(f->default_value_int64());
        EXPECT_EQ(actual, expected);
        break;
      }
      case FD::CPPTYPE_STRING:
        EXPECT_EQ(absl::StrCat("'", f->default_value_string(), "'"), def);
        break;
      default:
        ADD_FAILURE() << "unexpected type";
    }
  }
}

// A value other than the schema default for a field, as `--set` text.
std::string SampleValue(const FD* f) {
  switch (f->cpp_type()) {
    case FD::CPPTYPE_BOOL:
      return f->default_value_bool() ? "false" : "true";
    case FD::CPPTYPE_INT32:
      return absl::StrCat(f->has_default_value() ? f->default_value_int32() + 1 : 2);
    case FD::CPPTYPE_INT64:
      return absl::StrCat(f->has_default_value() ? f->default_value_int64() + 1 : 2);
    case FD::CPPTYPE_DOUBLE:
      return absl::StrCat(f->has_default_value() ? f->default_value_double() + 0.5 : 0.5);
    case FD::CPPTYPE_STRING:
      return "x";
    default:
      return "";
  }
}

// Values for refused fields whose generic sample would break another rule of that field first
// (or is not a valid value): each must be one Megatron accepts.
const std::map<std::string, std::vector<std::string>> kRefusedSamples = {
    {"transformer.context_parallel_size", {"transformer.context_parallel_size=2"}},
    {"transformer.hierarchical_context_parallel_sizes",
     {"transformer.hierarchical_context_parallel_sizes=[1]"}},
    {"transformer.fp8", {"transformer.fp8=e4m3"}},
    {"transformer.fp8_param", {"transformer.fp8_param=true", "transformer.fp8=e4m3"}},
    {"transformer.fp4", {"transformer.fp4=e2m1"}},
    {"transformer.fp4_param", {"transformer.fp4_param=true", "transformer.fp4=e2m1"}},
    {"transformer.fp8_recipe", {"transformer.fp8_recipe=mxfp8"}},
    {"transformer.fp8_amax_compute_algo", {"transformer.fp8_amax_compute_algo=max"}},
    {"transformer.kitchen_attention_backend", {"transformer.kitchen_attention_backend=fa"}},
    {"transformer.fp4_recipe", {"transformer.fp4_recipe=custom"}},
    {"transformer.moe_dispatch_fwd_dtype", {"transformer.moe_dispatch_fwd_dtype=mxfp8"}},
    {"transformer.moe_combine_bwd_dtype", {"transformer.moe_combine_bwd_dtype=mxfp8"}},
    {"transformer.batch_invariant_backend", {"transformer.batch_invariant_backend=triton"}},
    {"transformer.dsa_kernel_backend", {"transformer.dsa_kernel_backend=cudnn"}},
    {"transformer.experimental_attention_variant",
     {"transformer.experimental_attention_variant=gdn"}},
    {"transformer.moe_token_drop_policy", {"transformer.moe_token_drop_policy=position"}},
    {"transformer.rope_type", {"transformer.rope_type=rope"}},
    {"transformer.moe_router_num_groups", {"transformer.moe_router_num_groups=2"}},
    {"transformer.moe_router_group_topk",
     {"transformer.moe_router_group_topk=1", "transformer.moe_router_num_groups=2"}},
    {"transformer.moe_router_enable_expert_bias",
     {"transformer.moe_router_enable_expert_bias=true",
      "transformer.moe_router_score_function=sigmoid"}},
    {"transformer.moe_expert_capacity_factor", {"transformer.moe_expert_capacity_factor=1.0"}},
    {"transformer.moe_pad_expert_input_to_capacity",
     {"transformer.moe_pad_expert_input_to_capacity=true",
      "transformer.moe_expert_capacity_factor=1.0"}},
    {"transformer.moe_use_grouped_tensor",
     {"transformer.moe_use_grouped_tensor=true", "transformer.moe_grouped_gemm=true"}},
    {"transformer.moe_single_grouped_weight",
     {"transformer.moe_single_grouped_weight=true", "transformer.moe_grouped_gemm=true",
      "transformer.moe_use_grouped_tensor=true"}},
    {"transformer.activation_func_fp8_input_store",
     {"transformer.activation_func_fp8_input_store=true"}},
    {"transformer.mrope_section", {"transformer.mrope_section=[16,24,24]"}},
    {"transformer.no_rope_freq", {"transformer.no_rope_freq=4"}},
    {"transformer.linear_attention_freq", {"transformer.linear_attention_freq=4"}},
    {"transformer.gtp_remat_opt_in_modules",
     {"transformer.gtp_remat_opt_in_modules=[moe_latent_proj]"}},
    {"transformer.moe_latent_size", {"transformer.moe_latent_size=32"}},
};

// Cases for the refusal rules of implemented / performance-only fields (and refused fields
// whose refusal has a condition): each must be refused, naming the field.
struct ConditionalCase {
  std::string path;
  std::vector<std::string> sets;
  bool moe = false;
};

const std::vector<ConditionalCase>& ConditionalCases() {
  static const auto* cases = new std::vector<ConditionalCase>{
      {"position_embedding_type", {"position_embedding_type=mrope"}},
      {"transformer.pipeline_dtype",
       {"transformer.pipeline_dtype=float16", "transformer.pipeline_model_parallel_size=2"}},
      {"transformer.gradient_accumulation_fusion",
       {"transformer.gradient_accumulation_fusion=true", "transformer.bf16=true"}},
      {"transformer.mtp_use_repeated_layer",
       {"transformer.mtp_use_repeated_layer=true", "transformer.mtp_num_layers=2"}},
      {"transformer.num_query_groups",
       {"transformer.num_query_groups=1", "transformer.tensor_model_parallel_size=2"}},
      {"transformer.attention_softmax_in_fp32",
       {"transformer.attention_softmax_in_fp32=false", "transformer.bf16=true"}},
      {"transformer.transformer_impl",
       {"transformer.transformer_impl=inference_optimized", "transformer.add_bias_linear=false"}},
      {"transformer.use_te_activation_func",
       {"transformer.use_te_activation_func=true", "transformer.activation_func=gelu"}},
      {"transformer.moe_router_load_balancing_type",
       {"transformer.moe_router_load_balancing_type=sinkhorn"},
       true},
      {"transformer.moe_router_load_balancing_type",
       {"transformer.moe_router_load_balancing_type=seq_aux_loss",
        "transformer.moe_aux_loss_coeff=0.01"},
       true},
      {"transformer.moe_z_loss_coeff", {"transformer.moe_z_loss_coeff=0.001"}, true},
      {"transformer.moe_router_score_function",
       {"transformer.moe_router_score_function=sqrtsoftplus"},
       true},
      {"transformer.moe_router_dtype", {"transformer.moe_router_dtype=fp64"}, true},
      {"transformer.moe_router_score_function",
       {"transformer.moe_router_score_function=sigmoid", "transformer.moe_aux_loss_coeff=0.01"},
       true},
      {"transformer.tensor_parallel_num_weight_shards",
       {"transformer.tensor_parallel_num_weight_shards=2"}},
      {"transformer.mlp_chunks_for_training", {"transformer.mlp_chunks_for_training=2"}, true},
      {"transformer.expert_tensor_parallel_num_weight_shards",
       {"transformer.expert_tensor_parallel_num_weight_shards=2"},
       true},
  };
  return *cases;
}

absl::StatusOr<GPTModelConfig> FinalizeWith(const std::vector<std::string>& sets, bool moe) {
  GPTModelConfig config = moe ? TinyMoe() : TinyLlama();
  if (absl::Status s = ApplyOverrides(sets, &config); !s.ok()) return s;
  return Finalize(config);
}

TEST(FieldSupportRefusals, EveryRefusedFieldIsRefusedWhenSetNamingTheField) {
  int checked = 0;
  for (const FieldSupportEntry& e : FieldSupportTable()) {
    if (e.support != FieldSupport::kRefused || e.refuse != nullptr) continue;
    const std::string path = FieldSupportPath(e);
    SCOPED_TRACE(path);
    std::vector<std::string> sets;
    if (auto it = kRefusedSamples.find(path); it != kRefusedSamples.end()) {
      sets = it->second;
    } else {
      const google::protobuf::Descriptor* d = e.message == "TransformerConfig"
                                                  ? TransformerConfig::descriptor()
                                                  : GPTModelConfig::descriptor();
      const FD* f = d->FindFieldByName(std::string(e.field));
      ASSERT_NE(f, nullptr);
      ASSERT_FALSE(f->is_repeated()) << "give a sample value in kRefusedSamples";
      sets = {absl::StrCat(path, "=", SampleValue(f))};
    }
    // A MoE base, so that MoE-only rules of Megatron are satisfied too.
    absl::StatusOr<GPTModelConfig> result = FinalizeWith(sets, /*moe=*/true);
    ASSERT_FALSE(result.ok()) << "accepted: " << sets.front();
    EXPECT_THAT(FieldsAndReasons(result.status()), Contains(Pair(path, "UNSUPPORTED")))
        << result.status().message();
    EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("not supported"));
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(FieldSupportRefusals, ConditionalRefusalsAreRefusedNamingTheField) {
  std::set<std::string> covered;
  for (const ConditionalCase& c : ConditionalCases()) {
    SCOPED_TRACE(c.sets.front());
    absl::StatusOr<GPTModelConfig> result = FinalizeWith(c.sets, c.moe);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(FieldsAndReasons(result.status()), Contains(Pair(c.path, "UNSUPPORTED")))
        << result.status().message();
    covered.insert(c.path);
  }
  // Every refusal rule of the table has a case here.
  for (const FieldSupportEntry& e : FieldSupportTable()) {
    if (e.refuse != nullptr) {
      EXPECT_TRUE(covered.count(FieldSupportPath(e))) << FieldSupportPath(e) << " has no case";
    }
  }
}

TEST(FieldSupportRefusals, TheValuesNextToARefusedOneAreAccepted) {
  // The same fields at values this build implements (or that are no-ops here).
  const std::vector<std::pair<std::vector<std::string>, bool>> accepted = {
      {{"transformer.softmax_type=learnable"}, false},
      {{"position_embedding_type=none"}, false},
      {{"transformer.gradient_accumulation_fusion=true"}, false},  // fp32: no effect
      {{"transformer.bias_activation_fusion=true"}, false},        // SwiGLU: same function
      {{"transformer.use_te_activation_func=true"}, false},        // silu
      {{"transformer.attention_softmax_in_fp32=false"}, false},    // fp32: no effect
      {{"transformer.mtp_use_repeated_layer=true", "transformer.mtp_num_layers=1"}, false},
      {{"transformer.moe_z_loss_coeff=0"}, true},
      {{"transformer.moe_router_dtype=fp32"}, true},
      {{"transformer.moe_router_score_function=sigmoid"}, true},            // no auxiliary loss
      {{"transformer.moe_router_load_balancing_type=seq_aux_loss"}, true},  // coefficient 0
      {{"transformer.tensor_parallel_num_weight_shards=2",
        "transformer.tensor_model_parallel_size=2"},
       false},
      {{"transformer.pipeline_model_parallel_size=2"}, false},  // derived pipeline_dtype
      {{"transformer.sequence_parallel=true"}, false},          // tp 1: Bridge turns it off
      {{"transformer.fp8_recipe=delayed"}, false},              // the default, written out
      {{"transformer.transformer_impl=local"}, false},
      {{"transformer.window_size=[8,0]"}, false},  // implemented
      {{"transformer.softmax_type=off-by-one"}, false},
      {{"transformer.activation_func=fast_gelu"}, false},
      {{"transformer.activation_func=tanh"}, false},
      {{"transformer.sequence_parallel=true", "transformer.tensor_model_parallel_size=2",
        "transformer_layer_spec=transformer_engine"},
       false},
      {{"transformer.window_attn_skip_freq=4", "transformer.window_size=[8,0]"}, false},
  };
  for (const auto& [sets, moe] : accepted) {
    SCOPED_TRACE(sets.front());
    absl::StatusOr<GPTModelConfig> result = FinalizeWith(sets, moe);
    EXPECT_TRUE(result.ok()) << result.status().message();
  }
}

TEST(FieldSupportRefusals, RefusalsCanBeLeftOutToCheckMegatronsOwnRules) {
  GPTModelConfig config = TinyLlama();
  config.mutable_transformer()->set_fp8("e4m3");
  FinalizeOptions options;
  options.refuse_unsupported = false;
  EXPECT_TRUE(Finalize(config, options).ok());
  EXPECT_FALSE(Finalize(config).ok());
}

TEST(FieldSupportValues, EnumeratedValuesAreChecked) {
  absl::StatusOr<GPTModelConfig> result = FinalizeWith(
      {"transformer.attention_backend=flashy", "transformer.offload_modules=[mlp]"}, false);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(FieldsAndReasons(result.status()),
              Contains(Pair("transformer.attention_backend", "INVALID_VALUE")));
  EXPECT_THAT(FieldsAndReasons(result.status()),
              Contains(Pair("transformer.offload_modules[0]", "INVALID_VALUE")));
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("'flash'"));
}

TEST(PerformanceOnly, EveryPerformanceOnlyFieldIsAcceptedAndReported) {
  // Each performance-only field set to a value other than its default, alone.
  const std::map<std::string, std::vector<std::string>> samples = {
      {"transformer.recompute_granularity", {"transformer.recompute_granularity=selective"}},
      {"transformer.recompute_method",
       {"transformer.recompute_method=uniform", "transformer.recompute_granularity=full",
        "transformer.recompute_num_layers=1"}},
      {"transformer.recompute_num_layers",
       {"transformer.recompute_method=uniform", "transformer.recompute_granularity=full",
        "transformer.recompute_num_layers=1"}},
      {"transformer.distribute_saved_activations",
       {"transformer.distribute_saved_activations=true",
        "transformer.recompute_granularity=selective"}},
      {"transformer.defer_embedding_wgrad_compute",
       {"transformer.defer_embedding_wgrad_compute=true",
        "transformer.gradient_accumulation_fusion=true",
        "transformer.pipeline_model_parallel_size=2"}},
      {"transformer.wgrad_deferral_limit", {"transformer.wgrad_deferral_limit=2"}},
      {"transformer.overlap_p2p_comm_warmup_flush",
       {"transformer.overlap_p2p_comm_warmup_flush=true", "transformer.overlap_p2p_comm=true",
        "transformer.batch_p2p_comm=false"}},
      {"transformer.cuda_graph_impl",
       {"transformer.cuda_graph_impl=local", "transformer.use_te_rng_tracker=true"}},
      {"transformer.enable_cuda_graph",
       {"transformer.cuda_graph_impl=local", "transformer.use_te_rng_tracker=true"}},
      {"transformer.external_cuda_graph",
       {"transformer.cuda_graph_impl=transformer_engine", "transformer.use_te_rng_tracker=true"}},
      {"transformer.cuda_graph_scope", {"transformer.cuda_graph_modules=[attn]"}},
      {"transformer.cuda_graph_modules", {"transformer.cuda_graph_modules=[attn]"}},
      {"transformer.cpu_offloading_num_layers",
       {"transformer.cpu_offloading=true", "transformer.cpu_offloading_num_layers=1"}},
      {"transformer.moe_shared_expert_overlap",
       {"transformer.moe_shared_expert_overlap=true",
        "transformer.moe_shared_expert_intermediate_size=64",
        "transformer.moe_token_dispatcher_type=alltoall"}},
      {"transformer.moe_token_dispatcher_type", {"transformer.moe_token_dispatcher_type=alltoall"}},
      {"transformer.variable_seq_lengths",
       {"transformer.variable_seq_lengths=true", "transformer.moe_token_dispatcher_type=alltoall"}},
      {"transformer.moe_flex_dispatcher_backend",
       {"transformer.moe_flex_dispatcher_backend=hybridep"}},
      {"transformer.pipeline_model_parallel_comm_backend",
       {"transformer.pipeline_model_parallel_comm_backend=ucc"}},
      {"transformer.cross_entropy_fusion_impl", {"transformer.cross_entropy_fusion_impl=te"}},
      {"transformer.tp_comm_bootstrap_backend", {"transformer.tp_comm_bootstrap_backend=gloo"}},
      {"transformer.attention_backend", {"transformer.attention_backend=flash"}},
      {"transformer.flash_attention_version", {"transformer.flash_attention_version=3"}},
      {"transformer.recompute_modules", {"transformer.recompute_modules=[core_attn,mlp]"}},
      {"transformer.cp_comm_type", {"transformer.cp_comm_type=a2a"}},
      {"transformer.inference_cuda_graph_scope", {"transformer.inference_cuda_graph_scope=layer"}},
      {"transformer.symmetric_ar_type", {"transformer.symmetric_ar_type=two_shot"}},
      {"transformer.inference_grouped_gemm_backend",
       {"transformer.inference_grouped_gemm_backend=torch"}},
      {"transformer.inference_moe_token_dispatcher_type",
       {"transformer.inference_moe_token_dispatcher_type=nccl"}},
      {"transformer.offload_modules", {"transformer.offload_modules=[core_attn]"}},
      {"transformer.autocast_dtype", {"transformer.autocast_dtype=bfloat16"}},
      {"tp_comm_overlap_cfg", {"tp_comm_overlap_cfg=userbuffers.yaml"}},
      {"generation_config", {"generation_config='{\"temperature\": 0.6}'"}},
  };
  int checked = 0;
  for (const FieldSupportEntry& e : FieldSupportTable()) {
    if (e.support != FieldSupport::kPerformanceOnly) continue;
    const std::string path = FieldSupportPath(e);
    SCOPED_TRACE(path);
    std::vector<std::string> sets;
    if (auto it = samples.find(path); it != samples.end()) {
      sets = it->second;
    } else {
      const google::protobuf::Descriptor* d = e.message == "TransformerConfig"
                                                  ? TransformerConfig::descriptor()
                                                  : GPTModelConfig::descriptor();
      const FD* f = d->FindFieldByName(std::string(e.field));
      ASSERT_NE(f, nullptr);
      ASSERT_FALSE(f->is_repeated()) << "give a sample value";
      sets = {absl::StrCat(path, "=", SampleValue(f))};
    }
    // A dense base unless the field is a MoE one (mlp_chunks_for_training is refused with MoE).
    absl::StatusOr<GPTModelConfig> result =
        FinalizeWith(sets, /*moe=*/absl::StrContains(path, "moe"));
    ASSERT_TRUE(result.ok()) << result.status().message();
    // Deprecated spellings are migrated to the field that is reported.
    if (path == "transformer.enable_cuda_graph" || path == "transformer.external_cuda_graph" ||
        path == "transformer.cuda_graph_scope") {
      ++checked;
      continue;
    }
    bool reported = false;
    for (const PerformanceOnlySetting& s : PerformanceOnlySettings(*result)) {
      reported |= s.path == path;
    }
    EXPECT_TRUE(reported) << "not reported by PerformanceOnlySettings";
    ++checked;
  }
  EXPECT_GT(checked, 80);
}

TEST(PerformanceOnly, DefaultsAreNotReported) {
  absl::StatusOr<GPTModelConfig> result = Finalize(TinyLlama());
  ASSERT_TRUE(result.ok()) << result.status().message();
  for (const PerformanceOnlySetting& s : PerformanceOnlySettings(*result)) {
    ADD_FAILURE() << s.path << " = " << s.value << " reported for a config that does not set it";
  }
}

TEST(PerformanceOnly, DeprecatedCudaGraphSpellingsMigrate) {
  absl::StatusOr<GPTModelConfig> external = FinalizeWith(
      {"transformer.external_cuda_graph=true", "transformer.use_te_rng_tracker=true"}, false);
  ASSERT_TRUE(external.ok()) << external.status().message();
  EXPECT_EQ(external->transformer().cuda_graph_impl(), "transformer_engine");
  EXPECT_FALSE(external->transformer().external_cuda_graph());
  absl::StatusOr<GPTModelConfig> scope =
      FinalizeWith({"transformer.cuda_graph_scope=[attn]"}, false);
  ASSERT_TRUE(scope.ok()) << scope.status().message();
  EXPECT_THAT(scope->transformer().cuda_graph_modules(), ::testing::ElementsAre("attn"));
  EXPECT_EQ(scope->transformer().cuda_graph_scope_size(), 0);
  absl::StatusOr<GPTModelConfig> both = FinalizeWith(
      {"transformer.cuda_graph_scope=[attn]", "transformer.cuda_graph_modules=[mlp]"}, false);
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(FieldsAndReasons(both.status()),
              Contains(Pair("transformer.cuda_graph_scope", "CONFLICT")));
}

TEST(Overrides, EveryMegatronFieldIsAFieldForSet) {
  // `gptb validate --set transformer.<any Megatron field>=<value>` never says "not a field"
  // (the value may still be refused).
  for (const MegatronField& m : MegatronFields()) {
    const FD* f = TransformerConfig::descriptor()->FindFieldByName(m.name);
    ASSERT_NE(f, nullptr) << m.name;
    const std::string value = f->is_repeated() ? "[1]" : SampleValue(f);
    for (const std::string& key : {absl::StrCat("transformer.", m.name), m.name}) {
      GPTModelConfig config = TinyLlama();
      absl::Status s = ApplyOverrides({absl::StrCat(key, "=", value)}, &config);
      for (const FieldViolation& v : ViolationsFromStatus(s)) {
        EXPECT_NE(v.reason, "UNKNOWN_FIELD") << key << ": " << v.description;
      }
    }
  }
}

// The README's field lists, made from the table. Between the two markers in README.md.
std::string FieldListsMarkdown() {
  std::ostringstream out;
  const std::pair<FieldSupport, const char*> lists[] = {
      {FieldSupport::kImplemented,
       "computed exactly as Megatron computes them (values noted as refused are refused)"},
      {FieldSupport::kPerformanceOnly,
       "accepted; they choose how, not what, Megatron computes, so they have no effect on this "
       "build (`gptb validate` lists the ones a config sets)"},
      {FieldSupport::kRefused,
       "refused by `gptb validate` and every RPC when set to a non-default value (or under the "
       "condition given), with the reason and what would be valid"}};
  for (const auto& [support, text] : lists) {
    int n = 0;
    for (const FieldSupportEntry& e : FieldSupportTable()) n += e.support == support ? 1 : 0;
    out << "\n<details><summary><b>" << FieldSupportName(support) << "</b> (" << n
        << " fields): " << text << "</summary>\n\n| field | why |\n|---|---|\n";
    for (const FieldSupportEntry& e : FieldSupportTable()) {
      if (e.support != support) continue;
      std::string why(e.why);
      absl::StrReplaceAll({{"|", "\\|"}}, &why);
      out << "| `" << FieldSupportPath(e) << "` | " << why << " |\n";
    }
    out << "\n</details>\n";
  }
  return out.str();
}

TEST(Readme, ListsTheFieldsAsTheTableClassifiesThem) {
  const std::string path = std::string(GPTB_SOURCE_DIR) + "/README.md";
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string readme = buffer.str();
  const std::string begin = "<!-- field-support:begin (generated by config_field_support_test) -->";
  const std::string end = "<!-- field-support:end -->";
  const size_t b = readme.find(begin), e = readme.find(end);
  ASSERT_NE(b, std::string::npos) << "README.md has no " << begin;
  ASSERT_NE(e, std::string::npos) << "README.md has no " << end;
  const std::string current = readme.substr(b + begin.size(), e - b - begin.size());
  const std::string expected = FieldListsMarkdown();
  if (current != expected && std::getenv("GPTB_UPDATE_README") != nullptr) {
    std::ofstream(path) << readme.substr(0, b + begin.size()) << expected << readme.substr(e);
    return;
  }
  if (current == expected) return;
  // The first line that differs, rather than two pages of markdown.
  const std::vector<std::string> have = absl::StrSplit(current, '\n');
  const std::vector<std::string> want = absl::StrSplit(expected, '\n');
  size_t line = 0;
  while (line < have.size() && line < want.size() && have[line] == want[line]) ++line;
  ADD_FAILURE() << "README.md's field lists differ from core/config/field_support.cc at line "
                << line + 1 << " of the generated section:\n  README: "
                << (line < have.size() ? have[line] : "(end)")
                << "\n  table:  " << (line < want.size() ? want[line] : "(end)")
                << "\nRerun this test with GPTB_UPDATE_README=1 to rewrite them.";
}

}  // namespace
}  // namespace gptb::config
