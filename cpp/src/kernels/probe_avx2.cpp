// FMA throughput probe on the avx2 ops.
#define TM_KERNEL_NS avx2
#include "ops_avx2.hpp"
#include "probe-inl.hpp"

namespace tastemaker {
extern const ProbeKernels probe_kernels_avx2{kernels::avx2::probe::fma_chains};
}  // namespace tastemaker
