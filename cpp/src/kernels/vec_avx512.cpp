#include <immintrin.h>

#include "tastemaker/vec.hpp"

namespace tastemaker {
namespace {

// GCC 12's _mm512_reduce_add_ps / extract intrinsics trip -Wuninitialized in its headers.
inline float hsum512(__m512 v) {
    const __m512 f = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m256 h = _mm512_castps512_ps256(f);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}

float dot(const float* x, const float* y, std::size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    a0 = _mm512_add_ps(a0, a1);
    if (i + 16 <= n) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        i += 16;
    }
    if (i < n) {  // masked tail: no scalar remainder loop
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a0);
    }
    return hsum512(a0);
}

void axpy(float a, const float* x, float* y, std::size_t n) {
    const __m512 va = _mm512_set1_ps(a);
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m,
                              _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

}  // namespace

extern const VecKernels vec_kernels_avx512{dot, axpy};

}  // namespace tastemaker
