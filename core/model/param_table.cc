#include "core/model/param_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gptb::model {

ParamTable::ParamTable(const std::vector<plan::ParamInfo>& params, torch::Device device)
    : params_(params), device_(device), taken_(params.size(), false) {
  for (size_t i = 0; i < params.size(); ++i) index_[params[i].name] = i;
}

torch::Tensor ParamTable::Take(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw BuildError(absl::StrCat("the plan has no parameter '", name, "'"));
  if (taken_[it->second]) throw BuildError(absl::StrCat("parameter '", name, "' registered twice"));
  taken_[it->second] = true;
  const plan::ParamInfo& info = params_[it->second];
  return torch::empty(info.shape,
                      torch::TensorOptions().dtype(TorchScalarType(info.dtype)).device(device_));
}

const plan::ParamInfo& ParamTable::Info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw BuildError(absl::StrCat("the plan has no parameter '", name, "'"));
  return params_[it->second];
}

void ParamTable::CheckAllTaken() const {
  std::vector<std::string> missing;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!taken_[i]) missing.push_back(params_[i].name);
  }
  if (!missing.empty()) {
    throw BuildError(
        absl::StrCat("planned parameters no module registered: ", absl::StrJoin(missing, ", ")));
  }
}

}  // namespace gptb::model
