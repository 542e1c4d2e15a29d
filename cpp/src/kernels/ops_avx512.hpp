#pragma once
// AVX-512 vector ops (16 float lanes; AVX-512F/VL/BW/DQ); the API is documented in
// ops_scalar.hpp.  Include only in kernels/*_avx512.cpp and, through ops_avx512vnni.hpp, in
// kernels/*_avx512vnni.cpp.  Ops8 (per-item values of a block of eight items) is the AVX2
// template under the same Instance number (see ops_avx2.hpp): each level that reuses these
// ops has its own Instance, so no copy compiled with one level's flags shares a symbol with
// another level's.
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || !defined(__AVX512BW__)
#error "ops_avx512.hpp needs -mavx512f -mavx512vl -mavx512dq -mavx512bw: include it only in kernels/*_avx512.cpp"
#endif
#include <immintrin.h>

#include <cstdint>

#include "ops_avx2.hpp"

namespace tastemaker::kernels {

template <int Instance>
struct Avx512Ops {
    using Ops8 = Avx2Ops<Instance>;
    using V = __m512;
    using M = __mmask16;
    static constexpr int kLanes = 16;
    static constexpr const char* kName = "avx512";
    static constexpr bool kFusedInt8Dot = false;

    static inline V zero() { return _mm512_setzero_ps(); }
    static inline V set1(float x) { return _mm512_set1_ps(x); }
    static inline V broadcast(const float* p) { return _mm512_set1_ps(*p); }  // vbroadcastss from memory
    static inline V load(const float* p) { return _mm512_loadu_ps(p); }
    static inline void store(float* p, V a) { _mm512_storeu_ps(p, a); }
    using VI = __m512i;
    static inline VI zero_i() { return _mm512_setzero_si512(); }
    // asm vpaddd into acc's own register: see ops_avx2.hpp (here GCC 12 otherwise kept
    // every accumulator on the stack).
    static inline VI add_to(VI acc, __m512i x) {
        asm("vpaddd %1, %0, %0" : "+v"(acc) : "v"(x));
        return acc;
    }
    static inline VI dot4_u8(VI acc, const std::uint8_t* p, const std::int32_t* w) {
        const __m512i x = _mm512_loadu_si512(p);
        const __m512i pairs = _mm512_maddubs_epi16(x, _mm512_set1_epi32(*w));  // exact: |w bytes| <= 64
        return add_to(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
    }
    static inline VI dot8_u8(VI acc, const std::uint8_t* p, std::int64_t ps, const std::int32_t* w, std::int64_t ws) {
        const __m512i fours = _mm512_add_epi16(_mm512_maddubs_epi16(_mm512_loadu_si512(p), _mm512_set1_epi32(w[0])),
                                               _mm512_maddubs_epi16(_mm512_loadu_si512(p + ps), _mm512_set1_epi32(w[ws])));
        return add_to(acc, _mm512_madd_epi16(fours, _mm512_set1_epi16(1)));  // exact: see ops_avx2.hpp
    }
    static inline VI set1_i(std::int32_t x) { return _mm512_set1_epi32(x); }
    static inline VI sub_i(VI a, VI b) { return _mm512_sub_epi32(a, b); }
    static inline V to_float(VI a) { return _mm512_cvtepi32_ps(a); }
    static inline __mmask16 lane_mask(int n) {  // lanes < n set, 0 <= n <= 16
        return static_cast<__mmask16>((1u << n) - 1u);
    }
    static inline V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(lane_mask(n), p); }
    static inline void store_n(float* p, V a, int n) { _mm512_mask_storeu_ps(p, lane_mask(n), a); }

    static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
    static inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static inline V mul_add(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static inline V neg_mul_add(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
    static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static inline V abs(V a) { return _mm512_abs_ps(a); }
    static inline V max(V a, V b) { return _mm512_max_ps(a, b); }
    static inline V min(V a, V b) { return _mm512_min_ps(a, b); }

    static inline M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
    static inline M ne(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_OQ); }
    static inline V if_then_else_zero(M m, V a) { return _mm512_maskz_mov_ps(m, a); }
    static inline std::uint32_t bits(M m) { return static_cast<std::uint32_t>(m); }

    // GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header: spelled out.
    static inline float reduce_add(V a) {
        const __m512 f = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
        return Ops8::reduce_add(_mm512_castps512_ps256(f));
    }
    static inline float reduce_max(V a) {
        const __m512 f = _mm512_max_ps(a, _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
        return Ops8::reduce_max(_mm512_castps512_ps256(f));
    }

    // always_inline: an out-of-line copy holds nothing but the prefetch, GCC 12 infers it
    // `const` and deletes its calls as dead (objdump found none in als_avx512.cpp.o).
    __attribute__((always_inline)) static inline void prefetch_l1(const void* p) {
        _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
    }
    __attribute__((always_inline)) static inline void prefetch_l2(const void* p) {
        _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
    }

    // Sums of eight 16-lane vectors: d_j for j < 4 lands in lane 4j, d_{j+4} in lane 4j+1,
    // then a permute puts d_0..d_7 in lanes 0..7.  ~20 shuffles/adds for eight dots instead
    // of eight dependent horizontal sums.
    static inline typename Ops8::V reduce8(const V s[8]) {
        __m512 t[4];
        for (int q = 0; q < 4; ++q) {
            const __m512 a = _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512 b = _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2));
            t[q] = _mm512_add_ps(a, b);  // 256-bit halves: item 2q | item 2q+1 (8 partials each)
        }
        __m512 u[2];
        for (int h = 0; h < 2; ++h) {
            const __m512 a = _mm512_shuffle_f32x4(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(2, 0, 2, 0));
            const __m512 b = _mm512_shuffle_f32x4(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(3, 1, 3, 1));
            u[h] = _mm512_add_ps(a, b);  // 128-bit lane j: item 4h+j (4 partials)
        }
        const __m512 lo = _mm512_unpacklo_ps(u[0], u[1]);  // [a0 b0 a1 b1]
        const __m512 hi = _mm512_unpackhi_ps(u[0], u[1]);  // [a2 b2 a3 b3]
        __m512 v = _mm512_add_ps(lo, hi);
        v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));  // lane 4j: item j, 4j+1: item j+4
        const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        return _mm512_castps512_ps256(_mm512_permutexvar_ps(perm, v));
    }

    // compress8 (ops_scalar.hpp) with AVX-512VL's compress instructions.
    static inline int compress8(typename Ops8::V w, const std::int32_t* idx, int n, float* out_w, std::int32_t* out_idx) {
        const __mmask8 keep = static_cast<__mmask8>(_mm256_cmp_ps_mask(w, _mm256_setzero_ps(), _CMP_NEQ_UQ) &
                                                    ((1u << n) - 1u));
        _mm256_storeu_ps(out_w, _mm256_maskz_compress_ps(keep, w));
        const __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out_idx), _mm256_maskz_compress_epi32(keep, i));
        return __builtin_popcount(keep);
    }

    // 16 x 16: pairs of rows interleaved, then pairs of pairs (as doubles), then 128-bit
    // lanes exchanged twice.
    static inline void transpose(V* r) {
        __m512 t[16];
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            r[i] = lo_pd(t[i], t[i + 2]);
            r[i + 1] = hi_pd(t[i], t[i + 2]);
            r[i + 2] = lo_pd(t[i + 1], t[i + 3]);
            r[i + 3] = hi_pd(t[i + 1], t[i + 3]);
        }
        // r[4q + c] lane L now holds rows 4q..4q+3 of column 4L + c
        for (int q = 0; q < 2; ++q)
            for (int c = 0; c < 4; ++c) {
                t[8 * q + c] = _mm512_shuffle_f32x4(r[8 * q + c], r[8 * q + 4 + c], 0x88);
                t[8 * q + 4 + c] = _mm512_shuffle_f32x4(r[8 * q + c], r[8 * q + 4 + c], 0xDD);
            }
        for (int c = 0; c < 8; ++c) {
            r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
            r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
        }
    }
    static inline __m512 lo_pd(__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    }
    static inline __m512 hi_pd(__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    }

    using D = __m512d;
    static constexpr int kDLanes = 8;
    static inline __mmask8 lane_mask_d(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
    static inline D set1_d(double x) { return _mm512_set1_pd(x); }
    static inline D load_d(const double* p) { return _mm512_loadu_pd(p); }
    static inline void store_d(double* p, D a) { _mm512_storeu_pd(p, a); }
    static inline D load_d_n(const double* p, int n) { return _mm512_maskz_loadu_pd(lane_mask_d(n), p); }
    static inline void store_d_n(double* p, D a, int n) { _mm512_mask_storeu_pd(p, lane_mask_d(n), a); }
    static inline D widen(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
    static inline D widen_n(const float* p, int n) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lane_mask_d(n), p)); }
    static inline D mul_add_d(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
};

namespace avx512 {
using Ops = Avx512Ops<2>;
using Ops8 = Ops::Ops8;
}  // namespace avx512

}  // namespace tastemaker::kernels
