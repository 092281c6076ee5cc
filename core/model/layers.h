#ifndef GPTB_CORE_MODEL_LAYERS_H_
#define GPTB_CORE_MODEL_LAYERS_H_

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/model/parallel_context.h"
#include "core/model/param_table.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::model {

// What every module constructor needs: the (finalized) transformer config, the stage's
// collectives, and the plan's parameters of the stage.
struct ModuleContext {
  const gptbuilder::v1::GPTModelConfig* model = nullptr;
  const gptbuilder::v1::TransformerConfig* config = nullptr;
  ParallelContext* parallel = nullptr;
  ParamTable* params = nullptr;
  // Megatron's layer_number of the transformer layer being built: 1-based global decoder layer
  // index, or the 1-based depth of an MTP layer (Megatron numbers MTP layers on their own);
  // 0 outside a layer. Sliding-window attention depends on it (window_attn_skip_freq).
  int layer_number = 0;
};

// Megatron's activation functions by Megatron-Bridge's names (activation_map): gelu is the exact
// erf form (F.gelu), fast_gelu the tanh approximation (megatron.core.activations.fast_gelu,
// Hugging Face's gelu_new / gelu_pytorch_tanh), squared_relu relu(x)^2, quick_gelu
// x * sigmoid(1.702 x), plus silu, relu, sigmoid and tanh.
using Activation = std::function<torch::Tensor(const torch::Tensor&)>;
Activation ActivationByName(const std::string& name);

// The block of Megatron's MLP between linear_fc1 and linear_fc2 (MLP.forward, also for shared
// experts and experts): with gated_linear_unit the fc1 output is [gate; up] and the result is
// act(min(gate, c)) * (clamp(up, -c, c) + glu_linear_offset), c = activation_func_clamp_value
// when set; otherwise act(x). With bias_activation_fusion and gelu, Megatron runs its fused
// bias_gelu / bias_geglu kernels instead, which compute the tanh approximation of GELU
// (constant 0.79788456) and never clamp; fused SwiGLU and quick-GeGLU compute what the plain
// path does. Fusion combinations Megatron cannot run are refused by config validation.
class MlpActivation {
 public:
  explicit MlpActivation(const gptbuilder::v1::TransformerConfig& t);
  torch::Tensor operator()(const torch::Tensor& fc1_output) const;

 private:
  Activation activation_;
  bool gated_;
  double glu_offset_;
  std::optional<double> clamp_;
};

// LayerNorm / RMSNorm parameters and math. Parameter names are given so the same code serves a
// plain norm ("weight", "bias") and TE's fused norm ("layer_norm_weight", "layer_norm_bias").
// The bias exists iff the plan has it (LayerNorm); zero-centred gamma uses (1 + weight).
class NormParams {
 public:
  NormParams(torch::nn::Module* owner, const ModuleContext& ctx, const std::string& prefix,
             const std::string& weight_name, const std::string& bias_name);
  torch::Tensor Apply(const torch::Tensor& x) const;

 private:
  torch::Tensor weight_;
  torch::Tensor bias_;  // undefined for RMSNorm
  double eps_;
  bool zero_centered_;
};

class Norm : public torch::nn::Module {
 public:
  Norm(const ModuleContext& ctx, const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& x) { return params_.Apply(x); }

 private:
  NormParams params_;
};

// How a linear talks to its tensor-parallel group. Expert linears do no communication of their
// own: the MoE token dispatcher gathers and reduce-scatters around them.
enum class LinearComm { kTensorParallel, kNone };

// ColumnParallelLinear (and TE's LayerNormColumnParallelLinear when `fused_norm`): weight
// [out/t, in], bias [out/t]; the input is copied into the tensor-parallel region (with sequence
// parallelism: all-gathered along the sequence, the fused norm applied before, to this rank's
// part); the output stays split unless gather_output.
class ColumnParallelLinear : public torch::nn::Module {
 public:
  ColumnParallelLinear(const ModuleContext& ctx, const std::string& prefix, bool fused_norm,
                       LinearComm comm = LinearComm::kTensorParallel, bool gather_output = false,
                       const std::string& weight_name = "weight",
                       const std::string& bias_name = "bias");
  torch::Tensor forward(const torch::Tensor& x);
  // Uses `weight` instead of an own weight (a tied output layer on the first stage).
  torch::Tensor ForwardWithWeight(const torch::Tensor& x, const torch::Tensor& weight);

 private:
  std::unique_ptr<NormParams> norm_;
  torch::Tensor weight_;
  torch::Tensor bias_;
  ParallelContext* parallel_;
  LinearComm comm_;
  bool gather_output_;
  bool sequence_parallel_;
};

// RowParallelLinear: weight [out, in/t], bias [out] added after the all-reduce (with sequence
// parallelism: after the reduce-scatter along the sequence). When the plan has
// `<prefix>post_layernorm.weight` (post_linear_layernorm: Bridge's TERowParallelLinearLayerNorm)
// the reduced output goes through that norm.
class RowParallelLinear : public torch::nn::Module {
 public:
  RowParallelLinear(const ModuleContext& ctx, const std::string& prefix,
                    LinearComm comm = LinearComm::kTensorParallel,
                    const std::string& weight_name = "weight",
                    const std::string& bias_name = "bias");
  torch::Tensor forward(const torch::Tensor& x);
  // Without the bias (the MoE dispatcher adds expert biases itself).
  const torch::Tensor& bias() const { return bias_; }

 private:
  torch::Tensor weight_;
  torch::Tensor bias_;
  std::shared_ptr<Norm> post_layernorm_;
  ParallelContext* parallel_;
  LinearComm comm_;
  bool sequence_parallel_;
};

// VocabParallelEmbedding: rows [r*V/t, (r+1)*V/t) of the word embedding; ids outside the
// rank's range contribute zeros and the all-reduce sums the shards. With
// `reduce_scatter_embeddings` (Megatron's, under sequence parallelism) the output is [s/t, b, h]:
// transposed and reduce-scattered along the sequence instead.
class VocabParallelEmbedding : public torch::nn::Module {
 public:
  VocabParallelEmbedding(const ModuleContext& ctx, const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& ids, bool reduce_scatter_embeddings = false);
  const torch::Tensor& weight() const { return weight_; }

 private:
  torch::Tensor weight_;
  int64_t vocab_start_ = 0;
  ParallelContext* parallel_;
};

// LanguageModelEmbedding: word embeddings plus learned absolute positions when configured;
// [b, s] ids -> [s, b, h] hidden states, then embedding dropout. With sequence parallelism the
// output is this rank's part of the sequence, [s/t, b, h] (reduce-scattered straight from the
// vocabulary shards when there are no position embeddings, else scattered after adding them;
// with scatter_embedding_sequence_parallel false GPTModel scatters right after, the same
// tensor).
class LanguageModelEmbedding : public torch::nn::Module {
 public:
  LanguageModelEmbedding(const ModuleContext& ctx, const std::string& prefix);
  torch::Tensor forward(const torch::Tensor& ids);
  const torch::Tensor& word_embedding_weight() const { return word_embeddings_->weight(); }

 private:
  std::optional<double> embedding_scale_;  // apply_embedding_scaling: sqrt(hidden_size)
  std::shared_ptr<VocabParallelEmbedding> word_embeddings_;
  std::shared_ptr<torch::nn::Module> position_embeddings_holder_;
  torch::Tensor position_weight_;
  ParallelContext* parallel_;
  double dropout_;
  bool sequence_parallel_;
  at::Generator* generator_;
};

// Dense MLP: linear_fc1 (column-parallel, [gate; up] rows when gated) -> activation / GLU ->
// linear_fc2 (row-parallel). `comm` kNone for experts.
class Mlp : public torch::nn::Module {
 public:
  Mlp(const ModuleContext& ctx, const std::string& prefix, bool fc1_fused_norm,
      LinearComm comm = LinearComm::kTensorParallel);
  torch::Tensor forward(const torch::Tensor& x);
  // fc2 without its all-reduce / bias handling (experts): returns fc2's matmul only.
  torch::Tensor ForwardNoBias(const torch::Tensor& x);
  const torch::Tensor& fc2_bias() const { return linear_fc2_->bias(); }

 private:
  torch::Tensor Hidden(const torch::Tensor& x);

  std::shared_ptr<ColumnParallelLinear> linear_fc1_;
  std::shared_ptr<RowParallelLinear> linear_fc2_;
  MlpActivation activation_;
};

// The stream of the embedding's and the transformer layers' hidden dropout: the tensor-parallel
// one under sequence parallelism (Megatron runs the block and the embedding dropout inside
// get_cuda_rng_tracker().fork()), else the default one.
at::Generator* HiddenDropoutGenerator(const ModuleContext& ctx);

// Dropout that is a no-op in eval mode or with p == 0, its mask drawn from `generator` (nullptr:
// torch's default generator); see ParallelContext::RngStream for which stream each dropout uses.
torch::Tensor MaybeDropout(const torch::Tensor& x, double p, bool training,
                           at::Generator* generator);

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_LAYERS_H_
