#include "server/common/metrics_endpoint.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gptb::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(int err) { return std::strerror(err); }

// Waits until `fd` is ready for `events`; false on timeout, error or when `wake` (the endpoint
// stopping) fires.
bool WaitFor(int fd, short events, int wake, int timeout_ms) {
  while (true) {
    pollfd p[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
    const int ready = poll(p, 2, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0 && p[1].revents == 0 && (p[0].revents & events) != 0;
  }
}

// Writes all of `data`, giving up when the peer stops reading for the request timeout.
void SendAll(int fd, int wake, absl::string_view data) {
  while (!data.empty()) {
    if (!WaitFor(fd, POLLOUT, wake, MetricsEndpoint::kRequestTimeoutMs)) return;
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string Response(int code, const char* reason, absl::string_view content_type,
                     absl::string_view body, bool head) {
  std::string out = absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                                 "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n",
                                 code == 405 ? "Allow: GET, HEAD\r\n" : "", "\r\n");
  if (!head) absl::StrAppend(&out, body);
  return out;
}

// Reads the request head (through the blank line) within the deadline; false when the client
// sends too much, too slowly or closes first.
bool ReadHead(int fd, int wake, std::string* head) {
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(MetricsEndpoint::kRequestTimeoutMs);
  char buffer[1024];
  while (head->find("\r\n\r\n") == std::string::npos && head->find("\n\n") == std::string::npos) {
    if (head->size() > MetricsEndpoint::kMaxRequestHead) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    if (!WaitFor(fd, POLLIN, wake, static_cast<int>(left))) return false;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return false;
    head->append(buffer, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::Status ParseListenAddress(const std::string& listen, std::string* host, std::string* port) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", listen, "': ", why,
                     "; expected HOST:PORT, [IPV6]:PORT or PORT (port 0 picks a free one)"));
  };
  absl::string_view rest = listen;
  host->clear();
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return bad("an IPv6 address needs [ADDR]:PORT");
    }
    *host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 2);
  } else if (const size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    *host = std::string(rest.substr(0, colon));
    if (host->find(':') != std::string::npos) return bad("put an IPv6 address in brackets");
    rest.remove_prefix(colon + 1);
  }
  int value = 0;
  if (rest.empty() || !std::all_of(rest.begin(), rest.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(rest, &value) || value > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  *port = std::string(rest);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& listen,
                                                                        Render render) {
  std::string host, port;
  if (absl::Status s = ParseListenAddress(listen, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = host.empty() ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", listen, ": cannot resolve the host: ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = Errno(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      error = Errno(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", listen, ": cannot serve /metrics: ", error));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("--metrics-listen: eventfd: ", Errno(err)));
  }
  std::unique_ptr<MetricsEndpoint> endpoint(
      new MetricsEndpoint(fd, wake, bound_port, std::move(render)));
  endpoint->acceptor_ = std::thread([e = endpoint.get()] { e->AcceptLoop(); });
  for (int i = 0; i < kHandlers; ++i) {
    endpoint->handlers_.emplace_back([e = endpoint.get()] { e->HandlerLoop(); });
  }
  return endpoint;
}

MetricsEndpoint::MetricsEndpoint(int listen_fd, int wake_fd, int port, Render render)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port), render_(std::move(render)) {}

MetricsEndpoint::~MetricsEndpoint() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  ready_.notify_all();
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // An eventfd write fails only on counter overflow; the poll wakes either way.
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& t : handlers_) t.join();
  for (int fd : queue_) close(fd);
  close(listen_fd_);
  close(wake_fd_);
}

void MetricsEndpoint::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client went away, or out of descriptors for now
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= kQueued) {
      close(fd);
      continue;
    }
    queue_.push_back(fd);
    ready_.notify_one();
  }
}

void MetricsEndpoint::HandlerLoop() {
  while (true) {
    int fd = -1;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      fd = queue_.front();
      queue_.pop_front();
    }
    Serve(fd);
    // Half-close first: closing with unread request bytes would reset the connection and could
    // lose the response on its way.
    shutdown(fd, SHUT_WR);
    close(fd);
  }
}

void MetricsEndpoint::Serve(int fd) const {
  std::string head;
  if (!ReadHead(fd, wake_fd_, &head)) {
    if (head.size() > kMaxRequestHead) {
      SendAll(fd, wake_fd_,
              Response(431, "Request Header Fields Too Large", "text/plain",
                       "request head over 8 KiB\n", false));
    }
    return;
  }
  // Request line: METHOD SP TARGET SP VERSION.
  const absl::string_view line = absl::string_view(head).substr(0, head.find_first_of("\r\n"));
  const size_t first = line.find(' ');
  const size_t second = first == absl::string_view::npos ? first : line.find(' ', first + 1);
  if (second == absl::string_view::npos || !absl::StartsWith(line.substr(second + 1), "HTTP/")) {
    SendAll(fd, wake_fd_,
            Response(400, "Bad Request", "text/plain", "malformed request line\n", false));
    return;
  }
  const absl::string_view method = line.substr(0, first);
  absl::string_view target = line.substr(first + 1, second - first - 1);
  target = target.substr(0, target.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    SendAll(fd, wake_fd_,
            Response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false));
    return;
  }
  if (target != "/metrics") {
    SendAll(fd, wake_fd_,
            Response(404, "Not Found", "text/plain", "only /metrics is served here\n", head_only));
    return;
  }
  SendAll(fd, wake_fd_,
          Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head_only));
}

}  // namespace gptb::server
