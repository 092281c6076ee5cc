#include "core/checkpoint/posix_file.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace gptb::checkpoint {
namespace {

// Linux transfers at most 0x7ffff000 bytes per call; asking for less keeps the loop's arithmetic
// in range on every platform.
constexpr uint64_t kMaxChunk = uint64_t{1} << 30;

}  // namespace

absl::Status FileError(int error_number, std::string_view what, std::string_view path) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(std::string(what), " ", std::string(path)));
}

absl::Status PreadFull(int fd, void* out, uint64_t size, uint64_t offset, std::string_view path) {
  auto* p = static_cast<unsigned char*>(out);
  uint64_t done = 0;
  while (done < size) {
    size_t chunk = static_cast<size_t>(std::min(size - done, kMaxChunk));
    ssize_t n = ::pread(fd, p + done, chunk, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "reading", path);
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat("reading ", std::string(path), ": the file ends at byte ", offset + done,
                       " but ", size - done, " more bytes were expected (truncated?)"));
    }
    done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PwriteFull(int fd, const void* data, uint64_t size, uint64_t offset,
                        std::string_view path) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t done = 0;
  while (done < size) {
    size_t chunk = static_cast<size_t>(std::min(size - done, kMaxChunk));
    ssize_t n = ::pwrite(fd, p + done, chunk, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "writing", path);
    }
    if (n == 0) {
      return absl::InternalError(absl::StrCat("writing ", std::string(path),
                                              ": pwrite wrote nothing at byte ", offset + done));
    }
    done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileSize(int fd, std::string_view path, uint64_t* size) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return FileError(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(path), " is not a regular file"));
  }
  *size = static_cast<uint64_t>(st.st_size);
  return absl::OkStatus();
}

}  // namespace gptb::checkpoint

namespace gptb::checkpoint {

absl::StatusOr<std::string> OpenedPath(int fd) {
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  std::string target(PATH_MAX, '\0');
  const ssize_t n = ::readlink(link.c_str(), target.data(), target.size());
  if (n < 0) return FileError(errno, "resolving", link);
  if (static_cast<size_t>(n) >= target.size()) {
    return absl::InternalError(absl::StrCat("resolving ", link, ": the path is too long"));
  }
  target.resize(static_cast<size_t>(n));
  return target;
}

bool IsWithin(std::string_view resolved, std::string_view root) {
  while (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
  if (root == "/") return !resolved.empty() && resolved.front() == '/';
  if (resolved.substr(0, root.size()) != root) return false;
  return resolved.size() == root.size() || resolved[root.size()] == '/';
}

absl::StatusOr<std::string> ResolveRoot(const std::string& root) {
  if (root.empty()) return std::string();
  char buffer[PATH_MAX];
  if (::realpath(root.c_str(), buffer) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint root ", root, " does not resolve: ", std::strerror(errno)));
  }
  struct stat st;
  if (::stat(buffer, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint root ", root, " is not a directory"));
  }
  return std::string(buffer);
}

absl::StatusOr<int> OpenRegularFileForRead(const std::string& path, const std::string& root) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return FileError(errno, "opening", path);
  auto fail = [fd](absl::Status status) {
    ::close(fd);
    return status;
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail(FileError(errno, "examining", path));
  if (!S_ISREG(st.st_mode)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file (a checkpoint holds only regular files)")));
  }
  if (!root.empty()) {
    absl::StatusOr<std::string> resolved_root = ResolveRoot(root);
    if (!resolved_root.ok()) return fail(resolved_root.status());
    absl::StatusOr<std::string> opened = OpenedPath(fd);
    if (!opened.ok()) return fail(opened.status());
    if (!IsWithin(*opened, *resolved_root)) {
      return fail(absl::PermissionDeniedError(
          absl::StrCat(path, " resolves outside the checkpoint root ", root,
                       " (--checkpoint-root); checkpoints are read only from inside it")));
    }
  }
  // Reads of a regular file do not block anyway; clear the flag so that nothing depends on it.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes,
                                          const std::string& root) {
  absl::StatusOr<int> fd = OpenRegularFileForRead(path, root);
  if (!fd.ok()) return fd.status();
  uint64_t size = 0;
  absl::Status status = FileSize(*fd, path, &size);
  if (status.ok() && size > max_bytes) {
    status = absl::InvalidArgumentError(absl::StrCat(path, " has ", size, " bytes, more than the ",
                                                     max_bytes, " such a file may have"));
  }
  std::string text(status.ok() ? size : 0, '\0');
  if (status.ok()) status = PreadFull(*fd, text.data(), size, 0, path);
  ::close(*fd);
  if (!status.ok()) return status;
  return text;
}

}  // namespace gptb::checkpoint
