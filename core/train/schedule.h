#ifndef GPTB_CORE_TRAIN_SCHEDULE_H_
#define GPTB_CORE_TRAIN_SCHEDULE_H_

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/rank_model.h"

namespace gptb::train {

// One micro-batch of this data-parallel replica: inputs and next-token labels, [b, s] int64.
struct MicroBatch {
  torch::Tensor input_ids;
  torch::Tensor labels;
};

struct ForwardBackwardOptions {
  // Multiplies every micro-batch's loss before backward (the fp16 loss scale).
  double loss_scale = 1.0;
  // Megatron's microbatch_group_size_per_vp_stage (0: the pipeline size).
  int microbatch_group_size = 0;
  // Polled before every forward and backward of the schedule; true stops the rank there with
  // CANCELLED (its peers then fail on their own within the process-group timeout, so the ranks
  // are out of step: the caller must treat the model as broken).
  std::function<bool()> cancelled;
};

// Sums over this rank's micro-batches of the per-micro-batch loss terms (each a mean over the
// micro-batch's tokens). lm and mtp are non-zero only on the rank holding the output layer; aux
// sums the MoE aux losses of this rank's chunks.
struct LossSums {
  double lm = 0.0;
  double mtp = 0.0;
  double aux = 0.0;
  // Not a loss: seconds this rank spent blocked on pipeline transfers (receives, and the wait
  // for its last sends), part of the forward/backward time.
  double p2p_wait = 0.0;
};

// Megatron's forward_backward_func for one rank: runs every micro-batch forward and backward
// through the rank's chunks in the order of PipelineOrder (no pipelining, 1F1B, or interleaved
// 1F1B with virtual chunks), exchanging activations and their gradients with the neighbouring
// pipeline ranks over the pp group. Each micro-batch backpropagates
// (lm + mtp + aux) * loss_scale / M, so the accumulated gradients are those of the mean loss
// (Megatron's division by num_microbatches). Sends do not wait for their receiver (each message
// has its own tag: direction, receiving virtual stage, micro-batch), receives wait when their
// data is needed; a peer that fails or leaves makes this rank return an error within the group
// timeout. Gradients accumulate into the DDP buffers (set_is_last_microbatch marks each chunk's
// last micro-batch, so overlapped reductions start then); call FinalizeGrads afterwards. Every
// rank of the model calls it with the same number of micro-batches of the same shape.
absl::StatusOr<LossSums> ForwardBackward(model::RankModel& model,
                                         const std::vector<MicroBatch>& micro_batches,
                                         const ForwardBackwardOptions& options);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_SCHEDULE_H_
