#ifndef GPTB_CORE_TRAIN_ROUTER_EXPERT_BIAS_H_
#define GPTB_CORE_TRAIN_ROUTER_EXPERT_BIAS_H_

#include "absl/status/status.h"
#include "core/model/rank_model.h"

namespace gptb::train {

// Megatron's _update_router_expert_bias and reset_model_temporary_tensors (finalize_model_grads,
// moe_router_enable_expert_bias): every MoE router of this rank's chunks, stacked in order, has
// its count of the tokens it routed to each expert since the last update summed over the
// tensor-, data- and context-parallel group (one all-reduce; the ranks of that group hold the
// same layers, so the stacks line up), its expert_bias moved by moe_router_bias_update_rate
// towards the less used experts (bias += rate * sign(mean count - count)), and its counts
// zeroed. A no-op without expert bias. Every rank of the model calls it, after the gradients'
// reductions (FinalizeGrads does). UNAVAILABLE / DEADLINE_EXCEEDED / INTERNAL when the
// all-reduce fails.
absl::Status UpdateRouterExpertBias(model::RankModel& model);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_ROUTER_EXPERT_BIAS_H_
