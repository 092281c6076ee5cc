#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "base/termination_signal.h"
#include "core/checkpoint/posix_file.h"
#include "rpc/auth.h"
#include "server/common/grpc_server.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/coordinator_service.h"
#include "server/coordinator/rendezvous.h"
#include "server/gptbd/commands.h"
#include "server/gptbd/daemon_flags.h"

namespace gptb::gptbd {
namespace {

std::vector<DaemonFlag> CoordinatorFlags() {
  std::vector<DaemonFlag> flags = {
      {{"listen", true, false, "HOST:PORT", "gRPC address (port 0 picks a free port)"},
       "GPTB_LISTEN",
       "127.0.0.1:50051"},
      {{"metrics-listen", true, false, "HOST:PORT", "Prometheus /metrics address"},
       "GPTB_METRICS_LISTEN",
       "127.0.0.1:9464"},
      {{"store-port", true, false, "PORT",
        "port of the c10d TCPStore the ranks rendezvous on (0: a free port)"},
       "GPTB_STORE_PORT",
       "0"},
      {{"advertise-host", true, false, "HOST",
        "host the ranks reach the store at (default: the --listen host, or this machine's "
        "hostname when it listens on all interfaces)"},
       "GPTB_ADVERTISE_HOST",
       ""},
      {{"heartbeat-interval", true, false, "DURATION", "how often workers heart-beat"},
       "GPTB_HEARTBEAT_INTERVAL",
       "1s"},
      {{"heartbeat-timeout", true, false, "DURATION",
        "a worker silent this long is LOST: its builds fail and its models are released"},
       "GPTB_HEARTBEAT_TIMEOUT",
       "6s"},
      {{"rank-timeout", true, false, "DURATION",
        "store and process-group timeout of every rank: how long a rank waits for a peer "
        "that never comes"},
       "GPTB_RANK_TIMEOUT",
       "120s"},
      {{"recovery-grace", true, false, "DURATION",
        "after a restart, how long to wait for every worker of a held model to re-register"},
       "GPTB_RECOVERY_GRACE",
       "60s"},
      {{"build-deadline", true, false, "DURATION", "the longest a build may take"},
       "GPTB_BUILD_DEADLINE",
       "6h"},
      {{"lost-worker-retention", true, false, "DURATION",
        "how long a LOST worker stays in ListWorkers after its models were released"},
       "GPTB_LOST_WORKER_RETENTION",
       "60s"},
      {{"max-request-bytes", true, false, "N", "largest request accepted"},
       "GPTB_MAX_REQUEST_BYTES",
       "16777216"},
      {{"max-world-size", true, false, "N",
        "most ranks a validate, plan or build request may ask for"},
       "GPTB_MAX_WORLD_SIZE",
       absl::StrCat(config::Limits().max_world_size)},
      {{"max-num-layers", true, false, "N",
        "most decoder (and MTP) layers, and pipeline chunks, of a model"},
       "GPTB_MAX_NUM_LAYERS",
       absl::StrCat(config::Limits().max_num_layers)},
      {{"max-plan-tensors", true, false, "N",
        "most distinct stages plus parameter tensors one plan may list (bounds the memory and "
        "time of a validate, plan or build request)"},
       "GPTB_MAX_PLAN_TENSORS",
       absl::StrCat(config::Limits().max_plan_tensors)},
      {{"checkpoint-root", true, false, "DIR",
        "load_from and save paths must resolve inside DIR after symlinks (the workers' own "
        "--checkpoint-root confines their loads and saves too); unset: any path"},
       "GPTB_CHECKPOINT_ROOT",
       ""},
      {{"ready-file", true, false, "PATH",
        "once serving, write {\"grpc\", \"metrics\", \"store\", \"pid\"} here as JSON"},
       "",
       ""},
  };
  for (DaemonFlag& f : SecurityFlags()) flags.push_back(std::move(f));
  return flags;
}

void PrintHelp(const std::vector<DaemonFlag>& flags) {
  std::cout << "usage: gptbd coordinator [FLAGS]\n\n"
               "Validates, plans and admits models, places their ranks on the registered "
               "workers' slots,\nhosts the rendezvous store, dispatches the builds and records "
               "the models. Runs until\nSIGTERM or SIGINT.\n\nflags:\n"
            << gptb::FlagsHelp(Specs(flags));
}

int Fail(const absl::Status& status) {
  std::cerr << "gptbd coordinator: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunCoordinator(const std::vector<std::string>& raw) {
  const std::vector<DaemonFlag> flags = CoordinatorFlags();
  absl::StatusOr<gptb::ParsedArgs> parsed = gptb::ParseArgs(raw, Specs(flags));
  if (!parsed.ok()) return Fail(parsed.status());
  if (parsed->Has("help")) {
    PrintHelp(flags);
    return 0;
  }
  if (!parsed->positional.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", parsed->positional[0], "'")));
  }
  DaemonArgs args(*std::move(parsed), flags);
  server::SetLogRole("coordinator");

  coordinator::CoordinatorOptions options;
  for (auto [name, field] : std::vector<std::pair<const char*, absl::Duration*>>{
           {"heartbeat-interval", &options.heartbeat_interval},
           {"heartbeat-timeout", &options.heartbeat_timeout},
           {"rank-timeout", &options.rank_timeout},
           {"recovery-grace", &options.recovery_grace},
           {"build-deadline", &options.build_deadline},
           {"lost-worker-retention", &options.lost_worker_retention}}) {
    absl::StatusOr<absl::Duration> value = args.GetDuration(name);
    if (!value.ok()) return Fail(value.status());
    *field = *value;
  }
  for (auto [name, field] : std::vector<std::pair<const char*, int64_t*>>{
           {"max-world-size", &options.limits.max_world_size},
           {"max-num-layers", &options.limits.max_num_layers},
           {"max-plan-tensors", &options.limits.max_plan_tensors}}) {
    absl::StatusOr<int64_t> value = args.GetInt(name);
    if (!value.ok()) return Fail(value.status());
    if (*value < 1 || *value > std::numeric_limits<int32_t>::max()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be between 1 and 2147483647, got ", *value)));
    }
    *field = *value;
  }
  absl::StatusOr<std::string> checkpoint_root =
      checkpoint::ResolveRoot(args.Get("checkpoint-root"));
  if (!checkpoint_root.ok()) return Fail(checkpoint_root.status());
  options.checkpoint_root = *checkpoint_root;
  absl::StatusOr<int64_t> store_port = args.GetInt("store-port");
  if (!store_port.ok()) return Fail(store_port.status());
  absl::StatusOr<int64_t> max_request = args.GetInt("max-request-bytes");
  if (!max_request.ok()) return Fail(max_request.status());
  absl::StatusOr<rpc::BearerToken> token = rpc::BearerToken::Load(args.Get("auth-token-file"));
  if (!token.ok()) return Fail(token.status());
  const rpc::TlsFiles tls = TlsFromArgs(args);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> worker_credentials =
      rpc::MakeChannelCredentials(tls);
  if (!worker_credentials.ok()) return Fail(worker_credentials.status());

  const std::string listen = args.Get("listen");
  std::string store_host = args.Get("advertise-host");
  if (store_host.empty()) store_host = HostOf(AdvertisedAddress(listen, 0));
  absl::StatusOr<std::unique_ptr<coordinator::Rendezvous>> rendezvous =
      coordinator::StartTcpStoreRendezvous(HostOf(listen), store_host,
                                           static_cast<int>(*store_port),
                                           absl::ToChronoMilliseconds(options.rank_timeout));
  if (!rendezvous.ok()) return Fail(rendezvous.status());
  const std::string store_address = absl::StrCat(store_host, ":", (*rendezvous)->port());

  server::Metrics metrics("coordinator");
  coordinator::CoordinatorMetrics coordinator_metrics(&metrics);
  coordinator::Coordinator coordinator(
      options, *std::move(rendezvous),
      std::make_shared<coordinator::GrpcWorkerConnector>(*worker_credentials, *token),
      &coordinator_metrics);
  coordinator_metrics.CollectFrom([&coordinator] { return coordinator.Snapshot(); });
  coordinator.Start();

  coordinator::CoordinatorService service(&coordinator, *token);
  coordinator::OperationsService operations(&coordinator, *token);
  server::GrpcServerOptions server_options;
  server_options.listen = listen;
  server_options.tls = tls;
  server_options.max_receive_message_bytes = static_cast<int>(*max_request);
  server_options.services = {&service, &operations};
  server_options.ready_service = "gptbuilder.v1.Coordinator";
  server_options.metrics = &metrics;
  absl::StatusOr<std::unique_ptr<server::GrpcServer>> server =
      server::GrpcServer::Start(server_options);
  if (!server.ok()) return Fail(server.status());
  absl::StatusOr<int> metrics_port = metrics.Serve(args.Get("metrics-listen"));
  if (!metrics_port.ok()) return Fail(metrics_port.status());

  const std::string address = AdvertisedAddress(listen, (*server)->port());
  if (const std::string ready_file = args.Get("ready-file"); !ready_file.empty()) {
    absl::Status written =
        WriteReadyFile(ready_file, address, metrics.url(), {{"store", store_address}});
    if (!written.ok()) return Fail(written);
  }
  server::Log(absl::StrCat("serving gRPC on ", address, ", metrics at ", metrics.url(),
                           ", rendezvous store on ", store_address,
                           token->enabled() ? "; bearer token required" : "",
                           tls.cert_file.empty() ? "" : "; TLS",
                           options.checkpoint_root.empty()
                               ? "; no --checkpoint-root: load_from may name any path this "
                                 "coordinator can read"
                               : absl::StrCat("; checkpoint root ", options.checkpoint_root)));

  // Ready follows the workers at once (a client that saw a worker register may ask for
  // readiness at once).
  server::GrpcServer* grpc_server = server->get();
  coordinator.SetReadinessListener([grpc_server](bool ready) { grpc_server->SetReady(ready); });

  const int signal = gptb::WaitForTerminationSignal();
  server::Log(absl::StrCat("signal ", signal, ": shutting down"));
  // Builds in flight fail (and release) and watches end first; then the server gets a short
  // grace, as idle client connections would otherwise hold its shutdown for the whole grace.
  coordinator.SetReadinessListener(nullptr);
  (*server)->SetReady(false);
  coordinator.Shutdown();
  (*server)->Shutdown(std::chrono::seconds(1));
  server::Log("stopped");
  // Exit without unwinding: the metrics server's shutdown alone waits out a 1-2 s poll, and
  // the OS reclaims everything held (a worker's stages included) at once.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace gptb::gptbd
