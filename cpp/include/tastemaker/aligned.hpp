#pragma once
/** 64-byte aligned float buffers for the kernels' own scratch and packed copies.
 *
 *  A vector access that straddles two cache lines costs two (on AVX-512 every unaligned
 *  64-byte load does), so arrays the kernels stream or gather rows from start on a line.
 *  Arrays from Python are aligned by tastemaker._memory.zeros.
 */
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

namespace tastemaker {

struct AlignedFree {
    void operator()(float* p) const noexcept { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFree>;

/** n floats (uninitialised) on a 64-byte boundary.  Throws std::bad_alloc. */
inline AlignedFloats aligned_floats(std::size_t n) {
    const std::size_t bytes = (std::max<std::size_t>(n, 1) * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    return AlignedFloats(static_cast<float*>(p));
}

}  // namespace tastemaker
