#ifndef GPTB_CORE_CHECKPOINT_SAFETENSORS_READER_H_
#define GPTB_CORE_CHECKPOINT_SAFETENSORS_READER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/safetensors_header.h"

namespace gptb::checkpoint {

// How a reader gets at the bytes. kMmap maps the file read-only once and copies out of the
// mapping (and offers zero-copy Data()); kPread issues positioned reads for exactly the bytes
// asked for, which suits files larger than the address space a process wants to map, network
// filesystems, and readers that must not fault pages in behind the caller's back.
enum class ReadMode { kMmap, kPread };

struct ReaderOptions {
  ReadMode mode = ReadMode::kMmap;
  HeaderOptions header;
  // When set, every file opened must resolve inside this directory (OpenRegularFileForRead).
  std::string root;
};

// A validated, read-only view of one .safetensors file. Open() parses and checks the whole header
// (see ParseHeader); afterwards every method is const and safe to call from many threads at once.
class SafetensorsReader {
 public:
  // Opens `path`. NOT_FOUND / PERMISSION_DENIED (etc.) when the file cannot be opened, and the
  // errors of ParseHeaderLength / ParseHeader (prefixed with the path) for a malformed file.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(const std::string& path,
                                                                 const ReaderOptions& options = {});

  // A reader over `size` bytes at `data` that the caller keeps alive and unchanged for the reader's
  // lifetime (a file already in memory; the fuzzer). Behaves like kMmap mode.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> FromBuffer(
      const void* data, size_t size, const HeaderOptions& options = {});

  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const { return path_; }
  ReadMode mode() const { return mode_; }
  uint64_t file_size() const { return file_size_; }
  const Header& header() const { return header_; }
  // The tensors in file order: name, dtype, shape, data offsets and absolute file offset.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  bool Contains(std::string_view name) const;
  // NOT_FOUND (naming the tensor and the file) when there is no such tensor.
  absl::StatusOr<const TensorInfo*> Find(std::string_view name) const;

  // Bytes that ReadSlice(name, dim, start, length, ...) writes.
  absl::StatusOr<uint64_t> SliceBytes(std::string_view name, int dim, int64_t start,
                                      int64_t length) const;

  // Copies the sub-block [start, start + length) along dimension `dim` of tensor `name` into
  // `out` as a dense row-major array (the tensor's shape with shape[dim] = length); `out` must hold
  // SliceBytes(...) bytes. Only those bytes are read: one contiguous range when dim == 0 (or the
  // slice spans whole rows), otherwise one range per row of the dimensions before `dim`.
  // NOT_FOUND for an unknown tensor, INVALID_ARGUMENT for a bad dim/range, DATA_LOSS when the
  // file turns out shorter than its header said (it was truncated after Open).
  absl::Status ReadSlice(std::string_view name, int dim, int64_t start, int64_t length,
                         void* out) const;

  // Copies the whole tensor (TensorInfo::nbytes() bytes) into `out`.
  absl::Status ReadTensor(std::string_view name, void* out) const;

  // Zero-copy view of the tensor's bytes inside the mapping (valid while the reader lives).
  // FAILED_PRECONDITION in kPread mode. The pointer is as aligned as the tensor's file offset,
  // which LayoutHeader makes a multiple of 8 for the data section but not for each tensor.
  absl::StatusOr<const void*> Data(std::string_view name) const;

  // Bytes copied out by ReadSlice / ReadTensor so far, over all threads (for tests and metrics).
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }

 private:
  SafetensorsReader() = default;
  absl::Status Init(const HeaderOptions& options);
  absl::Status ReadRange(uint64_t offset, uint64_t size, void* out) const;

  std::string path_;
  ReadMode mode_ = ReadMode::kMmap;
  int fd_ = -1;
  const unsigned char* base_ = nullptr;  // the mapping (or the caller's buffer)
  bool owns_mapping_ = false;
  uint64_t file_size_ = 0;
  Header header_;
  std::unordered_map<std::string_view, size_t> by_name_;  // views into header_.tensors names
  mutable std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SAFETENSORS_READER_H_
