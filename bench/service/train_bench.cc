// A train step through the service versus the same layout stepped in one process (issue 15
// item 5).
//
//   service:    a model held by 2 workers x (world / 2) slots (separate gptbd processes on
//               loopback, built once, not timed), trained by `gptb train NAME --steps N
//               --format json`. Per step: the coordinator's wall time (the slowest rank's step
//               plus TrainStepResult.seconds.rpc: the fan-out to the workers, their rank threads
//               starting, the answers' way back) and, end to end, gptb's whole run / N.
//   in-process: the same config built by BuildRankModel on one thread per rank in this process
//               (ranks over Gloo, as a worker holds its ranks), each rank a RankTrainer stepping
//               N times; per step: the slowest rank's TrainStepResult.seconds.total.
//
// Both sides run the same request (synthetic tokens from the same seed, the same sizes and
// optimizer), the same number of steps from the same initial weights, and the same intra-op
// threads per rank (--threads-per-rank, passed to the workers): their losses match step for
// step, which the benchmark checks. The two sides alternate --repeats times (A B A B ...), so a
// change in the machine's load hits both; medians and the spread (min..max) are reported, with
// each step's phases (data, forward/backward, p2p waits, grad sync, optimizer, RPC).
//
//   build/bench/service_train_bench [CONFIG] [--steps N] [--repeats R] [--micro-batches M]
//       [--micro-batch-size B] [--seq-length L] [--threads-per-rank T]
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/local_cluster.h"
#include "core/config/config_loader.h"
#include "core/model/rank_model.h"
#include "core/train/train_step.h"
#include "nlohmann/json.hpp"
#include "server/coordinator/model_preparation.h"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

struct Options {
  std::string config = std::string(GPTB_SOURCE_DIR) + "/examples/default.yaml";
  int steps = 3, repeats = 3, micro_batches = 4, micro_batch_size = 1, seq_length = 128;
  int threads_per_rank = 0;  // 0: cores / world
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string Spread(const std::vector<double>& v) {
  if (v.empty()) return "-";
  return absl::StrCat(absl::SixDigits(*std::min_element(v.begin(), v.end())), "..",
                      absl::SixDigits(*std::max_element(v.begin(), v.end())));
}

// The phases of one step, in seconds; "step" is the whole step as each side counts it.
using Phases = std::map<std::string, double>;
const char* const kPhases[] = {
    "data", "forward_backward", "p2p_wait", "grad_sync", "optimizer", "rpc", "step"};

double LoadAverage() {
  double load = 0.0;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

// Every rank of the model in this process, each with its trainer; built once.
class InProcess {
 public:
  bool Build(const gptb::coordinator::PreparedModel& prepared, int threads) {
    world_ = prepared.world_size;
    threads_ = threads;
    c10d::TCPStoreOptions store_options;
    store_options.port = 0;
    store_options.isServer = true;
    store_options.waitWorkers = false;
    store_ = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store_options);
    models_.resize(world_);
    trainers_.resize(world_);
    std::vector<absl::Status> statuses(world_);
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < world_; ++rank) {
      ranks.emplace_back([&, rank] {
        at::set_num_threads(threads_);
        gptb::model::RankBuildOptions options;
        options.config = prepared.finalized.model;
        options.ddp = prepared.finalized.ddp;
        options.build = prepared.finalized.build;
        options.world_size = world_;
        options.rank = rank;
        options.store_host = "127.0.0.1";
        options.store_port = store_->getPort();
        options.store_prefix = "bench/";
        options.ranks_per_process = world_;
        auto built = gptb::model::BuildRankModel(options);
        statuses[rank] = built.status();
        if (built.ok()) {
          models_[rank] = *std::move(built);
          trainers_[rank] = std::make_unique<gptb::train::RankTrainer>(models_[rank].get());
        }
      });
    }
    for (auto& t : ranks) t.join();
    for (const absl::Status& s : statuses) {
      if (!s.ok()) {
        std::fprintf(stderr, "in-process build failed: %s\n", std::string(s.message()).c_str());
        return false;
      }
    }
    return true;
  }

  // `steps` steps on every rank; per step the slowest rank's phases and rank 0's loss.
  bool Train(const gptb::train::TrainRequest& request, int steps, std::vector<Phases>* phases,
             std::vector<double>* losses) {
    std::vector<std::vector<gptb::train::TrainStepResult>> results(world_);
    std::vector<std::string> errors(world_);
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < world_; ++rank) {
      ranks.emplace_back([&, rank] {
        at::set_num_threads(threads_);
        for (int s = 0; s < steps; ++s) {
          absl::StatusOr<gptb::train::TrainStepResult> r = trainers_[rank]->Step(request);
          if (!r.ok()) {
            errors[rank] = r.status().ToString();
            return;
          }
          results[rank].push_back(*r);
        }
      });
    }
    for (auto& t : ranks) t.join();
    for (const std::string& e : errors) {
      if (!e.empty()) {
        std::fprintf(stderr, "in-process step failed: %s\n", e.c_str());
        return false;
      }
    }
    for (int s = 0; s < steps; ++s) {
      Phases p;
      for (int rank = 0; rank < world_; ++rank) {
        const gptb::train::StepTimings& t = results[rank][s].seconds;
        p["data"] = std::max(p["data"], t.data);
        p["forward_backward"] = std::max(p["forward_backward"], t.forward_backward);
        p["p2p_wait"] = std::max(p["p2p_wait"], t.p2p_wait);
        p["grad_sync"] = std::max(p["grad_sync"], t.grad_sync);
        p["optimizer"] = std::max(p["optimizer"], t.optimizer);
        p["step"] = std::max(p["step"], t.total);
      }
      p["rpc"] = 0.0;
      phases->push_back(p);
      losses->push_back(results[0][s].loss);
    }
    return true;
  }

 private:
  int world_ = 0, threads_ = 1;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  std::vector<std::unique_ptr<gptb::model::RankModel>> models_;
  std::vector<std::unique_ptr<gptb::train::RankTrainer>> trainers_;
};

// Runs a shell command and returns its standard output; false when it fails.
bool Capture(const std::string& command, std::string* out) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  char buffer[4096];
  out->clear();
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) *out += buffer;
  return pclose(pipe) == 0;
}

// `gptb train` through the daemons: per step the coordinator's phases (rank 0's, the step being
// the slowest rank's total plus the RPC share) and the loss; `seconds` the whole run.
bool ServiceTrain(const std::string& base, const std::string& flags, int steps,
                  std::vector<Phases>* phases, std::vector<double>* losses, double* seconds) {
  std::string out;
  const auto start = Clock::now();
  const bool ok = Capture(absl::StrCat(base, " --steps ", steps, " ", flags), &out);
  *seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!ok) {
    std::fprintf(stderr, "gptb train failed:\n%s\n", out.c_str());
    return false;
  }
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const Json step = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (step.is_discarded() || !step.contains("seconds")) {
      std::fprintf(stderr, "unexpected gptb train output: %s\n", line.c_str());
      return false;
    }
    const Json& s = step["seconds"];
    Phases p;
    for (const char* phase :
         {"data", "forward_backward", "p2p_wait", "grad_sync", "optimizer", "rpc"}) {
      // Proto JSON camel-cases field names unless told otherwise; accept both.
      std::string camel;
      for (size_t i = 0; phase[i] != 0; ++i) {
        camel += phase[i] == '_' ? static_cast<char>(std::toupper(phase[++i])) : phase[i];
      }
      p[phase] = s.contains(phase)   ? s[phase].get<double>()
                 : s.contains(camel) ? s[camel].get<double>()
                                     : 0.0;
    }
    const double slowest = step.contains("slowest_rank_seconds")
                               ? step["slowest_rank_seconds"].get<double>()
                               : step.value("slowestRankSeconds", 0.0);
    p["step"] = slowest + p["rpc"];
    phases->push_back(p);
    losses->push_back(step["loss"].get<double>());
  }
  return static_cast<int>(phases->size()) == steps;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    int* target = flag == "--steps"              ? &o.steps
                  : flag == "--repeats"          ? &o.repeats
                  : flag == "--micro-batches"    ? &o.micro_batches
                  : flag == "--micro-batch-size" ? &o.micro_batch_size
                  : flag == "--seq-length"       ? &o.seq_length
                  : flag == "--threads-per-rank" ? &o.threads_per_rank
                                                 : nullptr;
    if (target != nullptr) {
      if (i + 1 >= argc || std::atoi(argv[i + 1]) < (target == &o.threads_per_rank ? 0 : 1)) {
        std::fprintf(stderr, "%s needs a positive integer\n", flag.c_str());
        return 2;
      }
      *target = std::atoi(argv[++i]);
    } else if (flag.rfind("--", 0) == 0) {
      std::fprintf(stderr,
                   "usage: %s [CONFIG] [--steps N] [--repeats R] [--micro-batches M] "
                   "[--micro-batch-size B] [--seq-length L] [--threads-per-rank T]\n",
                   argv[0]);
      return 2;
    } else {
      o.config = flag;
    }
  }
  auto loaded = gptb::config::LoadConfigFile(o.config);
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
  if (world % 2 != 0) {
    std::fprintf(stderr, "the model's world size (%d) must be even: 2 workers hold it\n", world);
    return 1;
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = o.threads_per_rank > 0 ? o.threads_per_rank : std::max(1, cores / world);
  const int tokens = o.micro_batch_size * o.micro_batches * o.seq_length;  // per replica
  std::printf(
      "train step of %s: world %d (2 workers x %d slots), %lld parameters; %d micro-batches of "
      "%d x %d tokens per replica; %d intra-op thread(s) per rank on %d cores; %d steps per run, "
      "%d repeat(s) alternating in-process / service; load average %.2f at the start\n\n",
      o.config.c_str(), world, world / 2, static_cast<long long>(prepared->plan->TotalParameters()),
      o.micro_batches, o.micro_batch_size, o.seq_length, threads, cores, o.steps, o.repeats,
      LoadAverage());

  gptb::train::TrainRequest request;
  request.batch.set_synthetic_seed(1234);
  request.options.set_micro_batch_size(o.micro_batch_size);
  request.options.set_num_micro_batches(o.micro_batches);
  request.options.set_seq_length(o.seq_length);
  request.options.mutable_optimizer()->set_optimizer("adam");
  request.options.mutable_optimizer()->set_lr(1e-4);

  InProcess in_process;
  if (!in_process.Build(*prepared, threads)) return 1;

  char dir[] = "/tmp/gptb-train-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  gptb::cli::LocalClusterOptions cluster_options;
  cluster_options.gptbd = std::string(GPTB_BINARY_DIR) + "/bin/gptbd";
  cluster_options.dir = dir;
  cluster_options.workers = 2;
  cluster_options.slots = world / 2;
  cluster_options.worker_flags = {"--threads-per-rank", std::to_string(threads)};
  auto cluster = gptb::cli::LocalCluster::Start(cluster_options);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  const std::string gptb =
      absl::StrCat(GPTB_BINARY_DIR, "/bin/gptb --server ", (*cluster)->coordinator_address());
  if (std::system(absl::StrCat(gptb, " build ", o.config, " --name bench --for-training --wait ",
                               ">/dev/null 2>", dir, "/build.err")
                      .c_str()) != 0) {
    std::fprintf(stderr, "gptb build failed; see %s/build.err\n", dir);
    return 1;
  }
  const std::string train = absl::StrCat(
      gptb, " train bench --format json --synthetic 1234", " --micro-batch-size ",
      o.micro_batch_size, " --micro-batches ", o.micro_batches, " --seq-length ", o.seq_length);

  // Step 0 on both sides creates the optimizer (and warms caches): not timed.
  std::vector<Phases> in_phases, service_phases, discard;
  std::vector<double> in_losses, service_losses, run_seconds;
  double seconds = 0.0;
  if (!in_process.Train(request, 1, &discard, &in_losses)) return 1;
  if (!ServiceTrain(train, "--optimizer adam --lr 1e-4", 1, &discard, &service_losses, &seconds)) {
    return 1;
  }
  request.options.clear_optimizer();  // later steps keep the first step's
  std::vector<double> load;
  for (int r = 0; r < o.repeats; ++r) {
    load.push_back(LoadAverage());
    if (!in_process.Train(request, o.steps, &in_phases, &in_losses)) return 1;
    if (!ServiceTrain(train, "", o.steps, &service_phases, &service_losses, &seconds)) return 1;
    run_seconds.push_back(seconds / o.steps);
  }
  // gptb's own fixed cost per run: starting the process and one unary call.
  std::vector<double> client_seconds;
  for (int r = 0; r < o.repeats; ++r) {
    const auto start = Clock::now();
    std::system(absl::StrCat(gptb, " models >/dev/null").c_str());
    client_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  (*cluster)->Stop();

  double worst = 0.0;
  for (size_t i = 0; i < in_losses.size() && i < service_losses.size(); ++i) {
    worst = std::max(worst, std::abs(in_losses[i] - service_losses[i]) /
                                std::max(1e-12, std::abs(in_losses[i])));
  }
  std::printf(
      "losses (step 0, last): in-process %.6f, %.6f; service %.6f, %.6f; largest relative "
      "difference over %zu steps %.2e%s\n\n",
      in_losses.front(), in_losses.back(), service_losses.front(), service_losses.back(),
      in_losses.size(), worst,
      worst < 1e-5 ? " (the same tokens and weights)" : "  ** THE RUNS DIFFER **");

  std::printf("per step, seconds (median over %d steps; min..max)\n", o.repeats * o.steps);
  std::printf("  %-18s %10s %-20s %10s %-20s\n", "phase", "in-process", "", "service", "");
  std::map<std::string, std::vector<double>> in_by, service_by;
  for (const Phases& p : in_phases)
    for (const auto& [k, v] : p) in_by[k].push_back(v);
  for (const Phases& p : service_phases)
    for (const auto& [k, v] : p) service_by[k].push_back(v);
  for (const char* phase : kPhases) {
    std::printf("  %-18s %10.4f %-20s %10.4f %-20s\n", phase, Median(in_by[phase]),
                Spread(in_by[phase]).c_str(), Median(service_by[phase]),
                Spread(service_by[phase]).c_str());
  }
  std::printf("  %-18s %10s %-20s %10.4f %-20s\n", "gptb run / steps", "", "", Median(run_seconds),
              Spread(run_seconds).c_str());
  std::printf("  %-18s %10s %-20s %10.4f %-20s\n", "gptb start + call", "", "",
              Median(client_seconds), Spread(client_seconds).c_str());
  const double base = Median(in_by["step"]), service = Median(service_by["step"]);
  std::printf(
      "\nservice step (coordinator) / in-process step: %.3fx (%+.1f%%); tokens/s %.0f vs "
      "%.0f; load average %s during the runs\n",
      service / base, 100.0 * (service - base) / base, tokens / service, tokens / base,
      Spread(load).c_str());
  return worst < 1e-5 ? 0 : 1;
}
