"""Re-ranking a candidate list: MMR diversity and calibration, one parameter each.

Both are greedy: they take more candidates than they return (the Personalizer passes
``pool`` times the row length, best first) and pick one item at a time.

* :func:`mmr` - Maximal Marginal Relevance (Carbonell & Goldstein 1998).  Each step
  takes the candidate maximizing ``(1 - diversity) * rel(i) - diversity * max_j sim(i, j)``
  over the items ``j`` already taken, with ``rel`` the scores scaled to [0, 1] over the
  candidates and ``sim`` the cosine of the item vectors.  ``diversity=0`` keeps the
  ranking; ``1`` ignores the scores after the first pick.
* :func:`calibrate` - calibrated recommendations (Steck 2018, RecSys, "Calibrated
  Recommendations"): the genre mix ``q`` of the list should match the genre mix ``p`` of
  the user's history.  Each step maximizes
  ``(1 - weight) * sum_{i in list} rel(i) - weight * KL(p || q~)`` with
  ``q~ = (1 - a) q + a p`` (``a = 0.01``, Steck's choice that keeps the divergence
  finite), ``q(g) = mean over the list of p(g | i)`` and ``p(g | i)`` the item's genres
  normalized to sum 1.  ``weight=0`` keeps the ranking.

Inputs are internal arrays; the Personalizer maps ids.  Both return positions into the
candidate arrays, in the new order.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int

__all__ = ["mmr", "calibrate", "genre_mix", "kl_divergence"]

_CAL_SMOOTH = 0.01


def _unit_interval(value, name: str) -> float:
    v = check_float(value, name, minimum=0.0)
    if v > 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {v}")
    return v


def _relevance(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    lo, hi = s.min(), s.max()
    return np.ones_like(s) if hi - lo <= 0 else (s - lo) / (hi - lo)


def mmr(scores, vectors, n, diversity: float) -> np.ndarray:
    """Positions of ``n`` candidates chosen by MMR.

    Parameters
    ----------
    scores : array of float, shape (c,)
        Candidates' relevance, best first or in any order.
    vectors : array of float or sparse matrix, shape (c, d)
        Item representations; similarity is their cosine.
    n : int
    diversity : float in [0, 1]
    """
    diversity = _unit_interval(diversity, "diversity")
    n = check_int(n, "n", minimum=0)
    rel = _relevance(scores)
    c = rel.size
    n = min(n, c)
    if diversity == 0.0 or c == 0:
        return np.argsort(-rel, kind="stable")[:n]
    if hasattr(vectors, "toarray"):  # sparse rows (neighbour lists): cosine of the rows
        import scipy.sparse as sp

        v = sp.csr_matrix(vectors, dtype=np.float64)
        norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
        v = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ v
        sim = np.asarray((v @ v.T).toarray())
    else:
        v = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1)
        v = v / np.where(norms > 0, norms, 1.0)[:, None]
        sim = v @ v.T
    chosen = []
    max_sim = np.full(c, -np.inf)
    free = np.ones(c, dtype=bool)
    for _ in range(n):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        obj = (1.0 - diversity) * rel - diversity * penalty
        obj[~free] = -np.inf
        k = int(np.argmax(obj))
        chosen.append(k)
        free[k] = False
        max_sim = np.maximum(max_sim, sim[k])
    return np.asarray(chosen, dtype=np.int64)


def genre_mix(genres, weights=None) -> np.ndarray:
    """Weighted mean of item genre distributions (rows summing to 1) -> (G,) summing to 1
    (zeros when there is nothing)."""
    g = np.asarray(genres.toarray() if hasattr(genres, "toarray") else genres, dtype=np.float64)
    if g.shape[0] == 0:
        return np.zeros(g.shape[1])
    w = np.ones(g.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    mix = w @ g
    total = mix.sum()
    return mix / total if total > 0 else mix


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q~) with Steck's smoothing q~ = (1 - 0.01) q + 0.01 p."""
    qs = (1.0 - _CAL_SMOOTH) * q + _CAL_SMOOTH * p
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / qs[m])))


def calibrate(scores, item_genres, target, n, weight: float) -> np.ndarray:
    """Positions of ``n`` candidates chosen by Steck's calibration.

    Parameters
    ----------
    scores : array of float, shape (c,)
    item_genres : array or sparse matrix, shape (c, G)
        Each candidate's genre distribution (rows summing to 1; zero rows = no genre).
    target : array of float, shape (G,)
        The user's genre mix ``p`` (sums to 1).
    n : int
    weight : float in [0, 1]
        Steck's lambda.
    """
    weight = _unit_interval(weight, "calibration")
    n = check_int(n, "n", minimum=0)
    rel = _relevance(scores)
    c = rel.size
    n = min(n, c)
    p = np.asarray(target, dtype=np.float64)
    if weight == 0.0 or c == 0 or p.sum() <= 0:
        return np.argsort(-rel, kind="stable")[:n]
    g = np.asarray(item_genres.toarray() if hasattr(item_genres, "toarray") else item_genres,
                   dtype=np.float64)
    m = p > 0
    pm = p[m]
    gm = g[:, m]
    chosen: list[int] = []
    free = np.ones(c, dtype=bool)
    q_sum = np.zeros(pm.size)
    rel_sum = 0.0
    for k in range(n):
        q = (q_sum[None, :] + gm) / (k + 1)  # each candidate's list mix, (c, |p>0|)
        qs = (1.0 - _CAL_SMOOTH) * q + _CAL_SMOOTH * pm[None, :]
        kl = np.sum(pm[None, :] * np.log(pm[None, :] / qs), axis=1)
        obj = (1.0 - weight) * (rel_sum + rel) - weight * kl
        obj[~free] = -np.inf
        j = int(np.argmax(obj))
        chosen.append(j)
        free[j] = False
        q_sum += gm[j]
        rel_sum += rel[j]
    return np.asarray(chosen, dtype=np.int64)
