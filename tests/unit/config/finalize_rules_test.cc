// Every validation rule of Finalize / FinalizeDdp / FinalizeBuild: a mutation of a valid config
// that breaks the rule (the violation must name the field and reason) and a nearby mutation that
// satisfies it (the whole config must then finalize).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config_emitter.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/layer_spec/layer_specs.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
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

using Mutation = std::function<void(GPTModelConfig&)>;

TransformerConfig& T(GPTModelConfig& c) { return *c.mutable_transformer(); }

// These are Megatron's and Bridge's own rules: what this build refuses on top of them (fp8, MLA,
// sequence parallelism, ...) is tested in field_support_test.cc.
constexpr bool kMegatronRulesOnly = false;

struct RuleCase {
  std::string name;
  bool moe;  // start from TinyMoe instead of TinyLlama
  Mutation fail;
  std::string field;
  std::string reason;
  Mutation pass;
  std::optional<int64_t> fail_world = std::nullopt;
  std::optional<int64_t> pass_world = std::nullopt;
};

void PrintTo(const RuleCase& rule, std::ostream* os) { *os << rule.name; }

std::vector<RuleCase> Cases() {
  return {
      // ---- parallel sizes ----
      {"TpNotPositive", false, [](auto& c) { T(c).set_tensor_model_parallel_size(0); },
       "transformer.tensor_model_parallel_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_tensor_model_parallel_size(2); }},
      {"PpNotPositive", false, [](auto& c) { T(c).set_pipeline_model_parallel_size(0); },
       "transformer.pipeline_model_parallel_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_pipeline_model_parallel_size(2); }},
      {"CpNotPositive", false, [](auto& c) { T(c).set_context_parallel_size(0); },
       "transformer.context_parallel_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_context_parallel_size(2); }},
      {"EpNotPositive", true, [](auto& c) { T(c).set_expert_model_parallel_size(0); },
       "transformer.expert_model_parallel_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_expert_model_parallel_size(2); }},
      {"EtpNotPositive", true, [](auto& c) { T(c).set_expert_tensor_parallel_size(0); },
       "transformer.expert_tensor_parallel_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_expert_tensor_parallel_size(1); }},
      {"VpNotPositive", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(0);
       },
       "transformer.virtual_pipeline_model_parallel_size", "NOT_POSITIVE",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
       }},
      {"VpWithoutPp", false, [](auto& c) { T(c).set_virtual_pipeline_model_parallel_size(2); },
       "transformer.virtual_pipeline_model_parallel_size", "VP_WITHOUT_PP",
       [](auto& c) {
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_size(2);
       }},
      // Megatron's WrappedTorchNorm asserts; TE's norms support sequence parallelism.
      {"SequenceParallelTorchNorm", false,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
         c.mutable_transformer_layer_spec()->set_name("local");
       },
       "transformer.sequence_parallel", "SEQUENCE_PARALLEL_TORCH_NORM",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
         c.mutable_transformer_layer_spec()->set_name("transformer_engine");
       }},
      {"SequenceParallelTorchNormMoe", true,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
         c.mutable_transformer_layer_spec()->set_name("local");
       },
       "transformer.sequence_parallel", "SEQUENCE_PARALLEL_TORCH_NORM",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
         c.mutable_transformer_layer_spec()->set_name("default");
       }},
      {"FlexDispatcherNeedsExpertGrid", true,
       [](auto& c) { T(c).set_moe_token_dispatcher_type("flex"); },
       "transformer.moe_token_dispatcher_type", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_token_dispatcher_type("flex");
         T(c).set_expert_model_parallel_size(2);
       },
       std::nullopt, 2},
      {"HierarchicalCpMismatch", false,
       [](auto& c) {
         T(c).set_context_parallel_size(2);
         T(c).add_hierarchical_context_parallel_sizes(2);
         T(c).add_hierarchical_context_parallel_sizes(2);
       },
       "transformer.hierarchical_context_parallel_sizes", "HIERARCHICAL_CP_MISMATCH",
       [](auto& c) {
         T(c).set_context_parallel_size(2);
         T(c).add_hierarchical_context_parallel_sizes(2);
         T(c).add_hierarchical_context_parallel_sizes(1);
       }},
      {"HierarchicalCpEntry", false,
       [](auto& c) {
         T(c).add_hierarchical_context_parallel_sizes(1);
         T(c).add_hierarchical_context_parallel_sizes(0);
       },
       "transformer.hierarchical_context_parallel_sizes[1]", "NOT_POSITIVE",
       [](auto& c) {
         T(c).add_hierarchical_context_parallel_sizes(1);
         T(c).add_hierarchical_context_parallel_sizes(1);
       }},
      {"MicrobatchGroup", false, [](auto& c) { T(c).set_microbatch_group_size_per_vp_stage(0); },
       "transformer.microbatch_group_size_per_vp_stage", "NOT_POSITIVE",
       [](auto& c) { T(c).set_microbatch_group_size_per_vp_stage(3); }},
      {"DeferWgradWithoutPp", false,
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_gradient_accumulation_fusion(true);
       },
       "transformer.defer_embedding_wgrad_compute", "DEFER_WGRAD_WITHOUT_PP",
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_gradient_accumulation_fusion(true);
         T(c).set_pipeline_model_parallel_size(2);
       }},
      {"DeferWgradWithoutFusion", false,
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_pipeline_model_parallel_size(2);
       },
       "transformer.defer_embedding_wgrad_compute", "DEFER_WGRAD_WITHOUT_GRAD_ACC_FUSION",
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_gradient_accumulation_fusion(true);
       }},
      {"WgradDeferralLimit", false,
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_gradient_accumulation_fusion(true);
         T(c).set_wgrad_deferral_limit(-1);
       },
       "transformer.wgrad_deferral_limit", "OUT_OF_RANGE",
       [](auto& c) {
         T(c).set_defer_embedding_wgrad_compute(true);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_gradient_accumulation_fusion(true);
         T(c).set_wgrad_deferral_limit(0);
       }},
      {"P2pWarmupFlush", false, [](auto& c) { T(c).set_overlap_p2p_comm_warmup_flush(true); },
       "transformer.overlap_p2p_comm_warmup_flush", "P2P_WARMUP_FLUSH_CONFLICT",
       [](auto& c) {
         T(c).set_overlap_p2p_comm_warmup_flush(true);
         T(c).set_overlap_p2p_comm(true);
         T(c).set_batch_p2p_comm(false);
       }},
      // ---- sizes and attention ----
      {"NumLayersNotPositive", false, [](auto& c) { T(c).set_num_layers(0); },
       "transformer.num_layers", "NOT_POSITIVE", [](auto& c) { T(c).set_num_layers(2); }},
      {"HiddenNotPositive", false, [](auto& c) { T(c).set_hidden_size(0); },
       "transformer.hidden_size", "NOT_POSITIVE", [](auto& c) { T(c).set_hidden_size(128); }},
      {"HeadsNotPositive", false, [](auto& c) { T(c).set_num_attention_heads(0); },
       "transformer.num_attention_heads", "NOT_POSITIVE",
       [](auto& c) { T(c).set_num_attention_heads(4); }},
      {"KvChannelsNotPositive", false, [](auto& c) { T(c).set_kv_channels(0); },
       "transformer.kv_channels", "NOT_POSITIVE", [](auto& c) { T(c).set_kv_channels(16); }},
      {"HiddenNotDivisibleByHeads", false, [](auto& c) { T(c).set_hidden_size(66); },
       "transformer.hidden_size", "HIDDEN_NOT_DIVISIBLE_BY_HEADS",
       [](auto& c) {
         T(c).set_hidden_size(66);
         T(c).set_kv_channels(8);
       }},
      {"FfnNotPositive", false, [](auto& c) { T(c).set_ffn_hidden_size(0); },
       "transformer.ffn_hidden_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_ffn_hidden_size(128); }},
      {"GroupsNotPositive", false, [](auto& c) { T(c).set_num_query_groups(0); },
       "transformer.num_query_groups", "NOT_POSITIVE",
       [](auto& c) { T(c).set_num_query_groups(1); }},
      {"GroupsExceedHeads", false, [](auto& c) { T(c).set_num_query_groups(16); },
       "transformer.num_query_groups", "QUERY_GROUPS_EXCEED_HEADS",
       [](auto& c) { T(c).set_num_query_groups(8); }},
      {"GroupsNotDividingHeads", false, [](auto& c) { T(c).set_num_query_groups(3); },
       "transformer.num_query_groups", "QUERY_GROUPS_NOT_DIVIDING_HEADS",
       [](auto& c) { T(c).set_num_query_groups(4); }},
      {"HeadsNotDivisibleByTp", false, [](auto& c) { T(c).set_tensor_model_parallel_size(3); },
       "transformer.num_attention_heads", "HEADS_NOT_DIVISIBLE_BY_TP",
       [](auto& c) { T(c).set_tensor_model_parallel_size(2); }},
      {"GroupsVsTp", false,
       [](auto& c) {
         T(c).set_hidden_size(96);
         T(c).set_num_attention_heads(12);
         T(c).set_num_query_groups(6);
         T(c).set_tensor_model_parallel_size(4);
       },
       "transformer.num_query_groups", "QUERY_GROUPS_VS_TP",
       [](auto& c) {
         T(c).set_hidden_size(96);
         T(c).set_num_attention_heads(12);
         T(c).set_num_query_groups(4);
         T(c).set_tensor_model_parallel_size(4);
       }},
      {"FfnNotDivisibleByTp", false,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_ffn_hidden_size(177);
       },
       "transformer.ffn_hidden_size", "FFN_NOT_DIVISIBLE_BY_TP",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_ffn_hidden_size(178);
       }},
      // ---- multi-latent attention ----
      // Megatron's core attention cannot run MLA keys (one per head) in query groups.
      {"MlaQueryGroups", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).set_num_query_groups(2);
       },
       "transformer.num_query_groups", "MLA_CONFLICT",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).set_num_query_groups(T(c).num_attention_heads());
       }},
      // Ours: MLA is built without sequence parallelism.
      {"MlaSequenceParallel", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
         c.mutable_transformer_layer_spec()->set_name("transformer_engine");
       },
       "transformer.sequence_parallel", "UNSUPPORTED",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();
         T(c).set_tensor_model_parallel_size(2);
         c.mutable_transformer_layer_spec()->set_name("transformer_engine");
       }},
      {"MlaRotaryInterleaved", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_rotary_interleaved(true);
       },
       "transformer.rotary_interleaved", "MLA_CONFLICT",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
       }},
      {"MlaRopeType", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_rope_type("ntk");
       },
       "transformer.rope_type", "INVALID_VALUE",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_rope_type("rope");
       }},
      {"MlaOutputGate", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_attention_output_gate(true);
       },
       "transformer.attention_output_gate", "MLA_CONFLICT",
       [](auto& c) { T(c).set_attention_output_gate(true); }},
      {"MlaRopeFusion", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_apply_rope_fusion(true);
         T(c).set_rope_type("rope");
       },
       "transformer.apply_rope_fusion", "MLA_CONFLICT",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_apply_rope_fusion(true);
         T(c).set_rope_type("yarn");
       }},
      // ---- YaRN for standard attention ----
      {"YarnFieldWithoutYarn", false,
       [](auto& c) {
         c.set_position_embedding_type("rope");
         T(c).set_yarn_rotary_scaling_factor(4.0);
       },
       "transformer.yarn_rotary_scaling_factor", "YARN_UNUSED",
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_yarn_rotary_scaling_factor(4.0);
       }},
      {"YarnScalingFactorPositive", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_yarn_rotary_scaling_factor(0.0);
       },
       "transformer.yarn_rotary_scaling_factor", "OUT_OF_RANGE",
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_yarn_rotary_scaling_factor(0.5);
       }},
      {"YarnBetaPositive", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_yarn_beta_slow(0.0);
       },
       "transformer.yarn_beta_fast", "OUT_OF_RANGE",
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_yarn_beta_slow(2.0);
       }},
      {"YarnRotaryPercent", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         c.set_rotary_percent(0.5);
       },
       "rotary_percent", "YARN_IGNORED",
       [](auto& c) {
         c.set_position_embedding_type("rope");
         c.set_rotary_percent(0.5);
       }},
      {"YarnInterpolation", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         c.set_seq_len_interpolation_factor(2.0);
       },
       "seq_len_interpolation_factor", "YARN_IGNORED",
       [](auto& c) { c.set_position_embedding_type("yarn"); }},
      {"YarnRopeScaling", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         c.set_rope_scaling(true);
       },
       "rope_scaling", "YARN_IGNORED", [](auto& c) { c.set_position_embedding_type("yarn"); }},
      {"YarnInterleaved", false,
       [](auto& c) {
         c.set_position_embedding_type("yarn");
         T(c).set_rotary_interleaved(true);
       },
       "transformer.rotary_interleaved", "YARN_INTERLEAVED",
       [](auto& c) {
         c.set_position_embedding_type("rope");
         T(c).set_rotary_interleaved(true);
       }},
      {"MlaQLoraRank", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_q_lora_rank(-1);
       },
       "transformer.q_lora_rank", "OUT_OF_RANGE",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_q_lora_rank(0);
       }},
      {"MlaKvLoraRank", false,
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_kv_lora_rank(0);
       },
       "transformer.kv_lora_rank", "NOT_POSITIVE",
       [](auto& c) {
         T(c).set_multi_latent_attention(true);
         T(c).clear_num_query_groups();  // MLA: one key per head
         T(c).set_kv_lora_rank(256);
       }},
      // ---- precision ----
      {"Fp16AndBf16", false,
       [](auto& c) {
         T(c).set_fp16(true);
         T(c).set_bf16(true);
       },
       "transformer.bf16", "CONFLICT", [](auto& c) { T(c).set_bf16(true); }},
      {"Fp8Format", false, [](auto& c) { T(c).set_fp8("e5m2"); }, "transformer.fp8",
       "INVALID_VALUE", [](auto& c) { T(c).set_fp8("hybrid"); }},
      {"Fp4Format", false, [](auto& c) { T(c).set_fp4("nvfp4"); }, "transformer.fp4",
       "INVALID_VALUE", [](auto& c) { T(c).set_fp4("e2m1"); }},
      {"Fp8ParamWithoutFp8", false, [](auto& c) { T(c).set_fp8_param(true); },
       "transformer.fp8_param", "FP8_PARAM_WITHOUT_FP8",
       [](auto& c) {
         T(c).set_fp8_param(true);
         T(c).set_fp8("e4m3");
       }},
      {"Fp4ParamWithoutFp4", false, [](auto& c) { T(c).set_fp4_param(true); },
       "transformer.fp4_param", "FP4_PARAM_WITHOUT_FP4",
       [](auto& c) {
         T(c).set_fp4_param(true);
         T(c).set_fp4("e2m1");
       }},
      {"Fp4AndFp8", false,
       [](auto& c) {
         T(c).set_fp4("e2m1");
         T(c).set_fp8("e4m3");
       },
       "transformer.fp4", "CONFLICT", [](auto& c) { T(c).set_fp4("e2m1"); }},
      {"ParamsDtype", false, [](auto& c) { T(c).set_params_dtype("int8"); },
       "transformer.params_dtype", "INVALID_DTYPE", [](auto& c) { T(c).set_params_dtype("bf16"); }},
      {"PipelineDtype", false, [](auto& c) { T(c).set_pipeline_dtype("float8_e4m3fn"); },
       "transformer.pipeline_dtype", "INVALID_DTYPE",
       [](auto& c) { T(c).set_pipeline_dtype("torch.float16"); }},
      {"AutocastDtype", false, [](auto& c) { T(c).set_autocast_dtype("half"); },
       "transformer.autocast_dtype", "INVALID_DTYPE",
       [](auto& c) { T(c).set_autocast_dtype("torch.half"); }},
      // ---- norms, activations, fusions ----
      {"Normalization", false, [](auto& c) { T(c).set_normalization("rmsnorm"); },
       "transformer.normalization", "INVALID_VALUE",
       [](auto& c) { T(c).set_normalization("LayerNorm"); }},
      {"SoftmaxType", false, [](auto& c) { T(c).set_softmax_type("sparse"); },
       "transformer.softmax_type", "INVALID_VALUE",
       [](auto& c) { T(c).set_softmax_type("learnable"); }},
      {"TransformerImpl", false, [](auto& c) { T(c).set_transformer_impl("te"); },
       "transformer.transformer_impl", "INVALID_VALUE",
       [](auto& c) { T(c).set_transformer_impl("local"); }},
      {"Activation", false, [](auto& c) { T(c).set_activation_func("swish"); },
       "transformer.activation_func", "INVALID_VALUE",
       [](auto& c) { T(c).set_activation_func("relu2"); }},
      {"HiddenDropout", false, [](auto& c) { T(c).set_hidden_dropout(1.5); },
       "transformer.hidden_dropout", "OUT_OF_RANGE", [](auto& c) { T(c).set_hidden_dropout(0); }},
      {"AttentionDropout", false, [](auto& c) { T(c).set_attention_dropout(-0.1); },
       "transformer.attention_dropout", "OUT_OF_RANGE",
       [](auto& c) { T(c).set_attention_dropout(1.0); }},
      {"LayernormEpsilon", false, [](auto& c) { T(c).set_layernorm_epsilon(-1); },
       "transformer.layernorm_epsilon", "OUT_OF_RANGE",
       [](auto& c) { T(c).set_layernorm_epsilon(1e-6); }},
      {"InitMethodStd", false, [](auto& c) { T(c).set_init_method_std(-0.1); },
       "transformer.init_method_std", "OUT_OF_RANGE",
       [](auto& c) { T(c).set_init_method_std(0.01); }},
      {"EmbeddingInitStd", false, [](auto& c) { T(c).set_embedding_init_method_std(-1); },
       "transformer.embedding_init_method_std", "OUT_OF_RANGE",
       [](auto& c) { T(c).set_embedding_init_method_std(0); }},
      {"SoftmaxScale", false, [](auto& c) { T(c).set_softmax_scale(0); },
       "transformer.softmax_scale", "OUT_OF_RANGE", [](auto& c) { T(c).set_softmax_scale(0.125); }},
      {"BiasActFusionActivation", false,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("relu");
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_CONFLICT",
       [](auto& c) { T(c).set_bias_activation_fusion(true); }},
      {"BiasActFusionGeluNeedsBias", false,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("gelu");
         T(c).set_gated_linear_unit(false);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_CONFLICT",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("gelu");
         T(c).set_gated_linear_unit(false);
         T(c).set_add_bias_linear(true);
       }},
      {"BiasActFusionQuickGelu", true,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("quick_gelu");
         T(c).set_gated_linear_unit(false);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_CONFLICT",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("quick_gelu");
       }},
      {"BiasActFusionOffset", true,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_glu_linear_offset(1.0);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_CONFLICT",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_glu_linear_offset(1.0);
         T(c).set_activation_func("quick_gelu");
       }},
      // Megatron's forward raises for these (dense MLPs fuse gelu and SwiGLU, experts SwiGLU and
      // quick-GeGLU).
      {"BiasActFusionDenseQuickGeglu", false,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("quick_gelu");
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("gelu");
       }},
      {"BiasActFusionDenseSiluUngated", false,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_gated_linear_unit(false);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
       [](auto& c) { T(c).set_bias_activation_fusion(true); }},
      {"BiasActFusionExpertGelu", true,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("gelu");
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("quick_gelu");
       }},
      {"BiasActFusionSharedExpertQuickGeglu", true,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_activation_func("quick_gelu");
         T(c).set_moe_shared_expert_intermediate_size(128);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_moe_shared_expert_intermediate_size(128);
       }},
      {"BiasActFusionTeActivation", false,
       [](auto& c) {
         T(c).set_bias_activation_fusion(true);
         T(c).set_use_te_activation_func(true);
       },
       "transformer.bias_activation_fusion", "BIAS_ACTIVATION_FUSION_CONFLICT",
       [](auto& c) { T(c).set_use_te_activation_func(true); }},
      {"FusedResidualRmsnorm", false,
       [](auto& c) {
         T(c).set_fused_residual_rmsnorm(true);
         T(c).set_normalization("LayerNorm");
       },
       "transformer.fused_residual_rmsnorm", "CONFLICT",
       [](auto& c) { T(c).set_fused_residual_rmsnorm(true); }},
      {"TeActivation", false,
       [](auto& c) {
         T(c).set_use_te_activation_func(true);
         T(c).set_activation_func("squared_relu");
       },
       "transformer.use_te_activation_func", "CONFLICT",
       [](auto& c) {
         T(c).set_use_te_activation_func(true);
         T(c).set_activation_func("relu");
       }},
      {"Fp8InputStore", false,
       [](auto& c) {
         T(c).set_activation_func_fp8_input_store(true);
         T(c).set_activation_func("gelu");
       },
       "transformer.activation_func_fp8_input_store", "CONFLICT",
       [](auto& c) { T(c).set_activation_func_fp8_input_store(true); }},
      {"SwigluClampValue", true, [](auto& c) { T(c).set_activation_func_clamp_value(-1); },
       "transformer.activation_func_clamp_value", "OUT_OF_RANGE",
       [](auto& c) { T(c).set_activation_func_clamp_value(7.0); }},
      {"SwigluClampDense", false, [](auto& c) { T(c).set_activation_func_clamp_value(7.0); },
       "transformer.activation_func_clamp_value", "CONFLICT",
       [](auto& c) {
         T(c).set_activation_func_clamp_value(7.0);
         T(c).set_num_moe_experts(4);
       }},
      {"SwigluClampOffset", true,
       [](auto& c) {
         T(c).set_activation_func_clamp_value(7.0);
         T(c).set_glu_linear_offset(0.5);
       },
       "transformer.glu_linear_offset", "CONFLICT",
       [](auto& c) { T(c).set_glu_linear_offset(0.5); }},
      {"InferenceOptimized", false,
       [](auto& c) {
         T(c).set_transformer_impl("inference_optimized");
         T(c).set_normalization("LayerNorm");
       },
       "transformer.transformer_impl", "INFERENCE_OPTIMIZED_CONFLICT",
       [](auto& c) { T(c).set_transformer_impl("inference_optimized"); }},
      {"WindowSizeLength", false, [](auto& c) { T(c).add_window_size(4095); },
       "transformer.window_size", "INVALID_WINDOW_SIZE",
       [](auto& c) {
         T(c).add_window_size(4095);
         T(c).add_window_size(0);
       }},
      // Megatron's local attention and Transformer Engine disagree on left -1 and right != 0.
      {"WindowSizeUnboundedLeft", false,
       [](auto& c) {
         T(c).add_window_size(-1);
         T(c).add_window_size(0);
       },
       "transformer.window_size", "INVALID_WINDOW_SIZE",
       [](auto& c) {
         T(c).add_window_size(0);
         T(c).add_window_size(0);
       }},
      {"WindowSizeRight", false,
       [](auto& c) {
         T(c).add_window_size(8);
         T(c).add_window_size(2);
       },
       "transformer.window_size", "INVALID_WINDOW_SIZE",
       [](auto& c) {
         T(c).add_window_size(8);
         T(c).add_window_size(0);
       }},
      {"WindowAttnSkipFreqInt", false,
       [](auto& c) {
         T(c).add_window_size(8);
         T(c).add_window_size(0);
         T(c).add_window_attn_skip_freq(0);
       },
       "transformer.window_attn_skip_freq", "INVALID_WINDOW_ATTN_SKIP_FREQ",
       [](auto& c) {
         T(c).add_window_size(8);
         T(c).add_window_size(0);
         T(c).add_window_attn_skip_freq(2);
       }},
      {"WindowAttnSkipFreqListLength", false,
       [](auto& c) {
         for (int v : {1, 0, 1}) T(c).add_window_attn_skip_freq(v);
       },
       "transformer.window_attn_skip_freq", "INVALID_WINDOW_ATTN_SKIP_FREQ",
       [](auto& c) {
         for (int v : {1, 0, 1, 0}) T(c).add_window_attn_skip_freq(v);
       }},
      {"WindowAttnSkipFreqListEntry", false,
       [](auto& c) {
         for (int v : {1, 2, 1, 0}) T(c).add_window_attn_skip_freq(v);
       },
       "transformer.window_attn_skip_freq[1]", "INVALID_WINDOW_ATTN_SKIP_FREQ",
       [](auto& c) {
         for (int v : {1, 1, 1, 0}) T(c).add_window_attn_skip_freq(v);
       }},
      {"WindowAttnSkipFreqOneLayer", false,
       [](auto& c) {
         T(c).set_num_layers(1);
         T(c).add_window_attn_skip_freq(1);
       },
       "transformer.window_attn_skip_freq", "INVALID_WINDOW_ATTN_SKIP_FREQ",
       [](auto& c) {
         T(c).set_num_layers(1);
         T(c).add_window_attn_skip_freq(2);
       }},
      // ---- recompute, offloading, CUDA graphs ----
      {"CpuOffloadingLayers", false,
       [](auto& c) {
         T(c).set_cpu_offloading(true);
         T(c).set_cpu_offloading_num_layers(4);
       },
       "transformer.cpu_offloading_num_layers", "OUT_OF_RANGE",
       [](auto& c) {
         T(c).set_cpu_offloading(true);
         T(c).set_cpu_offloading_num_layers(1);
       }},
      {"CpuOffloadingPp", false,
       [](auto& c) {
         T(c).set_cpu_offloading(true);
         T(c).set_pipeline_model_parallel_size(2);
       },
       "transformer.cpu_offloading", "CONFLICT", [](auto& c) { T(c).set_cpu_offloading(true); }},
      {"CpuOffloadingRecompute", false,
       [](auto& c) {
         T(c).set_cpu_offloading(true);
         T(c).set_recompute_granularity("selective");
       },
       "transformer.cpu_offloading", "CONFLICT",
       [](auto& c) { T(c).set_recompute_granularity("selective"); }},
      {"RecomputeGranularity", false, [](auto& c) { T(c).set_recompute_granularity("partial"); },
       "transformer.recompute_granularity", "INVALID_VALUE",
       [](auto& c) { T(c).set_recompute_granularity("selective"); }},
      {"RecomputeFullNeedsMethod", false,
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_num_layers(1);
       },
       "transformer.recompute_method", "RECOMPUTE_CONFLICT",
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_num_layers(1);
         T(c).set_recompute_method("uniform");
       }},
      {"RecomputeMethod", false,
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_num_layers(1);
         T(c).set_recompute_method("all");
       },
       "transformer.recompute_method", "INVALID_VALUE",
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_num_layers(1);
         T(c).set_recompute_method("block");
       }},
      {"RecomputeFullNeedsNumLayers", false,
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_method("uniform");
       },
       "transformer.recompute_num_layers", "RECOMPUTE_CONFLICT",
       [](auto& c) {
         T(c).set_recompute_granularity("full");
         T(c).set_recompute_method("uniform");
         T(c).set_recompute_num_layers(2);
       }},
      {"RecomputeSelectiveNoNumLayers", false,
       [](auto& c) {
         T(c).set_recompute_granularity("selective");
         T(c).set_recompute_num_layers(1);
       },
       "transformer.recompute_num_layers", "RECOMPUTE_CONFLICT",
       [](auto& c) { T(c).set_recompute_granularity("selective"); }},
      {"DistributeSavedActivations", false,
       [](auto& c) {
         T(c).set_recompute_granularity("selective");
         T(c).set_distribute_saved_activations(true);
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_sequence_parallel(true);
       },
       "transformer.distribute_saved_activations", "CONFLICT",
       [](auto& c) {
         T(c).set_recompute_granularity("selective");
         T(c).set_distribute_saved_activations(true);
         T(c).set_tensor_model_parallel_size(2);
       }},
      {"CudaGraphImpl", false, [](auto& c) { T(c).set_cuda_graph_impl("cudnn"); },
       "transformer.cuda_graph_impl", "INVALID_VALUE",
       [](auto& c) { T(c).set_cuda_graph_impl("none"); }},
      {"CudaGraphNeedsTeRngTracker", false, [](auto& c) { T(c).set_cuda_graph_impl("local"); },
       "transformer.use_te_rng_tracker", "CUDA_GRAPH_NEEDS_TE_RNG_TRACKER",
       [](auto& c) {
         T(c).set_cuda_graph_impl("local");
         T(c).set_use_te_rng_tracker(true);
       }},
      {"CudaGraphCpuOffloading", false,
       [](auto& c) {
         T(c).set_cuda_graph_impl("local");
         T(c).set_use_te_rng_tracker(true);
         T(c).set_cpu_offloading(true);
       },
       "transformer.cuda_graph_impl", "CONFLICT",
       [](auto& c) {
         T(c).set_cuda_graph_impl("full_iteration");
         T(c).set_use_te_rng_tracker(true);
         T(c).set_cpu_offloading(true);
       }},
      {"EnableCudaGraphWithImpl", false,
       [](auto& c) {
         T(c).set_enable_cuda_graph(true);
         T(c).set_cuda_graph_impl("local");
         T(c).set_use_te_rng_tracker(true);
       },
       "transformer.enable_cuda_graph", "CONFLICT",
       [](auto& c) {
         T(c).set_enable_cuda_graph(true);
         T(c).set_use_te_rng_tracker(true);
       }},
      // ---- pipeline split ----
      {"FirstLastWithAccountFor", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
         T(c).set_account_for_embedding_in_pipeline_split(true);
       },
       "transformer.num_layers_in_first_pipeline_stage", "PIPELINE_SPLIT_CONFLICT",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
       }},
      {"MtpNumLayers", false, [](auto& c) { T(c).set_mtp_num_layers(-1); },
       "transformer.mtp_num_layers", "OUT_OF_RANGE", [](auto& c) { T(c).set_mtp_num_layers(1); }},
      {"EmptyLayout", false, [](auto& c) { T(c).set_pipeline_model_parallel_layout("  "); },
       "transformer.pipeline_model_parallel_layout", "EMPTY_LAYOUT",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_layout("Ett|ttL");
       }},
      {"LayoutConflict", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_layout("Ett|ttL");
         T(c).set_num_layers_in_first_pipeline_stage(2);
       },
       "transformer.pipeline_model_parallel_layout", "LAYOUT_CONFLICT",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_layout("Ett|ttL");
       }},
      {"FirstStageNotPositive", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(0);
       },
       "transformer.num_layers_in_first_pipeline_stage", "NOT_POSITIVE",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
       }},
      {"LastStageNotPositive", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_last_pipeline_stage(-1);
       },
       "transformer.num_layers_in_last_pipeline_stage", "NOT_POSITIVE",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_last_pipeline_stage(1);
       }},
      {"FirstStageVsVp", false,
       [](auto& c) {
         T(c).set_num_layers(8);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(3);
       },
       "transformer.num_layers_in_first_pipeline_stage", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto& c) {
         T(c).set_num_layers(8);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
       }},
      {"UnevenMismatch", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(4);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_MISMATCH",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(3);
       }},
      {"UnevenMiddleNotDivisible", false,
       [](auto& c) {
         T(c).set_num_layers(6);
         T(c).set_pipeline_model_parallel_size(3);
         T(c).set_num_layers_in_first_pipeline_stage(1);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE",
       [](auto& c) {
         T(c).set_num_layers(5);
         T(c).set_pipeline_model_parallel_size(3);
         T(c).set_num_layers_in_first_pipeline_stage(1);
       }},
      {"UnevenMiddleVsVp", false,
       [](auto& c) {
         T(c).set_num_layers(9);
         T(c).set_pipeline_model_parallel_size(3);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
         T(c).set_num_layers_in_last_pipeline_stage(2);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto& c) {
         T(c).set_num_layers(10);
         T(c).set_pipeline_model_parallel_size(3);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
         T(c).set_num_layers_in_last_pipeline_stage(2);
       }},
      {"FirstAndLastNeedTwoStages", false,
       [](auto& c) {
         T(c).set_num_layers_in_first_pipeline_stage(2);
         T(c).set_num_layers_in_last_pipeline_stage(2);
       },
       "transformer.num_layers_in_first_pipeline_stage", "PIPELINE_SPLIT_MISMATCH",
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_num_layers_in_first_pipeline_stage(2);
         T(c).set_num_layers_in_last_pipeline_stage(2);
       }},
      {"AccountForNotDivisible", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(4);
         T(c).set_account_for_embedding_in_pipeline_split(true);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE",
       [](auto& c) {
         T(c).set_num_layers(3);
         T(c).set_pipeline_model_parallel_size(4);
         T(c).set_account_for_embedding_in_pipeline_split(true);
       }},
      {"AccountForVsVp", false,
       [](auto& c) {
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_account_for_embedding_in_pipeline_split(true);
         T(c).set_account_for_loss_in_pipeline_split(true);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_NOT_DIVISIBLE_BY_VP",
       [](auto& c) {
         T(c).set_num_layers(6);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
         T(c).set_account_for_embedding_in_pipeline_split(true);
         T(c).set_account_for_loss_in_pipeline_split(true);
       }},
      {"EvenSplit", false,
       [](auto& c) {
         T(c).set_num_layers(5);
         T(c).set_pipeline_model_parallel_size(2);
       },
       "transformer.num_layers", "PIPELINE_SPLIT_UNEVEN",
       [](auto& c) {
         T(c).set_num_layers(6);
         T(c).set_pipeline_model_parallel_size(2);
       }},
      {"BridgeModelChunks", false,
       [](auto& c) {
         T(c).set_num_layers(6);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
       },
       "transformer.virtual_pipeline_model_parallel_size", "VP_CHUNKS_UNEVEN",
       [](auto& c) {
         T(c).set_num_layers(8);
         T(c).set_pipeline_model_parallel_size(2);
         T(c).set_virtual_pipeline_model_parallel_size(2);
       }},
      // ---- mixture of experts ----
      {"LoadBalancingType", true, [](auto& c) { T(c).set_moe_router_load_balancing_type("l2"); },
       "transformer.moe_router_load_balancing_type", "INVALID_VALUE",
       [](auto& c) { T(c).set_moe_router_load_balancing_type("sinkhorn"); }},
      {"ScoreFunction", true, [](auto& c) { T(c).set_moe_router_score_function("relu"); },
       "transformer.moe_router_score_function", "INVALID_VALUE",
       [](auto& c) { T(c).set_moe_router_score_function("sigmoid"); }},
      {"DispatcherType", true, [](auto& c) { T(c).set_moe_token_dispatcher_type("a2a"); },
       "transformer.moe_token_dispatcher_type", "INVALID_VALUE",
       [](auto& c) { T(c).set_moe_token_dispatcher_type("alltoall"); }},
      {"DropPolicy", true, [](auto& c) { T(c).set_moe_token_drop_policy("random"); },
       "transformer.moe_token_drop_policy", "INVALID_VALUE",
       [](auto& c) { T(c).set_moe_token_drop_policy("position"); }},
      {"RouterDtype", true, [](auto& c) { T(c).set_moe_router_dtype("bf16"); },
       "transformer.moe_router_dtype", "INVALID_VALUE",
       [](auto& c) { T(c).set_moe_router_dtype("fp64"); }},
      {"EpWithoutExperts", false, [](auto& c) { T(c).set_expert_model_parallel_size(2); },
       "transformer.expert_model_parallel_size", "EP_WITHOUT_EXPERTS",
       [](auto& c) {
         T(c).set_expert_model_parallel_size(2);
         T(c).set_num_moe_experts(4);
       }},
      {"ExpertsNotPositive", true, [](auto& c) { T(c).set_num_moe_experts(0); },
       "transformer.num_moe_experts", "NOT_POSITIVE", [](auto& c) { T(c).set_num_moe_experts(2); }},
      {"ExpertsNotDivisibleByEp", true,
       [](auto& c) {
         T(c).set_num_moe_experts(3);
         T(c).set_expert_model_parallel_size(2);
       },
       "transformer.num_moe_experts", "EXPERTS_NOT_DIVISIBLE_BY_EP",
       [](auto& c) { T(c).set_expert_model_parallel_size(2); }},
      {"MoeFfnNotDivisibleByEtp", true,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_moe_ffn_hidden_size(175);
       },
       "transformer.moe_ffn_hidden_size", "MOE_FFN_NOT_DIVISIBLE_BY_ETP",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_moe_ffn_hidden_size(174);
       }},
      {"MoeFfnNotPositive", true, [](auto& c) { T(c).set_moe_ffn_hidden_size(0); },
       "transformer.moe_ffn_hidden_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_moe_ffn_hidden_size(64); }},
      {"MoeBiasRequiresEtp1", true,
       [](auto& c) {
         T(c).set_add_bias_linear(true);
         T(c).set_tensor_model_parallel_size(2);
       },
       "transformer.add_bias_linear", "MOE_BIAS_REQUIRES_ETP1",
       [](auto& c) {
         T(c).set_add_bias_linear(true);
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_expert_tensor_parallel_size(1);
       }},
      {"RouterTopkRange", true, [](auto& c) { T(c).set_moe_router_topk(5); },
       "transformer.moe_router_topk", "OUT_OF_RANGE", [](auto& c) { T(c).set_moe_router_topk(4); }},
      {"RouterTopk1Softmax", true, [](auto& c) { T(c).set_moe_router_topk(1); },
       "transformer.moe_router_pre_softmax", "ROUTER_TOPK1_NEEDS_PRE_SOFTMAX",
       [](auto& c) {
         T(c).set_moe_router_topk(1);
         T(c).set_moe_router_pre_softmax(true);
       }},
      {"ExpertBiasScoreFunction", true,
       [](auto& c) { T(c).set_moe_router_enable_expert_bias(true); },
       "transformer.moe_router_enable_expert_bias", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_router_enable_expert_bias(true);
         T(c).set_moe_router_score_function("sigmoid");
       }},
      {"GroupRoutingNeedsGroups", true, [](auto& c) { T(c).set_moe_router_group_topk(1); },
       "transformer.moe_router_num_groups", "REQUIRED",
       [](auto& c) {
         T(c).set_moe_router_group_topk(1);
         T(c).set_moe_router_num_groups(2);
       }},
      {"GroupRoutingDivisible", true,
       [](auto& c) {
         T(c).set_moe_router_group_topk(1);
         T(c).set_moe_router_num_groups(3);
       },
       "transformer.moe_router_num_groups", "NOT_DIVISIBLE",
       [](auto& c) {
         T(c).set_moe_router_group_topk(1);
         T(c).set_moe_router_num_groups(2);
       }},
      // Ours: a group's score is its top (topk / group_topk) experts and the top-k is taken
      // among the chosen groups' experts.
      {"GroupRoutingTopkRange", true,
       [](auto& c) {
         T(c).set_moe_router_group_topk(1);
         T(c).set_moe_router_num_groups(4);
       },
       "transformer.moe_router_topk", "OUT_OF_RANGE",
       [](auto& c) {
         T(c).set_moe_router_group_topk(2);
         T(c).set_moe_router_num_groups(4);
       }},
      {"GroupRoutingTopk", true,
       [](auto& c) {
         T(c).set_moe_router_group_topk(3);
         T(c).set_moe_router_num_groups(2);
       },
       "transformer.moe_router_group_topk", "OUT_OF_RANGE",
       [](auto& c) {
         T(c).set_moe_router_group_topk(2);
         T(c).set_moe_router_num_groups(2);
       }},
      {"GroupedTensor", true, [](auto& c) { T(c).set_moe_use_grouped_tensor(true); },
       "transformer.moe_use_grouped_tensor", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_use_grouped_tensor(true);
         T(c).set_moe_grouped_gemm(true);
       }},
      {"SingleGroupedWeight", true, [](auto& c) { T(c).set_moe_single_grouped_weight(true); },
       "transformer.moe_single_grouped_weight", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_single_grouped_weight(true);
         T(c).set_moe_grouped_gemm(true);
         T(c).set_moe_use_grouped_tensor(true);
       }},
      {"SharedExpertSize", true, [](auto& c) { T(c).set_moe_shared_expert_intermediate_size(0); },
       "transformer.moe_shared_expert_intermediate_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_moe_shared_expert_intermediate_size(128); }},
      {"SharedExpertVsTp", true,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_moe_shared_expert_intermediate_size(129);
       },
       "transformer.moe_shared_expert_intermediate_size", "NOT_DIVISIBLE",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_moe_shared_expert_intermediate_size(130);
       }},
      {"SharedExpertOverlap", true,
       [](auto& c) {
         T(c).set_moe_shared_expert_intermediate_size(128);
         T(c).set_moe_shared_expert_overlap(true);
       },
       "transformer.moe_shared_expert_overlap", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_shared_expert_intermediate_size(128);
         T(c).set_moe_shared_expert_overlap(true);
         T(c).set_moe_token_dispatcher_type("alltoall");
       }},
      {"CapacityFactorBalancing", true,
       [](auto& c) {
         T(c).set_moe_expert_capacity_factor(1.0);
         T(c).set_moe_router_load_balancing_type("sinkhorn");
       },
       "transformer.moe_expert_capacity_factor", "CONFLICT",
       [](auto& c) { T(c).set_moe_expert_capacity_factor(1.0); }},
      {"PadToCapacity", true, [](auto& c) { T(c).set_moe_pad_expert_input_to_capacity(true); },
       "transformer.moe_pad_expert_input_to_capacity", "CONFLICT",
       [](auto& c) {
         T(c).set_moe_pad_expert_input_to_capacity(true);
         T(c).set_moe_expert_capacity_factor(1.0);
       }},
      {"AllgatherVariableSeq", true, [](auto& c) { T(c).set_variable_seq_lengths(true); },
       "transformer.variable_seq_lengths", "CONFLICT",
       [](auto& c) {
         T(c).set_variable_seq_lengths(true);
         T(c).set_moe_token_dispatcher_type("alltoall");
       }},
      {"MoeLayerFreqInt", true, [](auto& c) { T(c).add_moe_layer_freq(0); },
       "transformer.moe_layer_freq", "INVALID_MOE_LAYER_FREQ",
       [](auto& c) { T(c).add_moe_layer_freq(2); }},
      {"MoeLayerFreqLength", true,
       [](auto& c) {
         for (int v : {1, 0, 1}) T(c).add_moe_layer_freq(v);
       },
       "transformer.moe_layer_freq", "INVALID_MOE_LAYER_FREQ",
       [](auto& c) {
         for (int v : {1, 0, 1, 0}) T(c).add_moe_layer_freq(v);
       }},
      {"MoeLayerFreqValues", true,
       [](auto& c) {
         for (int v : {1, 2, 1, 0}) T(c).add_moe_layer_freq(v);
       },
       "transformer.moe_layer_freq[1]", "INVALID_MOE_LAYER_FREQ",
       [](auto& c) {
         for (int v : {1, 1, 1, 1}) T(c).add_moe_layer_freq(v);
       }},
      {"MoeLatentSize", true, [](auto& c) { T(c).set_moe_latent_size(0); },
       "transformer.moe_latent_size", "NOT_POSITIVE",
       [](auto& c) { T(c).set_moe_latent_size(32); }},
      {"MoeFfnWithoutExperts", false, [](auto& c) { T(c).set_moe_ffn_hidden_size(64); },
       "transformer.moe_ffn_hidden_size", "MOE_FFN_WITHOUT_EXPERTS",
       [](auto& c) {
         T(c).set_moe_ffn_hidden_size(64);
         T(c).add_moe_layer_freq(2);  // a mixed model: Megatron drops it for the dense layers
       }},
      // ---- GPTModelConfig level ----
      {"VocabRequired", false, [](auto& c) { c.clear_vocab_size(); }, "vocab_size", "REQUIRED",
       [](auto& c) { c.set_vocab_size(1); }},
      {"VocabNotPositive", false, [](auto& c) { c.set_vocab_size(0); }, "vocab_size",
       "NOT_POSITIVE", [](auto& c) { c.set_vocab_size(50257); }},
      {"VocabDivisorNotPositive", false, [](auto& c) { c.set_make_vocab_size_divisible_by(0); },
       "make_vocab_size_divisible_by", "NOT_POSITIVE",
       [](auto& c) { c.set_make_vocab_size_divisible_by(64); }},
      {"VocabNotDivisibleByTp", false,
       [](auto& c) {
         c.set_should_pad_vocab(false);
         c.set_vocab_size(1001);
         T(c).set_tensor_model_parallel_size(2);
       },
       "vocab_size", "VOCAB_NOT_DIVISIBLE_BY_TP",
       [](auto& c) {
         c.set_should_pad_vocab(false);
         c.set_vocab_size(1002);
         T(c).set_tensor_model_parallel_size(2);
       }},
      {"SeqLength", false, [](auto& c) { c.set_seq_length(0); }, "seq_length", "NOT_POSITIVE",
       [](auto& c) { c.set_seq_length(1); }},
      {"PositionEmbeddingType", false, [](auto& c) { c.set_position_embedding_type("alibi"); },
       "position_embedding_type", "INVALID_VALUE",
       [](auto& c) { c.set_position_embedding_type("none"); }},
      {"RotaryPercentRange", false, [](auto& c) { c.set_rotary_percent(0); }, "rotary_percent",
       "OUT_OF_RANGE", [](auto& c) { c.set_rotary_percent(0.5); }},
      {"RotaryDimOdd", false, [](auto& c) { c.set_rotary_percent(0.125); }, "rotary_percent",
       "ODD_ROTARY_DIM", [](auto& c) { c.set_rotary_percent(0.25); }},
      {"RotaryBase", false, [](auto& c) { c.set_rotary_base(0); }, "rotary_base", "NOT_POSITIVE",
       [](auto& c) { c.set_rotary_base(500000); }},
      {"RopeScalingFactor", false,
       [](auto& c) {
         c.set_rope_scaling(true);
         c.set_rope_scaling_factor(0);
       },
       "rope_scaling_factor", "OUT_OF_RANGE",
       [](auto& c) {
         c.set_rope_scaling(true);
         c.set_rope_scaling_factor(8);
       }},
      {"SeqLenInterpolation", false, [](auto& c) { c.set_seq_len_interpolation_factor(0); },
       "seq_len_interpolation_factor", "OUT_OF_RANGE",
       [](auto& c) { c.set_seq_len_interpolation_factor(2); }},
      {"LayerSpecName", false, [](auto& c) { c.mutable_transformer_layer_spec()->set_name("te"); },
       "transformer_layer_spec", "INVALID_VALUE",
       [](auto& c) { c.mutable_transformer_layer_spec()->set_name("transformer_engine"); }},
      {"CustomLayerSpec", false,
       [](auto& c) {
         auto* spec = c.mutable_transformer_layer_spec()->mutable_custom();
         layer_spec::ToProto(
             *layer_spec::GetGptLayerLocalSpec(std::nullopt, false, false, "LayerNorm"), spec);
         (*spec->mutable_submodules())["mlp"].set_module("FancyMLP");
       },
       "transformer_layer_spec.custom.submodules.mlp.module", "UNKNOWN_MODULE",
       [](auto& c) {
         auto* spec = c.mutable_transformer_layer_spec()->mutable_custom();
         layer_spec::ToProto(
             *layer_spec::GetGptLayerLocalSpec(std::nullopt, false, false, "LayerNorm"), spec);
       }},
      {"TransformerRequired", false, [](auto& c) { c.clear_transformer(); }, "transformer",
       "REQUIRED", [](auto&) {}},
      // ---- world size ----
      {"WorldSize", false,
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_size(2);
       },
       "world_size", "WORLD_SIZE_NOT_DIVISIBLE",
       [](auto& c) {
         T(c).set_tensor_model_parallel_size(2);
         T(c).set_pipeline_model_parallel_size(2);
       },
       6, 8},
      {"ExpertWorldSize", true, [](auto& c) { T(c).set_expert_model_parallel_size(4); },
       "world_size", "EXPERT_WORLD_SIZE_NOT_DIVISIBLE",
       [](auto& c) { T(c).set_expert_model_parallel_size(4); }, 2, 4},
      {"WorldSizeNotPositive", false, [](auto&) {}, "world_size", "NOT_POSITIVE", [](auto&) {}, 0,
       1},
  };
}

class FinalizeRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(FinalizeRuleTest, FailsWithFieldAndReasonAndPassesNearby) {
  const RuleCase& rule = GetParam();
  GPTModelConfig failing = rule.moe ? TinyMoe() : TinyLlama();
  rule.fail(failing);
  absl::StatusOr<GPTModelConfig> failed = Finalize(failing, {rule.fail_world, kMegatronRulesOnly});
  ASSERT_FALSE(failed.ok()) << "expected " << rule.field << " " << rule.reason;
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldsAndReasons(failed.status()), Contains(Pair(rule.field, rule.reason)))
      << failed.status().message();

  GPTModelConfig passing = rule.moe ? TinyMoe() : TinyLlama();
  rule.pass(passing);
  absl::StatusOr<GPTModelConfig> passed = Finalize(passing, {rule.pass_world, kMegatronRulesOnly});
  ASSERT_TRUE(passed.ok()) << passed.status().message();
  // Every passing config is also a round-trip case: finalizing again changes nothing, and the
  // emitted YAML loads back to the same resolved config.
  absl::StatusOr<GPTModelConfig> again = Finalize(*passed, {rule.pass_world, kMegatronRulesOnly});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, *passed));
  absl::StatusOr<LoadedConfig> reloaded = LoadConfigText(EmitYaml(*passed));
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(reloaded->model, *passed))
      << EmitYaml(*passed);
}

INSTANTIATE_TEST_SUITE_P(Rules, FinalizeRuleTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.name;
                         });

// ---- DistributedDataParallelConfig and BuildOptions ----

using DdpMutation = std::function<void(gptbuilder::v1::DistributedDataParallelConfig&)>;

struct DdpCase {
  std::string name;
  DdpMutation fail;
  std::string field;
  std::string reason;
  DdpMutation pass;
};

void PrintTo(const DdpCase& rule, std::ostream* os) { *os << rule.name; }

std::vector<DdpCase> DdpCases() {
  return {
      {"FsdpVersion", [](auto& d) { d.set_megatron_fsdp_version(3); }, "megatron_fsdp_version",
       "INVALID_VALUE", [](auto& d) { d.set_megatron_fsdp_version(2); }},
      {"ReuseGradBuf", [](auto& d) { d.set_reuse_grad_buf_for_mxfp8_param_ag(true); },
       "reuse_grad_buf_for_mxfp8_param_ag", "CONFLICT",
       [](auto& d) {
         d.set_reuse_grad_buf_for_mxfp8_param_ag(true);
         d.set_fp8_param_gather(true);
       }},
      {"Fp32AccumulationPatterns",
       [](auto& d) {
         d.add_param_name_patterns_for_fp32_local_accumulation("*.bias");
         d.set_grad_reduce_in_fp32(true);
       },
       "param_name_patterns_for_fp32_local_accumulation", "CONFLICT",
       [](auto& d) { d.add_param_name_patterns_for_fp32_local_accumulation("*.bias"); }},
      {"BucketsAndBucketSize",
       [](auto& d) {
         d.set_num_buckets(4);
         d.set_bucket_size(1000000);
       },
       "num_buckets", "CONFLICT", [](auto& d) { d.set_num_buckets(4); }},
      {"NumBuckets", [](auto& d) { d.set_num_buckets(0); }, "num_buckets", "NOT_POSITIVE",
       [](auto& d) { d.set_num_buckets(1); }},
      {"BucketSize", [](auto& d) { d.set_bucket_size(0); }, "bucket_size", "NOT_POSITIVE",
       [](auto& d) { d.set_bucket_size(40000000); }},
      {"CommunicationUnit", [](auto& d) { d.set_suggested_communication_unit_size(-1); },
       "suggested_communication_unit_size", "NOT_POSITIVE",
       [](auto& d) { d.set_suggested_communication_unit_size(1 << 20); }},
      {"OptimizerInstances", [](auto& d) { d.set_num_distributed_optimizer_instances(0); },
       "num_distributed_optimizer_instances", "NOT_POSITIVE",
       [](auto& d) { d.set_num_distributed_optimizer_instances(2); }},
      {"ShardingStrategy", [](auto& d) { d.set_data_parallel_sharding_strategy("full"); },
       "data_parallel_sharding_strategy", "INVALID_VALUE",
       [](auto& d) { d.set_data_parallel_sharding_strategy("optim_grads_params"); }},
      {"OuterShardingStrategy", [](auto& d) { d.set_outer_dp_sharding_strategy("optim_grads"); },
       "outer_dp_sharding_strategy", "INVALID_VALUE",
       [](auto& d) { d.set_outer_dp_sharding_strategy("optim"); }},
      {"FsdpMainParamsDtype", [](auto& d) { d.set_megatron_fsdp_main_params_dtype("int8"); },
       "megatron_fsdp_main_params_dtype", "INVALID_DTYPE",
       [](auto& d) { d.set_megatron_fsdp_main_params_dtype("bf16"); }},
  };
}

class FinalizeDdpRuleTest : public ::testing::TestWithParam<DdpCase> {};

TEST_P(FinalizeDdpRuleTest, FailsWithFieldAndReasonAndPassesNearby) {
  const DdpCase& rule = GetParam();
  gptbuilder::v1::DistributedDataParallelConfig failing;
  rule.fail(failing);
  auto failed = FinalizeDdp(failing);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(FieldsAndReasons(failed.status()), Contains(Pair(rule.field, rule.reason)))
      << failed.status().message();
  gptbuilder::v1::DistributedDataParallelConfig passing;
  rule.pass(passing);
  auto passed = FinalizeDdp(passing);
  EXPECT_TRUE(passed.ok()) << passed.status().message();
}

INSTANTIATE_TEST_SUITE_P(Rules, FinalizeDdpRuleTest, ::testing::ValuesIn(DdpCases()),
                         [](const ::testing::TestParamInfo<DdpCase>& info) {
                           return info.param.name;
                         });

TEST(FinalizeBuild, FsdpFlavoursAreExclusive) {
  gptbuilder::v1::BuildOptions build;
  build.set_use_megatron_fsdp(true);
  build.set_use_torch_fsdp2(true);
  auto failed = FinalizeBuild(build);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(FieldsAndReasons(failed.status()), Contains(Pair("use_torch_fsdp2", "CONFLICT")));
  build.set_use_torch_fsdp2(false);
  EXPECT_TRUE(FinalizeBuild(build).ok());
}

}  // namespace
}  // namespace gptb::config
