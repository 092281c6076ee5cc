#ifndef GPTB_SERVER_COMMON_LOG_H_
#define GPTB_SERVER_COMMON_LOG_H_

#include <string_view>

namespace gptb::server {

// Daemon logs: one line on stderr, "2026-01-02T03:04:05.678Z <role>: message". Thread-safe.
void SetLogRole(std::string_view role);
void Log(std::string_view message);

}  // namespace gptb::server

#endif  // GPTB_SERVER_COMMON_LOG_H_
