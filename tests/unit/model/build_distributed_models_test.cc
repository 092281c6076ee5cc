// BuildRankModel follows Megatron-Bridge's build_distributed_models (spec/bridge-gpt-builder.md
// §7, the behaviours its TestGPTModelBuilder* and unimodal tests check): virtual-pipeline chunk
// count and pre/post flags, the wrapper choice and its errors, bucketing only on chunk 0,
// Float16Module only with fp16/bf16, and a failed build releasing everything.
#include "core/config/finalize.h"
#include "core/model/gpt_stage.h"
#include "gmock/gmock.h"
#include "tests/unit/model/rank_harness.h"
#include "tests/unit/plan/golden_config.h"

namespace gptb::model {
namespace {

using ::testing::HasSubstr;

gptbuilder::v1::GPTModelConfig Tiny(int pp, std::optional<int> vp) {
  gptbuilder::v1::GPTModelConfig c = testing::GoldenUserConfig(testing::LoadGolden("B_tp1_pp1"));
  c.mutable_transformer()->set_pipeline_model_parallel_size(pp);
  if (vp.has_value()) c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(*vp);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = config::Finalize(c, {pp});
  EXPECT_TRUE(f.ok()) << f.status();
  return *f;
}

TEST(BuildDistributedModels, VirtualPipelineChunksAndFlags) {
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  ddp.set_overlap_grad_reduce(true);
  ddp.set_bucket_size(1000);
  testing::World world = testing::BuildWorld(Tiny(2, 2), 2, {}, ddp);
  ASSERT_FALSE(HasFailure());
  // pp rank 0: chunks (pre, -), (-, -); pp rank 1: (-, -), (-, post).
  const RankModel& first = *world.ranks[0];
  const RankModel& last = *world.ranks[1];
  ASSERT_EQ(first.stages().size(), 2u);
  EXPECT_TRUE(first.stages()[0]->pre_process());
  EXPECT_FALSE(first.stages()[1]->pre_process());
  EXPECT_FALSE(first.stages()[1]->post_process());
  EXPECT_FALSE(last.stages()[0]->post_process());
  EXPECT_TRUE(last.stages()[1]->post_process());
  EXPECT_EQ(first.stages()[1]->plan().vp_stage, 1);
  // Bucketing stays on only for chunk 0 (and only on pp rank 0: Megatron forces one bucket on
  // later pipeline ranks).
  ASSERT_NE(first.ddp(0), nullptr);
  EXPECT_EQ(first.ddp(0)->bucket_size(), std::optional<int64_t>(1000));
  EXPECT_EQ(first.ddp(1)->bucket_size(), std::nullopt);
  EXPECT_EQ(last.ddp(0)->bucket_size(), std::nullopt);
  EXPECT_EQ(first.float16(0), nullptr);  // fp32: no Float16Module
  EXPECT_EQ(first.fsdp(0), nullptr);
  EXPECT_GT(first.gradient_bytes(), 0);
}

TEST(BuildDistributedModels, OverlapParamGatherDisablesBucketingEverywhere) {
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  ddp.set_overlap_grad_reduce(true);
  ddp.set_bucket_size(1000);
  gptbuilder::v1::BuildOptions build;
  build.set_overlap_param_gather_with_optimizer_step(true);
  testing::World world = testing::BuildWorld(Tiny(1, std::nullopt), 1, build, ddp);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(world.ranks[0]->ddp(0)->bucket_size(), std::nullopt);
}

TEST(BuildDistributedModels, WrapWithDdpFalseReturnsUnwrappedStages) {
  gptbuilder::v1::BuildOptions build;
  build.set_wrap_with_ddp(false);
  testing::World world = testing::BuildWorld(Tiny(1, std::nullopt), 1, build);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(world.ranks[0]->ddp(0), nullptr);
  EXPECT_EQ(world.ranks[0]->gradient_bytes(), 0);
}

TEST(BuildDistributedModels, MegatronFsdpShardsTheParameters) {
  gptbuilder::v1::BuildOptions build;
  build.set_use_megatron_fsdp(true);
  testing::World world = testing::BuildWorld(Tiny(1, std::nullopt), 2, build);
  ASSERT_FALSE(HasFailure());
  for (const auto& rank : world.ranks) {
    ASSERT_NE(rank->fsdp(0), nullptr);
    EXPECT_EQ(rank->ddp(0), nullptr);
    EXPECT_FALSE(rank->fsdp(0)->gathered());
  }
}

TEST(BuildDistributedModels, BothFsdpFlavoursAreAnError) {
  model::RankBuildOptions options;
  options.config = Tiny(1, std::nullopt);
  options.build.set_use_megatron_fsdp(true);
  options.build.set_use_torch_fsdp2(true);
  absl::StatusOr<std::unique_ptr<RankModel>> built = BuildRankModel(options);
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(
      std::string(built.status().message()),
      HasSubstr("Using use_megatron_fsdp and use_torch_fsdp2 at the same time is not supported."));
}

TEST(BuildDistributedModels, Bf16WrapsWithFloat16Module) {
  gptbuilder::v1::GPTModelConfig c = Tiny(1, std::nullopt);
  c.mutable_transformer()->set_bf16(true);
  testing::World world = testing::BuildWorld(*config::Finalize(c, {1}), 1);
  ASSERT_FALSE(HasFailure());
  const RankModel& model = *world.ranks[0];
  ASSERT_NE(model.float16(0), nullptr);
  for (const auto& item : model.stages()[0]->named_parameters()) {
    EXPECT_EQ(item.value().scalar_type(), torch::kBFloat16) << item.key();
  }
  // Without the wrapper the parameters keep params_dtype.
  gptbuilder::v1::BuildOptions build;
  build.set_mixed_precision_wrapper(false);
  testing::World unwrapped = testing::BuildWorld(*config::Finalize(c, {1}), 1, build);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(unwrapped.ranks[0]->float16(0), nullptr);
  EXPECT_EQ(unwrapped.ranks[0]->stages()[0]->parameters()[0].scalar_type(), torch::kFloat32);
}

TEST(BuildDistributedModels, PerformInitializationFalseLeavesMemoryAsAllocated) {
  gptbuilder::v1::GPTModelConfig c = Tiny(1, std::nullopt);
  c.mutable_transformer()->set_perform_initialization(false);
  int64_t bytes = 0;
  BuildProgress last;
  model::RankBuildOptions options;
  options.config = c;
  options.on_progress = [&](const BuildProgress& p) { last = p; };
  absl::StatusOr<std::unique_ptr<RankModel>> built = BuildRankModel(options);
  ASSERT_TRUE(built.ok()) << built.status();
  bytes = (*built)->parameter_bytes();
  EXPECT_EQ(last.phase, BuildPhase::kDone);
  EXPECT_EQ(last.bytes_total, bytes);
  EXPECT_GT(bytes, 0);
}

TEST(BuildDistributedModels, CancelledBuildFailsAndReleases) {
  model::RankBuildOptions options;
  options.config = Tiny(1, std::nullopt);
  int calls = 0;
  options.cancelled = [&] { return ++calls > 1; };
  absl::StatusOr<std::unique_ptr<RankModel>> built = BuildRankModel(options);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kCancelled);
}

TEST(BuildDistributedModels, MissingPeerTimesOut) {
  // Rank 0 of a world of 2 whose rank 1 never comes: the build fails within the timeout.
  auto server = testing::StartStore();
  model::RankBuildOptions options;
  options.config = Tiny(2, std::nullopt);
  options.world_size = 2;
  options.rank = 0;
  options.store_port = server->getPort();
  options.timeout = std::chrono::milliseconds(1500);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<RankModel>> built = BuildRankModel(options);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kDeadlineExceeded) << built.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(Describe, IsThePlannedStageWithAChecksumPerHeldTensor) {
  testing::World world = testing::BuildWorld(Tiny(2, std::nullopt), 2);
  ASSERT_FALSE(HasFailure());
  absl::StatusOr<std::vector<gptbuilder::v1::StageDescription>> first = world.ranks[0]->Describe();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  const plan::StagePlan& planned = world.ranks[0]->stages()[0]->plan();
  ASSERT_EQ((*first)[0].params_size(), static_cast<int>(planned.params.size()));
  const auto held = world.ranks[0]->stages()[0]->named_parameters();
  for (size_t i = 0; i < planned.params.size(); ++i) {
    const gptbuilder::v1::ParameterDescription& p = (*first)[0].params(static_cast<int>(i));
    EXPECT_EQ(p.name(), planned.params[i].name);
    EXPECT_EQ(p.name(), held[i].key());
    EXPECT_EQ(std::vector<int64_t>(p.shape().begin(), p.shape().end()),
              held[i].value().sizes().vec());
    EXPECT_TRUE(p.has_checksum());
  }
  EXPECT_EQ((*first)[0].num_params(), planned.num_params);
  EXPECT_EQ((*first)[0].layer_spec(), planned.layer_spec);
  // The checksum follows the bytes.
  const uint64_t before = (*first)[0].params(0).checksum();
  {
    torch::NoGradGuard no_grad;
    world.ranks[0]->stages()[0]->parameters()[0].add_(1.0);
  }
  EXPECT_NE((*world.ranks[0]->Describe())[0].params(0).checksum(), before);
}

}  // namespace
}  // namespace gptb::model
