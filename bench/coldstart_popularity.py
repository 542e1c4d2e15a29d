#!/usr/bin/env python
"""Cold start: a popularity term predicted from metadata, added to HybridALS's cold scores.

A held-out title ranked by its TRUE popularity alone scores NDCG@10 ~0.44 on the
validation folds, HybridALS ~0.335 (bench/README.md, "Cold start: HybridALS's feature
map ..."), so this script screens, on ``bench/models_coldstart.py``'s validation protocol
only (``--folds`` disjoint cold folds of each split seed's training items; the test
items are never touched), item terms b_i predicted from the features f_i by a ridge over
the items with interactions, added to the cold score:

    s_ui = x_u^T W^T f_i + beta * b_i

Targets of the ridge (penalty ``--mus`` on the feature rows, the intercept unshrunk):

- ``logpop``: log(1 + n_i), n_i the item's training interactions;
- ``pop``: n_i / n_users (a rate, in the units of a 0/1 preference);
and, scored the same way:
- ``meanuser``: beta * xbar^T W^T f_i (xbar the mean user factor): every user moved
  toward the mean user, i.e. the model's own non-personal part;
- ``zlogpop``: per-user z-scored cold scores + beta * z-scored b (the earlier session's
  form);
- diagnostics (not candidates): ``rank logpop`` (the cold items ranked by b alone, the
  same list for everyone) and ``oracle pop`` (by their true validation popularity).

And, instead of a term, the map W itself fitted with the items weighted by popularity
n_i^g (the cold items' factors are then F W; the test-split diagnostics of an earlier
session moved seed 1 up with n_i^0.5):

- ``wridge g=.. mu=..``: post hoc, W refitted on the fitted warm factors;
- ``wridge infit g=..``: inside every sweep (the warm items' priors too).

HybridALS is fitted once per fold with its defaults (factors 64, 15 sweeps); beta = 0 is
that model.  Prints, per variant, the validation mean, the paired difference to beta = 0
over all folds with its standard error, and the folds better.

Usage: python bench/coldstart_popularity.py [--seeds 0 1 2 3 4] [--threads 2]
       (TASTEMAKER_DATA must point at the folder holding ml-100k/)
"""

from __future__ import annotations

from unittest import mock

import _common  # noqa: E402,F401  (sets OPENBLAS_CORETYPE, sys.path)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker as tm  # noqa: E402
from tastemaker.models import hybrid  # noqa: E402
from tastemaker.models.hybrid import _ridge  # noqa: E402

from models_coldstart import (score_lists, screen_args, screen_parser, test_users,  # noqa: E402
                              top_k_of, validation_screen)


def ndcg(scores: np.ndarray, test, users, cold) -> float:
    return score_lists(top_k_of(scores, cold), test, users)["ndcg@10"]


def zscore(a: np.ndarray, axis=None) -> np.ndarray:
    m, s = a.mean(axis=axis, keepdims=True), a.std(axis=axis, keepdims=True)
    return (a - m) / np.where(s > 0, s, 1.0)


def make(seed, args):
    return tm.HybridALS(factors=64, iterations=15, random_state=seed,
                        num_threads=args.threads, kernel_weight=args.kernel_weight)


def run_fold(seed, tr, te, cl, F, args) -> dict:
    m = make(seed, args).fit(tr, F, show_progress=False)
    users = test_users(te)
    Fd = sp.csr_matrix(m._design(F, n_items=tr.shape[1]))
    n_i = np.diff(sp.csc_matrix(tr).indptr).astype(np.float64)
    warm = np.flatnonzero(n_i > 0)
    X = m.user_factors.astype(np.float64)
    Yc = m.item_factors[cl].astype(np.float64)
    S = X[users] @ Yc.T
    row = {"base": ndcg(S, te, users, cl)}
    xbar = X.mean(axis=0)
    mean_part = Yc @ xbar
    for beta in args.betas_meanuser:
        row[f"meanuser b={beta:g}"] = ndcg(S + beta * mean_part[None, :], te, users, cl)
    targets = {"logpop": np.log1p(n_i), "pop": n_i / tr.shape[0]}
    Sz = zscore(S, axis=1)
    for mu in args.mus:
        pen = np.full(Fd.shape[1], float(mu))
        pen[-1] = 0.0
        for name, t in targets.items():
            coef = _ridge(Fd[warm], t[warm][:, None], np.ones(warm.size), pen)[:, 0]
            b = np.asarray(Fd[cl] @ coef).ravel()
            betas = args.betas_logpop if name == "logpop" else args.betas_pop
            for beta in betas:
                row[f"{name} mu={mu:g} b={beta:g}"] = ndcg(S + beta * b[None, :], te, users, cl)
            if name == "logpop":
                zb = zscore(b)
                for beta in args.betas_z:
                    row[f"zlogpop mu={mu:g} b={beta:g}"] = ndcg(Sz + beta * zb[None, :], te,
                                                                users, cl)
                row[f"rank logpop mu={mu:g}"] = ndcg(np.tile(b, (users.size, 1)), te, users, cl)
    for g in args.wridge_gammas:
        for mu in args.wridge_mus:
            pen = np.full(Fd.shape[1], float(mu))
            pen[-1] = 0.0
            W = _ridge(Fd[warm], m.item_factors[warm].astype(np.float64), n_i[warm] ** g, pen)
            row[f"wridge g={g:g} mu={mu:g}"] = ndcg(X[users] @ (Fd[cl] @ W).T, te, users, cl)
    for g in args.wridge_infit:
        def weighted(Fw, Yw, w, pen, g=g):
            return _ridge(Fw, Yw, w * n_i[warm] ** g, pen)
        with mock.patch.object(hybrid, "_ridge", weighted):
            mi = make(seed, args).fit(tr, F, show_progress=False)
        row[f"wridge infit g={g:g}"] = ndcg(mi.user_factors[users].astype(np.float64)
                                            @ mi.item_factors[cl].T.astype(np.float64),
                                            te, users, cl)
    true_pop = np.diff(sp.csc_matrix(te).indptr)[cl].astype(np.float64)
    row["oracle pop"] = ndcg(np.tile(true_pop, (users.size, 1)), te, users, cl)
    return row


def main() -> None:
    ap = screen_parser(__doc__, "coldstart_popularity.json")
    ap.add_argument("--mus", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--betas-logpop", type=float, nargs="+",
                    default=[0.003, 0.01, 0.03, 0.1, 0.3])
    ap.add_argument("--betas-pop", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0])
    ap.add_argument("--betas-z", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    ap.add_argument("--betas-meanuser", type=float, nargs="+",
                    default=[-0.5, 0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--wridge-gammas", type=float, nargs="*", default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--wridge-mus", type=float, nargs="+", default=[10.0, 100.0, 300.0])
    ap.add_argument("--wridge-infit", type=float, nargs="*", default=[0.25, 0.5])
    ap.add_argument("--kernel-weight", type=float, default=0.0,
                    help="HybridALS's kernel_weight (0: the map alone, as screened)")
    args = screen_args(ap)
    validation_screen(args, run_fold,
                      "cold-start ML-100K: predicted-popularity term on HybridALS's cold "
                      "scores, validation folds only", 28)


if __name__ == "__main__":
    main()
