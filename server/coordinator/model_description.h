#ifndef GPTB_SERVER_COORDINATOR_MODEL_DESCRIPTION_H_
#define GPTB_SERVER_COORDINATOR_MODEL_DESCRIPTION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gptbuilder/v1/coordinator.pb.h"
#include "server/coordinator/coordinator_context.h"

namespace gptb::coordinator {

// What a READY model holds, asked of every worker holding its ranks and laid out in the plan's
// stage order: each stage once (data-parallel replicas whose checksums disagree are listed as
// inconsistent) and each rank's summary. FAILED_PRECONDITION when not READY; DATA_LOSS when the
// workers' answers do not cover the plan; a worker's error names the worker.
absl::StatusOr<gptbuilder::v1::DescribeModelResponse> DescribeModel(CoordinatorContext& ctx,
                                                                    const std::string& name,
                                                                    absl::Time deadline)
    ABSL_LOCKS_EXCLUDED(ctx.mu);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_MODEL_DESCRIPTION_H_
