#include "core/layer_spec/module_registry.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gptb::layer_spec {
namespace {

using K = ModuleKind;

const std::vector<ModuleInfo>& Registry() {
  static const auto* registry = new std::vector<ModuleInfo>{
      {"IdentityOp", K::kIdentity, {}, {}},
      {"TransformerLayer",
       K::kTransformerLayer,
       {"input_layernorm", "self_attention", "pre_cross_attn_layernorm", "cross_attention",
        "pre_mlp_layernorm", "mlp"},
       {"self_attention", "mlp"}},
      {"SelfAttention",
       K::kSelfAttention,
       {"core_attention", "linear_proj", "linear_qkv", "q_layernorm", "k_layernorm"},
       {"core_attention", "linear_proj", "linear_qkv"}},
      {"MLASelfAttention",
       K::kMlaSelfAttention,
       {"core_attention", "linear_proj", "linear_q_proj", "linear_q_down_proj", "linear_q_up_proj",
        "linear_kv_down_proj", "linear_kv_up_proj", "q_layernorm", "kv_layernorm"},
       {"core_attention", "linear_proj", "linear_kv_down_proj"}},
      {"DotProductAttention", K::kCoreAttention, {}, {}},
      {"TEDotProductAttention", K::kCoreAttention, {}, {}, /*transformer_engine=*/true},
      {"MLP", K::kMlp, {"linear_fc1", "linear_fc2"}, {"linear_fc1", "linear_fc2"}},
      {"MoELayer", K::kMoeLayer, {"router", "experts", "shared_experts"}, {"experts"}},
      {"TopKRouter", K::kRouter, {}, {}},
      {"SequentialMLP",
       K::kSequentialMlp,
       {"linear_fc1", "linear_fc2"},
       {"linear_fc1", "linear_fc2"}},
      {"TEGroupedMLP",
       K::kGroupedMlp,
       {"linear_fc1", "linear_fc2"},
       {"linear_fc1", "linear_fc2"},
       true},
      {"SharedExpertMLP",
       K::kSharedExpertMlp,
       {"linear_fc1", "linear_fc2"},
       {"linear_fc1", "linear_fc2"}},
      {"ColumnParallelLinear", K::kColumnParallelLinear, {}, {}},
      {"RowParallelLinear", K::kRowParallelLinear, {}, {}},
      {"TEColumnParallelLinear", K::kColumnParallelLinear, {}, {}, true},
      {"TERowParallelLinear", K::kRowParallelLinear, {}, {}, true},
      {"TELayerNormColumnParallelLinear", K::kLayerNormColumnParallelLinear, {}, {}, true},
      {"TELinear", K::kDuplicatedLinear, {}, {}, true},
      {"Linear", K::kDuplicatedLinear, {}, {}},
      {"TEColumnParallelGroupedLinear", K::kColumnParallelGroupedLinear, {}, {}, true},
      {"TERowParallelGroupedLinear", K::kRowParallelGroupedLinear, {}, {}, true},
      // Norms. LayerNorm / RMSNorm pin the kind; the others follow config.normalization.
      {"LayerNorm", K::kNorm, {}, {}},
      {"RMSNorm", K::kNorm, {}, {}},
      {"FusedLayerNorm", K::kNorm, {}, {}},
      {"WrappedTorchNorm", K::kNorm, {}, {}},
      {"TENorm", K::kNorm, {}, {}, true},
      {"L2Norm", K::kL2Norm, {}, {}},
      {"TETransformerLayerAutocast", K::kTeTransformerLayer, {}, {}, true},
      {"MultiTokenPredictionLayer",
       K::kMtpLayer,
       {"enorm", "hnorm", "eh_proj", "mtp_model_layer", "layer_norm"},
       {"enorm", "hnorm", "eh_proj", "mtp_model_layer", "layer_norm"}},
  };
  return *registry;
}

// Which module kinds each slot accepts.
std::set<ModuleKind> AcceptedKinds(ModuleKind parent, const std::string& slot) {
  switch (parent) {
    case K::kTransformerLayer:
      if (slot == "input_layernorm" || slot == "pre_mlp_layernorm") return {K::kNorm, K::kIdentity};
      if (slot == "self_attention") return {K::kSelfAttention, K::kMlaSelfAttention};
      if (slot == "mlp") return {K::kMlp, K::kMoeLayer};
      return {K::kIdentity};  // cross attention: decoder-only GPT has none
    case K::kSelfAttention:
      if (slot == "core_attention") return {K::kCoreAttention};
      if (slot == "linear_proj") return {K::kRowParallelLinear};
      if (slot == "linear_qkv")
        return {K::kColumnParallelLinear, K::kLayerNormColumnParallelLinear};
      return {K::kNorm, K::kL2Norm, K::kIdentity};
    case K::kMlaSelfAttention:
      if (slot == "core_attention") return {K::kCoreAttention};
      if (slot == "linear_proj") return {K::kRowParallelLinear};
      if (slot == "linear_q_down_proj" || slot == "linear_kv_down_proj")
        return {K::kColumnParallelLinear, K::kDuplicatedLinear, K::kIdentity};
      if (slot == "q_layernorm" || slot == "kv_layernorm") return {K::kNorm, K::kIdentity};
      return {K::kColumnParallelLinear, K::kLayerNormColumnParallelLinear, K::kIdentity};
    case K::kMlp:
      if (slot == "linear_fc1")
        return {K::kColumnParallelLinear, K::kLayerNormColumnParallelLinear};
      return {K::kRowParallelLinear};
    case K::kSequentialMlp:
    case K::kSharedExpertMlp:
      if (slot == "linear_fc1") return {K::kColumnParallelLinear};
      return {K::kRowParallelLinear};
    case K::kGroupedMlp:
      if (slot == "linear_fc1") return {K::kColumnParallelGroupedLinear};
      return {K::kRowParallelGroupedLinear};
    case K::kMoeLayer:
      if (slot == "router") return {K::kRouter};
      if (slot == "experts") return {K::kSequentialMlp, K::kGroupedMlp};
      return {K::kSharedExpertMlp, K::kIdentity};
    default:
      return {};
  }
}

std::string KindNames(const std::set<ModuleKind>& kinds) {
  std::vector<std::string> names;
  for (const ModuleInfo& info : Registry()) {
    if (kinds.count(info.kind)) names.push_back(info.name);
  }
  return absl::StrJoin(names, ", ");
}

void CheckNode(const ModuleSpec& spec, const gptbuilder::v1::TransformerConfig& config,
               const std::string& path, std::set<ModuleKind> accepted,
               config::Violations* violations) {
  const ModuleInfo* info = FindModule(spec.module);
  if (info == nullptr) {
    violations->Add(absl::StrCat(path, ".module"), "UNKNOWN_MODULE",
                    absl::StrCat("unknown module '", spec.module, "'; registered modules: ",
                                 absl::StrJoin(RegisteredModuleNames(), ", ")));
    return;
  }
  if (!accepted.empty() && !accepted.count(info->kind)) {
    violations->Add(absl::StrCat(path, ".module"), "MODULE_NOT_ALLOWED_HERE",
                    absl::StrCat("module '", spec.module,
                                 "' cannot be used here; use one of: ", KindNames(accepted)));
    return;
  }
  for (const auto& [slot, sub] : spec.submodules) {
    if (std::find(info->slots.begin(), info->slots.end(), slot) == info->slots.end()) {
      violations->Add(
          absl::StrCat(path, ".submodules.", slot), "UNKNOWN_SUBMODULE",
          absl::StrCat(spec.module, " has no submodule '", slot, "'; its submodules are: ",
                       info->slots.empty() ? "(none)" : absl::StrJoin(info->slots, ", ")));
      continue;
    }
    if (sub) {
      CheckNode(*sub, config, absl::StrCat(path, ".submodules.", slot),
                AcceptedKinds(info->kind, slot), violations);
    }
  }
  for (const std::string& slot : info->required) {
    if (!spec.Has(slot)) {
      violations->Add(absl::StrCat(path, ".submodules.", slot), "MISSING_SUBMODULE",
                      absl::StrCat(spec.module, " requires submodule '", slot,
                                   "' (one of: ", KindNames(AcceptedKinds(info->kind, slot)), ")"));
    }
  }
  if (info->kind == K::kSelfAttention && !config.qk_layernorm() && !config.qk_l2_norm()) {
    for (const char* slot : {"q_layernorm", "k_layernorm"}) {
      if (spec.Has(slot)) {
        violations->Add(absl::StrCat(path, ".submodules.", slot), "QK_NORM_WITHOUT_FLAG",
                        absl::StrCat("the spec sets ", slot,
                                     " but transformer.qk_layernorm and transformer.qk_l2_norm "
                                     "are false; use IdentityOp or enable qk_layernorm"));
      }
    }
  }
  if (info->kind == K::kMlaSelfAttention && !config.multi_latent_attention()) {
    violations->Add(absl::StrCat(path, ".module"), "MLA_WITHOUT_FLAG",
                    "MLASelfAttention needs transformer.multi_latent_attention: true (and its "
                    "q_lora_rank, kv_lora_rank, ... sizes); use SelfAttention otherwise");
  }
  if (info->kind == K::kSelfAttention && config.multi_latent_attention()) {
    violations->Add(absl::StrCat(path, ".module"), "MLA_FLAG_WITHOUT_MLA",
                    "transformer.multi_latent_attention is true but the spec builds SelfAttention; "
                    "use MLASelfAttention or set multi_latent_attention: false");
  }
  if (info->kind == K::kMoeLayer && !config.has_num_moe_experts()) {
    violations->Add(absl::StrCat(path, ".module"), "MOE_WITHOUT_EXPERTS",
                    "a MoELayer needs transformer.num_moe_experts to be set");
  }
}

}  // namespace

const ModuleInfo* FindModule(std::string_view name) {
  for (const ModuleInfo& info : Registry()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

std::vector<std::string> RegisteredModuleNames() {
  std::vector<std::string> names;
  for (const ModuleInfo& info : Registry()) names.push_back(info.name);
  std::sort(names.begin(), names.end());
  return names;
}

bool IsTorchNorm(std::string_view module) {
  return module == "LayerNorm" || module == "RMSNorm" || module == "WrappedTorchNorm";
}

void CheckCustomLayerSpec(const ModuleSpec& spec, const gptbuilder::v1::TransformerConfig& config,
                          const std::string& field_path, config::Violations* violations) {
  CheckNode(spec, config, field_path, {K::kTransformerLayer}, violations);
}

}  // namespace gptb::layer_spec
