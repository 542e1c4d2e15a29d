// AVX-512 ALS kernels: als-inl.hpp on the 16-lane ops.
#define TM_KERNEL_NS avx512
#include "ops_avx512.hpp"
#include "als-inl.hpp"

namespace tastemaker {
extern const AlsKernels als_kernels_avx512{kernels::avx512::als::gram_accumulate, kernels::avx512::als::cg_row,
                                           kernels::avx512::als::cg_group, kernels::avx512::als::dot,
                                           kernels::avx512::als::index_bounds};
}  // namespace tastemaker
