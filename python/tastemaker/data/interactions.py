"""Event logs -> one weighted entry per (user, item) pair: :class:`Interactions`.

Pipeline (all vectorized, no per-event Python loop)::

    events --(value x event weight x recency decay)--> per-event strength
           --(aggregate duplicates: sum | mean | max | last)--> raw pair strength
           --(min-count filters, construction only)-->
           --(confidence transform, optional)--> ``values`` (what models train on)

Ids: external ids keep their kind.  Integer ids (and integral floats) are stored as
int64; strings as fixed-width unicode; a column mixing strings and numbers is converted
to strings (``str(id)``) so that ids can be saved without pickle.  Fresh ids are given
indices in sorted order; appended ids get new indices at the end.

Timestamps are float64 seconds since the Unix epoch.  A numeric timestamp column is taken
to be seconds already; datetime columns and date strings are converted (time-zone aware
values to UTC, naive values read as UTC).
"""

from __future__ import annotations

import datetime as _dt
import numbers
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import io as _io
from .._validation import check_float, check_ids, check_int
from .sessions import Sessions, context_array
from .weighting import _check_params, transform_values

__all__ = ["Interactions", "DEFAULT_EVENT_WEIGHTS"]

#: Default weights per event type, tuned for :func:`tastemaker.datasets.synthetic_streaming`
#: logs; used when ``event=`` is given without ``event_weights``.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "play": 1.0,
    "pause": 0.0,
    "complete": 3.0,
    "thumbs_up": 5.0,
    "thumbs_down": -6.0,
    "click": 0.2,
}

_AGGREGATES = ("sum", "mean", "max", "last")
_KIND = "interactions"


# --------------------------------------------------------------------------- helpers
def _ids_array(raw, name: str) -> np.ndarray:
    """External ids -> int64 or fixed-width unicode numpy array (never object)."""
    if isinstance(raw, (pd.Series, pd.Index)):
        if isinstance(raw.dtype, pd.CategoricalDtype):
            raw = raw.astype(raw.cat.categories.dtype)
        if raw.isna().any():
            pos = int(np.flatnonzero(raw.isna().to_numpy())[0])
            raise ValueError(f"{name}: contains NaN/missing ids (first at row {pos})")
        arr = raw.to_numpy()
    else:
        arr = np.asarray(raw)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of ids, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: unsigned ids above 2**63 - 1 do not fit int64; "
                         "pass them as strings")
    if kind in "iu":
        return arr.astype(np.int64)
    if kind == "b":
        raise ValueError(f"{name}: expected int or str ids, got booleans")
    if kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name}: contains NaN/missing ids (first at row {int(np.flatnonzero(bad)[0])})"
            )
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: float ids must be whole numbers; use int or str ids")
        if arr.size and np.abs(arr).max() >= 2.0**63:
            # astype(int64) would turn every one of them into the same id
            raise ValueError(f"{name}: float ids of 2**63 or more do not fit int64; pass "
                             f"them as int or str ids")
        return arr.astype(np.int64)
    if kind == "U":
        return arr
    if kind == "S":
        return arr.astype(str)
    if kind == "O":
        s = pd.Series(arr, copy=False)
        miss = s.isna().to_numpy()
        if miss.any():
            raise ValueError(
                f"{name}: contains NaN/missing ids (first at row {int(np.flatnonzero(miss)[0])})"
            )
        if len(arr) == 0:
            return np.array([], dtype=np.int64)
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "integer":
            return arr.astype(np.int64)
        if inferred in ("string", "unicode"):
            return arr.astype(str)
        # mixed kinds: documented choice, everything becomes a string
        return s.map(str).to_numpy().astype(str)
    raise ValueError(f"{name}: expected int or str ids, got dtype {arr.dtype}")


def id_positions(lookup: pd.Index, q: np.ndarray, which: str, name: str) -> np.ndarray:
    """Dense positions (int64) of the 1-D external ids ``q`` in an id map (``lookup``:
    a ``pd.Index`` of the sorted ``user_ids`` or ``item_ids``); ``ValueError`` naming
    ``name`` and the first unknown id.  Ids of the other kind (a number for a map of
    strings) are unknown; whole floats match integer ids.  Used by
    :meth:`Interactions.user_index` and by ``tastemaker.distributed``'s ingest."""
    kind = lookup.dtype.kind
    if kind in "OUT" and q.dtype.kind not in "UOT":  # pandas keeps str ids as object
        pos = np.full(q.size, -1)
    elif kind in "iu" and q.dtype.kind not in "iu":
        if q.dtype.kind == "f" and np.all(np.isfinite(q)) and np.all(q == np.round(q)):
            pos = lookup.get_indexer(q.astype(np.int64))
        else:
            pos = np.full(q.size, -1)
    else:
        pos = lookup.get_indexer(q)
    if np.any(pos < 0):
        bad = q[np.flatnonzero(pos < 0)[0]]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise ValueError(f"{name}: unknown {which} id {bad!r}")
    return pos.astype(np.int64)


def _to_seconds(raw, name: str) -> np.ndarray:
    """A timestamp column -> float64 seconds since the epoch."""
    s = raw if isinstance(raw, pd.Series) else pd.Series(np.asarray(raw))
    if pd.api.types.is_bool_dtype(s.dtype):
        raise ValueError(f"{name}: expected timestamps, got booleans")
    if pd.api.types.is_numeric_dtype(s.dtype):
        out = s.to_numpy(dtype=np.float64)
    else:
        if not pd.api.types.is_datetime64_any_dtype(s.dtype):
            if s.isna().any():
                pos = int(np.flatnonzero(s.isna().to_numpy())[0])
                raise ValueError(f"{name}: contains missing timestamps (first at row {pos})")
            try:
                s = pd.to_datetime(s, utc=True, format="mixed")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}: cannot parse timestamps ({exc})") from None
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        miss = s.isna().to_numpy()
        if miss.any():
            raise ValueError(
                f"{name}: contains missing timestamps (first at row {int(np.flatnonzero(miss)[0])})"
            )
        out = s.astype("datetime64[ns]").to_numpy().astype(np.int64) / 1e9
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(
            f"{name}: contains missing timestamps (first at row {int(np.flatnonzero(bad)[0])})"
        )
    return out


def _to_numeric(raw, name: str) -> np.ndarray:
    s = raw if isinstance(raw, pd.Series) else pd.Series(np.asarray(raw))
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s.dtype):
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna().to_numpy() & ~s.isna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}: expected numeric values, got {s.iloc[pos]!r} at row {pos}"
            )
        s = conv
    out = s.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: contains NaN or inf values (first at row {pos})")
    return out


def _half_life_seconds(half_life) -> float | None:
    if half_life is None:
        return None
    if isinstance(half_life, str):
        try:
            half_life = pd.Timedelta(half_life)
        except ValueError:
            raise ValueError(f"half_life: cannot parse {half_life!r} as a duration") from None
    if isinstance(half_life, (_dt.timedelta, np.timedelta64, pd.Timedelta)):
        half_life = pd.Timedelta(half_life).total_seconds()
    return check_float(half_life, "half_life", minimum=0.0, strict=True)


def _time_value(t, name: str = "t") -> float:
    if isinstance(t, (bool, np.bool_)):
        raise ValueError(f"{name}: expected a time, got bool")
    if isinstance(t, numbers.Real):
        return check_float(t, name)
    if isinstance(t, (str, _dt.datetime, _dt.date, np.datetime64, pd.Timestamp)):
        try:
            ts = pd.Timestamp(t)
        except (ValueError, TypeError):
            raise ValueError(f"{name}: cannot parse {t!r} as a time") from None
        if ts is pd.NaT:
            raise ValueError(f"{name}: got a missing time (NaT)")
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return float(ts.value) / 1e9
    raise ValueError(f"{name}: expected a datetime, pandas Timestamp, ISO string or number, "
                     f"got {type(t).__name__}")


def _merge_ids(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Append the ids of ``new`` not in ``old`` (sorted) to ``old``, keeping one dtype."""
    if old.dtype.kind != new.dtype.kind:
        # one side int, one side str: fall back to strings everywhere (documented)
        old = old.astype(str)
        new = new.astype(str)
    uniq = np.unique(new)
    fresh = uniq[pd.Index(old).get_indexer(uniq) < 0]
    return np.concatenate([old, fresh.astype(old.dtype) if old.dtype.kind != "U" else fresh])


def _pair_order(user: np.ndarray, item: np.ndarray, n_items: int, ts=None):
    key = user.astype(np.int64) * np.int64(max(n_items, 1)) + item.astype(np.int64)
    if ts is None:
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((ts, key))
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    return order, starts


# --------------------------------------------------------------------------- class
class Interactions:
    """Implicit or explicit feedback: one aggregated entry per (user, item) pair.

    Build with :meth:`from_frame`, :meth:`from_arrays`, :meth:`read_csv`,
    :meth:`read_parquet` or :meth:`from_path`; do not call the constructor directly.

    Attributes
    ----------
    shape : (n_users, n_items)
    user_ids, item_ids : ndarray, shape (n_users,) / (n_items,)
        External id of each dense index (int64 or fixed-width unicode).
    user_idx, item_idx : ndarray of int32, shape (nnz,)
        Entry coordinates, sorted by (user, item), one entry per pair.
    values : ndarray of float32, shape (nnz,)
        Aggregated, weighted, transformed strength (negative = dislike).
    raw_values : ndarray of float64, shape (nnz,)
        The same before the confidence transform.
    timestamps : ndarray of float64, shape (nnz,), or None
        Seconds since the epoch of each pair's latest event.
    counts : ndarray of int32, shape (nnz,)
        Number of events aggregated into each entry.
    sessions : :class:`~tastemaker.data.sessions.Sessions` or None
        The titles of each session and its context values, when built with ``session=``
        (and ``context=``); kept by :meth:`subset`, :meth:`append`, :meth:`save`.
    """

    def __init__(self, *, user_ids, item_ids, user_idx, item_idx, raw_values, counts,
                 timestamps, settings, sessions=None):
        self._user_ids = user_ids
        self._item_ids = item_ids
        self.user_idx = np.ascontiguousarray(user_idx, dtype=np.int32)
        self.item_idx = np.ascontiguousarray(item_idx, dtype=np.int32)
        self.raw_values = np.ascontiguousarray(raw_values, dtype=np.float64)
        self.counts = np.ascontiguousarray(counts, dtype=np.int32)
        self.timestamps = (None if timestamps is None
                           else np.ascontiguousarray(timestamps, dtype=np.float64))
        self._settings = settings
        self.sessions = sessions
        self._user_lookup = None
        self._item_lookup = None
        self._recompute_values()

    # ---- derived state
    def _recompute_values(self):
        tr = self._settings.get("transform")
        if tr is None:
            vals = self.raw_values
        else:
            vals = transform_values(self.user_idx, self.item_idx, self.raw_values, self.shape,
                                    tr["method"], **tr["params"])
        # every path into an Interactions ends here: inf/NaN never get stored (they only
        # failed later, at fit)
        if not np.all(np.isfinite(self.raw_values)):
            raise ValueError("values: the aggregated values overflow (inf or NaN); use "
                             "smaller values or aggregate='mean'/'max'")
        with np.errstate(over="ignore"):
            values = np.asarray(vals).astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise ValueError("values: aggregated values beyond float32's range (~3.4e38); "
                             "scale them down or use a transform")
        self.values = values

    @property
    def user_ids(self) -> np.ndarray:
        return self._user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self._item_ids

    @property
    def n_users(self) -> int:
        return int(self._user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self._item_ids.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def nnz(self) -> int:
        return int(self.user_idx.shape[0])

    @property
    def settings(self) -> dict:
        """How the values were built (column names, event weights, decay, transform)."""
        return dict(self._settings)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        ts = "with" if self.timestamps is not None else "without"
        sess = ("" if self.sessions is None else
                f", {self.sessions.n_sessions} sessions, context {list(self.sessions.context)}")
        return (f"Interactions(n_users={self.n_users}, n_items={self.n_items}, "
                f"nnz={self.nnz}, {ts} timestamps{sess})")

    # ---- construction
    @classmethod
    def from_frame(cls, df, user="user", item="item", value=None, event=None, timestamp=None,
                   event_weights=None, *, aggregate="sum", half_life=None,
                   reference_time=None, transform=None, min_user_count=1,
                   min_item_count=1, session=None, context=()) -> "Interactions":
        """Build from an event log DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per event.
        user, item : str
            Columns of external user / item ids (int or str).
        value : str, optional
            Numeric column (count, watch fraction, stars...).  Default: 1 per event.
        event : str, optional
            Column of event types; each event's value is multiplied by its type's weight
            from ``event_weights`` (default :data:`DEFAULT_EVENT_WEIGHTS`).  An event type
            with no weight is an error.
        timestamp : str, optional
            Column of times (numbers = epoch seconds, datetimes or date strings).
        event_weights : dict of str -> float, optional
        aggregate : {"sum", "mean", "max", "last"}
            How events of one pair combine (``last``: the latest by timestamp, else the
            last row).
        half_life : float seconds, str ("30D") or timedelta, optional
            Recency decay: each event is weighted ``0.5 ** ((reference_time - t) / half_life)``.
            Needs ``timestamp``.
        reference_time : time, optional
            The time of weight 1 for the decay (default: the latest event).  Kept for
            :meth:`append`, so appended events decay on the same scale.
        transform : str or dict, optional
            Confidence transform of :mod:`tastemaker.data.weighting`: a method name or
            ``{"method": "log1p", "alpha": 40}``.
        min_user_count, min_item_count : int
            Keep only users / items with at least this many distinct partners; applied
            repeatedly until both hold (a k-core).  Removed ids leave the id maps.
        session : str, optional
            Column of session ids (int or str; a session is keyed by user and id).  Kept
            as :attr:`sessions`: each session's titles, start and context.
        context : str or sequence of str
            Columns describing the circumstances of a session (``("device", "hour")``,
            or any columns of the frame); each session keeps the value of its first
            event.  Numeric columns are stored as float64, others as strings.  Needs
            ``session`` (for a log without sessions, pass a column of row numbers).

        Returns
        -------
        Interactions
        """
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
        cols = {"user": user, "item": item, "value": value, "event": event,
                "timestamp": timestamp}
        for arg, col in cols.items():
            if col is None:
                if arg in ("user", "item"):
                    raise ValueError(f"{arg}: a column name is required")
                continue
            if col not in df.columns:
                raise ValueError(f"{arg}: column {col!r} not in the frame (columns: "
                                 f"{list(df.columns)}; a file without a header line needs "
                                 f"header=False and names=[...])")
        if len(df) == 0:
            raise ValueError("df: the frame is empty (no events)")
        context = cls._check_context(context, session)
        for col in context:
            if col not in df.columns:
                raise ValueError(f"context: column {col!r} not in the frame (columns: "
                                 f"{list(df.columns)})")
        if session is not None and session not in df.columns:
            raise ValueError(f"session: column {session!r} not in the frame (columns: "
                             f"{list(df.columns)})")
        return cls._build(
            df[user], df[item],
            None if value is None else df[value],
            None if event is None else df[event],
            None if timestamp is None else df[timestamp],
            names={k: (f"column {v!r}" if v is not None else k) for k, v in cols.items()},
            columns={k: v for k, v in cols.items()},
            event_weights=event_weights, aggregate=aggregate, half_life=half_life,
            reference_time=reference_time, transform=transform,
            min_user_count=min_user_count, min_item_count=min_item_count,
            sessions=None if session is None else df[session],
            context={c: df[c] for c in context},
            session_names=(session, list(context)))

    @staticmethod
    def _check_context(context, session):
        """``context=`` as a list of column names (a str is one name)."""
        if context is None:
            context = ()
        if isinstance(context, str):
            context = (context,)
        try:
            context = list(context)
        except TypeError:
            raise ValueError(f"context: expected column names, got {context!r}") from None
        if not all(isinstance(c, str) for c in context):
            raise ValueError(f"context: expected column names (str), got {context!r}")
        if len(set(context)) != len(context):
            raise ValueError(f"context: repeated column names in {context!r}")
        if context and session is None:
            raise ValueError("context: needs session= (context values belong to sessions; "
                             "for a log without sessions pass a column of row numbers)")
        return context

    @classmethod
    def from_arrays(cls, users, items, values=None, events=None, timestamps=None,
                    event_weights=None, **kwargs) -> "Interactions":
        """Build from parallel 1-D arrays (one element per event).

        Same options as :meth:`from_frame` (keyword ``aggregate``, ``half_life``,
        ``reference_time``, ``transform``, ``min_user_count``, ``min_item_count``), plus
        ``sessions`` (an array of session ids) and ``context`` (a dict of name -> array).
        """
        sessions = kwargs.pop("sessions", None)
        context = kwargs.pop("context", None)
        if context is not None and not isinstance(context, dict):
            raise ValueError(f"context: expected a dict of name -> array, got "
                             f"{type(context).__name__}")
        names_ctx = cls._check_context(list(context or {}), sessions)
        arrays = {"users": users, "items": items, "values": values, "events": events,
                  "timestamps": timestamps, "sessions": sessions,
                  **{f"context[{k!r}]": (context or {})[k] for k in names_ctx}}
        n = None
        conv = {}
        for name, a in arrays.items():
            if a is None:
                conv[name] = None
                continue
            a = np.asarray(a) if not isinstance(a, pd.Series) else a
            if a.ndim != 1:
                raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
            if n is None:
                n = len(a)
            elif len(a) != n:
                raise ValueError(f"{name}: length {len(a)} differs from users' length {n}")
            conv[name] = pd.Series(a, copy=False) if not isinstance(a, pd.Series) else (
                a.reset_index(drop=True))
        if n == 0:
            raise ValueError("users: no events given (empty arrays)")
        cols = {"user": None, "item": None, "value": None, "event": None, "timestamp": None}
        return cls._build(conv["users"], conv["items"], conv["values"], conv["events"],
                          conv["timestamps"],
                          names={"user": "users", "item": "items", "value": "values",
                                 "event": "events", "timestamp": "timestamps",
                                 "session": "sessions"},
                          columns=cols, event_weights=event_weights,
                          sessions=conv["sessions"],
                          context={k: conv[f"context[{k!r}]"] for k in names_ctx},
                          session_names=(None, names_ctx), **kwargs)

    @classmethod
    def read_csv(cls, path, *, delimiter=",", header=True, names=None, id_type="str",
                 **kwargs) -> "Interactions":
        """Read an event log from a delimited text file via pyarrow.

        Parameters
        ----------
        path : str or Path
        delimiter : str, default ","
            One character, or a longer separator such as ``"::"`` (MovieLens ``.dat``).
        header : bool, default True
            Whether the first line holds the column names.
        names : list of str, optional
            Column names: required without a header (else columns are ``f0``, ``f1``...),
            and they replace the header's names with one.
        id_type : {"str", "auto"}, default "str"
            The user and item columns are read as strings, so ids such as ``"007"`` keep
            their leading zeros (as in Parquet); ``"auto"`` lets the reader infer
            numbers.
        **kwargs
            Those of :meth:`from_frame` (``user=``, ``item=``, ``value=``...).
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if id_type not in ("str", "auto"):
            raise ValueError(f"id_type: expected 'str' or 'auto', got {id_type!r}")
        if not isinstance(delimiter, str) or not delimiter or "\n" in delimiter:
            raise ValueError(f"delimiter: expected a non-empty separator, got {delimiter!r}")
        if names is not None:
            names = [str(n) for n in names]
            if len(set(names)) != len(names):
                raise ValueError(f"names: duplicate column names {names}")
        source = str(path)
        if len(delimiter) > 1:
            # pyarrow takes one character: map the separator to one that cannot occur
            try:
                with open(source, "rb") as fh:
                    text = fh.read().replace(delimiter.encode("utf-8"), b"\x1f")
            except OSError as exc:
                raise ValueError(f"path: cannot read {source!r} ({exc.strerror})") from None
            source, delimiter = pa.BufferReader(text), "\x1f"
        read = pacsv.ReadOptions(column_names=names,
                                 skip_rows=1 if (header and names is not None) else 0,
                                 autogenerate_column_names=not header and names is None)
        id_cols = [kwargs.get("user", "user"), kwargs.get("item", "item")]
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in id_cols if isinstance(c, str)}
            if id_type == "str" else None)
        try:
            table = pacsv.read_csv(source, read_options=read, convert_options=convert,
                                   parse_options=pacsv.ParseOptions(delimiter=delimiter))
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise ValueError(f"path: cannot read {str(path)!r} ({exc})") from None
        return cls._from_file_frame(table.to_pandas(), path, kwargs)

    @classmethod
    def _from_file_frame(cls, df, path, kwargs) -> "Interactions":
        """from_frame for a frame read from ``path``: its errors name the file, not ``df``."""
        try:
            return cls.from_frame(df, **kwargs)
        except ValueError as exc:
            msg = str(exc)
            if msg.startswith("df:"):
                raise ValueError(f"path: {str(path)!r}:{msg[3:]}") from None
            raise

    @classmethod
    def read_parquet(cls, path, **kwargs) -> "Interactions":
        """Read an event log from a Parquet file via pyarrow; ``kwargs`` as :meth:`from_frame`."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(str(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"path: cannot read Parquet {str(path)!r} ({exc})") from None
        return cls._from_file_frame(table.to_pandas(), path, kwargs)

    @classmethod
    def from_path(cls, path, **kwargs) -> "Interactions":
        """Read ``.csv`` / ``.tsv`` / ``.dat`` / ``.parquet`` / ``.pq`` files by extension.

        Text files take the options of :meth:`read_csv` (``delimiter``, ``header``,
        ``names``, ``id_type``); the delimiter defaults to ``","``, tab for ``.tsv`` and
        ``"::"`` for ``.dat`` (MovieLens 1M), which has no header line by default.
        """
        p = str(path).lower()
        if p.endswith((".parquet", ".pq")):
            for key in ("delimiter", "header", "names", "id_type"):
                if key in kwargs:
                    raise ValueError(f"{key}: only for text files (.csv, .tsv, .dat)")
            return cls.read_parquet(path, **kwargs)
        if p.endswith(".csv") or p.endswith(".csv.gz"):
            return cls.read_csv(path, **kwargs)
        if p.endswith(".tsv"):
            return cls.read_csv(path, **{"delimiter": "\t", **kwargs})
        if p.endswith(".dat"):
            return cls.read_csv(path, **{"delimiter": "::", "header": False, **kwargs})
        raise ValueError(f"path: unknown file type {str(path)!r}; expected .csv, .tsv, .dat "
                         f"or .parquet")

    # ---- the pipeline
    @staticmethod
    def _event_strength(n, values, events, seconds, names, event_weights, half_life_s,
                        reference):
        strength = (np.ones(n, dtype=np.float64) if values is None
                    else _to_numeric(values, names["value"]))
        if events is not None:
            weights = DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights
            if not isinstance(weights, dict) or not weights:
                raise ValueError("event_weights: expected a non-empty dict of event type -> "
                                 "weight")
            for k, w in weights.items():
                check_float(w, f"event_weights[{k!r}]")
            ev = events if isinstance(events, pd.Series) else pd.Series(events)
            if ev.isna().any():
                pos = int(np.flatnonzero(ev.isna().to_numpy())[0])
                raise ValueError(f"{names['event']}: missing event type at row {pos}")
            codes, uniq = pd.factorize(ev)
            known = np.array([u in weights for u in uniq], dtype=bool)
            if not known.all():
                missing = [u for u, k in zip(uniq, known) if not k]
                raise ValueError(
                    f"{names['event']}: event type(s) {missing!r} have no weight in "
                    f"event_weights (known: {sorted(map(str, weights))})")
            w = np.array([float(weights[u]) for u in uniq], dtype=np.float64)
            strength = strength * w[codes]
        if half_life_s is not None:
            strength = strength * np.exp2(-(reference - seconds) / half_life_s)
        return strength

    @classmethod
    def _build(cls, users, items, values, events, timestamps, *, names, columns,
               event_weights=None, aggregate="sum", half_life=None, reference_time=None,
               transform=None, min_user_count=1, min_item_count=1, sessions=None,
               context=None, session_names=(None, [])):
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate: expected one of {_AGGREGATES}, got {aggregate!r}")
        min_user_count = check_int(min_user_count, "min_user_count", minimum=1)
        min_item_count = check_int(min_item_count, "min_item_count", minimum=1)
        tr = cls._check_transform(transform)
        half_life_s = _half_life_seconds(half_life)
        if half_life_s is not None and timestamps is None:
            raise ValueError("half_life: recency decay needs a timestamp column")
        u_raw = _ids_array(users, names["user"])
        i_raw = _ids_array(items, names["item"])
        n = u_raw.shape[0]
        seconds = None if timestamps is None else _to_seconds(timestamps, names["timestamp"])
        reference = None
        if half_life_s is not None:
            reference = (float(seconds.max()) if reference_time is None
                         else _time_value(reference_time, "reference_time"))
        with np.errstate(over="ignore", invalid="ignore"):
            strength = cls._event_strength(n, values, events, seconds, names, event_weights,
                                           half_life_s, reference)
        bad = ~np.isfinite(strength)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            what = ("half_life" if half_life_s is not None else names["value"]
                    if values is not None else "event_weights")
            raise ValueError(f"{what}: the weighted value of event {pos} overflows "
                             f"({strength[pos]}); use a longer half_life or smaller values")
        user_ids, u_codes = np.unique(u_raw, return_inverse=True)
        item_ids, i_codes = np.unique(i_raw, return_inverse=True)
        settings = {
            "columns": columns,
            "event_weights": (None if events is None else
                              {str(k): float(v) for k, v in
                               (DEFAULT_EVENT_WEIGHTS if event_weights is None
                                else event_weights).items()}),
            "aggregate": aggregate,
            "half_life": half_life_s,
            "reference_time": reference,
            "transform": tr,
            "has_values": values is not None,
        }
        sess = None
        if sessions is not None:
            settings["session"] = {"column": session_names[0], "context": session_names[1]}
            sess = Sessions.build(
                u_codes.ravel(), _ids_array(sessions, names.get("session", "session")),
                i_codes.ravel(), strength, seconds,
                {k: context_array(v, f"column {k!r}") for k, v in (context or {}).items()},
                len(item_ids))
        uu, ii, raw, cnt, ts = cls._aggregate(u_codes.ravel(), i_codes.ravel(), strength,
                                              np.ones(n, dtype=np.int64), seconds,
                                              len(item_ids), aggregate)
        if min_user_count > 1 or min_item_count > 1:
            old_u, old_i = user_ids, item_ids
            uu, ii, raw, cnt, ts, user_ids, item_ids = cls._kcore(
                uu, ii, raw, cnt, ts, user_ids, item_ids, min_user_count, min_item_count)
            if uu.size == 0:
                raise ValueError(
                    f"min_user_count/min_item_count: no interactions survive the filter "
                    f"(min_user_count={min_user_count}, min_item_count={min_item_count})")
            if sess is not None and (len(user_ids) < len(old_u) or len(item_ids) < len(old_i)):
                sess = sess.take(user_map=pd.Index(user_ids).get_indexer(old_u),
                                 item_map=pd.Index(item_ids).get_indexer(old_i))
        return cls(user_ids=user_ids, item_ids=item_ids, user_idx=uu, item_idx=ii,
                   raw_values=raw, counts=cnt, timestamps=ts, settings=settings,
                   sessions=sess)

    @staticmethod
    def _check_transform(transform):
        if transform is None:
            return None
        if isinstance(transform, str):
            method, params = transform, {}
        elif isinstance(transform, dict) and "method" in transform:
            params = dict(transform)
            method = params.pop("method")
        else:
            raise ValueError("transform: expected a method name or a dict with 'method', got "
                             f"{transform!r}")
        return {"method": method, "params": _check_params(method, params)}

    @staticmethod
    def _aggregate(u, i, strength, counts, seconds, n_items, aggregate, weights_for_mean=None):
        """Combine rows with equal (u, i); returns arrays sorted by (u, i)."""
        order, starts = _pair_order(u, i, n_items, seconds)
        u, i, s, c = u[order], i[order], strength[order], counts[order]
        t = None if seconds is None else seconds[order]
        cnt = np.add.reduceat(c, starts) if c.size else c
        ends = np.concatenate((starts[1:], [len(u)])) - 1
        if aggregate == "sum":
            with np.errstate(over="ignore"):  # an overflow is reported by the constructor
                raw = np.add.reduceat(s, starts)
        elif aggregate == "mean":
            # ``counts`` weights rows that are themselves means (append)
            with np.errstate(over="ignore", invalid="ignore"):
                raw = np.add.reduceat(s * c, starts) / cnt
        elif aggregate == "max":
            raw = np.maximum.reduceat(s, starts)
        else:  # last: rows are ordered by time inside each pair (stable otherwise)
            raw = s[ends]
        ts = None if t is None else t[ends]  # max, since sorted by time within the pair
        return u[starts], i[starts], raw, cnt, ts

    @staticmethod
    def _kcore(uu, ii, raw, cnt, ts, user_ids, item_ids, min_u, min_i):
        keep = np.ones(uu.size, dtype=bool)
        while True:
            ucount = np.bincount(uu[keep], minlength=len(user_ids))
            icount = np.bincount(ii[keep], minlength=len(item_ids))
            drop = keep & ((ucount[uu] < min_u) | (icount[ii] < min_i))
            if not drop.any():
                break
            keep &= ~drop
        uu, ii, raw, cnt = uu[keep], ii[keep], raw[keep], cnt[keep]
        ts = None if ts is None else ts[keep]
        used_u = np.unique(uu)
        used_i = np.unique(ii)
        umap = np.full(len(user_ids), -1, dtype=np.int64)
        umap[used_u] = np.arange(len(used_u))
        imap = np.full(len(item_ids), -1, dtype=np.int64)
        imap[used_i] = np.arange(len(used_i))
        # relabelling is monotone, so (user, item) order is preserved
        return umap[uu], imap[ii], raw, cnt, ts, user_ids[used_u], item_ids[used_i]

    # ---- queries
    def _lookup(self, which: str):
        attr = "_user_lookup" if which == "user" else "_item_lookup"
        if getattr(self, attr) is None:
            ids = self._user_ids if which == "user" else self._item_ids
            setattr(self, attr, pd.Index(ids))
        return getattr(self, attr)

    def _index(self, ids, which: str, name: str):
        scalar = np.ndim(ids) == 0
        q = np.atleast_1d(np.asarray(ids))
        if q.ndim != 1:
            raise ValueError(f"{name}: expected an id or a 1-D sequence of ids")
        if q.size == 0:
            return np.array([], dtype=np.int64)
        pos = id_positions(self._lookup(which), q, which, name)
        return int(pos[0]) if scalar else pos

    def user_index(self, ids):
        """External user id(s) -> dense index (int or int64 array); ValueError if unknown."""
        return self._index(ids, "user", "ids")

    def item_index(self, ids):
        """External item id(s) -> dense index (int or int64 array); ValueError if unknown."""
        return self._index(ids, "item", "ids")

    def user_id(self, index):
        """Dense user index (int or array) -> external id(s)."""
        arr, scalar = check_ids(index, "index", self.n_users)
        out = self._user_ids[arr]
        return out[0].item() if scalar else out

    def item_id(self, index):
        """Dense item index (int or array) -> external id(s)."""
        arr, scalar = check_ids(index, "index", self.n_items)
        out = self._item_ids[arr]
        return out[0].item() if scalar else out

    def to_csr(self) -> sp.csr_matrix:
        """Users x items float32 CSR of :attr:`values`: sorted indices, no explicit zeros."""
        keep = self.values != 0
        rows = self.user_idx[keep]
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_users), out=indptr[1:])
        m = sp.csr_matrix((self.values[keep], self.item_idx[keep].copy(), indptr),
                          shape=self.shape)
        m.has_sorted_indices = True
        return m

    def to_frame(self) -> pd.DataFrame:
        """One row per entry: user, item (external ids), value, count[, timestamp]."""
        d = {"user": self._user_ids[self.user_idx], "item": self._item_ids[self.item_idx],
             "value": self.values, "count": self.counts}
        if self.timestamps is not None:
            d["timestamp"] = self.timestamps
        return pd.DataFrame(d)

    def time_value(self, t) -> float:
        """A time (datetime, pandas Timestamp, ISO string or epoch seconds) -> seconds."""
        return _time_value(t)

    def _replace(self, **kw) -> "Interactions":
        state = dict(user_ids=self._user_ids, item_ids=self._item_ids, user_idx=self.user_idx,
                     item_idx=self.item_idx, raw_values=self.raw_values, counts=self.counts,
                     timestamps=self.timestamps, settings=dict(self._settings),
                     sessions=self.sessions)
        state.update(kw)
        return Interactions(**state)

    def subset(self, mask) -> "Interactions":
        """Entries where the boolean ``mask`` (shape (nnz,)) is true; same ids and shape.

        The confidence transform (if any) is re-applied to the kept entries, so statistics
        such as BM25's idf come from the subset only (no leakage from held-out entries).
        """
        m = np.asarray(mask)
        if m.dtype != bool or m.shape != (self.nnz,):
            raise ValueError(f"mask: expected a boolean array of shape ({self.nnz},), got "
                             f"dtype {m.dtype} shape {m.shape}")
        sess = (None if self.sessions is None else
                self.sessions.restrict_to_pairs(self.user_idx[m], self.item_idx[m],
                                                self.n_items))
        return self._replace(user_idx=self.user_idx[m], item_idx=self.item_idx[m],
                             raw_values=self.raw_values[m], counts=self.counts[m],
                             timestamps=None if self.timestamps is None else self.timestamps[m],
                             sessions=sess)

    def transform(self, method, **params) -> "Interactions":
        """A copy whose :attr:`values` are ``raw_values`` under another transform.

        ``method=None`` removes the transform.  See :mod:`tastemaker.data.weighting`.
        """
        settings = dict(self._settings)
        settings["transform"] = (None if method is None
                                 else self._check_transform({"method": method, **params}))
        return self._replace(settings=settings)

    # ---- append
    def append(self, events, **columns) -> "Interactions":
        """Return new Interactions with more events; existing indices stay stable.

        Parameters
        ----------
        events : DataFrame or Interactions
            A DataFrame is read with this object's column names and event weights,
            decay (same ``reference_time``) and aggregation; ``columns`` may override the
            column names (``user=``, ``item=``, ``value=``, ``event=``, ``timestamp=``),
            which is required when this object was built from arrays.
        **columns : str

        Returns
        -------
        Interactions
            New users / items get indices after the existing ones.  Pairs present in both
            are combined with the aggregation rule; the transform is re-applied to all.
            Minimum-count filters are not re-applied.
        """
        st = self._settings
        if isinstance(events, Interactions):
            other = events
        else:
            if not isinstance(events, pd.DataFrame):
                raise ValueError(f"events: expected a DataFrame or Interactions, got "
                                 f"{type(events).__name__}")
            cols = dict(st["columns"])
            unknown = set(columns) - set(cols)
            if unknown:
                raise ValueError(f"columns: unknown keyword(s) {sorted(unknown)}")
            cols.update(columns)
            if cols["user"] is None or cols["item"] is None:
                raise ValueError("user/item: pass the column names (this Interactions was "
                                 "built from arrays)")
            if st["has_values"] and cols["value"] is None:
                raise ValueError("value: this Interactions has a value column; name it")
            if st["event_weights"] is not None and cols["event"] is None:
                raise ValueError("event: this Interactions has event types; name the column")
            if self.timestamps is not None and cols["timestamp"] is None:
                raise ValueError("timestamp: this Interactions has timestamps; name the column")
            hl = st["half_life"]
            sess_cols = st.get("session") or {}
            if self.sessions is not None and sess_cols.get("column") is None:
                raise ValueError("events: this Interactions has sessions but was built from "
                                 "arrays; append an Interactions instead")
            other = Interactions.from_frame(
                events, user=cols["user"], item=cols["item"], value=cols["value"],
                event=cols["event"] if st["event_weights"] is not None else None,
                timestamp=cols["timestamp"] if self.timestamps is not None else None,
                event_weights=st["event_weights"], aggregate=st["aggregate"],
                half_life=hl, reference_time=st["reference_time"] if hl else None,
                session=sess_cols.get("column") if self.sessions is not None else None,
                context=sess_cols.get("context", ()) if self.sessions is not None else ())
        if (self.timestamps is None) != (other.timestamps is None):
            raise ValueError("events: both sides must have timestamps, or neither")
        if (self.sessions is None) != (other.sessions is None):
            raise ValueError("events: both sides must have sessions, or neither")
        user_ids = _merge_ids(self._user_ids, other._user_ids)
        item_ids = _merge_ids(self._item_ids, other._item_ids)
        ou = pd.Index(user_ids).get_indexer(other._user_ids.astype(user_ids.dtype))[other.user_idx]
        oi = pd.Index(item_ids).get_indexer(other._item_ids.astype(item_ids.dtype))[other.item_idx]
        u = np.concatenate([self.user_idx.astype(np.int64), ou])
        i = np.concatenate([self.item_idx.astype(np.int64), oi])
        raw = np.concatenate([self.raw_values, other.raw_values])
        cnt = np.concatenate([self.counts.astype(np.int64), other.counts.astype(np.int64)])
        ts = (None if self.timestamps is None
              else np.concatenate([self.timestamps, other.timestamps]))
        uu, ii, raw, cnt, ts = self._aggregate(u, i, raw, cnt, ts, len(item_ids),
                                               st["aggregate"])
        sess = None
        if self.sessions is not None:
            sess = self.sessions.concat(
                other.sessions,
                pd.Index(user_ids).get_indexer(other._user_ids.astype(user_ids.dtype)),
                pd.Index(item_ids).get_indexer(other._item_ids.astype(item_ids.dtype)),
                len(item_ids))
        return self._replace(user_ids=user_ids, item_ids=item_ids, user_idx=uu, item_idx=ii,
                             raw_values=raw, counts=cnt, timestamps=ts, sessions=sess)

    # ---- persistence
    def save(self, path) -> None:
        """Write to ``path`` (``.npz`` + JSON header, no pickle); read with :meth:`load`."""
        arrays = {"user_ids": self._user_ids, "item_ids": self._item_ids,
                  "user_idx": self.user_idx, "item_idx": self.item_idx,
                  "raw_values": self.raw_values, "counts": self.counts}
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        header = {"settings": self._settings}
        if self.sessions is not None:
            header["sessions"], more = self.sessions.to_arrays()
            arrays.update(more)
        _io.save_archive(path, _KIND, header, arrays)

    @classmethod
    def load(cls, path) -> "Interactions":
        """Read a file written by :meth:`save`."""
        header, arrays = _io.load_archive(path, kind=_KIND)
        where = _io._describe(path)
        try:
            cls._check_loaded(arrays)
            obj = cls(user_ids=arrays["user_ids"], item_ids=arrays["item_ids"],
                      user_idx=arrays["user_idx"], item_idx=arrays["item_idx"],
                      raw_values=arrays["raw_values"], counts=arrays["counts"],
                      timestamps=arrays.get("timestamps"), settings=header["settings"])
            obj.sessions = Sessions.from_arrays(header.get("sessions"), arrays, obj.n_users,
                                                obj.n_items)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                OverflowError) as exc:
            raise ValueError(f"path: {where} is a damaged interactions file ({exc})") from None
        return obj

    @staticmethod
    def _check_loaded(arrays) -> None:
        """Everything a file could get wrong, checked before any array is used."""
        for key in ("user_ids", "item_ids"):
            ids = arrays[key]
            if ids.ndim != 1 or ids.dtype.kind not in "iuU":
                raise ValueError(f"{key}: expected a 1-D int or str array")
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        if max(n_users, n_items) > np.iinfo(np.int32).max:
            raise ValueError("too many users or items")
        n = None
        for key in ("user_idx", "item_idx", "raw_values", "counts", "timestamps"):
            a = arrays.get(key)
            if a is None and key == "timestamps":
                continue
            if a.ndim != 1 or (n is not None and len(a) != n):
                raise ValueError(f"{key}: inconsistent length")
            n = len(a)
            if key in ("user_idx", "item_idx", "counts") and a.dtype.kind not in "iu":
                raise ValueError(f"{key}: expected integers")
            if key in ("raw_values", "timestamps") and (
                    a.dtype.kind not in "fiu" or not np.all(np.isfinite(a))):
                raise ValueError(f"{key}: contains NaN or inf values")
        for key, size in (("user_idx", n_users), ("item_idx", n_items)):
            a = arrays[key]
            if a.size and (a.min() < 0 or a.max() >= size):
                raise ValueError(f"{key}: index out of range [0, {size})")
        if arrays["counts"].size and arrays["counts"].min() < 1:
            raise ValueError("counts: expected counts >= 1")

    def __eq__(self, other: Any) -> bool:  # structural equality, for tests and users
        if not isinstance(other, Interactions):
            return NotImplemented
        same_ts = ((self.timestamps is None and other.timestamps is None) or
                   (self.timestamps is not None and other.timestamps is not None
                    and np.array_equal(self.timestamps, other.timestamps)))
        return (np.array_equal(self._user_ids, other._user_ids)
                and np.array_equal(self._item_ids, other._item_ids)
                and np.array_equal(self.user_idx, other.user_idx)
                and np.array_equal(self.item_idx, other.item_idx)
                and np.array_equal(self.values, other.values)
                and np.array_equal(self.counts, other.counts) and same_ts
                and ((self.sessions is None and other.sessions is None)
                     or (self.sessions is not None and self.sessions == other.sessions)))

    __hash__ = None  # mutable arrays inside
