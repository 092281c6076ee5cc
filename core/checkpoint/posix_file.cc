#include "core/checkpoint/posix_file.h"

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
