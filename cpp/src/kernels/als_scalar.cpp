// Portable ALS kernels (the reference every SIMD path is tested against): als-inl.hpp on
// the one-lane ops.
#define TM_KERNEL_NS scalar
#include "ops_scalar.hpp"
#include "als-inl.hpp"

namespace tastemaker {
extern const AlsKernels als_kernels_scalar{kernels::scalar::als::gram_accumulate, kernels::scalar::als::cg_row,
                                           kernels::scalar::als::cg_group, kernels::scalar::als::dot,
                                           kernels::scalar::als::index_bounds};
}  // namespace tastemaker
