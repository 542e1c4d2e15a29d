"""Does the synthetic log hold taste beyond genre x popularity, as much as real data does?

The shared-account targets (bench/shared_accounts.py) are judged on the synthetic log, so
its structure decides what any method can reach.  Its popularity skew is calibrated on
MovieLens 100K (the Gini there); this bench calibrates the other half of a pick: how much
of a viewer's choice is explained by the genres it likes and the titles' popularity, and
how much is taste for individual titles that collaborative filtering can learn.

Protocol (the same for every data set, one run, fixed seed):

1. A binary user x title matrix: ML-100K's ratings (from ``TASTEMAKER_DATA``), and the
   synthetic log's distinct (account, title) plays (``synthetic_streaming`` with its
   defaults, which bench/shared_accounts.py uses, overridable with ``--gen key=value``).
2. ``random_split``: 20% of each user's titles held out (seed ``--seed``).
3. recall@20 of the held-out titles (training titles never recommended) for
   * ``popularity``: training counts;
   * ``genre_pop``: the generator's own model class fitted to the data -- each user's
     genre preference (the posterior mean under a Dirichlet prior, EM over which genre
     each training title was picked for, :func:`tastemaker.data.synthetic.genre_posterior`)
     times within-genre popularity (training counts + 1), mixed with popularity alone at
     an explore rate; best over a small grid of explore rate and prior;
   * ``als`` (``tm.ALS``) and ``knn`` (``tm.ItemKNN``): best over a small grid each.
   Every grid is the same on every data set and chosen on the held-out titles, so each
   figure is optimistic for its model alike.
4. ``cf_over_genre_pop`` = the better of ALS and ItemKNN over genre x popularity: 1 when
   taste is genre and popularity only; real viewers' choices give more.

    python bench/generator_calibration.py [--users 4000 --items 2000 --seed 0]
        [--gen item_taste=1.0 ...] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import _common  # noqa: F401  (sets the environment and sys.path first)
import numpy as np
import scipy.sparse as sp
import tastemaker as tm
from tastemaker.data.synthetic import genre_posterior
from tastemaker.evaluation import random_split, recall_at_k

GENRE_POP_GRID = [(e, c) for e in (0.02, 0.1, 0.3, 0.6) for c in (0.25, 1.0)]
ALS_GRID = [(f, r) for f in (16, 64) for r in (10.0, 100.0)]
KNN_GRID = [(k, s) for k in (50, 200) for s in ("cosine", "bm25")]


def _top(scores: np.ndarray, train: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    s = scores.copy()
    r = train[users]
    s[np.repeat(np.arange(users.size), np.diff(r.indptr)), r.indices] = -np.inf
    top = np.argpartition(-s, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def genre_pop_scores(train: sp.csr_matrix, item_g: np.ndarray, explore: float,
                     concentration: float) -> np.ndarray:
    """The generator's pick model fitted to ``train``: (1 - e) pref_u @ P(title | genre)
    + e P(title), with P(title | genre) by training popularity (+1) and pref_u the
    posterior mean genre preference from u's training titles."""
    pop = np.asarray(train.sum(axis=0)).ravel() + 1.0
    gw = item_g * pop[:, None]
    given = gw / np.where(gw.sum(axis=0) > 0, gw.sum(axis=0), 1.0)
    expl = pop / pop.sum()
    coo = train.tocoo()
    pref = genre_posterior(coo.row, given[coo.col], expl[coo.col], train.shape[0], explore,
                           concentration)
    return (1 - explore) * pref @ given.T + explore * expl


def evaluate(matrix: sp.csr_matrix, item_g: np.ndarray, seed: int, k: int) -> dict:
    """recall@k of every contender (best of its grid) on one per-user random split."""
    matrix = matrix.astype(np.float32)
    matrix.data[:] = 1.0
    train, test = random_split(matrix, 0.2, random_state=seed)
    train, test = train.tocsr(), test.tocsr()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    # titles without a genre form their own
    item_g = np.column_stack([item_g, ~item_g.any(axis=1)]) if (~item_g.any(axis=1)).any() \
        else item_g

    def rec(lists):
        return float(recall_at_k(lists, test, k, users=users))

    out = {"users": int(matrix.shape[0]), "titles": int(matrix.shape[1]),
           "pairs": int(matrix.nnz),
           "titles_per_user_median": float(np.median(np.diff(matrix.tocsr().indptr))),
           "test_users": int(users.size)}
    pop = np.asarray(train.sum(axis=0)).ravel()
    out["popularity"] = round(rec(_top(np.tile(pop, (users.size, 1)), train, users, k)), 4)
    best = {}
    for e, c in GENRE_POP_GRID:
        r = rec(_top(genre_pop_scores(train, item_g, e, c)[users], train, users, k))
        if r > best.get("recall", -1):
            best = {"recall": round(r, 4), "explore": e, "concentration": c}
    out["genre_pop"] = best
    best = {}
    for f, reg in ALS_GRID:
        m = tm.ALS(factors=f, regularization=reg, iterations=15, random_state=seed,
                   num_threads=1).fit(train, show_progress=False)
        ids, _ = m.recommend(users, train[users], N=k)
        r = rec(ids)
        if r > best.get("recall", -1):
            best = {"recall": round(r, 4), "factors": f, "regularization": reg}
    out["als"] = best
    best = {}
    for kk, sim in KNN_GRID:
        m = tm.ItemKNN(K=kk, similarity=sim, num_threads=1).fit(train)
        ids, _ = m.recommend(users, train[users], N=k)
        r = rec(ids)
        if r > best.get("recall", -1):
            best = {"recall": round(r, 4), "K": kk, "similarity": sim}
    out["knn"] = best
    gp = out["genre_pop"]["recall"]
    out["als_over_genre_pop"] = round(out["als"]["recall"] / gp, 3)
    out["knn_over_genre_pop"] = round(out["knn"]["recall"] / gp, 3)
    out["cf_over_genre_pop"] = max(out["als_over_genre_pop"], out["knn_over_genre_pop"])
    out["genre_pop_over_popularity"] = round(gp / out["popularity"], 3)
    return out


def _first_n(m: sp.csr_matrix, t: np.ndarray, n: int) -> sp.csr_matrix:
    """Each row's ``n`` earliest entries (by ``t``, aligned with ``m``'s entries)."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((t, rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = rank < n
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


def _gen_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE",
                    help="synthetic_streaming option (repeatable)")
    ap.add_argument("--skip-real", action="store_true", help="only the synthetic log")
    ap.add_argument("--real-max-history", type=int, default=None,
                    help="also evaluate ML-100K with each user's first N ratings only (by "
                    "time): histories as short as the synthetic log's")
    ap.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                     "generator_calibration.json"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    # the generator's defaults (bench/shared_accounts.py's settings) unless overridden
    gen = {}
    for kv in args.gen:
        key, _, val = kv.partition("=")
        gen[key] = _gen_value(val)
    result = {"benchmark": "generator_calibration",
              "command": "python bench/generator_calibration.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "args": vars(args), "generator": gen,
              "machine": {"cpu_count": os.cpu_count(), "load_before": round(load0, 2)}}
    root = os.environ.get("TASTEMAKER_DATA")
    if root and not args.skip_real:
        X, items = tm.datasets.movielens_100k(os.path.join(root, "ml-100k"), value=None)
        names = sorted({g for s in items["genres"] for g in s.split("|") if g})
        item_g = np.array([[g in s.split("|") for g in names] for s in items["genres"]])
        m = X.to_csr()
        result["ml100k"] = evaluate(m, item_g, args.seed, args.k)
        if args.real_max_history:
            result[f"ml100k_first{args.real_max_history}"] = evaluate(
                _first_n(m, X.timestamps, args.real_max_history), item_g, args.seed, args.k)
    synth = tm.datasets.synthetic_streaming(args.users, args.items, seed=args.seed, **gen)
    plays = synth.events[synth.events["event"] == "play"][["user", "item"]].drop_duplicates()
    m = sp.csr_matrix((np.ones(len(plays), np.float32),
                       (plays["user"].to_numpy(), plays["item"].to_numpy())),
                      shape=(args.users, args.items))
    result["synthetic"] = evaluate(m, synth.item_tastes > 0, args.seed, args.k)
    result["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    result["seconds"] = round(time.time() - t0, 1)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
