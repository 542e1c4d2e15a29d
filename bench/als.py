#!/usr/bin/env python
"""Implicit ALS: tastemaker vs implicit 0.7 side by side, in one process, on the same data.

Data: a synthetic long-tailed matrix at MovieLens-20M scale (138,493 users x 26,744 items,
about 18M non-zeros; ``--scale`` shrinks it) and, when TASTEMAKER_DATA is set, MovieLens
100K and Last.fm 2K.  Reports seconds per iteration (median over the timed iterations),
the ratio, achieved GFLOP/s from the FLOP model below, peak memory during fit, and
precision@10 on a random 80/20 split (train items excluded).

Peers get their best settings: OPENBLAS_CORETYPE=SkylakeX (set before numpy is
imported) and BLAS limited to one thread inside implicit (threadpoolctl).

FLOP model of one CG iteration (both half-steps; f factors, s = cg_steps):
  per side with R rows, N non-zeros, O other rows:
    Gram Y^T Y (upper triangle)       O * f * (f + 1)
    per row, s + 1 times: G v + l v   2 f^2 + f,   vector updates ~ 10 f
    per non-zero, s + 1 times: fused dot + axpy   4 f
Byte model of one iteration (both half-steps, float32 factors, int32 indices):
  gathered: every pass reads each non-zero's factor row of the other side (4 f bytes) and
    its index and value (8 bytes): (s + 1) * 2 * nnz * (4 f + 8), served by the caches;
  compulsory: what must come from memory at least once: both CSR copies (8 bytes per
    non-zero + 8 per row), the other side's factors and the solved factors read and
    written once per half-step.
Both are reported against the STREAM-triad bandwidth measured in the same run: gathered
bytes per CPU-second against one core's triad in its L2, compulsory bytes per wall second
against the triad of all threads beyond the last-level cache; and the FLOPs per CPU-second
against one core's FMA peak per CPU-second.
Peak memory during fit is measured in a fresh process (--memory-child): the high-water
mark of resident memory (VmHWM, which counts C++ and NumPy allocations alike), reset after
the matrix is loaded, minus the resident memory before loading.
--simd scalar,avx2,avx512,avx512vnni times every listed SIMD path side by side with implicit in the
same run (alternating, best of --repeat), each against the FMA peak measured on that path.

Usage: python bench/als.py [--scale 0.1] [--iterations 3] [--skip-implicit] [--simd all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Both libraries run their loops on libgomp.  Its default waiting policy spins an idle
# thread for up to ~300k pause instructions after every parallel region and at every
# barrier; on this shared, oversubscribed box the sibling it waits for is often
# descheduled, and the spinning shows up as CPU time of whichever library is running
# (measured: tastemaker 0.234 -> 0.210 and implicit 1.055 -> 0.986 CPU s per iteration,
# scale 0.25, avx512).  Passive waiting counts the work instead; both libraries get it
# (set before libgomp is loaded; an explicit OMP_WAIT_POLICY in the environment wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import (  # noqa: E402  (sets OPENBLAS_CORETYPE)
    ROOT,
    cache_bytes,
    load_real,
    measure_bandwidth_gbs,
    measure_dram_gbs,
    measure_peak_gflops,
    measure_peak_gflops_per_cpu_second,
    simd_paths,
    synthetic,
)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker  # noqa: E402


# ---------------------------------------------------------------- data
def split(u, i, v, seed=0):
    rng = np.random.default_rng(seed)
    shape = (int(u.max()) + 1, int(i.max()) + 1)
    test = rng.random(len(u)) < 0.2
    train = sp.csr_matrix((v[~test], (u[~test], i[~test])), shape=shape, dtype=np.float32)
    train.sum_duplicates()
    train.sort_indices()
    held = sp.csr_matrix((np.ones(int(test.sum()), np.float32), (u[test], i[test])), shape=shape)
    return train, held


def precision_at_10(U, V, train, test) -> float:
    scores = U.astype(np.float64) @ V.astype(np.float64).T
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    hits, denom = 0, 0
    for u in range(U.shape[0]):
        liked = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(liked):
            hits += int(np.isin(top[u], liked).sum())
            denom += min(10, len(liked))
    return hits / max(denom, 1)


# ---------------------------------------------------------------- measurement
def flops_per_iteration(m: sp.csr_matrix, f: int, steps: int) -> float:
    total = 0.0
    for rows, other in ((m.shape[0], m.shape[1]), (m.shape[1], m.shape[0])):
        total += other * f * (f + 1)
        total += (steps + 1) * rows * (2 * f * f + 11 * f)
        total += (steps + 1) * m.nnz * 4 * f
    return total


def bytes_per_iteration(m: sp.csr_matrix, f: int, steps: int) -> dict:
    rows, cols = m.shape
    gathered = (steps + 1) * 2 * m.nnz * (4 * f + 8)
    csr = 2 * 8 * m.nnz + 8 * (rows + cols + 2)
    factors = 3 * 4 * f * (rows + cols)  # per half-step: other side read, own read + written
    return {"gathered": float(gathered), "compulsory": float(csr + factors)}


def time_fit(fit, iterations: int) -> tuple[float, list[float], float]:
    """(median wall s per iteration, every iteration's wall s, median CPU s per iteration).

    CPU seconds are the process's (every thread's) time on a core: on a loaded machine
    they count what the fit itself used, not the time other processes held the cores."""
    stamps, cpu = [], []

    def cb(it, elapsed, loss):
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())

    start, cpu0 = time.perf_counter(), time.process_time()
    fit(cb)
    per = np.diff([start] + stamps)
    per_cpu = np.diff([cpu0] + cpu)
    # the first iteration includes setup (transposition, allocation): report the median
    def med(x):
        return float(np.median(x[1:] if len(x) > 1 else x))

    return med(per), per.tolist(), med(per_cpu)


def status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current resident size (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(path: str, factors: int, iterations: int) -> None:
    """In a fresh process: load the matrix, fit, report the peak resident memory above the
    pre-load baseline.  The peak is VmHWM (the kernel's high-water mark: every allocation,
    C++ or NumPy, counts; tracemalloc would see only Python's), reset after loading so that
    the loader's temporaries do not count."""
    base = status_bytes("VmRSS")
    with np.load(path) as z:
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    matrix_bytes = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    model = tastemaker.ALS(factors=factors, iterations=iterations, random_state=0)
    reset = reset_peak()
    loaded = status_bytes("VmRSS")
    model.fit(m, show_progress=False)
    peak = status_bytes("VmHWM")
    f_bytes = model.user_factors.nbytes + model.item_factors.nbytes
    transpose = m.data.nbytes + m.indices.nbytes + 8 * (m.shape[1] + 1)
    print(json.dumps({"peak_bytes": peak - base, "matrix_bytes": matrix_bytes,
                      "loaded_bytes": loaded - base, "hwm_reset": reset,
                      "transpose_bytes": transpose, "factor_bytes": f_bytes}))


def measure_memory(m, factors, iterations) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.npz")
        m64 = m.copy()
        m64.indptr = m64.indptr.astype(np.int64)
        np.savez(path, data=m64.data, indices=m64.indices, indptr=m64.indptr,
                 shape=np.array(m.shape))
        out = subprocess.run([sys.executable, __file__, "--memory-child", path,
                              "--factors", str(factors), "--iterations", str(iterations)],
                             capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    budget = r["matrix_bytes"] + r["transpose_bytes"] + r["factor_bytes"]
    r["budget_bytes"] = budget
    r["peak_over_budget"] = r["peak_bytes"] / budget
    return r


def run_dataset(name, m, args, paths, peaks, machine, test=None) -> dict:
    f, steps = args.factors, 3
    iterations = args.iterations if test is None else args.real_iterations
    params = dict(factors=f, regularization=0.01, iterations=iterations)
    res = {"dataset": name, "shape": list(m.shape), "nnz": int(m.nnz), "factors": f,
           "cg_steps": steps, "iterations": iterations,
           "gflop_per_iteration": flops_per_iteration(m, f, steps) / 1e9,
           "gb_per_iteration": {k: v / 1e9 for k, v in bytes_per_iteration(m, f, steps).items()}}
    # The machine is shared: alternate the libraries (and paths) --repeat times and keep
    # each one's best median, so a burst of outside load does not land on one side only.
    tm_runs = {p: [] for p in paths}
    im_runs = []
    models = {}
    before = tastemaker.simd_path()
    for _ in range(args.repeat):
        for path in paths:
            tastemaker.set_simd_path(path)
            try:
                model = tastemaker.ALS(random_state=0, num_threads=args.threads, **params)
                tm_runs[path].append(time_fit(
                    lambda cb: model.fit(m, show_progress=False, callback=cb), iterations))
                models[path] = model
            finally:
                tastemaker.set_simd_path(before)
        if not args.skip_implicit:
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1, "blas"):
                theirs = AlternatingLeastSquares(random_state=0, num_threads=args.threads,
                                                 **params)
                im_runs.append(time_fit(
                    lambda cb: theirs.fit(m, show_progress=False, callback=cb), iterations))
    if im_runs:
        res["implicit_s_per_iter"] = min(t for t, _, _ in im_runs)
        res["implicit_cpu_s_per_iter"] = min(c for _, _, c in im_runs)
        res["implicit_iters"] = [per for _, per, _ in im_runs]
        res["implicit_gflops"] = res["gflop_per_iteration"] / res["implicit_s_per_iter"]
        # the whole fit call (set-up counted in the first iteration): a user waits for this
        res["implicit_fit_s"] = min(float(sum(per)) for _, per, _ in im_runs)
        if test is not None:
            res["implicit_precision@10"] = precision_at_10(theirs.user_factors,
                                                           theirs.item_factors, m, test)
    res["paths"] = {}
    for path in paths:
        t = min(s for s, _, _ in tm_runs[path])
        r = {"s_per_iter": t, "cpu_s_per_iter": min(c for _, _, c in tm_runs[path]),
             "iters": [per for _, per, _ in tm_runs[path]],
             "fit_s": min(float(sum(per)) for _, per, _ in tm_runs[path]),
             "gflops": res["gflop_per_iteration"] / t, "peak_gflops": peaks[path]}
        r["fraction_of_peak"] = r["gflops"] / peaks[path]
        # per CPU-second of the fit (all threads) against one core's peak per CPU-second
        r["gflop_per_cpu_s"] = res["gflop_per_iteration"] / r["cpu_s_per_iter"]
        r["fraction_of_cpu_peak"] = r["gflop_per_cpu_s"] / machine["peak_gflops_per_cpu_s"][path]
        # gathered rows: per CPU-second against one core's L2 triad; compulsory bytes: per
        # wall second against the DRAM triad of all threads
        r["gathered_gb_per_cpu_s"] = res["gb_per_iteration"]["gathered"] / r["cpu_s_per_iter"]
        r["gathered_fraction_of_l2_triad"] = r["gathered_gb_per_cpu_s"] / machine["l2_triad_gbs_per_core"]
        r["compulsory_gbs"] = res["gb_per_iteration"]["compulsory"] / t
        r["compulsory_fraction_of_dram_triad"] = r["compulsory_gbs"] / machine["dram_triad_gbs"]
        if im_runs:
            r["speedup"] = res["implicit_s_per_iter"] / t
            r["cpu_speedup"] = res["implicit_cpu_s_per_iter"] / r["cpu_s_per_iter"]
            r["fit_speedup"] = res["implicit_fit_s"] / r["fit_s"]
        if test is not None:
            r["precision@10"] = precision_at_10(models[path].user_factors,
                                                models[path].item_factors, m, test)
        res["paths"][path] = r
    # headline: the path show_config picks (the active one)
    head = before if before in paths else paths[-1]
    res["headline_path"] = head
    res["tastemaker_s_per_iter"] = res["paths"][head]["s_per_iter"]
    res["tastemaker_gflops"] = res["paths"][head]["gflops"]
    if im_runs:
        res["speedup"] = res["paths"][head]["speedup"]
        res["cpu_speedup"] = res["paths"][head]["cpu_speedup"]
        res["fit_speedup"] = res["paths"][head]["fit_speedup"]
    if test is not None:
        res["tastemaker_precision@10"] = res["paths"][head]["precision@10"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="synthetic size (1.0 = ML-20M)")
    ap.add_argument("--iterations", type=int, default=4, help="timed iterations (synthetic)")
    ap.add_argument("--real-iterations", type=int, default=15,
                    help="iterations on the real sets (precision@10 is measured there)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs per library")
    ap.add_argument("--skip-implicit", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--datasets", default="synthetic,ml100k,lastfm")
    ap.add_argument("--simd", default="",
                    help="comma-separated SIMD paths to time side by side, or 'all' "
                         "(default: only the active path)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "als.json"))
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.factors, args.iterations)
        return

    paths = simd_paths(ap, args.simd, [tastemaker.simd_path()])
    threads = args.threads or tastemaker.get_num_threads()
    load_before = os.getloadavg()
    peaks = {p: measure_peak_gflops(p, threads) for p in paths}
    listed = ", ".join(f"{p} {v:.0f}" for p, v in peaks.items())
    print(f"measured FMA peak (GFLOP/s, {threads} threads): {listed}", flush=True)
    machine = {"peak_gflops_per_cpu_s": {p: measure_peak_gflops_per_cpu_second(p) for p in paths}}
    dram = measure_dram_gbs(threads)
    machine["dram_triad_gbs"] = dram["gbs"]
    machine["dram_triad_array_bytes"] = dram["array_bytes"]
    # one core's L2: three arrays in 3/4 of it, on one thread (short passes on several
    # threads of a loaded machine measure the wake-up of a descheduled thread instead)
    machine["l2_triad_array_bytes"] = (cache_bytes(2) or (1 << 20)) // 4
    machine["l2_triad_gbs_per_core"] = measure_bandwidth_gbs(machine["l2_triad_array_bytes"], 1)
    print(f"measured triad bandwidth (GB/s): DRAM {dram['gbs']:.1f} on {threads} threads "
          f"(3 x {dram['array_bytes'] >> 20} MiB), L2 {machine['l2_triad_gbs_per_core']:.1f} "
          f"on one core", flush=True)

    results = []
    for name in args.datasets.split(","):
        if name == "synthetic":
            t0 = time.perf_counter()
            m = synthetic(args.scale)
            print(f"synthetic {m.shape} nnz={m.nnz:,} built in {time.perf_counter() - t0:.1f}s",
                  flush=True)
            res = run_dataset("synthetic", m, args, paths, peaks, machine)
            if not args.skip_memory:
                res["memory"] = measure_memory(m, args.factors, 2)
        else:
            raw = load_real(name)
            if raw is None:
                print(f"{name}: TASTEMAKER_DATA not set, skipped")
                continue
            train, test = split(*raw)
            res = run_dataset(name, train, args, paths, peaks, machine, test)
        results.append(res)
        print(json.dumps({k: v for k, v in res.items() if not k.endswith("_iters")}), flush=True)

    with open(os.devnull, "w") as devnull:
        info = tastemaker.show_config(file=devnull)
    out = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                       "simd": info["simd"], "threads": threads,
                       "peak_gflops": peaks, **machine,
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                       "load_average_before": load_before,
                       "load_average_after": os.getloadavg()},
           "command": " ".join(sys.argv),
           "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"\n{'dataset':<10} {'path':<7} {'nnz':>11} {'tm s/it':>8} {'impl s/it':>9} {'ratio':>6} "
          f"{'GFLOP/s':>8} {'%peak':>6} {'p@10 tm':>8} {'p@10 impl':>9} {'CPU s tm/impl':>14} "
          f"{'CPU ratio':>9}")
    for r in results:
        for path, pr in r["paths"].items():
            print(f"{r['dataset']:<10} {path:<7} {r['nnz']:>11,} {pr['s_per_iter']:>8.3f} "
                  f"{r.get('implicit_s_per_iter', float('nan')):>9.3f} "
                  f"{pr.get('speedup', float('nan')):>6.1f} {pr['gflops']:>8.1f} "
                  f"{100 * pr['fraction_of_peak']:>5.1f}% "
                  f"{pr.get('precision@10', float('nan')):>8.4f} "
                  f"{r.get('implicit_precision@10', float('nan')):>9.4f} "
                  f"{pr['cpu_s_per_iter']:>6.3f}/{r.get('implicit_cpu_s_per_iter', float('nan')):<7.3f} "
                  f"{pr.get('cpu_speedup', float('nan')):>9.1f}")
            print(f"  {path}: {pr['gflop_per_cpu_s']:.1f} GFLOP per CPU-s = "
                  f"{100 * pr['fraction_of_cpu_peak']:.1f}% of one core's peak; gathered "
                  f"{pr['gathered_gb_per_cpu_s']:.1f} GB per CPU-s = "
                  f"{100 * pr['gathered_fraction_of_l2_triad']:.0f}% of one core's L2 triad; "
                  f"compulsory {pr['compulsory_gbs']:.2f} GB/s = "
                  f"{100 * pr['compulsory_fraction_of_dram_triad']:.1f}% of the DRAM triad")
            if "fit_speedup" in pr:
                print(f"  {path}: whole fit ({r['iterations']} iterations, set-up included) "
                      f"{pr['fit_s']:.2f} s vs implicit {r['implicit_fit_s']:.2f} s = "
                      f"{pr['fit_speedup']:.1f}x")
        if "memory" in r:
            mem = r["memory"]
            print(f"  peak memory during fit: {mem['peak_bytes'] / 2**20:.0f} MiB = "
                  f"{mem['peak_over_budget']:.2f} x (matrix + transpose + factors = "
                  f"{mem['budget_bytes'] / 2**20:.0f} MiB)")
    print(f"wrote {args.output}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
