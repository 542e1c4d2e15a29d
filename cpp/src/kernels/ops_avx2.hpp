#pragma once
// AVX2 + FMA vector ops (8 float lanes); the API is documented in ops_scalar.hpp.
// Include only in kernels/*_avx2.cpp (compiled with -mavx2 -mfma); ops_avx512.hpp reuses
// the template as its 8-lane Ops8 under another Instance number, so the copies compiled
// with AVX-512 flags never share a symbol with these.
#if !defined(__AVX2__) || !defined(__FMA__)
#error "ops_avx2.hpp needs -mavx2 -mfma: include it only in kernels/*_avx2.cpp"
#endif
#include <immintrin.h>

#include <cstdint>

namespace tastemaker::kernels {

/** For each 8-bit lane mask: the set lanes' numbers in ascending order (then zeros), and
 *  how many there are (compress8 on AVX2, which has no compress instruction).  Data only:
 *  the constexpr builder runs at compile time. */
struct CompressLut {
    std::uint8_t lanes[256][8];
    std::uint8_t count[256];
};
constexpr CompressLut make_compress_lut() {
    CompressLut t{};
    for (int m = 0; m < 256; ++m) {
        int k = 0;
        for (int j = 0; j < 8; ++j)
            if ((m >> j) & 1) t.lanes[m][k++] = static_cast<std::uint8_t>(j);
        t.count[m] = static_cast<std::uint8_t>(k);
    }
    return t;
}
inline constexpr CompressLut kCompressLut = make_compress_lut();

template <int Instance>
struct Avx2Ops {
    using V = __m256;
    using M = __m256;  // all-ones / all-zeros lanes
    static constexpr int kLanes = 8;
    static constexpr const char* kName = "avx2";
    static constexpr bool kFusedInt8Dot = false;

    static inline V zero() { return _mm256_setzero_ps(); }
    static inline V set1(float x) { return _mm256_set1_ps(x); }
    static inline V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static inline V load(const float* p) { return _mm256_loadu_ps(p); }
    static inline void store(float* p, V a) { _mm256_storeu_ps(p, a); }
    using VI = __m256i;
    static inline VI zero_i() { return _mm256_setzero_si256(); }
    // The sums are added to acc with an asm vpaddd into acc's own register: written as
    // _mm256_add_epi32, GCC 12 put every sum in a temporary and moved it back to the
    // accumulator (one vmovdqa per add, a fifth of the scan's instructions).
    static inline VI add_to(VI acc, __m256i x) {
        asm("vpaddd %1, %0, %0" : "+x"(acc) : "x"(x));
        return acc;
    }
    static inline VI dot4_u8(VI acc, const std::uint8_t* p, const std::int32_t* w) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        const __m256i pairs = _mm256_maddubs_epi16(x, _mm256_set1_epi32(*w));  // exact: |w bytes| <= 64
        return add_to(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
    static inline VI dot8_u8(VI acc, const std::uint8_t* p, std::int64_t ps, const std::int32_t* w, std::int64_t ws) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + ps));
        // exact: p bytes <= 127 and |w bytes| <= 64 keep the four products of a 16-bit lane
        // within 4 * 127 * 64 < 2^15
        const __m256i fours = _mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_set1_epi32(w[0])),
                                               _mm256_maddubs_epi16(x1, _mm256_set1_epi32(w[ws])));
        return add_to(acc, _mm256_madd_epi16(fours, _mm256_set1_epi16(1)));
    }
    static inline VI set1_i(std::int32_t x) { return _mm256_set1_epi32(x); }
    static inline VI sub_i(VI a, VI b) { return _mm256_sub_epi32(a, b); }
    static inline V to_float(VI a) { return _mm256_cvtepi32_ps(a); }
    static inline __m256i lane_mask(int n) {  // lanes < n set
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static inline V load_n(const float* p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
    static inline void store_n(float* p, V a, int n) { _mm256_maskstore_ps(p, lane_mask(n), a); }

    static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
    static inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static inline V mul_add(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static inline V neg_mul_add(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
    static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static inline V abs(V a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
    static inline V max(V a, V b) { return _mm256_max_ps(a, b); }
    static inline V min(V a, V b) { return _mm256_min_ps(a, b); }

    static inline M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
    static inline M ne(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_OQ); }
    static inline V if_then_else_zero(M m, V a) { return _mm256_and_ps(m, a); }
    static inline std::uint32_t bits(M m) { return static_cast<std::uint32_t>(_mm256_movemask_ps(m)); }

    static inline float reduce_add(V a) {
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        return _mm_cvtss_f32(q);
    }
    static inline float reduce_max(V a) {
        __m128 q = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        q = _mm_max_ps(q, _mm_movehl_ps(q, q));
        q = _mm_max_ss(q, _mm_shuffle_ps(q, q, 1));
        return _mm_cvtss_f32(q);
    }

    // always_inline: an out-of-line copy holds nothing but the prefetch, GCC 12 infers it
    // `const` and deletes its calls as dead (objdump found none in als_avx512.cpp.o).
    __attribute__((always_inline)) static inline void prefetch_l1(const void* p) {
        _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
    }
    __attribute__((always_inline)) static inline void prefetch_l2(const void* p) {
        _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
    }

    // Lane j = sum of s[j]: three rounds of hadd plus one cross-half add.
    static inline V reduce8(const V s[8]) {
        const __m256 t0 = _mm256_hadd_ps(s[0], s[1]);  // s0 01 23 | s1 01 23 || s0 45 67 | s1 45 67
        const __m256 t1 = _mm256_hadd_ps(s[2], s[3]);
        const __m256 t2 = _mm256_hadd_ps(s[4], s[5]);
        const __m256 t3 = _mm256_hadd_ps(s[6], s[7]);
        const __m256 u0 = _mm256_hadd_ps(t0, t1);  // s0..s3 lanes 0-3 | s0..s3 lanes 4-7
        const __m256 u1 = _mm256_hadd_ps(t2, t3);
        return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    }

    // The lanes j < n of w that are != 0, and idx[j] of each, stored contiguously from
    // out_w / out_idx (a permutation from kCompressLut; all 8 slots are written).
    static inline int compress8(V w, const std::int32_t* idx, int n, float* out_w, std::int32_t* out_idx) {
        const __m256 keep = _mm256_and_ps(_mm256_cmp_ps(w, _mm256_setzero_ps(), _CMP_NEQ_UQ),
                                          _mm256_castsi256_ps(lane_mask(n)));
        const int bits = _mm256_movemask_ps(keep);
        const __m256i perm =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(kCompressLut.lanes[bits])));
        _mm256_storeu_ps(out_w, _mm256_permutevar8x32_ps(w, perm));
        const __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out_idx), _mm256_permutevar8x32_epi32(i, perm));
        return kCompressLut.count[bits];
    }

    // 8 x 8: pairs of rows interleaved, then quads, then the 128-bit halves exchanged.
    static inline void transpose(V* r) {
        __m256 t[8], u[8];
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int i = 0; i < 4; ++i) {
            r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
            r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
        }
    }

    using D = __m256d;
    static constexpr int kDLanes = 4;
    static inline __m256i lane_mask_d(int n) {  // 64-bit lanes < n set
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static inline D set1_d(double x) { return _mm256_set1_pd(x); }
    static inline D load_d(const double* p) { return _mm256_loadu_pd(p); }
    static inline void store_d(double* p, D a) { _mm256_storeu_pd(p, a); }
    static inline D load_d_n(const double* p, int n) { return _mm256_maskload_pd(p, lane_mask_d(n)); }
    static inline void store_d_n(double* p, D a, int n) { _mm256_maskstore_pd(p, lane_mask_d(n), a); }
    static inline D widen(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
    static inline D widen_n(const float* p, int n) {
        return _mm256_cvtps_pd(_mm_maskload_ps(p, _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3))));
    }
    static inline D mul_add_d(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
};

namespace avx2 {
using Ops = Avx2Ops<1>;
using Ops8 = Ops;
}  // namespace avx2

}  // namespace tastemaker::kernels
