#include "core/parallel/pipeline_p2p.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/parallel/torch_status.h"

namespace gptb::parallel {
namespace {

// Separate tags for the two directions: a rank may have a forward and a backward message in
// flight to the same neighbour (pp = 2) and they must not be matched against each other.
constexpr int kForwardTag = 1;
constexpr int kBackwardTag = 2;

absl::Status CheckPeer(const ProcessGroupPtr& group, int peer, const char* role) {
  if (!group) return absl::InvalidArgumentError("point-to-point transfer on a null group");
  if (peer < 0 || peer >= group->getSize() || peer == group->getRank()) {
    return absl::InvalidArgumentError(
        absl::StrCat(role, " rank ", peer, " is not another rank of the group (size ",
                     group->getSize(), ", this rank ", group->getRank(), ")"));
  }
  return absl::OkStatus();
}

std::string ShapeText(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int Next(const ProcessGroupPtr& pp) { return (pp->getRank() + 1) % pp->getSize(); }
int Prev(const ProcessGroupPtr& pp) { return (pp->getRank() + pp->getSize() - 1) % pp->getSize(); }

}  // namespace

absl::Status Send(const torch::Tensor& tensor, int dst, const ProcessGroupPtr& group, int tag) {
  if (absl::Status s = CheckPeer(group, dst, "destination"); !s.ok()) return s;
  return CallTorch(absl::StrCat("sending ", ShapeText(tensor.sizes()), " to group rank ", dst),
                   [&] {
                     std::vector<at::Tensor> tensors = {tensor.contiguous()};
                     group->send(tensors, dst, tag)->wait();
                   });
}

absl::StatusOr<torch::Tensor> Recv(const std::vector<int64_t>& shape,
                                   const torch::TensorOptions& options, int src,
                                   const ProcessGroupPtr& group, int tag) {
  if (absl::Status s = CheckPeer(group, src, "source"); !s.ok()) return s;
  return CallTorchOr(absl::StrCat("receiving ", ShapeText(shape), " from group rank ", src), [&] {
    std::vector<at::Tensor> tensors = {torch::empty(shape, options)};
    group->recv(tensors, src, tag)->wait();
    return tensors[0];
  });
}

absl::StatusOr<torch::Tensor> SendRecv(const torch::Tensor& send, int dst,
                                       const std::vector<int64_t>& recv_shape,
                                       const torch::TensorOptions& recv_options, int src,
                                       const ProcessGroupPtr& group, int tag) {
  if (absl::Status s = CheckPeer(group, dst, "destination"); !s.ok()) return s;
  if (absl::Status s = CheckPeer(group, src, "source"); !s.ok()) return s;
  return CallTorchOr(
      absl::StrCat("exchanging with group ranks ", dst, " (send) and ", src, " (receive)"), [&] {
        std::vector<at::Tensor> out = {send.contiguous()};
        std::vector<at::Tensor> in = {torch::empty(recv_shape, recv_options)};
        auto send_work = group->send(out, dst, tag);
        auto recv_work = group->recv(in, src, tag);
        recv_work->wait();
        send_work->wait();
        return in[0];
      });
}

absl::Status SendForward(const torch::Tensor& output, const ProcessGroupPtr& pp) {
  if (!pp || pp->getSize() < 2) {
    return absl::InvalidArgumentError("SendForward needs a pipeline group of 2 or more ranks");
  }
  return Send(output, Next(pp), pp, kForwardTag);
}

absl::StatusOr<torch::Tensor> RecvForward(const std::vector<int64_t>& shape,
                                          const torch::TensorOptions& options,
                                          const ProcessGroupPtr& pp) {
  if (!pp || pp->getSize() < 2) {
    return absl::InvalidArgumentError("RecvForward needs a pipeline group of 2 or more ranks");
  }
  return Recv(shape, options, Prev(pp), pp, kForwardTag);
}

absl::Status SendBackward(const torch::Tensor& input_grad, const ProcessGroupPtr& pp) {
  if (!pp || pp->getSize() < 2) {
    return absl::InvalidArgumentError("SendBackward needs a pipeline group of 2 or more ranks");
  }
  return Send(input_grad, Prev(pp), pp, kBackwardTag);
}

absl::StatusOr<torch::Tensor> RecvBackward(const std::vector<int64_t>& shape,
                                           const torch::TensorOptions& options,
                                           const ProcessGroupPtr& pp) {
  if (!pp || pp->getSize() < 2) {
    return absl::InvalidArgumentError("RecvBackward needs a pipeline group of 2 or more ranks");
  }
  return Recv(shape, options, Next(pp), pp, kBackwardTag);
}

}  // namespace gptb::parallel
