// ALS kernels, written once over the ops layer (ops_scalar.hpp documents it) and compiled
// once per instruction set by kernels/als_<isa>.cpp, which defines TM_KERNEL_NS and
// includes the ISA's ops header first.  No include guard on purpose: one inclusion per
// translation unit, inside that ISA's namespace.  No std:: templates here (see simd.hpp).
//
// The CG row solve (Hu, Koren & Volinsky's conjugate gradient, warm-started):
//   * each pass over a row's items loads every factor row for its dot product and reloads
//     it (an L1 hit) for the axpy: items go in blocks of eight with eight independent
//     dot products, one joint reduction (Ops::reduce8) and vectorized weights (Ops8);
//   * a block's axpys follow its own dot products, with the eight row addresses kept in
//     general registers; the out-of-order core overlaps them with the next block's dot
//     products by itself.  (Issuing block k's axpys after block k+1's or k+2's dot
//     products, through a ring of stored addresses and weights, gives bit-identical
//     results and was 3-5% slower on an AVX-512 Xeon: the pass is bound by instructions
//     issued, and the ring costs a store and a load per row);
//   * the working vectors (v, and the accumulator that receives the axpys) stay in
//     per-thread scratch memory, not registers: the dot phase keeps eight row sums live
//     and streams v from L1; the axpy phase keeps a strip of up to eight accumulator
//     chunks live.  The layout does not depend on f, so one template serves every f:
//     F > 0 is a compile-time f (loops fully unrolled, the tail chunk's mask folded),
//     F == 0 the generic version;
//   * every factor row is prefetched kPrefetchRows items ahead into L1, every cache line
//     of it including the last one (rows need not start on a line); rows streamed from
//     beyond L2 (more than AlsCache::row_bytes of factor rows) are also prefetched
//     kPrefetchRowsL2 ahead into L2;
//   * the passes after the first skip the items of confidence exactly 1 (they add 0 to
//     A p): the first pass writes a compacted list of the others (Ops::compress8), and
//     the last CG step takes only p'Ap from a dot-only pass (PassKind).
// Long rows are solved in groups, tile by tile over the other side's rows (cg_group; the
// driver in als.cpp decides which rows and how many per group).
#include <cstddef>
#include <cstdint>

#include "tastemaker/als.hpp"

#if defined(__GNUC__) || defined(__clang__)
// Keeps the compiler from carrying one phase's loads into the next (they would be spilled).
#define TM_ALS_BARRIER() asm volatile("" ::: "memory")
#define TM_ALS_INLINE __attribute__((always_inline)) inline
// Keeps a value in a general register: GCC otherwise computes the eight row addresses of a
// block in vector registers and extracts them one by one (shuffles on the port the FMAs use).
#define TM_ALS_SCALAR(x) asm("" : "+r"(x))
#else
#define TM_ALS_SCALAR(x) ((void)0)
#define TM_ALS_BARRIER() ((void)0)
#define TM_ALS_INLINE inline
#endif

namespace tastemaker::kernels::TM_KERNEL_NS {
namespace als {

using V = Ops::V;
using V8 = Ops8::V;
constexpr int L = Ops::kLanes;

/** CG stops for a row once r.r falls to this (converged to float precision; it also keeps
 *  the next step's rsnew / rsold and rsold / pAp from dividing by zero). */
constexpr float kCgResidualFloor = 1e-20f;
/** Items ahead whose factor rows are prefetched into L1 / into L2.  Swept on a 48 KiB-L1,
 *  2 MiB-L2 Xeon with line-aligned factors (bench/README.md): 4, 8 or 12 rows ahead and
 *  128 into L2 were no faster than these. */
constexpr int kPrefetchRows = 16;
constexpr int kPrefetchRowsL2 = 64;
constexpr int kCacheLine = 64;

// ---------------------------------------------------------------- chunks of f floats
// Chunk c holds floats [L c, L c + L); the last one may be partial (masked).
TM_ALS_INLINE V ld(const float* p, int f, int c) {
    const int rem = f - L * c;
    return rem >= L ? Ops::load(p + L * c) : Ops::load_n(p + L * c, rem);
}

TM_ALS_INLINE void st(float* p, int f, int c, V v) {
    const int rem = f - L * c;
    if (rem >= L)
        Ops::store(p + L * c, v);
    else
        Ops::store_n(p + L * c, v, rem);
}

constexpr int chunks(int f) { return (f + L - 1) / L; }

// ---------------------------------------------------------------- Gram (float64)
// G += Y^T Y over the upper triangle (and the rest of each touched vector of doubles),
// kGramRows rows per sweep: each G element is loaded and stored once per eight rank-1
// updates, and the sweep's rows are widened to float64 once (in panels of kGramPanel
// columns, on the stack) instead of once per G row (the conversions issue on the FMA
// ports).  The products of widened floats are exact in float64 and every element sums the
// rows in order, one fused add per row, so all paths (and any rows per sweep) give
// bit-identical Grams.
constexpr int kGramRows = 8;
constexpr int kGramPanel = 256;

void gram_accumulate(const float* Y, std::size_t n, int f, double* G) {
    constexpr int LD = Ops::kDLanes;
    const std::size_t fs = static_cast<std::size_t>(f);
    alignas(64) double w[kGramRows][kGramPanel];
    std::size_t r = 0;
    for (; r + kGramRows <= n; r += kGramRows) {
        const float* y = Y + r * fs;
        for (int j0 = 0; j0 < f; j0 += kGramPanel) {
            const int j1 = j0 + kGramPanel < f ? j0 + kGramPanel : f;
            for (int q = 0; q < kGramRows; ++q)
                for (int j = j0; j < j1; ++j) w[q][j - j0] = static_cast<double>(y[q * fs + j]);
            for (int i = 0; i < j1; ++i) {
                Ops::D a[kGramRows];
                if (i >= j0) {  // a broadcast from memory is a load; a conversion is not
#pragma GCC unroll 8
                    for (int q = 0; q < kGramRows; ++q) a[q] = Ops::set1_d(w[q][i - j0]);
                } else {
#pragma GCC unroll 8
                    for (int q = 0; q < kGramRows; ++q) a[q] = Ops::set1_d(static_cast<double>(y[q * fs + i]));
                }
                double* g = G + static_cast<std::size_t>(i) * fs;
                int j = i - i % LD;
                if (j < j0) j = j0;
                for (; j + LD <= j1; j += LD) {
                    Ops::D acc = Ops::load_d(g + j);
#pragma GCC unroll 8
                    for (int q = 0; q < kGramRows; ++q) acc = Ops::mul_add_d(a[q], Ops::load_d(&w[q][j - j0]), acc);
                    Ops::store_d(g + j, acc);
                }
                if (j < j1) {
                    const int rem = j1 - j;
                    Ops::D acc = Ops::load_d_n(g + j, rem);
#pragma GCC unroll 8
                    for (int q = 0; q < kGramRows; ++q)
                        acc = Ops::mul_add_d(a[q], Ops::load_d_n(&w[q][j - j0], rem), acc);
                    Ops::store_d_n(g + j, acc, rem);
                }
            }
        }
    }
    for (; r < n; ++r) {
        const float* y0 = Y + r * fs;
        for (int i = 0; i < f; ++i) {
            const Ops::D a0 = Ops::set1_d(y0[i]);
            double* g = G + static_cast<std::size_t>(i) * fs;
            for (int j = i - i % LD; j < f; j += LD) {
                const int rem = f - j < LD ? f - j : LD;
                Ops::store_d_n(g + j, Ops::mul_add_d(a0, Ops::widen_n(y0 + j, rem), Ops::load_d_n(g + j, rem)), rem);
            }
        }
    }
}

// ---------------------------------------------------------------- vector helpers
// sum_j a[j] b[j] over f floats, two accumulator chains.
template <int F>
TM_ALS_INLINE float vdot(const float* a, const float* b, int f_rt) {
    const int f = F ? F : f_rt;
    V s0 = Ops::zero(), s1 = Ops::zero();
    int c = 0;
#pragma GCC unroll 16
    for (; L * c + L < f; c += 2) {
        s0 = Ops::mul_add(ld(a, f, c), ld(b, f, c), s0);
        s1 = Ops::mul_add(ld(a, f, c + 1), ld(b, f, c + 1), s1);
    }
    if (L * c < f) s0 = Ops::mul_add(ld(a, f, c), ld(b, f, c), s0);
    return Ops::reduce_add(Ops::add(s0, s1));
}

// The CSR column check's scan (the AlsKernels::index_bounds entry): a plain loop, which the
// compiler vectorizes with each ISA's integer min/max (SSE2 has none: the baseline build of
// als.cpp took twice as long, about 18 ms per half-step at ML-20M size).
void index_bounds(const std::int32_t* idx, std::int64_t n, std::int32_t* lo_io, std::int32_t* hi_io) {
    std::int32_t lo = *lo_io, hi = *hi_io;
    for (std::int64_t k = 0; k < n; ++k) {
        lo = idx[k] < lo ? idx[k] : lo;
        hi = idx[k] > hi ? idx[k] : hi;
    }
    *lo_io = lo;
    *hi_io = hi;
}

// The dot product of any length (the AlsKernels::dot entry).
float dot(const float* x, const float* y, std::size_t n) {
    V s0 = Ops::zero(), s1 = Ops::zero();
    std::size_t i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
        s0 = Ops::mul_add(Ops::load(x + i), Ops::load(y + i), s0);
        s1 = Ops::mul_add(Ops::load(x + i + L), Ops::load(y + i + L), s1);
    }
    for (; i < n; i += L) {
        const int rem = n - i < static_cast<std::size_t>(L) ? static_cast<int>(n - i) : L;
        s0 = Ops::mul_add(Ops::load_n(x + i, rem), Ops::load_n(y + i, rem), s0);
    }
    return Ops::reduce_add(Ops::add(s0, s1));
}

// out = G v + lambda v (G symmetric: row j is column j), in strips of W chunks: W
// independent FMA chains, doubled (even / odd j) for narrow strips so that at least eight
// chains are in flight; at most 16 accumulators plus two broadcasts stay in registers.
template <int F, int W>
TM_ALS_INLINE void gram_matvec_strip(const float* G, const float* v, V l, int f, int c0, float* out) {
    constexpr bool two = W <= 4;
    const std::size_t fs = static_cast<std::size_t>(f);
    V o[W], o2[W];
#pragma GCC unroll 8
    for (int c = 0; c < W; ++c) {
        o[c] = Ops::mul(l, ld(v, f, c0 + c));
        o2[c] = Ops::zero();
    }
    int j = 0;
    if (two) {
        for (; j + 2 <= f; j += 2) {
            const V b0 = Ops::broadcast(v + j), b1 = Ops::broadcast(v + j + 1);
            const float* g0 = G + static_cast<std::size_t>(j) * fs;
            const float* g1 = g0 + fs;
#pragma GCC unroll 8
            for (int c = 0; c < W; ++c) {
                o[c] = Ops::mul_add(b0, ld(g0, f, c0 + c), o[c]);
                o2[c] = Ops::mul_add(b1, ld(g1, f, c0 + c), o2[c]);
            }
        }
    }
    for (; j < f; ++j) {
        const V b0 = Ops::broadcast(v + j);
        const float* g0 = G + static_cast<std::size_t>(j) * fs;
#pragma GCC unroll 8
        for (int c = 0; c < W; ++c) o[c] = Ops::mul_add(b0, ld(g0, f, c0 + c), o[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < W; ++c) st(out, f, c0 + c, two ? Ops::add(o[c], o2[c]) : o[c]);
}

template <int F>
TM_ALS_INLINE void gram_matvec(const float* G, const float* v, float lambda, int f_rt, float* out) {
    const int f = F ? F : f_rt;
    const int nc = chunks(f);
    const V l = Ops::set1(lambda);
    int c0 = 0;
    for (; c0 + 8 <= nc; c0 += 8) gram_matvec_strip<F, 8>(G, v, l, f, c0, out);
    switch (nc - c0) {
        case 1: gram_matvec_strip<F, 1>(G, v, l, f, c0, out); break;
        case 2: gram_matvec_strip<F, 2>(G, v, l, f, c0, out); break;
        case 3: gram_matvec_strip<F, 3>(G, v, l, f, c0, out); break;
        case 4: gram_matvec_strip<F, 4>(G, v, l, f, c0, out); break;
        case 5: gram_matvec_strip<F, 5>(G, v, l, f, c0, out); break;
        case 6: gram_matvec_strip<F, 6>(G, v, l, f, c0, out); break;
        case 7: gram_matvec_strip<F, 7>(G, v, l, f, c0, out); break;
        default: break;
    }
}

// Every cache line of the row: lines at 64-byte steps from its start plus its last byte
// (a row that does not start on a line, or whose length is not a multiple of 64 bytes,
// ends on a line the 64-byte steps miss).
template <bool kL2>
TM_ALS_INLINE void prefetch_row(const float* row, int f) {
    const char* p = reinterpret_cast<const char*>(row);
    const int bytes = 4 * f;
    for (int off = 0; off < bytes; off += kCacheLine) kL2 ? Ops::prefetch_l2(p + off) : Ops::prefetch_l1(p + off);
    if (bytes % kCacheLine != 0 || (reinterpret_cast<std::uintptr_t>(p) % kCacheLine) != 0)
        kL2 ? Ops::prefetch_l2(p + bytes - 1) : Ops::prefetch_l1(p + bytes - 1);
}

// acc += sum_j w[j] * rows[j] over the f floats, in strips of up to eight chunks kept in
// registers; w[j] is broadcast from memory.
template <int F>
TM_ALS_INLINE void axpy8(const float* const rows[8], const float* w, int f_rt, float* acc) {
    const int f = F ? F : f_rt;
    const int nc = chunks(f);
    for (int c0 = 0; c0 < nc; c0 += 8) {
        V a[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) a[c] = c0 + c < nc ? ld(acc, f, c0 + c) : Ops::zero();
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const V wj = Ops::broadcast(w + j);
#pragma GCC unroll 8
            for (int c = 0; c < 8; ++c)
                if (c0 + c < nc) a[c] = Ops::mul_add(wj, ld(rows[j], f, c0 + c), a[c]);
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c)
            if (c0 + c < nc) st(acc, f, c0 + c, a[c]);
    }
}

// c_k - 1 of eight items from their stored values (c_k = alpha |val_k|; 0 for a stored 0).
TM_ALS_INLINE V8 confidence_minus_one(V8 x, V8 valpha) {
    return Ops8::if_then_else_zero(Ops8::ne(x, Ops8::zero()), Ops8::sub(Ops8::mul(valpha, Ops8::abs(x)), Ops8::set1(1.0f)));
}

// What a pass computes per item k (c_k = alpha |val_k|, cm1_k = c_k - 1):
//   kResidual: w_k = b_k - cm1_k (y_k . v)   (b_k = c_k for likes, else 0)
//   kGivenWeights: w_k = val_k (y_k . v), val holding the cm1_k themselves
// and then acc (an f-float vector) += sum_k w_k y_k; or, for the last CG step, which needs
// only v.Av, the scalar *acc += w_k (y_k . v) item by item in order (no axpys):
//   kQuadGivenWeights: w_k as kGivenWeights.
// An item with cm1_k == 0 (c_k == 1: a value of exactly 1 / alpha, or a stored 0) adds
// exactly 0 to A p, so the later passes run over compacted lists of the other items (the
// residual pass writes one, compacted_pass builds them on the fly); skipping an exact zero
// leaves every sum as it was.
enum PassKind { kResidual, kGivenWeights, kQuadGivenWeights };

// One CG pass over n items of a row (or a segment of it: cg_group calls it per tile), as
// PassKind says; v is an f-float vector in memory.  prefetch: the rows come from beyond L1
// (long rows; always on the residual pass).  The residual pass also writes the compacted list (cidx, cw:
// the items with cm1_k != 0, in order, with cm1_k; nnz + kCompactSlack entries) when cidx
// is not null, and returns its length (else 0).
template <int F, PassKind kind>
std::int64_t fused_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, float alpha,
                        int f_rt, const float* v, float* acc, bool prefetch, std::int64_t l2_row_bytes,
                        std::int32_t* cidx = nullptr, float* cw = nullptr) {
    const int f = F ? F : f_rt;
    const int nc = chunks(f);
    const std::size_t fs = static_cast<std::size_t>(f);
    // The residual pass is a row's first touch of its factor rows: it always prefetches.
    // (Known at compile time, GCC lays the loop out better: on the avx2 path the build
    // with every compile-time f took ~6% longer per user half-step when it tested the flag.)
    if constexpr (kind == kResidual) prefetch = true;
    const bool prefetch_l2 = prefetch && nnz * f * 4 > l2_row_bytes;
    const V8 valpha = Ops8::set1(alpha), zero = Ops8::zero();
    std::int32_t tidx[8];
    float tval[8];
    alignas(32) float wbuf[8];
    std::int64_t m = 0;  // compacted items written
    for (std::int64_t k = 0; k < nnz; k += 8) {
        const std::int32_t* bi = idx + k;
        const float* bv = val + k;
        int n = 8;
        if (k + 8 > nnz) {  // pad the last block with weight-0 copies of a valid row
            n = static_cast<int>(nnz - k);
            for (int j = 0; j < 8; ++j) {
                tidx[j] = idx[k + (j < n ? j : 0)];
                tval[j] = j < n ? val[k + j] : 0.0f;
            }
            bi = tidx;
            bv = tval;
        } else if (prefetch) {
            const std::int64_t ahead = nnz - (k + 8);  // items after this block
            const int n1 = ahead >= kPrefetchRows + 8 ? 8
                                                       : (ahead > kPrefetchRows ? static_cast<int>(ahead - kPrefetchRows) : 0);
            for (int j = 0; j < n1; ++j)
                prefetch_row<false>(Y + static_cast<std::size_t>(idx[k + kPrefetchRows + j]) * fs, f);
            if (prefetch_l2 && ahead >= kPrefetchRowsL2 + 8)
                for (int j = 0; j < 8; ++j)
                    prefetch_row<true>(Y + static_cast<std::size_t>(idx[k + kPrefetchRowsL2 + j]) * fs, f);
        }
        const float* rows[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const float* r = Y + static_cast<std::size_t>(bi[j]) * fs;
            TM_ALS_SCALAR(r);
            rows[j] = r;
        }

        // dot phase: eight independent sums, v streamed from L1
        V s[8];
        {
            const V v0 = ld(v, f, 0);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) s[j] = Ops::mul(ld(rows[j], f, 0), v0);
        }
#pragma GCC unroll 16
        for (int c = 1; c < nc; ++c) {
            const V vc = ld(v, f, c);
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) s[j] = Ops::mul_add(ld(rows[j], f, c), vc, s[j]);
        }
        const V8 d = Ops::reduce8(s);
        const V8 x = Ops8::load(bv);
        V8 wv;
        if constexpr (kind == kResidual) {
            const V8 cm1 = confidence_minus_one(x, valpha);
            const V8 b = Ops8::if_then_else_zero(Ops8::gt(x, zero), Ops8::mul(valpha, Ops8::abs(x)));
            wv = Ops8::neg_mul_add(cm1, d, b);
            if (cidx != nullptr) m += Ops::compress8(cm1, bi, n, cw + m, cidx + m);
        } else {
            wv = Ops8::mul(x, d);
        }
        if constexpr (kind == kQuadGivenWeights) {
            // in item order whatever the blocks (tiles split them): cg_group equals cg_row
            Ops8::store(wbuf, Ops8::mul(wv, d));
            float q = *acc;
            for (int j = 0; j < n; ++j) q += wbuf[j];
            *acc = q;
        } else {
            Ops8::store(wbuf, wv);
            // Without the barrier GCC carries the dot phase's loads into the axpys (8 x nc
            // live row chunks do not fit in the registers and would be spilled to the stack).
            TM_ALS_BARRIER();
            axpy8<F>(rows, wbuf, f, acc);
        }
    }
    return m;
}

// A later pass (kGivenWeights or kQuadGivenWeights) over n items given by their stored
// values: compacted on the fly, kCompactChunk items at a time, into a list on the stack
// (cg_group's long rows, whose lists would take nnz-sized memory).
constexpr int kCompactChunk = 256;

template <int F, PassKind kind>
void compacted_pass(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, float alpha,
                    int f, const float* v, float* acc, bool prefetch, std::int64_t l2_row_bytes) {
    std::int32_t cidx[kCompactChunk + kCompactSlack];
    alignas(32) float cw[kCompactChunk + kCompactSlack];
    std::int32_t tidx[8] = {};
    float tval[8] = {};
    const V8 valpha = Ops8::set1(alpha);
    int m = 0;
    for (std::int64_t k = 0; k < nnz; k += 8) {
        const std::int32_t* bi = idx + k;
        const float* bv = val + k;
        const int n = k + 8 > nnz ? static_cast<int>(nnz - k) : 8;
        if (n < 8) {
            for (int j = 0; j < n; ++j) {
                tidx[j] = idx[k + j];
                tval[j] = val[k + j];
            }
            bi = tidx;
            bv = tval;
        }
        m += Ops::compress8(confidence_minus_one(Ops8::load(bv), valpha), bi, n, cw + m, cidx + m);
        if (m >= kCompactChunk || k + 8 >= nnz) {
            fused_pass<F, kind>(Y, cidx, cw, m, alpha, f, v, acc, prefetch, l2_row_bytes);
            m = 0;
        }
    }
}

// One CG step after A p is known: x += a p, r -= a A p, p = r + beta p.  Returns the new
// r.r, or a negative value if p'Ap <= 0 (indefinite system or exact solution: stop, keep x).
template <int F>
TM_ALS_INLINE float cg_update(float* x, float* r, float* p, const float* ap, float rsold, int f_rt) {
    const int f = F ? F : f_rt;
    const int nc = chunks(f);
    const float pap = vdot<F>(p, ap, f);
    if (!(pap > 0.0f)) return -1.0f;
    const V va = Ops::set1(rsold / pap);
    for (int c = 0; c < nc; ++c) {
        st(x, f, c, Ops::mul_add(va, ld(p, f, c), ld(x, f, c)));
        st(r, f, c, Ops::neg_mul_add(va, ld(ap, f, c), ld(r, f, c)));
    }
    const float rsnew = vdot<F>(r, r, f);
    const V vb = Ops::set1(rsnew / rsold);
    for (int c = 0; c < nc; ++c) st(p, f, c, Ops::mul_add(vb, ld(p, f, c), ld(r, f, c)));
    return rsnew;
}

// The last CG step: only x += a p with a = rsold / p'Ap; pap = p'Ap from the dot-only pass.
// Returns false if p'Ap <= 0 (x kept), as cg_update.
template <int F>
TM_ALS_INLINE bool cg_last_update(float* x, const float* p, float pap, float rsold, int f_rt) {
    const int f = F ? F : f_rt;
    if (!(pap > 0.0f)) return false;
    const V va = Ops::set1(rsold / pap);
    for (int c = 0; c < chunks(f); ++c) st(x, f, c, Ops::mul_add(va, ld(p, f, c), ld(x, f, c)));
    return true;
}

// r = -(G + lambda I) x  (the residual pass then adds b - sum (c-1)(y.x) y)
template <int F>
TM_ALS_INLINE void residual_start(const float* G, const float* x, float lambda, int f_rt, float* r, float* ap) {
    const int f = F ? F : f_rt;
    gram_matvec<F>(G, x, lambda, f, ap);
    for (int c = 0; c < chunks(f); ++c) st(r, f, c, Ops::sub(Ops::zero(), ld(ap, f, c)));
}

template <int F>
TM_ALS_INLINE void copy(const float* from, float* to, int f_rt) {
    const int f = F ? F : f_rt;
    for (int c = 0; c < chunks(f); ++c) st(to, f, c, ld(from, f, c));
}

// scratch: r, p, ap (f floats each); cidx, cw: nnz entries each (the compacted list of the
// later passes); x is updated in place.
template <int F>
void cg_row_t(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
              float alpha, float lambda, int cg_steps, int f_rt, float* x, float* scratch, std::int32_t* cidx,
              float* cw, const AlsCache& cache) {
    const int f = F ? F : f_rt;
    // A compile-time f keeps r, p and ap on the stack, each on its own cache lines: the
    // passes load v and load + store the accumulator once per block of eight items, and a
    // vector access that straddles two lines costs two.
    constexpr int kPad = F ? (F + 15) / 16 * 16 : 1;
    alignas(64) float local[F ? 3 * kPad : 1];
    float* r = F ? local : scratch;
    float* p = F ? local + kPad : scratch + f;
    float* ap = F ? local + 2 * kPad : scratch + 2 * f;
    residual_start<F>(G, x, lambda, f, r, ap);
    const std::int64_t m =
        fused_pass<F, kResidual>(Y, idx, val, nnz, alpha, f, x, r, true, cache.row_bytes, cidx, cw);
    // Later passes find a short row's factor rows in L1/L2; only long rows need prefetch.
    const bool prefetch_again = m * f * 4 > cache.row_bytes;
    copy<F>(r, p, f);
    float rsold = vdot<F>(r, r, f);
    for (int it = 0; it < cg_steps && rsold > kCgResidualFloor; ++it) {
        gram_matvec<F>(G, p, lambda, f, ap);
        if (it + 1 == cg_steps) {  // the last step: p'Ap = p'(G + lambda I)p + sum_k cm1_k (y_k . p)^2
            float pap = vdot<F>(p, ap, f);
            fused_pass<F, kQuadGivenWeights>(Y, cidx, cw, m, alpha, f, p, &pap, prefetch_again, cache.row_bytes);
            cg_last_update<F>(x, p, pap, rsold, f);
            break;
        }
        fused_pass<F, kGivenWeights>(Y, cidx, cw, m, alpha, f, p, ap, prefetch_again, cache.row_bytes);
        const float rsnew = cg_update<F>(x, r, p, ap, rsold, f);
        if (rsnew < 0.0f) break;
        rsold = rsnew;
    }
}

// The first e in [pos, n) with idx[e] >= bound, or n (idx ascending): steps doubling from
// pos, then bisection.  A row's items inside one tile are a short run next to the whole row
// (a 100k-item row meets about 90 tiles at f = 64), so this touches O(log run) indices where
// a scan touched the run: the scan, repeated per tile and pass, was 7% of an item half-step
// at ML-20M size (AVX-512 Xeon, one thread).
TM_ALS_INLINE std::int64_t seek(const std::int32_t* idx, std::int64_t pos, std::int64_t n, std::int64_t bound) {
    std::int64_t lo = pos, hi = pos, step = 1;  // idx[pos, lo) < bound
    while (hi < n && idx[hi] < bound) {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    if (hi > n) hi = n;  // idx[hi] >= bound or hi == n
    while (lo < hi) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < bound)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

template <PassKind K>
struct Kind {  // a pass kind as a value, for the generic lambda in cg_group_t
    static constexpr PassKind value = K;
};

// Long rows, solved together (see als.cpp, where the driver picks them): each CG pass
// sweeps the other side's rows in tiles of AlsCache::tile_bytes and, tile by tile, runs every row of
// the group over its items inside the tile, so a factor row is fetched from memory about
// once per group and pass rather than once per row that holds it.  The same iteration as
// cg_row_t for each row, except that the sums over a row's items are split at tile
// boundaries, which leaves each sum's order as it was: a block padded at a boundary adds
// weight-0 rows, and every item's dot product reduces the same way in any lane of a block,
// so the factors do not depend on the tile size (a C++ test checks it).  buf: 3 m f floats
// (R, P, AP of every row); indices sorted within each row.
template <int F>
void cg_group_t(const std::int64_t* indptr, const std::int32_t* indices, const float* data, const float* Y,
                std::int64_t n_other, int f_rt, const float* G, float alpha, int cg_steps, AlsTiledRow* rows,
                std::size_t m, float* buf, float* X, const AlsCache& cache) {
    const int f = F ? F : f_rt;
    const std::size_t fs = static_cast<std::size_t>(f);
    float* R = buf;
    float* P = R + m * fs;
    float* AP = P + m * fs;
    const std::int64_t per_tile = cache.tile_bytes / (4 * static_cast<std::int64_t>(f));
    const std::int64_t tile = per_tile > 64 ? per_tile : 64;
    auto x_of = [&](std::size_t h) { return X + static_cast<std::size_t>(rows[h].row) * fs; };
    // acc_h += the pass over row h's items, tile by tile (v_h, acc_h chosen by the caller)
    auto sweep = [&](auto kind, auto v_of, auto acc_of) {
        for (std::size_t h = 0; h < m; ++h) rows[h].pos = 0;
        for (std::int64_t t0 = 0; t0 < n_other; t0 += tile) {
            const std::int64_t tend = t0 + tile < n_other ? t0 + tile : n_other;
            for (std::size_t h = 0; h < m; ++h) {
                AlsTiledRow& rw = rows[h];
                if (!rw.active) continue;
                const std::int32_t* idx = indices + indptr[rw.row];
                const std::int64_t e = seek(idx, rw.pos, rw.n, tend);
                if (e > rw.pos) {
                    const float* val = data + indptr[rw.row] + rw.pos;
                    if constexpr (decltype(kind)::value == kResidual)
                        fused_pass<F, kResidual>(Y, idx + rw.pos, val, e - rw.pos, alpha, f, v_of(h), acc_of(h), true,
                                                 cache.row_bytes);
                    else
                        compacted_pass<F, decltype(kind)::value>(Y, idx + rw.pos, val, e - rw.pos, alpha, f, v_of(h),
                                                                 acc_of(h), true, cache.row_bytes);
                }
                rw.pos = e;
            }
        }
    };
    for (std::size_t h = 0; h < m; ++h) {
        rows[h].active = true;
        residual_start<F>(G, x_of(h), rows[h].lambda, f, R + h * fs, AP + h * fs);
    }
    sweep(Kind<kResidual>{}, x_of, [&](std::size_t h) { return R + h * fs; });
    for (std::size_t h = 0; h < m; ++h) {
        copy<F>(R + h * fs, P + h * fs, f);
        rows[h].rsold = vdot<F>(R + h * fs, R + h * fs, f);
        rows[h].active = rows[h].rsold > kCgResidualFloor;
    }
    for (int it = 0; it < cg_steps; ++it) {
        bool any = false;
        for (std::size_t h = 0; h < m; ++h)
            if (rows[h].active) {
                gram_matvec<F>(G, P + h * fs, rows[h].lambda, f, AP + h * fs);
                any = true;
            }
        if (!any) break;
        if (it + 1 == cg_steps) {  // the last step needs only p'Ap (see cg_row_t)
            for (std::size_t h = 0; h < m; ++h)
                if (rows[h].active) rows[h].pap = vdot<F>(P + h * fs, AP + h * fs, f);
            sweep(Kind<kQuadGivenWeights>{}, [&](std::size_t h) { return P + h * fs; },
                  [&](std::size_t h) { return &rows[h].pap; });
            for (std::size_t h = 0; h < m; ++h)
                if (rows[h].active) cg_last_update<F>(x_of(h), P + h * fs, rows[h].pap, rows[h].rsold, f);
            break;
        }
        sweep(Kind<kGivenWeights>{}, [&](std::size_t h) { return P + h * fs; }, [&](std::size_t h) { return AP + h * fs; });
        for (std::size_t h = 0; h < m; ++h) {
            AlsTiledRow& rw = rows[h];
            if (!rw.active) continue;
            const float rsnew = cg_update<F>(x_of(h), R + h * fs, P + h * fs, AP + h * fs, rw.rsold, f);
            rw.active = rsnew > kCgResidualFloor;
            if (rsnew >= 0.0f) rw.rsold = rsnew;
        }
    }
}

// Compile-time f for the common sizes (multiples of 8); other f take F = 0.  The scalar
// path (one lane: no masks to fold) keeps only the generic version.  Sanitizer builds
// (tests only) compile two of the sizes, one with a partial last AVX-512 chunk: the others
// are the same template, and all fifteen took minutes of compiler time per ISA under ASan.
#if defined(__SANITIZE_ADDRESS__) || defined(TM_ALS_FEW_SIZES)
#define TM_ALS_FIXED_F(X) X(24) X(64)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TM_ALS_FIXED_F(X) X(24) X(64)
#endif
#endif
#ifndef TM_ALS_FIXED_F
#define TM_ALS_FIXED_F(X) X(8) X(16) X(24) X(32) X(40) X(48) X(56) X(64) X(80) X(96) X(112) X(128) X(160) X(192) X(256)
#endif

void cg_row(const float* Y, const std::int32_t* idx, const float* val, std::int64_t nnz, const float* G,
            float alpha, float lambda, int cg_steps, int f, float* x, float* scratch, std::int32_t* cidx, float* cw,
            const AlsCache& cache) {
#define TM_CASE(N) \
    case N: return cg_row_t<N>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch, cidx, cw, cache);
    if constexpr (L > 1) {
        switch (f) {
            TM_ALS_FIXED_F(TM_CASE)
            default: break;
        }
    }
    cg_row_t<0>(Y, idx, val, nnz, G, alpha, lambda, cg_steps, f, x, scratch, cidx, cw, cache);
#undef TM_CASE
}

void cg_group(const std::int64_t* indptr, const std::int32_t* indices, const float* data, const float* Y,
              std::int64_t n_other, int f, const float* G, float alpha, int cg_steps, AlsTiledRow* rows,
              std::size_t m, float* buf, float* X, const AlsCache& cache) {
#define TM_CASE(N) \
    case N: return cg_group_t<N>(indptr, indices, data, Y, n_other, f, G, alpha, cg_steps, rows, m, buf, X, cache);
    if constexpr (L > 1) {
        switch (f) {
            TM_ALS_FIXED_F(TM_CASE)
            default: break;
        }
    }
    cg_group_t<0>(indptr, indices, data, Y, n_other, f, G, alpha, cg_steps, rows, m, buf, X, cache);
#undef TM_CASE
}

#undef TM_ALS_FIXED_F

}  // namespace als
}  // namespace tastemaker::kernels::TM_KERNEL_NS

#undef TM_ALS_BARRIER
#undef TM_ALS_SCALAR
#undef TM_ALS_INLINE
