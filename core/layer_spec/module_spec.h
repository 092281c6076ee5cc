#ifndef GPTB_CORE_LAYER_SPEC_MODULE_SPEC_H_
#define GPTB_CORE_LAYER_SPEC_MODULE_SPEC_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::layer_spec {

struct ModuleSpec;
using ModuleSpecPtr = std::shared_ptr<const ModuleSpec>;

// Megatron's ModuleSpec: which registered module to build, its construction parameters, and its
// submodules in the module's own slot order (the order Megatron's __init__ assigns them, which
// is also state-dict order). Immutable once built; shared between layers like Megatron shares
// one spec object among all layers of a block.
struct ModuleSpec {
  std::string module;
  std::map<std::string, std::string> params;
  std::vector<std::pair<std::string, ModuleSpecPtr>> submodules;

  // The submodule in slot `name`, or nullptr when the slot is empty.
  const ModuleSpec* Submodule(std::string_view name) const;
  // True when the slot holds a module that is not IdentityOp.
  bool Has(std::string_view name) const;
  // A compact one-line rendering, e.g. `TransformerLayer(self_attention=SelfAttention(...))`.
  std::string DebugString() const;
};

// Megatron's TransformerBlockSubmodules: one spec per layer of a stage plus the final norm.
struct BlockSpec {
  std::vector<ModuleSpecPtr> layer_specs;
  std::string layer_norm;  // module name of the block's final norm
};

// What a layer-spec function returns: either one layer spec replicated over the stage's layers,
// or a block spec listing each layer of the stage (MoE decoder blocks, full-TE, ModelOpt).
struct LayerSpecChoice {
  ModuleSpecPtr layer;               // set for a single layer spec
  std::shared_ptr<BlockSpec> block;  // set for a block spec

  bool is_block() const { return block != nullptr; }
};

// Builders used by the spec functions.
ModuleSpecPtr Leaf(std::string module);
ModuleSpecPtr Node(std::string module,
                   std::vector<std::pair<std::string, ModuleSpecPtr>> submodules,
                   std::map<std::string, std::string> params = {});

// Conversion from / to the schema's ModuleSpec message (custom trees in configs). The proto
// keeps submodules in a map; FromProto orders them by the module registry's slot order.
ModuleSpecPtr FromProto(const gptbuilder::v1::ModuleSpec& proto);
void ToProto(const ModuleSpec& spec, gptbuilder::v1::ModuleSpec* proto);

}  // namespace gptb::layer_spec

#endif  // GPTB_CORE_LAYER_SPEC_MODULE_SPEC_H_
