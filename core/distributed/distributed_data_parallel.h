#ifndef GPTB_CORE_DISTRIBUTED_DISTRIBUTED_DATA_PARALLEL_H_
#define GPTB_CORE_DISTRIBUTED_DISTRIBUTED_DATA_PARALLEL_H_

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/distributed/grad_buffer_layout.h"
#include "core/parallel/process_group_collection.h"
#include "core/plan/parameter_table.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::distributed {

struct DdpOptions {
  gptbuilder::v1::DistributedDataParallelConfig config;
  // Bridge's _ddp_wrap: (chunk index > 0) or overlap_param_gather_with_optimizer_step.
  bool disable_bucketing = false;
  // TransformerConfig.calculate_per_token_loss: gradients are not divided by the DP size.
  bool calculate_per_token_loss = false;
};

// One contiguous gradient buffer: the parameters of one (param dtype, grad dtype, is_expert)
// group, in reverse registration order, cut into buckets.
struct GradBuffer {
  torch::Dtype param_dtype = torch::kFloat32;
  torch::Dtype grad_dtype = torch::kFloat32;
  bool is_expert = false;             // reduced over expt_dp instead of dp_cp
  parallel::ProcessGroupPtr group;    // the group its buckets reduce over
  double scaling = 1.0;               // applied to the gradients before the collective
  BufferLayout layout;                // slots index `names` / `params`
  std::vector<std::string> names;     // registration order within the buffer
  std::vector<torch::Tensor> params;  // same order
  torch::Tensor grad_data;            // [layout.numel] of grad_dtype
  torch::Tensor param_data;           // [layout.numel] of param_dtype; distributed optimizer only
};

// Megatron Core's DistributedDataParallel over one model chunk (a torch::nn::Module whose
// parameter names are those of the plan's ParamInfo table).
//
// Every parameter with requires_grad gets a `main_grad`: a view of its slot in a GradBuffer,
// kept in this wrapper's side table (main_grad(name)), because a LibTorch tensor cannot carry
// extra attributes and `.grad` must keep the parameter's dtype. A post hook on each parameter's
// gradient accumulator adds `.grad` into main_grad and frees `.grad`, so after backward the
// gradients live only in the buffers. FinishGradSync() then reduces every bucket; with
// overlap_grad_reduce a bucket's collective starts from the hook as soon as its last gradient
// arrives (on the last micro-batch only, see set_is_last_microbatch).
//
// use_distributed_optimizer: parameters are also moved into contiguous per-buffer param buffers
// (param.data becomes a view; values kept), buckets are padded so each shards evenly over the
// group, and FinishGradSync reduce-scatters (each rank's shard of a bucket is the reduced one;
// on Gloo the whole bucket is all-reduced, a superset). ParamSync() all-gathers the shards
// after an optimizer step has updated this rank's shard.
//
// Wrap after Float16Module: a later dtype change would replace the parameters' gradient
// accumulators and so detach the hooks. Not thread-safe: use one wrapper from the rank's thread
// (autograd runs the hooks on it).
class DistributedDataParallel {
 public:
  // Errors: INVALID_ARGUMENT when a module parameter is missing from `params` (matched by name)
  // or options contradict each other; UNIMPLEMENTED for num_buckets,
  // num_distributed_optimizer_instances > 1 and param_name_patterns_for_fp32_local_accumulation.
  static absl::StatusOr<std::unique_ptr<DistributedDataParallel>> Create(
      std::shared_ptr<torch::nn::Module> module, const std::vector<plan::ParamInfo>& params,
      const parallel::ProcessGroupCollection& groups, const DdpOptions& options);
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  torch::nn::Module& module() const { return *module_; }
  const std::shared_ptr<torch::nn::Module>& module_ptr() const { return module_; }
  // Dense buffers first, then expert buffers, each in first-seen order of their dtype key.
  const std::vector<GradBuffer>& buffers() const { return buffers_; }
  // The bucket size in use (nullopt: one bucket per buffer).
  std::optional<int64_t> bucket_size() const { return bucket_size_; }
  const GradientScaling& scaling() const { return scaling_; }

  // The accumulated (and, after FinishGradSync, reduced) gradient of parameter `name`, shaped
  // like the parameter; undefined for unknown names and parameters without requires_grad.
  torch::Tensor main_grad(const std::string& name) const;

  // Micro-batches before the last one only accumulate (Megatron's no_sync()); the overlapped
  // collectives are launched on the last. Default true.
  void set_is_last_microbatch(bool last) { is_last_microbatch_ = last; }

  // Buckets whose collective has been launched since the last sync: with overlap_grad_reduce the
  // hooks launch them during the last micro-batch's backward; otherwise FinishGradSync does.
  int num_buckets_started() const;

  // Scales and reduces every bucket (waiting for those already started), leaving the mean
  // gradient over the data-parallel group in main_grad. FAILED_PRECONDITION with
  // check_for_nan_in_grad when a local gradient is not finite (nothing is reduced then; peers
  // will time out); DEADLINE_EXCEEDED / INTERNAL when a collective fails.
  absl::Status FinishGradSync();

  // Zeroes every grad buffer and drops any `.grad` left on the parameters.
  void ZeroGradBuffer();

  // Broadcasts every parameter (with or without requires_grad) from the first rank of its
  // data-parallel group: dp_cp for dense parameters, expt_dp for expert ones.
  absl::Status BroadcastParams();

  // Distributed optimizer: all-gathers each bucket's parameter shards from their owners.
  // FAILED_PRECONDITION without use_distributed_optimizer.
  absl::Status ParamSync();

  // Called by the gradient-accumulator hooks (public for them only).
  void OnGradAccumulated(int buffer, int slot);

 private:
  struct BucketState {
    int pending = 0;  // parameters whose gradient has not arrived in this backward
    bool started = false;
    c10::intrusive_ptr<c10d::Work> work;
    torch::Tensor wire;         // what the collective reduces (may be an fp32 copy)
    bool divide_after = false;  // AVG emulated as SUM / size
  };

  DistributedDataParallel() = default;
  absl::Status Build(const std::vector<plan::ParamInfo>& params,
                     const parallel::ProcessGroupCollection& groups, const DdpOptions& options);
  absl::Status StartBucket(int buffer, int bucket);
  void WaitBucket(int buffer, int bucket);
  void ResetBucketStates();

  std::shared_ptr<torch::nn::Module> module_;
  gptbuilder::v1::DistributedDataParallelConfig config_;
  std::optional<int64_t> bucket_size_;
  GradientScaling scaling_;
  std::vector<GradBuffer> buffers_;
  std::vector<std::vector<BucketState>> bucket_states_;
  std::unordered_map<std::string, torch::Tensor> main_grads_;
  // main_grad views per buffer, indexed like GradBuffer::params (for the hooks).
  std::vector<std::vector<torch::Tensor>> main_grad_views_;
  // Every named parameter with its expert flag (for BroadcastParams).
  std::vector<std::pair<torch::Tensor, bool>> all_params_;
  parallel::ProcessGroupPtr dp_cp_;
  parallel::ProcessGroupPtr expt_dp_;
  bool is_last_microbatch_ = true;
  // Gradient accumulators kept alive (their hooks live on them) and the hook keys to remove.
  std::vector<std::pair<c10::intrusive_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
};

}  // namespace gptb::distributed

#endif  // GPTB_CORE_DISTRIBUTED_DISTRIBUTED_DATA_PARALLEL_H_
