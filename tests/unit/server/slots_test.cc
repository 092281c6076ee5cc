// A worker's slot budgets come from the memory the process is given -- its cgroup limit, else
// the machine's -- not the whole host (issue 13: two workers on one 23.5 GiB host advertised
// 4 x 11.8 GiB and admitted a 30 GiB model).

#include "server/worker/slots.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::worker {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kGiB = int64_t{1} << 30;

std::function<std::string(const std::string&)> Files(std::map<std::string, std::string> files) {
  return [files](const std::string& path) {
    auto it = files.find(path);
    return it == files.end() ? std::string() : it->second;
  };
}

TEST(Slots, ACgroupV2LimitAnywhereAboveTheProcessCaps) {
  const MemoryLimit limit =
      ProcessMemoryLimit("0::/kubepods/pod1/worker\n",
                         Files({{"/sys/fs/cgroup/kubepods/pod1/worker/memory.max", "max\n"},
                                {"/sys/fs/cgroup/kubepods/pod1/memory.max", "17179869184\n"},
                                {"/sys/fs/cgroup/kubepods/memory.max", "34359738368\n"}}),
                         256 * kGiB);
  EXPECT_EQ(limit.bytes, 16 * kGiB);
  EXPECT_THAT(limit.source, HasSubstr("/sys/fs/cgroup/kubepods/pod1/memory.max"));
}

TEST(Slots, ACgroupV1LimitCaps) {
  const MemoryLimit limit = ProcessMemoryLimit(
      "4:memory:/docker/abc\n3:cpuset:/\n",
      Files({{"/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "8589934592"},
             {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712"}}),
      64 * kGiB);
  EXPECT_EQ(limit.bytes, 8 * kGiB);
}

TEST(Slots, WithoutALimitTheMachinesMemoryCounts) {
  const MemoryLimit limit = ProcessMemoryLimit(
      "4:memory:/\n0::/\n",
      Files({{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712"},
             {"/sys/fs/cgroup/memory.max", "max"}}),
      24 * kGiB);
  EXPECT_EQ(limit.bytes, 24 * kGiB);
  EXPECT_THAT(limit.source, HasSubstr("MemTotal"));
}

TEST(Slots, TheBudgetIsTheProcessMemoryOverTheSlotsUnlessAFlagSetsIt) {
  absl::StatusOr<std::vector<gptbuilder::v1::Slot>> slots = MakeSlots(2, 0, 0, 0, 16 * kGiB);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[0].memory_bytes(), 8 * kGiB);
  slots = MakeSlots(2, 3 * kGiB, 0, 0, 16 * kGiB);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[1].memory_bytes(), 3 * kGiB);
}

TEST(SlotsTest, CpuSlotsShareTheGivenBudget) {
  auto slots = MakeSlots(2, 1 << 20, /*cuda_devices=*/0, /*device_memory_bytes=*/0, 0);
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

// Issue 15: ranks x threads <= cores by default; 2 ranks x 2 threads on 2 cores ran 2x slower.
TEST(SlotsTest, ThreadsPerRankShareTheCpusUnlessGiven) {
  EXPECT_EQ(*ThreadsPerRank(0, /*slots=*/2, /*cpus=*/8), 4);
  EXPECT_EQ(*ThreadsPerRank(0, 3, 8), 2);  // rounded down: 6 of 8 cores busy, none shared
  EXPECT_EQ(*ThreadsPerRank(0, 4, 2), 1);  // more ranks than cores: one each, never 0
  EXPECT_EQ(*ThreadsPerRank(3, 4, 4), 3);  // the flag wins (3 x 4 ranks: the user's choice)
  EXPECT_EQ(ThreadsPerRank(-1, 2, 8).status().code(), absl::StatusCode::kInvalidArgument);
  // Above the CPUs the process may use: refused, naming the flag and the bound.
  const absl::Status too_many = ThreadsPerRank(9, 2, 8).status();
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.message()), HasSubstr("--threads-per-rank"));
  EXPECT_THAT(std::string(too_many.message()), HasSubstr("at most the 8 CPUs"));
  EXPECT_GE(ProcessCpuCount(), 1);
}

TEST(SlotsTest, CpuQuotaOfTheCgroupAndItsAncestors) {
  std::map<std::string, std::string> files = {
      {"/sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000\n"},
      {"/sys/fs/cgroup/kubepods/cpu.max", "250000 100000\n"},  // 2.5 CPUs: 3
  };
  auto reader = [&](const std::string& path) {
    auto it = files.find(path);
    return it == files.end() ? std::string() : it->second;
  };
  EXPECT_EQ(CgroupCpuQuota("0::/kubepods/pod1\n", reader), 3);
  files["/sys/fs/cgroup/kubepods/pod1/cpu.max"] = "100000 100000";
  EXPECT_EQ(CgroupCpuQuota("0::/kubepods/pod1\n", reader), 1);
  EXPECT_EQ(CgroupCpuQuota("0::/elsewhere\n", reader), 0);  // no quota
  files["/sys/fs/cgroup/cpu/a/cpu.cfs_quota_us"] = "400000";
  files["/sys/fs/cgroup/cpu/a/cpu.cfs_period_us"] = "100000";
  EXPECT_EQ(CgroupCpuQuota("4:cpu,cpuacct:/a\n", reader), 4);
  files["/sys/fs/cgroup/cpu/a/cpu.cfs_quota_us"] = "-1";
  EXPECT_EQ(CgroupCpuQuota("4:cpu,cpuacct:/a\n", reader), 0);
}

}  // namespace
}  // namespace gptb::worker
