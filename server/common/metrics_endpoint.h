#ifndef GPTB_SERVER_COMMON_METRICS_ENDPOINT_H_
#define GPTB_SERVER_COMMON_METRICS_ENDPOINT_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace gptb::server {

// The HTTP side of /metrics: answers GET (and HEAD) /metrics with the text the render function
// returns, 404 for other paths, 405 for other methods; one request per connection.
//
// Why not prometheus-cpp's Exposer: it runs on civetweb, which Debian builds with a fixed
// 100 KiB thread stack, and glibc carves a process's static TLS out of every thread's stack.
// LibTorch alone takes ~46 KiB of it, so civetweb threads had ~54 KiB left, and any library with
// a large TLS block (OpenBLAS: 60 KiB) made pthread_create fail with EINVAL: no /metrics at all.
// These threads use the default stack size.
//
// Bounded against hostile clients: a request head of at most 8 KiB, read within 5 s; at most
// kHandlers requests served at once and kQueued waiting, further connections are closed at once.
class MetricsEndpoint {
 public:
  using Render = std::function<std::string()>;
  static constexpr int kHandlers = 2;
  static constexpr size_t kQueued = 16;
  static constexpr size_t kMaxRequestHead = 8192;
  static constexpr int kRequestTimeoutMs = 5000;

  // Binds `listen` ("HOST:PORT", "[V6ADDR]:PORT", or "PORT" for every IPv4 interface; port 0
  // picks a free one) and starts serving. UNAVAILABLE when the address cannot be bound,
  // INVALID_ARGUMENT when it is not of that form.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& listen,
                                                                Render render);
  // Stops accepting, drops queued connections, waits for requests in progress.
  ~MetricsEndpoint();

  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int wake_fd, int port, Render render);
  void AcceptLoop();
  void HandlerLoop();
  void Serve(int fd) const;

  const int listen_fd_;
  const int wake_fd_;  // an eventfd the destructor writes to end AcceptLoop's poll
  const int port_;
  const Render render_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<int> queue_;  // accepted connections waiting for a handler (guarded by mu_)
  bool stopping_ = false;  // guarded by mu_
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

// Splits "HOST:PORT", "[V6ADDR]:PORT" or "PORT" into host ("" for every interface) and port.
absl::Status ParseListenAddress(const std::string& listen, std::string* host, std::string* port);

}  // namespace gptb::server

#endif  // GPTB_SERVER_COMMON_METRICS_ENDPOINT_H_
