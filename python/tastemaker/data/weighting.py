"""Confidence transforms for interaction strengths, implemented once for the project.

Each transform maps the aggregated strength ``x`` of a (user, item) pair to the value a
model trains on.  Negative strengths are dislikes: every transform is applied to
``|x|`` and the sign is kept, so a dislike stays a dislike (``binary`` gives -1).

``tfidf`` and ``bm25`` are computed natively, in float64: ``cpp/include/tastemaker/
weighting.hpp`` holds their one definition, which ``ItemKNN`` shares (with the items as
the documents); this module checks the parameters and delegates to it.

=========  ===========================================================================
method     value
=========  ===========================================================================
binary     ``sign(x)``
linear     ``alpha * x``
log1p      ``sign(x) * alpha * log(1 + |x| / epsilon)``   (Hu, Koren & Volinsky 2008)
tfidf      ``x * idf(item)``, ``idf = log(n_users / df(item))``
bm25       ``sign(x) * idf(item) * |x| (k1 + 1) / (|x| + k1 (1 - b + b len(u) / avglen))``
           with ``idf = log(n_users / df(item))`` and ``len(u)`` the sum of the user's
           ``|x|`` (users are documents, items are terms)
=========  ===========================================================================

``df(item)`` is the number of users with a stored entry for the item.  ``tfidf`` and
``bm25`` take ``idf_offset`` (default 0): ``idf = log(n_users / (df + idf_offset))``;
1 gives implicit's ``log(N) - log1p(df)`` (its ``bm25_weight`` / ``tfidf_weight``).  Use
:func:`apply_transform` on a sparse matrix, or ``Interactions(...).transform(...)``.

The BM25 collection is every row of the matrix (``shape[0]`` documents), and both of its
statistics are taken over that one collection: ``N = n_users`` in the idf and
``avglen = sum(len(u)) / n_users``, the mean over all documents, an empty one counting
with length 0 (Robertson & Zaragoza 2009, *The Probabilistic Relevance Framework: BM25
and Beyond*: N is the collection size, avdl the average document length across the
collection).  Averaging the lengths over the non-empty rows only while N counts them
all would describe two different collections.  This is also implicit's
``bm25_weight`` (``row_sums.mean()``), so the same matrix gets the same weights (up to
rounding).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_csr, check_float

__all__ = ["TRANSFORMS", "apply_transform", "combine_corpus_stats", "corpus_stats", "transform_values"]

TRANSFORMS = ("binary", "linear", "log1p", "tfidf", "bm25")

_DEFAULTS = {
    "binary": {},
    "linear": {"alpha": 1.0},
    "log1p": {"alpha": 1.0, "epsilon": 1.0},
    "tfidf": {"idf_offset": 0.0},
    "bm25": {"k1": 1.2, "b": 0.75, "idf_offset": 0.0},
}


def _check_params(method, params: dict) -> dict:
    if not isinstance(method, str) or method not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, got {method!r}")
    allowed = _DEFAULTS[method]
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(
            f"transform: {method!r} takes parameters {sorted(allowed)}, got unknown "
            f"{sorted(unknown)}"
        )
    out = dict(allowed)
    for key, value in params.items():
        out[key] = check_float(value, key, minimum=0.0, strict=key in ("alpha", "epsilon"))
    if method == "bm25" and out["b"] > 1.0:
        raise ValueError(f"b: expected a number in [0, 1], got {out['b']}")
    return out


def _entries(user_idx, item_idx, values):
    """The (int64, int64, float64) contiguous arrays the native weighting reads."""
    return (np.ascontiguousarray(user_idx, dtype=np.int64),
            np.ascontiguousarray(item_idx, dtype=np.int64),
            np.ascontiguousarray(values, dtype=np.float64))


def corpus_stats(user_idx: np.ndarray, item_idx: np.ndarray, values: np.ndarray,
                 shape: tuple[int, int]) -> dict:
    """The whole-matrix statistics that ``tfidf`` and ``bm25`` need.

    ``df`` (float64, per item: users with a stored entry), ``n_users`` (every row, the
    BM25 collection) and ``length_sum``, the sum of the users' lengths (sum of ``|x|``);
    the average length is ``length_sum / n_users`` (see the module docstring).
    Statistics of disjoint sets of users add up with :func:`combine_corpus_stats`, so a
    matrix split into user blocks (``tastemaker.distributed``) is transformed exactly as
    the whole.
    """
    n_users, n_items = (int(s) for s in shape)
    df, length_sum = _core.corpus_stats(*_entries(user_idx, item_idx, values), n_users, n_items)
    return {"df": df, "n_users": n_users, "length_sum": float(length_sum)}


def combine_corpus_stats(parts, n_users: int) -> dict:
    """:func:`corpus_stats` of user blocks that partition a matrix of ``n_users`` users."""
    parts = list(parts)
    return {"df": np.sum([p["df"] for p in parts], axis=0), "n_users": int(n_users),
            "length_sum": sum(p["length_sum"] for p in parts)}


def transform_values(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int],
    method: str,
    corpus: dict | None = None,
    **params,
) -> np.ndarray:
    """Transform the values of stored (user, item) entries; returns float64, same length.

    Parameters
    ----------
    user_idx, item_idx : ndarray of int, shape (nnz,)
        Entry coordinates (no duplicate pairs), in ``[0, shape[0])`` and ``[0, shape[1])``.
    values : ndarray of float, shape (nnz,)
        Aggregated strengths; negative means dislike.
    shape : (n_users, n_items)
    method : {"binary", "linear", "log1p", "tfidf", "bm25"}
    corpus : dict, optional
        :func:`corpus_stats` of the whole matrix when these entries are only a block of
        its users (``user_idx`` then indexes ``shape[0]`` users of the block; every entry
        of each of them must be given).  Default: the statistics of these entries.
    **params
        ``alpha`` (linear, log1p), ``epsilon`` (log1p), ``k1`` and ``b`` (bm25),
        ``idf_offset`` (tfidf, bm25).
    """
    p = _check_params(method, params)
    x = np.asarray(values, dtype=np.float64)
    if method == "binary":
        return np.sign(x)
    if method == "linear":
        return p["alpha"] * x
    if method == "log1p":
        return np.sign(x) * p["alpha"] * np.log1p(np.abs(x) / p["epsilon"])
    # tfidf and bm25: the native definition (tastemaker/weighting.hpp)
    n_users, n_items = (int(s) for s in shape)
    given = {} if corpus is None else {
        "corpus_df": np.ascontiguousarray(corpus["df"], dtype=np.float64),
        "corpus_n_docs": int(corpus["n_users"]), "corpus_length_sum": float(corpus["length_sum"])}
    return _core.term_weights(method, *_entries(user_idx, item_idx, x), n_users, n_items,
                              k1=p.get("k1", 1.2), b=p.get("b", 0.75), idf_offset=p["idf_offset"],
                              **given)


def apply_transform(matrix, method: str, **params) -> sp.csr_matrix:
    """Return a transformed copy of a users x items sparse matrix (float32 CSR).

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (n_users, n_items)
        Duplicates are summed; the input is not modified.
    method, **params
        See the module documentation.

    Returns
    -------
    scipy.sparse.csr_matrix of float32, shape (n_users, n_items), explicit zeros removed.
    """
    csr = check_csr(matrix, "matrix", allow_empty=True)
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    vals = transform_values(rows, csr.indices, csr.data, csr.shape, method, **params)
    out = sp.csr_matrix(
        (vals.astype(np.float32), csr.indices.copy(), csr.indptr.copy()), shape=csr.shape
    )
    out.eliminate_zeros()
    return out
