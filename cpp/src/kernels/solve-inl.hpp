// Small SPD solver kernels (tastemaker/solve.hpp), written once over the ops layer
// (ops_scalar.hpp documents it) and compiled once per instruction set by
// kernels/solve_<isa>.cpp, which defines TM_KERNEL_NS and includes the ISA's ops header
// first.  No include guard on purpose; no std:: templates (see simd.hpp).
//
// Upper Cholesky, right-looking: step j takes the pivot, scales row j's tail into U's row
// and subtracts its outer product from the trailing rows, row by row.  Every inner loop
// is an axpy over a contiguous row segment (the textbook left-looking form is a dot
// product per entry: a latency-bound reduction chain).  The forward substitution
// U^T z = b rides along (z_j is known once row j of U is); the back substitution
// U x = z is a dot product per row.
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

bool cholesky_solve(double* A, double* b, int f) {
    const std::int64_t lda = f;
    for (int j = 0; j < f; ++j) {
        double* aj = A + j * lda;
        const double p = aj[j];
        if (!(p > 0.0)) return false;
        const double d = std::sqrt(p), inv = 1.0 / d;
        aj[j] = d;
        const int tail = f - j - 1;
        scale(aj + j + 1, inv, tail);     // row j of U
        b[j] /= d;                        // z_j
        axpy(b + j + 1, -b[j], aj + j + 1, tail);
        for (int i = j + 1; i < f; ++i)  // trailing rows: A[i][i..] -= U[j][i] * U[j][i..]
            axpy(A + i * lda + i, -aj[i], aj + i, f - i);
    }
    for (int i = f - 1; i >= 0; --i) {  // U x = z
        const double* ai = A + i * lda;
        b[i] = (b[i] - dot(ai + i + 1, b + i + 1, f - i - 1)) / ai[i];
    }
    return true;
}

// Four rows at a time: each row segment of A is loaded and stored once per four rank-one
// updates.
void accumulate_normal(const float* Y, int f, const std::int32_t* rows, const double* w, const double* c,
                       std::int64_t n, double* A, double* b) {
    const std::int64_t fs = f;
    std::int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const float* y0 = Y + rows[k] * fs;
        const float* y1 = Y + rows[k + 1] * fs;
        const float* y2 = Y + rows[k + 2] * fs;
        const float* y3 = Y + rows[k + 3] * fs;
        const double w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
        for (int i = 0; i < f; ++i) {
            const Ops::D a0 = Ops::set1_d(w0 * y0[i]), a1 = Ops::set1_d(w1 * y1[i]);
            const Ops::D a2 = Ops::set1_d(w2 * y2[i]), a3 = Ops::set1_d(w3 * y3[i]);
            double* ai = A + i * fs;
            int j = i - i % LD;  // aligned start: a few lower-triangle entries change too
            for (; j + LD <= f; j += LD) {
                Ops::D acc = Ops::load_d(ai + j);
                acc = Ops::mul_add_d(a0, Ops::widen(y0 + j), acc);
                acc = Ops::mul_add_d(a1, Ops::widen(y1 + j), acc);
                acc = Ops::mul_add_d(a2, Ops::widen(y2 + j), acc);
                acc = Ops::mul_add_d(a3, Ops::widen(y3 + j), acc);
                Ops::store_d(ai + j, acc);
            }
            if (j < f) {
                const int r = f - j;
                Ops::D acc = Ops::load_d_n(ai + j, r);
                acc = Ops::mul_add_d(a0, Ops::widen_n(y0 + j, r), acc);
                acc = Ops::mul_add_d(a1, Ops::widen_n(y1 + j, r), acc);
                acc = Ops::mul_add_d(a2, Ops::widen_n(y2 + j, r), acc);
                acc = Ops::mul_add_d(a3, Ops::widen_n(y3 + j, r), acc);
                Ops::store_d_n(ai + j, acc, r);
            }
        }
        const Ops::D c0 = Ops::set1_d(c[k]), c1 = Ops::set1_d(c[k + 1]);
        const Ops::D c2 = Ops::set1_d(c[k + 2]), c3 = Ops::set1_d(c[k + 3]);
        int j = 0;
        for (; j + LD <= f; j += LD) {
            Ops::D acc = Ops::load_d(b + j);
            acc = Ops::mul_add_d(c0, Ops::widen(y0 + j), acc);
            acc = Ops::mul_add_d(c1, Ops::widen(y1 + j), acc);
            acc = Ops::mul_add_d(c2, Ops::widen(y2 + j), acc);
            acc = Ops::mul_add_d(c3, Ops::widen(y3 + j), acc);
            Ops::store_d(b + j, acc);
        }
        if (j < f) {
            const int r = f - j;
            Ops::D acc = Ops::load_d_n(b + j, r);
            acc = Ops::mul_add_d(c0, Ops::widen_n(y0 + j, r), acc);
            acc = Ops::mul_add_d(c1, Ops::widen_n(y1 + j, r), acc);
            acc = Ops::mul_add_d(c2, Ops::widen_n(y2 + j, r), acc);
            acc = Ops::mul_add_d(c3, Ops::widen_n(y3 + j, r), acc);
            Ops::store_d_n(b + j, acc, r);
        }
    }
    for (; k < n; ++k) {
        const float* y = Y + rows[k] * fs;
        for (int i = 0; i < f; ++i) {
            const Ops::D a = Ops::set1_d(w[k] * y[i]);
            double* ai = A + i * fs;
            int j = i - i % LD;
            for (; j + LD <= f; j += LD) Ops::store_d(ai + j, Ops::mul_add_d(a, Ops::widen(y + j), Ops::load_d(ai + j)));
            if (j < f) {
                const int r = f - j;
                Ops::store_d_n(ai + j, Ops::mul_add_d(a, Ops::widen_n(y + j, r), Ops::load_d_n(ai + j, r)), r);
            }
        }
        const Ops::D cc = Ops::set1_d(c[k]);
        int j = 0;
        for (; j + LD <= f; j += LD) Ops::store_d(b + j, Ops::mul_add_d(cc, Ops::widen(y + j), Ops::load_d(b + j)));
        if (j < f) {
            const int r = f - j;
            Ops::store_d_n(b + j, Ops::mul_add_d(cc, Ops::widen_n(y + j, r), Ops::load_d_n(b + j, r)), r);
        }
    }
}

}  // namespace solve
}  // namespace tastemaker::kernels::TM_KERNEL_NS
