#!/usr/bin/env python
"""Single-request latency: the path an embedding service takes, one query per call.

One thread for everyone, 27k items x 64 factors (ML-20M's catalogue), float32 factors
(random normal x 0.1; latency does not depend on their quality), side by side in one
process:

* ``recommend(u, row, N=10)``, the user's own 100 seen items filtered: tastemaker vs
  implicit 0.7 (BLAS limited to one thread) vs faiss ``IndexFlatIP.search`` of one
  query (unfiltered: it cannot filter) vs NumPy ``item_factors @ u`` + ``argpartition``
  (seen items set to -inf first);
* ``recommend(u, row, N=10, recalculate_user=True)`` with 100 events: fold-in (exact
  solve against the item Gram) + top-10, tastemaker vs implicit;
* ``similar_items(i, N=10)`` (cosine): tastemaker vs implicit.

The JSON also records the memory of the per-model caches a request reads: the packed
float32 item panels and the int8 copy of the single-query pre-filter.

Every figure is the median over ``--calls`` calls (different users/items in turn), best
of ``--rounds`` rounds that interleave the contenders (the machine is shared).  The first call of each contender is a
warm-up, not timed: it is where per-model caches (packed item panels, normalised
factors, the fold-in Gram) are built.

``--simd avx512,avx2`` (or ``all``) also times tastemaker's calls on those SIMD paths, in the
same rounds as the path show_config picks (keys ``tastemaker_<call>@<path>``, the same
figures under ``simd_sweep``): the sweep that shows the picked path is the fastest.

Usage: python bench/latency.py [--items 26744] [--factors 64] [--calls 300] [--rounds 3]
       [--simd avx512,avx2]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from _common import ROOT, machine_info, median_latency, simd_paths  # noqa: E402,I001  (sets OPENBLAS_CORETYPE first)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--events", type=int, default=100, help="seen items per user")
    ap.add_argument("--N", type=int, default=10)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-implicit", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--simd", default="",
                    help="comma list of further SIMD paths (or 'all') for tastemaker's calls")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "latency.json"))
    args = ap.parse_args()
    best_path = tastemaker.simd_path()
    sweep = [p for p in dict.fromkeys(simd_paths(ap, args.simd, [])) if p != best_path]

    rng = np.random.default_rng(args.seed)
    n_users, n_items, f, N = args.users, args.items, args.factors, args.N
    U = rng.standard_normal((n_users, f), dtype=np.float32) * np.float32(0.1)
    V = rng.standard_normal((n_items, f), dtype=np.float32) * np.float32(0.1)
    rows = np.repeat(np.arange(n_users), args.events)
    cols = np.concatenate([rng.choice(n_items, args.events, replace=False) for _ in range(n_users)])
    vals = rng.integers(1, 6, size=rows.size).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    users = rng.choice(n_users, args.calls, replace=False)
    items = rng.choice(n_items, args.calls, replace=False)
    user_rows = [m[int(u)] for u in users]  # one CSR row each, built outside the timing
    rec_args = list(zip(users.tolist(), user_rows))
    sim_args = [(int(i),) for i in items]

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one thread for every BLAS (numpy's, implicit's, faiss's)
    tastemaker.set_num_threads(1)
    model = tastemaker.ALS(factors=f, regularization=0.01, num_threads=1)
    model.user_factors, model.item_factors = U, V

    res: dict = {"items": n_items, "factors": f, "events": args.events, "N": N,
                 "calls": args.calls, "rounds": args.rounds, "threads": 1}
    contenders = {}

    def timed(key, fn, args_list, path=None):
        """path: the SIMD path the calls run on (None: the one show_config picks)."""
        tastemaker.set_simd_path(path or best_path)
        fn(*args_list[0])  # warm-up: caches, page faults, lazy imports
        contenders[key] = (fn, args_list, path or best_path)

    for path in [None] + sweep:
        at = f"@{path}" if path else ""
        timed(f"tastemaker_recommend{at}", lambda u, row: model.recommend(u, row, N=N), rec_args, path)
        timed(f"tastemaker_recommend_fold_in{at}",
              lambda u, row: model.recommend(u, row, N=N, recalculate_user=True), rec_args, path)
        timed(f"tastemaker_similar_items{at}", lambda i: model.similar_items(i, N=N), sim_args, path)

    seen = [row.indices for row in user_rows]
    packed = model._single_state()[2]
    res["cache_bytes"] = {"packed_item_panels": packed.nbytes, "prefilter_int8_copy": packed.prefilter_nbytes}

    def numpy_recommend(u, k):
        s = V @ U[u]
        s[seen[k]] = -np.inf
        top = np.argpartition(-s, N)[:N]
        return top[np.argsort(-s[top], kind="stable")]

    timed("numpy_recommend", numpy_recommend, list(zip(users.tolist(), range(len(users)))))

    if not args.skip_faiss:
        import faiss

        faiss.omp_set_num_threads(1)
        index = faiss.IndexFlatIP(f)
        index.add(V)
        timed("faiss_unfiltered", lambda u: index.search(U[u:u + 1], N), [(int(u),) for u in users])

    if not args.skip_implicit:
        from implicit.cpu.als import AlternatingLeastSquares

        theirs = AlternatingLeastSquares(factors=f, regularization=0.01, num_threads=1,
                                         random_state=args.seed)
        theirs.user_factors, theirs.item_factors = U, V
        timed("implicit_recommend", lambda u, row: theirs.recommend(u, row, N=N), rec_args)
        timed("implicit_recommend_fold_in",
              lambda u, row: theirs.recommend(u, row, N=N, recalculate_user=True), rec_args)
        timed("implicit_similar_items", lambda i: theirs.similar_items(i, N=N), sim_args)

    # Rounds interleave the contenders (a burst of load on the shared machine hits all of
    # them alike); each keeps its best median.
    lat = {key: float("inf") for key in contenders}
    cpu = dict(lat)
    for _ in range(args.rounds):
        for key, (fn, args_list, path) in contenders.items():
            tastemaker.set_simd_path(path)
            wall, c = median_latency(fn, args_list)
            lat[key], cpu[key] = min(lat[key], wall), min(cpu[key], c)
    tastemaker.set_simd_path(best_path)
    res["latency_ms"] = {k: v * 1e3 for k, v in lat.items()}
    res["cpu_ms"] = {k: v * 1e3 for k, v in cpu.items()}
    res["simd"] = best_path
    calls = ("recommend", "recommend_fold_in", "similar_items")
    res["simd_sweep"] = {p: {c: {"ms": res["latency_ms"][f"tastemaker_{c}{'' if p == best_path else '@' + p}"],
                                 "cpu_ms": res["cpu_ms"][f"tastemaker_{c}{'' if p == best_path else '@' + p}"]}
                             for c in calls} for p in [best_path] + sweep}
    ratios = {}
    for ours, theirs_key in (("recommend", "faiss_unfiltered"), ("recommend", "implicit_recommend"),
                             ("recommend", "numpy_recommend"),
                             ("recommend_fold_in", "implicit_recommend_fold_in"),
                             ("similar_items", "implicit_similar_items")):
        if theirs_key in lat:
            ratios[f"{theirs_key}_over_tastemaker_{ours}"] = lat[theirs_key] / lat[f"tastemaker_{ours}"]
    res["ratios"] = ratios
    out = {"machine": {**machine_info(1), "load_average": os.getloadavg()[0]}, "results": res}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))

    print(f"{n_items} items x {f} factors, one thread, median of {args.calls} calls, best of "
          f"{args.rounds} rounds, ms: wall (thread CPU)")
    print(f"{'call':<26} {'tastemaker':>15} {'implicit':>15} {'faiss':>15} {'numpy':>15}")

    def cell(key):
        if key not in res["latency_ms"]:
            return f"{'-':>15}"
        return f"{res['latency_ms'][key]:>7.3f} ({res['cpu_ms'][key]:.3f})"

    print(f"{'recommend(u, row, N)':<26} {cell('tastemaker_recommend')} "
          f"{cell('implicit_recommend')} {cell('faiss_unfiltered')} {cell('numpy_recommend')}")
    print(f"{'  recalculate_user=True':<26} {cell('tastemaker_recommend_fold_in')} "
          f"{cell('implicit_recommend_fold_in')}")
    print(f"{'similar_items(i, N)':<26} {cell('tastemaker_similar_items')} "
          f"{cell('implicit_similar_items')}")
    print("(faiss: IndexFlatIP.search of one query, unfiltered)")
    if sweep:
        print("tastemaker per SIMD path (first: show_config's), ms wall (thread CPU):")
        for p, cells in res["simd_sweep"].items():
            print(f"  {p:<11} " + "  ".join(f"{c} {v['ms']:.3f} ({v['cpu_ms']:.3f})" for c, v in cells.items()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
