// AVX-512 path: a register tile of M queries x 32 items (2 zmm per query), the panel
// row loaded once per factor and each query factor broadcast from memory.
#include <immintrin.h>

#include <cmath>

#include "tastemaker/topk.hpp"

namespace tastemaker {
namespace {

template <int M>
inline void tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                 float* scores, std::uint32_t* masks) {
    __m512 lo[M], hi[M];
    for (int i = 0; i < M; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
    for (int k = 0; k < dim; ++k) {
        const __m512 p0 = _mm512_loadu_ps(panel + k * kTopkPanel);
        const __m512 p1 = _mm512_loadu_ps(panel + k * kTopkPanel + 16);
        for (int i = 0; i < M; ++i) {
            const __m512 a = _mm512_set1_ps(q[i * ldq + k]);
            lo[i] = _mm512_fmadd_ps(a, p0, lo[i]);
            hi[i] = _mm512_fmadd_ps(a, p1, hi[i]);
        }
    }
    for (int i = 0; i < M; ++i) {
        const __m512 t = _mm512_set1_ps(thr[i]);
        _mm512_storeu_ps(scores + i * kTopkPanel, lo[i]);
        _mm512_storeu_ps(scores + i * kTopkPanel + 16, hi[i]);
        const std::uint32_t m0 = _mm512_cmp_ps_mask(lo[i], t, _CMP_GT_OQ);
        const std::uint32_t m1 = _mm512_cmp_ps_mask(hi[i], t, _CMP_GT_OQ);
        masks[i] = m0 | (m1 << 16);
    }
}

constexpr int kRows = 12;  // 24 accumulators + 2 panel registers + 1 broadcast of 32 zmm

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    int u = 0;
    for (; u + kRows <= m; u += kRows)
        tile<kRows>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u);
    const float* qu = q + u * ldq;
    float* su = scores + u * kTopkPanel;
    switch (m - u) {
        case 0: break;
        case 1: tile<1>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 2: tile<2>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 3: tile<3>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 4: tile<4>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 5: tile<5>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 6: tile<6>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 7: tile<7>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 8: tile<8>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 9: tile<9>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        case 10: tile<10>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
        default: tile<11>(qu, ldq, dim, panel, thr + u, su, masks + u); break;
    }
}

void column_masks(const float* scores, int m, const float* thr, std::uint32_t* masks) {
    const __m512 t0 = _mm512_loadu_ps(thr), t1 = _mm512_loadu_ps(thr + 16);
    for (int u = 0; u < m; ++u) {
        const std::uint32_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(scores + u * kTopkPanel), t0, _CMP_GT_OQ);
        const std::uint32_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(scores + u * kTopkPanel + 16), t1, _CMP_GT_OQ);
        masks[u] = m0 | (m1 << 16);
    }
}

// One query, G panels at a time: 2G accumulators (8 chains for G = 4, enough for the
// 4-cycle FMA latency on two pipes), one broadcast per factor, the panel rows as FMA
// memory operands.  Latency-bound with one panel (2 chains), hence the groups.
template <int G>
inline void query_group(const float* q, int dim, const float* panels, std::int64_t panel_size, __m512 t,
                        float* scores, std::uint32_t* masks) {
    __m512 lo[G], hi[G];
    for (int g = 0; g < G; ++g) lo[g] = hi[g] = _mm512_setzero_ps();
    for (int k = 0; k < dim; ++k) {
        const __m512 a = _mm512_set1_ps(q[k]);
        for (int g = 0; g < G; ++g) {
            const float* p = panels + g * panel_size + k * kTopkPanel;
            lo[g] = _mm512_fmadd_ps(a, _mm512_loadu_ps(p), lo[g]);
            hi[g] = _mm512_fmadd_ps(a, _mm512_loadu_ps(p + 16), hi[g]);
        }
    }
    for (int g = 0; g < G; ++g) {
        _mm512_storeu_ps(scores + g * kTopkPanel, lo[g]);
        _mm512_storeu_ps(scores + g * kTopkPanel + 16, hi[g]);
        const std::uint32_t m0 = _mm512_cmp_ps_mask(lo[g], t, _CMP_GT_OQ);
        const std::uint32_t m1 = _mm512_cmp_ps_mask(hi[g], t, _CMP_GT_OQ);
        masks[g] = m0 | (m1 << 16);
    }
}

void query_scores(const float* q, int dim, const float* panels, std::int64_t n_panels, float thr, float* scores,
                  std::uint32_t* masks) {
    const std::int64_t ps = static_cast<std::int64_t>(dim) * kTopkPanel;
    const __m512 t = _mm512_set1_ps(thr);
    std::int64_t p = 0;
    for (; p + 4 <= n_panels; p += 4) query_group<4>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
    switch (n_panels - p) {
        case 3: query_group<3>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p); break;
        case 2: query_group<2>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p); break;
        case 1: query_group<1>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p); break;
        default: break;
    }
}

float finite_absmax(const float* x, std::int64_t n) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 big = _mm512_set1_ps(3.4028235e38f);
    __m512 m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
    __mmask16 bad = 0;
    std::int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_andnot_ps(sign, _mm512_loadu_ps(x + i));
        const __m512 b = _mm512_andnot_ps(sign, _mm512_loadu_ps(x + i + 16));
        bad |= _mm512_cmp_ps_mask(a, big, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(b, big, _CMP_NLE_UQ);
        m0 = _mm512_max_ps(m0, a);
        m1 = _mm512_max_ps(m1, b);
    }
    for (; i < n; i += 16) {
        const std::int64_t left = n - i;
        const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                       : static_cast<__mmask16>((1u << left) - 1u);
        const __m512 a = _mm512_andnot_ps(sign, _mm512_maskz_loadu_ps(k, x + i));
        bad |= _mm512_cmp_ps_mask(a, big, _CMP_NLE_UQ);
        m0 = _mm512_max_ps(m0, a);
    }
    if (bad) return INFINITY;
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_max_ps(m0, m1));
    float m = 0.0f;
    for (int j = 0; j < 16; ++j) m = lanes[j] > m ? lanes[j] : m;
    return m;
}

inline __m512 lo_pd(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline __m512 hi_pd(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// In-register 16 x 16 transpose: r[i][j] -> r[j][i].
inline void transpose16(__m512* r) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = lo_pd(t[i], t[i + 2]);
        r[i + 1] = hi_pd(t[i], t[i + 2]);
        r[i + 2] = lo_pd(t[i + 1], t[i + 3]);
        r[i + 3] = hi_pd(t[i + 1], t[i + 3]);
    }
    // r[4q + c] lane L now holds rows 4q..4q+3 of column 4L + c
    for (int q = 0; q < 2; ++q)
        for (int c = 0; c < 4; ++c) {
            t[8 * q + c] = _mm512_shuffle_f32x4(r[8 * q + c], r[8 * q + 4 + c], 0x88);
            t[8 * q + 4 + c] = _mm512_shuffle_f32x4(r[8 * q + c], r[8 * q + 4 + c], 0xDD);
        }
    for (int c = 0; c < 8; ++c) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
    }
}

void pack_panel(const float* items, const std::int32_t* ids, std::int64_t first, int count, int dim, float* dst) {
    for (int g = 0; g < kTopkPanel / 16; ++g) {
        const float* rows[16];
        for (int i = 0; i < 16; ++i) {
            const int j = g * 16 + i;
            rows[i] = j < count ? items + (ids ? static_cast<std::int64_t>(ids[first + j]) : first + j) * dim
                                : nullptr;
        }
        for (int d0 = 0; d0 < dim; d0 += 16) {
            const int w = dim - d0 < 16 ? dim - d0 : 16;
            const __mmask16 mk = static_cast<__mmask16>((1u << w) - 1u);
            __m512 r[16];
            for (int i = 0; i < 16; ++i)
                r[i] = rows[i] ? _mm512_maskz_loadu_ps(mk, rows[i] + d0) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < w; ++i) _mm512_storeu_ps(dst + (d0 + i) * kTopkPanel + g * 16, r[i]);
        }
    }
}

}  // namespace

extern const TopkKernels topk_kernels_avx512{panel_scores, finite_absmax, pack_panel, 48, column_masks, query_scores};

}  // namespace tastemaker
