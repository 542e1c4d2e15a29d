#pragma once
/** Thread-count policy shared by every OpenMP kernel.
 *
 *  A kernel takes `num_threads` (0 = use the global setting) and resolves it with
 *  resolve_threads(); the global setting defaults to omp_get_max_threads() (which
 *  honours OMP_NUM_THREADS).  Results never depend on the thread count: per-row work
 *  is independent and reductions are done in a fixed order.
 */
#include <atomic>
#include <exception>

namespace tastemaker {

/** Set the process-wide default. n <= 0 restores the OpenMP default. */
void set_num_threads(int n) noexcept;

/** The process-wide default (always >= 1). */
int get_num_threads() noexcept;

/** Upper bound on the threads any kernel starts (a larger request is clamped to it). */
constexpr int kMaxThreads = 1024;

/** 4x the CPUs available to the process (omp_get_num_procs), at most kMaxThreads. */
int max_threads() noexcept;

/** requested > 0 -> requested, else get_num_threads(); at most max_threads(). */
int resolve_threads(int requested) noexcept;

/** Whether the library was built with OpenMP. */
bool have_openmp() noexcept;

/** No exception may leave an OpenMP region (it would terminate the process): a region
 *  runs its work through ParallelError::run, which keeps the first exception, and the
 *  caller rethrows it after the region.  Once one thread failed, later work is skipped. */
class ParallelError {
public:
    /** fn() unless an earlier call failed; an exception from it is captured. */
    template <class Fn>
    void run(Fn&& fn) noexcept {
        if (failed_.load(std::memory_order_relaxed)) return;
        try {
            fn();
        } catch (...) {
            capture();
        }
    }
    /** Keep the exception being handled if it is the first (call inside a catch block). */
    void capture() noexcept;
    bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
    /** After the region: rethrow the first captured exception, if any. */
    void rethrow_if_failed() const {
        if (first_) std::rethrow_exception(first_);
    }

private:
    std::exception_ptr first_;
    std::atomic<bool> failed_{false};
};

}  // namespace tastemaker
