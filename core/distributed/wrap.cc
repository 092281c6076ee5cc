#include "core/distributed/wrap.h"

#include "absl/strings/str_cat.h"

namespace gptb::distributed {

const char* DataParallelWrapperName(DataParallelWrapper wrapper) {
  switch (wrapper) {
    case DataParallelWrapper::kNone:
      return "none";
    case DataParallelWrapper::kDdp:
      return "ddp";
    case DataParallelWrapper::kMegatronFsdp:
      return "megatron_fsdp";
    case DataParallelWrapper::kTorchFsdp2:
      return "torch_fsdp2";
  }
  return "?";
}

absl::Status CheckDdpConfig(bool wrap_with_ddp,
                            const gptbuilder::v1::DistributedDataParallelConfig* ddp_config) {
  if (wrap_with_ddp && ddp_config == nullptr) {
    return absl::InvalidArgumentError("ddp_config is required when wrap_with_ddp is True");
  }
  return absl::OkStatus();
}

absl::StatusOr<DataParallelWrapper> ChooseDataParallelWrapper(bool use_megatron_fsdp,
                                                              bool use_torch_fsdp2) {
  if (use_megatron_fsdp) {
    if (use_torch_fsdp2) {
      return absl::InvalidArgumentError(
          "Using use_megatron_fsdp and use_torch_fsdp2 at the same time is not supported.");
    }
    return DataParallelWrapper::kMegatronFsdp;
  }
  return use_torch_fsdp2 ? DataParallelWrapper::kTorchFsdp2 : DataParallelWrapper::kDdp;
}

bool DisableBucketing(int chunk_index, bool overlap_param_gather_with_optimizer_step) {
  return chunk_index > 0 || overlap_param_gather_with_optimizer_step;
}

bool UseMixedPrecisionWrapper(const gptbuilder::v1::TransformerConfig& transformer,
                              bool mixed_precision_wrapper) {
  return (transformer.fp16() || transformer.bf16()) && mixed_precision_wrapper;
}

bool MoveToDevice(bool use_torch_fsdp2, bool use_cpu_initialization, bool meta_device) {
  return !use_torch_fsdp2 && !use_cpu_initialization && !meta_device;
}

bool MaterializeMetaDevice(bool meta_device, bool use_megatron_fsdp, bool use_torch_fsdp2) {
  return meta_device && !use_torch_fsdp2 && !use_megatron_fsdp;
}

std::vector<VirtualStage> VirtualPipelineStages(int pp_size, int pp_rank,
                                                std::optional<int> vp_size) {
  const bool first = pp_rank == 0;
  const bool last = pp_rank == pp_size - 1;
  if (pp_size > 1 && vp_size.has_value()) {
    std::vector<VirtualStage> stages;
    for (int i = 0; i < *vp_size; ++i) {
      stages.push_back({i == 0 && first, i == *vp_size - 1 && last, i});
    }
    return stages;
  }
  return {VirtualStage{first, last, std::nullopt}};
}

bool PrintNumParams(int dp_rank, int cp_rank) { return dp_rank == 0 && cp_rank == 0; }

std::string NumParamsMessage(int tp_rank, int pp_rank, int64_t num_params) {
  return absl::StrCat(" > number of parameters on (tensor, pipeline) model parallel rank (",
                      tp_rank, ", ", pp_rank, "): ", num_params);
}

TensorParallelAttributes TensorParallelAttributesFor(const std::string& name,
                                                     const std::vector<plan::ParamInfo>& params) {
  for (const plan::ParamInfo& info : params) {
    if (info.name == name) {
      return {info.tensor_model_parallel, info.partition_dim, info.partition_stride};
    }
  }
  return {};
}

absl::StatusOr<std::vector<ChunkWrap>> PlanDistributedWrap(
    const gptbuilder::v1::TransformerConfig& transformer, const gptbuilder::v1::BuildOptions& build,
    const gptbuilder::v1::DistributedDataParallelConfig* ddp_config, int pp_size, int pp_rank) {
  if (absl::Status s = CheckDdpConfig(build.wrap_with_ddp(), ddp_config); !s.ok()) return s;
  DataParallelWrapper wrapper = DataParallelWrapper::kNone;
  if (build.wrap_with_ddp()) {
    absl::StatusOr<DataParallelWrapper> chosen =
        ChooseDataParallelWrapper(build.use_megatron_fsdp(), build.use_torch_fsdp2());
    if (!chosen.ok()) return chosen.status();
    wrapper = *chosen;
  }
  std::optional<int> vp_size;
  if (transformer.has_virtual_pipeline_model_parallel_size()) {
    vp_size = transformer.virtual_pipeline_model_parallel_size();
  }
  const bool meta = transformer.init_model_with_meta_device();
  std::vector<ChunkWrap> chunks;
  const std::vector<VirtualStage> stages = VirtualPipelineStages(pp_size, pp_rank, vp_size);
  for (int i = 0; i < static_cast<int>(stages.size()); ++i) {
    ChunkWrap chunk;
    chunk.stage = stages[i];
    chunk.move_to_device =
        MoveToDevice(build.use_torch_fsdp2(), transformer.use_cpu_initialization(), meta);
    chunk.mixed_precision = UseMixedPrecisionWrapper(transformer, build.mixed_precision_wrapper());
    chunk.materialize_meta =
        MaterializeMetaDevice(meta, build.use_megatron_fsdp(), build.use_torch_fsdp2());
    chunk.wrapper = wrapper;
    if (wrapper != DataParallelWrapper::kNone) {
      chunk.disable_bucketing =
          DisableBucketing(i, build.overlap_param_gather_with_optimizer_step());
      chunk.broadcast_params = build.data_parallel_random_init();
    }
    chunks.push_back(chunk);
  }
  return chunks;
}

}  // namespace gptb::distributed
