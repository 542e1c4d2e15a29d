"""Item-item nearest neighbours: a sparse top-K neighbour graph built natively."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_csr, check_float, check_int
from ..io import register_model
from .als import _native
from .base import FactorModel, _append_liked, _as_user_items, _check_callback, _id_list

__all__ = ["SIMILARITIES", "ItemKNN", "RowScoredModel"]

#: Similarities accepted by :class:`ItemKNN`.
SIMILARITIES = ("cosine", "bm25", "tfidf", "jaccard")


class RowScoredModel(FactorModel):
    """Base of item-item models (ItemKNN, EASE): a user is scored from their row of the
    users x items matrix, so there are no user factors and a new user needs no fold-in.

    Subclasses set ``train_`` (the training matrix, CSR: the rows used when
    ``recommend`` gets no ``user_items``) and ``n_items_`` in ``fit`` and implement
    ``_score(rows, exclude_seen, allow, deny, k) -> (ids, scores)`` (the native top-k of
    ``rows`` against the model, padded with -1 / -inf) and ``_dense_scores(row)`` (all
    items' scores of one 1 x n_items CSR row, for ``items=``'s liked items).
    """

    train_ = None
    n_items_ = None

    def _check_fitted(self) -> None:
        if getattr(self, "train_", None) is None or getattr(self, "n_items_", None) is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")

    def _n_users_items(self):
        self._check_fitted()
        return int(self.train_.shape[0]), int(self.n_items_)

    def _fit_done(self, train: sp.csr_matrix, start: float, callback) -> None:
        self.train_ = train
        self.n_items_ = int(train.shape[1])
        if callback is not None:
            callback(0, time.perf_counter() - start, None)

    def recommend(self, userid, user_items=None, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top-``N`` items for one user or a batch, scored from the users' rows.

        Parameters
        ----------
        userid : int or array-like of int, shape (n_queries,)
        user_items : Interactions or scipy.sparse matrix, optional
            The full users x items matrix (sliced by ``userid``) or one row per id; the
            rows' values weight the items, their stored items are the seen ones.  None
            uses the training rows (ids must then be training users).
        N, filter_already_liked_items, filter_items, items
            As in :meth:`tastemaker.models.FactorModel.recommend` (``items=`` ranks every
            given item, already-liked ones last with score ``LIKED_SCORE``).
        recalculate_user : bool, default False
            Accepted for API compatibility: an item-item model always scores from the
            row, so any non-negative ``userid`` is accepted with True.

        Returns
        -------
        ids : ndarray of int32;  scores : ndarray of float32
            Shapes, order (score descending, then id) and padding (-1 / -inf) as for
            every tastemaker model.
        """
        self._check_fitted()
        n_users, n_items = self._n_users_items()
        N = check_int(N, "N", minimum=1)
        filt = self._check_bool(filter_already_liked_items, "filter_already_liked_items")
        recalc = self._check_bool(recalculate_user, "recalculate_user")
        ids, scalar = self._query_ids(userid, "userid", None if recalc else n_users)
        if user_items is None:
            if recalc:
                raise ValueError("user_items: required when recalculate_user is True")
            rows = self.train_[ids]
        else:
            rows = self._rows_for(ids, user_items, "user_items", n_users, n_items, recalc)
        allow = _id_list(items, "items", n_items)
        deny = _id_list(filter_items, "filter_items", n_items)
        pool = n_items if allow is None else len(allow)
        out_ids, out_scores = self._score(rows, filt, allow, deny, min(N, pool))
        if filt and allow is not None:
            _append_liked(out_ids, out_scores, rows, allow, deny,
                          lambda r, liked: self._dense_scores(rows[r])[liked])
        return self._shape_result(out_ids, out_scores, scalar)

    def similar_users(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__}.similar_users: an item-item model has no user "
            f"representation; use ALS or ExplicitALS for similar users")

    def _state_arrays(self) -> dict:
        t = self.train_
        return {"train_indptr": t.indptr.astype(np.int64), "train_indices": t.indices,
                "train_data": t.data, "train_shape": np.asarray(t.shape, dtype=np.int64)}

    def _load_train(self, arrays) -> None:
        shape = tuple(int(v) for v in np.asarray(arrays["train_shape"]).ravel())
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"{type(self).__name__}: damaged state (train shape)")
        t = sp.csr_matrix((arrays["train_data"], arrays["train_indices"],
                           arrays["train_indptr"]), shape=shape)
        self.train_ = check_csr(t, "train", allow_empty=True)
        self.n_items_ = shape[1]


@register_model("ItemKNN")
class ItemKNN(RowScoredModel):
    r"""Item-based nearest neighbours (Sarwar et al. 2001) on a native sparse top-K build.

    ``fit`` keeps, for every item, its ``K`` most similar other items (similarity > 0)
    in a sparse items x items matrix :attr:`similarity`; ``recommend`` scores user ``u``
    and item ``j`` by

    .. math:: s_{uj} = \sum_{i \in I_u} r_{ui}\, \mathrm{sim}(i, j)

    over the neighbour lists of the items in the user's row of ``user_items`` (``r_ui``
    are that row's values, as in implicit's ``ItemItemRecommender``).  The weighting,
    the build (a co-occurrence pass per item, OpenMP over items) and the scoring (OpenMP
    over the users of a batch) are native with the GIL released, and nothing is locked around a
    query: concurrent ``recommend`` calls from many threads run in parallel.

    Similarities between the columns of the users x items matrix (implicit's
    conventions, so the same data gives the same neighbours as its
    ``CosineRecommender`` / ``BM25Recommender`` / ``TFIDFRecommender``):

    ``"cosine"``
        cosine of the item columns.
    ``"bm25"``
        inner product of BM25-weighted columns, items being the documents and users the
        terms: ``idf(u) * x (K1 + 1) / (x + K1 (1 - B + B len(i) / avglen))`` with
        ``idf(u) = log(n_items / (1 + df(u)))`` (the native definition that
        :mod:`tastemaker.data.weighting` also delegates to).  The collection is the whole catalog, every
        column of ``user_items``: ``n_items`` counts them all and ``avglen`` is the
        mean length over them all, an item with no interactions counting with length
        0 (one collection for both statistics, as in Robertson & Zaragoza's BM25;
        implicit's ``bm25_weight`` uses the same definition, so the neighbours agree).
    ``"tfidf"``
        cosine of TF-IDF-weighted columns, ``sqrt(x) * idf(u)``, same idf.
    ``"jaccard"``
        ``|U_i ∩ U_j| / |U_i ∪ U_j|`` of the sets of users with a positive value.

    Parameters
    ----------
    K : int, default 100
        Neighbours kept per item.
    similarity : {"cosine", "bm25", "tfidf", "jaccard"}, default "cosine"
    K1, B : float, default 1.2, 0.75
        BM25 parameters (only for ``"bm25"``); the defaults are implicit's.
    num_threads : int, default 0
        OpenMP threads (0 = ``tastemaker.set_num_threads``'s value).  Results do not
        depend on it.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of float32, shape (n_items, n_items)
        Row ``i``: the neighbours of item ``i`` and their similarities, best first.
    self_similarity_ : ndarray of float32, shape (n_items,)
        Each item's similarity with itself (1 for cosine, TF-IDF and Jaccard of an item
        with interactions).

    Memory: ``8 * K * n_items`` bytes for the graph (about twice that while it is
    built) plus the training matrix; each fitting thread uses ``8 * n_items`` bytes of
    scratch and each querying thread ``9 * n_items``.

    ``similar_users`` and fold-in of items (``recalculate_item``) are not defined for an
    item-item model and raise.  ``recommend`` scores from the rows of ``user_items`` (the
    training rows when it is None), so a new user needs no fold-in: pass their row
    (``recalculate_user`` is accepted and means the same).  ``similar_items`` lists the
    item itself first, then its neighbours; an item without interactions is similar to
    nothing.
    """

    def __init__(self, K=100, similarity="cosine", *, K1=1.2, B=0.75, num_threads=0):
        self.K = K
        self.similarity = similarity
        self.K1 = K1
        self.B = B
        self.num_threads = num_threads

    # Fitted state.  implicit calls its graph ``similarity``; here that name is the
    # constructor argument (scikit-learn convention), so the graph is ``similarity_``.
    similarity_ = None
    self_similarity_ = None

    def _checked_params(self) -> dict:
        if not isinstance(self.similarity, str) or self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity: expected one of {SIMILARITIES}, got {self.similarity!r}")
        out = {
            "K": check_int(self.K, "K", minimum=1, maximum=2**31 - 1),
            "num_threads": check_int(self.num_threads, "num_threads", minimum=0),
            "K1": check_float(self.K1, "K1", minimum=0.0),
            "B": check_float(self.B, "B", minimum=0.0),
        }
        if out["B"] > 1.0:
            raise ValueError(f"B: expected a number in [0, 1], got {out['B']}")
        return out

    def fit(self, user_items, *, show_progress: bool = False, callback=None):
        """Build the neighbour graph.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
            Interaction strengths (float32 CSR after validation; NaN/inf, unsorted or
            duplicate indices are errors).
        show_progress : bool, default False
            Accepted for a uniform ``fit`` signature; the build is one native call.
        callback : callable, optional
            ``callback(0, elapsed_seconds, None)`` once the graph is built.

        Returns
        -------
        self
        """
        start = time.perf_counter()
        p = self._checked_params()
        _check_callback(callback)
        m = _as_user_items(user_items)
        n = m.shape[1]
        # weighting, transpose and build in one native call (GIL released)
        indptr, indices, data, self_sim = _core.knn_fit(
            *_native(m), n, p["K"], self.similarity, p["K1"], p["B"], p["num_threads"])
        # Neighbours are stored in an unspecified order within a row (see knn.hpp).
        self.similarity_ = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        self.self_similarity_ = self_sim
        self._fit_done(m, start, callback)
        return self

    # ------------------------------------------------------------------ queries
    def _score(self, rows: sp.csr_matrix, exclude_seen: bool, allow, deny, k: int):
        g = self.similarity_
        return _core.knn_recommend(*_native(g), *_native(rows), exclude_seen, allow, deny, k,
                                   self._query_threads())

    def _dense_scores(self, row: sp.csr_matrix) -> np.ndarray:
        return np.asarray((row @ self.similarity_).todense()).ravel()

    def similar_items(self, itemid, N=10, filter_items=None, items=None, recalculate_item=False,
                      item_users=None):
        """The ``N`` items most similar to ``itemid``: the item itself, then its neighbours.

        Parameters and returns as in
        :meth:`tastemaker.models.FactorModel.similar_items`; scores are the fitted
        similarities (the query's own is :attr:`self_similarity_`), items outside the
        neighbour list score 0.  ``recalculate_item`` is not supported.
        """
        self._check_fitted()
        if self._check_bool(recalculate_item, "recalculate_item"):
            raise ValueError(f"recalculate_item: {type(self).__name__} cannot fold in new "
                             f"items; refit with the new item's interactions")
        n = self.similarity_.shape[0]
        N = check_int(N, "N", minimum=1)
        ids, scalar = self._query_ids(itemid, "itemid", n)
        allow = _id_list(items, "items", n)
        deny = _id_list(filter_items, "filter_items", n)
        width = min(N, n if allow is None else len(allow))
        # an item nobody interacted with is similar to nothing, and nothing to it
        empty = np.flatnonzero(self.self_similarity_ == 0).astype(np.int32)
        if empty.size:
            deny = empty if deny is None else np.union1d(deny, empty).astype(np.int32)
        one_hot = sp.csr_matrix((np.ones(len(ids), dtype=np.float32), ids.astype(np.int32),
                                 np.arange(len(ids) + 1, dtype=np.int64)), shape=(len(ids), n))
        out_ids, out_scores = self._score(one_hot, True, allow, deny, width)
        eligible = np.ones(len(ids), dtype=bool)
        if allow is not None:
            eligible &= np.isin(ids, allow)
        if deny is not None:
            eligible &= ~np.isin(ids, deny)
        if width and eligible.any():
            r = np.flatnonzero(eligible)
            out_ids[r, 1:] = out_ids[r, :-1]
            out_scores[r, 1:] = out_scores[r, :-1]
            out_ids[r, 0] = ids[r]
            out_scores[r, 0] = self.self_similarity_[ids[r]]
        dead = np.isin(ids, empty)
        out_ids[dead] = -1
        out_scores[dead] = -np.inf
        return self._shape_result(out_ids, out_scores, scalar)

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        self._check_fitted()
        g = self.similarity_
        arrays = {"indptr": g.indptr.astype(np.int64), "indices": g.indices.astype(np.int32),
                  "data": g.data.astype(np.float32), "self": self.self_similarity_,
                  **self._state_arrays()}
        return self._saved_params(), arrays, {}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls._from_params(params)
        self_sim = np.asarray(arrays["self"], dtype=np.float32)
        n = self_sim.shape[0] if self_sim.ndim == 1 else -1
        if n < 0:
            raise ValueError("ItemKNN: damaged state (self similarities)")
        g = sp.csr_matrix((np.asarray(arrays["data"], dtype=np.float32),
                           np.asarray(arrays["indices"], dtype=np.int32),
                           np.asarray(arrays["indptr"], dtype=np.int64)), shape=(n, n))
        # Validate a sorted copy (rows of the graph are stored unsorted) and keep the
        # original order, so that scores sum in the same order as before saving.
        check_csr(g.sorted_indices(), "similarity", allow_empty=True)
        model.similarity_ = g
        model.self_similarity_ = np.ascontiguousarray(self_sim)
        model._load_train(arrays)
        if model.n_items_ != n:
            raise ValueError("ItemKNN: damaged state (train and graph sizes differ)")
        return model
