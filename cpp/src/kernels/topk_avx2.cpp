// AVX2 + FMA top-k kernels: topk-inl.hpp on the 8-lane ops.
#define TM_KERNEL_NS avx2
#include "ops_avx2.hpp"
#include "topk-inl.hpp"

namespace tastemaker {
extern const TopkKernels topk_kernels_avx2 = kernels::avx2::topk::table();
}  // namespace tastemaker
