#include "server/coordinator/placement.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "rpc/status_details.h"

namespace gptb::coordinator {
namespace {

WorkerCapacity Worker(const std::string& name, int slots, int64_t budget) {
  WorkerCapacity w;
  w.worker = name;
  for (int i = 0; i < slots; ++i) w.slots.push_back({i, "cpu", budget, true});
  return w;
}

WorkerCapacity GpuWorker(const std::string& name, int slots, int64_t budget) {
  WorkerCapacity w;
  w.worker = name;
  for (int i = 0; i < slots; ++i) w.slots.push_back({i, absl::StrCat("cuda:", i), budget, true});
  return w;
}

PlacementRequest Request(int world, int tp, int64_t bytes) {
  PlacementRequest r;
  for (int g = 0; g < world / tp; ++g) {
    std::vector<int> group;
    for (int i = 0; i < tp; ++i) group.push_back(g * tp + i);
    r.tp_groups.push_back(group);
  }
  r.rank_bytes.assign(world, bytes);
  return r;
}

TEST(PlacementTest, KeepsEachTensorParallelGroupOnOneWorker) {
  auto placed = PlaceRanks(Request(4, 2, 100), {Worker("a", 2, 1000), Worker("b", 2, 1000)});
  ASSERT_TRUE(placed.ok()) << placed.status();
  ASSERT_EQ(placed->size(), 4u);
  for (int r = 0; r < 4; ++r) EXPECT_EQ((*placed)[r].rank(), r);
  EXPECT_EQ((*placed)[0].worker(), (*placed)[1].worker());
  EXPECT_EQ((*placed)[2].worker(), (*placed)[3].worker());
  EXPECT_NE((*placed)[0].worker(), (*placed)[2].worker());
  std::set<std::pair<std::string, int>> slots;
  for (const auto& p : *placed) slots.insert({p.worker(), p.slot()});
  EXPECT_EQ(slots.size(), 4u);
  EXPECT_EQ((*placed)[0].planned_bytes(), 100);
}

TEST(PlacementTest, BestFitLeavesTheBigWorkerForTheBigGroup) {
  // Groups of 2: the first goes to the 2-slot worker, so the 4-slot one still takes a group of 4.
  PlacementRequest r;
  r.tp_groups = {{0, 1}};
  r.rank_bytes = {1, 1};
  auto placed = PlaceRanks(r, {Worker("big", 4, 10), Worker("small", 2, 10)});
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ((*placed)[0].worker(), "small");
  EXPECT_EQ((*placed)[1].worker(), "small");
}

TEST(PlacementTest, SpreadsAGroupNoWorkerHolds) {
  auto placed = PlaceRanks(Request(4, 4, 1), {Worker("a", 2, 10), Worker("b", 2, 10)});
  ASSERT_TRUE(placed.ok()) << placed.status();
  std::map<std::string, int> per_worker;
  for (const auto& p : *placed) ++per_worker[p.worker()];
  EXPECT_EQ(per_worker["a"], 2);
  EXPECT_EQ(per_worker["b"], 2);
}

TEST(PlacementTest, TooFewRegisteredSlotsIsFailedPrecondition) {
  auto placed = PlaceRanks(Request(4, 2, 1), {Worker("a", 2, 10)});
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rpc::ErrorReason(placed.status()), "NOT_ENOUGH_SLOTS");
  EXPECT_THAT(std::string(placed.status().message()), ::testing::HasSubstr("needs 4 cpu slots"));
  auto payload = placed.status().GetPayload(rpc::kPreconditionFailureTypeUrl);
  ASSERT_TRUE(payload.has_value());
  google::rpc::PreconditionFailure failure;
  ASSERT_TRUE(failure.ParseFromString(std::string(*payload)));
  EXPECT_EQ(failure.violations_size(), 1);
}

TEST(PlacementTest, RankLargerThanEverySlotIsResourceExhausted) {
  auto placed = PlaceRanks(Request(4, 2, 5000), {Worker("a", 2, 1000), Worker("b", 2, 1000)});
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(rpc::ErrorReason(placed.status()), "RANK_TOO_LARGE");
  auto payload = placed.status().GetPayload(rpc::kQuotaFailureTypeUrl);
  ASSERT_TRUE(payload.has_value());
  google::rpc::QuotaFailure failure;
  ASSERT_TRUE(failure.ParseFromString(std::string(*payload)));
  EXPECT_EQ(failure.violations_size(), 4);  // every rank is listed
}

TEST(PlacementTest, OccupiedSlotsAreResourceExhausted) {
  WorkerCapacity a = Worker("a", 2, 10);
  a.slots[0].free = false;
  auto placed = PlaceRanks(Request(4, 2, 1), {a, Worker("b", 2, 10)});
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(rpc::ErrorReason(placed.status()), "NOT_ENOUGH_FREE_SLOTS");
}

TEST(PlacementTest, HeterogeneousBudgetsGoToSlotsThatHoldThem) {
  WorkerCapacity a;
  a.worker = "a";
  a.slots = {{0, "cpu", 100, true}, {1, "cpu", 10, true}};
  PlacementRequest r;
  r.tp_groups = {{0, 1}};
  r.rank_bytes = {10, 100};  // rank 1 only fits slot 0
  auto placed = PlaceRanks(r, {a});
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ((*placed)[1].slot(), 0);
  EXPECT_EQ((*placed)[0].slot(), 1);

  r.rank_bytes = {100, 100};  // both need slot 0
  EXPECT_EQ(PlaceRanks(r, {a}).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PlacementTest, CudaWithoutCudaSlotsIsFailedPreconditionNamingTheCpuSlots) {
  PlacementRequest r = Request(2, 2, 1);
  r.device = "cuda";
  auto placed = PlaceRanks(r, {Worker("a", 2, 10), Worker("b", 2, 10)});
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition) << placed.status();
  EXPECT_EQ(rpc::ErrorReason(placed.status()), "NOT_ENOUGH_SLOTS");
  EXPECT_THAT(std::string(placed.status().message()),
              ::testing::AllOf(::testing::HasSubstr("2 cuda slots"),
                               ::testing::HasSubstr("-DGPTB_WITH_CUDA=ON"),
                               ::testing::HasSubstr("4 cpu slots are registered")));
}

TEST(PlacementTest, EveryRankRunsOnTheOneDeviceTypeAskedForOrChosen) {
  const std::vector<WorkerCapacity> mixed = {Worker("cpu-node", 4, 10),
                                             GpuWorker("gpu-node", 2, 10)};
  for (const auto& [asked, world, expected] :
       std::vector<std::tuple<std::string, int, std::string>>{
           {"cpu", 2, "cpu"}, {"cuda", 2, "cuda"}, {"", 2, "cuda"}, {"", 4, "cpu"}}) {
    SCOPED_TRACE(absl::StrCat("device '", asked, "', world ", world));
    PlacementRequest r = Request(world, 1, 1);
    r.device = asked;
    auto placed = PlaceRanks(r, mixed);
    ASSERT_TRUE(placed.ok()) << placed.status();
    for (const auto& p : *placed) {
      EXPECT_EQ(p.device().substr(0, p.device().find(':')), expected) << p.device();
      EXPECT_EQ(p.worker(), expected == "cuda" ? "gpu-node" : "cpu-node");
    }
  }
}

TEST(PlacementTest, UnknownDeviceTypeIsAFieldViolation) {
  PlacementRequest r = Request(1, 1, 1);
  r.device = "tpu";
  auto placed = PlaceRanks(r, {Worker("a", 1, 10)});
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kInvalidArgument);
  const auto violations = config::ViolationsFromStatus(placed.status());
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].field, "device");
}

}  // namespace
}  // namespace gptb::coordinator
