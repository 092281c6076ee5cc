#ifndef GPTB_CORE_PLAN_PLAN_FORMAT_H_
#define GPTB_CORE_PLAN_PLAN_FORMAT_H_

#include <string>

#include "core/plan/model_plan.h"
#include "gptbuilder/v1/plan.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::plan {

// The `gptb plan --format json` contract (DESIGN.md): padded_vocab_size, world_size, stages
// (tp_rank, pp_rank, ep_rank, vp_stage or null, pre_process, post_process, layers, params
// [{name, shape, dtype}] in registration order, num_params) and ranks (per global rank: its
// coordinates, the stages it holds, its process groups and its model-state bytes). Extra keys
// (parallel sizes, etp_rank, mtp_layers, layer_spec, param_bytes, total_params) are additive.
// Process groups: "process_groups" at the top (every group of every kind once, when the
// description has them) and per rank "groups", the index of its group of each kind there (null
// for none): members per rank would grow with world^2. From the plan's one encoding
// (plan_description.h DescribePlan; a page of ranks when it lists one).
nlohmann::json PlanToJson(const gptbuilder::v1::PlanDescription& plan);

// One stage, for `gptb plan` and `gptb describe` alike: every key above, plus each parameter's
// "checksum" (16 hex digits) where the description has one (a held model's).
nlohmann::json StageToJson(const gptbuilder::v1::StageDescription& stage);

// A table for people: the parallel layout, one row per stage (layers, parameters, bytes) and
// the totals.
std::string PlanToTable(const ModelPlan& plan);

// "1.23 GiB"-style rendering of a byte count.
std::string HumanBytes(int64_t bytes);

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PLAN_FORMAT_H_
