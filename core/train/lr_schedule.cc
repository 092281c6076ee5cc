#include "core/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace gptb::train {

absl::StatusOr<LearningRateSchedule> LearningRateSchedule::Create(
    const gptbuilder::v1::OptimizerConfig& optimizer,
    const gptbuilder::v1::SchedulerConfig& scheduler) {
  LearningRateSchedule s;
  if (!optimizer.has_lr()) {
    return absl::InvalidArgumentError("optimizer.lr: required (the peak learning rate)");
  }
  s.max_lr_ = optimizer.lr();
  s.min_lr_ = optimizer.has_min_lr() ? optimizer.min_lr() : 0.0;
  s.init_lr_ = scheduler.lr_warmup_init();
  s.warmup_ = scheduler.lr_warmup_iters();
  if (!(s.max_lr_ >= 0.0) || !std::isfinite(s.max_lr_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.lr: must be a finite value >= 0; got ", s.max_lr_));
  }
  if (!(s.min_lr_ >= 0.0) || s.min_lr_ > s.max_lr_) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.min_lr: must lie in [0, lr = ", s.max_lr_, "]; got ", s.min_lr_));
  }
  if (!(s.init_lr_ >= 0.0) || !std::isfinite(s.init_lr_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.lr_warmup_init: must be a finite value >= 0; got ", s.init_lr_));
  }
  if (s.warmup_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.lr_warmup_iters: must be >= 0; got ", s.warmup_));
  }
  const std::string& style = scheduler.lr_decay_style();
  if (style == "constant") {
    s.style_ = Style::kConstant;
  } else if (style == "linear") {
    s.style_ = Style::kLinear;
  } else if (style == "cosine") {
    s.style_ = Style::kCosine;
  } else if (style == "inverse-square-root") {
    s.style_ = Style::kInverseSquareRoot;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.lr_decay_style: '", style,
                     "' is not one of constant, linear, cosine, inverse-square-root"));
  }
  if (s.style_ == Style::kLinear || s.style_ == Style::kCosine) {
    if (!scheduler.has_lr_decay_iters()) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler.lr_decay_iters: required with lr_decay_style '", style, "'"));
    }
    s.decay_ = scheduler.lr_decay_iters();
    if (s.decay_ <= s.warmup_) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler.lr_decay_iters: must exceed lr_warmup_iters (", s.warmup_,
                       "); got ", s.decay_));
    }
  } else if (scheduler.has_lr_decay_iters()) {
    s.decay_ = scheduler.lr_decay_iters();
    if (s.decay_ < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler.lr_decay_iters: must be >= 0; got ", s.decay_));
    }
  } else {
    s.decay_ = -1;  // never past the decay
  }
  return s;
}

double LearningRateSchedule::LearningRate(int64_t steps) const {
  if (warmup_ > 0 && steps <= warmup_) {
    return init_lr_ + (max_lr_ - init_lr_) * static_cast<double>(steps) / warmup_;
  }
  if (style_ == Style::kConstant) return max_lr_;
  if (decay_ >= 0 && steps > decay_) return min_lr_;
  if (style_ == Style::kInverseSquareRoot) {
    const double w = static_cast<double>(std::max<int64_t>(warmup_, 1));
    const double n = static_cast<double>(std::max<int64_t>(steps, 1));
    return std::max(min_lr_, max_lr_ * std::sqrt(w) / std::sqrt(n));
  }
  const double ratio = static_cast<double>(steps - warmup_) / static_cast<double>(decay_ - warmup_);
  const double coeff =
      style_ == Style::kLinear ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
  return min_lr_ + coeff * (max_lr_ - min_lr_);
}

}  // namespace gptb::train
