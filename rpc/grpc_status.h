#ifndef GPTB_RPC_GRPC_STATUS_H_
#define GPTB_RPC_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace gptb::rpc {

// The one absl -> gRPC conversion: the code is cast (Abseil's canonical codes equal gRPC's),
// the message is truncated to kMaxStatusMessageBytes, and every payload of the status
// (google.rpc.BadRequest, PreconditionFailure, QuotaFailure, ErrorInfo) becomes a detail of the
// google.rpc.Status sent as the standard `grpc-status-details-bin` trailer, within
// kMaxStatusDetailsBytes: a BadRequest over it keeps the violations that fit (descriptions
// shortened) and ends with one saying how many were left out. Both bounds keep the trailers
// under gRPC's default 8 KiB metadata limit, past which a client sees RESOURCE_EXHAUSTED
// instead of the error (the message is percent-encoded and the details base64-encoded).
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for clients and for the coordinator's calls to workers: the details come back
// as payloads under their type URLs.
absl::Status FromGrpcStatus(const grpc::Status& status);

// google.rpc.Status <-> absl::Status, for statuses carried inside messages.
google::rpc::Status ToRpcStatus(const absl::Status& status);
absl::Status FromRpcStatus(const google::rpc::Status& status);

// The message travels twice: as grpc-message (percent-encoded) and inside the details'
// google.rpc.Status (base64-encoded), next to the details themselves.
inline constexpr size_t kMaxStatusMessageBytes = 2048;
inline constexpr size_t kMaxStatusDetailsBytes = 1536;

}  // namespace gptb::rpc

#endif  // GPTB_RPC_GRPC_STATUS_H_
