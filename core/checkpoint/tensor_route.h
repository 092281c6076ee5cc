#ifndef GPTB_CORE_CHECKPOINT_TENSOR_ROUTE_H_
#define GPTB_CORE_CHECKPOINT_TENSOR_ROUTE_H_

// Where the rows of a canonical tensor lie in stored tensors: the one mechanism behind every
// checkpoint layout. A canonical checkpoint stores each tensor as is (one segment); a Hugging
// Face checkpoint stores linear_qkv as q/k/v (one segment per query group and projection), a
// gated fc1 as gate and up (two segments), GPT-2's Conv1D weights transposed. Reading or writing
// a slice of a canonical tensor touches only the stored bytes of that slice.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/safetensors_header.h"
#include "core/checkpoint/sharded_safetensors.h"

namespace gptb::checkpoint {

// Canonical rows [row, row + rows) (dim 0) stored in tensor `tensor`: as its rows
// [offset, offset + rows), or, when `transposed`, as its columns [offset, offset + rows) (a
// Conv1D weight [in, out] holding the canonical [out, in]; the canonical tensor is 2-D then).
//
// With `stack` >= 0 the stored tensor has one leading dimension more (transformers' fused
// experts, [experts, ...]) and the segment lies in its slice `stack`, which is then what the
// sentence above calls the stored tensor; canonical row row + i is that slice's row (column when
// transposed) offset + i * stride (GPT-OSS stores gate and up interleaved: stride 2). A stacked
// route is written whole (every segment of one slice at once).
struct Segment {
  int64_t row = 0;
  int64_t rows = 0;
  std::string tensor;
  int64_t offset = 0;
  bool transposed = false;
  int64_t stack = -1;
  int64_t stride = 1;  // only with stack >= 0
};

struct TensorRoute {
  std::string name;            // canonical name
  std::vector<int64_t> shape;  // canonical shape (rank >= 1)
  // Ascending, disjoint. Canonical rows no segment covers are not stored (vocabulary padding):
  // reads report them, writes drop them.
  std::vector<Segment> segments;
};

// A canonical tensor stored as is under its own name; rows past `stored_rows` are not stored.
TensorRoute IdentityRoute(const std::string& name, const std::vector<int64_t>& shape,
                          int64_t stored_rows);

// [start, start + length) canonical rows.
struct RowRange {
  int64_t start = 0;
  int64_t length = 0;
  bool operator==(const RowRange& o) const { return start == o.start && length == o.length; }
};

// Checks `route` against the stored tensors and returns their (common) dtype: every segment's
// tensor exists, the segments are ascending and disjoint within the canonical rows, a plain
// segment's tensor has the canonical rank and trailing dims with enough rows, a transposed one is
// 2-D [canonical dim 1, >= offset + rows]. INVALID_ARGUMENT naming the tensors otherwise.
absl::StatusOr<DType> ValidateRoute(const ShardedSafetensorsReader& reader,
                                    const TensorRoute& route);

// Copies the canonical sub-block [start, start + length) along `dim` (0, or 1 for a 2-D tensor)
// into `out` (dense row-major, the canonical shape with shape[dim] = length, elements of the
// stored dtype), reading only the stored bytes it needs (along dim 1 a segment covering part of
// a plain stored tensor reads its whole column range). Rows no segment covers are left untouched
// and returned, ascending. The route must have passed ValidateRoute on this reader.
absl::StatusOr<std::vector<RowRange>> ReadRoute(const ShardedSafetensorsReader& reader,
                                                const TensorRoute& route, int dim, int64_t start,
                                                int64_t length, void* out);

// Whether `route` has a stacked segment, and so must be written whole (WriteRoute).
bool IsStackedRoute(const TensorRoute& route);

// Writes the canonical sub-block [start, start + length) along `dim` from `data` (dense
// row-major, elements of `item_size` bytes) into the stored tensors; rows no segment covers are
// dropped. Along dim 1 every segment must cover its whole stored tensor (UNIMPLEMENTED
// otherwise; column-sliced tensors -- row-parallel weights -- are stored whole in every layout).
// Thread-safe as the writer is; concurrent writes must not overlap.
absl::Status WriteRoute(ShardedSafetensorsWriter& writer, const TensorRoute& route, int dim,
                        int64_t start, int64_t length, const void* data, size_t item_size);

// The stored tensors that `routes` write, in first-use order, each with the shape its segments
// imply (rows = the largest offset + rows used) and the dtype of its route. INVALID_ARGUMENT
// when two routes share a stored tensor with different dtypes or trailing dims.
absl::StatusOr<std::vector<TensorSpec>> StoredTensorSpecs(const std::vector<TensorRoute>& routes,
                                                          const std::vector<DType>& dtypes);

// out[c][r] = in[r][c] for a [rows, cols] block of `item_size`-byte elements, `in` rows
// `in_stride` elements apart and `out` rows `out_stride` elements apart.
void TransposeBlock(const void* in, int64_t in_stride, int64_t rows, int64_t cols, size_t item_size,
                    void* out, int64_t out_stride);

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_TENSOR_ROUTE_H_
