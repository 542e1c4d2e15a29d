// Explicit-feedback ALS-WR with biases (see explicit_als.hpp).
#include "tastemaker/explicit_als.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/solve.hpp"
#include "tastemaker/threads.hpp"

namespace tastemaker {
namespace {

void check_ratings(const CsrView& R, std::int64_t n_other) {
    if (R.n_rows < 0 || R.n_cols != n_other)
        throw std::invalid_argument("R: expected " + std::to_string(n_other) + " columns, got " +
                                    std::to_string(R.n_cols));
    if (R.indptr == nullptr || R.indptr[0] != 0) throw std::invalid_argument("R: indptr must start at 0");
    for (std::int64_t r = 0; r < R.n_rows; ++r)
        if (R.indptr[r + 1] < R.indptr[r]) throw std::invalid_argument("R: indptr is decreasing");
    const std::int64_t nnz = R.indptr[R.n_rows];
    for (std::int64_t p = 0; p < nnz; ++p) {
        if (R.indices[p] < 0 || R.indices[p] >= n_other)
            throw std::invalid_argument("R: column index " + std::to_string(R.indices[p]) + " out of range [0, " +
                                        std::to_string(n_other) + ")");
        if (!std::isfinite(R.data[p])) throw std::invalid_argument("R: contains NaN or inf ratings");
    }
}

// Counter-based generator: the deviates of row u come from (seed, u) alone.
inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// d standard normal deviates (Box-Muller on 53-bit uniforms in (0, 1]).
void normals(std::uint64_t seed, std::int64_t row, double* z, int d) {
    std::uint64_t state = seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(row + 1));
    constexpr double kTwoPi = 6.283185307179586;
    for (int k = 0; k < d; k += 2) {
        const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;
        const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
        const double r = std::sqrt(-2.0 * std::log(u1));
        z[k] = r * std::cos(kTwoPi * u2);
        if (k + 1 < d) z[k + 1] = r * std::sin(kTwoPi * u2);
    }
}

// z <- U^-1 z for the upper Cholesky factor U (A = U^T U) that cholesky_solve left in A's
// upper triangle: then z has covariance A^-1 when it had the identity.
void solve_upper(const double* A, double* z, int d) {
    for (int i = d - 1; i >= 0; --i) {
        double t = z[i];
        for (int k = i + 1; k < d; ++k) t -= A[i * d + k] * z[k];
        z[i] = t / A[i * d + i];
    }
}

}  // namespace

void explicit_als_solve(const CsrView& R, const float* Y, const float* other_bias, std::int64_t n_other, int f,
                        float* X, float* bias, const ExplicitAlsParams& p) {
    if (f < 1) throw std::invalid_argument("f: expected >= 1 factors, got " + std::to_string(f));
    if (!(p.regularization >= 0.0) || !std::isfinite(p.regularization))
        throw std::invalid_argument("regularization: expected a finite number >= 0");
    if (!(p.bias_regularization >= 0.0) || !std::isfinite(p.bias_regularization))
        throw std::invalid_argument("bias_regularization: expected a finite number >= 0");
    if (!std::isfinite(p.global_mean)) throw std::invalid_argument("global_mean: expected a finite number");
    if (!(p.noise_sd >= 0.0) || !std::isfinite(p.noise_sd))
        throw std::invalid_argument("noise_sd: expected a finite number >= 0");
    check_ratings(R, n_other);
    const int d = f + 1;
    const int threads = resolve_threads(p.num_threads);
    std::vector<double> prior_b(static_cast<std::size_t>(d), 0.0);  // P m
    if (p.prior_precision != nullptr && p.prior_mean != nullptr)
        for (int j = 0; j < d; ++j)
            for (int k = 0; k < d; ++k) prior_b[static_cast<std::size_t>(j)] += p.prior_precision[j * d + k] * p.prior_mean[k];
    bool singular = false;
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
        std::vector<double> A, b, z, Af, w, t, kernel;
        bool ok = true;
        try {
            A.resize(static_cast<std::size_t>(d) * d);
            b.resize(static_cast<std::size_t>(d));
            z.resize(static_cast<std::size_t>(d));
            Af.resize(static_cast<std::size_t>(f) * f);
            kernel.resize(static_cast<std::size_t>(kSolveScratch) * f);
        } catch (...) {
            ok = false;
#pragma omp critical(tastemaker_explicit_als_error)
            if (!error) error = std::current_exception();
        }
#pragma omp for schedule(dynamic, 32)
        for (std::int64_t u = 0; u < R.n_rows; ++u) {
            if (!ok) continue;
            const std::int64_t p0 = R.indptr[u], p1 = R.indptr[u + 1];
            float* x = X + u * f;
            if (p1 == p0) {
                for (int k = 0; k < f; ++k) x[k] = 0.0f;
                bias[u] = 0.0f;
                continue;
            }
            // [y_i; 1] [y_i; 1]^T summed: the f x f block Y^T Y of the row's items by the shared
            // kernel (upper triangle), the bias row/column by hand; b = [Y^T t; sum t].
            const std::int64_t n = p1 - p0;
            w.assign(static_cast<std::size_t>(n), 1.0);
            t.resize(static_cast<std::size_t>(n));
            for (std::int64_t q = p0; q < p1; ++q)
                t[static_cast<std::size_t>(q - p0)] =
                    static_cast<double>(R.data[q]) - p.global_mean - other_bias[R.indices[q]];
            std::fill(Af.begin(), Af.end(), 0.0);
            std::fill(b.begin(), b.end(), 0.0);
            solve_kernels().accumulate_normal(Y, f, R.indices + p0, w.data(), t.data(), n, Af.data(), b.data(),
                                              kernel.data());
            std::fill(A.begin(), A.end(), 0.0);
            for (int j = 0; j < f; ++j)
                for (int k = j; k < f; ++k) A[j * d + k] = Af[static_cast<std::size_t>(j) * f + k];
            for (std::int64_t q = p0; q < p1; ++q) {
                const float* y = Y + static_cast<std::int64_t>(R.indices[q]) * f;
                for (int k = 0; k < f; ++k) A[k * d + f] += y[k];
                b[static_cast<std::size_t>(f)] += t[static_cast<std::size_t>(q - p0)];
            }
            A[f * d + f] = static_cast<double>(n);
            if (p.prior_precision != nullptr) {
                for (int j = 0; j < d; ++j) {
                    for (int k = j; k < d; ++k) A[j * d + k] += p.prior_precision[j * d + k];
                    b[j] += prior_b[static_cast<std::size_t>(j)];
                }
            } else {
                const double scale = p.weighted ? static_cast<double>(n) : 1.0;
                for (int k = 0; k < f; ++k) A[k * d + k] += p.regularization * scale;
                A[f * d + f] += p.bias_regularization * scale;
            }
            if (!cholesky_solve(A.data(), b.data(), d)) {
#pragma omp atomic write
                singular = true;
                for (int k = 0; k < f; ++k) x[k] = 0.0f;
                bias[u] = 0.0f;
                continue;
            }
            if (p.noise_sd > 0.0) {
                normals(p.seed, u, z.data(), d);
                solve_upper(A.data(), z.data(), d);
                for (int k = 0; k < d; ++k) b[k] += p.noise_sd * z[k];
            }
            for (int k = 0; k < f; ++k) x[k] = static_cast<float>(b[k]);
            bias[u] = static_cast<float>(b[f]);
        }
    }
    if (error) std::rethrow_exception(error);
    if (singular)
        throw std::runtime_error(
            "regularization: a least-squares system is not positive definite; use a positive "
            "regularization and bias_regularization");
}

double explicit_als_rmse(const CsrView& R, const float* X, const float* bias, const float* Y,
                         const float* other_bias, std::int64_t n_other, int f, double global_mean,
                         int num_threads) {
    if (f < 1) throw std::invalid_argument("f: expected >= 1 factors, got " + std::to_string(f));
    check_ratings(R, n_other);
    std::vector<double> row_sq(static_cast<std::size_t>(R.n_rows), 0.0);
    const int threads = resolve_threads(num_threads);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64)
    for (std::int64_t u = 0; u < R.n_rows; ++u) {
        double s = 0.0;
        const float* x = X + u * f;
        for (std::int64_t q = R.indptr[u]; q < R.indptr[u + 1]; ++q) {
            const std::int32_t i = R.indices[q];
            const float* y = Y + static_cast<std::int64_t>(i) * f;
            double pred = global_mean + bias[u] + other_bias[i];
            for (int k = 0; k < f; ++k) pred += static_cast<double>(x[k]) * y[k];
            const double e = static_cast<double>(R.data[q]) - pred;
            s += e * e;
        }
        row_sq[static_cast<std::size_t>(u)] = s;
    }
    double total = 0.0;
    for (const double s : row_sq) total += s;
    const std::int64_t nnz = R.n_rows > 0 ? R.indptr[R.n_rows] : 0;
    return nnz > 0 ? std::sqrt(total / static_cast<double>(nnz)) : 0.0;
}

}  // namespace tastemaker
