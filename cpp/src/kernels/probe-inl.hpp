// FMA throughput probe, written once over the ops layer and compiled per ISA by
// kernels/probe_<isa>.cpp (see als-inl.hpp for the pattern).
#include <cstdint>

#include "tastemaker/probe.hpp"

namespace tastemaker::kernels::TM_KERNEL_NS {
namespace probe {

// Independent chains: more than FMA latency (4 cycles) x FMA ports (2) so both ports stay
// busy, and few enough to stay in the 16 registers of AVX2.
constexpr int kChains = 12;

float fma_chains(std::int64_t iterations, float seed, double* flops) {
    Ops::V acc[kChains];
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = Ops::set1(seed + 0.001f * static_cast<float>(c));
    const Ops::V a = Ops::set1(0.9999999f), b = Ops::set1(1e-7f);
    for (std::int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = Ops::mul_add(acc[c], a, b);
    }
    Ops::V s = acc[0];
    for (int c = 1; c < kChains; ++c) s = Ops::add(s, acc[c]);
    *flops = 2.0 * static_cast<double>(iterations) * kChains * Ops::kLanes;
    return Ops::reduce_add(s);
}

}  // namespace probe
}  // namespace tastemaker::kernels::TM_KERNEL_NS
