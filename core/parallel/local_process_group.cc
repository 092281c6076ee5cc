#include "core/parallel/local_process_group.h"

#include <c10/util/Exception.h>

namespace gptb::parallel {
namespace {

// A Work that is complete when created.
class CompletedWork : public c10d::Work {
 public:
  explicit CompletedWork(c10d::OpType op, std::vector<at::Tensor> result = {})
      : c10d::Work(/*rank=*/0, op), result_(std::move(result)) {
    finish();
  }
  std::vector<at::Tensor> result() override { return result_; }

 private:
  std::vector<at::Tensor> result_;
};

c10::intrusive_ptr<c10d::Work> Done(c10d::OpType op, std::vector<at::Tensor> result = {}) {
  return c10::make_intrusive<CompletedWork>(op, std::move(result));
}

// Copies `from` into `to` unless they already share memory.
void CopyInto(at::Tensor& to, const at::Tensor& from) {
  TORCH_CHECK(to.numel() == from.numel(), "local process group: output has ", to.numel(),
              " elements, input has ", from.numel());
  if (!to.is_same(from)) to.view_as(from).copy_(from);
}

}  // namespace

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::broadcast(std::vector<at::Tensor>& tensors,
                                                            const c10d::BroadcastOptions& opts) {
  TORCH_CHECK(opts.rootRank == 0, "local process group: broadcast root must be 0");
  return Done(c10d::OpType::BROADCAST, tensors);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::allreduce(std::vector<at::Tensor>& tensors,
                                                            const c10d::AllreduceOptions&) {
  // The sum, average, min, max and product of a single value are that value.
  return Done(c10d::OpType::ALLREDUCE, tensors);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::allreduce_coalesced(
    std::vector<at::Tensor>& tensors, const c10d::AllreduceCoalescedOptions&) {
  return Done(c10d::OpType::ALLREDUCE_COALESCED, tensors);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::reduce(std::vector<at::Tensor>& tensors,
                                                         const c10d::ReduceOptions& opts) {
  TORCH_CHECK(opts.rootRank == 0, "local process group: reduce root must be 0");
  return Done(c10d::OpType::REDUCE, tensors);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions&) {
  TORCH_CHECK(outputs.size() == inputs.size(),
              "local process group: allgather needs one output "
              "list per input");
  for (size_t i = 0; i < inputs.size(); ++i) {
    TORCH_CHECK(outputs[i].size() == 1,
                "local process group: allgather output list must have "
                "one tensor");
    CopyInto(outputs[i][0], inputs[i]);
  }
  return Done(c10d::OpType::ALLGATHER);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::all_gather_single(at::Tensor& output,
                                                                    at::Tensor& input,
                                                                    const c10d::AllgatherOptions&) {
  CopyInto(output, input);
  return Done(c10d::OpType::_ALLGATHER_BASE, {output});
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::allgather_coalesced(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& opts) {
  allgather(outputs, inputs, opts);
  return Done(c10d::OpType::ALLGATHER_COALESCED);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::gather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::GatherOptions& opts) {
  TORCH_CHECK(opts.rootRank == 0, "local process group: gather root must be 0");
  TORCH_CHECK(outputs.size() == 1 && outputs[0].size() == 1 && inputs.size() == 1,
              "local process group: gather takes one input and one output");
  CopyInto(outputs[0][0], inputs[0]);
  return Done(c10d::OpType::GATHER);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ScatterOptions& opts) {
  TORCH_CHECK(opts.rootRank == 0, "local process group: scatter root must be 0");
  TORCH_CHECK(outputs.size() == 1 && inputs.size() == 1 && inputs[0].size() == 1,
              "local process group: scatter takes one input and one output");
  CopyInto(outputs[0], inputs[0][0]);
  return Done(c10d::OpType::SCATTER);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions&) {
  TORCH_CHECK(outputs.size() == inputs.size(),
              "local process group: reduce_scatter needs one "
              "input list per output");
  for (size_t i = 0; i < outputs.size(); ++i) {
    TORCH_CHECK(inputs[i].size() == 1,
                "local process group: reduce_scatter input list must "
                "have one tensor");
    CopyInto(outputs[i], inputs[i][0]);
  }
  return Done(c10d::OpType::REDUCE_SCATTER, outputs);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::reduce_scatter_single(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions&) {
  CopyInto(output, input);
  return Done(c10d::OpType::_REDUCE_SCATTER_BASE, {output});
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::all_to_all_single(at::Tensor& output,
                                                                    at::Tensor& input,
                                                                    std::vector<int64_t>&,
                                                                    std::vector<int64_t>&,
                                                                    const c10d::AllToAllOptions&) {
  CopyInto(output, input);
  return Done(c10d::OpType::ALLTOALL_BASE, {output});
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::alltoall(std::vector<at::Tensor>& outputs,
                                                           std::vector<at::Tensor>& inputs,
                                                           const c10d::AllToAllOptions&) {
  TORCH_CHECK(outputs.size() == 1 && inputs.size() == 1,
              "local process group: alltoall takes one input and one output");
  CopyInto(outputs[0], inputs[0]);
  return Done(c10d::OpType::ALLTOALL, outputs);
}

c10::intrusive_ptr<c10d::Work> LocalProcessGroup::barrier(const c10d::BarrierOptions&) {
  return Done(c10d::OpType::BARRIER);
}

}  // namespace gptb::parallel
