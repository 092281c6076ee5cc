#ifndef GPTB_CORE_DISTRIBUTED_WRAP_H_
#define GPTB_CORE_DISTRIBUTED_WRAP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/plan/parameter_table.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::distributed {

// Megatron-Bridge's build_distributed_models decisions (unimodal_build_distributed_models and
// _ddp_wrap, models/common/unimodal.py) as pure functions, so the builder only executes them.
// Python's ValueError / TypeError become INVALID_ARGUMENT with Bridge's message.

enum class DataParallelWrapper { kNone, kDdp, kMegatronFsdp, kTorchFsdp2 };
const char* DataParallelWrapperName(DataParallelWrapper wrapper);  // "none", "ddp", ...

// "ddp_config is required when wrap_with_ddp is True" unless wrap_with_ddp is false or a config
// is given (`ddp_config` null = Python None).
absl::Status CheckDdpConfig(bool wrap_with_ddp,
                            const gptbuilder::v1::DistributedDataParallelConfig* ddp_config);

// Megatron-FSDP, torch FSDP2 or DDP; both FSDP flags: "Using use_megatron_fsdp and
// use_torch_fsdp2 at the same time is not supported.".
absl::StatusOr<DataParallelWrapper> ChooseDataParallelWrapper(bool use_megatron_fsdp,
                                                              bool use_torch_fsdp2);

// Bucketing stays on only for chunk 0 and only without overlap_param_gather_with_optimizer_step.
bool DisableBucketing(int chunk_index, bool overlap_param_gather_with_optimizer_step);

// Float16Module wraps a chunk only under fp16 or bf16 and when a wrapper is given.
bool UseMixedPrecisionWrapper(const gptbuilder::v1::TransformerConfig& transformer,
                              bool mixed_precision_wrapper);

// `.cuda()` only when not FSDP2, not use_cpu_initialization and not on the meta device.
bool MoveToDevice(bool use_torch_fsdp2, bool use_cpu_initialization, bool meta_device);

// Meta-device chunks are materialised (to_empty) only when neither FSDP flavour is on.
bool MaterializeMetaDevice(bool meta_device, bool use_megatron_fsdp, bool use_torch_fsdp2);

// build_virtual_pipeline_stages: one chunk per virtual stage when pp > 1 and vp is set (pre on
// the first chunk of the first pp rank, post on the last chunk of the last pp rank, vp_stage i);
// otherwise one chunk without vp_stage (VP is ignored when pp == 1).
struct VirtualStage {
  bool pre_process = false;
  bool post_process = false;
  std::optional<int> vp_stage;
};
std::vector<VirtualStage> VirtualPipelineStages(int pp_size, int pp_rank,
                                                std::optional<int> vp_size);

// _print_num_params: only on ranks with dp rank 0 and cp rank 0, this line.
bool PrintNumParams(int dp_rank, int cp_rank);
std::string NumParamsMessage(int tp_rank, int pp_rank, int64_t num_params);

// set_defaults_if_not_set_tensor_model_parallel_attributes: the plan's attributes for `name`,
// or tensor_model_parallel False, partition_dim -1, partition_stride 1 when the table has none.
struct TensorParallelAttributes {
  bool tensor_model_parallel = false;
  int partition_dim = -1;
  int partition_stride = 1;
};
TensorParallelAttributes TensorParallelAttributesFor(const std::string& name,
                                                     const std::vector<plan::ParamInfo>& params);

// What happens to one model chunk after it is built, in Bridge's order.
struct ChunkWrap {
  VirtualStage stage;
  bool move_to_device = false;
  bool mixed_precision = false;  // Float16Module (and expert_bias kept fp32)
  bool materialize_meta = false;
  DataParallelWrapper wrapper = DataParallelWrapper::kNone;
  bool disable_bucketing = false;  // DDP only
  bool broadcast_params = false;   // after wrapping (FSDP: FsdpOptions::broadcast_from_source)
};

// Every decision of build_distributed_models for the chunks of one pipeline rank.
// `ddp_config` null = None. Errors as CheckDdpConfig and ChooseDataParallelWrapper (the FSDP
// check runs only when wrapping, as in Bridge).
absl::StatusOr<std::vector<ChunkWrap>> PlanDistributedWrap(
    const gptbuilder::v1::TransformerConfig& transformer, const gptbuilder::v1::BuildOptions& build,
    const gptbuilder::v1::DistributedDataParallelConfig* ddp_config, int pp_size, int pp_rank);

}  // namespace gptb::distributed

#endif  // GPTB_CORE_DISTRIBUTED_WRAP_H_
