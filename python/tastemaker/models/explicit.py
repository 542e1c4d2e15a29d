"""Biased matrix factorization for star ratings, by ALS with weighted regularization."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import (
    check_csr,
    check_dense,
    check_float,
    check_ids,
    check_int,
    check_random_state,
)
from ..io import register_model
from .als import _native, _transpose
from .base import (
    FactorModel,
    _append_liked,
    _as_user_items,
    _check_callback,
    _csr_rows,
    _factor_array,
    _id_list,
    _topk,
)

__all__ = ["ExplicitALS"]


@register_model("ExplicitALS")
class ExplicitALS(FactorModel):
    r"""Matrix factorization of explicit ratings with biases, by alternating least squares
    with frequency-weighted regularization (ALS-WR: Zhou et al. 2008, "Large-scale
    Parallel Collaborative Filtering for the Netflix Prize"; biases as in Koren et al.
    2009).

    Predicts :math:`\hat r_{ui} = \mu + b_u + c_i + x_u \cdot y_i` and minimizes

    .. math:: \sum_{(u,i)} (r_{ui} - \hat r_{ui})^2
              + \sum_u n_u (\lambda \|x_u\|^2 + \lambda_b b_u^2)
              + \sum_i n_i (\lambda \|y_i\|^2 + \lambda_b c_i^2)

    over the stored ratings only (an unstored entry is unknown, not a zero), ``n_u`` and
    ``n_i`` being the numbers of ratings of the user and the item.  Each half-step solves
    one regularised least-squares system of size ``factors + 1`` per user (then per item)
    natively: OpenMP over rows, per-thread scratch, float64 normal equations and a
    Cholesky solve, so the factors are identical for any thread count.

    Parameters
    ----------
    factors : int, default 50
    regularization : float, default 0.1
        :math:`\lambda` on the factors (>= 0), scaled by each row's rating count.
    bias_regularization : float, default 0.05
        :math:`\lambda_b` on the biases (>= 0), scaled the same way.
    iterations : int, default 15
        Alternating sweeps (users, then items).
    clip : (float, float) or None, default None
        Clip ``predict`` to this rating range (e.g. ``(1, 5)``); ``fit`` sets it to the
        observed (min, max) when None.  ``recommend`` ranks by the unclipped prediction.
    random_state : None, int or numpy Generator
        Seeds the initial item factors (normal, standard deviation 0.1).
    num_threads : int, default 0
        OpenMP threads (0 = ``tastemaker.set_num_threads``'s value).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : ndarray of float32, shape (n_users,), (n_items,)
    user_factors : ndarray of float32, shape (n_users, factors + 1)
        ``[x_u, 1]``: so that ``user_factors @ item_factors.T`` is ``x_u . y_i + c_i``,
        the part of the prediction that ranks items for a user.
    item_factors : ndarray of float32, shape (n_items, factors + 1)
        ``[y_i, c_i]``.

    ``predict(userids, itemids)`` returns predicted ratings (float32); ``recommend``
    ranks by predicted rating and returns it as the score; ``similar_items`` /
    ``similar_users`` use the cosine of the ``x``/``y`` factors (without the bias
    column); ``recommend(..., recalculate_user=True)`` solves the users' factors and
    biases from their rows with the items fixed.
    """

    def __init__(self, factors=50, regularization=0.1, bias_regularization=0.05, iterations=15,
                 clip=None, *, random_state=None, num_threads=0):
        self.factors = factors
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.iterations = iterations
        self.clip = clip
        self.random_state = random_state
        self.num_threads = num_threads

    global_mean_ = None
    user_bias_ = None
    item_bias_ = None
    clip_ = None

    def _checked_params(self) -> dict:
        clip = self.clip
        if clip is not None:
            try:
                lo, hi = clip
            except (TypeError, ValueError):
                raise ValueError(f"clip: expected None or a (low, high) pair, got {clip!r}") from None
            lo, hi = check_float(lo, "clip"), check_float(hi, "clip")
            if lo > hi:
                raise ValueError(f"clip: low {lo} is above high {hi}")
            clip = (lo, hi)
        return {
            "factors": check_int(self.factors, "factors", minimum=1, maximum=4096),
            "regularization": check_float(self.regularization, "regularization", minimum=0.0),
            "bias_regularization": check_float(self.bias_regularization, "bias_regularization",
                                               minimum=0.0),
            "iterations": check_int(self.iterations, "iterations", minimum=0),
            "num_threads": check_int(self.num_threads, "num_threads", minimum=0),
            "clip": clip,
        }

    def _solve(self, rows: sp.csr_matrix, other, other_bias, p, mean):
        f = other.shape[1]
        x = np.zeros((rows.shape[0], f), dtype=np.float32)
        b = np.zeros(rows.shape[0], dtype=np.float32)
        if rows.shape[0]:
            _core.explicit_als_solve(*_native(rows), other, other_bias, x, b,
                                     regularization=p["regularization"],
                                     bias_regularization=p["bias_regularization"], weighted=True,
                                     global_mean=mean, num_threads=p["num_threads"])
        return x, b

    def fit(self, user_items, *, show_progress: bool = True, callback=None):
        """Learn biases and factors from a users x items matrix of ratings.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
            The ratings (every stored value is a rating, zeros included).
        show_progress : bool, default True
            tqdm progress bar with the training RMSE.
        callback : callable, optional
            ``callback(iteration, elapsed_seconds, train_rmse)`` after every sweep.

        Returns
        -------
        self
        """
        p = self._checked_params()
        _check_callback(callback)
        r = _as_user_items(user_items)
        rt = _transpose(r)
        rng = check_random_state(self.random_state)
        f = p["factors"]
        n_users, n_items = r.shape
        mean = float(np.mean(r.data, dtype=np.float64))
        y = (rng.standard_normal((n_items, f), dtype=np.float32) * np.float32(0.1))
        c = np.zeros(n_items, dtype=np.float32)
        x = np.zeros((n_users, f), dtype=np.float32)
        b = np.zeros(n_users, dtype=np.float32)
        from tqdm.auto import tqdm

        start = time.perf_counter()
        with tqdm(total=p["iterations"], disable=not show_progress, desc="ExplicitALS") as bar:
            for it in range(p["iterations"]):
                x, b = self._solve(r, y, c, p, mean)
                y, c = self._solve(rt, x, b, p, mean)
                rmse = None
                if show_progress or callback is not None:
                    rmse = float(_core.explicit_als_rmse(*_native(r), x, b, y, c, mean,
                                                         p["num_threads"]))
                    bar.set_postfix(rmse=f"{rmse:.4f}")
                bar.update(1)
                if callback is not None:
                    callback(it, time.perf_counter() - start, rmse)
        if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(b).all()
                and np.isfinite(c).all()):
            raise ValueError("user_items: ratings too large for float32 factors; rescale them")
        self.global_mean_ = mean
        self.user_bias_, self.item_bias_ = b, c
        self.user_factors = np.ascontiguousarray(np.hstack([x, np.ones((n_users, 1), np.float32)]))
        self.item_factors = np.ascontiguousarray(np.hstack([y, c[:, None]]))
        self.clip_ = p["clip"] if p["clip"] is not None else (float(r.data.min()), float(r.data.max()))
        return self

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if self.global_mean_ is None or getattr(self, "user_factors", None) is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")

    def predict(self, userids, itemids) -> np.ndarray:
        """Predicted ratings ``mu + b_u + c_i + x_u . y_i`` (clipped to ``clip_``).

        Parameters
        ----------
        userids, itemids : int or array-like of int, shape (n,)
            The (user, item) pairs to predict; two ints give a 1-element array.

        Returns
        -------
        ndarray of float32, shape (n,)
        """
        self._check_fitted()
        uf, itf = self.user_factors, self.item_factors
        u, _ = check_ids(userids, "userids", uf.shape[0])
        i, _ = check_ids(itemids, "itemids", itf.shape[0])
        if u.shape != i.shape:
            raise ValueError(f"itemids: expected {u.shape[0]} ids (one per user id), got "
                             f"{i.shape[0]}")
        f = uf.shape[1] - 1
        dots = np.einsum("ij,ij->i", uf[u, :f].astype(np.float64), itf[i, :f].astype(np.float64))
        pred = self.global_mean_ + self.user_bias_[u] + self.item_bias_[i] + dots
        lo, hi = self.clip_
        return np.clip(pred, lo, hi).astype(np.float32)

    def _fold_in_users(self, user_items) -> np.ndarray:
        x, b = self._fold_in(user_items)
        return np.hstack([x, np.ones((x.shape[0], 1), np.float32)])

    def _fold_in(self, user_items):
        p = self._checked_params()
        m = check_csr(user_items, "user_items", shape=(None, self.item_factors.shape[0]),
                      allow_empty=True)
        f = self.item_factors.shape[1] - 1
        y = np.ascontiguousarray(self.item_factors[:, :f])
        return self._solve(m, y, self.item_bias_, p, self.global_mean_)

    def recommend(self, userid, user_items=None, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top-``N`` items by predicted rating (scores are the unclipped predictions).

        Parameters and returns as in :meth:`tastemaker.models.FactorModel.recommend`;
        with ``recalculate_user=True`` the users' factors and biases are solved from
        their rows of ``user_items``.
        """
        self._check_fitted()
        uf, itf = _factor_array(self.user_factors, "user_factors"), _factor_array(
            self.item_factors, "item_factors")
        n_users, n_items = uf.shape[0], itf.shape[0]
        N = check_int(N, "N", minimum=1)
        filt = self._check_bool(filter_already_liked_items, "filter_already_liked_items")
        recalc = self._check_bool(recalculate_user, "recalculate_user")
        ids, scalar = self._query_ids(userid, "userid", None if recalc else n_users)
        rows = None
        if filt or recalc:
            if user_items is None:
                raise ValueError("user_items: required when filter_already_liked_items or "
                                 "recalculate_user is True")
            rows = self._rows_for(ids, user_items, "user_items", n_users, n_items, recalc)
        if recalc:
            x, bias = self._fold_in(rows)
            queries = np.ascontiguousarray(np.hstack([x, np.ones((len(ids), 1), np.float32)]))
        else:
            queries, bias = uf[ids], self.user_bias_[ids]
        allow = _id_list(items, "items", n_items)
        deny = _id_list(filter_items, "filter_items", n_items)
        pool = n_items if allow is None else len(allow)
        indptr, indices = _csr_rows(rows) if filt else (None, None)
        out_ids, out_scores = _topk(queries, itf, min(N, pool), indptr, indices, allow, deny,
                                    self._query_threads(), "user_factors", "item_factors")
        valid = out_ids >= 0
        if filt and allow is not None:
            _append_liked(out_ids, out_scores, queries, itf, rows, allow, deny)
        shift = (self.global_mean_ + bias.astype(np.float64))[:, None]
        out_scores = np.where(valid, out_scores + shift, out_scores).astype(np.float32)
        return self._shape_result(out_ids, out_scores, scalar)

    def _plain(self, side: str) -> np.ndarray:
        """The ``x`` / ``y`` factors without the bias column (cached per factor version)."""
        factors = self.user_factors if side == "user" else self.item_factors
        return self._derived(side, "plain", factors,
                             lambda a: np.ascontiguousarray(a[:, :-1]))

    def similar_items(self, itemid, N=10, filter_items=None, items=None, recalculate_item=False,
                      item_users=None):
        """Items by cosine of their factors ``y`` (the bias column left out); see
        :meth:`tastemaker.models.FactorModel.similar_items`.  ``recalculate_item`` is not
        supported."""
        self._check_fitted()
        if self._check_bool(recalculate_item, "recalculate_item"):
            raise ValueError(f"recalculate_item: {type(self).__name__} cannot fold in new "
                             f"items; refit with the new item's ratings")
        return self._similar(self._plain("item"), "itemid", itemid, N,
                             (filter_items, "filter_items"), (items, "items"), False, None,
                             "item_users", self._fold_in_items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Users by cosine of their factors ``x``; see
        :meth:`tastemaker.models.FactorModel.similar_users`."""
        self._check_fitted()
        return self._similar(self._plain("user"), "userid", userid, N,
                             (filter_users, "filter_users"), (users, "users"), False, None,
                             "user_items", self._fold_in_users)

    # ------------------------------------------------------------------ persistence
    def _saved_params(self) -> dict:
        params = super()._saved_params()
        if params.get("clip") is not None:
            params["clip"] = [float(v) for v in params["clip"]]
        return params

    @classmethod
    def _from_params(cls, params: dict):
        params = dict(params)
        if isinstance(params.get("clip"), list):
            params["clip"] = tuple(params["clip"])
        return super()._from_params(params)

    def _get_state(self):
        self._check_fitted()
        params = self._saved_params()
        if params["clip"] is not None:
            params["clip"] = [float(v) for v in params["clip"]]
        arrays = {"user_factors": self.user_factors, "item_factors": self.item_factors,
                  "user_bias": self.user_bias_, "item_bias": self.item_bias_}
        return params, arrays, {"global_mean": float(self.global_mean_),
                                "clip": [float(v) for v in self.clip_]}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls._from_params(params)
        uf = check_dense(arrays["user_factors"], "user_factors", ndim=2)
        itf = check_dense(arrays["item_factors"], "item_factors", ndim=2)
        ub = check_dense(arrays["user_bias"], "user_bias", ndim=1, shape=(uf.shape[0],))
        ib = check_dense(arrays["item_bias"], "item_bias", ndim=1, shape=(itf.shape[0],))
        if uf.shape[1] != itf.shape[1] or uf.shape[1] < 2:
            raise ValueError("ExplicitALS: damaged state (factor shapes)")
        model.user_factors, model.item_factors = uf, itf
        model.user_bias_, model.item_bias_ = ub, ib
        model.global_mean_ = check_float(extra["global_mean"], "global_mean")
        lo, hi = (check_float(v, "clip") for v in extra["clip"])
        model.clip_ = (lo, hi)
        return model
