// Fill kernel variant: AVX-512 F/VL/BW/DQ (compiled with -mavx512f -mavx512vl -mavx512bw
// -mavx512dq). See fill_kernel_impl.inc.
#if defined(__x86_64__) || defined(_M_X64)
#define GPTB_FILL_KERNEL_NS avx512
#define GPTB_FILL_KERNEL_NAME "avx512"
#include "core/init/fill_kernel_impl.inc"
#endif
