#ifndef GPTB_CORE_TRAIN_FINALIZE_GRADS_H_
#define GPTB_CORE_TRAIN_FINALIZE_GRADS_H_

#include "absl/status/status.h"
#include "core/model/gpt_stage.h"
#include "core/model/rank_model.h"

namespace gptb::train {

// Whether a parameter of `stage` is a copy of a tensor whose original lives on the first pipeline
// stage (and so is counted once, and synchronised): the last stage's tied output layer and, on
// an MTP chunk that is not the first stage, its embedding.* tensors.
bool IsEmbeddingCopy(const model::GptStage& stage, const plan::ParamInfo& info);

// Megatron's finalize_model_grads for this rank's chunks, after the last backward of a step:
// 1. every chunk's DDP FinishGradSync (main_grad becomes the data-parallel mean);
// 2. _allreduce_non_tensor_model_parallel_grads: the gradients of the replicated parameters
//    that each tensor-parallel rank computes only in part (ParamInfo::sum_grad_over_tp:
//    sequence-parallel norms, biases, router and gate weights; q/k norms with qk_layernorm) are
//    summed over the tp group, so every copy takes the whole gradient and the same update;
// 3. with a pipeline and tied embeddings or MTP layers, the word-embedding copies' gradients
//    are summed over the embedding group (first and last pipeline rank): the first stage's
//    embedding.word_embeddings.weight and the last stage's copies (output_layer.weight when
//    tied, the MTP chunk's embedding) each end with the sum of all of them, so every copy takes
//    the same update. Megatron all-reduces only shared_embedding_or_output_weight(); when the
//    last stage holds two copies (tied and MTP) both take part here, so neither drifts, and an
//    MTP chunk's learned position embeddings are summed with the first stage's the same way
//    (Megatron leaves that copy to drift), so every layout trains one model;
// 4. with moe_router_enable_expert_bias, _update_router_expert_bias (UpdateRouterExpertBias:
//    the routers' expert_bias moves by the step's token counts, summed over tp-dp-cp).
// Every rank of the model must call it. FAILED_PRECONDITION when a chunk has no DDP wrapper;
// DEADLINE_EXCEEDED / UNAVAILABLE / INTERNAL when a collective fails.
absl::Status FinalizeGrads(model::RankModel& model);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_FINALIZE_GRADS_H_
