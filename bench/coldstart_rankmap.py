#!/usr/bin/env python
"""Cold start: HybridALS's feature map refitted for ranking, feature crosses, and more.

Levers for the titles without data (each one a flag; none won), screened on ``bench/models_coldstart.py``'s
validation protocol only (``--folds`` disjoint cold folds of each split seed's training
items; the test items are never touched):

- ``bpr ...``: the ridge map W refitted post hoc, with the users' fitted factors x_u
  fixed, for the pairwise ranking of the items with data (BPR):

      max_W  sum_{(u,i) observed, j sampled}  log sigmoid(x_u^T W^T (f_i - f_j))
             - lam |W - W_ridge|^2

  full-batch Adam steps from W_ridge (``--bpr-steps``: the step counts scored along one
  run, ``--bpr-lrs``, ``--bpr-lams``; W's entries are small, median |W| ~0.008, so Adam's
  per-entry step ~lr must be well below that;
  j uniform over the items with data, resampled every step); the cold items then get
  F W_bpr plus the model's kernel term (the residuals of the warm factors from W_ridge,
  as in the library);
- ``collab+kernel mu=.. b=..``: the map fitted on the implicit-ALS loss itself with the
  users fixed (``coldstart_feature_map.collaborative_map``, penalty mu), blended b with
  the ridge map, plus the kernel term on the blend's residuals;
- ``users cold-style b=..``: post hoc, the users re-solved against the factors the
  items with data would get without data (W^T f_j + the kernel average of the other
  items' residuals, leave-one-out), blended with the fitted users, (1 - b) x_u + b x_u';
- ``factors f``: HybridALS's defaults with f factors instead of 64;
- ``thermo xs g=..``: HybridALS fitted with the year buckets coded ordinally (column b
  = bucket b or later, times s), so the kernel sees adjacent years as close and the map
  can be smooth in the year (``kernel_gamma`` g);
- ``users reg xk alpha a``: post hoc, the users re-solved against the fitted item
  factors (the items with data as negatives, as in ``fit``) with the users' weight x k
  and confidence ``alpha`` a, then scored against the same cold factors;
- ``cross ...``: HybridALS fitted on the features plus their genre x year-bucket
  products (a title's genres each crossed with its year bucket), with the feature
  penalty ``mu`` (the ridge map and the kernel distance both see the crosses);
  ``pairs ...`` adds the genre-pair products instead; ``... map only`` puts the
  products in the map alone (the kernel term over the plain features' distances).

``base`` is HybridALS with its defaults (factors 64, 15 sweeps).  The runs behind
bench/README.md ("Cold start: the map refitted for ranking, ...") each turned one group
on and the others off (``--bpr-lrs`` and ``--collab-mus`` with no values switch those
two off); their arguments are in each JSON's ``args``.

Usage: python bench/coldstart_rankmap.py [--seeds 0 1 2 3 4] [--threads 2]
       (TASTEMAKER_DATA must point at the folder holding ml-100k/)
"""

from __future__ import annotations


import _common  # noqa: E402,F401  (sets OPENBLAS_CORETYPE, sys.path)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tastemaker as tm  # noqa: E402
from tastemaker import _core  # noqa: E402
from tastemaker.models.als import _native  # noqa: E402
from tastemaker.models import hybrid  # noqa: E402

from coldstart_feature_map import collaborative_map, penalty_of  # noqa: E402
from models_coldstart import eval_tm, screen_args, screen_parser, validation_screen  # noqa: E402


def scored(m, tr, te, cl, factors) -> float:
    keep = m.item_factors.copy()
    m.item_factors[cl] = np.asarray(factors, dtype=np.float32)
    m.item_factors = m.item_factors
    try:
        return eval_tm(m, tr, te, cl)["ndcg@10"]
    finally:
        m.item_factors = keep


def bpr_map(tr, Fd, X, W0, warm, steps, lr, lam, seed) -> dict:
    """Full-batch Adam on the BPR objective above, from W0; users fixed.  Returns
    {n: W after n steps} for every n in ``steps``."""
    coo = tr.tocoo()
    u, i = coo.row, coo.col
    rng = np.random.default_rng(seed)
    W = W0.copy()
    m1 = np.zeros_like(W)
    m2 = np.zeros_like(W)
    n_items = tr.shape[1]
    FdT = sp.csr_matrix(Fd.T)
    Xu = X[u]
    pairs = np.arange(u.size)
    ones = np.ones(u.size)
    Pi = sp.csr_matrix((ones, (i, pairs)), shape=(n_items, u.size))
    out = {}
    for t in range(1, max(steps) + 1):
        j = warm[rng.integers(0, warm.size, size=u.size)]
        Z = np.asarray(Fd @ W)
        d = np.einsum("nk,nk->n", Xu, Z[i] - Z[j])
        g = 1.0 / (1.0 + np.exp(d))  # d/dd log sigmoid(d)
        gx = Xu * g[:, None]
        # per-item sums of +gx (positives) and -gx (sampled negatives)
        G = Pi @ gx - sp.csr_matrix((ones, (j, pairs)), shape=(n_items, u.size)) @ gx
        grad = np.asarray(FdT @ G) / u.size - 2.0 * lam * (W - W0)
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        W = W + lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
        if t in steps:
            out[t] = W.copy()
    return out


def crosses(F: tm.ItemFeatures, pairs: bool) -> sp.csr_matrix:
    M = F.matrix.tocsc()
    gen = M[:, F.groups == "genres"].toarray()
    year = M[:, F.groups == "year"].toarray()
    if pairs:
        a, b = np.triu_indices(gen.shape[1], 1)
        extra = gen[:, a] * gen[:, b]
    else:
        extra = (gen[:, :, None] * year[:, None, :]).reshape(gen.shape[0], -1)
    extra = extra[:, extra.sum(axis=0) > 0]
    return sp.hstack([F.matrix, sp.csr_matrix(extra)], format="csr", dtype=np.float32)


def thermometer(F: tm.ItemFeatures, scale: float) -> sp.csr_matrix:
    """The year buckets as an ordinal code: column b is 1 when a title's bucket is b or
    later (x ``scale``), so two buckets k apart differ in k columns (one-hot: always 2)."""
    M = F.matrix.tocsc()
    year = M[:, F.groups == "year"].toarray()
    code = np.cumsum(year, axis=1)[:, 1:] * scale  # the first column is all ones
    return sp.hstack([M[:, F.groups != "year"], sp.csr_matrix(code)], format="csr",
                     dtype=np.float32)


def make(seed, args, **kw):
    return tm.HybridALS(factors=64, iterations=15, random_state=seed,
                        num_threads=args.threads, **kw)


def run_fold(seed, tr, te, cl, F, args) -> dict:
    m = make(seed, args).fit(tr, F, show_progress=False)
    row = {"base": eval_tm(m, tr, te, cl)["ndcg@10"]}
    Fd = sp.csr_matrix(m._design(F, n_items=tr.shape[1]), dtype=np.float64)
    warm = np.flatnonzero(m.item_has_data_)
    X = m.user_factors.astype(np.float64)
    W0 = m.feature_factors_
    p = m._checked_params()
    kern = m._kernel_term(Fd[cl], p)
    for lr in args.bpr_lrs:
        for lam in args.bpr_lams:
            for steps, W in bpr_map(tr, Fd, X, W0, warm, args.bpr_steps, lr, lam,
                                    seed).items():
                Yc = np.asarray(Fd[cl] @ W)
                row[f"bpr lr={lr:g} lam={lam:g} n={steps}"] = scored(m, tr, te, cl, Yc + kern)
    for mu in args.collab_mus:
        # the map fitted on the implicit-ALS loss itself, users fixed (stop 19's
        # bench/coldstart_feature_map.py), now with the kernel term on top: residuals of
        # the warm factors from this map, smoothed as the library does
        Wc = collaborative_map(tr, Fd, X, m.alpha, penalty_of(Fd.shape[1], mu))
        R = m.item_factors[warm].astype(np.float64) - np.asarray(Fd[warm] @ Wc)
        kc = p["kernel_weight"] * hybrid._kernel_smooth(Fd[cl], Fd[warm], R,
                                                        p["kernel_gamma"])
        for b in args.collab_blends:
            W = b * Wc + (1 - b) * W0
            row[f"collab+kernel mu={mu:g} b={b:g}"] = scored(
                m, tr, te, cl, np.asarray(Fd[cl] @ W) + b * kc + (1 - b) * kern)
    for k in args.user_reg_scales:
        for a in args.user_alphas:
            # the users re-solved against the fitted item factors with the users' weight
            # x k and confidence alpha a (k = 1, a = the model's alpha: the fitted users)
            Xr = m.user_factors.copy()
            has = m.item_has_data_
            gram = _core.als_gram(np.ascontiguousarray(m.item_factors[has]), args.threads)
            _core.als_solve(*_native(sp.csr_matrix(tr, dtype=np.float32)), m.item_factors,
                            gram, Xr, m.regularization_ * k, 0.0, a, "cholesky", 3,
                            args.threads)
            keep = m.user_factors
            m.user_factors = Xr
            try:
                row[f"users reg x{k:g} alpha {a:g}"] = eval_tm(m, tr, te, cl)["ndcg@10"]
            finally:
                m.user_factors = keep
    if args.cold_style_blends:
        # users re-solved against the factors the items with data would get if they had
        # none (W^T f_j + the kernel average of the OTHER items' residuals: leave-one-out),
        # i.e. tailored to how the cold titles are represented; blended with the fitted
        # users as (1 - b) x_u + b x_u^cold
        Fw = Fd[warm].toarray()
        sq = (Fw * Fw).sum(axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * Fw @ Fw.T, 0.0)
        Kw = np.exp(-p["kernel_gamma"] * d2)
        np.fill_diagonal(Kw, 0.0)
        Rw = m.item_factors[warm].astype(np.float64) - Fw @ W0
        Yl = m.item_factors.copy()
        Yl[warm] = (Fw @ W0 + p["kernel_weight"] * (Kw @ Rw)
                    / np.maximum(Kw.sum(axis=1, keepdims=True), 1e-300)).astype(np.float32)
        Xc = m.user_factors.copy()
        gram = _core.als_gram(np.ascontiguousarray(Yl[warm]), args.threads)
        _core.als_solve(*_native(sp.csr_matrix(tr, dtype=np.float32)), Yl, gram, Xc,
                        m.regularization_, 0.0, m.alpha, "cholesky", 3, args.threads)
        keep = m.user_factors
        for b in args.cold_style_blends:
            m.user_factors = np.ascontiguousarray((1 - b) * keep + b * Xc, dtype=np.float32)
            try:
                row[f"users cold-style b={b:g}"] = eval_tm(m, tr, te, cl)["ndcg@10"]
            finally:
                m.user_factors = keep
    for f in args.factors:
        mf = tm.HybridALS(factors=f, iterations=15, random_state=seed,
                          num_threads=args.threads).fit(tr, F, show_progress=False)
        row[f"factors {f}"] = eval_tm(mf, tr, te, cl)["ndcg@10"]
    for sc in args.thermo_scales:
        for g in args.thermo_gammas:
            mx = make(seed, args, kernel_gamma=g).fit(tr, thermometer(F, sc),
                                                     show_progress=False)
            row[f"thermo x{sc:g} g={g:g}"] = eval_tm(mx, tr, te, cl)["ndcg@10"]
    for name, pairs in (("cross", False), ("pairs", True)):
        if not getattr(args, name):
            continue
        Fx = crosses(F, pairs)
        for mu in args.cross_mus:
            # the crosses in the map only: the kernel keeps the plain features' distances
            mx = make(seed, args, feature_regularization=mu, kernel_weight=0.0).fit(
                tr, Fx, show_progress=False)
            Fxd = sp.csr_matrix(mx._design(Fx, n_items=tr.shape[1]), dtype=np.float64)
            R = mx.item_factors[warm].astype(np.float64) - np.asarray(
                Fxd[warm] @ mx.feature_factors_)
            Yc = np.asarray(Fxd[cl] @ mx.feature_factors_) + p["kernel_weight"] * \
                hybrid._kernel_smooth(Fd[cl], Fd[warm], R, p["kernel_gamma"])
            row[f"{name} map only mu={mu:g}"] = scored(mx, tr, te, cl, Yc)
            for g in args.cross_gammas:
                if g <= 0:
                    continue
                mx = make(seed, args, feature_regularization=mu, kernel_gamma=g).fit(
                    tr, Fx, show_progress=False)
                row[f"{name} mu={mu:g} g={g:g}"] = eval_tm(mx, tr, te, cl)["ndcg@10"]
    return row


def main() -> None:
    ap = screen_parser(__doc__, "coldstart_rankmap.json")
    ap.add_argument("--bpr-lrs", type=float, nargs="*", default=[1e-5, 1e-4])
    ap.add_argument("--bpr-lams", type=float, nargs="*", default=[0.0])
    ap.add_argument("--bpr-steps", type=int, nargs="*", default=[30, 100])
    ap.add_argument("--collab-mus", type=float, nargs="*", default=[10.0, 100.0, 1000.0])
    ap.add_argument("--collab-blends", type=float, nargs="*", default=[0.5, 1.0])
    ap.add_argument("--user-reg-scales", type=float, nargs="*", default=[])
    ap.add_argument("--user-alphas", type=float, nargs="*", default=[1.0])
    ap.add_argument("--cold-style-blends", type=float, nargs="*", default=[])
    ap.add_argument("--factors", type=int, nargs="*", default=[])
    ap.add_argument("--thermo-scales", type=float, nargs="*", default=[])
    ap.add_argument("--thermo-gammas", type=float, nargs="*", default=[1.0])
    ap.add_argument("--cross", action="store_true")
    ap.add_argument("--pairs", action="store_true")
    ap.add_argument("--cross-mus", type=float, nargs="*", default=[100.0, 300.0])
    ap.add_argument("--cross-gammas", type=float, nargs="*", default=[0.5, 1.0])
    args = screen_args(ap)
    validation_screen(args, run_fold,
                      "cold-start ML-100K: HybridALS's map refitted for ranking, and feature "
                      "crosses, validation folds only", 30)


if __name__ == "__main__":
    main()
