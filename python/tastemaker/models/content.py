"""Content-based recommendation: items compared by their metadata, users by what they liked."""

from __future__ import annotations

import numbers
import time

import numpy as np
import scipy.sparse as sp

from .. import io as _io
from .._validation import (check_csr, check_dense, check_int, check_num_threads,
                           check_random_state)
from .base import FactorModel, _as_user_items, _check_callback

__all__ = ["ContentModel", "feature_matrix"]


def feature_matrix(item_features, name: str = "item_features", weights=None,
                   n_items: int | None = None, names=None) -> sp.csr_matrix:
    """Item features as float64 CSR (n_items, n_features), validated.

    ``item_features`` is a :class:`~tastemaker.ItemFeatures` (``weights`` then scales its
    source columns, and ``names``, when given, must equal its feature names), a scipy
    sparse matrix or a dense 2-D array.  Shared by :class:`ContentModel` and
    :class:`~tastemaker.HybridALS`.
    """
    from ..data.features import ItemFeatures

    if item_features is None:
        raise ValueError(f"{name}: required (a tastemaker.ItemFeatures, or a matrix with one "
                         f"row per item)")
    if isinstance(item_features, ItemFeatures):
        if names is not None and not np.array_equal(item_features.names, np.asarray(names)):
            raise ValueError(f"{name}: feature columns differ from the ones the model was "
                             f"fitted on (encode new items with the fitted ItemFeatures' "
                             f".encode(df))")
        m = item_features.weighted(weights)
    else:
        if weights:
            raise ValueError("weights: per-column weights need an ItemFeatures (a bare matrix "
                             "has no column names)")
        if sp.issparse(item_features):
            m = item_features
        elif isinstance(item_features, (np.ndarray, list, tuple)):
            m = sp.csr_matrix(check_dense(item_features, name, ndim=2, dtype=np.float64))
        else:
            raise ValueError(f"{name}: expected a tastemaker.ItemFeatures, a scipy sparse "
                             f"matrix or a 2-D array, got {type(item_features).__name__}")
    m = check_csr(m, name, shape=(n_items, None), allow_empty=True)
    if m.shape[1] == 0:
        raise ValueError(f"{name}: has no feature columns (shape {m.shape})")
    return sp.csr_matrix(m, dtype=np.float64)


def _unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def _unit_dense(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@_io.register_model("ContentModel")
class ContentModel(FactorModel):
    r"""Content-based model: cosine similarity of (weighted) item features.

    Each item is the L2-normalised row :math:`e_i` of its feature matrix (source columns
    scaled by ``weights``), so ``similar_items`` ranks by the cosine of item metadata,
    which works for titles nobody has watched yet.  A user's profile is the
    confidence-weighted sum of the items they interacted with,
    :math:`p_u = \sum_i v_{ui}\, e_i` (a dislike, ``v < 0``, pushes away), and
    ``recommend`` ranks by :math:`p_u \cdot e_i = \sum_j v_{uj} \cos(j, i)`.

    The item vectors are the model's ``item_factors`` and the profiles its
    ``user_factors``, so every query runs on the native top-k kernel.  When there are
    more than ``max_dims`` feature columns (TF-IDF vocabularies...), the normalised
    features are first projected on their top ``max_dims`` right singular vectors (latent
    semantic analysis) and re-normalised, keeping item vectors dense and small; below it
    the cosines are exact.

    Parameters
    ----------
    weights : dict of str to float, optional
        Per source column of an :class:`~tastemaker.ItemFeatures` (``{"genres": 1,
        "year": 0.3}``); unnamed columns weigh 1.
    max_dims : int, default 256
        Largest item-vector dimension kept without projection.
    random_state : None, int or numpy Generator
        Seeds the truncated SVD's start vector (used only above ``max_dims``).
    num_threads : int, default 0
        Threads for the native queries (0 = the global setting).

    Attributes
    ----------
    item_factors : ndarray of float32, shape (n_items, d)
        Unit-norm item vectors (zero for an item without features).
    user_factors : ndarray of float32, shape (n_users, d)
        User profiles.
    projection_ : ndarray of float64, shape (n_features, d) or None
        The SVD projection, when one was needed.
    """

    def __init__(self, weights=None, max_dims=256, *, random_state=None, num_threads=0):
        self.weights = weights
        self.max_dims = max_dims
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors = None
        self.item_factors = None
        self.projection_ = None
        self.feature_names_ = None

    def _check_weights(self):
        w = self.weights
        if w is None:
            return None
        if not isinstance(w, dict):
            raise ValueError(f"weights: expected a dict column -> weight or None, got "
                             f"{type(w).__name__}")
        for k, v in w.items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) \
                    or v < 0:
                raise ValueError(f"weights[{k!r}]: expected a finite number >= 0, got {v!r}")
        return w

    # ------------------------------------------------------------------ fitting
    def _item_vectors(self, features: sp.csr_matrix) -> np.ndarray:
        unit = _unit_rows(features)
        if self.projection_ is None:
            return np.ascontiguousarray(unit.toarray(), dtype=np.float32)
        return np.ascontiguousarray(_unit_dense(unit @ self.projection_), dtype=np.float32)

    def fit(self, user_items, item_features=None, *, show_progress: bool = False,
            callback=None):
        """Build item vectors from ``item_features`` and user profiles from ``user_items``.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
            Interaction strengths (confidence; negative = dislike).  Items whose column
            is empty are fine: they are described by their features alone.
        item_features : ItemFeatures, scipy.sparse matrix or ndarray, shape (n_items, n_features)
            Row ``i`` describes item ``i`` (``ItemFeatures.from_interactions`` aligns it).
        show_progress : bool, default False
            Accepted for a uniform ``fit`` signature (there is no long loop).
        callback : callable, optional
            ``callback(0, elapsed_seconds, None)`` once, when done.

        Returns
        -------
        self
        """
        start = time.perf_counter()
        max_dims = check_int(self.max_dims, "max_dims", minimum=1, maximum=65536)
        check_num_threads(self.num_threads)
        weights = self._check_weights()
        _check_callback(callback)
        cui = _as_user_items(user_items)
        F = feature_matrix(item_features, "item_features", weights, n_items=cui.shape[1])
        self.projection_ = None
        if F.shape[1] > max_dims:
            unit = _unit_rows(F)
            k = min(max_dims, min(unit.shape) - 1)
            if k < 1:
                raise ValueError(f"item_features: shape {F.shape} is too small to project")
            from scipy.sparse.linalg import svds

            rng = check_random_state(self.random_state)
            v0 = rng.uniform(-1, 1, size=min(unit.shape))
            _, s, vt = svds(unit, k=k, v0=v0)
            order = np.argsort(-s)
            self.projection_ = np.ascontiguousarray(vt[order].T)
        from ..data.features import ItemFeatures

        self.feature_names_ = (item_features.names.copy()
                               if isinstance(item_features, ItemFeatures) else None)
        self.item_factors = self._item_vectors(F)
        self.user_factors = self._profiles(cui)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    def _profiles(self, rows: sp.csr_matrix) -> np.ndarray:
        prof = rows.astype(np.float64) @ self.item_factors.astype(np.float64)
        return np.ascontiguousarray(prof, dtype=np.float32)

    def _fold_in_users(self, user_items) -> np.ndarray:
        """Profiles of arbitrary users from their rows (``recalculate_user=True``)."""
        self._check_fitted()
        m = check_csr(user_items, "user_items", shape=(None, self.item_factors.shape[0]),
                      allow_empty=True)
        return self._profiles(m)

    def add_items(self, item_features):
        """Append new titles described by ``item_features`` (n_new rows, the fitted
        columns); they get the next item indices and can be recommended and queried
        with ``similar_items`` at once.  Returns self."""
        self._check_fitted()
        n_f = (self.projection_.shape[0] if self.projection_ is not None
               else self.item_factors.shape[1])
        F = feature_matrix(item_features, "item_features", self._check_weights(),
                           names=self.feature_names_)
        if F.shape[1] != n_f:
            raise ValueError(f"item_features: expected {n_f} feature columns, got {F.shape[1]}")
        new = self._item_vectors(F)
        self.item_factors = np.ascontiguousarray(np.vstack([self.item_factors, new]))
        return self

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        params, arrays, extra = super()._get_state()
        if self.projection_ is not None:
            arrays["projection"] = np.asarray(self.projection_, dtype=np.float64)
        if self.feature_names_ is not None:
            arrays["feature_names"] = np.asarray(self.feature_names_, dtype=str)
        return params, arrays, extra

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = super()._from_state(params, arrays, extra)
        if "projection" in arrays:
            proj = check_dense(arrays["projection"], "projection", ndim=2, dtype=np.float64)
            if proj.shape[1] != model.item_factors.shape[1]:
                raise ValueError("projection: dimension differs from item_factors")
            model.projection_ = proj
        if "feature_names" in arrays:
            model.feature_names_ = np.asarray(arrays["feature_names"], dtype=str)
        return model
