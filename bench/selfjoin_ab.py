#!/usr/bin/env python
"""A/B of the self-join's int8 pre-filter: similar_items for every item, per SIMD path.

similar_items for all items of the top-k bench's synthetic catalogue (26,744 x 64, the
same factors as ``bench/topk.py``, cosine, top-10) through the native self-join, with its
int8 pre-filter off (the float32 tile: ``self_prefilter=0``) and on (``self_bounds`` then
exact re-scoring: ``self_prefilter=1``), on each SIMD path and thread count, alternated in
one process (a burst of load on the shared machine hits every variant alike).  Each
variant keeps its best of ``--rounds`` calls: wall seconds and process CPU seconds (all
threads).  What each path does when not told (``TopkKernels::self_prefilter``) is set
from these runs.  Every call must return the same ids and score bits (checked).

Run it under the bench lock: ``flock /work/bench.lock python bench/selfjoin_ab.py``.

Usage: python bench/selfjoin_ab.py [--simd avx512vnni,avx512] [--threads 1,2] [--rounds 3]
       [--output bench/results/selfjoin_ab.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from _common import ROOT, machine_info, simd_paths  # noqa: E402,I001  (sets OPENBLAS_CORETYPE first)

import numpy as np  # noqa: E402

import tastemaker  # noqa: E402
from tastemaker import _core  # noqa: E402
from topk import factors_for  # noqa: E402  (bench/topk.py: the same factors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--simd", default="", help="comma list of SIMD paths, or 'all' (default: "
                    "every available path but scalar, the best first)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--users", type=int, default=138_493,
                    help="only for drawing the same factors as bench/topk.py (users first)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--N", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "selfjoin_ab.json"))
    args = ap.parse_args()

    best_first = list(_core.simd_available())[::-1]
    paths = best_first if args.simd == "all" else \
        simd_paths(ap, args.simd, [p for p in best_first if p != "scalar"] or ["scalar"])
    threads = [int(t) for t in args.threads.split(",") if t]
    if not threads or min(threads) < 1:
        ap.error("--threads: expected a comma list of positive integers")
    if args.rounds < 1:
        ap.error("--rounds: expected >= 1")

    # bench/topk.py's synthetic factors (only the matrix's shape matters to them)
    _, V = factors_for("synthetic", SimpleNamespace(shape=(args.users, args.items)), args.factors, args.seed)
    model = tastemaker.ALS(factors=args.factors)
    model.user_factors, model.item_factors = V[:1], V
    normed = model._normalized_factors("item", V)  # what similar_items scores
    packed = _core.PackedItems(normed, 0)  # its cache: float32 panels + the int8 copy
    # each row excludes itself, as similar_items passes them: the kernel's self-join
    own = (np.arange(args.items + 1, dtype=np.int64), np.arange(args.items, dtype=np.int32))
    before = tastemaker.simd_path()
    best = {}
    digests = set()
    load = [os.getloadavg()[0]]
    try:
        for p in paths:  # warm-up, and each path's own choice
            tastemaker.set_simd_path(p)
            _core.topk_inner_product(normed, normed, args.N, *own, num_threads=max(threads), packed=packed)
        for _ in range(args.rounds):
            for p in paths:
                tastemaker.set_simd_path(p)
                for t in threads:
                    for mode in (0, 1):
                        c0, t0 = time.process_time(), time.perf_counter()
                        ids, sc = _core.topk_inner_product(normed, normed, args.N, *own, num_threads=t,
                                                           packed=packed, self_prefilter=mode)
                        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                        digests.add(hashlib.sha1(ids.tobytes() + sc.tobytes()).hexdigest())
                        key = (p, t, mode)
                        w0, c0b = best.get(key, (float("inf"), float("inf")))
                        best[key] = (min(w0, wall), min(c0b, cpu))
            load.append(os.getloadavg()[0])
    finally:
        tastemaker.set_simd_path(before)
    if len(digests) != 1:
        raise SystemExit(f"results differ between variants: {sorted(digests)}")

    table = {}
    for (p, t, mode), (wall, cpu) in best.items():
        table.setdefault(p, {}).setdefault(str(t), {})["prefilter" if mode else "float32"] = {
            "wall_s": wall, "cpu_s": cpu}
    for cells in table.values():
        for cell in cells.values():
            cell["prefilter_over_float32_cpu"] = cell["prefilter"]["cpu_s"] / cell["float32"]["cpu_s"]
            cell["prefilter_over_float32_wall"] = cell["prefilter"]["wall_s"] / cell["float32"]["wall_s"]
    out = {"machine": machine_info(max(threads)), "load_average": load,
           "items": args.items, "factors": args.factors, "N": args.N, "rounds": args.rounds,
           "sha1_of_ids_and_scores": digests.pop(), "best_of_rounds": table}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"similar_items for all {args.items} items x {args.factors}, top-{args.N}; best of "
          f"{args.rounds}; load {load[0]:.2f} -> {load[-1]:.2f}; identical results in every call")
    print(f"{'path':<11} {'threads':>7} {'float32 tile':>22} {'int8 pre-filter':>22} {'ratio (CPU)':>11}")
    for p in paths:
        for t in threads:
            c = table[p][str(t)]
            f32, pre = c["float32"], c["prefilter"]
            print(f"{p:<11} {t:>7} {f32['wall_s']:>8.3f} s {f32['cpu_s']:>6.3f} cpu  "
                  f"{pre['wall_s']:>8.3f} s {pre['cpu_s']:>6.3f} cpu  {c['prefilter_over_float32_cpu']:>11.3f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
