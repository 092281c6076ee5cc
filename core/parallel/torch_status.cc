#include "core/parallel/torch_status.h"

#include <c10/util/Exception.h>

#include <new>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gptb::parallel {

std::string ExceptionMessage(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return error->what_without_backtrace();
  }
  return e.what();
}

absl::Status StatusFromException(std::string_view what, const std::exception& e) {
  std::string reason = ExceptionMessage(e);
  // c10::Error appends "Exception raised from ..." to the message itself; keep the first line.
  if (size_t nl = reason.find('\n'); nl != std::string::npos) reason.resize(nl);
  const std::string message =
      absl::StrCat(absl::string_view(what.data(), what.size()), ": ", reason);
  const std::string lower = absl::AsciiStrToLower(reason);
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(message);
  }
  if (absl::StrContains(lower, "timeout") || absl::StrContains(lower, "timed out")) {
    return absl::DeadlineExceededError(message);
  }
  if (absl::StrContains(lower, "connection refused") ||
      absl::StrContains(lower, "connection closed") ||
      absl::StrContains(lower, "connection reset") || absl::StrContains(lower, "broken pipe")) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

}  // namespace gptb::parallel
