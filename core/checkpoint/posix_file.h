#ifndef GPTB_CORE_CHECKPOINT_POSIX_FILE_H_
#define GPTB_CORE_CHECKPOINT_POSIX_FILE_H_

// Positioned I/O on file descriptors with every short transfer and EINTR handled, shared by the
// safetensors reader and writer.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

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

}  // namespace gptb::checkpoint

#endif  // GPTB_CORE_CHECKPOINT_POSIX_FILE_H_
