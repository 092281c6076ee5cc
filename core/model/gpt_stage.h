#ifndef GPTB_CORE_MODEL_GPT_STAGE_H_
#define GPTB_CORE_MODEL_GPT_STAGE_H_

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layer_spec/layer_specs.h"
#include "core/model/attention.h"
#include "core/model/layers.h"
#include "core/model/transformer.h"
#include "core/plan/model_plan.h"

namespace gptb::model {

// One pipeline stage (model chunk) of Megatron Core's GPTModel: embedding (first stage or the
// MTP chunk), decoder layers and final norm, MTP layers, output layer (last stage). Its
// named_parameters() are exactly the plan's StagePlan::params, in the same order.
class GptStage : public torch::nn::Module {
 public:
  // Builds the modules of `stage` from its layer specs, allocating every planned parameter
  // (uninitialised) on `device`. Throws BuildError on a spec/plan mismatch.
  GptStage(const gptbuilder::v1::GPTModelConfig& config, const plan::StagePlan& stage,
           const layer_spec::StageLayerSpecs& specs,
           const std::optional<std::vector<layer_spec::ModuleSpecPtr>>& mtp_specs,
           ParallelContext* parallel, torch::Device device);

  // First stage: token ids [b, s] (int64). Other stages: hidden states [s, b, h].
  // Returns hidden states [s, b, h], or on the last stage logits [b, s, V/t]
  // (or [b, s, V] without parallel_output). With sequence parallelism hidden states are this
  // tensor-parallel rank's part of the sequence, [s/t, b, h] (s divisible by t), and the logits
  // still cover the whole sequence (the output layer gathers it).
  torch::Tensor forward(const torch::Tensor& input);
  // The decoder output before the output layer (post_process stages), for MTP and losses.
  torch::Tensor Hidden(const torch::Tensor& input);
  // Logits [b, s, V/t] of hidden states [s, b, h].
  torch::Tensor Logits(const torch::Tensor& hidden);
  // The same logits in the output layer's own order [s, b, V/t], without Logits()' transposing
  // copy (the loss transposes the labels instead, as Megatron's compute_language_model_loss).
  torch::Tensor SequenceFirstLogits(const torch::Tensor& hidden);

  const plan::StagePlan& plan() const { return stage_; }
  bool pre_process() const { return stage_.pre_process; }
  bool post_process() const { return stage_.post_process; }
  // Sum of the MoE auxiliary losses of the last forward (undefined when none).
  torch::Tensor AuxLoss() const;
  // The tensors a checkpoint holds of this stage, as plan().checkpoint_tensors lists them: each
  // entry's plan info and the stage's tensor (parameters, then persistent buffers).
  // INTERNAL when the built stage lacks one.
  absl::StatusOr<std::vector<std::pair<const plan::ParamInfo*, torch::Tensor>>> CheckpointTensors()
      const;
  // The MoE blocks of the stage's decoder layers, then of its MTP layers.
  std::vector<MoeLayer*> MoeLayers() const;
  const std::vector<std::shared_ptr<MtpLayer>>& mtp_layers() const { return mtp_layers_; }
  std::shared_ptr<LanguageModelEmbedding> embedding() const { return embedding_; }
  const Rotary* rotary() const { return rotary_.get(); }

 private:
  const gptbuilder::v1::GPTModelConfig& config_;
  plan::StagePlan stage_;
  std::shared_ptr<LanguageModelEmbedding> embedding_;
  std::unique_ptr<Rotary> rotary_;
  std::unique_ptr<Rotary> rotary_local_;  // rotary_base_local: the sliding-window layers'
  std::vector<std::shared_ptr<TransformerLayer>> layers_;
  std::vector<std::shared_ptr<TeTransformerLayer>> te_layers_;
  // Whether each of layers_ / te_layers_ uses rotary_local_.
  std::vector<bool> layer_local_, te_layer_local_;
  std::shared_ptr<Norm> final_layernorm_;
  std::vector<std::shared_ptr<MtpLayer>> mtp_layers_;
  std::shared_ptr<ColumnParallelLinear> output_layer_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_GPT_STAGE_H_
