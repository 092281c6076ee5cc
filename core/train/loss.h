#ifndef GPTB_CORE_TRAIN_LOSS_H_
#define GPTB_CORE_TRAIN_LOSS_H_

#include <torch/torch.h>

#include "core/distributed/float16_module.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/process_group_collection.h"

namespace gptb::train {

// The loss terms of one micro-batch on the chunk that computes the loss. Each is a scalar that
// backward can start from (fp32); undefined when the model has no such term.
struct MicroBatchLoss {
  torch::Tensor lm;   // mean over the micro-batch's tokens of the per-token cross entropy
  torch::Tensor mtp;  // mtp_loss_scaling_factor / D * sum over MTP depths of their mean loss
  torch::Tensor aux;  // MoE load-balancing losses of the chunk's layers (coefficient applied)
  // lm + mtp + aux: what Megatron's loss function and its auto-scalers backpropagate.
  torch::Tensor Total() const;
};

// Megatron's compute_language_model_loss averaged as loss_func does without a loss mask:
// vocab-parallel cross entropy of logits [..., V/tp] against labels [...] (global ids, the same
// leading shape: [s, b] for the output layer's own order), summed and divided by the number of
// tokens. Throws c10::Error on a collective failure.
torch::Tensor LanguageModelLoss(const torch::Tensor& logits, const torch::Tensor& labels,
                                const parallel::ProcessGroupPtr& tp);

// Megatron's roll_tensor: shifts `t` left by one along the last dim and zeroes the last column.
torch::Tensor RollLeft(const torch::Tensor& t);

// The forward of the chunk that holds the output layer (post_process) for one micro-batch,
// with its losses: decoder -> logits -> LM loss; with MTP layers on the chunk, each depth k
// (1-based) embeds the inputs rolled left k times, predicts the labels rolled left k times
// (positions rolled in are masked out), and adds mtp_loss_scaling_factor / D times its masked
// mean loss (GPTModel._postprocess). `input` is what the chunk receives (token ids [b, s] on a
// first stage, hidden states [s, b, h] otherwise); `input_ids` and `labels` are the micro-batch's
// [b, s] ids. `f16` may be null.
MicroBatchLoss PostProcessForward(model::GptStage& stage, const distributed::Float16Module* f16,
                                  const torch::Tensor& input, const torch::Tensor& input_ids,
                                  const torch::Tensor& labels, const parallel::ProcessGroupPtr& tp,
                                  double mtp_loss_scaling_factor);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_LOSS_H_
