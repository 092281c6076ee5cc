#include "core/distributed/wrap.h"

#include <gtest/gtest.h>

namespace gptb::distributed {
namespace {

using gptbuilder::v1::BuildOptions;
using gptbuilder::v1::DistributedDataParallelConfig;
using gptbuilder::v1::TransformerConfig;

// Bridge test_unimodal.py::_ddp_wrap rows.
TEST(DdpWrapTest, BothFsdpFlagsRaise) {
  absl::StatusOr<DataParallelWrapper> w = ChooseDataParallelWrapper(true, true);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.status().message(),
            "Using use_megatron_fsdp and use_torch_fsdp2 at the same time is not supported.");
}

TEST(DdpWrapTest, WrapperChoice) {
  EXPECT_EQ(*ChooseDataParallelWrapper(false, false), DataParallelWrapper::kDdp);
  EXPECT_EQ(*ChooseDataParallelWrapper(true, false), DataParallelWrapper::kMegatronFsdp);
  EXPECT_EQ(*ChooseDataParallelWrapper(false, true), DataParallelWrapper::kTorchFsdp2);
}

TEST(DdpWrapTest, BucketingOnlyForChunkZeroWithoutOverlapFlag) {
  EXPECT_FALSE(DisableBucketing(0, false));
  EXPECT_TRUE(DisableBucketing(1, false));
  EXPECT_TRUE(DisableBucketing(0, true));
  EXPECT_TRUE(DisableBucketing(1, true));
}

TEST(DdpWrapTest, BroadcastOnlyWithDataParallelRandomInitAndListLength) {
  TransformerConfig transformer;
  transformer.set_pipeline_model_parallel_size(2);
  transformer.set_virtual_pipeline_model_parallel_size(2);
  DistributedDataParallelConfig ddp;
  for (bool random_init : {true, false}) {
    BuildOptions build;
    build.set_data_parallel_random_init(random_init);
    absl::StatusOr<std::vector<ChunkWrap>> plan =
        PlanDistributedWrap(transformer, build, &ddp, /*pp_size=*/2, /*pp_rank=*/0);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_EQ(plan->size(), 2u);
    for (const ChunkWrap& chunk : *plan) {
      EXPECT_EQ(chunk.broadcast_params, random_init);
      EXPECT_EQ(chunk.wrapper, DataParallelWrapper::kDdp);
    }
    EXPECT_FALSE((*plan)[0].disable_bucketing);
    EXPECT_TRUE((*plan)[1].disable_bucketing);
  }
}

// Bridge test_unimodal.py::unimodal_build_distributed_models rows.
TEST(UnimodalBuildTest, DdpConfigRequiredWhenWrapping) {
  TransformerConfig transformer;
  BuildOptions build;  // wrap_with_ddp defaults to True: the GPT default raises without a config
  absl::Status status = PlanDistributedWrap(transformer, build, nullptr, 1, 0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "ddp_config is required when wrap_with_ddp is True");
  build.set_wrap_with_ddp(false);
  absl::StatusOr<std::vector<ChunkWrap>> plan =
      PlanDistributedWrap(transformer, build, nullptr, 1, 0);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)[0].wrapper, DataParallelWrapper::kNone);
  EXPECT_FALSE((*plan)[0].broadcast_params);
}

TEST(UnimodalBuildTest, FsdpConflictOnlyMattersWhenWrapping) {
  TransformerConfig transformer;
  BuildOptions build;
  build.set_use_megatron_fsdp(true);
  build.set_use_torch_fsdp2(true);
  DistributedDataParallelConfig ddp;
  EXPECT_EQ(PlanDistributedWrap(transformer, build, &ddp, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  build.set_wrap_with_ddp(false);
  EXPECT_TRUE(PlanDistributedWrap(transformer, build, &ddp, 1, 0).ok());
}

TEST(UnimodalBuildTest, VirtualPipelineStages) {
  // PP 1 or VP None: a single chunk.
  std::vector<VirtualStage> single = VirtualPipelineStages(1, 0, 3);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_TRUE(single[0].pre_process && single[0].post_process);
  EXPECT_FALSE(single[0].vp_stage.has_value());
  ASSERT_EQ(VirtualPipelineStages(4, 1, std::nullopt).size(), 1u);
  // VP 3: pre only on chunk 0 of the first pp rank, post only on chunk 2 of the last. (Bridge's
  // row mocks one rank as both first and last; with real ranks that needs pp 1, where VP is
  // ignored, so the two ends are checked on their own ranks.)
  std::vector<VirtualStage> first = VirtualPipelineStages(2, 0, 3);
  std::vector<VirtualStage> last = VirtualPipelineStages(2, 1, 3);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(last.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(first[i].vp_stage, i);
    EXPECT_EQ(first[i].pre_process, i == 0);
    EXPECT_FALSE(first[i].post_process);
    EXPECT_FALSE(last[i].pre_process);
    EXPECT_EQ(last[i].post_process, i == 2);
  }
}

TEST(UnimodalBuildTest, MixedPrecisionWrapperOnlyWithHalfAndWrapper) {
  TransformerConfig transformer;
  EXPECT_FALSE(UseMixedPrecisionWrapper(transformer, true));
  transformer.set_bf16(true);
  EXPECT_TRUE(UseMixedPrecisionWrapper(transformer, true));
  EXPECT_FALSE(UseMixedPrecisionWrapper(transformer, false));
  transformer.set_bf16(false);
  transformer.set_fp16(true);
  EXPECT_TRUE(UseMixedPrecisionWrapper(transformer, true));
}

TEST(UnimodalBuildTest, DeviceMoveAndMetaMaterialisation) {
  EXPECT_TRUE(MoveToDevice(false, false, false));
  EXPECT_FALSE(MoveToDevice(true, false, false));
  EXPECT_FALSE(MoveToDevice(false, true, false));
  EXPECT_FALSE(MoveToDevice(false, false, true));
  EXPECT_TRUE(MaterializeMetaDevice(true, false, false));
  EXPECT_FALSE(MaterializeMetaDevice(true, true, false));
  EXPECT_FALSE(MaterializeMetaDevice(true, false, true));
  EXPECT_FALSE(MaterializeMetaDevice(false, false, false));
}

TEST(UnimodalBuildTest, PrintNumParamsAndTensorParallelDefaults) {
  EXPECT_TRUE(PrintNumParams(0, 0));
  EXPECT_FALSE(PrintNumParams(1, 0));
  EXPECT_FALSE(PrintNumParams(0, 1));
  EXPECT_EQ(NumParamsMessage(1, 0, 8),
            " > number of parameters on (tensor, pipeline) model parallel rank (1, 0): 8");
  plan::ParamInfo column;
  column.name = "decoder.layers.0.mlp.linear_fc1.weight";
  column.tensor_model_parallel = true;
  column.partition_dim = 0;
  column.partition_stride = 2;
  TensorParallelAttributes a = TensorParallelAttributesFor(column.name, {column});
  EXPECT_TRUE(a.tensor_model_parallel);
  EXPECT_EQ(a.partition_dim, 0);
  EXPECT_EQ(a.partition_stride, 2);
  TensorParallelAttributes d = TensorParallelAttributesFor("unplanned.weight", {column});
  EXPECT_FALSE(d.tensor_model_parallel);
  EXPECT_EQ(d.partition_dim, -1);
  EXPECT_EQ(d.partition_stride, 1);
}

TEST(UnimodalBuildTest, PlanAppliesEveryDecisionPerChunk) {
  TransformerConfig transformer;
  transformer.set_bf16(true);
  transformer.set_use_cpu_initialization(true);
  BuildOptions build;
  build.set_use_torch_fsdp2(true);
  build.set_overlap_param_gather_with_optimizer_step(true);
  DistributedDataParallelConfig ddp;
  absl::StatusOr<std::vector<ChunkWrap>> plan = PlanDistributedWrap(transformer, build, &ddp, 1, 0);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 1u);
  const ChunkWrap& chunk = (*plan)[0];
  EXPECT_EQ(chunk.wrapper, DataParallelWrapper::kTorchFsdp2);
  EXPECT_TRUE(chunk.mixed_precision);
  EXPECT_FALSE(chunk.move_to_device);
  EXPECT_FALSE(chunk.materialize_meta);
  EXPECT_TRUE(chunk.disable_bucketing);
  EXPECT_TRUE(chunk.broadcast_params);  // data_parallel_random_init defaults to True
}

}  // namespace
}  // namespace gptb::distributed
