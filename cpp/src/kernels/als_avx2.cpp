// AVX2+FMA ALS kernels: the same fused CG structure as the AVX-512 path with 8 lanes
// (f <= 64 kept in registers, larger f through the generic loop version).
#include <immintrin.h>

#include <cstdint>

#include "tastemaker/als.hpp"

namespace tastemaker {
namespace {

constexpr int kPrefetch = 16;

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
void gram_accumulate(const float* Y, std::size_t n, int f, double* G) {
    const std::size_t fs = static_cast<std::size_t>(f);
    std::size_t r = 0;
    for (; r + 2 <= n; r += 2) {
        const float* y0 = Y + r * fs;
        const float* y1 = y0 + fs;
        for (int i = 0; i < f; ++i) {
            const __m256d a0 = _mm256_set1_pd(y0[i]), a1 = _mm256_set1_pd(y1[i]);
            double* g = G + static_cast<std::size_t>(i) * fs;
            int j = i & ~3;
            for (; j + 4 <= f; j += 4) {
                __m256d acc = _mm256_loadu_pd(g + j);
                acc = _mm256_fmadd_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(y0 + j)), acc);
                acc = _mm256_fmadd_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(y1 + j)), acc);
                _mm256_storeu_pd(g + j, acc);
            }
            for (; j < f; ++j) g[j] += static_cast<double>(y0[i]) * y0[j] + static_cast<double>(y1[i]) * y1[j];
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

// ---------------------------------------------------------------- fused CG, f <= 8*NC
template <int NC>
struct Vec {
    __m256 v[NC];
};

template <int NC>
inline void load(Vec<NC>& out, const float* p, int f) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) out.v[c] = ld(p, f, c);
}

template <int NC>
inline float vdot(const Vec<NC>& a, const Vec<NC>& b) {
    __m256 s = _mm256_mul_ps(a.v[0], b.v[0]);
#pragma GCC unroll 8
    for (int c = 1; c < NC; ++c) s = _mm256_fmadd_ps(a.v[c], b.v[c], s);
    return hsum(s);
}

template <int NC>
inline void gram_matvec(const float* G, const float* vs, const Vec<NC>& v, float lambda, int f, Vec<NC>& out) {
    const __m256 l = _mm256_set1_ps(lambda);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) out.v[c] = _mm256_mul_ps(l, v.v[c]);
    for (int j = 0; j < f; ++j) {
        const __m256 b = _mm256_set1_ps(vs[j]);
        const float* g = G + static_cast<std::size_t>(j) * f;
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) out.v[c] = _mm256_fmadd_ps(b, ld(g, f, c), out.v[c]);
    }
}

inline void prefetch_row(const float* row, int f) {
    const char* p = reinterpret_cast<const char*>(row);
    for (int off = 0; off < f * 4; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
}

// See als_avx512.cpp: residual -> acc += (b - cm1 (y.v)) y, else acc += cm1 (y.v) y.
template <int NC, bool residual>
inline void fused_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz,
                       float alpha, int f, const Vec<NC>& v, Vec<NC>& acc) {
    const std::size_t fs = static_cast<std::size_t>(f);
    auto weights = [alpha](float x, float& cm1, float& b) {
        const float c = alpha * (x > 0.0f ? x : -x);
        cm1 = x != 0.0f ? c - 1.0f : 0.0f;
        b = x > 0.0f ? c : 0.0f;
    };
    std::int64_t k = 0;
    for (; k + 2 <= nnz; k += 2) {
        if (k + kPrefetch + 1 < nnz) {
            prefetch_row(Y + static_cast<std::size_t>(idx[k + kPrefetch]) * fs, f);
            prefetch_row(Y + static_cast<std::size_t>(idx[k + kPrefetch + 1]) * fs, f);
        }
        Vec<NC> a, b;
        load(a, Y + static_cast<std::size_t>(idx[k]) * fs, f);
        load(b, Y + static_cast<std::size_t>(idx[k + 1]) * fs, f);
        __m256 s0 = _mm256_mul_ps(a.v[0], v.v[0]);
        __m256 s1 = _mm256_mul_ps(b.v[0], v.v[0]);
#pragma GCC unroll 8
        for (int c = 1; c < NC; ++c) {
            s0 = _mm256_fmadd_ps(a.v[c], v.v[c], s0);
            s1 = _mm256_fmadd_ps(b.v[c], v.v[c], s1);
        }
        float cm0, b0, cm1, b1;
        weights(val[k], cm0, b0);
        weights(val[k + 1], cm1, b1);
        const float d0 = hsum(s0), d1 = hsum(s1);
        const __m256 w0 = _mm256_set1_ps(residual ? b0 - cm0 * d0 : cm0 * d0);
        const __m256 w1 = _mm256_set1_ps(residual ? b1 - cm1 * d1 : cm1 * d1);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) acc.v[c] = _mm256_fmadd_ps(w1, b.v[c], _mm256_fmadd_ps(w0, a.v[c], acc.v[c]));
    }
    if (k < nnz) {
        Vec<NC> a;
        load(a, Y + static_cast<std::size_t>(idx[k]) * fs, f);
        float cm0, b0;
        weights(val[k], cm0, b0);
        const float d0 = vdot(a, v);
        const __m256 w0 = _mm256_set1_ps(residual ? b0 - cm0 * d0 : cm0 * d0);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) acc.v[c] = _mm256_fmadd_ps(w0, a.v[c], acc.v[c]);
    }
}

template <int NC>
void cg_row_fixed(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
                  float alpha, float lambda, int cg_steps, int f, float* x, float* scratch) {
    Vec<NC> X, R, P, AP;
    load(X, x, f);
    gram_matvec(G, x, X, lambda, f, AP);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) R.v[c] = _mm256_sub_ps(_mm256_setzero_ps(), AP.v[c]);
    fused_pass<NC, true>(Y, idx, val, nnz, alpha, f, X, R);
    P = R;
    float rsold = vdot(R, R);
    for (int it = 0; it < cg_steps && rsold > 1e-20f; ++it) {
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) st(scratch, f, c, P.v[c]);
        gram_matvec(G, scratch, P, lambda, f, AP);
        fused_pass<NC, false>(Y, idx, val, nnz, alpha, f, P, AP);
        const float pap = vdot(P, AP);
        if (!(pap > 0.0f)) break;
        const __m256 va = _mm256_set1_ps(rsold / pap);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            X.v[c] = _mm256_fmadd_ps(va, P.v[c], X.v[c]);
            R.v[c] = _mm256_fnmadd_ps(va, AP.v[c], R.v[c]);
        }
        const float rsnew = vdot(R, R);
        const __m256 vb = _mm256_set1_ps(rsnew / rsold);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) P.v[c] = _mm256_fmadd_ps(vb, P.v[c], R.v[c]);
        rsold = rsnew;
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) st(x, f, c, X.v[c]);
}

// ---------------------------------------------------------------- generic f (> 64)
inline float dot_n(const float* a, const float* b, int f) {
    __m256 s = _mm256_setzero_ps();
    for (int c = 0; 8 * c < f; ++c) s = _mm256_fmadd_ps(ld(a, f, c), ld(b, f, c), s);
    return hsum(s);
}

inline void axpy_n(float w, const float* x, float* y, int f) {
    const __m256 vw = _mm256_set1_ps(w);
    for (int c = 0; 8 * c < f; ++c) st(y, f, c, _mm256_fmadd_ps(vw, ld(x, f, c), ld(y, f, c)));
}

void cg_row_generic(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
                    float alpha, float lambda, int cg_steps, int f, float* x, float* scratch) {
    float* r = scratch;
    float* p = scratch + f;
    float* ap = scratch + 2 * f;
    const std::size_t fs = static_cast<std::size_t>(f);
    auto matvec = [&](const float* v, float* out) {
        for (int j = 0; j < f; ++j) out[j] = lambda * v[j];
        for (int j = 0; j < f; ++j) axpy_n(v[j], G + static_cast<std::size_t>(j) * fs, out, f);
    };
    matvec(x, ap);
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
        matvec(p, ap);
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
    switch ((f + 7) / 8) {
        case 1: return cg_row_fixed<1>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 2: return cg_row_fixed<2>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 3: return cg_row_fixed<3>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 4: return cg_row_fixed<4>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 5: return cg_row_fixed<5>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 6: return cg_row_fixed<6>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 7: return cg_row_fixed<7>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        case 8: return cg_row_fixed<8>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
        default: return cg_row_generic(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch);
    }
}

}  // namespace

extern const AlsKernels als_kernels_avx2{gram_accumulate, cg_row};

}  // namespace tastemaker
