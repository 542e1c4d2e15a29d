"""Exact per-history-item decompositions of a model's score ("why this title").

Implicit ALS (Hu, Koren & Volinsky 2008, section 5).  With the item factors ``Y`` fixed,
a user's vector is the exact solution of

    A x_u = sum_{j in H, v_j > 0} c_j y_j,   A = Y^T Y + lambda_u I + sum_{j in H} (c_j - 1) y_j y_j^T

(``c_j = alpha |v_j|``; the confidence convention of :class:`tastemaker.ALS`), so the
score of item ``i`` is a sum over the history:

    y_i . x_u = sum_{j in H, v_j > 0} c_j (y_i^T A^{-1} y_j)

Each term is history item ``j``'s contribution; a dislike (``v_j < 0``) has preference 0,
so it contributes nothing directly: it acts through ``A``, lowering the scores of titles
like it.  The :class:`~tastemaker.pages.Personalizer` ranks by exactly this ``x_u``
(every user is folded in against the item factors at construction and after each
event), so the contributions add up to the score that ``top_picks`` ranks by.  The
algebra is done in float64; the ranking score is the float32 kernel dot product, and the
difference (about 1e-6 relative) is part of ``rest``.

The same system gives "because you watched" rows: ``z_s = c_s A^{-1} y_s`` is the share of
the user's vector owed to seed ``s``, and ``y_i . z_s`` is the seed's contribution to
item ``i``, so ranking items by it yields titles explained by that seed.
"""

from __future__ import annotations

import numpy as np

from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotrs as _potrs

__all__ = ["AlsExplainer", "ProfileExplainer"]

_NOT_PD = ("explain: the user's system is not positive definite (raise the model's "
           "regularization)")


def _solve(factor: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A^{-1} b from the lower Cholesky factor of A (LAPACK potrs, no wrapper checks)."""
    x, info = _potrs(factor, np.asfortranarray(b), lower=1)
    if info != 0:  # pragma: no cover - potrs fails only on bad arguments
        raise ValueError(f"explain: triangular solve failed (info {info})")
    return x


class AlsExplainer:
    """HKV section 5 for an implicit ALS model's fixed item factors.

    ``history`` arguments are ``(items, values)``: int item indices and the float32 values
    the model sees (nonzero entries only).
    """

    method = "als"

    def __init__(self, model):
        p = model._checked_params()  # regularization="auto" resolved as fit resolved it
        self.alpha = float(np.float32(p["alpha"]))
        self.reg = float(np.float32(p["regularization"]))
        self.nu = float(np.float32(p["reg_exponent"]))
        self.item_factors = model.item_factors
        self._gram = None
        self._model = model
        self._systems: dict = {}

    def gram(self) -> np.ndarray:
        """The Gram matrix of the model's own fold-in (``ALS._gram``, cached there), so
        that ``A`` here is the ``A`` of the ranking vector.  :class:`~tastemaker.HybridALS`
        narrows it to the items with data (``item_has_data_``), as its ``fit`` does:
        ``Y^T Y`` above then runs over those items only."""
        if self._gram is None:
            m = self._model
            p = m._checked_params()
            self._gram = np.asarray(m._gram("item", m.item_factors, p["num_threads"]),
                                    dtype=np.float64)
        return self._gram

    def system(self, items, values):
        """(Cholesky factor of A, c, positive mask, Y_H, history items) of a history;
        the last few are cached (a home page asks for one user's system several times)."""
        key, items, v = self._key(items, values)
        hit = self._systems.get(key)
        if hit is not None:
            return hit
        keep = v != 0
        items, v = items[keep], v[keep]
        yh = self.item_factors[items].astype(np.float64)
        c = self.alpha * np.abs(v)
        factor = self._native_factor(items, v)
        if factor is None:
            lam = self.reg if self.nu == 0.0 else float(np.float32(
                self.reg * (1.0 + items.size) ** self.nu))
            a = self.gram() + (yh.T * (c - 1.0)) @ yh
            a.flat[:: a.shape[0] + 1] += lam
            factor, info = _potrf(a, lower=1, clean=0, overwrite_a=1)
            if info != 0:
                raise ValueError(_NOT_PD)
        return self._store(key, (factor, c, v > 0, yh, items))

    def _native_factor(self, items, v):
        """The lower Cholesky factor of the history's ``A`` from the model's native
        single-row fold-in (the very computation ``record`` does, so an explanation is
        the same bit for bit whether ``record`` left its factorisation here or not), or
        None when the model has none or the history is not in its form (ascending ids,
        float32 values)."""
        one = getattr(self._model, "_fold_in_one", None)
        v32 = v.astype(np.float32)
        if one is None or not np.array_equal(v32, v):
            return None
        try:
            out = one(items.astype(np.int32), v32, want_factor=True)
        except ValueError:
            return None
        except RuntimeError:
            raise ValueError(_NOT_PD) from None
        return None if out is None else out[1].T

    @staticmethod
    def _key(items, values):
        items = np.asarray(items, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        return (items.tobytes(), v.tobytes()), items, v

    def _store(self, key, system):
        if len(self._systems) >= 64:
            self._systems.clear()
        self._systems[key] = system
        return system

    def remember(self, items, values, upper) -> None:
        """Keep the factorisation of a history's system that the model's native fold-in
        already computed (``ALS._fold_in_one(..., want_factor=True)``: ``A = U^T U`` with
        U in the upper triangle of ``upper``), so that explaining the next picks of this
        history solves with it instead of building and factoring ``A`` again.  ``items``
        and ``values`` are the history's nonzero entries, as passed to the fold-in."""
        key, items, v = self._key(items, values)
        c = self.alpha * np.abs(v)
        # U^T of a C-ordered U is the lower factor L (A = L L^T), Fortran-ordered: what
        # LAPACK's potrs reads, without a copy
        self._store(key, (upper.T, c, v > 0, self.item_factors[items].astype(np.float64),
                          items))

    def contributions(self, items, values, targets) -> tuple[np.ndarray, np.ndarray]:
        """(history item indices, contributions (len(targets), n_history)) for target
        item indices; a row sums to the targets' score."""
        fac, c, pos, yh, hist = self.system(items, values)
        yt = self.item_factors[np.asarray(targets, dtype=np.int64)].astype(np.float64)
        w = _solve(fac, yt.T)  # (f, T): A^{-1} y_t
        contrib = (yh @ w).T * np.where(pos, c, 0.0)[None, :]
        return hist, contrib

    def seed_vectors(self, items, values, seeds) -> np.ndarray:
        """``z_s = c_s A^{-1} y_s`` for each seed item index (float32, (S, f))."""
        fac, c, pos, yh, hist = self.system(items, values)
        where = {int(j): k for k, j in enumerate(hist)}
        cols = [where[int(s)] for s in seeds]
        z = _solve(fac, yh[cols].T).T
        z *= np.where(pos[cols], c[cols], 0.0)[:, None]
        return np.ascontiguousarray(z, dtype=np.float32)


class ProfileExplainer:
    """Content models whose user vector is a weighted sum of item vectors,
    ``p_u = sum_j v_j e_j`` (:class:`~tastemaker.models.ContentModel`): the score
    ``p_u . e_i = sum_j v_j (e_j . e_i)`` decomposes over the history, each title
    contributing its value times its feature cosine with the target (the features they
    share)."""

    method = "features"

    def __init__(self, model):
        self.item_factors = model.item_factors

    def contributions(self, items, values, targets):
        hist = np.asarray(items, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        e = self.item_factors
        cos = e[np.asarray(targets, dtype=np.int64)].astype(np.float64) @ e[hist].astype(
            np.float64).T
        return hist, cos * v[None, :]

    def seed_vectors(self, items, values, seeds) -> np.ndarray:
        """``v_s e_s``: the share of the profile owed to each seed."""
        hist = np.asarray(items, dtype=np.int64)
        v = dict(zip(hist.tolist(), np.asarray(values, dtype=np.float64).tolist()))
        z = np.stack([self.item_factors[int(s)].astype(np.float64) * v[int(s)] for s in seeds])
        return np.ascontiguousarray(z, dtype=np.float32)
