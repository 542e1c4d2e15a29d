"""EASE: the closed-form item-item model of Steck (2019)."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._memory import check_fits
from .._validation import check_dense, check_float, check_int
from ..io import register_model
from .als import _native, _transpose
from .base import _as_user_items, _check_callback, _csr_rows, _topk
from .knn import RowScoredModel

__all__ = ["EASE"]

# Bytes per item^2 at the peak of fit: the float64 Gram matrix, factored and inverted in
# place, plus the float32 weights.
_FIT_BYTES_PER_ITEM2 = 8 + 4
# Users scored per native call: their dense rows (n_items floats each) stay small.
_QUERY_CHUNK = 256


@register_model("EASE")
class EASE(RowScoredModel):
    r"""Embarrassingly Shallow Autoencoder (Steck 2019, "Embarrassingly Shallow
    Autoencoders for Sparse Data").

    Learns an item x item weight matrix ``B`` with zero diagonal minimizing
    :math:`\|X - XB\|_F^2 + \lambda \|B\|_F^2`, in closed form:

    .. math:: P = (X^T X + \lambda I)^{-1}, \qquad B_{ij} = -P_{ij} / P_{jj}\ (i \ne j)

    and scores user ``u`` and item ``j`` by ``(x_u B)_j``, ``x_u`` being the user's row
    of ``user_items`` (values as given; EASE is usually fitted on 0/1 data).  The Gram
    matrix is built natively (a sparse co-occurrence pass, OpenMP over items, float64);
    the symmetric positive definite inverse is a Cholesky factorization and inverse in
    place through scipy's LAPACK (``dpotrf`` + ``dpotri``).  ``recommend`` runs in the
    native top-k kernel with ``item_factors = B^T``.

    **Memory**: fitting needs ``12 * n_items**2`` bytes at its peak (the float64 Gram
    matrix, inverted in place, and the float32 ``B``): 34 MB for MovieLens' 1,682
    items, 1.2 GB for 10,000 items, 4.8 GB for 20,000 items.  The fitted model keeps
    ``4 * n_items**2`` bytes plus the training matrix.  ``fit`` raises ``ValueError``
    before allocating anything when that does not fit in the available memory.  Catalogs
    of a few tens of thousands of items at most; use ItemKNN or ALS beyond.

    Parameters
    ----------
    regularization : float, default 500.0
        :math:`\lambda` (> 0).  Scale it with the data: Steck uses 200-1000 on binary
        MovieLens / Netflix data.
    num_threads : int, default 0
        OpenMP threads of the Gram build and the queries (0 = the global setting).  The
        LAPACK calls use scipy's BLAS threads.

    Attributes
    ----------
    item_factors : ndarray of float32, shape (n_items, n_items)
        ``B^T``: row ``j`` holds the weights with which every item predicts item ``j``.

    ``recommend`` scores from the rows of ``user_items`` (the training rows when it is
    None; new users need no fold-in, ``recalculate_user`` is accepted and means the
    same).  ``similar_items`` ranks by the
    cosine of the columns of ``B``; ``similar_users`` is not defined and raises.
    """

    def __init__(self, regularization=500.0, *, num_threads=0):
        self.regularization = regularization
        self.num_threads = num_threads

    def fit(self, user_items, *, show_progress: bool = False, callback=None):
        """Solve for ``B``.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
        show_progress : bool, default False
            Accepted for a uniform ``fit`` signature.
        callback : callable, optional
            ``callback(0, elapsed_seconds, None)`` once ``B`` is solved.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters or input, ``12 * n_items**2`` bytes that do not fit in
            memory, or a Gram matrix that is not positive definite.
        """
        from scipy.linalg import lapack

        start = time.perf_counter()
        _check_callback(callback)
        lam = check_float(self.regularization, "regularization", minimum=0.0, strict=True)
        threads = check_int(self.num_threads, "num_threads", minimum=0)
        m = _as_user_items(user_items)
        n = m.shape[1]
        check_fits(_FIT_BYTES_PER_ITEM2 * n * n, "user_items",
                   f"EASE on {n} items (12 * n_items^2 bytes)")
        gram = np.empty((n, n), dtype=np.float64)
        _core.item_gram_dense(*_native(m), *_native(_transpose(m, threads)), lam, gram, threads)
        # Fortran order is the transpose of our C-order array; the matrix is symmetric,
        # so factor the "upper" triangle of the transpose = the lower one of ours.
        c, info = lapack.dpotrf(gram.T, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise ValueError(f"regularization: X^T X + {lam:g} I is not positive definite "
                             f"(LAPACK dpotrf info {info}); raise regularization")
        p, info = lapack.dpotri(c, lower=False, overwrite_c=True)
        if info != 0:
            raise ValueError(f"regularization: X^T X + {lam:g} I could not be inverted "
                             f"(LAPACK dpotri info {info}); raise regularization")
        q = p.T  # C order again; its lower triangle holds P (the upper one is stale)
        scale = -1.0 / q.diagonal()
        bt = np.empty((n, n), dtype=np.float32)  # B^T[j, i] = B[i, j] = -P[j, i] / P[j, j]
        step = 512
        for j0 in range(0, n, step):  # rows j0..j1 of the full P, from its lower triangle
            j1 = min(n, j0 + step)
            blk = np.empty((j1 - j0, n), dtype=np.float64)
            blk[:, :j0] = q[j0:j1, :j0]
            d = np.tril(q[j0:j1, j0:j1])
            blk[:, j0:j1] = d + np.tril(d, -1).T
            blk[:, j1:] = q[j1:, j0:j1].T
            bt[j0:j1] = blk * scale[j0:j1, None]
        del gram, c, p, q
        np.fill_diagonal(bt, 0.0)
        self.item_factors = bt
        self._fit_done(m, start, callback)
        return self

    # ------------------------------------------------------------------ queries
    def _score(self, rows: sp.csr_matrix, exclude_seen: bool, allow, deny, k: int):
        bt = self.item_factors
        out_ids = np.empty((rows.shape[0], k), dtype=np.int32)
        out_scores = np.empty((rows.shape[0], k), dtype=np.float32)
        threads = self._query_threads()
        packed = (None if allow is not None
                  else self._packed_items("item", "factors", bt, "item_factors"))
        for lo in range(0, rows.shape[0], _QUERY_CHUNK):
            part = rows[lo:lo + _QUERY_CHUNK]
            queries = np.ascontiguousarray(part.toarray(), dtype=np.float32)
            indptr, indices = _csr_rows(part) if exclude_seen else (None, None)
            i, s = _topk(queries, bt, k, indptr, indices, allow, deny, threads, "user_items",
                         "item_factors", packed)
            out_ids[lo:lo + len(i)] = i
            out_scores[lo:lo + len(i)] = s
        return out_ids, out_scores

    def _dense_scores(self, row: sp.csr_matrix) -> np.ndarray:
        return self.item_factors @ row.toarray().ravel().astype(np.float32)

    def similar_items(self, itemid, N=10, filter_items=None, items=None, recalculate_item=False,
                      item_users=None):
        """The ``N`` items whose columns of ``B`` have the highest cosine with ``itemid``'s.

        Parameters and returns as in :meth:`tastemaker.models.FactorModel.similar_items`;
        ``recalculate_item`` is not supported.
        """
        self._check_fitted()
        if self._check_bool(recalculate_item, "recalculate_item"):
            raise ValueError(f"recalculate_item: {type(self).__name__} cannot fold in new "
                             f"items; refit with the new item's interactions")
        return self._similar(self.item_factors, "itemid", itemid, N,
                             (filter_items, "filter_items"), (items, "items"), False, None,
                             "item_users", self._fold_in_items)

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        self._check_fitted()
        return self._saved_params(), {"item_factors": self.item_factors,
                                      **self._state_arrays()}, {}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls._from_params(params)
        bt = check_dense(arrays["item_factors"], "item_factors", ndim=2)
        model._load_train(arrays)
        if bt.shape != (model.n_items_, model.n_items_):
            raise ValueError(f"EASE: damaged state (item_factors of shape {bt.shape})")
        model.item_factors = bt
        return model
