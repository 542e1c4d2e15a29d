// scalar small-system solver kernels: solve-inl.hpp on the scalar ops.
#define TM_KERNEL_NS scalar
#include "ops_scalar.hpp"
#include "solve-inl.hpp"

namespace tastemaker {
extern const SolveKernels solve_kernels_scalar{kernels::scalar::solve::cholesky_solve,
                                          kernels::scalar::solve::accumulate_normal};
}  // namespace tastemaker
