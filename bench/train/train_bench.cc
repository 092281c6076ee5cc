// Train-step throughput on CPU: a small GPT at tp=1 trained through gptbuilder's RankTrainer
// (the model built by BuildRankModel, wrapped in DDP, Megatron's train step) versus the same
// model and step written the plain PyTorch way (bench/train/torch_baseline.py on
// the same torch as LibTorch: the project environment's wheel), with the same thread count.
//
// Model: 4 layers, hidden 256, 8 heads, ffn 1024, vocabulary 4096, sequence 256, LayerNorm,
// GELU, biases, learned positions, tied embeddings, no dropout, fp32. Step: 2 micro-batches of
// 4 samples (2,048 tokens), Adam (decoupled decay 0.01), clipping at 1.0. The median of 5 steps
// after 1 warm-up step (Debian's CPU LibTorch takes ~14 s per step of this model on one thread).
//
// Usage: train_bench [--steps N] [--layers L] [--hidden H] [--seq S] [--threads T]
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/finalize.h"
#include "core/model/rank_model.h"
#include "core/train/train_step.h"
#include "nlohmann/json.hpp"

namespace {

struct Sizes {
  int layers = 4, hidden = 256, heads = 8, ffn = 1024, vocab = 4096, seq = 256;
  int micro_batch_size = 4, micro_batches = 2, steps = 5, warmup = 1, threads = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median step seconds of gptbuilder's train step; -1 on error.
double GptbuilderStep(const Sizes& s, double* last_loss) {
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
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized = gptb::config::Finalize(c, {1});
  if (!finalized.ok()) {
    std::fprintf(stderr, "config: %s\n", finalized.status().ToString().c_str());
    return -1;
  }
  gptb::model::RankBuildOptions options;
  options.config = *finalized;
  options.build.set_seed(1234);
  absl::StatusOr<std::unique_ptr<gptb::model::RankModel>> model =
      gptb::model::BuildRankModel(options);
  if (!model.ok()) {
    std::fprintf(stderr, "build: %s\n", model.status().ToString().c_str());
    return -1;
  }
  gptb::train::RankTrainer trainer(model->get());
  gptb::train::TrainRequest request;
  request.batch.set_synthetic_seed(7);
  request.options.set_micro_batch_size(s.micro_batch_size);
  request.options.set_num_micro_batches(s.micro_batches);
  request.options.mutable_optimizer()->set_lr(1e-4);
  std::vector<double> seconds;
  for (int step = 0; step < s.warmup + s.steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<gptb::train::TrainStepResult> result = trainer.Step(request);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result.ok()) {
      std::fprintf(stderr, "step: %s\n", result.status().ToString().c_str());
      return -1;
    }
    *last_loss = result->loss;
    if (step >= s.warmup) seconds.push_back(elapsed);
  }
  return Median(seconds);
}

}  // namespace

int main(int argc, char** argv) {
  Sizes s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--steps")
      s.steps = value;
    else if (flag == "--layers")
      s.layers = value;
    else if (flag == "--hidden")
      s.hidden = value;
    else if (flag == "--seq")
      s.seq = value;
    else if (flag == "--threads")
      s.threads = value;
    else {
      std::fprintf(stderr,
                   "usage: %s [--steps N] [--layers L] [--hidden H] [--seq S] [--threads T]\n",
                   argv[0]);
      return 2;
    }
  }
  if (s.threads > 0) at::set_num_threads(s.threads);
  s.threads = at::get_num_threads();
  const int tokens = s.micro_batch_size * s.micro_batches * s.seq;
  std::printf(
      "train step of a GPT (%d layers, hidden %d, %d heads, ffn %d, vocab %d, seq %d), %d tokens "
      "per step, fp32, %d threads, median of %d steps after %d warm-up\n\n",
      s.layers, s.hidden, s.heads, s.ffn, s.vocab, s.seq, tokens, s.threads, s.steps, s.warmup);

  double loss = 0;
  const double ours = GptbuilderStep(s, &loss);
  if (ours < 0) return 1;

  const std::string script = std::string(GPTB_SOURCE_DIR) + "/bench/train/torch_baseline.py";
  const std::string command =
      absl::StrCat(GPTB_PYTHON, " ", script, " --layers ", s.layers, " --hidden ", s.hidden,
                   " --heads ", s.heads, " --ffn ", s.ffn, " --vocab ", s.vocab, " --seq ", s.seq,
                   " --micro_batch_size ", s.micro_batch_size, " --micro_batches ", s.micro_batches,
                   " --steps ", s.steps, " --warmup ", s.warmup, " --threads ", s.threads);
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  if (pipe != nullptr) {
    char buffer[4096];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    pclose(pipe);
  }
  nlohmann::json baseline = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (baseline.is_discarded() || !baseline.contains("median_step_seconds")) {
    std::fprintf(stderr, "the PyTorch baseline failed: %s\n", command.c_str());
    return 1;
  }
  const double theirs = baseline["median_step_seconds"].get<double>();
  std::printf("%-44s %10s %12s %10s\n", "", "step s", "tokens/s", "loss");
  std::printf("%-44s %10.4f %12.0f %10.4f\n", "PyTorch, plain nn.Module + AdamW (baseline)", theirs,
              tokens / theirs, baseline["last_loss"].get<double>());
  std::printf("%-44s %10.4f %12.0f %10.4f\n", "gptbuilder RankTrainer (DDP-wrapped, tp=1)", ours,
              tokens / ours, loss);
  std::printf("\ngptbuilder / PyTorch tokens/s: %.2fx (torch %s)\n", theirs / ours,
              baseline["torch"].get<std::string>().c_str());
  return 0;
}
