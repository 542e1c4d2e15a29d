"""The popularity baseline: recommend the most-interacted items."""

from __future__ import annotations

import datetime
import numbers
import time

import numpy as np
import scipy.sparse as sp

from .. import io as _io
from .._validation import check_csr, check_float, check_num_threads
from .base import FactorModel, _check_callback

__all__ = ["Popularity"]


@_io.register_model("Popularity")
class Popularity(FactorModel):
    """Most-interacted items, optionally within a recent time window.

    An item's popularity is the number of distinct users with a positive interaction
    with it (a stored value > 0; a dislike does not make an item popular), optionally
    counting only interactions in the last ``window`` before the latest timestamp.
    Every user gets the same ranking, minus their own already-seen items.

    The model is a rank-1 :class:`~tastemaker.models.base.FactorModel`: every user
    factor is 1 and each item factor is the item's popularity divided by the number of
    users (the fraction of users who interacted with it, float32), so ``recommend``,
    filters and exclusion of seen items all go through the native top-k.  Scores are
    those fractions.  ``similar_items`` and ``similar_users`` are meaningless for
    popularity (every user has the same factor) and raise ``NotImplementedError``.

    Parameters
    ----------
    window : float, datetime.timedelta or None, default None
        Only count interactions at most this long (in seconds for a number) before the
        latest timestamp of the data; needs an ``Interactions`` with timestamps.  None
        counts everything.
    num_threads : int, default 0
        Threads for the native queries (0 = the global setting).

    Attributes
    ----------
    item_factors : ndarray of float32, shape (n_items, 1)
    user_factors : ndarray of float32, shape (n_users, 1)
    popularity_ : ndarray of int64, shape (n_items,)
        Distinct users per item that were counted.
    """

    def __init__(self, window=None, *, num_threads: int = 0):
        self.window = window
        self.num_threads = num_threads

    def _window_seconds(self):
        w = self.window
        if w is None:
            return None
        if isinstance(w, datetime.timedelta):
            w = w.total_seconds()
        elif isinstance(w, np.timedelta64):
            w = w / np.timedelta64(1, "s")
        if not isinstance(w, numbers.Real) or isinstance(w, bool):
            raise ValueError(f"window: expected None, a number of seconds or a timedelta, got "
                             f"{type(self.window).__name__}")
        return check_float(w, "window", minimum=0.0, strict=True)

    def fit(self, user_items, *, show_progress: bool = False, callback=None):
        """Count each item's users.

        Parameters
        ----------
        user_items : Interactions or scipy.sparse matrix, shape (n_users, n_items)
            Interactions (needed with ``window``: they carry the timestamps) or a
            users x items matrix.
        show_progress : bool, default False
            Accepted for a uniform ``fit`` signature; counting needs no progress bar.
        callback : callable, optional
            ``callback(0, elapsed_seconds, None)`` once, after counting (the uniform
            ``fit`` signature: counting is one "iteration").

        Returns
        -------
        self
        """
        check_num_threads(self.num_threads)
        _check_callback(callback)
        self._check_bool(show_progress, "show_progress")
        start = time.perf_counter()
        window = self._window_seconds()
        if sp.issparse(user_items):
            if window is not None:
                raise ValueError("user_items: window needs timestamps; pass an Interactions "
                                 "with timestamps instead of a sparse matrix")
            csr = check_csr(user_items, "user_items")
            n_users, n_items = csr.shape
            items = csr.indices[csr.data > 0]
        elif all(hasattr(user_items, a) for a in ("item_idx", "values", "shape")):
            n_users, n_items = (int(x) for x in user_items.shape)
            if n_users == 0 or n_items == 0 or user_items.nnz == 0:
                raise ValueError(f"user_items: is empty (shape {user_items.shape}, nnz "
                                 f"{user_items.nnz})")
            keep = np.asarray(user_items.values) > 0
            if window is not None:
                ts = user_items.timestamps
                if ts is None:
                    raise ValueError("user_items: window needs timestamps, and this "
                                     "Interactions has none")
                ts = np.asarray(ts, dtype=np.float64)
                keep &= ts >= ts.max() - window
            items = np.asarray(user_items.item_idx)[keep]
        else:
            raise ValueError(f"user_items: expected a tastemaker.Interactions or a scipy "
                             f"sparse matrix, got {type(user_items).__name__}")
        # Interactions and canonical CSR hold one entry per (user, item): a count of
        # entries is a count of distinct users.
        self.popularity_ = np.bincount(items, minlength=n_items).astype(np.int64)
        self.item_factors = (self.popularity_ / n_users).astype(np.float32).reshape(-1, 1)
        self.user_factors = np.ones((n_users, 1), dtype=np.float32)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    def _fold_in_users(self, user_items):
        """A new or updated user's factor is 1, like everyone's (``recalculate_user``)."""
        return np.ones((user_items.shape[0], 1), dtype=np.float32)

    def similar_items(self, *args, **kwargs):
        raise NotImplementedError(
            "Popularity.similar_items: popularity ranks items the same way for everyone, "
            "so it has no notion of item similarity; use an ALS or item-kNN model")

    def similar_users(self, *args, **kwargs):
        raise NotImplementedError(
            "Popularity.similar_users: every user has the same popularity profile, so it "
            "has no notion of user similarity; use an ALS model")

    # ------------------------------------------------------------------ persistence
    def _get_state(self):
        window = self._window_seconds()
        params = {"window": window, "num_threads": int(self.num_threads)}
        arrays = {"popularity": self.popularity_, "n_users": np.array([self.user_factors.shape[0]])}
        return params, arrays, {}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        model = cls(window=params.get("window"), num_threads=params.get("num_threads", 0))
        pop = np.asarray(arrays["popularity"], dtype=np.int64)
        n_users = int(np.asarray(arrays["n_users"]).ravel()[0])
        if n_users > np.iinfo(np.int32).max:
            raise ValueError(f"Popularity: damaged state ({n_users} users)")
        if pop.ndim != 1 or n_users <= 0 or (pop < 0).any() or (pop > n_users).any():
            raise ValueError("Popularity: damaged state (popularity counts do not fit n_users)")
        model.popularity_ = pop
        model.item_factors = (pop / n_users).astype(np.float32).reshape(-1, 1)
        model.user_factors = np.ones((n_users, 1), dtype=np.float32)
        return model
