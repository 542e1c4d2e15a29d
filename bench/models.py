#!/usr/bin/env python
"""Models beyond implicit ALS against their peers, in one run.

* **Item kNN** (MovieLens 100K star ratings and Last.fm 2K log1p play counts, one random
  80/20 split of the entries, seed 0): tastemaker ``ItemKNN(K, similarity)``, for each
  ``K`` of ``--K``, against
  implicit 0.7's ``CosineRecommender`` / ``BM25Recommender`` (K1=1.2, B=0.75) /
  ``TFIDFRecommender`` (``--similarities``; given
  ``K + 1`` neighbours because implicit counts the item itself among them).  Fit time,
  recommend-all time (top-10 for every test user, one batch call, seen items
  excluded) and precision@10 on the test entries.  Times are best of ``--repeats``,
  the contenders interleaved (the machine is shared), both at ``--threads`` threads; the
  fit and recommend-all are also timed in CPU seconds of the process (all threads), which a busy machine
  disturbs less than wall time.
* **Ratings** (MovieLens 100K, 5-fold cross-validation with Surprise's ``KFold(5,
  random_state=0, shuffle=True)``, the same folds for both): tastemaker
  ``ExplicitALS()`` with its defaults (and with ``samples=0``: the ALS-WR solution without
  the posterior averaging) against Surprise's ``SVD()`` with its defaults
  (``random_state=0``).  RMSE and MAE per fold and their means, fit time per fold.
  ``--skip-knn`` runs only this part.
* **EASE** on the kNN split of MovieLens 100K (0/1 data): precision@10 next to kNN.

Writes JSON to ``bench/results/models.json`` (``--out``) and prints a table.

Usage: python bench/models.py [--repeats 5] [--threads 2] [--K 10 50 100 200 500]
       [--similarities cosine bm25 tfidf] [--skip-ease]
       [--skip-surprise]   (--skip-surprise keeps the ratings section already in --out)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import warnings
from pathlib import Path

from _common import ROOT, load_real, machine_info, real_matrix  # noqa: E402,I001

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker  # noqa: E402
from tastemaker.evaluation import precision_at_k  # noqa: E402

SEED = 0


def split(X: sp.csr_matrix, test_size=0.2, seed=SEED):
    rng = np.random.default_rng(seed)
    coo = X.tocoo()
    test = rng.random(coo.nnz) < test_size

    def part(mask):
        m = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=X.shape,
                          dtype=np.float32)
        m.sort_indices()
        return m

    return part(~test), part(test)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def timed_cpu(fn):
    """(wall seconds, CPU seconds of the whole process, result) of fn(): the CPU time counts
    every thread, so it shows the work done whatever the load of the shared machine."""
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def knn(args) -> list[dict]:
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender

    peers = {"cosine": CosineRecommender, "bm25": BM25Recommender, "tfidf": TFIDFRecommender}

    rows = []
    for name in ("ml100k", "lastfm"):
        loaded = load_real(name)
        if loaded is None:
            raise SystemExit("set TASTEMAKER_DATA to the directory holding ml-100k/ and lastfm-2k/")
        X = real_matrix(*loaded)
        train, test = split(X)
        users = np.flatnonzero(np.diff(test.indptr))
        rows_u = train[users]
        for K, sim in itertools.product(args.K, args.similarities):
            Peer = peers[sim]
            best = {key: np.inf for key in ("tm_fit", "tm_rec", "imp_fit", "imp_rec",
                                            "tm_fit_cpu", "imp_fit_cpu", "tm_rec_cpu",
                                            "imp_rec_cpu")}
            for _ in range(args.repeats):
                ours = tastemaker.ItemKNN(K=K, similarity=sim, num_threads=args.threads)
                t, c, _ = timed_cpu(lambda: ours.fit(train))
                best["tm_fit"] = min(best["tm_fit"], t)
                best["tm_fit_cpu"] = min(best["tm_fit_cpu"], c)
                t, c, (tm_ids, _) = timed_cpu(lambda: ours.recommend(users, rows_u, N=10))
                best["tm_rec"] = min(best["tm_rec"], t)
                best["tm_rec_cpu"] = min(best["tm_rec_cpu"], c)
                peer = Peer(K=K + 1, num_threads=args.threads)
                t, c, _ = timed_cpu(lambda: peer.fit(train, show_progress=False))
                best["imp_fit"] = min(best["imp_fit"], t)
                best["imp_fit_cpu"] = min(best["imp_fit_cpu"], c)
                t, c, (imp_ids, _) = timed_cpu(lambda: peer.recommend(users, rows_u, N=10))
                best["imp_rec"] = min(best["imp_rec"], t)
                best["imp_rec_cpu"] = min(best["imp_rec_cpu"], c)
            p_tm = precision_at_k(tm_ids, test, 10, users=users)
            p_imp = precision_at_k(imp_ids, test, 10, users=users)
            row = {"dataset": name, "similarity": sim, "K": K, "threads": args.threads,
                   "n_users": X.shape[0], "n_items": X.shape[1], "nnz": int(X.nnz),
                   "test_users": int(users.size),
                   "fit_s": {"tastemaker": best["tm_fit"], "implicit": best["imp_fit"]},
                   "recommend_all_s": {"tastemaker": best["tm_rec"], "implicit": best["imp_rec"]},
                   "fit_speedup": best["imp_fit"] / best["tm_fit"],
                   "fit_cpu_s": {"tastemaker": best["tm_fit_cpu"], "implicit": best["imp_fit_cpu"]},
                   "fit_speedup_cpu": best["imp_fit_cpu"] / best["tm_fit_cpu"],
                   "recommend_speedup": best["imp_rec"] / best["tm_rec"],
                   "recommend_all_cpu_s": {"tastemaker": best["tm_rec_cpu"],
                                           "implicit": best["imp_rec_cpu"]},
                   "recommend_speedup_cpu": best["imp_rec_cpu"] / best["tm_rec_cpu"],
                   "precision@10": {"tastemaker": p_tm, "implicit": p_imp},
                   "precision_diff": p_tm - p_imp}
            rows.append(row)
            print(f"kNN {name:7s} {sim:6s} K={K:<4d}: fit {row['fit_speedup']:.2f}x "
                  f"({best['tm_fit'] * 1e3:.0f} vs {best['imp_fit'] * 1e3:.0f} ms; per CPU-s "
                  f"{row['fit_speedup_cpu']:.2f}x), recommend-all "
                  f"{row['recommend_speedup']:.2f}x ({best['tm_rec'] * 1e3:.0f} vs "
                  f"{best['imp_rec'] * 1e3:.0f} ms; per CPU-s {row['recommend_speedup_cpu']:.2f}x), "
                  f"p@10 {p_tm:.4f} vs {p_imp:.4f}", flush=True)
        if name == "ml100k" and not args.skip_ease:
            binary = train.copy()
            binary.data[:] = 1.0
            ease = tastemaker.EASE(regularization=args.ease_regularization,
                                   num_threads=args.threads)
            t, _ = timed(lambda: ease.fit(binary))
            ids, _ = ease.recommend(users, binary[users], N=10)
            p = precision_at_k(ids, test, 10, users=users)
            rows.append({"dataset": name, "model": "EASE",
                         "regularization": args.ease_regularization, "fit_s": t,
                         "precision@10": p})
            print(f"EASE    {name:7s}: fit {t * 1e3:.0f} ms, p@10 {p:.4f}", flush=True)
    return rows


def ratings(args) -> dict:
    import pandas as pd
    from surprise import SVD, Dataset, Reader, accuracy
    from surprise.model_selection import KFold

    root = Path(os.environ["TASTEMAKER_DATA"])
    df = pd.read_csv(root / "ml-100k" / "u.data", sep="\t", names=["u", "i", "r", "t"])
    data = Dataset.load_from_df(df[["u", "i", "r"]], Reader(rating_scale=(1, 5)))
    n_users, n_items = int(df.u.max()) + 1, int(df.i.max()) + 1
    out = {"tastemaker": {"rmse": [], "mae": [], "fit_s": []},
           "tastemaker_als_wr": {"rmse": [], "mae": [], "fit_s": []},
           "surprise_svd": {"rmse": [], "mae": [], "fit_s": []},
           "load_average_before": os.getloadavg()}
    for k, (trainset, testset) in enumerate(KFold(n_splits=5, random_state=SEED,
                                                  shuffle=True).split(data)):
        svd = SVD(random_state=SEED)
        t, _ = timed(lambda: svd.fit(trainset))
        pred = svd.test(testset)
        out["surprise_svd"]["rmse"].append(accuracy.rmse(pred, verbose=False))
        out["surprise_svd"]["mae"].append(accuracy.mae(pred, verbose=False))
        out["surprise_svd"]["fit_s"].append(t)
        tr = np.array([(int(trainset.to_raw_uid(u)), int(trainset.to_raw_iid(i)), r)
                       for u, i, r in trainset.all_ratings()])
        R = sp.csr_matrix((tr[:, 2].astype(np.float32), (tr[:, 0].astype(int),
                                                          tr[:, 1].astype(int))),
                          shape=(n_users, n_items))
        R.sort_indices()
        model = tastemaker.ExplicitALS(random_state=SEED, num_threads=args.threads)
        t, _ = timed(lambda: model.fit(R, show_progress=False))
        te = np.array([(int(u), int(i), r) for u, i, r in testset])
        p = model.predict(te[:, 0].astype(int), te[:, 1].astype(int))
        out["tastemaker"]["rmse"].append(tastemaker.evaluation.rmse(te[:, 2], p))
        out["tastemaker"]["mae"].append(tastemaker.evaluation.mae(te[:, 2], p))
        out["tastemaker"]["fit_s"].append(t)
        # the same model without the posterior averaging (samples=0: the ALS-WR solution)
        als_wr = tastemaker.ExplicitALS(samples=0, random_state=SEED, num_threads=args.threads)
        t_wr, _ = timed(lambda: als_wr.fit(R, show_progress=False))
        p_wr = als_wr.predict(te[:, 0].astype(int), te[:, 1].astype(int))
        out["tastemaker_als_wr"]["rmse"].append(tastemaker.evaluation.rmse(te[:, 2], p_wr))
        out["tastemaker_als_wr"]["mae"].append(tastemaker.evaluation.mae(te[:, 2], p_wr))
        out["tastemaker_als_wr"]["fit_s"].append(t_wr)
        print(f"fold {k}: ExplicitALS RMSE {out['tastemaker']['rmse'][-1]:.4f} "
              f"({t:.1f} s), Surprise SVD RMSE {out['surprise_svd']['rmse'][-1]:.4f}",
              flush=True)
    out["load_average_after"] = os.getloadavg()
    for side in out.values():
        if isinstance(side, dict):
            for key in ("rmse", "mae", "fit_s"):
                side[key + "_mean"] = float(np.mean(side[key]))
    out["params"] = tastemaker.ExplicitALS().get_params()
    print(f"5-fold ML-100K: ExplicitALS RMSE {out['tastemaker']['rmse_mean']:.4f} MAE "
          f"{out['tastemaker']['mae_mean']:.4f} (ALS-WR alone "
          f"{out['tastemaker_als_wr']['rmse_mean']:.4f}); Surprise SVD RMSE "
          f"{out['surprise_svd']['rmse_mean']:.4f} MAE {out['surprise_svd']['mae_mean']:.4f}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--K", type=int, nargs="+", default=[10, 50, 100, 200, 500],
                    help="the kNN neighbourhood sizes swept (default: 10 50 100 200 500)")
    ap.add_argument("--similarities", nargs="+", default=["cosine", "bm25", "tfidf"],
                    choices=["cosine", "bm25", "tfidf"],
                    help="the kNN similarities compared (default: all three implicit has)")
    ap.add_argument("--ease-regularization", type=float, default=300.0)
    ap.add_argument("--skip-ease", action="store_true", help="no EASE row in the kNN section")
    ap.add_argument("--skip-surprise", action="store_true")
    ap.add_argument("--skip-knn", action="store_true",
                    help="only the ratings section (the kNN section of an earlier run is kept)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.json")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # implicit's CSR-conversion notices
    result = {"machine": machine_info(args.threads), "seed": SEED}
    if not args.skip_knn:
        result["load_average_before_knn"] = os.getloadavg()
        result["knn"] = knn(args)
        result["load_average_after_knn"] = os.getloadavg()
    elif args.out.exists():  # keep the kNN section of an earlier run
        result["knn"] = json.loads(args.out.read_text()).get("knn")
    if not args.skip_surprise:
        result["ratings"] = ratings(args)
    elif args.out.exists():  # keep the ratings section of an earlier run
        previous = json.loads(args.out.read_text())
        if "ratings" in previous:
            result["ratings"] = previous["ratings"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
