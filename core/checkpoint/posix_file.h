#ifndef GPTB_CORE_CHECKPOINT_POSIX_FILE_H_
#define GPTB_CORE_CHECKPOINT_POSIX_FILE_H_

// Positioned I/O on file descriptors with every short transfer and EINTR handled, shared by the
// safetensors reader and writer.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gptb::checkpoint {

// The errno-derived status (NOT_FOUND for ENOENT, RESOURCE_EXHAUSTED for ENOSPC, ...) with
// "<what> <path>: <strerror>" as its message.
absl::Status FileError(int error_number, std::string_view what, std::string_view path);

// Reads exactly `size` bytes at `offset`. DATA_LOSS when the file ends first.
absl::Status PreadFull(int fd, void* out, uint64_t size, uint64_t offset, std::string_view path);

// Writes exactly `size` bytes at `offset`.
absl::Status PwriteFull(int fd, const void* data, uint64_t size, uint64_t offset,
                        std::string_view path);

// The file's size in bytes.
absl::Status FileSize(int fd, std::string_view path, uint64_t* size);

// The absolute path, symlinks resolved, of what `fd` has open (read back from /proc/self/fd, so
// it names what was opened, whatever the path has become since).
absl::StatusOr<std::string> OpenedPath(int fd);

// Whether `resolved` (a path with symlinks resolved) is `root` (resolved too) or lies below it.
bool IsWithin(std::string_view resolved, std::string_view root);

// `root` with symlinks resolved; "" for "". INVALID_ARGUMENT naming the root when it does not
// resolve to a directory.
absl::StatusOr<std::string> ResolveRoot(const std::string& root);

// Opens a file of a checkpoint for reading, as a service must when a client names the path:
// the open never blocks (O_NONBLOCK, so a FIFO cannot hang the caller), anything but a regular
// file is refused (INVALID_ARGUMENT), and with `root` non-empty the opened file must resolve
// inside it (PERMISSION_DENIED). Errors name the path, never what the file holds.
absl::StatusOr<int> OpenRegularFileForRead(const std::string& path, const std::string& root = "");

// A small text file (config.json, an index) read whole through OpenRegularFileForRead;
// INVALID_ARGUMENT past `max_bytes`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes,
                                          const std::string& root = "");

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_POSIX_FILE_H_
