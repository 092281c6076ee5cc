#ifndef GPTB_CORE_TRAIN_PIPELINE_ORDER_H_
#define GPTB_CORE_TRAIN_PIPELINE_ORDER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gptb::train {

// One unit of pipeline work on a rank: the forward or the backward of one micro-batch through
// one of its model chunks.
struct PipelineOp {
  bool forward = true;
  int chunk = 0;
  int microbatch = 0;
  bool operator==(const PipelineOp& o) const {
    return forward == o.forward && chunk == o.chunk && microbatch == o.microbatch;
  }
};
std::string ToString(const PipelineOp& op);  // "F0.3": forward, chunk 0, micro-batch 3

struct PipelineShape {
  int pp_size = 1;
  int pp_rank = 0;
  int num_chunks = 1;  // virtual pipeline chunks per rank
  int num_microbatches = 1;
  // Megatron's microbatch_group_size_per_vp_stage (0: pp_size); interleaved schedules only.
  int microbatch_group_size = 0;
};

// The order in which one rank runs its forwards and backwards, as Megatron's schedules
// (megatron/core/pipeline_parallel/schedules.py) do:
// - one chunk (forward_backward_no_pipelining when pp_size is 1, 1F1B otherwise): warmup
//   forwards W = min(pp_size - pp_rank - 1, M), then alternating forward/backward, then the W
//   remaining backwards;
// - several chunks (interleaved 1F1B): forwards follow the schedule table (micro-batches in
//   groups of microbatch_group_size, each group through chunk 0, 1, ...), backwards the same
//   table with chunks reversed; W = min(2 * (pp_size - pp_rank - 1) + (chunks - 1) * group, M *
//   chunks).
// With sends that do not wait for their receiver and receives that wait only when their data is
// needed, these per-rank orders never deadlock (tests simulate every rank to check it).
// INVALID_ARGUMENT for non-positive sizes, a rank outside the pipeline, several chunks without a
// pipeline, or (interleaved) a group size outside [pp_size, M] or a last group (M mod group)
// of fewer than pp_size micro-batches, as Megatron rejects both.
absl::StatusOr<std::vector<PipelineOp>> PipelineOrder(const PipelineShape& shape);

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_PIPELINE_ORDER_H_
