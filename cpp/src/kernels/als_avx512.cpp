// AVX-512 ALS kernels.  The CG row solve is fused: each pass over a user's items loads
// every factor row once and does the dot product and the axpy from registers, two rows
// in flight (their horizontal reductions overlap), prefetching rows kPrefetch ahead.
// For f <= 128 the working vectors (p, A p) live in registers (template on the number
// of 16-lane chunks); larger f takes the generic loop version.
#include <immintrin.h>

#include <cstdint>

#include "tastemaker/als.hpp"

namespace tastemaker {
namespace {

constexpr int kPrefetch = 16;
// Rows this far ahead are prefetched into L2 only (into L1 they would evict the block).
constexpr int kPrefetchL2 = 64;

inline float hsum(__m512 v) {
    const __m512 f = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m256 h = _mm512_castps512_ps256(f);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}

inline __mmask16 tail_mask(int f, int chunk) {
    const int rem = f - 16 * chunk;
    return rem >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << rem) - 1u);
}

// ---------------------------------------------------------------- Gram (float64)
void gram_accumulate(const float* Y, std::size_t n, int f, double* G) {
    const std::size_t fs = static_cast<std::size_t>(f);
    std::size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const float* y0 = Y + r * fs;
        const float* y1 = y0 + fs;
        const float* y2 = y1 + fs;
        const float* y3 = y2 + fs;
        for (int i = 0; i < f; ++i) {
            const __m512d a0 = _mm512_set1_pd(y0[i]), a1 = _mm512_set1_pd(y1[i]);
            const __m512d a2 = _mm512_set1_pd(y2[i]), a3 = _mm512_set1_pd(y3[i]);
            double* g = G + static_cast<std::size_t>(i) * fs;
            for (int j = i & ~7; j < f; j += 8) {
                const int rem = f - j;
                const __mmask8 m = rem >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << rem) - 1u);
                __m512d acc = _mm512_maskz_loadu_pd(m, g + j);
                acc = _mm512_fmadd_pd(a0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, y0 + j)), acc);
                acc = _mm512_fmadd_pd(a1, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, y1 + j)), acc);
                acc = _mm512_fmadd_pd(a2, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, y2 + j)), acc);
                acc = _mm512_fmadd_pd(a3, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, y3 + j)), acc);
                _mm512_mask_storeu_pd(g + j, m, acc);
            }
        }
    }
    for (; r < n; ++r) {
        const float* y0 = Y + r * fs;
        for (int i = 0; i < f; ++i) {
            const __m512d a0 = _mm512_set1_pd(y0[i]);
            double* g = G + static_cast<std::size_t>(i) * fs;
            for (int j = i & ~7; j < f; j += 8) {
                const int rem = f - j;
                const __mmask8 m = rem >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << rem) - 1u);
                __m512d acc = _mm512_maskz_loadu_pd(m, g + j);
                acc = _mm512_fmadd_pd(a0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, y0 + j)), acc);
                _mm512_mask_storeu_pd(g + j, m, acc);
            }
        }
    }
}

// ---------------------------------------------------------------- fused CG, f <= 16*NC
template <int NC>
struct Vec {
    __m512 v[NC];
};

template <int NC>
inline void load(Vec<NC>& out, const float* p, int f) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) out.v[c] = _mm512_maskz_loadu_ps(tail_mask(f, c), p + 16 * c);
}

template <int NC>
inline void store(const Vec<NC>& in, float* p, int f) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(p + 16 * c, tail_mask(f, c), in.v[c]);
}

template <int NC>
inline float vdot(const Vec<NC>& a, const Vec<NC>& b) {
    __m512 s = _mm512_mul_ps(a.v[0], b.v[0]);
#pragma GCC unroll 8
    for (int c = 1; c < NC; ++c) s = _mm512_fmadd_ps(a.v[c], b.v[c], s);
    return hsum(s);
}

// out = G v + lambda v (G symmetric: row j is column j).  vs is v in memory.
template <int NC>
inline void gram_matvec(const float* G, const float* vs, const Vec<NC>& v, float lambda, int f, Vec<NC>& out) {
    const __m512 l = _mm512_set1_ps(lambda);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) out.v[c] = _mm512_mul_ps(l, v.v[c]);
    const std::size_t fs = static_cast<std::size_t>(f);
    Vec<NC> o2;  // second accumulator set halves the FMA dependency chain
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) o2.v[c] = _mm512_setzero_ps();
    int j = 0;
    for (; j + 2 <= f; j += 2) {
        const __m512 b0 = _mm512_set1_ps(vs[j]), b1 = _mm512_set1_ps(vs[j + 1]);
        const float* g0 = G + static_cast<std::size_t>(j) * fs;
        const float* g1 = g0 + fs;
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const __mmask16 m = tail_mask(f, c);
            out.v[c] = _mm512_fmadd_ps(b0, _mm512_maskz_loadu_ps(m, g0 + 16 * c), out.v[c]);
            o2.v[c] = _mm512_fmadd_ps(b1, _mm512_maskz_loadu_ps(m, g1 + 16 * c), o2.v[c]);
        }
    }
    if (j < f) {
        const __m512 b0 = _mm512_set1_ps(vs[j]);
        const float* g0 = G + static_cast<std::size_t>(j) * fs;
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c)
            out.v[c] = _mm512_fmadd_ps(b0, _mm512_maskz_loadu_ps(tail_mask(f, c), g0 + 16 * c), out.v[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) out.v[c] = _mm512_add_ps(out.v[c], o2.v[c]);
}

inline void prefetch_row(const float* row, int f) {
    const char* p = reinterpret_cast<const char*>(row);
    for (int off = 0; off < f * 4; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
}

inline void prefetch_row_l2(const float* row, int f) {
    const char* p = reinterpret_cast<const char*>(row);
    for (int off = 0; off < f * 4; off += 64) _mm_prefetch(p + off, _MM_HINT_T1);
}

// Sums of eight 16-lane vectors: d_j for j < 4 lands in lane 4j, d_{j+4} in lane 4j+1,
// then a permute puts d_0..d_7 in lanes 0..7.  ~20 shuffles/adds for eight dots instead
// of eight dependent horizontal sums.
inline __m256 reduce8(const __m512 s[8]) {
    __m512 t[4];
    for (int q = 0; q < 4; ++q) {
        const __m512 a = _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 b = _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2));
        t[q] = _mm512_add_ps(a, b);  // 256-bit halves: item 2q | item 2q+1 (8 partials each)
    }
    __m512 u[2];
    for (int h = 0; h < 2; ++h) {
        const __m512 a = _mm512_shuffle_f32x4(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 b = _mm512_shuffle_f32x4(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(3, 1, 3, 1));
        u[h] = _mm512_add_ps(a, b);  // 128-bit lane j: item 4h+j (4 partials)
    }
    const __m512 lo = _mm512_unpacklo_ps(u[0], u[1]);  // [a0 b0 a1 b1]
    const __m512 hi = _mm512_unpackhi_ps(u[0], u[1]);  // [a2 b2 a3 b3]
    __m512 v = _mm512_add_ps(lo, hi);
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));  // lane 4j: item j, 4j+1: item j+4
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(perm, v));
}

// Over the user's items, one load per factor row:
//   residual: acc += sum_k (b_k - cm1_k (y_k . v)) y_k     (b_k = c_k for likes, else 0)
//   else:     acc += sum_k cm1_k (y_k . v) y_k
// with cm1_k = c_k - 1 (0 for a stored zero).  Items go in blocks of eight: eight
// independent dots, one joint reduction, vectorized weights, eight axpys into two
// accumulator sets (short dependency chains; the next block's loads overlap).
template <int NC, bool residual>
inline void fused_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz,
                       float alpha, int f, const Vec<NC>& v, Vec<NC>& acc, bool prefetch) {
    const std::size_t fs = static_cast<std::size_t>(f);
    const __m256 valpha = _mm256_set1_ps(alpha), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    Vec<NC> acc2;
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) acc2.v[c] = _mm512_setzero_ps();
    alignas(32) float w[8];
    std::int32_t tidx[8];
    float tval[8];
    for (std::int64_t k = 0; k < nnz; k += 8) {
        const std::int32_t* bi = idx + k;
        const float* bv = val + k;
        if (k + 8 > nnz) {  // pad the last block with weight-0 copies of a valid row
            const int n = static_cast<int>(nnz - k);
            for (int j = 0; j < 8; ++j) {
                tidx[j] = idx[k + (j < n ? j : 0)];
                tval[j] = j < n ? val[k + j] : 0.0f;
            }
            bi = tidx;
            bv = tval;
        } else if (prefetch && k + 8 + kPrefetch <= nnz) {
            for (int j = 0; j < 8; ++j) prefetch_row(Y + static_cast<std::size_t>(idx[k + kPrefetch + j]) * fs, f);
            if (k + 8 + kPrefetchL2 <= nnz)  // long rows stream from DRAM: cover its latency
                for (int j = 0; j < 8; ++j)
                    prefetch_row_l2(Y + static_cast<std::size_t>(idx[k + kPrefetchL2 + j]) * fs, f);
        }
        const float* rows[8];
        __m512 s[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            rows[j] = Y + static_cast<std::size_t>(bi[j]) * fs;
            Vec<NC> a;
            load(a, rows[j], f);
            __m512 d = _mm512_mul_ps(a.v[0], v.v[0]);
#pragma GCC unroll 8
            for (int c = 1; c < NC; ++c) d = _mm512_fmadd_ps(a.v[c], v.v[c], d);
            s[j] = d;
        }
        const __m256 d = reduce8(s);
        const __m256 x = _mm256_loadu_ps(bv);
        const __m256 c = _mm256_mul_ps(valpha, _mm256_and_ps(x, absmask));
        const __m256 cm1 = _mm256_and_ps(_mm256_sub_ps(c, one), _mm256_cmp_ps(x, zero, _CMP_NEQ_OQ));
        __m256 wv;
        if (residual) {
            const __m256 b = _mm256_and_ps(c, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
            wv = _mm256_fnmadd_ps(cm1, d, b);
        } else {
            wv = _mm256_mul_ps(cm1, d);
        }
        _mm256_store_ps(w, wv);
        // Reload the rows (L1 hits) rather than keep 8 * NC registers live across the
        // reduction: without this barrier GCC reuses the first loads and spills them.
        if (NC > 2) asm volatile("" ::: "memory");
#pragma GCC unroll 8
        for (int j = 0; j < 8; j += 2) {
            const __m512 w0 = _mm512_set1_ps(w[j]), w1 = _mm512_set1_ps(w[j + 1]);
            Vec<NC> a, b;
            load(a, rows[j], f);
            load(b, rows[j + 1], f);
#pragma GCC unroll 8
            for (int c2 = 0; c2 < NC; ++c2) {
                acc.v[c2] = _mm512_fmadd_ps(w0, a.v[c2], acc.v[c2]);
                acc2.v[c2] = _mm512_fmadd_ps(w1, b.v[c2], acc2.v[c2]);
            }
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) acc.v[c] = _mm512_add_ps(acc.v[c], acc2.v[c]);
}

// FULL: f == 16 * NC, so f is a compile-time constant: no masks, unrolled prefetch.
template <int NC, bool FULL>
void cg_row_fixed(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
                  float alpha, float lambda, int cg_steps, int f_runtime, float* x, float* scratch) {
    const int f = FULL ? 16 * NC : f_runtime;
    // Later passes find a short row's factor rows in L1/L2; only long rows need prefetch.
    const bool prefetch_again = nnz * f * 4 > (256 << 10);
    Vec<NC> X, R, P, AP;
    load(X, x, f);
    // r = b - (G + lambda I) x - sum (c-1)(y.x) y
    gram_matvec(G, x, X, lambda, f, AP);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) R.v[c] = _mm512_sub_ps(_mm512_setzero_ps(), AP.v[c]);
    fused_pass<NC, true>(Y, idx, val, nnz, alpha, f, X, R, true);
    P = R;
    float rsold = vdot(R, R);
    for (int it = 0; it < cg_steps && rsold > 1e-20f; ++it) {
        store(P, scratch, f);
        gram_matvec(G, scratch, P, lambda, f, AP);
        fused_pass<NC, false>(Y, idx, val, nnz, alpha, f, P, AP, prefetch_again);
        const float pap = vdot(P, AP);
        if (!(pap > 0.0f)) break;
        const float a = rsold / pap;
        const __m512 va = _mm512_set1_ps(a);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            X.v[c] = _mm512_fmadd_ps(va, P.v[c], X.v[c]);
            R.v[c] = _mm512_fnmadd_ps(va, AP.v[c], R.v[c]);
        }
        const float rsnew = vdot(R, R);
        const __m512 vb = _mm512_set1_ps(rsnew / rsold);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) P.v[c] = _mm512_fmadd_ps(vb, P.v[c], R.v[c]);
        rsold = rsnew;
    }
    store(X, x, f);
}

// ---------------------------------------------------------------- generic f (> 128)
inline float dot_n(const float* a, const float* b, int f) {
    __m512 s = _mm512_setzero_ps();
    for (int j = 0; j < f; j += 16) {
        const __mmask16 m = tail_mask(f, j / 16);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, b + j), s);
    }
    return hsum(s);
}

inline void axpy_n(float w, const float* x, float* y, int f) {
    const __m512 vw = _mm512_set1_ps(w);
    for (int j = 0; j < f; j += 16) {
        const __mmask16 m = tail_mask(f, j / 16);
        _mm512_mask_storeu_ps(y + j, m,
                              _mm512_fmadd_ps(vw, _mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, y + j)));
    }
}

inline void gram_matvec_n(const float* G, const float* v, float lambda, int f, float* out) {
    for (int j = 0; j < f; ++j) out[j] = lambda * v[j];
    for (int j = 0; j < f; ++j) axpy_n(v[j], G + static_cast<std::size_t>(j) * f, out, f);
}

void cg_row_generic(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
                    float alpha, float lambda, int cg_steps, int f, float* x, float* scratch) {
    float* r = scratch;
    float* p = scratch + f;
    float* ap = scratch + 2 * f;
    const std::size_t fs = static_cast<std::size_t>(f);
    gram_matvec_n(G, x, lambda, f, ap);
    for (int j = 0; j < f; ++j) r[j] = -ap[j];
    for (std::int64_t k = 0; k < nnz; ++k) {
        const float v = val[k];
        if (v == 0.0f) continue;
        const float c = alpha * (v > 0.0f ? v : -v);
        const float* y = Y + static_cast<std::size_t>(idx[k]) * fs;
        axpy_n((v > 0.0f ? c : 0.0f) - (c - 1.0f) * dot_n(y, x, f), y, r, f);
    }
    for (int j = 0; j < f; ++j) p[j] = r[j];
    float rsold = dot_n(r, r, f);
    for (int it = 0; it < cg_steps && rsold > 1e-20f; ++it) {
        gram_matvec_n(G, p, lambda, f, ap);
        for (std::int64_t k = 0; k < nnz; ++k) {
            const float v = val[k];
            if (v == 0.0f) continue;
            const float c = alpha * (v > 0.0f ? v : -v);
            const float* y = Y + static_cast<std::size_t>(idx[k]) * fs;
            axpy_n((c - 1.0f) * dot_n(y, p, f), y, ap, f);
        }
        const float pap = dot_n(p, ap, f);
        if (!(pap > 0.0f)) break;
        const float a = rsold / pap;
        axpy_n(a, p, x, f);
        axpy_n(-a, ap, r, f);
        const float rsnew = dot_n(r, r, f);
        const float beta = rsnew / rsold;
        for (int j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
        rsold = rsnew;
    }
}

void cg_row(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
            float alpha, float lambda, int cg_steps, int f, float* x, float* scratch) {
    switch ((f + 15) / 16) {
        case 1: return f == 16 ? cg_row_fixed<1, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<1, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 2: return f == 32 ? cg_row_fixed<2, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<2, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 3: return f == 48 ? cg_row_fixed<3, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<3, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 4: return f == 64 ? cg_row_fixed<4, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<4, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 5: return f == 80 ? cg_row_fixed<5, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<5, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 6: return f == 96 ? cg_row_fixed<6, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<6, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 7: return f == 112 ? cg_row_fixed<7, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<7, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 8: return f == 128 ? cg_row_fixed<8, true>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch) : cg_row_fixed<8, false>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        default: return cg_row_generic(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
    }
}

}  // namespace

extern const AlsKernels als_kernels_avx512{gram_accumulate, cg_row, nullptr, nullptr};

}  // namespace tastemaker
