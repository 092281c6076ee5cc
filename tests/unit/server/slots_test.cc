#include "server/worker/slots.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::worker {
namespace {

TEST(SlotsTest, CpuSlotsShareTheGivenBudget) {
  auto slots = MakeSlots(2, 1 << 20, /*cuda_devices=*/0, /*device_memory_bytes=*/0);
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[1].device(), "cpu");
  EXPECT_EQ((*slots)[1].index(), 1);
  EXPECT_EQ((*slots)[1].memory_bytes(), 1 << 20);
}

TEST(SlotsTest, CudaSlotsAreOnePerDeviceWithTheDeviceMemory) {
  auto slots = MakeSlots(2, 0, /*cuda_devices=*/2, /*device_memory_bytes=*/80ll << 30);
  ASSERT_TRUE(slots.ok()) << slots.status();
  EXPECT_EQ((*slots)[0].device(), "cuda:0");
  EXPECT_EQ((*slots)[1].device(), "cuda:1");
  EXPECT_EQ((*slots)[1].memory_bytes(), 80ll << 30);
  EXPECT_EQ(MakeSlots(3, 0, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SlotsTest, EveryVisibleDeviceWithoutAnyIsARefusalAtStart) {
  // `--slots 0` means one slot per visible CUDA device; a worker seeing none refuses to start.
  auto slots = MakeSlots(0, 0, /*cuda_devices=*/0, 0);
  ASSERT_EQ(slots.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(slots.status().message()), ::testing::HasSubstr("--slots N"));
  EXPECT_EQ(MakeSlots(-1, 0, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gptb::worker
