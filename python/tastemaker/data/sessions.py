"""Sessions and their context (device, hour, ...), kept beside the Interactions matrix.

The user x item matrix of :class:`~tastemaker.data.Interactions` sums every event of a
pair, so it forgets *when together* and *in which circumstances* titles were watched.
The product layer needs both to tell the people of a shared account apart
(:mod:`tastemaker.pages.tastes`): titles played in one sitting were chosen by one person,
and the device and hour of a sitting hint at who that was.  :class:`Sessions` keeps, per
session (keyed by ``(user, session id)``):

* its titles with their summed event strength (the same per-event strength as the
  matrix: value x event weight x decay, before any confidence transform);
* its start (the time of its first event) when the log has timestamps;
* one value per context column: the value at the session's first event.

All of it is arrays (no per-session Python objects), built with vectorized numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Sessions"]

_PREFIX = "session_"


def context_array(raw, name: str) -> np.ndarray:
    """A context column -> float64 (numbers, booleans) or fixed-width unicode (anything else).

    Missing values are an error naming the column and the first bad row.
    """
    s = raw if isinstance(raw, pd.Series) else pd.Series(np.asarray(raw))
    miss = s.isna().to_numpy()
    if miss.any():
        raise ValueError(f"{name}: contains missing context values (first at row "
                         f"{int(np.flatnonzero(miss)[0])})")
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        out = s.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            raise ValueError(f"{name}: contains NaN or inf context values (first at row "
                             f"{int(np.flatnonzero(bad)[0])})")
        return out
    return s.map(str).to_numpy().astype(str) if len(s) else np.array([], dtype="<U1")


def _first_per_group(group: np.ndarray, time: np.ndarray | None, n_groups: int) -> np.ndarray:
    """Index of each group's earliest row (ties: the earlier row)."""
    rows = np.arange(group.size)
    order = np.lexsort((rows, group)) if time is None else np.lexsort((rows, time, group))
    g = group[order]
    starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    out = np.empty(n_groups, dtype=np.int64)
    out[g[starts]] = order[starts]
    return out


class Sessions:
    """The sessions of an :class:`~tastemaker.data.Interactions` (read-only arrays).

    Attributes
    ----------
    ids : ndarray, shape (n_sessions,)
        External session id (int64 or fixed-width unicode).  A session is keyed by
        ``(user, id)``: one id used by two users is two sessions.
    user : ndarray of int32, shape (n_sessions,)
        Dense user index; sessions are sorted by user, then start, then id.
    start : ndarray of float64, shape (n_sessions,), or None
        Seconds since the epoch of each session's first event (None without timestamps).
    indptr : ndarray of int64, shape (n_sessions + 1,)
    item : ndarray of int32, shape (nnz,)
    value : ndarray of float64, shape (nnz,)
        CSR of sessions x items: the summed event strength of each title in each session
        (before the confidence transform; negative = disliked).
    context : dict of str -> ndarray, shape (n_sessions,)
        Each context column's value at the session's first event: float64 for numeric
        columns, unicode otherwise.
    """

    def __init__(self, *, ids, user, start, indptr, item, value, context):
        self.ids = ids
        self.user = np.ascontiguousarray(user, dtype=np.int32)
        self.start = None if start is None else np.ascontiguousarray(start, dtype=np.float64)
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.item = np.ascontiguousarray(item, dtype=np.int32)
        self.value = np.ascontiguousarray(value, dtype=np.float64)
        self.context = dict(context)

    # ---- construction
    @classmethod
    def build(cls, user, session, item, strength, seconds, context, n_items: int):
        """From one row per event (dense user / item codes, external session ids).

        ``context`` maps names to per-event arrays from :func:`context_array`.
        """
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        sid_uniq, sid_code = np.unique(session, return_inverse=True)
        sid_code = sid_code.ravel()
        key = user * np.int64(max(len(sid_uniq), 1)) + sid_code
        _, sess = np.unique(key, return_inverse=True)
        sess = sess.ravel()
        n = int(sess.max()) + 1 if sess.size else 0
        first = _first_per_group(sess, seconds, n)
        s_user = user[first]
        s_id = sid_uniq[sid_code[first]]
        s_start = None if seconds is None else seconds[first]  # first = earliest event
        ctx = {k: v[first] for k, v in context.items()}
        # sessions in (user, start, id) order
        keys = (sid_code[first], s_user) if s_start is None else (sid_code[first], s_start,
                                                                  s_user)
        order = np.lexsort(keys)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        return cls._assemble(rank[sess], item, strength, n, n_items, ids=s_id[order],
                             user=s_user[order],
                             start=None if s_start is None else s_start[order],
                             context={k: v[order] for k, v in ctx.items()})

    @classmethod
    def _assemble(cls, sess, item, value, n_sessions, n_items, **session_arrays):
        """Sum the (session, item) entries into a CSR and wrap the per-session arrays."""
        key = sess.astype(np.int64) * np.int64(max(n_items, 1)) + item.astype(np.int64)
        uniq, inv = np.unique(key, return_inverse=True)
        vals = np.bincount(inv.ravel(), weights=value, minlength=uniq.size)
        rows = uniq // max(n_items, 1)
        indptr = np.zeros(n_sessions + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_sessions), out=indptr[1:])
        return cls(indptr=indptr, item=uniq % max(n_items, 1), value=vals, **session_arrays)

    def _entries(self):
        """(session, item, value) per stored entry."""
        return (np.repeat(np.arange(self.n_sessions), np.diff(self.indptr)), self.item,
                self.value)

    def take(self, entry_mask=None, user_map=None, item_map=None) -> Sessions:
        """Keep masked entries, relabel users / items (-1 = removed); drop empty sessions."""
        sess, item, value = self._entries()
        keep = np.ones(item.size, dtype=bool) if entry_mask is None else entry_mask.copy()
        user = self.user.astype(np.int64)
        if user_map is not None:
            user = user_map[user]
            keep &= user[sess] >= 0
        if item_map is not None:
            item = item_map[item]
            keep &= item >= 0
        sess, item, value = sess[keep], item[keep], value[keep]
        alive = np.unique(sess)
        new = np.full(self.n_sessions, -1, dtype=np.int64)
        new[alive] = np.arange(alive.size)
        n_items = int(item.max()) + 1 if item.size else 1
        return self._assemble(new[sess], item, value, alive.size, n_items, ids=self.ids[alive],
                              user=user[alive],
                              start=None if self.start is None else self.start[alive],
                              context={k: v[alive] for k, v in self.context.items()})

    def restrict_to_pairs(self, user_idx, item_idx, n_items: int) -> Sessions:
        """Keep only entries whose (user, item) pair is among the given (sorted) pairs."""
        sess, item, _ = self._entries()
        n = np.int64(max(n_items, 1))
        pairs = np.asarray(user_idx, dtype=np.int64) * n + np.asarray(item_idx, dtype=np.int64)
        mine = self.user[sess].astype(np.int64) * n + item
        pos = np.searchsorted(pairs, mine).clip(0, max(pairs.size - 1, 0))
        keep = (pairs[pos] == mine) if pairs.size else np.zeros(mine.size, dtype=bool)
        return self.take(keep)

    def concat(self, other: Sessions, other_user_map, other_item_map,
               n_items: int) -> Sessions:
        """Both sides' sessions in one index space; equal ``(user, id)`` sessions merge."""
        if set(self.context) != set(other.context):
            raise ValueError(f"events: context columns {sorted(other.context)} differ from "
                             f"this Interactions' {sorted(self.context)}")
        if (self.start is None) != (other.start is None):
            raise ValueError("events: both sides must have timestamps, or neither")
        ids_a, ids_b = self.ids, other.ids
        if ids_a.dtype.kind != ids_b.dtype.kind:  # int on one side, str on the other
            ids_a, ids_b = ids_a.astype(str), ids_b.astype(str)
        ctx = {}
        for k in self.context:
            a, b = self.context[k], other.context[k]
            if (a.dtype.kind == "f") != (b.dtype.kind == "f"):
                raise ValueError(f"events: context column {k!r} is numeric on one side and "
                                 "text on the other")
            ctx[k] = np.concatenate([a, b])
        sa, ia, va = self._entries()
        sb, ib, vb = other._entries()
        n_a = self.n_sessions
        users = np.concatenate([self.user.astype(np.int64),
                                np.asarray(other_user_map, dtype=np.int64)[other.user]])
        ids = np.concatenate([ids_a, ids_b])
        start = None if self.start is None else np.concatenate([self.start, other.start])
        # re-key the union of sessions as if each were one event at its start
        tmp = Sessions.build(users, ids, np.zeros(users.size, dtype=np.int64),
                             np.zeros(users.size), start, ctx, 1)
        # map each old session to its merged one: same (user, id)
        merged_key = pd.MultiIndex.from_arrays([tmp.user.astype(np.int64), tmp.ids])
        old_key = pd.MultiIndex.from_arrays([users, ids])
        where = merged_key.get_indexer(old_key)
        sess = np.concatenate([where[sa], where[n_a + sb]])
        item = np.concatenate([ia.astype(np.int64),
                               np.asarray(other_item_map, dtype=np.int64)[ib]])
        return self._assemble(sess, item, np.concatenate([va, vb]), tmp.n_sessions, n_items,
                              ids=tmp.ids, user=tmp.user, start=tmp.start,
                              context=tmp.context)

    # ---- queries
    @property
    def n_sessions(self) -> int:
        return int(self.user.shape[0])

    def __len__(self) -> int:
        return self.n_sessions

    @property
    def context_names(self) -> tuple:
        return tuple(self.context)

    def of_user(self, user: int) -> slice:
        """The (contiguous) range of one dense user index's sessions."""
        lo, hi = np.searchsorted(self.user, [user, user + 1])
        return slice(int(lo), int(hi))

    def to_csr(self, n_items: int) -> sp.csr_matrix:
        """Sessions x items float64 CSR of :attr:`value`."""
        return sp.csr_matrix((self.value, self.item, self.indptr),
                             shape=(self.n_sessions, n_items))

    def to_frame(self) -> pd.DataFrame:
        """One row per session: session id, user index, start (if any), n_items, context."""
        d = {"session": self.ids, "user": self.user, "n_items": np.diff(self.indptr)}
        if self.start is not None:
            d["start"] = self.start
        d.update(self.context)
        return pd.DataFrame(d)

    def __repr__(self) -> str:
        return (f"Sessions(n_sessions={self.n_sessions}, nnz={self.item.size}, "
                f"context={list(self.context)})")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sessions):
            return NotImplemented
        same_start = ((self.start is None and other.start is None) or
                      (self.start is not None and other.start is not None
                       and np.array_equal(self.start, other.start)))
        return (same_start and list(self.context) == list(other.context)
                and all(np.array_equal(self.context[k], other.context[k]) for k in self.context)
                and np.array_equal(self.ids, other.ids) and np.array_equal(self.user, other.user)
                and np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.item, other.item)
                and np.array_equal(self.value, other.value))

    __hash__ = None

    # ---- persistence (arrays inside the Interactions archive)
    def to_arrays(self) -> tuple[dict, dict]:
        """(header, arrays) to store beside the matrix."""
        arrays = {_PREFIX + "ids": self.ids, _PREFIX + "user": self.user,
                  _PREFIX + "indptr": self.indptr, _PREFIX + "item": self.item,
                  _PREFIX + "value": self.value}
        if self.start is not None:
            arrays[_PREFIX + "start"] = self.start
        names = list(self.context)
        for j, k in enumerate(names):
            arrays[f"{_PREFIX}ctx{j}"] = self.context[k]
        return {"context": names}, arrays

    @classmethod
    def from_arrays(cls, header: dict | None, arrays: dict, n_users: int, n_items: int):
        """Inverse of :meth:`to_arrays`; None when the archive has no sessions.

        Raises ValueError on inconsistent arrays (a damaged file).
        """
        if _PREFIX + "ids" not in arrays:
            return None
        names = list((header or {}).get("context", []))
        obj = cls(ids=arrays[_PREFIX + "ids"], user=arrays[_PREFIX + "user"],
                  start=arrays.get(_PREFIX + "start"), indptr=arrays[_PREFIX + "indptr"],
                  item=arrays[_PREFIX + "item"], value=arrays[_PREFIX + "value"],
                  context={k: arrays[f"{_PREFIX}ctx{j}"] for j, k in enumerate(names)})
        n = obj.n_sessions
        ok = (obj.ids.shape == (n,) and obj.indptr.shape == (n + 1,)
              and (obj.start is None or obj.start.shape == (n,))
              and all(v.shape == (n,) for v in obj.context.values())
              and obj.indptr[0] == 0 and obj.indptr[-1] == obj.item.size
              and obj.value.shape == obj.item.shape and np.all(np.diff(obj.indptr) >= 0)
              and (n == 0 or (obj.user.min() >= 0 and obj.user.max() < n_users
                              and np.all(np.diff(obj.user) >= 0)))
              and (obj.item.size == 0 or (obj.item.min() >= 0 and obj.item.max() < n_items)))
        if not ok:
            raise ValueError("inconsistent session arrays")
        return obj
