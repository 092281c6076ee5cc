#include "core/train/optimizer.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"
#include "core/train/finalize_grads.h"

namespace gptb::train {
namespace {

using plan::GroupKind;

constexpr int64_t kGrain = 1 << 15;

double SumSquares(const torch::Tensor& g) {
  const float* data = g.data_ptr<float>();
  return at::parallel_reduce(
      0, g.numel(), kGrain, 0.0,
      [&](int64_t begin, int64_t end, double acc) {
        for (int64_t i = begin; i < end; ++i) acc += static_cast<double>(data[i]) * data[i];
        return acc;
      },
      [](double a, double b) { return a + b; });
}

struct AdamArgs {
  float lr, beta1, beta2, eps, weight_decay, grad_scale, step_size, bias_correction2_sqrt;
  bool decoupled;
};

// torch.optim.AdamW's arithmetic (and Apex/TE FusedAdam's), one pass over the memory.
void AdamKernel(const AdamArgs& a, const float* grad, float* param, float* m, float* v, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float g = grad[i] * a.grad_scale;
      float p = param[i];
      if (!a.decoupled) g += a.weight_decay * p;
      const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
      const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      if (a.decoupled) p *= 1.0f - a.lr * a.weight_decay;
      const float denom = std::sqrt(vi) / a.bias_correction2_sqrt + a.eps;
      param[i] = p - a.step_size * mi / denom;
    }
  });
}

struct SgdArgs {
  float lr, momentum, weight_decay, grad_scale;
  bool first;
};

// torch.optim.SGD with momentum (dampening 0, not Nesterov); weight decay joins the gradient.
void SgdKernel(const SgdArgs& a, const float* grad, float* param, float* buf, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float d = grad[i] * a.grad_scale + a.weight_decay * param[i];
      const float b = a.momentum == 0.0f ? d : (a.first ? d : a.momentum * buf[i] + d);
      buf[i] = b;
      param[i] -= a.lr * b;
    }
  });
}

absl::Status CheckRange(const char* field, double value, double lo, double hi, bool hi_open) {
  if (!(value >= lo) || (hi_open ? !(value < hi) : !(value <= hi)) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer.", field, ": must lie in [", lo, ", ",
                                                   hi, hi_open ? ")" : "]", "; got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(
    model::RankModel& model, const gptbuilder::v1::OptimizerConfig& config,
    const gptbuilder::v1::SchedulerConfig& scheduler) {
  std::unique_ptr<Optimizer> opt(new Optimizer());
  opt->config_ = config;
  const std::string& kind = config.optimizer();
  if (kind != "adam" && kind != "adamw" && kind != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.optimizer: '", kind, "' is not one of adam, adamw, sgd"));
  }
  opt->sgd_ = kind == "sgd";
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (absl::Status s : {CheckRange("adam_beta1", config.adam_beta1(), 0.0, 1.0, true),
                         CheckRange("adam_beta2", config.adam_beta2(), 0.0, 1.0, true),
                         CheckRange("sgd_momentum", config.sgd_momentum(), 0.0, 1.0, true),
                         CheckRange("weight_decay", config.weight_decay(), 0.0, kInf, true),
                         CheckRange("clip_grad", config.clip_grad(), 0.0, kInf, true)}) {
    if (!s.ok()) return s;
  }
  if (!(config.adam_eps() > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.adam_eps: must be > 0; got ", config.adam_eps()));
  }
  absl::StatusOr<LearningRateSchedule> schedule = LearningRateSchedule::Create(config, scheduler);
  if (!schedule.ok()) return schedule.status();
  opt->schedule_ = *schedule;

  opt->fp16_ = model.plan().dtype() == DType::kFloat16;
  if (opt->fp16_) {
    if (config.has_loss_scale()) {
      if (!(config.loss_scale() > 0.0) || !std::isfinite(config.loss_scale())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer.loss_scale: must be a finite value > 0; got ", config.loss_scale()));
      }
      opt->loss_scale_ = config.loss_scale();
    } else {
      if (!(config.initial_loss_scale() > 0.0) || !(config.min_loss_scale() > 0.0) ||
          config.min_loss_scale() > config.initial_loss_scale()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer.initial_loss_scale / min_loss_scale: need 0 < min_loss_scale <= "
            "initial_loss_scale; got ",
            config.min_loss_scale(), " and ", config.initial_loss_scale()));
      }
      if (config.loss_scale_window() < 1 || config.hysteresis() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer.loss_scale_window / hysteresis: must be >= 1; got ",
                         config.loss_scale_window(), " and ", config.hysteresis()));
      }
      opt->dynamic_scale_ = true;
      opt->loss_scale_ = config.initial_loss_scale();
      opt->hysteresis_tracker_ = config.hysteresis();
    }
  }
  absl::Status built =
      parallel::CallTorch("creating the optimizer state", [&] { return opt->Build(model); });
  if (!built.ok()) return built;
  return opt;
}

absl::Status Optimizer::Build(model::RankModel& model) {
  model_ = &model;
  const parallel::ProcessGroupCollection* groups = model.groups();
  if (groups == nullptr) return absl::FailedPreconditionError("the model has no process groups");
  const auto& t = model.plan().config().transformer();
  has_experts_ = t.has_num_moe_experts() && t.num_moe_experts() > 0;
  distributed_ = model.plan().options().ddp.use_distributed_optimizer();
  const int tp_rank = std::max(0, groups->rank(GroupKind::kTp));
  const int etp_rank = std::max(0, groups->rank(GroupKind::kExptTp));
  torch::NoGradGuard no_grad;
  for (int c = 0; c < static_cast<int>(model.stages().size()); ++c) {
    distributed::DistributedDataParallel* ddp = model.ddp(c);
    if (ddp == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training needs every chunk wrapped in DistributedDataParallel (build.wrap_with_ddp "
          "true, no FSDP); chunk ",
          c, " is not"));
    }
    std::unordered_map<std::string, const plan::ParamInfo*> infos;
    for (const plan::ParamInfo& info : model.stages()[c]->plan().params) infos[info.name] = &info;
    for (const distributed::GradBuffer& buffer : ddp->buffers()) {
      const bool sharded = distributed_;
      if (sharded && !buffer.param_data.defined()) {
        return absl::InternalError("use_distributed_optimizer without DDP parameter buffers");
      }
      auto add = [&](int index, int64_t begin, int64_t end, int64_t slot_start) -> absl::Status {
        const std::string& name = buffer.names[index];
        auto it = infos.find(name);
        if (it == infos.end()) {
          return absl::InternalError(absl::StrCat("parameter ", name, " is not in the plan"));
        }
        const plan::ParamInfo& info = *it->second;
        const torch::Tensor& param = buffer.params[index];
        Segment seg;
        seg.chunk = c;
        seg.name = name;
        seg.offset = begin - slot_start;
        if (sharded) {
          seg.model = buffer.param_data.narrow(0, begin, end - begin);
        } else {
          if (!param.is_contiguous()) {
            return absl::InternalError(absl::StrCat("parameter ", name, " is not contiguous"));
          }
          seg.model = param.detach().view({-1});
        }
        seg.grad = buffer.grad_data.narrow(0, begin, end - begin);
        seg.main =
            seg.model.scalar_type() == torch::kFloat32 ? seg.model : seg.model.to(torch::kFloat32);
        seg.exp_avg = torch::zeros_like(seg.main);
        if (!sgd_) seg.exp_avg_sq = torch::zeros_like(seg.main);
        // Megatron's default no_weight_decay_cond: biases and 1-D tensors (norms).
        seg.weight_decay = !(absl::EndsWith(name, ".bias") || param.dim() == 1);
        seg.expert = buffer.is_expert;
        const int shard_rank = buffer.is_expert ? etp_rank : tp_rank;
        seg.in_norm = !IsEmbeddingCopy(*model.stages()[c], info) &&
                      (info.tensor_model_parallel || shard_rank == 0);
        segments_.push_back(std::move(seg));
        return absl::OkStatus();
      };
      const distributed::BufferLayout& layout = buffer.layout;
      if (sharded) {
        const int64_t size = buffer.group->getSize();
        const int64_t rank = buffer.group->getRank();
        for (const distributed::BucketLayout& bucket : layout.buckets) {
          const int64_t shard = (bucket.end - bucket.start) / size;
          const int64_t lo = bucket.start + rank * shard, hi = lo + shard;
          for (int s : bucket.slots) {
            const distributed::ParamSlot& slot = layout.slots[s];
            const int64_t begin = std::max(slot.start, lo), end = std::min(slot.end, hi);
            if (begin >= end) continue;
            if (absl::Status st = add(slot.index, begin, end, slot.start); !st.ok()) return st;
          }
        }
      } else {
        for (const distributed::ParamSlot& slot : layout.slots) {
          if (absl::Status st = add(slot.index, slot.start, slot.end, slot.start); !st.ok()) {
            return st;
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Optimizer::GlobalNormSquared() {
  const parallel::ProcessGroupCollection& groups = *model_->groups();
  double dense = 0.0, expert = 0.0;
  for (const Segment& seg : segments_) {
    if (!seg.in_norm) continue;
    const torch::Tensor g =
        seg.grad.scalar_type() == torch::kFloat32 ? seg.grad : seg.grad.to(torch::kFloat32);
    (seg.expert ? expert : dense) += SumSquares(g);
  }
  absl::Status s = parallel::CallTorch("all-reducing the gradient norm", [&] {
    auto options = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor d = torch::full({1}, dense, options);
    parallel::AllReduceInPlace(d, groups.group(GroupKind::kMp));
    if (distributed_) parallel::AllReduceInPlace(d, groups.group(GroupKind::kDpCp));
    dense = d.item<double>();
    if (has_experts_) {
      torch::Tensor e = torch::full({1}, expert, options);
      parallel::AllReduceInPlace(e, groups.group(GroupKind::kTpEpPp));
      if (distributed_) parallel::AllReduceInPlace(e, groups.group(GroupKind::kExptDp));
      expert = e.item<double>();
    }
  });
  if (!s.ok()) return s;
  return dense + expert;
}

void Optimizer::UpdateLossScale(bool overflow) {
  if (!dynamic_scale_) return;
  if (overflow) {
    growth_tracker_ = 0;
    if (--hysteresis_tracker_ <= 0) {
      loss_scale_ = std::max(loss_scale_ * 0.5, config_.min_loss_scale());
    }
  } else if (++growth_tracker_ == config_.loss_scale_window()) {
    growth_tracker_ = 0;
    hysteresis_tracker_ = config_.hysteresis();
    loss_scale_ *= 2.0;
  }
}

absl::StatusOr<OptimizerStepResult> Optimizer::Step() {
  OptimizerStepResult result;
  result.loss_scale = loss_scale_;
  result.learning_rate = learning_rate();
  absl::StatusOr<double> squared = GlobalNormSquared();
  if (!squared.ok()) return squared.status();
  const double norm = std::sqrt(*squared) / loss_scale_;
  result.grad_norm = norm;
  if (!std::isfinite(norm)) {
    if (fp16_) {
      UpdateLossScale(true);
      result.skipped = true;
      return result;
    }
    return absl::FailedPreconditionError(
        absl::StrCat("the gradient norm is ", norm, " after ", successful_steps_,
                     " steps; the step was not applied (lower optimizer.lr or enable clipping)"));
  }
  double grad_scale = 1.0 / loss_scale_;
  if (config_.clip_grad() > 0.0) {
    const double coeff = config_.clip_grad() / (norm + 1e-6);
    if (coeff < 1.0) grad_scale *= coeff;
  }
  const double lr = result.learning_rate;
  const int64_t step = successful_steps_ + 1;
  absl::Status updated = parallel::CallTorch("optimizer update", [&] {
    torch::NoGradGuard no_grad;
    for (Segment& seg : segments_) {
      const torch::Tensor g =
          seg.grad.scalar_type() == torch::kFloat32 ? seg.grad : seg.grad.to(torch::kFloat32);
      const float wd = seg.weight_decay ? static_cast<float>(config_.weight_decay()) : 0.0f;
      if (sgd_) {
        SgdArgs a{static_cast<float>(lr), static_cast<float>(config_.sgd_momentum()), wd,
                  static_cast<float>(grad_scale), step == 1};
        SgdKernel(a, g.data_ptr<float>(), seg.main.data_ptr<float>(), seg.exp_avg.data_ptr<float>(),
                  seg.main.numel());
      } else {
        const double b1 = config_.adam_beta1(), b2 = config_.adam_beta2();
        const double bc1 = 1.0 - std::pow(b1, static_cast<double>(step));
        const double bc2 = 1.0 - std::pow(b2, static_cast<double>(step));
        AdamArgs a{static_cast<float>(lr),
                   static_cast<float>(b1),
                   static_cast<float>(b2),
                   static_cast<float>(config_.adam_eps()),
                   wd,
                   static_cast<float>(grad_scale),
                   static_cast<float>(lr / bc1),
                   static_cast<float>(std::sqrt(bc2)),
                   config_.decoupled_weight_decay()};
        AdamKernel(a, g.data_ptr<float>(), seg.main.data_ptr<float>(),
                   seg.exp_avg.data_ptr<float>(), seg.exp_avg_sq.data_ptr<float>(),
                   seg.main.numel());
      }
      if (!seg.main.is_same(seg.model)) seg.model.copy_(seg.main);
    }
  });
  if (!updated.ok()) return updated;
  if (distributed_) {
    for (int c = 0; c < static_cast<int>(model_->stages().size()); ++c) {
      if (absl::Status s = model_->ddp(c)->ParamSync(); !s.ok()) return s;
    }
  }
  ++successful_steps_;
  UpdateLossScale(false);
  return result;
}

}  // namespace gptb::train
