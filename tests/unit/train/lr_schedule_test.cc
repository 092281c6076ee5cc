// The learning-rate schedule against Megatron's OptimizerParamScheduler.get_lr formulas.
#include "core/train/lr_schedule.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::train {
namespace {

gptbuilder::v1::OptimizerConfig Lr(double lr, double min_lr = 0.0) {
  gptbuilder::v1::OptimizerConfig o;
  o.set_lr(lr);
  o.set_min_lr(min_lr);
  return o;
}

gptbuilder::v1::SchedulerConfig Style(const std::string& style, int64_t warmup, int64_t decay = -1,
                                      double init = 0.0) {
  gptbuilder::v1::SchedulerConfig s;
  s.set_lr_decay_style(style);
  s.set_lr_warmup_iters(warmup);
  if (decay >= 0) s.set_lr_decay_iters(decay);
  s.set_lr_warmup_init(init);
  return s;
}

TEST(LearningRateScheduleTest, ConstantWithWarmupStartsAtTheInitialValue) {
  auto s = LearningRateSchedule::Create(Lr(1e-3), Style("constant", 4, -1, 1e-4));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->LearningRate(0), 1e-4);  // Megatron's first step uses the warmup init
  EXPECT_DOUBLE_EQ(s->LearningRate(2), 1e-4 + (1e-3 - 1e-4) * 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(4), 1e-3);
  EXPECT_DOUBLE_EQ(s->LearningRate(1000), 1e-3);
  auto plain = LearningRateSchedule::Create(Lr(3e-4), gptbuilder::v1::SchedulerConfig());
  ASSERT_TRUE(plain.ok());
  EXPECT_DOUBLE_EQ(plain->LearningRate(0), 3e-4);
}

TEST(LearningRateScheduleTest, LinearAndCosineDecayToTheMinimum) {
  auto linear = LearningRateSchedule::Create(Lr(1.0, 0.1), Style("linear", 10, 110));
  ASSERT_TRUE(linear.ok());
  EXPECT_DOUBLE_EQ(linear->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(linear->LearningRate(10), 1.0);
  EXPECT_DOUBLE_EQ(linear->LearningRate(60), 0.1 + 0.5 * 0.9);
  EXPECT_DOUBLE_EQ(linear->LearningRate(110), 0.1);
  EXPECT_DOUBLE_EQ(linear->LearningRate(500), 0.1);
  auto cosine = LearningRateSchedule::Create(Lr(1.0, 0.1), Style("cosine", 0, 100));
  ASSERT_TRUE(cosine.ok());
  EXPECT_DOUBLE_EQ(cosine->LearningRate(0), 1.0);
  EXPECT_NEAR(cosine->LearningRate(25), 0.1 + 0.9 * 0.5 * (std::cos(M_PI * 0.25) + 1), 1e-15);
  EXPECT_NEAR(cosine->LearningRate(50), 0.55, 1e-15);
  EXPECT_DOUBLE_EQ(cosine->LearningRate(101), 0.1);
}

TEST(LearningRateScheduleTest, InverseSquareRoot) {
  auto s = LearningRateSchedule::Create(Lr(1.0, 0.05), Style("inverse-square-root", 4));
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->LearningRate(4), 1.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(16), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(100000), 0.05);
}

TEST(LearningRateScheduleTest, RejectsBadSettingsWithTheirField) {
  struct Case {
    gptbuilder::v1::OptimizerConfig o;
    gptbuilder::v1::SchedulerConfig s;
    const char* field;
  };
  std::vector<Case> cases = {
      {gptbuilder::v1::OptimizerConfig(), Style("constant", 0), "optimizer.lr"},
      {Lr(-1.0), Style("constant", 0), "optimizer.lr"},
      {Lr(1.0, 2.0), Style("constant", 0), "optimizer.min_lr"},
      {Lr(1.0), Style("step", 0), "scheduler.lr_decay_style"},
      {Lr(1.0), Style("cosine", 0), "scheduler.lr_decay_iters"},
      {Lr(1.0), Style("linear", 10, 10), "scheduler.lr_decay_iters"},
      {Lr(1.0), Style("constant", -1), "scheduler.lr_warmup_iters"},
  };
  for (const Case& c : cases) {
    auto s = LearningRateSchedule::Create(c.o, c.s);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), ::testing::StartsWith(c.field));
  }
}

}  // namespace
}  // namespace gptb::train
