#ifndef GPTB_CORE_PLAN_PLAN_DESCRIPTION_H_
#define GPTB_CORE_PLAN_PLAN_DESCRIPTION_H_

#include "core/plan/model_plan.h"
#include "gptbuilder/v1/plan.pb.h"

namespace gptb::plan {

// The one encoding of a plan and of its stages (gptbuilder/v1/plan.proto): PlanModel returns it,
// `gptb plan --format json` prints it (PlanToJson), and a held model's describe is the planned
// stage with the held tensors' checksums added.
gptbuilder::v1::StageDescription DescribeStage(const StagePlan& stage);
// Which ranks DescribePlan lists, and whether with the plan's process groups.
struct DescribeOptions {
  int first_rank = 0;
  int num_ranks = -1;  // -1: through the last rank; clamped to the world
  bool process_groups = true;
};
gptbuilder::v1::PlanDescription DescribePlan(const ModelPlan& plan,
                                             const DescribeOptions& options = {});

}  // namespace gptb::plan

#endif  // GPTB_CORE_PLAN_PLAN_DESCRIPTION_H_
