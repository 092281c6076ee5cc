#include "core/model/dense_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <optional>
#include <string_view>

namespace gptb::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// mkldnn::_linear_pointwise(Tensor X, Tensor W, Tensor? B, str attr, Scalar?[] scalars,
// str? algorithm) -> Tensor: X W^T + B, then the pointwise `attr` ("none" here). Called boxed:
// the unboxed C++ signature the dispatcher checks differs between LibTorch builds (the typed
// handle of one build threw "Tried to access or call an operator with a wrong signature").
// The op, looked up once; null when this LibTorch was built without oneDNN.
const c10::OperatorHandle* Op() {
  static const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
  return op.has_value() ? &*op : nullptr;
}

// a [m, k] times b^T, b [n, k]: [m, n]. Strided operands (transposed views) are fine.
at::Tensor MatmulNt(const at::Tensor& a, const at::Tensor& b, const at::Tensor& bias = {}) {
  torch::jit::Stack stack;
  stack.reserve(6);
  stack.emplace_back(a);
  stack.emplace_back(b);
  stack.emplace_back(bias.defined() ? c10::IValue(bias) : c10::IValue());
  stack.emplace_back(std::string("none"));
  stack.emplace_back(c10::impl::GenericList(c10::OptionalType::create(c10::NumberType::get())));
  stack.emplace_back(c10::IValue());  // no algorithm
  Op()->callBoxed(&stack);
  return stack.back().toTensor();
}

// x W^T; the gradients of x and W (of the bias, when there is one, in BiasFunction below).
struct OneDnnLinearFunction : torch::autograd::Function<OneDnnLinearFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return MatmulNt(x.reshape({-1, x.size(-1)}), weight).view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor g = grads[0].reshape({-1, grads[0].size(-1)});
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) dx = MatmulNt(g, weight.t()).view(x.sizes());           // g W
    if (ctx->needs_input_grad(1)) dw = MatmulNt(g.t(), x.reshape({-1, x.size(-1)}).t());  // g^T x
    return {dx, dw};
  }
};

// The same with a bias added in the matmul's epilogue.
struct OneDnnLinearBiasFunction : torch::autograd::Function<OneDnnLinearBiasFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return MatmulNt(x.reshape({-1, x.size(-1)}), weight, bias).view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out = OneDnnLinearFunction::backward(ctx, grads);
    torch::Tensor db;
    if (ctx->needs_input_grad(2)) db = grads[0].reshape({-1, grads[0].size(-1)}).sum(0);
    out.push_back(db);
    return out;
  }
};

}  // namespace

bool DenseLinearUsesOneDnn(const torch::Tensor& x, const torch::Tensor& weight) {
  return Op() != nullptr && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
         weight.scalar_type() == torch::kFloat32 && weight.dim() == 2 && x.dim() >= 1 &&
         x.numel() > 0 && !x.is_sparse() && !weight.is_sparse();
}

torch::Tensor DenseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias) {
  if (!DenseLinearUsesOneDnn(x, weight) ||
      (bias.defined() && bias.scalar_type() != torch::kFloat32)) {
    return torch::linear(x, weight, bias);
  }
  return bias.defined() ? OneDnnLinearBiasFunction::apply(x, weight, bias)
                        : OneDnnLinearFunction::apply(x, weight);
}

}  // namespace gptb::model
