#ifndef GPTB_CORE_CHECKPOINT_SAFETENSORS_HEADER_H_
#define GPTB_CORE_CHECKPOINT_SAFETENSORS_HEADER_H_

// The safetensors header: parsing and validating one read from a file, laying one out for a
// writer, and the byte geometry of a slice of a tensor.
//
// File format: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (possibly padded with
// trailing spaces), then the data section. The JSON is an object mapping each tensor name to
// {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]} (offsets relative to
// the first byte of the data section, row-major, little-endian elements), plus an optional
// "__metadata__" object of string to string.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype/dtype.h"

namespace gptb::checkpoint {

// The reference implementation's cap: a larger header is rejected before it is read.
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
// The key of the metadata entry; no tensor may have this name.
inline constexpr std::string_view kMetadataKey = "__metadata__";

// What the caller declares about a tensor before a file exists.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

// A tensor as it lies in a file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;   // data_offsets[0], relative to the data section
  uint64_t data_end = 0;     // data_offsets[1]
  uint64_t file_offset = 0;  // absolute offset of the first byte in the file

  uint64_t nbytes() const { return data_end - data_begin; }
  // Product of the dims (1 for a scalar); fits because nbytes does.
  uint64_t numel() const;
};

struct HeaderOptions {
  uint64_t max_header_bytes = kMaxHeaderBytes;
  // Reject gaps between tensors and bytes after the last one, as the reference implementation
  // does. Overlaps and out-of-range offsets are rejected either way.
  bool require_full_coverage = true;
};

// A parsed, validated header.
struct Header {
  uint64_t header_size = 0;         // N, the JSON length including padding
  uint64_t data_offset = 0;         // 8 + N: where the data section starts in the file
  uint64_t data_size = 0;           // bytes of the data section (file size - data_offset)
  std::vector<TensorInfo> tensors;  // in file order (ascending data_begin)
  std::map<std::string, std::string> metadata;
};

// Validates the 8-byte prefix of a file of `file_size` bytes and returns N.
// DATA_LOSS when the file is shorter than 8 bytes or than 8 + N; INVALID_ARGUMENT when N exceeds
// options.max_header_bytes.
absl::StatusOr<uint64_t> ParseHeaderLength(std::string_view prefix, uint64_t file_size,
                                           const HeaderOptions& options = {});

// Parses and validates the N header bytes of a file of `file_size` bytes (N = json.size()).
// Every check the format implies is made, each with an error naming the tensor and the problem:
// INVALID_ARGUMENT for malformed JSON, a non-object, a missing/unknown dtype, a shape that is not
// a list of non-negative integers, data_offsets that are not two integers or run backwards, a
// byte count that does not match shape * item size (or overflows 64 bits), overlapping ranges,
// duplicate names, gaps (with require_full_coverage); DATA_LOSS for a range past the end of the
// data section (a truncated file, or a corrupt header).
absl::StatusOr<Header> ParseHeader(std::string_view json, uint64_t file_size,
                                   const HeaderOptions& options = {});

// Bytes of a tensor: product(shape) * item size. INVALID_ARGUMENT (naming the tensor) for a
// negative dim or more than 2^64 bytes.
absl::StatusOr<uint64_t> TensorBytes(const TensorSpec& tensor);

// The header a writer puts at the start of a file: tensors laid out back to back in the given
// order, JSON padded with spaces so that the data section starts at a multiple of 8.
struct HeaderLayout {
  std::string bytes;  // the 8-byte length prefix followed by the padded JSON
  Header header;      // what ParseHeader returns for the finished file
  uint64_t file_size = 0;
};

// INVALID_ARGUMENT for an empty or duplicate name, the name "__metadata__", a negative dim, or a
// tensor whose byte count overflows 64 bits (each naming the tensor).
absl::StatusOr<HeaderLayout> LayoutHeader(const std::vector<TensorSpec>& tensors,
                                          const std::map<std::string, std::string>& metadata);

// Where the bytes of the sub-block [start, start + length) along dimension `dim` of a row-major
// tensor lie: `runs` runs of `run_bytes` bytes, the first `first_offset` bytes after the tensor's
// first byte, consecutive runs `stride` bytes apart. The sub-block itself is dense row-major
// (shape = the tensor's shape with shape[dim] replaced by length), so run i goes to
// out + i * run_bytes. Slicing the whole of a dimension, or any slice of a tensor with one outer
// row, gives a single run.
struct SliceLayout {
  uint64_t runs = 0;
  uint64_t run_bytes = 0;
  uint64_t first_offset = 0;
  uint64_t stride = 0;

  uint64_t total_bytes() const { return runs * run_bytes; }
};

// INVALID_ARGUMENT (naming the tensor) when dim is not in [0, rank), or [start, start + length)
// is not within [0, shape[dim]]. A scalar (rank 0) has no dimension to slice.
absl::StatusOr<SliceLayout> ComputeSlice(const TensorInfo& tensor, int dim, int64_t start,
                                         int64_t length);

// "[2, 3, 4]": shapes in error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SAFETENSORS_HEADER_H_
