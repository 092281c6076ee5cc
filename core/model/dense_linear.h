#ifndef GPTB_CORE_MODEL_DENSE_LINEAR_H_
#define GPTB_CORE_MODEL_DENSE_LINEAR_H_

#include <torch/torch.h>

namespace gptb::model {

// y = x W^T (+ b) with autograd, what torch::linear computes, for the model's linear layers:
// x [..., in], W [out, in], b [out] or undefined.
//
// fp32 on the CPU goes through oneDNN's matmul (LibTorch's mkldnn::_linear_pointwise, the op
// torch.compile emits on CPUs) forward and backward, instead of torch::linear's MKL sgemm: on
// AMD CPUs MKL runs its AVX2 code path while oneDNN uses AVX-512, about twice the rate for the
// shapes of a train step (measured in bench/train). Results agree with torch::linear to fp32
// rounding (summation order). Anything else (other dtypes or devices, a LibTorch without the op)
// is torch::linear.
torch::Tensor DenseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias = {});

// Whether DenseLinear takes the oneDNN path for these operands (for tests and benchmarks).
bool DenseLinearUsesOneDnn(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace gptb::model

#endif  // GPTB_CORE_MODEL_DENSE_LINEAR_H_
