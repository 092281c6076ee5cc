#include "core/distributed/grad_buffer_layout.h"

#include <algorithm>
#include <numeric>

namespace gptb::distributed {
namespace {

int64_t RoundUp(int64_t value, int64_t divisor) {
  return (value + divisor - 1) / divisor * divisor;
}

}  // namespace

BufferLayout ComputeBufferLayout(const std::vector<int64_t>& numels,
                                 const std::vector<bool>& shared_embedding,
                                 const BufferLayoutOptions& options) {
  const bool dist_opt = options.use_distributed_optimizer;
  int64_t bucket_divisor = std::lcm<int64_t>(std::max(options.data_parallel_size, 1), 128);
  if (options.pad_buckets_for_high_nccl_busbw) {
    bucket_divisor = std::lcm<int64_t>(bucket_divisor, int64_t{1} << 16);
  }
  auto pad_bucket_end = [&](int64_t end) { return dist_opt ? RoundUp(end, bucket_divisor) : end; };
  auto pad_param_start = [&](int64_t start) { return dist_opt ? RoundUp(start, 64) : start; };
  auto own_bucket = [&](int index) {
    return dist_opt && index < static_cast<int>(shared_embedding.size()) && shared_embedding[index];
  };

  BufferLayout layout;
  int64_t bucket_start = 0;
  int64_t param_start = 0;
  int64_t param_end = 0;
  BucketLayout current;
  // Closes the open bucket at `end` (padding it); returns the padded end.
  auto close_bucket = [&](int64_t end) {
    current.start = bucket_start;
    current.numel_unpadded = end - bucket_start;
    current.end = pad_bucket_end(end);
    layout.numel_unpadded += current.numel_unpadded;
    bucket_start = current.end;
    layout.buckets.push_back(std::move(current));
    current = BucketLayout();
    return bucket_start;
  };

  for (int index = static_cast<int>(numels.size()) - 1; index >= 0; --index) {
    param_start = pad_param_start(param_start);
    if (own_bucket(index) && !current.slots.empty()) param_start = close_bucket(param_start);
    param_end = param_start + numels[index];
    current.slots.push_back(static_cast<int>(layout.slots.size()));
    layout.slots.push_back(
        {index, param_start, param_end, static_cast<int>(layout.buckets.size())});
    if ((options.bucket_size && param_end - bucket_start >= *options.bucket_size) ||
        own_bucket(index)) {
      param_start = close_bucket(param_end);
    } else {
      param_start = param_end;
    }
  }
  if (!current.slots.empty()) close_bucket(param_end);
  layout.numel = bucket_start;
  return layout;
}

std::optional<int64_t> ResolveBucketSize(
    const gptbuilder::v1::DistributedDataParallelConfig& config, int dp_cp_size, int pp_rank,
    bool disable_bucketing) {
  if (!config.overlap_grad_reduce() || pp_rank > 0 || disable_bucketing) return std::nullopt;
  if (config.has_bucket_size()) return config.bucket_size();
  return std::max<int64_t>(40000000, int64_t{1000000} * dp_cp_size);
}

GradientScaling ComputeGradientScaling(bool average_in_collective, bool calculate_per_token_loss,
                                       int dp_cp_size, int expt_dp_size) {
  GradientScaling scaling;
  if (calculate_per_token_loss) return scaling;
  if (average_in_collective) {
    scaling.expert = static_cast<double>(expt_dp_size) / dp_cp_size;
    scaling.average = true;
    return scaling;
  }
  scaling.dense = 1.0 / dp_cp_size;
  scaling.expert = 1.0 / dp_cp_size;
  return scaling;
}

}  // namespace gptb::distributed
