#ifndef GPTB_CORE_MODEL_PARAM_TABLE_H_
#define GPTB_CORE_MODEL_PARAM_TABLE_H_

#include <torch/torch.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/model/torch_dtype.h"
#include "core/plan/parameter_table.h"

namespace gptb::model {

// Raised while a stage is being constructed; BuildRankModel turns it into a status. Module
// constructors cannot return statuses, and a half-built stage is simply dropped.
class BuildError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The plan's parameters of one stage, handed out to the modules that register them. The plan is
// the one source of truth for which parameters exist and their shapes: a module asks for
// `prefix + "weight"` and gets a freshly allocated (uninitialised) tensor of the planned shape
// and dtype, or learns that the plan has no such parameter (e.g. no bias).
//
// Each tensor comes from LibTorch's allocator. (A stage-wide mapping advised for transparent huge
// pages was tried, issue 15: on the project's VM the 1.3B fp32 build took 2-3x longer, the time
// in zeroing fresh 2 MiB pages -- clear_page_erms under do_huge_pmd_anonymous_page, 84% of the
// samples -- plus direct compaction, against 4 KiB first touch.)
class ParamTable {
 public:
  ParamTable(const std::vector<plan::ParamInfo>& params, torch::Device device);

  bool Has(const std::string& name) const { return index_.count(name) > 0; }
  // Allocates the planned tensor; throws BuildError when the plan has no such parameter or it
  // was already taken.
  torch::Tensor Take(const std::string& name);
  const plan::ParamInfo& Info(const std::string& name) const;
  // Throws BuildError naming every planned parameter no module took.
  void CheckAllTaken() const;

 private:
  const std::vector<plan::ParamInfo>& params_;
  torch::Device device_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<bool> taken_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_PARAM_TABLE_H_
