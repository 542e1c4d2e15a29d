// ALS driver: validation, Gram reduction, OpenMP over rows, exact Cholesky solver, loss.
#include "tastemaker/als.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/threads.hpp"

namespace tastemaker {

extern const AlsKernels als_kernels_scalar;
#ifdef TASTEMAKER_HAVE_X86_KERNELS
extern const AlsKernels als_kernels_avx2;
extern const AlsKernels als_kernels_avx512;
#endif

const AlsKernels& als_kernels(simd::Isa isa) {
    switch (isa) {
#ifdef TASTEMAKER_HAVE_X86_KERNELS
        case simd::Isa::AVX512: return als_kernels_avx512;
        case simd::Isa::AVX2: return als_kernels_avx2;
#endif
        default: return als_kernels_scalar;
    }
}

const AlsKernels& als_kernels() { return als_kernels(simd::active()); }

namespace {

void check_f(int f) {
    if (f < 1) throw std::invalid_argument("factors: expected >= 1, got " + std::to_string(f));
}

// O(nnz), parallel for large inputs (it runs before every half-step; small inputs stay
// sequential: every parallel region is a barrier, costly when the cores are oversubscribed).
// Reports the first bad entry.
void check_csr(const std::int64_t* indptr, const std::int32_t* indices, std::int64_t n_rows,
               std::int64_t n_other, int nt) {
    if (n_rows < 0) throw std::invalid_argument("n_rows: expected >= 0");
    if (indptr[0] != 0) throw std::invalid_argument("indptr: must start at 0");
    std::int64_t bad_row = n_rows;
#pragma omp parallel for schedule(static) reduction(min : bad_row) num_threads(nt) if (n_rows > (1 << 20))
    for (std::int64_t u = 0; u < n_rows; ++u)
        if (indptr[u + 1] < indptr[u]) bad_row = std::min(bad_row, u);
    if (bad_row < n_rows) throw std::invalid_argument("indptr: must be non-decreasing");
    const std::int64_t nnz = indptr[n_rows];
    std::int64_t bad = nnz;
#pragma omp parallel for schedule(static) reduction(min : bad) num_threads(nt) if (nnz > (1 << 20))
    for (std::int64_t k = 0; k < nnz; ++k)
        if (indices[k] < 0 || indices[k] >= n_other) bad = std::min(bad, k);
    if (bad < nnz)
        throw std::invalid_argument("indices: column index " + std::to_string(indices[bad]) +
                                    " out of range [0, " + std::to_string(n_other) + ")");
}

void check_params(const AlsParams& p) {
    if (!(p.regularization >= 0.0f) || !std::isfinite(p.regularization))
        throw std::invalid_argument("regularization: expected a finite number >= 0");
    if (!std::isfinite(p.reg_exponent))
        throw std::invalid_argument("reg_exponent: expected a finite number");
    if (!(p.alpha > 0.0f) || !std::isfinite(p.alpha))
        throw std::invalid_argument("alpha: expected a finite number > 0");
    if (p.cg_steps < 1) throw std::invalid_argument("cg_steps: expected >= 1");
}

inline float row_lambda(const AlsParams& p, std::int64_t n) {
    if (p.reg_exponent == 0.0f) return p.regularization;
    return static_cast<float>(p.regularization *
                              std::pow(1.0 + static_cast<double>(n), static_cast<double>(p.reg_exponent)));
}

// In-place Cholesky (lower) of A (f x f, double) and solve A x = b; false if not PD.
bool cholesky_solve(double* A, double* b, int f) {
    for (int j = 0; j < f; ++j) {
        double* aj = A + static_cast<std::size_t>(j) * f;
        double d = aj[j];
        for (int k = 0; k < j; ++k) d -= aj[k] * aj[k];
        if (!(d > 0.0)) return false;
        d = std::sqrt(d);
        aj[j] = d;
        for (int i = j + 1; i < f; ++i) {
            double* ai = A + static_cast<std::size_t>(i) * f;
            double s = ai[j];
            for (int k = 0; k < j; ++k) s -= ai[k] * aj[k];
            ai[j] = s / d;
        }
    }
    for (int i = 0; i < f; ++i) {  // L z = b
        const double* ai = A + static_cast<std::size_t>(i) * f;
        double s = b[i];
        for (int k = 0; k < i; ++k) s -= ai[k] * b[k];
        b[i] = s / ai[i];
    }
    for (int i = f - 1; i >= 0; --i) {  // L^T x = z
        double s = b[i];
        for (int k = i + 1; k < f; ++k) s -= A[static_cast<std::size_t>(k) * f + i] * b[k];
        b[i] = s / A[static_cast<std::size_t>(i) * f + i];
    }
    return true;
}

// Long rows (on the item side of a long-tailed matrix, the popular items: at ML-20M scale
// half of the non-zeros sit in rows longer than L2) read every factor row of theirs from
// L3 or DRAM on each of the cg_steps + 1 passes, and the same user rows again for the
// next popular item.  They are solved in groups instead: each CG pass sweeps the other
// side's rows in tiles that fit in L2 and, tile by tile, runs every row of the group
// over its items inside the tile, so a factor row is fetched from memory about once per
// group and pass rather than once per row that holds it.  Same iteration as cg_row, per
// row (the sums over a row's items are split at tile boundaries); groups and tiles
// depend only on the data, so results do not depend on the thread count.
//
// Measured on the ML-20M-sized synthetic set (item half-step, one thread, Zen 3 AVX2):
// 2.05 s per item half-step before, 1.3-1.6 s with rows over 1 MB tiled (rows of
// 256 KB - 1 MB are better off alone: their later passes find most rows in L2, and
// their short per-tile segments waste work on padding).
constexpr std::int64_t kTiledRowBytes = 1 << 20;  // rows reading more than this per pass
constexpr std::int64_t kTileBytes = 384 << 10;    // factor rows per tile
constexpr std::size_t kMaxGroupRows = 256;        // more rows share a fetched row...
constexpr std::size_t kMinGroupRows = 32;         // ...fewer give the threads more groups

struct TiledRow {
    std::int64_t row, n, pos;
    float lambda, rsold;
    bool active;
};

float dotf(const float* a, const float* b, int f) {
    float s = 0.0f;
    for (int j = 0; j < f; ++j) s += a[j] * b[j];
    return s;
}

void cg_tiled_group(const AlsKernels& K, const std::int64_t* indptr, const std::int32_t* indices,
                    const float* data, const float* Y, std::int64_t n_other, int f, const float* G32,
                    float* X, const AlsParams& params, std::vector<TiledRow>& rows, std::vector<float>& buf) {
    const std::size_t fs = static_cast<std::size_t>(f), m = rows.size();
    buf.resize(3 * m * fs);
    float* R = buf.data();
    float* P = R + m * fs;
    float* AP = P + m * fs;
    const std::int64_t tile = std::max<std::int64_t>(64, kTileBytes / (4 * static_cast<std::int64_t>(f)));
    // acc_h += pass over row h's items, tile by tile (v_h, acc_h picked by the caller)
    auto sweep = [&](bool residual, auto v_of, auto acc_of) {
        for (auto& r : rows) r.pos = 0;
        for (std::int64_t t0 = 0; t0 < n_other; t0 += tile) {
            const std::int64_t tend = std::min(n_other, t0 + tile);
            for (std::size_t h = 0; h < m; ++h) {
                TiledRow& r = rows[h];
                if (!r.active) continue;
                const std::int32_t* idx = indices + indptr[r.row];
                std::int64_t e = r.pos;
                while (e < r.n && idx[e] < tend) ++e;
                if (e > r.pos)
                    K.cg_pass(Y, idx + r.pos, data + indptr[r.row] + r.pos, e - r.pos, params.alpha, f, v_of(h),
                              acc_of(h), residual, true);
                r.pos = e;
            }
        }
    };
    auto x_of = [&](std::size_t h) { return X + static_cast<std::size_t>(rows[h].row) * fs; };
    // r = b - (G + lambda I) x - sum (c-1)(y.x) y
    for (std::size_t h = 0; h < m; ++h) {
        rows[h].active = true;
        float* ap = AP + h * fs;
        K.cg_matvec(G32, x_of(h), rows[h].lambda, f, ap);
        for (int j = 0; j < f; ++j) R[h * fs + j] = -ap[j];
    }
    sweep(true, [&](std::size_t h) { return x_of(h); }, [&](std::size_t h) { return R + h * fs; });
    for (std::size_t h = 0; h < m; ++h) {
        std::copy(R + h * fs, R + (h + 1) * fs, P + h * fs);
        rows[h].rsold = dotf(R + h * fs, R + h * fs, f);
        rows[h].active = rows[h].rsold > 1e-20f;
    }
    for (int it = 0; it < params.cg_steps; ++it) {
        bool any = false;
        for (std::size_t h = 0; h < m; ++h)
            if (rows[h].active) {
                K.cg_matvec(G32, P + h * fs, rows[h].lambda, f, AP + h * fs);
                any = true;
            }
        if (!any) break;
        sweep(false, [&](std::size_t h) { return P + h * fs; }, [&](std::size_t h) { return AP + h * fs; });
        for (std::size_t h = 0; h < m; ++h) {
            TiledRow& rw = rows[h];
            if (!rw.active) continue;
            float* x = x_of(h);
            float* r = R + h * fs;
            float* p = P + h * fs;
            const float* ap = AP + h * fs;
            const float pap = dotf(p, ap, f);
            if (!(pap > 0.0f)) {
                rw.active = false;
                continue;
            }
            const float a = rw.rsold / pap;
            for (int j = 0; j < f; ++j) {
                x[j] += a * p[j];
                r[j] -= a * ap[j];
            }
            const float rsnew = dotf(r, r, f);
            const float beta = rsnew / rw.rsold;
            for (int j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
            rw.rsold = rsnew;
            rw.active = rsnew > 1e-20f;
        }
    }
}

}  // namespace

void als_gram(const float* Y, std::int64_t n, int f, double* out, int num_threads) {
    check_f(f);
    if (n < 0) throw std::invalid_argument("n: expected >= 0");
    const std::size_t ff = static_cast<std::size_t>(f) * f;
    // Blocks depend only on n and f (never on the thread count): determinism.
    const std::int64_t max_blocks =
        std::max<std::int64_t>(1, std::min<std::int64_t>(64, (std::int64_t(1) << 24) / static_cast<std::int64_t>(ff)));
    const std::int64_t block = std::max<std::int64_t>(1024, (n + max_blocks - 1) / max_blocks);
    const std::int64_t nblocks = n == 0 ? 0 : (n + block - 1) / block;
    std::vector<double> partial(static_cast<std::size_t>(nblocks) * ff, 0.0);
    const AlsKernels& K = als_kernels();
    const int nt = resolve_threads(num_threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n > 16384)
    for (std::int64_t b = 0; b < nblocks; ++b) {
        const std::int64_t lo = b * block, hi = std::min(n, lo + block);
        K.gram_accumulate(Y + static_cast<std::size_t>(lo) * f, static_cast<std::size_t>(hi - lo), f,
                          partial.data() + static_cast<std::size_t>(b) * ff);
    }
    std::fill(out, out + ff, 0.0);
    for (std::int64_t b = 0; b < nblocks; ++b) {
        const double* g = partial.data() + static_cast<std::size_t>(b) * ff;
        for (int i = 0; i < f; ++i)
            for (int j = i; j < f; ++j) out[static_cast<std::size_t>(i) * f + j] += g[static_cast<std::size_t>(i) * f + j];
    }
    for (int i = 0; i < f; ++i)
        for (int j = 0; j < i; ++j) out[static_cast<std::size_t>(i) * f + j] = out[static_cast<std::size_t>(j) * f + i];
}

void als_solve(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
               std::int64_t n_rows, const float* Y, std::int64_t n_other, int f,
               const double* gram, float* X, const AlsParams& params) {
    check_f(f);
    check_params(params);
    const int nt = resolve_threads(params.num_threads);
    check_csr(indptr, indices, n_rows, n_other, nt);
    const std::size_t ff = static_cast<std::size_t>(f) * f;
    std::atomic<std::int64_t> bad_row{std::numeric_limits<std::int64_t>::max()};

    if (params.solver == AlsSolver::CG) {
        std::vector<float> G32(ff);
        for (std::size_t k = 0; k < ff; ++k) G32[k] = static_cast<float>(gram[k]);
        const AlsKernels& K = als_kernels();
        // Long rows with sorted indices go to the tiled solver (see cg_tiled_group).
        std::vector<std::int64_t> tiled;
        if (K.cg_pass != nullptr && K.cg_matvec != nullptr) {
            const std::int64_t min_nnz = std::max<std::int64_t>(64, kTiledRowBytes / (4 * static_cast<std::int64_t>(f)));
            for (std::int64_t u = 0; u < n_rows; ++u)
                if (indptr[u + 1] - indptr[u] > min_nnz &&
                    std::is_sorted(indices + indptr[u], indices + indptr[u + 1]))
                    tiled.push_back(u);
            if (tiled.size() < 2) tiled.clear();
        }
        std::vector<char> is_tiled(tiled.empty() ? 0 : static_cast<std::size_t>(n_rows), 0);
        for (std::int64_t u : tiled) is_tiled[static_cast<std::size_t>(u)] = 1;
        // Any grouping gives the same results (rows do not interact), so the group size
        // may follow the thread count: about two groups per thread.
        const std::size_t group_rows = std::clamp<std::size_t>(
            (tiled.size() + 2 * static_cast<std::size_t>(nt) - 1) / (2 * static_cast<std::size_t>(nt)), kMinGroupRows,
            kMaxGroupRows);
        const auto n_groups = static_cast<std::int64_t>((tiled.size() + group_rows - 1) / group_rows);
#pragma omp parallel num_threads(nt)
        {
            std::vector<float> scratch(3 * static_cast<std::size_t>(f) + 16);
            std::vector<TiledRow> group;
            std::vector<float> buf;
#pragma omp for schedule(dynamic, 1) nowait
            for (std::int64_t g = 0; g < n_groups; ++g) {
                group.clear();
                const std::size_t lo = static_cast<std::size_t>(g) * group_rows;
                for (std::size_t k = lo; k < std::min(tiled.size(), lo + group_rows); ++k) {
                    const std::int64_t u = tiled[k], n = indptr[u + 1] - indptr[u];
                    group.push_back({u, n, 0, row_lambda(params, n), 0.0f, true});
                }
                cg_tiled_group(K, indptr, indices, data, Y, n_other, f, G32.data(), X, params, group, buf);
            }
#pragma omp for schedule(dynamic, 32)
            for (std::int64_t u = 0; u < n_rows; ++u) {
                if (!is_tiled.empty() && is_tiled[static_cast<std::size_t>(u)]) continue;
                const std::int64_t lo = indptr[u], n = indptr[u + 1] - lo;
                K.cg_row(Y, indices + lo, data + lo, n, G32.data(), params.alpha,
                         row_lambda(params, n), params.cg_steps, f,
                         X + static_cast<std::size_t>(u) * f, scratch.data());
            }
        }
        return;
    }

#pragma omp parallel num_threads(nt)
    {
        std::vector<double> A(ff), b(static_cast<std::size_t>(f)), y(static_cast<std::size_t>(f));
#pragma omp for schedule(dynamic, 16)
        for (std::int64_t u = 0; u < n_rows; ++u) {
            const std::int64_t lo = indptr[u], hi = indptr[u + 1];
            const double lambda = row_lambda(params, hi - lo);
            std::copy(gram, gram + ff, A.begin());
            for (int j = 0; j < f; ++j) A[static_cast<std::size_t>(j) * f + j] += lambda;
            std::fill(b.begin(), b.end(), 0.0);
            for (std::int64_t k = lo; k < hi; ++k) {
                const float v = data[k];
                if (v == 0.0f) continue;
                const double c = static_cast<double>(params.alpha) * std::fabs(static_cast<double>(v));
                const float* yr = Y + static_cast<std::size_t>(indices[k]) * f;
                for (int j = 0; j < f; ++j) y[j] = yr[j];
                if (v > 0.0f)
                    for (int j = 0; j < f; ++j) b[j] += c * y[j];
                const double w = c - 1.0;
                for (int i = 0; i < f; ++i) {  // lower triangle is all cholesky_solve reads
                    double* ai = A.data() + static_cast<std::size_t>(i) * f;
                    const double wy = w * y[i];
                    for (int j = 0; j <= i; ++j) ai[j] += wy * y[j];
                }
            }
            float* x = X + static_cast<std::size_t>(u) * f;
            if (cholesky_solve(A.data(), b.data(), f)) {
                for (int j = 0; j < f; ++j) x[j] = static_cast<float>(b[j]);
            } else {
                std::int64_t cur = bad_row.load();
                while (u < cur && !bad_row.compare_exchange_weak(cur, u)) {
                }
            }
        }
    }
    if (bad_row.load() != std::numeric_limits<std::int64_t>::max())
        throw std::runtime_error("ALS: the normal equations of row " + std::to_string(bad_row.load()) +
                                 " are not positive definite; increase regularization");
}

double als_loss(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
                std::int64_t n_rows, const float* X, const float* Y, std::int64_t n_other, int f,
                const double* gram, const AlsParams& params) {
    check_f(f);
    check_params(params);
    const int nt = resolve_threads(params.num_threads);
    check_csr(indptr, indices, n_rows, n_other, nt);
    std::vector<double> part(static_cast<std::size_t>(n_rows), 0.0), conf(static_cast<std::size_t>(n_rows), 0.0);
    std::vector<std::int64_t> cnt(static_cast<std::size_t>(n_rows), 0);
#pragma omp parallel num_threads(nt)
    {
        std::vector<double> gx(static_cast<std::size_t>(f));
#pragma omp for schedule(dynamic, 64)
        for (std::int64_t u = 0; u < n_rows; ++u) {
            const float* x = X + static_cast<std::size_t>(u) * f;
            double quad = 0.0, norm = 0.0;
            for (int i = 0; i < f; ++i) {
                double s = 0.0;
                for (int j = 0; j < f; ++j) s += gram[static_cast<std::size_t>(i) * f + j] * x[j];
                quad += s * x[i];
                norm += static_cast<double>(x[i]) * x[i];
            }
            double l = quad, c_sum = 0.0;
            std::int64_t m = 0;
            for (std::int64_t k = indptr[u]; k < indptr[u + 1]; ++k) {
                const float v = data[k];
                if (v == 0.0f) continue;
                const double c = static_cast<double>(params.alpha) * std::fabs(static_cast<double>(v));
                const float* y = Y + static_cast<std::size_t>(indices[k]) * f;
                double s = 0.0;
                for (int j = 0; j < f; ++j) s += static_cast<double>(x[j]) * y[j];
                const double pref = v > 0.0f ? 1.0 : 0.0;
                l += c * (pref - s) * (pref - s) - s * s;
                c_sum += c;
                ++m;
            }
            part[u] = l + row_lambda(params, indptr[u + 1] - indptr[u]) * norm;
            conf[u] = c_sum;
            cnt[u] = m;
        }
    }
    double total = 0.0, total_conf = 0.0;
    std::int64_t total_cnt = 0;
    for (std::int64_t u = 0; u < n_rows; ++u) {
        total += part[u];
        total_conf += conf[u];
        total_cnt += cnt[u];
    }
    // item-side regularization, with the same per-row scaling by column counts
    std::vector<std::int64_t> col(static_cast<std::size_t>(n_other), 0);
    for (std::int64_t k = 0; k < indptr[n_rows]; ++k) ++col[static_cast<std::size_t>(indices[k])];
    for (std::int64_t i = 0; i < n_other; ++i) {
        const float* y = Y + static_cast<std::size_t>(i) * f;
        double norm = 0.0;
        for (int j = 0; j < f; ++j) norm += static_cast<double>(y[j]) * y[j];
        total += row_lambda(params, col[static_cast<std::size_t>(i)]) * norm;
    }
    const double denom = static_cast<double>(n_rows) * static_cast<double>(n_other) -
                         static_cast<double>(total_cnt) + total_conf;
    return denom > 0.0 ? total / denom : 0.0;
}

}  // namespace tastemaker
