#pragma once
/** Thread-count policy shared by every OpenMP kernel.
 *
 *  A kernel takes `num_threads` (0 = use the global setting) and resolves it with
 *  resolve_threads(); the global setting defaults to omp_get_max_threads() (which
 *  honours OMP_NUM_THREADS).  Results never depend on the thread count: per-row work
 *  is independent and reductions are done in a fixed order.
 */
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

}  // namespace tastemaker
