#include "rpc/status_details.h"

#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"

namespace gptb::rpc {

absl::Status WithErrorInfo(absl::Status status, std::string_view reason) {
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(kErrorDomain);
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

std::string ErrorReason(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorInfoTypeUrl);
  if (!payload.has_value()) return "";
  google::rpc::ErrorInfo info;
  if (!info.ParseFromString(std::string(*payload))) return "";
  return info.reason();
}

absl::Status PreconditionFailedError(std::string_view reason, std::string_view message,
                                     const std::vector<PreconditionViolation>& violations) {
  google::rpc::PreconditionFailure failure;
  for (const PreconditionViolation& v : violations) {
    auto* out = failure.add_violations();
    out->set_type(v.type);
    out->set_subject(v.subject);
    out->set_description(v.description);
  }
  absl::Status status = absl::FailedPreconditionError(std::string(message));
  status.SetPayload(kPreconditionFailureTypeUrl, absl::Cord(failure.SerializeAsString()));
  return WithErrorInfo(std::move(status), reason);
}

absl::Status ResourceExhaustedError(std::string_view reason, std::string_view message,
                                    const std::vector<QuotaViolation>& violations) {
  google::rpc::QuotaFailure failure;
  for (const QuotaViolation& v : violations) {
    auto* out = failure.add_violations();
    out->set_subject(v.subject);
    out->set_description(v.description);
  }
  absl::Status status = absl::ResourceExhaustedError(std::string(message));
  status.SetPayload(kQuotaFailureTypeUrl, absl::Cord(failure.SerializeAsString()));
  return WithErrorInfo(std::move(status), reason);
}

}  // namespace gptb::rpc
