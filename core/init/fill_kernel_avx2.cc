// Fill kernel variant: AVX2 (compiled with -mavx2). See fill_kernel_impl.inc.
#if defined(__x86_64__) || defined(_M_X64)
#define GPTB_FILL_KERNEL_NS avx2
#define GPTB_FILL_KERNEL_NAME "avx2"
#include "core/init/fill_kernel_impl.inc"
#endif
