#ifndef GPTB_CORE_DISTRIBUTED_FULLY_SHARDED_DATA_PARALLEL_H_
#define GPTB_CORE_DISTRIBUTED_FULLY_SHARDED_DATA_PARALLEL_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/parallel/process_group_collection.h"
#include "core/plan/parameter_table.h"

namespace gptb::distributed {

enum class FsdpFlavor { kMegatronFsdp, kTorchFsdp2 };
const char* FsdpFlavorName(FsdpFlavor flavor);  // "megatron_fsdp", "torch_fsdp2"

struct FsdpOptions {
  FsdpFlavor flavor = FsdpFlavor::kMegatronFsdp;
  // Bridge broadcasts parameters from the DP source rank when data_parallel_random_init. A shard
  // cannot be broadcast after the fact (the source holds only its own slice), so the broadcast
  // happens here, on the full parameters, before they are sharded.
  bool broadcast_from_source = false;
};

// FSDP-style parameter sharding (ZeRO-3) of one model chunk: each rank of the parameter's
// data-parallel group (dp_cp, or expt_dp for expert parameters) keeps 1/dp of every parameter's
// flattened storage (the flat tensor is zero-padded to a multiple of dp; rank r keeps elements
// [r * s, (r + 1) * s), s = ceil(numel / dp)). Between Gather() and Release() the parameters
// hold their full values; otherwise their data is an empty tensor, so the full weights cost no
// memory. Parameter names (and so state_dict keys) are unchanged.
//
// Implemented: sharded storage, gather/release, gradient reduce-scatter into sharded gradients
// with Megatron's DDP scaling. Not implemented: automatic gather before forward / re-gather
// before backward (LibTorch modules have no forward hooks: the caller gathers around its
// forward+backward and releases after), Megatron-FSDP's data_parallel_sharding_strategy
// variants (every strategy shards parameters here), and sharded optimizer state.
class FullyShardedDataParallel {
 public:
  // Shards every parameter of `module` (all must be in `params`, matched by name) and releases
  // the full tensors. INVALID_ARGUMENT for unknown parameters, FAILED_PRECONDITION without the
  // dp_cp / expt_dp groups, DEADLINE_EXCEEDED / INTERNAL when the broadcast fails.
  static absl::StatusOr<std::unique_ptr<FullyShardedDataParallel>> Create(
      std::shared_ptr<torch::nn::Module> module, const std::vector<plan::ParamInfo>& params,
      const parallel::ProcessGroupCollection& groups, const FsdpOptions& options);

  torch::nn::Module& module() const { return *module_; }
  FsdpFlavor flavor() const { return flavor_; }
  bool gathered() const { return gathered_; }

  // All-gathers every parameter's shards and gives each parameter its full value.
  absl::Status Gather();
  // Drops the full values (parameters become empty); shards are kept. Gradients on the
  // parameters are dropped too: call ReduceScatterGradients() first.
  void Release();

  // This rank's shard of parameter `name` (flat, padded length / dp); undefined if unknown.
  torch::Tensor shard(const std::string& name) const;
  // This rank's shard of the reduced gradient of `name` (same layout as shard()).
  torch::Tensor sharded_grad(const std::string& name) const;

  // After backward (parameters gathered): reduce-scatters every parameter's `.grad` over its
  // group, scaled like Megatron DDP (pre-scale by 1 / dp_cp, SUM), accumulating into
  // sharded_grad; then frees `.grad`. FAILED_PRECONDITION when not gathered.
  absl::Status ReduceScatterGradients();
  // Zeroes the sharded gradients.
  void ZeroGradShards();

 private:
  struct Sharded {
    std::string name;
    torch::Tensor param;
    std::vector<int64_t> shape;
    int64_t numel = 0;
    parallel::ProcessGroupPtr group;
    torch::Tensor shard;
    torch::Tensor grad_shard;
  };

  FullyShardedDataParallel() = default;
  const Sharded* Find(const std::string& name) const;

  std::shared_ptr<torch::nn::Module> module_;
  FsdpFlavor flavor_ = FsdpFlavor::kMegatronFsdp;
  std::vector<Sharded> params_;
  double grad_scaling_ = 1.0;
  bool gathered_ = false;
};

}  // namespace gptb::distributed

#endif  // GPTB_CORE_DISTRIBUTED_FULLY_SHARDED_DATA_PARALLEL_H_
