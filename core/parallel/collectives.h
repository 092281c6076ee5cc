#ifndef GPTB_CORE_PARALLEL_COLLECTIVES_H_
#define GPTB_CORE_PARALLEL_COLLECTIVES_H_

#include <torch/torch.h>

#include <cstdint>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "core/parallel/process_group_collection.h"

namespace gptb::parallel {

// Blocking collectives over a c10d group, with the emulations Gloo (LibTorch 1.13) needs: AVG is
// SUM then a division, reduce-scatter is an all-reduce then a slice. They accept non-contiguous
// tensors, are no-ops (or copies) on groups of one rank, and THROW c10::Error like any LibTorch
// op: they run inside forward/backward passes, where an exception is the only way out. Wrap
// calls outside autograd with CallTorch (torch_status.h).

// Reduces `tensor` in place over `group` (SUM, AVG, MAX, MIN, PRODUCT).
void AllReduceInPlace(torch::Tensor& tensor, const ProcessGroupPtr& group,
                      c10d::ReduceOp op = c10d::ReduceOp::SUM);

// Replaces `tensor` in place with the group-local rank `root`'s values.
void BroadcastInPlace(torch::Tensor& tensor, const ProcessGroupPtr& group, int root = 0);

// The concatenation along `dim` of every rank's `tensor` (same shapes on all ranks), in group
// rank order. On a group of one rank: `tensor` itself (likewise below).
torch::Tensor AllGather(const torch::Tensor& tensor, const ProcessGroupPtr& group, int64_t dim);

// The SUM over the group of `tensor`, split along `dim` into group-size equal chunks; returns
// this rank's chunk. `tensor.size(dim)` must be divisible by the group size.
torch::Tensor ReduceScatter(const torch::Tensor& tensor, const ProcessGroupPtr& group, int64_t dim);

// This rank's chunk of `tensor` split along `dim` into group-size equal chunks (a contiguous
// copy).
torch::Tensor SplitAlongDim(const torch::Tensor& tensor, const ProcessGroupPtr& group, int64_t dim);

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_COLLECTIVES_H_
