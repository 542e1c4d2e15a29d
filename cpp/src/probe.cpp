// Machine probes: the FMA peak the benchmarks report kernel speed against.
#include "tastemaker/probe.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "tastemaker/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {

TASTEMAKER_SIMD_DISPATCH(ProbeKernels, probe_kernels)

namespace {
constexpr std::int64_t kProbeCalibrationIterations = 1 << 16;
}  // namespace

double fma_peak_gflops(double seconds, int num_threads) {
    if (!(seconds > 0.0 && seconds <= 60.0))
        throw std::invalid_argument("seconds: expected a number in (0, 60]");
    const ProbeKernels& K = probe_kernels();
    const int nt = resolve_threads(num_threads);
    using clock = std::chrono::steady_clock;
    // Calibrate on one thread: iterations for about `seconds`.
    double flops = 0.0;
    auto t0 = clock::now();
    volatile float sink = K.fma_chains(kProbeCalibrationIterations, 1.0f, &flops);
    const double cal = std::chrono::duration<double>(clock::now() - t0).count();
    const auto iterations = static_cast<std::int64_t>(
        std::max(1.0, static_cast<double>(kProbeCalibrationIterations) * seconds / std::max(cal, 1e-9)));
    std::vector<double> rate(static_cast<std::size_t>(nt), 0.0);
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num();
#else
        const int t = 0;
#endif
        double done = 0.0;
        const auto start = clock::now();
        const float r = K.fma_chains(iterations, 1.0f + 0.01f * static_cast<float>(t), &done);
        const double el = std::chrono::duration<double>(clock::now() - start).count();
        rate[static_cast<std::size_t>(t)] = el > 0.0 ? done / el : 0.0;
        if (std::isnan(r)) rate[static_cast<std::size_t>(t)] = 0.0;  // keeps r alive
    }
    (void)sink;
    double total = 0.0;
    for (double r : rate) total += r;
    return total / 1e9;
}

}  // namespace tastemaker
