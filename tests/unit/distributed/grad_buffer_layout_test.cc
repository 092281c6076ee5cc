#include "core/distributed/grad_buffer_layout.h"

#include <gtest/gtest.h>

#include <numeric>

namespace gptb::distributed {
namespace {

// Invariants every layout satisfies: slots in reverse registration order, non-overlapping and
// increasing, each inside its bucket, buckets contiguous and covering the buffer.
void ExpectWellFormed(const BufferLayout& layout, const std::vector<int64_t>& numels) {
  ASSERT_EQ(layout.slots.size(), numels.size());
  int64_t previous_end = 0;
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const ParamSlot& slot = layout.slots[i];
    EXPECT_EQ(slot.index, static_cast<int>(numels.size() - 1 - i));
    EXPECT_EQ(slot.end - slot.start, numels[slot.index]);
    EXPECT_GE(slot.start, previous_end);
    previous_end = slot.end;
    const BucketLayout& bucket = layout.buckets.at(slot.bucket);
    EXPECT_GE(slot.start, bucket.start);
    EXPECT_LE(slot.end, bucket.end);
  }
  int64_t start = 0;
  for (const BucketLayout& bucket : layout.buckets) {
    EXPECT_EQ(bucket.start, start);
    EXPECT_LE(bucket.start + bucket.numel_unpadded, bucket.end);
    start = bucket.end;
  }
  EXPECT_EQ(layout.numel, start);
}

TEST(GradBufferLayoutTest, ReverseOrderSingleBucketWithoutPadding) {
  const std::vector<int64_t> numels = {10, 20, 30};
  BufferLayout layout = ComputeBufferLayout(numels, {}, {});
  ExpectWellFormed(layout, numels);
  ASSERT_EQ(layout.buckets.size(), 1u);
  // The last registered parameter comes first (backprop order), packed without gaps.
  EXPECT_EQ(layout.slots[0].start, 0);
  EXPECT_EQ(layout.slots[1].start, 30);
  EXPECT_EQ(layout.slots[2].start, 50);
  EXPECT_EQ(layout.numel, 60);
  EXPECT_EQ(layout.numel_unpadded, 60);
}

TEST(GradBufferLayoutTest, BucketsCloseOnceTheyReachBucketSize) {
  const std::vector<int64_t> numels = {5, 7, 11, 13, 17, 19};
  BufferLayoutOptions options;
  options.bucket_size = 25;
  BufferLayout layout = ComputeBufferLayout(numels, {}, options);
  ExpectWellFormed(layout, numels);
  for (size_t k = 0; k < layout.buckets.size(); ++k) {
    const BucketLayout& bucket = layout.buckets[k];
    const int64_t size = bucket.end - bucket.start;
    if (k + 1 < layout.buckets.size()) {
      EXPECT_GE(size, 25) << k;
      // Without its last parameter the bucket was still below bucket_size.
      const ParamSlot& last = layout.slots[bucket.slots.back()];
      EXPECT_LT(last.start - bucket.start, 25) << k;
    }
  }
  // 19 + 17 | 13 + 11 + 7 | 5
  ASSERT_EQ(layout.buckets.size(), 3u);
  EXPECT_EQ(layout.buckets[0].end, 36);
  EXPECT_EQ(layout.buckets[1].end, 67);
  EXPECT_EQ(layout.buckets[2].end, 72);
}

TEST(GradBufferLayoutTest, DistributedOptimizerAlignsParamsAndPadsBuckets) {
  const std::vector<int64_t> numels = {10, 100, 70, 3};
  for (int dp : {1, 3, 8, 256}) {
    BufferLayoutOptions options;
    options.use_distributed_optimizer = true;
    options.data_parallel_size = dp;
    options.bucket_size = 150;
    BufferLayout layout = ComputeBufferLayout(numels, {}, options);
    ExpectWellFormed(layout, numels);
    const int64_t divisor = std::lcm<int64_t>(dp, 128);
    for (const ParamSlot& slot : layout.slots) EXPECT_EQ(slot.start % 64, 0) << dp;
    for (const BucketLayout& bucket : layout.buckets) {
      EXPECT_EQ(bucket.end % divisor, 0) << dp;
      EXPECT_EQ((bucket.end - bucket.start) % dp, 0) << dp;
    }
    EXPECT_LT(layout.numel_unpadded, layout.numel);
  }
  BufferLayoutOptions busbw;
  busbw.use_distributed_optimizer = true;
  busbw.pad_buckets_for_high_nccl_busbw = true;
  busbw.data_parallel_size = 6;
  BufferLayout layout = ComputeBufferLayout(numels, {}, busbw);
  EXPECT_EQ(layout.numel % std::lcm<int64_t>(std::lcm<int64_t>(6, 128), 65536), 0);
}

TEST(GradBufferLayoutTest, SharedEmbeddingGetsItsOwnBucketWithDistributedOptimizer) {
  // Registration: word embeddings (shared) first, a layer, the tied output copy (shared) last.
  const std::vector<int64_t> numels = {64, 200, 64};
  const std::vector<bool> shared = {true, false, true};
  BufferLayoutOptions options;
  options.use_distributed_optimizer = true;
  options.data_parallel_size = 2;
  BufferLayout layout = ComputeBufferLayout(numels, shared, options);
  ExpectWellFormed(layout, numels);
  ASSERT_EQ(layout.buckets.size(), 3u);
  for (const BucketLayout& bucket : layout.buckets) EXPECT_EQ(bucket.slots.size(), 1u);
  // Without the distributed optimizer the flag changes nothing.
  options.use_distributed_optimizer = false;
  EXPECT_EQ(ComputeBufferLayout(numels, shared, options).buckets.size(), 1u);
}

TEST(GradBufferLayoutTest, BucketSizeFollowsMegatron) {
  gptbuilder::v1::DistributedDataParallelConfig config;
  EXPECT_EQ(ResolveBucketSize(config, 8, 0, false), std::nullopt);  // no overlap: one bucket
  config.set_overlap_grad_reduce(true);
  EXPECT_EQ(ResolveBucketSize(config, 8, 0, false), 40000000);
  EXPECT_EQ(ResolveBucketSize(config, 64, 0, false), 64000000);
  EXPECT_EQ(ResolveBucketSize(config, 8, 1, false), std::nullopt);  // pp rank > 0
  EXPECT_EQ(ResolveBucketSize(config, 8, 0, true), std::nullopt);   // disable_bucketing
  config.set_bucket_size(1000);
  EXPECT_EQ(ResolveBucketSize(config, 8, 0, false), 1000);
}

TEST(GradBufferLayoutTest, GradientScalingFollowsMegatron) {
  GradientScaling mean = ComputeGradientScaling(false, false, 8, 2);
  EXPECT_DOUBLE_EQ(mean.dense, 1.0 / 8);
  EXPECT_DOUBLE_EQ(mean.expert, 1.0 / 8);
  EXPECT_FALSE(mean.average);
  GradientScaling avg = ComputeGradientScaling(true, false, 8, 2);
  EXPECT_DOUBLE_EQ(avg.dense, 1.0);
  EXPECT_DOUBLE_EQ(avg.expert, 2.0 / 8);
  EXPECT_TRUE(avg.average);
  GradientScaling per_token = ComputeGradientScaling(false, true, 8, 2);
  EXPECT_DOUBLE_EQ(per_token.dense, 1.0);
  EXPECT_DOUBLE_EQ(per_token.expert, 1.0);
  EXPECT_FALSE(per_token.average);
}

}  // namespace
}  // namespace gptb::distributed
