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
    torch::Tensor logits_max = std::get<0>(vocab_logits.max(-1)).to(torch::kFloat32);
    AllReduceInPlace(logits_max, group, c10d::ReduceOp::MAX);
    // One fp32 buffer of the logits' size goes through every step (shifted logits, their
    // exponentials, the softmax; the gradient in backward), as Megatron reuses its own: these
    // are the largest tensors of a step, and each extra pass or allocation shows.
    torch::Tensor softmax = vocab_logits.to(torch::kFloat32) - logits_max.unsqueeze(-1);

    const int64_t partition = softmax.size(-1);
    const int64_t vocab_start = static_cast<int64_t>(group->getRank()) * partition;
    const int64_t vocab_end = vocab_start + partition;
    torch::Tensor target_mask = (target < vocab_start).logical_or(target >= vocab_end);
    torch::Tensor masked_target_1d =
        (target - vocab_start).masked_fill(target_mask, 0).reshape({-1}).to(torch::kLong);
    torch::Tensor predicted = softmax.reshape({-1, partition})
                                  .gather(1, masked_target_1d.unsqueeze(1))
                                  .squeeze(1)
                                  .view(target.sizes())
                                  .masked_fill(target_mask, 0.0)
                                  .contiguous();
    AllReduceInPlace(predicted, group);

    softmax.exp_();
    torch::Tensor sum_exp = softmax.sum(-1).contiguous();
    AllReduceInPlace(sum_exp, group);

    torch::Tensor loss = sum_exp.log() - predicted;
    softmax.div_(sum_exp.unsqueeze(-1));
    ctx->save_for_backward({softmax, target_mask, masked_target_1d});
    ctx->saved_data["backward_done"] = false;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // The gradient is written over the saved softmax (Megatron does the same), so a second
    // backward through the same graph would read a gradient: refuse it.
    TORCH_CHECK(!ctx->saved_data["backward_done"].toBool(),
                "vocab-parallel cross entropy: backward through the same graph twice "
                "(retain_graph) is not supported");
    ctx->saved_data["backward_done"] = true;
    variable_list saved = ctx->get_saved_variables();
    torch::Tensor grad = saved[0];
    const torch::Tensor& target_mask = saved[1];
    const torch::Tensor& masked_target_1d = saved[2];
    const int64_t partition = grad.size(-1);
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
