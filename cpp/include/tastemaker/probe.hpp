#pragma once
/** Machine probes for the benchmarks (bench/_common.py): what the hardware can do, measured
 *  on the active SIMD path, so that kernel figures can be reported as fractions of it. */
#include <cstdint>
#include <tuple>

#include "tastemaker/simd.hpp"

namespace tastemaker {

/** Per-instruction-set probes (one source: cpp/src/kernels/probe-inl.hpp). */
struct ProbeKernels {
    /** iterations x kProbeChains independent multiply-adds on full vectors held in
     *  registers (no memory traffic); returns a value depending on all of them (so nothing
     *  is optimized away) and writes the floating-point operations done to *flops. */
    float (*fma_chains)(std::int64_t iterations, float seed, double* flops);

    static constexpr auto entries() { return std::make_tuple(&ProbeKernels::fma_chains); }
};

const ProbeKernels& probe_kernels(simd::Isa isa);
const ProbeKernels& probe_kernels();
const simd::Dispatch<ProbeKernels>& probe_kernels_dispatch();

/** fp32 multiply-add throughput of the active path on num_threads threads (0 = the global
 *  setting), in GFLOP/s (a multiply-add counts 2): every thread runs independent FMA chains
 *  for about `seconds`; the total is the sum over threads.  Throws std::invalid_argument
 *  unless 0 < seconds <= 60. */
double fma_peak_gflops(double seconds, int num_threads = 0);

/** Memory bandwidth on num_threads threads (0 = the global setting), in GB/s: STREAM's
 *  triad a[i] = b[i] + s c[i] over three float arrays of array_bytes each, split over the
 *  threads in static blocks (each thread first touches the pages it later streams), best
 *  pass of those run in about `seconds` (at least two; the first places the pages).  A pass
 *  counts 3 x array_bytes, STREAM's convention (the write-allocate read of a is not
 *  counted).  Arrays well beyond the last-level cache measure DRAM, smaller ones that
 *  cache.  Throws std::invalid_argument unless 0 < seconds <= 60 and
 *  2^12 <= array_bytes <= 2^34; std::bad_alloc if the arrays cannot be allocated. */
double triad_gbs(std::int64_t array_bytes, double seconds, int num_threads = 0);

}  // namespace tastemaker
