#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "base/termination_signal.h"
#include "core/checkpoint/checkpoint_directory.h"
#include "core/checkpoint/posix_file.h"
#include "core/model/rank_model.h"
#include "rpc/auth.h"
#include "server/common/grpc_server.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/gptbd/commands.h"
#include "server/gptbd/daemon_flags.h"
#include "server/worker/coordinator_link.h"
#include "server/worker/slots.h"
#include "server/worker/stage_holder.h"
#include "server/worker/worker_metrics.h"
#include "server/worker/worker_service.h"

#ifdef GPTB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <torch/cuda.h>
#endif

#ifndef GPTB_VERSION
#define GPTB_VERSION "0.0.0"
#endif

namespace gptb::gptbd {
namespace {

std::vector<DaemonFlag> WorkerFlags() {
  std::vector<DaemonFlag> flags = {
      {{"coordinator", true, false, "HOST:PORT",
        "the coordinator (else MASTER_ADDR:MASTER_PORT or PET_MASTER_ADDR:PET_MASTER_PORT, as "
        "torchrun / PyTorchJob / TrainJob set them)"},
       "GPTB_COORDINATOR",
       "127.0.0.1:50051"},
      {{"listen", true, false, "HOST:PORT", "gRPC address (port 0 picks a free port)"},
       "GPTB_LISTEN",
       "127.0.0.1:50052"},
      {{"advertise", true, false, "HOST:PORT",
        "where the coordinator reaches this worker (default: --listen with the bound port, the "
        "hostname for a wildcard host); its host is also the ranks' Gloo address"},
       "GPTB_ADVERTISE",
       ""},
      {{"name", true, false, "NAME", "stable worker name (default: the advertised address)"},
       "GPTB_WORKER_NAME",
       ""},
      {{"slots", true, false, "N",
        "ranks this worker holds, one per slot: CPU slots, or CUDA devices in a CUDA build "
        "(0: every visible device)"},
       "GPTB_SLOTS",
       "1"},
      {{"slot-memory-bytes", true, false, "N",
        "memory budget of each slot that ranks are admitted against (0: the memory this process "
        "is given -- its cgroup limit, else the machine's -- / slots, or the device's memory). "
        "Set it when several workers share a machine without cgroup limits"},
       "GPTB_SLOT_MEMORY_BYTES",
       "0"},
      {{"threads-per-rank", true, false, "N",
        "intra-op threads (LibTorch, BLAS) of each rank on this worker (0: the CPUs this process "
        "may use / slots, so that ranks x threads <= cores)"},
       "GPTB_THREADS_PER_RANK",
       "0"},
      {{"metrics-listen", true, false, "HOST:PORT", "Prometheus /metrics address"},
       "GPTB_METRICS_LISTEN",
       "127.0.0.1:9465"},
      {{"checkpoint-root", true, false, "DIR",
        "checkpoints are saved and loaded only at paths that resolve inside DIR (after "
        "symlinks); unset: at any path this worker's user can write or read"},
       "GPTB_CHECKPOINT_ROOT",
       ""},
      {{"ready-file", true, false, "PATH",
        "once serving, write {\"grpc\", \"metrics\", \"pid\"} here as JSON"},
       "",
       ""},
  };
  for (DaemonFlag& f : SecurityFlags()) flags.push_back(std::move(f));
  return flags;
}

void PrintHelp(const std::vector<DaemonFlag>& flags) {
  std::cout << "usage: gptbd worker [FLAGS]\n\n"
               "Registers with the coordinator, heart-beats, builds the ranks it is given (one "
               "thread per\nrank, one rank per slot), holds their stages, releases and describes "
               "them. Runs until\nSIGTERM or SIGINT.\n\nflags:\n"
            << gptb::FlagsHelp(Specs(flags));
}

int Fail(const absl::Status& status) {
  std::cerr << "gptbd worker: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// The coordinator address: the flag or GPTB_COORDINATOR, else the torchrun / Kubeflow
// convention (the "master" is the coordinator), else the default.
std::string CoordinatorAddress(const DaemonArgs& args) {
  if (args.parsed().Has("coordinator") || std::getenv("GPTB_COORDINATOR") != nullptr) {
    return args.Get("coordinator");
  }
  for (const char* prefix : {"", "PET_"}) {
    const char* host = std::getenv(absl::StrCat(prefix, "MASTER_ADDR").c_str());
    const char* port = std::getenv(absl::StrCat(prefix, "MASTER_PORT").c_str());
    if (host != nullptr && port != nullptr) return absl::StrCat(host, ":", port);
  }
  return args.Get("coordinator");
}

}  // namespace

int RunWorker(const std::vector<std::string>& raw) {
  const std::vector<DaemonFlag> flags = WorkerFlags();
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
  server::SetLogRole("worker");

  absl::StatusOr<int64_t> slot_count = args.GetInt("slots");
  if (!slot_count.ok()) return Fail(slot_count.status());
  absl::StatusOr<int64_t> slot_memory = args.GetInt("slot-memory-bytes");
  if (!slot_memory.ok()) return Fail(slot_memory.status());
  int cuda_devices = 0;
  int64_t device_memory = 0;
#ifdef GPTB_WITH_CUDA
  cuda_devices = static_cast<int>(torch::cuda::device_count());
  if (cuda_devices > 0) device_memory = at::cuda::getDeviceProperties(0)->totalGlobalMem;
  if (*slot_count == 0) *slot_count = cuda_devices;
#endif
  const worker::MemoryLimit memory = worker::ProcessMemoryLimit();
  absl::StatusOr<std::vector<gptbuilder::v1::Slot>> slots = worker::MakeSlots(
      static_cast<int>(*slot_count), *slot_memory, cuda_devices, device_memory, memory.bytes);
  if (!slots.ok()) return Fail(slots.status());
  absl::StatusOr<int64_t> threads_flag = args.GetInt("threads-per-rank");
  if (!threads_flag.ok()) return Fail(threads_flag.status());
  absl::StatusOr<int> threads = worker::ThreadsPerRank(
      static_cast<int>(*threads_flag), static_cast<int>(slots->size()), worker::ProcessCpuCount());
  if (!threads.ok()) return Fail(threads.status());
  for (gptbuilder::v1::Slot& slot : *slots) slot.set_threads(*threads);
  // The default for every thread that has not chosen; each rank thread also sets it (OpenMP's
  // count is per thread).
  at::set_num_threads(*threads);
  absl::StatusOr<rpc::BearerToken> token = rpc::BearerToken::Load(args.Get("auth-token-file"));
  if (!token.ok()) return Fail(token.status());
  const rpc::TlsFiles tls = TlsFromArgs(args);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> coordinator_credentials =
      rpc::MakeChannelCredentials(tls);
  if (!coordinator_credentials.ok()) return Fail(coordinator_credentials.status());

  server::Metrics metrics("worker");
  worker::WorkerMetrics worker_metrics(&metrics);
  const std::string listen = args.Get("listen");
  std::string advertise = args.Get("advertise");
  // The ranks' Gloo address is known before the port is bound.
  const std::string bind_host =
      HostOf(advertise.empty() ? AdvertisedAddress(listen, 0) : advertise);
  absl::StatusOr<std::string> checkpoint_root =
      checkpoint::ResolveRoot(args.Get("checkpoint-root"));
  if (!checkpoint_root.ok()) return Fail(checkpoint_root.status());
  worker::StageHolder holder(*slots, bind_host, &model::BuildRankModel, &worker_metrics);
  holder.SetCheckpointRoot(*checkpoint_root);
  if (!checkpoint_root->empty()) {
    // Saves that crashed while this worker was down left partials nobody will finish.
    const int cleaned = checkpoint::CleanStaleSavesUnder(*checkpoint_root);
    server::Log(absl::StrCat("checkpoint root ", *checkpoint_root,
                             ": saves and loads stay inside it; removed ", cleaned,
                             " partial(s) of interrupted saves"));
  } else {
    server::Log(
        "no --checkpoint-root: clients may save to and load from any path this worker's user "
        "can write or read; set one whenever clients are not fully trusted");
  }
  worker::WorkerService service(&holder, *token);

  server::GrpcServerOptions server_options;
  server_options.listen = listen;
  server_options.tls = tls;
  server_options.services = {&service};
  server_options.ready_service = "gptbuilder.v1.Worker";
  server_options.metrics = &metrics;
  absl::StatusOr<std::unique_ptr<server::GrpcServer>> server =
      server::GrpcServer::Start(server_options);
  if (!server.ok()) return Fail(server.status());
  if (advertise.empty()) advertise = AdvertisedAddress(listen, (*server)->port());
  std::string name = args.Get("name");
  if (name.empty()) name = advertise;

  worker::CoordinatorLinkOptions link_options;
  link_options.coordinator = CoordinatorAddress(args);
  link_options.name = name;
  link_options.address = advertise;
  link_options.version = GPTB_VERSION;
  link_options.credentials = *coordinator_credentials;
  link_options.token = *token;
  server::GrpcServer* grpc_server = server->get();
  link_options.on_connected_change = [grpc_server](bool connected) {
    grpc_server->SetReady(connected);
  };
  worker::CoordinatorLink link(link_options, &holder);
  worker_metrics.CollectFrom([&holder, &link] {
    worker::WorkerSnapshot snapshot = holder.Snapshot();
    snapshot.registered = link.connected();
    return snapshot;
  });
  absl::StatusOr<int> metrics_port = metrics.Serve(args.Get("metrics-listen"));
  if (!metrics_port.ok()) return Fail(metrics_port.status());
  link.Start();

  if (const std::string ready_file = args.Get("ready-file"); !ready_file.empty()) {
    absl::Status written = WriteReadyFile(ready_file, advertise, metrics.url(), {{"name", name}});
    if (!written.ok()) return Fail(written);
  }
  server::Log(absl::StrCat(
      "worker ", name, " serving gRPC on ", advertise, " with ", slots->size(), " ",
      slots->front().device(), " slots of ", slots->front().memory_bytes() >> 20, " MiB (",
      *slot_memory > 0 ? "--slot-memory-bytes"
      : cuda_devices > 0
          ? "the device's memory"
          : absl::StrCat(memory.source, ", ", memory.bytes >> 20, " MiB, over the slots"),
      "), ", *threads, " threads per rank; metrics at ", metrics.url(), "; coordinator ",
      link_options.coordinator));

  int signal = 0;
  while (signal == 0) signal = gptb::WaitForTerminationSignalFor(250);
  server::Log(absl::StrCat("signal ", signal, ": shutting down"));
  // Idle client connections would hold the server's shutdown for the whole grace: keep it short.
  (*server)->Shutdown(std::chrono::seconds(1));
  link.Stop();
  server::Log("stopped");
  // Exit without unwinding: the metrics server's shutdown alone waits out a 1-2 s poll, and
  // the OS reclaims everything held (a worker's stages included) at once.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace gptb::gptbd
