#include "core/parallel/tensor_parallel.h"

#include "core/parallel/collectives.h"

namespace gptb::parallel {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group rides along in the autograd context as a capsule (ProcessGroup is a
// CustomClassHolder), so backward uses the same group as forward.
void SaveGroup(AutogradContext* ctx, const ProcessGroupPtr& group) {
  ctx->saved_data["group"] = c10::IValue::make_capsule(group);
}

ProcessGroupPtr LoadGroup(AutogradContext* ctx) {
  return c10::static_intrusive_pointer_cast<c10d::ProcessGroup>(
      ctx->saved_data["group"].toCapsule());
}

torch::Tensor AllReduced(const torch::Tensor& t, const ProcessGroupPtr& group) {
  torch::Tensor out = t.clone(at::MemoryFormat::Contiguous);
  AllReduceInPlace(out, group);
  return out;
}

struct CopyToRegion : torch::autograd::Function<CopyToRegion> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, ProcessGroupPtr group) {
    SaveGroup(ctx, group);
    return input;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {AllReduced(grads[0], LoadGroup(ctx)), torch::Tensor()};
  }
};

struct ReduceFromRegion : torch::autograd::Function<ReduceFromRegion> {
  static torch::Tensor forward(AutogradContext*, torch::Tensor input, ProcessGroupPtr group) {
    return AllReduced(input, group);
  }
  static variable_list backward(AutogradContext*, variable_list grads) {
    return {grads[0], torch::Tensor()};
  }
};

// Forward splits along `dim`, backward gathers along it (and the reverse pair below).
struct SplitDim : torch::autograd::Function<SplitDim> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, ProcessGroupPtr group,
                               int64_t dim) {
    SaveGroup(ctx, group);
    ctx->saved_data["dim"] = dim;
    return SplitAlongDim(input, group, dim);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {AllGather(grads[0], LoadGroup(ctx), ctx->saved_data["dim"].toInt()), torch::Tensor(),
            torch::Tensor()};
  }
};

struct GatherDim : torch::autograd::Function<GatherDim> {
  // backward_reduce_scatter: the gradient is partial on every rank and must be summed.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, ProcessGroupPtr group,
                               int64_t dim, bool backward_reduce_scatter) {
    SaveGroup(ctx, group);
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["reduce_scatter"] = backward_reduce_scatter;
    return AllGather(input, group, dim);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const ProcessGroupPtr group = LoadGroup(ctx);
    const int64_t dim = ctx->saved_data["dim"].toInt();
    torch::Tensor grad = ctx->saved_data["reduce_scatter"].toBool()
                             ? ReduceScatter(grads[0], group, dim)
                             : SplitAlongDim(grads[0], group, dim);
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct ReduceScatterDim0 : torch::autograd::Function<ReduceScatterDim0> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, ProcessGroupPtr group) {
    SaveGroup(ctx, group);
    return ReduceScatter(input, group, 0);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {AllGather(grads[0], LoadGroup(ctx), 0), torch::Tensor()};
  }
};

bool Trivial(const ProcessGroupPtr& group) {
  TORCH_CHECK(group, "tensor-parallel communication needs a process group; got null");
  return group->getSize() == 1;
}

}  // namespace

torch::Tensor CopyToTensorParallelRegion(const torch::Tensor& input, const ProcessGroupPtr& group) {
  return Trivial(group) ? input : CopyToRegion::apply(input, group);
}

torch::Tensor ReduceFromTensorParallelRegion(const torch::Tensor& input,
                                             const ProcessGroupPtr& group) {
  return Trivial(group) ? input : ReduceFromRegion::apply(input, group);
}

torch::Tensor ScatterToTensorParallelRegion(const torch::Tensor& input,
                                            const ProcessGroupPtr& group) {
  return Trivial(group) ? input : SplitDim::apply(input, group, input.dim() - 1);
}

torch::Tensor GatherFromTensorParallelRegion(const torch::Tensor& input,
                                             const ProcessGroupPtr& group) {
  // The gathered tensor is consumed redundantly on every rank: backward takes our slice only.
  return Trivial(group) ? input : GatherDim::apply(input, group, input.dim() - 1, false);
}

torch::Tensor ScatterToSequenceParallelRegion(const torch::Tensor& input,
                                              const ProcessGroupPtr& group) {
  return Trivial(group) ? input : SplitDim::apply(input, group, int64_t{0});
}

torch::Tensor GatherFromSequenceParallelRegion(const torch::Tensor& input,
                                               const ProcessGroupPtr& group,
                                               bool tensor_parallel_output_grad) {
  return Trivial(group) ? input
                        : GatherDim::apply(input, group, int64_t{0}, tensor_parallel_output_grad);
}

torch::Tensor ReduceScatterToSequenceParallelRegion(const torch::Tensor& input,
                                                    const ProcessGroupPtr& group) {
  return Trivial(group) ? input : ReduceScatterDim0::apply(input, group);
}

}  // namespace gptb::parallel
