#ifndef GPTB_CORE_TRAIN_TRAIN_STEP_H_
#define GPTB_CORE_TRAIN_TRAIN_STEP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/rank_model.h"
#include "core/train/data.h"
#include "core/train/optimizer.h"
#include "gptbuilder/v1/train.pb.h"

namespace gptb::train {

// One train step's request, the same on every rank.
struct TrainRequest {
  gptbuilder::v1::TrainBatch batch;
  gptbuilder::v1::TrainOptions options;
  // Polled between the schedule's forwards and backwards: true aborts the step with CANCELLED,
  // which breaks the trainer (the ranks are out of step; the model must be released).
  std::function<bool()> cancelled;
};

// Wall time of a step's phases on this rank, in seconds.
struct StepTimings {
  double data = 0.0;              // building this replica's micro-batches
  double forward_backward = 0.0;  // the pipeline schedule
  double p2p_wait = 0.0;          // of which blocked on pipeline transfers
  double grad_sync = 0.0;         // FinalizeGrads (data-parallel and embedding reductions)
  double optimizer = 0.0;         // norm, clipping, update, parameter all-gather
  double total = 0.0;             // the whole step, loss reporting included
};

// What a step reports; the same on every rank (losses are reduced over the model).
struct TrainStepResult {
  int64_t iteration = 0;  // 0-based index of this step
  // Mean LM cross entropy over every token of the global batch (before the update).
  double loss = 0.0;
  double mtp_loss = 0.0;  // the scaled MTP term (0 without MTP layers)
  double aux_loss = 0.0;  // the MoE load-balancing term (0 without it)
  double grad_norm = 0.0;
  double learning_rate = 0.0;  // the lr this step used
  double loss_scale = 1.0;
  bool skipped = false;  // fp16 overflow: no update
  int64_t tokens = 0;    // tokens in the global batch
  double tokens_per_second = 0.0;
  StepTimings seconds;
};

// Trains one rank's share of a held model, step by step. Every rank of the model owns one
// RankTrainer and calls Step concurrently with the same request (Megatron's train_step: zero
// the grad buffers, forward/backward over the pipeline schedule, finalize_model_grads, the
// optimizer step, the loss reduction). Each data-parallel replica takes its slice of the global
// batch, micro_batch_size * num_micro_batches * dp samples: micro-batch m of replica r is samples
// [(m * dp + r) * mbs, (m * dp + r + 1) * mbs), as Megatron's pretraining sampler orders them.
// The optimizer and schedule are created on the first step from the request's options; a later
// step either repeats them or omits both (options.optimizer and options.scheduler unset).
//
// Errors: INVALID_ARGUMENT for a bad request (sizes, batch, optimizer settings),
// FAILED_PRECONDITION for a model this trainer cannot train (no DDP wrapper, context
// parallelism, MoE with tensor parallelism but without sequence parallelism, MTP off the output
// chunk) or optimizer settings that
// differ from the first step's, DEADLINE_EXCEEDED / UNAVAILABLE when a peer rank is lost or stuck
// (within the process-group timeout). After a failure inside the distributed part of a step the
// model's state is inconsistent across ranks: every later Step returns FAILED_PRECONDITION with the
// first error.
class RankTrainer {
 public:
  // `model` must outlive the trainer.
  explicit RankTrainer(model::RankModel* model) : model_(model) {}

  absl::StatusOr<TrainStepResult> Step(const TrainRequest& request);

  // Steps run so far (successful ones, skipped fp16 steps included).
  int64_t iteration() const { return iteration_; }
  // Null before the first step.
  const Optimizer* optimizer() const { return optimizer_.get(); }
  // The first error of a failed step, if any.
  const absl::Status& broken() const { return broken_; }

 private:
  absl::Status Validate(const TrainRequest& request, int64_t* seq_length) const;

  model::RankModel* model_;
  std::unique_ptr<Optimizer> optimizer_;
  gptbuilder::v1::OptimizerConfig optimizer_config_;
  gptbuilder::v1::SchedulerConfig scheduler_config_;
  std::optional<BatchSource> source_;
  int64_t iteration_ = 0;
  absl::Status broken_;
};

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_TRAIN_STEP_H_
