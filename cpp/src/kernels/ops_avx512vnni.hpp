#pragma once
// AVX-512 + AVX512-VNNI vector ops: the AVX-512 ops (ops_avx512.hpp, under this level's own
// Instance number) with the int8 dot products done by vpdpbusd, which multiplies unsigned by
// signed bytes and adds each lane's four products to its int32 in one instruction, without
// saturation.  The API is documented in ops_scalar.hpp; include only in
// kernels/*_avx512vnni.cpp.
//
// Same results as the AVX-512 ops bit for bit: those add the products in pairs through
// int16 (vpmaddubsw, vpmaddwd), exact within the operands' documented ranges, so both
// compute the exact integer sums; vpdpbusd is exact for any bytes.
#if !defined(__AVX512VNNI__)
#error "ops_avx512vnni.hpp needs -mavx512vnni (and the AVX-512 flags): include it only in kernels/*_avx512vnni.cpp"
#endif
#include "ops_avx512.hpp"

namespace tastemaker::kernels::avx512vnni {

struct Ops : Avx512Ops<3> {
    static constexpr const char* kName = "avx512vnni";
    static constexpr bool kFusedInt8Dot = true;

    // vpdpbusd in asm, into acc's own register: written as _mm512_dpbusd_epi32, GCC 12
    // kept most of the self-join tile's 24 accumulators on the stack (a store per
    // instruction pair in the loop), as it did with the AVX-512 ops' vpaddd
    // (ops_avx512.hpp).  The signed bytes come broadcast in a register, which GCC shares
    // between the vectors of a row: the instruction's own {1to16} memory broadcast made one
    // load per vpdpbusd and addresses computed per row, 3-5% slower in the self-join
    // (bench/README.md).
    static inline VI dot4_u8(VI acc, const std::uint8_t* p, const std::int32_t* w) {
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(_mm512_loadu_si512(p)), "v"(_mm512_set1_epi32(*w)));
        return acc;
    }
    static inline VI dot8_u8(VI acc, const std::uint8_t* p, std::int64_t ps, const std::int32_t* w, std::int64_t ws) {
        return dot4_u8(dot4_u8(acc, p, w), p + ps, w + ws);
    }
};
using Ops8 = Ops::Ops8;

}  // namespace tastemaker::kernels::avx512vnni
