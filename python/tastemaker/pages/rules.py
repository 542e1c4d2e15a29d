"""Business rules applied to every row: availability window, maturity, region,
allow / deny lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import maturity_age

__all__ = ["Rules"]


@dataclass(frozen=True)
class Rules:
    """What may be shown.

    Parameters
    ----------
    now : time, optional
        The time the availability window is checked at (datetime, ISO string or epoch
        seconds).  Default: the Personalizer's clock (its latest fitted event), so that a
        replayed log behaves as of its end; pass ``time.time()`` in a live service.
    max_maturity : int, float or str, optional
        Highest maturity allowed: a minimum age (13) or a rating ("PG-13", "TV-14").
        Titles without a rating pass.
    region : str, optional
        Only titles available in this region (titles without a region list pass).
    allow : list of external item ids, optional
        Only these titles may appear.
    deny : list of external item ids, optional
        These titles never appear.
    """

    now: Any = None
    max_maturity: Any = None
    region: Any = None
    allow: Any = None
    deny: Any = None

    def checked(self) -> "Rules":
        """A copy with ``now`` in seconds and ``max_maturity`` as an age; ValueError for
        bad values."""
        now = self.now
        if now is not None:
            from ..data.interactions import _time_value

            now = _time_value(now, "rules.now")
        mat = None if self.max_maturity is None else maturity_age(self.max_maturity,
                                                                  "rules.max_maturity")
        if self.region is not None and not isinstance(self.region, str):
            raise ValueError(f"rules.region: expected a region code (str), got "
                             f"{type(self.region).__name__}")
        for name in ("allow", "deny"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, (str, bytes)) or not hasattr(v, "__len__")):
                raise ValueError(f"rules.{name}: expected a list of item ids, got {v!r}")
        return Rules(now=now, max_maturity=mat, region=self.region, allow=self.allow,
                     deny=self.deny)

    @classmethod
    def of(cls, value) -> "Rules":
        if value is None:
            return cls()
        if isinstance(value, Rules):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"now", "max_maturity", "region", "allow", "deny"}
            if unknown:
                raise ValueError(f"rules: unknown key(s) {sorted(unknown)}; expected now, "
                                 "max_maturity, region, allow, deny")
            return cls(**value)
        raise ValueError(f"rules: expected a Rules, a dict or None, got {type(value).__name__}")
