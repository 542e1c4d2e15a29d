"""Per-user histories: the fitted base (CSR arrays) plus rows updated live.

A :class:`UserRow` is immutable: ``record()`` builds a new one and swaps it in, so a
reader holds either the whole old row (history and vector together) or the whole new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.interactions import DEFAULT_EVENT_WEIGHTS
from ..data.weighting import transform_values

__all__ = ["UserRow", "EventRules"]


@dataclass(frozen=True)
class UserRow:
    """One user's history and vector.

    items : int32, sorted item indices with a stored entry (what the user has seen)
    raw : float64, aggregated strength before the confidence transform
    values : float32, what the model sees (0 = seen but no signal)
    counts : int32, events per entry
    ts : float64 seconds of each entry's latest event, or None
    vector : float32 (f,), the user's vector (exact fold-in of ``values``)
    partial : dict item index -> (progress or NaN, time): titles stopped part-way
    seq : the event sequence number of the last change (0 = from the fitted base)
    """

    items: np.ndarray
    raw: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    ts: np.ndarray | None
    vector: np.ndarray
    partial: dict
    seq: int = 0

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        keep = self.values != 0
        return self.items[keep], self.values[keep]

    def positive(self) -> np.ndarray:
        return self.items[self.values > 0]


class EventRules:
    """How one event changes a pair's value, exactly as :class:`~tastemaker.Interactions`
    builds it: ``value x event weight x recency decay``, aggregated with the pair's
    earlier strength, then the confidence transform (corpus statistics of tfidf / bm25
    frozen at the last fit)."""

    def __init__(self, settings: dict, stats: dict | None, shape):
        self.settings = settings
        w = settings.get("event_weights")
        self.weights = dict(DEFAULT_EVENT_WEIGHTS if w is None else w)
        self.aggregate = settings.get("aggregate", "sum")
        self.half_life = settings.get("half_life")
        self.reference = settings.get("reference_time")
        self.transform = settings.get("transform")
        self.stats = stats
        self.shape = shape

    def check_event(self, event) -> float:
        if not isinstance(event, str) or event not in self.weights:
            raise ValueError(f"event: unknown event {event!r}; expected one of "
                             f"{sorted(self.weights)}")
        return float(self.weights[event])

    def strength(self, event, value, t) -> float:
        s = (1.0 if value is None else float(value)) * self.check_event(event)
        if self.half_life is not None and t is not None and self.reference is not None:
            s *= float(np.exp2(-(self.reference - t) / self.half_life))
        return s

    def combine(self, old_raw: float, old_count: int, s: float) -> float:
        if old_count == 0:
            return s
        if self.aggregate == "sum":
            return old_raw + s
        if self.aggregate == "mean":
            return (old_raw * old_count + s) / (old_count + 1)
        if self.aggregate == "max":
            return max(old_raw, s)
        return s  # last (events arrive in time order)

    def values_of(self, items: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """One user's values from their raw strengths (corpus statistics of the last fit;
        an item newer than them counts as seen by this one user)."""
        tr = self.transform
        if tr is None:
            return raw.astype(np.float32)
        n_items = max(self.shape[1], int(items.max()) + 1 if items.size else 0)
        corpus = self.stats
        if corpus is not None and corpus["df"].shape[0] < n_items:
            pad = np.ones(n_items - corpus["df"].shape[0])
            corpus = dict(corpus, df=np.concatenate([corpus["df"], pad]))
        vals = transform_values(np.zeros(items.size, dtype=np.int64), items, raw,
                                (1, n_items), tr["method"], corpus=corpus, **tr["params"])
        return vals.astype(np.float32)


def with_event(row: UserRow, item: int, strength: float, t, rules: EventRules,
               partial_update, seq: int) -> UserRow:
    """A new row: ``row`` plus one event of ``strength`` on ``item`` at time ``t``
    (vector left as is; the caller folds in)."""
    pos = int(np.searchsorted(row.items, item))
    exists = pos < row.items.size and row.items[pos] == item
    if exists:
        raw = row.raw.copy()
        counts = row.counts.copy()
        raw[pos] = rules.combine(float(raw[pos]), int(counts[pos]), strength)
        counts[pos] += 1
        items = row.items
        ts = None
        if row.ts is not None:
            ts = row.ts.copy()
            ts[pos] = max(float(ts[pos]), t) if t is not None else ts[pos]
    else:
        def put(a, v, dtype):
            return np.concatenate((a[:pos], np.array([v], dtype=dtype), a[pos:]))

        items = put(row.items, item, np.int32)
        raw = put(row.raw, strength, np.float64)
        counts = put(row.counts, 1, np.int32)
        ts = None if row.ts is None else put(row.ts, np.nan if t is None else t, np.float64)
    partial = row.partial
    if partial_update is not None:
        partial = dict(partial)
        kind, progress = partial_update
        if kind == "start":
            partial[item] = (progress, t if t is not None else np.nan)
        else:
            partial.pop(item, None)
    values = rules.values_of(items, raw)
    return UserRow(items=items, raw=raw, values=values, counts=counts, ts=ts,
                   vector=row.vector, partial=partial, seq=seq)
