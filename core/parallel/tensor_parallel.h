#ifndef GPTB_CORE_PARALLEL_TENSOR_PARALLEL_H_
#define GPTB_CORE_PARALLEL_TENSOR_PARALLEL_H_

#include <torch/torch.h>

#include "core/parallel/process_group_collection.h"

namespace gptb::parallel {

// Megatron's tensor-parallel communication (megatron/core/tensor_parallel/mappings.py) as
// autograd functions over a c10d group, normally the collection's tp group. Each is the identity
// on a group of one rank. Errors (a peer gone, a timeout) surface as c10::Error exceptions from
// forward or backward, like any LibTorch op: the caller of forward/backward maps them.

// Forward identity, backward all-reduce (SUM): the input of a column-parallel linear.
torch::Tensor CopyToTensorParallelRegion(const torch::Tensor& input, const ProcessGroupPtr& group);

// Forward all-reduce (SUM), backward identity: the output of a row-parallel linear.
torch::Tensor ReduceFromTensorParallelRegion(const torch::Tensor& input,
                                             const ProcessGroupPtr& group);

// Forward: this rank's chunk of the last dimension; backward: all-gather along the last dim.
torch::Tensor ScatterToTensorParallelRegion(const torch::Tensor& input,
                                            const ProcessGroupPtr& group);

// Forward: all-gather along the last dimension; backward: this rank's chunk of the gradient.
torch::Tensor GatherFromTensorParallelRegion(const torch::Tensor& input,
                                             const ProcessGroupPtr& group);

// Sequence parallelism (dimension 0 is the sequence).
// Forward: this rank's chunk of dim 0; backward: all-gather along dim 0.
torch::Tensor ScatterToSequenceParallelRegion(const torch::Tensor& input,
                                              const ProcessGroupPtr& group);

// Forward: all-gather along dim 0; backward: reduce-scatter along dim 0 when
// `tensor_parallel_output_grad` (the gathered tensor feeds tensor-parallel compute, so every
// rank holds a partial gradient), else this rank's chunk of the gradient.
torch::Tensor GatherFromSequenceParallelRegion(const torch::Tensor& input,
                                               const ProcessGroupPtr& group,
                                               bool tensor_parallel_output_grad = true);

// Forward: reduce-scatter (SUM) along dim 0; backward: all-gather along dim 0.
torch::Tensor ReduceScatterToSequenceParallelRegion(const torch::Tensor& input,
                                                    const ProcessGroupPtr& group);

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_TENSOR_PARALLEL_H_
