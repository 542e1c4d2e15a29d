#include "tastemaker/simd.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <fstream>
#include <stdexcept>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

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
        case Isa::AVX512VNNI:
            // A feature level above AVX512, as Highway's AVX3_DL is above AVX3; AVX3_DL asks
            // for Ice Lake's whole set (VNNI, VBMI/VBMI2, BITALG, VPCLMULQDQ, ...), this level
            // only for the one extension its kernels use (vpdpbusd).
            return cpu_has(Isa::AVX512) && __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return isa == Isa::Scalar;
#endif
}

Isa compute_best() noexcept {
    for (int i = kIsaCount - 1; i > 0; --i)
        if (cpu_has(static_cast<Isa>(i))) return static_cast<Isa>(i);
    return Isa::Scalar;
}

std::atomic<int>& active_slot() noexcept {
    static std::atomic<int> slot{static_cast<int>(compute_best())};
    return slot;
}

// The per-core L2 from sysfs: the first cache/indexN of cpu0 at level 2 that holds data,
// its "size" given as e.g. "2048K"; 0 when there is none.
long long sysfs_l2_bytes() {
    for (int i = 0; i < 16; ++i) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
        if (!level) break;
        int lv = 0;
        std::string ty, sz;
        if (!(level >> lv) || !(type >> ty) || !(size >> sz) || lv != 2 || ty == "Instruction") continue;
        std::size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(sz, &used);
        } catch (...) {
            return 0;
        }
        const char unit = used < sz.size() ? static_cast<char>(std::toupper(static_cast<unsigned char>(sz[used]))) : 'B';
        return unit == 'K' ? n << 10 : unit == 'M' ? n << 20 : unit == 'G' ? n << 30 : n;
    }
    return 0;
}

long long detect_l2_bytes() noexcept {
    long long bytes = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (bytes <= 0) {
        try {
            bytes = sysfs_l2_bytes();
        } catch (...) {
            bytes = 0;
        }
    }
    if (bytes <= 0) return kFallbackL2Bytes;
    return std::clamp(bytes, kMinL2Bytes, kMaxL2Bytes);
}

}  // namespace

long long l2_cache_bytes() noexcept {
    static const long long bytes = detect_l2_bytes();
    return bytes;
}

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::AVX2: return "avx2";
        case Isa::AVX512: return "avx512";
        case Isa::AVX512VNNI: return "avx512vnni";
    }
    return "unknown";
}

Isa parse_isa(const std::string& name) {
    std::string s(name);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "scalar" || s == "generic" || s == "portable") return Isa::Scalar;
    for (int i = 1; i < kIsaCount; ++i)
        if (s == isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
    std::string valid;
    for (int i = 0; i < kIsaCount; ++i) valid += std::string(i ? ", '" : "'") + isa_name(static_cast<Isa>(i)) + "'";
    throw std::invalid_argument("unknown SIMD path '" + name + "': expected one of " + valid);
}

bool supported(Isa isa) noexcept { return cpu_has(isa); }

Isa best() noexcept {
    static const Isa b = compute_best();
    return b;
}

std::vector<Isa> available() {
    std::vector<Isa> out;
    for (int i = 0; i < kIsaCount; ++i)
        if (supported(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
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
