#include "core/distributed/distributed_data_parallel.h"

#include <gtest/gtest.h>

#include <numeric>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "tests/unit/parallel/rank_threads.h"

namespace gptb::distributed {
namespace {

using plan::GroupKind;
using testing::MakeGroups;
using testing::RunRanks;
using testing::Topology;

struct Experts : torch::nn::Module {
  explicit Experts(torch::Dtype dtype) { w = register_parameter("w", torch::zeros({3}, dtype)); }
  torch::Tensor w;
};

// Registration order: a, b, c, experts.w (own parameters first, then children).
struct Toy : torch::nn::Module {
  explicit Toy(torch::Dtype dtype = torch::kFloat32) {
    a = register_parameter("a", torch::zeros({4}, dtype));
    b = register_parameter("b", torch::zeros({2, 3}, dtype));
    c = register_parameter("c", torch::zeros({5}, dtype));
    experts = register_module("experts", std::make_shared<Experts>(dtype));
  }
  std::vector<torch::Tensor> params() { return {a, b, c, experts->w}; }
  torch::Tensor a, b, c;
  std::shared_ptr<Experts> experts;
};

const std::vector<std::string> kNames = {"a", "b", "c", "experts.w"};

std::vector<plan::ParamInfo> Table() {
  std::vector<plan::ParamInfo> table;
  for (const std::string& name : kNames) {
    plan::ParamInfo info;
    info.name = name;
    info.is_expert = name == "experts.w";
    table.push_back(info);
  }
  return table;
}

// d loss / d param i = (rank + 1) * (i + 1) * scale everywhere.
void Backward(Toy& toy, int rank, double scale = 1.0) {
  torch::Tensor loss = torch::zeros({}, torch::kFloat32);
  std::vector<torch::Tensor> params = toy.params();
  for (size_t i = 0; i < params.size(); ++i) {
    loss = loss + (params[i].to(torch::kFloat32) * ((rank + 1) * (i + 1.0) * scale)).sum();
  }
  loss.backward();
}

std::unique_ptr<DistributedDataParallel> Wrap(std::shared_ptr<Toy> toy,
                                              const parallel::ProcessGroupCollection& groups,
                                              const DdpOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<DistributedDataParallel>> ddp =
      DistributedDataParallel::Create(toy, Table(), groups, options);
  if (!ddp.ok()) throw std::runtime_error(ddp.status().ToString());
  return *std::move(ddp);
}

// Mean over `ranks` of (rank + 1), times the parameter's factor: the expected reduced gradient.
double MeanFactor(const std::vector<int>& ranks) {
  double sum = 0;
  for (int r : ranks) sum += r + 1;
  return sum / ranks.size();
}

TEST(DistributedDataParallelTest, TwoReplicasEndWithTheMeanGradientInMainGrad) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>();
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups);
    Backward(*toy, rank);
    for (torch::Tensor& p : toy->params()) EXPECT_FALSE(p.grad().defined()) << "grad not freed";
    // Before the sync main_grad holds the local gradient.
    EXPECT_TRUE(torch::equal(ddp->main_grad("a"), torch::full({4}, rank + 1.0f)));
    ASSERT_TRUE(ddp->FinishGradSync().ok());
    for (size_t i = 0; i < kNames.size(); ++i) {
      torch::Tensor g = ddp->main_grad(kNames[i]);
      EXPECT_EQ(g.sizes(), toy->params()[i].sizes());
      EXPECT_TRUE(torch::allclose(g, torch::full_like(g, 1.5 * (i + 1)))) << kNames[i] << g;
    }
    ddp->ZeroGradBuffer();
    for (const GradBuffer& buffer : ddp->buffers()) {
      EXPECT_EQ(buffer.grad_data.abs().sum().item<float>(), 0.0f);
    }
  });
}

TEST(DistributedDataParallelTest, BufferLayoutIsReverseRegistrationOrderPerDtypeAndExpertKey) {
  const plan::RankTopology topology = Topology(1, 1, 1);
  auto store = c10::make_intrusive<c10d::HashStore>();
  parallel::ProcessGroupCollection groups = MakeGroups(topology, 0, store);
  auto toy = std::make_shared<Toy>();
  toy->c.set_data(toy->c.to(torch::kBFloat16));  // its own (bf16, bf16) buffer
  std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups);
  const std::vector<GradBuffer>& buffers = ddp->buffers();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(buffers[0].names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(buffers[1].names, (std::vector<std::string>{"c"}));
  EXPECT_EQ(buffers[1].grad_dtype, torch::kBFloat16);
  EXPECT_EQ(buffers[2].names, (std::vector<std::string>{"experts.w"}));
  EXPECT_TRUE(buffers[2].is_expert);
  // Dense fp32 buffer: b (registered last) at offset 0, then a.
  ASSERT_EQ(buffers[0].layout.slots.size(), 2u);
  EXPECT_EQ(buffers[0].names[buffers[0].layout.slots[0].index], "b");
  EXPECT_EQ(buffers[0].layout.slots[0].start, 0);
  EXPECT_EQ(buffers[0].layout.slots[1].start, 6);
  EXPECT_EQ(ddp->main_grad("a").data_ptr<float>(), buffers[0].grad_data.data_ptr<float>() + 6);
  EXPECT_EQ(ddp->main_grad("b").data_ptr<float>(), buffers[0].grad_data.data_ptr<float>());
  EXPECT_FALSE(ddp->main_grad("nope").defined());
}

TEST(DistributedDataParallelTest, GradReduceInFp32KeepsBf16ParamsWithFp32Buffers) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>(torch::kBFloat16);
    DdpOptions options;
    options.config.set_grad_reduce_in_fp32(true);
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups, options);
    for (const GradBuffer& b : ddp->buffers()) {
      EXPECT_EQ(b.param_dtype, torch::kBFloat16);
      EXPECT_EQ(b.grad_dtype, torch::kFloat32);
    }
    Backward(*toy, rank, /*scale=*/0.1);
    ASSERT_TRUE(ddp->FinishGradSync().ok());
    torch::Tensor g = ddp->main_grad("c");
    EXPECT_EQ(g.scalar_type(), torch::kFloat32);
    // The local gradients arrive in bf16; the mean is computed in fp32.
    const float local0 = torch::tensor(0.1f * 3).to(torch::kBFloat16).item<float>();
    const float local1 = torch::tensor(0.2f * 3).to(torch::kBFloat16).item<float>();
    EXPECT_TRUE(torch::allclose(g, torch::full({5}, (local0 + local1) / 2))) << g;
  });
  // bf16 gradients reduced in bf16 over Gloo as well.
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>(torch::kBFloat16);
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups);
    Backward(*toy, rank);
    ASSERT_TRUE(ddp->FinishGradSync().ok());
    EXPECT_TRUE(torch::equal(ddp->main_grad("a"), torch::full({4}, 1.5, torch::kBFloat16)));
  });
}

TEST(DistributedDataParallelTest, ExpertGradientsReduceOverExpertDataParallelOnly) {
  // World 4, ep 2 (expert TP 1): dp_cp = all 4 ranks, expt_dp = {0, 2} and {1, 3}.
  const plan::RankTopology topology = Topology(4, 1, 1, 1, /*ep=*/2, /*etp=*/1);
  for (bool average_in_collective : {false, true}) {
    RunRanks(4, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
      parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
      auto toy = std::make_shared<Toy>();
      DdpOptions options;
      options.config.set_average_in_collective(average_in_collective);
      std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups, options);
      Backward(*toy, rank);
      ASSERT_TRUE(ddp->FinishGradSync().ok());
      const std::vector<int> dp = topology.Group(GroupKind::kDpCp, rank);
      const std::vector<int> edp = topology.Group(GroupKind::kExptDp, rank);
      ASSERT_EQ(dp.size(), 4u);
      ASSERT_EQ(edp.size(), 2u);
      EXPECT_TRUE(torch::allclose(ddp->main_grad("a"), torch::full({4}, MeanFactor(dp))));
      // Megatron: expert sums over expt_dp, divided by dp_cp (not by expt_dp).
      const double expert = MeanFactor(edp) * edp.size() / dp.size() * 4;
      EXPECT_TRUE(torch::allclose(ddp->main_grad("experts.w"), torch::full({3}, expert)))
          << "rank " << rank << " " << ddp->main_grad("experts.w");
    });
  }
}

TEST(DistributedDataParallelTest, OverlappedBucketsRespectBucketSizeAndMatchSingleBucket) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    DdpOptions options;
    options.config.set_overlap_grad_reduce(true);
    options.config.set_bucket_size(5);
    auto toy = std::make_shared<Toy>();
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups, options);
    ASSERT_EQ(ddp->bucket_size(), 5);
    const BufferLayout& dense = ddp->buffers()[0].layout;
    // c (5) | b (6) | a (4): every bucket but the last reaches the bucket size.
    ASSERT_EQ(dense.buckets.size(), 3u);
    for (size_t k = 0; k + 1 < dense.buckets.size(); ++k) {
      EXPECT_GE(dense.buckets[k].end - dense.buckets[k].start, 5);
    }
    // Two micro-batches: the first accumulates only, the second launches from the hooks.
    ddp->set_is_last_microbatch(false);
    Backward(*toy, rank);
    EXPECT_EQ(ddp->num_buckets_started(), 0);
    ddp->set_is_last_microbatch(true);
    Backward(*toy, rank);
    // Every bucket (3 dense + 1 expert) was launched from backward.
    EXPECT_EQ(ddp->num_buckets_started(), 4);
    ASSERT_TRUE(ddp->FinishGradSync().ok());
    EXPECT_EQ(ddp->num_buckets_started(), 0);
    for (size_t i = 0; i < kNames.size(); ++i) {
      torch::Tensor g = ddp->main_grad(kNames[i]);
      EXPECT_TRUE(torch::allclose(g, torch::full_like(g, 2 * 1.5 * (i + 1)))) << kNames[i] << g;
    }

    DdpOptions single = options;
    single.disable_bucketing = true;
    auto toy2 = std::make_shared<Toy>();
    std::unique_ptr<DistributedDataParallel> one = Wrap(toy2, groups, single);
    EXPECT_EQ(one->bucket_size(), std::nullopt);
    for (const GradBuffer& b : one->buffers()) EXPECT_EQ(b.layout.buckets.size(), 1u);
    Backward(*toy2, rank);
    EXPECT_EQ(one->num_buckets_started(), 2);  // overlap still launches the single buckets
    ASSERT_TRUE(one->FinishGradSync().ok());
    EXPECT_TRUE(torch::allclose(one->main_grad("b"), torch::full({2, 3}, 1.5 * 2)));
  });
}

TEST(DistributedDataParallelTest, BroadcastParamsMakesReplicasEqual) {
  const plan::RankTopology topology = Topology(4, 1, 1, 1, /*ep=*/2, /*etp=*/1);
  RunRanks(4, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>();
    {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& p : toy->params()) p.fill_(100.0 + rank);
    }
    toy->b.requires_grad_(false);  // frozen parameters are broadcast too
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups);
    ASSERT_TRUE(ddp->BroadcastParams().ok());
    const int dense_source = topology.Group(GroupKind::kDpCp, rank).front();
    const int expert_source = topology.Group(GroupKind::kExptDp, rank).front();
    if (rank == 3) {
      EXPECT_NE(expert_source, dense_source);  // the groups really differ
    }
    EXPECT_TRUE(torch::equal(toy->a, torch::full({4}, 100.0f + dense_source)));
    EXPECT_TRUE(torch::equal(toy->b, torch::full({2, 3}, 100.0f + dense_source)));
    EXPECT_TRUE(torch::equal(toy->experts->w, torch::full({3}, 100.0f + expert_source)))
        << "rank " << rank << " " << toy->experts->w;
  });
}

TEST(DistributedDataParallelTest, DistributedOptimizerBuffersShardsAndParamSync) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>();
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < toy->params().size(); ++i) toy->params()[i].fill_(float(i + 1));
    }
    DdpOptions options;
    options.config.set_use_distributed_optimizer(true);
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups, options);
    const GradBuffer& dense = ddp->buffers()[0];
    ASSERT_TRUE(dense.param_data.defined());
    EXPECT_EQ(dense.layout.numel % 128, 0);
    for (const ParamSlot& slot : dense.layout.slots) {
      EXPECT_EQ(slot.start % 64, 0);
      // The parameter's storage is now its slot of the param buffer, values kept.
      const torch::Tensor& p = dense.params[slot.index];
      EXPECT_EQ(p.data_ptr<float>(), dense.param_data.data_ptr<float>() + slot.start);
      EXPECT_TRUE(torch::equal(p, torch::full_like(p, float(slot.index + 1))));
    }
    Backward(*toy, rank);
    ASSERT_TRUE(ddp->FinishGradSync().ok());
    // This rank's shard of the bucket holds the reduced mean.
    const BucketLayout& bucket = dense.layout.buckets[0];
    const int64_t shard = (bucket.end - bucket.start) / 2;
    for (const ParamSlot& slot : dense.layout.slots) {
      for (int64_t e = slot.start; e < slot.end; ++e) {
        if (e / shard != rank) continue;
        EXPECT_FLOAT_EQ(dense.grad_data[e].item<float>(), 1.5f * (slot.index + 1)) << e;
      }
    }
    // An optimizer updates only this rank's shard; ParamSync gathers the others'.
    {
      torch::NoGradGuard no_grad;
      dense.param_data.narrow(0, bucket.start + rank * shard, shard).fill_(-1.0f - rank);
    }
    ASSERT_TRUE(ddp->ParamSync().ok());
    for (const ParamSlot& slot : dense.layout.slots) {
      for (int64_t e = slot.start; e < slot.end; ++e) {
        EXPECT_EQ(dense.param_data[e].item<float>(), -1.0f - e / shard) << e;
      }
    }
  });
}

TEST(DistributedDataParallelTest, NanGradientIsAnErrorWhenChecked) {
  const plan::RankTopology topology = Topology(2, 1, 1);
  RunRanks(2, [&](int rank, c10::intrusive_ptr<c10d::Store> store) {
    parallel::ProcessGroupCollection groups = MakeGroups(topology, rank, store);
    auto toy = std::make_shared<Toy>();
    DdpOptions options;
    options.config.set_check_for_nan_in_grad(true);
    std::unique_ptr<DistributedDataParallel> ddp = Wrap(toy, groups, options);
    (toy->a * std::numeric_limits<float>::quiet_NaN()).sum().backward();
    absl::Status status = ddp->FinishGradSync();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  });
}

TEST(DistributedDataParallelTest, RejectsUnplannedParametersAndUnsupportedOptions) {
  const plan::RankTopology topology = Topology(1, 1, 1);
  auto store = c10::make_intrusive<c10d::HashStore>();
  parallel::ProcessGroupCollection groups = MakeGroups(topology, 0, store);
  std::vector<plan::ParamInfo> partial = Table();
  partial.pop_back();
  absl::Status missing =
      DistributedDataParallel::Create(std::make_shared<Toy>(), partial, groups, {}).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("experts.w"), absl::string_view::npos) << missing;
  DdpOptions buckets;
  buckets.config.set_num_buckets(4);
  EXPECT_EQ(DistributedDataParallel::Create(std::make_shared<Toy>(), Table(), groups, buckets)
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
  DdpOptions per_token;
  per_token.config.set_average_in_collective(true);
  per_token.calculate_per_token_loss = true;
  EXPECT_EQ(DistributedDataParallel::Create(std::make_shared<Toy>(), Table(), groups, per_token)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gptb::distributed
