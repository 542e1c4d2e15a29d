#pragma once
/** Small dense symmetric positive-definite systems: the one small-system solver of the
 *  project (ALS fold-in of one user, the exact Cholesky half-step, explicit ALS).
 *
 *  An f x f system (f up to a few hundred: one user's or one item's normal equations) is
 *  solved in float64 by an upper Cholesky factorisation, right-looking, row-major, with
 *  the forward substitution fused into it and every inner loop a contiguous row update
 *  on the active SIMD path (one source: cpp/src/kernels/solve-inl.hpp, compiled per
 *  instruction set).  f = 64 takes a few microseconds on AVX-512 (the scalar textbook
 *  loop with its dot-product inner loops took about 80).
 *
 *  Storage: A is f x f, row-major, float64.  Only the upper triangle (column >= row) is
 *  read, so a full symmetric matrix works as it is, and so does a lower triangle filled
 *  column-major (the same bytes).  Results agree across paths to float64 rounding
 *  (different summation orders), not bit for bit.
 *
 *  Thread-safety: the kernels keep no state; concurrent calls on different arrays are
 *  safe.  They never throw and never allocate.
 */
#include <cstdint>
#include <tuple>

#include "tastemaker/simd.hpp"

namespace tastemaker {

/** Doubles of scratch per factor that SolveKernels::accumulate_normal needs. */
constexpr int kSolveScratch = 16;

/** Per-instruction-set small-system kernels (see the file comment). */
struct SolveKernels {
    /** A x = b for symmetric positive-definite A (upper triangle read).  On success the
     *  upper triangle of A holds U with A = U^T U (the lower triangle is untouched), b
     *  holds x, and it returns true.  Returns false, leaving A and b partly overwritten,
     *  when a pivot is not > 0 (A not positive definite, or NaN). */
    bool (*cholesky_solve)(double* A, double* b, int f);
    /** The weighted normal equations of one row:
     *      A[i][j] += sum_k w[k] * y_k[i] * y_k[j]   for j >= i (the upper triangle), and
     *      b[j]    += sum_k c[k] * y_k[j],
     *  where y_k = Y + rows[k] * f (float32 rows, widened exactly to float64), k < n.
     *  Lower-triangle entries of A may be changed too (never read by cholesky_solve).
     *  scratch: kSolveScratch * f doubles. */
    void (*accumulate_normal)(const float* Y, int f, const std::int32_t* rows, const double* w, const double* c,
                              std::int64_t n, double* A, double* b, double* scratch);

    static constexpr auto entries() {
        return std::make_tuple(&SolveKernels::cholesky_solve, &SolveKernels::accumulate_normal);
    }
};

/** The table for a path, or for the active one (never a null entry). */
const SolveKernels& solve_kernels(simd::Isa isa);
const SolveKernels& solve_kernels();
const simd::Dispatch<SolveKernels>& solve_kernels_dispatch();

/** solve_kernels().cholesky_solve(A, b, f) on the active path (see SolveKernels). */
inline bool cholesky_solve(double* A, double* b, int f) { return solve_kernels().cholesky_solve(A, b, f); }

}  // namespace tastemaker
