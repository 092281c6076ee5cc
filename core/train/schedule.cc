#include "core/train/schedule.h"

#include <chrono>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "absl/strings/str_cat.h"
#include "core/model/gpt_stage.h"
#include "core/model/param_table.h"
#include "core/parallel/torch_status.h"
#include "core/train/loss.h"
#include "core/train/pipeline_order.h"

namespace gptb::train {
namespace {

using plan::GroupKind;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

// What one (chunk, micro-batch) keeps between its forward and its backward.
struct Slot {
  torch::Tensor input;   // received activations (requires grad); undefined on a first stage
  torch::Tensor output;  // sent activations, or the scaled loss on the output chunk
  torch::Tensor aux;     // scaled MoE aux loss of a chunk without the output layer
};

class Executor {
 public:
  Executor(model::RankModel& model, const std::vector<MicroBatch>& micro_batches,
           const ForwardBackwardOptions& options)
      : model_(model), micro_batches_(micro_batches), options_(options) {}

  absl::StatusOr<LossSums> Run() {
    const parallel::ProcessGroupCollection& groups = *model_.groups();
    pp_ = groups.group(GroupKind::kPp);
    tp_ = groups.group(GroupKind::kTp);
    pp_size_ = groups.size(GroupKind::kPp);
    pp_rank_ = groups.rank(GroupKind::kPp);
    chunks_ = static_cast<int>(model_.stages().size());
    num_mb_ = static_cast<int>(micro_batches_.size());
    virtual_stages_ = chunks_ * pp_size_;
    const auto& config = model_.plan().config();
    mtp_scale_ = config.transformer().mtp_loss_scaling_factor();
    const torch::Tensor& ids = micro_batches_.front().input_ids;
    // Under sequence parallelism stages exchange this rank's part of the sequence.
    int64_t seq = ids.size(1);
    if (config.transformer().sequence_parallel()) seq /= groups.size(GroupKind::kTp);
    hidden_shape_ = {seq, ids.size(0), config.transformer().hidden_size()};
    hidden_options_ = torch::TensorOptions()
                          .dtype(model::TorchScalarType(model_.plan().dtype()))
                          .device(groups.device());

    PipelineShape shape;
    shape.pp_size = pp_size_;
    shape.pp_rank = pp_rank_;
    shape.num_chunks = chunks_;
    shape.num_microbatches = num_mb_;
    shape.microbatch_group_size = options_.microbatch_group_size;
    absl::StatusOr<std::vector<PipelineOp>> order = PipelineOrder(shape);
    if (!order.ok()) throw std::invalid_argument(std::string(order.status().message()));

    slots_.assign(chunks_, std::vector<Slot>(num_mb_));
    for (const auto& stage : model_.stages()) stage->train();
    for (const PipelineOp& op : *order) {
      if (options_.cancelled && options_.cancelled()) {
        return absl::CancelledError(
            "the train step was aborted (the call was cancelled, its deadline passed, or the "
            "model is being released)");
      }
      if (op.forward) {
        Forward(op.chunk, op.microbatch);
      } else {
        Backward(op.chunk, op.microbatch);
      }
    }
    const auto start = std::chrono::steady_clock::now();
    for (WorkPtr& work : sends_) work->wait();
    sends_.clear();
    sums_.p2p_wait +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return sums_;
  }

 private:
  int VirtualStage(int chunk) const { return chunk * pp_size_ + pp_rank_; }
  // Each message has its own tag, so no transfer can be matched with another.
  int Tag(bool forward, int receiving_stage, int mb) const {
    return 2 * (mb * virtual_stages_ + receiving_stage) + (forward ? 1 : 2);
  }
  int NextRank() const { return (pp_rank_ + 1) % pp_size_; }
  int PrevRank() const { return (pp_rank_ + pp_size_ - 1) % pp_size_; }

  torch::Tensor Receive(int src, int tag) {
    std::vector<at::Tensor> in = {torch::empty(hidden_shape_, hidden_options_)};
    const auto start = std::chrono::steady_clock::now();
    pp_->recv(in, src, tag)->wait();
    sums_.p2p_wait +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return in[0];
  }
  void Send(const torch::Tensor& tensor, int dst, int tag) {
    std::vector<at::Tensor> out = {tensor.detach().to(hidden_options_.dtype()).contiguous()};
    sends_.push_back(pp_->send(out, dst, tag));
  }

  void Forward(int chunk, int mb) {
    model::GptStage& stage = *model_.stages()[chunk];
    const distributed::Float16Module* f16 = model_.float16(chunk);
    const MicroBatch& batch = micro_batches_[mb];
    Slot& slot = slots_[chunk][mb];
    const int vstage = VirtualStage(chunk);
    torch::Tensor input;
    if (stage.pre_process()) {
      input = batch.input_ids;
    } else {
      slot.input = Receive(PrevRank(), Tag(true, vstage, mb)).requires_grad_(true);
      input = slot.input;
    }
    const double scale = options_.loss_scale / num_mb_;
    if (stage.post_process()) {
      MicroBatchLoss loss =
          PostProcessForward(stage, f16, input, batch.input_ids, batch.labels, tp_, mtp_scale_);
      sums_.lm += loss.lm.item<double>();
      if (loss.mtp.defined()) sums_.mtp += loss.mtp.item<double>();
      if (loss.aux.defined()) sums_.aux += loss.aux.item<double>();
      slot.output = loss.Total() * scale;
      return;
    }
    torch::Tensor output = stage.forward(f16 != nullptr ? f16->Input(input) : input);
    if (f16 != nullptr) output = f16->Output(output);
    torch::Tensor aux = stage.AuxLoss();
    if (aux.defined()) {
      sums_.aux += aux.item<double>();
      slot.aux = aux * scale;
    }
    slot.output = output;
    Send(output, NextRank(), Tag(true, vstage + 1, mb));
  }

  void Backward(int chunk, int mb) {
    model::GptStage& stage = *model_.stages()[chunk];
    Slot& slot = slots_[chunk][mb];
    model_.ddp(chunk)->set_is_last_microbatch(mb == num_mb_ - 1);
    const int vstage = VirtualStage(chunk);
    if (stage.post_process()) {
      slot.output.backward();
    } else {
      torch::Tensor grad = Receive(NextRank(), Tag(false, vstage, mb));
      std::vector<torch::Tensor> outputs = {slot.output};
      std::vector<torch::Tensor> grads = {grad.to(slot.output.dtype())};
      if (slot.aux.defined()) {
        outputs.push_back(slot.aux);
        grads.push_back(torch::ones_like(slot.aux));
      }
      torch::autograd::backward(outputs, grads);
    }
    if (!stage.pre_process()) {
      torch::Tensor input_grad = slot.input.grad();
      if (!input_grad.defined()) input_grad = torch::zeros_like(slot.input);
      Send(input_grad, PrevRank(), Tag(false, vstage - 1, mb));
    }
    slot = Slot();
  }

  model::RankModel& model_;
  const std::vector<MicroBatch>& micro_batches_;
  ForwardBackwardOptions options_;
  parallel::ProcessGroupPtr pp_, tp_;
  int pp_size_ = 1, pp_rank_ = 0, chunks_ = 1, num_mb_ = 1, virtual_stages_ = 1;
  double mtp_scale_ = 0.0;
  std::vector<int64_t> hidden_shape_;
  torch::TensorOptions hidden_options_;
  std::vector<std::vector<Slot>> slots_;
  std::vector<WorkPtr> sends_;
  LossSums sums_;
};

}  // namespace

absl::StatusOr<LossSums> ForwardBackward(model::RankModel& model,
                                         const std::vector<MicroBatch>& micro_batches,
                                         const ForwardBackwardOptions& options) {
  if (micro_batches.empty()) {
    return absl::InvalidArgumentError("a step needs at least one micro-batch");
  }
  if (model.groups() == nullptr || model.stages().empty()) {
    return absl::FailedPreconditionError("the model holds no stages or process groups");
  }
  for (size_t c = 0; c < model.stages().size(); ++c) {
    if (model.ddp(static_cast<int>(c)) == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training needs every chunk wrapped in DistributedDataParallel; chunk ", c, " is not"));
    }
  }
  // Pending sends of a failed run are dropped: Gloo holds its buffers through weak pointers.
  Executor executor(model, micro_batches, options);
  return parallel::CallTorchOr("pipeline forward/backward", [&] { return executor.Run(); });
}

}  // namespace gptb::train
