#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/termination_signal.h"
#include "clients/cli/build_progress.h"
#include "clients/cli/config_args.h"
#include "clients/cli/local_cluster.h"
#include "clients/cli/model_format.h"
#include "clients/cli/rpc_client.h"
#include "clients/cli/service_commands.h"

namespace gptb::cli {
namespace {

// examples/default.yaml: GPTB_EXAMPLES, next to a source checkout's build/bin, an installed
// share/, or the working directory.
std::string DefaultConfig() {
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("GPTB_EXAMPLES")) {
    candidates.push_back(absl::StrCat(dir, "/default.yaml"));
  }
  const std::string exe = ExecutableDir();
  candidates.push_back(exe + "/../../examples/default.yaml");
  candidates.push_back(exe + "/../share/gptbuilder/examples/default.yaml");
  candidates.push_back("examples/default.yaml");
  for (const std::string& path : candidates) {
    if (std::filesystem::exists(path)) return std::filesystem::weakly_canonical(path).string();
  }
  return "examples/default.yaml";
}

int Fail(const absl::Status& status, std::ostream& err) {
  err << "gptb up: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitInvalidInput : kExitFailure;
}

int RunUp(const ParsedArgs& raw_args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(raw_args, "table", {"table", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  ParsedArgs args = raw_args;
  if (args.positional.empty()) args.positional.push_back(DefaultConfig());
  const std::string config_path = args.positional[0];
  absl::StatusOr<config::LoadedConfig> loaded = LoadResolvedConfig(args);
  if (!loaded.ok()) return ReportStatus(loaded.status(), err);
  int workers = 2, slots = 2;
  for (auto [flag, value] : {std::pair{"workers", &workers}, std::pair{"slots", &slots}}) {
    if (std::optional<std::string> text = args.Get(flag)) {
      if (!absl::SimpleAtoi(*text, value) || *value < 1) {
        return ReportStatus(absl::InvalidArgumentError(absl::StrCat(
                                "--", flag, " needs a positive integer, got '", *text, "'")),
                            err);
      }
    }
  }

  // Ctrl-C / SIGTERM stop the cluster cleanly (children also die with us: PDEATHSIG).
  gptb::BlockTerminationSignals();
  char dir_template[] = "/tmp/gptb-up-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    return Fail(absl::UnavailableError("cannot create a directory under /tmp"), err);
  }
  LocalClusterOptions options;
  options.gptbd = ExecutableDir() + "/gptbd";
  options.dir = dir_template;
  options.workers = workers;
  options.slots = slots;
  options.listen = args.Get("listen").value_or("127.0.0.1:50051");
  options.metrics_listen = args.Get("metrics-listen").value_or("127.0.0.1:9464");
  err << "gptb up: starting a coordinator on " << options.listen << " and " << workers
      << " workers x " << slots << " CPU slots (logs in " << options.dir << ")\n";
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(options);
  if (!cluster.ok()) return Fail(cluster.status(), err);

  absl::StatusOr<CoordinatorClient> client =
      CoordinatorClient::Connect((*cluster)->coordinator_address(), rpc::BearerToken());
  if (!client.ok()) return Fail(client.status(), err);
  gptbuilder::v1::BuildModelRequest request;
  request.set_name(args.Get("name").value_or("default"));
  *request.mutable_config() = loaded->model;
  *request.mutable_ddp() = loaded->ddp;
  *request.mutable_build() = loaded->build;
  if (std::optional<std::string> world = args.Get("world-size")) {
    request.set_world_size(std::stoi(*world));
  }
  err << "gptb up: building model '" << request.name() << "' from " << config_path << "\n";
  google::longrunning::Operation op;
  grpc::Status status = client->stub()->BuildModel(client->Context().get(), request, &op);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  absl::StatusOr<gptbuilder::v1::Model> model =
      WatchUntilDone(*client, request.name(), &err, isatty(STDERR_FILENO) != 0);
  if (!model.ok()) return Fail(model.status(), err);
  if (model->state() != gptbuilder::v1::Model::READY) {
    err << "gptb up: the build failed: " << model->reason() << "\n";
    return kExitFailure;
  }
  gptbuilder::v1::DescribeModelRequest describe_request;
  describe_request.set_name(request.name());
  gptbuilder::v1::DescribeModelResponse described;
  status = client->stub()->DescribeModel(client->Context().get(), describe_request, &described);
  if (!status.ok()) return ReportStatus(RpcError(status, client->server()), err);
  if (*format == "json") {
    out << DescribeToJson(described).dump(2) << "\n";
  } else {
    out << ModelToText(*model) << "\n" << DescribeToTable(described) << "\n";
    out << "metrics: coordinator " << (*cluster)->coordinator_metrics() << "\n";
    for (int i = 0; i < (*cluster)->num_workers(); ++i) {
      out << "         worker-" << i << "    " << (*cluster)->worker_metrics()[i] << "\n";
    }
    const std::string gptb = "gptb --server " + (*cluster)->coordinator_address();
    out << "try:     " << gptb << " models | workers | describe " << request.name() << " | release "
        << request.name() << "\n"
        << "         " << gptb << " train " << request.name()
        << " --lr 3e-4 --steps 5 --seq-length 128\n"
        << "         " << gptb << " save " << request.name() << " /tmp/" << request.name()
        << "-checkpoint\n";
  }
  out.flush();
  if (args.Has("exit-after-build")) {
    (*cluster)->Stop();
    std::filesystem::remove_all(options.dir);  // the logs are kept only when something failed
    return kExitOk;
  }
  err << "gptb up: running; Ctrl-C stops the cluster\n";
  while (true) {
    const int signal = gptb::WaitForTerminationSignalFor(500);
    if (signal != 0) break;
    if (std::string dead = (*cluster)->DeadDaemon(); !dead.empty()) {
      err << "gptb up: " << dead << "\n";
      return kExitFailure;
    }
  }
  err << "\ngptb up: stopping\n";
  (*cluster)->Stop();
  std::filesystem::remove_all(options.dir);
  return kExitOk;
}

std::vector<FlagSpec> UpFlags() {
  std::vector<FlagSpec> flags = ConfigFlags();
  flags.push_back({"workers", true, false, "W", "local workers to start (default 2)"});
  flags.push_back({"slots", true, false, "S", "CPU slots per worker (default 2)"});
  flags.push_back({"name", true, false, "NAME", "the model's name (default: default)"});
  flags.push_back(
      {"listen", true, false, "HOST:PORT", "the coordinator's address (default 127.0.0.1:50051)"});
  flags.push_back({"metrics-listen", true, false, "HOST:PORT",
                   "the coordinator's /metrics address (default 127.0.0.1:9464)"});
  flags.push_back({"exit-after-build", false, false, "",
                   "stop the cluster and exit once the model is built and described"});
  flags.push_back({"format", true, false, "table|json",
                   "how to print the built model's description (default table)"});
  return flags;
}

}  // namespace

const Command& UpCommand() {
  static const auto* command = new Command{
      "up",
      "run a local cluster (coordinator + CPU workers on loopback) and build a model on it",
      "[CONFIG] [--workers W] [--slots S] [--set K=V]... [--exit-after-build]",
      "Starts `gptbd coordinator` and W `gptbd worker` processes (found next to gptb) on\n"
      "127.0.0.1, builds CONFIG (default examples/default.yaml: a small Llama-style GPT at\n"
      "tp 2 x pp 2), prints its description and the metrics URLs, and keeps the cluster\n"
      "running until Ctrl-C. Loopback only, no TLS, no token.",
      UpFlags(),
      &RunUp,
  };
  return *command;
}

}  // namespace gptb::cli
