// FMA throughput probe on the scalar ops.
#define TM_KERNEL_NS scalar
#include "ops_scalar.hpp"
#include "probe-inl.hpp"

namespace tastemaker {
extern const ProbeKernels probe_kernels_scalar{kernels::scalar::probe::fma_chains};
}  // namespace tastemaker
