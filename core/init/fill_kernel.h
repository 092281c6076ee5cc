#ifndef GPTB_CORE_INIT_FILL_KERNEL_H_
#define GPTB_CORE_INIT_FILL_KERNEL_H_

// Internal interface between initializer.cc and the per-ISA fill kernels. One source
// (fill_kernel_impl.inc) is compiled once per instruction set; every variant computes the same
// bits (only IEEE-exact operations, no contraction), which tests check on every CPU they run on.
// This header must stay free of inline functions: it is included by translation units compiled
// with -mavx2 / -mavx512f, and an out-of-line copy of an inline function emitted there could be
// picked by the linker for the whole program.

#include <cstdint>

namespace gptb::init::internal {

// The element stream of one parameter: Philox key from the seed, counter words 2 and 3 from the
// name. value = shift + scale * x with x ~ N(0, 1) or x ~ U[0, 1).
struct StreamParams {
  uint32_t key0, key1;
  uint32_t name0, name1;
  int kind;  // kStreamNormal or kStreamUniform
  float scale, shift;
};
inline constexpr int kStreamNormal = 0;
inline constexpr int kStreamUniform = 1;

// Output element encodings, same values as gptb::DType.
inline constexpr int kOutF32 = 0;
inline constexpr int kOutBf16 = 1;
inline constexpr int kOutF16 = 2;

// Canonical elements are generated in blocks of 64 (16 Philox counters): element i belongs to
// block i / 64 and is word i % 4 of counter i / 4.
inline constexpr int64_t kBlockElements = 64;

struct KernelTable {
  const char* name;
  // Writes canonical elements [begin, end) of the stream to out, consecutively, encoded as
  // `out_kind`.
  void (*fill_range)(const StreamParams& p, int64_t begin, int64_t end, int out_kind, void* out);
  // Elementwise fp32 -> bf16 / fp16 bits, round to nearest even (used by tests and constant fills).
  void (*to_bf16)(const float* in, uint16_t* out, int64_t n);
  void (*to_fp16)(const float* in, uint16_t* out, int64_t n);
};

namespace generic {
const KernelTable& Kernels();
}
namespace avx2 {
const KernelTable& Kernels();
}
namespace avx512 {
const KernelTable& Kernels();
}

}  // namespace gptb::init::internal

#endif  // GPTB_CORE_INIT_FILL_KERNEL_H_
