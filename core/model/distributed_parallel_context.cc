#include "core/model/distributed_parallel_context.h"

#include "core/parallel/tensor_parallel.h"

namespace gptb::model {

DistributedParallelContext::DistributedParallelContext(
    const parallel::ProcessGroupCollection* groups)
    : groups_(groups) {}

const parallel::ProcessGroupPtr& DistributedParallelContext::Get(Group group) const {
  return groups_->group(group == Group::kTensor ? plan::GroupKind::kTp : plan::GroupKind::kTpEp);
}

int DistributedParallelContext::size(Group group) const {
  return groups_->size(group == Group::kTensor ? plan::GroupKind::kTp : plan::GroupKind::kTpEp);
}

int DistributedParallelContext::rank(Group group) const {
  return groups_->rank(group == Group::kTensor ? plan::GroupKind::kTp : plan::GroupKind::kTpEp);
}

torch::Tensor DistributedParallelContext::CopyToTensorParallelRegion(const torch::Tensor& x) {
  return parallel::CopyToTensorParallelRegion(x, Get(Group::kTensor));
}

torch::Tensor DistributedParallelContext::ReduceFromTensorParallelRegion(const torch::Tensor& x) {
  return parallel::ReduceFromTensorParallelRegion(x, Get(Group::kTensor));
}

torch::Tensor DistributedParallelContext::GatherFromTensorParallelRegion(const torch::Tensor& x) {
  return parallel::GatherFromTensorParallelRegion(x, Get(Group::kTensor));
}

torch::Tensor DistributedParallelContext::AllGatherFirstDim(const torch::Tensor& x, Group group) {
  return parallel::GatherFromSequenceParallelRegion(x, Get(group),
                                                    /*tensor_parallel_output_grad=*/true);
}

torch::Tensor DistributedParallelContext::ReduceScatterFirstDim(const torch::Tensor& x,
                                                                Group group) {
  return parallel::ReduceScatterToSequenceParallelRegion(x, Get(group));
}

torch::Tensor DistributedParallelContext::ScatterToSequenceParallelRegion(const torch::Tensor& x) {
  return parallel::ScatterToSequenceParallelRegion(x, Get(Group::kTensor));
}

}  // namespace gptb::model
