// Small SPD solver: the dispatch table (kernels in cpp/src/kernels/solve-inl.hpp).
#include "tastemaker/solve.hpp"

namespace tastemaker {

// No int8 products here: the avx512vnni path runs the avx512 table (simd.hpp).
TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512(SolveKernels, solve_kernels)

}  // namespace tastemaker
