#ifndef GPTB_CORE_PLAN_PLAN_FORMAT_H_
#define GPTB_CORE_PLAN_PLAN_FORMAT_H_

#include <string>

#include "core/plan/model_plan.h"
#include "nlohmann/json.hpp"

namespace gptb::plan {

// Which ranks PlanToJson lists, and whether with their process groups.
struct PlanJsonOptions {
  int first_rank = 0;
  int num_ranks = -1;  // -1: through the last rank
  // "process_groups" at the top (every group of every kind, once: O(kinds x world) members)
  // and, per rank, "groups": the index of its group of each kind there (null when it has none).
  // Listing the members per rank instead would grow with world^2.
  bool process_groups = true;
};

// The `gptb plan --format json` contract (DESIGN.md): padded_vocab_size, world_size, stages
// (tp_rank, pp_rank, ep_rank, vp_stage or null, pre_process, post_process, layers, params
// [{name, shape, dtype}] in registration order, num_params) and ranks (per global rank: its
// coordinates, the stages it holds and its model-state bytes). Extra keys (parallel sizes,
// etp_rank, mtp_layers, layer_spec, param_bytes, total_params, process groups) are additive.
nlohmann::json PlanToJson(const ModelPlan& plan, const PlanJsonOptions& options = {});

// The stage part of one StagePlan, shared with `gptb describe`.
nlohmann::json StageToJson(const StagePlan& stage);

// A table for people: the parallel layout, one row per stage (layers, parameters, bytes) and
// the totals.
std::string PlanToTable(const ModelPlan& plan);

// "1.23 GiB"-style rendering of a byte count.
std::string HumanBytes(int64_t bytes);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PLAN_FORMAT_H_
