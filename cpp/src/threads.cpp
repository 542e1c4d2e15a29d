#include "tastemaker/threads.hpp"

#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {
namespace {
std::atomic<int> g_threads{0};

int omp_default() noexcept {
#ifdef _OPENMP
    static const int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}
}  // namespace

void set_num_threads(int n) noexcept { g_threads.store(n > 0 ? n : 0); }

int get_num_threads() noexcept {
    int n = g_threads.load();
    return n > 0 ? n : omp_default();
}

int resolve_threads(int requested) noexcept {
    const int n = requested > 0 ? requested : get_num_threads();
    // libgomp sizes per-team data on the caller's stack: ~10^5 threads overflow it and
    // segfault.  No machine this runs on wants more than kMaxThreads anyway.
    return n < kMaxThreads ? n : kMaxThreads;
}

void ParallelError::capture() noexcept {
#pragma omp critical(tastemaker_parallel_error)
    {
        if (!first_) first_ = std::current_exception();
        failed_.store(true, std::memory_order_relaxed);
    }
}

bool have_openmp() noexcept {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace tastemaker
