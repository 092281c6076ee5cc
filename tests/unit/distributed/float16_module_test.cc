#include "core/distributed/float16_module.h"

#include <gtest/gtest.h>

namespace gptb::distributed {
namespace {

struct Router : torch::nn::Module {
  Router() {
    weight = register_parameter("weight", torch::randn({4, 3}));
    expert_bias = register_buffer("expert_bias", torch::zeros({4}));
    local_tokens_per_expert = register_buffer("local_tokens_per_expert", torch::zeros({4}));
  }
  torch::Tensor weight, expert_bias, local_tokens_per_expert;
};

struct Chunk : torch::nn::Module {
  Chunk() {
    linear = register_module("linear", torch::nn::Linear(3, 3));
    router = register_module("router", std::make_shared<Router>());
    positions = register_buffer("positions", torch::arange(5));  // integer: never cast
  }
  torch::nn::Linear linear{nullptr};
  std::shared_ptr<Router> router;
  torch::Tensor positions;
};

std::vector<std::string> Names(torch::nn::Module& m) {
  std::vector<std::string> names;
  for (auto& item : m.named_parameters()) names.push_back(item.key());
  for (auto& item : m.named_buffers()) names.push_back(item.key());
  return names;
}

TEST(Float16ModuleTest, CastsFloatingTensorsAndKeepsExpertBiasFp32) {
  for (torch::Dtype dtype : {torch::kBFloat16, torch::kFloat16}) {
    Chunk chunk;
    const std::vector<std::string> names_before = Names(chunk);
    const torch::Tensor weight_before = chunk.linear->weight.detach().clone();
    chunk.router->expert_bias.fill_(0.125);
    absl::StatusOr<Float16Module> f16 = Float16Module::Wrap(chunk, dtype, true, true);
    ASSERT_TRUE(f16.ok()) << f16.status();
    EXPECT_EQ(Names(chunk), names_before);
    for (auto& item : chunk.named_parameters()) {
      EXPECT_EQ(item.value().scalar_type(), dtype) << item.key();
      EXPECT_TRUE(item.value().requires_grad()) << item.key();
    }
    // The module's own handles see the cast (in place, not a copy).
    EXPECT_EQ(chunk.linear->weight.scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(chunk.linear->weight, weight_before.to(dtype)));
    EXPECT_EQ(chunk.router->expert_bias.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(chunk.router->expert_bias, torch::full({4}, 0.125)));
    EXPECT_EQ(chunk.router->local_tokens_per_expert.scalar_type(), dtype);
    EXPECT_EQ(chunk.positions.scalar_type(), torch::kLong);
  }
}

TEST(Float16ModuleTest, ExpertBiasAlreadyInHalfIsRestoredToFp32) {
  Router router;
  router.expert_bias.set_data(router.expert_bias.to(torch::kBFloat16));
  ASSERT_TRUE(Float16Module::Wrap(router, torch::kBFloat16, true, true).ok());
  EXPECT_EQ(router.expert_bias.scalar_type(), torch::kFloat32);
}

TEST(Float16ModuleTest, InputAndOutputCastsDependOnStage) {
  Chunk chunk;
  absl::StatusOr<Float16Module> first = Float16Module::Wrap(chunk, torch::kBFloat16, true, false);
  absl::StatusOr<Float16Module> last = Float16Module::Wrap(chunk, torch::kBFloat16, false, true);
  absl::StatusOr<Float16Module> last_half =
      Float16Module::Wrap(chunk, torch::kBFloat16, false, true, /*fp32_output=*/false);
  ASSERT_TRUE(first.ok() && last.ok() && last_half.ok());
  const torch::Tensor fp32 = torch::randn({2, 3});
  const torch::Tensor tokens = torch::arange(6).view({2, 3});
  const torch::Tensor bf16 = fp32.to(torch::kBFloat16);
  EXPECT_EQ(first->Input(fp32).scalar_type(), torch::kBFloat16);
  EXPECT_EQ(first->Input(tokens).scalar_type(), torch::kLong);
  EXPECT_EQ(last->Input(fp32).scalar_type(), torch::kFloat32);     // not the first stage
  EXPECT_EQ(first->Output(bf16).scalar_type(), torch::kBFloat16);  // not the last stage
  EXPECT_EQ(last->Output(bf16).scalar_type(), torch::kFloat32);
  EXPECT_EQ(last_half->Output(bf16).scalar_type(), torch::kBFloat16);
}

TEST(Float16ModuleTest, RejectsFullPrecisionTarget) {
  Chunk chunk;
  EXPECT_EQ(Float16Module::Wrap(chunk, torch::kFloat32, true, true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chunk.linear->weight.scalar_type(), torch::kFloat32);
}

}  // namespace
}  // namespace gptb::distributed
