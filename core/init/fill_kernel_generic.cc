// Fill kernel variant: baseline ISA of the build (SSE2 on x86-64). See fill_kernel_impl.inc.
#define GPTB_FILL_KERNEL_NS generic
#define GPTB_FILL_KERNEL_NAME "generic"
#include "core/init/fill_kernel_impl.inc"
