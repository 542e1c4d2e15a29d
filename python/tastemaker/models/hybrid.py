"""Hybrid implicit ALS: item factors tied to item metadata, so new titles get factors."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .. import _core
from .._memory import zeros
from .._validation import check_dense, check_float, check_random_state
from ..io import register_model
from .als import ALS, _native, _transpose
from .base import _as_user_items, _check_callback
from .content import feature_matrix

__all__ = ["HybridALS"]


def _ridge(F: sp.csr_matrix, Y: np.ndarray, w: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r"""argmin_W  sum_i w_i |y_i - W^T f_i|^2 + sum_j lam_j |W_j|^2  (float64, LAPACK).

    ``lam`` is the penalty per feature (row of W).  Small feature spaces solve the
    normal equations by Cholesky; large ones run CG on them column by column, never
    forming F^T F densely."""
    Fw = sp.csr_matrix(sp.diags(w) @ F)
    rhs = np.asarray(Fw.T @ Y, dtype=np.float64)
    n_f = F.shape[1]
    if n_f <= 4096:
        A = np.asarray((F.T @ Fw).toarray(), dtype=np.float64)
        A[np.diag_indices_from(A)] += lam
        try:
            # check_finite=False: the check costs ~60 ms per call in scipy 1.17 (most of
            # a fit's time on MovieLens); A and rhs are finite by construction
            return scipy.linalg.solve(A, rhs, assume_a="pos", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return np.linalg.lstsq(A, rhs, rcond=None)[0]
    from scipy.sparse.linalg import LinearOperator, cg

    op = LinearOperator((n_f, n_f), matvec=lambda v: F.T @ (Fw @ v) + lam * v,
                        dtype=np.float64)
    out = np.zeros((n_f, Y.shape[1]))
    for j in range(Y.shape[1]):
        out[:, j] = cg(op, rhs[:, j], maxiter=200)[0]
    return out


_KERNEL_BLOCK = 1 << 22  # kernel entries per block (32 MiB of float64)


def _kernel_smooth(Fq: sp.csr_matrix, Fk: sp.csr_matrix, R: np.ndarray,
                   gamma: float) -> np.ndarray:
    r"""Nadaraya-Watson average of the rows of ``R`` (one per row of ``Fk``) at each row of
    ``Fq``: :math:`\sum_j k_{ij} r_j / \sum_j k_{ij}`, :math:`k_{ij} = \exp(-\gamma
    |f_i - f_j|^2)` (float64, (n_q, R.shape[1])).

    Each row's weights are taken relative to its nearest row of ``Fk`` (the same ratios,
    never all underflowing to 0).  Blocks of query rows keep the dense kernel block near
    32 MiB; the products are sparse x sparse and BLAS."""
    out = np.zeros((Fq.shape[0], R.shape[1]))
    if Fk.shape[0] == 0 or Fq.shape[0] == 0:
        return out
    Fq = sp.csr_matrix(Fq, dtype=np.float64)
    FkT = sp.csr_matrix(Fk, dtype=np.float64).T.tocsr()
    qn = np.asarray(Fq.multiply(Fq).sum(axis=1)).ravel()
    kn = np.asarray(FkT.multiply(FkT).sum(axis=0)).ravel()
    R = np.asarray(R, dtype=np.float64)
    step = max(1, _KERNEL_BLOCK // Fk.shape[0])
    for s in range(0, Fq.shape[0], step):
        e = min(s + step, Fq.shape[0])
        d2 = (Fq[s:e] @ FkT).toarray()
        d2 *= -2.0
        d2 += qn[s:e, None]
        d2 += kn[None, :]
        np.maximum(d2, 0.0, out=d2)  # rounding of |f|^2 + |g|^2 - 2 f.g
        d2 -= d2.min(axis=1, keepdims=True)
        d2 *= -gamma
        K = np.exp(d2, out=d2)
        out[s:e] = (K @ R) / K.sum(axis=1, keepdims=True)
    return out


@register_model("HybridALS")
class HybridALS(ALS):
    r"""Implicit ALS whose item factors are tied to item features (cold-start ready).

    Minimises the implicit-ALS loss with each item's factors regularised toward a linear
    function of its features, :math:`t_i = W^T f_i`, instead of toward 0:

    .. math::
        \sum_{u,\, i \in D} c_{ui}(p_{ui} - x_u^T y_i)^2 + \lambda_U \sum_u |x_u|^2
        + \sum_i \lambda_i |y_i - W^T f_i|^2 + \lambda_I \mu |W_F|^2

    with :math:`\lambda_i = \lambda_I (2 + n_i)^\nu` (``item_regularization``,
    ``regularization_exponent``; ``n_i`` the item's interactions) and
    :math:`\mu` = ``feature_regularization`` (:math:`W_F`: the rows of the features,
    not the intercept's).  Each sweep solves users (native ALS),
    then items (the native ALS solve, with the prior's :math:`\lambda_i t_i` entering
    its right-hand side through one pseudo-user per item whose factor is
    :math:`\lambda_i t_i` and whose confidence is 1: it adds nothing to the left-hand
    side), then the ridge map :math:`W` over the items with interactions (LAPACK).

    ``D`` is the set of items with interactions.  An item outside it has no evidence
    about it at all (not even negative: nobody was shown it), so its factors are
    its prior :math:`y_i = W^T f_i`, and only items with interactions count as
    unobserved negatives in the users' solves.  That is how a new title is recommended
    at once: list it in ``fit`` with an empty column, or ``add_items`` it later.

    A linear map cannot tell a combination of features from the sum of its parts
    (a comedy-romance from a comedy plus a romance), so a title without data gets, on
    top of :math:`W^T f_i`, a kernel average of the residuals
    :math:`r_j = y_j - W^T f_j` of the items with data (``kernel_weight`` :math:`b`,
    ``kernel_gamma`` :math:`\gamma`):

    .. math::
        y_i = W^T f_i + b \frac{\sum_{j \in D} k_{ij} r_j}{\sum_{j \in D} k_{ij}},
        \qquad k_{ij} = \exp(-\gamma |f_i - f_j|^2)

    (Nadaraya-Watson smoothing of what the map misses: titles whose metadata are
    close to the new one's, e.g. the same genres and era, lend it their deviation
    from the map).  The items with data keep their fitted factors, and a title without
    metadata (an all-zero feature row) gets no kernel term.

    Folding a user in (``recommend(..., recalculate_user=True)``, the Personalizer's
    ``record``, explanations) solves that same users' half-step against the fitted item
    factors: its Gram :math:`Y^T Y` runs over the items with data (``item_has_data_``)
    only, so a title added by ``add_items`` (or listed with an empty column) changes no
    user's fold-in, exactly as it changes no user's factors in ``fit``.  A title without
    data that is in the user's own history enters, like every history item, as
    :math:`(c_{ui} - 1) y_i y_i^T` on top of that Gram.

    Parameters
    ----------
    factors, regularization, alpha, iterations, solver, cg_steps, random_state, num_threads
        As in :class:`~tastemaker.ALS` (``regularization`` is the users' :math:`\lambda_U`,
        ``"auto"`` scales it to the data as ALS does).
    item_regularization : float or "auto", default "auto"
        :math:`\lambda_I`, the pull of item factors toward their feature prediction.
        Large values make items nearly their feature prediction.  ``"auto"`` takes the
        users' weight ``regularization_``, as plain ALS uses one weight for both sides,
        so it follows the data's size and ``alpha`` as that weight does.  What matters
        is mostly the product of the two weights (scaling the users' factors up and
        the items' down trades one weight for the other).  On the MovieLens 100K
        cold-start protocol (``bench/models_coldstart.py``, mean NDCG@10 of 5
        validation folds over 5 seeds) the best settings have a product of about
        100-300 at ``alpha`` 1-3 (0.3299-0.3305); "auto" (about 8.5 for both there)
        scores 0.3302, the former default 100 with ``regularization="auto"`` 0.308.
    feature_regularization : float, default 100.0
        :math:`\mu`, the ridge penalty on the feature -> factor map.
    regularization_exponent : float, default 0.0
        :math:`\nu` (frequency-scaled item pull; users as in ALS).
    fit_intercept : bool, default True
        Append a constant feature, so items without metadata get the mean item factor.
    kernel_weight : float, default 1.0
        :math:`b` above, >= 0; 0 gives a title without data exactly :math:`W^T f_i`.
        On the MovieLens 100K cold-start protocol (``bench/models_coldstart.py``'s 25
        validation folds; bench/README.md, "Cold start: kernel-smoothed residuals")
        1.0 with ``kernel_gamma=1`` scores NDCG@10 0.342 against 0.335 for 0.
    kernel_gamma : float, default 1.0
        :math:`\gamma` above, > 0, in units of the squared distance between feature
        rows (on 0/1 features such as genres and year buckets: per differing feature,
        so a row with one feature more or less weighs :math:`e^{-1}` of an identical
        one at 1.0).  The fitted model keeps the feature rows and residuals of the
        items with data (``n_items_with_data * (nnz per row + factors)`` numbers) for
        ``add_items``.

    Attributes
    ----------
    user_factors, item_factors : ndarray of float32
    feature_factors_ : ndarray of float64, shape (n_features (+1), factors)
        The ridge map :math:`W` (intercept row last).
    item_has_data_ : ndarray of bool, shape (n_items,)
        Items that had interactions in ``fit`` (``add_items`` appends False).
    """

    calculate_training_loss = False

    def __init__(self, factors=64, regularization="auto", item_regularization="auto",
                 feature_regularization=100.0, alpha=1.0, iterations=15, solver="cg", cg_steps=3,
                 regularization_exponent=0.0, fit_intercept=True, kernel_weight=1.0,
                 kernel_gamma=1.0, random_state=None, num_threads=0):
        super().__init__(factors=factors, regularization=regularization, alpha=alpha,
                         iterations=iterations, solver=solver, cg_steps=cg_steps,
                         regularization_exponent=regularization_exponent,
                         random_state=random_state, num_threads=num_threads)
        del self.calculate_training_loss  # the class attribute (False) stands
        self.item_regularization = item_regularization
        self.feature_regularization = feature_regularization
        self.fit_intercept = fit_intercept
        self.kernel_weight = kernel_weight
        self.kernel_gamma = kernel_gamma
        self.feature_factors_ = None
        self._kernel = None  # (feature rows, residuals) of the items with data, or None
        self.item_has_data_ = None
        self.feature_names_ = None

    def _checked_params(self) -> dict:
        p = super()._checked_params()
        if isinstance(self.item_regularization, str):
            if self.item_regularization != "auto":
                raise ValueError(f"item_regularization: expected a number > 0 or 'auto', got "
                                 f"{self.item_regularization!r}")
            p["item_reg"] = None  # fit resolves it to the users' weight
        else:
            p["item_reg"] = check_float(self.item_regularization, "item_regularization",
                                        minimum=0.0, strict=True)
        p["feature_reg"] = check_float(self.feature_regularization, "feature_regularization",
                                       minimum=0.0)
        self._check_bool(self.fit_intercept, "fit_intercept")
        p["kernel_weight"] = check_float(self.kernel_weight, "kernel_weight", minimum=0.0)
        p["kernel_gamma"] = check_float(self.kernel_gamma, "kernel_gamma", minimum=0.0,
                                        strict=True)
        return p

    def _design(self, item_features, n_items=None, names=None) -> sp.csr_matrix:
        F = feature_matrix(item_features, "item_features", n_items=n_items, names=names)
        if self.fit_intercept:
            F = sp.hstack([F, np.ones((F.shape[0], 1))], format="csr")
        return F

    # ------------------------------------------------------------------ fitting
    def fit(self, user_items, item_features=None, *, show_progress: bool = True,
            callback=None):
        """Learn user factors, item factors and the feature -> factor map.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
            Interaction strengths (the ALS confidence convention).  Columns may be
            empty: those catalog items get their factors from their features.
        item_features : ItemFeatures, scipy.sparse matrix or ndarray, shape (n_items, n_features)
            Row ``i`` describes item ``i``.
        show_progress : bool, default True
        callback : callable, optional
            ``callback(iteration, elapsed_seconds, None)`` after every sweep.

        Returns
        -------
        self
        """
        p = self._checked_params()
        _check_callback(callback)
        cui = _as_user_items(user_items)
        self._resolve_regularization(cui, p)
        if p["item_reg"] is None:
            if not self.regularization_ > 0:
                raise ValueError("item_regularization: 'auto' takes the users' weight, which "
                                 "is 0 here (regularization=0); pass a number > 0")
            p["item_reg"] = float(self.regularization_)
        n_users, n_items = cui.shape
        F = self._design(item_features, n_items=n_items)
        from ..data.features import ItemFeatures

        self.feature_names_ = (item_features.names.copy()
                               if isinstance(item_features, ItemFeatures) else None)
        rng = check_random_state(self.random_state)
        f = p["factors"]
        alpha, nt = p["alpha"], p["num_threads"]

        ciu = _transpose(cui, nt)
        n_i = np.diff(ciu.indptr)
        has_data = n_i > 0
        warm = np.flatnonzero(has_data)
        cold = np.flatnonzero(~has_data)
        lam_i = p["item_reg"] * (2.0 + n_i) ** p["reg_exponent"]
        w_ridge = (lam_i / p["item_reg"])[warm]
        penalty = np.full(F.shape[1], p["feature_reg"])
        if self.fit_intercept:
            penalty[-1] = 0.0  # as in any ridge regression, the intercept is not shrunk

        aug_native, c = self._augmented(ciu, alpha)
        x_aug = zeros((n_users + n_items, f))
        x_aug[:n_users] = rng.random((n_users, f), dtype=np.float32) * np.float32(0.01)
        X = x_aug[:n_users]
        Y = zeros((n_items, f))
        rng.random(dtype=np.float32, out=Y)
        Y *= np.float32(0.01)
        W = np.zeros((F.shape[1], f))
        cui_native = _native(cui)
        from tqdm.auto import tqdm

        start = time.perf_counter()
        with tqdm(total=p["iterations"], disable=not show_progress, desc="HybridALS") as bar:
            for it in range(p["iterations"]):
                gram_y = _core.als_gram(np.ascontiguousarray(Y[warm]), nt)
                _core.als_solve(*cui_native, Y, gram_y, X, p["regularization"],
                                p["reg_exponent"], alpha, self.solver, p["cg_steps"], nt)
                self._item_step(aug_native, x_aug, n_users, lam_i / c, F @ W, Y, p,
                                self.solver)
                if warm.size:
                    W = _ridge(F[warm], Y[warm].astype(np.float64), w_ridge, penalty)
                Y[cold] = (F[cold] @ W).astype(np.float32)
                bar.update(1)
                if callback is not None:
                    callback(it, time.perf_counter() - start, None)
        self._kernel = None
        if p["kernel_weight"] > 0:
            # the residuals the map leaves on the items with data, smoothed over the
            # feature space onto the items without (see the class docstring)
            rows = sp.csr_matrix(F[warm], dtype=np.float64)
            resid = np.asarray(Y[warm] - F[warm] @ W, dtype=np.float32)
            self._kernel = (rows, resid)
            if cold.size:
                Y[cold] = (F[cold] @ W + self._kernel_term(F[cold], p)).astype(np.float32)
        self.user_factors = X.copy()
        self.item_factors = Y
        self.feature_factors_ = W
        self.item_has_data_ = has_data
        return self

    @staticmethod
    def _augmented(ciu: sp.csr_matrix, alpha: float):
        """The item x (users + pseudo-users) matrix of the items' half-step, native, and
        the confidence ``c`` of its pseudo entries.

        Column n_users + i of item i's row is a pseudo-user whose stored value 1/alpha
        has confidence c = 1 (to float32 rounding): it adds (c - 1) = 0 to the left-hand
        side and c times its factor to the right-hand side, so giving it the factor
        lambda_i t_i / c puts the prior's lambda_i t_i there."""
        v = np.float32(1.0) / np.float32(alpha)
        c = float(np.float32(alpha) * v)
        n_items = ciu.shape[0]
        aug = sp.hstack([ciu, sp.diags(np.full(n_items, v, dtype=np.float32), format="csr")],
                        format="csr")
        aug.sort_indices()
        return _native(aug), c

    @staticmethod
    def _item_step(aug_native, x_aug, n_users, scale, targets, Y, p, solver) -> None:
        """Items' half-step: for every item i (row of the augmented item x (users +
        pseudo-users) matrix), solve in place

            (X^T X + lambda_i I + sum_u (c_ui - 1) x_u x_u^T) y_i
                = sum_{u: v_ui > 0} c_ui x_u + lambda_i t_i

        with ``targets`` t (n_items x f) and ``scale`` = lambda_i / c per item.  X is
        ``x_aug[:n_users]``; X^T X covers the real users only."""
        x_aug[n_users:] = (scale[:, None] * targets).astype(np.float32)
        gram_x = _core.als_gram(x_aug[:n_users], p["num_threads"])
        _core.als_solve(*aug_native, x_aug, gram_x, Y, p["item_reg"], p["reg_exponent"],
                        p["alpha"], solver, p["cg_steps"], p["num_threads"])

    @property
    def item_has_data_(self):
        return self.__dict__.get("_item_has_data")

    @item_has_data_.setter
    def item_has_data_(self, value) -> None:
        # the fold-in Gram counts only these items: assigning them invalidates it, as
        # assigning the factors does
        self.__dict__["_item_has_data"] = value
        self._query_cache().bump("item")

    def _gram(self, side: str, factors: np.ndarray, num_threads: int) -> np.ndarray:
        """As :meth:`ALS._gram`, but the item side's Gram covers only the items with
        data (``item_has_data_``), as the users' half-step of ``fit`` does: a title with
        no interactions is not an unobserved negative in a fold-in either."""
        has = self.__dict__.get("_item_has_data")
        if side != "item" or has is None or has.all():
            return super()._gram(side, factors, num_threads)
        if has.shape != (factors.shape[0],):
            raise ValueError(f"item_has_data_: expected shape ({factors.shape[0]},), got "
                             f"{has.shape}")
        return self._derived(side, "gram", factors, lambda y: _core.als_gram(
            np.ascontiguousarray(y[np.asarray(has, dtype=bool)]), num_threads))

    def item_factors_from_features(self, item_features) -> np.ndarray:
        """Factors for items described by ``item_features`` (the fitted columns): what a
        title with no interactions gets, :math:`W^T f` plus the kernel term of the class
        docstring (``kernel_weight``, ``kernel_gamma`` as set now, over the items that
        had data in ``fit``).  float32 (n, factors)."""
        self._check_fitted()
        p = self._checked_params()
        if self.feature_factors_ is None:
            raise ValueError("HybridALS: no feature map (fit it with item_features)")
        F = self._design(item_features, names=self.feature_names_)
        if F.shape[1] != self.feature_factors_.shape[0]:
            raise ValueError(f"item_features: expected "
                             f"{self.feature_factors_.shape[0] - bool(self.fit_intercept)} "
                             f"feature columns, got {F.shape[1] - bool(self.fit_intercept)}")
        out = F @ self.feature_factors_
        if p["kernel_weight"] > 0:
            if self._kernel is None:
                raise ValueError("kernel_weight: this model was fitted with kernel_weight=0, "
                                 "so it kept no residuals to smooth; set it to 0 or refit")
            out += self._kernel_term(F, p)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _kernel_term(self, F: sp.csr_matrix, p: dict) -> np.ndarray:
        """``kernel_weight`` x the kernel average of the fitted residuals at the design
        rows ``F``; 0 for a row without metadata (nothing to compare it by)."""
        rows, resid = self._kernel
        out = p["kernel_weight"] * _kernel_smooth(F, rows, resid, p["kernel_gamma"])
        meta = F[:, :-1] if self.fit_intercept else F
        out[np.asarray((meta != 0).sum(axis=1)).ravel() == 0] = 0.0
        return out

    def add_items(self, item_features):
        """Append new titles (rows of ``item_features``, the fitted columns) with factors
        from their metadata; they take the next item indices and can be recommended at
        once.  Returns self."""
        new = self.item_factors_from_features(item_features)
        self.item_factors = np.ascontiguousarray(np.vstack([self.item_factors, new]))
        self.item_has_data_ = np.concatenate([self.item_has_data_,
                                              np.zeros(new.shape[0], dtype=bool)])
        return self

    def partial_fit_items(self, itemids, item_users):
        """As :meth:`ALS.partial_fit_items` (data only, no prior); the items then count
        as having interactions."""
        super().partial_fit_items(itemids, item_users)
        ids = np.asarray(itemids, dtype=np.int64)
        has = np.zeros(self.item_factors.shape[0], dtype=bool)
        has[: self.item_has_data_.size] = self.item_has_data_
        has[ids] = True
        self.item_has_data_ = has
        return self

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        params, arrays, extra = super()._get_state()
        arrays = dict(arrays)
        arrays["feature_factors"] = self.feature_factors_
        arrays["item_has_data"] = np.asarray(self.item_has_data_, dtype=bool)
        if self.feature_names_ is not None:
            arrays["feature_names"] = np.asarray(self.feature_names_, dtype=str)
        if self._kernel is not None:
            rows, resid = self._kernel
            arrays.update(kernel_indptr=rows.indptr.astype(np.int64),
                          kernel_indices=rows.indices.astype(np.int64),
                          kernel_data=rows.data.astype(np.float64), kernel_residuals=resid)
        return params, arrays, extra

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = super()._from_state(params, arrays, extra)
        W = check_dense(arrays["feature_factors"], "feature_factors", ndim=2, dtype=np.float64)
        has = np.asarray(arrays["item_has_data"], dtype=bool)
        if W.shape[1] != model.item_factors.shape[1] or has.shape != (model.item_factors.shape[0],):
            raise ValueError("HybridALS: damaged state (feature map or item flags do not fit)")
        model.feature_factors_, model.item_has_data_ = W, has
        if "feature_names" in arrays:
            model.feature_names_ = np.asarray(arrays["feature_names"], dtype=str)
        if "kernel_residuals" in arrays:
            resid = check_dense(arrays["kernel_residuals"], "kernel_residuals", ndim=2,
                                dtype=np.float32)
            try:
                rows = sp.csr_matrix((np.asarray(arrays["kernel_data"], dtype=np.float64),
                                      np.asarray(arrays["kernel_indices"], dtype=np.int64),
                                      np.asarray(arrays["kernel_indptr"], dtype=np.int64)),
                                     shape=(resid.shape[0], W.shape[0]))
                rows.check_format(full_check=True)
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"HybridALS: damaged state (kernel rows: {exc})") from None
            if resid.shape[1] != W.shape[1] or not np.isfinite(rows.data).all():
                raise ValueError("HybridALS: damaged state (kernel rows or residuals)")
            model._kernel = (rows, resid)
        elif "kernel_weight" not in params:
            model.kernel_weight = 0.0  # saved before the kernel term: behaves as it did
        return model
