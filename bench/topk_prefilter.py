#!/usr/bin/env python
"""The batch scan's int8 pre-filter, off and on, alternated in one process.

Top-N for every user of the synthetic ML-20M-sized matrix (as bench/topk.py: 138,493 x
26,744, ~18M non-zeros, random normal factors, seen items filtered), through
``_core.topk_inner_product`` with the model's cached ``PackedItems``, ``user_prefilter=0`` (the
float32 tile on every panel) and ``user_prefilter=1`` (the int8 copy bounds every pair past a
block's first chunk, only the pairs above a user's bar are scored in float32), on each
SIMD path asked, in turn, ``--repeat`` rounds.  Per run: wall and CPU seconds (all threads
of this process); per path: the best of each, whether the ids and score bits are equal,
and the work counters (``stats=True``): pairs bounded in int8, pairs scored in float32 (of
them single pairs, and re-scored tile rows of 32).

FLOPs: the float32-equivalent figure credits the nominal 2 * users * items * f of a full
float32 pass, which the pre-filter does not execute; the executed float32 FLOPs are 2 f
per pair scored exactly, and the int8 work is f multiply-adds per pair bounded.  Both are
reported, against the FMA peak per CPU-second measured in this run on the path.

Usage: python bench/topk_prefilter.py [--simd avx512,avx2] [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import ROOT, machine_info, measure_peak_gflops_per_cpu_second, simd_paths, synthetic  # noqa: I001

import numpy as np  # noqa: E402

import tastemaker  # noqa: E402
from tastemaker import _core  # noqa: E402
from topk import factors_for  # noqa: E402  (bench/topk.py: the same factors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="synthetic size (1.0 = ML-20M)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--N", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="0 = all cores")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simd", default="", help="comma list of SIMD paths (default: the best)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "topk_prefilter.json"))
    args = ap.parse_args()
    paths = simd_paths(ap, args.simd, [tastemaker.show_config(file=open(os.devnull, "w"))["simd_best"]])
    load_before = os.getloadavg()
    m = synthetic(args.scale, args.seed)
    f = args.factors
    U, V = factors_for("synthetic", m, f, args.seed)
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int32)
    n_users, n_items = m.shape
    nominal = 2.0 * n_users * n_items * f
    out = {"shape": [n_users, n_items], "nnz": int(m.nnz), "factors": f, "N": args.N,
           "threads": args.threads, "paths": {}}
    for path in paths:
        tastemaker.set_simd_path(path)
        peak = measure_peak_gflops_per_cpu_second(path)
        packed = _core.PackedItems(V, args.threads)
        runs = {0: [], 1: []}
        results, stats = {}, {}
        for _ in range(args.repeat):
            for pre in (0, 1):  # alternated: both see the same machine
                t0, c0 = time.perf_counter(), time.process_time()
                ids, scores, st = _core.topk_inner_product(U, V, args.N, indptr, indices, None, None,
                                                           args.threads, packed, user_prefilter=pre,
                                                           stats=True)
                runs[pre].append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
                results[pre], stats[pre] = (ids, scores), st
        same = bool(np.array_equal(results[0][0], results[1][0])
                    and np.array_equal(results[0][1].view(np.uint32), results[1][1].view(np.uint32)))
        t = {"peak_gflops_per_cpu_s": peak, "identical": same, "runs": runs}
        for pre, name in ((0, "float32"), (1, "prefilter")):
            cpu = min(r["cpu_s"] for r in runs[pre])
            st = stats[pre]
            t[name] = {
                "best_wall_s": min(r["wall_s"] for r in runs[pre]), "best_cpu_s": cpu, **st,
                "exact_fraction": st["exact"] / (n_users * n_items),
                "bounded_fraction": st["bounded"] / (n_users * n_items),
                # a full float32 pass credited, whatever ran: NOT FMA throughput with the pre-filter
                "float32_equivalent_pct_of_peak": 100 * nominal / 1e9 / cpu / peak,
                # what ran: 2 f flops per pair scored in float32, f int8 multiply-adds per pair bounded
                "executed_float32_gflop": 2.0 * f * st["exact"] / 1e9,
                "executed_float32_pct_of_peak": 100 * 2.0 * f * st["exact"] / 1e9 / cpu / peak,
                "int8_gmac": float(f) * st["bounded"] / 1e9,
            }
        t["cpu_ratio_prefilter_over_float32"] = t["prefilter"]["best_cpu_s"] / t["float32"]["best_cpu_s"]
        out["paths"][path] = t
        print(f"{path}: float32 {t['float32']['best_cpu_s']:.3f} CPU s "
              f"({t['float32']['float32_equivalent_pct_of_peak']:.0f}% of {peak:.0f}), prefilter "
              f"{t['prefilter']['best_cpu_s']:.3f} CPU s ({t['prefilter']['float32_equivalent_pct_of_peak']:.0f}% "
              f"float32-equivalent; exact pairs {100 * t['prefilter']['exact_fraction']:.2f}%, "
              f"single {st['single']:,}, tile rows {st['tile_rows']:,}), identical={same}", flush=True)
    out["machine"] = {**machine_info(args.threads), "load_average_before": load_before[0],
                      "load_average_after": os.getloadavg()[0]}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
