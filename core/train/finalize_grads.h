#ifndef GPTB_CORE_TRAIN_FINALIZE_GRADS_H_
#define GPTB_CORE_TRAIN_FINALIZE_GRADS_H_

#include "absl/status/status.h"
#include "core/model/rank_model.h"

namespace gptb::train {

// Megatron's finalize_model_grads for this rank's chunks, after the last backward of a step:
// 1. every chunk's DDP FinishGradSync (main_grad becomes the data-parallel mean);
// 2. with a pipeline and tied embeddings or MTP layers, the word-embedding copies' gradients
//    are summed over the embedding group (first and last pipeline rank): the first stage's
//    embedding.word_embeddings.weight and the last stage's copies (output_layer.weight when
//    tied, the MTP chunk's embedding) each end with the sum of all of them, so every copy takes
//    the same update. Megatron all-reduces only shared_embedding_or_output_weight(); when the
//    last stage holds two copies (tied and MTP) both take part here, so neither drifts.
// Every rank of the model must call it. FAILED_PRECONDITION when a chunk has no DDP wrapper;
// DEADLINE_EXCEEDED / UNAVAILABLE / INTERNAL when a collective fails.
absl::Status FinalizeGrads(model::RankModel& model);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_FINALIZE_GRADS_H_
