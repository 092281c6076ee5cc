#ifndef GPTB_SERVER_COMMON_GRPC_STATUS_H_
#define GPTB_SERVER_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace gptb::server {

// The one absl -> gRPC conversion: the code is cast (Abseil's canonical codes equal gRPC's),
// the message is truncated to kMaxStatusMessageBytes, and every payload of the status
// (google.rpc.BadRequest, PreconditionFailure, QuotaFailure, ErrorInfo) becomes a detail of the
// google.rpc.Status sent as the standard `grpc-status-details-bin` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for clients and for the coordinator's calls to workers: the details come back
// as payloads under their type URLs.
absl::Status FromGrpcStatus(const grpc::Status& status);

// google.rpc.Status <-> absl::Status, for statuses carried inside messages.
google::rpc::Status ToRpcStatus(const absl::Status& status);
absl::Status FromRpcStatus(const google::rpc::Status& status);

inline constexpr size_t kMaxStatusMessageBytes = 8192;

}  // namespace gptb::server

#endif  // GPTB_SERVER_COMMON_GRPC_STATUS_H_
