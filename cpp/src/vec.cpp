#include "tastemaker/vec.hpp"

#include <stdexcept>

namespace tastemaker {

extern const VecKernels vec_kernels_scalar;
#ifdef TASTEMAKER_HAVE_X86_KERNELS
extern const VecKernels vec_kernels_avx2;
extern const VecKernels vec_kernels_avx512;
#endif

const VecKernels& vec_kernels(simd::Isa isa) {
    switch (isa) {
#ifdef TASTEMAKER_HAVE_X86_KERNELS
        case simd::Isa::AVX512: return vec_kernels_avx512;
        case simd::Isa::AVX2: return vec_kernels_avx2;
#endif
        default: return vec_kernels_scalar;
    }
}

const VecKernels& vec_kernels() { return vec_kernels(simd::active()); }

}  // namespace tastemaker
