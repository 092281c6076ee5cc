#include "core/model/transformer.h"

#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"
#include "core/model/dense_linear.h"

namespace gptb::model {
namespace {

bool IsKind(const layer_spec::ModuleSpec* node, layer_spec::ModuleKind kind) {
  if (node == nullptr) return false;
  const layer_spec::ModuleInfo* info = layer_spec::FindModule(node->module);
  return info != nullptr && info->kind == kind;
}

}  // namespace

TransformerLayer::TransformerLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                                   const std::string& prefix)
    : dropout_(ctx.config->hidden_dropout()), dropout_generator_(HiddenDropoutGenerator(ctx)) {
  if (IsKind(spec.Submodule("input_layernorm"), layer_spec::ModuleKind::kNorm)) {
    input_layernorm_ = register_module("input_layernorm",
                                       std::make_shared<Norm>(ctx, prefix + "input_layernorm."));
  }
  const layer_spec::ModuleSpec* attention = spec.Submodule("self_attention");
  if (attention == nullptr) throw BuildError(prefix + ": TransformerLayer needs self_attention");
  if (IsKind(attention, layer_spec::ModuleKind::kMlaSelfAttention)) {
    mla_attention_ = register_module(
        "self_attention",
        std::make_shared<MlaSelfAttention>(ctx, *attention, prefix + "self_attention."));
  } else {
    self_attention_ = register_module(
        "self_attention",
        std::make_shared<SelfAttention>(ctx, *attention, prefix + "self_attention."));
  }
  if (IsKind(spec.Submodule("pre_mlp_layernorm"), layer_spec::ModuleKind::kNorm)) {
    pre_mlp_layernorm_ = register_module(
        "pre_mlp_layernorm", std::make_shared<Norm>(ctx, prefix + "pre_mlp_layernorm."));
  }
  const layer_spec::ModuleSpec* mlp = spec.Submodule("mlp");
  if (mlp == nullptr) throw BuildError(prefix + ": TransformerLayer needs mlp");
  if (IsKind(mlp, layer_spec::ModuleKind::kMoeLayer)) {
    moe_ = register_module("mlp", std::make_shared<MoeLayer>(ctx, *mlp, prefix + "mlp."));
  } else {
    const bool fused = IsKind(mlp->Submodule("linear_fc1"),
                              layer_spec::ModuleKind::kLayerNormColumnParallelLinear);
    mlp_ = register_module("mlp", std::make_shared<Mlp>(ctx, prefix + "mlp.", fused));
  }
}

torch::Tensor TransformerLayer::forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                                        const Rotary* rotary) {
  // The residual is the block's input. Megatron Core's TransformerLayer does not read
  // apply_residual_connection_post_layernorm (only its config declares it), so neither does
  // this: the numerics case post_ln_residual checks Megatron's numbers with it set.
  torch::Tensor normed = input_layernorm_ ? input_layernorm_->forward(x) : x;
  torch::Tensor attention = mla_attention_ ? mla_attention_->forward(normed)
                                           : self_attention_->forward(normed, rotary_freqs, rotary);
  torch::Tensor h = x + MaybeDropout(attention, dropout_, is_training(), dropout_generator_);
  normed = pre_mlp_layernorm_ ? pre_mlp_layernorm_->forward(h) : h;
  torch::Tensor mlp = moe_ ? moe_->forward(normed) : mlp_->forward(normed);
  return h + MaybeDropout(mlp, dropout_, is_training(), dropout_generator_);
}

TeTransformerLayer::TeTransformerLayer(const ModuleContext& ctx, const std::string& prefix)
    : parallel_(ctx.parallel),
      activation_(ActivationByName(ctx.config->activation_func())),
      gated_(ctx.config->gated_linear_unit()),
      glu_offset_(ctx.config->glu_linear_offset()),
      dropout_(ctx.config->hidden_dropout()),
      dropout_generator_(HiddenDropoutGenerator(ctx)),
      sequence_parallel_(ctx.config->sequence_parallel()) {
  layer_spec::ModuleSpecPtr attention = layer_spec::Node("SelfAttention", {});
  self_attention_ = register_module(
      "self_attention", std::make_shared<SelfAttention>(ctx, *attention, prefix + "self_attention.",
                                                        "layernorm_qkv", "proj", true, true));
  layernorm_mlp_ = register_module("layernorm_mlp", std::make_shared<torch::nn::Module>());
  const std::string p = prefix + "layernorm_mlp.";
  mlp_norm_ = std::make_unique<NormParams>(layernorm_mlp_.get(), ctx, p, "layer_norm_weight",
                                           "layer_norm_bias");
  fc1_weight_ =
      layernorm_mlp_->register_parameter("fc1_weight", ctx.params->Take(p + "fc1_weight"));
  if (ctx.params->Has(p + "fc1_bias")) {
    fc1_bias_ = layernorm_mlp_->register_parameter("fc1_bias", ctx.params->Take(p + "fc1_bias"));
  }
  fc2_weight_ =
      layernorm_mlp_->register_parameter("fc2_weight", ctx.params->Take(p + "fc2_weight"));
  if (ctx.params->Has(p + "fc2_bias")) {
    fc2_bias_ = layernorm_mlp_->register_parameter("fc2_bias", ctx.params->Take(p + "fc2_bias"));
  }
}

torch::Tensor TeTransformerLayer::forward(const torch::Tensor& x, const torch::Tensor& rotary_freqs,
                                          const Rotary* rotary) {
  torch::Tensor h = x + MaybeDropout(self_attention_->forward(x, rotary_freqs, rotary), dropout_,
                                     is_training(), dropout_generator_);
  // LayerNormMLP: the norm on this rank's part of the sequence, then gathered under sequence
  // parallelism; fc2's partial sums are reduce-scattered back.
  torch::Tensor normed = mlp_norm_->Apply(h);
  torch::Tensor in = sequence_parallel_
                         ? parallel_->AllGatherFirstDim(normed, ParallelContext::Group::kTensor)
                         : parallel_->CopyToTensorParallelRegion(normed);
  torch::Tensor a = DenseLinear(in, fc1_weight_, fc1_bias_);
  if (gated_) {
    std::vector<torch::Tensor> halves = a.chunk(2, -1);
    a = activation_(halves[0]) * (halves[1] + glu_offset_);
  } else {
    a = activation_(a);
  }
  torch::Tensor partial = DenseLinear(a, fc2_weight_);
  torch::Tensor y = sequence_parallel_
                        ? parallel_->ReduceScatterFirstDim(partial, ParallelContext::Group::kTensor)
                        : parallel_->ReduceFromTensorParallelRegion(partial);
  if (fc2_bias_.defined()) y = y + fc2_bias_;
  return h + MaybeDropout(y, dropout_, is_training(), dropout_generator_);
}

MtpLayer::MtpLayer(const ModuleContext& ctx, const layer_spec::ModuleSpec& spec,
                   const std::string& prefix)
    : parallel_(ctx.parallel), sequence_parallel_(ctx.config->sequence_parallel()) {
  enorm_ = register_module("enorm", std::make_shared<Norm>(ctx, prefix + "enorm."));
  hnorm_ = register_module("hnorm", std::make_shared<Norm>(ctx, prefix + "hnorm."));
  eh_proj_ = register_module(
      "eh_proj", std::make_shared<ColumnParallelLinear>(ctx, prefix + "eh_proj.", false));
  const layer_spec::ModuleSpec* inner = spec.Submodule("mtp_model_layer");
  if (inner == nullptr) throw BuildError(prefix + ": MTP layer needs mtp_model_layer");
  mtp_model_layer_ =
      register_module("mtp_model_layer",
                      std::make_shared<TransformerLayer>(ctx, *inner, prefix + "mtp_model_layer."));
  final_layernorm_ =
      register_module("final_layernorm", std::make_shared<Norm>(ctx, prefix + "final_layernorm."));
}

torch::Tensor MtpLayer::forward(const torch::Tensor& hidden, const torch::Tensor& embedded,
                                const torch::Tensor& rotary_freqs, const Rotary* rotary) {
  torch::Tensor joined = torch::cat({enorm_->forward(embedded), hnorm_->forward(hidden)}, -1);
  // eh_proj is column-parallel without gather: gather its output for the full hidden size
  // (under sequence parallelism eh_proj gathered the sequence: scatter it again).
  torch::Tensor projected = parallel_->GatherFromTensorParallelRegion(eh_proj_->forward(joined));
  if (sequence_parallel_) projected = parallel_->ScatterToSequenceParallelRegion(projected);
  torch::Tensor out = mtp_model_layer_->forward(projected, rotary_freqs, rotary);
  return final_layernorm_->forward(out);
}

}  // namespace gptb::model
