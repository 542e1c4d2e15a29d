// Small SPD solver kernels (tastemaker/solve.hpp), written once over the ops layer
// (ops_scalar.hpp documents it) and compiled once per instruction set by
// kernels/solve_<isa>.cpp, which defines TM_KERNEL_NS and includes the ISA's ops header
// first.  No include guard on purpose; no std:: templates (see simd.hpp).
//
// Upper Cholesky, right-looking in blocks of pivots: step j takes the pivot and scales row
// j's tail into U's row; the trailing rows then take the outer products of a whole block
// of pivot rows in one pass each.  Every inner loop runs over a contiguous row segment
// (the textbook left-looking form is a dot product per entry: a latency-bound reduction
// chain, and the unblocked right-looking one reloads every trailing row once per pivot).
// The forward substitution U^T z = b rides along (z_j is known once row j of U is); the
// back substitution U x = z is a dot product per row.
#include <cmath>
#include <cstdint>

#include "tastemaker/solve.hpp"

namespace tastemaker::kernels::TM_KERNEL_NS {
namespace solve {

constexpr int LD = Ops::kDLanes;

// y[0..n) += a * x[0..n)
inline void axpy(double* y, double a, const double* x, int n) {
    const Ops::D va = Ops::set1_d(a);
    int k = 0;
    for (; k + LD <= n; k += LD) Ops::store_d(y + k, Ops::mul_add_d(va, Ops::load_d(x + k), Ops::load_d(y + k)));
    if (k < n) {
        const int r = n - k;
        Ops::store_d_n(y + k, Ops::mul_add_d(va, Ops::load_d_n(x + k, r), Ops::load_d_n(y + k, r)), r);
    }
}

// x[0..n) *= a  (a product rounded once: a * x + 0)
inline void scale(double* x, double a, int n) {
    const Ops::D va = Ops::set1_d(a), zero = Ops::set1_d(0.0);
    int k = 0;
    for (; k + LD <= n; k += LD) Ops::store_d(x + k, Ops::mul_add_d(va, Ops::load_d(x + k), zero));
    if (k < n) {
        const int r = n - k;
        Ops::store_d_n(x + k, Ops::mul_add_d(va, Ops::load_d_n(x + k, r), zero), r);
    }
}

// sum_k x[k] y[k], lanes summed in lane order at the end
inline double dot(const double* x, const double* y, int n) {
    Ops::D acc = Ops::set1_d(0.0);
    int k = 0;
    for (; k + LD <= n; k += LD) acc = Ops::mul_add_d(Ops::load_d(x + k), Ops::load_d(y + k), acc);
    if (k < n) {
        const int r = n - k;
        acc = Ops::mul_add_d(Ops::load_d_n(x + k, r), Ops::load_d_n(y + k, r), acc);
    }
    double lanes[LD];
    Ops::store_d(lanes, acc);
    double s = 0.0;
    for (int l = 0; l < LD; ++l) s += lanes[l];
    return s;
}

constexpr int kNb = 8;  // pivots per block (Cholesky), rows per block (normal equations)

// y[0..n) += sum_t a[t] * x[t][off..off + n) over kNb terms: each vector of y is loaded
// and stored once for all of them.
inline void multi_axpy(double* y, const Ops::D* a, const double* const* x, int off, int n) {
    int k = 0;
    for (; k + LD <= n; k += LD) {
        Ops::D acc = Ops::load_d(y + k);
        for (int t = 0; t < kNb; ++t) acc = Ops::mul_add_d(a[t], Ops::load_d(x[t] + off + k), acc);
        Ops::store_d(y + k, acc);
    }
    if (k < n) {
        const int r = n - k;
        Ops::D acc = Ops::load_d_n(y + k, r);
        for (int t = 0; t < kNb; ++t) acc = Ops::mul_add_d(a[t], Ops::load_d_n(x[t] + off + k, r), acc);
        Ops::store_d_n(y + k, acc, r);
    }
}

// Right-looking in blocks of kNb pivots: within a block, each pivot row is finished and
// applied to the block's later rows; then every trailing row takes the whole block's
// update in one pass (block_update).  Only entries on or above the diagonal are read or
// written.
bool cholesky_solve(double* A, double* b, int f) {
    const std::int64_t lda = f;
    for (int j0 = 0; j0 < f; j0 += kNb) {
        const int nb = f - j0 < kNb ? f - j0 : kNb;
        for (int t = 0; t < nb; ++t) {
            const int j = j0 + t;
            double* aj = A + j * lda;
            const double p = aj[j];
            if (!(p > 0.0)) return false;
            const double d = std::sqrt(p), inv = 1.0 / d;
            aj[j] = d;
            const int tail = f - j - 1;
            scale(aj + j + 1, inv, tail);  // row j of U
            b[j] /= d;                     // z_j of U^T z = b
            axpy(b + j + 1, -b[j], aj + j + 1, tail);
            for (int i = j + 1; i < j0 + nb; ++i) axpy(A + i * lda + i, -aj[i], aj + i, f - i);
        }
        // trailing rows: A[i][i..f) -= sum_t U[j0 + t][i] * U[j0 + t][i..f), one pass each
        // (past the block's end: coefficient 0 on the block's first row)
        const double* x[kNb];
        for (int t = 0; t < kNb; ++t) x[t] = A + (j0 + (t < nb ? t : 0)) * lda;
        Ops::D a[kNb];
        for (int i = j0 + nb; i < f; ++i) {
            for (int t = 0; t < kNb; ++t) a[t] = Ops::set1_d(t < nb ? -x[t][i] : 0.0);
            multi_axpy(A + i * lda + i, a, x, i, f - i);
        }
    }
    for (int i = f - 1; i >= 0; --i) {  // U x = z
        const double* ai = A + i * lda;
        b[i] = (b[i] - dot(ai + i + 1, b + i + 1, f - i - 1)) / ai[i];
    }
    return true;
}

// Blocks of kNb rows of Y: each is widened to float64 once (and scaled by its weight
// once), then every row segment of A is loaded and stored once per block (multi_axpy).
void accumulate_normal(const float* Y, int f, const std::int32_t* rows, const double* w, const double* c,
                       std::int64_t n, double* A, double* b, double* scratch) {
    const std::int64_t fs = f;
    double* yd = scratch;            // kNb x f: the block's rows
    double* wy = scratch + kNb * fs;  // kNb x f: ... times their weights
    for (std::int64_t k0 = 0; k0 < n; k0 += kNb) {
        const int nb = n - k0 < kNb ? static_cast<int>(n - k0) : kNb;
        double cc[kNb];
        for (int t = 0; t < kNb; ++t) {
            double* d = yd + t * fs;
            double* e = wy + t * fs;
            if (t < nb) {
                const float* y = Y + rows[k0 + t] * fs;
                const double wt = w[k0 + t];
                for (std::int64_t j = 0; j < fs; ++j) {
                    d[j] = static_cast<double>(y[j]);
                    e[j] = wt * d[j];
                }
                cc[t] = c[k0 + t];
            } else {  // padding: weight 0 on a zero row
                for (std::int64_t j = 0; j < fs; ++j) d[j] = e[j] = 0.0;
                cc[t] = 0.0;
            }
        }
        const double* x[kNb];
        for (int t = 0; t < kNb; ++t) x[t] = yd + t * fs;
        Ops::D a[kNb];
        for (int i = 0; i < f; ++i) {
            for (int t = 0; t < kNb; ++t) a[t] = Ops::set1_d(wy[t * fs + i]);
            const int j = i - i % LD;  // aligned start: a few lower-triangle entries change too
            multi_axpy(A + i * fs + j, a, x, j, f - j);
        }
        for (int t = 0; t < kNb; ++t) a[t] = Ops::set1_d(cc[t]);
        multi_axpy(b, a, x, 0, f);
    }
}

}  // namespace solve
}  // namespace tastemaker::kernels::TM_KERNEL_NS
