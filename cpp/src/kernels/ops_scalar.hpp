#pragma once
// Per-ISA vector ops: the portable reference, and the documentation of the API that
// ops_avx2.hpp, ops_avx512.hpp and ops_avx512vnni.hpp implement with the same names and
// meanings.
//
// A kernel body (cpp/src/kernels/<feature>-inl.hpp) is written once against these ops and
// compiled once per instruction set: each kernels/<feature>_<isa>.cpp defines
// TM_KERNEL_NS, includes ops_<isa>.hpp (which puts `struct Ops` / `struct Ops8` into
// namespace tastemaker::kernels::<isa>) and then the -inl.hpp, whose body lives in
// namespace tastemaker::kernels::TM_KERNEL_NS.  Every ISA thus gets every feature, and
// nothing compiled with one ISA's flags has the same symbol name as code compiled with
// another's (an inline function shared between TUs with different flags would be merged
// by the linker, and the AVX-512 copy could end up on the AVX2 path).  For the same
// reason the -inl.hpp bodies use no std:: templates (a COMDAT instance compiled with
// AVX-512 flags could be the one the linker keeps), and the SIMD ops headers refuse to
// compile without their ISA's flags.
//
// struct Ops  (full vector width of the ISA)
//   V                      a vector of kLanes floats;  M  the lane mask of a comparison
//   kLanes                 1 (scalar), 8 (AVX2), 16 (AVX-512, AVX-512 VNNI)
//   kName                  "scalar" / "avx2" / "avx512" / "avx512vnni"
//   kFusedInt8Dot          true where dot4_u8 is one instruction (AVX-512 VNNI's vpdpbusd)
//                          instead of a multiply-add chain through int16
//   zero(), set1(x)        all lanes 0 / x
//   broadcast(p)           all lanes *p  (a load: cheaper than set1 from a register on x86)
//   load(p), store(p, v)   kLanes floats, unaligned
//   VI, zero_i()           a vector of kLanes int32 lanes; all lanes 0
//   dot4_u8(acc, p, w)     lane j: acc_j + sum_{h<4} p[4j+h] * s8_h(*w), exactly: uint8
//                          quads from p times the four int8 bytes of the int32 *w (byte h
//                          = bits 8h..8h+7).  Exact only while |s8_h| <= 64 (the SIMD
//                          paths add products in pairs in int16) and every sum fits int32
//   dot8_u8(acc, p, ps, w, ws)
//                          dot4_u8 of (p, w), then of (p + ps, w + ws), in one: the SIMD
//                          paths add the two quads' pairs in int16 first, so exact only
//                          while p's bytes are <= 127 and |s8_h| <= 64 (4 * 127 * 64 < 2^15)
//   set1_i(x), sub_i(a, b) int32 lanes: all x; a - b
//   to_float(vi)           int32 lanes converted to float (round to nearest even)
//   load_n(p, n), store_n(p, v, n)
//                          lanes [0, n) only (0 <= n <= kLanes): loads zero the other lanes,
//                          neither reads nor writes memory beyond p[n - 1] (masked on SIMD)
//   add, sub, mul          IEEE float32, lane by lane
//   mul_add(a, b, c)       a * b + c: ONE rounding on the SIMD paths (FMA), TWO on scalar
//                          (portable code must not assume an FMA unit; std::fma would be a
//                          libm call per element).  For speed; the ALS kernels use it.
//   neg_mul_add(a, b, c)   c - a * b, rounded like mul_add
//   fma(a, b, c)           a * b + c with ONE rounding on every path (std::fma on scalar):
//                          for results that must be bit-identical across paths (top-k scores)
//   abs(v), max(a, b), min(a, b)
//                          |v| (clears the sign bit); max, min (NaN handling: unspecified)
//   gt(a, b), ne(a, b)     lane masks of a > b, a != b (ordered: false if either is NaN,
//                          ne: true iff ordered and different, as _CMP_NEQ_OQ)
//   if_then_else_zero(m, v)  v where m, +0.0 elsewhere
//   bits(m)                bit j set iff lane j of m is set
//   reduce_add(v)          sum of the lanes (a fixed, ISA-specific order)
//   reduce_max(v)          max of the lanes
//   prefetch_l1(p), prefetch_l2(p)   hint: bring p's cache line into L1 / L2
//   D, kDLanes             a vector of kDLanes doubles (float64 accumulation, e.g. Gram)
//   set1_d(x), load_d(p), store_d(p, d), load_d_n(p, n), store_d_n(p, d, n)
//                          as above, on doubles
//   widen(p), widen_n(p, n)  kDLanes (or n) floats from p, converted to doubles
//   mul_add_d(a, b, c)     a * b + c on doubles (fused on SIMD; exact products of widened
//                          floats make it round the same as the unfused scalar one)
//   reduce8(s)             eight vectors -> one Ops8::V whose lane j is reduce_add(s[j])
//                          (up to the order of the additions), in one joint reduction
//   compress8(w, idx, n, out_w, out_idx)
//                          w an Ops8::V: its lanes j < n with w_j != 0 (NaN counts as != 0)
//                          and the matching idx[j], stored contiguously to out_w / out_idx
//                          in lane order; returns how many.  Reads idx[0..8) and may write
//                          all 8 slots of out_w / out_idx, whatever n (1 <= n <= 8)
//   transpose(r)           r[0..kLanes): a kLanes x kLanes block, row i = r[i]; afterwards
//                          lane j of r[i] is what lane i of r[j] was (in registers)
// struct Ops8: the same ops on exactly 8 lanes (Ops8::kLanes == 8), for per-item values
//   of a block of eight items (AVX2: Ops itself; AVX-512: 256-bit AVX-512VL ops; scalar: an
//   8-float struct).
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tastemaker::kernels::scalar {

/** Eight floats, lane by lane (Ops8 of the scalar path). */
struct Ops8 {
    struct V {
        float v[8];
    };
    using M = std::uint32_t;  // bit j = lane j
    static constexpr int kLanes = 8;
    static inline V zero() { return set1(0.0f); }
    static inline V set1(float x) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = x;
        return r;
    }
    static inline V load(const float* p) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = p[j];
        return r;
    }
    static inline void store(float* p, const V& a) {
        for (int j = 0; j < 8; ++j) p[j] = a.v[j];
    }
    static inline V mul(const V& a, const V& b) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = a.v[j] * b.v[j];
        return r;
    }
    static inline V sub(const V& a, const V& b) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = a.v[j] - b.v[j];
        return r;
    }
    static inline V neg_mul_add(const V& a, const V& b, const V& c) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = c.v[j] - a.v[j] * b.v[j];
        return r;
    }
    static inline V abs(const V& a) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = std::fabs(a.v[j]);
        return r;
    }
    static inline M gt(const V& a, const V& b) {
        M m = 0;
        for (int j = 0; j < 8; ++j) m |= static_cast<M>(a.v[j] > b.v[j]) << j;
        return m;
    }
    static inline M ne(const V& a, const V& b) {
        M m = 0;
        for (int j = 0; j < 8; ++j) m |= static_cast<M>(a.v[j] < b.v[j] || a.v[j] > b.v[j]) << j;
        return m;
    }
    static inline V if_then_else_zero(M m, const V& a) {
        V r;
        for (int j = 0; j < 8; ++j) r.v[j] = (m >> j) & 1u ? a.v[j] : 0.0f;
        return r;
    }
};

/** One float per "vector": the reference every SIMD path is tested against. */
struct Ops {
    using V = float;
    using M = bool;
    static constexpr int kLanes = 1;
    static constexpr const char* kName = "scalar";
    static constexpr bool kFusedInt8Dot = false;

    static inline V zero() { return 0.0f; }
    static inline V set1(float x) { return x; }
    static inline V broadcast(const float* p) { return *p; }
    static inline V load(const float* p) { return *p; }
    static inline void store(float* p, V a) { *p = a; }
    using VI = std::int32_t;
    static inline VI zero_i() { return 0; }
    static inline VI dot4_u8(VI acc, const std::uint8_t* p, const std::int32_t* w) {
        const auto u = static_cast<std::uint32_t>(*w);
        for (int h = 0; h < 4; ++h)
            acc += std::int32_t{p[h]} * std::int32_t{static_cast<std::int8_t>(static_cast<std::uint8_t>(u >> (8 * h)))};
        return acc;
    }
    static inline VI dot8_u8(VI acc, const std::uint8_t* p, std::int64_t ps, const std::int32_t* w, std::int64_t ws) {
        return dot4_u8(dot4_u8(acc, p, w), p + ps, w + ws);
    }
    static inline VI set1_i(std::int32_t x) { return x; }
    static inline VI sub_i(VI a, VI b) { return a - b; }
    static inline V to_float(VI a) { return static_cast<float>(a); }
    static inline V load_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
    static inline void store_n(float* p, V a, int n) {
        if (n > 0) *p = a;
    }

    static inline V add(V a, V b) { return a + b; }
    static inline V sub(V a, V b) { return a - b; }
    static inline V mul(V a, V b) { return a * b; }
    static inline V mul_add(V a, V b, V c) { return a * b + c; }  // two roundings (ISO C++: no contraction)
    static inline V neg_mul_add(V a, V b, V c) { return c - a * b; }
    static inline V fma(V a, V b, V c) { return std::fma(a, b, c); }
    static inline V abs(V a) { return std::fabs(a); }
    static inline V max(V a, V b) { return a > b ? a : b; }
    static inline V min(V a, V b) { return a < b ? a : b; }

    static inline M gt(V a, V b) { return a > b; }
    static inline M ne(V a, V b) { return a < b || a > b; }
    static inline V if_then_else_zero(M m, V a) { return m ? a : 0.0f; }
    static inline std::uint32_t bits(M m) { return m ? 1u : 0u; }

    static inline float reduce_add(V a) { return a; }
    static inline float reduce_max(V a) { return a; }

#if defined(__GNUC__) || defined(__clang__)
    // always_inline: an out-of-line copy holds nothing but the prefetch, GCC 12 infers it
    // `const` and deletes its calls as dead.
    __attribute__((always_inline)) static inline void prefetch_l1(const void* p) { __builtin_prefetch(p, 0, 3); }
    __attribute__((always_inline)) static inline void prefetch_l2(const void* p) { __builtin_prefetch(p, 0, 2); }
#else
    static inline void prefetch_l1(const void* p) { (void)p; }
    static inline void prefetch_l2(const void* p) { (void)p; }
#endif

    static inline Ops8::V reduce8(const V s[8]) { return Ops8::load(s); }
    static inline int compress8(const Ops8::V& w, const std::int32_t* idx, int n, float* out_w,
                                std::int32_t* out_idx) {
        int k = 0;
        for (int j = 0; j < n; ++j) {  // branch-free: every lane is written, kept ones advance
            out_w[k] = w.v[j];
            out_idx[k] = idx[j];
            k += w.v[j] != 0.0f;
        }
        return k;
    }
    static inline void transpose(V*) {}  // 1 x 1

    using D = double;
    static constexpr int kDLanes = 1;
    static inline D set1_d(double x) { return x; }
    static inline D load_d(const double* p) { return *p; }
    static inline void store_d(double* p, D a) { *p = a; }
    static inline D load_d_n(const double* p, int n) { return n > 0 ? *p : 0.0; }
    static inline void store_d_n(double* p, D a, int n) {
        if (n > 0) *p = a;
    }
    static inline D widen(const float* p) { return static_cast<double>(*p); }
    static inline D widen_n(const float* p, int n) { return n > 0 ? static_cast<double>(*p) : 0.0; }
    static inline D mul_add_d(D a, D b, D c) { return a * b + c; }
};

}  // namespace tastemaker::kernels::scalar
