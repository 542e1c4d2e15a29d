"""Ranking, rating and beyond-accuracy metrics.

Every ranking metric works on a whole batch at once: ``recommended`` is an
``(n_rows, >= k)`` integer array of item ids, best first (one row per evaluated
user), and ``test`` is a users x items scipy sparse matrix whose stored positive
values are the relevant (held-out) items (a zero or negative value, e.g. a dislike, is
not relevant).  Row ``r`` of ``recommended`` belongs to user
``users[r]`` (by default ``users = arange(n_rows)``, which then must equal
``test.shape[0]``).  Negative ids in ``recommended`` are padding (a model that had
fewer than ``k`` eligible items) and are never relevant; the ids of one row must be
distinct.  Nothing loops over users in Python: hits are found for all rows with one
``searchsorted`` over the test matrix's (user, item) keys.

Each function returns the mean over rows, or with ``per_user=True`` a float64 array
with one value per row.  Ranking metrics are undefined (NaN) for a row whose user has
no test item; the mean skips those rows (``evaluate`` scores only users with test
items anyway).

Definitions (binary relevance, ``T`` = the user's test items, ``hit_i`` = 1 when the
item at 0-based rank ``i`` is in ``T``):

- precision@k = sum(hit[:k]) / k   (padding counts as a miss)
- recall@k    = sum(hit[:k]) / |T|   (the plain definition; it cannot reach 1 when
  |T| > k.  Some libraries divide by min(k, |T|) instead; we do not.)
- AP@k        = sum_i hit_i * precision@(i+1) / min(k, |T|);  MAP@k is its mean
- NDCG@k      = DCG / IDCG, DCG = sum_i hit_i / log2(i + 2), IDCG the DCG of
  min(k, |T|) hits at the top
- MRR@k       = 1 / (rank of the first hit, 1-based), 0 without a hit in the top k
- hit rate@k  = 1 if any of the top k is relevant, else 0
- AUC@k       = the fraction of (relevant, non-relevant) item pairs ranked in the
  right order when the top k come first in their order and every other item ties
  below them (a tie counts one half).  The non-relevant items are all items not in
  ``T``, minus those in ``exclude`` (pass the training matrix: items the recommender
  was not allowed to return are not candidates).  With ``exclude=None`` this is the
  AUC of ``implicit.evaluation.ranking_metrics_at_k``, which NDCG and MAP also match.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_csr, check_dense, check_ids, check_int

__all__ = [
    "RANKING_METRICS",
    "ranking_metrics_at_k",
    "precision_at_k",
    "recall_at_k",
    "map_at_k",
    "map_full_at_k",
    "ndcg_at_k",
    "mrr_at_k",
    "hit_rate_at_k",
    "auc_at_k",
    "rmse",
    "mae",
    "item_popularity",
    "catalog_coverage",
    "novelty",
    "intra_list_diversity",
    "personalization",
    "popularity_bias",
]

#: Names accepted by :func:`ranking_metrics_at_k` (and by ``evaluate``'s ``metrics``).
RANKING_METRICS = ("precision", "recall", "map", "map_full", "ndcg", "mrr", "hit_rate", "auc")


# ----------------------------------------------------------------------------- inputs


def _check_recommended(recommended, n_items: int | None, name: str = "recommended") -> np.ndarray:
    """Return ``recommended`` as a C-contiguous int64 2-D array; check ids and duplicates."""
    arr = np.asarray(recommended)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_rows, k) of item ids, got shape "
                         f"{arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer item ids, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size == 0:
        return arr
    if n_items is not None and arr.max() >= n_items:
        raise ValueError(f"{name}: item id {int(arr.max())} out of range [0, {n_items})")
    if arr.shape[1] > 1:
        srt = np.sort(arr, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(f"{name}: row {row} recommends the same item more than once")
    return arr


def _check_k(k, recommended, name: str = "k") -> int:
    """``k`` as an int in ``[1, width]``; ``None`` means the full width."""
    width = recommended if isinstance(recommended, int) else recommended.shape[1]
    if k is None:
        return width
    k = check_int(k, name, minimum=1)
    if k > width:
        raise ValueError(f"{name}: {k} is larger than the {width} recommended columns")
    return k


def _check_users(users, n_rows: int, n_users: int) -> np.ndarray:
    if users is None:
        if n_rows != n_users:
            raise ValueError(
                f"users: required when recommended has {n_rows} rows but test has {n_users} "
                f"users")
        return np.arange(n_rows, dtype=np.int64)
    shape = np.shape(users)
    if len(shape) != 1 or shape[0] != n_rows:
        raise ValueError(f"users: expected a 1-D array of {n_rows} user ids (one per row of "
                         f"recommended), got shape {shape}")
    return check_ids(users, "users", n_users, allow_scalar=False)[0]


def _nonzero_csr(matrix, name: str, shape=None, positive: bool = False) -> sp.csr_matrix:
    """Validated CSR without explicit zeros (a stored 0 is not an interaction), and
    without negative values when ``positive``.  Never modifies the caller's matrix."""
    m = check_csr(matrix, name, shape=shape, allow_empty=True)
    drop = (m.data <= 0) if positive else (m.data == 0)
    if m.nnz and drop.any():
        keep = ~drop
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[keep]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=m.shape[0]))))
        m = sp.csr_matrix((m.data[keep], m.indices[keep], indptr.astype(np.int64)),
                          shape=m.shape)
    return m


def _keys(matrix: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys ``row * n_cols + col`` of the stored entries of a canonical CSR."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * matrix.shape[1] + matrix.indices.astype(np.int64)


def _in_keys(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``query`` (any shape) are in the sorted ``keys``."""
    if keys.size == 0:
        return np.zeros(query.shape, dtype=bool)
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, keys.size - 1)
    return keys[pos] == query


# ------------------------------------------------------------------- ranking metrics


class _Hits:
    """Hit matrix and per-row counts shared by all ranking metrics at every k."""

    def __init__(self, recommended, test, users=None, exclude=None):
        test = _nonzero_csr(test, "test", positive=True)
        n_users, n_items = test.shape
        rec = _check_recommended(recommended, n_items)
        users = _check_users(users, rec.shape[0], n_users)
        valid = rec >= 0
        query = users[:, None] * n_items + np.where(valid, rec, 0)
        self.hits = _in_keys(_keys(test), query) & valid
        self.valid = valid
        self.n_pos = np.diff(test.indptr)[users].astype(np.float64)
        # Candidates for AUC: every item not relevant and not excluded for that user.
        n_neg = n_items - self.n_pos
        if exclude is not None:
            exclude = _nonzero_csr(exclude, "exclude", shape=test.shape)
            ex_rows = np.repeat(np.arange(n_users), np.diff(exclude.indptr))
            in_test = _in_keys(_keys(test), _keys(exclude))
            n_ex = np.bincount(ex_rows[~in_test], minlength=n_users)
            n_neg = n_neg - n_ex[users]
        self.n_neg = n_neg
        self.n_rows, self.width = rec.shape

    def metric(self, name: str, k: int) -> np.ndarray:
        """Per-row values of metric ``name`` at ``k`` (NaN where undefined)."""
        hits = self.hits[:, :k]
        w = hits.shape[1]  # < k when k exceeds the catalogue (evaluate caps the lists)
        n_pos = self.n_pos
        has = n_pos > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            n_hit = hits.sum(axis=1).astype(np.float64)
            if name == "precision":
                out = n_hit / k
            elif name == "recall":
                out = n_hit / n_pos
            elif name == "hit_rate":
                out = (n_hit > 0).astype(np.float64)
            elif name == "mrr":
                first = np.argmax(hits, axis=1)
                out = np.where(n_hit > 0, 1.0 / (first + 1.0), 0.0)
            elif name in ("map", "map_full"):
                ranks = np.arange(1, w + 1, dtype=np.float64)
                prec = np.cumsum(hits, axis=1) / ranks
                denom = np.minimum(k, n_pos) if name == "map" else n_pos
                out = (prec * hits).sum(axis=1) / denom
            elif name == "ndcg":
                disc = 1.0 / np.log2(np.arange(2, w + 2, dtype=np.float64))
                dcg = hits @ disc
                ideal = np.concatenate(([0.0], np.cumsum(disc)))
                out = dcg / ideal[np.minimum(k, n_pos).astype(np.int64)]
            elif name == "auc":
                miss = self.valid[:, :k] & ~hits
                above = np.cumsum(hits, axis=1)  # relevant items ranked above each slot
                n_miss = miss.sum(axis=1)
                n_neg = self.n_neg
                num = (above * miss).sum(axis=1) + 0.5 * (n_hit + n_pos) * (n_neg - n_miss)
                out = num / (n_pos * n_neg)
                out = np.where(n_neg > 0, out, np.nan)
            else:
                raise ValueError(f"metrics: unknown ranking metric {name!r}; expected one of "
                                 f"{', '.join(RANKING_METRICS)}")
        return np.where(has, out, np.nan)


def _check_metric_names(metrics) -> tuple[str, ...]:
    if metrics is None:
        return RANKING_METRICS
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = tuple(metrics)
    for m in names:
        if m not in RANKING_METRICS:
            raise ValueError(f"metrics: unknown ranking metric {m!r}; expected one of "
                             f"{', '.join(RANKING_METRICS)}")
    return names


def _reduce(values: np.ndarray, per_user: bool):
    if per_user:
        return values
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def ranking_metrics_at_k(recommended, test, k=10, *, users=None, metrics=None, exclude=None,
                         per_user=False) -> dict:
    """Several ranking metrics at ``k`` from one pass over the hits.

    Parameters
    ----------
    recommended : array-like of int, shape (n_rows, >= k)
        Item ids, best first; negative ids are padding.
    test : scipy.sparse matrix, shape (n_users, n_items)
        Relevant items: the stored positive values of each user's row.
    k : int, default 10
        Cut-off; at most ``recommended.shape[1]``.
    users : array-like of int, shape (n_rows,), optional
        The user (row of ``test``) of each row of ``recommended``.
    metrics : sequence of str, optional
        Subset of :data:`RANKING_METRICS`; all by default.
    exclude : scipy.sparse matrix, shape (n_users, n_items), optional
        Items that could not be recommended (the training items); only AUC uses it.
    per_user : bool, default False
        Return a float64 array of shape (n_rows,) per metric instead of the mean.

    Returns
    -------
    dict
        Metric name -> mean over rows with at least one test item (float), or per-row
        array (NaN where undefined).
    """
    names = _check_metric_names(metrics)
    h = _Hits(recommended, test, users, exclude)
    k = _check_k(k, h.width)
    return {m: _reduce(h.metric(m, k), per_user) for m in names}


def _single(name):
    def fn(recommended, test, k=10, *, users=None, per_user=False, **kw):
        return ranking_metrics_at_k(recommended, test, k, users=users, metrics=(name,),
                                    per_user=per_user, **kw)[name]
    return fn


def precision_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Precision@k: relevant items in the top ``k`` divided by ``k``.

    See :func:`ranking_metrics_at_k` for the parameters; returns a float (mean over
    users with test items) or a float64 array of shape (n_rows,) with ``per_user``.
    """
    return _single("precision")(recommended, test, k, users=users, per_user=per_user)


def recall_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Recall@k: relevant items in the top ``k`` divided by the user's number of test items.

    The denominator is ``|test items|``, not ``min(k, |test items|)``, so a user with
    more than ``k`` test items cannot reach 1.  Parameters as in
    :func:`ranking_metrics_at_k`.
    """
    return _single("recall")(recommended, test, k, users=users, per_user=per_user)


def map_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Mean average precision at ``k`` (AP normalised by ``min(k, |test items|)``).

    Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("map")(recommended, test, k, users=users, per_user=per_user)


def map_full_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Mean average precision at ``k`` with AP normalised by ``|test items|``.

    The form of Microsoft Recommenders' published tables: a user with more than ``k``
    test items cannot reach 1.  :func:`map_at_k` divides by ``min(k, |test items|)``
    instead.  Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("map_full")(recommended, test, k, users=users, per_user=per_user)


def ndcg_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """NDCG@k with binary relevance; the ideal DCG puts ``min(k, |test items|)`` hits first.

    Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("ndcg")(recommended, test, k, users=users, per_user=per_user)


def mrr_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Mean reciprocal rank of the first relevant item in the top ``k`` (0 if none).

    Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("mrr")(recommended, test, k, users=users, per_user=per_user)


def hit_rate_at_k(recommended, test, k=10, *, users=None, per_user=False):
    """Hit rate@k: the fraction of users with at least one relevant item in the top ``k``.

    Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("hit_rate")(recommended, test, k, users=users, per_user=per_user)


def auc_at_k(recommended, test, k=10, *, users=None, exclude=None, per_user=False):
    """AUC of the ranking "top ``k`` in order, then every other item tied".

    Non-relevant candidates are all items outside the user's test row and outside
    ``exclude`` (pass the training matrix when recommendations filtered already-seen
    items).  With ``exclude=None`` this equals implicit's ``ranking_metrics_at_k`` AUC.
    Parameters as in :func:`ranking_metrics_at_k`.
    """
    return _single("auc")(recommended, test, k, users=users, per_user=per_user,
                          exclude=exclude)


# -------------------------------------------------------------------- rating metrics


def _rating_errors(y_true, y_pred, users, n_users):
    y_true = check_dense(y_true, "y_true", ndim=1, dtype=np.float64)
    y_pred = check_dense(y_pred, "y_pred", ndim=1, shape=(y_true.shape[0],), dtype=np.float64)
    if y_true.size == 0:
        raise ValueError("y_true: no ratings to score")
    err = y_pred - y_true
    if users is None:
        if n_users is not None:
            raise ValueError("n_users: only meaningful together with users")
        return err, None, None
    u = np.asarray(users)
    if u.ndim != 1 or u.shape[0] != y_true.shape[0]:
        raise ValueError(f"users: expected a 1-D array of {y_true.shape[0]} user ids, got "
                         f"shape {u.shape}")
    if u.dtype.kind not in "iu":
        raise ValueError(f"users: expected integer ids, got dtype {u.dtype}")
    u = u.astype(np.int64)
    if u.min() < 0:
        raise ValueError(f"users: negative id {int(u.min())}")
    if n_users is None:
        n_users = int(u.max()) + 1
    else:
        n_users = check_int(n_users, "n_users", minimum=int(u.max()) + 1)
    return err, u, n_users


def _per_user_mean(values, u, n_users):
    total = np.bincount(u, weights=values, minlength=n_users)
    count = np.bincount(u, minlength=n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def rmse(y_true, y_pred, *, users=None, n_users=None):
    """Root mean squared error of predicted ratings.

    Parameters
    ----------
    y_true, y_pred : array-like of float, shape (n_ratings,)
    users : array-like of int, shape (n_ratings,), optional
        The user of each rating.  When given, the result is per user.
    n_users : int, optional
        Length of the per-user result (default ``max(users) + 1``).

    Returns
    -------
    float, or ndarray of float64, shape (n_users,)
        RMSE over all ratings, or each user's RMSE (NaN for users without ratings).
    """
    err, u, n = _rating_errors(y_true, y_pred, users, n_users)
    if u is None:
        return float(np.sqrt(np.mean(err * err)))
    return np.sqrt(_per_user_mean(err * err, u, n))


def mae(y_true, y_pred, *, users=None, n_users=None):
    """Mean absolute error of predicted ratings; parameters and result as in :func:`rmse`."""
    err, u, n = _rating_errors(y_true, y_pred, users, n_users)
    if u is None:
        return float(np.mean(np.abs(err)))
    return _per_user_mean(np.abs(err), u, n)


# ------------------------------------------------------------ beyond-accuracy metrics


def item_popularity(train) -> np.ndarray:
    """Fraction of users who interacted with each item.

    Parameters
    ----------
    train : scipy.sparse matrix, shape (n_users, n_items)
        Every stored non-zero (including a negative one: a dislike is an interaction)
        counts once.

    Returns
    -------
    ndarray of float64, shape (n_items,)
    """
    train = _nonzero_csr(train, "train")
    if train.shape[0] == 0:
        raise ValueError("train: has no users")
    counts = np.bincount(train.indices, minlength=train.shape[1])
    return counts / float(train.shape[0])


def _list_mean(values_of_slot: np.ndarray, valid: np.ndarray, per_user: bool):
    """Mean of per-slot values over the valid slots of each row, then over rows."""
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        row = np.where(n > 0, np.where(valid, values_of_slot, 0.0).sum(axis=1) / n, np.nan)
    return _reduce(row, per_user)


def catalog_coverage(recommended, n_items, k=None) -> float:
    """Fraction of the catalog that appears in at least one top-``k`` list.

    Parameters
    ----------
    recommended : array-like of int, shape (n_rows, >= k)
    n_items : int
        Catalog size.
    k : int, optional
        Cut-off (default: all columns).
    """
    n_items = check_int(n_items, "n_items", minimum=1)
    rec = _check_recommended(recommended, n_items)
    rec = rec[:, :_check_k(k, rec)]
    return float(np.unique(rec[rec >= 0]).size / n_items)


def novelty(recommended, train, k=None, *, per_user=False):
    """Mean self-information ``-log2(p_i)`` of the recommended items.

    ``p_i`` is :func:`item_popularity` of ``train`` (the fraction of training users who
    interacted with item ``i``); an item nobody interacted with is counted as if one
    user had (``p_i = 1 / n_users``), so novelty stays finite.  Higher is more novel.

    Parameters
    ----------
    recommended : array-like of int, shape (n_rows, >= k)
    train : scipy.sparse matrix, shape (n_users, n_items)
    k : int, optional
    per_user : bool, default False
        Return the per-row means (NaN for a row of padding only).
    """
    pop = item_popularity(train)
    rec = _check_recommended(recommended, pop.shape[0])
    rec = rec[:, :_check_k(k, rec)]
    n_users = _nonzero_csr(train, "train").shape[0]
    info = -np.log2(np.maximum(pop, 1.0 / n_users))
    valid = rec >= 0
    return _list_mean(info[np.where(valid, rec, 0)], valid, per_user)


def popularity_bias(recommended, train, k=None, *, per_user=False):
    """Average recommendation popularity (ARP).

    The mean over each list of :func:`item_popularity` (fraction of training users who
    interacted with the item), then over rows.  Higher means more popularity-biased.
    Parameters as in :func:`novelty`.
    """
    pop = item_popularity(train)
    rec = _check_recommended(recommended, pop.shape[0])
    rec = rec[:, :_check_k(k, rec)]
    valid = rec >= 0
    return _list_mean(pop[np.where(valid, rec, 0)], valid, per_user)


def _unit_rows(item_vectors):
    """Row-normalised item vectors (dense float64 or sparse CSR); zero rows stay zero."""
    if sp.issparse(item_vectors):
        x = check_csr(item_vectors, "item_vectors", allow_empty=True).astype(np.float64)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ x)
    x = check_dense(item_vectors, "item_vectors", ndim=2, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return x * scale[:, None]


def intra_list_diversity(recommended, item_vectors, k=None, *, per_user=False,
                         batch_size=4096):
    """Mean pairwise cosine distance ``1 - cos(i, j)`` between the items of each list.

    Parameters
    ----------
    recommended : array-like of int, shape (n_rows, >= k)
    item_vectors : array-like (n_items, d) or scipy.sparse matrix (n_items, n_features)
        Item factors or item features.  An all-zero vector has similarity 0 to every
        item.
    k : int, optional
    per_user : bool, default False
        Return per-row values (NaN for a row with fewer than two items).
    batch_size : int, default 4096
        Rows processed at once (bounds memory for dense vectors).
    """
    x = _unit_rows(item_vectors)
    rec = _check_recommended(recommended, x.shape[0])
    rec = rec[:, :_check_k(k, rec)]
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n_rows, kk = rec.shape
    valid = rec >= 0
    safe = np.where(valid, rec, 0)
    pair_a, pair_b = np.triu_indices(kk, 1)
    pair_valid = valid[:, pair_a] & valid[:, pair_b]
    if sp.issparse(x):
        sims = np.zeros((n_rows, pair_a.size))
        for p, (a, b) in enumerate(zip(pair_a, pair_b)):
            sims[:, p] = np.asarray(x[safe[:, a]].multiply(x[safe[:, b]]).sum(axis=1)).ravel()
    else:
        sims = np.empty((n_rows, pair_a.size))
        for start in range(0, n_rows, batch_size):
            v = x[safe[start:start + batch_size]]  # (b, k, d)
            gram = np.einsum("bid,bjd->bij", v, v)
            sims[start:start + batch_size] = gram[:, pair_a, pair_b]
    n_pairs = pair_valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        row = np.where(n_pairs > 0,
                       np.where(pair_valid, 1.0 - sims, 0.0).sum(axis=1) / n_pairs, np.nan)
    return _reduce(row, per_user)


def personalization(recommended, k=None, *, per_user=False):
    """Mean dissimilarity ``1 - cos(L_u, L_v)`` between the lists of every pair of rows.

    ``L_u`` is the binary item-indicator vector of row ``u``'s top ``k`` (so for two
    full lists the cosine is their overlap divided by ``k``).  Computed exactly in
    O(n_rows * k) from item counts, without forming the n_rows x n_rows matrix.

    Parameters
    ----------
    recommended : array-like of int, shape (n_rows, >= k)
    k : int, optional
    per_user : bool, default False
        Return, per row, the mean dissimilarity to every other non-empty row (NaN for
        an empty row or when there is no other row).  Their mean is the overall value.
    """
    rec = _check_recommended(recommended, None)
    rec = rec[:, :_check_k(k, rec)]
    valid = rec >= 0
    length = valid.sum(axis=1).astype(np.float64)
    live = length > 0
    n_live = int(live.sum())
    row = np.full(rec.shape[0], np.nan)
    if n_live >= 2:
        inv_sqrt = np.zeros_like(length)
        inv_sqrt[live] = 1.0 / np.sqrt(length[live])
        ids = rec[valid]
        owner = np.nonzero(valid)[0]
        # w[i] = sum over rows containing item i of 1 / sqrt(len(row))
        n_items = int(ids.max()) + 1
        w = np.bincount(ids, weights=inv_sqrt[owner], minlength=n_items)
        # sum over other rows v of cos(u, v) = sum_{i in L_u} (w_i - 1/sqrt(l_u)) / sqrt(l_u)
        contrib = (w[ids] - inv_sqrt[owner]) * inv_sqrt[owner]
        cos_sum = np.bincount(owner, weights=contrib, minlength=rec.shape[0])
        row[live] = 1.0 - cos_sum[live] / (n_live - 1)
    return _reduce(row, per_user)
