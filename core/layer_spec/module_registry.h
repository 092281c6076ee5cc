#ifndef GPTB_CORE_LAYER_SPEC_MODULE_REGISTRY_H_
#define GPTB_CORE_LAYER_SPEC_MODULE_REGISTRY_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/config/violations.h"
#include "core/layer_spec/module_spec.h"

namespace gptb::layer_spec {

// What kind of thing a registered module is; the planner and the builder dispatch on it.
enum class ModuleKind {
  kIdentity,          // IdentityOp: no module, no parameters
  kTransformerLayer,  // TransformerLayer and its ModelOpt / TE-autocast variants
  kSelfAttention,     // SelfAttention
  kMlaSelfAttention,  // MLASelfAttention (multi-latent attention)
  kCoreAttention,     // DotProductAttention / TEDotProductAttention
  kMlp,               // MLP (dense)
  kMoeLayer,          // MoELayer
  kRouter,            // TopKRouter
  kSequentialMlp,     // SequentialMLP (experts as a ModuleList of MLPs)
  kGroupedMlp,        // TEGroupedMLP (weight<j> per local expert)
  kSharedExpertMlp,   // SharedExpertMLP
  kColumnParallelLinear,
  kRowParallelLinear,
  kLayerNormColumnParallelLinear,  // TE's fused norm + column-parallel linear
  kDuplicatedLinear,  // TELinear (parallel_mode "duplicated") / ModelOpt's Linear: replicated
  kColumnParallelGroupedLinear,
  kRowParallelGroupedLinear,
  kNorm,                // LayerNorm / RMSNorm / TENorm / FusedLayerNorm / WrappedTorchNorm
  kL2Norm,              // parameter-free
  kTeTransformerLayer,  // Transformer Engine's whole TransformerLayer (full-TE spec)
  kMtpLayer,            // MultiTokenPredictionLayer
};

struct ModuleInfo {
  std::string name;
  ModuleKind kind;
  // Submodule slots in construction (= state-dict) order, and which of them must be present.
  std::vector<std::string> slots;
  std::vector<std::string> required;
  // Transformer Engine modules carry an `_extra_state` entry in state_dict().
  bool transformer_engine = false;
};

// The registered module, or nullptr for an unknown name.
const ModuleInfo* FindModule(std::string_view name);
// Every registered module name, sorted (for error messages and docs).
std::vector<std::string> RegisteredModuleNames();

// Whether `module` is one of torch's own norms (LayerNorm / RMSNorm through Megatron's
// WrappedTorchNorm, what the local spec builds without Apex). Megatron Core refuses to build them
// with sequence parallelism ("sequence parallel not supported by torch LayerNorm"): they do not
// mark their parameters for the tensor-parallel gradient reduction.
bool IsTorchNorm(std::string_view module);

// Checks a custom layer spec tree (a TransformerLayer at the root): unknown module names,
// unknown slots, missing required submodules, modules in slots that cannot hold them, and
// q/k layernorm modules present while qk_layernorm is off (Megatron's SelfAttention check).
// Violations name the path, e.g. `transformer_layer_spec.custom.submodules.mlp.module`.
void CheckCustomLayerSpec(const ModuleSpec& spec, const gptbuilder::v1::TransformerConfig& config,
                          const std::string& field_path, config::Violations* violations);

}  // namespace gptb::layer_spec

#endif  // GPTB_CORE_LAYER_SPEC_MODULE_REGISTRY_H_
