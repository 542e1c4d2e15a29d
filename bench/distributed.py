#!/usr/bin/env python
"""Scaling report of tastemaker.distributed: fit_als on 1, 2 and 4 Dask workers against the
single-machine ALS.fit, Spark MLlib ALS (pyspark, local mode) side by side, and
recommend_all against Spark's recommendations, all in one run on the same data.

Data: the synthetic long-tailed matrix of bench/_common.py (MovieLens-20M shape at
``--scale 1``: 138,493 users x 26,744 items, about 18M non-zeros) handed to fit_als as a
Dask DataFrame of (user, item, value) events, ``--partitions`` partitions, persisted on
the cluster before the fit (as if read from storage).  Spark gets the same triples from
Parquet (``--spark-scale``, default: the same scale).

Rounds (``--repeat``): each round runs the single-machine fit and then every fit_als
configuration back to back, so each ratio compares runs seconds apart; the summary is
the median and range over the rounds.  Each timing is the median of the iterations after
the first of one fit:
  * single: ``ALS(...).fit`` with every core (``--cores`` OpenMP threads), seconds per
    iteration, and CPU seconds per iteration (the process's user + system time);
  * dask W x k: ``fit_als`` on a LocalCluster of W worker processes of
    ``max(1, cores // W)`` Dask threads each, the kernel of each block on k OpenMP threads
    (``--kernel-threads``; 0 = the worker's threads, so W x k = the cores; k = cores is
    the single-machine fit's own num_threads and lets a worker whose block is done leave
    its core to the other's kernel), seconds per iteration once the blocks are built, CPU
    seconds per iteration (all worker processes plus this one, which runs the scheduler
    and the client), split by kind of thread (tasks, event loops, OpenMP, scheduler +
    client), and the set-up (id maps, weighting, blocks) once;
  * critical path per iteration, from the Dask task stream: the mean block solve, the
    slowest block's lead over it (imbalance) and the rest (engine latency: scheduling,
    moving and picking rows);
  * bytes moved per iteration: the workers' incoming transfer log, against the cost model;
  * Spark: ``ALS(implicitPrefs=True, rank, regParam, alpha)`` on ``local[cores]``, the
    JVM warmed up by an untimed fit on 2% of the data; seconds (and CPU seconds of the
    JVM) per iteration = (t(maxIter=1 + k) - t(maxIter=1)) / k, so set-up is not counted;
  * recommend_all (N=10, seen items filtered, Parquet written) vs
    ``recommendForAllUsers(10)`` (``--spark-recommend``) or, for ``--spark-recommend-users
    N``, ``recommendForUserSubset`` and recommend_all on the same N users (Spark cannot
    filter seen items).
The load average is recorded next to every timing: the machine is shared.  With
``--lock PATH`` the script takes that flock for each round and each Spark phase (a
minute to a few each) instead of the whole run.

Cost model (W workers, one user and one item block each, f factors):
  a half-step sends block b only the rows of the other side's blocks that its entries
  touch (Spark's out-blocks), or the whole block when the rest would add at most 1 MiB,
  except from the blocks on its own worker, each piece with its block's f x f partial
  Gram (float64, computed once by the task that made the block; b sums them).  Per
  iteration
    bytes = f * 4 * sum over pairs (b, c) on different workers of rows of c sent to b
            + 2 W (W - 1) f^2 * 8,
  at most (W - 1) (U + I) f 4 (every block touching every row: the whole-side broadcast).
  The rows touched are counted exactly from the matrix here; for the projection they are
  expected values: a user with k events touches an item block (1/W of the events) with
  probability 1 - (1 - 1/W)^k, an item with n events a user block with 1 - exp(-n / W),
  with k log-normal and n Zipf as in the synthetic data.
  s/iter ~ compute + bytes per worker / link bandwidth + the engine's fixed cost per
  iteration (dask - single: scheduling, copies).

Usage: python bench/distributed.py [--scale 1] [--workers 1 2 4] [--iterations 4]
                                   [--kernel-threads 0 2] [--repeat 3]
                                   [--lock /work/bench.lock] [--skip-spark]
                                   [--spark-recommend-users 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This file's name shadows the ``distributed`` package while its folder leads sys.path:
# take the folder off once bench/_common.py is imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [_HERE] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
from _common import ROOT, machine_info, synthetic  # noqa: E402  (sets OPENBLAS_CORETYPE)

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import tastemaker as tm  # noqa: E402


def per_iteration(stamps: list[float]) -> float:
    """Median of the per-iteration times after the first (which includes start-up)."""
    deltas = np.diff([0.0, *stamps])
    return float(statistics.median(deltas[1:] if len(deltas) > 1 else deltas))


def events_frame(m) -> pd.DataFrame:
    coo = m.tocoo()
    return pd.DataFrame({"user": coo.row.astype(np.int64), "item": coo.col.astype(np.int64),
                         "value": coo.data.astype(np.float32)})


# ---------------------------------------------------------------- the bench lock
@contextlib.contextmanager
def bench_lock(path: str | None, what: str):
    """Hold ``path`` (flock) for one phase of the run, so that a long run takes the shared
    machine's bench lock in windows of a few minutes and lets the others in between."""
    if not path:
        yield
        return
    with open(path, "a") as fd:
        t0 = time.perf_counter()
        fcntl.flock(fd, fcntl.LOCK_EX)
        waited = time.perf_counter() - t0
        t1 = time.perf_counter()
        print(f"[lock] {what}: waited {waited:.0f} s", flush=True)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            print(f"[lock] {what}: held {time.perf_counter() - t1:.0f} s", flush=True)


# ---------------------------------------------------------------- tastemaker
def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def single_fit(m, args) -> dict:
    stamps: list[float] = []
    cpu: list[float] = []
    model = tm.ALS(factors=args.factors, iterations=args.iterations, regularization=args.reg,
                   random_state=0, num_threads=args.cores)
    t0, c0 = time.perf_counter(), _cpu_s()

    def mark(it, t, loss):
        stamps.append(t)
        cpu.append(_cpu_s())

    model.fit(m, show_progress=False, callback=mark)
    return {"s_per_iter": per_iteration(stamps), "total_s": time.perf_counter() - t0,
            "s_iters": np.diff([0.0, *stamps]).round(4).tolist(),
            "cpu_s_per_iter": per_iteration([c - c0 for c in cpu]),
            "load": os.getloadavg()[0], "model": model}


def _incoming_bytes(dask_worker) -> int:
    return int(sum(entry.get("total", 0) for entry in dask_worker.transfer_incoming_log))


def _worker_cpu_s() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _thread_cpu_s() -> dict:
    """CPU seconds of this process by kind of thread: the Dask executor's (tasks: the
    solves, picking rows), the event loop's (MainThread: comms, (de)serialization,
    heartbeats), native threads Python does not know (the kernel's OpenMP team), other."""
    import threading

    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {"tasks": 0.0, "event_loop": 0.0, "openmp": 0.0, "other": 0.0}
    for t in psutil.Process().threads():
        name = names.get(t.id)
        kind = ("openmp" if name is None else "tasks" if "Dask-Default-Threads" in name
                else "event_loop" if name == "MainThread" else "other")
        out[kind] += t.user_time + t.system_time
    return out


def critical_path(stream: list, n_blocks: int, skip_half_steps: int = 2) -> dict:
    """Where a half-step's wall time goes, from the Dask task stream of one fit: the
    blocks' solve tasks (``_solve_block``) of half-step h all start after every block of
    h - 1 is done (each needs rows from all of them), so, per half-step,
      wall = end of its last block - end of the previous half-step's last block
           = mean solve (the work) + (slowest - mean solve) (imbalance: a worker waits)
             + the rest (engine latency: scheduling, picking and moving the rows,
               deserializing; nothing computes on the critical path then).
    Seconds per iteration (two half-steps), over the half-steps after the first
    ``skip_half_steps`` (the first iteration, as the per-iteration timing)."""
    solves = []
    other: dict[str, float] = {}
    for task in stream:
        key = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        prefix = str(key).split("-")[0]
        for ss in task["startstops"]:
            if prefix == "_solve_block" and ss["action"] == "compute":
                solves.append((ss["start"], ss["stop"]))
            elif prefix in ("_solve_block", "_rows"):
                name = f"{prefix}:{ss['action']}"
                other[name] = other.get(name, 0.0) + ss["stop"] - ss["start"]
    solves.sort()
    steps = [solves[k:k + n_blocks] for k in range(0, len(solves), n_blocks)]
    if len(steps) <= skip_half_steps + 1 or len(steps[-1]) < n_blocks:
        return {}
    work = imbalance = latency = 0.0
    for prev, step in zip(steps[skip_half_steps - 1:], steps[skip_half_steps:]):
        durations = [b - a for a, b in step]
        wall = max(b for _, b in step) - max(b for _, b in prev)
        mean, slowest = float(np.mean(durations)), max(durations)
        work += mean
        imbalance += slowest - mean
        latency += wall - slowest
    iters = (len(steps) - skip_half_steps) / 2
    return {"solve_s_per_iter": work / iters, "imbalance_s_per_iter": imbalance / iters,
            "engine_latency_s_per_iter": latency / iters,
            "task_seconds_all_iterations": {k: round(v, 4) for k, v in sorted(other.items())}}


def dask_fit(client, ddf, W, kernel_threads, processes, args) -> dict:
    """One fit_als on a running cluster: per-iteration wall and CPU seconds (the workers'
    processes, plus this one, which runs the scheduler and the client), the set-up, the
    bytes moved, and the critical path of every half-step from the task stream."""
    from distributed import get_task_stream

    from tastemaker.distributed import fit_als

    stamps: list[float] = []
    cpu: list[float] = []
    marks: list[int] = []
    threads: list[dict] = []

    def mark(it, t, loss):
        stamps.append(t)
        # in-process workers: the client's process is theirs
        cpu.append(sum(client.run(_worker_cpu_s).values()) + _cpu_s() if processes
                   else _cpu_s())
        if it in (0, args.iterations - 1):  # transfers and threads of iterations 1 ..
            marks.append(sum(client.run(_incoming_bytes).values()))
            if processes:
                per = list(client.run(_thread_cpu_s).values())
                threads.append({k: sum(w[k] for w in per) for k in per[0]}
                               | {"scheduler_client": _cpu_s()})

    t0 = time.perf_counter()
    with get_task_stream(client) as ts:
        model = fit_als(client, ddf, user="user", item="item", value="value",
                        factors=args.factors, iterations=args.iterations,
                        regularization=args.reg, random_state=0, show_progress=False,
                        num_threads=kernel_threads, callback=mark)
    total = time.perf_counter() - t0
    moved = (marks[-1] - marks[0]) / (args.iterations - 1) if len(marks) == 2 else None
    return {"s_per_iter": per_iteration(stamps),
            "s_iters": np.diff([0.0, *stamps]).round(4).tolist(),
            "cpu_s_per_iter": per_iteration([c - cpu[0] for c in cpu]) if len(cpu) > 1
            else None,
            "setup_s": total - stamps[-1],
            "bytes_per_iter_measured": moved,
            "critical_path": critical_path(ts.data, W),
            # mean CPU seconds per iteration by kind of thread (workers summed) and of
            # this process (scheduler + client), iterations 1 ..
            "cpu_s_per_iter_by_thread": {
                k: (threads[1][k] - threads[0][k]) / (args.iterations - 1)
                for k in threads[0]} if len(threads) == 2 else None,
            "load": os.getloadavg()[0],
            "model": model}


def dask_recommend(client, model, seen, out_dir) -> float:
    from tastemaker.distributed import recommend_all

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    recommend_all(client, model, seen, N=10, output=str(out_dir / "*.parquet"))
    return time.perf_counter() - t0


def _bounds(counts: np.ndarray, W: int) -> np.ndarray:
    """The ingest's own blocks (CG's cost per row; the synthetic data has no repeated
    events, so entries are events)."""
    from tastemaker.distributed._fit import _ROW_COST
    from tastemaker.distributed._ingest import _balanced_bounds

    return _balanced_bounds(counts, W, _ROW_COST["cg"])


def touched_rows(m, W: int) -> np.ndarray:
    """rows[b, c]: rows of block c of the other side (columns of ``m``) that block b of
    ``m``'s rows touches, with the blocks fit_als makes (about equal work each)."""
    rb = _bounds(np.diff(m.indptr).astype(float), W)
    cb = _bounds(np.bincount(m.indices, minlength=m.shape[1]).astype(float), W)
    out = np.zeros((len(rb) - 1, len(cb) - 1), dtype=np.int64)
    for b in range(len(rb) - 1):
        block = m[rb[b]:rb[b + 1]]
        used = np.zeros(m.shape[1], dtype=bool)
        used[block.indices] = True
        out[b] = np.add.reduceat(used, cb[:-1]) if m.shape[1] else 0
    return out, np.diff(cb)


def _moved(touched: np.ndarray, sizes: np.ndarray, f: int) -> np.ndarray:
    """Rows that travel per pair: the whole sending block when the rows the receiver
    does not touch add at most fit_als's _WHOLE_EXTRA_BYTES, else the touched rows."""
    from tastemaker.distributed._fit import _WHOLE_EXTRA_BYTES

    whole = (sizes[None, :] - touched) * f * 4 <= _WHOLE_EXTRA_BYTES
    return np.where(whole, sizes[None, :], touched)


def cost_model(m, f, W) -> dict:
    """Bytes moved per iteration by fit_als on W workers (block b on worker b), exactly
    from the matrix, and what broadcasting the whole other side would move."""
    users = _moved(*touched_rows(m, W), f)            # item rows each user block receives
    items = _moved(*touched_rows(m.T.tocsr(), W), f)  # user rows each item block receives
    cross = ~np.eye(W, dtype=bool)
    rows = int(users[cross].sum() + items[cross].sum())
    grams = 2 * W * (W - 1) * f * f * 8
    whole = (W - 1) * (m.shape[0] + m.shape[1]) * f * 4 + grams
    return {"bytes_per_iter": rows * f * 4 + grams, "rows_per_iter": rows,
            "bytes_per_iter_whole_side": whole,
            "bytes_per_worker_per_iter": (rows * f * 4 + grams) / W}


def expected_rows(n_users, n_items, nnz, W, f=64, seed=0) -> int:
    """Expected rows moved per iteration at a size too large to build: the synthetic
    data's shapes (log-normal user activity, Zipf 0.9 item popularity), blocks of equal
    events.  A user with k events touches a given item block with 1 - (1 - 1/W)^k, an
    item with n events a given user block with 1 - exp(-n / W) (Poisson); a pair sends
    its whole block when the untouched rows add at most _WHOLE_EXTRA_BYTES."""
    from tastemaker.distributed._fit import _WHOLE_EXTRA_BYTES

    rng = np.random.default_rng(seed)
    sample = min(n_users, 1_000_000)
    act = rng.lognormal(0.0, 1.1, sample)
    k = np.maximum(act / act.mean() * nnz / n_users, 1.0)
    users = n_users * float(np.mean(1.0 - (1.0 - 1.0 / W) ** k))  # per item block
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    n = pop / pop.sum() * nnz
    items = float(np.sum(1.0 - np.exp(-n / W)))  # per user block
    if (n_users - users) / W * f * 4 <= _WHOLE_EXTRA_BYTES:
        users = n_users
    if (n_items - items) / W * f * 4 <= _WHOLE_EXTRA_BYTES:
        items = n_items
    # each block receives from the W - 1 blocks on other workers: (W - 1) / W of its rows
    return round((W - 1) * (users + items))


def projection(single_s_per_iter, nnz, cores, args) -> dict:
    """Projected s/iter at ``--project-nnz`` interactions on ``--project-workers`` workers."""
    n, W, c = args.project_nnz, args.project_workers, args.project_cores
    users, items = args.project_users, args.project_items
    compute = single_s_per_iter * cores * (n / nnz) / (W * c)
    rows = expected_rows(users, items, n, W, args.factors)
    moved = rows * args.factors * 4 + 2 * W * (W - 1) * args.factors ** 2 * 8
    whole = (W - 1) * (users + items) * args.factors * 4
    network = moved / W / (args.project_gbps * 1e9 / 8)
    return {"interactions": n, "workers": W, "cores_per_worker": c, "users": users,
            "items": items, "link_gbit_s": args.project_gbps,
            "compute_s": compute, "network_s": network,
            "engine_s": args.engine_overhead_s,
            "s_per_iter": compute + network + args.engine_overhead_s,
            "rows_per_iter": rows, "bytes_per_iter": moved,
            "bytes_per_iter_whole_side": whole}


# ---------------------------------------------------------------- Spark
def _tree_cpu_s() -> float:
    """CPU seconds of this process and its children (Spark's JVM runs as one)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def spark_run(frame: pd.DataFrame, args, work: Path, with_recs: bool) -> dict:
    """Spark MLlib's implicit ALS (same rank, regularization, alpha, seed) on the same
    triples, read from Parquet and cached before any timing, the JVM warmed up by an
    untimed fit on 2% of them.  Seconds per iteration =
    (fit with 1 + k iterations - fit with 1) / k: both fits pay the same set-up (the
    in/out blocks are rebuilt per fit), so the difference is k iterations.  Each fit takes
    the bench lock on its own (at ML-20M scale a fit runs for minutes)."""
    from pyspark.ml.recommendation import ALS as SparkALS
    from pyspark.sql import SparkSession

    path = work / "spark-events.parquet"
    frame.astype({"user": "int32", "item": "int32"}).to_parquet(path)
    spark = (SparkSession.builder.master(f"local[{args.cores}]").appName("tm-bench")
             .config("spark.driver.memory", f"{args.spark_memory_gb}g")
             .config("spark.sql.shuffle.partitions", str(2 * args.cores))
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with bench_lock(args.lock, "spark: load"):
            df = spark.read.parquet(str(path)).repartition(2 * args.cores).cache()
            df.count()
            # the JVM compiles ALS's code on its first fit: warm it up on 2% of the data,
            # untimed, or fit(1) would carry the compilation and shrink the difference
            SparkALS(rank=args.factors, maxIter=1, regParam=args.reg, implicitPrefs=True,
                     userCol="user", itemCol="item", ratingCol="value", seed=0).fit(
                df.sample(fraction=0.02, seed=0)).userFactors.count()

        def fit(iters):
            als = SparkALS(rank=args.factors, maxIter=iters, regParam=args.reg, alpha=1.0,
                           implicitPrefs=True, userCol="user", itemCol="item",
                           ratingCol="value", seed=0, coldStartStrategy="drop")
            with bench_lock(args.lock, f"spark: fit with {iters} iterations"):
                t0, c0 = time.perf_counter(), _tree_cpu_s()
                model = als.fit(df)
                model.userFactors.count()  # force the factors
                model.itemFactors.count()
                return model, time.perf_counter() - t0, _tree_cpu_s() - c0, \
                    os.getloadavg()[0]

        model, t1, c1, load1 = fit(1)
        print(f"spark   fit(1) {t1:.1f} s, {c1:.1f} CPU s (load {load1:.1f})", flush=True)
        out = {"fit_1_iter_s": t1, "fit_1_iter_cpu_s": c1, "load": [load1]}
        if args.spark_iterations > 0:  # 0: fit(1) only, the model for recommendations
            # fewer iterations when one fit would hold the lock for more than ~8 minutes
            k = max(1, min(args.spark_iterations, int(480 / t1) - 1))
            model, tk, ck, loadk = fit(1 + k)
            print(f"spark   fit({1 + k}) {tk:.1f} s, {ck:.1f} CPU s (load {loadk:.1f})",
                  flush=True)
            out.update({"s_per_iter": (tk - t1) / k, "cpu_s_per_iter": (ck - c1) / k,
                        "s_per_iter_with_setup": tk / (1 + k), "iterations_k": k,
                        f"fit_{1 + k}_iter_s": tk, f"fit_{1 + k}_iter_cpu_s": ck,
                        "load": [load1, loadk]})
        if with_recs and args.spark_recommend_users:
            ids = recommend_sample(frame["user"].max() + 1, args)
            subset = spark.createDataFrame(pd.DataFrame({"user": ids.astype(np.int32)}))
            subset = subset.cache()
            subset.count()
            with bench_lock(args.lock, "spark: recommendForUserSubset"):
                t0 = time.perf_counter()
                model.recommendForUserSubset(subset, 10).write.parquet(
                    str(work / "spark-recs-subset"))
                out["recommend_users"] = len(ids)
                out["recommend_users_s"] = time.perf_counter() - t0
                out["recommend_load"] = os.getloadavg()[0]
        elif with_recs:
            with bench_lock(args.lock, "spark: recommendForAllUsers"):
                t0 = time.perf_counter()
                model.recommendForAllUsers(10).write.parquet(str(work / "spark-recs"))
                out["recommend_all_users_s"] = time.perf_counter() - t0
                out["recommend_load"] = os.getloadavg()[0]
        return out
    finally:
        spark.stop()


def recommend_sample(n_users: int, args) -> np.ndarray:
    """The users of the subset comparison (``--spark-recommend-users``), seed 0, sorted."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(int(n_users), min(int(n_users), args.spark_recommend_users),
                              replace=False))


def fmt(d: dict | None) -> str:
    return "-" if d is None else " ".join(f"{k} {v:.3f}" for k, v in d.items())


def spread(values: list[float]) -> dict:
    return {"median": float(statistics.median(values)), "min": float(min(values)),
            "max": float(max(values)), "runs": [float(v) for v in values]}


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="data size, 1 = ML-20M shape")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--reg", type=float, default=0.1)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--kernel-threads", type=int, nargs="+", default=[0],
                    help="ALS num_threads of the fit_als runs, one run each (0: the "
                         "worker's threads, cores // workers; = cores: the single-machine "
                         "fit's own setting, and a worker whose block is done leaves its "
                         "core to the other's kernel)")
    ap.add_argument("--cluster", nargs="+", choices=["processes", "threads"],
                    default=["processes"],
                    help="LocalCluster workers as processes (data serialized between them, "
                         "as between machines) and/or as threads of one process")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each round runs the single-machine fit and then every "
                         "fit_als configuration, back to back")
    ap.add_argument("--lock", default=None,
                    help="take this flock (e.g. /work/bench.lock) for each round and each "
                         "Spark fit instead of for the whole run (do not also run the "
                         "script under flock on the same file)")
    ap.add_argument("--worker-memory-gb", type=float, default=6.0)
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--skip-recommend", action="store_true")
    ap.add_argument("--spark-scale", type=float, default=None,
                    help="Spark on this data size (default: --scale, side by side)")
    ap.add_argument("--spark-iterations", type=int, default=2)
    ap.add_argument("--spark-memory-gb", type=int, default=8)
    ap.add_argument("--spark-recommend", action="store_true",
                    help="also time recommendForAllUsers (hours at ML-20M scale on 2 cores)")
    ap.add_argument("--spark-recommend-users", type=int, default=0,
                    help="instead, top-10 for this many users (a seeded sample) by Spark's "
                         "recommendForUserSubset and by recommend_all on the same users")
    ap.add_argument("--project-nnz", type=float, default=1e9)
    ap.add_argument("--project-workers", type=int, default=16)
    ap.add_argument("--project-cores", type=int, default=16)
    ap.add_argument("--project-users", type=int, default=10_000_000)
    ap.add_argument("--project-items", type=int, default=1_000_000)
    ap.add_argument("--project-gbps", type=float, default=10.0, help="link bandwidth, Gbit/s")
    ap.add_argument("--engine-overhead-s", type=float, default=None,
                    help="per-iteration engine cost for the projection (default: measured)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "distributed.json"))
    args = ap.parse_args()
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    if args.spark_scale is None:
        args.spark_scale = args.scale
    # worker processes import tastemaker the way this script does
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "python"), os.environ.get("PYTHONPATH")) if p)
    tm.set_num_threads(args.cores)
    tmp = Path(tempfile.mkdtemp(prefix="tm-dist-bench-"))
    result = {"machine": machine_info(args.cores), "args": vars(args), "runs": []}
    configs = [(W, kind, kt) for W in args.workers for kind in args.cluster
               for kt in args.kernel_threads]

    def config_key(W, kind, kt):
        return str(W) if (kt, kind) == (args.kernel_threads[0], args.cluster[0]) \
            else f"{W}x{kt}" + ("" if kind == "processes" else "-threads")

    try:
        scales = [args.scale] + ([] if args.skip_spark or args.spark_scale == args.scale
                                 else [args.spark_scale])
        for scale in scales:
            m = synthetic(scale, seed=0)
            frame = events_frame(m)
            run = {"scale": scale, "users": m.shape[0], "items": m.shape[1], "nnz": int(m.nnz),
                   "rounds": []}
            print(f"== scale {scale}: {m.shape[0]} users x {m.shape[1]} items, {m.nnz} nnz",
                  flush=True)
            models = {}
            single_model = None
            for r in range(args.repeat):
                rnd = {"dask": {}}
                with bench_lock(args.lock, f"round {r + 1} of {args.repeat}"):
                    single = single_fit(m, args)
                    single_model = single.pop("model")
                    rnd["single"] = single
                    print(f"[{r + 1}] single  {single['s_per_iter']:.3f} s/iter, "
                          f"{single['cpu_s_per_iter']:.3f} CPU s/iter (load "
                          f"{single['load']:.1f})", flush=True)
                    # one cluster per (workers, kind), the events persisted on it first (as
                    # if read from storage): the kernel-thread settings share it
                    for W, kind in dict.fromkeys((W, kind) for W, kind, _ in configs):
                        threads = max(1, args.cores // W)
                        with LocalCluster(n_workers=W, threads_per_worker=threads,
                                          processes=kind == "processes",
                                          dashboard_address=None,
                                          memory_limit=f"{args.worker_memory_gb}GB") as cl, \
                                Client(cl) as client:
                            client.wait_for_workers(W, timeout=120)
                            ddf = dd.from_pandas(frame, npartitions=args.partitions)
                            ddf = client.persist(ddf)
                            wait(ddf)
                            for kt in [k for w, c, k in configs if (w, c) == (W, kind)]:
                                key = config_key(W, kind, kt)
                                d = dask_fit(client, ddf, W, kt, kind == "processes", args)
                                models[key] = d.pop("model")
                                d.update(workers=W, cluster=kind, threads_per_worker=threads,
                                         kernel_threads=kt or threads,
                                         vs_single=d["s_per_iter"] / single["s_per_iter"],
                                         cpu_vs_single=d["cpu_s_per_iter"]
                                         / single["cpu_s_per_iter"],
                                         max_abs_diff_vs_single=float(np.abs(
                                             models[key].user_factors
                                             - single_model.user_factors).max()))
                                rnd["dask"][key] = d
                                cp = d["critical_path"]
                                print(f"[{r + 1}] dask {key} ({kind}, kernel "
                                      f"{d['kernel_threads']} threads) {d['s_per_iter']:.3f} "
                                      f"s/iter ({d['vs_single']:.2f}x single), "
                                      f"{d['cpu_s_per_iter']:.3f} CPU s/iter "
                                      f"({d['cpu_vs_single']:.2f}x), set-up "
                                      f"{d['setup_s']:.1f} s, per iteration: solve "
                                      f"{cp.get('solve_s_per_iter', np.nan):.3f} + imbalance "
                                      f"{cp.get('imbalance_s_per_iter', np.nan):.3f} + engine "
                                      f"{cp.get('engine_latency_s_per_iter', np.nan):.3f} s; "
                                      f"CPU by thread {fmt(d['cpu_s_per_iter_by_thread'])}; "
                                      f"max |diff| {d['max_abs_diff_vs_single']:.1e} "
                                      f"(load {d['load']:.1f})", flush=True)
                run["rounds"].append(rnd)
            run["dask"] = {}
            if run["rounds"]:  # --repeat 0: no fits timed (a Spark recommend-only run)
                run["single"] = {k: spread([rd["single"][k] for rd in run["rounds"]])
                                 for k in ("s_per_iter", "cpu_s_per_iter", "load")}
                for W, kind, kt in configs:
                    key = config_key(W, kind, kt)
                    per = [rd["dask"][key] for rd in run["rounds"]]
                    model = cost_model(m, args.factors, W)
                    run["dask"][key] = {
                        "workers": W, "cluster": kind, "kernel_threads": per[0]["kernel_threads"],
                        "threads_per_worker": per[0]["threads_per_worker"],
                        **{k: spread([d[k] for d in per]) for k in
                           ("s_per_iter", "cpu_s_per_iter", "vs_single", "cpu_vs_single",
                            "setup_s", "load")},
                        "critical_path": {k: spread([d["critical_path"][k] for d in per])
                                          for k in ("solve_s_per_iter", "imbalance_s_per_iter",
                                                    "engine_latency_s_per_iter")
                                          if all(k in d["critical_path"] for d in per)},
                        "engine_overhead_s_per_iter": spread(
                            [d["s_per_iter"] - rd["single"]["s_per_iter"]
                             for d, rd in zip(per, run["rounds"])]),
                        "bytes_per_iter_measured": per[-1]["bytes_per_iter_measured"],
                        "bytes_per_iter_model": model["bytes_per_iter"],
                        "rows_per_iter_model": model["rows_per_iter"],
                        "bytes_per_iter_whole_side": model["bytes_per_iter_whole_side"],
                        "max_abs_diff_vs_single": max(d["max_abs_diff_vs_single"] for d in per)}
                    v = run["dask"][key]["vs_single"]
                    print(f"dask {key}: {v['median']:.2f}x single per iteration (median of "
                          f"{args.repeat}; {v['min']:.2f}-{v['max']:.2f}), CPU "
                          f"{run['dask'][key]['cpu_vs_single']['median']:.2f}x", flush=True)
            W2 = 2 if 2 in args.workers else args.workers[0]
            if single_model is None and not args.skip_recommend:  # --repeat 0: untimed
                single_model = tm.ALS(factors=args.factors, iterations=args.iterations,
                                      regularization=args.reg, random_state=0,
                                      num_threads=args.cores).fit(m, show_progress=False)
            if not args.skip_recommend:
                with bench_lock(args.lock, "recommend_all"):
                    with LocalCluster(n_workers=W2, threads_per_worker=max(1, args.cores // W2),
                                      processes=True, dashboard_address=None,
                                      memory_limit=f"{args.worker_memory_gb}GB") as cl, \
                            Client(cl) as client:
                        client.wait_for_workers(W2, timeout=120)
                        run["recommend_all_s"] = dask_recommend(client, single_model, m,
                                                                tmp / f"recs-{scale}")
                        if args.spark_recommend_users and not args.skip_spark:
                            ids = recommend_sample(m.shape[0], args)
                            sub = copy.copy(single_model)
                            sub.user_factors = np.ascontiguousarray(
                                single_model.user_factors[ids])
                            run["recommend_users"] = len(ids)
                            run["recommend_users_s"] = dask_recommend(
                                client, sub, m[ids], tmp / f"recs-subset-{scale}")
                run["recommend_all_load"] = os.getloadavg()[0]
                run["recommend_all_workers"] = W2
                print(f"recommend_all ({W2} workers) {run['recommend_all_s']:.2f} s; "
                      f"{run.get('recommend_users')} users: {run.get('recommend_users_s')} s",
                      flush=True)
            if not args.skip_spark and scale == args.spark_scale:
                s = spark_run(frame, args, tmp,
                              with_recs=args.spark_recommend or bool(args.spark_recommend_users))
                run["spark"] = s
                k2 = config_key(W2, args.cluster[0], args.kernel_threads[0])
                run["ratios"] = {} if not run["dask"] or "s_per_iter" not in s else {
                    "spark_over_dask_per_iter": s["s_per_iter"]
                    / run["dask"][k2]["s_per_iter"]["median"],
                    "spark_over_single_per_iter": s["s_per_iter"]
                    / run["single"]["s_per_iter"]["median"],
                    "spark_over_dask_per_iter_by_config": {
                        k: s["s_per_iter"] / v["s_per_iter"]["median"]
                        for k, v in run["dask"].items()},
                    "spark_over_dask_cpu_per_iter_by_config": {
                        k: s["cpu_s_per_iter"] / v["cpu_s_per_iter"]["median"]
                        for k, v in run["dask"].items()}}
                if "recommend_all_users_s" in s and "recommend_all_s" in run:
                    run["ratios"]["spark_recs_over_recommend_all"] = \
                        s["recommend_all_users_s"] / run["recommend_all_s"]
                if "recommend_users_s" in s and "recommend_users_s" in run:
                    run["ratios"]["spark_subset_recs_over_recommend_all"] = \
                        s["recommend_users_s"] / run["recommend_users_s"]
                print(f"spark   {s.get('s_per_iter')} s/iter ({s.get('cpu_s_per_iter')} CPU "
                      f"s/iter); ratios {json.dumps(run['ratios'])}", flush=True)
            result["runs"].append(run)
        base = result["runs"][0]
        if not base["dask"]:
            return None
        if args.engine_overhead_s is None:  # the fixed cost, with nothing to transfer
            W1 = "1" if "1" in base["dask"] else next(iter(base["dask"]))
            args.engine_overhead_s = max(
                0.0, base["dask"][W1]["engine_overhead_s_per_iter"]["median"])
        result["projection"] = projection(base["single"]["s_per_iter"]["median"], base["nnz"],
                                          args.cores, args)
        result["args"] = vars(args)
        print("projection", json.dumps(result["projection"], indent=1), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
