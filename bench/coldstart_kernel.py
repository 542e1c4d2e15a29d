#!/usr/bin/env python
"""Cold start: HybridALS's kernel term for titles without data, screened on validation.

HybridALS gives a title without interactions y_i = W^T f_i (the ridge map) plus
``kernel_weight`` b times a Nadaraya-Watson average, over the items with data, of the
map's residuals r_j = y_j - W^T f_j with weights exp(-``kernel_gamma`` |f_i - f_j|^2)
(see the class docstring).  This script scores that term and two other forms, on
``bench/models_coldstart.py``'s validation protocol only (``--folds`` disjoint cold
folds of each split seed's training items; the test items are never touched):

- ``resid g=.. b=..``: the library's form (``kernel_gamma`` g, ``kernel_weight`` b,
  through ``HybridALS.item_factors_from_features``);
- ``blend g=.. b=..``: (1 - b) W^T f_i + b times the kernel average of the warm
  items' factors themselves (not of their residuals);
- ``kappa k``: the residual form at g = 1, b = 1 with the average's denominator
  sum_j k_ij + k (a pseudo-count that shrinks titles with few close neighbours);
- ``year x s``: the residual form at g = 1, b = 1 with the year columns' squared
  distance scaled by s (a different year bucket counts 2 s, each differing genre 1).

HybridALS is fitted once per fold (factors 64, 15 sweeps, ``--params`` on top of the
defaults); ``base`` is ``kernel_weight=0``, the map alone (HybridALS before this term).
Prints per variant the validation mean, the paired difference to ``base`` over all
folds with its standard error, and the folds better.

Usage: python bench/coldstart_kernel.py [--seeds 0 1 2 3 4] [--params '{"alpha": 3}']
       (TASTEMAKER_DATA must point at the folder holding ml-100k/)
"""

from __future__ import annotations

import json

import _common  # noqa: E402,F401  (sets OPENBLAS_CORETYPE, sys.path)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402

import tastemaker as tm  # noqa: E402
from tastemaker.models.hybrid import _kernel_smooth  # noqa: E402

from models_coldstart import eval_tm, screen_args, screen_parser, validation_screen  # noqa: E402


def scored(m, tr, te, cl, factors) -> float:
    """NDCG@10 over the cold items with these cold factors; the model is restored."""
    keep = m.item_factors.copy()
    m.item_factors[cl] = np.asarray(factors, dtype=np.float32)
    m.item_factors = m.item_factors  # assigned: the query caches see the change
    try:
        return eval_tm(m, tr, te, cl)["ndcg@10"]
    finally:
        m.item_factors = keep


def run_fold(seed, tr, te, cl, F, args) -> dict:
    m = tm.HybridALS(factors=64, iterations=15, random_state=seed, num_threads=args.threads,
                     **{**args.params, "kernel_weight": 1.0}).fit(tr, F, show_progress=False)
    Fd = sp.csr_matrix(m._design(F, n_items=tr.shape[1]))
    warm = np.flatnonzero(m.item_has_data_)
    Fc = F.matrix[cl]

    def library(weight, gamma):
        m.kernel_weight, m.kernel_gamma = weight, gamma
        return m.item_factors_from_features(Fc)
    ridge = library(0.0, 1.0)
    row = {"base": scored(m, tr, te, cl, ridge)}
    for g in args.gammas:
        for b in args.weights:
            row[f"resid g={g:g} b={b:g}"] = scored(m, tr, te, cl, library(b, g))
    Yw = m.item_factors[warm].astype(np.float64)
    for g in args.blend_gammas:
        avg = _kernel_smooth(Fd[cl], Fd[warm], Yw, g)
        for b in args.blend_weights:
            row[f"blend g={g:g} b={b:g}"] = scored(m, tr, te, cl, (1 - b) * ridge + b * avg)
    R = Yw - Fd[warm] @ m.feature_factors_
    K = np.exp(-cdist(Fd[cl].toarray(), Fd[warm].toarray(), "sqeuclidean"))  # g = 1
    year = np.flatnonzero(np.char.startswith(np.asarray(F.names, dtype=str), "year"))
    for sc in args.year_scales:
        scale = np.ones(Fd.shape[1])
        scale[year] = np.sqrt(sc)
        Fs = sp.csr_matrix(Fd @ sp.diags(scale))
        row[f"year x {sc:g}"] = scored(m, tr, te, cl,
                                       ridge + _kernel_smooth(Fs[cl], Fs[warm], R, 1.0))
    for k in args.kappas:
        row[f"kappa {k:g}"] = scored(m, tr, te, cl,
                                     ridge + (K @ R) / (K.sum(axis=1, keepdims=True) + k))
    return row


def main() -> None:
    ap = screen_parser(__doc__, "coldstart_kernel.json")
    ap.add_argument("--params", type=json.loads, default={},
                    help="HybridALS parameters on top of the defaults (JSON)")
    ap.add_argument("--gammas", type=float, nargs="+",
                    default=[0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    ap.add_argument("--blend-gammas", type=float, nargs="*", default=[0.5, 1.0, 1.5, 2.0])
    ap.add_argument("--blend-weights", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--kappas", type=float, nargs="*", default=[0.3, 1.0, 3.0, 10.0])
    ap.add_argument("--year-scales", type=float, nargs="*", default=[0.25, 0.5, 2.0])
    args = screen_args(ap)
    validation_screen(args, run_fold,
                      "cold-start ML-100K: HybridALS's kernel term, validation folds only", 22)


if __name__ == "__main__":
    main()
