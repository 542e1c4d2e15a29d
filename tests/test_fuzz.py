"""Fuzzing every public entry point that takes a sparse matrix, in a forked child.

Hypothesis draws random and corrupted sparse matrices (CSR, CSC, COO, LIL; signed and
unsigned index dtypes; out-of-range, negative, unsorted and duplicate indices; broken
``indptr``; NaN, inf and float32-overflowing values; non-numeric data; empty and huge
shapes) and feeds each to every registered entry point in a child process.  The child
must either return a correct result or raise a ``ValueError`` (``IdError`` included);
any other exception is an unclear error, and a signal (segfault, abort) or a hang fails
the test with the reproducing case.

Children come from a ``forkserver`` that never runs a kernel itself: a child forked
from a process that has used OpenMP can hang in libgomp, and a fresh interpreter per
case would be too slow.

Registering an entry point (other engineers: add yours here)
------------------------------------------------------------
Write a module-level function ``fn(matrix, ctx) -> None`` that calls your entry point
with ``matrix`` and asserts the result is correct (it runs in the child; ``ctx`` is the
dict built by :func:`_context`: a small fitted ALS and Popularity, their sizes, the
case), and decorate it::

    @entry_point("ItemKNN.fit", shape=("any", "any"))
    def _itemknn_fit(m, ctx):
        ItemKNN(k=5).fit(m, show_progress=False)

``shape`` says which shapes the entry point takes so that most cases have them:
``"any"``, ``"users"`` or ``"items"`` (the context models' numbers) or ``"one"`` (a
single row: a service's request), per axis.
``valid_may_fail=True`` lets a valid matrix be refused with a ``ValueError`` (for entry
points with extra conditions on their input).  Add what your entry point needs to
:func:`_context` (built once, in the parent, and pickled to the children).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")

N_USERS, N_ITEMS = 12, 9
N_FEATURES = 4  # item features of the content / hybrid models in the context
CHILD_TIMEOUT_S = 120  # generous: the machine may be loaded; a real hang still fails
# per entry point; the whole file stays around half a minute (more: TASTEMAKER_FUZZ_EXAMPLES)
EXAMPLES = int(os.environ.get("TASTEMAKER_FUZZ_EXAMPLES", "10"))
# Before the random cases, every entry point gets each memory-safety corruption in each
# format once (random draws alone hit a given (format, corruption) pair too rarely: a
# sabotaged check_csr went unnoticed by 18 random cases per entry point).
SWEEP = ("index_high", "index_negative", "unsorted", "duplicate", "indptr_wrap",
         "indptr_decreasing", "indptr_short", "data_short", "huge_shape", "float_indices")


# ------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class EntryPoint:
    name: str
    fn: Callable
    shape: tuple[str, str]
    valid_may_fail: bool = False
    examples: int | None = None  # random cases after the sweep (default and env: EXAMPLES)


ENTRY_POINTS: dict[str, EntryPoint] = {}


def entry_point(name: str, shape=("any", "any"), valid_may_fail: bool = False,
                examples: int | None = None):
    """Register ``fn(matrix, ctx)`` as a fuzzed entry point (see the module doc);
    ``examples`` lowers the random cases of a slow one (a cluster round trip each)."""

    def deco(fn):
        ENTRY_POINTS[name] = EntryPoint(name, fn, tuple(shape), valid_may_fail, examples)
        return fn

    return deco


def _context() -> dict:
    """What the entry points need, built once in the parent and pickled to children."""
    import tastemaker

    rng = np.random.default_rng(0)
    ui = sp.random(N_USERS, N_ITEMS, density=0.4, format="csr", random_state=rng,
                   dtype=np.float32)
    ui.data[:] = rng.integers(1, 4, ui.nnz)
    ui.sort_indices()
    features = sp.csr_matrix(rng.integers(0, 2, (N_ITEMS, N_FEATURES)).astype(np.float32))
    return {
        "user_items": ui,
        "als": tastemaker.ALS(factors=3, iterations=2, random_state=0, num_threads=1).fit(
            ui, show_progress=False),
        "popularity": tastemaker.Popularity().fit(ui),
        "item_features": features,
        "hybrid": tastemaker.HybridALS(factors=3, iterations=2, random_state=0,
                                       num_threads=1).fit(ui, features, show_progress=False),
        "itemknn": tastemaker.ItemKNN(K=4).fit(ui),
        "ease": tastemaker.EASE(regularization=1.0).fit(ui),
        "explicit": tastemaker.ExplicitALS(factors=2, iterations=2, samples=3, burn_in=1,
                                           random_state=0, num_threads=1).fit(
            ui, show_progress=False),
    }


def _check_topk(ids, scores, n_items, seen=None):
    ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    valid = ids >= 0
    assert (ids[valid] < n_items).all()
    assert not np.isnan(scores).any()
    if seen is not None:
        for r in range(ids.shape[0]):
            assert not np.isin(ids[r][valid[r]], seen[r].indices).any()


# ------------------------------------------------------------------------------- entry points
@entry_point("check_csr (every model's matrix input)")
def _check_csr(m, ctx):
    from tastemaker._validation import check_csr

    out = check_csr(m, "user_items", allow_empty=True)
    assert out.dtype == np.float32 and out.indices.dtype == np.int32
    if ctx["reference"] is not None:
        np.testing.assert_allclose(out.toarray(), ctx["reference"], rtol=1e-6)


@entry_point("ALS.fit")
def _als_fit(m, ctx):
    import tastemaker

    model = tastemaker.ALS(factors=2, iterations=1, random_state=0).fit(m, show_progress=False)
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()
    assert model.user_factors.shape == (m.shape[0], 2)


@entry_point("Popularity.fit")
def _popularity_fit(m, ctx):
    import tastemaker

    model = tastemaker.Popularity().fit(m)
    if ctx["reference"] is not None:
        ref = (ctx["reference"] > 0).sum(axis=0)
        np.testing.assert_array_equal(model.popularity_, ref)


#: Beyond this a matrix dimension is a corrupted huge shape (2**31) that the library must
#: refuse; the harness then sizes its own arrays for it as 1 instead of allocating them.
_HARNESS_MAX_DIM = 1_000_000


def _harness_dim(n: int) -> int:
    """A size for the harness's own arrays that pair with a matrix dimension ``n``
    (queries, recommendation lists, feature rows): ``n``, or 1 for a corrupted huge shape
    (2**31), so that the harness does not allocate what the library must refuse."""
    return n if n <= _HARNESS_MAX_DIM else 1


def _refused_beyond_users(m, model) -> bool:
    """True (after checking the refusal) when ``m`` has more rows than the model has
    users: with ids 0..N_USERS-1 it is neither one row per id nor the whole matrix, so
    ``recommend`` must raise a ValueError naming ``user_items`` (a valid CSR of that
    shape is rightly refused: the fuzzer's "valid matrix accepted" rule covers the rest)."""
    if m.shape[0] <= N_USERS:
        return False
    try:
        model.recommend(np.arange(N_USERS), m, N=4)
    except ValueError as e:
        assert "user_items" in str(e), e
        return True
    raise AssertionError(f"{m.shape[0]} rows for {N_USERS} ids were accepted")


@entry_point("ALS.recommend(user_items=)", shape=("any", "items"))
def _als_recommend(m, ctx):
    model = ctx["als"]
    if _refused_beyond_users(m, model):
        return
    ids = np.arange(min(m.shape[0], N_USERS))
    rows = m if m.shape[0] in (len(ids), N_USERS) else None
    out = model.recommend(ids, m, N=4)
    if ctx["reference"] is not None and rows is not None:
        seen = sp.csr_matrix(ctx["reference"])
        seen = seen if seen.shape[0] == len(ids) else seen[ids]
        _check_topk(*out, N_ITEMS, seen)


@entry_point("ALS.recommend(recalculate_user=True)", shape=("any", "items"))
def _als_fold_in(m, ctx):
    ids = np.arange(N_USERS, N_USERS + m.shape[0])  # new users: one row each
    out = ctx["als"].recommend(ids, m, N=3, recalculate_user=True,
                               filter_already_liked_items=False)
    _check_topk(*out, N_ITEMS)


@entry_point("ALS.recommend(u, one row) (single request)", shape=("one", "items"))
def _als_recommend_one(m, ctx):
    ids, scores = ctx["als"].recommend(2, m, N=4)
    if ctx["reference"] is not None:
        _check_topk(ids, scores, N_ITEMS, sp.csr_matrix(ctx["reference"]))


@entry_point("ALS.recommend(u, one row, recalculate_user=True) (single request)",
             shape=("one", "items"))
def _als_fold_in_one(m, ctx):
    ids, scores = ctx["als"].recommend(N_USERS + 3, m, N=4, recalculate_user=True)
    if ctx["reference"] is not None:
        _check_topk(ids, scores, N_ITEMS, sp.csr_matrix(ctx["reference"]))


@entry_point("ALS.partial_fit_users", shape=("any", "items"))
def _als_partial_fit(m, ctx):
    import copy

    model = copy.deepcopy(ctx["als"])
    model.partial_fit_users(np.arange(N_USERS, N_USERS + m.shape[0]), m)
    assert np.isfinite(model.user_factors).all()


@entry_point("ALS.similar_items(recalculate_item=True)", shape=("any", "users"))
def _als_similar_fold_in(m, ctx):
    ids = np.arange(N_ITEMS, N_ITEMS + m.shape[0])
    out = ctx["als"].similar_items(ids, N=3, recalculate_item=True, item_users=m)
    _check_topk(*out, N_ITEMS)


@entry_point("ALS.recommend_vectors(exclude=)", shape=("any", "items"))
def _als_recommend_vectors(m, ctx):
    model = ctx["als"]
    vectors = np.ones((_harness_dim(m.shape[0]), model.item_factors.shape[1]), dtype=np.float32)
    out = model.recommend_vectors(vectors, N=3, exclude=m)
    if ctx["reference"] is not None:
        _check_topk(*out, N_ITEMS, sp.csr_matrix(ctx["reference"]))


@entry_point("Popularity.recommend(user_items=)", shape=("any", "items"))
def _popularity_recommend(m, ctx):
    if _refused_beyond_users(m, ctx["popularity"]):
        return
    ids = np.arange(min(m.shape[0], N_USERS))
    ctx["popularity"].recommend(ids, m, N=4)


@entry_point("ItemKNN.fit")
def _itemknn_fit(m, ctx):
    import tastemaker

    for kind in ("cosine", "bm25", "tfidf", "jaccard"):
        model = tastemaker.ItemKNN(K=3, similarity=kind).fit(m)
        g = model.similarity_
        assert g.shape == (m.shape[1], m.shape[1]) and np.isfinite(g.data).all()
        assert (np.diff(g.indptr) <= 3).all()


@entry_point("ItemKNN.recommend(user_items=)", shape=("any", "items"))
def _itemknn_recommend(m, ctx):
    ids = np.arange(N_USERS, N_USERS + m.shape[0])  # new users: one row each
    _check_topk(*ctx["itemknn"].recommend(ids, m, N=3, recalculate_user=True,
                                          filter_already_liked_items=False), N_ITEMS)


@entry_point("EASE.fit", valid_may_fail=True)
def _ease_fit(m, ctx):
    import tastemaker

    model = tastemaker.EASE(regularization=1.0).fit(m)
    assert model.item_factors.shape == (m.shape[1], m.shape[1])
    assert np.isfinite(model.item_factors).all()


@entry_point("EASE.recommend(user_items=)", shape=("any", "items"), valid_may_fail=True)
def _ease_recommend(m, ctx):
    ids = np.arange(N_USERS, N_USERS + m.shape[0])
    _check_topk(*ctx["ease"].recommend(ids, m, N=3, recalculate_user=True,
                                       filter_already_liked_items=False), N_ITEMS)


@entry_point("ExplicitALS.fit", valid_may_fail=True)
def _explicit_fit(m, ctx):
    import tastemaker

    model = tastemaker.ExplicitALS(factors=2, iterations=1, samples=2, burn_in=1,
                                   random_state=0).fit(m, show_progress=False)
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()


@entry_point("ExplicitALS.recommend(recalculate_user=True)", shape=("any", "items"),
             valid_may_fail=True)
def _explicit_fold_in(m, ctx):
    ids = np.arange(N_USERS, N_USERS + m.shape[0])
    _check_topk(*ctx["explicit"].recommend(ids, m, N=3, recalculate_user=True,
                                           filter_already_liked_items=False), N_ITEMS)


@entry_point("evaluation.ranking_metrics_at_k(test=)", shape=("any", "items"))
def _metrics(m, ctx):
    from tastemaker.evaluation import ranking_metrics_at_k

    rec = np.tile(np.arange(4, dtype=np.int32), (_harness_dim(m.shape[0]), 1))
    out = ranking_metrics_at_k(rec, m, 4)
    assert all(np.isnan(v) or 0 <= v <= 1 for k, v in out.items() if k != "auc")


def _features_for(m) -> sp.csr_matrix:
    """Item features sized for ``m``'s columns (one feature per item % 3)."""
    n = _harness_dim(m.shape[1])
    return sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), np.arange(n) % 3)),
                         shape=(n, 3))


@entry_point("ContentModel.fit")
def _content_fit(m, ctx):
    import tastemaker

    model = tastemaker.ContentModel().fit(m, _features_for(m))
    assert model.item_factors.shape == (m.shape[1], 3)
    if ctx["reference"] is not None:
        E = model.item_factors.astype(np.float64)
        np.testing.assert_allclose(model.user_factors, ctx["reference"] @ E, rtol=1e-5,
                                   atol=1e-5)


@entry_point("HybridALS.fit")
def _hybrid_fit(m, ctx):
    import tastemaker

    model = tastemaker.HybridALS(factors=2, iterations=1, random_state=0).fit(
        m, _features_for(m), show_progress=False)
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()


@entry_point("ContentModel.fit(item_features=)", shape=("items", "any"), valid_may_fail=True)
def _content_features(m, ctx):
    import tastemaker

    model = tastemaker.ContentModel().fit(ctx["user_items"], m)
    norms = np.linalg.norm(model.item_factors, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


@entry_point("HybridALS.fit(item_features=)", shape=("items", "any"), valid_may_fail=True)
def _hybrid_features(m, ctx):
    import tastemaker

    model = tastemaker.HybridALS(factors=2, iterations=1, random_state=0).fit(
        ctx["user_items"], m, show_progress=False)
    assert np.isfinite(model.item_factors).all()


@entry_point("HybridALS.add_items", valid_may_fail=True)
def _hybrid_add_items(m, ctx):
    import copy

    model = copy.deepcopy(ctx["hybrid"])
    model.add_items(m)
    assert model.item_factors.shape[0] == N_ITEMS + m.shape[0]
    _check_topk(*model.recommend(0, None, N=3, filter_already_liked_items=False),
                N_ITEMS + m.shape[0])


@entry_point("HybridALS.add_items(kernel_gamma=1e3)", valid_may_fail=True)
def _hybrid_add_items_sharp_kernel(m, ctx):
    import copy

    # a sharp kernel: every weight but the nearest rows' underflows; never NaN
    model = copy.deepcopy(ctx["hybrid"])
    model.kernel_gamma = 1e3
    new = model.item_factors_from_features(m)
    assert new.shape == (m.shape[0], model.item_factors.shape[1])
    assert not np.isnan(new).any()


@entry_point("ItemFeatures(matrix)")
def _item_features(m, ctx):
    from tastemaker import ItemFeatures

    n_rows, n_cols = m.shape if max(m.shape) <= _HARNESS_MAX_DIM else (1, 1)
    f = ItemFeatures(m, [f"f:{j}" for j in range(n_cols)], np.arange(n_rows))
    if ctx["reference"] is not None:
        np.testing.assert_allclose(f.matrix.toarray(), ctx["reference"], rtol=1e-6)


@entry_point("Interactions(sessions=, context=) + Tastes + Tastes.fit_people (a matrix's "
             "entries as events)")
def _tastes(m, ctx):
    import tastemaker
    from tastemaker._validation import check_csr
    from tastemaker.pages import Tastes

    c = check_csr(m, "user_items", allow_empty=True).tocoo()
    x = tastemaker.Interactions.from_arrays(
        c.row, c.col, values=c.data, sessions=c.row * 3 + c.col % 3,
        context={"hour": (c.col * 7) % 24, "device": np.where(c.col % 2, "tv", "phone")})
    model = tastemaker.ALS(factors=2, iterations=1, random_state=0).fit(
        x.to_csr(), show_progress=False)
    comp = Tastes(n_topics=3, n_init=1, max_iter=5)
    fits = comp.fit_users(model, x, np.arange(x.n_users))
    assert all(1 <= f.k <= 3 for f in fits)
    seen = x.to_csr()
    for u in range(min(x.n_users, 3)):
        ts = comp.find(model, x, u)
        assert abs(sum(t.weight for t in ts) - 1) < 1e-9
        comp.rank(model, x, u, 3, context={"hour": 5, "device": "tv"})
        # the other tastes' titles as dislikes, up to heavy ones; context vectors folded in
        # from barely to very strongly regularized
        for contrast, scale, doubt in ((0.0, 1e-3, 0.0), (1e3, 1e3, 1e5)):
            taste = Tastes(n_topics=3, n_init=1, max_iter=5, context_contrast=contrast,
                           context_regularization=scale, uncertain_split=doubt)
            for c in (None, {"hour": 21, "device": "phone"}):
                got = taste.rank(model, x, u, 3, context=c, fit=fits[u])
                if got is not None:
                    ids = got[0].tolist()
                    assert len(set(ids)) == len(ids) and not set(ids) & set(seen[u].indices)
    # item factors learned from the people found (each account split by its tastes)
    people = comp.fit_people(model, x, fits=fits)
    assert people.item_factors.shape == model.item_factors.shape
    assert np.isfinite(people.user_factors).all()
    comp.rank(people, x, 0, 3, context={"hour": 5, "device": "tv"})


# tastemaker.distributed: one in-process Dask cluster per child, started on first use
_CHILD: dict = {}


def _dask_client():
    if "dask" not in _CHILD:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                           dashboard_address=None)
        _CHILD["dask"] = distributed.Client(cluster)
        # LocalCluster can return before its workers have registered with the scheduler
        # (seen under load: "the cluster has no workers"); the fuzzer is about inputs.
        _CHILD["dask"].wait_for_workers(2, timeout=120)
    return _CHILD["dask"]


def _events(m):
    """A matrix's entries as (u, i, v) events: a COO matrix's arrays as they are (any
    dtype, out-of-range or negative ids, NaN or complex values: fit_als must refuse what
    Interactions refuses), other formats after check_csr."""
    import pandas as pd

    from tastemaker._validation import check_csr

    if sp.issparse(m) and m.format == "coo":
        rows, cols, vals = m.row, m.col, m.data
        if not len(rows) == len(cols) == len(vals):
            raise ValueError("matrix: row, col and data differ in length")
    else:
        c = check_csr(m, "user_items", allow_empty=True).tocoo()
        rows, cols, vals = c.row, c.col, c.data
    return pd.DataFrame({"u": rows, "i": cols, "v": vals})


@entry_point("distributed.fit_als (a matrix's entries as events)", examples=4)
def _dask_fit_als(m, ctx):
    """Same outcome as the single-machine path: both refuse with a ValueError, or both
    give the same model."""
    import tastemaker
    from tastemaker.distributed import fit_als

    df = _events(m)
    params = dict(factors=2, iterations=1, random_state=0)
    weighting = dict(user="u", item="i", value="v")
    try:
        data = tastemaker.Interactions.from_frame(df, **weighting)
        ref = tastemaker.ALS(**params).fit(data.to_csr(), show_progress=False)
    except ValueError:
        ref = None
    try:
        model = fit_als(_dask_client(), df, show_progress=False, **weighting, **params)
    except ValueError:
        assert ref is None, "fit_als refused what Interactions + ALS.fit accept"
        raise
    assert ref is not None, "fit_als accepted what Interactions + ALS.fit refuse"
    np.testing.assert_array_equal(model.user_ids, data.user_ids)
    np.testing.assert_array_equal(model.item_ids, data.item_ids)
    np.testing.assert_allclose(model.user_factors, ref.user_factors, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.item_factors, ref.item_factors, rtol=1e-4, atol=1e-6)


@entry_point("distributed.recommend_all(user_items=)", shape=("users", "items"))
def _dask_recommend_all(m, ctx):
    import tempfile

    import pandas as pd

    from tastemaker._validation import check_csr
    from tastemaker.distributed import recommend_all

    model = ctx["als"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = recommend_all(_dask_client(), model, m, N=3, output=f"{tmp}/*.parquet",
                              partition_size=5)
        recs = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    seen = check_csr(m, "user_items", shape=(N_USERS, N_ITEMS), allow_empty=True)
    ids, scores = model.recommend(np.arange(N_USERS), seen, N=3)
    _check_topk(ids, scores, N_ITEMS, seen)
    valid = ids >= 0
    np.testing.assert_array_equal(recs["user"], np.repeat(np.arange(N_USERS), valid.sum(1)))
    np.testing.assert_array_equal(recs["item"], ids[valid])
    np.testing.assert_array_equal(recs["score"], scores[valid])


# ------------------------------------------------------------------------------- matrices
FORMATS = ("csr", "csc", "coo", "lil")
INDEX_DTYPES = (np.int32, np.int64, np.uint32, np.uint64)
CORRUPTIONS = ("none", "none", "none", "index_high", "index_negative", "unsorted",
               "duplicate", "nan", "inf", "overflow", "indptr_wrap", "indptr_decreasing",
               "indptr_short", "data_short", "huge_shape", "empty", "complex", "object",
               "float_indices", "negative_values")


@dataclass
class Case:
    fmt: str
    n_rows: int
    n_cols: int
    density: float
    index_dtype: type
    corruption: str
    seed: int

    def __repr__(self):
        return (f"Case(fmt={self.fmt!r}, shape=({self.n_rows}, {self.n_cols}), "
                f"density={self.density}, index_dtype={self.index_dtype.__name__}, "
                f"corruption={self.corruption!r}, seed={self.seed})")


def _dim(kind: str, draw) -> int:
    fixed = {"users": N_USERS, "items": N_ITEMS, "one": 1}.get(kind)
    if fixed is not None and draw(st.integers(0, 9)) > 0:  # mostly the expected size
        return fixed
    return draw(st.integers(0, 14))


@st.composite
def cases(draw, shape=("any", "any")):
    return Case(fmt=draw(st.sampled_from(FORMATS)),
                n_rows=_dim(shape[0], draw), n_cols=_dim(shape[1], draw),
                density=draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),
                index_dtype=draw(st.sampled_from(INDEX_DTYPES)),
                corruption=draw(st.sampled_from(CORRUPTIONS)),
                seed=draw(st.integers(0, 2**16)))


def build(case: Case):
    """-> (matrix, dense reference or None when the matrix is invalid)."""
    rng = np.random.default_rng(case.seed)
    dense = np.where(rng.random((case.n_rows, case.n_cols)) < case.density,
                     rng.integers(1, 5, (case.n_rows, case.n_cols)), 0).astype(np.float64)
    if case.corruption == "negative_values":
        dense = -dense
    if case.corruption == "empty":
        dense[:] = 0
    m = sp.csr_matrix(dense).asformat(case.fmt)
    ref = dense.astype(np.float32)
    c = case.corruption
    nnz = m.nnz

    def index_arrays():
        if case.fmt in ("csr", "csc"):
            return ["indices", "indptr"]
        if case.fmt == "coo":
            return ["row", "col"]
        return []

    for attr in index_arrays():  # the index dtype under test
        setattr(m, attr, np.asarray(getattr(m, attr)).astype(case.index_dtype))
    if c in ("none", "empty", "negative_values"):
        return m, ref
    if c in ("nan", "inf", "overflow", "complex", "object"):
        if nnz == 0:
            return m, ref
        if case.fmt == "lil":
            r = next(i for i, row in enumerate(m.rows) if row)
            m.data[r][0] = {"nan": np.nan, "inf": np.inf, "overflow": 1e39,
                            "complex": 1 + 2j, "object": "x"}[c]
            return m, None
        data = np.asarray(m.data, dtype={"complex": np.complex128, "object": object}.get(
            c, np.float64))
        data[0] = {"nan": np.nan, "inf": -np.inf, "overflow": 1e39, "complex": 1 + 2j,
                   "object": "x"}[c]
        m.data = data
        return m, None
    if c == "huge_shape":
        m._shape = (2**31 + case.n_rows, case.n_cols) if case.seed % 2 else \
            (case.n_rows, 2**40)
        return m, None
    if nnz == 0 and c not in ("indptr_wrap", "indptr_decreasing", "indptr_short"):
        return m, ref
    if case.fmt == "lil":
        r = next((i for i, row in enumerate(m.rows) if row), None)
        if r is None:
            return m, ref
        if c == "index_high":
            m.rows[r][0] = 10**9
        elif c == "index_negative":
            m.rows[r][0] = -1
        elif c == "float_indices":
            m.rows[r][0] = 0.5
        elif c == "data_short":
            m.data[r] = m.data[r][:-1]
        elif c in ("unsorted", "duplicate") and len(m.rows[r]) > 1:
            m.rows[r][0], m.rows[r][1] = m.rows[r][1], m.rows[r][0]
            if c == "duplicate":
                m.rows[r][1] = m.rows[r][0]
            return m, _dense_of_lil(m, case)  # LIL is converted: sorted and summed
        else:
            return m, ref
        return m, None
    if case.fmt == "coo":
        row, col = np.asarray(m.row), np.asarray(m.col)
        if c == "index_high":
            col = col.copy()
            col[-1] = col.dtype.type(min(10**9, np.iinfo(col.dtype).max))
        elif c == "index_negative":
            if col.dtype.kind == "u":
                col = col.astype(np.int64)
            col = col.copy()
            col[0] = -1
        elif c == "float_indices":
            col = col.astype(np.float64)
        elif c == "data_short":
            m.data = m.data[:-1]
        elif c in ("unsorted", "duplicate") and nnz > 1:
            row, col = row.copy(), col.copy()
            row[[0, 1]], col[[0, 1]] = row[[1, 0]], col[[1, 0]]
            if c == "duplicate":
                row[1], col[1] = row[0], col[0]
            ref = np.zeros_like(ref)
            np.add.at(ref, (row.astype(np.int64), col.astype(np.int64)), m.data)
            m.row, m.col = row, col
            return m, ref
        else:
            return m, ref
        m.row, m.col = row, col
        stored = np.asarray(m.col)
        return m, (ref if c == "float_indices" and stored.dtype.kind in "iu" else None)
    # csr / csc
    indices, indptr = np.asarray(m.indices).copy(), np.asarray(m.indptr).copy()
    if c == "index_high":
        indices[-1] = indices.dtype.type(min(10**9, np.iinfo(indices.dtype).max))
    elif c == "index_negative":
        if indices.dtype.kind == "u":
            indices = indices.astype(np.int64)
        indices[0] = -1
    elif c == "float_indices":
        indices = indices.astype(np.float64)
    elif c == "data_short":
        m.data = m.data[:-1]
    elif c == "indptr_wrap":
        indptr = indptr.astype(np.uint64)
        if len(indptr) > 2:
            indptr[1] = np.uint64(2**64 - 10**7)
        else:
            indptr[-1] = np.uint64(2**64 - 1)
    elif c == "indptr_decreasing":
        if len(indptr) < 3:
            return m, ref
        indptr[1] = indptr[-1] + 1
    elif c == "indptr_short":
        indptr = indptr[:-1]
    elif c in ("unsorted", "duplicate"):
        rows = np.flatnonzero(np.diff(indptr.astype(np.int64)) > 1)
        if rows.size == 0:
            return m, ref
        a = int(indptr[rows[0]])
        if c == "unsorted":
            indices[[a, a + 1]] = indices[[a + 1, a]]
        else:
            indices[a + 1] = indices[a]
        m.indices = indices
        if case.fmt == "csr":
            return m, None  # a CSR matrix must be canonical
        ref = np.zeros_like(ref)
        cols = np.repeat(np.arange(m.shape[1]), np.diff(indptr.astype(np.int64)))
        np.add.at(ref, (indices.astype(np.int64), cols), m.data)
        return m, ref
    m.indices, m.indptr = indices, indptr
    return m, None


def _dense_of_lil(m, case):
    ref = np.zeros((case.n_rows, case.n_cols), dtype=np.float32)
    for r, (cols, vals) in enumerate(zip(m.rows, m.data)):
        for c, v in zip(cols, vals):
            ref[r, c] += v
    return ref


# ------------------------------------------------------------------------------- the child
def _run_one(name: str, case: Case, ctx: dict):
    try:
        matrix, ref = build(case)
        ENTRY_POINTS[name].fn(matrix, dict(ctx, reference=ref, case=case))
        return ("ok", "")
    except AssertionError:
        return ("wrong", traceback.format_exc(limit=6))
    except ValueError as exc:
        return ("value_error", f"{type(exc).__name__}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        return ("unclear", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")


def _worker(conn, ctx) -> None:
    """The child: runs one case per message until told to stop (or until a case kills it,
    which is what the parent watches for)."""
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        conn.send(_run_one(*msg, ctx))


class _Worker:
    """A child process (from a forkserver that never ran a kernel: a child forked from a
    process that used OpenMP can hang in libgomp).  Starting one costs about a second, so
    it serves cases until one kills it; then the next case gets a fresh one."""

    _mp = None

    def __init__(self, ctx):
        if _Worker._mp is None:
            _Worker._mp = multiprocessing.get_context("forkserver")
            _Worker._mp.set_forkserver_preload(["numpy", "scipy.sparse", "tastemaker"])
        self.conn, child = _Worker._mp.Pipe()
        self.proc = _Worker._mp.Process(target=_worker, args=(child, ctx), daemon=True)
        self.proc.start()
        child.close()

    def run(self, name: str, case: Case):
        try:
            self.conn.send((name, case))
            if self.conn.poll(CHILD_TIMEOUT_S):
                return self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass
        self.proc.join(1)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
            return ("hang", f"no answer within {CHILD_TIMEOUT_S}s")
        code = self.proc.exitcode
        if code is not None and code < 0:
            return ("signal", f"killed by signal {-code}")
        return ("died", f"exit status {code} without an answer")

    def alive(self) -> bool:
        return self.proc.is_alive()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()


_STATE: dict = {}


def run_case(name: str, case: Case):
    """Run one entry point on one case in the child; returns (status, detail)."""
    if "ctx" not in _STATE:
        _STATE["ctx"] = _context()
    worker = _STATE.get("worker")
    if worker is None or not worker.alive():
        worker = _STATE["worker"] = _Worker(_STATE["ctx"])
    result = worker.run(name, case)
    if result[0] in ("signal", "hang", "died"):
        _STATE.pop("worker", None)
    return result


@pytest.fixture(scope="module", autouse=True)
def _stop_worker():
    yield
    worker = _STATE.pop("worker", None)
    if worker is not None:
        worker.close()


def _expect(ep: EntryPoint, case: Case, status: str, detail: str) -> None:
    where = f"{ep.name} on {case!r}"
    assert status not in ("signal", "hang", "died"), f"{where}: {detail}"
    assert status != "unclear", f"{where}: not a ValueError:\n{detail}"
    assert status != "wrong", f"{where}: wrong result:\n{detail}"
    # a valid, non-empty matrix of the shape the entry point takes must be accepted
    _, ref = build(case)
    wanted = {"any": None, "users": N_USERS, "items": N_ITEMS, "one": 1}
    shape_ok = all(wanted[k] in (None, n) for k, n in zip(ep.shape, (case.n_rows, case.n_cols)))
    if (ref is not None and ref.any() and shape_ok and status != "ok"
            and not ep.valid_may_fail and case.corruption != "negative_values"):
        pytest.fail(f"{where}: a valid matrix was refused: {detail}")


# ------------------------------------------------------------------------------- the tests
def _fuzz_test(name: str):
    ep = ENTRY_POINTS[name]

    n = EXAMPLES if "TASTEMAKER_FUZZ_EXAMPLES" in os.environ else ep.examples or EXAMPLES

    @settings(max_examples=n, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=cases(ep.shape))
    def test(case):
        status, detail = run_case(name, case)
        _expect(ep, case, status, detail)

    return test


@entry_point("_crash_for_the_test")
def _crash(m, ctx):  # not fuzzed (names starting with "_" are not): proves signals are seen
    import ctypes

    ctypes.string_at(0)


@pytest.mark.parametrize("name", sorted(n for n in ENTRY_POINTS if not n.startswith("_")))
def test_entry_point_never_crashes(name):
    ep = ENTRY_POINTS[name]
    dims = {"any": 6, "users": N_USERS, "items": N_ITEMS, "one": 1}
    for i, (fmt, corruption) in enumerate((f, c) for f in FORMATS for c in SWEEP):
        case = Case(fmt, dims[ep.shape[0]], dims[ep.shape[1]], 0.5,
                    INDEX_DTYPES[i % len(INDEX_DTYPES)], corruption, i)
        status, detail = run_case(name, case)
        _expect(ep, case, status, detail)
    _fuzz_test(name)()


def test_every_corruption_is_generated_and_rejected_by_check_csr():
    """The generator really corrupts: each kind, in each format, is refused (or, where a
    conversion legitimately fixes it, equals the reference) by check_csr, in the child."""
    name = "check_csr (every model's matrix input)"
    for fmt in FORMATS:
        for corruption in CORRUPTIONS:
            case = Case(fmt, 6, 5, 0.5, np.int64, corruption, 3)
            _, ref = build(case)
            status, detail = run_case(name, case)
            assert status == ("ok" if ref is not None else "value_error"), (case, detail)


def test_a_crash_in_the_child_is_caught():
    status, detail = run_case("_crash_for_the_test", Case("csr", 1, 1, 1.0, np.int32, "none", 0))
    assert status == "signal", (status, detail)
