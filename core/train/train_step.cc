#include "core/train/train_step.h"

#include <google/protobuf/util/message_differencer.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"
#include "core/parallel/collectives.h"
#include "core/parallel/torch_status.h"
#include "core/train/finalize_grads.h"
#include "core/train/pipeline_order.h"
#include "core/train/schedule.h"
#include "core/train/step_memory.h"

namespace gptb::train {
namespace {

using Clock = std::chrono::steady_clock;
using plan::GroupKind;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int MicrobatchGroupSize(const gptbuilder::v1::TransformerConfig& t) {
  return t.has_microbatch_group_size_per_vp_stage() ? t.microbatch_group_size_per_vp_stage() : 0;
}

}  // namespace

absl::Status RankTrainer::Validate(const TrainRequest& request, int64_t* seq_length) const {
  const gptbuilder::v1::TrainOptions& o = request.options;
  const auto& config = model_->plan().config();
  const auto& t = config.transformer();
  if (o.micro_batch_size() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.micro_batch_size: must be >= 1; got ", o.micro_batch_size()));
  }
  if (o.num_micro_batches() < 1 || o.num_micro_batches() > kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("options.num_micro_batches: must be in [1, ",
                                                   kMaxMicroBatches, "]; got ",
                                                   o.num_micro_batches()));
  }
  *seq_length = o.has_seq_length() ? o.seq_length() : config.seq_length();
  if (*seq_length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.seq_length: must be >= 1; got ", *seq_length));
  }
  if (*seq_length > config.seq_length()) {
    // Learned position embeddings have no rows past it; for the others the plan's activation
    // memory assumed it, and a rank running out of memory mid-step would fail the whole model.
    return absl::InvalidArgumentError(
        absl::StrCat("options.seq_length: ", *seq_length, " exceeds the model's seq_length (",
                     config.seq_length(), ")",
                     config.position_embedding_type() == "learned_absolute"
                         ? ", the size of its learned position embeddings"
                         : ", which its plan assumed; build the model with a larger seq_length"));
  }
  if (request.batch.source_case() == gptbuilder::v1::TrainBatch::SOURCE_NOT_SET) {
    return absl::InvalidArgumentError("batch: no source; set tokens, synthetic_seed or data_path");
  }
  if (t.context_parallel_size() > 1) {
    return absl::FailedPreconditionError(
        "training with context_parallel_size > 1 is not supported; rebuild with 1");
  }
  if (t.has_num_moe_experts() && t.num_moe_experts() > 0 && t.tensor_model_parallel_size() > 1 &&
      !t.sequence_parallel()) {
    // Megatron's MoELayer raises the same in training: without sequence parallelism every
    // tensor-parallel rank dispatches the same tokens.
    return absl::FailedPreconditionError(
        "During training, performance may degrade if MoE and tensor parallelism are enabled "
        "without also enabling sequence parallelism: Megatron Core refuses to train a MoE model "
        "with tensor_model_parallel_size > 1 without it; rebuild with sequence_parallel true");
  }
  if (t.sequence_parallel() && *seq_length % t.tensor_model_parallel_size() != 0) {
    // Each tensor-parallel rank holds an equal part of the sequence.
    return absl::InvalidArgumentError(absl::StrCat(
        "options.seq_length: ", *seq_length, " must be divisible by tensor_model_parallel_size (",
        t.tensor_model_parallel_size(), ") with sequence_parallel"));
  }
  const parallel::ProcessGroupCollection* groups = model_->groups();
  if (groups == nullptr) return absl::FailedPreconditionError("the model has no process groups");
  const auto& stages = model_->stages();
  for (size_t c = 0; c < stages.size(); ++c) {
    if (model_->ddp(static_cast<int>(c)) == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training needs every chunk wrapped in DistributedDataParallel (build.wrap_with_ddp, "
          "no FSDP); chunk ",
          c, " is not"));
    }
    if (!stages[c]->mtp_layers().empty() && !stages[c]->post_process()) {
      return absl::FailedPreconditionError(
          "training needs the MTP layers on the chunk that holds the output layer");
    }
  }
  PipelineShape shape;
  shape.pp_size = groups->size(GroupKind::kPp);
  shape.pp_rank = groups->rank(GroupKind::kPp);
  shape.num_chunks = static_cast<int>(stages.size());
  shape.num_microbatches = o.num_micro_batches();
  shape.microbatch_group_size = MicrobatchGroupSize(t);
  if (absl::StatusOr<std::vector<PipelineOp>> order = PipelineOrder(shape); !order.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.num_micro_batches: ", order.status().message()));
  }
  const int64_t dp = groups->size(GroupKind::kDp);
  const int64_t samples = static_cast<int64_t>(o.micro_batch_size()) * o.num_micro_batches() * dp;
  if (samples > (int64_t{1} << 40) / (*seq_length + 1)) {
    return absl::InvalidArgumentError(absl::StrCat("a global batch of ", samples, " samples of ",
                                                   *seq_length + 1, " ids is too large"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainStepResult> RankTrainer::Step(const TrainRequest& request) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "an earlier train step failed, so the ranks' states may differ: ", broken_.ToString()));
  }
  const Clock::time_point start = Clock::now();
  TrainStepResult result;
  result.iteration = iteration_;
  int64_t seq_length = 0;
  if (absl::Status s = Validate(request, &seq_length); !s.ok()) return s;
  const gptbuilder::v1::TrainOptions& o = request.options;

  // This replica's micro-batches.
  if (!source_.has_value() ||
      !google::protobuf::util::MessageDifferencer::Equals(source_->spec(), request.batch)) {
    absl::StatusOr<BatchSource> source = BatchSource::Create(request.batch);
    if (!source.ok()) return source.status();
    source_ = *std::move(source);
  }
  const parallel::ProcessGroupCollection& groups = *model_->groups();
  const auto& config = model_->plan().config();
  const int64_t dp = groups.size(GroupKind::kDp);
  const int64_t dp_rank = groups.rank(GroupKind::kDp);
  const int64_t mbs = o.micro_batch_size();
  const int num_mb = o.num_micro_batches();
  BatchShape shape;
  shape.global_batch = mbs * num_mb * dp;
  shape.seq_length = seq_length;
  const int64_t vocab =
      config.has_vocab_size() ? config.vocab_size() : model_->plan().padded_vocab_size();
  absl::StatusOr<std::vector<int64_t>> ids = source_->GlobalBatch(iteration_, shape, vocab);
  if (!ids.ok()) return ids.status();
  std::vector<MicroBatch> micro_batches;
  absl::Status made = parallel::CallTorch("building micro-batches", [&] {
    const torch::Tensor all =
        torch::from_blob(ids->data(), {shape.global_batch, seq_length + 1}, torch::kLong);
    for (int m = 0; m < num_mb; ++m) {
      const torch::Tensor rows = all.narrow(0, (m * dp + dp_rank) * mbs, mbs);
      MicroBatch batch;
      batch.input_ids = rows.narrow(1, 0, seq_length).contiguous().to(groups.device());
      batch.labels = rows.narrow(1, 1, seq_length).contiguous().to(groups.device());
      micro_batches.push_back(std::move(batch));
    }
  });
  if (!made.ok()) return made;
  result.seconds.data = Since(start);

  // The optimizer is created on first use; later steps must not change it silently.
  if (optimizer_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Optimizer>> created =
        Optimizer::Create(*model_, o.optimizer(), o.scheduler());
    if (!created.ok()) return created.status();
    optimizer_ = *std::move(created);
    optimizer_config_ = o.optimizer();
    scheduler_config_ = o.scheduler();
  } else if ((o.has_optimizer() || o.has_scheduler()) &&
             (!google::protobuf::util::MessageDifferencer::Equals(optimizer_config_,
                                                                  o.optimizer()) ||
              !google::protobuf::util::MessageDifferencer::Equals(scheduler_config_,
                                                                  o.scheduler()))) {
    // Omitting both keeps the first step's settings.
    return absl::FailedPreconditionError(
        "options.optimizer / options.scheduler differ from the first step's; the optimizer "
        "exists already (rebuild the model to start over)");
  }

  // From here on every rank must take part: a failure leaves the ranks out of step.
  auto fail = [&](absl::Status status) {
    broken_ = status;
    return status;
  };
  Clock::time_point phase = Clock::now();
  for (size_t c = 0; c < model_->stages().size(); ++c)
    model_->ddp(static_cast<int>(c))->ZeroGradBuffer();
  ForwardBackwardOptions fb;
  fb.loss_scale = optimizer_->loss_scale();
  fb.microbatch_group_size = MicrobatchGroupSize(config.transformer());
  fb.cancelled = request.cancelled;
  absl::StatusOr<LossSums> sums = ForwardBackward(*model_, micro_batches, fb);
  if (!sums.ok()) return fail(sums.status());
  result.seconds.forward_backward = Since(phase);
  result.seconds.p2p_wait = sums->p2p_wait;

  phase = Clock::now();
  if (absl::Status s = FinalizeGrads(*model_); !s.ok()) return fail(s);
  result.seconds.grad_sync = Since(phase);

  phase = Clock::now();
  absl::StatusOr<OptimizerStepResult> stepped = optimizer_->Step();
  if (!stepped.ok()) {
    // A non-finite norm is global, so every rank refuses the update together: still in step.
    if (absl::IsFailedPrecondition(stepped.status())) return stepped.status();
    return fail(stepped.status());
  }
  result.seconds.optimizer = Since(phase);

  // Losses: the output chunk's replicas hold lm/mtp, every pipeline rank its aux share.
  absl::Status reduced = parallel::CallTorch("reducing the step's losses", [&] {
    // The aux loss of each tensor-parallel rank is its share (core/model/moe.h); lm and mtp
    // are whole on every tensor-parallel rank.
    double aux = sums->aux;
    const auto& t = config.transformer();
    if (t.has_num_moe_experts() && t.num_moe_experts() > 0 && groups.size(GroupKind::kTp) > 1) {
      torch::Tensor shares = torch::tensor({aux}, torch::TensorOptions().dtype(torch::kFloat64));
      parallel::AllReduceInPlace(shares, groups.group(GroupKind::kTp));
      aux = shares.item<double>();
    }
    torch::Tensor values =
        torch::tensor({sums->lm, sums->mtp, aux}, torch::TensorOptions().dtype(torch::kFloat64));
    parallel::AllReduceInPlace(values, groups.group(GroupKind::kDpCp));
    parallel::AllReduceInPlace(values, groups.group(GroupKind::kPp));
    const double denominator = static_cast<double>(num_mb) * static_cast<double>(dp);
    result.loss = values[0].item<double>() / denominator;
    result.mtp_loss = values[1].item<double>() / denominator;
    result.aux_loss = values[2].item<double>() / denominator;
  });
  if (!reduced.ok()) return fail(reduced);

  result.grad_norm = stepped->grad_norm;
  result.learning_rate = stepped->learning_rate;
  result.loss_scale = stepped->loss_scale;
  result.skipped = stepped->skipped;
  result.tokens = shape.global_batch * seq_length;
  result.seconds.total = Since(start);
  result.tokens_per_second =
      result.seconds.total > 0.0 ? static_cast<double>(result.tokens) / result.seconds.total : 0.0;
  ++iteration_;
  return result;
}

}  // namespace gptb::train
