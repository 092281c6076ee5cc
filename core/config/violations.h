#ifndef GPTB_CORE_CONFIG_VIOLATIONS_H_
#define GPTB_CORE_CONFIG_VIOLATIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace gptb::config {

// One problem with a request field: the dotted field path (`transformer.num_attention_heads`,
// `[i]` for repeated elements), an UPPER_SNAKE reason code, and a sentence that says what would
// be valid. Mirrors google.rpc.BadRequest.FieldViolation.
struct FieldViolation {
  std::string field;
  std::string reason;
  std::string description;

  bool operator==(const FieldViolation& other) const {
    return field == other.field && reason == other.reason && description == other.description;
  }
};

// Collects every violation of a request so that all of them are reported at once.
class Violations {
 public:
  void Add(std::string field, std::string reason, std::string description);
  void Append(const Violations& other);

  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  const std::vector<FieldViolation>& list() const { return list_; }
  // True when some violation names exactly this field.
  bool Mentions(const std::string& field) const;

  // OK when empty; otherwise INVALID_ARGUMENT whose message has one `field: description` line
  // per violation and whose payload (kBadRequestTypeUrl) is a serialized google.rpc.BadRequest.
  absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> list_;
};

inline constexpr char kBadRequestTypeUrl[] = "type.googleapis.com/google.rpc.BadRequest";

// The violations carried by a status made by Violations::ToStatus (empty for any other status).
std::vector<FieldViolation> ViolationsFromStatus(const absl::Status& status);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_VIOLATIONS_H_
