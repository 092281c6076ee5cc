#ifndef GPTB_CORE_CHECKPOINT_SAFETENSORS_WRITER_H_
#define GPTB_CORE_CHECKPOINT_SAFETENSORS_WRITER_H_

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

// How Create reserves the file's final size. kFallocate reserves the blocks (ENOSPC surfaces at
// Create, as RESOURCE_EXHAUSTED, rather than halfway through the writes) and falls back to
// kTruncate on filesystems without fallocate; kTruncate makes a sparse file of the final size.
enum class Preallocation { kFallocate, kTruncate };

// How tensor bytes reach the file. kPwrite issues one positioned write per contiguous run.
// kMmap maps the file shared and copies runs into the mapping: no system call per run, which pays
// off for slices along dim > 0 (one short run per row) written by several threads, since buffered
// pwrite serialises on the file's inode lock. A mapping cannot report a full disk except by
// SIGBUS, so kMmap is used only when the file's blocks are reserved (fallocate succeeded);
// otherwise the writer falls back to kPwrite (see mode()). Either way the file must keep its size
// while writers have it open; a mapped writer would fault on a truncated file.
enum class WriteMode { kPwrite, kMmap };

struct WriterOptions {
  Preallocation preallocation = Preallocation::kFallocate;
  WriteMode mode = WriteMode::kPwrite;
  // For a file in a directory the writer just created: Create fails when the name exists
  // (O_EXCL) and neither Create nor OpenExisting follows a symbolic link there (O_NOFOLLOW), so
  // a planted name can neither be truncated nor redirect the writes.
  bool exclusive = false;
};

// Writes one .safetensors file whose header is fixed up front, so that the tensor data can then
// be written in any order by any number of threads -- and processes, each with its own writer on
// the same path -- each writing only its own slices with positioned writes.
//
// One process calls Create (which truncates the file, writes the header and preallocates the
// final size); after it returns, others may call OpenExisting with the same tensors and metadata.
// Every byte of every tensor must be written by someone before the file is read: the data section
// of a freshly created file reads as zeros until then.
class SafetensorsWriter {
 public:
  // Creates (or truncates) `path` laid out per LayoutHeader(tensors, metadata): tensors back to
  // back in the given order, data section at a multiple of 8. INVALID_ARGUMENT for bad specs,
  // RESOURCE_EXHAUSTED when the disk lacks the space, other errno statuses for I/O failures.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, const std::vector<TensorSpec>& tensors,
      const std::map<std::string, std::string>& metadata, const WriterOptions& options = {});

  // Opens a file another writer created, for writing more slices into it. Its header must describe
  // exactly these tensors (name, dtype, shape, offsets) and this metadata, and the file must have
  // its final size; otherwise FAILED_PRECONDITION naming the first difference.
  // options.preallocation is not used here; with options.mode == kMmap the file's blocks are
  // reserved again (a no-op where the creator reserved them) before it is mapped.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> OpenExisting(
      const std::string& path, const std::vector<TensorSpec>& tensors,
      const std::map<std::string, std::string>& metadata, const WriterOptions& options = {});

  ~SafetensorsWriter();  // closes without syncing when Finish was not called
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const std::string& path() const { return path_; }
  // The mode in effect: kPwrite when kMmap was asked for but the blocks could not be reserved.
  WriteMode mode() const { return map_ != nullptr ? WriteMode::kMmap : WriteMode::kPwrite; }
  uint64_t file_size() const { return layout_.file_size; }
  const Header& header() const { return layout_.header; }
  const std::vector<TensorInfo>& tensors() const { return layout_.header.tensors; }
  // NOT_FOUND (naming the tensor) when there is no such tensor.
  absl::StatusOr<const TensorInfo*> Find(std::string_view name) const;

  // Writes the sub-block [start, start + length) along dimension `dim` of tensor `name` from
  // `data`, a dense row-major array of SliceBytes(...) bytes (the tensor's shape with
  // shape[dim] = length): one positioned write when dim == 0, else one per row of the dimensions
  // before `dim`. Thread-safe; slices written concurrently must not overlap.
  // NOT_FOUND / INVALID_ARGUMENT for a bad name / dim / range, FAILED_PRECONDITION after Finish.
  absl::Status WriteSlice(std::string_view name, int dim, int64_t start, int64_t length,
                          const void* data);

  // Writes the whole tensor (TensorInfo::nbytes() bytes).
  absl::Status WriteTensor(std::string_view name, const void* data);

  absl::StatusOr<uint64_t> SliceBytes(std::string_view name, int dim, int64_t start,
                                      int64_t length) const;

  // Ends this writer's part: with `sync`, flushes the file's data to stable storage (msync of the
  // mapping, fdatasync) before unmapping and closing. Call it after every thread using this writer
  // has returned from its writes. Only this writer's descriptor is closed; other processes' writers
  // finish on their own.
  absl::Status Finish(bool sync = true);

  // Bytes written by WriteSlice / WriteTensor so far, over all threads.
  uint64_t bytes_written() const { return bytes_written_.load(std::memory_order_relaxed); }

 private:
  SafetensorsWriter() = default;
  void IndexNames();
  // Maps the file for kMmap when its blocks are reserved; leaves kPwrite otherwise.
  absl::Status MaybeMap(const WriterOptions& options, bool reserved);
  absl::Status CopyRun(const void* data, uint64_t size, uint64_t offset);

  std::string path_;
  int fd_ = -1;
  unsigned char* map_ = nullptr;  // the whole file, in kMmap mode
  HeaderLayout layout_;
  std::unordered_map<std::string_view, size_t> by_name_;
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> bytes_written_{0};
};

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_SAFETENSORS_WRITER_H_
