// AVX-512 VNNI top-k kernels: topk-inl.hpp on the AVX-512 ops with vpdpbusd int8 dots (the
// int8 pre-filters: query_bounds, self_bounds).  The other kernel families have no int8
// products and run their avx512 tables on this path (TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512).
#define TM_KERNEL_NS avx512vnni
#include "ops_avx512vnni.hpp"
#include "topk-inl.hpp"

namespace tastemaker {
extern const TopkKernels topk_kernels_avx512vnni = kernels::avx512vnni::topk::table();
}  // namespace tastemaker
