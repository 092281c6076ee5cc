#ifndef GPTB_CORE_DISTRIBUTED_GRAD_BUFFER_LAYOUT_H_
#define GPTB_CORE_DISTRIBUTED_GRAD_BUFFER_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::distributed {

// Where one parameter lives in a contiguous gradient (and parameter) buffer.
struct ParamSlot {
  int index = 0;  // position of the parameter in the registration-order list given
  int64_t start = 0;
  int64_t end = 0;  // start + numel
  int bucket = 0;
};

// A bucket: the unit of one gradient collective. [start, end) includes end padding.
struct BucketLayout {
  int64_t start = 0;
  int64_t end = 0;
  int64_t numel_unpadded = 0;
  std::vector<int> slots;  // indices into BufferLayout::slots
};

struct BufferLayout {
  std::vector<ParamSlot> slots;  // buffer order: REVERSE registration order (backprop order)
  std::vector<BucketLayout> buckets;
  int64_t numel = 0;           // with padding
  int64_t numel_unpadded = 0;  // sum of the buckets' unpadded sizes
};

struct BufferLayoutOptions {
  std::optional<int64_t> bucket_size;  // nullopt: one bucket for the whole buffer
  bool use_distributed_optimizer = false;
  bool pad_buckets_for_high_nccl_busbw = false;
  int data_parallel_size = 1;  // size of the group the buffer reduces over
};

// Megatron's _ParamAndGradBuffer layout for parameters given in registration order with their
// element counts: parameters are placed in reverse order; a bucket closes once it holds at least
// bucket_size elements. With the distributed optimizer, parameters start at multiples of 64
// elements, buckets end at multiples of lcm(dp, 128) (lcm(dp, 128, 65536) with
// pad_buckets_for_high_nccl_busbw) so every bucket shards evenly, and shared-embedding
// parameters get a bucket of their own. Without it there is no padding at all.
BufferLayout ComputeBufferLayout(const std::vector<int64_t>& numels,
                                 const std::vector<bool>& shared_embedding,
                                 const BufferLayoutOptions& options);

// DistributedDataParallel's bucket size: config.bucket_size, or max(40e6, 1e6 * dp_cp) when
// unset; none (one bucket) without overlap_grad_reduce, on pipeline ranks > 0 and with
// disable_bucketing.
std::optional<int64_t> ResolveBucketSize(
    const gptbuilder::v1::DistributedDataParallelConfig& config, int dp_cp_size, int pp_rank,
    bool disable_bucketing);

// How gradients are scaled before the collective and which reduction it uses.
struct GradientScaling {
  double dense = 1.0;    // factor on buffers reduced over dp_cp
  double expert = 1.0;   // factor on buffers reduced over expt_dp
  bool average = false;  // the collective averages (AVG) instead of summing
};

// Megatron's choice: per-token loss -> 1, 1, SUM; average_in_collective -> 1, edp / dp_cp, AVG;
// otherwise 1 / dp_cp for both, SUM (so the reduced gradient is the mean over dp_cp).
GradientScaling ComputeGradientScaling(bool average_in_collective, bool calculate_per_token_loss,
                                       int dp_cp_size, int expt_dp_size);

}  // namespace gptb::distributed

#endif  // GPTB_CORE_DISTRIBUTED_GRAD_BUFFER_LAYOUT_H_
