"""Loaders for public rating / listening data sets from files the user already has.

Nothing is downloaded and no data ships with tastemaker (the licenses forbid it).  Each
loader takes the data set's directory and returns ``(interactions, items)``:

- ``interactions``: :class:`~tastemaker.Interactions` built with the given keyword
  options (``transform``, ``min_user_count``... of :meth:`Interactions.from_frame`);
- ``items``: a DataFrame indexed by the external item id, in the order of
  ``interactions.item_ids`` (row ``k`` describes item index ``k``), with a ``title``
  column and, where the data set has them, ``genres`` as one ``"|"``-joined string,
  ``year`` (release year, nullable Int64) and ``tags`` (``"|"``-joined).

:func:`item_features` turns such a table (or the synthetic catalog) into
:class:`~tastemaker.ItemFeatures` in one line.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .features import ItemFeatures
from .interactions import Interactions

__all__ = ["movielens_100k", "movielens_1m", "movielens_latest", "lastfm_2k",
           "item_features"]

#: How :func:`item_features` encodes the loaders' (and the synthetic log's) columns.
FEATURE_COLUMNS = {
    "multi_valued": {"genres": "|", "tags": "|", "cast": ", "},
    "categorical": ("language",),
    "numeric": ("year", "release_year", "runtime"),
}

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
                 "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


def _dir(path, required: str) -> Path:
    p = Path(os.fspath(path))
    if p.is_file():
        p = p.parent
    if not (p / required).is_file():
        raise ValueError(f"path: {str(path)!r} has no {required!r} (expected the data set's "
                         f"directory)")
    return p


def _items_for(X: Interactions, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` (indexed by external item id) in the order of ``X.item_ids``."""
    out = table.reindex(pd.Index(X.item_ids, name=table.index.name))
    return out


def _year_from_title(titles: pd.Series) -> pd.Series:
    """The release year MovieLens writes at the end of a title: ``"Heat (1995)"``."""
    year = titles.astype(str).str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def item_features(items: pd.DataFrame, item_ids=None, **kwargs) -> ItemFeatures:
    """:class:`~tastemaker.ItemFeatures` of a loader's items table, in one line.

    The known metadata columns present in ``items`` are used: ``genres``, ``tags``
    (``"|"``-separated) and ``cast`` (``", "``-separated) as multi-valued, ``language``
    as categorical, ``year`` / ``release_year`` / ``runtime`` as numeric (10 quantile
    buckets).  ``item_ids`` defaults to the table's index (the loaders return it in the
    order of ``interactions.item_ids``, so row ``k`` describes item index ``k``); rows
    without metadata (an id the catalog file does not list) are all zero.

    Parameters
    ----------
    items : pandas.DataFrame indexed by item id
        As returned by :func:`movielens_100k` & co. or ``synthetic_streaming(...).items``.
    item_ids : array-like, optional
        Row order (see :meth:`ItemFeatures.from_frame`).
    **kwargs
        Override ``categorical``, ``multi_valued``, ``numeric``, ``text``, ``embeddings``
        or ``min_df`` of :meth:`ItemFeatures.from_frame`.

    Examples
    --------
    >>> X, items = tastemaker.datasets.movielens_100k(path)          # doctest: +SKIP
    >>> F = tastemaker.datasets.item_features(items)                  # genres + year
    """
    if not isinstance(items, pd.DataFrame):
        raise ValueError(f"items: expected a pandas DataFrame, got {type(items).__name__}")
    table = items.copy()
    table.index = table.index.rename("item")
    spec = {
        "multi_valued": {c: s for c, s in FEATURE_COLUMNS["multi_valued"].items()
                         if c in table.columns},
        "categorical": tuple(c for c in FEATURE_COLUMNS["categorical"] if c in table.columns),
        "numeric": tuple(c for c in FEATURE_COLUMNS["numeric"] if c in table.columns),
    }
    spec.update(kwargs)
    if "item" in table.columns:
        table = table.drop(columns="item")
    ids = table.index.to_numpy() if item_ids is None else item_ids
    return ItemFeatures.from_frame(table, item="item", item_ids=ids, **spec)


def _read_double_colon(path: Path, names, encoding: str) -> pd.DataFrame:
    # pandas needs its slow python engine for a 2-char separator; '::' never occurs in
    # a field of these files, so rewrite it to a tab and use the C parser.
    text = path.read_bytes().decode(encoding).replace("::", "\t")
    return pd.read_csv(io.StringIO(text), sep="\t", header=None, names=names,
                       quoting=csv.QUOTE_NONE, dtype=str if "title" in names else None)


def movielens_100k(path, *, value="rating", **kwargs):
    """MovieLens 100K (``u.data``, ``u.item``).

    Parameters
    ----------
    path : str or Path
        The ``ml-100k`` directory.
    value : {"rating", None}
        Train on the star rating (default) or on 1 per rating (``None``: implicit).
    **kwargs
        Options of :meth:`Interactions.from_frame`.

    Returns
    -------
    (Interactions, pandas.DataFrame)
        Items indexed by movie id with ``title``, ``release_date`` (datetime64),
        ``genres``, ``imdb_url`` and ``year`` (Int64); :func:`item_features` encodes
        genres + year.
    """
    d = _dir(path, "u.data")
    ratings = pd.read_csv(d / "u.data", sep="\t", header=None,
                          names=["user", "item", "rating", "timestamp"])
    X = Interactions.from_frame(ratings, value=value, timestamp="timestamp", **kwargs)
    cols = ["item", "title", "release_date", "video_release_date", "imdb_url",
            *ML100K_GENRES]
    items = pd.read_csv(d / "u.item", sep="|", header=None, names=cols, encoding="latin-1",
                        quoting=csv.QUOTE_NONE)
    flags = items[list(ML100K_GENRES)].to_numpy(dtype=bool)
    names = np.array(ML100K_GENRES, dtype=object)
    items["genres"] = ["|".join(names[row]) for row in flags]  # 1.7K rows: fine
    items["release_date"] = pd.to_datetime(items["release_date"], format="%d-%b-%Y",
                                           errors="coerce")
    items["year"] = items["release_date"].dt.year.astype("Int64")
    table = items.set_index("item")[["title", "release_date", "genres", "imdb_url", "year"]]
    return X, _items_for(X, table)


def movielens_1m(path, *, value="rating", **kwargs):
    """MovieLens 1M (``ratings.dat``, ``movies.dat``; ``::``-separated, Latin-1).

    Returns ``(Interactions, items)`` with ``title``, ``genres`` and ``year`` (from the
    title, Int64); see :func:`movielens_100k` for the parameters.
    """
    d = _dir(path, "ratings.dat")
    ratings = _read_double_colon(d / "ratings.dat", ["user", "item", "rating", "timestamp"],
                                 "latin-1")
    X = Interactions.from_frame(ratings, value=value, timestamp="timestamp", **kwargs)
    table = pd.DataFrame(columns=["title", "genres"], index=pd.Index([], name="item"))
    if (d / "movies.dat").is_file():
        movies = _read_double_colon(d / "movies.dat", ["item", "title", "genres"], "latin-1")
        movies["item"] = movies["item"].astype(np.int64)
        table = movies.set_index("item")[["title", "genres"]]
    table["year"] = _year_from_title(table["title"])
    return X, _items_for(X, table)


def movielens_latest(path, *, value="rating", **kwargs):
    """MovieLens "latest" / 20M / 25M CSV format (``ratings.csv``, ``movies.csv``).

    Returns ``(Interactions, items)`` with ``title``, ``genres`` (``"(no genres
    listed)"`` becomes empty) and ``year`` (from the title, Int64); see
    :func:`movielens_100k` for the parameters.
    """
    d = _dir(path, "ratings.csv")
    ratings = pd.read_csv(d / "ratings.csv", dtype={"userId": np.int64, "movieId": np.int64})
    for col in ("userId", "movieId", "rating", "timestamp"):
        if col not in ratings.columns:
            raise ValueError(f"path: {str(d / 'ratings.csv')!r} has no column {col!r}")
    X = Interactions.from_frame(ratings, user="userId", item="movieId", value=value,
                                timestamp="timestamp", **kwargs)
    table = pd.DataFrame(columns=["title", "genres"], index=pd.Index([], name="item"))
    if (d / "movies.csv").is_file():
        movies = pd.read_csv(d / "movies.csv", dtype={"movieId": np.int64}, encoding="utf-8")
        table = movies.rename(columns={"movieId": "item"}).set_index("item")[["title",
                                                                             "genres"]]
        table["genres"] = table["genres"].replace("(no genres listed)", "")
    table["year"] = _year_from_title(table["title"])
    return X, _items_for(X, table)


def lastfm_2k(path, *, value="weight", max_tags=20, **kwargs):
    """Last.fm HetRec 2011 (``user_artists.dat``, ``artists.dat``).

    ``user_artists.dat`` is read with or without its header line and with LF or CRLF line
    ends.  Values are play counts (``value=None`` for 1 per pair); a count transform such
    as ``transform="log1p"`` or ``"bm25"`` usually helps.

    Returns
    -------
    (Interactions, pandas.DataFrame)
        Items indexed by artist id with ``title`` (the artist name), ``url`` and ``tags``:
        the artist's tags from ``user_taggedartists.dat`` + ``tags.dat`` when both are
        there, most-used first (at most ``max_tags``), ``"|"``-joined; empty otherwise.
    """
    d = _dir(path, "user_artists.dat")
    with open(d / "user_artists.dat", "rb") as fh:
        first = fh.readline().decode("utf-8-sig", "replace").strip().split("\t")
    has_header = not first[0].strip().lstrip("-").isdigit()
    ua = pd.read_csv(d / "user_artists.dat", sep="\t", header=0 if has_header else None,
                     names=["user", "item", "weight"], encoding="utf-8-sig")
    X = Interactions.from_frame(ua, value=value, **kwargs)
    table = pd.DataFrame(columns=["title", "url"], index=pd.Index([], name="item"))
    if (d / "artists.dat").is_file():
        artists = pd.read_csv(d / "artists.dat", sep="\t", encoding="utf-8",
                              quoting=csv.QUOTE_NONE, dtype={"id": np.int64})
        table = artists.rename(columns={"id": "item", "name": "title"}).set_index("item")[
            ["title", "url"]]
    table["tags"] = _lastfm_tags(d, table.index, max_tags)
    return X, _items_for(X, table)


def _lastfm_tags(d: Path, artists: pd.Index, max_tags: int) -> pd.Series:
    """Each artist's tags by number of users who applied them (ties: tag name)."""
    from .._validation import check_int

    max_tags = check_int(max_tags, "max_tags", minimum=1)
    out = pd.Series("", index=artists, dtype=object)
    tagged = next((d / f for f in ("user_taggedartists.dat",
                                   "user_taggedartists-timestamps.dat")
                   if (d / f).is_file()), None)
    if tagged is None or not (d / "tags.dat").is_file():
        return out
    ut = pd.read_csv(tagged, sep="\t", encoding="utf-8-sig", usecols=[1, 2], header=0,
                     names=["item", "tag"], dtype=np.int64)
    names = pd.read_csv(d / "tags.dat", sep="\t", encoding="latin-1", quoting=csv.QUOTE_NONE,
                        header=0, names=["tag", "value"], dtype={"tag": np.int64, "value": str})
    counts = ut.groupby(["item", "tag"]).size().rename("n").reset_index()
    counts = counts.merge(names, on="tag", how="inner")
    counts["value"] = counts["value"].str.strip().str.replace("|", " ", regex=False)
    counts = counts[counts["value"] != ""].sort_values(["item", "n", "value"],
                                                      ascending=[True, False, True])
    top = counts.groupby("item").head(max_tags).groupby("item")["value"].agg("|".join)
    hit = top.reindex(artists)
    return hit.where(hit.notna(), "").astype(object)
