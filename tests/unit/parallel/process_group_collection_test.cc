#include "core/parallel/process_group_collection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "core/parallel/collectives.h"
#include "tests/unit/parallel/rank_threads.h"

namespace gptb::parallel {
namespace {

using plan::GroupKind;
using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Every rank checks its groups against the topology, then all-reduces (rank + 1) in each group.
void CheckGroupsOfWorld(const plan::RankTopology& topology) {
  RunRanks(topology.world_size(), [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    EXPECT_EQ(groups.global_rank(), rank);
    EXPECT_EQ(groups.world_size(), topology.world_size());
    EXPECT_EQ(groups.device(), c10::Device(c10::kCPU));
    int networked = 0;
    for (GroupKind kind : plan::kAllGroupKinds) {
      const std::vector<int> expected = topology.Group(kind, rank);
      SCOPED_TRACE(::testing::Message() << "rank " << rank << " group " << plan::GroupName(kind));
      ASSERT_EQ(groups.has(kind), !expected.empty());
      EXPECT_EQ(groups.members(kind), expected);
      if (expected.empty()) {
        EXPECT_FALSE(groups.group(kind));
        EXPECT_EQ(groups.size(kind), 0);
        EXPECT_EQ(groups.rank(kind), -1);
        continue;
      }
      const int local =
          static_cast<int>(std::find(expected.begin(), expected.end(), rank) - expected.begin());
      EXPECT_EQ(groups.size(kind), static_cast<int>(expected.size()));
      EXPECT_EQ(groups.rank(kind), local);
      EXPECT_EQ(groups.group(kind)->getSize(), static_cast<int>(expected.size()));
      EXPECT_EQ(groups.group(kind)->getRank(), local);
      EXPECT_EQ(groups.group(kind)->getBackendName(), expected.size() > 1 ? "gloo" : "local");
      networked += expected.size() > 1 ? 1 : 0;

      torch::Tensor value = torch::full({3}, static_cast<float>(rank + 1));
      AllReduceInPlace(value, groups.group(kind));
      float sum = 0;
      for (int member : expected) sum += static_cast<float>(member + 1);
      EXPECT_TRUE(torch::equal(value, torch::full({3}, sum))) << value;
    }
    EXPECT_EQ(groups.num_networked_groups(), networked);
    EXPECT_GT(groups.creation_seconds(), 0.0);
    EXPECT_GE(groups.creation_seconds(), groups.creation_seconds(GroupKind::kTp));
  });
}

TEST(ProcessGroupCollectionTest, World8Tp2Pp2Dp2MatchesTopologyAndReducesPerGroup) {
  const plan::RankTopology topology = Topology(8, /*tp=*/2, /*pp=*/2);
  ASSERT_EQ(topology.dp(), 2);
  // Middle-free pipeline: embd = the pp pair, pos_embd only on the first stage.
  EXPECT_TRUE(topology.Group(GroupKind::kPosEmbd, 4).empty());
  const int threads_before = ThreadCount();
  CheckGroupsOfWorld(topology);
  // Destroying the collections joined every Gloo worker and transport thread.
  EXPECT_EQ(ThreadCount(), threads_before);
}

TEST(ProcessGroupCollectionTest, ExpertGroupsFollowTheExpertGrid) {
  // ep 2 with expert TP 1 over tp 2: expert groups differ from the dense ones.
  CheckGroupsOfWorld(Topology(4, /*tp=*/2, /*pp=*/1, /*cp=*/1, /*ep=*/2, /*etp=*/1));
}

TEST(ProcessGroupCollectionTest, MiddlePipelineRanksHaveNoEmbeddingGroup) {
  const plan::RankTopology topology = Topology(3, /*tp=*/1, /*pp=*/3);
  RunRanks(3, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    EXPECT_EQ(groups.has(GroupKind::kEmbd), rank != 1) << rank;
    EXPECT_EQ(groups.has(GroupKind::kPosEmbd), rank == 0) << rank;
    // A collective before tearing down: a peer may still be finishing its side of a group.
    torch::Tensor t = torch::ones({1});
    AllReduceInPlace(t, groups.group(GroupKind::kPp));
    EXPECT_EQ(t.item<float>(), 3.0f);
  });
}

TEST(ProcessGroupCollectionTest, SingleRankWorldNeedsNoNetwork) {
  const plan::RankTopology topology = Topology(1, 1, 1);
  // A HashStore: a rendezvous would block forever on keys nobody writes, so passing shows none.
  auto store = c10::make_intrusive<c10d::HashStore>();
  absl::StatusOr<ProcessGroupCollection> groups =
      ProcessGroupCollection::Create(topology, 0, store, testing::TestGroupOptions());
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_EQ(groups->num_networked_groups(), 0);
  EXPECT_EQ(store->getNumKeys(), 0);
  for (GroupKind kind : plan::kAllGroupKinds) {
    ASSERT_TRUE(groups->has(kind)) << plan::GroupName(kind);
    EXPECT_EQ(groups->size(kind), 1);
    EXPECT_EQ(groups->rank(kind), 0);
  }
  torch::Tensor t = torch::arange(4, torch::kFloat32);
  AllReduceInPlace(t, groups->group(GroupKind::kDp), c10d::ReduceOp::AVG);
  EXPECT_TRUE(torch::equal(t, torch::arange(4, torch::kFloat32)));
  EXPECT_TRUE(torch::equal(AllGather(t, groups->group(GroupKind::kTp), 0), t));
  groups->Shutdown();
  EXPECT_FALSE(groups->has(GroupKind::kTp));
}

TEST(ProcessGroupCollectionTest, RejectsBadArguments) {
  const plan::RankTopology topology = Topology(2, 2, 1);
  auto store = c10::make_intrusive<c10d::HashStore>();
  ProcessGroupOptions options = testing::TestGroupOptions();
  EXPECT_EQ(ProcessGroupCollection::Create(topology, 2, store, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProcessGroupCollection::Create(topology, -1, store, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProcessGroupCollection::Create(topology, 0, StorePtr(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  ProcessGroupOptions zero = options;
  zero.timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(ProcessGroupCollection::Create(topology, 0, store, zero).status().code(),
            absl::StatusCode::kInvalidArgument);
#ifndef GPTB_WITH_CUDA
  ProcessGroupOptions nccl = options;
  nccl.backend = Backend::kNccl;
  absl::Status status = ProcessGroupCollection::Create(topology, 0, store, nccl).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("GPTB_WITH_CUDA"));
#endif
}

TEST(ProcessGroupCollectionTest, MissingRankFailsWithTimeoutAndLeavesNoThreads) {
  const plan::RankTopology topology = Topology(4, /*tp=*/2, /*pp=*/1);
  const std::chrono::milliseconds timeout{1000};
  const int threads_before = ThreadCount();
  std::atomic<int> deadline_errors{0};
  const auto start = std::chrono::steady_clock::now();
  {
    testing::StoreServer server(timeout);
    std::vector<std::thread> threads;
    // Rank 3 never joins: rank 2 (its tp peer) and the dp groups of ranks 0 and 1 time out.
    for (int rank = 0; rank < 3; ++rank) {
      threads.emplace_back([&, rank] {
        absl::StatusOr<ProcessGroupCollection> groups = ProcessGroupCollection::Create(
            topology, rank, server.Client(timeout), testing::TestGroupOptions(timeout));
        EXPECT_FALSE(groups.ok()) << "rank " << rank;
        if (groups.status().code() == absl::StatusCode::kDeadlineExceeded) ++deadline_errors;
        EXPECT_THAT(std::string(groups.status().message()),
                    ::testing::HasSubstr("creating gloo process group"))
            << groups.status();
      });
    }
    for (std::thread& t : threads) t.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(deadline_errors.load(), 3);
  // Each rank waits for at most one group's timeout plus the groups before it, not forever.
  EXPECT_LT(seconds, 20.0);
  EXPECT_EQ(ThreadCount(), threads_before);
}

TEST(GroupStorePrefixTest, UniquePerGroupAndAgreedByMembers) {
  const plan::RankTopology topology = Topology(16, /*tp=*/2, /*pp=*/2, /*cp=*/2, /*ep=*/2);
  std::map<std::string, std::vector<int>> seen;
  for (GroupKind kind : plan::kAllGroupKinds) {
    for (const std::vector<int>& members : topology.AllGroups(kind)) {
      const std::string prefix = GroupStorePrefix("p", kind, members);
      auto [it, inserted] = seen.emplace(prefix, members);
      EXPECT_TRUE(inserted) << prefix << " used twice";
      for (int member : members) {
        EXPECT_EQ(GroupStorePrefix("p", kind, topology.Group(kind, member)), prefix);
      }
    }
  }
  // Long groups get a bounded key with a hash that tells different member lists apart.
  std::vector<int> a(100), b(100);
  for (int i = 0; i < 100; ++i) a[i] = b[i] = 2 * i;
  b[50] = 101;
  EXPECT_LT(GroupStorePrefix("p", GroupKind::kDp, a).size(), 64u);
  EXPECT_NE(GroupStorePrefix("p", GroupKind::kDp, a), GroupStorePrefix("p", GroupKind::kDp, b));
}

}  // namespace
}  // namespace gptb::parallel
