// AVX2+FMA ALS kernels.  The CG row solve follows the AVX-512 design (see als_avx512.cpp):
// each pass over a row's items loads every factor row for the dot product and reloads it
// (an L1 hit) for the axpy, items go in blocks of eight with one joint reduction and
// vectorized weights, and rows are prefetched ahead.  With only 16 ymm registers the
// working vectors (v, and the accumulator that receives the axpys) stay in per-thread
// scratch memory, not in registers: the dot phase keeps eight row sums live and streams
// v from L1; the axpy phase keeps a strip of up to eight accumulator chunks live and
// broadcasts the eight weights.  This layout does not depend on f, so one template
// serves every f: F > 0 is a compile-time f (a multiple of 8: no masks, loops fully
// unrolled), F == 0 the generic version with a masked tail.
#include <immintrin.h>

#include <cstdint>

#include "tastemaker/als.hpp"

namespace tastemaker {
namespace {

// Rows this far ahead go to L1; for rows too long to stay in L2 between passes, rows
// kPrefetchL2 ahead are prefetched as well (covers DRAM latency on the streaming passes).
constexpr int kPrefetch = 16;
constexpr int kPrefetchL2 = 64;

inline float hsum(__m256 v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}

inline __m256i lane_mask(int rem) {  // lanes < rem set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 ld(const float* p, int f, int chunk) {
    const int rem = f - 8 * chunk;
    return rem >= 8 ? _mm256_loadu_ps(p + 8 * chunk) : _mm256_maskload_ps(p + 8 * chunk, lane_mask(rem));
}

inline void st(float* p, int f, int chunk, __m256 v) {
    const int rem = f - 8 * chunk;
    if (rem >= 8)
        _mm256_storeu_ps(p + 8 * chunk, v);
    else
        _mm256_maskstore_ps(p + 8 * chunk, lane_mask(rem), v);
}

// ---------------------------------------------------------------- Gram (float64)
// Four rows per sweep over the upper triangle: each G element is loaded and stored once
// per four rank-1 updates.
void gram_accumulate(const float* Y, std::size_t n, int f, double* G) {
    const std::size_t fs = static_cast<std::size_t>(f);
    std::size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const float* y0 = Y + r * fs;
        const float* y1 = y0 + fs;
        const float* y2 = y1 + fs;
        const float* y3 = y2 + fs;
        for (int i = 0; i < f; ++i) {
            const __m256d a0 = _mm256_set1_pd(y0[i]), a1 = _mm256_set1_pd(y1[i]);
            const __m256d a2 = _mm256_set1_pd(y2[i]), a3 = _mm256_set1_pd(y3[i]);
            double* g = G + static_cast<std::size_t>(i) * fs;
            int j = i & ~3;
            for (; j + 4 <= f; j += 4) {
                __m256d acc = _mm256_loadu_pd(g + j);
                acc = _mm256_fmadd_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(y0 + j)), acc);
                acc = _mm256_fmadd_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(y1 + j)), acc);
                acc = _mm256_fmadd_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(y2 + j)), acc);
                acc = _mm256_fmadd_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(y3 + j)), acc);
                _mm256_storeu_pd(g + j, acc);
            }
            for (; j < f; ++j) {
                double s = g[j];
                s += static_cast<double>(y0[i]) * y0[j];
                s += static_cast<double>(y1[i]) * y1[j];
                s += static_cast<double>(y2[i]) * y2[j];
                s += static_cast<double>(y3[i]) * y3[j];
                g[j] = s;
            }
        }
    }
    for (; r < n; ++r) {
        const float* y0 = Y + r * fs;
        for (int i = 0; i < f; ++i) {
            double* g = G + static_cast<std::size_t>(i) * fs;
            for (int j = i; j < f; ++j) g[j] += static_cast<double>(y0[i]) * y0[j];
        }
    }
}

// ---------------------------------------------------------------- vector helpers
template <int F>
inline float vdot(const float* a, const float* b, int f_rt) {
    const int f = F ? F : f_rt;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int c = 0;
#pragma GCC unroll 16
    for (; 8 * c + 8 < f; c += 2) {
        s0 = _mm256_fmadd_ps(ld(a, f, c), ld(b, f, c), s0);
        s1 = _mm256_fmadd_ps(ld(a, f, c + 1), ld(b, f, c + 1), s1);
    }
    if (8 * c < f) s0 = _mm256_fmadd_ps(ld(a, f, c), ld(b, f, c), s0);
    return hsum(_mm256_add_ps(s0, s1));
}

// out = G v + lambda v (G symmetric: row j is column j), in strips of W chunks: W
// independent FMA chains, doubled (even / odd j) for narrow strips so that at least eight
// chains are in flight; at most 16 accumulators plus two broadcasts stay in registers.
template <int F, int W>
inline void gram_matvec_strip(const float* G, const float* v, __m256 l, int f, int c0, float* out) {
    constexpr bool two = W <= 4;
    const std::size_t fs = static_cast<std::size_t>(f);
    __m256 o[W], o2[W];
#pragma GCC unroll 8
    for (int c = 0; c < W; ++c) {
        o[c] = _mm256_mul_ps(l, ld(v, f, c0 + c));
        o2[c] = _mm256_setzero_ps();
    }
    int j = 0;
    if (two) {
        for (; j + 2 <= f; j += 2) {
            const __m256 b0 = _mm256_broadcast_ss(v + j), b1 = _mm256_broadcast_ss(v + j + 1);
            const float* g0 = G + static_cast<std::size_t>(j) * fs;
            const float* g1 = g0 + fs;
#pragma GCC unroll 8
            for (int c = 0; c < W; ++c) {
                o[c] = _mm256_fmadd_ps(b0, ld(g0, f, c0 + c), o[c]);
                o2[c] = _mm256_fmadd_ps(b1, ld(g1, f, c0 + c), o2[c]);
            }
        }
    }
    for (; j < f; ++j) {
        const __m256 b0 = _mm256_broadcast_ss(v + j);
        const float* g0 = G + static_cast<std::size_t>(j) * fs;
#pragma GCC unroll 8
        for (int c = 0; c < W; ++c) o[c] = _mm256_fmadd_ps(b0, ld(g0, f, c0 + c), o[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < W; ++c) st(out, f, c0 + c, two ? _mm256_add_ps(o[c], o2[c]) : o[c]);
}

template <int F>
inline void gram_matvec(const float* G, const float* v, float lambda, int f_rt, float* out) {
    const int f = F ? F : f_rt;
    const int nc = (f + 7) / 8;
    const __m256 l = _mm256_set1_ps(lambda);
    int c0 = 0;
    for (; c0 + 8 <= nc; c0 += 8) gram_matvec_strip<F, 8>(G, v, l, f, c0, out);
    switch (nc - c0) {
        case 1: gram_matvec_strip<F, 1>(G, v, l, f, c0, out); break;
        case 2: gram_matvec_strip<F, 2>(G, v, l, f, c0, out); break;
        case 3: gram_matvec_strip<F, 3>(G, v, l, f, c0, out); break;
        case 4: gram_matvec_strip<F, 4>(G, v, l, f, c0, out); break;
        case 5: gram_matvec_strip<F, 5>(G, v, l, f, c0, out); break;
        case 6: gram_matvec_strip<F, 6>(G, v, l, f, c0, out); break;
        case 7: gram_matvec_strip<F, 7>(G, v, l, f, c0, out); break;
        default: break;
    }
}

// Every cache line of the row: lines at 64-byte steps from its start plus its last byte
// (rows need not start on a line).
template <_mm_hint HINT>
inline void prefetch_row(const float* row, int f) {
    const char* p = reinterpret_cast<const char*>(row);
    const int bytes = 4 * f;
    for (int off = 0; off < bytes; off += 64) _mm_prefetch(p + off, HINT);
    if (bytes % 64 != 0 || (reinterpret_cast<std::uintptr_t>(p) & 63) != 0) _mm_prefetch(p + bytes - 1, HINT);
}

// Sums of eight 8-lane vectors into one vector: lane j = sum of s[j].
inline __m256 reduce8(const __m256 s[8]) {
    const __m256 t0 = _mm256_hadd_ps(s[0], s[1]);  // s0 01 23 | s1 01 23 || s0 45 67 | s1 45 67
    const __m256 t1 = _mm256_hadd_ps(s[2], s[3]);
    const __m256 t2 = _mm256_hadd_ps(s[4], s[5]);
    const __m256 t3 = _mm256_hadd_ps(s[6], s[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1);  // s0..s3 lanes 0-3 | s0..s3 lanes 4-7
    const __m256 u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Over the row's items, as in als_avx512.cpp:
//   residual: acc += sum_k (b_k - cm1_k (y_k . v)) y_k     (b_k = c_k for likes, else 0)
//   else:     acc += sum_k cm1_k (y_k . v) y_k
// with cm1_k = c_k - 1 (0 for a stored zero); v and acc are f-float vectors in memory.
// acc += sum_j w[j] * rows[j] over the f floats, in strips of up to eight chunks kept in
// registers; w[j] is broadcast from memory.
template <int F>
__attribute__((always_inline)) inline void axpy8(const float* const rows[8], const float* w, int f_rt, float* acc) {
    const int f = F ? F : f_rt;
    const int nc = (f + 7) / 8;
    for (int c0 = 0; c0 < nc; c0 += 8) {
        __m256 a[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c)
            a[c] = c0 + c < nc ? ld(acc, f, c0 + c) : _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const __m256 wj = _mm256_broadcast_ss(w + j);
#pragma GCC unroll 8
            for (int c = 0; c < 8; ++c)
                if (c0 + c < nc) a[c] = _mm256_fmadd_ps(wj, ld(rows[j], f, c0 + c), a[c]);
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c)
            if (c0 + c < nc) st(acc, f, c0 + c, a[c]);
    }
}

// Over the row's items, as in als_avx512.cpp:
//   residual: acc += sum_k (b_k - cm1_k (y_k . v)) y_k     (b_k = c_k for likes, else 0)
//   else:     acc += sum_k cm1_k (y_k . v) y_k
// with cm1_k = c_k - 1 (0 for a stored zero); v and acc are f-float vectors in memory.
// Software-pipelined by one block: block k's axpys are issued after block k+1's dot
// products, so the out-of-order core runs them while k+1's reduction and weights are in
// flight (in program order the other way round, the dependent chain dot -> reduction ->
// weights -> axpy leaves the FMA units idle for most of a block).  The order of the
// additions into acc is unchanged.
template <int F, bool residual>
void fused_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, float alpha,
                int f_rt, const float* v, float* acc, bool prefetch) {
    const int f = F ? F : f_rt;
    const int nc = (f + 7) / 8;
    const std::size_t fs = static_cast<std::size_t>(f);
    const bool prefetch_l2 = prefetch && nnz * f * 4 > (256 << 10);
    const __m256 valpha = _mm256_set1_ps(alpha), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    std::int32_t tidx[8];
    float tval[8];
    alignas(32) float wbuf[2][8];
    const float* rbuf[2][8];
    int cur = 0;
    for (std::int64_t k = 0; k < nnz; k += 8, cur ^= 1) {
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
        } else if (prefetch) {
            const std::int64_t ahead = nnz - (k + 8);  // items after this block
            const int n1 = ahead >= kPrefetch + 8 ? 8 : (ahead > kPrefetch ? static_cast<int>(ahead - kPrefetch) : 0);
            for (int j = 0; j < n1; ++j) prefetch_row<_MM_HINT_T0>(Y + static_cast<std::size_t>(idx[k + kPrefetch + j]) * fs, f);
            if (prefetch_l2 && ahead >= kPrefetchL2 + 8)
                for (int j = 0; j < 8; ++j)
                    prefetch_row<_MM_HINT_T1>(Y + static_cast<std::size_t>(idx[k + kPrefetchL2 + j]) * fs, f);
        }
        const float** rows = rbuf[cur];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) rows[j] = Y + static_cast<std::size_t>(bi[j]) * fs;

        // dot phase: eight independent sums, v streamed from L1
        __m256 s[8];
        {
            const __m256 v0 = ld(v, f, 0);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) s[j] = _mm256_mul_ps(ld(rows[j], f, 0), v0);
        }
#pragma GCC unroll 16
        for (int c = 1; c < nc; ++c) {
            const __m256 vc = ld(v, f, c);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) s[j] = _mm256_fmadd_ps(ld(rows[j], f, c), vc, s[j]);
        }
        const __m256 d = reduce8(s);
        const __m256 x = _mm256_loadu_ps(bv);
        const __m256 cv = _mm256_mul_ps(valpha, _mm256_and_ps(x, absmask));
        const __m256 cm1 = _mm256_and_ps(_mm256_sub_ps(cv, one), _mm256_cmp_ps(x, zero, _CMP_NEQ_OQ));
        __m256 wv;
        if (residual) {
            const __m256 b = _mm256_and_ps(cv, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
            wv = _mm256_fnmadd_ps(cm1, d, b);
        } else {
            wv = _mm256_mul_ps(cm1, d);
        }
        _mm256_store_ps(wbuf[cur], wv);
        // The barrier keeps GCC from carrying the dot phase's loads into the axpys (64
        // live row chunks do not fit in 16 registers and would be spilled to the stack).
        asm volatile("" ::: "memory");
        if (k > 0) axpy8<F>(rbuf[cur ^ 1], wbuf[cur ^ 1], f, acc);
    }
    if (nnz > 0) {
        asm volatile("" ::: "memory");
        axpy8<F>(rbuf[cur ^ 1], wbuf[cur ^ 1], f, acc);
    }
}

// scratch: r, p, ap (f floats each); x is updated in place.
template <int F>
void cg_row_t(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
              float alpha, float lambda, int cg_steps, int f_rt, float* x, float* scratch) {
    const int f = F ? F : f_rt;
    const int nc = (f + 7) / 8;
    float* r = scratch;
    float* p = scratch + f;
    float* ap = scratch + 2 * f;
    // Later passes find a short row's factor rows in L1/L2; only long rows need prefetch.
    const bool prefetch_again = nnz * f * 4 > (256 << 10);
    // r = b - (G + lambda I) x - sum (c-1)(y.x) y
    gram_matvec<F>(G, x, lambda, f, ap);
    for (int c = 0; c < nc; ++c) st(r, f, c, _mm256_sub_ps(_mm256_setzero_ps(), ld(ap, f, c)));
    fused_pass<F, true>(Y, idx, val, nnz, alpha, f, x, r, true);
    for (int c = 0; c < nc; ++c) st(p, f, c, ld(r, f, c));
    float rsold = vdot<F>(r, r, f);
    for (int it = 0; it < cg_steps && rsold > 1e-20f; ++it) {
        gram_matvec<F>(G, p, lambda, f, ap);
        fused_pass<F, false>(Y, idx, val, nnz, alpha, f, p, ap, prefetch_again);
        const float pap = vdot<F>(p, ap, f);
        if (!(pap > 0.0f)) break;
        const __m256 va = _mm256_set1_ps(rsold / pap);
        for (int c = 0; c < nc; ++c) {
            st(x, f, c, _mm256_fmadd_ps(va, ld(p, f, c), ld(x, f, c)));
            st(r, f, c, _mm256_fnmadd_ps(va, ld(ap, f, c), ld(r, f, c)));
        }
        const float rsnew = vdot<F>(r, r, f);
        const __m256 vb = _mm256_set1_ps(rsnew / rsold);
        for (int c = 0; c < nc; ++c) st(p, f, c, _mm256_fmadd_ps(vb, ld(p, f, c), ld(r, f, c)));
        rsold = rsnew;
    }
}

// f with a compile-time specialization (the common sizes); others take F = 0.
#define TM_ALS_FIXED_F(X) X(8) X(16) X(24) X(32) X(40) X(48) X(56) X(64) X(80) X(96) X(112) X(128) X(160) X(192) X(256)

void cg_row(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
            float alpha, float lambda, int cg_steps, int f, float* x, float* scratch) {
#define TM_CG_CASE(N) \
    case N: return cg_row_t<N>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
    switch (f) {
        TM_ALS_FIXED_F(TM_CG_CASE)
        default: return cg_row_t<0>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
    }
#undef TM_CG_CASE
}

void cg_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t n, float alpha, int f,
             const float* v, float* acc, bool residual, bool prefetch) {
#define TM_CASE(N)                                                                      \
    case N:                                                                             \
        return residual ? fused_pass<N, true>(Y, idx, val, n, alpha, f, v, acc, prefetch) \
                        : fused_pass<N, false>(Y, idx, val, n, alpha, f, v, acc, prefetch);
    switch (f) {
        TM_ALS_FIXED_F(TM_CASE)
        default:
            return residual ? fused_pass<0, true>(Y, idx, val, n, alpha, f, v, acc, prefetch)
                            : fused_pass<0, false>(Y, idx, val, n, alpha, f, v, acc, prefetch);
    }
#undef TM_CASE
}

void cg_matvec(const float* G, const float* v, float lambda, int f, float* out) {
#define TM_CASE(N) \
    case N: return gram_matvec<N>(G, v, lambda, f, out);
    switch (f) {
        TM_ALS_FIXED_F(TM_CASE)
        default: return gram_matvec<0>(G, v, lambda, f, out);
    }
#undef TM_CASE
}

}  // namespace

extern const AlsKernels als_kernels_avx2{gram_accumulate, cg_row, cg_pass, cg_matvec};

}  // namespace tastemaker
