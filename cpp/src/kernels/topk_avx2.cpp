// AVX2+FMA path.  The register file has 16 ymm, so the tile is 6 queries x 16 items
// (half a panel): 12 accumulators, the two panel vectors of the factor and one
// broadcast.  Per factor that is 12 FMAs (6 cycles on two FMA pipes) against 2 panel
// loads and 6 broadcasts from L1 -- below the three loads per cycle of Zen 3/4, so the
// FMA pipes set the pace.  The old 2 x 32 tile needed 4 loads + 2 broadcasts per 8 FMAs
// and an 8-deep dependency chain was only just enough to hide the 4-cycle FMA latency.
#include <immintrin.h>

#include <cmath>

#include "tastemaker/topk.hpp"

namespace tastemaker {
namespace {

constexpr int kHalf = kTopkPanel / 2;  // items per tile

// Rows [0, M) of the block against items [16 h, 16 h + 16) of the panel; writes those
// scores and the 16 mask bits at position 16 h (the caller zeroes masks first).
template <int M>
inline void tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                 float* scores, std::uint32_t* masks, int h) {
    __m256 lo[M], hi[M];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
    const float* p = panel + h * kHalf;
    for (int k = 0; k < dim; ++k, p += kTopkPanel) {
        const __m256 p0 = _mm256_loadu_ps(p);
        const __m256 p1 = _mm256_loadu_ps(p + 8);
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
            const __m256 a = _mm256_broadcast_ss(q + i * ldq + k);
            lo[i] = _mm256_fmadd_ps(a, p0, lo[i]);
            hi[i] = _mm256_fmadd_ps(a, p1, hi[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
        float* s = scores + i * kTopkPanel + h * kHalf;
        _mm256_storeu_ps(s, lo[i]);
        _mm256_storeu_ps(s + 8, hi[i]);
        const __m256 t = _mm256_set1_ps(thr[i]);
        const unsigned m0 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(lo[i], t, _CMP_GT_OQ)));
        const unsigned m1 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(hi[i], t, _CMP_GT_OQ)));
        masks[i] |= (m0 | (m1 << 8)) << (h * kHalf);
    }
}

constexpr int kRows = 6;  // 12 accumulators + 2 panel registers + 1 broadcast of 16 ymm

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    for (int u = 0; u < m; ++u) masks[u] = 0;
    // Both halves of a row group back to back: the 6 query rows stay in L1 lines
    // already touched, and the panel (dim x 32 floats) is L1-resident for the block.
    int u = 0;
    for (; u + kRows <= m; u += kRows)
        for (int h = 0; h < 2; ++h)
            tile<kRows>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u, h);
    const float* qu = q + u * ldq;
    float* su = scores + u * kTopkPanel;
    for (int h = 0; h < 2; ++h) switch (m - u) {
            case 0: break;
            case 1: tile<1>(qu, ldq, dim, panel, thr + u, su, masks + u, h); break;
            case 2: tile<2>(qu, ldq, dim, panel, thr + u, su, masks + u, h); break;
            case 3: tile<3>(qu, ldq, dim, panel, thr + u, su, masks + u, h); break;
            case 4: tile<4>(qu, ldq, dim, panel, thr + u, su, masks + u, h); break;
            default: tile<5>(qu, ldq, dim, panel, thr + u, su, masks + u, h); break;
        }
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
