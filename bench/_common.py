"""Shared pieces of the benchmark scripts (bench/als.py, bench/topk.py, ...): environment, the
synthetic ML-20M-scale matrix, the real data sets, the machine description and the timing
loop of the single-request benchmarks (bench/latency.py, bench/realtime.py).

Import this before numpy: on a CPU with AVX-512 it sets OPENBLAS_CORETYPE=SkylakeX
(OpenBLAS otherwise picks its AVX2 kernels on Zen 5; the setting makes faiss and numpy
1.3-1.8x faster) so the peers run with their best settings.  Without AVX-512 that core
type dies with SIGILL, so there OpenBLAS keeps its own choice.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path


def _has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


if _has_avx512():
    os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

# There is no default FMA peak or memory bandwidth: machines differ (one or two FMA units,
# AVX-512 at full or half rate, memory channels, cache sizes), so every benchmark that
# reports a fraction of the peak or of the bandwidth measures it in the same run with the
# functions below.


def measure_peak_gflops(path: str | None = None, threads: int = 0, repeat: int = 5,
                        seconds: float = 0.2) -> float:
    """fp32 FMA peak of this machine, measured now: independent multiply-add chains in
    registers on every thread (tastemaker's probe, on SIMD path ``path`` or the active one),
    GFLOP/s of wall time summed over the threads, best of ``repeat`` runs (the machine is
    shared: the best run is the least disturbed)."""
    import tastemaker
    from tastemaker import _core

    before = tastemaker.simd_path()
    try:
        if path is not None:
            tastemaker.set_simd_path(path)
        return max(_core.fma_peak_gflops(seconds, threads) for _ in range(repeat))
    finally:
        tastemaker.set_simd_path(before)


def measure_peak_gflops_per_cpu_second(path: str | None = None, repeat: int = 5,
                                       seconds: float = 0.2) -> float:
    """The same probe on one thread, per CPU-second of that thread: what one core does
    while it runs, however much of the machine other processes take (on a shared box the
    wall-time peak is a fraction of it).  Compare kernels by their FLOPs per CPU-second
    (all threads) with this.  Best of ``repeat``."""
    import tastemaker
    from tastemaker import _core

    before = tastemaker.simd_path()
    best = 0.0
    try:
        if path is not None:
            tastemaker.set_simd_path(path)
        for _ in range(repeat):
            # one thread: the probe runs on this one, so its CPU time is thread_time's
            c0, t0 = time.thread_time(), time.perf_counter()
            rate = _core.fma_peak_gflops(seconds, 1)
            cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
            if cpu > 0:  # rate x wall = the work done (the calibration is ~0.1 ms of it)
                best = max(best, rate * wall / cpu)
        return best
    finally:
        tastemaker.set_simd_path(before)


def cache_bytes(level: int) -> int | None:
    """Size in bytes of one instance of this CPU's level-``level`` data or unified cache
    (Linux sysfs), or None when unknown."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        try:
            if (int((idx / "level").read_text()) != level
                    or (idx / "type").read_text().strip() not in ("Data", "Unified")):
                continue
            size = (idx / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        try:
            return int(size.rstrip("KMG")) * scale
        except ValueError:
            return None
    return None


def measure_bandwidth_gbs(array_bytes: int, threads: int = 0, seconds: float = 0.3,
                          repeat: int = 2) -> float:
    """Memory bandwidth measured now, GB/s of wall time on ``threads`` threads: STREAM's
    triad a = b + s c over three float arrays of ``array_bytes`` each (tastemaker's probe,
    ``_core.triad_gbs``; 3 x array_bytes per pass, STREAM's convention), best pass of
    ``repeat`` runs of about ``seconds`` each (the machine is shared: the best pass is the
    least disturbed)."""
    from tastemaker import _core

    return max(_core.triad_gbs(int(array_bytes), seconds, threads) for _ in range(repeat))


def measure_dram_gbs(threads: int = 0, seconds: float = 0.3, repeat: int = 2) -> dict:
    """DRAM bandwidth measured now: the triad over arrays of one last-level cache each
    (three arrays stream 3x the LLC per pass, so under LRU every line comes from DRAM), at
    least 64 MiB each, and at most a sixth of the memory available.  Returns
    {"gbs": GB/s, "array_bytes": the size used, "llc_bytes": the LLC size or None}."""
    from tastemaker._memory import available_bytes

    llc = cache_bytes(3) or cache_bytes(2)
    size = max(64 << 20, llc or 0)
    avail = available_bytes()
    if avail is not None:
        size = max(1 << 20, min(size, avail // 6))
    return {"gbs": measure_bandwidth_gbs(size, threads, seconds, repeat), "array_bytes": size,
            "llc_bytes": llc}


def synthetic(scale: float, seed: int = 0) -> sp.csr_matrix:
    """Long-tailed users x items matrix: log-normal user activity, Zipf item popularity."""
    rng = np.random.default_rng(seed)
    n_users, n_items = int(138_493 * scale), max(int(26_744 * scale), 100)
    target = 18_000_000 * scale * 1.27  # duplicates of popular items are merged below
    act = rng.lognormal(mean=0.0, sigma=1.1, size=n_users)
    counts = np.clip(np.round(act / act.sum() * target), 5, n_items // 2).astype(np.int64)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pop = rng.permutation(pop / pop.sum())
    rows = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    cols = rng.choice(n_items, size=rows.size, p=pop).astype(np.int32)
    vals = rng.integers(1, 6, size=rows.size).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = np.minimum(m.data, 5.0)
    m.sort_indices()
    return m


def load_real(name: str):
    """(users, items, values) of MovieLens 100K ("ml100k") or Last.fm 2K ("lastfm") from
    TASTEMAKER_DATA, or None when the variable is unset."""
    import pandas as pd

    root = os.environ.get("TASTEMAKER_DATA")
    if not root:
        return None
    if name == "ml100k":
        df = pd.read_csv(Path(root) / "ml-100k" / "u.data", sep="\t", names=["u", "i", "v", "t"])
        u, i, v = df["u"].to_numpy() - 1, df["i"].to_numpy() - 1, df["v"].to_numpy(np.float32)
    else:
        df = pd.read_csv(Path(root) / "lastfm-2k" / "user_artists.dat", sep="\t", header=None,
                         names=["u", "i", "v"])
        u, i = pd.factorize(df["u"])[0], pd.factorize(df["i"])[0]
        v = np.log1p(df["v"].to_numpy(np.float32))
    return u, i, v


def real_matrix(u, i, v) -> sp.csr_matrix:
    """All interactions as one CSR (float32, sorted indices)."""
    m = sp.csr_matrix((v, (u, i)), shape=(int(u.max()) + 1, int(i.max()) + 1), dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_latency(fn, args_list) -> tuple[float, float]:
    """(median wall seconds, median thread-CPU seconds) per call of ``fn(*args)`` over
    ``args_list``, one call after the other on this thread.

    Thread CPU time shows the work of a call independently of preemption on a busy
    machine (cache misses caused by neighbours still count)."""
    import time

    times = np.empty(len(args_list))
    cpu = np.empty(len(args_list))
    for j, a in enumerate(args_list):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        fn(*a)
        times[j] = time.perf_counter() - t0
        cpu[j] = time.thread_time() - c0
    return float(np.median(times)), float(np.median(cpu))


def simd_paths(ap, spec: str, default: list[str]) -> list[str]:
    """The SIMD paths of a ``--simd`` option: ``"all"`` (every path this CPU and build run,
    lowest first), a comma list (each checked: ``ap.error`` names one that is not
    available here), or ``default`` when ``spec`` is empty."""
    import tastemaker

    available = list(tastemaker._core.simd_available())
    if spec == "all":
        return available
    paths = [p for p in spec.split(",") if p] or list(default)
    for p in paths:
        if p not in available:
            ap.error(f"--simd: {p!r} is not available here ({', '.join(available)})")
    return paths


def machine_info(threads: int = 0) -> dict:
    """CPU, cores, SIMD path, threads.  No FMA peak or bandwidth: a benchmark that reports
    one measures it in its own run (measure_peak_gflops*, measure_dram_gbs)."""
    import tastemaker

    info = tastemaker.show_config(file=open(os.devnull, "w"))
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "simd": info["simd"], "threads": threads or info["num_threads"]}
