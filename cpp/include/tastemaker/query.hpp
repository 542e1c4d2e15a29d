#pragma once
/** Single-request queries: the path a service takes, one request per call.
 *
 *  Each function answers one request on the calling thread (no parallel region, no
 *  block set-up), reading only what the model caches between requests: the item factors
 *  packed into top-k panels (PackedItems), the L2-normalised factors and their panels,
 *  and the Gram matrix Y^T Y.  Scoring and top-k selection are one pass over the panels
 *  (topk_inner_product's single-query scan: the panels are scored a few at a time, only
 *  items above the running k-th score are checked against the exclusions); no score
 *  array of the whole catalogue is ever written.
 *
 *  Results equal the batch paths': the same scores bit for bit (the same kernel), the
 *  same order (score descending, ties to the lower id), and for the fold-in the same
 *  normal equations as als_solve's exact (Cholesky) solver, solved by the SIMD
 *  SolveKernels (tastemaker/solve.hpp) instead of the scalar loop (equal to float64
 *  rounding).
 *
 *  All pointers are borrowed for the duration of the call.  Thread-safe: concurrent
 *  calls share nothing but the read-only inputs.  Errors: std::invalid_argument naming
 *  the argument ("user_items: ...", "queries: ...", "items: ...", "gram: ...", ...), and
 *  std::runtime_error when a fold-in system is not positive definite.
 */
#include <cstdint>

#include "tastemaker/topk.hpp"

namespace tastemaker {

/** One sparse row: column ids strictly ascending in [0, n_cols) and finite values. */
struct RowRef {
    const std::int32_t* indices = nullptr;
    const float* data = nullptr;
    std::int64_t nnz = 0;
};

/** Checks a RowRef; throws std::invalid_argument("<name>: ...") naming what is wrong
 *  (negative length, null pointer, id out of range, unsorted or duplicate ids, NaN/inf). */
void check_row(const RowRef& row, std::int64_t n_cols, const char* name);

/** The fixed side of an implicit-ALS fold-in (see als.hpp for the model):
 *  Y (n x f, row-major float32), its Gram Y^T Y (f x f, row-major float64; the upper
 *  triangle is read) and the hyperparameters (regularization >= 0, alpha > 0, finite). */
struct FoldInSide {
    const float* Y = nullptr;
    std::int64_t n = 0;
    int f = 0;
    const double* gram = nullptr;
    float regularization = 0.01f;
    float reg_exponent = 0.0f;
    float alpha = 1.0f;
};

/** x (f floats) solving (YtY + lambda_u I + sum_j (c_j - 1) y_j y_j^T) x = sum_{v_j > 0} c_j y_j
 *  for one row (c_j = alpha |v_j|, stored zeros ignored, lambda_u as als.hpp), exactly
 *  as als_solve with AlsSolver::Cholesky.  The row is checked (check_row, name
 *  "user_items").  `factor` (optional, f x f doubles) receives U with A = U^T U in its
 *  upper triangle (row-major; the same bytes are the lower factor L in column-major
 *  order), so callers can reuse the factorisation (explanations).
 *  @throws std::invalid_argument on a bad row, sizes or hyperparameters, or a Gram with
 *          NaN/inf ("gram: ..."); std::runtime_error if the system is not positive
 *          definite. */
void fold_in_one(const FoldInSide& side, const RowRef& row, float* x, double* factor = nullptr);

/** One query's top k over packed items.
 *  @param q       dim floats (finite; checked against overflow like topk_inner_product).
 *  @param items   the items as packed (and `raw`: the same n_items x dim values, used
 *                 only to pack an allow-list's candidates).
 *  @param exclude ids never returned, ascending (a user's seen items); may be null.
 *  @param deny, allow  optional lists as in TopkRequest (any order, ids in range).
 *  Writes min(k, eligible) results to out_ids / out_scores (room for k) and returns how
 *  many. */
int topk_one(const float* q, const PackedItems& items, const float* raw, int k, const std::int32_t* exclude,
             std::int64_t n_exclude, const std::int32_t* deny, std::int64_t n_deny, const std::int32_t* allow,
             std::int64_t n_allow, std::int32_t* out_ids, float* out_scores);

/** similar_items for one row `id` of `normed` (n x dim, rows of unit norm or zero):
 *  cosine top k with the query itself first (score 1) when it is eligible, as the batch
 *  path orders it.  `zero` (ascending) lists the zero rows: never results, and a zero
 *  query has no results.  deny/allow as in topk_one.  Scores are clipped to [-1, 1].
 *  Returns the number of results written. */
int similar_one(const float* normed, const PackedItems& packed, std::int64_t id, int k, const std::int32_t* zero,
                std::int64_t n_zero, const std::int32_t* deny, std::int64_t n_deny, const std::int32_t* allow,
                std::int64_t n_allow, std::int32_t* out_ids, float* out_scores);

}  // namespace tastemaker
