#include "core/checkpoint/safetensors_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/posix_file.h"

namespace gptb::checkpoint {
namespace {

// Reserves the blocks of [0, size). Sets *reserved to whether the filesystem did; an error only
// for real failures such as ENOSPC.
absl::Status Reserve(int fd, uint64_t size, const std::string& path, bool* reserved) {
  *reserved = false;
  if (size == 0) return absl::OkStatus();
  int rc;
  do {
    rc = ::fallocate(fd, 0, 0, static_cast<off_t>(size));
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    *reserved = true;
    return absl::OkStatus();
  }
  if (errno == EOPNOTSUPP || errno == ENOSYS) return absl::OkStatus();
  return FileError(errno, absl::StrCat("reserving ", size, " bytes for"), path);
}

// The first way in which the header found in an existing file differs from the expected one.
absl::Status CompareHeaders(const Header& expected, const Header& found, uint64_t expected_size,
                            uint64_t found_size, const std::string& path) {
  auto mismatch = [&](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " was not created for these tensors: ", what));
  };
  if (found.data_offset != expected.data_offset) {
    return mismatch(absl::StrCat("its data section starts at byte ", found.data_offset,
                                 ", expected ", expected.data_offset));
  }
  if (found.tensors.size() != expected.tensors.size()) {
    return mismatch(absl::StrCat("it has ", found.tensors.size(), " tensors, expected ",
                                 expected.tensors.size()));
  }
  std::unordered_map<std::string_view, const TensorInfo*> by_name;
  for (const TensorInfo& t : found.tensors) by_name[t.name] = &t;
  for (const TensorInfo& e : expected.tensors) {
    auto it = by_name.find(e.name);
    if (it == by_name.end()) return mismatch(absl::StrCat("it has no tensor '", e.name, "'"));
    const TensorInfo& f = *it->second;
    if (f.dtype != e.dtype || f.shape != e.shape || f.data_begin != e.data_begin ||
        f.data_end != e.data_end) {
      return mismatch(absl::StrCat("tensor '", e.name, "' is ",
                                   std::string(SafetensorsCode(f.dtype)), " ", ShapeString(f.shape),
                                   " at [", f.data_begin, ", ", f.data_end, "], expected ",
                                   std::string(SafetensorsCode(e.dtype)), " ", ShapeString(e.shape),
                                   " at [", e.data_begin, ", ", e.data_end, "]"));
    }
  }
  if (found.metadata != expected.metadata) {
    return mismatch("its __metadata__ differs");
  }
  if (found_size != expected_size) {
    return mismatch(absl::StrCat("it has ", found_size, " bytes, expected ", expected_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, const std::vector<TensorSpec>& tensors,
    const std::map<std::string, std::string>& metadata, const WriterOptions& options) {
  absl::StatusOr<HeaderLayout> layout = LayoutHeader(tensors, metadata);
  if (!layout.ok()) return layout.status();
  std::unique_ptr<SafetensorsWriter> writer(new SafetensorsWriter());
  writer->path_ = path;
  writer->layout_ = *std::move(layout);
  writer->IndexNames();
  writer->fd_ = ::open(
      path.c_str(),
      O_RDWR | O_CREAT | O_CLOEXEC | (options.exclusive ? O_EXCL | O_NOFOLLOW : O_TRUNC), 0644);
  if (writer->fd_ < 0) return FileError(errno, "creating", path);
  const uint64_t size = writer->layout_.file_size;
  bool reserved = false;
  if (options.preallocation == Preallocation::kFallocate) {
    absl::Status status = Reserve(writer->fd_, size, path, &reserved);
    if (!status.ok()) return status;
  }
  if (::ftruncate(writer->fd_, static_cast<off_t>(size)) != 0) {
    return FileError(errno, absl::StrCat("resizing to ", size, " bytes"), path);
  }
  absl::Status status =
      PwriteFull(writer->fd_, writer->layout_.bytes.data(), writer->layout_.bytes.size(), 0, path);
  if (!status.ok()) return status;
  status = writer->MaybeMap(options, reserved);
  if (!status.ok()) return status;
  return writer;
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::OpenExisting(
    const std::string& path, const std::vector<TensorSpec>& tensors,
    const std::map<std::string, std::string>& metadata, const WriterOptions& options) {
  absl::StatusOr<HeaderLayout> layout = LayoutHeader(tensors, metadata);
  if (!layout.ok()) return layout.status();
  std::unique_ptr<SafetensorsWriter> writer(new SafetensorsWriter());
  writer->path_ = path;
  writer->layout_ = *std::move(layout);
  writer->IndexNames();
  writer->fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (options.exclusive ? O_NOFOLLOW : 0));
  if (writer->fd_ < 0) return FileError(errno, "opening", path);
  if (struct stat st;
      options.exclusive && (::fstat(writer->fd_, &st) != 0 || !S_ISREG(st.st_mode))) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }

  uint64_t size = 0;
  absl::Status status = FileSize(writer->fd_, path, &size);
  if (!status.ok()) return status;
  std::string prefix(8, '\0');
  if (size >= 8) {
    status = PreadFull(writer->fd_, prefix.data(), 8, 0, path);
    if (!status.ok()) return status;
  }
  auto in_file = [&](const absl::Status& s) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " does not hold a complete safetensors header: ", s.message()));
  };
  absl::StatusOr<uint64_t> n = ParseHeaderLength(prefix, size);
  if (!n.ok()) return in_file(n.status());
  std::string json(*n, '\0');
  status = PreadFull(writer->fd_, json.data(), *n, 8, path);
  if (!status.ok()) return status;
  absl::StatusOr<Header> found = ParseHeader(json, size);
  if (!found.ok()) return in_file(found.status());
  status = CompareHeaders(writer->layout_.header, *found, writer->layout_.file_size, size, path);
  if (!status.ok()) return status;
  if (options.mode == WriteMode::kMmap) {
    bool reserved = false;
    status = Reserve(writer->fd_, size, path, &reserved);
    if (!status.ok()) return status;
    status = writer->MaybeMap(options, reserved);
    if (!status.ok()) return status;
  }
  return writer;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (map_ != nullptr) ::munmap(map_, layout_.file_size);
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsWriter::MaybeMap(const WriterOptions& options, bool reserved) {
  if (options.mode != WriteMode::kMmap || !reserved || layout_.file_size == 0) {
    return absl::OkStatus();
  }
  void* map = ::mmap(nullptr, layout_.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (map == MAP_FAILED) return FileError(errno, "mapping", path_);
  map_ = static_cast<unsigned char*>(map);
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::CopyRun(const void* data, uint64_t size, uint64_t offset) {
  if (map_ == nullptr) return PwriteFull(fd_, data, size, offset, path_);
  if (size > 0) std::memcpy(map_ + offset, data, size);  // in bounds: offsets come from layout_
  return absl::OkStatus();
}

void SafetensorsWriter::IndexNames() {
  const std::vector<TensorInfo>& tensors = layout_.header.tensors;
  by_name_.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) by_name_[tensors[i].name] = i;
}

absl::StatusOr<const TensorInfo*> SafetensorsWriter::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", std::string(name),
                                            "' was declared for this file"));
  }
  return &layout_.header.tensors[it->second];
}

absl::StatusOr<uint64_t> SafetensorsWriter::SliceBytes(std::string_view name, int dim,
                                                       int64_t start, int64_t length) const {
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::StatusOr<SliceLayout> slice = ComputeSlice(**info, dim, start, length);
  if (!slice.ok()) return slice.status();
  return slice->total_bytes();
}

absl::Status SafetensorsWriter::WriteSlice(std::string_view name, int dim, int64_t start,
                                           int64_t length, const void* data) {
  if (finished_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": WriteSlice('", std::string(name), "') after Finish()"));
  }
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::StatusOr<SliceLayout> slice = ComputeSlice(**info, dim, start, length);
  if (!slice.ok()) return slice.status();
  const auto* src = static_cast<const unsigned char*>(data);
  uint64_t offset = (*info)->file_offset + slice->first_offset;
  for (uint64_t run = 0; run < slice->runs; ++run) {
    absl::Status status = CopyRun(src, slice->run_bytes, offset);
    if (!status.ok()) return status;
    offset += slice->stride;
    src += slice->run_bytes;
  }
  bytes_written_.fetch_add(slice->total_bytes(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::WriteTensor(std::string_view name, const void* data) {
  if (finished_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": WriteTensor('", std::string(name), "') after Finish()"));
  }
  absl::StatusOr<const TensorInfo*> info = Find(name);
  if (!info.ok()) return info.status();
  absl::Status status = CopyRun(data, (*info)->nbytes(), (*info)->file_offset);
  if (!status.ok()) return status;
  bytes_written_.fetch_add((*info)->nbytes(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish(bool sync) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": Finish() called twice"));
  }
  absl::Status status;
  if (map_ != nullptr) {
    if (sync && ::msync(map_, layout_.file_size, MS_SYNC) != 0) {
      status = FileError(errno, "syncing the mapping of", path_);
    }
    ::munmap(map_, layout_.file_size);
    map_ = nullptr;
  }
  if (sync && ::fdatasync(fd_) != 0 && status.ok()) status = FileError(errno, "syncing", path_);
  if (::close(fd_) != 0 && status.ok()) status = FileError(errno, "closing", path_);
  fd_ = -1;
  return status;
}

}  // namespace gptb::checkpoint
