// Train-step throughput on CPU: a small GPT trained through gptbuilder's RankTrainer (the model
// built by BuildRankModel, wrapped in DDP, Megatron's train step) versus the same model and step
// written the plain PyTorch way (bench/train/torch_baseline.py on the same torch as LibTorch:
// the project environment's wheel), with the same thread count, in the same run.
//
// Model: 4 layers, hidden 256, 8 heads, ffn 1024, vocabulary 4096, sequence 256, LayerNorm,
// GELU, biases, learned positions, tied embeddings, no dropout, fp32. Step: 2 micro-batches of
// 4 samples per replica (2,048 tokens), Adam (decoupled decay 0.01), clipping at 1.0.
//
// --dp D: D data-parallel replicas. gptbuilder runs them as D rank threads of one process over
// Gloo (as a worker holds its ranks), each with T/D intra-op threads; the baseline as D
// processes, each a torch DistributedDataParallel replica over Gloo with T/D threads.
//
// Reported per side: median step wall seconds and tokens/s over --steps after --warmup, CPU
// seconds per step (every thread of every rank), and MFU: model FLOPs per second over the
// sgemm rate (torch::mm, fp32 1024^2 or 2048^2, T threads) measured at the start of the run, per
// wall second and per CPU second (MFU/cpu: model FLOPs per CPU-second of the step over sgemm FLOPs
// per CPU-second, which a loaded machine distorts less). For gptbuilder also the step's phases
// (TrainStepResult.seconds, rank 0). --repeats R alternates the two sides R times and reports the
// medians, so a change in machine load hits both.
//
// Usage: train_bench [--steps N] [--warmup W] [--layers L] [--hidden H] [--seq S] [--threads T]
//                    [--dp D] [--repeats R] [--baseline 0|1]
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/finalize.h"
#include "core/model/rank_model.h"
#include "core/train/train_step.h"
#include "nlohmann/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Sizes {
  int layers = 4, hidden = 256, heads = 8, ffn = 1024, vocab = 4096, seq = 256;
  int micro_batch_size = 4, micro_batches = 2, steps = 5, warmup = 1, threads = 0, dp = 1;
  int repeats = 1;
  int baseline = 1;  // 0: gptbuilder only (for profiling)
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double LoadAverage() {
  double load = 0.0;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Forward matmul FLOPs per token (linear layers, attention scores and context over the causal
// half of the sequence -- Megatron-LM's num_floating_point_operations halves core attention for
// the causal mask -- and the logits); a train step does three times that (forward, input and
// weight gradients).
double ModelFlopsPerToken(const Sizes& s) {
  const double h = s.hidden, f = s.ffn, seq = s.seq;
  const double layer = 2.0 * (3 * h * h + h * h + 2 * h * f) + 2.0 * 2.0 * seq * h / 2.0;
  return 3.0 * (s.layers * layer + 2.0 * h * s.vocab);
}

// The machine's matmul rate at the current thread count: torch::mm on square fp32 matrices of
// 1024 and 2048, each timed over a loop of at least 0.3 s (one 1024^2 product takes ~10 ms, too
// short for getrusage's CPU clock), best of 3 loops per size, the faster size kept. GFLOP per
// wall second at the run's thread count, and per CPU second (every thread's) at the better of that
// count and one thread (a data-parallel rank computes on one thread; MKL's threading costs CPU
// time). On a loaded machine the wall rate falls with the share of the cores this process gets;
// the CPU rate much less, so MFU is given both ways.
struct Sgemm {
  double wall = 0.0, cpu = 0.0;
  int size = 0;
};
Sgemm SgemmAtCurrentThreads() {
  Sgemm best;
  for (int n : {1024, 2048}) {
    const torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
    torch::Tensor c = torch::empty({n, n});
    torch::mm_out(c, a, b);  // warms MKL's buffers and the thread pool
    const double flops = 2.0 * n * n * n;
    for (int round = 0; round < 3; ++round) {
      const Clock::time_point start = Clock::now();
      const double cpu_start = CpuSeconds();
      int calls = 0;
      double wall = 0.0;
      do {
        torch::mm_out(c, a, b);
        ++calls;
        wall = std::chrono::duration<double>(Clock::now() - start).count();
      } while (wall < 0.3);
      const double cpu = std::max(CpuSeconds() - cpu_start, 1e-6);
      const double rate = flops * calls / wall / 1e9;
      if (rate > best.wall) best = {rate, flops * calls / cpu / 1e9, n};
    }
  }
  return best;
}

Sgemm SgemmGflops(int threads) {
  at::set_num_threads(1);
  const Sgemm one = SgemmAtCurrentThreads();
  at::set_num_threads(threads);
  Sgemm all = SgemmAtCurrentThreads();
  all.cpu = std::max(all.cpu, one.cpu);
  return all;
}

struct Measured {
  double step = 0, cpu = 0, loss = 0;
  gptb::train::StepTimings phases;  // medians, rank 0
};

gptbuilder::v1::GPTModelConfig Config(const Sizes& s) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(s.layers);
  t->set_hidden_size(s.hidden);
  t->set_num_attention_heads(s.heads);
  t->set_ffn_hidden_size(s.ffn);
  t->set_normalization("LayerNorm");
  t->set_activation_func("gelu");
  t->set_add_bias_linear(true);
  t->set_hidden_dropout(0.0);
  t->set_attention_dropout(0.0);
  c.set_vocab_size(s.vocab);
  c.set_seq_length(s.seq);
  c.set_position_embedding_type("learned_absolute");
  c.set_share_embeddings_and_output_weights(true);
  c.mutable_transformer_layer_spec()->set_name("local");
  return c;
}

// gptbuilder's step: dp rank threads over Gloo, each with threads / dp intra-op threads.
bool Gptbuilder(const Sizes& s, Measured* out) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized =
      gptb::config::Finalize(Config(s), {s.dp});
  if (!finalized.ok()) {
    std::fprintf(stderr, "config: %s\n", finalized.status().ToString().c_str());
    return false;
  }
  c10d::TCPStoreOptions store;
  store.port = 0;
  store.isServer = true;
  store.waitWorkers = false;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store);
  const int per_rank = std::max(1, s.threads / s.dp);
  std::vector<std::vector<double>> seconds(s.dp), cpu(s.dp);
  std::vector<std::vector<gptb::train::StepTimings>> phases(s.dp);
  std::vector<std::string> errors(s.dp);
  std::vector<double> loss(s.dp);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < s.dp; ++rank) {
    ranks.emplace_back([&, rank] {
      at::set_num_threads(per_rank);
      gptb::model::RankBuildOptions options;
      options.config = *finalized;
      options.build.set_seed(1234);
      options.world_size = s.dp;
      options.rank = rank;
      options.store_port = server->getPort();
      options.store_prefix = "bench/";
      options.ranks_per_process = s.dp;
      absl::StatusOr<std::unique_ptr<gptb::model::RankModel>> model =
          gptb::model::BuildRankModel(options);
      if (!model.ok()) {
        errors[rank] = absl::StrCat("build: ", model.status().ToString());
        return;
      }
      gptb::train::RankTrainer trainer(model->get());
      gptb::train::TrainRequest request;
      request.batch.set_synthetic_seed(7);
      request.options.set_micro_batch_size(s.micro_batch_size);
      request.options.set_num_micro_batches(s.micro_batches);
      request.options.mutable_optimizer()->set_lr(1e-4);
      request.options.mutable_optimizer()->set_clip_grad(1.0);
      for (int step = 0; step < s.warmup + s.steps; ++step) {
        const double cpu_start = CpuSeconds();
        const Clock::time_point start = Clock::now();
        absl::StatusOr<gptb::train::TrainStepResult> result = trainer.Step(request);
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        const double cpu_elapsed = CpuSeconds() - cpu_start;
        if (!result.ok()) {
          errors[rank] = absl::StrCat("step: ", result.status().ToString());
          return;
        }
        loss[rank] = result->loss;
        if (step >= s.warmup) {
          seconds[rank].push_back(elapsed);
          cpu[rank].push_back(cpu_elapsed);
          phases[rank].push_back(result->seconds);
        }
      }
    });
  }
  for (std::thread& t : ranks) t.join();
  for (const std::string& e : errors) {
    if (!e.empty()) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return false;
    }
  }
  out->step = Median(seconds[0]);
  out->cpu = Median(cpu[0]);  // the process's CPU time: every rank's
  out->loss = loss[0];
  auto median_of = [&](double gptb::train::StepTimings::*field) {
    std::vector<double> v;
    for (const auto& p : phases[0]) v.push_back(p.*field);
    return Median(v);
  };
  out->phases.data = median_of(&gptb::train::StepTimings::data);
  out->phases.forward_backward = median_of(&gptb::train::StepTimings::forward_backward);
  out->phases.p2p_wait = median_of(&gptb::train::StepTimings::p2p_wait);
  out->phases.grad_sync = median_of(&gptb::train::StepTimings::grad_sync);
  out->phases.optimizer = median_of(&gptb::train::StepTimings::optimizer);
  out->phases.total = median_of(&gptb::train::StepTimings::total);
  return true;
}

bool Baseline(const Sizes& s, Measured* out, std::string* torch_version) {
  const std::string script = std::string(GPTB_SOURCE_DIR) + "/bench/train/torch_baseline.py";
  const std::string command = absl::StrCat(
      GPTB_PYTHON, " ", script, " --layers ", s.layers, " --hidden ", s.hidden, " --heads ",
      s.heads, " --ffn ", s.ffn, " --vocab ", s.vocab, " --seq ", s.seq, " --micro_batch_size ",
      s.micro_batch_size, " --micro_batches ", s.micro_batches, " --steps ", s.steps, " --warmup ",
      s.warmup, " --threads ", std::max(1, s.threads / s.dp), " --dp ", s.dp);
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  if (pipe != nullptr) {
    char buffer[4096];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    pclose(pipe);
  }
  nlohmann::json baseline = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (baseline.is_discarded() || !baseline.contains("median_step_seconds")) {
    std::fprintf(stderr, "the PyTorch baseline failed: %s\n%s\n", command.c_str(), output.c_str());
    return false;
  }
  out->step = baseline["median_step_seconds"].get<double>();
  out->cpu = baseline["median_cpu_seconds"].get<double>();
  out->loss = baseline["last_loss"].get<double>();
  *torch_version = baseline["torch"].get<std::string>();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Sizes s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    int* target = flag == "--steps"      ? &s.steps
                  : flag == "--warmup"   ? &s.warmup
                  : flag == "--layers"   ? &s.layers
                  : flag == "--hidden"   ? &s.hidden
                  : flag == "--seq"      ? &s.seq
                  : flag == "--threads"  ? &s.threads
                  : flag == "--dp"       ? &s.dp
                  : flag == "--repeats"  ? &s.repeats
                  : flag == "--baseline" ? &s.baseline
                                         : nullptr;
    if (target == nullptr || value < 0 ||
        (value == 0 && flag != "--baseline" && flag != "--threads" && flag != "--warmup")) {
      std::fprintf(stderr,
                   "usage: %s [--steps N] [--warmup W] [--layers L] [--hidden H] [--seq S] "
                   "[--threads T] [--dp D] [--repeats R] [--baseline 0|1]\n",
                   argv[0]);
      return 2;
    }
    *target = value;
  }
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "%s: every flag takes a value\n", argv[0]);
    return 2;
  }
  if (s.threads == 0) s.threads = static_cast<int>(std::thread::hardware_concurrency());
  const Sgemm sgemm = SgemmGflops(s.threads);
  const int tokens = s.micro_batch_size * s.micro_batches * s.dp * s.seq;
  const double flops = ModelFlopsPerToken(s) * tokens;
  std::printf(
      "train step of a GPT (%d layers, hidden %d, %d heads, ffn %d, vocab %d, seq %d), fp32, "
      "%d tokens per step over %d replica(s), %d threads in all (%d per replica), median of %d "
      "steps after %d warm-up, %d repeat(s)\nmodel %.2f GFLOP per step; sgemm (torch::mm %d^2, "
      "%d threads) %.1f GFLOP/s, %.1f GFLOP per CPU-second (best of 1 thread and all); load "
      "average %.2f\n\n",
      s.layers, s.hidden, s.heads, s.ffn, s.vocab, s.seq, tokens, s.dp, s.threads,
      std::max(1, s.threads / s.dp), s.steps, s.warmup, s.repeats, flops / 1e9, sgemm.size,
      s.threads, sgemm.wall, sgemm.cpu, LoadAverage());

  std::vector<double> ours_step, ours_cpu, theirs_step, theirs_cpu;
  std::vector<Measured> ours_runs;
  Measured theirs;
  std::string torch_version = "?";
  for (int r = 0; r < s.repeats; ++r) {
    Measured m;
    if (!Gptbuilder(s, &m)) return 1;
    ours_runs.push_back(m);
    ours_step.push_back(m.step);
    ours_cpu.push_back(m.cpu);
    if (s.baseline != 0) {
      if (!Baseline(s, &theirs, &torch_version)) return 1;
      theirs_step.push_back(theirs.step);
      theirs_cpu.push_back(theirs.cpu);
    }
  }
  const double ours = Median(ours_step);
  // The phases of the run whose step time is the median.
  const Measured& median_run = *std::min_element(
      ours_runs.begin(), ours_runs.end(), [&](const Measured& a, const Measured& b) {
        return std::abs(a.step - ours) < std::abs(b.step - ours);
      });
  auto row = [&](const char* name, double step, double cpu, double loss) {
    std::printf("%-46s %9.4f %9.4f %10.0f %7.1f%% %8.1f%% %9.4f\n", name, step, cpu, tokens / step,
                100.0 * flops / step / 1e9 / sgemm.wall, 100.0 * flops / cpu / 1e9 / sgemm.cpu,
                loss);
  };
  std::printf("%-46s %9s %9s %10s %8s %9s %9s\n", "", "step s", "cpu s", "tokens/s", "MFU",
              "MFU/cpu", "loss");
  if (s.baseline != 0) {
    row(s.dp == 1 ? "PyTorch, plain nn.Module + AdamW (baseline)"
                  : "PyTorch DDP over Gloo + AdamW (baseline)",
        Median(theirs_step), Median(theirs_cpu), theirs.loss);
  }
  row(s.dp == 1 ? "gptbuilder RankTrainer (DDP-wrapped, tp=1)"
                : "gptbuilder RankTrainer (dp ranks)",
      ours, Median(ours_cpu), median_run.loss);
  const gptb::train::StepTimings& p = median_run.phases;
  std::printf(
      "\ngptbuilder phases (rank 0, s): data %.4f, forward/backward %.4f (of which p2p waits "
      "%.4f), grad sync %.4f, optimizer %.4f, total %.4f\n",
      p.data, p.forward_backward, p.p2p_wait, p.grad_sync, p.optimizer, p.total);
  if (s.baseline != 0) {
    std::printf("gptbuilder / PyTorch tokens/s: %.2fx (torch %s; per repeat:",
                Median(theirs_step) / ours, torch_version.c_str());
    for (int r = 0; r < s.repeats; ++r) std::printf(" %.2fx", theirs_step[r] / ours_step[r]);
    std::printf(")\n");
  }
  return 0;
}
