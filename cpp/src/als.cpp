// ALS driver: validation, Gram reduction, which rows go to the tiled group solve, OpenMP
// over rows, the exact solve's normal equations and the loss.  The per-ISA arithmetic lives in
// cpp/src/kernels/als-inl.hpp (one source, compiled per instruction set).
#include "tastemaker/als.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/aligned.hpp"
#include "tastemaker/solve.hpp"
#include "tastemaker/threads.hpp"

namespace tastemaker {

// No int8 products here: the avx512vnni path runs the avx512 table (simd.hpp).
TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512(AlsKernels, als_kernels)

namespace {

// Inputs below these sizes are checked / reduced on one thread: every parallel region is a
// barrier, costly when the cores are oversubscribed.
constexpr std::int64_t kParallelCheckMin = 1 << 23;
constexpr std::int64_t kParallelGramMin = 16384;
// Column indices per call of the vectorized range scan (AlsKernels::index_bounds).
constexpr std::int64_t kCheckBlock = 1 << 16;
// Gram blocks: about this many float64 partial sums in all (memory), at most kMaxGramBlocks
// blocks of at least kMinGramBlockRows rows; blocks depend only on n and f.
constexpr std::int64_t kGramPartialDoubles = std::int64_t(1) << 24;
constexpr std::int64_t kMaxGramBlocks = 64;
constexpr std::int64_t kMinGramBlockRows = 1024;

void check_f(int f) {
    if (f < 1) throw std::invalid_argument("factors: expected >= 1, got " + std::to_string(f));
}

// O(nnz), parallel for large inputs (it runs before every half-step; small inputs stay
// sequential: every parallel region is a barrier, costly when the cores are oversubscribed,
// and its threads spin-wait afterwards).  The scans are branch-free min/max reductions (a
// compare and branch per index took 4% of a CG half-step); the column scan runs on the
// active SIMD path (AlsKernels::index_bounds).  Only a failed check looks for the first bad
// entry, which it reports.
void check_csr(const std::int64_t* indptr, const std::int32_t* indices, std::int64_t n_rows,
               std::int64_t n_other, int nt) {
    if (n_rows < 0) throw std::invalid_argument("n_rows: expected >= 0");
    if (indptr[0] != 0) throw std::invalid_argument("indptr: must start at 0");
    std::int64_t min_step = 0;
#pragma omp parallel for schedule(static) reduction(min : min_step) num_threads(nt) if (n_rows > kParallelCheckMin)
    for (std::int64_t u = 0; u < n_rows; ++u) min_step = std::min(min_step, indptr[u + 1] - indptr[u]);
    if (min_step < 0) throw std::invalid_argument("indptr: must be non-decreasing");
    const std::int64_t nnz = indptr[n_rows];
    const AlsKernels& K = als_kernels();
    const std::int64_t n_blocks = (nnz + kCheckBlock - 1) / kCheckBlock;
    std::int32_t lo = 0, hi = 0;
#pragma omp parallel for schedule(static) reduction(min : lo) reduction(max : hi) num_threads(nt) if (nnz > kParallelCheckMin)
    for (std::int64_t b = 0; b < n_blocks; ++b) {
        std::int32_t l = 0, h = 0;
        K.index_bounds(indices + b * kCheckBlock, std::min(kCheckBlock, nnz - b * kCheckBlock), &l, &h);
        lo = std::min(lo, l);
        hi = std::max(hi, h);
    }
    if (lo >= 0 && static_cast<std::int64_t>(hi) < n_other) return;
    for (std::int64_t k = 0; k < nnz; ++k)
        if (indices[k] < 0 || indices[k] >= n_other)
            throw std::invalid_argument("indices: column index " + std::to_string(indices[k]) +
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
    return tastemaker::row_lambda(p.regularization, p.reg_exponent, n);
}

// Long rows (on the item side of a long-tailed matrix, the popular items: at ML-20M scale
// half of the non-zeros sit in rows longer than L2) read every factor row of theirs from
// L3 or DRAM on each of the cg_steps + 1 passes, and the same user rows again for the
// next popular item.  They are solved in groups instead (AlsKernels::cg_group): each CG
// pass sweeps the other side's rows in tiles that fit in L2 and, tile by tile, runs every
// row of the group over its items inside the tile, so a factor row is fetched from memory
// about once per group and pass rather than once per row that holds it.  Groups and tiles
// depend only on the data, so results do not depend on the thread count.
//
// Measured on the ML-20M-sized synthetic set (item half-step, one thread, Zen 3 AVX2):
// 2.05 s per item half-step before, 1.3-1.6 s with rows over 1 MB tiled (rows of
// 256 KB - 1 MB are better off alone: their later passes find most rows in L2, and
// their short per-tile segments waste work on padding).  The threshold does not follow
// the L2 size: on a Xeon with 2 MiB of L2 per core, 2 MiB / 4 MiB made the item half-step
// 12% / 27% slower and 512 KiB was no different (bench/README.md): a long row's items
// are spread over the whole other side, so alone its passes stream them whatever fits.
constexpr std::int64_t kTiledRowBytes = 1 << 20;  // rows reading more than this per pass
constexpr std::int64_t kMinTiledRowItems = 64;    // ...and holding at least this many items
constexpr std::size_t kMaxGroupRows = 256;        // more rows share a fetched row...
constexpr std::size_t kMinGroupRows = 32;         // ...fewer give the threads more groups

void check_all(const std::int64_t* indptr, const std::int32_t* indices, std::int64_t n_rows, std::int64_t n_other,
               int f, const AlsParams& params, int nt) {
    check_f(f);
    check_params(params);
    check_csr(indptr, indices, n_rows, n_other, nt);
}

// Rows for cg_group: more than kTiledRowBytes of factor rows per pass, indices sorted (the
// tile sweep walks them in order).  Fewer than two such rows: none (nothing to share).
std::vector<std::int64_t> long_rows(const std::int64_t* indptr, const std::int32_t* indices, std::int64_t n_rows,
                                    int f) {
    std::vector<std::int64_t> rows;
    const std::int64_t min_nnz = std::max(kMinTiledRowItems, kTiledRowBytes / (4 * static_cast<std::int64_t>(f)));
    for (std::int64_t u = 0; u < n_rows; ++u)
        if (indptr[u + 1] - indptr[u] > min_nnz && std::is_sorted(indices + indptr[u], indices + indptr[u + 1]))
            rows.push_back(u);
    if (rows.size() < 2) rows.clear();
    return rows;
}

// Every row by CG: the long rows in groups (cg_group), the others one by one (cg_row),
// in one parallel region.
void solve_cg(const std::int64_t* indptr, const std::int32_t* indices, const float* data, std::int64_t n_rows,
              const float* Y, std::int64_t n_other, int f, const double* gram, float* X, const AlsParams& params,
              int nt) {
    const std::size_t fs = static_cast<std::size_t>(f), ff = fs * fs;
    const AlsCache cache = als_cache(params.l2_bytes);
    const AlignedFloats G32 = aligned_floats(ff);  // each row pass reads it (matvec)
    for (std::size_t k = 0; k < ff; ++k) G32[k] = static_cast<float>(gram[k]);
    const AlsKernels& K = als_kernels();
    const std::vector<std::int64_t> tiled = long_rows(indptr, indices, n_rows, f);
    std::vector<char> is_tiled(tiled.empty() ? 0 : static_cast<std::size_t>(n_rows), 0);
    for (std::int64_t u : tiled) is_tiled[static_cast<std::size_t>(u)] = 1;
    // Any grouping gives the same results (rows do not interact), so the group size may
    // follow the thread count: about two groups per thread.
    const std::size_t group_rows = std::clamp<std::size_t>(
        (tiled.size() + 2 * static_cast<std::size_t>(nt) - 1) / (2 * static_cast<std::size_t>(nt)), kMinGroupRows,
        kMaxGroupRows);
    const auto n_groups = static_cast<std::int64_t>((tiled.size() + group_rows - 1) / group_rows);
    // The compacted item list of cg_row (indices and c - 1 of the items with c != 1) holds
    // up to the longest row solved alone, plus the slack its block-wise writes need.
    std::int64_t longest = 0;
    for (std::int64_t u = 0; u < n_rows; ++u)
        if (is_tiled.empty() || !is_tiled[static_cast<std::size_t>(u)])
            longest = std::max(longest, indptr[u + 1] - indptr[u]);
    ParallelError error;
#pragma omp parallel num_threads(nt)
    {
        AlignedFloats scratch, buf, cw;  // the passes load and store these once per block
        std::vector<std::int32_t> cidx;
        std::size_t buf_size = 0;
        std::vector<AlsTiledRow> group;
        error.run([&] {
            scratch = aligned_floats(3 * fs);
            cw = aligned_floats(static_cast<std::size_t>(longest) + kCompactSlack);
            cidx.resize(static_cast<std::size_t>(longest) + kCompactSlack);
        });
#pragma omp for schedule(dynamic, 1) nowait
        for (std::int64_t g = 0; g < n_groups; ++g) {
            error.run([&] {
                group.clear();
                const std::size_t lo = static_cast<std::size_t>(g) * group_rows;
                for (std::size_t k = lo; k < std::min(tiled.size(), lo + group_rows); ++k) {
                    const std::int64_t u = tiled[k], n = indptr[u + 1] - indptr[u];
                    group.push_back({u, n, 0, row_lambda(params, n), 0.0f, true, 0.0f});
                }
                if (buf_size < 3 * group.size() * fs) {
                    buf_size = 3 * group.size() * fs;
                    buf = aligned_floats(buf_size);
                }
                K.cg_group(indptr, indices, data, Y, n_other, f, G32.get(), params.alpha, params.cg_steps,
                           group.data(), group.size(), buf.get(), X, cache);
            });
        }
#pragma omp for schedule(dynamic, 32)
        for (std::int64_t u = 0; u < n_rows; ++u) {
            if (error.failed() || (!is_tiled.empty() && is_tiled[static_cast<std::size_t>(u)])) continue;
            const std::int64_t lo = indptr[u], n = indptr[u + 1] - lo;
            K.cg_row(Y, indices + lo, data + lo, n, G32.get(), params.alpha, row_lambda(params, n), params.cg_steps,
                     f, X + static_cast<std::size_t>(u) * fs, scratch.get(), cidx.data(), cw.get(), cache);
        }
    }
    error.rethrow_if_failed();
}

// Per-thread scratch of the exact solve.
struct NormalScratch {
    std::vector<double> A, b, w, c, kernel;
    std::vector<std::int32_t> rows;
};

// A (upper triangle) = YtY + lambda I + sum (c - 1) y y^T and b = sum_{v > 0} c y for row
// [lo, hi) of the matrix, in float64, by the shared small-system kernels (solve.hpp).
void normal_equations(const std::int32_t* indices, const float* data, std::int64_t lo, std::int64_t hi,
                      const float* Y, int f, const double* gram, const AlsParams& params, NormalScratch& s) {
    const std::size_t fs = static_cast<std::size_t>(f);
    const double lambda = row_lambda(params, hi - lo);
    std::copy(gram, gram + fs * fs, s.A.begin());
    for (int j = 0; j < f; ++j) s.A[static_cast<std::size_t>(j) * fs + j] += lambda;
    std::fill(s.b.begin(), s.b.end(), 0.0);
    s.rows.clear();
    s.w.clear();
    s.c.clear();
    for (std::int64_t k = lo; k < hi; ++k) {
        const float v = data[k];
        if (v == 0.0f) continue;
        const double c = static_cast<double>(params.alpha) * std::fabs(static_cast<double>(v));
        s.rows.push_back(indices[k]);
        s.w.push_back(c - 1.0);
        s.c.push_back(v > 0.0f ? c : 0.0);
    }
    solve_kernels().accumulate_normal(Y, f, s.rows.data(), s.w.data(), s.c.data(),
                                      static_cast<std::int64_t>(s.rows.size()), s.A.data(), s.b.data(),
                                      s.kernel.data());
}

// Every row exactly; throws std::runtime_error naming the first row that is not positive
// definite (the others are solved).
void solve_cholesky(const std::int64_t* indptr, const std::int32_t* indices, const float* data, std::int64_t n_rows,
                    const float* Y, int f, const double* gram, float* X, const AlsParams& params, int nt) {
    const std::size_t fs = static_cast<std::size_t>(f);
    std::int64_t bad_row = n_rows;
    ParallelError error;
#pragma omp parallel num_threads(nt) reduction(min : bad_row)
    {
        NormalScratch s;
        error.run([&] {
            s.A.resize(fs * fs);
            s.b.resize(fs);
            s.kernel.resize(kSolveScratch * fs);
        });
#pragma omp for schedule(dynamic, 16)
        for (std::int64_t u = 0; u < n_rows; ++u) {
            if (error.failed()) continue;
            error.run([&] { normal_equations(indices, data, indptr[u], indptr[u + 1], Y, f, gram, params, s); });
            if (error.failed()) continue;
            float* x = X + static_cast<std::size_t>(u) * fs;
            if (cholesky_solve(s.A.data(), s.b.data(), f))
                for (int j = 0; j < f; ++j) x[j] = static_cast<float>(s.b[j]);
            else
                bad_row = std::min(bad_row, u);
        }
    }
    error.rethrow_if_failed();
    if (bad_row < n_rows)
        throw std::runtime_error("ALS: the normal equations of row " + std::to_string(bad_row) +
                                 " are not positive definite; increase regularization");
}

}  // namespace

// Half of L2 for a row's factor rows: the row's own x / r / p, the Gram and the other
// threads' share of an inclusive L3 also pass through it.  On a 512 KiB L2 (Zen 2/3) these
// are the 256 KiB / 384 KiB the kernels were first tuned with; on a Xeon with 2 MiB per
// core, 1 MiB rows instead of 256 KiB made the item half-step 5-8% faster, and tiles of
// 384 KiB - 1.5 MiB measured the same (bench/README.md).
AlsCache als_cache(long long l2_bytes) {
    const long long l2 =
        l2_bytes > 0 ? std::clamp(l2_bytes, simd::kMinL2Bytes, simd::kMaxL2Bytes) : simd::l2_cache_bytes();
    return {static_cast<std::int64_t>(l2 / 2), static_cast<std::int64_t>(l2 / 4 * 3)};
}

void als_gram(const float* Y, std::int64_t n, int f, double* out, int num_threads) {
    check_f(f);
    if (n < 0) throw std::invalid_argument("n: expected >= 0");
    const std::size_t ff = static_cast<std::size_t>(f) * f;
    // Blocks depend only on n and f (never on the thread count): determinism.
    const std::int64_t max_blocks = std::max<std::int64_t>(
        1, std::min<std::int64_t>(kMaxGramBlocks, kGramPartialDoubles / static_cast<std::int64_t>(ff)));
    const std::int64_t block = std::max<std::int64_t>(kMinGramBlockRows, (n + max_blocks - 1) / max_blocks);
    const std::int64_t nblocks = n == 0 ? 0 : (n + block - 1) / block;
    std::vector<double> partial(static_cast<std::size_t>(nblocks) * ff, 0.0);
    const AlsKernels& K = als_kernels();
    const int nt = resolve_threads(num_threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n > kParallelGramMin)
    for (std::int64_t b = 0; b < nblocks; ++b) {  // the kernel does not throw
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
    const int nt = resolve_threads(params.num_threads);
    check_all(indptr, indices, n_rows, n_other, f, params, nt);
    if (params.solver == AlsSolver::CG)
        solve_cg(indptr, indices, data, n_rows, Y, n_other, f, gram, X, params, nt);
    else
        solve_cholesky(indptr, indices, data, n_rows, Y, f, gram, X, params, nt);
}

double als_loss(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
                std::int64_t n_rows, const float* X, const float* Y, std::int64_t n_other, int f,
                const double* gram, const AlsParams& params) {
    const int nt = resolve_threads(params.num_threads);
    check_all(indptr, indices, n_rows, n_other, f, params, nt);
    std::vector<double> part(static_cast<std::size_t>(n_rows), 0.0), conf(static_cast<std::size_t>(n_rows), 0.0);
    std::vector<std::int64_t> cnt(static_cast<std::size_t>(n_rows), 0);
    ParallelError error;  // nothing in the loop throws; kept for the rule (see threads.hpp)
#pragma omp parallel for schedule(dynamic, 64) num_threads(nt)
    for (std::int64_t u = 0; u < n_rows; ++u) {
        error.run([&] {
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
        });
    }
    error.rethrow_if_failed();
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
