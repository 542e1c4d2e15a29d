// AVX2+FMA path.  16 ymm registers: the tile is 3 queries x 32 items (12 accumulators,
// one broadcast, the panel row as the FMA's memory operand).  Per factor that is 12 FMAs
// (6 cycles on two FMA pipes) against 3 broadcasts and 12 loads from L1.  On Zen 3 this
// measured a little faster than 6 x 16 (6 broadcasts + 2 loads per 12 FMAs): broadcasts
// are the dearer operation there.  The old 2 x 32 tile had only 8 chains, just enough
// for the 4-cycle FMA latency, and 2 broadcasts per 8 FMAs.
#include <immintrin.h>

#include <cmath>

#include "tastemaker/topk.hpp"

namespace tastemaker {
namespace {

// The unroll pragmas matter: without them GCC keeps acc[][] in memory and stores every
// accumulator once per factor.
template <int M>
inline void tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                 float* scores, std::uint32_t* masks) {
    __m256 acc[M][4];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_setzero_ps();
    const float* p = panel;
    for (int k = 0; k < dim; ++k, p += kTopkPanel) {
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i) {
            const __m256 a = _mm256_broadcast_ss(q + i * ldq + k);
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(p + 8 * c), acc[i][c]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
        const __m256 t = _mm256_set1_ps(thr[i]);
        std::uint32_t bits = 0;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            _mm256_storeu_ps(scores + i * kTopkPanel + 8 * c, acc[i][c]);
            const int mk = _mm256_movemask_ps(_mm256_cmp_ps(acc[i][c], t, _CMP_GT_OQ));
            bits |= static_cast<std::uint32_t>(mk) << (8 * c);
        }
        masks[i] = bits;
    }
}

constexpr int kRows = 3;  // 12 accumulators + 1 broadcast of 16 ymm

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    int u = 0;
    for (; u + kRows <= m; u += kRows)
        tile<kRows>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u);
    const float* qu = q + u * ldq;
    float* su = scores + u * kTopkPanel;
    if (m - u == 2) tile<2>(qu, ldq, dim, panel, thr + u, su, masks + u);
    if (m - u == 1) tile<1>(qu, ldq, dim, panel, thr + u, su, masks + u);
}
void column_masks(const float* scores, int m, const float* thr, std::uint32_t* masks) {
    const __m256 t[4] = {_mm256_loadu_ps(thr), _mm256_loadu_ps(thr + 8), _mm256_loadu_ps(thr + 16),
                         _mm256_loadu_ps(thr + 24)};
    for (int u = 0; u < m; ++u) {
        std::uint32_t bits = 0;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            const __m256 s = _mm256_loadu_ps(scores + u * kTopkPanel + 8 * c);
            bits |= static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(s, t[c], _CMP_GT_OQ))) << (8 * c);
        }
        masks[u] = bits;
    }
}

// One query, G panels at a time: 4G accumulators (12 for G = 3), one broadcast per
// factor, the panel rows as FMA memory operands.
template <int G>
inline void query_group(const float* q, int dim, const float* panels, std::int64_t panel_size, __m256 t,
                        float* scores, std::uint32_t* masks) {
    __m256 acc[G][4];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) acc[g][c] = _mm256_setzero_ps();
    for (int k = 0; k < dim; ++k) {
        const __m256 a = _mm256_broadcast_ss(q + k);
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            const float* p = panels + g * panel_size + k * kTopkPanel;
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c) acc[g][c] = _mm256_fmadd_ps(a, _mm256_loadu_ps(p + 8 * c), acc[g][c]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
        std::uint32_t bits = 0;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            _mm256_storeu_ps(scores + g * kTopkPanel + 8 * c, acc[g][c]);
            const int mk = _mm256_movemask_ps(_mm256_cmp_ps(acc[g][c], t, _CMP_GT_OQ));
            bits |= static_cast<std::uint32_t>(mk) << (8 * c);
        }
        masks[g] = bits;
    }
}

void query_scores(const float* q, int dim, const float* panels, std::int64_t n_panels, float thr, float* scores,
                  std::uint32_t* masks) {
    const std::int64_t ps = static_cast<std::int64_t>(dim) * kTopkPanel;
    const __m256 t = _mm256_set1_ps(thr);
    std::int64_t p = 0;
    for (; p + 3 <= n_panels; p += 3) query_group<3>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
    if (n_panels - p == 2) query_group<2>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
    if (n_panels - p == 1) query_group<1>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
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

// 192 queries (48 KB of rows at 64 factors, in L2) per block: with 48 the panels streamed
// from L3 four times as often, and that measured 10-20% slower on a shared Zen 3 whose
// L3 the neighbours keep busy.
extern const TopkKernels topk_kernels_avx2{panel_scores, finite_absmax, nullptr, 192, column_masks, query_scores};

}  // namespace tastemaker
