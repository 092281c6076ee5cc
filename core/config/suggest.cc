#include "core/config/suggest.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gptb::config {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<std::string> ClosestName(std::string_view name,
                                       const std::vector<std::string>& candidates) {
  const std::string lowered = absl::AsciiStrToLower(std::string(name));
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    // Lengths further apart than the limit are further apart in edit distance too: skipping them
    // changes no answer and keeps a long unknown name (config text comes over the wire) from
    // costing its length times every candidate's.
    const size_t gap = name.size() > candidate.size() ? name.size() - candidate.size()
                                                      : candidate.size() - name.size();
    if (gap > limit) continue;
    // A case-only difference ("rmsnorm" vs "RMSNorm") is the most likely intent of all.
    const size_t distance =
        absl::AsciiStrToLower(candidate) == lowered ? 0 : EditDistance(name, candidate);
    if (!best.has_value() || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best.has_value()) return std::nullopt;
  if (best_distance > limit) return std::nullopt;
  return best;
}

std::vector<std::string> FieldNames(const google::protobuf::Descriptor& descriptor) {
  std::vector<std::string> names;
  names.reserve(descriptor.field_count());
  for (int i = 0; i < descriptor.field_count(); ++i) names.push_back(descriptor.field(i)->name());
  return names;
}

std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates) {
  std::optional<std::string> closest = ClosestName(name, candidates);
  if (!closest.has_value()) return "";
  return absl::StrCat(" Did you mean '", *closest, "'?");
}

}  // namespace gptb::config
