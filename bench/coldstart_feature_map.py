#!/usr/bin/env python
"""Cold start: HybridALS's feature -> factor map fitted on the collaborative loss (tried).

HybridALS fits its map W by ridge onto the fitted item factors (``hybrid._ridge``:
min_W sum_i w_i |y_i - W^T f_i|^2, a distance in factor space).  A cold item is scored
x_u^T W^T f_i, so this script fits W to score that way on the items with interactions,
with the users' fitted factors X fixed (LightFM's item = sum of feature embeddings is
trained on its ranking loss in the same spirit):

    min_W  sum_u sum_{i warm} c_ui (p_ui - x_u^T W^T f_i)^2 + sum_a mu_a |W_a|^2

(mu on the feature rows, ~0 on the intercept row, as the ridge does), and compares, on
``bench/models_coldstart.py``'s validation protocol only (``--folds`` disjoint cold folds
of each split seed's training items; the test items are never touched):

- ``ridge``: HybridALS as it is (defaults, factors 64, 15 sweeps);
- ``collab mu=..``: the cold items get F W_c instead (post hoc, same fitted model);
- ``blend b mu=..``: b W_c + (1 - b) W_ridge;
- ``altR collab mu=..``: R rounds of: the users re-solved against the feature-only item
  factors F W_c (the users given items = FW), then W_c refitted for them; those users
  score (R large: a pure feature model, LightFM's metadata-only form, fitted by ALS);
- ``inloop b mu=..``: the map of every sweep (the warm items' prior t_i and the cold
  items' factors) is b W_c + (1 - b) W_ridge, i.e. the collaborative map inside the fit;
- ``oracle mu=..`` (diagnostic, not a candidate): W_c fitted on the held-out items' OWN
  validation interactions, the best any linear map of these features can do with the
  fitted X.

The normal equations:  (F^T F) W (X^T X) + sum_i f_i f_i^T W M_i + diag(mu) W = F^T C^T X,
M_i = sum_u (c_ui - 1) x_u x_u^T.  When every stored confidence is 1 (alpha 1 on 0/1
data) the M_i vanish and, in the eigenbasis of X^T X (X^T X = V T V^T), W V splits
into one (t_b F^T F + diag(mu)) system per factor; otherwise the (n_features * factors)
Kronecker system is built densely (small feature spaces only: this is a bench).

Usage: python bench/coldstart_feature_map.py [--seeds 0 1 2 3 4] [--alphas 1 3]
       (TASTEMAKER_DATA must point at the folder holding ml-100k/)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from unittest import mock

from _common import machine_info  # noqa: E402  (sets OPENBLAS_CORETYPE, sys.path)

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker as tm  # noqa: E402
from tastemaker.models import hybrid  # noqa: E402
from tastemaker import _core  # noqa: E402
from tastemaker.evaluation import cold_item_split  # noqa: E402
from tastemaker.models.als import _native  # noqa: E402

from models_coldstart import cold_folds, eval_tm, screen_args, screen_parser, sorted_csr  # noqa: E402


def collaborative_map(user_items: sp.csr_matrix, F: sp.csr_matrix, X: np.ndarray,
                      alpha: float, penalty: np.ndarray) -> np.ndarray:
    """argmin_W sum_u sum_{i warm} c_ui (p_ui - x_u^T W^T f_i)^2 + sum_a penalty_a |W_a|^2,
    c_ui = alpha * v_ui on stored entries (p = 1), 1 elsewhere; warm = non-empty columns."""
    warm = np.flatnonzero(np.diff(sp.csc_matrix(user_items).indptr) > 0)
    Fw = np.asarray(F[warm].toarray(), dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    d, k = Fw.shape[1], X.shape[1]
    conf = sp.csc_matrix(user_items[:, warm], dtype=np.float64) * alpha
    rhs = Fw.T @ np.asarray(conf.T @ X)
    extra = conf.data - 1.0
    if not np.any(extra):
        t, V = np.linalg.eigh(X.T @ X)
        G, B = Fw.T @ Fw, rhs @ V
        Wv = np.column_stack([np.linalg.solve(t[b] * G + np.diag(penalty), B[:, b])
                              for b in range(k)])
        return Wv @ V.T
    M = np.empty((warm.size, k, k))
    for j in range(warm.size):  # M_j = sum_u (c_uj - 1) x_u x_u^T
        s, e = conf.indptr[j], conf.indptr[j + 1]
        Xu = X[conf.indices[s:e]]
        M[j] = (Xu * extra[s:e, None]).T @ Xu
    pairs = np.einsum("ia,ib->abi", Fw, Fw).reshape(d * d, warm.size)
    A = np.kron(Fw.T @ Fw, X.T @ X)  # row-major vec(W): index a * k + b
    A += (pairs @ M.reshape(warm.size, k * k)).reshape(d, d, k, k).transpose(0, 2, 1, 3) \
        .reshape(d * k, d * k)
    A[np.diag_indices_from(A)] += np.repeat(penalty, k)
    return scipy.linalg.solve(A, rhs.ravel(), assume_a="pos").reshape(d, k)


def design(model, F, n_items) -> sp.csr_matrix:
    return sp.csr_matrix(model._design(F, n_items=n_items))


def penalty_of(n_cols: int, mu: float) -> np.ndarray:
    pen = np.full(n_cols, float(mu))
    # the intercept row: all but unshrunk, as in HybridALS's ridge; the 1e-6 only pins
    # directions the data leave free (users re-solved against F W span <= n_features)
    pen[-1] = 1e-6
    return pen


def ndcg_with_map(model, train, test, cold, Fd, W, users=None) -> float:
    """NDCG@10 over the cold items when they get factors F W (and the users ``users``,
    if given); the model is restored."""
    keep, keep_users = model.item_factors.copy(), model.user_factors
    model.item_factors[cold] = (Fd[cold] @ W).astype(np.float32)
    if users is not None:
        model.user_factors = np.ascontiguousarray(users, dtype=np.float32)
    try:  # recommend with items= reads the factors as they are now; no cache to clear
        return eval_tm(model, train, test, cold)["ndcg@10"]
    finally:
        model.item_factors, model.user_factors = keep, keep_users


def users_against_map(model, train, Fd, W, threads) -> np.ndarray:
    """The users' ALS half-step against the feature-only item factors F W."""
    Y = np.ascontiguousarray(Fd @ W, dtype=np.float32)
    warm = np.flatnonzero(np.diff(sp.csc_matrix(train).indptr) > 0)
    X = model.user_factors.copy()
    gram = _core.als_gram(np.ascontiguousarray(Y[warm]), threads)
    _core.als_solve(*_native(sp.csr_matrix(train, dtype=np.float32)), Y, gram, X,
                    model.regularization_, 0.0, model.alpha, "cholesky", 3, threads)
    return X


def fit_inloop(make, train, F, mu, beta):
    """HybridALS whose per-sweep map is beta W_c + (1 - beta) W_ridge (W_c from the users
    of that sweep): the fit's ridge call is wrapped, nothing else changes."""
    seen = {}
    ridge, step = hybrid._ridge, hybrid.HybridALS._item_step
    model = make()
    Fd = design(model, F, train.shape[1])

    def item_step(aug_native, x_aug, n_users, *rest):
        seen["X"] = x_aug[:n_users]
        return step(aug_native, x_aug, n_users, *rest)

    def mixed(Fw, Yw, w, pen):
        Wc = collaborative_map(train, Fd, seen["X"], model.alpha, penalty_of(Fd.shape[1], mu))
        return beta * Wc + (1.0 - beta) * ridge(Fw, Yw, w, pen)
    with mock.patch.object(hybrid, "_ridge", mixed), \
            mock.patch.object(hybrid.HybridALS, "_item_step", staticmethod(item_step)):
        model.fit(train, F, show_progress=False)
    return model


def run_fold(seed, alpha, tr, te, cl, F, args) -> dict:
    def make():
        return tm.HybridALS(factors=64, iterations=15, alpha=alpha, random_state=seed,
                            num_threads=args.threads)
    m = make().fit(tr, F, show_progress=False)
    Fd = design(m, F, tr.shape[1])
    Wr = m.feature_factors_
    row = {"ridge": eval_tm(m, tr, te, cl)["ndcg@10"]}
    for mu in args.mus:
        pen = penalty_of(Fd.shape[1], mu)
        Wc = collaborative_map(tr, Fd, m.user_factors, alpha, pen)
        Wa, done = Wc, 0
        for rounds in (args.alt_rounds if alpha in args.alt_alphas else []):
            for _ in range(rounds - done):
                Xa = users_against_map(m, tr, Fd, Wa, args.threads)
                Wa = collaborative_map(tr, Fd, Xa, alpha, pen)
            done = rounds
            row[f"alt{rounds} collab mu={mu:g}"] = ndcg_with_map(m, tr, te, cl, Fd, Wa,
                                                                 users=Xa)
        for b in args.betas:
            name = "collab" if b == 1.0 else f"blend {b}"
            row[f"{name} mu={mu:g}"] = ndcg_with_map(m, tr, te, cl, Fd, b * Wc + (1 - b) * Wr)
        if alpha in args.inloop_alphas:
            for b in args.inloop_betas:
                mi = fit_inloop(make, tr, F, mu, b)
                row[f"inloop {b} mu={mu:g}"] = eval_tm(mi, tr, te, cl)["ndcg@10"]
    for mu in (1.0, 10.0):
        row[f"oracle mu={mu:g}"] = ndcg_with_map(
            m, tr, te, cl, Fd, collaborative_map(te, Fd, m.user_factors, alpha,
                                                 penalty_of(Fd.shape[1], mu)))
    return row


def main() -> None:
    ap = screen_parser(__doc__, "coldstart_feature_map.json", threads=1)
    ap.add_argument("--alphas", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--mus", type=float, nargs="+", default=[300.0, 1000.0, 3000.0, 1e4])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--alt-rounds", type=int, nargs="+", default=[1, 5],
                    help="rounds of users <-> collaborative map alternation scored")
    ap.add_argument("--alt-alphas", type=float, nargs="*", default=[1.0],
                    help="alphas that get the alternation (slow where alpha != 1)")
    ap.add_argument("--inloop-alphas", type=float, nargs="*", default=[1.0],
                    help="alphas that also get the in-fit variant (slow where alpha != 1)")
    ap.add_argument("--inloop-betas", type=float, nargs="+", default=[0.5, 1.0])
    args = screen_args(ap)
    X, items = tm.datasets.movielens_100k(Path(args.data) / "ml-100k", value=None)
    F = tm.datasets.item_features(items)
    C = X.to_csr()
    load_start, t0 = os.getloadavg(), time.perf_counter()
    folds = {}  # (alpha, variant) -> seed -> [per-fold NDCG@10]
    for seed in args.seeds:
        train, _, _ = cold_item_split(C, 0.2, random_state=seed)  # test never used here
        for tr, te, cl in cold_folds(sorted_csr(train), args.folds, seed + 1000):
            for alpha in args.alphas:
                for name, v in run_fold(seed, alpha, tr, te, cl, F, args).items():
                    folds.setdefault(f"alpha={alpha:g} {name}", {}).setdefault(seed, []).append(v)
    summary = {}
    for key, per in folds.items():
        base = np.concatenate([folds[key.split(" ")[0] + " ridge"][s] for s in args.seeds])
        vals = np.concatenate([per[s] for s in args.seeds])
        diff = vals - base
        summary[key] = {"validation_ndcg@10_mean": float(vals.mean()),
                        "per_seed": [float(np.mean(per[s])) for s in args.seeds],
                        "paired_diff_vs_ridge_mean": float(diff.mean()),
                        "paired_diff_sd": float(diff.std(ddof=1)) if diff.size > 1 else 0.0,
                        "folds_above_ridge": int((diff > 0).sum()), "n_folds": int(diff.size)}
    result = {"benchmark": "cold-start ML-100K feature map: collaborative vs ridge, "
                           "validation folds only",
              "machine": machine_info(args.threads), "args": vars(args),
              "load_average_start_end": [list(load_start), list(os.getloadavg())],
              "wall_s": time.perf_counter() - t0, "summary": summary, "folds": folds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'variant':<34} {'val mean':>8} {'vs ridge':>8} {'sd':>6} {'better':>6}  per seed")
    for key, s in summary.items():
        print(f"{key:<34} {s['validation_ndcg@10_mean']:8.4f} "
              f"{s['paired_diff_vs_ridge_mean']:+8.4f} {s['paired_diff_sd']:6.4f} "
              f"{s['folds_above_ridge']:>3}/{s['n_folds']:<2}  "
              + " ".join(f"{x:.4f}" for x in s["per_seed"]))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
