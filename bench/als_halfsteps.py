"""ALS half-steps (CG, 3 steps; one thread unless --threads) on the ML-20M-sized synthetic matrix, for A/B
comparisons of builds: each build (a directory holding the ``tastemaker`` package with its
``_core``) runs in its own fresh process, the builds alternate ``--rounds`` times, and each
process solves the user and the item half-step once per SIMD path from the same start
(the factors after one warm iteration, on line-aligned huge-page memory as ``fit``
allocates them: NumPy's own copies start 16 bytes into a cache line, which costs the
gathers 1.2-1.4x).  Times are the process's CPU time; the SHA-1 of the solved factors
shows whether two builds compute the same bits.

Usage: python bench/als_halfsteps.py --build before=/path/to/old/python --build after=python
       [--rounds 5] [--simd avx512,avx2] [--scale 1.0] [--output bench/results/x.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def child(python_dir: str, scale: float, paths: list[str], factors: int, threads: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common  # noqa: E402  (it puts this checkout's python/ first on the path...)

    sys.path.insert(0, python_dir)  # ...so the build under test goes before it
    import tastemaker  # noqa: E402

    assert Path(tastemaker.__file__).resolve().parent.parent == Path(python_dir).resolve()
    from tastemaker import _core  # noqa: E402
    from tastemaker._memory import zeros  # noqa: E402

    m = _common.synthetic(scale)
    t = m.T.tocsr()
    t.sort_indices()

    def native(a):
        return np.ascontiguousarray(a.indptr, dtype=np.int64), a.indices, a.data

    M, T = native(m), native(t)
    rng = np.random.default_rng(0)
    U, V = zeros((m.shape[0], factors)), zeros((m.shape[1], factors))
    U[...] = rng.random(U.shape, dtype=np.float32) * np.float32(0.01)
    V[...] = rng.random(V.shape, dtype=np.float32) * np.float32(0.01)

    def solve(csr, Y, X):
        _core.als_solve(*csr, Y, _core.als_gram(Y, 1), X, 0.01, 0.0, 1.0, "cg", 3, 1)

    solve(M, V, U)  # one warm iteration: factors as a fit has them
    solve(T, U, V)
    out = {}
    X = {"user": zeros(U.shape), "item": zeros(V.shape)}
    for path in paths:
        tastemaker.set_simd_path(path)
        for side, csr, Y, X0 in (("user", M, V, U), ("item", T, U, V)):
            X[side][...] = X0
            gram = _core.als_gram(Y, 1)
            c0 = time.process_time()  # every thread's CPU time (the only thread at 1)
            _core.als_solve(*csr, Y, gram, X[side], 0.01, 0.0, 1.0, "cg", 3, threads)
            out[f"{path}/{side}"] = {"s": time.process_time() - c0,
                                     "sha1": hashlib.sha1(X[side].tobytes()).hexdigest()[:12]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="append", required=True, metavar="NAME=DIR",
                    help="a build to time: NAME=directory holding the tastemaker package")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--simd", default="avx512,avx2")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="threads of the timed solves")
    ap.add_argument("--output", default="bench/results/als_halfsteps.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    paths = args.simd.split(",")
    if args.child:
        print(json.dumps(child(args.child, args.scale, paths, args.factors, args.threads)))
        return
    builds = dict(b.split("=", 1) for b in args.build)
    load_before = os.getloadavg()
    runs = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, py in builds.items():
            out = subprocess.run([sys.executable, __file__, "--build", f"{name}={py}", "--child",
                                  str(Path(py).resolve()), "--simd", args.simd, "--scale",
                                  str(args.scale), "--factors", str(args.factors),
                                  "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'build':<10} {'half-step':<14} {'best ms':>8} {'median ms':>10}  sha1")
    summary = {}
    for name, rs in runs.items():
        for key in rs[0]:
            s = sorted(r[key]["s"] for r in rs)
            summary[f"{name}/{key}"] = {"best_s": s[0], "median_s": s[len(s) // 2],
                                        "all_s": [r[key]["s"] for r in rs],
                                        "sha1": sorted({r[key]["sha1"] for r in rs})}
            print(f"{name:<10} {key:<14} {1e3 * s[0]:>8.0f} {1e3 * s[len(s) // 2]:>10.0f}  "
                  f"{','.join(summary[f'{name}/{key}']['sha1'])}")
    out = {"command": " ".join(sys.argv), "builds": builds, "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "results": summary}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
