#include "core/parallel/collectives.h"

#include <vector>

namespace gptb::parallel {
namespace {

bool IsNccl(const ProcessGroupPtr& group) { return group->getBackendName() == "nccl"; }

// Gloo in LibTorch 1.13 knows no bfloat16. Data movement reinterprets the bits as float16 (same
// width, copied verbatim); reductions run in fp32 (which also rounds once instead of per hop).
bool NeedsBf16Workaround(const torch::Tensor& tensor, const ProcessGroupPtr& group) {
  return tensor.scalar_type() == torch::kBFloat16 && !IsNccl(group);
}

torch::Tensor AsTransportable(const torch::Tensor& tensor, const ProcessGroupPtr& group) {
  torch::Tensor t = tensor.contiguous();
  return NeedsBf16Workaround(t, group) ? t.view(torch::kFloat16) : t;
}

int64_t NormalizeDim(const torch::Tensor& tensor, int64_t dim) {
  const int64_t rank = tensor.dim();
  TORCH_CHECK(dim >= -rank && dim < rank, "dimension ", dim, " is out of range for a tensor of ",
              rank, " dimensions");
  return dim < 0 ? dim + rank : dim;
}

}  // namespace

void AllReduceInPlace(torch::Tensor& tensor, const ProcessGroupPtr& group, c10d::ReduceOp op) {
  TORCH_CHECK(group, "all-reduce on a null process group");
  if (group->getSize() == 1) return;
  const bool emulate_avg = op == c10d::ReduceOp::AVG && !IsNccl(group);
  c10d::AllreduceOptions options;
  options.reduceOp = emulate_avg ? c10d::ReduceOp(c10d::ReduceOp::SUM) : op;
  std::vector<at::Tensor> tensors = {NeedsBf16Workaround(tensor, group)
                                         ? tensor.to(torch::kFloat32, /*non_blocking=*/false,
                                                     /*copy=*/true, at::MemoryFormat::Contiguous)
                                         : tensor.contiguous()};
  group->allreduce(tensors, options)->wait();
  if (emulate_avg) tensors[0].div_(group->getSize());
  if (!tensors[0].is_same(tensor)) tensor.copy_(tensors[0]);
}

void BroadcastInPlace(torch::Tensor& tensor, const ProcessGroupPtr& group, int root) {
  TORCH_CHECK(group, "broadcast on a null process group");
  if (group->getSize() == 1) return;
  c10d::BroadcastOptions options;
  options.rootRank = root;
  torch::Tensor contiguous = tensor.contiguous();
  std::vector<at::Tensor> tensors = {AsTransportable(contiguous, group)};
  group->broadcast(tensors, options)->wait();
  if (!contiguous.is_same(tensor)) tensor.copy_(contiguous);
}

torch::Tensor AllGather(const torch::Tensor& tensor, const ProcessGroupPtr& group, int64_t dim) {
  TORCH_CHECK(group, "all-gather on a null process group");
  dim = NormalizeDim(tensor, dim);
  const int size = group->getSize();
  if (size == 1) return tensor;
  std::vector<at::Tensor> inputs = {AsTransportable(tensor, group)};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int i = 0; i < size; ++i) outputs[0].push_back(torch::empty_like(inputs[0]));
  group->allgather(outputs, inputs)->wait();
  return torch::cat(outputs[0], dim).view(tensor.scalar_type());
}

torch::Tensor ReduceScatter(const torch::Tensor& tensor, const ProcessGroupPtr& group,
                            int64_t dim) {
  TORCH_CHECK(group, "reduce-scatter on a null process group");
  dim = NormalizeDim(tensor, dim);
  const int size = group->getSize();
  TORCH_CHECK(tensor.size(dim) % size == 0, "reduce-scatter: dimension ", dim, " of size ",
              tensor.size(dim), " is not divisible by the group size ", size);
  if (size == 1) return tensor;
  // Chunks along dim 0 of a contiguous tensor are contiguous, as the backends need.
  torch::Tensor input = tensor.movedim(dim, 0).contiguous();
  const int64_t chunk = input.size(0) / size;
  torch::Tensor output;
  if (IsNccl(group)) {
    std::vector<int64_t> shape = input.sizes().vec();
    shape[0] = chunk;
    output = torch::empty(shape, input.options());
    group->reduce_scatter_single(output, input)->wait();
  } else {
    // Gloo in LibTorch 1.13 has no reduce-scatter: all-reduce a copy and keep our slice.
    torch::Tensor reduced = input.is_alias_of(tensor) ? input.clone() : input;
    AllReduceInPlace(reduced, group);
    output = reduced.narrow(0, group->getRank() * chunk, chunk).clone();
  }
  return output.movedim(0, dim);
}

torch::Tensor SplitAlongDim(const torch::Tensor& tensor, const ProcessGroupPtr& group,
                            int64_t dim) {
  TORCH_CHECK(group, "split on a null process group");
  dim = NormalizeDim(tensor, dim);
  const int size = group->getSize();
  TORCH_CHECK(tensor.size(dim) % size == 0, "split: dimension ", dim, " of size ", tensor.size(dim),
              " is not divisible by the group size ", size);
  if (size == 1) return tensor;
  const int64_t chunk = tensor.size(dim) / size;
  return tensor.narrow(dim, group->getRank() * chunk, chunk).contiguous();
}

}  // namespace gptb::parallel
