#ifndef GPTB_CORE_PLAN_MEMORY_H_
#define GPTB_CORE_PLAN_MEMORY_H_

#include <vector>

#include "core/plan/model_plan.h"

namespace gptb::plan {

// Model-state bytes of a rank holding `stages` (one per model chunk).
//
//   param_bytes     = sum over parameters of numel * sizeof(dtype)
//   grad_bytes      = sum of numel * sizeof(grad dtype), grad dtype = float32 when
//                     ddp.grad_reduce_in_fp32, else the parameter dtype (Megatron's DDP grad
//                     buffers; without DDP, autograd keeps grads in the parameter dtype)
//   optimizer_bytes = Adam state: exp_avg and exp_avg_sq in float32 (8 bytes per parameter),
//                     plus a float32 main copy (4 bytes) when parameters are bf16/fp16
//                     (Megatron's mixed-precision optimizer). With use_distributed_optimizer the
//                     state is sharded: dense parameters over dp*cp ranks, expert parameters over
//                     the expert-data-parallel ranks (rounded up).
// Activations and communication buffers are not included: they depend on the batch.
RankMemory ComputeRankMemory(const std::vector<const StagePlan*>& stages,
                             const PlanOptions& options, int dp_cp_size, int expert_dp_size);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_MEMORY_H_
