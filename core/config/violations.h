#ifndef GPTB_CORE_CONFIG_VIOLATIONS_H_
#define GPTB_CORE_CONFIG_VIOLATIONS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "base/excerpt.h"

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

using ::gptb::Excerpt;  // base/excerpt.h

// Collects every violation of a request so that all of them are reported at once. Bounded like
// the request itself is not: after kMaxListed violations the rest are counted, and every field
// and description is an Excerpt (kMaxFieldBytes, kMaxDescriptionBytes).
class Violations {
 public:
  static constexpr size_t kMaxListed = 100;
  static constexpr size_t kMaxFieldBytes = 256;
  static constexpr size_t kMaxDescriptionBytes = 1024;

  void Add(std::string field, std::string reason, std::string description);
  void Append(const Violations& other);

  bool empty() const { return list_.empty(); }
  // Violations added (listed or not).
  size_t size() const { return list_.size() + omitted_; }
  const std::vector<FieldViolation>& list() const { return list_; }
  // True when some violation names exactly this field.
  bool Mentions(const std::string& field) const;

  // OK when empty; otherwise INVALID_ARGUMENT whose message has one `field: description` line
  // per violation and whose payload (kBadRequestTypeUrl) is a serialized google.rpc.BadRequest.
  // Violations past kMaxListed end the list as one TOO_MANY_VIOLATIONS entry that counts them.
  absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> list_;
  size_t omitted_ = 0;
};

inline constexpr char kBadRequestTypeUrl[] = "type.googleapis.com/google.rpc.BadRequest";

// The violations carried by a status made by Violations::ToStatus (empty for any other status).
std::vector<FieldViolation> ViolationsFromStatus(const absl::Status& status);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_VIOLATIONS_H_
