#pragma once
/** Runtime instruction-set dispatch: the one mechanism every kernel family uses.
 *
 *  A kernel family (ALS, top-k) is a table of function pointers, filled once per
 *  instruction set: each table is compiled in its own translation unit
 *  (cpp/src/kernels/<feature>_<isa>.cpp) with only that set's flags, from one kernel
 *  source written over the ops layer (cpp/src/kernels/ops_*.hpp, <feature>-inl.hpp).
 *  At run time the best set the CPU *and* the OS support is active; set_active() may
 *  pick a lower one (tests run every path, and the Python layer honours the
 *  TASTEMAKER_SIMD environment variable).  A family's accessor is one line:
 *
 *      TASTEMAKER_SIMD_DISPATCH(AlsKernels, als_kernels)
 *
 *  which declares the per-ISA tables als_kernels_scalar / _avx2 / _avx512 / _avx512vnni and
 *  defines als_kernels(Isa) and als_kernels() over a Dispatch<AlsKernels> (below).  No
 *  entry of a dispatched table is ever null: an entry an ISA's table leaves null is taken
 *  from the next lower ISA's (resolved) table, level by level, as faiss's SIMD fallback
 *  does; the scalar table must be complete.  Dispatch::borrowed() reports such fallbacks
 *  (the C++ tests require none for the families that are written once over the ops).
 *
 *  A level that only adds instructions some families never use (avx512vnni: the int8 dot
 *  products of top-k's pre-filters) is a feature level above its base, as Highway's AVX3_DL
 *  is above AVX3.  A family with nothing to gain there says so in one line,
 *
 *      TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512(AlsKernels, als_kernels)
 *
 *  and the avx512vnni path then runs the avx512 table whole: an explicit fallback that
 *  Dispatch::same_as_lower() reports (and the tests check), never a null or a borrowed entry.
 *
 *  Rule for ISA translation units: use plain loops, intrinsics, the ops layer and the
 *  ISA's own namespace only.  Instantiating a std:: template (vector, sort, ...) there
 *  can emit a COMDAT copy compiled with AVX-512 that the linker may then hand to the
 *  scalar path, which would crash older CPUs.
 *
 *  Thread-safety: active() is an atomic load; set_active() is atomic but should not be
 *  called while kernels run on other threads (they may see either path).  The dispatch
 *  tables are built once (thread-safe static initialisation) and never change.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace tastemaker::simd {

/** AVX512VNNI: AVX512 plus AVX512-VNNI (vpdpbusd: Ice Lake and later Xeons, Zen 4/5). */
enum class Isa : int { Scalar = 0, AVX2 = 1, AVX512 = 2, AVX512VNNI = 3 };

/** Number of Isa values (paths are numbered 0 .. kIsaCount - 1, lowest first; each level's
 *  CPU requirement includes every lower level's). */
constexpr int kIsaCount = 4;

/** "scalar", "avx2", "avx512" or "avx512vnni". */
const char* isa_name(Isa isa) noexcept;

/** Parse a name as given by isa_name (case-insensitive). Throws std::invalid_argument. */
Isa parse_isa(const std::string& name);

/** True when this build contains the path and the CPU + OS can execute it. */
bool supported(Isa isa) noexcept;

/** The best supported path. */
Isa best() noexcept;

/** All supported paths, lowest first. */
std::vector<Isa> available();

/** The path kernels currently use (initially best()). */
Isa active() noexcept;

/** Select a path. Throws std::invalid_argument if it is not supported here. */
void set_active(Isa isa);

/** Bytes of level-2 cache per core, detected once: sysconf(_SC_LEVEL2_CACHE_SIZE) (glibc
 *  reads CPUID), else /sys/devices/system/cpu/cpu0/cache (Linux), clamped to
 *  [kMinL2Bytes, kMaxL2Bytes]; kFallbackL2Bytes when neither says.  Kernels size their
 *  cache blocking from it (ALS: als_cache); results never depend on it. */
constexpr long long kMinL2Bytes = 128 << 10;
constexpr long long kMaxL2Bytes = 8 << 20;
constexpr long long kFallbackL2Bytes = 512 << 10;  // Zen 2/3, where the ALS budgets were first tuned
long long l2_cache_bytes() noexcept;

/** Calls fn(entry) for every function-pointer entry of a kernel table.  Table lists its
 *  entries as  `static constexpr auto entries() { return std::make_tuple(&Table::a, ...); }`
 *  (data members that are not function pointers, such as block sizes, are not listed). */
template <class Table, class Fn>
void for_each_entry(Table& table, Fn&& fn) {
    std::apply([&](auto... member) { (fn(table.*member), ...); }, Table::entries());
}

/** The resolved tables of one kernel family, one per Isa (see the file comment). */
template <class Table>
class Dispatch {
public:
    /** own[i]: the table compiled for Isa i; the same table as own[i - 1] where the family
     *  runs the lower path's table on this level by design; null where this build has no
     *  table for the path (non-x86). */
    explicit Dispatch(const Table* const (&own)[kIsaCount]) {
        for (int i = 0; i < kIsaCount; ++i) {
            borrowed_[i] = 0;
            same_as_lower_[i] = i > 0 && (own[i] == nullptr || own[i] == own[i - 1]);
            if (same_as_lower_[i] || own[i] == nullptr) {  // the lower path whole
                resolved_[i] = resolved_[i > 0 ? i - 1 : 0];
                continue;
            }
            resolved_[i] = *own[i];
            if (i == 0) continue;
            auto fill = [&](auto member) {
                if (resolved_[i].*member == nullptr) {
                    resolved_[i].*member = resolved_[i - 1].*member;
                    ++borrowed_[i];
                }
            };
            std::apply([&](auto... member) { (fill(member), ...); }, Table::entries());
        }
        int missing = 0;
        for_each_entry(resolved_[0], [&](const auto& entry) { missing += entry == nullptr; });
        if (missing != 0) {  // a broken build, not a user error
            std::fprintf(stderr, "tastemaker: the scalar kernel table has %d null entries\n", missing);
            std::abort();
        }
    }

    /** The table for a path (for a path this build lacks: the next lower one's). */
    const Table& get(Isa isa) const noexcept { return resolved_[static_cast<int>(isa)]; }
    /** The table for the active path. */
    const Table& get() const noexcept { return get(active()); }
    /** How many entries of the path's own table were null and taken from a lower path. */
    int borrowed(Isa isa) const noexcept { return borrowed_[static_cast<int>(isa)]; }
    /** True when the path runs the next lower path's resolved table whole: declared so by
     *  the family (TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512), or a path this build lacks. */
    bool same_as_lower(Isa isa) const noexcept { return same_as_lower_[static_cast<int>(isa)]; }

private:
    Table resolved_[kIsaCount];
    int borrowed_[kIsaCount];
    bool same_as_lower_[kIsaCount];
};

}  // namespace tastemaker::simd

#ifdef TASTEMAKER_HAVE_X86_KERNELS
#define TASTEMAKER_SIMD_X86_TABLE_(name) &name
#define TASTEMAKER_SIMD_X86_EXTERN_(Table, name) extern const Table name;
#else
#define TASTEMAKER_SIMD_X86_TABLE_(name) nullptr
#define TASTEMAKER_SIMD_X86_EXTERN_(Table, name)
#endif

/** In namespace tastemaker: declares the tables NAME_scalar/_avx2/_avx512/_avx512vnni
 *  (defined in kernels/<feature>_<isa>.cpp) and defines `const Table& NAME(simd::Isa)`,
 *  `const Table& NAME()` (active path) and `const simd::Dispatch<Table>& NAME_dispatch()`. */
#define TASTEMAKER_SIMD_DISPATCH(Table, NAME)                                                    \
    TASTEMAKER_SIMD_X86_EXTERN_(Table, NAME##_avx512vnni)                                         \
    TASTEMAKER_SIMD_DISPATCH_(Table, NAME, NAME##_avx512vnni)

/** As TASTEMAKER_SIMD_DISPATCH for a family that gains nothing from AVX512-VNNI (no int8
 *  products): there is no NAME_avx512vnni, and that path runs NAME_avx512 whole
 *  (Dispatch::same_as_lower). */
#define TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512(Table, NAME) TASTEMAKER_SIMD_DISPATCH_(Table, NAME, NAME##_avx512)

#define TASTEMAKER_SIMD_DISPATCH_(Table, NAME, VNNI_TABLE)                                       \
    extern const Table NAME##_scalar;                                                            \
    TASTEMAKER_SIMD_X86_EXTERN_(Table, NAME##_avx2)                                               \
    TASTEMAKER_SIMD_X86_EXTERN_(Table, NAME##_avx512)                                             \
    const simd::Dispatch<Table>& NAME##_dispatch() {                                              \
        static const Table* const own[simd::kIsaCount] = {                                        \
            &NAME##_scalar, TASTEMAKER_SIMD_X86_TABLE_(NAME##_avx2), TASTEMAKER_SIMD_X86_TABLE_(NAME##_avx512), \
            TASTEMAKER_SIMD_X86_TABLE_(VNNI_TABLE)};                                              \
        static const simd::Dispatch<Table> dispatch(own);                                         \
        return dispatch;                                                                          \
    }                                                                                             \
    const Table& NAME(simd::Isa isa) { return NAME##_dispatch().get(isa); }                      \
    const Table& NAME() { return NAME##_dispatch().get(); }
