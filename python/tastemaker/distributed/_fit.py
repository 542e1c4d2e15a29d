"""``fit_als``: implicit ALS on a Dask cluster, the same model as ``ALS.fit``."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import scipy.sparse as sp

from .._memory import zeros
from .._validation import check_random_state
from ..models.als import (
    ALS,
    _auto_regularization,
    _check_scales,
    _confidence_mass,
    _fill_initial,
    _initial_rows,
)
from ._ingest import build_blocks

__all__ = ["fit_als"]

_SPLITTABLE = ("PCG64", "PCG64DXSM")  # bit generators with advance()
# The solve's fixed work per row in stored entries' worth, to balance the blocks (every
# half-step waits for its slowest block).  Measured with one thread on the ML-20M-shaped
# synthetic matrix at 32 and 64 factors (time = a * rows + b * entries, fitted over rows
# of 5 to 5,000 entries): CG 13-24, Cholesky 56-64; it hardly moves with the factors.
_ROW_COST = {"cg": 20.0, "cholesky": 60.0}


# --------------------------------------------------------------------------- tasks
# Every task returns a new object and never writes into its inputs: a task that Dask
# reruns (its worker died) must see its inputs as the first try saw them.
def _threads(p: dict) -> int:
    """The model's num_threads, or (0) the worker's thread count: one block is solved per
    worker at a time, so the kernel's OpenMP team takes the worker's cores."""
    if p["num_threads"]:
        return p["num_threads"]
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 0


def _with_gram(x: np.ndarray, p: dict) -> tuple:
    """A block's state: its factors and their partial Gram x^T x (float64), computed once,
    by the task that made the factors.  The Gram of a side is the sum of its blocks'."""
    from .. import _core

    return x, _core.als_gram(x, _threads(p))


def _init_block(state, offset, n_rows, f, p):
    return _with_gram(_initial_rows(state, offset, zeros((n_rows, f))), p)


def _needs(m: sp.csr_matrix, other_bounds: np.ndarray) -> list:
    """For each block of the other side, the rows of this block (local numbers, sorted)
    with an entry in it: the factor rows that block's solve needs from here (Spark's
    out-blocks).  None stands for all rows (sent without a copy)."""
    n = m.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(m.indptr))
    blk = np.searchsorted(other_bounds, m.indices, side="right") - 1
    mark = np.zeros((len(other_bounds) - 1, n), dtype=bool)
    mark[blk, rows] = True
    return [None if row.all() else np.flatnonzero(row) for row in mark]


def _rows(state: tuple, needs: list, b: int) -> tuple:
    """What block ``b`` of the other side needs from this block's state: the factor rows
    its entries touch (all of them without a copy) and the block's partial Gram."""
    y, gram = state
    sel = needs[b]
    return (y if sel is None else y[sel]), gram


def _need_counts(needs: list) -> list:
    """How many of this block's rows each block of the other side needs (None: all)."""
    return [None if sel is None else len(sel) for sel in needs]


# A block receives another worker's block whole and picks its rows itself, instead of a
# task on the sender picking them, when the rows it does not need add at most this many
# bytes: one task and one scheduler round trip less on the half-step's critical path
# (milliseconds) for at most 1 MiB more (about a millisecond at 10 Gbit/s).  With two
# workers on the ML-20M shape a block touches all but a few rows of the other; at 1B
# interactions on 16 workers about 88%, and there the rows are picked by the sender.
_WHOLE_EXTRA_BYTES = 1 << 20


def _compact(m: sp.csr_matrix) -> sp.csr_matrix:
    """The block with its columns renumbered 0.. over the columns it has entries in, in
    order: the rows of the other side it receives (blocks are contiguous ranges, so the
    pieces from blocks 0, 1, ... concatenate in that order).  The order of the entries
    is kept, so every row is solved exactly as against the whole other side."""
    used = np.zeros(m.shape[1], dtype=bool)
    used[m.indices] = True
    if used.all():
        return m
    position = (np.cumsum(used) - 1).astype(np.int32)
    c = sp.csr_matrix((m.data, position[m.indices], m.indptr),
                      shape=(m.shape[0], int(used.sum())))
    c.has_sorted_indices = True
    return c


def _empty_rows(m: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(m.indptr) == 0)


_scratch = threading.local()


def _gather_buffer(n: int, f: int) -> np.ndarray:
    """An (n, f) float32 array (64-byte aligned, on huge pages where possible) for the rows
    a solve gathers, kept by the worker thread for its next solves: a fresh one every
    half-step cost about 30,000 page faults per iteration at ML-20M scale on 2 workers
    (6-8% of the solve tasks' CPU time).  A task only reads it while it runs."""
    buf = getattr(_scratch, "rows", None)
    if buf is None or buf.shape[1] != f or buf.shape[0] < n:
        buf = zeros((max(n, 1), f))
        _scratch.rows = buf
    return buf[:n]


def _solve_block(m, current, p, *parts):
    """One block of a half-step by the single-machine fit's own solve (the native kernel,
    GIL released), and the new block's partial Gram.

    ``parts`` has one entry per block of the other side, in order: ``(rows, gram)`` made
    by :func:`_rows` on that block's worker (only the rows this block touches travel), or
    ``("pick", state, needs)``: that block's whole state (on this worker, or received
    whole), whose rows this block needs are picked here.  The rows are gathered once
    into one array (on huge pages, as ALS.fit has them) and the Grams summed in block
    order, so every block solves with the same Gram."""
    b = p["block"]
    x = current[0]
    # the start of CG (a task must not write into its inputs), on a 64-byte line as
    # ALS.fit's factors are: a copy by NumPy, or a block as received, may start 16
    # bytes in, and then every row the kernel loads and stores straddles cache lines
    out = zeros(x.shape)
    out[...] = x
    if m.shape[0]:
        pieces = []  # (source rows, selection or None)
        for part in parts:
            if len(part) == 3:
                pieces.append((part[1][0], part[2][b]))
            else:
                pieces.append((part[0], None))
        grams = [part[1][1] if len(part) == 3 else part[1] for part in parts]
        sizes = [y.shape[0] if sel is None else len(sel) for y, sel in pieces]
        if len(pieces) == 1 and pieces[0][1] is None:
            other = pieces[0][0]
        else:
            other = _gather_buffer(sum(sizes), out.shape[1])
            at = 0
            for (y, sel), n in zip(pieces, sizes):
                if sel is None:
                    other[at:at + n] = y
                else:
                    np.take(y, sel, axis=0, out=other[at:at + n])
                at += n
        if other.shape[0] != m.shape[1]:  # _needs and _compact disagree: a bug, not input
            raise RuntimeError(f"fit_als: a block needs {m.shape[1]} rows of the other side "
                               f"and received {other.shape[0]}")
        if other.shape[0] == 0:  # no entries at all: the kernel still wants one row
            other = np.zeros((1, out.shape[1]), dtype=np.float32)
        gram = grams[0].copy()
        for g in grams[1:]:
            gram += g
        q = dict(p, num_threads=_threads(p))
        ALS(solver=p["solver"])._solve(m, other, out, q, p["solver"], gram)
    return _with_gram(out, p)


def _check_block_scales(m, p) -> None:
    if m.shape[0]:
        _check_scales(m, m, p)


def _skip(rng: np.random.Generator, count: int) -> None:
    """Advance ``rng`` past ``count`` float32 draws, as ALS.fit's initialization would."""
    rng.bit_generator.advance(count // 2)
    if count % 2:
        rng.random(dtype=np.float32)


# --------------------------------------------------------------------------- API
def fit_als(client, events, *, user="user", item="item", value=None, event=None,
            timestamp=None, event_weights=None, aggregate="sum", half_life=None,
            reference_time=None, transform=None, min_user_count=1, min_item_count=1,
            n_blocks=None, show_progress=True, callback=None, **als_params) -> ALS:
    """Train implicit ALS on a Dask cluster; returns an ordinary :class:`tastemaker.ALS`.

    The result equals ``ALS(**als_params).fit(Interactions.from_frame(events, ...).to_csr())``
    within float rounding: the same weighting code builds the matrix, the same initial
    factors are drawn from ``random_state``, and every block is solved by the same native
    kernel.  Only the Gram matrices are summed from per-block parts (float64), so factors
    agree to float rounding (often bit for bit), not by construction.

    Parameters
    ----------
    client : distributed.Client
    events : dask.dataframe.DataFrame, pandas.DataFrame, or str / list of str
        The event log, or a path, glob or list of Parquet files (read with
        ``dask.dataframe.read_parquet``).
    user, item, value, event, timestamp, event_weights, aggregate, half_life,
    reference_time, transform, min_user_count, min_item_count
        As :meth:`tastemaker.Interactions.from_frame` (same meaning, same defaults).
    n_blocks : int, optional
        Blocks per side (default: one per worker); block b lives on worker b % workers.
        Blocks are contiguous ranges of rows holding about equal work: a row's stored
        entries plus the solve's fixed cost per row (about 20 entries' worth for CG, 60
        for Cholesky).
    show_progress : bool, default True
        Print the dashboard link and show a tqdm bar with one step per iteration.
    callback : callable, optional
        ``callback(iteration, elapsed_seconds, None)`` after every iteration.
    **als_params
        :class:`tastemaker.ALS` parameters (``factors``, ``regularization``, ``alpha``,
        ``iterations``, ``solver``, ``cg_steps``, ``regularization_exponent``,
        ``random_state``, ``num_threads``).  ``num_threads=0`` uses each worker's thread
        count.  ``calculate_training_loss`` is not supported.

    Returns
    -------
    ALS
        With ``user_factors``, ``item_factors`` and the id maps ``user_ids``, ``item_ids``
        (row ``i`` is external id ``user_ids[i]``); ``save`` keeps the id maps.

    Notes
    -----
    **Memory per worker** (W workers, one user and one item block each, f factors,
    4-byte floats): its user block and item block (CSR: 8 bytes per stored entry + 8 per
    row; columns renumbered over the rows of the other side they touch), its own factor
    blocks (rows x f x 4), for each block of the other side the list of its rows that
    block needs (8 bytes each, once), and during a half-step the rows of the other side
    its block touches twice, as received and gathered into one array (at most
    2 x n_other x f x 4; the gathered array is kept per worker thread for the next
    half-steps), plus the new block and f x f float64 Grams.  The ingest holds, per worker, its
    partitions' events and its block's aggregated entries (about 40 bytes per event)
    once, before the iterations start.

    **Traffic per iteration**: a half-step sends each block only the rows of the other
    side's blocks that its entries touch (Spark's out-blocks; nothing from the blocks on
    its own worker), each piece with its block's partial f x f Gram (float64), which
    the task that made the block computed once; a block that touches all but a few rows
    of another worker's block (the others would add at most 1 MiB) receives that block
    whole and picks its rows itself.  So at
    most (W - 1) x (n_users + n_items) x f x 4 bytes (every block touching every row),
    less on sparse data, plus 2 W (W - 1) f^2 x 8.  Tasks per half-step: one per block,
    plus one per pair of blocks on different workers that sends only the touched rows
    (it picks them where they are).

    **Faults**: a worker that dies is replaced by Dask, which recomputes what was lost
    from its lineage (back to the data read if need be).  Tasks never modify their
    inputs, so a recomputed block is the block that was lost and the result is unchanged.
    """
    from distributed import Client, wait
    from tqdm.auto import tqdm

    if not isinstance(client, Client):
        raise ValueError(f"client: expected a distributed.Client, got {type(client).__name__}")
    unknown = sorted(set(als_params) - set(ALS._param_names()))
    if unknown:
        raise ValueError(f"als_params: unknown ALS parameter(s) {unknown} "
                         f"(known: {ALS._param_names()})")
    model = ALS(**als_params)
    p = model._checked_params()
    p["solver"] = model.solver
    if model.calculate_training_loss:
        raise ValueError("calculate_training_loss: not supported by fit_als")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback: expected a callable, got {type(callback).__name__}")
    if not isinstance(show_progress, (bool, np.bool_)):
        raise ValueError(f"show_progress: expected a bool, got {type(show_progress).__name__}")
    rng = check_random_state(model.random_state)

    if show_progress:
        print(f"tastemaker.distributed: Dask dashboard at {client.dashboard_link}",
              file=sys.stderr)
    blocks = build_blocks(client, events, user=user, item=item, value=value, event=event,
                          timestamp=timestamp, event_weights=event_weights,
                          aggregate=aggregate, half_life=half_life,
                          reference_time=reference_time, transform=transform,
                          min_user_count=min_user_count, min_item_count=min_item_count,
                          n_blocks=n_blocks, row_cost=_ROW_COST[model.solver])
    if isinstance(model.regularization, str):  # "auto": from the whole matrix, as fit does
        parts = client.gather([client.submit(_confidence_mass, m) for m in blocks.users])
        model.regularization_ = _auto_regularization(sum(mp[0] for mp in parts),
                                                     sum(mp[1] for mp in parts), p["alpha"])
    else:
        model.regularization_ = p["regularization"]
    p["regularization"] = model.regularization_
    # ALS.fit's overflow checks, block by block (every row of either side is in a block)
    client.gather([client.submit(_check_block_scales, m, p)
                   for m in blocks.users + blocks.items])
    f = p["factors"]
    n_users, n_items = len(blocks.user_ids), len(blocks.item_ids)
    ub, ib = blocks.user_bounds, blocks.item_bounds
    on = blocks.on

    def pinned(b):
        return {"workers": on[b % len(on)], "allow_other_workers": True, "pure": False}

    # the initial factors of ALS.fit: users' then items' matrix from one stream
    state = rng.bit_generator.state
    if state["bit_generator"] in _SPLITTABLE and not state.get("has_uint32"):
        X = [client.submit(_init_block, state, int(ub[b]) * f, int(ub[b + 1] - ub[b]), f, p,
                           **pinned(b)) for b in range(len(ub) - 1)]
        Y = [client.submit(_init_block, state, (n_users + int(ib[c])) * f,
                           int(ib[c + 1] - ib[c]), f, p, **pinned(c))
             for c in range(len(ib) - 1)]
        _skip(rng, (n_users + n_items) * f)
    else:  # a generator that cannot jump: draw on the client, send the blocks
        x0 = _fill_initial(rng, zeros((n_users, f)))
        y0 = _fill_initial(rng, zeros((n_items, f)))
        X = [client.submit(_with_gram, x0[ub[b]:ub[b + 1]].copy(), p, **pinned(b))
             for b in range(len(ub) - 1)]
        Y = [client.submit(_with_gram, y0[ib[c]:ib[c + 1]].copy(), p, **pinned(c))
             for c in range(len(ib) - 1)]
        del x0, y0

    # Resident on the workers for the whole fit: each block's matrix with its columns
    # numbered over the rows of the other side it touches, and which of its own rows each
    # block of the other side needs.  A half-step then moves only those rows (plus one
    # f x f Gram), never the whole other side.
    user_needs = [client.submit(_needs, m, ib, **pinned(b)) for b, m in enumerate(blocks.users)]
    item_needs = [client.submit(_needs, m, ub, **pinned(c)) for c, m in enumerate(blocks.items)]
    empty = [client.submit(_empty_rows, m, **pinned(b)) for b, m in enumerate(blocks.users)] \
        + [client.submit(_empty_rows, m, **pinned(c)) for c, m in enumerate(blocks.items)]
    users = [client.submit(_compact, m, **pinned(b)) for b, m in enumerate(blocks.users)]
    items = [client.submit(_compact, m, **pinned(c)) for c, m in enumerate(blocks.items)]
    del blocks.users, blocks.items

    def whole(needs, bounds):
        """whole[c][b]: block b of the other side takes block c whole and picks its rows
        itself (same worker, or the rows it does not need are few: _WHOLE_EXTRA_BYTES)."""
        counts = client.gather([client.submit(_need_counts, nd, **pinned(c))
                                for c, nd in enumerate(needs)])
        return [[on[c % len(on)] == on[b % len(on)] or n is None
                 or (bounds[c + 1] - bounds[c] - n) * f * 4 <= _WHOLE_EXTRA_BYTES
                 for b, n in enumerate(row)] for c, row in enumerate(counts)]

    whole_users = whole(user_needs, ub)  # [user block][item block]
    whole_items = whole(item_needs, ib)

    def half_step(mats, current, others, needs, take_whole):
        """Solve every block of one side against the other side's current factors: per
        block one task, plus one per block of the other side on another worker of which
        it needs only a few rows (picks them where they are).  No task builds the whole
        side or its Gram."""
        return [client.submit(
            _solve_block, m, x, dict(p, block=b),
            *[("pick", y, needs[c]) if take_whole[c][b]
              else client.submit(_rows, y, needs[c], b, **pinned(c))
              for c, y in enumerate(others)], **pinned(b))
            for b, (m, x) in enumerate(zip(mats, current))]

    # An iteration is two such rounds.  The whole graph is submitted at once: iteration
    # t + 1 waits only on its inputs, never on the client; the bar follows each iteration.
    done = []
    for _ in range(p["iterations"]):
        X = half_step(users, X, Y, item_needs, whole_items)
        Y = half_step(items, Y, X, user_needs, whole_users)
        done.append(X + Y)
    start = time.perf_counter()
    with tqdm(total=p["iterations"], disable=not show_progress, desc="ALS (dask)") as bar:
        for it in range(p["iterations"]):
            wait(done[it])
            done[it] = None  # the client lets go of it; the cluster frees it when used
            bar.update(1)
            if callback is not None:
                callback(it, time.perf_counter() - start, None)
    user_factors = zeros((n_users, f))
    item_factors = zeros((n_items, f))
    for b, (x, _) in enumerate(client.gather(X)):
        user_factors[ub[b]:ub[b + 1]] = x
    for c, (y, _) in enumerate(client.gather(Y)):
        item_factors[ib[c]:ib[c + 1]] = y
    # as ALS.fit: a row with no interactions has no direction, exactly zero
    empty = client.gather(empty)
    for b, rows in enumerate(empty[:len(ub) - 1]):
        user_factors[ub[b] + rows] = 0.0
    for c, rows in enumerate(empty[len(ub) - 1:]):
        item_factors[ib[c] + rows] = 0.0
    model.user_factors = user_factors
    model.item_factors = item_factors
    model.user_ids = blocks.user_ids
    model.item_ids = blocks.item_ids
    return model
