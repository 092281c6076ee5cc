#include "core/distributed/fully_sharded_data_parallel.h"

#include <gtest/gtest.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "tests/unit/parallel/rank_threads.h"

namespace gptb::distributed {
namespace {

using plan::GroupKind;
using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

struct Net : torch::nn::Module {
  explicit Net(int seed) {
    torch::Generator gen = at::detail::createCPUGenerator(seed);
    w = register_parameter("w", torch::randn({5, 3}, gen));  // 15 elements: padded to 16
    bias = register_parameter("bias", torch::randn({5}, gen));
    expert = register_parameter("expert", torch::randn({2, 2}, gen));
  }
  torch::Tensor w, bias, expert;
};

std::vector<plan::ParamInfo> Table() {
  std::vector<plan::ParamInfo> table(3);
  table[0].name = "w";
  table[1].name = "bias";
  table[2].name = "expert";
  table[2].is_expert = true;
  return table;
}

std::unique_ptr<FullyShardedDataParallel> Shard(std::shared_ptr<Net> net,
                                                const parallel::ProcessGroupCollection& groups,
                                                FsdpOptions options = {}) {
  absl::StatusOr<std::unique_ptr<FullyShardedDataParallel>> fsdp =
      FullyShardedDataParallel::Create(net, Table(), groups, options);
  if (!fsdp.ok()) throw std::runtime_error(fsdp.status().ToString());
  return *std::move(fsdp);
}

TEST(FullyShardedDataParallelTest, ShardsAreOneOverDpAndGatherRestoresTheFullTensors) {
  // World 2 with ep 2: dense parameters shard over dp_cp (2), expert ones over expt_dp (1).
  const plan::RankTopology topology = Topology(2, 1, 1, 1, /*ep=*/2, /*etp=*/1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    const Net reference(7);
    auto net = std::make_shared<Net>(7);
    std::unique_ptr<FullyShardedDataParallel> fsdp = Shard(net, groups);
    EXPECT_FALSE(fsdp->gathered());
    EXPECT_EQ(net->w.numel(), 0);            // released: the full tensor costs nothing
    EXPECT_EQ(fsdp->shard("w").numel(), 8);  // ceil(15 / 2)
    EXPECT_EQ(fsdp->shard("bias").numel(), 3);
    EXPECT_EQ(fsdp->shard("expert").numel(), 4);  // expt_dp has one rank
    torch::Tensor flat = torch::cat({reference.w.detach().reshape({-1}), torch::zeros({1})});
    EXPECT_TRUE(torch::equal(fsdp->shard("w"), flat.narrow(0, rank * 8, 8)));

    std::vector<std::string> names;
    for (auto& item : net->named_parameters()) names.push_back(item.key());
    EXPECT_EQ(names, (std::vector<std::string>{"w", "bias", "expert"}));

    ASSERT_TRUE(fsdp->Gather().ok());
    EXPECT_TRUE(fsdp->gathered());
    EXPECT_TRUE(torch::equal(net->w, reference.w));
    EXPECT_TRUE(torch::equal(net->bias, reference.bias));
    EXPECT_TRUE(torch::equal(net->expert, reference.expert));
    fsdp->Release();
    EXPECT_EQ(net->bias.numel(), 0);
  });
}

TEST(FullyShardedDataParallelTest, GradientsReduceScatterToTheMeanShard) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto net = std::make_shared<Net>(3);
    std::unique_ptr<FullyShardedDataParallel> fsdp = Shard(net, groups);
    EXPECT_EQ(fsdp->ReduceScatterGradients().code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(fsdp->Gather().ok());
    torch::Tensor x = torch::full({3}, rank + 1.0f);
    (torch::matmul(net->w, x) + net->bias).sum().backward();
    ASSERT_TRUE(fsdp->ReduceScatterGradients().ok());
    EXPECT_FALSE(net->w.grad().defined());
    fsdp->Release();
    // d/dw = ones(5) x (rank + 1): the mean over ranks 0 and 1 is 1.5 everywhere.
    torch::Tensor mean_w = torch::cat({torch::full({15}, 1.5f), torch::zeros({1})});
    EXPECT_TRUE(torch::allclose(fsdp->sharded_grad("w"), mean_w.narrow(0, rank * 8, 8)))
        << fsdp->sharded_grad("w");
    torch::Tensor mean_bias = torch::cat({torch::ones({5}), torch::zeros({1})});
    EXPECT_TRUE(torch::allclose(fsdp->sharded_grad("bias"), mean_bias.narrow(0, rank * 3, 3)));
    fsdp->ZeroGradShards();
    EXPECT_EQ(fsdp->sharded_grad("w").abs().sum().item<float>(), 0.0f);
  });
}

TEST(FullyShardedDataParallelTest, BroadcastFromSourceBeforeSharding) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto net = std::make_shared<Net>(100 + rank);  // data_parallel_random_init: replicas differ
    const Net source(100);
    FsdpOptions options;
    options.flavor = FsdpFlavor::kTorchFsdp2;
    options.broadcast_from_source = true;
    std::unique_ptr<FullyShardedDataParallel> fsdp = Shard(net, groups, options);
    EXPECT_EQ(fsdp->flavor(), FsdpFlavor::kTorchFsdp2);
    ASSERT_TRUE(fsdp->Gather().ok());
    EXPECT_TRUE(torch::equal(net->w, source.w));
    EXPECT_TRUE(torch::equal(net->expert, source.expert));
  });
}

TEST(FullyShardedDataParallelTest, RejectsUnplannedParameters) {
  const plan::RankTopology topology = Topology(1, 1, 1);
  auto store = c10::make_intrusive<c10d::HashStore>();
  parallel::ProcessGroupCollection groups = MakeGroups(topology, 0, store);
  std::vector<plan::ParamInfo> partial = Table();
  partial.erase(partial.begin());
  absl::Status status =
      FullyShardedDataParallel::Create(std::make_shared<Net>(1), partial, groups, {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gptb::distributed
