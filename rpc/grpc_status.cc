#include "rpc/grpc_status.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "base/excerpt.h"
#include "google/rpc/error_details.pb.h"

namespace gptb::rpc {

namespace {

constexpr char kBadRequestUrl[] = "type.googleapis.com/google.rpc.BadRequest";

// A BadRequest cut to at most `budget` serialized bytes: descriptions shortened, then the
// violations that fit, then one counting those left out.
std::string BoundedBadRequest(const std::string& serialized, size_t budget) {
  google::rpc::BadRequest in;
  if (!in.ParseFromString(serialized)) return std::string();
  google::rpc::BadRequest out;
  int omitted = 0;
  constexpr size_t kReserve = 96;  // the closing "left out" violation
  for (const auto& v : in.field_violations()) {
    google::rpc::BadRequest::FieldViolation shortened = v;
    shortened.set_field(Excerpt(v.field(), 128));
    shortened.set_description(Excerpt(v.description(), 256));
    if (omitted == 0 && out.ByteSizeLong() + shortened.ByteSizeLong() + 4 + kReserve <= budget) {
      *out.add_field_violations() = std::move(shortened);
    } else {
      ++omitted;
    }
  }
  if (omitted > 0) {
    auto* more = out.add_field_violations();
    more->set_reason("TOO_MANY_VIOLATIONS");
    more->set_description(absl::StrCat("and ", omitted, " more violations (see the message)"));
  }
  return out.SerializeAsString();
}

}  // namespace

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int>(status.code()));
  std::string message = Excerpt(status.message(), kMaxStatusMessageBytes);
  out.set_message(std::move(message));
  size_t used = 0;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    std::string value(payload);
    const size_t overhead = type_url.size() + 8;
    if (used + overhead + value.size() > kMaxStatusDetailsBytes) {
      value = type_url == kBadRequestUrl && used + overhead < kMaxStatusDetailsBytes
                  ? BoundedBadRequest(value, kMaxStatusDetailsBytes - used - overhead)
                  : std::string();
      if (value.empty()) return;  // not even a shortened form fits: the message says it all
    }
    used += overhead + value.size();
    google::protobuf::Any* any = out.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::move(value));
  });
  return out;
}

absl::Status FromRpcStatus(const google::rpc::Status& status) {
  absl::Status out(static_cast<absl::StatusCode>(status.code()), status.message());
  if (out.ok()) return out;
  for (const google::protobuf::Any& any : status.details()) {
    out.SetPayload(any.type_url(), absl::Cord(any.value()));
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status rpc = ToRpcStatus(status);
  return grpc::Status(static_cast<grpc::StatusCode>(rpc.code()), rpc.message(),
                      rpc.details_size() > 0 ? rpc.SerializeAsString() : std::string());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  google::rpc::Status rpc;
  if (!status.error_details().empty() && rpc.ParseFromString(status.error_details())) {
    // The trailer's code and message are authoritative; the details come from the proto.
    rpc.set_code(status.error_code());
    rpc.set_message(status.error_message());
    return FromRpcStatus(rpc);
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace gptb::rpc
