// AVX2 + FMA ALS kernels: als-inl.hpp on the 8-lane ops.
#define TM_KERNEL_NS avx2
#include "ops_avx2.hpp"
#include "als-inl.hpp"

namespace tastemaker {
extern const AlsKernels als_kernels_avx2{kernels::avx2::als::gram_accumulate, kernels::avx2::als::cg_row,
                                         kernels::avx2::als::cg_group, kernels::avx2::als::dot,
                                         kernels::avx2::als::index_bounds};
}  // namespace tastemaker
