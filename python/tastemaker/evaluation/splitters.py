"""Train/test splitters.

Every splitter takes a :class:`tastemaker.Interactions` (or, where timestamps are not
needed, a users x items scipy sparse matrix) and assigns each stored (user, item)
entry to exactly one side, so no pair can be in both train and test.  The results
are of the input's type and shape: Interactions keep the input's id maps (through
``Interactions.subset``), matrices keep their shape.  Everything is vectorized and
deterministic for a given ``random_state``.

Users with too little history are never split: a user with at most ``min_train``
entries stays entirely in train (per-user splitters), and users with fewer than
``min_interactions`` entries are never held out in :func:`user_kfold_split`.
"""

from __future__ import annotations

import numbers
from typing import Iterator, NamedTuple

import numpy as np
import scipy.sparse as sp

from .._validation import check_csr, check_float, check_int, check_random_state

__all__ = [
    "random_split",
    "stratified_split",
    "leave_last_k_out_split",
    "temporal_split",
    "user_kfold_split",
    "UserFold",
    "cold_item_split",
]


class _Entries:
    """The stored entries of an Interactions or a sparse matrix, sorted by (user, item)."""

    def __init__(self, data, name: str = "data", need_time: bool = False):
        self.name = name
        if sp.issparse(data):
            if need_time:
                raise ValueError(f"{name}: this split needs timestamps; pass an Interactions "
                                 f"with timestamps, not a sparse matrix")
            csr = check_csr(data, name, allow_empty=True)
            self.source = csr
            self.is_matrix = True
            self.n_users, self.n_items = csr.shape
            self.user = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(csr.indptr))
            self.item = csr.indices.astype(np.int64)
            self.timestamps = None
        elif all(hasattr(data, a) for a in ("user_idx", "item_idx", "subset", "shape")):
            self.source = data
            self.is_matrix = False
            self.n_users, self.n_items = (int(x) for x in data.shape)
            self.user = np.asarray(data.user_idx, dtype=np.int64)
            self.item = np.asarray(data.item_idx, dtype=np.int64)
            ts = getattr(data, "timestamps", None)
            self.timestamps = None if ts is None else np.asarray(ts, dtype=np.float64)
            if need_time and self.timestamps is None:
                raise ValueError(f"{name}: this split needs timestamps, and this Interactions "
                                 f"has none (build it with timestamp=...)")
        else:
            raise ValueError(f"{name}: expected a tastemaker.Interactions or a scipy.sparse "
                             f"matrix, got {type(data).__name__}")
        if self.user.size == 0:
            raise ValueError(f"{name}: has no interactions to split")
        self.nnz = self.user.size
        self.counts = np.bincount(self.user, minlength=self.n_users)
        self.starts = np.concatenate(([0], np.cumsum(self.counts)))[:-1]

    def take(self, mask: np.ndarray):
        """The entries where ``mask`` is true, as the input's type and shape."""
        if not self.is_matrix:
            return self.source.subset(mask)
        csr = self.source
        counts = np.bincount(self.user[mask], minlength=self.n_users)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return sp.csr_matrix((csr.data[mask], csr.indices[mask], indptr), shape=csr.shape)

    def rank_within_user(self, keys: np.ndarray) -> np.ndarray:
        """0-based rank of each entry among its user's entries, ordered by ``keys``."""
        order = np.lexsort((keys, self.user))
        rank = np.empty(self.nnz, dtype=np.int64)
        rank[order] = np.arange(self.nnz) - self.starts[self.user[order]]
        return rank


def _per_user_test_counts(counts: np.ndarray, test_size, min_train: int) -> np.ndarray:
    """How many entries of each user go to test (0 for users with <= min_train entries)."""
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        n_test = np.full(counts.shape, check_int(test_size, "test_size", minimum=1))
    else:
        frac = check_float(test_size, "test_size", minimum=0.0, strict=True)
        if frac >= 1.0:
            raise ValueError(f"test_size: a fraction must be < 1 (or pass an int count), got "
                             f"{frac}")
        n_test = np.floor(frac * counts + 0.5).astype(np.int64)
    return np.clip(np.minimum(n_test, counts - min_train), 0, None)


def random_split(data, test_size=0.2, *, min_train: int = 1, random_state=None):
    """Random per-user holdout.

    Each user's entries are shuffled and ``n_test`` of them go to test, where
    ``n_test = round(test_size * n)`` (half up) for a float ``test_size`` and
    ``n_test = test_size`` for an int, but never so many that fewer than ``min_train``
    remain in train.  A user with at most ``min_train`` entries stays entirely in train.

    Parameters
    ----------
    data : Interactions or scipy.sparse matrix, shape (n_users, n_items)
    test_size : float in (0, 1) or int >= 1, default 0.2
        Fraction or count of each user's entries held out.
    min_train : int, default 1
        Entries each user keeps in train at least.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    (train, test)
        Same type and shape as ``data``; disjoint; together they are ``data``.
    """
    e = _Entries(data)
    min_train = check_int(min_train, "min_train", minimum=0)
    n_test = _per_user_test_counts(e.counts, test_size, min_train)
    rng = check_random_state(random_state)
    rank = e.rank_within_user(rng.random(e.nnz))
    test = rank < n_test[e.user]
    return e.take(~test), e.take(test)


def stratified_split(data, test_size=0.25, *, by: str = "user", random_state=None):
    """Stratified random split: every user's (or item's) entries are split in proportion.

    The protocol of Microsoft Recommenders' ``python_stratified_split`` (the one its
    published MovieLens tables use): the entries of each group -- a user's, or with
    ``by="item"`` an item's -- are shuffled and the first
    ``round((1 - test_size) * n)`` (half to even) go to train, the rest to test.  So a
    group with a single entry stays in train, and with ``by="item"`` every item is split
    on its own (some users may then have no training entry).

    Parameters
    ----------
    data : Interactions or scipy.sparse matrix, shape (n_users, n_items)
    test_size : float in (0, 1), default 0.25
        Fraction of each group's entries held out.
    by : {"user", "item"}, default "user"
        The grouping that is stratified.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    (train, test)
        Same type and shape as ``data``; disjoint; together they are ``data``.
    """
    e = _Entries(data)
    frac = check_float(test_size, "test_size", minimum=0.0, strict=True)
    if frac >= 1.0:
        raise ValueError(f"test_size: expected a fraction in (0, 1), got {frac}")
    if by not in ("user", "item"):
        raise ValueError(f"by: expected 'user' or 'item', got {by!r}")
    rng = check_random_state(random_state)
    group = e.user if by == "user" else e.item
    n_groups = e.n_users if by == "user" else e.n_items
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)))[:-1]
    order = np.lexsort((rng.random(e.nnz), group))
    rank = np.empty(e.nnz, dtype=np.int64)
    rank[order] = np.arange(e.nnz) - starts[group[order]]
    n_train = np.round((1.0 - frac) * counts).astype(np.int64)
    test = rank >= n_train[group]
    return e.take(~test), e.take(test)


def leave_last_k_out_split(data, k: int = 1, *, min_train: int = 1):
    """Each user's ``k`` most recent entries go to test.

    Entries are ordered by timestamp; ties are broken by item index (the larger index
    counts as later), so the split is deterministic.  Users with at most ``min_train``
    entries stay entirely in train; others keep at least ``min_train``.

    Parameters
    ----------
    data : Interactions with timestamps
    k : int, default 1
    min_train : int, default 1

    Returns
    -------
    (train, test) : Interactions
    """
    e = _Entries(data, need_time=True)
    k = check_int(k, "k", minimum=1)
    min_train = check_int(min_train, "min_train", minimum=0)
    n_test = _per_user_test_counts(e.counts, k, min_train)
    # rank from the end: the latest entry of a user has rank 0
    order = np.lexsort((np.arange(e.nnz), e.timestamps, e.user))
    rank_up = np.empty(e.nnz, dtype=np.int64)
    rank_up[order] = np.arange(e.nnz) - e.starts[e.user[order]]
    rank_from_end = e.counts[e.user] - 1 - rank_up
    test = rank_from_end < n_test[e.user]
    return e.take(~test), e.take(test)


def temporal_split(data, at=None, *, test_fraction=None, drop_cold_start: bool = True):
    """Global temporal split: entries before a time go to train, the rest to test.

    Parameters
    ----------
    data : Interactions with timestamps
    at : datetime, ISO string or number, optional
        The split time, converted with ``data.time_value``; entries with
        ``timestamp < at`` are train.
    test_fraction : float in (0, 1), optional
        Instead of ``at``: split at the time that leaves about this fraction of entries
        (the latest ones) in test.  Give exactly one of ``at`` and ``test_fraction``.
    drop_cold_start : bool, default True
        Remove from test the entries whose user or item has no training entry (a model
        cannot have learned anything about them); they are then in neither side.

    Returns
    -------
    (train, test) : Interactions
    """
    e = _Entries(data, need_time=True)
    if (at is None) == (test_fraction is None):
        raise ValueError("at: give exactly one of at and test_fraction")
    if at is not None:
        try:
            t = float(data.time_value(at))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"at: cannot convert {at!r} to a time ({exc})") from None
        if not np.isfinite(t):
            raise ValueError(f"at: expected a finite time, got {at!r}")
    else:
        frac = check_float(test_fraction, "test_fraction", minimum=0.0, strict=True)
        if frac >= 1.0:
            raise ValueError(f"test_fraction: expected a number < 1, got {frac}")
        srt = np.sort(e.timestamps)
        t = srt[min(int(np.floor((1.0 - frac) * e.nnz)), e.nnz - 1)]
    is_test = e.timestamps >= t
    is_train = ~is_test
    if drop_cold_start:
        item = e.item
        warm_user = np.bincount(e.user[is_train], minlength=e.n_users) > 0
        warm_item = np.bincount(item[is_train], minlength=e.n_items) > 0
        is_test &= warm_user[e.user] & warm_item[item]
    return e.take(is_train), e.take(is_test)


class UserFold(NamedTuple):
    """One fold of :func:`user_kfold_split`.

    Attributes
    ----------
    train : Interactions or sparse matrix
        Every entry of the users not held out in this fold (fit models on this).
    fold_in : Interactions or sparse matrix
        The held-out users' visible history: give it to ``recommend`` (with
        ``recalculate_user=True``) or to ``evaluate(..., train=fold_in)``.
    test : Interactions or sparse matrix
        The held-out users' hidden entries, to score.
    users : ndarray of int64
        The held-out users' indices, sorted.
    """

    train: object
    fold_in: object
    test: object
    users: np.ndarray


def user_kfold_split(data, n_splits: int = 5, *, test_size=0.5, min_interactions: int = 2,
                     by_time: bool = False, random_state=None) -> Iterator[UserFold]:
    """K-fold over users, for strong generalization (users unseen at training time).

    Users with at least ``min_interactions`` entries are shuffled and dealt into
    ``n_splits`` folds.  For each fold, the other users' entries form ``train``; each
    held-out user's entries are split into ``fold_in`` (the part a model may see, e.g.
    to fold the user in) and ``test`` (the rest), as in :func:`random_split` with
    ``test_size`` and ``min_train=1`` (or :func:`leave_last_k_out_split` when
    ``by_time``; ``test_size`` must then be an int count).  Users with fewer than
    ``min_interactions`` entries are never held out: they are always in ``train``.

    Parameters
    ----------
    data : Interactions or scipy.sparse matrix, shape (n_users, n_items)
    n_splits : int >= 2, default 5
    test_size : float in (0, 1) or int >= 1, default 0.5
        Per held-out user, fraction or count of entries in ``test``.
    min_interactions : int >= 2, default 2
    by_time : bool, default False
        Hold out each user's latest entries instead of random ones (needs timestamps).
    random_state : None, int or numpy.random.Generator
        Drives the fold assignment and the random fold-in/test split.

    Yields
    ------
    UserFold
        ``(train, fold_in, test, users)``; the three parts are disjoint and together
        they are ``data``; over the folds, every eligible user is held out exactly once.
    """
    e = _Entries(data, need_time=by_time)
    n_splits = check_int(n_splits, "n_splits", minimum=2)
    min_interactions = check_int(min_interactions, "min_interactions", minimum=2)
    if by_time and not (isinstance(test_size, numbers.Integral)
                        and not isinstance(test_size, bool)):
        raise ValueError(f"test_size: with by_time=True, expected an int count of latest "
                         f"entries, got {test_size!r}")
    n_test = _per_user_test_counts(e.counts, test_size, 1)
    rng = check_random_state(random_state)
    eligible = np.flatnonzero(e.counts >= min_interactions)
    if eligible.size < n_splits:
        raise ValueError(f"n_splits: {n_splits} folds need at least {n_splits} users with "
                         f">= {min_interactions} interactions, found {eligible.size}")
    fold_of_user = np.full(e.n_users, -1, dtype=np.int64)
    fold_of_user[rng.permutation(eligible)] = np.arange(eligible.size) % n_splits
    if by_time:
        order = np.lexsort((np.arange(e.nnz), e.timestamps, e.user))
        keys = np.empty(e.nnz)
        keys[order] = -np.arange(e.nnz, dtype=np.float64)  # latest first
    else:
        keys = rng.random(e.nnz)
    hidden = e.rank_within_user(keys) < n_test[e.user]
    entry_fold = fold_of_user[e.user]
    for fold in range(n_splits):
        held = entry_fold == fold
        yield UserFold(
            train=e.take(~held),
            fold_in=e.take(held & ~hidden),
            test=e.take(held & hidden),
            users=np.flatnonzero(fold_of_user == fold),
        )


def cold_item_split(data, test_size=0.2, *, random_state=None):
    """Hold out whole items: the cold-start (new-title) protocol.

    A random ``test_size`` fraction of the items that have interactions (or that many
    items, for an int) is chosen; every entry of those items goes to test, every other
    entry to train.  Both sides keep the full item index, so the held-out items' columns
    are empty in train: a model that uses item metadata must recommend them from their
    features alone.  Rank them among themselves with ``recommend(..., items=cold)``.

    Parameters
    ----------
    data : Interactions or scipy.sparse matrix, shape (n_users, n_items)
    test_size : float in (0, 1) or int >= 1, default 0.2
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    (train, test, cold_items)
        ``train`` / ``test`` of the input's type and shape, disjoint, together ``data``;
        ``cold_items``: sorted int64 indices of the held-out items.
    """
    e = _Entries(data)
    used = np.unique(e.item)
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        n_cold = check_int(test_size, "test_size", minimum=1, maximum=max(used.size - 1, 1))
    else:
        frac = check_float(test_size, "test_size", minimum=0.0, strict=True)
        if frac >= 1.0:
            raise ValueError(f"test_size: a fraction must be < 1 (or pass an int count), got "
                             f"{frac}")
        n_cold = int(np.floor(frac * used.size + 0.5))
    if used.size < 2 or not 1 <= n_cold < used.size:
        raise ValueError(f"test_size: {test_size!r} holds out {n_cold} of the {used.size} "
                         f"items with interactions; need at least one on each side")
    rng = check_random_state(random_state)
    cold = np.sort(rng.choice(used, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(e.n_items, dtype=bool)
    is_cold[cold] = True
    test = is_cold[e.item]
    return e.take(~test), e.take(test), cold
