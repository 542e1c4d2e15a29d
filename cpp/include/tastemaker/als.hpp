#pragma once
/** Implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008).
 *
 *  One half-step solves, for every row u of a CSR matrix C (rows x n_other) with the
 *  other side's factors Y (n_other x f) held fixed,
 *
 *      (YtY + lambda_u I + sum_{i in row u} (c_ui - 1) y_i y_i^T) x_u = sum_{i: v_ui > 0} c_ui y_i
 *
 *  Confidence convention (the implicit library's): a stored value v > 0 has confidence
 *  c = alpha * v and preference 1; v < 0 is a dislike with confidence alpha * |v| and
 *  preference 0; an unstored entry has confidence 1 and preference 0.  alpha is applied
 *  inside the kernel, the matrix is never scaled.  A stored 0 contributes nothing.
 *
 *  Regularization: lambda_u = regularization * (1 + nnz_u)^reg_exponent.
 *  reg_exponent = 0 gives the classic constant lambda; reg_exponent > 0 is the
 *  frequency-scaled regularization of Rendle et al. 2022 (the +1 keeps rows with no
 *  interactions well-posed).
 *
 *  Determinism: rows are solved independently, and gram() sums fixed row blocks in
 *  float64 in a fixed order, so results do not depend on the thread count.
 *
 *  All arrays are row-major, C-contiguous; indptr has n_rows + 1 entries starting at 0;
 *  column indices are in [0, n_other) (the caller validates; checked in debug only).
 */
#include <cstddef>
#include <cstdint>

#include "tastemaker/simd.hpp"

namespace tastemaker {

enum class AlsSolver : int { CG = 0, Cholesky = 1 };

struct AlsParams {
    float regularization = 0.01f;
    float reg_exponent = 0.0f;
    float alpha = 1.0f;
    AlsSolver solver = AlsSolver::CG;
    int cg_steps = 3;
    int num_threads = 0;  ///< 0 = global default (see threads.hpp)
};

/** Per-instruction-set kernels used by the ALS driver. */
struct AlsKernels {
    /** G (f x f, row-major, float64) += Y^T Y over n rows of Y (n x f, float32).
     *  Only the upper triangle (j >= i) is guaranteed to be updated. */
    void (*gram_accumulate)(const float* Y, std::size_t n, int f, double* G);
    /** Conjugate-gradient solve of one row, warm-started from x (length f, updated in
     *  place).  G32 is YtY as float32 (f x f, full).  scratch holds >= 3 * f floats. */
    void (*cg_row)(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz,
                   const float* G32, float alpha, float lambda, int cg_steps, int f, float* x,
                   float* scratch);
    /** One CG pass over n items of a row (a segment of it: the tiled solve of long rows
     *  calls it once per tile), with the weights of cg_row:
     *    residual: acc += sum_k (b_k - (c_k - 1)(y_k . v)) y_k   (b_k = c_k if val_k > 0, else 0)
     *    else:     acc += sum_k (c_k - 1)(y_k . v) y_k
     *  c_k = alpha |val_k|; a stored 0 contributes nothing.  v, acc: f floats.  prefetch:
     *  the rows are expected to come from beyond L2.  nullptr where an instruction set
     *  has none (the driver then solves every row with cg_row). */
    void (*cg_pass)(const float* Y, const std::int32_t* idx, const float* val, std::int64_t n, float alpha,
                    int f, const float* v, float* acc, bool residual, bool prefetch);
    /** out = G32 v + lambda v (f floats; out must not alias v).  nullptr with cg_pass. */
    void (*cg_matvec)(const float* G32, const float* v, float lambda, int f, float* out);
};

const AlsKernels& als_kernels(simd::Isa isa);
const AlsKernels& als_kernels();

/** YtY (f x f, full symmetric, float64) of Y (n x f, float32).  Same result for any
 *  thread count.  Throws std::invalid_argument if f < 1. */
void als_gram(const float* Y, std::int64_t n, int f, double* out, int num_threads = 0);

/** Solve every row of C into X (n_rows x f, float32, updated in place; the CG solver
 *  uses its content as the warm start, Cholesky ignores it).  gram is YtY from
 *  als_gram (f x f float64).  Thread-safe for distinct X.  Throws std::invalid_argument
 *  for bad parameters, std::runtime_error if a Cholesky system is not positive
 *  definite (raise the regularization). */
void als_solve(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
               std::int64_t n_rows, const float* Y, std::int64_t n_other, int f,
               const double* gram, float* X, const AlsParams& params);

/** The weighted loss of implicit ALS for factors X (users side, rows of C) and Y:
 *    [ sum_u sum_i c_ui (p_ui - x_u.y_i)^2 + sum_u lambda_u |x_u|^2 + regularization |Y|^2 ]
 *    / (n_rows * n_other - nnz + sum c_ui)
 *  (unstored entries weigh 1).  Computed from YtY without the dense product; per-row
 *  parts are summed in row order (deterministic).  gram is YtY (float64). */
double als_loss(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
                std::int64_t n_rows, const float* X, const float* Y, std::int64_t n_other, int f,
                const double* gram, const AlsParams& params);

}  // namespace tastemaker
