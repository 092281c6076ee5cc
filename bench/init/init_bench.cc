// Parameter initialisation throughput: gptb::init::FillShard versus LibTorch's
// torch::empty(shape).normal_() and the machine's first-touch write bandwidth, in one run.
//
// Every measurement writes into freshly mapped pages, as the builder does (the page faults and
// the kernel's page zeroing are part of the cost): FillShard gets one fresh mmap per tensor,
// LibTorch allocates through glibc with a fixed mmap threshold (so freed tensors are not reused),
// and the bandwidth reference is memset over fresh mmap'd pages with the same thread count.
// Peak RSS growth is measured with /proc/self/clear_refs (VmHWM reset) around each phase.
//
//   init_bench [--models=gpt2,1.3b] [--reps=3] [--threads=N] [--no-torch]
//
// Figures are GB/s of parameter bytes; the median of --reps repetitions (interleaved, so load
// from other processes hits every contender alike).

#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/init/checksum.h"
#include "core/init/initializer.h"
#include "torch/torch.h"

namespace {

using gptb::DType;
using gptb::init::FillOptions;
using gptb::init::InitSpec;

struct Param {
  std::string name;
  std::vector<int64_t> shape;
  InitSpec spec;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

struct Model {
  std::string label;
  std::vector<Param> params;
  int64_t numel() const {
    int64_t n = 0;
    for (const Param& p : params) n += p.numel();
    return n;
  }
};

// A GPT with Megatron's local-spec names (LayerNorm with bias, linear biases, learned absolute
// positions, tied output layer) and Megatron's init: N(0, 0.02), N(0, 0.02 / sqrt(2L)) for
// linear_proj and fc2, zero biases, unit norm weights.
Model Gpt(const std::string& label, int layers, int64_t hidden, int64_t ffn, int64_t vocab,
          int64_t seq) {
  const double std = 0.02;
  const double out_std = std / std::sqrt(2.0 * layers);
  Model m{label, {}};
  auto add = [&](std::string name, std::vector<int64_t> shape, InitSpec spec) {
    m.params.push_back({std::move(name), std::move(shape), spec});
  };
  add("embedding.word_embeddings.weight", {vocab, hidden}, InitSpec::Normal(std));
  add("embedding.position_embeddings.weight", {seq, hidden}, InitSpec::Normal(std));
  for (int l = 0; l < layers; ++l) {
    const std::string p = "decoder.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden}, InitSpec::Ones());
    add(p + "input_layernorm.bias", {hidden}, InitSpec::Zeros());
    add(p + "self_attention.linear_qkv.weight", {3 * hidden, hidden}, InitSpec::Normal(std));
    add(p + "self_attention.linear_qkv.bias", {3 * hidden}, InitSpec::Zeros());
    add(p + "self_attention.linear_proj.weight", {hidden, hidden}, InitSpec::Normal(out_std));
    add(p + "self_attention.linear_proj.bias", {hidden}, InitSpec::Zeros());
    add(p + "pre_mlp_layernorm.weight", {hidden}, InitSpec::Ones());
    add(p + "pre_mlp_layernorm.bias", {hidden}, InitSpec::Zeros());
    add(p + "mlp.linear_fc1.weight", {ffn, hidden}, InitSpec::Normal(std));
    add(p + "mlp.linear_fc1.bias", {ffn}, InitSpec::Zeros());
    add(p + "mlp.linear_fc2.weight", {hidden, ffn}, InitSpec::Normal(out_std));
    add(p + "mlp.linear_fc2.bias", {hidden}, InitSpec::Zeros());
  }
  add("decoder.final_layernorm.weight", {hidden}, InitSpec::Ones());
  add("decoder.final_layernorm.bias", {hidden}, InitSpec::Zeros());
  return m;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void* FreshPages(size_t bytes) {
  void* p = mmap(nullptr, std::max<size_t>(bytes, 1), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  return p;
}

void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// VmRSS and VmHWM in bytes.
std::pair<int64_t, int64_t> Rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  int64_t rss = 0, hwm = 0;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atoll(line.c_str() + 6) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::atoll(line.c_str() + 6) * 1024;
  }
  return {rss, hwm};
}

// User + system CPU seconds of the whole process (all threads, page faults included).
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Sample {
  double seconds = 0;
  double cpu_seconds = 0;
  double peak_growth = 0;  // bytes
};

// Runs fn (which allocates, fills and returns a cleanup) and reports time and peak RSS growth.
Sample Measure(const std::function<std::function<void()>()>& fn) {
  const int64_t before = Rss().first;
  ResetPeakRss();
  const double c0 = CpuSeconds();
  const double t0 = Now();
  std::function<void()> cleanup = fn();
  const double t1 = Now();
  const double c1 = CpuSeconds();
  const int64_t peak = Rss().second;
  cleanup();
  return {t1 - t0, c1 - c0, static_cast<double>(peak - before)};
}

void ParallelMemset(char* p, size_t bytes, int threads) {
  std::vector<std::thread> ts;
  const size_t step = (bytes / threads + 4095) / 4096 * 4096;
  for (int t = 1; t < threads; ++t) {
    const size_t b = std::min(bytes, step * t), e = std::min(bytes, step * (t + 1));
    if (b < e) ts.emplace_back([=] { std::memset(p + b, 0, e - b); });
  }
  std::memset(p, 0, std::min(bytes, step));
  for (auto& t : ts) t.join();
}

Sample MemsetFresh(size_t bytes, int threads, bool populate) {
  return Measure([&]() -> std::function<void()> {
    char* p = static_cast<char*>(FreshPages(bytes));
    if (populate) {
      constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14)
      std::vector<std::thread> ts;
      const size_t step = (bytes / threads + 4095) / 4096 * 4096;
      for (int t = 0; t < threads; ++t) {
        const size_t b = std::min(bytes, step * t), e = std::min(bytes, step * (t + 1));
        if (b < e) ts.emplace_back([=] { madvise(p + b, e - b, kPopulateWrite); });
      }
      for (auto& t : ts) t.join();
    }
    ParallelMemset(p, bytes, threads);
    return [p, bytes] { munmap(p, bytes); };
  });
}

Sample FillFresh(const Model& m, DType dtype, const FillOptions& opts, uint64_t* checksum) {
  return Measure([&]() -> std::function<void()> {
    std::vector<std::pair<void*, size_t>> bufs;
    bufs.reserve(m.params.size());
    for (const Param& p : m.params) {
      const size_t bytes = static_cast<size_t>(p.numel()) * gptb::DTypeSize(dtype);
      void* buf = FreshPages(bytes);
      absl::Status s = gptb::init::FillShard(1234, p.name, p.spec, gptb::init::WholeLayout(p.shape),
                                             dtype, buf, p.numel(), opts);
      if (!s.ok()) {
        std::fprintf(stderr, "FillShard(%s): %s\n", p.name.c_str(), s.ToString().c_str());
        std::exit(1);
      }
      bufs.emplace_back(buf, bytes);
    }
    return [bufs, checksum] {
      uint64_t h = 0;
      for (const auto& [buf, bytes] : bufs) {
        h = h * 31 + gptb::init::Checksum(buf, bytes);
        munmap(buf, bytes);
      }
      *checksum = h;
    };
  });
}

// Pure generation rate: the same fills into memory that is already mapped and touched.
Sample FillWarm(const Model& m, DType dtype, const FillOptions& opts, std::vector<char>& arena) {
  return Measure([&]() -> std::function<void()> {
    size_t off = 0;
    for (const Param& p : m.params) {
      (void)gptb::init::FillShard(1234, p.name, p.spec, gptb::init::WholeLayout(p.shape), dtype,
                                  arena.data() + off, p.numel(), opts);
      off += static_cast<size_t>(p.numel()) * gptb::DTypeSize(dtype);
    }
    return [] {};
  });
}

Sample TorchFresh(const Model& m, DType dtype) {
  return Measure([&]() -> std::function<void()> {
    const auto tdtype = dtype == DType::kFloat32    ? torch::kFloat32
                        : dtype == DType::kBFloat16 ? torch::kBFloat16
                                                    : torch::kFloat16;
    auto tensors = std::make_shared<std::vector<torch::Tensor>>();
    tensors->reserve(m.params.size());
    try {
      torch::NoGradGuard no_grad;
      for (const Param& p : m.params) {
        const auto opts = torch::TensorOptions().dtype(tdtype);
        switch (p.spec.dist) {
          case gptb::init::Distribution::kNormal:
            tensors->push_back(torch::empty(p.shape, opts).normal_(p.spec.mean, p.spec.std));
            break;
          case gptb::init::Distribution::kConstant:
            tensors->push_back(torch::full(p.shape, p.spec.value, opts));
            break;
          case gptb::init::Distribution::kUniform:
            tensors->push_back(torch::empty(p.shape, opts).uniform_(p.spec.low, p.spec.high));
            break;
        }
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "LibTorch: %s\n", e.what());
      std::exit(1);
    }
    return [tensors] { tensors->clear(); };
  });
}

// LibTorch's generation alone: the same calls on tensors that already exist and are touched.
Sample TorchWarm(const Model& m, std::vector<torch::Tensor>& tensors) {
  return Measure([&]() -> std::function<void()> {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < m.params.size(); ++i) {
      const InitSpec& spec = m.params[i].spec;
      switch (spec.dist) {
        case gptb::init::Distribution::kNormal:
          tensors[i].normal_(spec.mean, spec.std);
          break;
        case gptb::init::Distribution::kConstant:
          tensors[i].fill_(spec.value);
          break;
        case gptb::init::Distribution::kUniform:
          tensors[i].uniform_(spec.low, spec.high);
          break;
      }
    }
    return [] {};
  });
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Row {
  explicit Row(std::string w) : what(std::move(w)) {}
  std::string what;
  std::vector<double> seconds;
  std::vector<double> cpu;
  std::vector<double> peak;
  void Add(const Sample& s, bool with_peak) {
    seconds.push_back(s.seconds);
    cpu.push_back(s.cpu_seconds);
    if (with_peak) peak.push_back(s.peak_growth);
  }
  double WallGbs(double bytes) const { return bytes / Median(seconds) / 1e9; }
  double CpuGbs(double bytes) const { return bytes / Median(cpu) / 1e9; }
};

// Wall GB/s (median and best), GB per CPU-second (robust when other processes share the
// cores), and both as a percentage of the reference row.
void Print(const Row& r, double bytes, const Row* ref) {
  const double best = bytes / *std::min_element(r.seconds.begin(), r.seconds.end()) / 1e9;
  std::printf("  %-42s %7.2f GB/s (best %5.2f) %6.2f GB/cpu-s", r.what.c_str(), r.WallGbs(bytes),
              best, r.CpuGbs(bytes));
  if (ref != nullptr) {
    std::printf("  %4.0f%% / %4.0f%% of memset", 100 * r.WallGbs(bytes) / ref->WallGbs(bytes),
                100 * r.CpuGbs(bytes) / ref->CpuGbs(bytes));
  }
  if (!r.peak.empty()) std::printf("  peak RSS +%.3fx", Median(r.peak) / bytes);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string models = "gpt2,1.3b";
  int reps = 3;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  bool with_torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--models=", 0) == 0)
      models = a.substr(9);
    else if (a.rfind("--reps=", 0) == 0)
      reps = std::max(1, std::atoi(a.c_str() + 7));
    else if (a.rfind("--threads=", 0) == 0)
      threads = std::max(1, std::atoi(a.c_str() + 10));
    else if (a == "--no-torch")
      with_torch = false;
    else {
      std::fprintf(stderr, "usage: %s [--models=gpt2,1.3b] [--reps=3] [--threads=N] [--no-torch]\n",
                   argv[0]);
      return 2;
    }
  }
  // Large allocations always come from fresh mmaps (no dynamic threshold, no reuse of freed
  // tensors), so LibTorch pays first-touch like the other contenders.
  setvbuf(stdout, nullptr, _IOLBF, 0);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  torch::set_num_threads(threads);
  std::printf("init_bench: %d threads, kernels available:", threads);
  for (gptb::init::Isa isa : gptb::init::AvailableIsas()) {
    std::printf(" %s", gptb::init::IsaName(isa));
  }
  std::printf(" (auto = the last)\n");

  struct Job {
    Model model;
    DType dtype;
  };
  std::vector<Job> jobs;
  if (models.find("gpt2") != std::string::npos) {
    jobs.push_back({Gpt("GPT-2 small (124M)", 12, 768, 3072, 50304, 1024), DType::kFloat32});
  }
  if (models.find("1.3b") != std::string::npos) {
    Model m = Gpt("GPT 1.3B (24x2048, ffn 8192)", 24, 2048, 8192, 50304, 2048);
    jobs.push_back({m, DType::kFloat32});
    jobs.push_back({m, DType::kBFloat16});
  }

  for (const Job& job : jobs) {
    const double bytes = static_cast<double>(job.model.numel()) * gptb::DTypeSize(job.dtype);
    std::printf("\n%s, %s: %.1fM parameters, %zu tensors, %.2f GB\n", job.model.label.c_str(),
                job.dtype == DType::kFloat32 ? "fp32" : "bf16", job.model.numel() / 1e6,
                job.model.params.size(), bytes / 1e9);
    FillOptions fill_all;
    fill_all.num_threads = threads;
    FillOptions fill_one;
    fill_one.num_threads = 1;
    const std::string tn = std::to_string(threads) + (threads > 1 ? " threads" : " thread");
    Row memset_all{"memset fresh pages, " + tn};
    Row memset_one{"memset fresh pages, 1 thread"};
    Row populate_all{"MADV_POPULATE_WRITE + memset, " + tn};
    Row fill_fresh_all{"FillShard fresh pages, " + tn};
    Row fill_fresh_one{"FillShard fresh pages, 1 thread"};
    Row fill_fresh_nopf{"FillShard fresh, no prefault, " + tn};
    FillOptions fill_nopf = fill_all;
    fill_nopf.prefault = false;
    Row torch_row{"torch empty().normal_() fresh, " + tn};
    std::vector<uint64_t> sums;
    for (int r = 0; r < reps; ++r) {
      memset_all.Add(MemsetFresh(static_cast<size_t>(bytes), threads, false), false);
      memset_one.Add(MemsetFresh(static_cast<size_t>(bytes), 1, false), false);
      populate_all.Add(MemsetFresh(static_cast<size_t>(bytes), threads, true), false);
      uint64_t sum = 0;
      fill_fresh_all.Add(FillFresh(job.model, job.dtype, fill_all, &sum), true);
      sums.push_back(sum);
      fill_fresh_one.Add(FillFresh(job.model, job.dtype, fill_one, &sum), true);
      sums.push_back(sum);
      fill_fresh_nopf.Add(FillFresh(job.model, job.dtype, fill_nopf, &sum), true);
      sums.push_back(sum);
      if (with_torch) torch_row.Add(TorchFresh(job.model, job.dtype), true);
    }
    std::printf("  %-42s %-25s %-14s %s\n", "", "wall", "per CPU-second",
                "share of memset (wall / cpu)");
    Print(memset_all, bytes, nullptr);
    Print(memset_one, bytes, nullptr);
    Print(populate_all, bytes, &memset_all);
    Print(fill_fresh_all, bytes, &memset_all);
    Print(fill_fresh_one, bytes, &memset_one);
    Print(fill_fresh_nopf, bytes, &memset_all);
    if (with_torch) {
      Print(torch_row, bytes, &memset_all);
      std::printf("  FillShard / LibTorch normal_ (%s): %.1fx wall, %.1fx per CPU-second\n",
                  tn.c_str(), fill_fresh_all.WallGbs(bytes) / torch_row.WallGbs(bytes),
                  fill_fresh_all.CpuGbs(bytes) / torch_row.CpuGbs(bytes));
    }
    bool same = std::all_of(sums.begin(), sums.end(), [&](uint64_t v) { return v == sums[0]; });
    std::printf("  checksums of every FillShard run identical: %s (%016llx)\n", same ? "yes" : "NO",
                static_cast<unsigned long long>(sums[0]));

    // Generation alone, per kernel, into memory that is already touched.
    if (with_torch) {
      const auto tdtype = job.dtype == DType::kFloat32 ? torch::kFloat32 : torch::kBFloat16;
      std::vector<torch::Tensor> tensors;
      for (const Param& p : job.model.params) {
        tensors.push_back(torch::zeros(p.shape, torch::TensorOptions().dtype(tdtype)));
      }
      Row warm{"torch normal_() pre-touched"};
      for (int r = 0; r < reps; ++r) warm.Add(TorchWarm(job.model, tensors), false);
      Print(warm, bytes, nullptr);
    }
    std::vector<char> arena(static_cast<size_t>(bytes));
    std::memset(arena.data(), 1, arena.size());
    std::vector<std::pair<gptb::init::Isa, int>> variants;
    for (gptb::init::Isa isa : gptb::init::AvailableIsas()) variants.emplace_back(isa, 1);
    if (threads > 1) variants.emplace_back(gptb::init::Isa::kAuto, threads);
    for (const auto& [isa, t] : variants) {
      FillOptions o;
      o.num_threads = t;
      o.isa = isa;
      Row warm{std::string("FillShard pre-touched, ") + gptb::init::IsaName(isa) + ", " +
               std::to_string(t) + " thread" + (t > 1 ? "s" : "")};
      for (int r = 0; r < reps; ++r) warm.Add(FillWarm(job.model, job.dtype, o, arena), false);
      Print(warm, bytes, nullptr);
    }
  }
  return 0;
}
