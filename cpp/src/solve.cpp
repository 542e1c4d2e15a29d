// Small SPD solver: the dispatch table (kernels in cpp/src/kernels/solve-inl.hpp).
#include "tastemaker/solve.hpp"

namespace tastemaker {

TASTEMAKER_SIMD_DISPATCH(SolveKernels, solve_kernels)

}  // namespace tastemaker
