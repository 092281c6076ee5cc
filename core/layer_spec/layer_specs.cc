#include "core/layer_spec/layer_specs.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"

namespace gptb::layer_spec {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;

ModuleSpecPtr QkNorm(bool qk_layernorm, bool qk_l2_norm, const std::string& norm) {
  if (qk_l2_norm) return Leaf("L2Norm");
  return Leaf(qk_layernorm ? norm : "IdentityOp");
}

ModuleSpecPtr SelfAttentionSpec(const std::string& qkv, const std::string& proj,
                                const std::string& core, ModuleSpecPtr qk_norm,
                                const std::string& mask = "causal") {
  return Node("SelfAttention",
              {{"core_attention", Leaf(core)},
               {"linear_proj", Leaf(proj)},
               {"linear_qkv", Leaf(qkv)},
               {"q_layernorm", qk_norm},
               {"k_layernorm", qk_norm}},
              {{"attn_mask_type", mask}});
}

// MLASelfAttention as get_gpt_layer_local_spec / get_gpt_layer_with_transformer_engine_spec build
// it with multi_latent_attention (before Megatron's construction-time q/kv norm resolution,
// ResolveMlaAttention).
ModuleSpecPtr MlaAttentionSpec(bool te, bool qk_layernorm, const std::string& norm,
                               const std::string& core, const std::string& mask = "causal") {
  if (te) {
    const std::string up =
        qk_layernorm ? "TELayerNormColumnParallelLinear" : "TEColumnParallelLinear";
    return Node("MLASelfAttention",
                {{"core_attention", Leaf(core)},
                 {"linear_proj", Leaf("TERowParallelLinear")},
                 {"linear_q_proj", Leaf("TEColumnParallelLinear")},
                 {"linear_q_down_proj", Leaf("TELinear")},
                 {"linear_q_up_proj", Leaf(up)},
                 {"linear_kv_down_proj", Leaf("TELinear")},
                 {"linear_kv_up_proj", Leaf(up)},
                 {"q_layernorm", Leaf("IdentityOp")},
                 {"kv_layernorm", Leaf("IdentityOp")}},
                {{"attn_mask_type", mask}});
  }
  const std::string qk_norm = qk_layernorm ? norm : "IdentityOp";
  return Node("MLASelfAttention",
              {{"core_attention", Leaf(core)},
               {"linear_proj", Leaf("RowParallelLinear")},
               {"linear_q_proj", Leaf("ColumnParallelLinear")},
               {"linear_q_down_proj", Leaf("ColumnParallelLinear")},
               {"linear_q_up_proj", Leaf("ColumnParallelLinear")},
               {"linear_kv_down_proj", Leaf("ColumnParallelLinear")},
               {"linear_kv_up_proj", Leaf("ColumnParallelLinear")},
               {"q_layernorm", Leaf(qk_norm)},
               {"kv_layernorm", Leaf(qk_norm)}},
              {{"attn_mask_type", mask}});
}

ModuleSpecPtr MoeSpec(const std::string& column, const std::string& row, bool grouped_gemm_te) {
  ModuleSpecPtr experts =
      grouped_gemm_te
          ? Node("TEGroupedMLP", {{"linear_fc1", Leaf("TEColumnParallelGroupedLinear")},
                                  {"linear_fc2", Leaf("TERowParallelGroupedLinear")}})
          : Node("SequentialMLP", {{"linear_fc1", Leaf(column)}, {"linear_fc2", Leaf(row)}});
  return Node("MoELayer",
              {{"router", Leaf("TopKRouter")},
               {"experts", experts},
               {"shared_experts", Node("SharedExpertMLP", {{"linear_fc1", Leaf(column)},
                                                           {"linear_fc2", Leaf(row)}})}});
}

// ModelOpt's layer: the local layer with TENorm norms and TE core attention.
ModuleSpecPtr ModelOptLayer(const TransformerConfig& t, bool moe, bool arbitrary_mask) {
  ModuleSpecPtr mlp = moe ? MoeSpec("ColumnParallelLinear", "RowParallelLinear", false)
                          : Node("MLP", {{"linear_fc1", Leaf("ColumnParallelLinear")},
                                         {"linear_fc2", Leaf("RowParallelLinear")}});
  const std::string mask = arbitrary_mask ? "arbitrary" : "causal";
  ModuleSpecPtr attention =
      t.multi_latent_attention()
          // get_gpt_modelopt_spec: plain Linear down projections and TENorm q/kv norms.
          ? Node("MLASelfAttention",
                 {{"core_attention", Leaf("TEDotProductAttention")},
                  {"linear_proj", Leaf("RowParallelLinear")},
                  {"linear_q_proj", Leaf("ColumnParallelLinear")},
                  {"linear_q_down_proj", Leaf("Linear")},
                  {"linear_q_up_proj", Leaf("ColumnParallelLinear")},
                  {"linear_kv_down_proj", Leaf("Linear")},
                  {"linear_kv_up_proj", Leaf("ColumnParallelLinear")},
                  {"q_layernorm", Leaf("TENorm")},
                  {"kv_layernorm", Leaf("TENorm")}},
                 {{"attn_mask_type", mask}})
          : SelfAttentionSpec("ColumnParallelLinear", "RowParallelLinear", "TEDotProductAttention",
                              QkNorm(t.qk_layernorm(), t.qk_l2_norm(), "TENorm"), mask);
  return Node("TransformerLayer", {{"input_layernorm", Leaf("TENorm")},
                                   {"self_attention", attention},
                                   {"pre_mlp_layernorm", Leaf("TENorm")},
                                   {"mlp", mlp}});
}

bool UsesTransformerEngine(const ModuleSpec& spec) {
  const ModuleInfo* info = FindModule(spec.module);
  if (info != nullptr && info->transformer_engine) return true;
  for (const auto& [slot, sub] : spec.submodules) {
    if (sub && UsesTransformerEngine(*sub)) return true;
  }
  return false;
}

std::optional<int> Experts(const TransformerConfig& t) {
  if (!t.has_num_moe_experts()) return std::nullopt;
  return t.num_moe_experts();
}

std::vector<ModuleSpecPtr> Replicate(const ModuleSpecPtr& spec, size_t n) {
  return std::vector<ModuleSpecPtr>(n, spec);
}

bool IsKind(const ModuleSpec* node, ModuleKind kind) {
  if (node == nullptr) return false;
  const ModuleInfo* info = FindModule(node->module);
  return info != nullptr && info->kind == kind;
}

// IdentityOp or an empty slot.
bool IsTrivial(const ModuleSpec* node) { return node == nullptr || node->module == "IdentityOp"; }

// The stage's layer with its MLA attention resolved (other layers as they are). `resolved`
// keeps shared specs shared.
absl::StatusOr<ModuleSpecPtr> ResolveLayer(const ModuleSpecPtr& layer, const TransformerConfig& t,
                                           std::map<const ModuleSpec*, ModuleSpecPtr>* resolved) {
  auto it = resolved->find(layer.get());
  if (it != resolved->end()) return it->second;
  ModuleSpecPtr result = layer;
  const ModuleSpec* attention = layer->Submodule("self_attention");
  if (IsKind(attention, ModuleKind::kMlaSelfAttention)) {
    absl::StatusOr<ModuleSpecPtr> mla = ResolveMlaAttention(*attention, t);
    if (!mla.ok()) return mla.status();
    auto copy = std::make_shared<ModuleSpec>(*layer);
    for (auto& [slot, sub] : copy->submodules) {
      if (slot == "self_attention") sub = *mla;
    }
    result = copy;
  }
  (*resolved)[layer.get()] = result;
  return result;
}

}  // namespace

absl::StatusOr<ModuleSpecPtr> ResolveMlaAttention(const ModuleSpec& attention,
                                                  const TransformerConfig& t) {
  const bool te_backend = t.transformer_impl() != "local";
  const std::string linear_impl = te_backend ? "TEColumnParallelLinear" : "ColumnParallelLinear";
  const bool has_q_lora = t.q_lora_rank() > 0;
  auto error = [](const std::string& slot, const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("transformer_layer_spec: MLASelfAttention.", slot, ": ", what));
  };
  auto fused = [](const ModuleSpec* node) {
    return IsKind(node, ModuleKind::kLayerNormColumnParallelLinear);
  };
  const ModuleSpec* q_proj = attention.Submodule("linear_q_proj");
  const ModuleSpec* q_up = attention.Submodule("linear_q_up_proj");
  const ModuleSpec* kv_up = attention.Submodule("linear_kv_up_proj");
  const ModuleSpec* q_norm = attention.Submodule("q_layernorm");
  const ModuleSpec* kv_norm = attention.Submodule("kv_layernorm");
  if (t.qk_l2_norm()) return error("q_layernorm", "qk_l2_norm is not supported with MLA");
  // _reject_common_spec_conflicts.
  if (!has_q_lora && !IsTrivial(q_norm)) {
    return error("q_layernorm",
                 absl::StrCat("'", q_norm->module,
                              "' has no query compression to normalise (q_lora_rank is 0); use "
                              "IdentityOp, a fused norm + linear for linear_q_proj, or set "
                              "q_lora_rank"));
  }
  if (has_q_lora && !IsTrivial(q_norm) && fused(q_up)) {
    return error("linear_q_up_proj",
                 "an explicit q_layernorm cannot be paired with a fused "
                 "norm + linear up projection");
  }
  if (!IsTrivial(kv_norm) && fused(kv_up)) {
    return error("linear_kv_up_proj",
                 "an explicit kv_layernorm cannot be paired with a fused "
                 "norm + linear up projection");
  }
  // The backend's fused norm + linear, or a plain linear.
  auto fused_or_default = [&](const ModuleSpec* node,
                              const std::string& slot) -> absl::StatusOr<std::string> {
    if (fused(node)) return node->module;
    if (!te_backend) {
      return error(slot,
                   "qk_layernorm requires Transformer Engine (transformer_impl: "
                   "transformer_engine) or q_layernorm/kv_layernorm set in the spec");
    }
    return std::string("TELayerNormColumnParallelLinear");
  };
  auto plain_or_default = [&](const ModuleSpec* node,
                              const std::string& slot) -> absl::StatusOr<std::string> {
    if (fused(node)) return error(slot, "a plain linear is needed next to an explicit norm");
    return IsTrivial(node) ? linear_impl : node->module;
  };
  std::string q_proj_module, q_up_module, kv_up_module, q_norm_module = "IdentityOp",
                                                        kv_norm_module = "IdentityOp";
  if (!t.qk_layernorm()) {
    if (has_q_lora) {
      if (fused(q_up) || !IsTrivial(q_norm)) {
        return error("linear_q_up_proj", "the spec normalises the query but qk_layernorm is off");
      }
      q_up_module = IsTrivial(q_up) ? linear_impl : q_up->module;
    } else {
      if (fused(q_proj)) {
        return error("linear_q_proj", "the spec normalises the query but qk_layernorm is off");
      }
      q_proj_module = IsTrivial(q_proj) ? linear_impl : q_proj->module;
    }
    if (fused(kv_up) || !IsTrivial(kv_norm)) {
      return error("linear_kv_up_proj",
                   "the spec normalises the keys/values but qk_layernorm is "
                   "off");
    }
    kv_up_module = IsTrivial(kv_up) ? linear_impl : kv_up->module;
  } else {
    absl::StatusOr<std::string> m;
    if (has_q_lora) {
      if (IsTrivial(q_norm)) {
        m = fused_or_default(q_up, "linear_q_up_proj");
      } else {
        m = plain_or_default(q_up, "linear_q_up_proj");
        q_norm_module = q_norm->module;
      }
      if (!m.ok()) return m.status();
      q_up_module = *m;
    } else {
      m = fused_or_default(q_proj, "linear_q_proj");
      if (!m.ok()) return m.status();
      q_proj_module = *m;
    }
    if (IsTrivial(kv_norm)) {
      m = fused_or_default(kv_up, "linear_kv_up_proj");
    } else {
      m = plain_or_default(kv_up, "linear_kv_up_proj");
      kv_norm_module = kv_norm->module;
    }
    if (!m.ok()) return m.status();
    kv_up_module = *m;
  }
  const ModuleSpec* q_down = attention.Submodule("linear_q_down_proj");
  const ModuleSpec* kv_down = attention.Submodule("linear_kv_down_proj");
  if (has_q_lora && IsTrivial(q_down)) {
    return error("linear_q_down_proj", "q_lora_rank is set, so a down projection is needed");
  }
  if (IsTrivial(kv_down)) return error("linear_kv_down_proj", "a down projection is needed");
  std::vector<std::pair<std::string, ModuleSpecPtr>> slots;
  for (const char* slot : {"core_attention", "linear_proj"}) {
    if (const ModuleSpec* node = attention.Submodule(slot)) {
      slots.emplace_back(slot, std::make_shared<ModuleSpec>(*node));
    }
  }
  if (has_q_lora) {
    slots.emplace_back("linear_q_down_proj", Leaf(q_down->module));
    slots.emplace_back("linear_q_up_proj", Leaf(q_up_module));
  } else {
    slots.emplace_back("linear_q_proj", Leaf(q_proj_module));
  }
  slots.emplace_back("linear_kv_down_proj", Leaf(kv_down->module));
  slots.emplace_back("linear_kv_up_proj", Leaf(kv_up_module));
  if (has_q_lora) slots.emplace_back("q_layernorm", Leaf(q_norm_module));
  slots.emplace_back("kv_layernorm", Leaf(kv_norm_module));
  return Node("MLASelfAttention", std::move(slots), attention.params);
}

std::vector<int> MoeLayerPattern(const TransformerConfig& t) {
  std::vector<int> pattern(t.num_layers(), 0);
  if (!t.has_num_moe_experts()) return pattern;
  if (t.moe_layer_freq_size() > 1) {
    for (int i = 0; i < t.num_layers() && i < t.moe_layer_freq_size(); ++i) {
      pattern[i] = t.moe_layer_freq(i);
    }
    return pattern;
  }
  const int every = t.moe_layer_freq_size() == 1 ? t.moe_layer_freq(0) : 1;
  for (int i = 0; i < t.num_layers(); ++i) pattern[i] = (every > 0 && i % every == 0) ? 1 : 0;
  return pattern;
}

ModuleSpecPtr GetGptLayerLocalSpec(std::optional<int> num_experts, bool moe_grouped_gemm,
                                   bool qk_layernorm, const std::string& normalization,
                                   bool qk_l2_norm, bool multi_latent_attention) {
  (void)moe_grouped_gemm;  // the local backend always uses SequentialMLP
  const std::string norm = normalization == "RMSNorm" ? "RMSNorm" : "LayerNorm";
  ModuleSpecPtr mlp = num_experts.has_value()
                          ? MoeSpec("ColumnParallelLinear", "RowParallelLinear", false)
                          : Node("MLP", {{"linear_fc1", Leaf("ColumnParallelLinear")},
                                         {"linear_fc2", Leaf("RowParallelLinear")}});
  ModuleSpecPtr attention =
      multi_latent_attention
          ? MlaAttentionSpec(false, qk_layernorm, norm, "DotProductAttention")
          : SelfAttentionSpec("ColumnParallelLinear", "RowParallelLinear", "DotProductAttention",
                              QkNorm(qk_layernorm, qk_l2_norm, norm));
  return Node("TransformerLayer", {{"input_layernorm", Leaf(norm)},
                                   {"self_attention", attention},
                                   {"pre_mlp_layernorm", Leaf(norm)},
                                   {"mlp", mlp}});
}

ModuleSpecPtr GetGptLayerWithTransformerEngineSpec(std::optional<int> num_experts,
                                                   bool moe_grouped_gemm, bool qk_layernorm,
                                                   bool qk_l2_norm, bool multi_latent_attention) {
  const bool moe = num_experts.has_value();
  ModuleSpecPtr mlp =
      moe ? MoeSpec("TEColumnParallelLinear", "TERowParallelLinear", moe_grouped_gemm)
          : Node("MLP", {{"linear_fc1", Leaf("TELayerNormColumnParallelLinear")},
                         {"linear_fc2", Leaf("TERowParallelLinear")}});
  if (multi_latent_attention) {
    // MLA keeps a separate input norm: the down projections are plain (duplicated) linears.
    return Node("TransformerLayer",
                {{"input_layernorm", Leaf("TENorm")},
                 {"self_attention",
                  MlaAttentionSpec(true, qk_layernorm, "TENorm", "TEDotProductAttention")},
                 {"pre_mlp_layernorm", Leaf(moe ? "TENorm" : "IdentityOp")},
                 {"mlp", mlp}});
  }
  return Node("TransformerLayer",
              {{"input_layernorm", Leaf("IdentityOp")},
               {"self_attention", SelfAttentionSpec("TELayerNormColumnParallelLinear",
                                                    "TERowParallelLinear", "TEDotProductAttention",
                                                    QkNorm(qk_layernorm, qk_l2_norm, "TENorm"))},
               {"pre_mlp_layernorm", Leaf(moe ? "TENorm" : "IdentityOp")},
               {"mlp", mlp}});
}

BlockSpec GetGptDecoderBlockSpec(const TransformerConfig& t, const std::string& backend,
                                 const std::vector<int>& layer_ids) {
  const bool te = backend == "transformer_engine";
  const bool mla = t.multi_latent_attention();
  ModuleSpecPtr dense = te ? GetGptLayerWithTransformerEngineSpec(
                                 std::nullopt, false, t.qk_layernorm(), t.qk_l2_norm(), mla)
                           : GetGptLayerLocalSpec(std::nullopt, false, t.qk_layernorm(),
                                                  t.normalization(), t.qk_l2_norm(), mla);
  ModuleSpecPtr moe =
      te ? GetGptLayerWithTransformerEngineSpec(Experts(t), t.moe_grouped_gemm(), t.qk_layernorm(),
                                                t.qk_l2_norm(), mla)
         : GetGptLayerLocalSpec(Experts(t), t.moe_grouped_gemm(), t.qk_layernorm(),
                                t.normalization(), t.qk_l2_norm(), mla);
  const std::vector<int> pattern = MoeLayerPattern(t);
  BlockSpec block;
  block.layer_norm = te ? "TENorm" : "WrappedTorchNorm";
  for (int id : layer_ids) block.layer_specs.push_back(pattern.at(id) ? moe : dense);
  return block;
}

LayerSpecChoice LocalLayerSpec(const GPTModelConfig& config, const std::vector<int>& layer_ids) {
  const TransformerConfig& t = config.transformer();
  LayerSpecChoice choice;
  if (t.has_num_moe_experts()) {
    choice.block = std::make_shared<BlockSpec>(GetGptDecoderBlockSpec(t, "local", layer_ids));
  } else {
    choice.layer =
        GetGptLayerLocalSpec(std::nullopt, t.moe_grouped_gemm(), t.qk_layernorm(),
                             t.normalization(), t.qk_l2_norm(), t.multi_latent_attention());
  }
  return choice;
}

LayerSpecChoice TransformerEngineLayerSpec(const GPTModelConfig& config,
                                           const std::vector<int>& layer_ids) {
  const TransformerConfig& t = config.transformer();
  LayerSpecChoice choice;
  if (t.has_num_moe_experts()) {
    choice.block =
        std::make_shared<BlockSpec>(GetGptDecoderBlockSpec(t, "transformer_engine", layer_ids));
  } else {
    choice.layer =
        GetGptLayerWithTransformerEngineSpec(std::nullopt, t.moe_grouped_gemm(), t.qk_layernorm(),
                                             t.qk_l2_norm(), t.multi_latent_attention());
  }
  return choice;
}

absl::StatusOr<LayerSpecChoice> TransformerEngineFullLayerSpec(const GPTModelConfig& config,
                                                               const std::vector<int>& layer_ids) {
  if (config.transformer().has_num_moe_experts()) {
    return absl::InvalidArgumentError(
        "transformer_layer_spec: the full Transformer Engine layer (TETransformerLayerAutocast) "
        "has no mixture-of-experts MLP; use 'transformer_engine' or 'local' for MoE models");
  }
  if (config.transformer().multi_latent_attention()) {
    return absl::InvalidArgumentError(
        "transformer_layer_spec: the full Transformer Engine layer (TETransformerLayerAutocast) "
        "has no multi-latent attention; use 'transformer_engine' or 'local' for MLA models");
  }
  LayerSpecChoice choice;
  choice.block = std::make_shared<BlockSpec>();
  choice.block->layer_specs = Replicate(Leaf("TETransformerLayerAutocast"), layer_ids.size());
  choice.block->layer_norm = "FusedLayerNorm";
  return choice;
}

LayerSpecChoice ModelOptTransformerLayerSpec(const GPTModelConfig& config,
                                             const std::vector<int>& layer_ids) {
  const TransformerConfig& t = config.transformer();
  const std::vector<int> pattern = MoeLayerPattern(t);
  // Bridge: use_arbitrary_attention_mask, or (unset) "arbitrary iff the CP size is 1".
  const bool arbitrary = config.has_use_arbitrary_attention_mask()
                             ? config.use_arbitrary_attention_mask()
                             : t.context_parallel_size() == 1;
  ModuleSpecPtr dense = ModelOptLayer(t, false, arbitrary);
  ModuleSpecPtr moe = t.has_num_moe_experts() ? ModelOptLayer(t, true, arbitrary) : dense;
  LayerSpecChoice choice;
  choice.block = std::make_shared<BlockSpec>();
  choice.block->layer_norm = "TENorm";
  for (int id : layer_ids) choice.block->layer_specs.push_back(pattern.at(id) ? moe : dense);
  return choice;
}

absl::StatusOr<LayerSpecChoice> DefaultLayerSpec(const GPTModelConfig& config,
                                                 const std::vector<int>& layer_ids) {
  if (config.restore_modelopt_state()) return ModelOptTransformerLayerSpec(config, layer_ids);
  if (config.use_transformer_engine_full_layer_spec()) {
    return TransformerEngineFullLayerSpec(config, layer_ids);
  }
  return TransformerEngineLayerSpec(config, layer_ids);
}

absl::StatusOr<StageLayerSpecs> ResolveStageLayerSpecs(const GPTModelConfig& config,
                                                       const std::vector<int>& layer_ids) {
  StageLayerSpecs stage;
  const gptbuilder::v1::LayerSpec& requested = config.transformer_layer_spec();
  if (requested.has_custom()) {
    stage.spec_name = "custom";
    stage.choice.layer = FromProto(requested.custom());
  } else {
    const std::string name = requested.has_name() ? requested.name() : "default";
    stage.spec_name = name;
    absl::StatusOr<LayerSpecChoice> choice;
    if (name == "default") {
      choice = DefaultLayerSpec(config, layer_ids);
    } else if (name == "local") {
      choice = LocalLayerSpec(config, layer_ids);
    } else if (name == "transformer_engine") {
      choice = TransformerEngineLayerSpec(config, layer_ids);
    } else if (name == "transformer_engine_full") {
      choice = TransformerEngineFullLayerSpec(config, layer_ids);
    } else if (name == "modelopt") {
      choice = ModelOptTransformerLayerSpec(config, layer_ids);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "transformer_layer_spec: unknown spec '", name,
          "'; use default, local, transformer_engine, transformer_engine_full, modelopt or a "
          "custom ModuleSpec tree"));
    }
    if (!choice.ok()) return choice.status();
    stage.choice = *std::move(choice);
  }
  if (stage.choice.is_block()) {
    stage.layers = stage.choice.block->layer_specs;
    stage.final_layernorm = stage.choice.block->layer_norm;
  } else {
    stage.layers = Replicate(stage.choice.layer, layer_ids.size());
    // TransformerBlock's default final norm (LNImpl): TENorm when TE is in use.
    stage.final_layernorm =
        UsesTransformerEngine(*stage.choice.layer) ? "TENorm" : "WrappedTorchNorm";
  }
  std::map<const ModuleSpec*, ModuleSpecPtr> resolved;
  for (ModuleSpecPtr& layer : stage.layers) {
    absl::StatusOr<ModuleSpecPtr> r = ResolveLayer(layer, config.transformer(), &resolved);
    if (!r.ok()) return r.status();
    layer = *r;
    if (UsesTransformerEngine(*layer)) stage.transformer_engine = true;
  }
  return stage;
}

namespace {

std::optional<std::string> FindTorchNormIn(const ModuleSpec& spec, const std::string& path) {
  const ModuleInfo* info = FindModule(spec.module);
  if (info != nullptr && info->kind == ModuleKind::kNorm && IsTorchNorm(spec.module)) {
    return absl::StrCat(path, ": ", spec.module);
  }
  for (const auto& [slot, sub] : spec.submodules) {
    if (!sub) continue;
    const std::string sub_path = path.empty() ? slot : absl::StrCat(path, ".", slot);
    if (std::optional<std::string> found = FindTorchNormIn(*sub, sub_path)) return found;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> FindTorchNorm(const GPTModelConfig& config) {
  const int layers = config.transformer().num_layers();
  if (layers <= 0) return std::nullopt;
  std::vector<int> ids(layers);
  for (int i = 0; i < layers; ++i) ids[i] = i;
  absl::StatusOr<StageLayerSpecs> specs = ResolveStageLayerSpecs(config, ids);
  if (!specs.ok()) return std::nullopt;
  for (const ModuleSpecPtr& layer : specs->layers) {
    if (!layer) continue;
    if (std::optional<std::string> found = FindTorchNormIn(*layer, "")) return found;
  }
  if (IsTorchNorm(specs->final_layernorm)) {
    return absl::StrCat("final_layernorm: ", specs->final_layernorm);
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<std::vector<ModuleSpecPtr>>> MtpBlockSpec(
    const GPTModelConfig& config, const StageLayerSpecs& stage, int num_mtp_layers_to_build) {
  const TransformerConfig& t = config.transformer();
  if (!t.has_mtp_num_layers()) return std::optional<std::vector<ModuleSpecPtr>>();
  if (num_mtp_layers_to_build == 0) return std::optional<std::vector<ModuleSpecPtr>>();
  ModuleSpecPtr inner;
  if (stage.choice.is_block()) {
    if (stage.choice.block->layer_specs.empty()) {
      // Bridge: an MTP-only stage has an empty block; fall back to the default spec.
      std::vector<int> last = {t.num_layers() - 1};
      absl::StatusOr<LayerSpecChoice> fallback = DefaultLayerSpec(config, last);
      if (!fallback.ok()) return fallback.status();
      inner = fallback->is_block() ? fallback->block->layer_specs.back() : fallback->layer;
    } else {
      inner = stage.choice.block->layer_specs.back();
    }
  } else {
    inner = stage.choice.layer;
  }
  std::map<const ModuleSpec*, ModuleSpecPtr> resolved;
  absl::StatusOr<ModuleSpecPtr> resolved_inner = ResolveLayer(inner, t, &resolved);
  if (!resolved_inner.ok()) return resolved_inner.status();
  inner = *resolved_inner;
  if (inner->module == "TETransformerLayerAutocast") {
    return absl::InvalidArgumentError(
        "transformer.mtp_num_layers: multi-token prediction needs a TransformerLayer spec; the "
        "full Transformer Engine layer spec cannot be used as the MTP inner layer");
  }
  ModuleSpecPtr mtp_layer =
      Node("MultiTokenPredictionLayer", {{"enorm", Leaf("TENorm")},
                                         {"hnorm", Leaf("TENorm")},
                                         {"eh_proj", Leaf("TEColumnParallelLinear")},
                                         {"mtp_model_layer", inner},
                                         {"layer_norm", Leaf("TENorm")}});
  const int count = t.mtp_use_repeated_layer() ? 1 : num_mtp_layers_to_build;
  return std::optional<std::vector<ModuleSpecPtr>>(Replicate(mtp_layer, count));
}

}  // namespace gptb::layer_spec
