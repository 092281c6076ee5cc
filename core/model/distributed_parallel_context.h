#ifndef GPTB_CORE_MODEL_DISTRIBUTED_PARALLEL_CONTEXT_H_
#define GPTB_CORE_MODEL_DISTRIBUTED_PARALLEL_CONTEXT_H_

#include "core/model/parallel_context.h"
#include "core/parallel/process_group_collection.h"

namespace gptb::model {

// ParallelContext over a rank's c10d process groups (core/parallel's autograd functions).
class DistributedParallelContext : public ParallelContext {
 public:
  // `groups` must outlive this context. `seed` is Megatron's --seed; `dp_random_init` its
  // data_parallel_random_init (data-parallel replicas draw different dropout masks too).
  DistributedParallelContext(const parallel::ProcessGroupCollection* groups, uint64_t seed,
                             bool dp_random_init, torch::Device device);

  int size(Group group) const override;
  int rank(Group group) const override;
  torch::Tensor CopyToTensorParallelRegion(const torch::Tensor& x) override;
  torch::Tensor ReduceFromTensorParallelRegion(const torch::Tensor& x) override;
  torch::Tensor GatherFromTensorParallelRegion(const torch::Tensor& x) override;
  torch::Tensor AllGatherFirstDim(const torch::Tensor& x, Group group) override;
  torch::Tensor ReduceScatterFirstDim(const torch::Tensor& x, Group group) override;
  torch::Tensor ScatterToSequenceParallelRegion(const torch::Tensor& x) override;
  at::Generator* dropout_generator(RngStream stream) override;

 private:
  const parallel::ProcessGroupPtr& Get(Group group) const;
  const parallel::ProcessGroupCollection* groups_;
  at::Generator default_stream_;
  at::Generator tensor_parallel_stream_;
};

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_DISTRIBUTED_PARALLEL_CONTEXT_H_
