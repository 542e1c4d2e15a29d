"""Event log on a Dask cluster -> user and item blocks of the weighted matrix, on workers.

The weighting is :class:`tastemaker.Interactions`' own (``_ids_array``, ``_to_seconds``,
``Interactions._event_strength``, ``Interactions._aggregate``, the k-core rule and
:func:`tastemaker.data.weighting.transform_values`), applied per partition and per
block, so every entry gets the value ``Interactions.from_frame(...).to_csr()`` gives it.

Steps (P partitions, W user blocks and W item blocks, block b pinned to worker b % W):

1. id maps: distributed ``value_counts`` of the user and item columns; the client sorts
   the unique ids (the order ``Interactions`` uses) and copies them to every worker
   (broadcast) as the ``pd.Index`` lookups of ``Interactions.user_index``; the event
   counts place the user block boundaries so that blocks hold about equal work (each
   row costs its entries plus ``row_cost``, the solve's fixed work per row);
2. each partition: ids -> dense codes (``id_positions``, as ``Interactions``), per-event
   strength (value x event weight x recency decay), split by user block;
3. each user block: its pieces from every partition, in partition order, aggregated per
   (user, item) pair; the k-core filter runs in rounds (item counts summed over blocks);
   ids are relabelled; the transform uses whole-matrix statistics summed over blocks;
4. each user block becomes a CSR (its users x all items); the item block boundaries
   balance the same work, counted from the stored entries; each user block sends its
   entries, split by item block, to the item blocks (CSR of their items x all users).
"""

from __future__ import annotations

import operator
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import check_int
from ..data.interactions import (
    _AGGREGATES,
    Interactions,
    _half_life_seconds,
    _ids_array,
    _time_value,
    _to_seconds,
    id_positions,
)
from ..data.weighting import combine_corpus_stats, corpus_stats, transform_values

__all__ = ["Blocks", "build_blocks", "read_events"]

_COLUMNS = ("user", "item", "value", "event", "timestamp")


# --------------------------------------------------------------------------- input
def read_events(events, columns: dict):
    """A Dask DataFrame with the named columns, from a Dask or pandas DataFrame or a
    Parquet path / glob / list of paths."""
    import dask.dataframe as dd

    needed = [c for c in columns.values() if c is not None]
    if isinstance(events, (str, os.PathLike)) or (
            isinstance(events, (list, tuple)) and events
            and all(isinstance(e, (str, os.PathLike)) for e in events)):
        paths = [os.fspath(e) for e in events] if isinstance(events, (list, tuple)) \
            else os.fspath(events)
        try:
            ddf = dd.read_parquet(paths)
        except (OSError, ValueError, IndexError) as exc:
            raise ValueError(f"events: cannot read Parquet {paths!r} ({exc})") from None
    elif isinstance(events, dd.DataFrame):
        ddf = events
    elif isinstance(events, pd.DataFrame):
        ddf = dd.from_pandas(events, npartitions=max(1, min(8, len(events) // 100_000 + 1)))
    else:
        raise ValueError("events: expected a Dask DataFrame, a pandas DataFrame or a path / "
                         f"glob of Parquet files, got {type(events).__name__}")
    for arg, col in columns.items():
        if col is None:
            if arg in ("user", "item"):
                raise ValueError(f"{arg}: a column name is required")
            continue
        if col not in ddf.columns:
            raise ValueError(f"{arg}: column {col!r} not in the events (columns: "
                             f"{list(ddf.columns)})")
    return ddf[needed]


# --------------------------------------------------------------------------- helpers
def _codes(raw: pd.Series, lookup: pd.Index, which: str, name: str) -> np.ndarray:
    """External ids of one partition -> dense codes in the broadcast id map ``lookup``
    (``Interactions``' own lookup; a pd.Index builds its hash table once per worker)."""
    arr = _ids_array(raw, name)
    if lookup.dtype.kind == "O" and arr.dtype.kind != "U":
        arr = arr.astype(str)  # the whole column mixes kinds: strings everywhere
    return id_positions(lookup, arr, which, name)


def _split(key: np.ndarray, bounds: np.ndarray, arrays):
    """Rows grouped by the block of ``key`` (block b holds bounds[b] <= key < bounds[b+1]),
    the original order kept inside each block."""
    blk = np.searchsorted(bounds, key, side="right") - 1
    order = np.argsort(blk, kind="stable")
    cuts = np.searchsorted(blk[order], np.arange(1, len(bounds) - 1))
    out = []
    for a in arrays:
        out.append(None if a is None else np.split(a[order], cuts))
    return [tuple(None if parts is None else parts[b] for parts in out)
            for b in range(len(bounds) - 1)]


def _balanced_bounds(counts: np.ndarray, n_blocks: int, row_cost: float = 0.0) -> np.ndarray:
    """Row boundaries of ``n_blocks`` contiguous blocks holding about equal work, a row
    costing ``counts[row] + row_cost`` (its entries plus the solve's fixed work per row,
    in entries' worth).  Blocks are solved in parallel and each half-step waits for the
    slowest, so work, not entries, is what must be even: with ``row_cost = 0`` a block of
    many short rows takes longer than one of few long rows with the same entries."""
    counts = np.asarray(counts, dtype=np.float64)
    if row_cost:
        counts = counts + row_cost
    n = len(counts)
    n_blocks = max(1, min(n_blocks, n))
    cum = np.cumsum(counts, dtype=np.float64)
    total = cum[-1] if n else 0.0
    cuts = np.searchsorted(cum, total * np.arange(1, n_blocks) / n_blocks, side="left") + 1
    bounds = np.concatenate(([0], np.clip(cuts, 0, n), [n])).astype(np.int64)
    return np.maximum.accumulate(bounds)


def _id_map(vc: pd.Series, name: str):
    """(sorted unique ids, events per id) from a value_counts result."""
    vc = vc[vc > 0]  # a categorical column counts its unused categories too
    ids = _ids_array(pd.Series(vc.index, copy=False), name)
    uniq, inv = np.unique(ids, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=vc.to_numpy(np.float64), minlength=len(uniq))
    return uniq, counts


def _max_seconds(df: pd.DataFrame, col: str, name: str) -> float:
    s = _to_seconds(df[col], name)
    return float(s.max()) if s.size else -np.inf


# --------------------------------------------------------------------------- tasks
def _partition_entries(df, spec, user_lookup, item_lookup, reference, bounds):
    """One partition -> per user block (user code, item code, strength, seconds)."""
    cols, names = spec["columns"], spec["names"]
    u = _codes(df[cols["user"]], user_lookup, "user", names["user"])
    i = _codes(df[cols["item"]], item_lookup, "item", names["item"])
    seconds = (None if cols["timestamp"] is None
               else _to_seconds(df[cols["timestamp"]], names["timestamp"]))
    strength = Interactions._event_strength(
        len(df), None if cols["value"] is None else df[cols["value"]],
        None if cols["event"] is None else df[cols["event"]], seconds, names,
        spec["event_weights"], spec["half_life"], reference)
    return _split(u, bounds, (u, i, strength, seconds))


def _aggregate_block(start, n_items, aggregate, *pieces):
    """The entries of one user block, one per (user, item) pair, sorted by (user, item);
    user codes relative to the block's first user."""
    u = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int64)
    i = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, np.int64)
    s = np.concatenate([p[2] for p in pieces]) if pieces else np.zeros(0)
    t = (np.concatenate([p[3] for p in pieces]) if pieces and pieces[0][3] is not None
         else None)
    if len(u) == 0:
        z = np.zeros(0, np.int64)
        return {"u": z, "i": z, "raw": np.zeros(0), "keep": np.zeros(0, dtype=bool)}
    uu, ii, raw, _, _ = Interactions._aggregate(u - start, i, s, np.ones(len(u), np.int64), t,
                                                n_items, aggregate)
    return {"u": uu.astype(np.int64), "i": ii.astype(np.int64), "raw": raw,
            "keep": np.ones(len(uu), dtype=bool)}


def _item_counts(block, n_items):
    return np.bincount(block["i"][block["keep"]], minlength=n_items)


def _column_counts(m: sp.csr_matrix) -> np.ndarray:
    return np.bincount(m.indices, minlength=m.shape[1])


def _kcore_round(block, icount, n_rows, min_u, min_i):
    """One round of ``Interactions._kcore``'s rule: drop the entries of users with fewer
    than ``min_u`` items or items with fewer than ``min_i`` users (counts of kept
    entries; a user's entries all live in its block, item counts are summed)."""
    keep = block["keep"]
    ucount = np.bincount(block["u"][keep], minlength=n_rows)
    drop = keep & ((ucount[block["u"]] < min_u) | (icount[block["i"]] < min_i))
    return {**block, "keep": keep & ~drop}, int(drop.sum())


def _used_users(block, n_rows):
    return np.bincount(block["u"][block["keep"]], minlength=n_rows) > 0


def _relabel(block, user_map, item_map):
    keep = block["keep"]
    return {"u": user_map[block["u"][keep]], "i": item_map[block["i"][keep]],
            "raw": block["raw"][keep]}


def _block_corpus(block, n_rows, n_items):
    return corpus_stats(block["u"], block["i"], block["raw"], (n_rows, n_items))


def _user_csr(block, n_rows, n_items, transform, corpus):
    """CSR (block users x items, float32) of the values ``Interactions.to_csr`` gives."""
    if transform is None:
        vals = block["raw"]
    else:
        vals = transform_values(block["u"], block["i"], block["raw"], (n_rows, n_items),
                                transform["method"], corpus=corpus, **transform["params"])
    vals = vals.astype(np.float32)
    keep = vals != 0
    rows, cols = block["u"][keep], block["i"][keep]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    m = sp.csr_matrix((vals[keep], cols.astype(np.int32), indptr), shape=(n_rows, n_items))
    m.has_sorted_indices = True
    return m


def _to_item_blocks(m: sp.csr_matrix, start: int, item_bounds):
    """The entries of a user block split by item block: (item, global user, value)."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) + start
    return _split(m.indices.astype(np.int64), item_bounds, (m.indices.astype(np.int64), rows,
                                                             m.data))


def _item_csr(start, n_rows, n_users, *pieces):
    """CSR (block items x all users) with sorted indices: the rows of ``m.T.tocsr()``."""
    i = np.concatenate([p[0] for p in pieces]) - start
    u = np.concatenate([p[1] for p in pieces])
    v = np.concatenate([p[2] for p in pieces])
    order = np.lexsort((u, i))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n_rows), out=indptr[1:])
    m = sp.csr_matrix((v[order], u[order].astype(np.int32), indptr), shape=(n_rows, n_users))
    m.has_sorted_indices = True
    return m


def _same(x):
    return x


def workers_of(client) -> dict:
    """{worker address: threads} straight from the scheduler, refusing an empty cluster.
    Not ``client.scheduler_info()["workers"]``: the client's periodic identity refresh
    asks for no per-worker detail and can overwrite that answer before it is read, which
    made a live two-worker cluster look empty under load."""
    workers = dict(client.nthreads())
    if not workers:
        raise ValueError("client: the cluster has no workers")
    return workers


def broadcast(client, *arrays):
    """Futures of ``arrays`` copied to every worker.  Made by tasks, not ``scatter``: the
    scheduler keeps a task's inputs, so a copy lost with a worker is recomputed, while
    scattered data is lost for good."""
    from distributed import wait

    futures = [client.submit(_same, a, pure=False) for a in arrays]
    wait(futures)
    client.replicate(futures)
    return futures


def _nnz(m: sp.csr_matrix) -> int:
    return int(m.nnz)


def _nbytes(m: sp.csr_matrix) -> int:
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


# --------------------------------------------------------------------------- driver
class Blocks:
    """Futures of the user and item blocks on the cluster, and what the client keeps.

    Attributes
    ----------
    user_ids, item_ids : ndarray
        External ids of the rows / columns (sorted, as ``Interactions`` numbers them).
    user_bounds, item_bounds : ndarray of int64, shape (W + 1,)
        Block b holds users ``user_bounds[b]:user_bounds[b + 1]``.
    users, items : list of Future
        CSR blocks (users x all items, items x all users), float32.
    workers : list of str
        Block b lives on ``workers[b % len(workers)]``.
    nnz : int
    block_bytes : list of int
        Bytes of the user block + item block pinned to each worker.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


def build_blocks(client, events, *, user="user", item="item", value=None, event=None,
                 timestamp=None, event_weights=None, aggregate="sum", half_life=None,
                 reference_time=None, transform=None, min_user_count=1, min_item_count=1,
                 n_blocks=None, row_cost=0.0) -> Blocks:
    """The weighted matrix of an event log as user and item blocks pinned to workers;
    options as :meth:`tastemaker.Interactions.from_frame`.  ``row_cost``: the solve's
    fixed work per row in entries' worth, for balancing the blocks (see
    :func:`_balanced_bounds`)."""
    from distributed import wait

    columns = {"user": user, "item": item, "value": value, "event": event,
               "timestamp": timestamp}
    for arg, col in columns.items():
        if col is not None and not isinstance(col, str):
            raise ValueError(f"{arg}: expected a column name (str), got {type(col).__name__}")
    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate: expected one of {_AGGREGATES}, got {aggregate!r}")
    min_u = check_int(min_user_count, "min_user_count", minimum=1)
    min_i = check_int(min_item_count, "min_item_count", minimum=1)
    tr = Interactions._check_transform(transform)
    half_life_s = _half_life_seconds(half_life)
    if half_life_s is not None and timestamp is None:
        raise ValueError("half_life: recency decay needs a timestamp column")
    ddf = read_events(events, columns)
    names = {k: (f"column {v!r}" if v is not None else k) for k, v in columns.items()}
    spec = {"columns": columns, "names": names, "event_weights": event_weights,
            "half_life": half_life_s}

    workers = sorted(workers_of(client))
    W = len(workers) if n_blocks is None else check_int(n_blocks, "n_blocks", minimum=1)
    on = [[workers[b % len(workers)]] for b in range(W)]

    # 1. id maps (distributed unique) and, for the decay, the latest event
    import dask

    todo = [ddf[user].value_counts(dropna=False, split_out=1),
            ddf[item].value_counts(dropna=False, split_out=1)]
    if half_life_s is not None and reference_time is None:
        todo.append(ddf.map_partitions(_max_seconds, timestamp, names["timestamp"],
                                       meta=(None, "f8")).max())
    got = dask.compute(*todo)
    if int(got[0].sum()) == 0:
        raise ValueError("events: no events (the frame is empty)")
    user_ids, user_counts = _id_map(got[0], names["user"])
    item_ids, _ = _id_map(got[1], names["item"])
    reference = None
    if half_life_s is not None:
        reference = (float(got[2]) if reference_time is None
                     else _time_value(reference_time, "reference_time"))
    ubounds = _balanced_bounds(user_counts, W, row_cost)
    n_items0 = len(item_ids)
    uid_f, iid_f = broadcast(client, pd.Index(user_ids), pd.Index(item_ids))

    # 2. partitions -> pieces per user block
    parts = client.compute(ddf.to_delayed())
    entries = [client.submit(_partition_entries, p, spec, uid_f, iid_f, reference, ubounds,
                             pure=False) for p in parts]
    del parts
    Wu = len(ubounds) - 1

    # 3. user blocks: aggregate, k-core, relabel, transform
    blocks = []
    for b in range(Wu):
        pieces = [client.submit(operator.getitem, e, b, pure=False) for e in entries]
        blocks.append(client.submit(_aggregate_block, int(ubounds[b]), n_items0, aggregate,
                                    *pieces, workers=on[b], allow_other_workers=True,
                                    pure=False))
    del entries
    n_rows = [int(ubounds[b + 1] - ubounds[b]) for b in range(Wu)]
    user_keep = None
    if min_u > 1 or min_i > 1:
        while True:
            icount = np.sum(client.gather([client.submit(_item_counts, blk, n_items0)
                                           for blk in blocks]), axis=0)
            rounds = [client.submit(_kcore_round, blk, icount, n_rows[b], min_u, min_i,
                                    workers=on[b], allow_other_workers=True, pure=False)
                      for b, blk in enumerate(blocks)]
            blocks = [client.submit(operator.getitem, r, 0, pure=False) for r in rounds]
            if sum(client.gather([client.submit(operator.getitem, r, 1, pure=False)
                                  for r in rounds])) == 0:
                break
        used_u = client.gather([client.submit(_used_users, blk, n_rows[b])
                                for b, blk in enumerate(blocks)])
        used_i = icount > 0
        if not used_i.any():
            raise ValueError(
                f"min_user_count/min_item_count: no interactions survive the filter "
                f"(min_user_count={min_u}, min_item_count={min_i})")
        user_keep = np.concatenate(used_u)
    if user_keep is not None:
        item_map = np.cumsum(used_i) - 1
        item_ids = item_ids[used_i]
        new_blocks = []
        n_new = []
        for b, blk in enumerate(blocks):
            keep_b = used_u[b]
            user_map = np.cumsum(keep_b) - 1
            n_new.append(int(keep_b.sum()))
            new_blocks.append(client.submit(_relabel, blk, user_map, item_map, workers=on[b],
                                            allow_other_workers=True, pure=False))
        blocks = new_blocks
        user_ids = user_ids[user_keep]
        n_rows = n_new
        ubounds = np.concatenate(([0], np.cumsum(n_rows))).astype(np.int64)
    n_users, n_items = len(user_ids), len(item_ids)
    corpus = None
    if tr is not None and tr["method"] in ("tfidf", "bm25"):
        corpus = combine_corpus_stats(
            client.gather([client.submit(_block_corpus, blk, n_rows[b], n_items)
                           for b, blk in enumerate(blocks)]), n_users)
    users = [client.submit(_user_csr, blk, n_rows[b], n_items, tr, corpus, workers=on[b],
                           allow_other_workers=True, pure=False)
             for b, blk in enumerate(blocks)]
    del blocks

    # 4. item blocks: the transpose, by item block, balanced by the stored entries (not
    # the events: a title played again and again has one entry per user)
    entries_per_item = np.sum(client.gather([client.submit(_column_counts, m)
                                             for m in users]), axis=0)
    ibounds = _balanced_bounds(entries_per_item, W, row_cost)
    Wi = len(ibounds) - 1
    to_items = [client.submit(_to_item_blocks, m, int(ubounds[b]), ibounds, pure=False)
                for b, m in enumerate(users)]
    items = []
    for c in range(Wi):
        pieces = [client.submit(operator.getitem, t, c, pure=False) for t in to_items]
        items.append(client.submit(_item_csr, int(ibounds[c]), int(ibounds[c + 1] - ibounds[c]),
                                   n_users, *pieces, workers=on[c], allow_other_workers=True,
                                   pure=False))
    del to_items
    wait(users + items)
    nbytes = client.gather([client.submit(_nbytes, m) for m in users + items])
    nnz = sum(client.gather([client.submit(_nnz, m) for m in users]))
    if nnz == 0:
        raise ValueError("events: no non-zero interactions after weighting")
    per_worker = [0] * len(workers)
    for b, nb in enumerate(nbytes):
        blk = b if b < Wu else b - Wu
        per_worker[blk % len(workers)] += nb
    return Blocks(user_ids=user_ids, item_ids=item_ids, user_bounds=ubounds,
                  item_bounds=ibounds, users=users, items=items, workers=workers,
                  on=on, nnz=nnz, block_bytes=per_worker, id_futures=(uid_f, iid_f))
