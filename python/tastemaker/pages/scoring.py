"""How the Personalizer scores one user with a given model (an adapter per model family).

Two families:

* **vector** models score ``user_vector . item_factors[i]`` (ALS, HybridALS, Popularity,
  ContentModel, ...).  The Personalizer keeps one vector per user: for ALS-family models
  the exact fold-in of the user's history (so explanations add up, see
  :mod:`.explain`), for the others the model's user factors or its own fold-in.
* **row** models score straight from the user's row of values (ItemKNN: neighbour lists;
  EASE: ``x_u B``).  There is nothing to fold in: the current row *is* the user, so a
  recorded event counts at the next query.

Both rank through the model's own native top-k (``recommend_vectors`` / ``recommend``),
so a Personalizer's scores are the model's scores bit for bit.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .explain import AlsExplainer, ProfileExplainer

__all__ = ["scorer_for", "VectorScorer", "RowScorer"]


def _ids(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).reshape(-1)


def _top(scores: np.ndarray, n: int, exclude, deny, allow):
    """Top-n (ids, scores) of a dense score vector, ties to the lower id (the kernel's
    order), excluded / denied ids and ids outside ``allow`` removed."""
    s = np.asarray(scores, dtype=np.float64).copy()
    bad = np.zeros(s.size, dtype=bool)
    for ids in (exclude, deny):
        if ids is not None and len(ids):
            ids = _ids(ids)
            bad[ids[ids < s.size]] = True
    if allow is not None:
        keep = np.zeros(s.size, dtype=bool)
        a = _ids(allow)
        keep[a[a < s.size]] = True
        bad |= ~keep
    cand = np.flatnonzero(~bad)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    order = np.lexsort((cand, -s[cand]))[:n]
    ids = cand[order]
    return ids, s[ids].astype(np.float32)


class VectorScorer:
    """``user_vector . item_factors[i]``; see the module documentation."""

    kind = "vector"

    def __init__(self, model):
        self.model = model
        self.explainer = (AlsExplainer(model) if _is_als(model) else
                          ProfileExplainer(model) if _is_profile_model(model) else None)

    @property
    def n_items(self) -> int:
        return int(self.model.item_factors.shape[0])

    @property
    def factors(self) -> int:
        return int(self.model.item_factors.shape[1])

    def all_vectors(self, csr) -> np.ndarray:
        if self.explainer is not None:  # the exact fold-in: explanations add up to it
            return np.ascontiguousarray(self.model._fold_in_users(csr), dtype=np.float32)
        return np.ascontiguousarray(self.model.user_factors, dtype=np.float32)

    def fold_in_row(self, items: np.ndarray, values: np.ndarray):
        """The user's vector from the nonzero entries of a history (ascending int32 item
        indices, float32 values), or None when the model has no single-row native fold-in
        (then use :meth:`fold_in`).  An ALS explainer keeps the factorisation that the
        fold-in computed, for the reasons of the next picks."""
        one = getattr(self.model, "_fold_in_one", None)
        if one is None:
            return None
        if not isinstance(self.explainer, AlsExplainer):
            return one(items, values)
        out = one(items, values, want_factor=True)
        if out is None:
            return None
        self.explainer.remember(items, values, out[1])
        return out[0]

    def fold_in(self, csr_row) -> np.ndarray:
        try:
            x = self.model._fold_in_users(csr_row)
        except ValueError:  # the model cannot fold in: the average user
            x = np.asarray(self.model.user_factors, dtype=np.float32).mean(axis=0, keepdims=True)
        return np.ascontiguousarray(np.asarray(x)[0], dtype=np.float32)

    def rank(self, vector, csr_row, n, exclude, deny, allow):
        if allow is not None and len(allow) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # int32 ids (the model's single-request path takes them as they are)
        exclude = None if exclude is None else np.asarray(exclude, dtype=np.int32)
        deny = np.asarray(deny, dtype=np.int32) if deny is not None and len(deny) else None
        ids, scores = self.model.recommend_vectors(vector, N=n, exclude=exclude,
                                                   filter_items=deny, items=allow)
        return ids.astype(np.int64), scores

    def scores(self, vector, csr_row, items) -> np.ndarray:
        """The ranking scores of ``items`` (exactly as ``rank`` computes them)."""
        items = _ids(items)
        if items.size == 0:
            return np.zeros(0, dtype=np.float32)
        ids, sc = self.model.recommend_vectors(vector, N=int(np.unique(items).size),
                                               items=items)
        return dict_lookup(ids, sc, items)

    def item_vectors(self, ids):
        return self.model.item_factors[_ids(ids)]

    def seed_rank(self, vector, hist, vals, seed, n, exclude, deny, allow):
        """Titles ranked by ``seed``'s exact contribution to their score (ALS)."""
        z = self.explainer.seed_vectors(hist, vals, [seed])[0]
        ids, scores = self.rank(z, None, n, exclude, deny, allow)
        keep = scores > 0  # the seed must actually raise the title
        return ids[keep], scores[keep]


class RowScorer:
    """Scores from the user's row (ItemKNN, EASE); see the module documentation."""

    kind = "rows"

    def __init__(self, model):
        self.model = model
        self.explainer = NeighbourExplainer(model)

    @property
    def n_items(self) -> int:
        return self.explainer.n_items

    factors = 0

    def all_vectors(self, csr) -> np.ndarray:
        return np.zeros((csr.shape[0], 0), dtype=np.float32)

    def fold_in_row(self, items, values):
        return None  # nothing to fold in: see fold_in

    def fold_in(self, csr_row) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def _clip(self, ids):
        if ids is None:
            return None
        ids = _ids(ids)
        return ids[ids < self.n_items]

    def rank(self, vector, csr_row, n, exclude, deny, allow):
        allow = self._clip(allow)
        if allow is not None and allow.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        parts = [self._clip(x) for x in (exclude, deny) if x is not None and len(x)]
        deny = np.unique(np.concatenate(parts)) if parts else None
        ids, scores = self.model.recommend(0, csr_row, N=n, filter_already_liked_items=False,
                                           filter_items=deny, items=allow,
                                           recalculate_user=True)
        return ids.astype(np.int64), scores

    def scores(self, vector, csr_row, items) -> np.ndarray:
        items = _ids(items)
        inside = self._clip(items)
        out = np.zeros(items.size, dtype=np.float32)
        if inside.size:
            ids, sc = self.model.recommend(0, csr_row, N=int(np.unique(inside).size),
                                           filter_already_liked_items=False, items=inside,
                                           recalculate_user=True)
            got = dict(zip(ids.tolist(), sc.tolist()))
            out = np.array([got.get(int(i), 0.0) for i in items], dtype=np.float32)
        return out

    def item_vectors(self, ids):
        return self.explainer.item_vectors(self._clip(ids))

    def seed_rank(self, vector, hist, vals, seed, n, exclude, deny, allow):
        k = int(np.flatnonzero(hist == seed)[0])
        s = float(vals[k]) * self.explainer.outgoing(seed)
        ids, scores = _top(s, n, exclude, deny, allow)
        keep = scores > 0
        return ids[keep], scores[keep]


class NeighbourExplainer:
    """Exact item-item decomposition of a row model's score:
    ``score(u, j) = sum_{i in H} r_ui W[i, j]`` with ``W`` the neighbour weights
    (ItemKNN: ``similarity_``, row ``i`` = the neighbours of ``i``; EASE: ``B``)."""

    method = "neighbours"

    def __init__(self, model):
        self.model = model
        sim = getattr(model, "similarity_", None)
        self._sparse = sim is not None
        self.w = sp.csr_matrix(sim) if self._sparse else None
        self.bt = None if self._sparse else model.item_factors  # EASE: B^T

    @property
    def n_items(self) -> int:
        return int(self.w.shape[0] if self._sparse else self.bt.shape[0])

    def weights(self, hist, targets) -> np.ndarray:
        """W[hist, targets] transposed: (len(targets), len(hist))."""
        hist, targets = _ids(hist), _ids(targets)
        if self._sparse:
            return np.asarray(self.w[hist][:, targets].toarray(), dtype=np.float64).T
        return np.asarray(self.bt[np.ix_(targets, hist)], dtype=np.float64)

    def outgoing(self, i: int) -> np.ndarray:
        """W[i, :] as a dense vector: how much item ``i`` adds to every item."""
        if self._sparse:
            return np.asarray(self.w[int(i)].toarray(), dtype=np.float64).ravel()
        return np.asarray(self.bt[:, int(i)], dtype=np.float64)

    def item_vectors(self, ids):
        ids = _ids(ids)
        return self.w[ids] if self._sparse else self.bt[ids]

    def contributions(self, hist, vals, targets):
        hist = _ids(hist)
        keep = hist < self.n_items
        hist, vals = hist[keep], np.asarray(vals, dtype=np.float64)[keep]
        return hist, self.weights(hist, targets) * vals[None, :]


def dict_lookup(ids, scores, items) -> np.ndarray:
    got = dict(zip(np.asarray(ids).tolist(), np.asarray(scores).tolist()))
    return np.array([got[int(i)] for i in items], dtype=np.float32)


def _is_als(model) -> bool:
    from ..models.als import ALS

    return isinstance(model, ALS)


def _is_profile_model(model) -> bool:
    return type(model).__name__ == "ContentModel"  # profiles: sum_j v_j item_factors[j]


def _is_row_model(model) -> bool:
    if getattr(model, "similarity_", None) is not None:
        return True  # ItemKNN
    return type(model).__name__ == "EASE"


def scorer_for(model):
    """The adapter of a fitted model."""
    return RowScorer(model) if _is_row_model(model) else VectorScorer(model)
