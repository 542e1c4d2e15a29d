#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/explicit_als.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

// Gaussian elimination with partial pivoting (independent of the kernel's Cholesky).
std::vector<double> solve_dense(std::vector<double> A, std::vector<double> b, int d) {
    for (int c = 0; c < d; ++c) {
        int piv = c;
        for (int r = c + 1; r < d; ++r)
            if (std::fabs(A[r * d + c]) > std::fabs(A[piv * d + c])) piv = r;
        for (int k = 0; k < d; ++k) std::swap(A[c * d + k], A[piv * d + k]);
        std::swap(b[c], b[piv]);
        for (int r = c + 1; r < d; ++r) {
            const double m = A[r * d + c] / A[c * d + c];
            for (int k = c; k < d; ++k) A[r * d + k] -= m * A[c * d + k];
            b[r] -= m * b[c];
        }
    }
    std::vector<double> z(d);
    for (int r = d - 1; r >= 0; --r) {
        double t = b[r];
        for (int k = r + 1; k < d; ++k) t -= A[r * d + k] * z[k];
        z[r] = t / A[r * d + r];
    }
    return z;
}

}  // namespace

TM_TEST(explicit_als_half_step_matches_dense_least_squares) {
    const int nu = 9, ni = 14, f = 3;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
    std::bernoulli_distribution keep(0.4);
    std::uniform_int_distribution<int> star(1, 5);
    std::vector<std::int64_t> indptr{0};
    std::vector<std::int32_t> indices;
    std::vector<float> data;
    for (int u = 0; u < nu; ++u) {
        if (u != 4)  // row 4 stays empty
            for (int i = 0; i < ni; ++i)
                if (keep(rng)) {
                    indices.push_back(i);
                    data.push_back(float(star(rng)));
                }
        indptr.push_back(static_cast<std::int64_t>(indices.size()));
    }
    std::vector<float> Y(ni * f), c(ni);
    for (auto& v : Y) v = uni(rng);
    for (auto& v : c) v = uni(rng);
    const CsrView R{indptr.data(), indices.data(), data.data(), nu, ni};
    for (bool weighted : {true, false}) {
        ExplicitAlsParams p;
        p.regularization = 0.3;
        p.bias_regularization = 0.7;
        p.weighted = weighted;
        p.global_mean = 3.2;
        std::vector<float> X1(nu * f, 9.0f), b1(nu, 9.0f), X2(nu * f), b2(nu);
        p.num_threads = 1;
        explicit_als_solve(R, Y.data(), c.data(), ni, f, X1.data(), b1.data(), p);
        p.num_threads = 3;
        explicit_als_solve(R, Y.data(), c.data(), ni, f, X2.data(), b2.data(), p);
        for (int k = 0; k < nu * f; ++k) TM_CHECK(X1[k] == X2[k]);  // thread count changes nothing
        for (int u = 0; u < nu; ++u) {
            TM_CHECK(b1[u] == b2[u]);
            const int d = f + 1;
            std::vector<double> A(d * d, 0.0), b(d, 0.0);
            const auto n = indptr[u + 1] - indptr[u];
            if (n == 0) {
                for (int k = 0; k < f; ++k) TM_CHECK(X1[u * f + k] == 0.0f);
                TM_CHECK(b1[u] == 0.0f);
                continue;
            }
            for (auto q = indptr[u]; q < indptr[u + 1]; ++q) {
                std::vector<double> a(d, 1.0);
                for (int k = 0; k < f; ++k) a[k] = Y[indices[q] * f + k];
                const double t = data[q] - 3.2 - c[indices[q]];
                for (int j = 0; j < d; ++j) {
                    for (int k = 0; k < d; ++k) A[j * d + k] += a[j] * a[k];
                    b[j] += a[j] * t;
                }
            }
            const double scale = weighted ? double(n) : 1.0;
            for (int k = 0; k < f; ++k) A[k * d + k] += 0.3 * scale;
            A[f * d + f] += 0.7 * scale;
            const auto z = solve_dense(A, b, d);
            for (int k = 0; k < f; ++k) TM_CHECK_NEAR(X1[u * f + k], z[k], 1e-5);
            TM_CHECK_NEAR(b1[u], z[f], 1e-5);
        }
        // RMSE helper against a direct computation
        double sq = 0;
        for (int u = 0; u < nu; ++u)
            for (auto q = indptr[u]; q < indptr[u + 1]; ++q) {
                double pred = 3.2 + b1[u] + c[indices[q]];
                for (int k = 0; k < f; ++k) pred += double(X1[u * f + k]) * Y[indices[q] * f + k];
                sq += (data[q] - pred) * (data[q] - pred);
            }
        TM_CHECK_NEAR(explicit_als_rmse(R, X1.data(), b1.data(), Y.data(), c.data(), ni, f, 3.2, 2),
                      std::sqrt(sq / double(indices.size())), 1e-9);
    }
}

TM_TEST(explicit_als_rejects_bad_input) {
    std::vector<std::int64_t> indptr{0, 2};
    std::vector<std::int32_t> indices{0, 5};
    std::vector<float> data{1.0f, 2.0f}, Y(6, 0.1f), c(3, 0.0f), X(2), b(1);
    const CsrView R{indptr.data(), indices.data(), data.data(), 1, 3};
    ExplicitAlsParams p;
    TM_CHECK_THROWS(explicit_als_solve(R, Y.data(), c.data(), 3, 2, X.data(), b.data(), p),
                    std::invalid_argument);  // index 5 out of range
    indices[1] = 1;
    p.regularization = -1;
    TM_CHECK_THROWS(explicit_als_solve(R, Y.data(), c.data(), 3, 2, X.data(), b.data(), p),
                    std::invalid_argument);
    p.regularization = 0.1;
    TM_CHECK_THROWS(explicit_als_solve(R, Y.data(), c.data(), 3, 0, X.data(), b.data(), p), std::invalid_argument);
    data[0] = std::nanf("");
    TM_CHECK_THROWS(explicit_als_solve(R, Y.data(), c.data(), 3, 2, X.data(), b.data(), p), std::invalid_argument);
    data[0] = 1.0f;
    p.regularization = 0.0;
    p.bias_regularization = 0.0;
    std::vector<float> Yz(6, 0.0f);  // zero factors and no penalty: singular
    TM_CHECK_THROWS(explicit_als_solve(R, Yz.data(), c.data(), 3, 2, X.data(), b.data(), p), std::runtime_error);
}
