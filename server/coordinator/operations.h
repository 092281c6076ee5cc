#ifndef GPTB_SERVER_COORDINATOR_OPERATIONS_H_
#define GPTB_SERVER_COORDINATOR_OPERATIONS_H_

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/longrunning/operations.pb.h"
#include "gptbuilder/v1/model.pb.h"
#include "server/coordinator/build_orchestrator.h"
#include "server/coordinator/coordinator_context.h"

namespace gptb::coordinator {

// Builds are long-running operations named "operations/<build id>".
inline constexpr char kOperationPrefix[] = "operations/";

// The operation of `model`'s build: done with the model when READY, done with the build's
// failure (from `failures`, by build id) when FAILED, running otherwise.
google::longrunning::Operation OperationOf(const gptbuilder::v1::Model& model,
                                           const std::map<std::string, absl::Status>& failures);

// google.longrunning.Operations over the builds.
class Operations {
 public:
  Operations(CoordinatorContext* context, BuildOrchestrator* builds)
      : ctx_(context), builds_(builds) {}

  absl::StatusOr<google::longrunning::Operation> GetOperation(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(ctx_->mu);
  // Waits until the operation is done, `deadline` passes or `cancelled` turns true.
  absl::StatusOr<google::longrunning::Operation> WaitOperation(
      const std::string& name, absl::Time deadline, const std::function<bool()>& cancelled)
      ABSL_LOCKS_EXCLUDED(ctx_->mu);
  // Fails the build as CANCELLED (its ranks are released); OK for a build already over.
  absl::Status CancelOperation(const std::string& name) ABSL_LOCKS_EXCLUDED(ctx_->mu);

 private:
  // The model whose build `name` names; INVALID_ARGUMENT or NOT_FOUND.
  absl::StatusOr<const gptbuilder::v1::Model*> FindLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx_->mu);

  CoordinatorContext* const ctx_;
  BuildOrchestrator* const builds_;
};

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_OPERATIONS_H_
