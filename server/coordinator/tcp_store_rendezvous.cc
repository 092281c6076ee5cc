#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/coordinator/rendezvous.h"

namespace gptb::coordinator {
namespace {

class TcpStoreRendezvous : public Rendezvous {
 public:
  TcpStoreRendezvous(std::string host, std::unique_ptr<c10d::TCPStore> store)
      : host_(std::move(host)), store_(std::move(store)) {}
  std::string host() const override { return host_; }
  int port() const override { return store_->getPort(); }

  int DeletePrefix(const std::string& prefix) override {
    if (prefix.empty()) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    int deleted = 0;
    try {
      for (const std::string& key : store_->listKeys()) {
        if (absl::StartsWith(key, prefix) && store_->deleteKey(key)) ++deleted;
      }
    } catch (const std::exception&) {
      // Best effort: a key left behind costs memory, not correctness (prefixes are unique).
    }
    return deleted;
  }

  int64_t NumKeys() override {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      return store_->getNumKeys();
    } catch (const std::exception&) {
      return -1;
    }
  }

 private:
  std::string host_;
  std::mutex mu_;  // the store's client connection serves one request at a time
  std::unique_ptr<c10d::TCPStore> store_;
};

bool IsWildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]" || host == "*";
}

// A listening TCP socket on host:port (port 0: a free one). The TCPStore would otherwise listen
// on every interface whatever address the coordinator was told to serve on.
absl::StatusOr<int> Listen(const std::string& bind_host, int port) {
  std::string host = bind_host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string service = absl::StrCat(port);
  addrinfo* found = nullptr;
  const char* node =
      IsWildcard(bind_host) ? (host == "0.0.0.0" ? "0.0.0.0" : nullptr) : host.c_str();
  if (node == nullptr) hints.ai_family = AF_INET6;  // "::": dual-stack where the host allows it
  if (const int rc = ::getaddrinfo(node, service.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve the rendezvous bind address ",
                                                   bind_host, ": ", ::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->ai_family == AF_INET6 && node == nullptr) {
      const int zero = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return absl::UnavailableError(
      absl::StrCat("cannot listen on ", bind_host, ":", port, ": ", last_error));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Rendezvous>> StartTcpStoreRendezvous(
    const std::string& bind_host, const std::string& advertised_host, int port,
    std::chrono::milliseconds timeout) {
  absl::StatusOr<int> fd = Listen(bind_host, port);
  if (!fd.ok()) return fd.status();
  c10d::TCPStoreOptions options;
  options.port = 0;  // the socket's
  options.isServer = true;
  options.waitWorkers = false;  // ranks come and go with builds
  options.timeout = timeout;
  options.masterListenFd = *fd;
  try {
    auto store = std::make_unique<c10d::TCPStore>(advertised_host, options);
    return std::unique_ptr<Rendezvous>(new TcpStoreRendezvous(advertised_host, std::move(store)));
  } catch (const std::exception& e) {
    ::close(*fd);
    return absl::UnavailableError(
        absl::StrCat("cannot start the rendezvous store on port ", port, ": ", e.what()));
  }
}

}  // namespace gptb::coordinator
