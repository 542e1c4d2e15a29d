// AVX-512 top-k kernels: topk-inl.hpp on the 16-lane ops.
#define TM_KERNEL_NS avx512
#include "ops_avx512.hpp"
#include "topk-inl.hpp"

namespace tastemaker {
extern const TopkKernels topk_kernels_avx512 = kernels::avx512::topk::table();
}  // namespace tastemaker
