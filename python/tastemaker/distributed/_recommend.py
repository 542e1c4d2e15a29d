"""``recommend_all``: top-N for every user on a Dask cluster, written as partitioned Parquet."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from .._validation import check_csr, check_int
from ..models.base import FactorModel
from ._ingest import broadcast, workers_of

__all__ = ["recommend_all"]


def _recommend_partition(path, part, item_factors, N, threads, item_ids):
    """Top-N of one partition of users by the models' own ``recommend`` (the native
    top-k, seen items excluded inside the kernel), written to ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    queries, indptr, indices, user_ids = part
    m = FactorModel()
    m.user_factors, m.item_factors, m.num_threads = queries, item_factors, threads
    n = queries.shape[0]
    if indptr is None:
        ids, scores = m.recommend(np.arange(n), N=N, filter_already_liked_items=False)
    else:
        rows = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                             shape=(n, item_factors.shape[0]))
        ids, scores = m.recommend(np.arange(n), rows, N=N)
    valid = ids >= 0  # rows with fewer eligible items are padded with -1
    counts = valid.sum(axis=1)
    user_col = np.repeat(user_ids, counts)
    rank = (np.cumsum(valid, axis=1, dtype=np.int32))[valid]
    table = pa.table({"user": user_col, "item": item_ids[ids[valid]],
                      "score": scores[valid], "rank": rank})
    pq.write_table(table, path)
    return path, int(valid.sum())


def recommend_all(client, model, user_items=None, N=10, output="recs/*.parquet", *,
                  filter_already_liked_items=True, user_ids=None, item_ids=None,
                  partition_size=None) -> list:
    """Top-``N`` items for every user, computed on a Dask cluster, written to Parquet.

    Parameters
    ----------
    client : distributed.Client
    model : FactorModel
        A fitted factor model (``tastemaker.ALS``, for example from :func:`fit_als`).
    user_items : scipy.sparse matrix (n_users, n_items) or Interactions, optional
        Each user's seen items (stored entries), excluded from their recommendations.
        Required when ``filter_already_liked_items``.
    N : int, default 10
    output : str, default "recs/*.parquet"
        File name pattern with one ``*``, replaced by the partition number (00000, ...);
        its directory is created.
    filter_already_liked_items : bool, default True
    user_ids, item_ids : array-like, optional
        External ids of the rows and columns; default ``model.user_ids`` /
        ``model.item_ids`` (set by :func:`fit_als` and the CLI), or those of
        ``user_items`` when it is an Interactions, else the indices.
    partition_size : int, optional
        Users per partition (default: about four partitions per worker).

    Returns
    -------
    list of str
        The files written.  Each has columns ``user`` and ``item`` (external ids),
        ``score`` (float32) and ``rank`` (int32, 1 = best), sorted by user then rank;
        users with fewer than N eligible items have fewer rows.
    """
    from distributed import Client

    if not isinstance(client, Client):
        raise ValueError(f"client: expected a distributed.Client, got {type(client).__name__}")
    if not isinstance(model, FactorModel):
        raise ValueError(f"model: expected a tastemaker factor model, got {type(model).__name__}")
    uf, itf = model._factors()
    n_users, n_items = uf.shape[0], itf.shape[0]
    N = check_int(N, "N", minimum=1)
    filt = FactorModel._check_bool(filter_already_liked_items, "filter_already_liked_items")
    if not isinstance(output, str) or output.count("*") != 1:
        raise ValueError(f"output: expected a file pattern with exactly one '*', got {output!r}")
    from ..data.interactions import Interactions

    if isinstance(user_items, Interactions):
        user_ids = user_items.user_ids if user_ids is None else user_ids
        item_ids = user_items.item_ids if item_ids is None else item_ids
        user_items = user_items.to_csr()
    seen = None
    if filt:
        if user_items is None:
            raise ValueError("user_items: required when filter_already_liked_items is True")
        seen = check_csr(user_items, "user_items", shape=(n_users, n_items), allow_empty=True)

    def ids_of(given, attr, n, name):
        ids = getattr(model, attr, None) if given is None else given
        if ids is None:
            return np.arange(n, dtype=np.int64)
        ids = np.asarray(ids)
        if ids.shape != (n,):
            raise ValueError(f"{name}: expected {n} ids (one per row of the model's factors), "
                             f"got shape {ids.shape}")
        return ids

    uids = ids_of(user_ids, "user_ids", n_users, "user_ids")
    iids = ids_of(item_ids, "item_ids", n_items, "item_ids")
    cluster = workers_of(client)
    workers = sorted(cluster)
    if partition_size is None:
        partition_size = max(1, -(-n_users // (4 * len(workers))))
    size = check_int(partition_size, "partition_size", minimum=1)
    threads = check_int(getattr(model, "num_threads", 0), "num_threads", minimum=0)
    if threads == 0:
        threads = min(int(n) for n in cluster.values())

    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    itf_f, iids_f = broadcast(client, itf, iids)
    n_parts = -(-n_users // size)
    width = max(5, len(str(n_parts - 1)))
    parts, paths = [], []
    for k, a in enumerate(range(0, n_users, size)):
        b = min(a + size, n_users)
        if seen is not None:
            lo, hi = int(seen.indptr[a]), int(seen.indptr[b])
            indptr = (seen.indptr[a:b + 1] - lo).astype(np.int64)
            indices = np.ascontiguousarray(seen.indices[lo:hi], dtype=np.int32)
        else:
            indptr = indices = None
        parts.append((np.ascontiguousarray(uf[a:b]), indptr, indices, uids[a:b]))
        paths.append(output.replace("*", f"{k:0{width}d}"))
    # each partition's rows travel inside its task (not scattered), so the task can be
    # rerun elsewhere if its worker dies
    futures = [client.submit(_recommend_partition, path, part, itf_f, N, threads, iids_f,
                             pure=False) for path, part in zip(paths, parts)]
    return [path for path, _ in client.gather(futures)]
