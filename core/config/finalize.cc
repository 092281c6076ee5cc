#include "core/config/finalize.h"

#include <cmath>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/accepted_values.h"
#include "core/config/field_support.h"
#include "core/config/suggest.h"
#include "core/config/violations.h"
#include "core/config/vocab.h"
#include "core/layer_spec/layer_specs.h"
#include "core/layer_spec/module_registry.h"
#include "core/layer_spec/module_spec.h"
#include "core/plan/pipeline_layout.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::BuildOptions;
using gptbuilder::v1::DistributedDataParallelConfig;
using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::ModuleSpec;
using gptbuilder::v1::TransformerConfig;

std::string T(const std::string& field) { return absl::StrCat("transformer.", field); }

// "1, 2, 4, 8" (at most 12 shown) for messages that list the values that would divide `n`.
std::string DivisorList(int64_t n) {
  std::vector<std::string> out;
  for (int64_t d = 1; d <= n && out.size() < 12; ++d) {
    if (n % d == 0) out.push_back(absl::StrCat(d));
  }
  if (out.size() == 12) out.push_back("...");
  return absl::StrJoin(out, ", ");
}

// "multiples of 4 (4, 8, 12, ...)".
std::string MultipleList(int64_t m) {
  return absl::StrCat("multiples of ", m, " (", m, ", ", 2 * m, ", ", 3 * m, ", ...)");
}

// The nearest values below and above `value` that `divisor` divides, for "e.g." hints.
std::string NearestMultiples(int64_t value, int64_t divisor) {
  const int64_t below = (value / divisor) * divisor;
  const int64_t above = below + divisor;
  if (below <= 0) return absl::StrCat(above);
  return absl::StrCat(below, " or ", above);
}

// Collects violations with the small helpers most rules share.
class Checker {
 public:
  explicit Checker(Violations* violations) : violations_(violations) {}
  Violations* violations() { return violations_; }

  void Add(std::string field, std::string reason, std::string description) {
    violations_->Add(std::move(field), std::move(reason), std::move(description));
  }

  // NOT_POSITIVE: a size or count that must be >= 1. Returns whether it is.
  bool Positive(const std::string& field, const std::string& name, int64_t value) {
    if (value >= 1) return true;
    Add(field, "NOT_POSITIVE", absl::StrCat(name, " must be a positive integer, got ", value, "."));
    return false;
  }

  // INVALID_VALUE: an enumerated string outside its accepted set.
  bool OneOf(const std::string& field, const std::string& name, const std::string& value,
             const std::vector<std::string>& accepted) {
    if (IsOneOf(value, accepted)) return true;
    Add(field, "INVALID_VALUE",
        absl::StrCat(name, " '", value, "' is not accepted; use ", QuotedList(accepted), ".",
                     DidYouMean(value, accepted)));
    return false;
  }

 private:
  Violations* violations_;
};

// ---- Defaults --------------------------------------------------------------------------------

void SetDefaultsRecursive(google::protobuf::Message* message) {
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  const google::protobuf::Reflection* reflection = message->GetReflection();
  using FD = google::protobuf::FieldDescriptor;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FD* field = descriptor->field(i);
    if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int j = 0; j < reflection->FieldSize(*message, field); ++j) {
          SetDefaultsRecursive(reflection->MutableRepeatedMessage(message, field, j));
        }
      } else if (reflection->HasField(*message, field)) {
        SetDefaultsRecursive(reflection->MutableMessage(message, field));
      }
      continue;
    }
    if (field->is_repeated() || !field->has_default_value() || field->containing_oneof() ||
        reflection->HasField(*message, field)) {
      continue;
    }
    switch (field->cpp_type()) {
      case FD::CPPTYPE_INT32:
        reflection->SetInt32(message, field, field->default_value_int32());
        break;
      case FD::CPPTYPE_INT64:
        reflection->SetInt64(message, field, field->default_value_int64());
        break;
      case FD::CPPTYPE_UINT32:
        reflection->SetUInt32(message, field, field->default_value_uint32());
        break;
      case FD::CPPTYPE_UINT64:
        reflection->SetUInt64(message, field, field->default_value_uint64());
        break;
      case FD::CPPTYPE_DOUBLE:
        reflection->SetDouble(message, field, field->default_value_double());
        break;
      case FD::CPPTYPE_FLOAT:
        reflection->SetFloat(message, field, field->default_value_float());
        break;
      case FD::CPPTYPE_BOOL:
        reflection->SetBool(message, field, field->default_value_bool());
        break;
      case FD::CPPTYPE_STRING:
        reflection->SetString(message, field, field->default_value_string());
        break;
      case FD::CPPTYPE_ENUM:
        reflection->SetEnum(message, field, field->default_value_enum());
        break;
      case FD::CPPTYPE_MESSAGE:
        break;
    }
  }
}

// ---- String spellings -------------------------------------------------------------------------

// Dtype fields accept Bridge's spellings (str_to_dtype) and are stored canonically.
void NormalizeDtypeField(bool has, std::string* value, const std::string& field,
                         const std::string& name, Checker& c) {
  if (!has) return;
  if (std::optional<std::string> canonical = NormalizeDtype(*value)) {
    *value = *canonical;
    return;
  }
  c.Add(field, "INVALID_DTYPE",
        absl::StrCat(
            name, " '", *value, "' is not a parameter dtype; use ", QuotedList(DtypeValues()),
            " (aliases fp32, bf16, fp16, torch.float32, torch.bfloat16, ... are accepted)."));
}

void NormalizeStrings(GPTModelConfig* config, Checker& c) {
  TransformerConfig* t = config->mutable_transformer();
  NormalizeDtypeField(t->has_params_dtype(), t->mutable_params_dtype(), T("params_dtype"),
                      "params_dtype", c);
  if (t->has_pipeline_dtype()) {
    NormalizeDtypeField(true, t->mutable_pipeline_dtype(), T("pipeline_dtype"), "pipeline_dtype",
                        c);
  }
  if (t->has_autocast_dtype()) {
    NormalizeDtypeField(true, t->mutable_autocast_dtype(), T("autocast_dtype"), "autocast_dtype",
                        c);
  }
  // activation_func: Bridge's activation_map names; "swiglu" is a common mistake worth a hint.
  if (std::optional<std::string> canonical = NormalizeActivation(t->activation_func())) {
    t->set_activation_func(*canonical);
  } else {
    std::string hint = DidYouMean(t->activation_func(), ActivationValues());
    const std::string lowered = absl::AsciiStrToLower(t->activation_func());
    if (lowered == "swiglu" || lowered == "geglu") {
      hint = absl::StrCat(" SwiGLU is activation_func 'silu' with gated_linear_unit: true (GeGLU: ",
                          "'gelu' with gated_linear_unit: true).");
    }
    c.Add(T("activation_func"), "INVALID_VALUE",
          absl::StrCat("activation_func '", t->activation_func(), "' is not accepted; use ",
                       QuotedList(ActivationValues()), ".", hint));
  }
}

// ---- Derived values ---------------------------------------------------------------------------

bool IsMixedDenseMoe(const TransformerConfig& t) {
  if (t.moe_layer_freq_size() == 1) return t.moe_layer_freq(0) > 1;
  for (int32_t v : t.moe_layer_freq()) {
    if (v == 0) return true;
  }
  return false;
}

// Megatron's derivations, in the order Bridge's finalize and Megatron's __post_init__ apply them.
void DeriveValues(GPTModelConfig* config, Checker& c) {
  TransformerConfig* t = config->mutable_transformer();
  // Bridge finalize 1b: pipelined models need a p2p dtype; the parameters' dtype is the natural
  // one.
  if (t->pipeline_model_parallel_size() > 1 && !t->has_pipeline_dtype()) {
    t->set_pipeline_dtype(t->params_dtype());
  }
  // Bridge finalize 1c: sequence parallelism without tensor parallelism is silently turned off
  // (Megatron Core alone would raise "Cannot use sequence parallelism without tensor parallelism").
  if (t->sequence_parallel() && t->tensor_model_parallel_size() <= 1) {
    t->set_sequence_parallel(false);
  }
  if (!t->has_expert_tensor_parallel_size()) {
    t->set_expert_tensor_parallel_size(t->tensor_model_parallel_size());
  }
  if (!t->has_autocast_dtype()) t->set_autocast_dtype(t->params_dtype());
  if (!t->has_microbatch_group_size_per_vp_stage()) {
    t->set_microbatch_group_size_per_vp_stage(t->pipeline_model_parallel_size());
  }
  // The residual stream is fp32, so pipeline p2p must be too (only when there is a p2p dtype).
  if (t->fp32_residual_connection() && t->has_pipeline_dtype()) t->set_pipeline_dtype("float32");
  if (!t->has_ffn_hidden_size()) t->set_ffn_hidden_size(4 * t->hidden_size());
  if (!t->has_kv_channels() && t->num_attention_heads() > 0) {
    t->set_kv_channels(t->hidden_size() / t->num_attention_heads());
  }
  if (!t->has_num_query_groups()) t->set_num_query_groups(t->num_attention_heads());
  if (t->apply_query_key_layer_scaling()) t->set_attention_softmax_in_fp32(true);
  if (t->moe_layer_freq_size() == 0) t->add_moe_layer_freq(1);
  if (t->has_num_moe_experts()) {
    if (!t->has_moe_ffn_hidden_size()) t->set_moe_ffn_hidden_size(t->ffn_hidden_size());
  } else if (t->has_moe_ffn_hidden_size()) {
    // Megatron drops moe_ffn_hidden_size for the dense layers of a mixed model and rejects it for
    // a model that has no experts at all.
    if (IsMixedDenseMoe(*t)) {
      t->clear_moe_ffn_hidden_size();
    } else {
      c.Add(T("moe_ffn_hidden_size"), "MOE_FFN_WITHOUT_EXPERTS",
            "moe_ffn_hidden_size is set but num_moe_experts is None. Please set num_moe_experts "
            "or remove moe_ffn_hidden_size.");
    }
  }
  if (t->has_moe_expert_capacity_factor() && t->moe_expert_capacity_factor() < 0) {
    t->clear_moe_expert_capacity_factor();  // Megatron: a negative factor means "no capacity".
  }
  if (!t->has_embedding_init_method_std()) {
    t->set_embedding_init_method_std(t->init_method_std());
  }
  // enable_cuda_graph / external_cuda_graph are Megatron's deprecated spellings of
  // cuda_graph_impl "local" / "transformer_engine". They are migrated (and cleared, so that
  // finalizing the result again is a no-op) unless cuda_graph_impl is given too.
  if (t->enable_cuda_graph() && t->external_cuda_graph()) {
    c.Add(T("external_cuda_graph"), "CONFLICT",
          "enable_cuda_graph and external_cuda_graph cannot be enabled at the same time; set "
          "cuda_graph_impl instead (local or transformer_engine).");
  } else if (t->enable_cuda_graph() || t->external_cuda_graph()) {
    const bool enable = t->enable_cuda_graph();
    if (t->cuda_graph_impl() != "none") {
      c.Add(
          T(enable ? "enable_cuda_graph" : "external_cuda_graph"), "CONFLICT",
          absl::StrCat("Do not use enable_cuda_graph or external_cuda_graph with cuda_graph_impl; "
                       "set only cuda_graph_impl (",
                       enable ? "enable_cuda_graph: true means cuda_graph_impl: local"
                              : "external_cuda_graph: true means cuda_graph_impl: "
                                "transformer_engine",
                       ")."));
    } else {
      t->set_cuda_graph_impl(enable ? "local" : "transformer_engine");
      t->set_enable_cuda_graph(false);
      t->set_external_cuda_graph(false);
    }
  }
  // cuda_graph_scope is Megatron's deprecated spelling of cuda_graph_modules (migrated, then
  // cleared); "full" in either means the whole layer, which cuda_graph_modules spells as empty.
  if (t->cuda_graph_scope_size() > 0) {
    const bool modules_default =
        t->cuda_graph_modules_size() == 0 ||
        (t->cuda_graph_modules_size() == 1 && t->cuda_graph_modules(0) == "full");
    if (!modules_default) {
      c.Add(T("cuda_graph_scope"), "CONFLICT",
            "cuda_graph_scope and cuda_graph_modules cannot be set together; cuda_graph_scope is "
            "deprecated, set only cuda_graph_modules.");
    } else {
      *t->mutable_cuda_graph_modules() = t->cuda_graph_scope();
      t->clear_cuda_graph_scope();
    }
  }
  if (t->cuda_graph_modules_size() == 1 && t->cuda_graph_modules(0) == "full") {
    t->clear_cuda_graph_modules();
  }
  if (!config->has_transformer_layer_spec()) {
    config->mutable_transformer_layer_spec()->set_name("default");
  }
}

// ---- Rules ------------------------------------------------------------------------------------
// Each rule names its reason code; "(Megatron)" marks checks Megatron Core / Bridge make at
// construction, "(ours)" marks checks Megatron misses and then fails on later (at build time, in
// a forward pass, or in a collective).

// Which derivable fields the user gave (before DeriveValues filled them), so that a value derived
// from an invalid one is not reported a second time.
struct Given {
  bool kv_channels = false;
  bool ffn_hidden_size = false;
  bool num_query_groups = false;
  bool moe_ffn_hidden_size = false;
};

struct Sizes {
  bool ok = true;  // tp, pp, cp, ep, etp are all >= 1 (the arithmetic rules below need that)
  int64_t tp = 1, pp = 1, cp = 1, ep = 1, etp = 1;
  std::optional<int64_t> vp;
};

Sizes CheckParallelSizes(const TransformerConfig& t, Checker& c) {
  Sizes s;
  s.tp = t.tensor_model_parallel_size();
  s.pp = t.pipeline_model_parallel_size();
  s.cp = t.context_parallel_size();
  s.ep = t.expert_model_parallel_size();
  s.etp = t.expert_tensor_parallel_size();
  // NOT_POSITIVE (ours): every parallel size is a group size, so at least 1.
  s.ok &= c.Positive(T("tensor_model_parallel_size"), "tensor_model_parallel_size", s.tp);
  s.ok &= c.Positive(T("pipeline_model_parallel_size"), "pipeline_model_parallel_size", s.pp);
  s.ok &= c.Positive(T("context_parallel_size"), "context_parallel_size", s.cp);
  s.ok &= c.Positive(T("expert_model_parallel_size"), "expert_model_parallel_size", s.ep);
  s.ok &= c.Positive(T("expert_tensor_parallel_size"), "expert_tensor_parallel_size", s.etp);
  if (t.has_virtual_pipeline_model_parallel_size()) {
    const int64_t vp = t.virtual_pipeline_model_parallel_size();
    // NOT_POSITIVE (ours): a chunk count.
    if (c.Positive(T("virtual_pipeline_model_parallel_size"),
                   "virtual_pipeline_model_parallel_size", vp)) {
      s.vp = vp;
      // VP_WITHOUT_PP (ours; Megatron's training arguments reject it, the config does not): the
      // interleaved schedule needs several pipeline stages.
      if (s.pp == 1) {
        c.Add(T("virtual_pipeline_model_parallel_size"), "VP_WITHOUT_PP",
              absl::StrCat("virtual_pipeline_model_parallel_size (", vp,
                           ") needs pipeline_model_parallel_size > 1; set pipeline parallelism or "
                           "remove virtual_pipeline_model_parallel_size."));
      }
    }
  }
  // tensor_parallel_num_weight_shards (generalized TP) is refused by CheckFieldSupport.
  // HIERARCHICAL_CP_MISMATCH (ours; Megatron's parallel_state asserts it): the hierarchical
  // context-parallel sizes factor context_parallel_size.
  if (t.hierarchical_context_parallel_sizes_size() > 0) {
    int64_t product = 1;
    bool positive = true;
    for (int i = 0; i < t.hierarchical_context_parallel_sizes_size(); ++i) {
      const int64_t v = t.hierarchical_context_parallel_sizes(i);
      positive &= c.Positive(absl::StrCat(T("hierarchical_context_parallel_sizes"), "[", i, "]"),
                             "hierarchical_context_parallel_sizes entries", v);
      product *= v;
    }
    if (positive && product != s.cp) {
      c.Add(T("hierarchical_context_parallel_sizes"), "HIERARCHICAL_CP_MISMATCH",
            absl::StrCat("the product of hierarchical_context_parallel_sizes (", product,
                         ") must equal context_parallel_size (", s.cp, ")."));
    }
  }
  // NOT_POSITIVE (ours): the interleaved-schedule group size.
  c.Positive(T("microbatch_group_size_per_vp_stage"), "microbatch_group_size_per_vp_stage",
             t.microbatch_group_size_per_vp_stage());
  // DEFER_WGRAD_* (Megatron ModelParallelConfig).
  if (t.defer_embedding_wgrad_compute()) {
    if (s.pp == 1) {
      c.Add(T("defer_embedding_wgrad_compute"), "DEFER_WGRAD_WITHOUT_PP",
            "Cannot defer embedding wgrad compute when pipeline model parallel is not used; set "
            "pipeline_model_parallel_size > 1 or defer_embedding_wgrad_compute: false.");
    }
    if (!t.gradient_accumulation_fusion()) {
      c.Add(T("defer_embedding_wgrad_compute"), "DEFER_WGRAD_WITHOUT_GRAD_ACC_FUSION",
            "Cannot defer embedding wgrad compute when gradient accumulation fusion is not used; "
            "set gradient_accumulation_fusion: true or defer_embedding_wgrad_compute: false.");
    }
    if (t.wgrad_deferral_limit() < 0) {
      c.Add(T("wgrad_deferral_limit"), "OUT_OF_RANGE",
            absl::StrCat("Wgrad deferral limit should be greater than or equal to 0 when it is "
                         "enabled, got ",
                         t.wgrad_deferral_limit(), "."));
    }
  }
  // P2P_WARMUP_FLUSH (Megatron ModelParallelConfig).
  if (t.overlap_p2p_comm_warmup_flush() && (!t.overlap_p2p_comm() || t.batch_p2p_comm())) {
    c.Add(T("overlap_p2p_comm_warmup_flush"), "P2P_WARMUP_FLUSH_CONFLICT",
          "Pipeline parallel communication overlapping in warmup and flush is only compatible "
          "with overlap_p2p_comm but not batch_p2p_comm; set overlap_p2p_comm: true and "
          "batch_p2p_comm: false, or overlap_p2p_comm_warmup_flush: false.");
  }
  return s;
}

void CheckSizesAndAttention(const TransformerConfig& t, const Sizes& s, const Given& given,
                            Checker& c) {
  const int64_t layers = t.num_layers(), h = t.hidden_size(), n = t.num_attention_heads();
  // NOT_POSITIVE (ours): Megatron's defaults are 0 and it builds nothing useful (or divides by
  // zero deriving kv_channels).
  c.Positive(T("num_layers"), "num_layers", layers);
  const bool h_ok = c.Positive(T("hidden_size"), "hidden_size", h);
  const bool n_ok = c.Positive(T("num_attention_heads"), "num_attention_heads", n);
  if (given.kv_channels) {
    c.Positive(T("kv_channels"), "kv_channels", t.kv_channels());  // NOT_POSITIVE (ours)
  } else if (h_ok && n_ok && h % n != 0) {
    // HIDDEN_NOT_DIVISIBLE_BY_HEADS (ours): Megatron floors h // n and builds a narrower attention
    // than the residual stream without saying so.
    c.Add(T("hidden_size"), "HIDDEN_NOT_DIVISIBLE_BY_HEADS",
          absl::StrCat("hidden_size (", h, ") must be divisible by num_attention_heads (", n,
                       ") when kv_channels is unset (e.g. hidden_size ", NearestMultiples(h, n),
                       "), or set kv_channels explicitly."));
  }
  if (given.ffn_hidden_size) {
    c.Positive(T("ffn_hidden_size"), "ffn_hidden_size",
               t.ffn_hidden_size());  // NOT_POSITIVE (ours)
  }
  const int64_t g = t.num_query_groups();
  // NOT_POSITIVE / QUERY_GROUPS_* (ours): grouped-query attention needs 1 <= g <= n with g | n.
  const bool g_ok =
      given.num_query_groups ? c.Positive(T("num_query_groups"), "num_query_groups", g) : n_ok;
  if (g_ok && n_ok) {
    if (g > n) {
      c.Add(T("num_query_groups"), "QUERY_GROUPS_EXCEED_HEADS",
            absl::StrCat("num_query_groups (", g, ") must not exceed num_attention_heads (", n,
                         "); valid values divide it: ", DivisorList(n), "."));
    } else if (n % g != 0) {
      c.Add(T("num_query_groups"), "QUERY_GROUPS_NOT_DIVIDING_HEADS",
            absl::StrCat("num_attention_heads (", n, ") must be divisible by num_query_groups (", g,
                         "); valid num_query_groups: ", DivisorList(n), "."));
    }
  }
  if (!s.ok) return;
  // HEADS_NOT_DIVISIBLE_BY_TP (Megatron).
  if (n_ok && n % s.tp != 0) {
    c.Add(T("num_attention_heads"), "HEADS_NOT_DIVISIBLE_BY_TP",
          absl::StrCat("num_attention_heads (", n,
                       ") must be a multiple of "
                       "tensor_model_parallel_size (",
                       s.tp,
                       "); tensor_model_parallel_size values "
                       "that divide it: ",
                       DivisorList(n), "."));
  }
  // QUERY_GROUPS_VS_TP (Megatron): each TP rank holds whole groups, or a group is replicated.
  if (g_ok && g % s.tp != 0 && s.tp % g != 0) {
    c.Add(T("num_query_groups"), "QUERY_GROUPS_VS_TP",
          absl::StrCat("num_query_groups (", g,
                       ") must be a multiple or divisor of "
                       "tensor_model_parallel_size (",
                       s.tp, ")."));
  }
  // FFN_NOT_DIVISIBLE_BY_TP (ours): linear_fc1 / linear_fc2 split ffn_hidden_size across TP ranks
  // (Megatron's divide() asserts when the layer is built).
  if (t.ffn_hidden_size() > 0 && t.ffn_hidden_size() % s.tp != 0) {
    c.Add(T("ffn_hidden_size"), "FFN_NOT_DIVISIBLE_BY_TP",
          absl::StrCat("ffn_hidden_size (", t.ffn_hidden_size(),
                       ") must be divisible by tensor_model_parallel_size (", s.tp, "), e.g. ",
                       NearestMultiples(t.ffn_hidden_size(), s.tp), "."));
  }
}

void CheckMla(const GPTModelConfig& config, const Sizes& s, Checker& c) {
  const TransformerConfig& t = config.transformer();
  // MLA_ROTARY_INTERLEAVED (Megatron).
  if (t.multi_latent_attention() && t.rotary_interleaved()) {
    c.Add(T("rotary_interleaved"), "MLA_CONFLICT",
          "rotary_interleaved does not work with multi_latent_attention; set one of them false.");
  }
  if (!t.multi_latent_attention()) return;
  const bool rope_ok =
      c.OneOf(T("rope_type"), "rope_type", t.rope_type(), MlaRopeTypeValues());  // INVALID_VALUE
  // MLA_CONFLICT (Megatron MLATransformerConfig).
  if (t.attention_output_gate()) {
    c.Add(T("attention_output_gate"), "MLA_CONFLICT",
          "Output gate is not supported for MLA yet; set attention_output_gate: false.");
  }
  if (t.apply_rope_fusion() && t.rope_type() != "yarn") {
    c.Add(T("apply_rope_fusion"), "MLA_CONFLICT",
          "apply_rope_fusion for MLA only works with YARN RoPE; set rope_type: yarn or "
          "apply_rope_fusion: false.");
  }
  // MLA_CONFLICT (Megatron's core attention): every MLA head has its own key and value, so
  // the core attention's query groups must be the heads (Megatron would repeat or group keys
  // that MLA never groups).
  if (t.has_num_query_groups() && t.num_query_groups() != t.num_attention_heads()) {
    c.Add(T("num_query_groups"), "MLA_CONFLICT",
          absl::StrCat("multi_latent_attention gives every head its own key and value: "
                       "num_query_groups (",
                       t.num_query_groups(), ") must equal num_attention_heads (",
                       t.num_attention_heads(), ") or be unset."));
  }
  // UNSUPPORTED (ours): sequence parallelism changes where MLA's down projections gather and
  // scatter the sequence; this builder computes MLA without it.
  if (t.sequence_parallel() && t.tensor_model_parallel_size() > 1) {
    c.Add(T("sequence_parallel"), "UNSUPPORTED",
          "multi-latent attention is built without sequence parallelism; set "
          "sequence_parallel: false (MoE layers with tensor parallelism need it, so MLA + MoE "
          "runs with tensor_model_parallel_size 1 and expert parallelism).");
  }
  // MLA_CONFLICT (Megatron's QKNormConfigResolver).
  if (t.qk_l2_norm()) {
    c.Add(T("qk_l2_norm"), "MLA_CONFLICT",
          "qk_l2_norm is not supported with MLA; set qk_l2_norm: false.");
  }
  // NOT_POSITIVE (ours): MLA projection sizes (q_lora_rank 0 means no query compression).
  if (t.q_lora_rank() < 0) {
    c.Add(T("q_lora_rank"), "OUT_OF_RANGE",
          absl::StrCat("q_lora_rank must be >= 0 (0 means no query compression), got ",
                       t.q_lora_rank(), "."));
  }
  c.Positive(T("kv_lora_rank"), "kv_lora_rank", t.kv_lora_rank());
  c.Positive(T("qk_head_dim"), "qk_head_dim", t.qk_head_dim());
  c.Positive(T("qk_pos_emb_head_dim"), "qk_pos_emb_head_dim", t.qk_pos_emb_head_dim());
  c.Positive(T("v_head_dim"), "v_head_dim", t.v_head_dim());
  // MLA_ROPE (ours): the rotated part of each head is qk_pos_emb_head_dim wide (times
  // rotary_percent for rope), rotated in pairs.
  const double percent = t.rope_type() == "rope" ? config.rotary_percent() : 1.0;
  const int64_t rotary_dim = static_cast<int64_t>(t.qk_pos_emb_head_dim() * percent);
  if (t.qk_pos_emb_head_dim() > 0 && (rotary_dim <= 0 || rotary_dim % 2 != 0)) {
    c.Add(T("qk_pos_emb_head_dim"), "ODD_ROTARY_DIM",
          absl::StrCat("qk_pos_emb_head_dim (", t.qk_pos_emb_head_dim(), ")",
                       t.rope_type() == "rope"
                           ? absl::StrCat(" * rotary_percent (", config.rotary_percent(), ")")
                           : "",
                       " gives ", rotary_dim,
                       " rotary dimensions; it must be a positive even number."));
  }
  if (rope_ok && t.rope_type() == "yarn") {
    if (!(t.rotary_scaling_factor() > 0)) {
      c.Add(T("rotary_scaling_factor"), "OUT_OF_RANGE",
            absl::StrCat("rotary_scaling_factor must be > 0 for YaRN, got ",
                         t.rotary_scaling_factor(), "."));
    }
    c.Positive(T("original_max_position_embeddings"), "original_max_position_embeddings",
               t.original_max_position_embeddings());
    if (!(t.beta_fast() > 0) || !(t.beta_slow() > 0)) {
      c.Add(T("beta_fast"), "OUT_OF_RANGE",
            absl::StrCat("beta_fast and beta_slow must be > 0 for YaRN, got ", t.beta_fast(),
                         " and ", t.beta_slow(), "."));
    }
    // MLA_IGNORED (ours): MLA's YarnRotaryEmbedding rotates the whole qk_pos_emb_head_dim.
    if (config.rotary_percent() != 1.0) {
      c.Add("rotary_percent", "MLA_IGNORED",
            "MLA with rope_type 'yarn' rotates all qk_pos_emb_head_dim channels (Megatron ignores "
            "rotary_percent there); set rotary_percent: 1.0 or rope_type: rope.");
    }
  }
  // MLA_IGNORED (ours): MLA computes its own positions and softmax scale; GPTModel-level
  // settings Megatron would silently skip are refused instead.
  const std::string& position = config.position_embedding_type();
  if (position == "yarn" || position == "mrope") {
    c.Add("position_embedding_type", "MLA_CONFLICT",
          absl::StrCat("position_embedding_type '", position,
                       "' cannot be combined with multi_latent_attention (MLA applies its own "
                       "rotary embedding, chosen by rope_type); use 'rope'."));
  }
  if (config.rope_scaling()) {
    c.Add("rope_scaling", "MLA_IGNORED",
          "rope_scaling (Llama 3.1 frequency scaling) does not apply to MLA's rotary embedding; "
          "set rope_scaling: false (MLA scales positions with rope_type: yarn).");
  }
  if (config.has_seq_len_interpolation_factor()) {
    c.Add("seq_len_interpolation_factor", "MLA_IGNORED",
          "seq_len_interpolation_factor does not apply to MLA's rotary embedding; unset it.");
  }
  if (t.has_softmax_scale()) {
    c.Add(T("softmax_scale"), "MLA_IGNORED",
          "MLA sets its own softmax scale (YaRN mscale^2 / sqrt(qk_head_dim + "
          "qk_pos_emb_head_dim)); unset softmax_scale.");
  }
  // UNSUPPORTED (ours): attention variants this builder does not compute for MLA.
  if (t.softmax_type() != "vanilla") {
    c.Add(T("softmax_type"), "UNSUPPORTED",
          "multi-latent attention is built with the vanilla softmax only; set softmax_type: "
          "vanilla.");
  }
  if (t.window_size_size() > 0) {
    c.Add(T("window_size"), "UNSUPPORTED",
          "multi-latent attention is built with full causal attention only; unset window_size.");
  }
  // MLA_SPEC (Megatron's QKNormConfigResolver for the named specs): the local spec's explicit
  // q_layernorm has no query compression to normalise; ModelOpt's spec always has q/kv norms.
  const gptbuilder::v1::LayerSpec& spec = config.transformer_layer_spec();
  const std::string name = spec.has_name() ? spec.name() : "default";
  const bool modelopt =
      name == "modelopt" || (name == "default" && config.restore_modelopt_state());
  if (name == "local" && t.qk_layernorm() && t.q_lora_rank() == 0) {
    c.Add(T("q_lora_rank"), "MLA_SPEC",
          "the local spec's q_layernorm needs query compression: with qk_layernorm, set "
          "q_lora_rank > 0 or use transformer_layer_spec: transformer_engine (which fuses an "
          "extra query norm into linear_q_proj).");
  }
  if (modelopt && (!t.qk_layernorm() || t.q_lora_rank() == 0)) {
    c.Add(T("qk_layernorm"), "MLA_SPEC",
          "the ModelOpt spec builds MLA with q and kv norms: it needs qk_layernorm: true and "
          "q_lora_rank > 0.");
  }
  if (t.qk_layernorm() && t.transformer_impl() == "local" && name != "local" && !modelopt) {
    c.Add(T("transformer_impl"), "MLA_SPEC",
          "MLA with qk_layernorm fuses its norms into Transformer Engine linears; use "
          "transformer_impl: transformer_engine or transformer_layer_spec: local.");
  }
  // MLA_NOT_DIVISIBLE_BY_TP (Megatron's divide()): the local spec splits the down projections'
  // outputs across tensor-parallel ranks.
  if (s.ok && name == "local" && s.tp > 1) {
    if (t.q_lora_rank() > 0 && t.q_lora_rank() % s.tp != 0) {
      c.Add(T("q_lora_rank"), "MLA_NOT_DIVISIBLE_BY_TP",
            absl::StrCat("the local spec splits linear_q_down_proj across tensor-parallel ranks: "
                         "q_lora_rank (",
                         t.q_lora_rank(), ") must be divisible by tensor_model_parallel_size (",
                         s.tp, ")."));
    }
    const int64_t kv = int64_t{t.kv_lora_rank()} + t.qk_pos_emb_head_dim();
    if (kv % s.tp != 0) {
      c.Add(T("kv_lora_rank"), "MLA_NOT_DIVISIBLE_BY_TP",
            absl::StrCat("the local spec splits linear_kv_down_proj across tensor-parallel ranks: "
                         "kv_lora_rank + qk_pos_emb_head_dim (",
                         kv, ") must be divisible by tensor_model_parallel_size (", s.tp, ")."));
    }
  }
}

// YaRN for standard attention: GPTModel's YarnRotaryEmbedding, fed the yarn_* attributes.
void CheckYarn(const GPTModelConfig& config, Checker& c) {
  const TransformerConfig& t = config.transformer();
  const TransformerConfig& d = TransformerConfig::default_instance();
  const bool yarn = config.position_embedding_type() == "yarn" && !t.multi_latent_attention();
  if (!yarn) {
    // YARN_UNUSED (ours): Megatron reads the yarn_* attributes only for YaRN positions (and its
    // attention would apply their concentration factor to any rotary embedding if they were
    // set); a value that changes nothing is refused rather than ignored.
    const std::pair<const char*, bool> fields[] = {
        {"yarn_rotary_scaling_factor",
         t.yarn_rotary_scaling_factor() != d.yarn_rotary_scaling_factor()},
        {"yarn_original_max_position_embeddings",
         t.yarn_original_max_position_embeddings() != d.yarn_original_max_position_embeddings()},
        {"yarn_beta_fast", t.yarn_beta_fast() != d.yarn_beta_fast()},
        {"yarn_beta_slow", t.yarn_beta_slow() != d.yarn_beta_slow()},
        {"yarn_mscale", t.yarn_mscale() != d.yarn_mscale()},
        {"yarn_mscale_all_dim", t.yarn_mscale_all_dim() != d.yarn_mscale_all_dim()},
        {"yarn_correction_range_round_to_int",
         t.yarn_correction_range_round_to_int() != d.yarn_correction_range_round_to_int()},
    };
    for (const auto& [field, set] : fields) {
      if (!set) continue;
      c.Add(T(field), "YARN_UNUSED",
            absl::StrCat(field, " is read only with position_embedding_type: yarn",
                         t.multi_latent_attention()
                             ? " (multi-latent attention uses rope_type: yarn and "
                               "rotary_scaling_factor, beta_fast, ... instead)"
                             : "",
                         "; leave it at its default or set position_embedding_type: yarn."));
    }
    return;
  }
  // OUT_OF_RANGE (ours): YaRN's frequencies divide by these and take their logarithms.
  if (!(t.yarn_rotary_scaling_factor() > 0)) {
    c.Add(T("yarn_rotary_scaling_factor"), "OUT_OF_RANGE",
          absl::StrCat("yarn_rotary_scaling_factor must be > 0, got ",
                       t.yarn_rotary_scaling_factor(), "."));
  }
  c.Positive(T("yarn_original_max_position_embeddings"), "yarn_original_max_position_embeddings",
             t.yarn_original_max_position_embeddings());
  if (!(t.yarn_beta_fast() > 0) || !(t.yarn_beta_slow() > 0)) {
    c.Add(T("yarn_beta_fast"), "OUT_OF_RANGE",
          absl::StrCat("yarn_beta_fast and yarn_beta_slow must be > 0, got ", t.yarn_beta_fast(),
                       " and ", t.yarn_beta_slow(), "."));
  }
  // YARN_IGNORED (ours): YarnRotaryEmbedding rotates all kv_channels and ignores rotary_percent,
  // sequence-length interpolation and Llama-3.1 scaling; Megatron asserts on interleaving.
  if (config.rotary_percent() != 1.0) {
    c.Add("rotary_percent", "YARN_IGNORED",
          "YaRN rotates all kv_channels (Megatron's YarnRotaryEmbedding ignores rotary_percent); "
          "set rotary_percent: 1.0.");
  }
  if (config.has_seq_len_interpolation_factor()) {
    c.Add("seq_len_interpolation_factor", "YARN_IGNORED",
          "YaRN does not interpolate positions by seq_len_interpolation_factor (it scales "
          "frequencies by yarn_rotary_scaling_factor); unset it.");
  }
  if (config.rope_scaling()) {
    c.Add("rope_scaling", "YARN_IGNORED",
          "rope_scaling (Llama 3.1 frequency scaling) does not apply to YaRN; set rope_scaling: "
          "false.");
  }
  if (t.rotary_interleaved()) {
    c.Add(T("rotary_interleaved"), "YARN_INTERLEAVED",
          "YaRN RoPE does not support interleaved rotary embeddings (Megatron asserts); set "
          "rotary_interleaved: false.");
  }
}

void CheckPrecision(const TransformerConfig& t, Checker& c) {
  // FP16_AND_BF16 (Megatron).
  if (t.fp16() && t.bf16()) {
    c.Add(T("bf16"), "CONFLICT", "Only one of fp16 and bf16 can be true; set the other to false.");
  }
  // INVALID_VALUE / FP8_* / FP4_* (Megatron).
  if (t.has_fp8()) c.OneOf(T("fp8"), "fp8", t.fp8(), Fp8FormatValues());
  if (t.has_fp4()) c.OneOf(T("fp4"), "fp4", t.fp4(), Fp4FormatValues());
  if (t.fp8_param() && !t.has_fp8()) {
    c.Add(T("fp8_param"), "FP8_PARAM_WITHOUT_FP8",
          "fp8_param must be used together with fp8 mode; set fp8 (e4m3 or hybrid) or "
          "fp8_param: false.");
  }
  if (t.fp4_param() && !t.has_fp4()) {
    c.Add(T("fp4_param"), "FP4_PARAM_WITHOUT_FP4",
          "fp4_param must be used together with fp4 mode; set fp4: e2m1 or fp4_param: false.");
  }
  if (t.has_fp4() && t.has_fp8()) {
    c.Add(T("fp4"), "CONFLICT", "fp4 and fp8 cannot be used simultaneously. Please choose one.");
  }
}

// INVALID_WINDOW_SIZE / INVALID_WINDOW_ATTN_SKIP_FREQ (ours). Megatron's window_size is a
// (left, right) pair where -1 means unbounded, but its local DotProductAttention and Transformer
// Engine only agree on [left >= 0, 0]: the local sliding-window mask replaces the causal mask
// (right > 0 lets a token see later tokens, left = -1 masks every key), while Transformer Engine
// keeps the causal mask (right reset to 0, left = -1 unbounded). Only the agreed form is
// accepted. window_attn_skip_freq: Megatron's int N (layer l slides iff l % N != 0; 0 divides by
// zero) or 0/1 list indexed by layer_number - 1 (also by MTP depth).
void CheckSlidingWindow(const TransformerConfig& t, Checker& c) {
  if (t.window_size_size() != 0) {
    if (t.window_size_size() != 2) {
      c.Add(T("window_size"), "INVALID_WINDOW_SIZE",
            absl::StrCat("window_size must be two integers [left, right] (or null for full "
                         "attention), got ",
                         t.window_size_size(), " values."));
    } else if (t.window_size(0) < 0) {
      c.Add(T("window_size"), "INVALID_WINDOW_SIZE",
            absl::StrCat("window_size left must be >= 0, got ", t.window_size(0),
                         ": Megatron's local attention masks every key for -1 while Transformer "
                         "Engine reads it as unbounded; for full attention leave window_size "
                         "unset (null)."));
    } else if (t.window_size(1) != 0) {
      c.Add(T("window_size"), "INVALID_WINDOW_SIZE",
            absl::StrCat("window_size right must be 0 for a causal GPT, got ", t.window_size(1),
                         ": Megatron's local attention would let each token see that many later "
                         "tokens (its window mask replaces the causal mask) while Transformer "
                         "Engine resets it to 0; use [",
                         t.window_size(0), ", 0]."));
    }
  }
  const auto& freq = t.window_attn_skip_freq();
  if (freq.size() == 1) {
    if (freq[0] < 1) {
      c.Add(T("window_attn_skip_freq"), "INVALID_WINDOW_ATTN_SKIP_FREQ",
            absl::StrCat("window_attn_skip_freq as one integer N means \"every N-th layer attends "
                         "fully, the others through window_size\"; N must be >= 1, got ",
                         freq[0], " (a list needs one 0/1 entry per decoder layer)."));
    } else if (freq[0] == 1 && t.num_layers() == 1) {
      c.Add(T("window_attn_skip_freq"), "INVALID_WINDOW_ATTN_SKIP_FREQ",
            "window_attn_skip_freq 1 with one decoder layer is ambiguous here (one value is "
            "read as Megatron's int, so the layer attends fully; Megatron's list [1] would make "
            "it slide): leave window_size unset for full attention, or use 2 to slide.");
    }
  } else if (freq.size() > 1) {
    if (freq.size() != t.num_layers()) {
      c.Add(T("window_attn_skip_freq"), "INVALID_WINDOW_ATTN_SKIP_FREQ",
            absl::StrCat("window_attn_skip_freq as a list needs one 0/1 entry per decoder layer "
                         "(1 = sliding window): ",
                         t.num_layers(), " entries, got ", freq.size(), "."));
    } else if (t.has_mtp_num_layers() && t.mtp_num_layers() > freq.size()) {
      c.Add(T("window_attn_skip_freq"), "INVALID_WINDOW_ATTN_SKIP_FREQ",
            absl::StrCat("window_attn_skip_freq as a list also gives MTP depth d entry d - 1 (as "
                         "Megatron numbers MTP layers from 1), so it needs at least "
                         "mtp_num_layers (",
                         t.mtp_num_layers(), ") entries."));
    }
    for (int i = 0; i < freq.size(); ++i) {
      if (freq[i] != 0 && freq[i] != 1) {
        c.Add(absl::StrCat(T("window_attn_skip_freq"), "[", i, "]"),
              "INVALID_WINDOW_ATTN_SKIP_FREQ",
              absl::StrCat("window_attn_skip_freq list entries must be 0 (full attention) or 1 "
                           "(sliding window), got ",
                           freq[i], "."));
      }
    }
  }
}

void CheckNormsActivationsFusions(const TransformerConfig& t, Checker& c) {
  // INVALID_VALUE (Megatron's Literal / string comparisons).
  const bool norm_ok =
      c.OneOf(T("normalization"), "normalization", t.normalization(), NormalizationValues());
  c.OneOf(T("softmax_type"), "softmax_type", t.softmax_type(), SoftmaxTypeValues());
  c.OneOf(T("transformer_impl"), "transformer_impl", t.transformer_impl(), TransformerImplValues());
  const std::string& act = t.activation_func();
  // DROPOUT_RANGE (ours): torch's dropout rejects probabilities outside [0, 1] in the forward.
  const std::pair<const char*, double> dropouts[] = {{"hidden_dropout", t.hidden_dropout()},
                                                     {"attention_dropout", t.attention_dropout()}};
  for (const auto& [name, value] : dropouts) {
    if (!(value >= 0.0 && value <= 1.0)) {
      c.Add(T(name), "OUT_OF_RANGE",
            absl::StrCat(name, " must be a probability in [0, 1], got ", value, "."));
    }
  }
  // OUT_OF_RANGE (ours): a negative epsilon or init std is never meaningful (torch's normal_
  // raises on std < 0 when the weights are initialised).
  if (!(t.layernorm_epsilon() >= 0.0)) {
    c.Add(T("layernorm_epsilon"), "OUT_OF_RANGE",
          absl::StrCat("layernorm_epsilon must be >= 0, got ", t.layernorm_epsilon(), "."));
  }
  if (!(t.init_method_std() >= 0.0)) {
    c.Add(T("init_method_std"), "OUT_OF_RANGE",
          absl::StrCat("init_method_std must be >= 0, got ", t.init_method_std(), "."));
  }
  if (!(t.embedding_init_method_std() >= 0.0)) {
    c.Add(T("embedding_init_method_std"), "OUT_OF_RANGE",
          absl::StrCat("embedding_init_method_std must be >= 0, got ",
                       t.embedding_init_method_std(), "."));
  }
  if (t.has_softmax_scale() && !(t.softmax_scale() > 0.0)) {
    c.Add(T("softmax_scale"), "OUT_OF_RANGE",
          absl::StrCat("softmax_scale must be > 0 (or unset for 1/sqrt(kv_channels)), got ",
                       t.softmax_scale(), "."));
  }
  // BIAS_ACTIVATION_FUSION_* (Megatron).
  if (t.bias_activation_fusion()) {
    if (act != "gelu" && act != "silu" && act != "quick_gelu") {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_CONFLICT",
            "When bias_activation_fusion is True, activation function should be either gelu, "
            "swiglu, or quick_geglu (activation_func gelu, silu or quick_gelu).");
    }
    if (act == "gelu" && !t.gated_linear_unit() && !t.add_bias_linear()) {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_CONFLICT",
            "When bias_activation_fusion is True, gated_linear_unit is False and activation "
            "function is gelu, add_bias_linear must also be True.");
    }
    if (act == "quick_gelu" && !t.gated_linear_unit()) {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_CONFLICT",
            "When bias_activation_fusion is True and activation function is quick_gelu, "
            "gated_linear_unit must be True.");
    }
    if (t.glu_linear_offset() != 0.0 && act != "quick_gelu") {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_CONFLICT",
            "When bias_activation_fusion is True and glu_linear_offset is non-zero, activation "
            "function must be quick_gelu.");
    }
    if (t.use_te_activation_func()) {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_CONFLICT",
            "bias_activation_fusion and use_te_activation_func cannot be both true.");
    }
    // BIAS_ACTIVATION_FUSION_UNSUPPORTED (ours): what Megatron's config accepts but its forward
    // raises on. The dense MLP (and shared experts) fuses only GELU / GeGLU and SwiGLU ("Only
    // support fusion of gelu and swiglu"); expert MLPs, which always scale by the routing
    // probabilities, only SwiGLU and quick-GeGLU. (With gelu the fused kernels compute the tanh
    // approximation, and the model does too.)
    const bool moe = t.has_num_moe_experts() && t.num_moe_experts() > 0;
    const bool dense_mlps =
        !moe || IsMixedDenseMoe(t) || t.has_moe_shared_expert_intermediate_size();
    const bool gated = t.gated_linear_unit();
    if (dense_mlps && act != "gelu" && !(gated && act == "silu")) {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
            absl::StrCat("Megatron's MLP fuses only gelu and SwiGLU (silu with "
                         "gated_linear_unit) and raises for activation_func ",
                         act, gated ? " (gated)" : "",
                         " with bias_activation_fusion; set bias_activation_fusion: false."));
    }
    if (moe && !(gated && (act == "silu" || act == "quick_gelu"))) {
      c.Add(T("bias_activation_fusion"), "BIAS_ACTIVATION_FUSION_UNSUPPORTED",
            absl::StrCat("Megatron's expert MLPs fuse only SwiGLU and quick-GeGLU (silu or "
                         "quick_gelu with gated_linear_unit) and raise for activation_func ",
                         act, gated ? " (gated)" : "",
                         " with bias_activation_fusion; set bias_activation_fusion: false."));
    }
  }
  // FUSED_RESIDUAL_RMSNORM (Megatron).
  if (t.fused_residual_rmsnorm() && norm_ok && t.normalization() != "RMSNorm") {
    c.Add(T("fused_residual_rmsnorm"), "CONFLICT",
          "fused_residual_rmsnorm is only supported when normalization is RMSNorm.");
  }
  // TE_ACTIVATION (Megatron).
  if (t.use_te_activation_func() && act != "gelu" && act != "silu" && act != "relu") {
    c.Add(T("use_te_activation_func"), "CONFLICT",
          "TransformerEngine only support gelu, geglu, silu, swiglu, relu, reglu; use one of "
          "those activations or set use_te_activation_func: false.");
  }
  // FP8_INPUT_STORE (Megatron).
  if (t.activation_func_fp8_input_store() && !(act == "silu" && t.gated_linear_unit())) {
    c.Add(T("activation_func_fp8_input_store"), "CONFLICT",
          "Storing activation input in FP8 is supported only for SwiGLU (activation_func silu "
          "with gated_linear_unit: true).");
  }
  // SWIGLU_CLAMP (Megatron): the clamped SwiGLU is a MoE-only variant.
  if (t.has_activation_func_clamp_value() && act == "silu" && t.gated_linear_unit()) {
    const double v = t.activation_func_clamp_value();
    if (!std::isfinite(v) || v <= 0) {
      c.Add(T("activation_func_clamp_value"), "OUT_OF_RANGE",
            "activation_func_clamp_value for SwiGLU must be finite and greater than zero.");
    }
    if (!t.has_num_moe_experts()) {
      c.Add(T("activation_func_clamp_value"), "CONFLICT",
            "activation_func_clamp_value for SwiGLU is only supported with MoE.");
    }
    if (t.glu_linear_offset() != 0.0) {
      c.Add(T("glu_linear_offset"), "CONFLICT",
            "glu_linear_offset must be zero when activation_func_clamp_value is set for SwiGLU.");
    }
    if (t.use_te_activation_func()) {
      c.Add(T("use_te_activation_func"), "CONFLICT",
            "use_te_activation_func must be False when activation_func_clamp_value is not None "
            "for SwiGLU");
    }
  }
  // INFERENCE_OPTIMIZED (Megatron asserts).
  if (t.transformer_impl() == "inference_optimized") {
    if (t.normalization() != "RMSNorm" || t.layernorm_zero_centered_gamma() ||
        t.add_bias_linear() || t.add_qkv_bias()) {
      c.Add(T("transformer_impl"), "INFERENCE_OPTIMIZED_CONFLICT",
            "transformer_impl 'inference_optimized' needs normalization RMSNorm, "
            "layernorm_zero_centered_gamma false, add_bias_linear false and add_qkv_bias false.");
    }
  }
  CheckSlidingWindow(t, c);
}

void CheckRecomputeOffloadGraphs(const TransformerConfig& t, Checker& c) {
  // CPU_OFFLOADING_* (Megatron).
  if (t.cpu_offloading()) {
    if (t.cpu_offloading_num_layers() < 0 || t.cpu_offloading_num_layers() >= t.num_layers()) {
      c.Add(T("cpu_offloading_num_layers"), "OUT_OF_RANGE",
            absl::StrCat("CPU offloading can be done only for layers less than ", t.num_layers(),
                         "; set cpu_offloading_num_layers in [0, ", t.num_layers(), ")."));
    }
    if (t.pipeline_model_parallel_size() > 1) {
      c.Add(T("cpu_offloading"), "CONFLICT",
            "Currently there is no support for Pipeline parallelism with CPU offloading.");
    }
    if (t.has_recompute_granularity()) {
      c.Add(T("cpu_offloading"), "CONFLICT",
            "CPU offloading does not work when activation recomputation is enabled.");
    }
  }
  // RECOMPUTE_* (Megatron).
  if (t.has_recompute_granularity() &&
      c.OneOf(T("recompute_granularity"), "recompute_granularity", t.recompute_granularity(),
              RecomputeGranularityValues())) {
    const bool selective = t.recompute_granularity() == "selective";
    if (t.has_recompute_method()) {
      c.OneOf(T("recompute_method"), "recompute_method", t.recompute_method(),
              RecomputeMethodValues());
    } else if (!selective) {
      c.Add(T("recompute_method"), "RECOMPUTE_CONFLICT",
            "Using recompute_granularity: full so recompute_method must be \"block\" or "
            "\"uniform\".");
    }
    if (!selective && !t.has_recompute_num_layers()) {
      c.Add(T("recompute_num_layers"), "RECOMPUTE_CONFLICT",
            absl::StrCat("When using recompute_granularity: full recompute_num_layers must be "
                         "between 1 and num_layers_per_pipeline_rank: ",
                         t.pipeline_model_parallel_size() > 0
                             ? t.num_layers() / t.pipeline_model_parallel_size()
                             : t.num_layers(),
                         "."));
    } else if (selective && t.has_recompute_num_layers()) {
      c.Add(T("recompute_num_layers"), "RECOMPUTE_CONFLICT",
            "When using recompute_granularity: selective recompute_num_layers must be None.");
    }
    if (t.distribute_saved_activations() && t.sequence_parallel()) {
      c.Add(T("distribute_saved_activations"), "CONFLICT",
            "distribute_saved_activations must be false when sequence parallel is enabled.");
    }
  }
  // CUDA graphs (Megatron's assert, then Bridge's finalize step 2 with its exact text).
  if (c.OneOf(T("cuda_graph_impl"), "cuda_graph_impl", t.cuda_graph_impl(),
              CudaGraphImplValues()) &&
      t.cuda_graph_impl() != "none") {
    if (t.cpu_offloading() && t.cuda_graph_impl() != "full_iteration") {
      c.Add(T("cuda_graph_impl"), "CONFLICT", "CUDA graphs not supported with CPU offloading.");
    }
    if (!t.use_te_rng_tracker()) {
      c.Add(T("use_te_rng_tracker"), "CUDA_GRAPH_NEEDS_TE_RNG_TRACKER",
            "Transformer engine's RNG tracker is required for cudagraphs, it can be enabled with "
            "use_te_rng_tracker=True'.");
    }
  }
}

// Each problem core/plan finds with the pipeline split, as a field violation.
void AddSplitProblems(const std::vector<plan::PipelineSplitProblem>& problems, Checker& c) {
  for (const plan::PipelineSplitProblem& p : problems) c.Add(T(p.field), p.reason, p.message);
}

// pipeline_model_parallel_layout (Megatron's PipelineParallelLayerLayout): the grammar, the
// layer counts and MTP placement (core/plan's CheckLayoutString), and the virtual pipeline size
// the layout implies, which Megatron sets when it is > 1 and vp is unset.
void ApplyPipelineLayout(TransformerConfig* t, Checker& c) {
  std::vector<plan::PipelineSplitProblem> problems;
  const std::optional<plan::PipelineLayoutString> layout = plan::CheckLayoutString(*t, &problems);
  AddSplitProblems(problems, c);
  if (!layout.has_value()) return;
  const int detected = layout->virtual_pipeline_model_parallel_size;
  if (t->has_virtual_pipeline_model_parallel_size()) {
    if (t->virtual_pipeline_model_parallel_size() != detected) {
      c.Add(
          T("virtual_pipeline_model_parallel_size"), "LAYOUT_VP_CONFLICT",
          absl::StrCat("virtual_pipeline_model_parallel_size (",
                       t->virtual_pipeline_model_parallel_size(), ") conflicts with the ", detected,
                       " virtual stages of pipeline_model_parallel_layout; remove it "
                       "or set it to ",
                       detected, "."));
    }
  } else if (detected > 1) {
    t->set_virtual_pipeline_model_parallel_size(detected);
  }
}

// Which pipeline-split options go together; the split's arithmetic is core/plan's
// CheckPipelineSplit.
void CheckPipelineSplit(const TransformerConfig& t, const Sizes& s, Checker& c) {
  const bool has_first = t.has_num_layers_in_first_pipeline_stage();
  const bool has_last = t.has_num_layers_in_last_pipeline_stage();
  const bool account =
      t.account_for_embedding_in_pipeline_split() || t.account_for_loss_in_pipeline_split();
  const bool has_layout = t.has_pipeline_model_parallel_layout();
  // PIPELINE_SPLIT_CONFLICT (Megatron): one way of splitting at a time.
  if ((has_first || has_last) && account) {
    c.Add(T("num_layers_in_first_pipeline_stage"), "PIPELINE_SPLIT_CONFLICT",
          "num_layers_in_first_pipeline_stage and num_layers_in_last_pipeline_stage cannot be set "
          "at the same time with account_for_embedding_in_pipeline_split and "
          "account_for_loss_in_pipeline_split; use one of the two.");
  }
  // MTP_NUM_LAYERS (ours): a count of extra prediction depths.
  if (t.has_mtp_num_layers() && t.mtp_num_layers() < 0) {
    c.Add(T("mtp_num_layers"), "OUT_OF_RANGE",
          absl::StrCat("mtp_num_layers must be >= 0 (or unset for no multi-token prediction), "
                       "got ",
                       t.mtp_num_layers(), "."));
  }
  if (!s.ok || t.num_layers() <= 0) return;
  if (has_layout) {
    // EMPTY_LAYOUT (ours).
    if (absl::StripAsciiWhitespace(t.pipeline_model_parallel_layout()).empty()) {
      c.Add(T("pipeline_model_parallel_layout"), "EMPTY_LAYOUT",
            "pipeline_model_parallel_layout must not be empty; remove it or give a layout such "
            "as \"E|t*4|t*4,L\".");
    }
    // LAYOUT_CONFLICT (Megatron).
    if (has_first || has_last || account) {
      c.Add(T("pipeline_model_parallel_layout"), "LAYOUT_CONFLICT",
            "pipeline_model_parallel_layout cannot be set with other pipeline layout arguments "
            "(num_layers_in_first/last_pipeline_stage, account_for_embedding/loss_in_pipeline_"
            "split); remove those or the layout.");
    }
  }
  AddSplitProblems(plan::CheckPipelineSplit(t), c);
}

void CheckMoe(const TransformerConfig& t, const Sizes& s, const Given& given, Checker& c) {
  const bool moe = t.has_num_moe_experts();
  const int64_t experts = t.num_moe_experts();
  // INVALID_VALUE (Megatron Literals).
  c.OneOf(T("moe_router_load_balancing_type"), "moe_router_load_balancing_type",
          t.moe_router_load_balancing_type(), MoeLoadBalancingTypeValues());
  c.OneOf(T("moe_router_score_function"), "moe_router_score_function",
          t.moe_router_score_function(), MoeScoreFunctionValues());
  c.OneOf(T("moe_token_dispatcher_type"), "moe_token_dispatcher_type",
          t.moe_token_dispatcher_type(), MoeTokenDispatcherTypeValues());
  c.OneOf(T("moe_token_drop_policy"), "moe_token_drop_policy", t.moe_token_drop_policy(),
          MoeTokenDropPolicyValues());
  if (t.has_moe_router_dtype()) {
    c.OneOf(T("moe_router_dtype"), "moe_router_dtype", t.moe_router_dtype(),
            MoeRouterDtypeValues());
  }
  // EP_WITHOUT_EXPERTS / NOT_POSITIVE (Megatron).
  if (s.ep > 1 && !moe) {
    c.Add(T("expert_model_parallel_size"), "EP_WITHOUT_EXPERTS",
          "num_moe_experts must be non None to use expert-parallel; set num_moe_experts or "
          "expert_model_parallel_size: 1.");
  }
  const bool experts_ok = moe && c.Positive(T("num_moe_experts"), "num_moe_experts", experts);
  // EXPERTS_NOT_DIVISIBLE_BY_EP (ours; Megatron's MoELayer asserts it when built).
  if (experts_ok && s.ok && experts % s.ep != 0) {
    c.Add(T("num_moe_experts"), "EXPERTS_NOT_DIVISIBLE_BY_EP",
          absl::StrCat("num_moe_experts (", experts,
                       ") must be divisible by "
                       "expert_model_parallel_size (",
                       s.ep,
                       "); expert_model_parallel_size "
                       "values that divide it: ",
                       DivisorList(experts), "."));
  }
  // MOE_FFN_NOT_DIVISIBLE_BY_ETP (ours): expert fc1/fc2 split moe_ffn_hidden_size over ETP.
  const bool moe_ffn_ok =
      experts_ok &&
      (given.moe_ffn_hidden_size
           ? c.Positive(T("moe_ffn_hidden_size"), "moe_ffn_hidden_size", t.moe_ffn_hidden_size())
           : t.moe_ffn_hidden_size() > 0);
  if (moe_ffn_ok && s.ok && t.moe_ffn_hidden_size() % s.etp != 0) {
    c.Add(T("moe_ffn_hidden_size"), "MOE_FFN_NOT_DIVISIBLE_BY_ETP",
          absl::StrCat("moe_ffn_hidden_size (", t.moe_ffn_hidden_size(),
                       ") must be divisible by expert_tensor_parallel_size (", s.etp, "), e.g. ",
                       NearestMultiples(t.moe_ffn_hidden_size(), s.etp), "."));
  }
  // MOE_BIAS_REQUIRES_ETP1 (Megatron assert).
  if (moe && t.add_bias_linear() && s.etp != 1) {
    c.Add(T("add_bias_linear"), "MOE_BIAS_REQUIRES_ETP1",
          absl::StrCat("Bias in Moe is only supported when ETP==1 (expert_tensor_parallel_size is ",
                       s.etp, "); set add_bias_linear: false or expert_tensor_parallel_size: 1."));
  }
  // ROUTER_TOPK_RANGE (ours): torch.topk fails when k exceeds the expert count.
  if (experts_ok && (t.moe_router_topk() < 1 || t.moe_router_topk() > experts)) {
    c.Add(T("moe_router_topk"), "OUT_OF_RANGE",
          absl::StrCat("moe_router_topk (", t.moe_router_topk(),
                       ") must be between 1 and "
                       "num_moe_experts (",
                       experts, ")."));
  }
  // ROUTER_TOPK1_SOFTMAX (Megatron).
  if (t.moe_router_topk() == 1 && t.moe_router_score_function() == "softmax" &&
      !t.moe_router_pre_softmax() && t.moe_router_load_balancing_type() != "sinkhorn") {
    c.Add(T("moe_router_pre_softmax"), "ROUTER_TOPK1_NEEDS_PRE_SOFTMAX",
          "Please use --moe-router-pre-softmax when topk is 1 (set moe_router_pre_softmax: true).");
  }
  // EXPERT_BIAS_SCORE_FUNCTION (Megatron).
  if (t.moe_router_enable_expert_bias() && t.moe_router_score_function() != "sigmoid" &&
      t.moe_router_score_function() != "sqrtsoftplus") {
    c.Add(T("moe_router_enable_expert_bias"), "CONFLICT",
          "Expert bias for aux-loss-free routing only supports 'sigmoid' and 'sqrtsoftplus' score "
          "functions; set moe_router_score_function accordingly or unset "
          "moe_router_enable_expert_bias.");
  }
  // GROUP_LIMITED_ROUTING (Megatron).
  if (t.has_moe_router_group_topk() && t.moe_router_group_topk() != 0) {
    if (!t.has_moe_router_num_groups() || t.moe_router_num_groups() == 0) {
      c.Add(T("moe_router_num_groups"), "REQUIRED",
            "When using group limited routing, moe_router_num_groups must be specified.");
    } else if (c.Positive(T("moe_router_num_groups"), "moe_router_num_groups",
                          t.moe_router_num_groups())) {
      if (experts_ok && experts % t.moe_router_num_groups() != 0) {
        c.Add(T("moe_router_num_groups"), "NOT_DIVISIBLE",
              absl::StrCat("num_moe_experts (", experts,
                           ") should be divisible by "
                           "moe_router_num_groups (",
                           t.moe_router_num_groups(),
                           "); valid "
                           "values: ",
                           DivisorList(experts), "."));
      }
      if (t.moe_router_group_topk() > t.moe_router_num_groups()) {
        c.Add(T("moe_router_group_topk"), "OUT_OF_RANGE",
              absl::StrCat("moe_router_group_topk (", t.moe_router_group_topk(),
                           ") should be smaller than moe_router_num_groups (",
                           t.moe_router_num_groups(), ")."));
      } else if (experts_ok && experts % t.moe_router_num_groups() == 0 &&
                 (t.moe_router_topk() < t.moe_router_group_topk() ||
                  int64_t{t.moe_router_topk()} >
                      int64_t{t.moe_router_group_topk()} * (experts / t.moe_router_num_groups()))) {
        // OUT_OF_RANGE (ours): Megatron scores a group by its top (topk / group_topk) experts,
        // none when topk < group_topk (the groups are then chosen arbitrarily), and picks topk
        // experts among the chosen groups' ones (masked experts when there are fewer).
        c.Add(
            T("moe_router_topk"), "OUT_OF_RANGE",
            absl::StrCat("with group-limited routing moe_router_topk (", t.moe_router_topk(),
                         ") must be at least moe_router_group_topk (", t.moe_router_group_topk(),
                         ") and at most the experts of the chosen groups (",
                         int64_t{t.moe_router_group_topk()} * (experts / t.moe_router_num_groups()),
                         ")."));
      }
    }
  }
  // GROUPED_GEMM_* (Megatron).
  if (t.moe_use_grouped_tensor() && !t.moe_grouped_gemm()) {
    c.Add(T("moe_use_grouped_tensor"), "CONFLICT",
          "moe_use_grouped_tensor=True requires moe_grouped_gemm=True.");
  }
  if (t.moe_single_grouped_weight()) {
    if (!t.moe_grouped_gemm()) {
      c.Add(T("moe_single_grouped_weight"), "CONFLICT",
            "moe_single_grouped_weight and moe_single_grouped_bias require "
            "moe_grouped_gemm=True.");
    } else if (!t.moe_use_grouped_tensor()) {
      c.Add(T("moe_single_grouped_weight"), "CONFLICT",
            "moe_single_grouped_weight requires moe_use_grouped_tensor=True.");
    }
  }
  // SHARED_EXPERTS (Megatron; the TP divisibility is ours).
  if (t.has_moe_shared_expert_intermediate_size()) {
    const int64_t shared = t.moe_shared_expert_intermediate_size();
    if (shared <= 0) {
      c.Add(T("moe_shared_expert_intermediate_size"), "NOT_POSITIVE",
            absl::StrCat("moe_shared_expert_intermediate_size must be "
                         "num_shared_experts * ffn_size_of_each_shared_expert, but got ",
                         shared, "."));
    } else if (s.ok && shared % s.tp != 0) {
      c.Add(T("moe_shared_expert_intermediate_size"), "NOT_DIVISIBLE",
            absl::StrCat("moe_shared_expert_intermediate_size (", shared,
                         ") must be divisible by tensor_model_parallel_size (", s.tp, "), e.g. ",
                         NearestMultiples(shared, s.tp), "."));
    }
    if (t.moe_shared_expert_overlap() && t.moe_token_dispatcher_type() != "alltoall" &&
        t.moe_token_dispatcher_type() != "flex") {
      c.Add(T("moe_shared_expert_overlap"), "CONFLICT",
            "moe_shared_expert_overlap only works with alltoall or flex token dispatcher.");
    }
  }
  // CAPACITY_FACTOR (Megatron).
  if (t.has_moe_expert_capacity_factor()) {
    const std::string& lb = t.moe_router_load_balancing_type();
    if (lb != "aux_loss" && lb != "seq_aux_loss" && lb != "global_aux_loss" && lb != "none") {
      c.Add(T("moe_expert_capacity_factor"), "CONFLICT",
            "moe_expert_capacity_factor only works with aux_loss, seq_aux_loss, global_aux_loss "
            "or none load balancing.");
    }
  }
  if (t.moe_pad_expert_input_to_capacity() && !t.has_moe_expert_capacity_factor()) {
    c.Add(T("moe_pad_expert_input_to_capacity"), "CONFLICT",
          "moe_expert_capacity_factor must be set to use moe_pad_expert_input_to_capacity.");
  }
  // ALLGATHER_VARIABLE_SEQ (Megatron).
  if (t.moe_token_dispatcher_type() == "allgather" && t.variable_seq_lengths()) {
    c.Add(T("variable_seq_lengths"), "CONFLICT",
          "Token dispatcher type: allgather does not support variable sequence length, please use "
          "alltoall dispatcher instead.");
  }
  // FLEX_DISPATCHER (Megatron's MoEFlexTokenDispatcher asserts it with its default DeepEP
  // backend): the flex dispatcher spans the expert tp x ep group. The dispatchers move the same
  // tokens to the same experts, so allgather, alltoall and flex compute the same function.
  if (moe && t.moe_token_dispatcher_type() == "flex" && s.ok && s.etp * s.ep <= 1) {
    c.Add(T("moe_token_dispatcher_type"), "CONFLICT",
          "DeepEP dispatcher requires TPxEP > 1: the flex token dispatcher needs "
          "expert_tensor_parallel_size * expert_model_parallel_size > 1; use allgather or "
          "alltoall.");
  }
  // MOE_LAYER_FREQ (ours): an int N >= 1 (layer i is MoE iff i % N == 0) or a 0/1 list with one
  // entry per decoder layer (Megatron indexes it by global layer number).
  if (t.moe_layer_freq_size() == 1) {
    if (t.moe_layer_freq(0) < 1) {
      c.Add(T("moe_layer_freq"), "INVALID_MOE_LAYER_FREQ",
            absl::StrCat("moe_layer_freq as one integer N means \"layer i is MoE iff i % N == 0\" "
                         "and must be >= 1, got ",
                         t.moe_layer_freq(0), "."));
    }
  } else {
    if (t.moe_layer_freq_size() != t.num_layers()) {
      c.Add(T("moe_layer_freq"), "INVALID_MOE_LAYER_FREQ",
            absl::StrCat("moe_layer_freq as a list needs one 0/1 entry per decoder layer: ",
                         t.num_layers(), " entries, got ", t.moe_layer_freq_size(), "."));
    }
    for (int i = 0; i < t.moe_layer_freq_size(); ++i) {
      if (t.moe_layer_freq(i) != 0 && t.moe_layer_freq(i) != 1) {
        c.Add(absl::StrCat(T("moe_layer_freq"), "[", i, "]"), "INVALID_MOE_LAYER_FREQ",
              absl::StrCat("moe_layer_freq list entries must be 0 (dense) or 1 (MoE), got ",
                           t.moe_layer_freq(i), "."));
      }
    }
  }
  // MOE_LATENT_SIZE (ours).
  if (t.has_moe_latent_size()) {
    c.Positive(T("moe_latent_size"), "moe_latent_size", t.moe_latent_size());
  }
}

// CUSTOM_LAYER_SPEC (ours): a custom tree is checked against the module registry (core/layer_spec):
// unknown modules and slots, missing required submodules, modules in slots that cannot hold
// them, q/k norms without qk_layernorm.
void CheckLayerSpec(const ModuleSpec& spec, const TransformerConfig& t, const std::string& path,
                    Violations* violations) {
  layer_spec::CheckCustomLayerSpec(*layer_spec::FromProto(spec), t, path, violations);
}

void CheckGptLevel(const GPTModelConfig& config, const Sizes& s, Checker& c) {
  const TransformerConfig& t = config.transformer();
  // VOCAB (ours, with Bridge's padding texts): the vocabulary must be known to build, and the
  // (padded or not) vocabulary is split evenly over TP ranks by VocabParallelEmbedding.
  if (!config.has_vocab_size()) {
    c.Add("vocab_size", "REQUIRED",
          "vocab_size must be configured before calling build_model(): set it to the tokenizer's "
          "(unpadded) vocabulary size.");
  } else if (config.vocab_size() <= 0) {
    c.Add("vocab_size", "NOT_POSITIVE",
          absl::StrCat("vocab_size must be positive, got ", config.vocab_size(), "."));
  }
  if (config.make_vocab_size_divisible_by() <= 0) {
    c.Add("make_vocab_size_divisible_by", "NOT_POSITIVE",
          absl::StrCat("make_vocab_size_divisible_by must be positive, got ",
                       config.make_vocab_size_divisible_by(), "."));
  }
  if (config.has_vocab_size() && config.vocab_size() > 0 && s.ok && !config.should_pad_vocab() &&
      config.vocab_size() % s.tp != 0) {
    std::string padded;
    if (config.make_vocab_size_divisible_by() > 0) {
      padded = absl::StrCat(" (pads to ",
                            *CalculatePaddedVocabSize(config.vocab_size(),
                                                      config.make_vocab_size_divisible_by(), s.tp),
                            ")");
    }
    c.Add("vocab_size", "VOCAB_NOT_DIVISIBLE_BY_TP",
          absl::StrCat("vocab_size (", config.vocab_size(),
                       ") must be divisible by "
                       "tensor_model_parallel_size (",
                       s.tp,
                       ") when should_pad_vocab is false; "
                       "set should_pad_vocab: true",
                       padded,
                       " or a tensor_model_parallel_size "
                       "that divides it (",
                       DivisorList(config.vocab_size()), ")."));
  }
  // SEQ_LENGTH (ours): the position table and the rotary cache are sized by it.
  c.Positive("seq_length", "seq_length", config.seq_length());
  // INVALID_VALUE (Bridge's Literal).
  const bool pos_ok = c.OneOf("position_embedding_type", "position_embedding_type",
                              config.position_embedding_type(), PositionEmbeddingTypeValues());
  // ROTARY (ours): Megatron's RotaryEmbedding uses int(kv_channels * rotary_percent) dims and
  // crashes in the forward when that is 0 or odd.
  if (!(config.rotary_percent() > 0.0 && config.rotary_percent() <= 1.0)) {
    c.Add("rotary_percent", "OUT_OF_RANGE",
          absl::StrCat("rotary_percent must be in (0, 1], got ", config.rotary_percent(), "."));
  } else if (pos_ok && !t.multi_latent_attention() && t.kv_channels() > 0 &&
             (config.position_embedding_type() == "rope" ||
              config.position_embedding_type() == "yarn" ||
              config.position_embedding_type() == "mrope")) {
    const int64_t dim = static_cast<int64_t>(t.kv_channels() * config.rotary_percent());
    if (dim <= 0 || dim % 2 != 0) {
      c.Add("rotary_percent", "ODD_ROTARY_DIM",
            absl::StrCat("kv_channels (", t.kv_channels(), ") * rotary_percent (",
                         config.rotary_percent(), ") gives ", dim,
                         " rotary dimensions; it must be a positive even number."));
    }
  }
  c.Positive("rotary_base", "rotary_base", config.rotary_base());
  if (config.rope_scaling() && !(config.rope_scaling_factor() > 0.0)) {
    c.Add("rope_scaling_factor", "OUT_OF_RANGE",
          absl::StrCat("rope_scaling_factor must be > 0 when rope_scaling is on, got ",
                       config.rope_scaling_factor(), "."));
  }
  if (config.has_seq_len_interpolation_factor() && !(config.seq_len_interpolation_factor() > 0)) {
    c.Add("seq_len_interpolation_factor", "OUT_OF_RANGE",
          absl::StrCat("seq_len_interpolation_factor must be > 0 (or unset), got ",
                       config.seq_len_interpolation_factor(), "."));
  }
  // LAYER_SPEC (ours): a named spec function or a custom tree.
  const gptbuilder::v1::LayerSpec& spec = config.transformer_layer_spec();
  if (spec.has_name()) {
    c.OneOf("transformer_layer_spec", "transformer_layer_spec", spec.name(), LayerSpecNames());
  } else if (spec.has_custom()) {
    CheckLayerSpec(spec.custom(), t, "transformer_layer_spec.custom", c.violations());
  } else {
    c.Add("transformer_layer_spec", "INVALID_LAYER_SPEC",
          absl::StrCat("transformer_layer_spec must name a spec (", QuotedList(LayerSpecNames()),
                       ") or be a custom ModuleSpec tree."));
  }
  // SEQUENCE_PARALLEL_TORCH_NORM (Megatron's WrappedTorchNorm assert): torch's LayerNorm /
  // RMSNorm, which the local spec builds, cannot mark their parameters for the tensor-parallel
  // gradient reduction that sequence parallelism needs. Without tensor parallelism Finalize turns
  // sequence parallelism off (as Bridge does) before anything is built, so nothing asserts.
  if (t.sequence_parallel() && t.tensor_model_parallel_size() > 1) {
    if (std::optional<std::string> norm = layer_spec::FindTorchNorm(config)) {
      c.Add(T("sequence_parallel"), "SEQUENCE_PARALLEL_TORCH_NORM",
            absl::StrCat("sequence parallel not supported by torch LayerNorm: the layer spec "
                         "builds torch's norms (",
                         *norm,
                         "); use transformer_layer_spec transformer_engine (the default), whose "
                         "norms support it, or set sequence_parallel false."));
    }
  }
}

void CheckWorldSize(const Sizes& s, int64_t world, Checker& c) {
  // WORLD_SIZE_* (ours): Megatron's rank generator asserts these when the groups are created.
  if (!c.Positive("world_size", "world size", world) || !s.ok) return;
  const int64_t dense = s.tp * s.pp * s.cp;
  const bool dense_ok = world % dense == 0;
  if (!dense_ok) {
    c.Add("world_size", "WORLD_SIZE_NOT_DIVISIBLE",
          absl::StrCat("world size ", world,
                       " is not a multiple of tensor_model_parallel_size * "
                       "pipeline_model_parallel_size * context_parallel_size = ",
                       dense, " (tp ", s.tp, " x pp ", s.pp, " x cp ", s.cp,
                       "); valid world sizes are ", MultipleList(dense), "."));
  }
  const int64_t expert = s.etp * s.ep * s.pp;
  // When the expert grid divides the dense grid, fixing the dense one fixes both: say it once.
  const bool implied = !dense_ok && dense % expert == 0;
  if (world % expert != 0 && !implied) {
    c.Add("world_size", "EXPERT_WORLD_SIZE_NOT_DIVISIBLE",
          absl::StrCat("world size ", world,
                       " is not a multiple of expert_tensor_parallel_size * "
                       "expert_model_parallel_size * pipeline_model_parallel_size = ",
                       expert, " (etp ", s.etp, " x ep ", s.ep, " x pp ", s.pp,
                       "), the expert grid; "
                       "valid world sizes are ",
                       MultipleList(expert), "."));
  }
}

void PrefixViolations(const Violations& in, const std::string& prefix, Violations* out) {
  for (const FieldViolation& v : in.list()) {
    out->Add(v.field.empty() ? std::string(prefix) : absl::StrCat(prefix, ".", v.field), v.reason,
             v.description);
  }
}

}  // namespace

void SetExplicitDefaults(google::protobuf::Message* message) { SetDefaultsRecursive(message); }

absl::StatusOr<GPTModelConfig> Finalize(const GPTModelConfig& config,
                                        const FinalizeOptions& options) {
  Violations violations;
  CheckLimits(config, options.limits,
              options.world_size.has_value() ? &*options.world_size : nullptr, &violations);
  if (!violations.empty()) return violations.ToStatus();
  Checker c(&violations);
  GPTModelConfig out = config;
  if (!config.has_transformer()) {
    c.Add("transformer", "REQUIRED",
          "transformer is required: a TransformerConfig with at least num_layers, hidden_size "
          "and num_attention_heads.");
  }
  Given given;
  given.kv_channels = config.transformer().has_kv_channels();
  given.ffn_hidden_size = config.transformer().has_ffn_hidden_size();
  given.num_query_groups = config.transformer().has_num_query_groups();
  given.moe_ffn_hidden_size = config.transformer().has_moe_ffn_hidden_size();
  // MLATransformerConfig's own default (TransformerConfig's is LayerNorm).
  if (out.transformer().multi_latent_attention() && !out.transformer().has_normalization()) {
    out.mutable_transformer()->set_normalization("RMSNorm");
  }
  SetExplicitDefaults(&out);
  SetExplicitDefaults(out.mutable_transformer());
  NormalizeStrings(&out, c);
  DeriveValues(&out, c);
  ApplyPipelineLayout(out.mutable_transformer(), c);

  const TransformerConfig& t = out.transformer();
  const Sizes sizes = CheckParallelSizes(t, c);
  CheckSizesAndAttention(t, sizes, given, c);
  CheckMla(out, sizes, c);
  CheckYarn(out, c);
  CheckPrecision(t, c);
  CheckNormsActivationsFusions(t, c);
  CheckRecomputeOffloadGraphs(t, c);
  CheckPipelineSplit(t, sizes, c);
  CheckMoe(t, sizes, given, c);
  CheckGptLevel(out, sizes, c);
  if (options.world_size.has_value()) CheckWorldSize(sizes, *options.world_size, c);
  if (options.refuse_unsupported) CheckFieldSupport(out, &violations);

  if (!violations.empty()) return violations.ToStatus();
  return out;
}

absl::StatusOr<DistributedDataParallelConfig> FinalizeDdp(
    const DistributedDataParallelConfig& ddp) {
  Violations violations;
  Checker c(&violations);
  DistributedDataParallelConfig out = ddp;
  SetExplicitDefaults(&out);
  // Megatron's DistributedDataParallelConfig.__post_init__, plus value sets and ranges (ours).
  if (out.megatron_fsdp_version() != 1 && out.megatron_fsdp_version() != 2) {
    c.Add("megatron_fsdp_version", "INVALID_VALUE", "megatron_fsdp_version must be either 1 or 2.");
  }
  if (out.reuse_grad_buf_for_mxfp8_param_ag() && !out.fp8_param_gather()) {
    c.Add("reuse_grad_buf_for_mxfp8_param_ag", "CONFLICT",
          "Reuse grad buffer only when keeping params in MXFP8 (set fp8_param_gather: true).");
  }
  if (out.param_name_patterns_for_fp32_local_accumulation_size() > 0 && out.grad_reduce_in_fp32()) {
    c.Add("param_name_patterns_for_fp32_local_accumulation", "CONFLICT",
          "Only need to explicitly specify param_name patterns for FP32 local accumulation if "
          ".main_grads aren't already in FP32 (grad_reduce_in_fp32 is true).");
  }
  if (out.has_num_buckets()) {
    if (out.has_bucket_size()) {
      c.Add("num_buckets", "CONFLICT", "Cannot specify both num_buckets and bucket_size.");
    }
    if (out.num_buckets() <= 0) {
      c.Add("num_buckets", "NOT_POSITIVE",
            absl::StrCat("num_buckets must be greater than 0, got ", out.num_buckets(), "."));
    }
  }
  if (out.has_bucket_size()) c.Positive("bucket_size", "bucket_size", out.bucket_size());
  if (out.has_suggested_communication_unit_size()) {
    c.Positive("suggested_communication_unit_size", "suggested_communication_unit_size",
               out.suggested_communication_unit_size());
  }
  c.Positive("num_distributed_optimizer_instances", "num_distributed_optimizer_instances",
             out.num_distributed_optimizer_instances());
  c.OneOf("data_parallel_sharding_strategy", "data_parallel_sharding_strategy",
          out.data_parallel_sharding_strategy(), DataParallelShardingStrategyValues());
  c.OneOf("outer_dp_sharding_strategy", "outer_dp_sharding_strategy",
          out.outer_dp_sharding_strategy(), OuterDpShardingStrategyValues());
  NormalizeDtypeField(true, out.mutable_megatron_fsdp_main_params_dtype(),
                      "megatron_fsdp_main_params_dtype", "megatron_fsdp_main_params_dtype", c);
  if (!violations.empty()) return violations.ToStatus();
  return out;
}

absl::StatusOr<BuildOptions> FinalizeBuild(const BuildOptions& build) {
  Violations violations;
  BuildOptions out = build;
  SetExplicitDefaults(&out);
  // FSDP_EXCLUSIVE (Bridge's _ddp_wrap raises ValueError).
  if (out.use_megatron_fsdp() && out.use_torch_fsdp2()) {
    violations.Add("use_torch_fsdp2", "CONFLICT",
                   "use_megatron_fsdp and use_torch_fsdp2 cannot both be true; pick one.");
  }
  if (!violations.empty()) return violations.ToStatus();
  return out;
}

absl::StatusOr<LoadedConfig> FinalizeLoaded(const LoadedConfig& config,
                                            const FinalizeOptions& options) {
  Violations violations;
  LoadedConfig out;
  out.source_format = config.source_format;
  if (absl::StatusOr<GPTModelConfig> model = Finalize(config.model, options); model.ok()) {
    out.model = *std::move(model);
  } else {
    for (const FieldViolation& v : ViolationsFromStatus(model.status())) {
      violations.Add(v.field, v.reason, v.description);
    }
  }
  if (absl::StatusOr<DistributedDataParallelConfig> ddp = FinalizeDdp(config.ddp); ddp.ok()) {
    out.ddp = *std::move(ddp);
  } else {
    Violations section;
    for (const FieldViolation& v : ViolationsFromStatus(ddp.status())) {
      section.Add(v.field, v.reason, v.description);
    }
    PrefixViolations(section, "ddp", &violations);
  }
  if (absl::StatusOr<BuildOptions> build = FinalizeBuild(config.build); build.ok()) {
    out.build = *std::move(build);
  } else {
    Violations section;
    for (const FieldViolation& v : ViolationsFromStatus(build.status())) {
      section.Add(v.field, v.reason, v.description);
    }
    PrefixViolations(section, "build", &violations);
  }
  if (!violations.empty()) return violations.ToStatus();
  return out;
}

}  // namespace gptb::config
