#pragma once
/** Runtime instruction-set dispatch.
 *
 *  Every kernel family ships one implementation per instruction set, each compiled in
 *  its own translation unit (cpp/src/kernels/<feature>_<isa>.cpp) with only that
 *  set's flags.  At run time the best set the CPU *and* the OS support is active;
 *  set_active() may pick a lower one (tests compare every path against scalar, and
 *  the Python layer honours the TASTEMAKER_SIMD environment variable).
 *
 *  Rule for ISA translation units: use plain loops, intrinsics and types local to an
 *  anonymous namespace only.  Instantiating a std:: template (vector, sort, ...) there
 *  can emit a COMDAT copy compiled with AVX-512 that the linker may then hand to the
 *  scalar path, which would crash older CPUs.
 *
 *  Thread-safety: active() is an atomic load; set_active() is atomic but should not be
 *  called while kernels run on other threads (they may see either path).
 */
#include <string>
#include <vector>

namespace tastemaker::simd {

enum class Isa : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

/** "scalar", "avx2" or "avx512". */
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

}  // namespace tastemaker::simd
