#include "core/parallel/cross_entropy.h"

#include "core/parallel/collectives.h"

namespace gptb::parallel {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct VocabParallelCrossEntropyFunction
    : torch::autograd::Function<VocabParallelCrossEntropyFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor vocab_logits,
                               torch::Tensor target, ProcessGroupPtr group) {
    TORCH_CHECK(vocab_logits.dim() >= 1 &&
                    target.sizes() == vocab_logits.sizes().slice(0, vocab_logits.dim() - 1),
                "vocab-parallel cross entropy: target shape ", target.sizes(),
                " must equal the logits shape ", vocab_logits.sizes(), " without its last dim");
    torch::Tensor logits = vocab_logits.to(torch::kFloat32);
    torch::Tensor logits_max = std::get<0>(logits.max(-1));
    AllReduceInPlace(logits_max, group, c10d::ReduceOp::MAX);
    logits = logits - logits_max.unsqueeze(-1);

    const int64_t partition = logits.size(-1);
    const int64_t vocab_start = static_cast<int64_t>(group->getRank()) * partition;
    const int64_t vocab_end = vocab_start + partition;
    torch::Tensor target_mask = (target < vocab_start).logical_or(target >= vocab_end);
    torch::Tensor masked_target = (target - vocab_start).masked_fill(target_mask, 0);

    torch::Tensor logits_2d = logits.reshape({-1, partition});
    torch::Tensor masked_target_1d = masked_target.reshape({-1}).to(torch::kLong);
    torch::Tensor predicted =
        logits_2d.gather(1, masked_target_1d.unsqueeze(1)).squeeze(1).view(target.sizes());
    predicted = predicted.masked_fill(target_mask, 0.0).contiguous();
    AllReduceInPlace(predicted, group);

    torch::Tensor exp_logits = logits.exp();
    torch::Tensor sum_exp = exp_logits.sum(-1).contiguous();
    AllReduceInPlace(sum_exp, group);

    torch::Tensor loss = sum_exp.log() - predicted;
    torch::Tensor softmax = exp_logits.div_(sum_exp.unsqueeze(-1));
    ctx->save_for_backward({softmax, target_mask, masked_target_1d});
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& softmax = saved[0];
    const torch::Tensor& target_mask = saved[1];
    const torch::Tensor& masked_target_1d = saved[2];
    const int64_t partition = softmax.size(-1);
    torch::Tensor grad = softmax.clone();
    torch::Tensor grad_2d = grad.view({-1, partition});
    torch::Tensor update = 1.0 - target_mask.reshape({-1}).to(grad.scalar_type());
    grad_2d.scatter_add_(1, masked_target_1d.unsqueeze(1), -update.unsqueeze(1));
    grad.mul_(grads[0].unsqueeze(-1));
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor VocabParallelCrossEntropy(const torch::Tensor& logits, const torch::Tensor& target,
                                        const ProcessGroupPtr& group) {
  TORCH_CHECK(group, "vocab-parallel cross entropy needs a process group; got null");
  return VocabParallelCrossEntropyFunction::apply(logits, target, group);
}

}  // namespace gptb::parallel
