#include "tastemaker/simd.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <stdexcept>

namespace tastemaker::simd {
namespace {

bool cpu_has(Isa isa) noexcept {
#if defined(TASTEMAKER_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    // __builtin_cpu_supports consults CPUID and (in GCC >= 11 / clang) XCR0, so a CPU
    // whose OS does not save the AVX-512 state reports no AVX-512.
    __builtin_cpu_init();
    switch (isa) {
        case Isa::Scalar:
            return true;
        case Isa::AVX2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::AVX512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return false;
#else
    return isa == Isa::Scalar;
#endif
}

Isa compute_best() noexcept {
    if (cpu_has(Isa::AVX512)) return Isa::AVX512;
    if (cpu_has(Isa::AVX2)) return Isa::AVX2;
    return Isa::Scalar;
}

std::atomic<int>& active_slot() noexcept {
    static std::atomic<int> slot{static_cast<int>(compute_best())};
    return slot;
}

}  // namespace

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::AVX2: return "avx2";
        case Isa::AVX512: return "avx512";
    }
    return "unknown";
}

Isa parse_isa(const std::string& name) {
    std::string s(name);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "scalar" || s == "generic" || s == "portable") return Isa::Scalar;
    if (s == "avx2") return Isa::AVX2;
    if (s == "avx512") return Isa::AVX512;
    throw std::invalid_argument("unknown SIMD path '" + name +
                                "': expected one of 'scalar', 'avx2', 'avx512'");
}

bool supported(Isa isa) noexcept { return cpu_has(isa); }

Isa best() noexcept {
    static const Isa b = compute_best();
    return b;
}

std::vector<Isa> available() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::Scalar, Isa::AVX2, Isa::AVX512})
        if (supported(isa)) out.push_back(isa);
    return out;
}

Isa active() noexcept { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active(Isa isa) {
    if (!supported(isa))
        throw std::invalid_argument(std::string("SIMD path '") + isa_name(isa) +
                                    "' is not supported on this CPU/build; best available is '" +
                                    isa_name(best()) + "'");
    active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace tastemaker::simd
