#include "core/checkpoint/safetensors_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/posix_file.h"

namespace gptb::checkpoint {
namespace {

absl::Status Prefixed(const absl::Status& status, std::string_view path) {
  return absl::Status(status.code(), absl::StrCat(std::string(path), ": ", status.message()));
}

// Copies below this size do not pay for an madvise call.
constexpr uint64_t kWillNeedThreshold = uint64_t{1} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(
    const std::string& path, const ReaderOptions& options) {
  std::unique_ptr<SafetensorsReader> reader(new SafetensorsReader());
  reader->path_ = path;
  reader->mode_ = options.mode;
  // Never blocks on a FIFO, refuses anything but a regular file, stays inside options.root.
  absl::StatusOr<int> fd = OpenRegularFileForRead(path, options.root);
  if (!fd.ok()) return fd.status();
  reader->fd_ = *fd;
  absl::Status status = FileSize(reader->fd_, path, &reader->file_size_);
  if (!status.ok()) return status;
  if (options.mode == ReadMode::kMmap && reader->file_size_ > 0) {
    void* map = ::mmap(nullptr, reader->file_size_, PROT_READ, MAP_SHARED, reader->fd_, 0);
    if (map == MAP_FAILED) return FileError(errno, "mapping", path);
    reader->base_ = static_cast<const unsigned char*>(map);
    reader->owns_mapping_ = true;
    // The mapping keeps the file alive; the descriptor is no longer needed.
    ::close(reader->fd_);
    reader->fd_ = -1;
  }
  status = reader->Init(options.header);
  if (!status.ok()) return Prefixed(status, path);
  return reader;
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::FromBuffer(
    const void* data, size_t size, const HeaderOptions& options) {
  std::unique_ptr<SafetensorsReader> reader(new SafetensorsReader());
  reader->path_ = "<buffer>";
  reader->mode_ = ReadMode::kMmap;
  reader->base_ = static_cast<const unsigned char*>(data);
  reader->file_size_ = size;
  absl::Status status = reader->Init(options);
  if (!status.ok()) return status;
  return reader;
}

SafetensorsReader::~SafetensorsReader() {
  if (owns_mapping_) ::munmap(const_cast<unsigned char*>(base_), file_size_);
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsReader::Init(const HeaderOptions& options) {
  std::string prefix(8, '\0');
  if (file_size_ >= 8) {
    absl::Status status = ReadRange(0, 8, prefix.data());
    if (!status.ok()) return status;
  }
  absl::StatusOr<uint64_t> n = ParseHeaderLength(prefix, file_size_, options);
  if (!n.ok()) return n.status();
  std::string json(*n, '\0');
  absl::Status status = ReadRange(8, *n, json.data());
  if (!status.ok()) return status;
  absl::StatusOr<Header> header = ParseHeader(json, file_size_, options);
  if (!header.ok()) return header.status();
  header_ = *std::move(header);
  by_name_.reserve(header_.tensors.size());
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_[header_.tensors[i].name] = i;
  return absl::OkStatus();
}

absl::Status SafetensorsReader::ReadRange(uint64_t offset, uint64_t size, void* out) const {
  if (size == 0) return absl::OkStatus();
  if (base_ == nullptr) return PreadFull(fd_, out, size, offset, path_);
  // Validated ranges lie inside the mapping; a file truncated after Open would fault here, which
  // is why kPread exists for files that may change underneath.
  if (owns_mapping_ && size >= kWillNeedThreshold) {
    uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    uintptr_t begin = reinterpret_cast<uintptr_t>(base_ + offset) & ~(page - 1);
    uintptr_t end = reinterpret_cast<uintptr_t>(base_ + offset + size);
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_WILLNEED);  // a hint only
  }
  std::memcpy(out, base_ + offset, size);
  return absl::OkStatus();
}

bool SafetensorsReader::Contains(std::string_view name) const {
  return by_name_.find(name) != by_name_.end();
}

absl::StatusOr<const TensorInfo*> SafetensorsReader::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", std::string(name),
                                            "' (the file has ", header_.tensors.size(),
                                            " tensors)"));
  }
  return &header_.tensors[it->second];
}

absl::StatusOr<uint64_t> SafetensorsReader::SliceBytes(std::string_view name, int dim,
                                                       int64_t start, int64_t length) const {
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::StatusOr<SliceLayout> slice = ComputeSlice(**info, dim, start, length);
  if (!slice.ok()) return slice.status();
  return slice->total_bytes();
}

absl::Status SafetensorsReader::ReadSlice(std::string_view name, int dim, int64_t start,
                                          int64_t length, void* out) const {
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::StatusOr<SliceLayout> slice = ComputeSlice(**info, dim, start, length);
  if (!slice.ok()) return slice.status();
  auto* dst = static_cast<unsigned char*>(out);
  uint64_t offset = (*info)->file_offset + slice->first_offset;
  for (uint64_t run = 0; run < slice->runs; ++run) {
    absl::Status status = ReadRange(offset, slice->run_bytes, dst);
    if (!status.ok()) return status;
    offset += slice->stride;
    dst += slice->run_bytes;
  }
  bytes_read_.fetch_add(slice->total_bytes(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status SafetensorsReader::ReadTensor(std::string_view name, void* out) const {
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::Status status = ReadRange((*info)->file_offset, (*info)->nbytes(), out);
  if (!status.ok()) return status;
  bytes_read_.fetch_add((*info)->nbytes(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<const void*> SafetensorsReader::Data(std::string_view name) const {
  if (base_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": Data() needs a reader opened with ReadMode::kMmap"));
  }
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  return static_cast<const void*>(base_ + (*info)->file_offset);
}

}  // namespace gptb::checkpoint
