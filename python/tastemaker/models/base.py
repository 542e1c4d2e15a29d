"""The query API shared by every factor model: recommend, similar_items, similar_users.

A *factor model* scores user ``u`` and item ``i`` by ``user_factors[u] . item_factors[i]``
(ALS; the popularity baseline with rank-1 factors; ...).  Subclasses set the factors in
``fit`` and inherit exact top-k queries that run in the native kernel
(``tastemaker._core.topk_inner_product``): blocked scoring that never builds the full
score matrix, already-seen items and deny/allow lists excluded inside the kernel,
OpenMP over query blocks with the GIL released once per batch.

Result conventions (every query method):

* ``ids`` are ``int32`` indices into the model's users/items; ``scores`` are ``float32``;
* sorted by score descending, ties broken by the lower id;
* a single query id gives 1-D arrays holding exactly ``min(N, eligible)`` results;
* an array of query ids gives 2-D arrays of shape ``(n_queries, width)`` with
  ``width = min(N, pool)``, ``pool`` being the number of items (or ``len(items)`` when an
  allow-list is given); a row with fewer eligible items is padded with id ``-1`` and
  score ``-inf``.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._memory import aligned
from .._validation import (
    IdError,
    check_csr,
    check_dense,
    check_ids,
    check_int,
    check_num_threads,
)

__all__ = ["Model", "FactorModel"]

_INT32_MAX = np.iinfo(np.int32).max


def _factor_array(value, name: str) -> np.ndarray:
    """The factors as float32 C-contiguous 2-D (no copy when they already are)."""
    if (isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 2
            and value.flags.c_contiguous):
        return value
    return check_dense(value, name, ndim=2)


def _renamed(exc: ValueError, query_name: str, item_name: str) -> ValueError:
    """The native "queries:" / "items:" error under the caller's names."""
    msg = str(exc)
    for prefix, name in (("queries:", query_name), ("items:", item_name)):
        if msg.startswith(prefix):
            return ValueError(name + ":" + msg[len(prefix):])
    return exc


def _topk(queries, items, k, indptr, indices, allow, deny, num_threads, query_name, item_name,
          packed=None):
    """The native kernel (``packed``: a cached ``_core.PackedItems`` of ``items``)."""
    try:
        return _core.topk_inner_product(queries, items, k, indptr, indices, allow, deny,
                                        num_threads, packed)
    except ValueError as exc:
        raise _renamed(exc, query_name, item_name) from None


def _packed(items: np.ndarray, name: str, num_threads: int):
    """``items`` packed into the kernel's panels, validated (NaN/inf -> ValueError)."""
    try:
        return _core.PackedItems(items, num_threads)
    except ValueError as exc:
        raise _renamed(exc, name, name) from None


class _QueryCache:
    """What the query methods derive from a model's factors, built once per version.

    Each side ("user", "item") has a version counter, bumped whenever its factors are
    assigned.  An entry is tagged with the version it was built at and the array it was
    built from, and is used only while both are current, so a query never mixes old and
    new factors, and an assignment of the same array object (``model.item_factors *= 3``)
    invalidates too.  Lookups read without locking (a dict read is atomic); builds take
    the lock, so concurrent first queries build once.  Pickling or copying a model gives
    it an empty cache (the arrays are rebuilt on demand, never serialized).
    """

    __slots__ = ("_entries", "_lock", "_single", "_versions")

    def __init__(self):
        self._lock = threading.RLock()  # builders may look up other entries
        self._versions = {"user": 0, "item": 0}
        self._entries: dict = {}
        self._single: dict = {}

    def __reduce__(self):
        return (type(self), ())

    def __copy__(self):
        return type(self)()

    def __deepcopy__(self, memo):
        return type(self)()

    def bump(self, side: str) -> None:
        with self._lock:
            self._single = {}
            self._versions[side] += 1
            for key in [key for key in self._entries if key[0] == side]:
                del self._entries[key]

    def single(self, name: str, key: tuple, build):
        """``build()`` for the single-request paths, kept while ``key`` (the versions of
        both sides plus whatever else the value depends on) stays equal: one dict lookup
        and one tuple comparison per request instead of a lookup per derived array."""
        entry = self._single.get(name)
        if entry is not None:
            try:
                if entry[0] == key:
                    return entry[1]
            except (ValueError, TypeError):  # unorderable or array-valued keys: rebuild
                pass
        value = build()
        self._single[name] = (key, value)
        return value

    def get(self, side: str, kind: str, source, build):
        """``build(source)``, cached for the current version of ``side`` and this source."""
        key = (side, kind)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == self._versions[side] and entry[1] is source:
            return entry[2]
        with self._lock:
            version = self._versions[side]
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version and entry[1] is source:
                return entry[2]
            value = build(source)
            self._entries[key] = (version, source, value)
            return value


def _normalized(x: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32 C-contiguous."""
    sq = np.einsum("ij,ij->i", x, x)  # float32 is plenty for a scale factor
    if sq.size and not np.isfinite(sq.max()):
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)  # huge but finite values
        if not np.isfinite(sq.max()):
            raise ValueError(f"{name}: contains NaN or inf values")
    tiny = sq < 1e-30  # squares may underflow float32: redo those rows in float64
    if tiny.any():
        sq = sq.astype(np.float64)
        sq[tiny] = np.einsum("ij,ij->i", x[tiny], x[tiny], dtype=np.float64)
    norms = np.sqrt(sq, dtype=np.float64)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return np.ascontiguousarray(x * inv[:, None], dtype=np.float32)


def _id_list(ids, name: str, n: int) -> np.ndarray | None:
    """Validated, sorted, unique int32 ids in [0, n), or None."""
    if ids is None:
        return None
    if sp.issparse(ids):
        raise ValueError(f"{name}: expected a 1-D array of ids, got a sparse matrix")
    arr, _ = check_ids(ids, name, n, allow_scalar=False)
    return np.unique(arr).astype(np.int32)


def _checked_rows(matrix, name: str, n_cols: int):
    """``check_csr(matrix, name, shape=(None, n_cols), allow_empty=True)`` with a fast path
    for the single request of a service: one canonical CSR row (float32 values, int32
    indices) is checked in a few vector operations and returned as it is (no copy).
    Anything else (an Interactions, any other sparse matrix) and every invalid input goes
    through ``_as_user_items`` / ``check_csr`` and their errors."""
    if type(matrix) in _CSR_TYPES and matrix.shape == (1, n_cols):
        data, indices, indptr = matrix.data, matrix.indices, matrix.indptr
        n = len(indices)
        if (data.dtype == np.float32 and indices.dtype == np.int32 and len(data) == n
                and len(indptr) == 2 and indptr[0] == 0 and indptr[1] == n
                and (n == 0 or (indices[0] >= 0 and indices[n - 1] < n_cols
                                and (n == 1 or (indices[1:] > indices[:-1]).all())
                                and np.isfinite(data).all()))):
            return matrix
    return _as_user_items(matrix, name, shape=(None, n_cols), allow_empty=True)


_CSR_TYPES = (sp.csr_matrix, sp.csr_array) if hasattr(sp, "csr_array") else (sp.csr_matrix,)


#: The score of an already-liked item ranked because ``items=`` listed it (implicit's value).
LIKED_SCORE = np.finfo(np.float32).min


def _append_liked(out_ids, out_scores, rows, allow, deny, score) -> None:
    """Fill each row's padding with its already-liked items from the allow-list.

    ``recommend(..., items=...)`` ranks *all* the given items, as implicit does: the
    kernel returns the not-yet-liked ones; the liked ones (minus the deny-list) follow,
    ordered by their own scores (ties by lower id), with score :data:`LIKED_SCORE`.
    ``score(r, liked)`` gives row ``r``'s model scores of the item indices ``liked``.
    """
    width = out_ids.shape[1]
    if width == 0:
        return
    filled = np.count_nonzero(out_ids >= 0, axis=1)
    for r in np.flatnonzero(filled < width):
        liked = rows.indices[rows.indptr[r]:rows.indptr[r + 1]]
        liked = liked[np.isin(liked, allow)]
        if deny is not None:
            liked = liked[~np.isin(liked, deny)]
        if not liked.size:
            continue
        scores = score(r, liked)
        order = np.lexsort((liked, -scores))[: width - filled[r]]
        out_ids[r, filled[r]:filled[r] + len(order)] = liked[order]
        out_scores[r, filled[r]:filled[r] + len(order)] = LIKED_SCORE


def _every_row(ids: np.ndarray, n_rows: int) -> bool:
    """Whether ``ids`` is 0, 1, ..., n_rows - 1 (a batch of every row, in order)."""
    return len(ids) == n_rows and n_rows > 0 and ids[0] == 0 and bool((np.diff(ids) == 1).all())


def _csr_rows(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(m.indptr, dtype=np.int64),
            np.ascontiguousarray(m.indices, dtype=np.int32))


def _as_user_items(user_items, name: str = "user_items", **kwargs) -> sp.csr_matrix:
    """An ``Interactions`` (its ``to_csr()``) or a scipy sparse matrix, validated to CSR."""
    from ..data.interactions import Interactions

    if isinstance(user_items, Interactions):
        user_items = user_items.to_csr()
    elif not sp.issparse(user_items):
        raise ValueError(f"{name}: expected a tastemaker.Interactions or a scipy sparse "
                         f"matrix, got {type(user_items).__name__}")
    return check_csr(user_items, name, **kwargs)


def _check_callback(callback):
    if callback is not None and not callable(callback):
        raise ValueError(f"callback: expected a callable, got {type(callback).__name__}")
    return callback


class Model:
    """The estimator contract every tastemaker model shares (scikit-learn style).

    * ``__init__`` takes every hyperparameter as a keyword argument and stores it as given
      under the same name; learned state is set by ``fit``.
    * :meth:`get_params` / :meth:`set_params` / ``repr`` read the parameter names from
      ``__init__``'s signature, once, here.
    * ``fit(user_items, *, show_progress=..., callback=None)`` takes an
      :class:`~tastemaker.Interactions` or a users x items scipy sparse matrix (use
      :func:`_as_user_items`) and returns ``self``.
    * :meth:`save` writes a path or a binary file object (fitted or not);
      :meth:`load` (a classmethod) and :func:`tastemaker.load` read it back.  A registered
      subclass (``@tastemaker.io.register_model(name)``) implements ``_get_state`` /
      ``_from_state`` for its learned state and ``_n_users_items``; ``_check_fitted``
      says whether it is fitted.
    * Models pickle and deep-copy (joblib, multiprocessing, Dask).
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        import inspect

        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters, as given (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters (validated at the next ``fit``); returns ``self``."""
        names = self._param_names()
        for name in params:
            if name not in names:
                raise ValueError(f"{name}: not a parameter of {type(self).__name__} "
                                 f"(parameters: {', '.join(names)})")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        import inspect

        sig = inspect.signature(type(self).__init__)
        shown = []
        for name in self._param_names():
            value = getattr(self, name, None)
            default = sig.parameters[name].default
            try:
                same = default is not inspect.Parameter.empty and bool(value == default)
            except Exception:  # arrays and other objects without a plain ==
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # ---- fitted state
    def _check_fitted(self) -> None:  # subclasses say what "fitted" means
        raise NotImplementedError

    def _is_fitted(self) -> bool:
        try:
            self._check_fitted()
        except ValueError:
            return False
        return True

    def _n_users_items(self) -> tuple[int, int] | None:
        """(n_users, n_items) of the fitted model (checked against saved id maps)."""
        return None

    # ---- persistence
    def _saved_params(self) -> dict:
        """The constructor parameters as JSON values (an unfitted model's whole state)."""
        import datetime

        out = {}
        for name, value in self.get_params().items():
            if isinstance(value, (np.random.Generator, np.random.RandomState)):
                value = None  # not serializable; a fitted model keeps its factors
            elif isinstance(value, datetime.timedelta):
                value = value.total_seconds()
            elif isinstance(value, np.timedelta64):
                value = float(value / np.timedelta64(1, "s"))
            elif isinstance(value, np.generic):
                value = value.item()
            out[name] = value
        return out

    @classmethod
    def _from_params(cls, params: dict):
        names = cls._param_names()
        return cls(**{k: v for k, v in params.items() if k in names})

    def save(self, path) -> None:
        """Save to ``path`` or a binary file object (npz + JSON header, no pickle).

        A path is replaced atomically (temporary file in the same directory, fsync,
        rename): a crash or a concurrent save never leaves a partial file.  Read it back
        with :meth:`load` or :func:`tastemaker.load`.
        """
        from ..io import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save` from a path or a binary file object.

        Raises ``ValueError`` if the file is damaged or holds another kind of model.
        """
        from ..io import _describe, load

        model = load(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: {_describe(path)} holds a {type(model).__name__}, not a "
                             f"{cls.__name__}")
        return model


class FactorModel(Model):
    """Base class of models scoring ``user_factors[u] . item_factors[i]``.

    Subclass contract
    -----------------
    * ``fit`` sets ``user_factors`` (n_users x f) and ``item_factors`` (n_items x f),
      float32 C-contiguous; ``num_threads`` (0 = ``tastemaker.set_num_threads``'s value)
      is the OpenMP thread count of its queries.
    * ``_fold_in_users(user_items) -> ndarray (n_rows, f) float32`` and
      ``_fold_in_items(item_users)``: factors for arbitrary rows with the other side
      fixed, used by ``recalculate_user=True`` / ``recalculate_item=True``.  The base
      versions raise ``ValueError`` (the model cannot fold in).
    * ``_get_state() -> (params, arrays, extra)``, the classmethod
      ``_from_state(params, arrays, extra)`` and ``@tastemaker.io.register_model(name)``
      make ``save(path)`` / ``tastemaker.load(path)`` work.

    Results never depend on the thread count or the SIMD path: every path computes
    bit-identical scores (one fused multiply-add per factor, in factor order).

    Cached derived data
    -------------------
    Queries reuse what they derive from the factors: the item factors packed into the
    kernel's panels (a second copy of them, built by the first ``recommend``) with an
    int8 copy for single requests (a quarter of the float32 bytes plus 12 bytes per item:
    2.0 MB beside 6.8 MB for 26,744 items x 64 factors; one request scans it, keeps the
    items whose error-bounded score can reach the top ``N`` and re-scores those exactly,
    so its results are the exact scan's bit for bit), the
    L2-normalised factors and their panels (with their own int8 copy) for ``similar_items`` / ``similar_users``,
    and subclass caches such as ALS's fold-in Gram matrix.  They are rebuilt when
    ``user_factors`` or ``item_factors`` is *assigned*, including augmented assignment
    (``model.item_factors *= 3`` assigns).  Writing elements in place
    (``model.item_factors[i] = v``, ``np.copyto(model.item_factors, ...)``) is not
    seen: assign the attribute afterwards (``model.item_factors = model.item_factors``)
    before the next query.  The caches are thread-safe (one loaded model may serve
    concurrent queries) and are never pickled or saved.
    """

    num_threads = 0

    def __setstate__(self, state: dict) -> None:
        # unpickled arrays start 16 bytes into a cache line, as a file's do (see
        # _from_state); the kernels gather factor rows, so realign them here too
        for key in ("_user_factors", "_item_factors"):
            if isinstance(state.get(key), np.ndarray):
                state[key] = aligned(state[key])
        self.__dict__.update(state)

    # ------------------------------------------------------------------ factors and caches
    def _query_cache(self) -> _QueryCache:
        cache = self.__dict__.get("_query_cache_")
        if cache is None:  # setdefault is atomic: racing threads get the same object
            cache = self.__dict__.setdefault("_query_cache_", _QueryCache())
        return cache

    def _set_factors(self, side: str, value) -> None:
        self.__dict__[f"_{side}_factors"] = value
        self._query_cache().bump(side)

    user_factors = property(
        lambda self: self.__dict__.get("_user_factors"),
        lambda self, value: self._set_factors("user", value),
        doc="User factors (n_users x f); assigning them invalidates the query caches.")
    item_factors = property(
        lambda self: self.__dict__.get("_item_factors"),
        lambda self, value: self._set_factors("item", value),
        doc="Item factors (n_items x f); assigning them invalidates the query caches.")

    def _derived(self, side: str, kind: str, source, build):
        """``build(source)`` for ``source`` derived from the current ``side`` factors,
        cached until they are assigned again (see "Cached derived data")."""
        return self._query_cache().get(side, kind, source, build)

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if getattr(self, "user_factors", None) is None or getattr(self, "item_factors", None) is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Both factor matrices as float32 C-contiguous (converted once per version)."""
        self._check_fitted()
        uf = self._derived("user", "array", self.user_factors,
                           lambda raw: _factor_array(raw, "user_factors"))
        itf = self._derived("item", "array", self.item_factors,
                            lambda raw: _factor_array(raw, "item_factors"))
        if uf.shape[1] != itf.shape[1]:
            raise ValueError(f"item_factors: {itf.shape[1]} factors but user_factors has {uf.shape[1]}")
        if uf.shape[1] == 0:
            raise ValueError("user_factors: expected at least one factor column")
        return uf, itf

    def _query_threads(self) -> int:
        return check_num_threads(getattr(self, "num_threads", 0))

    def _packed_items(self, side: str, kind: str, items: np.ndarray, name: str):
        """``items`` (the current ``side`` factors, or ``kind`` of data derived from them)
        packed for the kernel, once per version."""
        return self._derived(side, "packed " + kind, items,
                             lambda a: _packed(a, name, self._query_threads()))

    def _normalized_factors(self, side: str, factors: np.ndarray) -> np.ndarray:
        return self._derived(side, "normalized", factors,
                             lambda a: _normalized(a, f"{side}_factors"))

    def _fold_in_users(self, user_items) -> np.ndarray:
        raise ValueError(f"recalculate_user: {type(self).__name__} cannot fold in new users")

    def _fold_in_items(self, item_users) -> np.ndarray:
        raise ValueError(f"recalculate_item: {type(self).__name__} cannot fold in new items")

    @staticmethod
    def _check_bool(value, name: str) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
        return bool(value)

    @staticmethod
    def _query_ids(ids, name: str, n: int | None):
        """(int64 ids, was_scalar); n=None accepts any id in [0, 2^31 - 1)."""
        return check_ids(ids, name, _INT32_MAX if n is None else n)

    @staticmethod
    def _rows_for(ids: np.ndarray, matrix, name: str, n_rows_model: int, n_cols: int,
                  new_ids_ok: bool) -> sp.csr_matrix:
        """The CSR rows belonging to ``ids``.

        One rule: a matrix with the model's number of rows is the full matrix and is
        always sliced by id (even when it also has one row per id: ``ids`` may be any
        permutation); otherwise it must hold one row per id, in order.  An Interactions is
        the full matrix.
        """
        m = _checked_rows(matrix, name, n_cols)
        if m.shape[0] == n_rows_model and (not len(ids) or ids.max() < n_rows_model):
            if _every_row(ids, n_rows_model):
                return m  # every row in order (recommend for all users): m[ids] would copy it
            return m[ids]
        if m.shape[0] == len(ids):
            return m
        if m.shape[0] == n_rows_model:
            raise IdError(f"{name}: id {int(ids.max())} has no row in the {n_rows_model}-row "
                          f"matrix")
        raise ValueError(f"{name}: expected {len(ids)} row(s) (one per id, in order) or the full "
                         f"{n_rows_model}-row matrix, got shape {m.shape}")

    @staticmethod
    def _shape_result(ids: np.ndarray, scores: np.ndarray, scalar: bool):
        if scalar:
            n = int(np.count_nonzero(ids[0] >= 0))
            return ids[0, :n].copy(), scores[0, :n].copy()
        return ids, scores

    # ------------------------------------------------------------------ single requests
    # One request of a service (a scalar id, one CSR row, no allow-list; a deny-list as an
    # int32 array) is one native
    # call with the GIL released: the seen-item filter, the scores over the cached panels
    # and the top-N selection in one pass (tastemaker/query.hpp).  These helpers return
    # None whenever anything is off (a ValueError from the core included): the caller
    # then takes the general path, which gives the same answer or the documented error.
    def _fold_in_spec(self) -> tuple | None:
        """(item_factors, Gram, regularization, exponent, alpha, packed items) of an exact
        ALS fold-in done by the core, or None (this model folds in otherwise)."""

    def _single_key(self, *extra) -> tuple:
        """What the single-request caches depend on: both sides' factor objects and
        versions (read first: a value built after a concurrent assignment is tagged with
        the older key and rebuilt at the next request), the thread setting and ``extra``."""
        cache = self._query_cache()
        d = self.__dict__
        return (cache._versions["user"], cache._versions["item"], d.get("_user_factors"),
                d.get("_item_factors"), self.num_threads) + extra

    def _single_state(self):
        """(user_factors, item_factors, packed item panels), validated, for one request."""
        def build():
            self._query_threads()
            uf, itf = self._factors()
            return uf, itf, self._packed_items("item", "factors", itf, "item_factors")

        return self._query_cache().single("state", self._single_key(), build)

    def _recommend_one(self, userid: int, row, N: int, recalc: bool, deny=None):
        try:
            if N < 1 or not 0 <= userid < _INT32_MAX:
                return None
            if recalc:
                spec = self._fold_in_spec()
                if spec is None:
                    return None
                itf, gram, reg, expo, alpha, packed = spec
                if row.shape != (1, itf.shape[0]):
                    return None
                _, ids, scores = _core.query_fold_in(itf, gram, reg, expo, alpha, row.indptr,
                                                     row.indices, row.data, packed,
                                                     min(N, itf.shape[0]), deny=deny)
                return ids, scores
            uf, itf, packed = self._single_state()
            if row.shape != (1, itf.shape[0]):
                return None  # the full matrix (or a wrong shape): the general path
            return _core.query_recommend(uf, userid, packed, itf, min(N, itf.shape[0]),
                                         row.indptr, row.indices, row.data, deny)
        except ValueError:
            return None

    def _similar_one(self, side: str, queryid: int, N: int, deny):
        try:
            if N < 1:
                return None

            def build():
                uf, itf = self._factors()
                factors = itf if side == "item" else uf
                normed = self._normalized_factors(side, factors)
                packed = self._packed_items(side, "normalized", normed, f"{side}_factors")
                zero = self._derived(side, "zero rows", normed,
                                     lambda a: np.flatnonzero(~a.any(axis=1)).astype(np.int32))
                return normed, packed, zero

            normed, packed, zero = self._query_cache().single("similar " + side,
                                                              self._single_key(), build)
            if deny is not None and not (type(deny) is np.ndarray and deny.dtype == np.int32):
                return None
            return _core.query_similar(normed, packed, queryid, min(N, normed.shape[0]),
                                       zero if zero.size else None, deny)
        except ValueError:
            return None

    def _vector_one(self, vector, N: int, exclude, deny):
        """``recommend_vectors`` of one float32 vector, ``exclude`` ascending int32 ids."""
        try:
            if N < 1:
                return None
            _, itf, packed = self._single_state()
            return _core.query_vector(vector, packed, itf, min(N, itf.shape[0]), exclude, deny)
        except ValueError:
            return None

    # ------------------------------------------------------------------ queries
    def recommend(self, userid, user_items=None, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top-``N`` items for one user or a batch, by ``user_factors[u] . item_factors[i]``.

        Parameters
        ----------
        userid : int or array-like of int, shape (n_queries,)
            User index/indices.  With ``recalculate_user=True`` any non-negative id is
            accepted (the factors come from ``user_items``).
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items) or (n_queries, n_items)
            The model's full user x item matrix (or an Interactions), always sliced by
            ``userid``; or else the rows of these users (row ``k`` for ``userid[k]``, as in
            implicit 0.7).  A matrix with the model's number of rows is always taken as the
            full matrix.  Required when ``filter_already_liked_items`` or
            ``recalculate_user``; stored entries of a row are the user's seen items.
        N : int, default 10
            Number of results (>= 1).
        filter_already_liked_items : bool, default True
            Exclude each user's stored items.
        filter_items : array-like of int, optional
            Items never returned (deny-list).
        recalculate_user : bool, default False
            Compute the user factors from ``user_items`` (fold-in) instead of using
            ``user_factors``; for new users or users who just acted.
        items : array-like of int, optional
            Rank only these items (allow-list).  As in implicit, *all* of them are ranked:
            with ``filter_already_liked_items`` a user's liked items among them come last
            (ordered by their own scores) with score :data:`LIKED_SCORE` instead of being
            dropped, so every row holds ``min(N, len(items))`` items (minus
            ``filter_items``).

        Returns
        -------
        ids : ndarray of int32, shape (n,) or (n_queries, width)
        scores : ndarray of float32, same shape
            See the module documentation for ordering and padding (-1 / -inf).
        """
        if (items is None and filter_already_liked_items is True
                and (filter_items is None or (type(filter_items) is np.ndarray
                                              and filter_items.dtype == np.int32))
                and type(user_items) in _CSR_TYPES and type(N) is int
                and (type(userid) is int or isinstance(userid, np.integer))
                and (recalculate_user is False or recalculate_user is True)):
            out = self._recommend_one(int(userid), user_items, N, recalculate_user,
                                      filter_items)
            if out is not None:
                return out
        uf, itf = self._factors()
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
            queries = _factor_array(self._fold_in_users(rows), "fold-in factors")
            if queries.shape != (len(ids), itf.shape[1]):
                raise ValueError(f"recalculate_user: fold-in returned shape {queries.shape}")
        else:  # every user in order: the factors as they are (uf[ids] would copy them)
            queries = uf if _every_row(ids, n_users) else uf[ids]
        allow = _id_list(items, "items", n_items)
        deny = _id_list(filter_items, "filter_items", n_items)
        pool = n_items if allow is None else len(allow)
        indptr, indices = _csr_rows(rows) if filt else (None, None)
        packed = None if allow is not None else self._packed_items("item", "factors", itf, "item_factors")
        out_ids, out_scores = _topk(queries, itf, min(N, pool), indptr, indices, allow, deny,
                                    self._query_threads(),
                                    "fold-in factors" if recalc else "user_factors", "item_factors",
                                    packed)
        if filt and allow is not None:
            _append_liked(out_ids, out_scores, rows, allow, deny,
                          lambda r, liked: itf[liked] @ queries[r])
        return self._shape_result(out_ids, out_scores, scalar)

    def recommend_vectors(self, vectors, N=10, exclude=None, filter_items=None, items=None):
        """Top-``N`` items for arbitrary user vectors (users held outside the model).

        The product layer keeps its own user vectors (folded in live after every event,
        one per taste of a shared account, a seed's share of a user's score): this ranks
        them against ``item_factors`` with the same kernel, ordering and scores as
        :meth:`recommend`.

        Parameters
        ----------
        vectors : array-like of float, shape (f,) or (n_queries, f)
        N : int, default 10
        exclude : for a 1-D ``vectors``, array-like of int item ids never returned
            (the user's seen items, any order); for 2-D, a sparse matrix with one row per
            query whose stored entries are excluded.  ``None`` excludes nothing.
        filter_items : array-like of int, optional
            Deny-list for every query.
        items : array-like of int, optional
            Allow-list for every query.

        Returns
        -------
        ids, scores : as :meth:`recommend` (1-D for a 1-D ``vectors``).
        """
        if (items is None and type(N) is int and type(vectors) is np.ndarray
                and vectors.dtype == np.float32 and vectors.ndim == 1
                and (exclude is None or (type(exclude) is np.ndarray and exclude.dtype == np.int32))
                and (filter_items is None or (type(filter_items) is np.ndarray
                                              and filter_items.dtype == np.int32))):
            out = self._vector_one(vectors, N, exclude, filter_items)
            if out is not None:
                return out
        uf, itf = self._factors()
        n_items = itf.shape[0]
        N = check_int(N, "N", minimum=1)
        q = np.asarray(vectors)
        scalar = q.ndim == 1
        q = _factor_array(q.reshape(1, -1) if scalar else q, "vectors")
        if q.shape[1] != itf.shape[1]:
            raise ValueError(f"vectors: expected {itf.shape[1]} factors per vector, got "
                             f"{q.shape[1]}")
        indptr = indices = None
        if exclude is not None:
            if scalar:
                ex = _id_list(exclude, "exclude", n_items)
                indptr = np.array([0, ex.size], dtype=np.int64)
                indices = ex
            else:
                rows = check_csr(exclude, "exclude", shape=(q.shape[0], n_items),
                                 allow_empty=True)
                indptr, indices = _csr_rows(rows)
        allow = _id_list(items, "items", n_items)
        deny = _id_list(filter_items, "filter_items", n_items)
        pool = n_items if allow is None else len(allow)
        if pool == 0:
            empty = np.empty((q.shape[0], 0))
            return self._shape_result(empty.astype(np.int32), empty.astype(np.float32), scalar)
        packed = (None if allow is not None
                  else self._packed_items("item", "factors", itf, "item_factors"))
        out_ids, out_scores = _topk(q, itf, min(N, pool), indptr, indices, allow, deny,
                                    self._query_threads(), "vectors", "item_factors", packed)
        return self._shape_result(out_ids, out_scores, scalar)

    def _similar(self, factors: np.ndarray, name: str, queryid, N, deny_ids, allow_ids,
                 recalculate: bool, fold_rows, fold_name: str, fold):
        side = name[:-2]
        n = factors.shape[0]
        N = check_int(N, "N", minimum=1)
        recalc = self._check_bool(recalculate, f"recalculate_{side}")
        ids, scalar = self._query_ids(queryid, name, None if recalc else n)
        allow = _id_list(allow_ids[0], allow_ids[1], n)
        deny = _id_list(deny_ids[0], deny_ids[1], n)
        pool = n if allow is None else len(allow)
        width = min(N, pool)
        normed = self._normalized_factors(side, factors)
        packed = (None if allow is not None
                  else self._packed_items(side, "normalized", normed, f"{side}_factors"))
        # a zero vector (an item nobody interacted with) has no direction: never a result
        zero = self._derived(side, "zero rows", normed,
                             lambda a: np.flatnonzero(~a.any(axis=1)).astype(np.int32))
        if zero.size:
            deny = (zero if deny is None else np.union1d(deny, zero)).astype(np.int32)
        if recalc:
            if fold_rows is None:
                raise ValueError(f"{fold_name}: required when recalculate is True")
            other = self.user_factors if fold_name == "item_users" else self.item_factors
            from ..data.interactions import Interactions

            if isinstance(fold_rows, Interactions) and fold_name == "item_users":
                fold_rows = fold_rows.to_csr().T.tocsr()  # users x items -> items x users
            rows = self._rows_for(ids, fold_rows, fold_name, n, np.asarray(other).shape[0], True)
            raw = _factor_array(fold(rows), "fold-in factors")
            queries = _normalized(raw, "fold-in factors")
            out_ids, out_scores = _topk(queries, normed, width, None, None, allow, deny,
                                        self._query_threads(), "fold-in factors",
                                        f"{side}_factors", packed)
        else:
            # Every row in order: pass the matrix itself, so the kernel sees queries ==
            # items with self-exclusion and scores each pair once (half the work).
            every = len(ids) == n and bool(np.all(ids == np.arange(n)))
            queries = normed if every else normed[ids]
            # The query itself is excluded from the scan and put first when eligible:
            # rounding must never let a duplicate vector (cosine 1 too) outrank it.
            indptr = np.arange(len(ids) + 1, dtype=np.int64)
            out_ids, out_scores = _topk(queries, normed, width, indptr, ids.astype(np.int32),
                                        allow, deny, self._query_threads(),
                                        f"{side}_factors", f"{side}_factors", packed)
            # the queries that are eligible results themselves (a zero query is denied)
            rows_e = slice(None)
            if allow is not None or deny is not None:
                eligible = np.ones(len(ids), dtype=bool)
                if allow is not None:
                    eligible &= np.isin(ids, allow)
                if deny is not None:
                    eligible &= ~np.isin(ids, deny)
                rows_e = np.flatnonzero(eligible) if eligible.any() else None
            if width and len(ids) and rows_e is not None:
                out_ids[rows_e, 1:] = out_ids[rows_e, :-1]
                out_scores[rows_e, 1:] = out_scores[rows_e, :-1]
                out_ids[rows_e, 0] = ids[rows_e]
                out_scores[rows_e, 0] = 1.0  # an eligible query is not a zero vector
        # ... nor a query: no item is similar to a vector without direction
        if recalc or zero.size:
            zero_query = ~queries.any(axis=1)
            out_ids[zero_query] = -1
            out_scores[zero_query] = -np.inf
        valid = out_ids >= 0
        np.clip(out_scores, -1.0, 1.0, out=out_scores, where=valid)
        return self._shape_result(out_ids, out_scores, scalar)

    def similar_items(self, itemid, N=10, filter_items=None, items=None, recalculate_item=False,
                      item_users=None):
        """The ``N`` items most similar to ``itemid`` by cosine of their factors.

        Parameters
        ----------
        itemid : int or array-like of int, shape (n_queries,)
        N : int, default 10
        filter_items : array-like of int, optional
            Items never returned (deny-list; may include the query itself).
        items : array-like of int, optional
            Only these items may be returned (allow-list).
        recalculate_item : bool, default False
            Fold the query item(s) in from ``item_users`` (one row per id, or the full
            item x user matrix) instead of using ``item_factors``.
        item_users : scipy.sparse matrix, optional
            Required with ``recalculate_item``.

        Returns
        -------
        ids : ndarray of int32;  scores : ndarray of float32 (cosine in [-1, 1])
            Shapes and padding as in :meth:`recommend`.  Without recalculation the query
            item itself comes first with score 1 unless it is filtered out; with
            recalculation nothing is special-cased.  An item whose factor vector is zero
            (no interactions) has no direction: it is never a result, and a zero query gets
            no results.
        """
        if (items is None and recalculate_item is False and type(N) is int
                and (type(itemid) is int or isinstance(itemid, np.integer))):
            out = self._similar_one("item", int(itemid), N, filter_items)
            if out is not None:
                return out
        uf, itf = self._factors()
        return self._similar(itf, "itemid", itemid, N, (filter_items, "filter_items"),
                             (items, "items"), recalculate_item, item_users, "item_users",
                             self._fold_in_items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """The ``N`` users most similar to ``userid`` by cosine of their factors.

        The query user comes first with score 1 unless filtered out.  Parameters,
        returns and padding mirror :meth:`similar_items` (``filter_users`` deny-list,
        ``users`` allow-list).
        """
        uf, itf = self._factors()
        return self._similar(uf, "userid", userid, N, (filter_users, "filter_users"),
                             (users, "users"), False, None, "user_items", self._fold_in_users)

    # ------------------------------------------------------------------ persistence
    def _n_users_items(self):
        self._check_fitted()
        return (int(np.shape(self.user_factors)[0]), int(np.shape(self.item_factors)[0]))

    def _get_state(self):
        """(params, arrays, extra) of a fitted model: the parameters and both factors."""
        self._check_fitted()
        return (self._saved_params(),
                {"user_factors": np.asarray(self.user_factors),
                 "item_factors": np.asarray(self.item_factors)}, {})

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls._from_params(params)
        uf = check_dense(arrays["user_factors"], "user_factors", ndim=2)
        itf = check_dense(arrays["item_factors"], "item_factors", ndim=2)
        if uf.shape[1] != itf.shape[1]:
            raise ValueError("item_factors: factor dimension differs from user_factors")
        # a file's arrays start 16 bytes into a cache line; the kernels (fold-in,
        # partial_fit) gather factor rows, and a row across two lines costs two loads
        model.user_factors, model.item_factors = aligned(uf), aligned(itf)
        return model
