#include "core/plan/memory.h"

namespace gptb::plan {

RankMemory ComputeRankMemory(const std::vector<const StagePlan*>& stages,
                             const PlanOptions& options, int dp_cp_size, int expert_dp_size) {
  RankMemory m;
  int64_t dense_state = 0;
  int64_t expert_state = 0;
  for (const StagePlan* stage : stages) {
    for (const ParamInfo& p : stage->params) {
      const int64_t n = p.numel();
      m.num_params += n;
      m.param_bytes += n * DTypeBytes(p.dtype);
      const int grad_size = options.ddp.grad_reduce_in_fp32() ? 4 : DTypeBytes(p.dtype);
      m.grad_bytes += n * grad_size;
      const int64_t state = n * (p.dtype == DType::kFloat32 ? 8 : 12);
      (p.is_expert ? expert_state : dense_state) += state;
    }
  }
  if (options.ddp.use_distributed_optimizer()) {
    const auto shard = [](int64_t bytes, int ranks) {
      return ranks <= 1 ? bytes : (bytes + ranks - 1) / ranks;
    };
    m.optimizer_bytes = shard(dense_state, dp_cp_size) + shard(expert_state, expert_dp_size);
  } else {
    m.optimizer_bytes = dense_state + expert_state;
  }
  return m;
}

}  // namespace gptb::plan
