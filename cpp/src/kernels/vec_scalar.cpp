#include "tastemaker/vec.hpp"

namespace tastemaker {
namespace {

float dot(const float* x, const float* y, std::size_t n) {
    // Four partial sums: same association pattern as the SIMD paths' lanes would give
    // too little, but it lets the compiler pipeline without -ffast-math.
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; ++i) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

void axpy(float a, const float* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

extern const VecKernels vec_kernels_scalar{dot, axpy};

}  // namespace tastemaker
