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
 *  Determinism: rows are solved independently, and als_gram() sums fixed row blocks in
 *  float64 in a fixed order, so results do not depend on the thread count.  SIMD paths
 *  agree with the scalar one to float rounding (different summation orders), not bit for
 *  bit; the Gram matrix is bit-identical on every path.
 *
 *  All arrays are row-major, C-contiguous; indptr has n_rows + 1 entries starting at 0,
 *  non-decreasing; column indices are in [0, n_other).  als_solve and als_loss check both
 *  (std::invalid_argument naming the array).
 */
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>

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
    /// Per-core L2 bytes the CG kernels block for (als_cache); 0 = detected
    /// (simd::l2_cache_bytes).  Only speed depends on it, never the factors.
    long long l2_bytes = 0;
};

/** The cache budgets of the CG kernels, from the per-core L2 size (als_cache). */
struct AlsCache {
    /** A row whose factor rows take at most this many bytes is served from L2 on its later
     *  passes: only its first pass prefetches, into L1.  Longer rows' first passes also
     *  prefetch into L2, and their later passes prefetch into L1 again.  L2 / 2. */
    std::int64_t row_bytes;
    /** Bytes of the other side's factor rows per tile in cg_group.  3/4 of L2. */
    std::int64_t tile_bytes;
};

/** The budgets for an L2 of l2_bytes per core (<= 0: the detected size); any size is
 *  clamped to [simd::kMinL2Bytes, simd::kMaxL2Bytes]. */
AlsCache als_cache(long long l2_bytes);

/** One long row of a group solved tile by tile (AlsKernels::cg_group).  The driver sets
 *  row, n (its non-zeros) and lambda; the kernel uses pos, rsold, active and pap as scratch. */
struct AlsTiledRow {
    std::int64_t row, n, pos;
    float lambda, rsold;
    bool active;
    float pap;
};

/** Entries past nnz that AlsKernels::cg_row's compacted list may write (block by block). */
constexpr std::int64_t kCompactSlack = 8;

/** Per-instruction-set kernels used by the ALS driver: one source
 *  (cpp/src/kernels/als-inl.hpp) compiled per ISA, every entry on every path. */
struct AlsKernels {
    /** G (f x f, row-major, float64) += Y^T Y over n rows of Y (n x f, float32).
     *  Only the upper triangle (j >= i) is guaranteed to be updated.  Bit-identical on
     *  every path (exact float64 products, rows summed in order). */
    void (*gram_accumulate)(const float* Y, std::size_t n, int f, double* G);
    /** Conjugate-gradient solve of one row, warm-started from x (length f, updated in
     *  place): cg_steps steps on (G32 + lambda I + sum_k (c_k - 1) y_k y_k^T) x = b with
     *  c_k = alpha |val_k|, b = sum over val_k > 0 of c_k y_k (a stored 0 contributes
     *  nothing).  A row stops early once r.r <= 1e-20 or p.Ap <= 0.  G32 is YtY as float32
     *  (f x f, full).  scratch holds >= 3 * f floats; cidx and cw hold >= nnz + kCompactSlack
     *  entries each: the first pass writes there the items whose c_k != 1 with their c_k - 1,
     *  and the later passes run over that list only (an item with c_k == 1 adds exactly 0 to
     *  A p, so the factors are those of passes over every item).  cache only steers
     *  prefetching. */
    void (*cg_row)(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz,
                   const float* G32, float alpha, float lambda, int cg_steps, int f, float* x,
                   float* scratch, std::int32_t* cidx, float* cw, const AlsCache& cache);
    /** The same iteration for the m rows of a group at once (X rows rows[h].row, each with
     *  indices sorted ascending), each pass sweeping the other side's n_other rows tile by
     *  tile so that a factor row is read from memory about once per group and pass.  Per
     *  row, the result equals cg_row's (each row's sums still run over its items in order,
     *  only split at tile boundaries, where a block is padded with weight-0 rows).  buf
     *  holds >= 3 * m * f floats.  The tiles are cache.tile_bytes; the factors do not
     *  depend on it. */
    void (*cg_group)(const std::int64_t* indptr, const std::int32_t* indices, const float* data, const float* Y,
                     std::int64_t n_other, int f, const float* G32, float alpha, int cg_steps, AlsTiledRow* rows,
                     std::size_t m, float* buf, float* X, const AlsCache& cache);
    /** sum_i x[i] * y[i] over n floats (the CG's inner product; any n, unaligned). */
    float (*dot)(const float* x, const float* y, std::size_t n);
    /** *lo = min(*lo, idx[0..n)), *hi = max(*hi, idx[0..n)) (the CSR column check). */
    void (*index_bounds)(const std::int32_t* idx, std::int64_t n, std::int32_t* lo, std::int32_t* hi);

    static constexpr auto entries() {
        return std::make_tuple(&AlsKernels::gram_accumulate, &AlsKernels::cg_row, &AlsKernels::cg_group,
                               &AlsKernels::dot, &AlsKernels::index_bounds);
    }
};

/** The table for a path, or for the active one (see simd.hpp: never a null entry). */
const AlsKernels& als_kernels(simd::Isa isa);
const AlsKernels& als_kernels();
/** The resolved tables (tests: Dispatch::borrowed() must be 0 on every path). */
const simd::Dispatch<AlsKernels>& als_kernels_dispatch();

/** YtY (f x f, full symmetric, float64) of Y (n x f, float32).  Same result for any
 *  thread count and on every SIMD path.  Throws std::invalid_argument if f < 1 or n < 0. */
void als_gram(const float* Y, std::int64_t n, int f, double* out, int num_threads = 0);

/** Solve every row of C into X (n_rows x f, float32, updated in place; the CG solver
 *  uses its content as the warm start, Cholesky ignores it).  CG: rows with more than
 *  1 MB of factor rows per pass and sorted indices are solved in groups
 *  (AlsKernels::cg_group), the others one by one; same results for any thread count.  gram is YtY from
 *  als_gram (f x f float64).  Thread-safe for distinct X.  Throws std::invalid_argument
 *  for bad parameters, std::runtime_error if a Cholesky system is not positive
 *  definite (raise the regularization). */
void als_solve(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
               std::int64_t n_rows, const float* Y, std::int64_t n_other, int f,
               const double* gram, float* X, const AlsParams& params);

/** lambda_u = regularization * (1 + n)^reg_exponent for a row with n stored entries, in
 *  the float rounding every solver (batch ALS, the loss, single-request fold-in) uses. */
inline float row_lambda(float regularization, float reg_exponent, std::int64_t n) {
    if (reg_exponent == 0.0f) return regularization;
    return static_cast<float>(regularization *
                              std::pow(1.0 + static_cast<double>(n), static_cast<double>(reg_exponent)));
}

/** The weighted loss of implicit ALS for factors X (users side, rows of C) and Y:
 *    [ sum_u sum_i c_ui (p_ui - x_u.y_i)^2 + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2 ]
 *    / (n_rows * n_other - m + sum c_ui)
 *  over all u, i: stored non-zero values have c_ui = alpha |v|, p_ui = (v > 0); unstored
 *  entries and stored zeros weigh 1 with preference 0; m is the number of stored non-zero
 *  values.  lambda_u is row_lambda of row u's stored entries, lambda_i the same scaling
 *  by column i's stored entries (regularization * (1 + count)^reg_exponent).  Computed
 *  from YtY without the dense product, in float64; per-row parts are summed in row order
 *  (deterministic).  gram is YtY (float64).  0 when the denominator is 0.  Throws
 *  std::invalid_argument like als_solve. */
double als_loss(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
                std::int64_t n_rows, const float* X, const float* Y, std::int64_t n_other, int f,
                const double* gram, const AlsParams& params);

}  // namespace tastemaker
