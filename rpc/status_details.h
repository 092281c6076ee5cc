#ifndef GPTB_RPC_STATUS_DETAILS_H_
#define GPTB_RPC_STATUS_DETAILS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace gptb::rpc {

// absl::Status payload type URLs for the google.rpc error details gptbuilder attaches (AIP-193).
// BadRequest's is core's kBadRequestTypeUrl (core/config/violations.h).
inline constexpr char kPreconditionFailureTypeUrl[] =
    "type.googleapis.com/google.rpc.PreconditionFailure";
inline constexpr char kQuotaFailureTypeUrl[] = "type.googleapis.com/google.rpc.QuotaFailure";
inline constexpr char kErrorInfoTypeUrl[] = "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr char kErrorDomain[] = "gptbuilder.dev";

struct PreconditionViolation {
  std::string type;  // e.g. "WORKERS"
  std::string subject;
  std::string description;
};

struct QuotaViolation {
  std::string subject;  // e.g. "rank 3"
  std::string description;
};

// FAILED_PRECONDITION with a google.rpc.PreconditionFailure and an ErrorInfo{reason}.
absl::Status PreconditionFailedError(std::string_view reason, std::string_view message,
                                     const std::vector<PreconditionViolation>& violations);

// RESOURCE_EXHAUSTED with a google.rpc.QuotaFailure and an ErrorInfo{reason}.
absl::Status ResourceExhaustedError(std::string_view reason, std::string_view message,
                                    const std::vector<QuotaViolation>& violations);

// Attaches google.rpc.ErrorInfo{reason, domain kErrorDomain} to `status` (a copy).
absl::Status WithErrorInfo(absl::Status status, std::string_view reason);

// The ErrorInfo reason of a status, or "" when it has none.
std::string ErrorReason(const absl::Status& status);

}  // namespace gptb::rpc

#endif  // GPTB_RPC_STATUS_DETAILS_H_
