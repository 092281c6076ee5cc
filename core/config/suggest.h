#ifndef GPTB_CORE_CONFIG_SUGGEST_H_
#define GPTB_CORE_CONFIG_SUGGEST_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "google/protobuf/descriptor.h"

namespace gptb::config {

// Levenshtein distance (insert, delete, substitute; all cost 1), case-sensitive.
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `name` when it is close enough to be a plausible typo (distance at most
// max(2, len/3), or equal ignoring case); ties go to the earlier candidate. nullopt otherwise.
std::optional<std::string> ClosestName(std::string_view name,
                                       const std::vector<std::string>& candidates);

// The field names of a message type, in declaration order.
std::vector<std::string> FieldNames(const google::protobuf::Descriptor& descriptor);

// " Did you mean 'x'?" for the closest candidate, or "" when nothing is close.
std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_SUGGEST_H_
