#include "core/parallel/pipeline_p2p.h"

#include <gtest/gtest.h>

#include <future>

#include "tests/unit/parallel/rank_threads.h"

namespace gptb::parallel {
namespace {

using plan::GroupKind;
using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

TEST(PipelineP2pTest, ForwardChainBackwardChainAndRing) {
  constexpr int kPp = 3;
  const plan::RankTopology topology = Topology(kPp, 1, kPp);
  const std::vector<int64_t> shape = {2, 3};
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  RunRanks(kPp, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& pp = groups.group(GroupKind::kPp);
    // Forward: each stage adds 1 to what it receives; the first starts from 0.
    torch::Tensor activation = torch::zeros(shape);
    if (rank > 0) {
      absl::StatusOr<torch::Tensor> in = RecvForward(shape, options, pp);
      ASSERT_TRUE(in.ok()) << in.status();
      activation = *in;
    }
    activation = activation + 1;
    if (rank < kPp - 1) {
      ASSERT_TRUE(SendForward(activation, pp).ok());
    }
    EXPECT_TRUE(torch::equal(activation, torch::full(shape, rank + 1.0f))) << rank;

    // Backward: gradients flow from the last stage to the first, doubling on the way.
    torch::Tensor grad = torch::ones(shape);
    if (rank < kPp - 1) {
      absl::StatusOr<torch::Tensor> in = RecvBackward(shape, options, pp);
      ASSERT_TRUE(in.ok()) << in.status();
      grad = *in * 2;
    }
    if (rank > 0) {
      ASSERT_TRUE(SendBackward(grad, pp).ok());
    }
    EXPECT_TRUE(torch::equal(grad, torch::full(shape, float(1 << (kPp - 1 - rank))))) << rank;

    // The pp group is a ring: the last stage's next is the first (interleaved schedule).
    if (rank == kPp - 1) {
      ASSERT_TRUE(SendForward(torch::full(shape, 7.0f), pp).ok());
    }
    if (rank == 0) {
      absl::StatusOr<torch::Tensor> in = Recv(shape, options, kPp - 1, pp, /*tag=*/1);
      ASSERT_TRUE(in.ok()) << in.status();
      EXPECT_TRUE(torch::equal(*in, torch::full(shape, 7.0f)));
    }
  });
}

TEST(PipelineP2pTest, ExchangeWithoutDeadlockAndNonContiguousSend) {
  const plan::RankTopology topology = Topology(2, 1, 2);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const ProcessGroupPtr& pp = groups.group(GroupKind::kPp);
    torch::Tensor mine = (torch::arange(6, torch::kFloat64).view({2, 3}) + 10 * rank).t();
    absl::StatusOr<torch::Tensor> theirs =
        SendRecv(mine, 1 - rank, {3, 2}, torch::kFloat64, 1 - rank, pp);
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    EXPECT_TRUE(torch::equal(
        *theirs, (torch::arange(6, torch::kFloat64).view({2, 3}) + 10 * (1 - rank)).t()));
  });
}

TEST(PipelineP2pTest, BadPeersAndTimeoutsAreStatuses) {
  const plan::RankTopology topology = Topology(2, 1, 2);
  // TCPStore clients round their connect timeout down to whole seconds.
  const std::chrono::milliseconds timeout{1000};
  testing::StoreServer server(timeout);
  std::promise<void> receiver_done;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      absl::StatusOr<ProcessGroupCollection> groups = ProcessGroupCollection::Create(
          topology, rank, server.Client(timeout), testing::TestGroupOptions(timeout));
      ASSERT_TRUE(groups.ok()) << groups.status();
      const ProcessGroupPtr& pp = groups->group(GroupKind::kPp);
      EXPECT_EQ(Send(torch::ones({1}), rank, pp).code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Recv({1}, torch::kFloat32, 5, pp).status().code(),
                absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(SendForward(torch::ones({1}), groups->group(GroupKind::kTp)).code(),
                absl::StatusCode::kInvalidArgument);
      // Rank 1 never sends: rank 0's receive gives up after the group timeout. Rank 1 keeps its
      // groups until then (tearing them down would end the receive with UNAVAILABLE instead).
      if (rank == 0) {
        absl::StatusOr<torch::Tensor> lonely = Recv({1}, torch::kFloat32, 1, pp, /*tag=*/9);
        EXPECT_EQ(lonely.status().code(), absl::StatusCode::kDeadlineExceeded) << lonely.status();
        receiver_done.set_value();
      } else {
        receiver_done.get_future().wait();
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace
}  // namespace gptb::parallel
