"""The catalog: titles, genres, dates, availability, maturity and regions, as arrays.

A catalog is a pandas DataFrame with one row per title, indexed by the external item id
(or with an ``item`` column).  Every column is optional:

==================  ==========================================================
column              meaning
==================  ==========================================================
``title``           display name (else the id)
``genres``          ``"Comedy|Drama"`` (``|`` or ``,`` separated) or a list
``release_date``    release time (datetime, date string or epoch seconds);
                    ``release_year`` is used when there is no release date
``available_from``  start of the availability window (missing = always)
``available_until`` end of the window (missing = forever)
``maturity``        minimum age (number) or a rating (G, PG, PG-13, R, NC-17,
                    TV-Y, TV-Y7, TV-G, TV-PG, TV-14, TV-MA, U, 12A, 15, 18 ...)
``regions``         ``"US|CA"``: where the title may be shown (missing = everywhere)
==================  ==========================================================

:class:`Catalog` turns those into numpy arrays once, so that business rules are a few
vectorized comparisons per request.  It is saved into the Personalizer's bundle as
plain arrays (no pickle).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rows import external

__all__ = ["Catalog", "MATURITY_AGES"]

#: Common maturity ratings -> minimum age (the number compared with ``max_maturity``).
MATURITY_AGES = {
    "G": 0, "PG": 10, "PG-13": 13, "R": 17, "NC-17": 18, "NR": 18, "UNRATED": 18,
    "TV-Y": 0, "TV-Y7": 7, "TV-G": 0, "TV-PG": 10, "TV-14": 14, "TV-MA": 17,
    "U": 0, "12A": 12, "12": 12, "15": 15, "18": 18, "ALL": 0,
}


def maturity_age(value, name: str = "maturity") -> float:
    """A rating (str) or age (number) -> minimum age; NaN for a missing value."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    key = str(value).strip().upper()
    if key in MATURITY_AGES:
        return float(MATURITY_AGES[key])
    try:
        return float(key)
    except ValueError:
        raise ValueError(f"{name}: unknown maturity rating {value!r} (known: "
                         f"{sorted(MATURITY_AGES)} or a minimum age)") from None


def _seconds(col: pd.Series, name: str) -> np.ndarray:
    """Times -> float64 epoch seconds, NaN where missing."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64)
    try:
        t = pd.to_datetime(col, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"catalog: column {name!r} has values that are not times ({exc})") from None
    out = np.full(len(col), np.nan)
    ok = t.notna().to_numpy()
    out[ok] = t[ok].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").to_numpy(
        ).astype(np.int64) / 1e9
    return out


def _split_list(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    sep = "|" if "|" in text else ","
    return [p.strip() for p in text.split(sep) if p.strip()]


def _ids_of(frame: pd.DataFrame) -> np.ndarray:
    from ..data.interactions import _ids_array

    raw = frame["item"] if "item" in frame.columns else frame.index.to_series()
    return _ids_array(raw.reset_index(drop=True), "catalog item ids")


class Catalog:
    """Catalog arrays, row ``k`` describing the item with external id ``ids[k]``.

    Build with :meth:`from_frame`; :meth:`arrays` / :meth:`from_arrays` are the
    pickle-free round trip used by bundles.
    """

    _FLOATS = ("release", "available_from", "available_until", "maturity")

    def __init__(self, ids, titles, genre_names, genre_indptr, genre_indices, release,
                 available_from, available_until, maturity, region_names, region_indptr,
                 region_indices):
        self.ids = ids
        self.titles = titles
        self.genre_names = list(genre_names)
        self.genre_indptr = genre_indptr
        self.genre_indices = genre_indices
        self.release = release
        self.available_from = available_from
        self.available_until = available_until
        self.maturity = maturity
        self.region_names = list(region_names)
        self.region_indptr = region_indptr
        self.region_indices = region_indices
        self._index = pd.Index(ids)
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()][0]
            raise ValueError(f"catalog: item id {external(dup)!r} appears more than once")
        self._region_masks: dict = {}
        self._genre_matrix = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # ---- construction
    @classmethod
    def from_frame(cls, frame, title_col: str = "title", genres_col: str = "genres") -> "Catalog":
        if isinstance(frame, Catalog):
            return frame
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"catalog: expected a pandas DataFrame, got {type(frame).__name__}")
        ids = _ids_of(frame)
        n = len(frame)
        if title_col is not None and title_col in frame.columns:
            titles = np.array([str(t) if not (isinstance(t, float) and np.isnan(t)) else str(i)
                               for t, i in zip(frame[title_col].tolist(), ids.tolist())],
                              dtype=str)
        elif title_col not in (None, "title"):
            raise ValueError(f"title_col: column {title_col!r} not in the catalog (columns: "
                             f"{list(frame.columns)})")
        else:
            titles = ids.astype(str)
        if len(titles) == 0:
            titles = np.array([], dtype="<U1")
        genre_lists = ([_split_list(g) for g in frame[genres_col].tolist()]
                       if genres_col in frame.columns else [[] for _ in range(n)])
        g_names, g_indptr, g_indices = _encode_lists(genre_lists)
        if "release_date" in frame.columns:
            release = _seconds(frame["release_date"], "release_date")
        elif "release_year" in frame.columns:
            years = pd.to_numeric(frame["release_year"], errors="coerce")
            txt = years.map(lambda y: None if pd.isna(y) else f"{int(y):04d}-01-01")
            release = _seconds(txt, "release_year")
        else:
            release = np.full(n, np.nan)
        a_from = (_seconds(frame["available_from"], "available_from")
                  if "available_from" in frame.columns else np.full(n, np.nan))
        a_until = (_seconds(frame["available_until"], "available_until")
                   if "available_until" in frame.columns else np.full(n, np.nan))
        maturity = (np.array([maturity_age(v, f"catalog maturity of item {external(i)!r}")
                              for v, i in zip(frame["maturity"].tolist(), ids.tolist())],
                             dtype=np.float64)
                    if "maturity" in frame.columns else np.full(n, np.nan))
        region_lists = ([[r.upper() for r in _split_list(v)] for v in frame["regions"].tolist()]
                        if "regions" in frame.columns else [[] for _ in range(n)])
        r_names, r_indptr, r_indices = _encode_lists(region_lists)
        return cls(ids, titles, g_names, g_indptr, g_indices, release, a_from, a_until, maturity,
                   r_names, r_indptr, r_indices)

    def arrays(self) -> tuple[dict, dict]:
        """(header, arrays) for a bundle."""
        arrays = {"ids": self.ids, "titles": self.titles, "genre_indptr": self.genre_indptr,
                  "genre_indices": self.genre_indices, "release": self.release,
                  "available_from": self.available_from,
                  "available_until": self.available_until, "maturity": self.maturity,
                  "region_indptr": self.region_indptr, "region_indices": self.region_indices}
        return {"genre_names": self.genre_names, "region_names": self.region_names}, arrays

    @classmethod
    def from_arrays(cls, header: dict, arrays: dict) -> "Catalog":
        return cls(arrays["ids"], arrays["titles"], header["genre_names"],
                   arrays["genre_indptr"], arrays["genre_indices"], arrays["release"],
                   arrays["available_from"], arrays["available_until"], arrays["maturity"],
                   header["region_names"], arrays["region_indptr"], arrays["region_indices"])

    # ---- lookups
    def rows_of(self, ids) -> np.ndarray:
        """Catalog rows of external ids (-1 where absent)."""
        if len(ids) == 0:
            return np.empty(0, dtype=np.int64)
        arr = np.asarray(ids)
        if arr.dtype.kind != self.ids.dtype.kind and not (arr.dtype.kind in "iu"
                                                           and self.ids.dtype.kind in "iu"):
            try:
                arr = arr.astype(self.ids.dtype)
            except (TypeError, ValueError):
                return np.full(len(arr), -1, dtype=np.int64)
        return self._index.get_indexer(arr).astype(np.int64)

    def has(self, item) -> bool:
        return bool(self.rows_of([item])[0] >= 0)

    def genre_matrix(self):
        """Sparse (n_catalog x n_genres) indicator, rows normalized to sum 1 (CSR)."""
        if self._genre_matrix is None:
            import scipy.sparse as sp

            counts = np.diff(self.genre_indptr).astype(np.float64)
            w = np.repeat(np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0),
                          np.diff(self.genre_indptr))
            self._genre_matrix = sp.csr_matrix(
                (w, np.asarray(self.genre_indices, dtype=np.int32),
                 np.asarray(self.genre_indptr, dtype=np.int64)),
                shape=(len(self), len(self.genre_names)))
        return self._genre_matrix

    def region_mask(self, region: str) -> np.ndarray:
        """True for catalog rows that may be shown in ``region``."""
        key = str(region).upper()
        mask = self._region_masks.get(key)
        if mask is None:
            counts = np.diff(self.region_indptr)
            mask = counts == 0
            if key in self.region_names:
                code = self.region_names.index(key)
                rows = np.repeat(np.arange(len(self)), counts)
                hit = np.zeros(len(self), dtype=bool)
                hit[rows[np.asarray(self.region_indices) == code]] = True
                mask = mask | hit
            self._region_masks[key] = mask
        return mask

    def blocked(self, now: float, max_maturity, region) -> np.ndarray:
        """True for catalog rows that the rules hide (outside the window, too mature, not
        in the region)."""
        bad = np.zeros(len(self), dtype=bool)
        with np.errstate(invalid="ignore"):
            bad |= self.available_from > now
            bad |= self.available_until < now
            if max_maturity is not None:
                bad |= self.maturity > max_maturity
        if region is not None:
            bad |= ~self.region_mask(region)
        return bad


def _encode_lists(lists: list[list[str]]):
    names: dict[str, int] = {}
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indices = []
    for k, lst in enumerate(lists):
        codes = sorted({names.setdefault(x, len(names)) for x in lst})
        indices.extend(codes)
        indptr[k + 1] = len(indices)
    return list(names), indptr, np.asarray(indices, dtype=np.int32)
