#ifndef GPTB_CORE_TRAIN_OPTIMIZER_H_
#define GPTB_CORE_TRAIN_OPTIMIZER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/rank_model.h"
#include "core/train/lr_schedule.h"
#include "gptbuilder/v1/train.pb.h"

namespace gptb::train {

struct OptimizerStepResult {
  double grad_norm = 0.0;      // global, before clipping (after unscaling with fp16)
  double learning_rate = 0.0;  // the lr this step used
  double loss_scale = 1.0;     // the scale the step's loss was multiplied by
  bool skipped = false;        // fp16 overflow: parameters and schedule unchanged
};

// Megatron's mixed-precision optimizer over one rank's model chunks (the DDP grad buffers hold
// the gradients):
// - fp32 parameters are updated in place; bf16/fp16 parameters get fp32 main weights that the
//   update works on, then are copied back (Float16OptimizerWithFloat16Params);
// - with ddp.use_distributed_optimizer each data-parallel rank keeps main weights and moments
//   only for its shard of every bucket and, after updating it, gathers the other shards
//   (DDP ParamSync) (DistributedOptimizer);
// - weight decay skips biases and 1-D tensors; Adam follows Apex/TE FusedAdam (bias
//   correction, eps outside the square root, decoupled decay unless decoupled_weight_decay is
//   false); SGD follows torch.optim.SGD with momentum;
// - the gradient norm is global: the sum of squares over every parameter counted once (a
//   tensor-parallel replica only on tp rank 0, the tied/MTP embedding copies not at all, see
//   IsEmbeddingCopy),
//   all-reduced over the model-parallel group (tp-pp) for dense parameters and over tp-ep-pp for
//   expert ones (and over the data-parallel groups when state is sharded); clip_grad scales
//   every gradient by clip_grad / (norm + 1e-6) when that is below 1;
// - fp16 uses a constant or dynamic loss scale (Megatron's DynamicGradScaler) and skips
//   steps whose gradients overflow.
// Every rank of the model creates one and calls Step together. Not thread-safe.
class Optimizer {
 public:
  // INVALID_ARGUMENT (field paths `optimizer.*`, `scheduler.*`) for bad settings;
  // FAILED_PRECONDITION when a chunk has no DDP wrapper.
  static absl::StatusOr<std::unique_ptr<Optimizer>> Create(
      model::RankModel& model, const gptbuilder::v1::OptimizerConfig& config,
      const gptbuilder::v1::SchedulerConfig& scheduler);

  // What this step's loss must be multiplied by before backward (1 unless fp16).
  double loss_scale() const { return loss_scale_; }
  // The learning rate the next Step will use.
  double learning_rate() const { return schedule_.LearningRate(successful_steps_); }
  int64_t successful_steps() const { return successful_steps_; }

  // After FinalizeGrads: global norm, clipping, the update, the parameter all-gather, the
  // schedule and loss-scale advance. FAILED_PRECONDITION (nothing changed) when the norm is not
  // finite without fp16; DEADLINE_EXCEEDED / UNAVAILABLE / INTERNAL on a failed collective.
  absl::StatusOr<OptimizerStepResult> Step();

  // One piece of optimizer state: a whole parameter, or this rank's shard of it with the
  // distributed optimizer. Exposed for tests and state dumps.
  struct Segment {
    int chunk = 0;
    std::string name;          // the parameter's module name in its chunk
    int64_t offset = 0;        // first element of the parameter this segment covers
    torch::Tensor model;       // [n] view of the parameter's storage (param dtype)
    torch::Tensor grad;        // [n] view of its main_grad (grad dtype)
    torch::Tensor main;        // [n] fp32 main weights (aliases `model` for fp32 parameters)
    torch::Tensor exp_avg;     // Adam first moment / SGD momentum buffer
    torch::Tensor exp_avg_sq;  // Adam second moment (undefined for SGD)
    bool weight_decay = true;
    bool in_norm = true;  // counted in the gradient norm on this rank
    bool expert = false;
  };
  const std::vector<Segment>& segments() const { return segments_; }

 private:
  Optimizer() = default;
  absl::Status Build(model::RankModel& model);
  absl::StatusOr<double> GlobalNormSquared();
  void UpdateLossScale(bool overflow);

  model::RankModel* model_ = nullptr;
  gptbuilder::v1::OptimizerConfig config_;
  LearningRateSchedule schedule_;
  bool sgd_ = false;
  bool distributed_ = false;
  bool has_experts_ = false;
  bool fp16_ = false;
  bool dynamic_scale_ = false;
  double loss_scale_ = 1.0;
  int growth_tracker_ = 0;
  int hysteresis_tracker_ = 0;
  int64_t successful_steps_ = 0;
  std::vector<Segment> segments_;
};

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_OPTIMIZER_H_
