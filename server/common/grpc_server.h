#ifndef GPTB_SERVER_COMMON_GRPC_SERVER_H_
#define GPTB_SERVER_COMMON_GRPC_SERVER_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/server.h"
#include "rpc/credentials.h"

namespace gptb::server {

class Metrics;

struct GrpcServerOptions {
  // HOST:PORT; port 0 picks a free port.
  std::string listen = "127.0.0.1:0";
  rpc::TlsFiles tls;
  // Requests larger than this are refused with RESOURCE_EXHAUSTED before any handler runs.
  int max_receive_message_bytes = 16 << 20;
  int max_send_message_bytes = 256 << 20;
  // Services to serve (not owned; they must outlive the server).
  std::vector<grpc::Service*> services;
  // The fully qualified name whose health status is "ready" (e.g. gptbuilder.v1.Coordinator).
  std::string ready_service;
  // When set, every RPC is counted and timed (grpc_server_* metrics).
  Metrics* metrics = nullptr;
};

// A started gRPC server with the standard health service (the empty service name is liveness:
// SERVING while the process serves; `ready_service` is readiness, NOT_SERVING until SetReady)
// and server reflection, so grpcurl and Kubernetes gRPC probes work without the protos.
class GrpcServer {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options);
  ~GrpcServer();

  int port() const { return port_; }
  void SetReady(bool ready);
  // Health NOT_SERVING, then waits up to `grace` for in-flight calls before cancelling them.
  void Shutdown(std::chrono::milliseconds grace);
  void Wait();

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string ready_service_;
  int port_ = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace gptb::server

#endif  // GPTB_SERVER_COMMON_GRPC_SERVER_H_
