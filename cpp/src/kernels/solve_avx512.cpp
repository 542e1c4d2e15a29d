// avx512 small-system solver kernels: solve-inl.hpp on the avx512 ops.
#define TM_KERNEL_NS avx512
#include "ops_avx512.hpp"
#include "solve-inl.hpp"

namespace tastemaker {
extern const SolveKernels solve_kernels_avx512{kernels::avx512::solve::cholesky_solve,
                                          kernels::avx512::solve::accumulate_normal};
}  // namespace tastemaker
