#ifndef GPTB_CORE_PARALLEL_PIPELINE_P2P_H_
#define GPTB_CORE_PARALLEL_PIPELINE_P2P_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/parallel/process_group_collection.h"

namespace gptb::parallel {

// Blocking point-to-point transfers between ranks of a group (group-local ranks), for pipeline
// activations and their gradients. The receiver knows the shape and options (dtype, device) of
// what it receives, as in Megatron's p2p_communication with a fixed tensor shape. Tags must match
// between sender and receiver. Failures (peer gone, group timeout) are statuses:
// DEADLINE_EXCEEDED on a timeout, UNAVAILABLE when the peer closed its connection, INTERNAL
// otherwise.

absl::Status Send(const torch::Tensor& tensor, int dst, const ProcessGroupPtr& group, int tag = 0);

absl::StatusOr<torch::Tensor> Recv(const std::vector<int64_t>& shape,
                                   const torch::TensorOptions& options, int src,
                                   const ProcessGroupPtr& group, int tag = 0);

// Posts the send and the receive before waiting for either, so two ranks can exchange tensors
// (each sending to the other) without deadlock. Returns the received tensor.
absl::StatusOr<torch::Tensor> SendRecv(const torch::Tensor& send, int dst,
                                       const std::vector<int64_t>& recv_shape,
                                       const torch::TensorOptions& recv_options, int src,
                                       const ProcessGroupPtr& group, int tag = 0);

// Megatron's pipeline neighbours on the pp group, which is a ring (the last stage's next is the
// first stage, as the interleaved schedule needs). Group of one rank: INVALID_ARGUMENT.
// Forward activations go to the next stage; gradients go back to the previous one.
absl::Status SendForward(const torch::Tensor& output, const ProcessGroupPtr& pp);
absl::StatusOr<torch::Tensor> RecvForward(const std::vector<int64_t>& shape,
                                          const torch::TensorOptions& options,
                                          const ProcessGroupPtr& pp);
absl::Status SendBackward(const torch::Tensor& input_grad, const ProcessGroupPtr& pp);
absl::StatusOr<torch::Tensor> RecvBackward(const std::vector<int64_t>& shape,
                                           const torch::TensorOptions& options,
                                           const ProcessGroupPtr& pp);

}  // namespace gptb::parallel

#endif  // GPTB_CORE_PARALLEL_PIPELINE_P2P_H_
