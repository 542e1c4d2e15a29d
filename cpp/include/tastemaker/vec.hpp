#pragma once
/** Small dense-vector kernels (float32), one implementation per instruction set.
 *
 *  All pointers may be unaligned; n may be 0.  Accumulation order differs between
 *  paths, so results agree to float32 rounding, not bit for bit.
 */
#include <cstddef>

#include "tastemaker/simd.hpp"

namespace tastemaker {

struct VecKernels {
    /** sum_i x[i] * y[i] */
    float (*dot)(const float* x, const float* y, std::size_t n);
    /** y[i] += a * x[i] */
    void (*axpy)(float a, const float* x, float* y, std::size_t n);
};

/** The table for one path (must be supported) or for the active path. */
const VecKernels& vec_kernels(simd::Isa isa);
const VecKernels& vec_kernels();

}  // namespace tastemaker
