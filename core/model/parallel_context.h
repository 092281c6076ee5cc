#ifndef GPTB_CORE_MODEL_PARALLEL_CONTEXT_H_
#define GPTB_CORE_MODEL_PARALLEL_CONTEXT_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

namespace gptb::model {

// The collectives a stage's forward needs, as autograd-aware operations, so the model code does
// not depend on how the process groups were made. Every op is the identity over a group of
// size 1. The real implementation runs over core/parallel's process groups; tests of a single
// rank use LocalParallelContext.
class ParallelContext {
 public:
  enum class Group { kTensor, kTensorExpert };  // "tp" and "tp_ep" (expert grid tp-ep)

  virtual ~ParallelContext() = default;

  virtual int size(Group group) const = 0;
  virtual int rank(Group group) const = 0;

  // Megatron's mappings (tensor_parallel/mappings.py):
  // forward identity, backward all-reduce over tp (input of a column-parallel linear).
  virtual torch::Tensor CopyToTensorParallelRegion(const torch::Tensor& x) = 0;
  // forward all-reduce over tp, backward identity (output of a row-parallel linear).
  virtual torch::Tensor ReduceFromTensorParallelRegion(const torch::Tensor& x) = 0;
  // forward all-gather along the last dim over tp, backward split (gather_output).
  virtual torch::Tensor GatherFromTensorParallelRegion(const torch::Tensor& x) = 0;
  // forward all-gather along dim 0 over `group`, backward reduce-scatter.
  virtual torch::Tensor AllGatherFirstDim(const torch::Tensor& x, Group group) = 0;
  // forward reduce-scatter along dim 0 over `group`, backward all-gather.
  virtual torch::Tensor ReduceScatterFirstDim(const torch::Tensor& x, Group group) = 0;
  // forward this rank's chunk of dim 0 over tp, backward all-gather along dim 0
  // (scatter_to_sequence_parallel_region).
  virtual torch::Tensor ScatterToSequenceParallelRegion(const torch::Tensor& x) = 0;

  // Megatron's dropout random streams (tensor_parallel/random.py, model_parallel_cuda_manual_seed):
  // kDefault is the same on every tensor-parallel rank of a pipeline stage, for dropout of
  // activations each of them holds a copy of (embedding and hidden dropout without sequence
  // parallelism), so the copies stay identical; kTensorParallel differs per tensor-parallel rank,
  // for activations split across them (attention dropout on each rank's heads, and every
  // dropout of the block and the embedding under sequence parallelism, where each rank holds its
  // own part of the sequence). nullptr: torch's default generator (a single rank).
  enum class RngStream { kDefault, kTensorParallel };
  virtual at::Generator* dropout_generator(RngStream stream) = 0;
};

// A single rank: every group has size 1 and every op is the identity.
class LocalParallelContext : public ParallelContext {
 public:
  int size(Group) const override { return 1; }
  int rank(Group) const override { return 0; }
  torch::Tensor CopyToTensorParallelRegion(const torch::Tensor& x) override { return x; }
  torch::Tensor ReduceFromTensorParallelRegion(const torch::Tensor& x) override { return x; }
  torch::Tensor GatherFromTensorParallelRegion(const torch::Tensor& x) override { return x; }
  torch::Tensor AllGatherFirstDim(const torch::Tensor& x, Group) override { return x; }
  torch::Tensor ReduceScatterFirstDim(const torch::Tensor& x, Group) override { return x; }
  torch::Tensor ScatterToSequenceParallelRegion(const torch::Tensor& x) override { return x; }
  at::Generator* dropout_generator(RngStream) override { return nullptr; }
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_PARALLEL_CONTEXT_H_
