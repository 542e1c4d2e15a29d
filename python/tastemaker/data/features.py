"""Catalog metadata -> a sparse item x feature matrix with named columns: :class:`ItemFeatures`.

A catalog table (one row per title: genres, runtime, language, cast, release year,
tags, descriptions, precomputed cover or text embeddings) becomes one float32 CSR
matrix whose row ``k`` describes external item ``item_ids[k]`` and whose column ``j`` is
named ``names[j]`` (``"genres=Drama"``, ``"year=[1990, 1995)"``, ``"tags~guitar"``,
``"cover:3"``...).  The content model and the hybrid ALS train on it.

The encoding (vocabularies, bucket edges, means, idf) is kept in :attr:`spec`, a plain
JSON-able dict, so :meth:`ItemFeatures.encode` puts new titles into the same columns
and :meth:`ItemFeatures.save` / :meth:`ItemFeatures.load` round-trip without pickle.

Feature kinds (each column of ``df`` is named in exactly one of them):

- ``categorical``: one-hot, ``"col=value"``; missing values set no column.
- ``multi_valued``: ``{col: separator}``, one 1.0 per listed value (``"genres=Drama"``).
- ``numeric``: a sequence (quantile buckets, one-hot) or ``{col: "bucket" | "standardize"
  | n_buckets}``.  Buckets are quantiles of the described items (``"year=[1990, 1995)"``;
  the outer buckets are open-ended); standardised columns hold ``(x - mean) / std``.
  Missing values set no bucket / standardise to 0 (the mean).
- ``text``: TF-IDF of lower-cased word tokens (two or more letters or digits), smooth
  idf ``ln((1 + n) / (1 + df)) + 1``, each row's block L2-normalised (``"tags~word"``).
- ``embeddings``: precomputed dense vectors keyed by item (a DataFrame indexed by item
  id, or a mapping item id -> vector); items without one get zeros (``"embedding:0"``...).
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import io as _io

__all__ = ["ItemFeatures"]

_KIND = "item_features"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_NUMERIC_MODES = ("bucket", "standardize")
_DEFAULT_BUCKETS = 10


def _external_ids(values, name: str) -> np.ndarray:
    """External ids as int64 (integers / integral floats) or unicode; never object."""
    arr = pd.Series(values).to_numpy() if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of ids, got shape {arr.shape}")
    if pd.isna(pd.Series(arr)).any():
        raise ValueError(f"{name}: contains missing ids")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(f"{name}: float ids must be integral")
    if arr.dtype.kind == "b":
        raise ValueError(f"{name}: expected integer or string ids, got bool")
    if arr.dtype.kind == "U":
        return arr
    items = arr.tolist()
    if all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in items):
        return np.asarray(items, dtype=np.int64)
    return np.asarray([str(x) for x in items], dtype=str)


def _strings(col: pd.Series) -> list:
    """Values as stripped strings, missing as None."""
    missing = col.isna().to_numpy()
    return [None if m else str(v).strip() for v, m in zip(col.tolist(), missing)]


def _csr(rows, cols, vals, n_rows: int, n_cols: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.asarray(vals, dtype=np.float32),
                       (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                      shape=(n_rows, n_cols), dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    m.eliminate_zeros()
    return m


def _fmt(x: float) -> str:
    return f"{x:g}"


class ItemFeatures:
    """A sparse float32 item x feature matrix with named columns.

    Build one with :meth:`from_frame` (or :meth:`from_interactions`, or
    ``tastemaker.datasets.item_features(items)`` for a loader's table).

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of float32, shape (n_items, n_features)
    names : ndarray of str, shape (n_features,)
        ``"<column><sep><value>"``: ``=`` for categorical / multi-valued / bucket,
        ``~`` for text tokens, ``:`` for standardised numbers (``"runtime:z"``) and
        embedding dimensions.
    groups : ndarray of str, shape (n_features,)
        The source column of each feature (``"genres"``; ``"embedding"`` for
        embeddings): what per-column weights (:meth:`weighted`) refer to.
    item_ids : ndarray, shape (n_items,)
        External id of each row (int64 or str).
    spec : dict
        The encoding (JSON-able): lets :meth:`encode` describe new items in the same
        columns.
    """

    def __init__(self, matrix, names, item_ids, groups=None, spec=None):
        from .._validation import check_csr

        m = check_csr(sp.csr_matrix(matrix) if not sp.issparse(matrix) else matrix,
                      "matrix", allow_empty=True)
        names = np.asarray(names, dtype=str).reshape(-1)
        if names.shape[0] != m.shape[1]:
            raise ValueError(f"names: {names.shape[0]} names for {m.shape[1]} feature columns")
        if len(set(names.tolist())) != names.size:
            raise ValueError("names: feature names must be unique")
        ids = _external_ids(np.asarray(item_ids), "item_ids")
        if ids.shape[0] != m.shape[0]:
            raise ValueError(f"item_ids: {ids.shape[0]} ids for {m.shape[0]} matrix rows")
        if len(pd.unique(ids)) != ids.size:
            raise ValueError("item_ids: duplicate item ids")
        if groups is None:
            groups = [re.split(r"[=~:]", n, maxsplit=1)[0] for n in names.tolist()]
        groups = np.asarray(groups, dtype=str).reshape(-1)
        if groups.shape != names.shape:
            raise ValueError(f"groups: expected {names.shape[0]} entries, got {groups.shape[0]}")
        self.matrix = m
        self.names = names
        self.groups = groups
        self.item_ids = ids
        self.spec = dict(spec) if spec is not None else {"columns": []}

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_items(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_features(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        cols = sorted(set(self.groups.tolist()))
        return (f"ItemFeatures(n_items={self.n_items}, n_features={self.n_features}, "
                f"nnz={self.matrix.nnz}, columns={cols})")

    def __eq__(self, other) -> bool:
        if not isinstance(other, ItemFeatures):
            return NotImplemented
        return (self.shape == other.shape and np.array_equal(self.names, other.names)
                and np.array_equal(self.groups, other.groups)
                and np.array_equal(self.item_ids, other.item_ids)
                and (self.matrix != other.matrix).nnz == 0)

    __hash__ = None

    def to_frame(self) -> pd.DataFrame:
        """Dense DataFrame (items x named features); for inspection of small catalogs."""
        return pd.DataFrame(self.matrix.toarray(), index=pd.Index(self.item_ids, name="item"),
                            columns=self.names)

    def item_index(self, ids):
        """External item id(s) -> row(s); ValueError naming the first unknown id."""
        scalar = np.ndim(ids) == 0
        q = np.atleast_1d(np.asarray(ids))
        pos = pd.Index(self.item_ids).get_indexer(q) if q.size else np.array([], np.int64)
        if np.any(pos < 0):
            raise ValueError(f"ids: unknown item id {q[np.flatnonzero(pos < 0)[0]].item()!r}")
        return int(pos[0]) if scalar else pos.astype(np.int64)

    def weighted(self, weights: Mapping | None) -> sp.csr_matrix:
        """The matrix with each source column's features multiplied by ``weights[col]``.

        Parameters
        ----------
        weights : mapping of str to float, or None
            Keys are source column names (:attr:`groups`); unnamed columns keep 1.

        Returns
        -------
        scipy.sparse.csr_matrix of float32, shape (n_items, n_features)
        """
        if not weights:
            return self.matrix
        if not isinstance(weights, Mapping):
            raise ValueError(f"weights: expected a mapping column -> weight, got "
                             f"{type(weights).__name__}")
        known = set(self.groups.tolist())
        scale = np.ones(self.n_features, dtype=np.float32)
        for key, w in weights.items():
            if key not in known:
                raise ValueError(f"weights: {key!r} is not a feature column (have "
                                 f"{sorted(known)})")
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w) \
                    or w < 0:
                raise ValueError(f"weights[{key!r}]: expected a finite number >= 0, got {w!r}")
            scale[self.groups == key] = w
        out = sp.csr_matrix(self.matrix @ sp.diags(scale, format="csr"), dtype=np.float32)
        out.sort_indices()
        return out

    def reindex(self, item_ids) -> "ItemFeatures":
        """Rows in the order of ``item_ids``; unknown ids get all-zero rows."""
        ids = _external_ids(np.asarray(item_ids), "item_ids")
        pos = pd.Index(self.item_ids).get_indexer(ids) if ids.size else np.array([], np.int64)
        m = _take_rows(self.matrix, pos)
        return ItemFeatures(m, self.names, ids, self.groups, self.spec)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_frame(cls, df, item="item", categorical=(), multi_valued=None, numeric=(), text=(),
                   embeddings=None, item_ids=None, *, min_df=1) -> "ItemFeatures":
        """Encode a catalog table.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per item.  The item id is the column ``item``, or the index when it
            is named ``item`` (as in the loaders' items tables) and no such column exists.
        item : str, default "item"
        categorical : sequence of str
            One-hot columns (``"language"``).
        multi_valued : mapping of str to str
            Column -> separator of a list of values (``{"genres": "|", "cast": ", "}``).
        numeric : sequence of str, or mapping of str to {"bucket", "standardize", int}
            Bucketed into 10 quantile buckets (one-hot), or into the given number of
            buckets, or standardised.
        text : sequence of str
            TF-IDF columns (tags, descriptions).
        embeddings : pandas.DataFrame indexed by item id, or mapping item id -> vector
            Precomputed dense vectors (covers, text); all of one length.
        item_ids : array-like, optional
            Row order: row ``k`` describes ``item_ids[k]``; ids missing from ``df`` get
            all-zero rows and rows of ``df`` whose id is not listed are dropped.  Default:
            the ids of ``df`` in its order.
        min_df : int, default 1
            Text tokens in fewer items than this are dropped.

        Returns
        -------
        ItemFeatures
        """
        spec = _make_spec(df, item, categorical, multi_valued, numeric, text, embeddings,
                          item_ids, min_df)
        return _encode(spec, df, item, embeddings, item_ids)

    @classmethod
    def from_interactions(cls, interactions, df, **kwargs) -> "ItemFeatures":
        """:meth:`from_frame` with the rows in the order of ``interactions.item_ids``.

        Row ``k`` then describes item index ``k`` of the :class:`~tastemaker.Interactions`
        (the columns of ``interactions.to_csr()``), which is what the models need.
        """
        if not hasattr(interactions, "item_ids"):
            raise ValueError(f"interactions: expected a tastemaker.Interactions, got "
                             f"{type(interactions).__name__}")
        if "item_ids" in kwargs:
            raise ValueError("item_ids: taken from interactions; do not pass it too")
        return cls.from_frame(df, item_ids=interactions.item_ids, **kwargs)

    def encode(self, df, item_ids=None, *, item="item", embeddings=None) -> "ItemFeatures":
        """Describe (new) items in the same columns as this object: the vocabularies,
        bucket edges, means and idf of :attr:`spec` are reused, values never seen before
        set no column.  ``embeddings`` must be given again when the spec has them."""
        return _encode(self.spec, df, item, embeddings, item_ids, names=self.names,
                       groups=self.groups)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save to an ``.npz`` with a JSON header (no pickle); :meth:`load` reads it."""
        m = self.matrix
        _io.save_archive(path, _KIND, {"spec": self.spec}, {
            "indptr": m.indptr.astype(np.int64), "indices": m.indices.astype(np.int32),
            "data": m.data.astype(np.float32), "shape": np.asarray(m.shape, dtype=np.int64),
            "names": self.names, "groups": self.groups, "item_ids": self.item_ids})

    @classmethod
    def load(cls, path) -> "ItemFeatures":
        """Read a file written by :meth:`save`; ValueError for a damaged or foreign file."""
        header, a = _io.load_archive(path, kind=_KIND)
        try:
            shape = tuple(int(x) for x in a["shape"])
            m = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
            spec = header.get("spec", {"columns": []})
            if not isinstance(spec, dict):
                raise ValueError("spec is not a mapping")
            return cls(m, a["names"], a["item_ids"], a["groups"], spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"path: {os.fspath(path)!r} holds damaged item features "
                             f"({exc})") from None

    def __getstate__(self):
        return {"matrix": self.matrix, "names": self.names, "groups": self.groups,
                "item_ids": self.item_ids, "spec": json.loads(json.dumps(self.spec))}

    def __setstate__(self, state):
        self.__dict__.update(state)


def _take_rows(m: sp.csr_matrix, pos: np.ndarray) -> sp.csr_matrix:
    """Rows ``pos`` of ``m``; ``-1`` gives an all-zero row."""
    pos = np.asarray(pos, dtype=np.int64)
    padded = sp.vstack([m, sp.csr_matrix((1, m.shape[1]), dtype=np.float32)], format="csr")
    out = padded[np.where(pos < 0, m.shape[0], pos)]
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    return out


# --------------------------------------------------------------------------- spec
def _check_columns(df, names, arg: str):
    if isinstance(names, str):
        raise ValueError(f"{arg}: expected a sequence of column names, got the string {names!r}")
    try:
        names = list(names)
    except TypeError:
        raise ValueError(f"{arg}: expected a sequence of column names, got "
                         f"{type(names).__name__}") from None
    for c in names:
        if c not in df.columns:
            raise ValueError(f"{arg}: no column {c!r} in df (columns: {list(df.columns)})")
    return names


def _item_column(df, item: str) -> pd.Series:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(item, str):
        raise ValueError(f"item: expected a column name (str), got {type(item).__name__}")
    if item in df.columns:
        return df[item]
    if df.index.name == item:
        return pd.Series(df.index.to_numpy(), index=df.index)
    raise ValueError(f"item: no column {item!r} in df and the index is not named {item!r}")


def _numeric_values(df, c: str) -> np.ndarray:
    col = df[c]
    if pd.api.types.is_datetime64_any_dtype(col):
        raise ValueError(f"numeric: column {c!r} holds dates; pass a number such as the year")
    vals = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
    bad = col.notna().to_numpy() & ~np.isfinite(vals)
    if bad.any():
        raise ValueError(f"numeric: column {c!r} has a non-numeric value "
                         f"{col.tolist()[int(np.flatnonzero(bad)[0])]!r}")
    return vals


def _make_spec(df, item, categorical, multi_valued, numeric, text, embeddings, item_ids, min_df):
    from .._validation import check_int

    ids_col = _item_column(df, item)
    min_df = check_int(min_df, "min_df", minimum=1)
    categorical = _check_columns(df, categorical, "categorical")
    text = _check_columns(df, text, "text")
    multi_valued = {} if multi_valued is None else multi_valued
    if not isinstance(multi_valued, Mapping):
        raise ValueError(f"multi_valued: expected a mapping column -> separator, got "
                         f"{type(multi_valued).__name__}")
    _check_columns(df, list(multi_valued), "multi_valued")
    for c, s in multi_valued.items():
        if not isinstance(s, str) or not s:
            raise ValueError(f"multi_valued[{c!r}]: expected a non-empty separator string, "
                             f"got {s!r}")
    if isinstance(numeric, Mapping):
        modes = dict(numeric)
    else:
        modes = {c: "bucket" for c in _check_columns(df, numeric, "numeric")}
    _check_columns(df, list(modes), "numeric")
    used = [*categorical, *multi_valued, *modes, *text]
    dup = sorted({c for c in used if used.count(c) > 1})
    if dup:
        raise ValueError(f"df: column(s) {dup} named in more than one feature kind")
    if item in used:
        raise ValueError(f"item: the id column {item!r} cannot also be a feature")

    rows = _selected_rows(df, ids_col, item_ids)
    sub = df.iloc[rows]
    cols = []
    for c in categorical:
        vocab = sorted({v for v in _strings(sub[c]) if v})
        cols.append({"name": c, "kind": "categorical", "vocab": vocab})
    for c, sep in multi_valued.items():
        vocab = sorted({v for vs in _split(sub[c], sep) for v in vs})
        cols.append({"name": c, "kind": "multi_valued", "sep": sep, "vocab": vocab})
    for c, mode in modes.items():
        vals = _numeric_values(sub, c)
        finite = vals[np.isfinite(vals)]
        if isinstance(mode, numbers.Integral) and not isinstance(mode, bool):
            n_buckets = check_int(mode, f"numeric[{c!r}]", minimum=1, maximum=1000)
            mode = "bucket"
        elif mode == "bucket":
            n_buckets = _DEFAULT_BUCKETS
        elif mode in ("standardize", "standardise"):
            mode = "standardize"
        else:
            raise ValueError(f"numeric[{c!r}]: expected 'bucket', 'standardize' or a number of "
                             f"buckets, got {mode!r}")
        if mode == "bucket":
            if finite.size:
                edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_buckets + 1)[1:-1]))
            else:
                edges = np.array([])
            cols.append({"name": c, "kind": "bucket", "edges": [float(e) for e in edges]})
        else:
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 0.0
            cols.append({"name": c, "kind": "standardize", "mean": mean,
                         "std": std if std > 0 else 1.0})
    for c in text:
        docs = [_tokens(v) for v in _strings(sub[c])]
        dfreq: dict[str, int] = {}
        for toks in docs:
            for t in set(toks):
                dfreq[t] = dfreq.get(t, 0) + 1
        vocab = sorted(t for t, k in dfreq.items() if k >= min_df)
        n = len(docs)
        idf = [float(np.log((1 + n) / (1 + dfreq[t])) + 1.0) for t in vocab]
        cols.append({"name": c, "kind": "text", "vocab": vocab, "idf": idf})
    if embeddings is not None:
        _, dim = _embedding_table(embeddings)
        cols.append({"name": "embedding", "kind": "embedding", "dim": int(dim)})
    return {"columns": cols}


def _selected_rows(df, ids_col: pd.Series, item_ids) -> np.ndarray:
    """Positions of the rows of ``df`` that will be described."""
    ids = _external_ids(ids_col.to_numpy(), "df[item]")
    if len(pd.unique(ids)) != ids.size:
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].tolist()[0]
        raise ValueError(f"df: item id {dup!r} appears in more than one row")
    if item_ids is None:
        return np.arange(len(df))
    want = _external_ids(np.asarray(item_ids), "item_ids")
    if len(pd.unique(want)) != want.size:
        raise ValueError("item_ids: duplicate item ids")
    return np.flatnonzero(pd.Index(want).get_indexer(ids) >= 0) if ids.size else np.arange(0)


def _split(col: pd.Series, sep: str):
    return [[] if v is None else [p.strip() for p in v.split(sep) if p.strip()]
            for v in _strings(col)]


def _tokens(v) -> list[str]:
    return [] if v is None else _TOKEN.findall(v.lower())


def _embedding_table(embeddings):
    """(DataFrame indexed by item id with float64 values, dim)."""
    if isinstance(embeddings, pd.DataFrame):
        table = embeddings
    elif isinstance(embeddings, Mapping):
        if not embeddings:
            raise ValueError("embeddings: is empty")
        try:
            vecs = [np.asarray(v, dtype=np.float64) for v in embeddings.values()]
        except (TypeError, ValueError):
            raise ValueError("embeddings: every value must be a numeric vector") from None
        if any(v.ndim != 1 for v in vecs) or len({v.shape[0] for v in vecs}) != 1:
            raise ValueError("embeddings: expected 1-D vectors all of one length")
        table = pd.DataFrame(np.vstack(vecs), index=list(embeddings.keys()))
    else:
        raise ValueError(f"embeddings: expected a DataFrame indexed by item id or a mapping "
                         f"item id -> vector, got {type(embeddings).__name__}")
    try:
        values = table.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("embeddings: expected numeric values") from None
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"embeddings: expected at least one dimension, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("embeddings: contains NaN or inf values")
    ids = _external_ids(table.index.to_numpy(), "embeddings (index)")
    if len(pd.unique(ids)) != ids.size:
        raise ValueError("embeddings: an item id appears more than once")
    return pd.DataFrame(values, index=pd.Index(ids)), values.shape[1]


def _bucket_names(c: str, edges) -> list[str]:
    if not edges:
        return [f"{c}=all"]
    names = [f"{c}=(-inf, {_fmt(edges[0])})"]
    names += [f"{c}=[{_fmt(a)}, {_fmt(b)})" for a, b in zip(edges[:-1], edges[1:])]
    names.append(f"{c}=[{_fmt(edges[-1])}, inf)")
    return names


# --------------------------------------------------------------------------- encoding
def _encode(spec, df, item, embeddings, item_ids, names=None, groups=None) -> ItemFeatures:
    ids_col = _item_column(df, item)
    rows = _selected_rows(df, ids_col, item_ids)
    df_ids = _external_ids(ids_col.to_numpy(), "df[item]")
    if item_ids is None:
        out_ids = df_ids
        target = np.arange(len(df))
    else:
        out_ids = _external_ids(np.asarray(item_ids), "item_ids")
        if len(pd.unique(out_ids)) != out_ids.size:
            raise ValueError("item_ids: duplicate item ids")
        if len(df) and len(out_ids) and rows.size == 0 and not (embeddings is not None):
            raise ValueError(
                f"item_ids: none of the {len(out_ids)} ids is in df[{item!r}] (ids of df "
                f"are {df_ids.dtype.kind == 'U' and 'strings' or 'integers'}, item_ids "
                f"{out_ids.dtype.kind == 'U' and 'strings' or 'integers'})")
        target = np.full(len(df), -1, dtype=np.int64)
        target[rows] = pd.Index(out_ids).get_indexer(df_ids[rows])
    n = len(out_ids)
    sub = df.iloc[rows]
    dest = target[rows]
    blocks, all_names, all_groups = [], [], []
    for col in spec["columns"]:
        c, kind = col["name"], col["kind"]
        if kind == "embedding":
            if embeddings is None:
                raise ValueError("embeddings: these features include embeddings; pass them")
            table, dim = _embedding_table(embeddings)
            if dim != col["dim"]:
                raise ValueError(f"embeddings: expected vectors of length {col['dim']}, got "
                                 f"{dim}")
            pos = table.index.get_indexer(out_ids) if n else np.array([], np.int64)
            dense = np.zeros((n, dim), dtype=np.float32)
            dense[pos >= 0] = table.to_numpy()[pos[pos >= 0]]
            blocks.append(sp.csr_matrix(dense))
            all_names += [f"embedding:{j}" for j in range(dim)]
            all_groups += ["embedding"] * dim
            continue
        if c not in df.columns:
            raise ValueError(f"df: no column {c!r} (these features were built with it)")
        if kind in ("categorical", "multi_valued"):
            vocab = col["vocab"]
            lookup = {v: j for j, v in enumerate(vocab)}
            values = ([[v] if v else [] for v in _strings(sub[c])] if kind == "categorical"
                      else _split(sub[c], col["sep"]))
            r, k = [], []
            for d, vs in zip(dest, values):
                for v in vs:
                    j = lookup.get(v)
                    if j is not None:
                        r.append(d)
                        k.append(j)
            blocks.append(_csr(r, k, np.ones(len(r)), n, len(vocab)))
            all_names += [f"{c}={v}" for v in vocab]
            all_groups += [c] * len(vocab)
        elif kind == "bucket":
            vals = _numeric_values(sub, c)
            edges = np.asarray(col["edges"], dtype=np.float64)
            ok = np.isfinite(vals)
            b = np.searchsorted(edges, vals[ok], side="right")
            blocks.append(_csr(dest[ok], b, np.ones(b.size), n, len(edges) + 1))
            all_names += _bucket_names(c, col["edges"])
            all_groups += [c] * (len(edges) + 1)
        elif kind == "standardize":
            vals = _numeric_values(sub, c)
            z = np.where(np.isfinite(vals), (vals - col["mean"]) / col["std"], 0.0)
            blocks.append(_csr(dest, np.zeros(dest.size), z, n, 1))
            all_names.append(f"{c}:z")
            all_groups.append(c)
        elif kind == "text":
            vocab, idf = col["vocab"], np.asarray(col["idf"], dtype=np.float64)
            lookup = {v: j for j, v in enumerate(vocab)}
            r, k = [], []
            for d, v in zip(dest, _strings(sub[c])):
                for t in _tokens(v):
                    j = lookup.get(t)
                    if j is not None:
                        r.append(d)
                        k.append(j)
            counts = _csr(r, k, np.ones(len(r)), n, len(vocab))
            tfidf = counts.multiply(idf[None, :]).tocsr() if len(vocab) else counts
            norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
            inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            blocks.append(sp.csr_matrix(sp.diags(inv) @ tfidf, dtype=np.float32))
            all_names += [f"{c}~{v}" for v in vocab]
            all_groups += [c] * len(vocab)
        else:
            raise ValueError(f"spec: unknown feature kind {kind!r}")
    if blocks:
        m = sp.hstack(blocks, format="csr", dtype=np.float32)
    else:
        m = sp.csr_matrix((n, 0), dtype=np.float32)
    m.sort_indices()
    m.eliminate_zeros()
    if names is not None and not np.array_equal(np.asarray(all_names, dtype=str), names):
        raise ValueError("df: encoding gave other feature columns than the original")
    return ItemFeatures(m, np.asarray(all_names, dtype=str), out_ids,
                        np.asarray(all_groups, dtype=str), spec)
