#include "core/checkpoint/hf_mapping.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/config/violations.h"

namespace gptb::checkpoint {
namespace {

using gptbuilder::v1::GPTModelConfig;

// How a canonical tensor lies in its HF tensor(s).
enum class Layout {
  kCopy,                // one tensor, as is
  kTransposed,          // one Conv1D tensor [in, out]
  kQkv,                 // q, k, v: rows regrouped per query group
  kFusedQkv,            // one [q; k; v] tensor (GPT-2's c_attn bias)
  kFusedQkvTransposed,  // one Conv1D [in, q | k | v] tensor (GPT-2's c_attn weight)
  kGateUp,              // gate, up: concatenated [gate; up]
  // transformers' fused experts [experts, ...] (GPT-OSS), the slice of expert {e}:
  kStackedGateUp,      // [E, in, 2 * ffn]: gate and up interleaved along the last axis
  kStackedGateUpBias,  // [E, 2 * ffn]: interleaved
  kStackedTransposed,  // [E, in, out]
  kStacked,            // [E, ...] as is
};

struct Rule {
  // Top-level rules: the full canonical name. Layer rules: the name after
  // "decoder.layers.<L>.", where "{e}" stands for a global expert index.
  const char* canonical;
  Layout layout;
  // The HF tensor names; "{L}" is the layer index, "{e}" the expert index. Relative to the base
  // prefix unless `outside_base` (lm_head).
  std::vector<const char*> hf;
  bool outside_base = false;
};

struct FamilyRules {
  const char* layer_prefix;  // relative to the base prefix
  std::vector<Rule> top;
  std::vector<Rule> layer;
  // Multi-token prediction layers (DeepSeek-V3): the name after "mtp.layers.<M>.", stored under
  // the decoder layer num_layers + M; "mtp_model_layer.<rest>" follows the layer rules there.
  std::vector<Rule> mtp{};
};

const FamilyRules& LlamaRules() {
  static const auto* rules = new FamilyRules{
      "layers.{L}.",
      {
          {"embedding.word_embeddings.weight", Layout::kCopy, {"embed_tokens.weight"}},
          {"decoder.final_layernorm.weight", Layout::kCopy, {"norm.weight"}},
          {"output_layer.weight", Layout::kCopy, {"lm_head.weight"}, true},
      },
      {
          {"self_attention.linear_qkv.layer_norm_weight",
           Layout::kCopy,
           {"input_layernorm.weight"}},
          {"self_attention.linear_qkv.weight",
           Layout::kQkv,
           {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
          {"self_attention.linear_qkv.bias",
           Layout::kQkv,
           {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}},
          {"self_attention.linear_proj.weight", Layout::kCopy, {"self_attn.o_proj.weight"}},
          {"self_attention.linear_proj.bias", Layout::kCopy, {"self_attn.o_proj.bias"}},
          {"self_attention.q_layernorm.weight", Layout::kCopy, {"self_attn.q_norm.weight"}},
          {"self_attention.k_layernorm.weight", Layout::kCopy, {"self_attn.k_norm.weight"}},
          {"mlp.linear_fc1.layer_norm_weight", Layout::kCopy, {"post_attention_layernorm.weight"}},
          {"pre_mlp_layernorm.weight", Layout::kCopy, {"post_attention_layernorm.weight"}},
          {"mlp.linear_fc1.weight",
           Layout::kGateUp,
           {"mlp.gate_proj.weight", "mlp.up_proj.weight"}},
          {"mlp.linear_fc1.bias", Layout::kGateUp, {"mlp.gate_proj.bias", "mlp.up_proj.bias"}},
          {"mlp.linear_fc2.weight", Layout::kCopy, {"mlp.down_proj.weight"}},
          {"mlp.linear_fc2.bias", Layout::kCopy, {"mlp.down_proj.bias"}},
          {"mlp.router.weight", Layout::kCopy, {"block_sparse_moe.gate.weight"}},
          {"mlp.experts.local_experts.{e}.linear_fc1.weight",
           Layout::kGateUp,
           {"block_sparse_moe.experts.{e}.w1.weight", "block_sparse_moe.experts.{e}.w3.weight"}},
          {"mlp.experts.local_experts.{e}.linear_fc2.weight",
           Layout::kCopy,
           {"block_sparse_moe.experts.{e}.w2.weight"}},
      },
  };
  return *rules;
}

// Qwen3-MoE: Qwen3's attention and dense MLP names (mlp_only_layers keep a dense MLP), its
// router as mlp.gate and its experts as mlp.experts.E.{gate,up,down}_proj.
const FamilyRules& Qwen3MoeRules() {
  static const auto* rules = [] {
    auto* r = new FamilyRules(LlamaRules());
    std::vector<Rule> layer;
    for (const Rule& rule : r->layer) {
      if (std::string_view(rule.canonical).rfind("mlp.router.", 0) == 0 ||
          std::string_view(rule.canonical).rfind("mlp.experts.", 0) == 0) {
        continue;
      }
      layer.push_back(rule);
    }
    layer.push_back({"mlp.router.weight", Layout::kCopy, {"mlp.gate.weight"}});
    layer.push_back({"mlp.experts.local_experts.{e}.linear_fc1.weight",
                     Layout::kGateUp,
                     {"mlp.experts.{e}.gate_proj.weight", "mlp.experts.{e}.up_proj.weight"}});
    layer.push_back({"mlp.experts.local_experts.{e}.linear_fc2.weight",
                     Layout::kCopy,
                     {"mlp.experts.{e}.down_proj.weight"}});
    r->layer = std::move(layer);
    return r;
  }();
  return *rules;
}

// DeepSeek-V2 / V3: multi-latent attention (q_a_proj / q_a_layernorm / q_b_proj,
// kv_a_proj_with_mqa / kv_a_layernorm / kv_b_proj, all in Megatron's row order: per head
// [nope, rope] queries, [latent, rope key] down projection, per head [nope key, value]), dense
// MLPs in the first first_k_dense_replace layers, then MoE layers with mlp.gate (and V3's
// e_score_correction_bias, Megatron's expert_bias), mlp.experts.E and mlp.shared_experts.
// V3's MTP layer: enorm, hnorm, eh_proj ([e; h] columns as Megatron's), its transformer layer,
// shared_head.norm (the layer's embed_tokens / shared_head.head copies are skipped on import,
// IsIgnorableHfTensor, and not written).
const FamilyRules& DeepseekRules() {
  static const auto* rules = [] {
    auto* r = new FamilyRules(Qwen3MoeRules());
    std::vector<Rule> layer;
    for (const Rule& rule : r->layer) {
      if (std::string_view(rule.canonical).rfind("self_attention.", 0) == 0) continue;
      layer.push_back(rule);
    }
    const std::vector<Rule> mla = {
        {"input_layernorm.weight", Layout::kCopy, {"input_layernorm.weight"}},
        {"self_attention.linear_q_down_proj.weight", Layout::kCopy, {"self_attn.q_a_proj.weight"}},
        {"self_attention.linear_q_up_proj.layer_norm_weight",
         Layout::kCopy,
         {"self_attn.q_a_layernorm.weight"}},
        {"self_attention.linear_q_up_proj.weight", Layout::kCopy, {"self_attn.q_b_proj.weight"}},
        {"self_attention.linear_q_proj.weight", Layout::kCopy, {"self_attn.q_proj.weight"}},
        {"self_attention.linear_kv_down_proj.weight",
         Layout::kCopy,
         {"self_attn.kv_a_proj_with_mqa.weight"}},
        {"self_attention.linear_kv_up_proj.layer_norm_weight",
         Layout::kCopy,
         {"self_attn.kv_a_layernorm.weight"}},
        {"self_attention.linear_kv_up_proj.weight", Layout::kCopy, {"self_attn.kv_b_proj.weight"}},
        {"self_attention.linear_proj.weight", Layout::kCopy, {"self_attn.o_proj.weight"}},
        {"mlp.router.expert_bias", Layout::kCopy, {"mlp.gate.e_score_correction_bias"}},
        {"mlp.shared_experts.linear_fc1.weight",
         Layout::kGateUp,
         {"mlp.shared_experts.gate_proj.weight", "mlp.shared_experts.up_proj.weight"}},
        {"mlp.shared_experts.linear_fc2.weight",
         Layout::kCopy,
         {"mlp.shared_experts.down_proj.weight"}},
    };
    layer.insert(layer.end(), mla.begin(), mla.end());
    r->layer = std::move(layer);
    r->mtp = {
        {"enorm.weight", Layout::kCopy, {"enorm.weight"}},
        {"hnorm.weight", Layout::kCopy, {"hnorm.weight"}},
        {"eh_proj.weight", Layout::kCopy, {"eh_proj.weight"}},
        {"final_layernorm.weight", Layout::kCopy, {"shared_head.norm.weight"}},
    };
    return r;
  }();
  return *rules;
}

// GPT-OSS: Llama's attention names with biases and the sinks (Megatron's softmax_offset), the
// router with its bias, and every layer's experts fused into four stacked tensors.
const FamilyRules& GptOssRules() {
  static const auto* rules = new FamilyRules{
      "layers.{L}.",
      {
          {"embedding.word_embeddings.weight", Layout::kCopy, {"embed_tokens.weight"}},
          {"decoder.final_layernorm.weight", Layout::kCopy, {"norm.weight"}},
          {"output_layer.weight", Layout::kCopy, {"lm_head.weight"}, true},
      },
      {
          {"self_attention.linear_qkv.layer_norm_weight",
           Layout::kCopy,
           {"input_layernorm.weight"}},
          {"self_attention.linear_qkv.weight",
           Layout::kQkv,
           {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
          {"self_attention.linear_qkv.bias",
           Layout::kQkv,
           {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}},
          {"self_attention.linear_proj.weight", Layout::kCopy, {"self_attn.o_proj.weight"}},
          {"self_attention.linear_proj.bias", Layout::kCopy, {"self_attn.o_proj.bias"}},
          {"self_attention.core_attention.softmax_offset", Layout::kCopy, {"self_attn.sinks"}},
          {"pre_mlp_layernorm.weight", Layout::kCopy, {"post_attention_layernorm.weight"}},
          {"mlp.router.weight", Layout::kCopy, {"mlp.router.weight"}},
          {"mlp.router.bias", Layout::kCopy, {"mlp.router.bias"}},
          {"mlp.experts.local_experts.{e}.linear_fc1.weight",
           Layout::kStackedGateUp,
           {"mlp.experts.gate_up_proj"}},
          {"mlp.experts.local_experts.{e}.linear_fc1.bias",
           Layout::kStackedGateUpBias,
           {"mlp.experts.gate_up_proj_bias"}},
          {"mlp.experts.local_experts.{e}.linear_fc2.weight",
           Layout::kStackedTransposed,
           {"mlp.experts.down_proj"}},
          {"mlp.experts.local_experts.{e}.linear_fc2.bias",
           Layout::kStacked,
           {"mlp.experts.down_proj_bias"}},
      },
  };
  return *rules;
}

// Gemma 2: Llama's attention and MLP names without biases, four norms per layer (the two
// post-norms are Bridge's TERowParallelLinearLayerNorm post_layernorm), tied embeddings. The
// norms are copied as stored: transformers' Gemma2RMSNorm keeps w and applies 1 + w, which is
// Megatron's layernorm_zero_centered_gamma (CheckHfRepresentable requires it).
const FamilyRules& Gemma2Rules() {
  static const auto* rules = new FamilyRules{
      "layers.{L}.",
      {
          {"embedding.word_embeddings.weight", Layout::kCopy, {"embed_tokens.weight"}},
          {"decoder.final_layernorm.weight", Layout::kCopy, {"norm.weight"}},
          {"output_layer.weight", Layout::kCopy, {"lm_head.weight"}, true},
      },
      {
          {"self_attention.linear_qkv.layer_norm_weight",
           Layout::kCopy,
           {"input_layernorm.weight"}},
          {"self_attention.linear_qkv.weight",
           Layout::kQkv,
           {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
          {"self_attention.linear_proj.weight", Layout::kCopy, {"self_attn.o_proj.weight"}},
          {"self_attention.linear_proj.post_layernorm.weight",
           Layout::kCopy,
           {"post_attention_layernorm.weight"}},
          {"mlp.linear_fc1.layer_norm_weight", Layout::kCopy, {"pre_feedforward_layernorm.weight"}},
          {"mlp.linear_fc1.weight",
           Layout::kGateUp,
           {"mlp.gate_proj.weight", "mlp.up_proj.weight"}},
          {"mlp.linear_fc2.weight", Layout::kCopy, {"mlp.down_proj.weight"}},
          {"mlp.linear_fc2.post_layernorm.weight",
           Layout::kCopy,
           {"post_feedforward_layernorm.weight"}},
      },
  };
  return *rules;
}

// Gemma 3 text: Gemma 2's names plus the per-head q/k norms (zero-centred, copied as stored).
const FamilyRules& Gemma3TextRules() {
  static const auto* rules = [] {
    auto* r = new FamilyRules(Gemma2Rules());
    r->layer.push_back(
        {"self_attention.q_layernorm.weight", Layout::kCopy, {"self_attn.q_norm.weight"}});
    r->layer.push_back(
        {"self_attention.k_layernorm.weight", Layout::kCopy, {"self_attn.k_norm.weight"}});
    return r;
  }();
  return *rules;
}

const FamilyRules& Gpt2Rules() {
  static const auto* rules = new FamilyRules{
      "h.{L}.",
      {
          {"embedding.word_embeddings.weight", Layout::kCopy, {"wte.weight"}},
          {"embedding.position_embeddings.weight", Layout::kCopy, {"wpe.weight"}},
          {"decoder.final_layernorm.weight", Layout::kCopy, {"ln_f.weight"}},
          {"decoder.final_layernorm.bias", Layout::kCopy, {"ln_f.bias"}},
          {"output_layer.weight", Layout::kCopy, {"lm_head.weight"}, true},
      },
      {
          {"self_attention.linear_qkv.layer_norm_weight", Layout::kCopy, {"ln_1.weight"}},
          {"self_attention.linear_qkv.layer_norm_bias", Layout::kCopy, {"ln_1.bias"}},
          {"self_attention.linear_qkv.weight", Layout::kFusedQkvTransposed, {"attn.c_attn.weight"}},
          {"self_attention.linear_qkv.bias", Layout::kFusedQkv, {"attn.c_attn.bias"}},
          {"self_attention.linear_proj.weight", Layout::kTransposed, {"attn.c_proj.weight"}},
          {"self_attention.linear_proj.bias", Layout::kCopy, {"attn.c_proj.bias"}},
          {"mlp.linear_fc1.layer_norm_weight", Layout::kCopy, {"ln_2.weight"}},
          {"mlp.linear_fc1.layer_norm_bias", Layout::kCopy, {"ln_2.bias"}},
          {"mlp.linear_fc1.weight", Layout::kTransposed, {"mlp.c_fc.weight"}},
          {"mlp.linear_fc1.bias", Layout::kCopy, {"mlp.c_fc.bias"}},
          {"mlp.linear_fc2.weight", Layout::kTransposed, {"mlp.c_proj.weight"}},
          {"mlp.linear_fc2.bias", Layout::kCopy, {"mlp.c_proj.bias"}},
      },
  };
  return *rules;
}

const FamilyRules& RulesOf(HfFamily family) {
  if (family == HfFamily::kGpt2) return Gpt2Rules();
  if (family == HfFamily::kQwen3Moe) return Qwen3MoeRules();
  if (family == HfFamily::kDeepseekV2 || family == HfFamily::kDeepseekV3) return DeepseekRules();
  if (family == HfFamily::kGptOss) return GptOssRules();
  if (family == HfFamily::kGemma2) return Gemma2Rules();
  if (family == HfFamily::kGemma3Text) return Gemma3TextRules();
  return LlamaRules();
}

// Matches `name` against `pattern`, which may contain one "{e}"; sets *expert to its value.
bool Match(std::string_view pattern, std::string_view name, std::string* expert) {
  const size_t at = pattern.find("{e}");
  if (at == std::string_view::npos) return pattern == name;
  const std::string_view head = pattern.substr(0, at), tail = pattern.substr(at + 3);
  if (name.size() <= head.size() + tail.size() || name.substr(0, head.size()) != head ||
      name.substr(name.size() - tail.size()) != tail) {
    return false;
  }
  const std::string_view digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &value) || value < 0) {
    return false;
  }
  *expert = std::string(digits);
  return true;
}

// Segments of linear_qkv (weight or bias) rows [g x (n/g q heads, k head, v head)] x d stored as
// separate q [n d], k [g d], v [g d] tensors, or as one [q; k; v] tensor (`fused`).
std::vector<Segment> QkvSegments(const GPTModelConfig& config, const std::vector<std::string>& hf,
                                 bool fused, bool transposed) {
  const auto& t = config.transformer();
  const int64_t n = t.num_attention_heads(), g = t.num_query_groups(), d = t.kv_channels();
  const int64_t per_group = n / g;
  std::vector<Segment> segments;
  for (int64_t j = 0; j < g; ++j) {
    const int64_t base = j * (per_group + 2) * d;
    const std::string& q = hf[0];
    const std::string& k = fused ? hf[0] : hf[1];
    const std::string& v = fused ? hf[0] : hf[2];
    const int64_t k_base = fused ? n * d : 0, v_base = fused ? n * d + g * d : 0;
    segments.push_back({base, per_group * d, q, j * per_group * d, transposed});
    segments.push_back({base + per_group * d, d, k, k_base + j * d, transposed});
    segments.push_back({base + (per_group + 1) * d, d, v, v_base + j * d, transposed});
  }
  return segments;
}

absl::StatusOr<TensorRoute> Route(const Rule& rule, const CanonicalTensor& tensor,
                                  const GPTModelConfig& config, const std::string& base_prefix,
                                  const std::string& layer, const std::string& expert,
                                  int64_t vocab_rows) {
  std::vector<std::string> hf;
  for (const char* pattern : rule.hf) {
    std::string name = absl::StrReplaceAll(pattern, {{"{L}", layer}, {"{e}", expert}});
    hf.push_back(rule.outside_base ? name : base_prefix + name);
  }
  TensorRoute route{tensor.name, tensor.shape, {}};
  const int64_t rows = tensor.shape.empty() ? 0 : tensor.shape[0];
  switch (rule.layout) {
    case Layout::kCopy:
      route = IdentityRoute(tensor.name, tensor.shape, tensor.vocab_rows ? vocab_rows : rows);
      if (!route.segments.empty()) route.segments[0].tensor = hf[0];
      break;
    case Layout::kTransposed:
      if (tensor.shape.size() != 2) {
        return absl::InternalError(absl::StrCat(tensor.name, " is not 2-D"));
      }
      route.segments.push_back({0, rows, hf[0], 0, true});
      break;
    case Layout::kGateUp:
      if (rows % 2 != 0) {
        return absl::InvalidArgumentError(absl::StrCat(tensor.name, " has an odd row count ", rows,
                                                       "; a gated [gate; up] tensor needs even"));
      }
      route.segments.push_back({0, rows / 2, hf[0], 0, false});
      route.segments.push_back({rows / 2, rows / 2, hf[1], 0, false});
      break;
    case Layout::kStackedGateUp:
    case Layout::kStackedGateUpBias:
    case Layout::kStackedTransposed:
    case Layout::kStacked: {
      int64_t index = -1;
      if (!absl::SimpleAtoi(expert, &index) || index < 0) {
        return absl::InternalError(absl::StrCat(tensor.name, ": no expert index"));
      }
      const bool gate_up =
          rule.layout == Layout::kStackedGateUp || rule.layout == Layout::kStackedGateUpBias;
      const bool transposed =
          rule.layout == Layout::kStackedGateUp || rule.layout == Layout::kStackedTransposed;
      if (transposed && tensor.shape.size() != 2) {
        return absl::InternalError(absl::StrCat(tensor.name, " is not 2-D"));
      }
      if (gate_up && rows % 2 != 0) {
        return absl::InvalidArgumentError(absl::StrCat(tensor.name, " has an odd row count ", rows,
                                                       "; a gated [gate; up] tensor needs even"));
      }
      if (gate_up) {
        // Canonical [gate; up] rows are the stored even / odd columns.
        route.segments.push_back({0, rows / 2, hf[0], 0, transposed, index, 2});
        route.segments.push_back({rows / 2, rows / 2, hf[0], 1, transposed, index, 2});
      } else {
        route.segments.push_back({0, rows, hf[0], 0, transposed, index, 1});
      }
      break;
    }
    case Layout::kQkv:
    case Layout::kFusedQkv:
    case Layout::kFusedQkvTransposed: {
      const auto& t = config.transformer();
      const int64_t expected =
          (int64_t{t.num_attention_heads()} + 2 * int64_t{t.num_query_groups()}) * t.kv_channels();
      if (t.num_query_groups() <= 0 || t.num_attention_heads() % t.num_query_groups() != 0 ||
          rows != expected) {
        return absl::InvalidArgumentError(absl::StrCat(
            tensor.name, " has ", rows, " rows; (heads + 2 * query groups) * kv_channels = ",
            expected, " (heads must be a multiple of query groups)"));
      }
      route.segments = QkvSegments(config, hf, rule.layout != Layout::kQkv,
                                   rule.layout == Layout::kFusedQkvTransposed);
      break;
    }
  }
  return route;
}

// What transformers' DeepseekV2/V3ForCausalLM computes (and what the importer builds): MLA with
// q compression and q/kv norms, YaRN or plain rope on interleaved pairs, SwiGLU RMSNorm layers,
// dense layers then MoE layers (every one from the first) with at most a shared expert, V3's
// sigmoid router with expert bias, groups scored by their top two and renormalised weights;
// V2's softmax router (pre-softmax, groups by their best expert). MTP layers only for V3.
template <typename Need>
void CheckDeepseekRepresentable(bool v3, const GPTModelConfig& config, Need& need) {
  const auto& t = config.transformer();
  need(t.multi_latent_attention(), "transformer.multi_latent_attention",
       "use multi-latent attention");
  need(t.q_lora_rank() > 0, "transformer.q_lora_rank",
       "compress the query here (q_lora_rank > 0; without it Megatron fuses a norm into "
       "linear_q_proj that transformers' q_proj lacks)");
  need(t.qk_layernorm(), "transformer.qk_layernorm", "normalise the compressed q and kv");
  need(t.num_query_groups() == t.num_attention_heads(), "transformer.num_query_groups",
       "have one key per head");
  need(t.normalization() == "RMSNorm", "transformer.normalization", "use RMSNorm");
  need(t.gated_linear_unit() && t.activation_func() == "silu", "transformer.activation_func",
       "use SwiGLU (gated_linear_unit with silu)");
  need(config.position_embedding_type() == "rope", "position_embedding_type", "use rope");
  need(!t.rotary_interleaved(), "transformer.rotary_interleaved",
       "rotate MLA's interleaved pairs as Megatron's MLA does");
  need(!t.add_bias_linear() && !t.add_qkv_bias(), "transformer.add_bias_linear",
       "have no linear biases");
  need(!t.layernorm_zero_centered_gamma(), "transformer.layernorm_zero_centered_gamma",
       "store the norm weight itself");
  need(!t.attention_output_gate(), "transformer.attention_output_gate", "have no output gate");
  need(!t.has_softmax_type() || t.softmax_type() == "vanilla", "transformer.softmax_type",
       "use the vanilla softmax");
  need(t.window_size_size() == 0, "transformer.window_size", "have no sliding window");
  need(config.rotary_percent() == 1.0, "rotary_percent", "rotate all qk_pos_emb_head_dim channels");
  need(v3 || !t.has_mtp_num_layers() || t.mtp_num_layers() == 0, "transformer.mtp_num_layers",
       "have no multi-token prediction layers (DeepSeek-V2)");
  need(t.has_num_moe_experts(), "transformer.num_moe_experts", "are mixtures of experts");
  if (!t.has_num_moe_experts()) return;
  // Dense layers first, then MoE in every layer (first_k_dense_replace).
  bool prefix_dense = true, seen_moe = false;
  for (int i = 0; i < t.num_layers(); ++i) {
    int moe = 1;
    if (t.moe_layer_freq_size() > 1) {
      moe = i < t.moe_layer_freq_size() ? t.moe_layer_freq(i) : 0;
    } else if (t.moe_layer_freq_size() == 1) {
      moe = t.moe_layer_freq(0) > 0 && i % t.moe_layer_freq(0) == 0 ? 1 : 0;
    }
    if (moe) seen_moe = true;
    if (!moe && seen_moe) prefix_dense = false;
  }
  need(prefix_dense, "transformer.moe_layer_freq",
       "have dense layers first and experts in every later layer (first_k_dense_replace)");
  need(!t.moe_shared_expert_gate(), "transformer.moe_shared_expert_gate",
       "have ungated shared experts");
  const int64_t moe_ffn = t.has_moe_ffn_hidden_size() ? t.moe_ffn_hidden_size() : 0;
  need(!t.has_moe_shared_expert_intermediate_size() ||
           (moe_ffn > 0 && t.moe_shared_expert_intermediate_size() % moe_ffn == 0),
       "transformer.moe_shared_expert_intermediate_size",
       "size the shared MLP as n_shared_experts * moe_intermediate_size");
  const int64_t topk = t.moe_router_topk();
  const int64_t group_topk = t.has_moe_router_group_topk() ? t.moe_router_group_topk() : 0;
  if (v3) {
    need(t.moe_router_score_function() == "sigmoid", "transformer.moe_router_score_function",
         "route by sigmoid scores (DeepSeek-V3)");
    need(t.moe_router_enable_expert_bias(), "transformer.moe_router_enable_expert_bias",
         "choose experts with the correction bias (DeepSeek-V3's e_score_correction_bias)");
    need(group_topk > 0 ? topk == 2 * group_topk : t.moe_router_num_groups() <= 1,
         "transformer.moe_router_group_topk",
         "score an expert group by its top two experts (moe_router_topk = 2 x group_topk)");
    need(topk > 1, "transformer.moe_router_topk", "renormalise the top-k weights (top k > 1)");
  } else {
    need(t.moe_router_score_function() == "softmax", "transformer.moe_router_score_function",
         "route by softmax scores (DeepSeek-V2)");
    need(t.moe_router_pre_softmax(), "transformer.moe_router_pre_softmax",
         "take the softmax over all experts before the top k, without renormalising");
    need(!t.moe_router_enable_expert_bias(), "transformer.moe_router_enable_expert_bias",
         "have no expert bias (DeepSeek-V2)");
    need(group_topk == 0 || topk == group_topk, "transformer.moe_router_group_topk",
         "score an expert group by its best expert (moe_router_topk = group_topk)");
  }
}

// transformers' GptOss modelling: what it hard-codes (biases everywhere, sinks, the clamped
// SwiGLU with offset 1 and gain 1.702, experts in every layer routed by the softmax of the top-k
// logits, windows that end at the query) and what its config can express (YaRN's attention
// factor through mscale / mscale_all_dim when both are non-zero).
absl::Status CheckGptOssRepresentable(const GPTModelConfig& config) {
  const auto& t = config.transformer();
  config::Violations v;
  auto need = [&](bool ok, const char* field, const std::string& what) {
    if (!ok)
      v.Add(field, "NOT_REPRESENTABLE", absl::StrCat("Hugging Face gpt_oss models ", what, "."));
  };
  need(!t.has_mtp_num_layers() || t.mtp_num_layers() == 0, "transformer.mtp_num_layers",
       "have no multi-token prediction layers");
  need(!t.attention_output_gate(), "transformer.attention_output_gate", "have no output gate");
  need(t.softmax_type() == "learnable", "transformer.softmax_type",
       "have learnable softmax offsets (sinks)");
  need(!t.multi_latent_attention(), "transformer.multi_latent_attention", "use standard attention");
  need(!t.rotary_interleaved(), "transformer.rotary_interleaved",
       "rotate halves, not interleaved pairs");
  need(config.rotary_percent() == 1.0, "rotary_percent", "rotate every head channel");
  need(!t.layernorm_zero_centered_gamma(), "transformer.layernorm_zero_centered_gamma",
       "store the norm weight itself");
  need(!t.qk_l2_norm() && !t.qk_layernorm(), "transformer.qk_layernorm", "have no qk norms");
  need(t.normalization() == "RMSNorm", "transformer.normalization", "use RMSNorm");
  need(t.gated_linear_unit() && t.activation_func() == "quick_gelu" &&
           t.glu_linear_offset() == 1.0 && t.has_activation_func_clamp_value() &&
           t.activation_func_clamp_value() > 0,
       "transformer.activation_func",
       "use the clamped SwiGLU (gated quick_gelu, glu_linear_offset 1, "
       "activation_func_clamp_value > 0)");
  need(t.add_bias_linear(), "transformer.add_bias_linear", "have biases on every linear");
  need(t.has_num_moe_experts(), "transformer.num_moe_experts", "are mixtures of experts");
  need(!t.has_moe_shared_expert_intermediate_size(),
       "transformer.moe_shared_expert_intermediate_size", "have no shared experts");
  need(t.moe_router_score_function() == "softmax" && !t.moe_router_pre_softmax(),
       "transformer.moe_router_pre_softmax", "route by the softmax of the top-k logits");
  need(!t.has_moe_router_topk_scaling_factor() || t.moe_router_topk_scaling_factor() == 1.0,
       "transformer.moe_router_topk_scaling_factor", "do not scale the routing weights");
  need(!t.has_moe_router_group_topk() || t.moe_router_group_topk() == 0,
       "transformer.moe_router_group_topk", "route without expert groups");
  need(!t.moe_router_enable_expert_bias(), "transformer.moe_router_enable_expert_bias",
       "have no expert bias");
  bool every_layer = true;
  for (int i = 0; i < t.moe_layer_freq_size(); ++i) {
    every_layer = every_layer && t.moe_layer_freq(i) == 1;
  }
  need(every_layer, "transformer.moe_layer_freq", "have experts in every layer");
  need(t.window_size_size() == 0 || (t.window_size_size() == 2 && t.window_size(1) == 0),
       "transformer.window_size", "slide windows that end at the query");
  const std::string& position = config.position_embedding_type();
  need(position == "rope" || position == "yarn", "position_embedding_type", "use rope or yarn");
  need(!config.rope_scaling() && !config.has_seq_len_interpolation_factor(), "rope_scaling",
       "scale positions only with YaRN");
  if (position == "yarn") {
    need((t.yarn_mscale() == 1.0 && t.yarn_mscale_all_dim() == 0.0) ||
             (t.yarn_mscale() != 0.0 && t.yarn_mscale_all_dim() != 0.0),
         "transformer.yarn_mscale",
         "derive YaRN's attention factor from the scaling factor alone or from non-zero "
         "mscale and mscale_all_dim together");
  }
  return v.ToStatus();
}

// transformers' Gemma2 modelling: what it hard-codes (zero-centred RMSNorms before and after
// attention and MLP, scaled embeddings, GeGLU, no biases, the attention scale from
// query_pre_attn_scalar, windows that end at the query, default rope) and what its config can
// express (capping on or off, tied or untied embeddings, the window pattern).
// Gemma 3 text adds per-head q/k norms and two rotary embeddings (a local base for the sliding
// layers, a linear factor on the global ones).
absl::Status CheckGemmaRepresentable(bool gemma3, const GPTModelConfig& config) {
  const auto& t = config.transformer();
  config::Violations v;
  const char* type = gemma3 ? "gemma3_text" : "gemma2";
  auto need = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) {
      v.Add(field, "NOT_REPRESENTABLE", absl::StrCat("Hugging Face ", type, " models ", what, "."));
    }
  };
  if (gemma3) {
    need(t.qk_layernorm(), "transformer.qk_layernorm", "normalise each query and key head");
  } else {
    need(!t.qk_layernorm(), "transformer.qk_layernorm", "have no qk norms");
    need(!config.has_rotary_base_local(), "rotary_base_local",
         "rotate every layer with one rotary base");
  }
  need(config.post_linear_layernorm(), "post_linear_layernorm",
       "normalise the attention and MLP outputs");
  need(config.apply_embedding_scaling(), "apply_embedding_scaling",
       "scale the embeddings by sqrt(hidden_size)");
  need(t.layernorm_zero_centered_gamma(), "transformer.layernorm_zero_centered_gamma",
       "store zero-centred norm weights (applied as 1 + w)");
  need(t.normalization() == "RMSNorm", "transformer.normalization", "use RMSNorm");
  need(t.gated_linear_unit() && (t.activation_func() == "fast_gelu" ||
                                 (t.activation_func() == "gelu" && !t.bias_activation_fusion())),
       "transformer.activation_func", "use GeGLU (gated_linear_unit with fast_gelu or gelu)");
  need(!t.add_bias_linear() && !t.add_qkv_bias(), "transformer.add_bias_linear",
       "have no linear biases");
  need(!t.has_num_moe_experts(), "transformer.num_moe_experts", "are dense");
  need(!t.has_mtp_num_layers() || t.mtp_num_layers() == 0, "transformer.mtp_num_layers",
       "have no multi-token prediction layers");
  need(!t.attention_output_gate(), "transformer.attention_output_gate", "have no output gate");
  need(!t.has_softmax_type() || t.softmax_type() == "vanilla", "transformer.softmax_type",
       "use the vanilla softmax");
  need(!t.has_softmax_scale(), "transformer.softmax_scale",
       "scale attention scores by 1/sqrt(query_pre_attn_scalar)");
  need(!t.qk_l2_norm(), "transformer.qk_l2_norm", "have no L2 qk norm");
  need(!t.multi_latent_attention(), "transformer.multi_latent_attention", "use standard attention");
  need(config.position_embedding_type() == "rope", "position_embedding_type", "use rope");
  need(!t.rotary_interleaved(), "transformer.rotary_interleaved",
       "rotate halves, not interleaved pairs");
  need(config.rotary_percent() == 1.0, "rotary_percent", "rotate every head channel");
  need(!config.rope_scaling() && !config.has_seq_len_interpolation_factor(), "rope_scaling",
       "use the default rope");
  need(t.window_size_size() == 0 || (t.window_size_size() == 2 && t.window_size(1) == 0),
       "transformer.window_size", "slide windows that end at the query");
  return v.ToStatus();
}

}  // namespace

const char* HfModelType(HfFamily family) {
  switch (family) {
    case HfFamily::kGpt2:
      return "gpt2";
    case HfFamily::kLlama:
      return "llama";
    case HfFamily::kMistral:
      return "mistral";
    case HfFamily::kQwen2:
      return "qwen2";
    case HfFamily::kQwen3:
      return "qwen3";
    case HfFamily::kMixtral:
      return "mixtral";
    case HfFamily::kQwen3Moe:
      return "qwen3_moe";
    case HfFamily::kDeepseekV2:
      return "deepseek_v2";
    case HfFamily::kDeepseekV3:
      return "deepseek_v3";
    case HfFamily::kGptOss:
      return "gpt_oss";
    case HfFamily::kGemma2:
      return "gemma2";
    case HfFamily::kGemma3Text:
      return "gemma3_text";
  }
  return "?";
}

std::optional<HfFamily> ParseHfModelType(std::string_view model_type) {
  for (HfFamily f :
       {HfFamily::kGpt2, HfFamily::kLlama, HfFamily::kMistral, HfFamily::kQwen2, HfFamily::kQwen3,
        HfFamily::kMixtral, HfFamily::kQwen3Moe, HfFamily::kGptOss, HfFamily::kDeepseekV2,
        HfFamily::kDeepseekV3, HfFamily::kGemma2, HfFamily::kGemma3Text}) {
    if (model_type == HfModelType(f)) return f;
  }
  return std::nullopt;
}

const char* HfBasePrefix(HfFamily family) {
  return family == HfFamily::kGpt2 ? "transformer." : "model.";
}

absl::StatusOr<HfFamily> InferHfFamily(const GPTModelConfig& config) {
  const auto& t = config.transformer();
  HfFamily family = HfFamily::kLlama;
  if (config.position_embedding_type() == "learned_absolute" && t.normalization() == "LayerNorm") {
    family = HfFamily::kGpt2;
  } else if (config.post_linear_layernorm()) {
    family = t.qk_layernorm() ? HfFamily::kGemma3Text : HfFamily::kGemma2;
  } else if (t.multi_latent_attention()) {
    family =
        t.moe_router_score_function() == "sigmoid" ? HfFamily::kDeepseekV3 : HfFamily::kDeepseekV2;
  } else if (t.has_num_moe_experts() && t.softmax_type() == "learnable") {
    family = HfFamily::kGptOss;  // the attention sinks
  } else if (t.has_num_moe_experts()) {
    family = t.qk_layernorm() ? HfFamily::kQwen3Moe : HfFamily::kMixtral;
  } else if (t.qk_layernorm()) {
    family = HfFamily::kQwen3;
  } else if (t.add_qkv_bias() && !t.add_bias_linear()) {
    family = HfFamily::kQwen2;
  } else if (t.window_size_size() > 0) {
    family = HfFamily::kMistral;
  }
  if (absl::Status s = CheckHfRepresentable(family, config); !s.ok()) return s;
  return family;
}

absl::Status CheckHfRepresentable(HfFamily family, const GPTModelConfig& config) {
  if (family == HfFamily::kGptOss) return CheckGptOssRepresentable(config);
  if (family == HfFamily::kGemma2 || family == HfFamily::kGemma3Text) {
    return CheckGemmaRepresentable(family == HfFamily::kGemma3Text, config);
  }
  const auto& t = config.transformer();
  config::Violations v;
  const std::string type = HfModelType(family);
  auto need = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) {
      v.Add(field, "NOT_REPRESENTABLE", absl::StrCat("Hugging Face ", type, " models ", what, "."));
    }
  };
  if (family == HfFamily::kDeepseekV2 || family == HfFamily::kDeepseekV3) {
    CheckDeepseekRepresentable(family == HfFamily::kDeepseekV3, config, need);
    return v.ToStatus();
  }
  need(!t.has_mtp_num_layers() || t.mtp_num_layers() == 0, "transformer.mtp_num_layers",
       "have no multi-token prediction layers");
  need(!t.attention_output_gate(), "transformer.attention_output_gate", "have no output gate");
  need(!t.has_softmax_type() || t.softmax_type() == "vanilla", "transformer.softmax_type",
       "use the vanilla softmax");
  need(!t.multi_latent_attention(), "transformer.multi_latent_attention", "use standard attention");
  need(!t.rotary_interleaved(), "transformer.rotary_interleaved",
       "rotate halves, not interleaved pairs");
  need(!t.layernorm_zero_centered_gamma(), "transformer.layernorm_zero_centered_gamma",
       "store the norm weight itself");
  need(!t.qk_l2_norm(), "transformer.qk_l2_norm", "have no L2 qk norm");
  need(!t.has_moe_shared_expert_intermediate_size(),
       "transformer.moe_shared_expert_intermediate_size", "have no shared experts");
  if (family == HfFamily::kGpt2) {
    need(t.normalization() == "LayerNorm", "transformer.normalization", "use LayerNorm");
    need(!t.gated_linear_unit(), "transformer.gated_linear_unit", "have an ungated MLP");
    need(config.position_embedding_type() == "learned_absolute", "position_embedding_type",
         "learn absolute positions");
    need(t.add_bias_linear(), "transformer.add_bias_linear", "have biases on every linear");
    need(t.num_query_groups() == t.num_attention_heads(), "transformer.num_query_groups",
         "have one key/value head per query head");
    need(!t.qk_layernorm(), "transformer.qk_layernorm", "have no qk norms");
    need(!t.has_num_moe_experts(), "transformer.num_moe_experts", "are dense");
    need(int64_t{t.kv_channels()} * t.num_attention_heads() == t.hidden_size(),
         "transformer.kv_channels", "have kv_channels * heads == hidden_size");
    need(t.window_size_size() == 0, "transformer.window_size", "have no sliding window");
  } else {
    need(t.normalization() == "RMSNorm", "transformer.normalization", "use RMSNorm");
    need(t.gated_linear_unit() && t.activation_func() == "silu", "transformer.activation_func",
         "use SwiGLU (gated_linear_unit with silu)");
    need(config.position_embedding_type() == "rope", "position_embedding_type", "use rope");
    const bool qk_norm = family == HfFamily::kQwen3 || family == HfFamily::kQwen3Moe;
    const bool moe = family == HfFamily::kMixtral || family == HfFamily::kQwen3Moe;
    need(qk_norm ? t.qk_layernorm() : !t.qk_layernorm(), "transformer.qk_layernorm",
         qk_norm ? "normalise q and k" : "have no qk norms");
    need(moe ? t.has_num_moe_experts() : !t.has_num_moe_experts(), "transformer.num_moe_experts",
         moe ? "are mixtures of experts" : "are dense");
    if (moe && t.has_num_moe_experts()) {
      // transformers routes by the softmax of the router logits over all experts and its top k,
      // renormalised (Mixtral; Qwen3-MoE with norm_topk_prob), which is Megatron's softmax of
      // the top-k logits; Qwen3-MoE without norm_topk_prob is Megatron's pre-softmax.
      need(t.moe_router_score_function() == "softmax", "transformer.moe_router_score_function",
           "route by softmax scores");
      need(!t.has_moe_router_topk_scaling_factor() || t.moe_router_topk_scaling_factor() == 1.0,
           "transformer.moe_router_topk_scaling_factor", "do not scale the routing weights");
      need(!t.has_moe_router_group_topk() || t.moe_router_group_topk() == 0,
           "transformer.moe_router_group_topk", "route without expert groups");
      need(!t.moe_router_enable_expert_bias(), "transformer.moe_router_enable_expert_bias",
           "have no expert bias");
      if (family == HfFamily::kMixtral) {
        need(!t.moe_router_pre_softmax(), "transformer.moe_router_pre_softmax",
             "renormalise the top-k routing weights");
        bool every_layer = true;
        if (t.moe_layer_freq_size() == 1) every_layer = t.moe_layer_freq(0) == 1;
        for (int i = 0; t.moe_layer_freq_size() > 1 && i < t.moe_layer_freq_size(); ++i) {
          every_layer = every_layer && t.moe_layer_freq(i) == 1;
        }
        need(every_layer, "transformer.moe_layer_freq", "have experts in every layer");
      }
    }
    if (family == HfFamily::kQwen2) {
      need(t.add_qkv_bias(), "transformer.add_qkv_bias", "have q/k/v biases");
    }
    if (family != HfFamily::kLlama) {
      need(!t.add_bias_linear(), "transformer.add_bias_linear", "have no linear biases");
    }
    if (family != HfFamily::kLlama && family != HfFamily::kQwen2 && family != HfFamily::kQwen3) {
      need(!t.add_qkv_bias(), "transformer.add_qkv_bias", "have no q/k/v biases");
    }
    if (family != HfFamily::kMistral && family != HfFamily::kMixtral) {
      need(t.window_size_size() == 0, "transformer.window_size", "have no sliding window");
    } else {
      need(t.window_attn_skip_freq_size() == 0, "transformer.window_attn_skip_freq",
           "slide the window in every layer");
    }
  }
  return v.ToStatus();
}

absl::StatusOr<std::vector<TensorRoute>> HfRoutes(HfFamily family, const GPTModelConfig& config,
                                                  const std::vector<CanonicalTensor>& tensors,
                                                  int64_t vocab_rows,
                                                  const std::string& base_prefix) {
  const FamilyRules& rules = RulesOf(family);
  std::vector<TensorRoute> routes;
  constexpr std::string_view kLayers = "decoder.layers.";
  for (const CanonicalTensor& tensor : tensors) {
    const Rule* found = nullptr;
    std::string layer, expert, prefix = base_prefix;
    for (const Rule& rule : rules.top) {
      if (tensor.name == rule.canonical) found = &rule;
    }
    if (found == nullptr && tensor.name.rfind(kLayers, 0) == 0) {
      const std::string rest = tensor.name.substr(kLayers.size());
      const size_t dot = rest.find('.');
      int64_t index = 0;
      if (dot != std::string::npos && absl::SimpleAtoi(rest.substr(0, dot), &index)) {
        layer = rest.substr(0, dot);
        const std::string suffix = rest.substr(dot + 1);
        for (const Rule& rule : rules.layer) {
          if (Match(rule.canonical, suffix, &expert)) found = &rule;
        }
        prefix = base_prefix + absl::StrReplaceAll(rules.layer_prefix, {{"{L}", layer}});
      }
    }
    constexpr std::string_view kMtp = "mtp.layers.";
    if (found == nullptr && !rules.mtp.empty() && tensor.name.rfind(kMtp, 0) == 0) {
      const std::string rest = tensor.name.substr(kMtp.size());
      const size_t dot = rest.find('.');
      int64_t index = 0;
      if (dot != std::string::npos && absl::SimpleAtoi(rest.substr(0, dot), &index)) {
        // DeepSeek stores MTP layer M as decoder layer num_layers + M.
        layer = absl::StrCat(int64_t{config.transformer().num_layers()} + index);
        const std::string suffix = rest.substr(dot + 1);
        constexpr std::string_view kInner = "mtp_model_layer.";
        if (suffix.rfind(kInner, 0) == 0) {
          for (const Rule& rule : rules.layer) {
            if (Match(rule.canonical, suffix.substr(kInner.size()), &expert)) found = &rule;
          }
        } else {
          for (const Rule& rule : rules.mtp) {
            if (Match(rule.canonical, suffix, &expert)) found = &rule;
          }
        }
        prefix = base_prefix + absl::StrReplaceAll(rules.layer_prefix, {{"{L}", layer}});
      }
    }
    if (found == nullptr) {
      return absl::UnimplementedError(absl::StrCat("canonical tensor ", tensor.name,
                                                   " has no counterpart in Hugging Face ",
                                                   HfModelType(family), " checkpoints"));
    }
    absl::StatusOr<TensorRoute> route =
        Route(*found, tensor, config, prefix, layer, expert, vocab_rows);
    if (!route.ok()) return route.status();
    routes.push_back(*std::move(route));
  }
  return routes;
}

bool IsIgnorableHfTensor(std::string_view name, bool tied) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (tied && name == "lm_head.weight") return true;
  // DeepSeek-V3's MTP layers store copies of the embedding and the output head.
  const bool layer_copy =
      name.find(".layers.") != std::string_view::npos &&
      (ends_with(".embed_tokens.weight") || ends_with(".shared_head.head.weight"));
  return layer_copy || ends_with(".attn.bias") || ends_with(".attn.masked_bias") ||
         ends_with(".rotary_emb.inv_freq");
}

}  // namespace gptb::checkpoint
