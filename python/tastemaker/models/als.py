"""Implicit-feedback matrix factorization by alternating least squares."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._memory import zeros
from .._validation import (
    check_csr,
    check_float,
    check_int,
    check_num_threads,
    check_random_state,
)
from ..io import register_model
from .base import FactorModel, _as_user_items, _check_callback, _checked_rows

__all__ = ["ALS", "auto_regularization", "AUTO_REGULARIZATION"]

_SOLVERS = ("cg", "cholesky")


def _native(m: sp.csr_matrix):
    """(indptr int64, indices int32, data float32) views of a CSR matrix, copying only
    arrays whose dtype differs."""
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
    )


def _fill_initial(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """The initial factors: ``out`` (float32, C-contiguous) filled in place, row-major,
    with uniform [0, 0.01) from ``rng``.  fit draws the users' then the items' matrix
    from one generator; ``tastemaker.distributed`` draws any block of rows of that
    stream (:func:`_initial_rows`) to start from the same factors."""
    rng.random(dtype=np.float32, out=out)
    out *= np.float32(0.01)
    return out


def _initial_rows(state: dict, offset: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` with the values :func:`_fill_initial` gives from a generator in
    ``state`` (``bit_generator.state`` of a PCG64/PCG64DXSM), starting ``offset`` values
    (float32 draws) into its stream, without drawing the values before it.

    Each float32 takes one 32-bit half of a 64-bit draw (low half first, the high half
    buffered), so the generator is advanced by ``offset // 2`` draws and, for an odd
    offset, one value is drawn and dropped."""
    bits = getattr(np.random, state["bit_generator"])()
    bits.state = state
    if state.get("has_uint32"):
        raise ValueError("random_state: a generator holding a buffered half-draw cannot "
                         "be split into blocks")
    bits.advance(offset // 2)
    rng = np.random.Generator(bits)
    if offset % 2:
        rng.random(dtype=np.float32)
    return _fill_initial(rng, out)


def _transpose(m: sp.csr_matrix, num_threads: int = 0) -> sp.csr_matrix:
    """CSR (float32) of m.T with sorted indices: the arrays of scipy's ``m.T.tocsr()``,
    built on ``num_threads`` threads (scipy's single-threaded conversion took 0.58 s of
    the ML-20M-sized fit's set-up, which ``fit`` counts in its first iteration)."""
    indptr, indices, data = _core.csr_transpose(*_native(m), m.shape[1], num_threads)
    t = sp.csr_matrix((data, indices, indptr), shape=(m.shape[1], m.shape[0]), copy=False)
    t.has_sorted_indices = True
    return t


#: The largest effective regularization and confidence the float32 solvers handle: beyond
#: it, CG's residual norms overflow (NaN factors) and Cholesky loses definiteness.
MAX_SCALE = 1e15


def _check_scales(cui: sp.csr_matrix, ciu: sp.csr_matrix, p: dict) -> None:
    """Reject parameters whose per-row regularization or confidence overflow float32."""
    counts = np.concatenate([np.diff(cui.indptr), np.diff(ciu.indptr)])
    nu = p["reg_exponent"]
    with np.errstate(over="ignore"):
        lam = max(p["regularization"] * (1.0 + float(n)) ** nu
                  for n in (0, counts.min(), counts.max()))
    if not lam <= MAX_SCALE:
        raise ValueError(
            f"regularization: regularization * (1 + n_interactions) ** "
            f"regularization_exponent reaches {lam:.3g} (regularization="
            f"{p['regularization']:g}, regularization_exponent={nu:g}); at most "
            f"{MAX_SCALE:g} is supported")
    # max |v| without an |data| temporary (nnz floats: it showed in fit's peak memory)
    vmax = float(np.maximum(cui.data.max(), -cui.data.min())) if cui.nnz else 0.0
    if not p["alpha"] * vmax <= MAX_SCALE:
        raise ValueError(f"alpha: alpha * max |value| is {p['alpha'] * vmax:.3g}; at most "
                         f"{MAX_SCALE:g} is supported (scale the values down)")


#: Fraction of the average active user's confidence mass used by ``regularization="auto"``.
AUTO_REGULARIZATION = 0.1


def auto_regularization(user_items: sp.csr_matrix, alpha: float) -> float:
    """The ``regularization="auto"`` weight of :class:`ALS` for a (checked) CSR matrix.

    ``AUTO_REGULARIZATION * alpha * sum(|v|) / n_active_users``: a tenth of the total
    confidence of the average user with at least one interaction (0 for an empty matrix).
    Distributed fits call it on the global matrix so that they solve the same problem.
    """
    return _auto_regularization(*_confidence_mass(user_items), alpha)


def _confidence_mass(user_items: sp.csr_matrix) -> tuple[float, int]:
    """(sum of |v| in float64, users with an interaction): both add up over user blocks."""
    active = int(np.count_nonzero(np.diff(user_items.indptr)))
    # in blocks: np.abs(data, dtype=float64) of the whole array would be an nnz x 8 byte
    # temporary, the largest allocation of a default fit
    data, mass = user_items.data, 0.0
    for start in range(0, data.size, _MASS_BLOCK):
        mass += float(np.abs(data[start:start + _MASS_BLOCK], dtype=np.float64).sum())
    return mass, active


_MASS_BLOCK = 1 << 20


def _auto_regularization(mass: float, active: int, alpha: float) -> float:
    if active == 0:
        return 0.0
    return AUTO_REGULARIZATION * float(alpha) * mass / active


#: What ALS._fold_in_spec depends on besides the factors.
_SPEC_PARAMS = ("factors", "regularization", "alpha", "iterations", "solver", "cg_steps",
                "regularization_exponent", "num_threads", "calculate_training_loss",
                "regularization_")


@register_model("ALS")
class ALS(FactorModel):
    r"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on native SIMD + OpenMP kernels.

    Learns ``user_factors`` (n_users x factors) and ``item_factors`` (n_items x factors),
    float32, so that ``user_factors @ item_factors.T`` ranks items for each user.

    **Confidence convention** (the same as the implicit library, so the same matrix gives
    the same model): a stored value ``v > 0`` has confidence ``alpha * v`` and preference
    1; ``v < 0`` is a dislike with confidence ``alpha * |v|`` and preference 0; an
    unstored entry has confidence 1 and preference 0.  ``alpha`` is applied inside the
    kernels; the matrix is never scaled or copied for it.  (Hu et al.'s ``1 + alpha * r``
    is a transform to apply when building the matrix.)

    Each half-step solves, for every user ``u`` with items ``I_u``,

    .. math:: (Y^T Y + \lambda_u I + \sum_{i \in I_u} (c_{ui} - 1) y_i y_i^T)\, x_u
              = \sum_{i \in I_u, v_{ui} > 0} c_{ui}\, y_i

    and symmetrically for items.  **Frequency-scaled regularization** (Rendle et al.
    2022, "Revisiting the Performance of iALS on Item Recommendation Benchmarks"):
    :math:`\lambda_u = \mathrm{regularization} \cdot (1 + |I_u|)^{\nu}` with
    ``nu = regularization_exponent``; ``0`` (the default) is the classic constant
    regularization of the implicit library, ``1`` scales it linearly with activity.

    Parameters
    ----------
    factors : int, default 64
        Latent dimension.
    regularization : float or "auto", default "auto"
        L2 weight (>= 0).  ``"auto"`` scales it to the data: at ``fit``,
        ``regularization_ = AUTO_REGULARIZATION * alpha * sum(|v|) / n_active_users``,
        a tenth of the confidence mass of the average user with interactions.  The
        best constant moves with the scale of the values (stars, play counts, BM25
        weights) and that rule tracks it: on MovieLens 100K (stars, stratified 75/25)
        it gives NDCG@10 0.489, as good as a tuned grid (0.489), where the implicit
        library's 0.01 gives 0.380; on Last.fm 2K (BM25) 0.281 against a grid's best
        0.284.  Pass a number for a fixed weight (``0.01`` reproduces implicit).
    alpha : float, default 1.0
        Confidence scale (> 0), see above.
    iterations : int, default 15
        Number of alternating sweeps (users then items).
    solver : {"cg", "cholesky"}, default "cg"
        ``"cg"``: conjugate gradient warm-started from the current factors,
        ``cg_steps`` steps per row and sweep (fast).  ``"cholesky"``: exact solve.
    cg_steps : int, default 3
        CG steps per row per sweep.
    regularization_exponent : float, default 0.0
        ``nu`` of the frequency-scaled regularization.
    random_state : None, int or numpy Generator
        Seeds the initial factors (uniform in [0, 0.01)).
    num_threads : int, default 0
        OpenMP threads for this model; 0 uses ``tastemaker.set_num_threads``'s value.
        Results are identical for any thread count.
    calculate_training_loss : bool, default False
        Compute the weighted loss after each sweep (passed to ``callback``, shown in
        the progress bar).

    Queries (``recommend``, ``similar_items``, ``similar_users``, ``save``) come from
    :class:`~tastemaker.models.FactorModel`; ``recommend(..., recalculate_user=True)``
    folds users in exactly (Cholesky) with the item factors fixed.

    Attributes
    ----------
    user_factors : ndarray of shape (n_users, factors), float32
    item_factors : ndarray of shape (n_items, factors), float32
    """

    def __init__(
        self,
        factors=64,
        regularization="auto",
        alpha=1.0,
        iterations=15,
        solver="cg",
        cg_steps=3,
        regularization_exponent=0.0,
        random_state=None,
        num_threads=0,
        calculate_training_loss=False,
    ):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.solver = solver
        self.cg_steps = cg_steps
        self.regularization_exponent = regularization_exponent
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self.user_factors = None
        self.item_factors = None
        self.regularization_ = None

    # ------------------------------------------------------------------ params
    def _checked_params(self) -> dict:
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        if not isinstance(self.calculate_training_loss, (bool, np.bool_)):
            raise ValueError("calculate_training_loss: expected a bool, "
                             f"got {type(self.calculate_training_loss).__name__}")
        return {
            "factors": check_int(self.factors, "factors", minimum=1, maximum=4096),
            "regularization": self._resolved_regularization(),
            "alpha": check_float(self.alpha, "alpha", minimum=0.0, strict=True),
            "iterations": check_int(self.iterations, "iterations", minimum=0),
            "cg_steps": check_int(self.cg_steps, "cg_steps", minimum=1, maximum=1024),
            "reg_exponent": check_float(self.regularization_exponent, "regularization_exponent"),
            "num_threads": check_num_threads(self.num_threads),
        }

    def _resolved_regularization(self) -> float:
        if isinstance(self.regularization, str):
            if self.regularization != "auto":
                raise ValueError(f"regularization: expected a number >= 0 or 'auto', got "
                                 f"{self.regularization!r}")
            if self.regularization_ is None:
                return float("nan")  # resolved by fit from the data
            return float(self.regularization_)
        return check_float(self.regularization, "regularization", minimum=0.0)

    def _solve(self, m: sp.csr_matrix, other: np.ndarray, out: np.ndarray, p: dict,
               solver: str, gram: np.ndarray | None = None) -> None:
        name = ("item_factors" if other is self.item_factors
                else "user_factors" if other is self.user_factors else "factors")
        if not np.isfinite(p["regularization"]):
            raise ValueError("regularization: 'auto' is resolved from the data by fit; this "
                             "model has factors but no regularization_ (set a number)")
        if gram is None:
            gram = _core.als_gram(other, p["num_threads"])
        if not np.isfinite(gram).all():
            # NaN/inf factors (set by hand, or overflowing): say so, instead of the
            # solver's "not positive definite"
            raise ValueError(f"{name}: contains NaN or inf values (or values so large that "
                             f"their Gram matrix overflows)")
        indptr, indices, data = _native(m)
        try:
            _core.als_solve(indptr, indices, data, other, gram, out, p["regularization"],
                            p["reg_exponent"], p["alpha"], solver, p["cg_steps"],
                            p["num_threads"])
        except ValueError as exc:  # the core's argument names -> the user's
            msg = str(exc)
            for core, user in (("Y:", name), ("X:", "the solved factors"),
                               ("reg_exponent:", "regularization_exponent:")):
                if msg.startswith(core):
                    raise ValueError(user + msg[len(core):].rstrip()) from None
            raise

    # ------------------------------------------------------------------ fitting
    def _resolve_regularization(self, cui: sp.csr_matrix, p: dict) -> None:
        """Set ``regularization_`` (``"auto"``: from the training matrix) and ``p`` to it."""
        if isinstance(self.regularization, str):
            self.regularization_ = auto_regularization(cui, p["alpha"])
        else:
            self.regularization_ = p["regularization"]
        p["regularization"] = self.regularization_

    def fit(self, user_items, *, show_progress: bool = True, callback=None):
        """Learn the factors from a users x items matrix.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix of shape (n_users, n_items)
            Interaction strengths (see the confidence convention in the class doc).
            Converted to CSR float32; a CSR matrix with unsorted/duplicate indices and
            NaN/inf values are errors (other formats have their duplicates summed).
        show_progress : bool, default True
            Show a tqdm progress bar.
        callback : callable, optional
            ``callback(iteration, elapsed_seconds, loss)`` after every sweep; ``loss``
            is None unless ``calculate_training_loss``.

        Returns
        -------
        self
        """
        p = self._checked_params()
        _check_callback(callback)
        show_progress = self._check_bool(show_progress, "show_progress")
        cui = _as_user_items(user_items)
        self._resolve_regularization(cui, p)
        rng = check_random_state(self.random_state)
        n_users, n_items = cui.shape
        f = p["factors"]
        def initial(n: int) -> np.ndarray:
            # on huge pages where possible (the kernels gather their rows at random),
            # filled in place: no second n x f temporary
            return _fill_initial(rng, zeros((n, f)))

        ciu = _transpose(cui, p["num_threads"])
        _check_scales(cui, ciu, p)
        user_factors = initial(n_users)
        item_factors = initial(n_items)
        from tqdm.auto import tqdm

        start = time.perf_counter()
        with tqdm(total=p["iterations"], disable=not show_progress, desc="ALS") as bar:
            for it in range(p["iterations"]):
                self._solve(cui, item_factors, user_factors, p, self.solver)
                self._solve(ciu, user_factors, item_factors, p, self.solver)
                loss = None
                if self.calculate_training_loss:
                    indptr, indices, data = _native(cui)
                    gram = _core.als_gram(item_factors, p["num_threads"])
                    loss = float(_core.als_loss(indptr, indices, data, user_factors, item_factors,
                                                gram, p["regularization"], p["reg_exponent"],
                                                p["alpha"], p["num_threads"]))
                    bar.set_postfix(loss=f"{loss:.5g}")
                bar.update(1)
                if callback is not None:
                    callback(it, time.perf_counter() - start, loss)
        for name, x in (("user_factors", user_factors), ("item_factors", item_factors)):
            if not np.isfinite(x).all():  # a backstop: _check_scales should prevent it
                raise ValueError(f"regularization: the solver produced non-finite "
                                 f"{name}; use a smaller regularization, "
                                 f"regularization_exponent or alpha, or solver='cholesky'")
        # a row with no interactions has no direction: exactly zero (CG stops near it)
        user_factors[np.diff(cui.indptr) == 0] = 0.0
        item_factors[np.diff(ciu.indptr) == 0] = 0.0
        self.user_factors = user_factors
        self.item_factors = item_factors
        return self

    def _gram(self, side: str, factors: np.ndarray, num_threads: int) -> np.ndarray:
        """Y^T Y of the current ``side`` factors, cached until they are assigned again:
        fold-in for one user should not cost a full pass over the item factors."""
        return self._derived(side, "gram", factors, lambda y: _core.als_gram(y, num_threads))

    def _fold_in(self, rows, name: str, side: str) -> np.ndarray:
        """Exact (Cholesky) factors for arbitrary rows against the fixed ``side`` factors."""
        p = self._checked_params()
        uf, itf = self._factors()
        other = itf if side == "item" else uf
        m = _checked_rows(rows, name, other.shape[0])
        out = np.zeros((m.shape[0], other.shape[1]), dtype=np.float32)
        if m.shape[0]:
            self._solve(m, other, out, p, "cholesky", self._gram(side, other, p["num_threads"]))
        return out

    def _fold_in_spec(self):
        # the core's exact fold-in of one row is this class's _fold_in with the item Gram
        # (self._gram, which a subclass may narrow: HybridALS counts the items with data)
        if type(self)._fold_in is not ALS._fold_in:
            return None

        def build():
            p = self._checked_params()
            if not np.isfinite(p["regularization"]):
                return None  # 'auto' unresolved: the general path says so
            itf = self._factors()[1]
            return (itf, self._gram("item", itf, p["num_threads"]), p["regularization"],
                    p["reg_exponent"], p["alpha"],
                    self._packed_items("item", "factors", itf, "item_factors"))

        # validated once per factors and hyperparameters (any of them may be reassigned)
        params = tuple(self.__dict__.get(name) for name in _SPEC_PARAMS)
        return self._query_cache().single("fold-in", self._single_key(params), build)

    def _fold_in_one(self, indices: np.ndarray, values: np.ndarray, want_factor: bool = False,
                     regularization_scale: float = 1.0):
        """The exact fold-in of one user from ascending int32 item ids and float32 values
        (one native call).  Returns the float32 vector, or ``(vector, U)`` with
        ``want_factor``: U (float64, f x f) holds the Cholesky factor of the user's system
        ``A = U^T U`` in its upper triangle (``U.T`` is the lower factor, Fortran-ordered);
        None when this model folds in otherwise (``_fold_in_users``).
        ``regularization_scale`` multiplies the regularization of this one solve (the
        product layer folds in a few sessions' person more strongly regularized).
        """
        spec = self._fold_in_spec()
        if spec is None:
            return None
        itf, gram, reg, expo, alpha, _ = spec
        indptr = np.array([0, indices.size], dtype=np.int64)
        out = _core.query_fold_in(itf, gram, reg * regularization_scale, expo, alpha, indptr,
                                  indices, values, want_factor=want_factor)
        return (out[0], out[3]) if want_factor else out[0]

    def _fold_in_users(self, user_items) -> np.ndarray:
        """Exact (Cholesky) factors for arbitrary users from their rows, items fixed.

        Parameters
        ----------
        user_items : sparse matrix of shape (n_rows, n_items)

        Returns
        -------
        ndarray of shape (n_rows, factors), float32
        """
        return self._fold_in(user_items, "user_items", "item")

    def _fold_in_items(self, item_users) -> np.ndarray:
        """Exact factors for arbitrary items from their (n_rows, n_users) rows, users fixed."""
        return self._fold_in(item_users, "item_users", "user")

    @staticmethod
    def _check_new_ids(ids, name: str, n_rows: int) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array of ints, got shape {arr.shape}")
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected integer ids, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name}: ids must be >= 0, got {int(arr.min())}")
        if arr.size and arr.max() >= 2**31 - 1:
            raise ValueError(f"{name}: id {int(arr.max())} too large")
        if len(np.unique(arr)) != arr.size:
            raise ValueError(f"{name}: duplicate ids")
        if arr.size != n_rows:
            raise ValueError(f"{name}: {arr.size} ids but the matrix has {n_rows} rows")
        return arr

    @staticmethod
    def _grown(factors: np.ndarray, n: int) -> np.ndarray:
        if n <= factors.shape[0]:
            return factors
        out = zeros((n, factors.shape[1]))
        out[: factors.shape[0]] = factors
        return out

    def partial_fit_users(self, userids, user_items):
        """Re-solve (exactly) the factors of ``userids`` from their rows, items fixed.

        Ids beyond the current number of users grow ``user_factors`` (rows that are
        neither given nor existing stay zero).

        Parameters
        ----------
        userids : array-like of int, shape (n_rows,)
            Distinct, non-negative.
        user_items : sparse matrix of shape (n_rows, n_items)
            Row ``k`` holds the interactions of ``userids[k]``.
        """
        self._check_fitted()
        m = check_csr(user_items, "user_items", shape=(None, self.item_factors.shape[0]),
                      allow_empty=True)
        ids = self._check_new_ids(userids, "userids", m.shape[0])
        x = self._fold_in_users(m)
        if ids.size:
            uf = self._grown(self.user_factors, int(ids.max()) + 1)
            uf[ids] = x
            self.user_factors = uf  # assigning (even the same array) invalidates the caches
            self._update_seen(ids, m, axis=0)
        return self

    def partial_fit_items(self, itemids, item_users):
        """Re-solve (exactly) the factors of ``itemids`` from their rows (n_rows x n_users),
        users fixed; ids beyond the current number of items grow ``item_factors``."""
        self._check_fitted()
        m = check_csr(item_users, "item_users", shape=(None, self.user_factors.shape[0]),
                      allow_empty=True)
        ids = self._check_new_ids(itemids, "itemids", m.shape[0])
        y = self._fold_in_items(m)
        if ids.size:
            itf = self._grown(self.item_factors, int(ids.max()) + 1)
            itf[ids] = y
            self.item_factors = itf
            self._update_seen(ids, m, axis=1)
        return self

    def _update_seen(self, ids: np.ndarray, rows: sp.csr_matrix, axis: int) -> None:
        """Keep a carried ``user_items`` (the seen items a saved model filters out) in step
        with the factors: the given users' rows (axis 0) or items' columns (axis 1) are
        replaced by ``rows`` and the matrix grows with the factors, so the saved file still
        loads and serves.  External id maps (``user_ids`` / ``item_ids``) cannot be
        invented: extend them for new ids before saving (``save`` says so)."""
        ui = getattr(self, "user_items", None)
        if ui is None or not sp.issparse(ui):
            return
        n_users, n_items = self._n_users_items()
        ui = sp.csr_matrix(ui)
        if axis == 1:
            ui, rows = ui.T.tocsr(), rows
        keep = np.ones(ui.shape[0], dtype=bool)
        keep[ids[ids < ui.shape[0]]] = False
        kept = sp.diags(keep.astype(np.float32)) @ ui
        target = (n_users, n_items) if axis == 0 else (n_items, n_users)
        kept.resize(target)
        new = sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=(rows.shape[0],
                                                                             target[1]))
        place = sp.csr_matrix((np.ones(len(ids), np.float32), (ids, np.arange(len(ids)))),
                              shape=(target[0], len(ids)))
        out = (kept + place @ new).tocsr()
        out.eliminate_zeros()
        out.sort_indices()
        self.user_items = out if axis == 0 else out.T.tocsr()

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        params, arrays, _ = super()._get_state()
        extra = {"regularization_": None if self.regularization_ is None
                 else float(self.regularization_)}
        return params, arrays, extra

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = super()._from_state(params, arrays, extra)
        reg = (extra or {}).get("regularization_")
        if reg is None and not isinstance(model.regularization, str):
            reg = float(model.regularization)
        if reg is not None and not (isinstance(reg, (int, float)) and np.isfinite(reg) and reg >= 0):
            raise ValueError(f"regularization_: expected a finite number >= 0 in the model file, "
                             f"got {reg!r}")
        model.regularization_ = reg
        return model
