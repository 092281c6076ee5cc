#include "core/plan/memory.h"

namespace gptb::plan {

RankMemory ComputeRankMemory(const std::vector<const StagePlan*>& stages,
                             const PlanOptions& options, int dp_cp_size, int expert_dp_size) {
  RankMemory m;
  int64_t dense_state = 0;
  int64_t expert_state = 0;
  // The per-stage sums ModelPlan::Create made with these options (its checks keep every sum
  // within int64).
  for (const StagePlan* stage : stages) {
    m.num_params += stage->num_params;
    m.param_bytes += stage->param_bytes;
    m.grad_bytes += stage->grad_bytes;
    dense_state += stage->dense_optimizer_bytes;
    expert_state += stage->expert_optimizer_bytes;
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
