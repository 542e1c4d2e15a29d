// AVX2+FMA path: a register tile of M queries x 32 items (4 ymm per query).
#include <immintrin.h>

#include <cmath>

#include "tastemaker/topk.hpp"

namespace tastemaker {
namespace {

template <int M>
inline void tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                 float* scores, std::uint32_t* masks) {
    __m256 acc[M][4];
    for (int i = 0; i < M; ++i)
        for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_setzero_ps();
    for (int k = 0; k < dim; ++k) {
        const float* p = panel + k * kTopkPanel;
        const __m256 p0 = _mm256_loadu_ps(p), p1 = _mm256_loadu_ps(p + 8);
        const __m256 p2 = _mm256_loadu_ps(p + 16), p3 = _mm256_loadu_ps(p + 24);
        for (int i = 0; i < M; ++i) {
            const __m256 a = _mm256_broadcast_ss(q + i * ldq + k);
            acc[i][0] = _mm256_fmadd_ps(a, p0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, p1, acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(a, p2, acc[i][2]);
            acc[i][3] = _mm256_fmadd_ps(a, p3, acc[i][3]);
        }
    }
    for (int i = 0; i < M; ++i) {
        const __m256 t = _mm256_set1_ps(thr[i]);
        std::uint32_t bits = 0;
        for (int c = 0; c < 4; ++c) {
            _mm256_storeu_ps(scores + i * kTopkPanel + 8 * c, acc[i][c]);
            const int mk = _mm256_movemask_ps(_mm256_cmp_ps(acc[i][c], t, _CMP_GT_OQ));
            bits |= static_cast<std::uint32_t>(mk) << (8 * c);
        }
        masks[i] = bits;
    }
}

constexpr int kRows = 2;  // 8 accumulators + 4 panel registers + 1 broadcast of 16 ymm

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    int u = 0;
    for (; u + kRows <= m; u += kRows)
        tile<kRows>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u);
    if (u < m) tile<1>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u);
}

float finite_absmax(const float* x, std::int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 big = _mm256_set1_ps(3.4028235e38f);
    __m256 m0 = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
        m0 = _mm256_max_ps(m0, a);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m0);
    float m = 0.0f;
    for (int j = 0; j < 8; ++j) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; ++i) {
        const float a = x[i] < 0 ? -x[i] : x[i];
        if (!(a <= 3.4028235e38f)) return INFINITY;
        m = a > m ? a : m;
    }
    return _mm256_movemask_ps(bad) ? INFINITY : m;
}

}  // namespace

extern const TopkKernels topk_kernels_avx2{panel_scores, finite_absmax, nullptr};

}  // namespace tastemaker
