#include <torch/csrc/distributed/c10d/TCPStore.hpp>

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

 private:
  std::string host_;
  std::unique_ptr<c10d::TCPStore> store_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Rendezvous>> StartTcpStoreRendezvous(
    const std::string& advertised_host, int port, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;  // ranks come and go with builds
  options.timeout = timeout;
  try {
    auto store = std::make_unique<c10d::TCPStore>(advertised_host, options);
    return std::unique_ptr<Rendezvous>(new TcpStoreRendezvous(advertised_host, std::move(store)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot start the rendezvous store on port ", port, ": ", e.what()));
  }
}

}  // namespace gptb::coordinator
