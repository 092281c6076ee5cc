#ifndef GPTB_CORE_PARALLEL_CROSS_ENTROPY_H_
#define GPTB_CORE_PARALLEL_CROSS_ENTROPY_H_

#include <torch/torch.h>

#include "core/parallel/process_group_collection.h"

namespace gptb::parallel {

// Megatron's vocab_parallel_cross_entropy (tensor_parallel/cross_entropy.py) without label
// smoothing: the per-token loss -log softmax(logits)[target] where the vocabulary is split over
// `group` (normally tp): this rank holds `logits` [..., V / tp], the vocabulary slice
// [rank * V / tp, (rank + 1) * V / tp). `target` [...] holds global token ids in [0, V).
//
// Forward: max all-reduce, the target logit all-reduced (SUM, each rank contributes only targets
// inside its slice), the sum of exponentials all-reduced. Computed in fp32 whatever the logits'
// dtype (as Megatron does); the loss [...] is fp32. Backward (d loss / d logits of this slice):
// softmax minus one-hot of the target inside the slice, times the incoming gradient; no
// communication. Errors surface as c10::Error exceptions (see tensor_parallel.h).
torch::Tensor VocabParallelCrossEntropy(const torch::Tensor& logits, const torch::Tensor& target,
                                        const ProcessGroupPtr& group);

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_CROSS_ENTROPY_H_
