// End-to-end build time through the service versus the same build in one process.
//
//   service:    `gptb build CONFIG --wait` against a coordinator and 2 workers x 2 slots
//               (separate gptbd processes on loopback, started once, not timed), timed from
//               launching gptb to its exit: config loading, the RPCs, placement, dispatch,
//               rendezvous on the coordinator's TCPStore, the ranks' builds, progress streaming.
//   baseline:   BuildRankModel on one thread per rank in this process, over an in-process
//               TCPStore, with the same options (measured in the same run).
//
//   build/bench/service_build_bench [CONFIG] [--repeats N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/local_cluster.h"
#include "clients/cli/rpc_client.h"
#include "core/config/config_loader.h"
#include "core/model/rank_model.h"
#include "server/coordinator/model_preparation.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = std::string(GPTB_SOURCE_DIR) + "/examples/default.yaml";
  int repeats = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else {
      config_path = argv[i];
    }
  }
  auto loaded = gptb::config::LoadConfigFile(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  auto prepared = gptb::coordinator::PrepareModel(loaded->model, loaded->ddp, loaded->build, 0);
  if (!prepared.ok()) {
    std::fprintf(stderr, "%s\n", std::string(prepared.status().message()).c_str());
    return 1;
  }
  const int world = prepared->world_size;
  std::printf("build of %s: world %d, %lld parameters, %u cores, median of %d\n\n",
              config_path.c_str(), world, static_cast<long long>(prepared->plan->TotalParameters()),
              std::thread::hardware_concurrency(), repeats);

  // Baseline: every rank a thread of this process.
  c10d::TCPStoreOptions store_options;
  store_options.port = 0;
  store_options.isServer = true;
  store_options.waitWorkers = false;
  c10d::TCPStore store("127.0.0.1", store_options);
  std::vector<double> in_process;
  // Per phase, the slowest rank's seconds of each repeat.
  std::map<std::string, std::vector<double>> in_process_phases, service_phases;
  for (int r = 0; r < repeats; ++r) {
    std::vector<std::unique_ptr<gptb::model::RankModel>> models(world);
    std::vector<absl::Status> statuses(world);
    const auto start = Clock::now();
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < world; ++rank) {
      ranks.emplace_back([&, rank] {
        gptb::model::RankBuildOptions options;
        options.config = prepared->finalized.model;
        options.ddp = prepared->finalized.ddp;
        options.build = prepared->finalized.build;
        options.world_size = world;
        options.rank = rank;
        options.store_host = "127.0.0.1";
        options.store_port = store.getPort();
        options.store_prefix = absl::StrCat("bench/", r, "/");
        options.ranks_per_process = world;
        auto built = gptb::model::BuildRankModel(options);
        statuses[rank] = built.status();
        if (built.ok()) models[rank] = *std::move(built);
      });
    }
    for (auto& t : ranks) t.join();
    in_process.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    for (const absl::Status& s : statuses) {
      if (!s.ok()) {
        std::fprintf(stderr, "in-process build failed: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
    std::map<std::string, double> slowest;
    for (const auto& model : models) {
      for (const auto& [phase, seconds] : model->phase_seconds()) {
        double& s = slowest[gptb::model::BuildPhaseName(phase)];
        s = std::max(s, seconds);
      }
    }
    for (const auto& [phase, seconds] : slowest) in_process_phases[phase].push_back(seconds);
  }

  // The service: real daemons, driven by the real CLI.
  char dir[] = "/tmp/gptb-bench-XXXXXX";
  mkdtemp(dir);
  gptb::cli::LocalClusterOptions options;
  options.gptbd = std::string(GPTB_BINARY_DIR) + "/bin/gptbd";
  options.dir = dir;
  options.workers = 2;
  options.slots = world / 2;
  auto cluster = gptb::cli::LocalCluster::Start(options);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  const std::string gptb = std::string(GPTB_BINARY_DIR) + "/bin/gptb";
  auto client = gptb::cli::CoordinatorClient::Connect((*cluster)->coordinator_address(),
                                                      gptb::rpc::BearerToken());
  if (!client.ok()) return 1;
  std::vector<double> service;
  for (int r = 0; r < repeats; ++r) {
    const std::string name = absl::StrCat("bench-", r);
    const std::string build =
        absl::StrCat(gptb, " --server ", (*cluster)->coordinator_address(), " build ", config_path,
                     " --name ", name, " --wait >/dev/null 2>", dir, "/build.err");
    const auto start = Clock::now();
    const int code = std::system(build.c_str());
    service.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    if (code != 0) {
      std::fprintf(stderr, "gptb build failed; see %s/build.err\n", dir);
      return 1;
    }
    gptbuilder::v1::GetModelRequest get;
    get.set_name(name);
    gptbuilder::v1::Model model;
    if (client->stub()->GetModel(client->Context().get(), get, &model).ok()) {
      for (const auto& [phase, seconds] : model.progress().phase_seconds()) {
        service_phases[phase].push_back(seconds);
      }
    }
    std::system(absl::StrCat(gptb, " --server ", (*cluster)->coordinator_address(), " release ",
                             name, " >/dev/null")
                    .c_str());
  }
  // The client's fixed cost: starting gptb and one unary call.
  std::vector<double> client_seconds;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    std::system(
        absl::StrCat(gptb, " --server ", (*cluster)->coordinator_address(), " models >/dev/null")
            .c_str());
    client_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  (*cluster)->Stop();

  std::printf("%-46s %10s %10s\n", "", "median", "best");
  std::printf("%-46s %9.3fs %9.3fs\n", "in-process BuildRankModel threads (baseline)",
              Median(in_process), Min(in_process));
  std::printf("%-46s %9.3fs %9.3fs\n", "gptb build --wait through the daemons", Median(service),
              Min(service));
  std::printf("%-46s %9.3fs %9.3fs\n", "  of which starting gptb + one call (`models`)",
              Median(client_seconds), Min(client_seconds));
  std::printf("\nper phase (median, slowest rank):  %12s %12s\n", "in-process", "daemons");
  for (const char* phase :
       {"validate", "plan", "rendezvous", "process_groups", "construct", "init", "wrap"}) {
    auto median = [&](const std::map<std::string, std::vector<double>>& m) {
      auto it = m.find(phase);
      return it == m.end() || it->second.empty() ? 0.0 : Median(it->second);
    };
    std::printf("  %-32s %11.3fs %11.3fs\n", phase, median(in_process_phases),
                median(service_phases));
  }
  std::printf("\n");
  for (const auto& [label, base, e2e] :
       {std::tuple{"service overhead (median)", Median(in_process), Median(service)},
        std::tuple{"service overhead (best)", Min(in_process), Min(service)}}) {
    std::printf("%-46s %9.3fs  (%.1f%% of the build)\n", label, e2e - base,
                100.0 * (e2e - base) / base);
  }
  return 0;
}
