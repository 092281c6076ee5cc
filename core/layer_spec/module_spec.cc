#include "core/layer_spec/module_spec.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/layer_spec/module_registry.h"

namespace gptb::layer_spec {

const ModuleSpec* ModuleSpec::Submodule(std::string_view name) const {
  for (const auto& [slot, sub] : submodules) {
    if (slot == name) return sub.get();
  }
  return nullptr;
}

bool ModuleSpec::Has(std::string_view name) const {
  const ModuleSpec* sub = Submodule(name);
  return sub != nullptr && sub->module != "IdentityOp";
}

std::string ModuleSpec::DebugString() const {
  std::vector<std::string> parts;
  for (const auto& [key, value] : params) parts.push_back(absl::StrCat(key, "=", value));
  for (const auto& [slot, sub] : submodules) {
    parts.push_back(absl::StrCat(slot, "=", sub ? sub->DebugString() : "None"));
  }
  if (parts.empty()) return module;
  return absl::StrCat(module, "(", absl::StrJoin(parts, ", "), ")");
}

ModuleSpecPtr Leaf(std::string module) {
  auto spec = std::make_shared<ModuleSpec>();
  spec->module = std::move(module);
  return spec;
}

ModuleSpecPtr Node(std::string module,
                   std::vector<std::pair<std::string, ModuleSpecPtr>> submodules,
                   std::map<std::string, std::string> params) {
  auto spec = std::make_shared<ModuleSpec>();
  spec->module = std::move(module);
  spec->submodules = std::move(submodules);
  spec->params = std::move(params);
  return spec;
}

ModuleSpecPtr FromProto(const gptbuilder::v1::ModuleSpec& proto) {
  auto spec = std::make_shared<ModuleSpec>();
  spec->module = proto.module();
  for (const auto& [key, value] : proto.params()) spec->params[key] = value;
  // Registry slot order first, then any unknown slot names (kept so the checker can name them).
  std::vector<std::string> order;
  if (const ModuleInfo* info = FindModule(proto.module())) order = info->slots;
  std::vector<std::string> rest;
  for (const auto& [slot, unused] : proto.submodules()) {
    if (std::find(order.begin(), order.end(), slot) == order.end()) rest.push_back(slot);
  }
  std::sort(rest.begin(), rest.end());
  order.insert(order.end(), rest.begin(), rest.end());
  for (const std::string& slot : order) {
    auto it = proto.submodules().find(slot);
    if (it == proto.submodules().end()) continue;
    spec->submodules.emplace_back(slot, FromProto(it->second));
  }
  return spec;
}

void ToProto(const ModuleSpec& spec, gptbuilder::v1::ModuleSpec* proto) {
  proto->set_module(spec.module);
  for (const auto& [key, value] : spec.params) (*proto->mutable_params())[key] = value;
  for (const auto& [slot, sub] : spec.submodules) {
    if (sub) ToProto(*sub, &(*proto->mutable_submodules())[slot]);
  }
}

}  // namespace gptb::layer_spec
