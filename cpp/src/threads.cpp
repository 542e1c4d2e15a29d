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
    // segfault; and under a memory limit, thread creation failing makes libgomp exit the
    // process.  More than 4 threads per CPU never helps, so that is the cap.
    const int cap = max_threads();
    return n < cap ? n : cap;
}

int max_threads() noexcept {
#ifdef _OPENMP
    static const int cap = [] {
        const int procs = omp_get_num_procs();
        const int c = 4 * (procs > 1 ? procs : 1);
        return c < kMaxThreads ? c : kMaxThreads;
    }();
    return cap;
#else
    return 4;  // no threads are started without OpenMP; the cap only has to be valid
#endif
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
