#include "server/common/log.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gptb::server {
namespace {

std::mutex& LogMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

std::string& Role() {
  static std::string* role = new std::string("gptbd");
  return *role;
}

}  // namespace

void SetLogRole(std::string_view role) {
  std::lock_guard<std::mutex> lock(LogMutex());
  Role() = std::string(role);
}

void Log(std::string_view message) {
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::lock_guard<std::mutex> lock(LogMutex());
  std::fprintf(stderr, "%s %s: %.*s\n", time.c_str(), Role().c_str(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

}  // namespace gptb::server
