#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/als.hpp"
#include "tastemaker/simd.hpp"
#include "tastemaker/threads.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

struct Problem {
    std::vector<std::int64_t> indptr;
    std::vector<std::int32_t> indices;
    std::vector<float> data;
    std::vector<float> Y;
    std::int64_t rows, other;
    int f;
};

Problem make_problem(std::int64_t rows, std::int64_t other, int f, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    Problem p{{0}, {}, {}, {}, rows, other, f};
    for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t c = 0; c < other; ++c) {
            if (u(rng) < 0.3f) {
                p.indices.push_back(static_cast<std::int32_t>(c));
                const float v = 1.0f + 4.0f * u(rng);
                p.data.push_back(u(rng) < 0.1f ? -v : v);
            }
        }
        p.indptr.push_back(static_cast<std::int64_t>(p.indices.size()));
    }
    p.Y.resize(static_cast<std::size_t>(other * f));
    for (auto& v : p.Y) v = u(rng) - 0.5f;
    return p;
}

// als_solve of the whole problem: X (rows x f) updated from the Gram G of its other side.
void solve(const Problem& p, const std::vector<double>& G, float* X, const AlsParams& prm) {
    als_solve(p.indptr.data(), p.indices.data(), p.data.data(), p.rows, p.Y.data(), p.other, p.f, G.data(), X, prm);
}

// Dense reference: x = (YtY + lambda I + sum (c-1) y y^T)^-1 sum_{v>0} c y, via Gaussian elimination.
std::vector<double> reference_row(const Problem& p, std::int64_t r, const AlsParams& prm) {
    const int f = p.f;
    std::vector<double> A(f * f, 0.0), b(f, 0.0);
    for (std::int64_t i = 0; i < p.other; ++i)
        for (int a = 0; a < f; ++a)
            for (int c = 0; c < f; ++c) A[a * f + c] += double(p.Y[i * f + a]) * p.Y[i * f + c];
    const double n = double(p.indptr[r + 1] - p.indptr[r]);
    const double lambda = prm.regularization * std::pow(1.0 + n, double(prm.reg_exponent));
    for (int a = 0; a < f; ++a) A[a * f + a] += lambda;
    for (std::int64_t k = p.indptr[r]; k < p.indptr[r + 1]; ++k) {
        const float v = p.data[k];
        if (v == 0.0f) continue;  // a stored 0 contributes nothing (als.hpp)
        const double c = prm.alpha * std::fabs(double(v));
        const float* y = &p.Y[p.indices[k] * f];
        for (int a = 0; a < f; ++a) {
            if (v > 0) b[a] += c * y[a];
            for (int cc = 0; cc < f; ++cc) A[a * f + cc] += (c - 1.0) * y[a] * y[cc];
        }
    }
    for (int col = 0; col < f; ++col) {  // partial pivoting elimination
        int piv = col;
        for (int r2 = col + 1; r2 < f; ++r2)
            if (std::fabs(A[r2 * f + col]) > std::fabs(A[piv * f + col])) piv = r2;
        for (int c2 = 0; c2 < f; ++c2) std::swap(A[col * f + c2], A[piv * f + c2]);
        std::swap(b[col], b[piv]);
        for (int r2 = col + 1; r2 < f; ++r2) {
            const double m = A[r2 * f + col] / A[col * f + col];
            for (int c2 = col; c2 < f; ++c2) A[r2 * f + c2] -= m * A[col * f + c2];
            b[r2] -= m * b[col];
        }
    }
    std::vector<double> x(f);
    for (int i = f - 1; i >= 0; --i) {
        double s = b[i];
        for (int c2 = i + 1; c2 < f; ++c2) s -= A[i * f + c2] * x[c2];
        x[i] = s / A[i * f + i];
    }
    return x;
}

double max_rel_err(const Problem& p, const std::vector<float>& X, const AlsParams& prm) {
    double worst = 0;
    for (std::int64_t r = 0; r < p.rows; ++r) {
        const auto ref = reference_row(p, r, prm);
        double num = 0, den = 0;
        for (int j = 0; j < p.f; ++j) {
            num += (X[r * p.f + j] - ref[j]) * (X[r * p.f + j] - ref[j]);
            den += ref[j] * ref[j];
        }
        worst = std::max(worst, std::sqrt(num / (den + 1e-30)));
    }
    return worst;
}

}  // namespace

TM_TEST(als_gram_matches_naive_and_is_symmetric) {
    for (int f : {1, 5, 16, 33}) {
        Problem p = make_problem(1, 3000, f, 3);
        std::vector<double> G(f * f), G1(f * f);
        als_gram(p.Y.data(), p.other, f, G.data(), 2);
        als_gram(p.Y.data(), p.other, f, G1.data(), 1);
        for (int a = 0; a < f; ++a)
            for (int c = 0; c < f; ++c) {
                double ref = 0;
                for (std::int64_t i = 0; i < p.other; ++i) ref += double(p.Y[i * f + a]) * p.Y[i * f + c];
                TM_CHECK_NEAR(G[a * f + c], ref, 1e-9 * (1 + std::fabs(ref)));
                TM_CHECK(G[a * f + c] == G[c * f + a]);
                TM_CHECK(G[a * f + c] == G1[a * f + c]);
            }
    }
}

TM_TEST(als_cholesky_matches_dense_reference_on_every_path) {
    for (float expo : {0.0f, 0.5f}) {
        Problem p = make_problem(12, 40, 7, 11);
        AlsParams prm;
        prm.regularization = 0.5f;
        prm.reg_exponent = expo;
        prm.alpha = 2.0f;
        prm.solver = AlsSolver::Cholesky;
        std::vector<double> G(p.f * p.f);
        als_gram(p.Y.data(), p.other, p.f, G.data());
        std::vector<float> X(p.rows * p.f, 0.0f);
        solve(p, G, X.data(), prm);
        TM_CHECK(max_rel_err(p, X, prm) < 1e-5);
    }
}

TM_TEST(als_cg_converges_to_exact_solution_on_every_path) {
    Problem p = make_problem(10, 60, 20, 5);
    AlsParams prm;
    prm.regularization = 1.0f;
    prm.alpha = 3.0f;
    std::vector<double> G(p.f * p.f);
    als_gram(p.Y.data(), p.other, p.f, G.data());
    tmtest::for_each_isa([&](simd::Isa) {
        double prev = 1e30;
        for (int steps : {1, 3, 8, 40}) {
            prm.cg_steps = steps;
            std::vector<float> X(p.rows * p.f, 0.0f);
            solve(p, G, X.data(), prm);
            const double err = max_rel_err(p, X, prm);
            TM_CHECK(err <= prev * 1.01 + 1e-6);
            prev = err;
        }
        TM_CHECK(prev < 1e-3);
    });
}

TM_TEST(als_simd_paths_agree_with_scalar) {
    for (int f : {3, 8, 16, 17, 32, 40, 63, 64, 72, 100, 128, 130, 160, 200, 256}) {
        Problem p = make_problem(30, 120, f, 17 + f);  // ~36 nnz per row: full blocks, prefetch, tail
        AlsParams prm;
        prm.regularization = 0.1f;
        prm.alpha = 2.0f;
        std::vector<double> G(f * f);
        std::vector<float> X0(p.rows * f);
        std::mt19937 rng(f);
        std::uniform_real_distribution<float> u(-0.1f, 0.1f);
        for (auto& v : X0) v = u(rng);
        std::vector<float> ref(X0);
        {
            tmtest::ActiveIsa scalar(simd::Isa::Scalar);
            als_gram(p.Y.data(), p.other, f, G.data());
            solve(p, G, ref.data(), prm);
        }
        tmtest::for_each_isa([&](simd::Isa) {
            std::vector<double> G2(f * f);
            als_gram(p.Y.data(), p.other, f, G2.data());
            TM_CHECK(G2 == G);  // exact float64 products, same order on every path
            std::vector<float> X(X0);
            solve(p, G, X.data(), prm);
            double num = 0, den = 0;
            for (std::size_t k = 0; k < X.size(); ++k) {
                num += (X[k] - ref[k]) * (X[k] - ref[k]);
                den += ref[k] * ref[k];
            }
            TM_CHECK(std::sqrt(num / den) < 1e-4);
        });
    }
}

// Rows reading more than 1 MB of factor rows per pass (here > 32768 items at f = 8) go
// to the tiled solver; a row with unsorted indices never does, so reversing every row's
// items gives the same system solved by cg_row.
TM_TEST(als_tiled_long_rows_agree_with_per_row_solve_and_exact_solution) {
    const int f = 8;
    Problem p = make_problem(4, 120000, f, 11);
    Problem rev = p;
    for (std::int64_t r = 0; r < p.rows; ++r) {
        std::reverse(rev.indices.begin() + p.indptr[r], rev.indices.begin() + p.indptr[r + 1]);
        std::reverse(rev.data.begin() + p.indptr[r], rev.data.begin() + p.indptr[r + 1]);
    }
    AlsParams prm;
    prm.regularization = 1.0f;
    prm.alpha = 2.0f;
    std::vector<double> G(f * f);
    als_gram(p.Y.data(), p.other, f, G.data());
    std::vector<float> X0(p.rows * f);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-0.1f, 0.1f);
    for (auto& v : X0) v = u(rng);
    tmtest::for_each_isa([&](simd::Isa) {
        for (int steps : {1, 3}) {
            prm.cg_steps = steps;
            std::vector<float> tiled(X0), tiled2(X0), per_row(X0);
            prm.num_threads = 1;
            solve(p, G, tiled.data(), prm);
            prm.num_threads = 2;
            solve(p, G, tiled2.data(), prm);
            TM_CHECK(tiled == tiled2);
            solve(rev, G, per_row.data(), prm);
            double num = 0, den = 0;
            for (std::size_t k = 0; k < tiled.size(); ++k) {
                num += (tiled[k] - per_row[k]) * (tiled[k] - per_row[k]);
                den += per_row[k] * per_row[k];
            }
            TM_CHECK(std::sqrt(num / den) < 1e-4);
        }
        prm.cg_steps = 16;
        std::vector<float> X(X0);
        solve(p, G, X.data(), prm);
        TM_CHECK(max_rel_err(p, X, prm) < 1e-3);
    });
}

// The kernel entries themselves, on every path: Gram bit-identical to scalar; cg_row close
// to scalar's; cg_group (rows solved together, tile by tile) close to cg_row on each row.
TM_TEST(als_kernel_entries_on_every_path) {
    for (int f : {1, 3, 8, 13, 16, 24, 40, 64, 96, 130, 192, 256}) {
        const std::int64_t other = f <= 16 ? 40000 : 3000;  // f = 8: 12288 rows per tile, several tiles
        Problem p = make_problem(0, other, f, 100 + f);
        // three long rows: every 2nd / 3rd / 5th item, sorted, mixed likes and dislikes
        p.rows = 3;
        for (int r = 0; r < 3; ++r) {
            const int step = r == 0 ? 2 : (r == 1 ? 3 : 5);
            for (std::int64_t c = r; c < other; c += step) {
                p.indices.push_back(static_cast<std::int32_t>(c));
                p.data.push_back(c % 7 == 0 ? -2.0f : 1.0f + static_cast<float>(c % 4));
            }
            p.indptr.push_back(static_cast<std::int64_t>(p.indices.size()));
        }
        std::vector<double> G(f * f, 0.0);
        als_kernels(simd::Isa::Scalar).gram_accumulate(p.Y.data(), static_cast<std::size_t>(other), f, G.data());
        for (int i = 0; i < f; ++i)
            for (int j = 0; j < i; ++j) G[i * f + j] = G[j * f + i];
        std::vector<float> G32(G.begin(), G.end()), X0(3 * f);
        std::mt19937 rng(f);
        std::uniform_real_distribution<float> u(-0.1f, 0.1f);
        for (auto& v : X0) v = u(rng);
        const float alpha = 0.5f, lambda = 0.3f;
        std::vector<float> scratch(3 * f), ref(X0), cw(p.indices.size() + kCompactSlack);
        std::vector<std::int32_t> cidx(p.indices.size() + kCompactSlack);
        for (int r = 0; r < 3; ++r)
            als_kernels(simd::Isa::Scalar)
                .cg_row(p.Y.data(), p.indices.data() + p.indptr[r], p.data.data() + p.indptr[r],
                        p.indptr[r + 1] - p.indptr[r], G32.data(), alpha, lambda, 3, f, ref.data() + r * f,
                        scratch.data(), cidx.data(), cw.data(), als_cache(0));
        auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
            double num = 0, den = 0;
            for (std::size_t k = 0; k < a.size(); ++k) {
                num += (double(a[k]) - b[k]) * (double(a[k]) - b[k]);
                den += double(b[k]) * b[k];
            }
            return std::sqrt(num / (den + 1e-30));
        };
        for (simd::Isa isa : simd::available()) {
            const AlsKernels& K = als_kernels(isa);
            std::vector<double> G2(f * f, 0.0);
            K.gram_accumulate(p.Y.data(), static_cast<std::size_t>(other), f, G2.data());
            for (int i = 0; i < f; ++i)
                for (int j = i; j < f; ++j) TM_CHECK(G2[i * f + j] == G[i * f + j]);
            std::vector<float> rows(X0), grouped(X0), buf(3 * 3 * f);
            for (int r = 0; r < 3; ++r)
                K.cg_row(p.Y.data(), p.indices.data() + p.indptr[r], p.data.data() + p.indptr[r],
                         p.indptr[r + 1] - p.indptr[r], G32.data(), alpha, lambda, 3, f, rows.data() + r * f,
                         scratch.data(), cidx.data(), cw.data(), als_cache(0));
            TM_CHECK(rel(rows, ref) < 1e-4);
            AlsTiledRow group[3];
            for (int r = 0; r < 3; ++r) group[r] = {r, p.indptr[r + 1] - p.indptr[r], 0, lambda, 0.0f, true, 0.0f};
            K.cg_group(p.indptr.data(), p.indices.data(), p.data.data(), p.Y.data(), other, f, G32.data(), alpha, 3,
                       group, 3, buf.data(), grouped.data(), als_cache(0));
            TM_CHECK(grouped == rows);  // same sums in the same order, only split at tiles
        }
    }
}

// Items with confidence exactly 1 (value 1 / alpha) and stored zeros add nothing to A p:
// cg_row runs its later passes over the compacted list its first pass writes (block by
// block, by each path's compress op), cg_group over lists compacted on the fly per tile
// segment.  On every path, for rows of every length around the 8-item blocks, with none,
// some and only such items: the two are bit-identical, and with enough steps they reach
// the dense solution over all items.  The list is sized exactly nnz + kCompactSlack, so
// ASan sees any write past it.
TM_TEST(als_later_passes_skip_items_of_confidence_one_exactly) {
    const int f = 16;
    const std::int64_t other = 200;
    const float alpha = 4.0f;  // value 0.25 -> c = 1
    std::mt19937 rng(31);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    Problem base = make_problem(0, other, f, 30);
    std::vector<double> G(f * f);
    als_gram(base.Y.data(), other, f, G.data());
    const std::vector<float> G32(G.begin(), G.end());
    for (std::int64_t nnz : {1, 2, 7, 8, 9, 15, 16, 17, 23, 40, 100}) {
        for (float share : {0.0f, 0.3f, 0.7f, 1.0f}) {  // share of items with c == 1 or a stored 0
            Problem p = base;
            p.rows = 1;
            p.indptr = {0, nnz};
            std::vector<std::int32_t> cols(other);
            for (std::int64_t c = 0; c < other; ++c) cols[c] = static_cast<std::int32_t>(c);
            std::shuffle(cols.begin(), cols.end(), rng);
            std::sort(cols.begin(), cols.begin() + nnz);
            p.indices.assign(cols.begin(), cols.begin() + nnz);
            p.data.clear();
            for (std::int64_t k = 0; k < nnz; ++k) {
                const bool one = share >= 1.0f || u(rng) < share;
                p.data.push_back(one ? (u(rng) < 0.8f ? 0.25f : 0.0f) : (u(rng) < 0.2f ? -3.0f : 0.5f + 2.0f * u(rng)));
            }
            p.data[0] = share > 0.0f ? 0.25f : 3.0f;  // a like: b != 0, the solution is not 0
            AlsParams prm;
            prm.regularization = 0.2f;
            prm.alpha = alpha;
            for (simd::Isa isa : simd::available()) {
                const AlsKernels& K = als_kernels(isa);
                for (int steps : {1, 3, 60}) {
                    std::vector<float> x(f, 0.05f), grouped(f, 0.05f), scratch(3 * f), buf(3 * f);
                    std::vector<float> cw(static_cast<std::size_t>(nnz + kCompactSlack));
                    std::vector<std::int32_t> cidx(static_cast<std::size_t>(nnz + kCompactSlack));
                    K.cg_row(p.Y.data(), p.indices.data(), p.data.data(), nnz, G32.data(), alpha, prm.regularization,
                             steps, f, x.data(), scratch.data(), cidx.data(), cw.data(), als_cache(0));
                    AlsTiledRow row{0, nnz, 0, prm.regularization, 0.0f, true, 0.0f};
                    K.cg_group(p.indptr.data(), p.indices.data(), p.data.data(), p.Y.data(), other, f, G32.data(),
                               alpha, steps, &row, 1, buf.data(), grouped.data(), als_cache(0));
                    TM_CHECK(x == grouped);
                    if (steps == 60) TM_CHECK(max_rel_err(p, x, prm) < 1e-3);
                }
            }
        }
    }
}

// Factors do not depend on the thread count, on any path (long rows included).
TM_TEST(als_solve_is_identical_across_thread_counts_on_every_path) {
    const int f = 24;
    Problem p = make_problem(40, 50000, f, 9);  // ~15000 items per row: every row goes to cg_group
    Problem q = make_problem(200, 300, f, 10);  // short rows: cg_row
    AlsParams prm;
    prm.regularization = 0.5f;
    prm.alpha = 2.0f;
    tmtest::for_each_isa([&](simd::Isa) {
        for (Problem* pr : {&p, &q}) {
            std::vector<double> G(f * f);
            als_gram(pr->Y.data(), pr->other, f, G.data());
            std::vector<float> X1(pr->rows * f, 0.01f), X2(X1), X3(X1);
            for (auto [X, nt] : {std::pair{&X1, 1}, std::pair{&X2, 2}, std::pair{&X3, 3}}) {
                prm.num_threads = nt;
                solve(*pr, G, X->data(), prm);
            }
            TM_CHECK(X1 == X2);
            TM_CHECK(X1 == X3);
        }
    });
}

// The cache budgets (tile size, which rows prefetch) change only the speed: the factors
// are bit-identical for a small and a large L2, on every path, for tiled and short rows.
TM_TEST(als_solve_does_not_depend_on_the_cache_size) {
    const AlsCache small = als_cache(simd::kMinL2Bytes), large = als_cache(simd::kMaxL2Bytes);
    TM_CHECK(small.row_bytes == simd::kMinL2Bytes / 2 && large.tile_bytes == simd::kMaxL2Bytes / 4 * 3);
    TM_CHECK(als_cache(1).row_bytes == small.row_bytes);  // clamped
    TM_CHECK(als_cache(0).row_bytes == simd::l2_cache_bytes() / 2);
    TM_CHECK(simd::l2_cache_bytes() >= simd::kMinL2Bytes && simd::l2_cache_bytes() <= simd::kMaxL2Bytes);
    for (int f : {24, 64}) {
        // ~15000 items per row: tiled (1536 / 24576 rows per tile at f = 64 for 128 KiB /
        // 8 MiB), so the small L2 splits the sums at many more tile boundaries
        Problem p = make_problem(12, 50000, f, 21);
        Problem q = make_problem(300, 3000, f, 22);  // short and medium rows: cg_row
        AlsParams prm;
        prm.regularization = 0.5f;
        prm.alpha = 2.0f;
        prm.num_threads = 2;
        tmtest::for_each_isa([&](simd::Isa) {
            for (Problem* pr : {&p, &q}) {
                std::vector<double> G(f * f);
                als_gram(pr->Y.data(), pr->other, f, G.data());
                const std::vector<float> X0(pr->rows * f, 0.01f);
                std::vector<float> X1(X0), X2(X0);
                prm.l2_bytes = simd::kMinL2Bytes;
                solve(*pr, G, X1.data(), prm);
                prm.l2_bytes = simd::kMaxL2Bytes;
                solve(*pr, G, X2.data(), prm);
                TM_CHECK(X1 == X2);
                TM_CHECK(X1 != X0);  // a real solve, not a no-op
            }
        });
    }
}

TM_TEST(als_rejects_bad_input) {
    Problem p = make_problem(3, 5, 4, 1);
    std::vector<double> G(16, 0.0);
    std::vector<float> X(12);
    AlsParams prm;
    auto bad = p;
    bad.indices[0] = 5;
    TM_CHECK_THROWS(als_solve(bad.indptr.data(), bad.indices.data(), bad.data.data(), 3, bad.Y.data(), 5, 4,
                              G.data(), X.data(), prm),
                    std::invalid_argument);
    prm.alpha = 0.0f;
    TM_CHECK_THROWS(als_solve(p.indptr.data(), p.indices.data(), p.data.data(), 3, p.Y.data(), 5, 4, G.data(),
                              X.data(), prm),
                    std::invalid_argument);
    prm.alpha = 1.0f;
    prm.cg_steps = 0;
    TM_CHECK_THROWS(als_solve(p.indptr.data(), p.indices.data(), p.data.data(), 3, p.Y.data(), 5, 4, G.data(),
                              X.data(), prm),
                    std::invalid_argument);
    // Y = 0 and no regularization: singular -> runtime_error, not garbage
    std::vector<float> Z(20, 0.0f);
    AlsParams chol;
    chol.solver = AlsSolver::Cholesky;
    chol.regularization = 0.0f;
    TM_CHECK_THROWS(als_solve(p.indptr.data(), p.indices.data(), p.data.data(), 3, Z.data(), 5, 4, G.data(),
                              X.data(), chol),
                    std::runtime_error);
}

// The column check's scan, on every path, against a plain loop: any length (vector bodies
// and tails), the running bounds carried in, negative and extreme values anywhere.
TM_TEST(als_index_bounds_on_every_path) {
    std::mt19937 rng(3);
    std::uniform_int_distribution<std::int32_t> any(-1000, 1000000);
    for (std::int64_t n : {0, 1, 7, 15, 16, 17, 63, 64, 65, 1000, 4099}) {
        std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
        for (auto& v : idx) v = any(rng);
        if (n > 2) {
            idx[static_cast<std::size_t>(n) - 1] = std::numeric_limits<std::int32_t>::max();
            idx[static_cast<std::size_t>(n) / 2] = std::numeric_limits<std::int32_t>::min();
        }
        for (simd::Isa isa : simd::available()) {
            for (std::int32_t start : {0, 5}) {
                std::int32_t lo = start, hi = start, want_lo = start, want_hi = start;
                for (std::int32_t v : idx) {
                    want_lo = std::min(want_lo, v);
                    want_hi = std::max(want_hi, v);
                }
                als_kernels(isa).index_bounds(idx.data(), n, &lo, &hi);
                TM_CHECK(lo == want_lo && hi == want_hi);
            }
        }
    }
}

TM_TEST(thread_requests_are_clamped) {
    // a huge request used to reach OpenMP as is and crash inside libgomp
    TM_CHECK(resolve_threads(1000000) == max_threads());
    TM_CHECK(max_threads() >= 4 && max_threads() <= kMaxThreads);
    TM_CHECK(resolve_threads(3) == 3);
    Problem p = make_problem(4, 6, 3, 2);
    std::vector<double> G(9);
    als_gram(p.Y.data(), p.other, p.f, G.data(), 1000000);
    std::vector<float> X(12, 0.0f);
    AlsParams prm;
    prm.num_threads = 1000000;
    solve(p, G, X.data(), prm);
    TM_CHECK(std::isfinite(X[0]));
}
