"""Biased matrix factorization for star ratings, by ALS with weighted regularization."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._memory import check_fits
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
from .base import FactorModel, _as_user_items, _check_callback

__all__ = ["ExplicitALS"]


@register_model("ExplicitALS")
class ExplicitALS(FactorModel):
    r"""Matrix factorization of explicit ratings with biases, by alternating least squares
    with frequency-weighted regularization (ALS-WR: Zhou et al. 2008, "Large-scale
    Parallel Collaborative Filtering for the Netflix Prize"; biases as in Koren et al.
    2009), then Bayesian averaging by Gibbs sampling (BPMF: Salakhutdinov & Mnih 2008,
    "Bayesian Probabilistic Matrix Factorization using Markov Chain Monte Carlo").

    Predicts :math:`\hat r_{ui} = \mu + b_u + c_i + x_u \cdot y_i`.  ``fit`` first
    minimizes

    .. math:: \sum_{(u,i)} (r_{ui} - \hat r_{ui})^2
              + \sum_u n_u (\lambda \|x_u\|^2 + \lambda_b b_u^2)
              + \sum_i n_i (\lambda \|y_i\|^2 + \lambda_b c_i^2)

    over the stored ratings only (an unstored entry is unknown, not a zero), ``n_u`` and
    ``n_i`` being the numbers of ratings of the user and the item, for ``iterations``
    sweeps.  Each half-step solves one regularised least-squares system of size
    ``factors + 1`` per user (then per item) natively: OpenMP over rows, per-thread
    scratch, float64 normal equations and a Cholesky solve.

    With ``samples > 0`` it then runs the Gibbs sampler of BPMF from that solution: rating
    noise of standard deviation ``rating_noise``, a Gaussian prior on ``[x_u; b_u]`` (and
    on ``[y_i; c_i]``) whose mean and precision matrix are drawn from their Normal-Wishart
    posterior each sweep, and every factor row drawn from its Gaussian conditional (the
    same native normal equations, plus a draw).  After ``burn_in`` sweeps, ``samples``
    sweeps are averaged: the biases are the mean biases, and the interaction
    ``x_u . y_i`` is the mean over the samples of the sampled products, stored as its best
    rank-``factors`` approximation (randomized SVD).  Averaging over the posterior instead
    of taking its mode is what brings RMSE below ALS's on sparse data (see bench/models.py
    and the README).  ``samples=0`` keeps the ALS-WR solution.

    Every draw depends only on ``random_state`` and the row, so the factors are
    identical for any thread count.

    Parameters
    ----------
    factors : int, default 10
    regularization : float, default 0.1
        :math:`\lambda` on the factors (>= 0), scaled by each row's rating count (ALS
        sweeps, and fold-in of new users).
    bias_regularization : float, default 0.05
        :math:`\lambda_b` on the biases (>= 0), scaled the same way.
    iterations : int, default 10
        ALS sweeps (users, then items) before sampling.
    clip : (float, float) or None, default None
        Clip ``predict`` to this rating range (e.g. ``(1, 5)``); ``fit`` sets it to the
        observed (min, max) when None.  ``recommend`` ranks by the unclipped prediction.
    samples : int, default 100
        Gibbs sweeps averaged (0: plain ALS-WR).  Fit time grows with it about like
        ``iterations``; memory: the samples' factors, ``samples * factors * (n_users +
        n_items)`` float32, until fit returns.
    burn_in : int, default 10
        Gibbs sweeps discarded before the averaged ones.
    rating_noise : float, default 0.9
        Standard deviation of the rating noise in the sampled model (> 0).
    random_state : None, int or numpy Generator
        Seeds the initial item factors (normal, standard deviation 0.1) and the sampler.
    num_threads : int, default 0
        OpenMP threads (0 = ``tastemaker.set_num_threads``'s value).

    The defaults were chosen on training data only: on MovieLens 100K, each of the five
    cross-validation folds of bench/models.py compared settings on an inner 80/20 split of
    its own training ratings (factors 10 or 20, rating_noise 0.8 or 0.9; three folds picked
    these, and they had the best mean inner RMSE); see bench/README.md.

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : ndarray of float32, shape (n_users,), (n_items,)
    user_factors : ndarray of float32, shape (n_users, factors + 2)
        ``[x_u, 1, mu + b_u]``, and
    item_factors : ndarray of float32, shape (n_items, factors + 2)
        ``[y_i, c_i, 1]``: so that ``user_factors @ item_factors.T`` is the whole
        predicted rating, which ``recommend`` ranks by (the shared top-k query).

    ``predict(userids, itemids)`` returns predicted ratings (float32); ``recommend``
    ranks by predicted rating and returns it as the score; ``similar_items`` /
    ``similar_users`` use the cosine of the ``x``/``y`` factors (without the bias
    columns); ``recommend(..., recalculate_user=True)`` solves the users' factors and
    biases from their rows with the items fixed (regularised least squares).
    """

    def __init__(self, factors=10, regularization=0.1, bias_regularization=0.05, iterations=10,
                 clip=None, samples=100, burn_in=10, rating_noise=0.9, *, random_state=None,
                 num_threads=0):
        self.factors = factors
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.iterations = iterations
        self.clip = clip
        self.samples = samples
        self.burn_in = burn_in
        self.rating_noise = rating_noise
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
            "samples": check_int(self.samples, "samples", minimum=0),
            "burn_in": check_int(self.burn_in, "burn_in", minimum=0),
            "rating_noise": check_float(self.rating_noise, "rating_noise", minimum=0.0,
                                        strict=True),
            "num_threads": check_int(self.num_threads, "num_threads", minimum=0),
            "clip": clip,
        }

    def _solve(self, rows: sp.csr_matrix, other, other_bias, p, mean, draw=None):
        """One half-step: the least-squares solution, or with ``draw = (prior precision,
        prior mean, seed)`` a Gibbs draw around the posterior mean under that prior."""
        f = other.shape[1]
        x = np.zeros((rows.shape[0], f), dtype=np.float32)
        b = np.zeros(rows.shape[0], dtype=np.float32)
        if rows.shape[0]:
            extra = {}
            if draw is not None:
                precision, prior_mean, seed = draw
                extra = {"noise_sd": p["rating_noise"], "seed": seed,
                         "prior_precision": precision, "prior_mean": prior_mean}
            _core.explicit_als_solve(*_native(rows), other, other_bias, x, b,
                                     regularization=p["regularization"],
                                     bias_regularization=p["bias_regularization"], weighted=True,
                                     global_mean=mean, num_threads=p["num_threads"], **extra)
        return x, b

    @staticmethod
    def _prior_draw(x, b, rated, noise, rng):
        """(precision * noise^2, mean) of the Gaussian prior on ``[x; b]`` drawn from its
        Normal-Wishart posterior given the rows that have ratings (BPMF's hyperprior:
        mean 0 with beta_0 = 2, Wishart scale I with d degrees of freedom)."""
        z = np.hstack([x[rated], b[rated, None]]).astype(np.float64)
        n, d = z.shape
        beta0 = 2.0
        zbar = z.mean(axis=0) if n else np.zeros(d)
        dev = z - zbar
        w_inv = np.eye(d) + dev.T @ dev + beta0 * n / (beta0 + n) * np.outer(zbar, zbar)
        w = np.linalg.inv(w_inv)
        precision = _wishart(rng, d + n, (w + w.T) / 2)
        cov = np.linalg.inv((beta0 + n) * precision)
        mean = rng.multivariate_normal(n * zbar / (beta0 + n), (cov + cov.T) / 2)
        return np.ascontiguousarray(precision * noise**2), np.ascontiguousarray(mean)

    def _sample(self, r, rt, y, c, p, mean, rng, bar):
        """The Gibbs sweeps from the ALS solution (y, c): the mean biases and a
        rank-``factors`` approximation of the mean interaction."""
        noise = p["rating_noise"]
        rated_u, rated_i = np.diff(r.indptr) > 0, np.diff(rt.indptr) > 0
        n_keep = p["samples"]
        f = y.shape[1]
        xs = np.empty((n_keep, r.shape[0], f), dtype=np.float32)
        ys = np.empty((n_keep, r.shape[1], f), dtype=np.float32)
        sum_b = np.zeros(r.shape[0])
        sum_c = np.zeros(r.shape[1])
        x = b = None
        for s in range(p["burn_in"] + n_keep):
            if x is None:  # the first draw of the users' prior needs users: the ALS ones
                x, b = self._solve(r, y, c, p, mean)
            _check_finite(x, b, y, c)  # before inverting anything built from them
            seeds = rng.integers(0, 2**63, size=2)
            x, b = self._solve(r, y, c, p, mean,
                               (*self._prior_draw(x, b, rated_u, noise, rng), int(seeds[0])))
            y, c = self._solve(rt, x, b, p, mean,
                               (*self._prior_draw(y, c, rated_i, noise, rng), int(seeds[1])))
            k = s - p["burn_in"]
            if k >= 0:
                xs[k], ys[k] = x, y
                sum_b += b
                sum_c += c
            bar.update(1)
        u_low, i_low = _mean_product_low_rank(xs, ys, f, rng)
        return u_low, (sum_b / n_keep).astype(np.float32), i_low, (sum_c / n_keep).astype(np.float32)

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
        rt = _transpose(r, p["num_threads"])
        rng = check_random_state(self.random_state)
        f = p["factors"]
        n_users, n_items = r.shape
        mean = float(np.mean(r.data, dtype=np.float64))
        y = (rng.standard_normal((n_items, f), dtype=np.float32) * np.float32(0.1))
        c = np.zeros(n_items, dtype=np.float32)
        x = np.zeros((n_users, f), dtype=np.float32)
        b = np.zeros(n_users, dtype=np.float32)
        if p["samples"]:
            check_fits(4 * p["samples"] * f * (n_users + n_items), "samples",
                       f"keeping {p['samples']} samples of {f} factors")
        from tqdm.auto import tqdm

        start = time.perf_counter()
        total = p["iterations"] + (p["burn_in"] + p["samples"] if p["samples"] else 0)
        with tqdm(total=total, disable=not show_progress, desc="ExplicitALS") as bar:
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
            if p["samples"]:
                _check_finite(y, c)
                x, b, y, c = self._sample(r, rt, y, c, p, mean, rng, bar)
        _check_finite(x, b, y, c)
        self.global_mean_ = mean
        self.user_bias_, self.item_bias_ = b, c
        self.user_factors = _user_rows(x, b, mean)
        self.item_factors = _item_rows(y, c)
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
        f = uf.shape[1] - 2
        dots = np.einsum("ij,ij->i", uf[u, :f].astype(np.float64), itf[i, :f].astype(np.float64))
        pred = self.global_mean_ + self.user_bias_[u] + self.item_bias_[i] + dots
        lo, hi = self.clip_
        return np.clip(pred, lo, hi).astype(np.float32)

    def _fold_in_users(self, user_items) -> np.ndarray:
        """``[x, 1, mu + b]`` for arbitrary users, by the regularised least-squares solve
        of their rows with the items fixed (what ``recommend(recalculate_user=True)``
        ranks with)."""
        p = self._checked_params()
        m = check_csr(user_items, "user_items", shape=(None, self.item_factors.shape[0]),
                      allow_empty=True)
        y = self._plain("item")
        x, b = self._solve(m, y, self.item_bias_, p, self.global_mean_)
        return _user_rows(x, b, self.global_mean_)

    def _plain(self, side: str) -> np.ndarray:
        """The ``x`` / ``y`` factors without the two bias columns (cached per factor
        version)."""
        factors = self.user_factors if side == "user" else self.item_factors
        return self._derived(side, "plain", factors,
                             lambda a: np.ascontiguousarray(a[:, :-2], dtype=np.float32))

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
                                "clip": [float(v) for v in self.clip_], "layout": 2}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls._from_params(params)
        uf = check_dense(arrays["user_factors"], "user_factors", ndim=2)
        itf = check_dense(arrays["item_factors"], "item_factors", ndim=2)
        ub = check_dense(arrays["user_bias"], "user_bias", ndim=1, shape=(uf.shape[0],))
        ib = check_dense(arrays["item_bias"], "item_bias", ndim=1, shape=(itf.shape[0],))
        mean = check_float(extra["global_mean"], "global_mean")
        if extra.get("layout", 1) == 1:  # files before the bias columns: [x, 1] and [y, c]
            if uf.shape[1] != itf.shape[1] or uf.shape[1] < 2:
                raise ValueError("ExplicitALS: damaged state (factor shapes)")
            uf, itf = _user_rows(uf[:, :-1], ub, mean), _item_rows(itf[:, :-1], ib)
        if uf.shape[1] != itf.shape[1] or uf.shape[1] < 3:
            raise ValueError("ExplicitALS: damaged state (factor shapes)")
        model.user_factors, model.item_factors = uf, itf
        model.user_bias_, model.item_bias_ = ub, ib
        model.global_mean_ = mean
        lo, hi = (check_float(v, "clip") for v in extra["clip"])
        model.clip_ = (lo, hi)
        return model


def _check_finite(*arrays) -> None:
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("user_items: ratings too large for float32 factors; rescale them")


def _user_rows(x, b, mean) -> np.ndarray:
    """``[x_u, 1, mu + b_u]`` (float32, C order)."""
    n = x.shape[0]
    return np.ascontiguousarray(np.hstack([x, np.ones((n, 1), np.float32),
                                           (mean + b.astype(np.float64))[:, None]]),
                                dtype=np.float32)


def _item_rows(y, c) -> np.ndarray:
    """``[y_i, c_i, 1]`` (float32, C order)."""
    return np.ascontiguousarray(np.hstack([y, c[:, None], np.ones((y.shape[0], 1), np.float32)]),
                                dtype=np.float32)


def _wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw from Wishart(df, scale) by the Bartlett decomposition (df >= dimension)."""
    d = scale.shape[0]
    chol = np.linalg.cholesky(scale)
    a = np.tril(rng.standard_normal((d, d)), -1)
    a[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    la = chol @ a
    return la @ la.T


def _mean_product_low_rank(xs, ys, k, rng, oversample=10, power=2):
    """(U, V) with ``U @ V.T`` the best rank-``k`` approximation (randomized SVD, Halko et
    al. 2011) of ``mean_s xs[s] @ ys[s].T``, without forming that matrix; the singular
    values are split evenly between U and V."""
    n_s = xs.shape[0]

    def times(m):  # mean_s xs[s] @ (ys[s].T @ m)
        return sum(xs[s].astype(np.float64) @ (ys[s].T.astype(np.float64) @ m)
                   for s in range(n_s)) / n_s

    def times_t(m):  # mean_s ys[s] @ (xs[s].T @ m)
        return sum(ys[s].astype(np.float64) @ (xs[s].T.astype(np.float64) @ m)
                   for s in range(n_s)) / n_s

    width = min(k + oversample, xs.shape[1], ys.shape[1])
    q, _ = np.linalg.qr(times(rng.standard_normal((ys.shape[1], width))))
    for _ in range(power):
        q, _ = np.linalg.qr(times(times_t(q)))
    w, sv, vt = np.linalg.svd(times_t(q).T, full_matrices=False)
    root = np.sqrt(sv[:k])
    u = np.zeros((xs.shape[1], k))
    v = np.zeros((ys.shape[1], k))
    u[:, :root.size] = (q @ w[:, :k]) * root
    v[:, :root.size] = vt[:k].T * root
    return u.astype(np.float32), v.astype(np.float32)
