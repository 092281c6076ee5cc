#ifndef GPTB_CORE_PARALLEL_TORCH_STATUS_H_
#define GPTB_CORE_PARALLEL_TORCH_STATUS_H_

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gptb::parallel {

// The message of an exception, without the C++ backtrace LibTorch appends to c10::Error.
std::string ExceptionMessage(const std::exception& e);

// Maps an exception thrown by LibTorch or c10d to a status whose message is "<what>: <reason>".
// Store and Gloo timeouts become DEADLINE_EXCEEDED, refused or closed connections (a peer gone)
// UNAVAILABLE, allocation failures RESOURCE_EXHAUSTED, anything else INTERNAL.
absl::Status StatusFromException(std::string_view what, const std::exception& e);

// Runs `fn` (returning void or absl::Status) and turns any exception into a status (see above).
template <typename Fn>
absl::Status CallTorch(std::string_view what, Fn&& fn) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<Fn>(fn)();
    }
  } catch (const std::exception& e) {
    return StatusFromException(what, e);
  }
}

namespace internal {
template <typename T>
struct AsStatusOr {
  using type = absl::StatusOr<T>;
};
template <typename T>
struct AsStatusOr<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};
}  // namespace internal

// Runs `fn` returning a value T (or absl::StatusOr<T>) and turns any exception into a status.
template <typename Fn>
auto CallTorchOr(std::string_view what, Fn&& fn) {
  using Result = typename internal::AsStatusOr<std::decay_t<std::invoke_result_t<Fn>>>::type;
  try {
    return Result(std::forward<Fn>(fn)());
  } catch (const std::exception& e) {
    return Result(StatusFromException(what, e));
  }
}

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_TORCH_STATUS_H_
