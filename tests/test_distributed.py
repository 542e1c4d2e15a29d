"""tastemaker.distributed on a LocalCluster: the same model as the single-machine fit,
batch recommendations equal to ``recommend``, a killed worker changes nothing."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import tastemaker as tm
from tastemaker.data.weighting import (
    combine_corpus_stats,
    corpus_stats,
    transform_values,
)
from tastemaker.distributed import fit_als, recommend_all
from tastemaker.distributed._fit import _compact, _needs, _rows
from tastemaker.distributed._ingest import _balanced_bounds, _split

ALS_PARAMS = dict(factors=8, iterations=4, regularization=0.5, random_state=7)
WEIGHTING = dict(user="user", item="item", event="event", timestamp="timestamp",
                 half_life="60D", transform="bm25", min_user_count=3, min_item_count=3)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        c.wait_for_workers(2, timeout=120)  # registration can lag under load
        yield c


@pytest.fixture(scope="module")
def events():
    return tm.datasets.synthetic_streaming(n_users=400, n_items=150, seed=3).events


def single_machine(df, weighting, **params):
    data = tm.Interactions.from_frame(df, **weighting)
    model = tm.ALS(**params).fit(data.to_csr(), show_progress=False)
    return data, model


def assert_same_model(model, data, ref):
    assert isinstance(model, tm.ALS)
    np.testing.assert_array_equal(model.user_ids, data.user_ids)
    np.testing.assert_array_equal(model.item_ids, data.item_ids)
    assert model.user_factors.dtype == np.float32
    np.testing.assert_allclose(model.user_factors, ref.user_factors, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.item_factors, ref.item_factors, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.regularization_, ref.regularization_, rtol=1e-12)


# --------------------------------------------------------------------------- fit_als
def test_same_model_as_single_machine_fit(client, events):
    data, ref = single_machine(events, WEIGHTING, **ALS_PARAMS)
    model = fit_als(client, dd.from_pandas(events, npartitions=3), show_progress=False,
                    **WEIGHTING, **ALS_PARAMS)
    assert_same_model(model, data, ref)
    assert model.get_params() == ref.get_params()


def test_parquet_glob_cholesky_and_more_blocks(client, events, tmp_path):
    for k, rows in enumerate(np.array_split(np.arange(len(events)), 3)):
        events.iloc[rows].to_parquet(tmp_path / f"part-{k}.parquet")
    weighting = dict(user="user", item="item", value="watch_fraction", aggregate="max",
                     transform={"method": "log1p", "alpha": 4.0})
    params = dict(ALS_PARAMS, solver="cholesky", regularization_exponent=0.5)
    data, ref = single_machine(events, weighting, **params)
    model = fit_als(client, str(tmp_path / "part-*.parquet"), n_blocks=3, show_progress=False,
                    **weighting, **params)
    assert_same_model(model, data, ref)


@pytest.mark.parametrize("extra_bytes", [1 << 40, -1])
def test_rows_picked_by_sender_or_receiver_give_the_same_model(client, events, monkeypatch,
                                                               extra_bytes):
    """Every pair of blocks on different workers sends either the whole block (the
    receiver picks its rows: any extra bytes allowed) or only the rows the receiver
    touches (a task on the sender picks them: none allowed, so unless it needs them
    all); both are the single machine's model."""
    import tastemaker.distributed._fit as fit_module

    monkeypatch.setattr(fit_module, "_WHOLE_EXTRA_BYTES", extra_bytes)
    data, ref = single_machine(events, WEIGHTING, **ALS_PARAMS)
    with distributed.get_task_stream(client) as ts:
        model = fit_als(client, events, n_blocks=3, show_progress=False, **WEIGHTING,
                        **ALS_PARAMS)
    assert_same_model(model, data, ref)
    picked_by_sender = [t for t in ts.data if str(t["key"]).startswith("_rows")]
    assert (len(picked_by_sender) > 0) == (extra_bytes < 0)


def test_saved_model_keeps_id_maps(client, events, tmp_path):
    model = fit_als(client, events, show_progress=False, **WEIGHTING, **ALS_PARAMS)
    model.save(tmp_path / "m.npz")
    back = tm.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.user_ids, model.user_ids)
    np.testing.assert_array_equal(back.user_factors, model.user_factors)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), n_parts=st.integers(1, 4),
       aggregate=st.sampled_from(["sum", "mean", "max", "last"]),
       transform=st.sampled_from([None, "binary", "tfidf", "bm25"]),
       string_ids=st.booleans())
def test_random_logs_give_the_single_machine_model(client, seed, n_parts, aggregate,
                                                  transform, string_ids):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    users = rng.integers(0, 25, n)
    items = rng.integers(0, 15, n)
    df = pd.DataFrame({"u": users.astype(str) if string_ids else users * 7,
                       "i": items, "v": rng.integers(-2, 5, n).astype(float),
                       "t": rng.permutation(n).astype(float)})
    weighting = dict(user="u", item="i", value="v", timestamp="t", aggregate=aggregate,
                     transform=transform)
    params = dict(factors=4, iterations=2, random_state=seed)  # regularization="auto"
    data, ref = single_machine(df, weighting, **params)
    model = fit_als(client, dd.from_pandas(df, npartitions=n_parts), show_progress=False,
                    **weighting, **params)
    assert_same_model(model, data, ref)


def test_progress_bar_and_dashboard_link(client, events, capsys):
    seen = []
    fit_als(client, events, callback=lambda it, t, loss: seen.append(it), **WEIGHTING,
            **dict(ALS_PARAMS, iterations=2))
    err = capsys.readouterr().err
    assert "dashboard" in err and "ALS (dask)" in err
    assert seen == [0, 1]


def test_fit_als_bad_input(client, events):
    ddf = dd.from_pandas(events, npartitions=2)
    with pytest.raises(ValueError, match="client"):
        fit_als(None, ddf)
    with pytest.raises(ValueError, match="events"):
        fit_als(client, [1, 2, 3])
    with pytest.raises(ValueError, match="item: column 'nope'"):
        fit_als(client, ddf, item="nope")
    with pytest.raises(ValueError, match="unknown ALS parameter"):
        fit_als(client, ddf, factorz=3)
    with pytest.raises(ValueError, match="factors"):
        fit_als(client, ddf, factors=0)
    with pytest.raises(ValueError, match="aggregate"):
        fit_als(client, ddf, aggregate="median")
    with pytest.raises(ValueError, match="half_life"):
        fit_als(client, ddf, half_life="30D")
    with pytest.raises(ValueError, match="calculate_training_loss"):
        fit_als(client, ddf, calculate_training_loss=True)
    with pytest.raises(ValueError, match="min_user_count"):
        fit_als(client, ddf, min_user_count=10**6)
    with pytest.raises(ValueError, match="no weight"):
        fit_als(client, ddf, event="event", event_weights={"play": 1.0}, show_progress=False)
    with pytest.raises(ValueError, match="events"):
        fit_als(client, "/nonexistent/dir/*.parquet")
    with pytest.raises(ValueError, match="alpha"):  # ALS.fit's overflow check
        fit_als(client, ddf, alpha=1e16, regularization=0.1, show_progress=False)


# --------------------------------------------------------------------------- recommend_all
def test_recommend_all_matches_recommend(client, events, tmp_path):
    data = tm.Interactions.from_frame(events, **WEIGHTING)
    seen = data.to_csr()
    model = tm.ALS(**ALS_PARAMS).fit(seen, show_progress=False)
    model.user_ids, model.item_ids = data.user_ids, data.item_ids
    paths = recommend_all(client, model, seen, N=7, output=str(tmp_path / "recs" / "*.parquet"),
                          partition_size=64)
    assert len(paths) == -(-data.n_users // 64) and all(os.path.isfile(p) for p in paths)
    recs = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    ids, scores = model.recommend(np.arange(data.n_users), seen, N=7)
    valid = ids >= 0
    np.testing.assert_array_equal(recs["user"], np.repeat(data.user_ids, valid.sum(1)))
    np.testing.assert_array_equal(recs["item"], data.item_ids[ids[valid]])
    np.testing.assert_array_equal(recs["score"], scores[valid])
    np.testing.assert_array_equal(recs["rank"], np.tile(np.arange(1, 8), len(valid))[valid.ravel()])
    # seen items never come back; an independent NumPy check of the top score
    pairs = set(zip(data.user_idx.tolist(), data.item_idx.tolist()))
    u = data.user_index(recs["user"].to_numpy())
    i = data.item_index(recs["item"].to_numpy())
    assert not any((a, b) in pairs for a, b in zip(u.tolist(), i.tolist()))
    full = model.user_factors @ model.item_factors.T
    full[seen.nonzero()] = -np.inf
    top = recs[recs["rank"] == 1]
    np.testing.assert_allclose(top["score"], full.max(axis=1), rtol=1e-5)


def test_recommend_all_from_interactions_and_unfiltered(client, tmp_path):
    data = tm.Interactions.from_arrays(["a", "b", "b", "c"], [10, 10, 20, 30])
    model = tm.ALS(factors=2, iterations=2, random_state=0).fit(data.to_csr(),
                                                                show_progress=False)
    paths = recommend_all(client, model, data, N=5, output=str(tmp_path / "*.parquet"))
    recs = pd.concat([pd.read_parquet(p) for p in paths])
    assert set(recs["user"]) == {"a", "b", "c"}
    assert (recs.groupby("user").size() == [2, 1, 2]).all()  # 3 items minus the seen ones
    paths = recommend_all(client, model, None, N=5, filter_already_liked_items=False,
                          output=str(tmp_path / "all" / "*.parquet"))
    recs = pd.concat([pd.read_parquet(p) for p in paths])
    assert len(recs) == 9 and set(recs["item"]) == {0, 1, 2}  # no ids given: indices


def test_worker_list_does_not_trust_the_cached_scheduler_info(client, tmp_path, monkeypatch):
    """Regression: fit_als/recommend_all read the workers from scheduler_info(), whose
    cached identity the client's periodic refresh (which carries no per-worker detail)
    can overwrite; under load a live 2-worker cluster was refused as having no workers."""
    monkeypatch.setattr(client, "scheduler_info", lambda *a, **k: {"workers": {}})
    events = pd.DataFrame({"user": ["a", "b", "b", "c"], "item": [10, 10, 20, 30]})
    model = fit_als(client, events, factors=2, iterations=2, random_state=0,
                    show_progress=False)
    assert set(model.user_ids) == {"a", "b", "c"}
    paths = recommend_all(client, model, None, N=2, filter_already_liked_items=False,
                          output=str(tmp_path / "*.parquet"))
    assert len(pd.concat([pd.read_parquet(p) for p in paths])) == 6


def test_recommend_all_bad_input(client, tmp_path):
    m = sp.csr_matrix(np.eye(3, dtype=np.float32))
    model = tm.ALS(factors=2, iterations=1, random_state=0).fit(m, show_progress=False)
    out = str(tmp_path / "*.parquet")
    with pytest.raises(ValueError, match="client"):
        recommend_all("nope", model, m, output=out)
    with pytest.raises(ValueError, match="model"):
        recommend_all(client, object(), m, output=out)
    with pytest.raises(ValueError, match="not fitted"):
        recommend_all(client, tm.ALS(), m, output=out)
    with pytest.raises(ValueError, match="N"):
        recommend_all(client, model, m, N=0, output=out)
    with pytest.raises(ValueError, match="output"):
        recommend_all(client, model, m, output=str(tmp_path / "recs.parquet"))
    with pytest.raises(ValueError, match="user_items"):
        recommend_all(client, model, None, output=out)
    with pytest.raises(ValueError, match="user_items"):
        recommend_all(client, model, sp.csr_matrix((3, 4), dtype=np.float32), output=out)
    with pytest.raises(ValueError, match="user_ids"):
        recommend_all(client, model, m, user_ids=[1, 2], output=out)
    with pytest.raises(ValueError, match="partition_size"):
        recommend_all(client, model, m, partition_size=0, output=out)


# --------------------------------------------------------------------------- pieces
@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=40), n_blocks=st.integers(1, 6))
def test_balanced_bounds_cover_every_row_once(counts, n_blocks):
    b = _balanced_bounds(np.array(counts, dtype=float), n_blocks)
    assert b[0] == 0 and b[-1] == len(counts) and np.all(np.diff(b) >= 0)
    assert len(b) - 1 == min(n_blocks, len(counts))
    key = np.random.default_rng(0).integers(0, len(counts), 100)
    parts = _split(key, b, (key, np.arange(100)))
    assert sum(len(p[0]) for p in parts) == 100
    for k, (keys, pos) in enumerate(parts):
        assert np.all((keys >= b[k]) & (keys < b[k + 1])) and np.all(np.diff(pos) > 0)


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=40), n_blocks=st.integers(1, 6),
       row_cost=st.sampled_from([0.0, 1.0, 20.0, 60.0]))
def test_balanced_bounds_even_the_work(counts, n_blocks, row_cost):
    """Contiguous blocks whose work (entries + row_cost per row) exceeds an even share
    by at most one row's work."""
    cost = np.array(counts, dtype=float) + row_cost
    b = _balanced_bounds(np.array(counts), n_blocks, row_cost)
    work = np.array([cost[b[k]:b[k + 1]].sum() for k in range(len(b) - 1)])
    assert work.sum() == cost.sum()
    assert work.max() <= cost.sum() / len(work) + cost.max() + 1e-9


def test_row_cost_moves_the_cut_to_even_work():
    # 50 rows of 1 entry, then 5 rows of 10: equal entries either side of row 50, but
    # at 20 entries' worth per row the short rows are 7x the work
    counts = np.array([1] * 50 + [10] * 5)
    assert _balanced_bounds(counts, 2).tolist() == [0, 50, 55]
    b = _balanced_bounds(counts, 2, row_cost=20.0)
    cost = counts + 20.0
    assert b.tolist() == [0, 29, 55]
    assert abs(cost[:29].sum() - cost[29:].sum()) <= cost.max()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n_blocks=st.integers(1, 4), density=st.floats(0.02, 0.6))
def test_block_receives_exactly_the_rows_it_touches(seed, n_blocks, density):
    """A user block, its columns renumbered (_compact), against the item rows the item
    blocks send it (_needs, _rows) computes what the whole block computes against all
    items; and no row it does not touch is sent."""
    rng = np.random.default_rng(seed)
    m = sp.random(30, 20, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.sort_indices()
    y = rng.normal(size=(20, 3)).astype(np.float32)
    ub = _balanced_bounds(np.diff(m.indptr).astype(float) + 1, n_blocks)
    ib = _balanced_bounds(np.bincount(m.indices, minlength=20).astype(float) + 1, n_blocks)
    t = m.T.tocsr()
    needs = [_needs(t[ib[c]:ib[c + 1]], ub) for c in range(len(ib) - 1)]
    for b in range(len(ub) - 1):
        block = m[ub[b]:ub[b + 1]]
        pieces = [_rows((y[ib[c]:ib[c + 1]], c), needs[c], b) for c in range(len(ib) - 1)]
        assert [g for _, g in pieces] == list(range(len(ib) - 1))  # each with its Gram
        other = np.concatenate([rows for rows, _ in pieces])
        compact = _compact(block)
        assert other.shape[0] == compact.shape[1] == len(np.unique(block.indices))
        np.testing.assert_array_equal(np.diff(compact.indptr), np.diff(block.indptr))
        np.testing.assert_allclose(compact @ other, block @ y, rtol=1e-6, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16), method=st.sampled_from(["tfidf", "bm25"]),
       cut=st.integers(0, 12))
def test_transform_by_user_blocks_equals_whole(seed, method, cut):
    rng = np.random.default_rng(seed)
    m = sp.random(12, 9, density=0.4, random_state=rng, format="csr", dtype=np.float64)
    m.data = rng.normal(size=m.nnz)
    coo = m.tocoo()
    whole = transform_values(coo.row, coo.col, coo.data, m.shape, method)
    first, second = coo.row < cut, coo.row >= cut
    parts = [corpus_stats(coo.row[k] - (0 if k is first else cut), coo.col[k], coo.data[k],
                          (cut if k is first else 12 - cut, 9)) for k in (first, second)]
    corpus = combine_corpus_stats(parts, 12)
    got = np.empty_like(whole)
    got[first] = transform_values(coo.row[first], coo.col[first], coo.data[first], (cut, 9),
                                  method, corpus=corpus)
    got[second] = transform_values(coo.row[second] - cut, coo.col[second], coo.data[second],
                                   (12 - cut, 9), method, corpus=corpus)
    np.testing.assert_allclose(got, whole, rtol=1e-12, atol=1e-12)


def test_readme_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        pytest.skip("needs the source checkout")
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme.read_text("utf-8"), re.S)
                if "fit_als" in b)
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "readme"}
    exec(compile(code, "README dask example", "exec"), scope)
    recs = pd.concat([pd.read_parquet(f) for f in scope["files"]])
    assert (tmp_path / "als.npz").is_file() and len(recs) == 10 * scope["seen"].n_users
    assert set(recs["rank"]) == set(range(1, 11))
