// Builds one rank of GPT-2 small and of a 1.3B GPT (fp32 and bf16) and reports parameter bytes
// initialised per second and peak-RSS growth per parameter byte, against two baselines measured
// in the same run on the same bytes:
//   * LibTorch "allocate, then normal_" (torch::empty(shape).normal_(0, 0.02) per parameter),
//   * first-touch write bandwidth: memset of freshly mmap'd pages on every core.
// Each measurement runs in a fresh child process (this binary re-executed with --child) so peak
// RSS is its own. Then the 1.3B fp32 build against real Megatron Core on one rank
// (bench/model/megatron_build.py on the project environment's megatron-core), alternating with
// gptbuilder's build and the memset (--no-megatron skips it).
#include <sys/mman.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/config/finalize.h"
#include "core/model/rank_model.h"
#include "core/plan/model_plan.h"

namespace {

using Clock = std::chrono::steady_clock;

double LoadAverage() {
  double load = 0.0;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

int64_t StatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key)));
  }
  return 0;
}

gptbuilder::v1::GPTModelConfig Model(const std::string& name, const std::string& dtype) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  if (name == "gpt2-small") {
    t->set_num_layers(12);
    t->set_hidden_size(768);
    t->set_num_attention_heads(12);
    c.set_vocab_size(50257);
    c.set_should_pad_vocab(true);
    c.set_share_embeddings_and_output_weights(true);
  } else {  // 1.3B: 24 layers, hidden 2048, ffn 8192, vocab 50304, seq 2048
    t->set_num_layers(24);
    t->set_hidden_size(2048);
    t->set_num_attention_heads(16);
    c.set_vocab_size(50304);
    c.set_seq_length(2048);
  }
  c.mutable_transformer_layer_spec()->set_name("local");
  if (dtype == "bf16") {
    t->set_bf16(true);
    t->set_params_dtype("bfloat16");
  }
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = gptb::config::Finalize(c, {1});
  if (!f.ok()) {
    std::fprintf(stderr, "%s\n", std::string(f.status().message()).c_str());
    std::exit(1);
  }
  return *f;
}

// Child: one measurement; prints "seconds bytes rss_growth_bytes".
int Child(const std::string& method, const std::string& model, const std::string& dtype) {
  const gptbuilder::v1::GPTModelConfig config = Model(model, dtype);
  gptb::plan::PlanOptions plan_options;
  absl::StatusOr<gptb::plan::ModelPlan> plan = gptb::plan::ModelPlan::Create(config, plan_options);
  const int64_t bytes = plan->stages()[0].param_bytes;
  torch::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  // Warm LibTorch's allocator / thread pools on a tiny tensor so they are not counted.
  { torch::Tensor warm = torch::empty({16}).normal_(); }
  const int64_t rss_before = StatusKb("VmRSS:") * 1024;
  double seconds = 0.0;
  std::vector<torch::Tensor> keep;
  std::unique_ptr<gptb::model::RankModel> built;
  const auto start = Clock::now();
  if (method == "gptb") {
    gptb::model::RankBuildOptions options;
    options.config = config;
    options.build.set_wrap_with_ddp(false);  // build_model: the parameters alone
    absl::StatusOr<std::unique_ptr<gptb::model::RankModel>> r =
        gptb::model::BuildRankModel(options);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    built = *std::move(r);
  } else if (method == "libtorch") {
    torch::NoGradGuard no_grad;
    const torch::Dtype dt = dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
    for (const auto& p : plan->stages()[0].params) {
      keep.push_back(torch::empty(p.shape, torch::TensorOptions().dtype(dt)).normal_(0, 0.02));
    }
  } else {  // memset of fresh pages on every core
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const int threads = static_cast<int>(std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    const int64_t chunk = (bytes + threads - 1) / threads;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([=] {
        const int64_t begin = i * chunk, end = std::min<int64_t>(bytes, begin + chunk);
        if (end > begin) std::memset(static_cast<char*>(mem) + begin, 1, end - begin);
      });
    }
    for (auto& t : pool) t.join();
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const int64_t peak = StatusKb("VmHWM:") * 1024;
    std::printf("%.6f %lld %lld\n", seconds, static_cast<long long>(bytes),
                static_cast<long long>(peak - rss_before));
    munmap(mem, bytes);
    return 0;
  }
  seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const int64_t peak = StatusKb("VmHWM:") * 1024;
  std::printf("%.6f %lld %lld\n", seconds, static_cast<long long>(bytes),
              static_cast<long long>(peak - rss_before));
  return 0;
}

struct Result {
  double seconds = 0;
  int64_t bytes = 0;
  int64_t rss = 0;
};

Result Run(const std::string& self, const std::string& method, const std::string& model,
           const std::string& dtype, int repeats) {
  Result best;
  best.seconds = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const std::string cmd = self + " --child " + method + " " + model + " " + dtype;
    FILE* pipe = popen(cmd.c_str(), "r");
    Result r;
    long long bytes = 0, rss = 0;
    if (pipe == nullptr || std::fscanf(pipe, "%lf %lld %lld", &r.seconds, &bytes, &rss) != 3) {
      std::fprintf(stderr, "child failed: %s\n", cmd.c_str());
      std::exit(1);
    }
    pclose(pipe);
    r.bytes = bytes;
    r.rss = rss;
    if (r.seconds < best.seconds) best = r;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--child") return Child(argv[2], argv[3], argv[4]);
  const std::string self = "/proc/" + std::to_string(getpid()) + "/exe";
  const char* exe = argv[0];
  std::printf("%-12s %-5s %10s | %-28s | %-28s | %-22s | %s\n", "model", "dtype", "param MB",
              "gptbuilder build", "LibTorch empty+normal_", "first-touch memset", "gptb vs");
  for (const auto& [model, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"gpt2-small", "fp32"}, {"1.3b", "fp32"}, {"1.3b", "bf16"}}) {
    const int repeats = model == "gpt2-small" ? 3 : 2;
    const Result gptb = Run(exe, "gptb", model, dtype, repeats);
    const Result torch_base = Run(exe, "libtorch", model, dtype, repeats);
    const Result touch = Run(exe, "memset", model, dtype, repeats);
    auto gbps = [](const Result& r) { return r.bytes / r.seconds / 1e9; };
    std::printf(
        "%-12s %-5s %10.1f | %6.3f s %5.2f GB/s rss %.3f | %6.3f s %5.2f GB/s rss %.3f | %6.3f s "
        "%5.2f GB/s | %.1fx torch, %.0f%% touch\n",
        model.c_str(), dtype.c_str(), gptb.bytes / 1e6, gptb.seconds, gbps(gptb),
        static_cast<double>(gptb.rss) / gptb.bytes, torch_base.seconds, gbps(torch_base),
        static_cast<double>(torch_base.rss) / torch_base.bytes, touch.seconds, gbps(touch),
        gbps(gptb) / gbps(torch_base), 100.0 * gbps(gptb) / gbps(touch));
  }
  (void)self;

  // Real Megatron Core (bench/model/megatron_build.py: GPTModel construction with
  // use_cpu_initialization, one rank) on the 1.3B fp32 model, alternating with gptbuilder's build
  // and the first-touch memset of the same bytes. --no-megatron skips it (about 20 s a run).
  bool megatron = true;
  for (int i = 1; i < argc; ++i) megatron &= std::string(argv[i]) != "--no-megatron";
  if (!megatron) return 0;
  const std::string script = std::string(GPTB_SOURCE_DIR) + "/bench/model/megatron_build.py";
  std::vector<double> ours, theirs, touch;
  for (int r = 0; r < 3; ++r) {  // odd: the median is one run, not the slower of two
    ours.push_back(Run(exe, "gptb", "1.3b", "fp32", 1).seconds);
    touch.push_back(Run(exe, "memset", "1.3b", "fp32", 1).seconds);
    const std::string command = std::string(GPTB_PYTHON) + " " + script +
                                " --model 1.3b --dtype fp32 --threads " +
                                std::to_string(std::thread::hardware_concurrency()) + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char buffer[4096];
    while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    if (pipe != nullptr) pclose(pipe);
    const size_t at = output.rfind("{\"seconds\": ");
    if (at == std::string::npos) {
      std::fprintf(stderr, "the Megatron Core baseline failed: %s\n%s\n", command.c_str(),
                   output.c_str());
      return 1;
    }
    theirs.push_back(std::atof(output.c_str() + at + 12));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf(
      "\n1.3b fp32 on one rank, alternating (median of %zu; load average %.2f at the end):\n"
      "  gptbuilder %.3f s, Megatron Core %.3f s (%.1fx), first-touch memset %.3f s "
      "(gptbuilder at %.0f%% of its bandwidth)\n  per round (gptbuilder / memset / Megatron Core, "
      "s):",
      ours.size(), LoadAverage(), median(ours), median(theirs), median(theirs) / median(ours),
      median(touch), 100.0 * median(touch) / median(ours));
  for (size_t r = 0; r < ours.size(); ++r) {
    std::printf(" %.3f / %.3f / %.3f%s", ours[r], touch[r], theirs[r],
                r + 1 < ours.size() ? ";" : "\n");
  }
  return 0;
}
