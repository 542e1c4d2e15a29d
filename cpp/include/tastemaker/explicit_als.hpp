#pragma once
/** Explicit-feedback (star rating) matrix factorization with biases, by alternating
 *  least squares with frequency-weighted regularization (ALS-WR, Zhou et al. 2008).
 *
 *  Model:  r_ui ~ mu + b_u + c_i + x_u . y_i.  One half-step fixes the other side
 *  (Y, c) and solves, for every row u of the rating matrix R (rows x n_other) with
 *  n_u > 0 stored ratings, the regularised least-squares problem in z = [x_u; b_u]:
 *
 *      minimize  sum_{i in row u} (r_ui - mu - c_i - [y_i; 1] . z)^2
 *                + n_u^w * (lambda * |x_u|^2 + lambda_b * b_u^2)
 *
 *  with w = 1 for ALS-WR (the penalty grows with the row's number of ratings) or 0.
 *  The (f + 1) x (f + 1) normal equations are accumulated in float64 and solved by
 *  Cholesky, both by the shared small-system kernels (tastemaker/solve.hpp, on the active
 *  SIMD path); rows with no rating get x_u = 0, b_u = 0.
 *
 *  Determinism: every row is solved on its own (per-thread scratch, nothing shared),
 *  so the result is identical for any thread count (across SIMD paths: equal to float64
 *  rounding).
 */
#include <cstdint>

#include "tastemaker/knn.hpp"  // CsrView

namespace tastemaker {

struct ExplicitAlsParams {
    double regularization = 0.1;       ///< lambda (>= 0) on the factors
    double bias_regularization = 0.1;  ///< lambda_b (>= 0) on the bias
    bool weighted = true;              ///< ALS-WR: scale both by the row's rating count
    double global_mean = 0.0;          ///< mu
    int num_threads = 0;               ///< 0 = global default (threads.hpp)
    /** > 0: draw z from the Gaussian N(z*, noise_sd^2 A^-1) around the least-squares
     *  solution z* (A: the row's regularised normal matrix) instead of returning z*: one
     *  Gibbs-sampling step of the same model with rating noise noise_sd (>= 0, finite). */
    double noise_sd = 0.0;
    /** The draws' seed; row u's normal deviates depend only on (seed, u), so any thread
     *  count gives the same sample. */
    std::uint64_t seed = 0;
    /** Optional Gaussian prior N(prior_mean, prior_precision^-1) on z = [x_u; b_u] in place
     *  of the ridge terms: (f + 1) x (f + 1) row-major symmetric positive semi-definite,
     *  and f + 1 values (nullptr: mean 0).  Both in units of the rating noise variance
     *  (precision times noise_sd^2). */
    const double* prior_precision = nullptr;
    const double* prior_mean = nullptr;
};

/** One half-step.
 *
 *  @param R           rows x n_other ratings (CSR view; R.n_cols == n_other).
 *  @param Y           n_other x f, row-major float32 (the fixed side's factors).
 *  @param other_bias  n_other float32 (the fixed side's biases c_i).
 *  @param X           rows x f float32, overwritten with the solved factors.
 *  @param bias        rows float32, overwritten with the solved biases.
 *  @throws std::invalid_argument on f < 1, negative or non-finite parameters, a
 *          malformed CSR (indices out of range), or non-finite ratings;
 *          std::runtime_error if a system is not positive definite (possible only
 *          with zero regularization).
 */
void explicit_als_solve(const CsrView& R, const float* Y, const float* other_bias, std::int64_t n_other, int f,
                        float* X, float* bias, const ExplicitAlsParams& params);

/** Root mean squared error of mu + b_u + c_i + x_u . y_i against the stored ratings
 *  (float64 sums per row, added in row order; 0 for an empty matrix). */
double explicit_als_rmse(const CsrView& R, const float* X, const float* bias, const float* Y,
                         const float* other_bias, std::int64_t n_other, int f, double global_mean,
                         int num_threads = 0);

}  // namespace tastemaker
