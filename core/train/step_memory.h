#ifndef GPTB_CORE_TRAIN_STEP_MEMORY_H_
#define GPTB_CORE_TRAIN_STEP_MEMORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/plan/model_plan.h"
#include "gptbuilder/v1/train.pb.h"

namespace gptb::train {

// The memory a train step needs on one rank, estimated from the plan before anything runs, so
// that a request for 10^9-sequence micro-batches is refused instead of failing a rank with
// bad_alloc (which fails the model for everyone). Bytes:
//   model_state  the plan's parameters + gradients + optimizer state (memory.h);
//   activations  what the micro-batches in flight keep for their backward pass: per decoder
//                layer and micro-batch s*b*(h*(10 + 8/t) + 4*f/t + 5*a*s/t) * width/2
//                (Korthikanti et al. 2022, "Reducing Activation Recomputation", eq. 2, without
//                sequence parallelism or recomputation; f is the MLP's inner width times 2 when
//                gated and times top-k for MoE, width the activation dtype's bytes), times the
//                micro-batches a pipeline rank holds at once (1F1B: pp - pp_rank; interleaved:
//                Megatron's warm-up count + 1, in chunk units);
//   logits       the loss stage's fp32 logits, softmax and gradient: 3 * s*b*V/t * 4;
//   token_ids    the global batch every rank derives plus its replica's inputs and labels.
// An estimate, meant to refuse requests off by orders of magnitude; a step may still exceed it
// by what allocators and communication buffers add.
struct StepMemory {
  int64_t model_state = 0;
  int64_t activations = 0;
  int64_t logits = 0;
  int64_t token_ids = 0;
  int64_t in_flight_micro_batches = 0;
  int64_t total() const;
};

StepMemory EstimateStepMemory(const plan::ModelPlan& plan, int rank,
                              const gptbuilder::v1::TrainOptions& options, int64_t seq_length);

// Checks every rank's estimate against its slot budget (`budgets[rank]`, 0: unknown, not
// checked). RESOURCE_EXHAUSTED naming the first rank that does not fit, what its step needs and
// what to lower; OK otherwise. INVALID_ARGUMENT for sizes the arithmetic cannot hold.
absl::Status CheckStepMemory(const plan::ModelPlan& plan, const std::vector<int64_t>& budgets,
                             const gptbuilder::v1::TrainOptions& options, int64_t seq_length);

// Fixed bounds of one request, checked alike on every rank before any communication: a
// pipeline schedule of more micro-batches than this is a mistake (Megatron runs use thousands
// at most), and its order alone would take gigabytes.
inline constexpr int64_t kMaxMicroBatches = 1 << 16;

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_STEP_MEMORY_H_
