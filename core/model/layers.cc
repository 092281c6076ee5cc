#include "core/model/layers.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/model/dense_linear.h"

namespace gptb::model {

namespace {

// Megatron's bias_gelu / bias_geglu kernels (megatron/core/fusions): the tanh approximation of
// GELU with sqrt(2 / pi) rounded to 0.79788456; their hand-written backward is its derivative.
torch::Tensor FusedKernelGelu(const torch::Tensor& x) {
  return x * 0.5 * (1.0 + torch::tanh(0.79788456 * x * (1.0 + 0.044715 * x * x)));
}

}  // namespace

Activation ActivationByName(const std::string& name) {
  if (name == "gelu") return [](const torch::Tensor& x) { return torch::gelu(x); };
  if (name == "fast_gelu") {
    // megatron.core.activations.fast_gelu, term for term.
    return [](const torch::Tensor& x) {
      return 0.5 * x * (1.0 + torch::tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)));
    };
  }
  if (name == "sigmoid") return [](const torch::Tensor& x) { return torch::sigmoid(x); };
  if (name == "tanh") return [](const torch::Tensor& x) { return torch::tanh(x); };
  if (name == "silu") return [](const torch::Tensor& x) { return torch::silu(x); };
  if (name == "relu") return [](const torch::Tensor& x) { return torch::relu(x); };
  if (name == "squared_relu") {
    return [](const torch::Tensor& x) { return torch::pow(torch::relu(x), 2); };
  }
  if (name == "quick_gelu") {
    return [](const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); };
  }
  throw BuildError(absl::StrCat("transformer.activation_func: unknown activation '", name, "'"));
}

MlpActivation::MlpActivation(const gptbuilder::v1::TransformerConfig& t)
    : gated_(t.gated_linear_unit()), glu_offset_(t.glu_linear_offset()) {
  if (t.bias_activation_fusion() && t.activation_func() == "gelu") {
    activation_ = FusedKernelGelu;
    glu_offset_ = 0.0;  // validation: a non-zero offset with fusion needs quick_gelu
  } else {
    activation_ = ActivationByName(t.activation_func());
    if (gated_ && t.has_activation_func_clamp_value()) clamp_ = t.activation_func_clamp_value();
  }
}

torch::Tensor MlpActivation::operator()(const torch::Tensor& h) const {
  if (!gated_) return activation_(h);
  std::vector<torch::Tensor> halves = h.chunk(2, -1);
  torch::Tensor gate = halves[0], up = halves[1];
  if (clamp_.has_value()) {
    gate = gate.clamp_max(*clamp_);
    up = up.clamp(-*clamp_, *clamp_);
  }
  return activation_(gate) * (up + glu_offset_);
}

at::Generator* HiddenDropoutGenerator(const ModuleContext& ctx) {
  return ctx.parallel->dropout_generator(ctx.config->sequence_parallel()
                                             ? ParallelContext::RngStream::kTensorParallel
                                             : ParallelContext::RngStream::kDefault);
}

torch::Tensor MaybeDropout(const torch::Tensor& x, double p, bool training,
                           at::Generator* generator) {
  if (!training || p <= 0.0) return x;
  if (generator == nullptr) return torch::dropout(x, p, /*train=*/true);
  if (p >= 1.0) return x * torch::zeros_like(x);
  // torch.nn.functional.dropout's computation with the mask drawn from the given stream.
  torch::Tensor keep = torch::empty_like(x).bernoulli_(1.0 - p, *generator);
  return x * keep.div_(1.0 - p);
}

NormParams::NormParams(torch::nn::Module* owner, const ModuleContext& ctx,
                       const std::string& prefix, const std::string& weight_name,
                       const std::string& bias_name)
    : eps_(ctx.config->layernorm_epsilon()),
      zero_centered_(ctx.config->layernorm_zero_centered_gamma()) {
  weight_ = owner->register_parameter(weight_name, ctx.params->Take(prefix + weight_name));
  if (ctx.params->Has(prefix + bias_name)) {
    bias_ = owner->register_parameter(bias_name, ctx.params->Take(prefix + bias_name));
  }
}

torch::Tensor NormParams::Apply(const torch::Tensor& x) const {
  torch::Tensor gamma = zero_centered_ ? weight_ + 1 : weight_;
  if (bias_.defined()) {
    return torch::layer_norm(x, {weight_.size(0)}, gamma, bias_, eps_);
  }
  // RMSNorm as torch.nn.RMSNorm: x * rsqrt(mean(x^2) + eps) * gamma, in the input dtype.
  torch::Tensor rms = torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return x * rms * gamma;
}

Norm::Norm(const ModuleContext& ctx, const std::string& prefix)
    : params_(this, ctx, prefix, "weight", "bias") {}

ColumnParallelLinear::ColumnParallelLinear(const ModuleContext& ctx, const std::string& prefix,
                                           bool fused_norm, LinearComm comm, bool gather_output,
                                           const std::string& weight_name,
                                           const std::string& bias_name)
    : parallel_(ctx.parallel),
      comm_(comm),
      gather_output_(gather_output),
      sequence_parallel_(comm == LinearComm::kTensorParallel && ctx.config->sequence_parallel()) {
  if (fused_norm) {
    norm_ = std::make_unique<NormParams>(this, ctx, prefix, "layer_norm_weight", "layer_norm_bias");
  }
  if (ctx.params->Has(prefix + weight_name)) {
    weight_ = register_parameter(weight_name, ctx.params->Take(prefix + weight_name));
  }
  if (ctx.params->Has(prefix + bias_name)) {
    bias_ = register_parameter(bias_name, ctx.params->Take(prefix + bias_name));
  }
}

torch::Tensor ColumnParallelLinear::ForwardWithWeight(const torch::Tensor& x,
                                                      const torch::Tensor& weight) {
  torch::Tensor input = norm_ ? norm_->Apply(x) : x;
  if (sequence_parallel_) {
    input = parallel_->AllGatherFirstDim(input, ParallelContext::Group::kTensor);
  } else if (comm_ == LinearComm::kTensorParallel) {
    input = parallel_->CopyToTensorParallelRegion(input);
  }
  torch::Tensor y = DenseLinear(input, weight, bias_);
  if (gather_output_) y = parallel_->GatherFromTensorParallelRegion(y);
  return y;
}

torch::Tensor ColumnParallelLinear::forward(const torch::Tensor& x) {
  if (!weight_.defined()) throw std::runtime_error("ColumnParallelLinear without a weight");
  return ForwardWithWeight(x, weight_);
}

RowParallelLinear::RowParallelLinear(const ModuleContext& ctx, const std::string& prefix,
                                     LinearComm comm, const std::string& weight_name,
                                     const std::string& bias_name)
    : parallel_(ctx.parallel),
      comm_(comm),
      sequence_parallel_(comm == LinearComm::kTensorParallel && ctx.config->sequence_parallel()) {
  weight_ = register_parameter(weight_name, ctx.params->Take(prefix + weight_name));
  if (ctx.params->Has(prefix + bias_name)) {
    bias_ = register_parameter(bias_name, ctx.params->Take(prefix + bias_name));
  }
  if (ctx.params->Has(prefix + "post_layernorm.weight")) {
    post_layernorm_ =
        register_module("post_layernorm", std::make_shared<Norm>(ctx, prefix + "post_layernorm."));
  }
}

torch::Tensor RowParallelLinear::forward(const torch::Tensor& x) {
  torch::Tensor y = DenseLinear(x, weight_);
  if (sequence_parallel_) {
    y = parallel_->ReduceScatterFirstDim(y, ParallelContext::Group::kTensor);
  } else if (comm_ == LinearComm::kTensorParallel) {
    y = parallel_->ReduceFromTensorParallelRegion(y);
  }
  if (bias_.defined() && comm_ == LinearComm::kTensorParallel) y = y + bias_;
  if (post_layernorm_) y = post_layernorm_->forward(y);
  return y;
}

VocabParallelEmbedding::VocabParallelEmbedding(const ModuleContext& ctx, const std::string& prefix)
    : parallel_(ctx.parallel) {
  weight_ = register_parameter("weight", ctx.params->Take(prefix + "weight"));
  const plan::ParamInfo& info = ctx.params->Info(prefix + "weight");
  vocab_start_ = info.pieces.empty() ? 0 : info.pieces.front().start;
}

torch::Tensor VocabParallelEmbedding::forward(const torch::Tensor& ids,
                                              bool reduce_scatter_embeddings) {
  if (parallel_->size(ParallelContext::Group::kTensor) == 1) {
    torch::Tensor out = torch::embedding(weight_, ids);
    return reduce_scatter_embeddings ? out.transpose(0, 1).contiguous() : out;
  }
  const int64_t rows = weight_.size(0);
  torch::Tensor outside = (ids < vocab_start_).logical_or(ids >= vocab_start_ + rows);
  torch::Tensor local = (ids - vocab_start_).masked_fill(outside, 0);
  torch::Tensor out = torch::embedding(weight_, local);
  out = out.masked_fill(outside.unsqueeze(-1), 0.0);
  if (reduce_scatter_embeddings) {
    return parallel_->ReduceScatterFirstDim(out.transpose(0, 1).contiguous(),
                                            ParallelContext::Group::kTensor);
  }
  return parallel_->ReduceFromTensorParallelRegion(out);
}

LanguageModelEmbedding::LanguageModelEmbedding(const ModuleContext& ctx, const std::string& prefix)
    : embedding_scale_(ctx.model->apply_embedding_scaling()
                           ? std::optional<double>(std::sqrt(ctx.config->hidden_size()))
                           : std::nullopt),
      parallel_(ctx.parallel),
      dropout_(ctx.config->hidden_dropout()),
      sequence_parallel_(ctx.config->sequence_parallel()),
      generator_(HiddenDropoutGenerator(ctx)) {
  word_embeddings_ = register_module("word_embeddings", std::make_shared<VocabParallelEmbedding>(
                                                            ctx, prefix + "word_embeddings."));
  const std::string pos = prefix + "position_embeddings.weight";
  if (ctx.params->Has(pos)) {
    position_embeddings_holder_ =
        register_module("position_embeddings", std::make_shared<torch::nn::Module>());
    position_weight_ =
        position_embeddings_holder_->register_parameter("weight", ctx.params->Take(pos));
  }
}

torch::Tensor LanguageModelEmbedding::forward(const torch::Tensor& ids) {
  // Bridge's EmbeddingScalingMixin multiplies the embedding's output (after its dropout) by
  // sqrt(hidden_size) as a tensor of the output's dtype, as transformers' Gemma embedding does.
  auto scaled = [this](const torch::Tensor& x) {
    if (!embedding_scale_.has_value()) return x;
    return x * torch::scalar_tensor(*embedding_scale_, x.options());
  };
  // Megatron reduce-scatters straight from the vocabulary shards only without position
  // embeddings (they are added to the full sequence); the sums are the same either way.
  if (sequence_parallel_ && !position_weight_.defined()) {
    torch::Tensor x = word_embeddings_->forward(ids, /*reduce_scatter_embeddings=*/true);
    return scaled(MaybeDropout(x, dropout_, is_training(), generator_));  // [s/t, b, h]
  }
  torch::Tensor x = word_embeddings_->forward(ids);  // [b, s, h]
  if (position_weight_.defined()) {
    torch::Tensor positions = torch::arange(ids.size(1), ids.options());
    x = x + torch::embedding(position_weight_, positions).unsqueeze(0).to(x.dtype());
  }
  x = x.transpose(0, 1).contiguous();  // [s, b, h]
  if (sequence_parallel_) x = parallel_->ScatterToSequenceParallelRegion(x);
  return scaled(MaybeDropout(x, dropout_, is_training(), generator_));
}

Mlp::Mlp(const ModuleContext& ctx, const std::string& prefix, bool fc1_fused_norm, LinearComm comm)
    : activation_(*ctx.config) {
  linear_fc1_ = register_module(
      "linear_fc1",
      std::make_shared<ColumnParallelLinear>(ctx, prefix + "linear_fc1.", fc1_fused_norm, comm));
  linear_fc2_ = register_module(
      "linear_fc2", std::make_shared<RowParallelLinear>(ctx, prefix + "linear_fc2.", comm));
}

torch::Tensor Mlp::Hidden(const torch::Tensor& x) {
  // With gated_linear_unit the local fc1 rows are [gate_r; up_r].
  return activation_(linear_fc1_->forward(x));
}

torch::Tensor Mlp::forward(const torch::Tensor& x) { return linear_fc2_->forward(Hidden(x)); }

torch::Tensor Mlp::ForwardNoBias(const torch::Tensor& x) { return linear_fc2_->forward(Hidden(x)); }

}  // namespace gptb::model
