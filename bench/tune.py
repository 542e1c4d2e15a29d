"""The MovieLens 100K protocol of Microsoft Recommenders, with tuning on a validation split.

Protocol (the one behind Microsoft Recommenders' published ML-100K tables): every rating
is a positive (the star value is the interaction strength), ``stratified_split`` 75/25
per user (or per item), top-10 with the training items removed, NDCG@10 / MAP@10 (both
denominators) / precision@10 / recall@10 on the test part.  For each split seed:

1. ``defaults``: ``tastemaker.ALS()`` as shipped, fitted on the 75%.
2. ``tuned``: the 75% is split again (stratified 75/25, same grouping) into train and
   validation; ``tastemaker.tune`` searches each model on it (``--trials`` Optuna
   trials, NDCG@10), refits the best parameters on the whole 75% and scores the test
   part, which the search never saw.

Models: ALS always; EASE when this build has it.  Output: JSON in bench/results/.

    python bench/tune.py --seeds 0 1 2 --trials 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common  # noqa: F401  (sets up sys.path and BLAS before numpy)
import numpy as np

import tastemaker as tm
from tastemaker.evaluation import stratified_split

METRICS = ("ndcg", "map", "map_full", "precision", "recall")


def _scores(model, train, test) -> dict:
    df = tm.evaluate({"m": model}, train, test, k=10, metrics=METRICS, show_progress=False,
                     baseline=False)
    return {f"{m}@10": round(float(df.loc["m", f"{m}@10"]), 4) for m in METRICS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--by", choices=("user", "item"), default="user")
    ap.add_argument("--models", nargs="+", default=["ALS", "EASE"])
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "tune.json"))
    args = ap.parse_args()

    data, _ = tm.datasets.movielens_100k(Path(_common.os.environ["TASTEMAKER_DATA"]) / "ml-100k")
    x = data.to_csr()
    models = [m for m in args.models if hasattr(tm, m)]
    runs = []
    for seed in args.seeds:
        full, test = stratified_split(x, 0.25, by=args.by, random_state=seed)
        train, val = stratified_split(full, 0.25, by=args.by, random_state=seed + 1000)
        row = {"seed": seed}
        t0 = time.perf_counter()
        row["ALS defaults"] = _scores(tm.ALS(random_state=seed).fit(full, show_progress=False),
                                      full, test)
        row["ALS regularization=0.01 (implicit's default)"] = _scores(
            tm.ALS(random_state=seed, regularization=0.01).fit(full, show_progress=False),
            full, test)
        for name in models:
            t = time.perf_counter()
            res = tm.tune(getattr(tm, name), train, val, metric="ndcg@10", n_trials=args.trials,
                          random_state=seed, show_progress=False)
            row[f"{name} tuned"] = {**_scores(res.model, full, test),
                                    "validation ndcg@10": round(res.value, 4),
                                    "params": res.params,
                                    "search_seconds": round(time.perf_counter() - t, 1)}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), flush=True)
        runs.append(row)
    keys = [k for k in runs[0] if k not in ("seed", "seconds")]
    mean = {k: {m: round(float(np.mean([r[k][m] for r in runs])), 4)
                for m in runs[0][k] if m.endswith("@10")} for k in keys}
    out = {"protocol": f"ML-100K stars, stratified 75/25 by {args.by}, top-10 train items "
                       f"removed; tuning on a stratified 75/25 split of the 75%",
           "trials": args.trials, "seeds": args.seeds, "mean": mean, "runs": runs,
           "machine": _common.machine_info(), "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                    time.gmtime())}
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(mean, indent=1))


if __name__ == "__main__":
    main()
