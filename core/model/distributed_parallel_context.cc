#include "core/model/distributed_parallel_context.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>

#include "core/parallel/tensor_parallel.h"

namespace gptb::model {
namespace {

at::Generator NewGenerator(torch::Device device, uint64_t seed) {
  at::Generator generator = device.is_cuda()
                                ? at::detail::getCUDAHooks().getNewGenerator(device.index())
                                : at::make_generator<at::CPUGeneratorImpl>(seed);
  generator.set_current_seed(seed);
  return generator;
}

}  // namespace

// The seeds Megatron's training gives its streams (training/initialize.py _set_random_seed, then
// model_parallel_cuda_manual_seed): seed + 100 * pipeline rank (+ 10 * data-parallel rank with
// data_parallel_random_init) for the default stream, that + 2718 + tensor-parallel rank for the
// model-parallel one. The masks are not Megatron's bit for bit (its CUDA Philox stream is not
// torch's CPU one); what they share is which ranks draw the same mask.
DistributedParallelContext::DistributedParallelContext(
    const parallel::ProcessGroupCollection* groups, uint64_t seed, bool dp_random_init,
    torch::Device device)
    : groups_(groups) {
  const uint64_t pp_rank = static_cast<uint64_t>(std::max(0, groups->rank(plan::GroupKind::kPp)));
  const uint64_t dp_rank = static_cast<uint64_t>(std::max(0, groups->rank(plan::GroupKind::kDp)));
  const uint64_t tp_rank = static_cast<uint64_t>(std::max(0, groups->rank(plan::GroupKind::kTp)));
  const uint64_t base = seed + 100 * pp_rank + (dp_random_init ? 10 * dp_rank : 0);
  default_stream_ = NewGenerator(device, base);
  tensor_parallel_stream_ = NewGenerator(device, base + 2718 + tp_rank);
}

at::Generator* DistributedParallelContext::dropout_generator(RngStream stream) {
  return stream == RngStream::kDefault ? &default_stream_ : &tensor_parallel_stream_;
}

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
