"""What the product layer returns: :class:`Row`, :class:`Page`, :class:`Explanation`.

Plain frozen records holding external ids and Python numbers only, so that a service
can turn them into JSON with ``to_dict()`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Row", "Page", "Explanation", "external"]


def external(value):
    """A numpy scalar id or number -> the plain Python value (JSON-ready)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Row:
    """One row of a home page (or the answer of ``top_picks``).

    Attributes
    ----------
    kind : str
        ``"top_picks"``, ``"because_you_watched"``, ``"trending"``, ``"new_releases"``,
        ``"genre"``, ``"continue_watching"`` (or a kind added by another component).
    title : str
        What a page shows above the row ("Because you watched The Crown").
    items : list
        External item ids, best first.
    scores : list of float
        The value each item was ranked by (its meaning depends on the kind: the model
        score for top picks, the seed's contribution for "because you watched", the
        number of recent viewers for trending, ...).
    reasons : list of (str or None)
        Why each item is there, one per item.
    seed : external item id or None
        The "because you watched" title (the seed item's id).
    """

    kind: str
    title: str
    items: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    seed: Any = None

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title,
                "items": [external(i) for i in self.items],
                "scores": [float(s) for s in self.scores],
                "reasons": list(self.reasons), "seed": external(self.seed)}


@dataclass(frozen=True)
class Page:
    """A user's home page: ordered rows, each title at most once on the page."""

    user: Any
    rows: list = field(default_factory=list)

    def items(self) -> list:
        """Every item on the page, row by row."""
        return [i for r in self.rows for i in r.items]

    def to_dict(self) -> dict:
        return {"user": external(self.user), "rows": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` scores what it does for ``user``.

    ``score == sum(v for _, v in contributions) + rest`` and ``score`` is the value that
    ``top_picks`` ranks the item by.  ``contributions`` holds the largest
    ``(history item id, value)`` pairs, largest first; ``rest`` is everything else (the
    other history items' contributions and float32 rounding of the ranking score).
    ``method`` names the decomposition (``"als"``: Hu, Koren & Volinsky 2008 section 5;
    ``"neighbours"``: item-item weights; ``"features"``: shared features;
    ``"none"``: the model's score does not decompose over the history).
    """

    user: Any
    item: Any
    score: float
    contributions: list = field(default_factory=list)
    rest: float = 0.0
    method: str = "none"

    def to_dict(self) -> dict:
        return {"user": external(self.user), "item": external(self.item),
                "score": float(self.score),
                "contributions": [[external(i), float(v)] for i, v in self.contributions],
                "rest": float(self.rest), "method": self.method}
