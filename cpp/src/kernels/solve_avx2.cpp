// avx2 small-system solver kernels: solve-inl.hpp on the avx2 ops.
#define TM_KERNEL_NS avx2
#include "ops_avx2.hpp"
#include "solve-inl.hpp"

namespace tastemaker {
extern const SolveKernels solve_kernels_avx2{kernels::avx2::solve::cholesky_solve,
                                          kernels::avx2::solve::accumulate_normal};
}  // namespace tastemaker
