#ifndef GPTB_CORE_TRAIN_LR_SCHEDULE_H_
#define GPTB_CORE_TRAIN_LR_SCHEDULE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/train.pb.h"

namespace gptb::train {

// Megatron's OptimizerParamScheduler.get_lr, counted in optimizer steps (Megatron counts samples
// with every limit scaled by the global batch size, which gives the same values):
//   warmup (n <= lr_warmup_iters, when > 0): lr_warmup_init + (lr - lr_warmup_init) * n / W;
//   "constant": lr; past lr_decay_iters: min_lr;
//   "inverse-square-root": max(min_lr, lr * sqrt(max(W, 1)) / sqrt(max(n, 1)));
//   "linear" / "cosine": min_lr + coeff * (lr - min_lr) with r = (n - W) / (D - W) and
//   coeff = 1 - r, or 0.5 * (cos(pi * r) + 1).
class LearningRateSchedule {
 public:
  // INVALID_ARGUMENT (field paths `optimizer.lr`, `scheduler.lr_decay_iters`, ...) for a missing
  // or negative lr, an unknown style, or decay iterations not above the warmup.
  static absl::StatusOr<LearningRateSchedule> Create(
      const gptbuilder::v1::OptimizerConfig& optimizer,
      const gptbuilder::v1::SchedulerConfig& scheduler);

  // The learning rate after `steps` successful optimizer steps.
  double LearningRate(int64_t steps) const;

 private:
  enum class Style { kConstant, kLinear, kCosine, kInverseSquareRoot };
  Style style_ = Style::kConstant;
  double max_lr_ = 0.0;
  double min_lr_ = 0.0;
  double init_lr_ = 0.0;
  int64_t warmup_ = 0;
  int64_t decay_ = 0;
};

}  // namespace gptb::train

#endif  // GPTB_CORE_TRAIN_LR_SCHEDULE_H_
