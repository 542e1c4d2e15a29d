// Portable ALS kernels: the reference every SIMD path is tested against.
#include <cstdint>

#include "tastemaker/als.hpp"

namespace tastemaker {
namespace {

void gram_accumulate(const float* Y, std::size_t n, int f, double* G) {
    for (std::size_t r = 0; r < n; ++r) {
        const float* y = Y + r * static_cast<std::size_t>(f);
        for (int i = 0; i < f; ++i) {
            const double yi = y[i];
            double* g = G + static_cast<std::size_t>(i) * f;
            for (int j = i; j < f; ++j) g[j] += yi * static_cast<double>(y[j]);
        }
    }
}

inline float dotf(const float* a, const float* b, int f) {
    float s = 0.0f;
    for (int j = 0; j < f; ++j) s += a[j] * b[j];
    return s;
}

inline void axpyf(float a, const float* x, float* y, int f) {
    for (int j = 0; j < f; ++j) y[j] += a * x[j];
}

// out = G v + lambda v
inline void gram_matvec(const float* G, const float* v, float lambda, int f, float* out) {
    for (int j = 0; j < f; ++j) out[j] = lambda * v[j] + dotf(G + static_cast<std::size_t>(j) * f, v, f);
}

void cg_row(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz,
            const float* G, float alpha, float lambda, int cg_steps, int f, float* x,
            float* scratch) {
    float* r = scratch;
    float* p = scratch + f;
    float* ap = scratch + 2 * f;
    // r = b - A x
    gram_matvec(G, x, lambda, f, ap);
    for (int j = 0; j < f; ++j) r[j] = -ap[j];
    for (std::int64_t k = 0; k < nnz; ++k) {
        const float v = val[k];
        if (v == 0.0f) continue;
        const float c = alpha * (v > 0.0f ? v : -v);
        const float* y = Y + static_cast<std::size_t>(idx[k]) * f;
        const float w = (v > 0.0f ? c : 0.0f) - (c - 1.0f) * dotf(y, x, f);
        axpyf(w, y, r, f);
    }
    for (int j = 0; j < f; ++j) p[j] = r[j];
    float rsold = dotf(r, r, f);
    for (int it = 0; it < cg_steps && rsold > 1e-20f; ++it) {
        gram_matvec(G, p, lambda, f, ap);
        for (std::int64_t k = 0; k < nnz; ++k) {
            const float v = val[k];
            if (v == 0.0f) continue;
            const float c = alpha * (v > 0.0f ? v : -v);
            const float* y = Y + static_cast<std::size_t>(idx[k]) * f;
            axpyf((c - 1.0f) * dotf(y, p, f), y, ap, f);
        }
        const float pap = dotf(p, ap, f);
        if (!(pap > 0.0f)) break;  // indefinite system or exact solution: stop, keep x
        const float a = rsold / pap;
        for (int j = 0; j < f; ++j) {
            x[j] += a * p[j];
            r[j] -= a * ap[j];
        }
        const float rsnew = dotf(r, r, f);
        const float beta = rsnew / rsold;
        for (int j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
        rsold = rsnew;
    }
}

void cg_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t n, float alpha, int f,
             const float* v, float* acc, bool residual, bool /*prefetch*/) {
    for (std::int64_t k = 0; k < n; ++k) {
        const float x = val[k];
        if (x == 0.0f) continue;
        const float c = alpha * (x > 0.0f ? x : -x);
        const float* y = Y + static_cast<std::size_t>(idx[k]) * f;
        const float d = (c - 1.0f) * dotf(y, v, f);
        axpyf(residual ? (x > 0.0f ? c : 0.0f) - d : d, y, acc, f);
    }
}

}  // namespace

extern const AlsKernels als_kernels_scalar{gram_accumulate, cg_row, cg_pass, gram_matvec};

}  // namespace tastemaker
