#include "server/coordinator/operations.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rpc/grpc_status.h"

namespace gptb::coordinator {

using gptbuilder::v1::Model;

namespace {

// How often a wait looks at the caller's cancellation.
constexpr absl::Duration kCancelPoll = absl::Milliseconds(200);

}  // namespace

google::longrunning::Operation OperationOf(const Model& model,
                                           const std::map<std::string, absl::Status>& failures) {
  google::longrunning::Operation op;
  op.set_name(model.operation());
  gptbuilder::v1::BuildMetadata metadata;
  metadata.set_model(model.name());
  metadata.set_state(model.state());
  *metadata.mutable_progress() = model.progress();
  *metadata.mutable_create_time() = model.create_time();
  op.mutable_metadata()->PackFrom(metadata);
  if (model.state() == Model::READY) {
    op.set_done(true);
    op.mutable_response()->PackFrom(model);
  } else if (model.state() == Model::FAILED) {
    op.set_done(true);
    auto it = failures.find(model.build_id());
    absl::Status failure = it != failures.end() ? it->second : absl::AbortedError(model.reason());
    *op.mutable_error() = rpc::ToRpcStatus(absl::Status(failure.code(), model.reason()));
  }
  return op;
}

absl::StatusOr<const Model*> Operations::FindLocked(const std::string& name) const {
  if (!absl::StartsWith(name, kOperationPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat("operation names look like ", kOperationPrefix,
                                                   "<build id>; got '", name, "'"));
  }
  const std::string build_id = name.substr(sizeof(kOperationPrefix) - 1);
  for (const Model& model : ctx_->models.List()) {
    if (model.build_id() == build_id) return ctx_->models.Find(model.name());
  }
  return absl::NotFoundError(
      absl::StrCat("operation '", name, "' not found (its model may have been released)"));
}

absl::StatusOr<google::longrunning::Operation> Operations::GetOperation(
    const std::string& name) const {
  MutexLock lock(&ctx_->mu);
  absl::StatusOr<const Model*> model = FindLocked(name);
  if (!model.ok()) return model.status();
  return OperationOf(**model, ctx_->failures);
}

absl::StatusOr<google::longrunning::Operation> Operations::WaitOperation(
    const std::string& name, absl::Time deadline, const std::function<bool()>& cancelled) {
  while (true) {
    absl::StatusOr<google::longrunning::Operation> op = GetOperation(name);
    if (!op.ok() || op->done() || absl::Now() >= deadline || cancelled()) return op;
    MutexLock lock(&ctx_->mu);
    ctx_->changed.WaitFor(&ctx_->mu, std::min(kCancelPoll, deadline - absl::Now()));
    if (ctx_->stopping) return absl::UnavailableError("the coordinator is shutting down");
  }
}

absl::Status Operations::CancelOperation(const std::string& name) {
  MutexLock lock(&ctx_->mu);
  absl::StatusOr<const Model*> model = FindLocked(name);
  if (!model.ok()) return model.status();
  builds_->FailBuildLocked((*model)->name(), (*model)->build_id(),
                           absl::CancelledError("the build was cancelled (CancelOperation)"),
                           BuildFailureCause::kStopped);
  return absl::OkStatus();
}

}  // namespace gptb::coordinator
