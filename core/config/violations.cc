#include "core/config/violations.h"

#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/rpc/error_details.pb.h"

namespace gptb::config {

void Violations::Add(std::string field, std::string reason, std::string description) {
  if (list_.size() >= kMaxListed) {
    ++omitted_;
    return;
  }
  list_.push_back({Excerpt(field, kMaxFieldBytes), std::move(reason),
                   Excerpt(description, kMaxDescriptionBytes)});
}

void Violations::Append(const Violations& other) {
  for (const FieldViolation& v : other.list_) Add(v.field, v.reason, v.description);
  omitted_ += other.omitted_;
}

bool Violations::Mentions(const std::string& field) const {
  for (const FieldViolation& v : list_) {
    if (v.field == field) return true;
  }
  return false;
}

absl::Status Violations::ToStatus() const {
  if (list_.empty()) return absl::OkStatus();
  google::rpc::BadRequest bad_request;
  std::vector<std::string> lines;
  lines.reserve(list_.size());
  for (const FieldViolation& v : list_) {
    google::rpc::BadRequest::FieldViolation* fv = bad_request.add_field_violations();
    fv->set_field(v.field);
    fv->set_reason(v.reason);
    fv->set_description(v.description);
    lines.push_back(absl::StrCat(v.field, ": ", v.description));
  }
  if (omitted_ > 0) {
    const std::string more = absl::StrCat("and ", omitted_, " more violations not listed (at most ",
                                          kMaxListed, " are); fix these and ask again");
    google::rpc::BadRequest::FieldViolation* fv = bad_request.add_field_violations();
    fv->set_reason("TOO_MANY_VIOLATIONS");
    fv->set_description(more);
    lines.push_back(more);
  }
  absl::Status status = absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(bad_request.SerializeAsString()));
  return status;
}

std::vector<FieldViolation> ViolationsFromStatus(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kBadRequestTypeUrl);
  if (!payload.has_value()) return out;
  google::rpc::BadRequest bad_request;
  if (!bad_request.ParseFromString(std::string(*payload))) return out;
  for (const auto& fv : bad_request.field_violations()) {
    out.push_back({fv.field(), fv.reason(), fv.description()});
  }
  return out;
}

}  // namespace gptb::config
