#include "core/train/pipeline_order.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gptb::train {

std::string ToString(const PipelineOp& op) {
  return absl::StrCat(op.forward ? "F" : "B", op.chunk, ".", op.microbatch);
}

absl::StatusOr<std::vector<PipelineOp>> PipelineOrder(const PipelineShape& shape) {
  const int p = shape.pp_size, v = shape.num_chunks, m = shape.num_microbatches;
  if (p < 1 || v < 1 || m < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline sizes must be positive; got pp ", p,
                                                   ", chunks ", v, ", micro-batches ", m));
  }
  if (shape.pp_rank < 0 || shape.pp_rank >= p) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipeline rank ", shape.pp_rank, " is not in [0, ", p, ")"));
  }
  if (v > 1 && p == 1) {
    return absl::InvalidArgumentError("virtual pipeline chunks need a pipeline of 2 or more ranks");
  }
  // (micro-batch, chunk) of each forward, in order.
  std::vector<std::pair<int, int>> table;
  int warmup = 0;
  if (v == 1) {
    for (int i = 0; i < m; ++i) table.emplace_back(i, 0);
    warmup = std::min(p - shape.pp_rank - 1, m);
  } else {
    const int group = shape.microbatch_group_size > 0 ? shape.microbatch_group_size : p;
    if (group < p || group > m) {
      return absl::InvalidArgumentError(
          absl::StrCat("the interleaved schedule runs micro-batches in groups of ", group,
                       " per virtual stage, which must lie in [pipeline_model_parallel_size = ", p,
                       ", num_micro_batches = ", m, "]; use at least ", p, " micro-batches"));
    }
    // Megatron's rule: a final group shorter than the pipeline stalls it (and, with sends that
    // are matched one to one, can deadlock it).
    const int remainder = m % group;
    if (remainder > 0 && remainder < p) {
      return absl::InvalidArgumentError(
          absl::StrCat("the interleaved schedule runs micro-batches in groups of ", group,
                       " per virtual stage; num_micro_batches = ", m, " leaves a last group of ",
                       remainder, ", fewer than pipeline_model_parallel_size = ", p,
                       "; use a multiple of the group size (or a remainder of at least ", p, ")"));
    }
    for (int first = 0; first < m; first += group) {
      // The last group takes every remaining micro-batch.
      const int last = first + group >= m ? m : first + group;
      for (int chunk = 0; chunk < v; ++chunk) {
        for (int i = first; i < last; ++i) table.emplace_back(i, chunk);
      }
      if (last == m) break;
    }
    warmup = std::min(2 * (p - shape.pp_rank - 1) + (v - 1) * group, m * v);
  }
  const int total = static_cast<int>(table.size());
  auto forward = [&](int k) { return PipelineOp{true, table[k].second, table[k].first}; };
  auto backward = [&](int k) { return PipelineOp{false, v - 1 - table[k].second, table[k].first}; };
  std::vector<PipelineOp> ops;
  ops.reserve(2 * total);
  for (int k = 0; k < warmup; ++k) ops.push_back(forward(k));
  const int steady = total - warmup;
  for (int k = 0; k < steady; ++k) {
    ops.push_back(forward(warmup + k));
    ops.push_back(backward(k));
  }
  for (int k = steady; k < total; ++k) ops.push_back(backward(k));
  return ops;
}

}  // namespace gptb::train
