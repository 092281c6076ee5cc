// ValidateConfig requests/s and p50/p99 latency on loopback, against a bare gRPC echo service
// measured in the same run with the same request bytes and client concurrency.
//
// The coordinator is served exactly as `gptbd coordinator` serves it (health, reflection, the
// gRPC metrics interceptor, status mapping); each ValidateConfig finalizes and plans the config.
// The echo server is a plain grpc::ServerBuilder service that returns its request.
//
//   build/bench/service_validate_bench [CONFIG] [--seconds S]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "echo.grpc.pb.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server_builder.h"
#include "server/common/grpc_server.h"
#include "server/common/metrics.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/coordinator_service.h"
#include "server/coordinator/model_preparation.h"

namespace {

using Clock = std::chrono::steady_clock;

class EchoService final : public gptbuilder::bench::Echo::Service {
  grpc::Status Echo(grpc::ServerContext*, const gptbuilder::bench::EchoMessage* request,
                    gptbuilder::bench::EchoMessage* response) override {
    *response = *request;
    return grpc::Status::OK;
  }
};

struct Result {
  int64_t calls = 0;
  int64_t errors = 0;
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// `threads` clients calling `call` back to back for `seconds`.
Result Drive(int threads, double seconds, const std::function<bool()>& call) {
  std::vector<std::vector<double>> latencies(threads);
  std::atomic<int64_t> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  // Warm up connections and caches.
  for (int i = 0; i < 200; ++i) call();
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      while (!stop) {
        const auto before = Clock::now();
        if (!call()) ++errors;
        latencies[t].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - before).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& c : clients) c.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.calls = static_cast<int64_t>(all.size());
  r.errors = errors;
  r.rps = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    r.p50_us = all[all.size() / 2];
    r.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = std::string(GPTB_SOURCE_DIR) + "/examples/tiny-llama.yaml";
  double seconds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      config_path = argv[i];
    }
  }
  auto loaded = gptb::config::LoadConfigFile(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  gptbuilder::v1::ValidateConfigRequest request;
  *request.mutable_config() = loaded->model;
  gptbuilder::bench::EchoMessage echo_request;
  echo_request.set_payload(request.SerializeAsString());

  // Baseline: a bare echo server.
  EchoService echo_service;
  int echo_port = 0;
  grpc::ServerBuilder echo_builder;
  echo_builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &echo_port);
  echo_builder.RegisterService(&echo_service);
  std::unique_ptr<grpc::Server> echo_server = echo_builder.BuildAndStart();

  // The coordinator, served as the daemon serves it.
  gptb::server::Metrics metrics("coordinator");
  gptb::coordinator::CoordinatorMetrics coordinator_metrics(&metrics);
  gptb::coordinator::Coordinator coordinator(
      gptb::coordinator::CoordinatorOptions(), nullptr,
      std::make_shared<gptb::coordinator::GrpcWorkerConnector>(grpc::InsecureChannelCredentials(),
                                                               gptb::rpc::BearerToken()),
      &coordinator_metrics);
  gptb::coordinator::CoordinatorService service(&coordinator, gptb::rpc::BearerToken());
  gptb::server::GrpcServerOptions options;
  options.services = {&service};
  options.ready_service = "gptbuilder.v1.Coordinator";
  options.metrics = &metrics;
  auto server = gptb::server::GrpcServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }

  auto echo_stub = gptbuilder::bench::Echo::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(echo_port), grpc::InsecureChannelCredentials()));
  auto stub = gptbuilder::v1::Coordinator::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
  auto echo_call = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    gptbuilder::bench::EchoMessage response;
    return echo_stub->Echo(&context, echo_request, &response).ok();
  };
  auto validate_call = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    gptbuilder::v1::ValidateConfigResponse response;
    return stub->ValidateConfig(&context, request, &response).ok();
  };
  // The coordinator server's fixed cost (interceptor, status mapping) with a trivial handler.
  auto list_call = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    gptbuilder::v1::ListModelsResponse response;
    return stub->ListModels(&context, {}, &response).ok();
  };
  if (!validate_call()) {
    std::fprintf(stderr, "ValidateConfig failed on %s\n", config_path.c_str());
    return 1;
  }

  std::printf(
      "ValidateConfig vs bare gRPC echo on loopback, %zu-byte requests (%s), %.0f s each, "
      "%u cores\n\n",
      echo_request.payload().size(), config_path.c_str(), seconds,
      std::thread::hardware_concurrency());
  std::printf(
      "ListModels: the coordinator server's fixed cost (metrics interceptor, health,\n"
      "reflection, status mapping) with an empty handler.\n\n");
  std::printf("%-8s %-16s %12s %10s %10s %8s\n", "clients", "service", "requests/s", "p50 us",
              "p99 us", "errors");
  for (int threads : {1, 8}) {
    const Result echo = Drive(threads, seconds, echo_call);
    const Result list = Drive(threads, seconds, list_call);
    const Result validate = Drive(threads, seconds, validate_call);
    std::printf("%-8d %-16s %12.0f %10.0f %10.0f %8lld\n", threads, "echo (baseline)", echo.rps,
                echo.p50_us, echo.p99_us, static_cast<long long>(echo.errors));
    std::printf("%-8d %-16s %12.0f %10.0f %10.0f %8lld\n", threads, "ListModels", list.rps,
                list.p50_us, list.p99_us, static_cast<long long>(list.errors));
    std::printf("%-8d %-16s %12.0f %10.0f %10.0f %8lld\n", threads, "ValidateConfig", validate.rps,
                validate.p50_us, validate.p99_us, static_cast<long long>(validate.errors));
    std::printf("%-8d %-16s %11.0f%%\n\n", threads, "ratio", 100.0 * validate.rps / echo.rps);
  }
  // Where a ValidateConfig's time goes, in process: finalize alone, then finalize + plan.
  const int n = 2000;
  auto time_per_call = [n](const std::function<void()>& f) {
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i) f();
    return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
  };
  const double finalize_us = time_per_call([&] {
    gptb::config::LoadedConfig copy;
    copy.model = request.config();
    (void)gptb::config::FinalizeLoaded(copy, {});
  });
  const double prepare_us = time_per_call([&] {
    (void)gptb::coordinator::PrepareModel(request.config(), request.ddp(), request.build(), 0);
  });
  std::printf("in process, per call: finalize %.0f us, finalize + plan %.0f us\n", finalize_us,
              prepare_us);
  (*server)->Shutdown(std::chrono::seconds(1));
  echo_server->Shutdown();
  return 0;
}
