// Machine probes: the FMA peak and the memory bandwidth the benchmarks report kernel speed
// against.
#include "tastemaker/probe.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/aligned.hpp"
#include "tastemaker/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {

// No int8 products here: the avx512vnni path runs the avx512 table (simd.hpp).
TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512(ProbeKernels, probe_kernels)

namespace {
constexpr std::int64_t kProbeCalibrationIterations = 1 << 16;
constexpr std::int64_t kTriadMinBytes = std::int64_t(1) << 12;
constexpr std::int64_t kTriadMaxBytes = std::int64_t(1) << 34;
constexpr int kTriadMinPasses = 2;
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

double triad_gbs(std::int64_t array_bytes, double seconds, int num_threads) {
    if (!(seconds > 0.0 && seconds <= 60.0))
        throw std::invalid_argument("seconds: expected a number in (0, 60]");
    if (array_bytes < kTriadMinBytes || array_bytes > kTriadMaxBytes)
        throw std::invalid_argument("array_bytes: expected a size in [2^12, 2^34] bytes, got " +
                                    std::to_string(array_bytes));
    const int nt = resolve_threads(num_threads);
    const auto n = static_cast<std::int64_t>(array_bytes / static_cast<std::int64_t>(sizeof(float)));
    const AlignedFloats a = aligned_floats(static_cast<std::size_t>(n));
    const AlignedFloats b = aligned_floats(static_cast<std::size_t>(n));
    const AlignedFloats c = aligned_floats(static_cast<std::size_t>(n));
    float* pa = a.get();
    const float* pb = b.get();
    const float* pc = c.get();
    // First touch by the thread that streams the block later (same static schedule).
#pragma omp parallel for schedule(static) num_threads(nt)
    for (std::int64_t i = 0; i < n; ++i) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    using clock = std::chrono::steady_clock;
    const float s = 3.0f;
    double best = 0.0;
    const auto start = clock::now();
    for (int pass = 0; pass < kTriadMinPasses || std::chrono::duration<double>(clock::now() - start).count() < seconds;
         ++pass) {
        const auto t0 = clock::now();
#pragma omp parallel for schedule(static) num_threads(nt)
        for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
        const double el = std::chrono::duration<double>(clock::now() - t0).count();
        if (el > 0.0) best = std::max(best, 3.0 * static_cast<double>(n) * sizeof(float) / el);
    }
    if (!(pa[n - 1] == 7.0f)) return 0.0;  // reads the result: the passes cannot be dropped
    return best / 1e9;
}

}  // namespace tastemaker
