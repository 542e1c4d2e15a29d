// Portable top-k kernels (the bit-exact reference every SIMD path is tested against): topk-inl.hpp on the one-lane ops (Ops::fma is std::fma).
#define TM_KERNEL_NS scalar
#include "ops_scalar.hpp"
#include "topk-inl.hpp"

namespace tastemaker {
extern const TopkKernels topk_kernels_scalar = kernels::scalar::topk::table();
}  // namespace tastemaker
