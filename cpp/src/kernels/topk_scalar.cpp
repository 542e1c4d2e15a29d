// Portable path.  std::fma keeps the rounding identical to the SIMD paths (one fused
// multiply-add per factor, factors in increasing order).
#include <cmath>

#include "tastemaker/topk.hpp"

namespace tastemaker {
namespace {

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    for (int u = 0; u < m; ++u) {
        const float* qu = q + u * ldq;
        float acc[kTopkPanel];
        for (int j = 0; j < kTopkPanel; ++j) acc[j] = 0.0f;
        for (int k = 0; k < dim; ++k) {
            const float a = qu[k];
            const float* p = panel + static_cast<std::ptrdiff_t>(k) * kTopkPanel;
            for (int j = 0; j < kTopkPanel; ++j) acc[j] = std::fma(a, p[j], acc[j]);
        }
        std::uint32_t bits = 0;
        for (int j = 0; j < kTopkPanel; ++j) {
            scores[u * kTopkPanel + j] = acc[j];
            if (acc[j] > thr[u]) bits |= 1u << j;
        }
        masks[u] = bits;
    }
}

void query_scores(const float* q, int dim, const float* panels, std::int64_t n_panels, float thr, float* scores,
                  std::uint32_t* masks) {
    const std::int64_t ps = static_cast<std::int64_t>(dim) * kTopkPanel;
    for (std::int64_t p = 0; p < n_panels; ++p)
        panel_scores(q, dim, 1, dim, panels + p * ps, &thr, scores + p * kTopkPanel, masks + p);
}

void column_masks(const float* scores, int m, const float* thr, std::uint32_t* masks) {
    for (int u = 0; u < m; ++u) {
        std::uint32_t bits = 0;
        for (int j = 0; j < kTopkPanel; ++j)
            if (scores[u * kTopkPanel + j] > thr[j]) bits |= 1u << j;
        masks[u] = bits;
    }
}

float finite_absmax(const float* x, std::int64_t n) {
    float m = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) {
        const float a = std::fabs(x[i]);
        if (!(a <= 3.4028235e38f)) return INFINITY;  // NaN or inf
        if (a > m) m = a;
    }
    return m;
}

}  // namespace

extern const TopkKernels topk_kernels_scalar{panel_scores, finite_absmax, nullptr, 48, column_masks, query_scores};

}  // namespace tastemaker
