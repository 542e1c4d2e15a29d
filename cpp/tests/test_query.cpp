// The small SPD solver (every path against a float64 reference) and the single-request
// queries (against the batch kernels they must agree with).
#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/als.hpp"
#include "tastemaker/query.hpp"
#include "tastemaker/solve.hpp"
#include "tastemaker/topk.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

// A = M M^T + f I (SPD, well conditioned), full symmetric, row-major.
std::vector<double> spd(std::mt19937& rng, int f) {
    std::normal_distribution<double> g;
    std::vector<double> M(static_cast<std::size_t>(f) * f), A(M.size(), 0.0);
    for (double& v : M) v = g(rng);
    for (int i = 0; i < f; ++i)
        for (int j = 0; j < f; ++j) {
            double s = i == j ? f : 0.0;
            for (int k = 0; k < f; ++k) s += M[i * f + k] * M[j * f + k];
            A[i * f + j] = s;
        }
    return A;
}

double max_residual(const std::vector<double>& A, const std::vector<double>& x, const std::vector<double>& b,
                    int f) {
    double worst = 0.0;
    for (int i = 0; i < f; ++i) {
        double s = -b[i];
        for (int j = 0; j < f; ++j) s += A[i * f + j] * x[j];
        worst = std::max(worst, std::fabs(s));
    }
    return worst;
}

std::vector<float> random_factors(std::mt19937& rng, int n, int f) {
    std::normal_distribution<float> g(0.0f, 0.3f);
    std::vector<float> y(static_cast<std::size_t>(n) * f);
    for (float& v : y) v = g(rng);
    return y;
}

}  // namespace

TM_TEST(solve_table_is_complete_on_every_path) {
    for (simd::Isa isa : simd::available()) tmtest::check_table("solve", solve_kernels_dispatch(), isa, true);
}

TM_TEST(cholesky_solve_matches_the_system_on_every_path) {
    std::mt19937 rng(1);
    for (int f : {1, 2, 3, 7, 8, 9, 16, 17, 64, 100}) {
        const std::vector<double> A = spd(rng, f);
        std::vector<double> b(static_cast<std::size_t>(f));
        std::normal_distribution<double> g;
        for (double& v : b) v = g(rng);
        tmtest::for_each_isa([&](simd::Isa) {
            std::vector<double> a = A, x = b;
            TM_CHECK(cholesky_solve(a.data(), x.data(), f));
            TM_CHECK(max_residual(A, x, b, f) < 1e-9 * f * f);
            // the upper triangle holds U with U^T U = A; the lower one is untouched
            for (int i = 0; i < f; ++i)
                for (int j = i; j < f; ++j) {
                    double s = 0.0;
                    for (int k = 0; k <= i; ++k) s += a[k * f + i] * a[k * f + j];
                    TM_CHECK_NEAR(s, A[i * f + j], 1e-9 * f * f);
                    if (j > i) TM_CHECK(a[j * f + i] == A[j * f + i]);
                }
        });
    }
}

TM_TEST(cholesky_solve_refuses_what_is_not_positive_definite) {
    tmtest::for_each_isa([&](simd::Isa) {
        for (double bad : {0.0, -1.0, std::nan("")}) {
            std::vector<double> a = {4.0, 2.0, 2.0, 1.0 + bad}, b = {1.0, 1.0};  // pivot 2: 1 + bad - 1
            TM_CHECK(!cholesky_solve(a.data(), b.data(), 2));
        }
    });
}

TM_TEST(accumulate_normal_matches_the_definition_on_every_path) {
    std::mt19937 rng(2);
    for (int f : {1, 5, 8, 13, 64}) {
        const int n = 40, rows_n = 11;
        const std::vector<float> Y = random_factors(rng, n, f);
        std::vector<std::int32_t> rows;
        std::vector<double> w, c;
        std::uniform_int_distribution<int> pick(0, n - 1);
        std::normal_distribution<double> g;
        for (int k = 0; k < rows_n; ++k) {
            rows.push_back(pick(rng));
            w.push_back(g(rng));
            c.push_back(g(rng));
        }
        std::vector<double> A0(static_cast<std::size_t>(f) * f), b0(static_cast<std::size_t>(f));
        for (double& v : A0) v = g(rng);
        for (double& v : b0) v = g(rng);
        tmtest::for_each_isa([&](simd::Isa) {
            std::vector<double> A = A0, b = b0, scratch(static_cast<std::size_t>(kSolveScratch) * f);
            solve_kernels().accumulate_normal(Y.data(), f, rows.data(), w.data(), c.data(), rows_n, A.data(),
                                              b.data(), scratch.data());
            for (int i = 0; i < f; ++i) {
                double sb = b0[i];
                for (int k = 0; k < rows_n; ++k) sb += c[k] * Y[rows[k] * f + i];
                TM_CHECK_NEAR(b[i], sb, 1e-12 * (1 + std::fabs(sb)));
                for (int j = i; j < f; ++j) {
                    double s = A0[i * f + j];
                    for (int k = 0; k < rows_n; ++k) s += w[k] * Y[rows[k] * f + i] * Y[rows[k] * f + j];
                    TM_CHECK_NEAR(A[i * f + j], s, 1e-12 * (1 + std::fabs(s)));
                }
            }
        });
    }
}

TM_TEST(fold_in_one_matches_the_exact_als_solve) {
    std::mt19937 rng(3);
    const int n = 300, f = 24;
    const std::vector<float> Y = random_factors(rng, n, f);
    std::vector<double> gram(static_cast<std::size_t>(f) * f);
    als_gram(Y.data(), n, f, gram.data(), 1);
    // a row with positive, negative and stored-zero values
    std::vector<std::int32_t> idx;
    std::vector<float> val;
    for (int i = 0; i < n; i += 7) {
        idx.push_back(i);
        val.push_back(i % 21 == 0 ? 0.0f : i % 5 == 0 ? -2.0f : float(1 + i % 4));
    }
    for (float expo : {0.0f, 0.5f}) {
        AlsParams p;
        p.regularization = 0.3f;
        p.reg_exponent = expo;
        p.alpha = 2.0f;
        p.solver = AlsSolver::Cholesky;
        p.num_threads = 1;
        const std::int64_t indptr[2] = {0, static_cast<std::int64_t>(idx.size())};
        std::vector<float> want(f);
        als_solve(indptr, idx.data(), val.data(), 1, Y.data(), n, f, gram.data(), want.data(), p);
        FoldInSide s{Y.data(), n, f, gram.data(), p.regularization, p.reg_exponent, p.alpha};
        tmtest::for_each_isa([&](simd::Isa) {
            std::vector<float> x(f);
            std::vector<double> U(static_cast<std::size_t>(f) * f);
            fold_in_one(s, {idx.data(), val.data(), static_cast<std::int64_t>(idx.size())}, x.data(), U.data());
            for (int j = 0; j < f; ++j) TM_CHECK_NEAR(x[j], want[j], 1e-5 * (1.0 + std::fabs(want[j])));
            TM_CHECK(U[0] > 0.0);
        });
    }
}

TM_TEST(fold_in_one_and_check_row_reject_bad_input) {
    const int n = 10, f = 3;
    std::vector<float> Y(n * f, 0.5f);
    std::vector<double> gram(f * f, 0.0);
    FoldInSide s{Y.data(), n, f, gram.data(), 0.1f, 0.0f, 1.0f};
    std::vector<float> x(f);
    const std::int32_t unsorted[2] = {4, 2}, dup[2] = {3, 3}, high[1] = {10}, neg[1] = {-1};
    const float ok[2] = {1.0f, 1.0f}, nan[1] = {std::nanf("")};
    TM_CHECK_THROWS(fold_in_one(s, {unsorted, ok, 2}, x.data()), std::invalid_argument);
    TM_CHECK_THROWS(fold_in_one(s, {dup, ok, 2}, x.data()), std::invalid_argument);
    TM_CHECK_THROWS(fold_in_one(s, {high, ok, 1}, x.data()), std::invalid_argument);
    TM_CHECK_THROWS(fold_in_one(s, {neg, ok, 1}, x.data()), std::invalid_argument);
    TM_CHECK_THROWS(fold_in_one(s, {dup, nan, 1}, x.data()), std::invalid_argument);
    TM_CHECK_THROWS(fold_in_one(s, {nullptr, nullptr, -1}, x.data()), std::invalid_argument);
    gram[4] = std::nan("");
    TM_CHECK_THROWS(fold_in_one(s, {dup, ok, 1}, x.data()), std::invalid_argument);
    gram[4] = 0.0;
    s.alpha = 0.0f;
    TM_CHECK_THROWS(fold_in_one(s, {dup, ok, 1}, x.data()), std::invalid_argument);
    s.alpha = 1.0f;
    s.regularization = 0.0f;  // Y rank one, lambda 0: not positive definite
    TM_CHECK_THROWS(fold_in_one(s, {high - 0, ok, 0}, x.data()), std::runtime_error);
}

TM_TEST(topk_one_and_similar_one_match_the_batch_kernel) {
    std::mt19937 rng(4);
    const int n = 203, f = 16, k = 12;
    std::vector<float> Y = random_factors(rng, n, f);
    for (int j = 0; j < f; ++j) Y[50 * f + j] = 0.0f;  // a zero row
    std::vector<float> normed(Y);
    for (int i = 0; i < n; ++i) {
        double s = 0.0;
        for (int j = 0; j < f; ++j) s += double(Y[i * f + j]) * Y[i * f + j];
        const float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.0f;
        for (int j = 0; j < f; ++j) normed[i * f + j] = Y[i * f + j] * inv;
    }
    const PackedItems packed(Y.data(), n, f, 1), packed_n(normed.data(), n, f, 1);
    const std::vector<std::int32_t> seen = {3, 9, 10, 77, 200}, deny = {11, 4, 150}, zero = {50};
    tmtest::for_each_isa([&](simd::Isa) {
        for (int q : {0, 5, 77}) {
            TopkRequest r;
            r.queries = Y.data() + q * f;
            r.n_queries = 1;
            r.items = Y.data();
            r.n_items = n;
            r.dim = f;
            r.k = k;
            const std::int64_t ip[2] = {0, static_cast<std::int64_t>(seen.size())};
            r.exclude_indptr = ip;
            r.exclude_indices = seen.data();
            r.deny = deny.data();
            r.n_deny = static_cast<std::int64_t>(deny.size());
            std::vector<std::int32_t> want_i(k), got_i(k);
            std::vector<float> want_s(k), got_s(k);
            topk_inner_product(r, want_i.data(), want_s.data());
            const int m = topk_one(Y.data() + q * f, packed, Y.data(), k, seen.data(), 5, deny.data(), 3, nullptr, 0,
                                   got_i.data(), got_s.data());
            TM_CHECK(m == k);
            TM_CHECK(got_i == want_i && got_s == want_s);
            // similar: the query first (score 1), then the batch kernel's order without it
            const int ms = similar_one(normed.data(), packed_n, q, k, zero.data(), 1, deny.data(), 3, nullptr, 0,
                                       got_i.data(), got_s.data());
            TM_CHECK(ms == k && got_i[0] == q && got_s[0] == 1.0f);
            TopkRequest c = r;
            c.queries = normed.data() + q * f;
            c.items = normed.data();
            const std::int32_t self = q;
            const std::int64_t one[2] = {0, 1};
            c.exclude_indptr = one;
            c.exclude_indices = &self;
            const std::vector<std::int32_t> all_deny = {11, 4, 150, 50};
            c.deny = all_deny.data();
            c.n_deny = 4;
            topk_inner_product(c, want_i.data(), want_s.data());
            for (int j = 1; j < k; ++j) {
                TM_CHECK(got_i[j] == want_i[j - 1]);
                TM_CHECK(got_s[j] == std::min(1.0f, std::max(-1.0f, want_s[j - 1])));
            }
        }
        // a denied query is not put first; a zero query has no results
        std::vector<std::int32_t> ids(k);
        std::vector<float> sc(k);
        const int m = similar_one(normed.data(), packed_n, 4, k, zero.data(), 1, deny.data(), 3, nullptr, 0,
                                  ids.data(), sc.data());
        TM_CHECK(m == k && std::find(ids.begin(), ids.end(), 4) == ids.end());
        TM_CHECK(similar_one(normed.data(), packed_n, 50, k, zero.data(), 1, nullptr, 0, nullptr, 0, ids.data(),
                             sc.data()) == 0);
        TM_CHECK_THROWS(similar_one(normed.data(), packed_n, n, k, nullptr, 0, nullptr, 0, nullptr, 0, ids.data(),
                                    sc.data()),
                        std::invalid_argument);
        const std::int32_t backwards[2] = {9, 3};
        TM_CHECK_THROWS(topk_one(Y.data(), packed, Y.data(), k, backwards, 2, nullptr, 0, nullptr, 0, ids.data(),
                                 sc.data()),
                        std::invalid_argument);
    });
}
