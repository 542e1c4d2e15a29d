// Explicit-feedback ALS-WR with biases (see explicit_als.hpp).
#include "tastemaker/explicit_als.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

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

// In-place Cholesky solve of the d x d SPD system A z = b (A row-major, lower triangle
// used and overwritten).  Returns false if A is not positive definite.
bool cholesky_solve(double* A, double* b, int d) {
    for (int j = 0; j < d; ++j) {
        double s = A[j * d + j];
        for (int k = 0; k < j; ++k) s -= A[j * d + k] * A[j * d + k];
        if (!(s > 0.0)) return false;
        const double l = std::sqrt(s);
        A[j * d + j] = l;
        for (int i = j + 1; i < d; ++i) {
            double t = A[i * d + j];
            for (int k = 0; k < j; ++k) t -= A[i * d + k] * A[j * d + k];
            A[i * d + j] = t / l;
        }
    }
    for (int i = 0; i < d; ++i) {  // L y = b
        double t = b[i];
        for (int k = 0; k < i; ++k) t -= A[i * d + k] * b[k];
        b[i] = t / A[i * d + i];
    }
    for (int i = d - 1; i >= 0; --i) {  // L^T z = y
        double t = b[i];
        for (int k = i + 1; k < d; ++k) t -= A[k * d + i] * b[k];
        b[i] = t / A[i * d + i];
    }
    return true;
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
    check_ratings(R, n_other);
    const int d = f + 1;
    const int threads = resolve_threads(p.num_threads);
    bool singular = false;
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
        std::vector<double> A, b, a;
        bool ok = true;
        try {
            A.resize(static_cast<std::size_t>(d) * d);
            b.resize(static_cast<std::size_t>(d));
            a.resize(static_cast<std::size_t>(d));
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
            std::fill(A.begin(), A.end(), 0.0);
            std::fill(b.begin(), b.end(), 0.0);
            a[f] = 1.0;
            for (std::int64_t q = p0; q < p1; ++q) {
                const std::int32_t i = R.indices[q];
                const float* y = Y + static_cast<std::int64_t>(i) * f;
                for (int k = 0; k < f; ++k) a[k] = y[k];
                const double t = static_cast<double>(R.data[q]) - p.global_mean - other_bias[i];
                // lower triangle only: row j, columns 0..j
                for (int j = 0; j < d; ++j) {
                    const double aj = a[j];
                    double* Aj = A.data() + j * d;
                    for (int k = 0; k <= j; ++k) Aj[k] += aj * a[k];
                    b[j] += aj * t;
                }
            }
            const double n = p.weighted ? static_cast<double>(p1 - p0) : 1.0;
            for (int k = 0; k < f; ++k) A[k * d + k] += p.regularization * n;
            A[f * d + f] += p.bias_regularization * n;
            if (!cholesky_solve(A.data(), b.data(), d)) {
#pragma omp atomic write
                singular = true;
                for (int k = 0; k < f; ++k) x[k] = 0.0f;
                bias[u] = 0.0f;
                continue;
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
