#include "core/model/gpt_stage.h"

#include "absl/strings/str_cat.h"
#include "core/layer_spec/module_registry.h"

namespace gptb::model {

GptStage::GptStage(const gptbuilder::v1::GPTModelConfig& config, const plan::StagePlan& stage,
                   const layer_spec::StageLayerSpecs& specs,
                   const std::optional<std::vector<layer_spec::ModuleSpecPtr>>& mtp_specs,
                   ParallelContext* parallel, torch::Device device)
    : config_(config), stage_(stage) {
  ParamTable params(stage_.params, device);
  ModuleContext ctx{&config_, &config_.transformer(), parallel, &params};
  if (params.Has("embedding.word_embeddings.weight")) {
    embedding_ =
        register_module("embedding", std::make_shared<LanguageModelEmbedding>(ctx, "embedding."));
  }
  const std::string& position = config_.position_embedding_type();
  if ((position == "rope" || position == "yarn") &&
      !config_.transformer().multi_latent_attention()) {
    // (Multi-latent attention applies its own rotary embedding, as Megatron's GPTModel skips
    // rotary_pos_emb for it; validation refuses yarn with MLA.)
    rotary_ = std::make_unique<Rotary>(config_);
    if (config_.has_rotary_base_local()) {
      rotary_local_ = std::make_unique<Rotary>(config_, /*local=*/true);
    }
  }
  auto decoder = register_module("decoder", std::make_shared<torch::nn::Module>());
  auto layers = decoder->register_module("layers", std::make_shared<torch::nn::Module>());
  for (size_t i = 0; i < specs.layers.size(); ++i) {
    const std::string prefix = absl::StrCat("decoder.layers.", i, ".");
    ModuleContext layer_ctx = ctx;
    layer_ctx.layer_number = stage_.layers.at(i) + 1;
    const layer_spec::ModuleInfo* info = layer_spec::FindModule(specs.layers[i]->module);
    const bool local =
        rotary_local_ && IsWindowAttentionLayer(config_.transformer(), layer_ctx.layer_number);
    if (info != nullptr && info->kind == layer_spec::ModuleKind::kTeTransformerLayer) {
      te_layer_local_.push_back(local);
      te_layers_.push_back(layers->register_module(
          absl::StrCat(i), std::make_shared<TeTransformerLayer>(layer_ctx, prefix)));
    } else {
      layer_local_.push_back(local);
      layers_.push_back(layers->register_module(
          absl::StrCat(i),
          std::make_shared<TransformerLayer>(layer_ctx, *specs.layers[i], prefix)));
    }
  }
  if (params.Has("decoder.final_layernorm.weight")) {
    final_layernorm_ = decoder->register_module(
        "final_layernorm", std::make_shared<Norm>(ctx, "decoder.final_layernorm."));
  }
  if (mtp_specs.has_value() && !mtp_specs->empty()) {
    auto mtp = register_module("mtp", std::make_shared<torch::nn::Module>());
    auto mtp_list = mtp->register_module("layers", std::make_shared<torch::nn::Module>());
    for (size_t i = 0; i < mtp_specs->size(); ++i) {
      // Megatron numbers MTP layers from 1 on their own (MultiTokenPredictionBlock).
      ModuleContext layer_ctx = ctx;
      layer_ctx.layer_number = stage_.mtp_layers.at(i) + 1;
      mtp_layers_.push_back(mtp_list->register_module(
          absl::StrCat(i), std::make_shared<MtpLayer>(layer_ctx, *(*mtp_specs)[i],
                                                      absl::StrCat("mtp.layers.", i, "."))));
    }
  }
  if (stage_.post_process) {
    output_layer_ = register_module(
        "output_layer",
        std::make_shared<ColumnParallelLinear>(
            ctx, "output_layer.", false, LinearComm::kTensorParallel, !config_.parallel_output()));
  }
  params.CheckAllTaken();
}

torch::Tensor GptStage::Hidden(const torch::Tensor& input) {
  torch::Tensor x;
  if (stage_.pre_process) {
    if (!embedding_) throw std::runtime_error("first stage without an embedding");
    x = embedding_->forward(input);
  } else {
    x = input;
  }
  const std::string& position = config_.position_embedding_type();
  if (position == "mrope") {
    throw std::runtime_error(
        absl::StrCat("forward with position_embedding_type '", position, "' is not supported"));
  }
  torch::Tensor freqs, local_freqs;
  if (rotary_) {
    // Under sequence parallelism x holds this rank's part of the sequence; attention sees all
    // of it (Megatron's get_rotary_seq_len).
    int64_t seq = x.size(0);
    if (config_.transformer().sequence_parallel()) {
      seq *= config_.transformer().tensor_model_parallel_size();
    }
    freqs = rotary_->Frequencies(seq, x.device());
    if (rotary_local_) local_freqs = rotary_local_->Frequencies(seq, x.device());
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = layer_local_[i] ? layers_[i]->forward(x, local_freqs, rotary_local_.get())
                        : layers_[i]->forward(x, freqs, rotary_.get());
  }
  for (size_t i = 0; i < te_layers_.size(); ++i) {
    x = te_layer_local_[i] ? te_layers_[i]->forward(x, local_freqs, rotary_local_.get())
                           : te_layers_[i]->forward(x, freqs, rotary_.get());
  }
  if (final_layernorm_) x = final_layernorm_->forward(x);
  return x;
}

torch::Tensor GptStage::Logits(const torch::Tensor& hidden) {
  return SequenceFirstLogits(hidden).transpose(0, 1).contiguous();  // [b, s, V/t]
}

torch::Tensor GptStage::SequenceFirstLogits(const torch::Tensor& hidden) {
  torch::Tensor logits;
  if (output_layer_ && output_layer_->named_parameters(false).size() == 0) {
    // Tied on a single-stage pipeline: the output layer uses the word embedding.
    logits = output_layer_->ForwardWithWeight(hidden, embedding_->word_embedding_weight());
  } else {
    logits = output_layer_->forward(hidden);
  }
  // Bridge's Gemma2OutputLayer caps the output layer's logits (per vocabulary shard: the cap is
  // elementwise); the loss and the returned logits are the capped ones.
  if (config_.has_final_logit_softcapping()) {
    const double cap = config_.final_logit_softcapping();
    logits = torch::tanh(logits / cap) * cap;
  }
  return logits;
}

torch::Tensor GptStage::forward(const torch::Tensor& input) {
  torch::Tensor hidden = Hidden(input);
  if (!stage_.post_process) return hidden;
  return Logits(hidden);
}

absl::StatusOr<std::vector<std::pair<const plan::ParamInfo*, torch::Tensor>>>
GptStage::CheckpointTensors() const {
  std::vector<std::pair<const plan::ParamInfo*, torch::Tensor>> out;
  const std::vector<plan::ParamInfo>& infos = stage_.checkpoint_tensors;
  const auto params = named_parameters();
  if (params.size() != stage_.params.size() || infos.size() < params.size()) {
    return absl::InternalError(absl::StrCat("the stage built ", params.size(),
                                            " parameters where its plan lists ",
                                            stage_.params.size()));
  }
  size_t i = 0;
  for (const auto& item : params) out.emplace_back(&infos[i++], item.value());
  const auto buffers = named_buffers();
  for (; i < infos.size(); ++i) {
    const torch::Tensor* buffer = buffers.find(infos[i].name);
    if (buffer == nullptr) {
      return absl::InternalError(absl::StrCat("the stage has no buffer ", infos[i].name));
    }
    out.emplace_back(&infos[i], *buffer);
  }
  return out;
}

std::vector<MoeLayer*> GptStage::MoeLayers() const {
  std::vector<MoeLayer*> out;
  for (const auto& layer : layers_) {
    if (layer->moe() != nullptr) out.push_back(layer->moe());
  }
  for (const auto& mtp : mtp_layers_) {
    if (mtp->mtp_model_layer().moe() != nullptr) out.push_back(mtp->mtp_model_layer().moe());
  }
  return out;
}

torch::Tensor GptStage::AuxLoss() const {
  torch::Tensor total;
  for (const auto& layer : layers_) {
    torch::Tensor aux = layer->aux_loss();
    if (aux.defined()) total = total.defined() ? total + aux : aux;
  }
  return total;
}

}  // namespace gptb::model
