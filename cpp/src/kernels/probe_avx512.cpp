// FMA throughput probe on the avx512 ops.
#define TM_KERNEL_NS avx512
#include "ops_avx512.hpp"
#include "probe-inl.hpp"

namespace tastemaker {
extern const ProbeKernels probe_kernels_avx512{kernels::avx512::probe::fma_chains};
}  // namespace tastemaker
