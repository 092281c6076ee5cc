#ifndef GPTB_CORE_INIT_CHECKSUM_H_
#define GPTB_CORE_INIT_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace gptb::init {

// XXH64 of `bytes` bytes at `data` (Yann Collet's xxHash64, written here from its specification),
// so any xxhash library reproduces it, e.g. Python's xxhash.xxh64(buf, seed=0).intdigest().
// Runs at several GB/s; used for the per-parameter checksums workers report.
uint64_t Checksum(const void* data, size_t bytes, uint64_t seed = 0);

}  // namespace gptb::init

#endif  // GPTB_CORE_INIT_CHECKSUM_H_
