// DenseLinear computes what torch::linear computes, forward and backward, whichever kernel runs.
#include "core/model/dense_linear.h"

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace gptb::model {
namespace {

struct Case {
  std::vector<int64_t> x_shape;
  int64_t out;
  bool bias;
  bool transposed_input;  // x a non-contiguous view
};

class DenseLinearTest : public ::testing::TestWithParam<Case> {};

TEST_P(DenseLinearTest, MatchesTorchLinearForwardAndBackward) {
  const Case& c = GetParam();
  torch::manual_seed(11);
  torch::Tensor base = torch::randn(c.x_shape, torch::kFloat64);
  if (c.transposed_input) base = base.transpose(0, 1).contiguous().transpose(0, 1);
  const int64_t in = c.x_shape.back();
  torch::Tensor w64 = torch::randn({c.out, in}, torch::kFloat64) * 0.1;
  torch::Tensor b64 = c.bias ? torch::randn({c.out}, torch::kFloat64) : torch::Tensor();

  auto leaf = [](const torch::Tensor& t) {
    return t.defined() ? t.to(torch::kFloat32).detach().requires_grad_(true) : t;
  };
  // The reference in fp64 (torch::linear), ours in fp32.
  torch::Tensor x = leaf(base), w = leaf(w64), b = leaf(b64);
  torch::Tensor rx = base.detach().clone().requires_grad_(true),
                rw = w64.clone().requires_grad_(true),
                rb = c.bias ? b64.clone().requires_grad_(true) : torch::Tensor();
  EXPECT_TRUE(DenseLinearUsesOneDnn(x, w)) << "this LibTorch lacks mkldnn::_linear_pointwise";
  torch::Tensor y = DenseLinear(x, w, b);
  torch::Tensor ry = torch::linear(rx, rw, rb);
  ASSERT_EQ(y.sizes(), ry.sizes());
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat64), ry, 1e-5, 1e-5))
      << (y.to(torch::kFloat64) - ry).abs().max();
  torch::Tensor g = torch::randn(ry.sizes(), torch::kFloat64);
  y.backward(g.to(torch::kFloat32));
  ry.backward(g);
  EXPECT_TRUE(torch::allclose(x.grad().to(torch::kFloat64), rx.grad(), 1e-5, 1e-4));
  EXPECT_TRUE(torch::allclose(w.grad().to(torch::kFloat64), rw.grad(), 1e-5, 1e-4))
      << (w.grad().to(torch::kFloat64) - rw.grad()).abs().max();
  if (c.bias) {
    EXPECT_TRUE(torch::allclose(b.grad().to(torch::kFloat64), rb.grad(), 1e-5, 1e-4));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseLinearTest,
                         ::testing::Values(Case{{7, 3, 16}, 24, true, false},
                                           Case{{7, 3, 16}, 24, false, true},
                                           Case{{33, 64}, 5, true, false},
                                           Case{{4, 1, 8}, 1, false, false}));

TEST(DenseLinear, OnlyTheInputGradientWhenWeightsAreFrozen) {
  torch::Tensor x = torch::randn({5, 8}).requires_grad_(true);
  torch::Tensor w = torch::randn({3, 8});
  DenseLinear(x, w).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(torch::allclose(x.grad(), w.sum(0).expand({5, 8})));
  EXPECT_FALSE(w.grad().defined());
}

TEST(DenseLinear, OtherDtypesFallBackToTorchLinear) {
  torch::Tensor x = torch::randn({4, 8}, torch::kFloat64);
  torch::Tensor w = torch::randn({2, 8}, torch::kFloat64);
  EXPECT_FALSE(DenseLinearUsesOneDnn(x, w));
  EXPECT_TRUE(torch::equal(DenseLinear(x, w), torch::linear(x, w)));
  torch::Tensor xb = x.to(torch::kBFloat16), wb = w.to(torch::kBFloat16);
  EXPECT_FALSE(DenseLinearUsesOneDnn(xb, wb));
  EXPECT_TRUE(torch::equal(DenseLinear(xb, wb), torch::linear(xb, wb)));
}

}  // namespace
}  // namespace gptb::model
