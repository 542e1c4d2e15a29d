"""Per-model query caches (packed item panels, normalised factors, ALS's fold-in Gram):
built once, rebuilt when the factors are assigned, thread-safe, never pickled."""

import copy
import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import tastemaker
from tastemaker import _core
from tastemaker.models import base


def fitted(seed=0, n_users=40, n_items=70, f=8):
    rng = np.random.default_rng(seed)
    ui = sp.random(n_users, n_items, density=0.15, format="csr", random_state=seed,
                   dtype=np.float32)
    ui.data[:] = rng.integers(1, 5, ui.nnz)
    ui.sort_indices()
    model = tastemaker.ALS(factors=f, iterations=2, regularization=0.1, random_state=seed,
                           num_threads=1)
    model.fit(ui, show_progress=False)
    return model, ui


def fresh_copy(model):
    """A model with copies of the same factors and nothing cached."""
    other = tastemaker.ALS(**model.get_params())
    other.user_factors = model.user_factors.copy()
    other.item_factors = model.item_factors.copy()
    return other


def answers(model, ui):
    users = np.arange(5)
    return [model.recommend(users, ui[users], N=7),
            model.recommend(3, ui[3], N=7),
            model.recommend(3, ui[3], N=7, recalculate_user=True),
            model.recommend(3, ui[3], N=7, filter_items=[1, 2], recalculate_user=True),
            model.similar_items(4, N=6),
            model.similar_items(np.arange(70), N=6),
            model.similar_users(2, N=5)]


def assert_same(a, b):
    for (ids_a, sc_a), (ids_b, sc_b) in zip(a, b):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(sc_a, sc_b)


def fold_in_reference(model, row):
    """Exact implicit-ALS fold-in in float64 NumPy (alpha 1, positive values)."""
    Y = model.item_factors.astype(np.float64)
    f = Y.shape[1]
    c = row.data.astype(np.float64)
    Yu = Y[row.indices]
    A = Y.T @ Y + model.regularization * np.eye(f) + (Yu * (c - 1)[:, None]).T @ Yu
    return np.linalg.solve(A, Yu.T @ c)


def test_augmented_assignment_invalidates_the_gram_and_the_panels():
    # regression: the fold-in Gram was keyed by id() of the array, so `*= 3` (same
    # object) kept the stale Y^T Y
    model, ui = fitted()
    before = answers(model, ui)  # warms every cache
    model.item_factors *= np.float32(3)
    model.user_factors *= np.float32(0.5)
    after = answers(model, ui)
    assert_same(after, answers(fresh_copy(model), ui))
    assert not np.array_equal(before[2][1], after[2][1])
    x = model._fold_in_users(ui[3])[0]
    np.testing.assert_allclose(x, fold_in_reference(model, ui[3]), rtol=2e-4, atol=1e-6)


def test_in_place_writes_are_seen_after_reassignment():
    model, ui = fitted(1)
    answers(model, ui)
    model.item_factors[:10] = np.float32(0.25)  # not seen by the caches until assigned
    model.item_factors = model.item_factors
    assert_same(answers(model, ui), answers(fresh_copy(model), ui))
    model.item_factors = np.ascontiguousarray(model.item_factors[::-1])  # a new array
    assert_same(answers(model, ui), answers(fresh_copy(model), ui))


def test_partial_fit_refreshes_the_caches():
    model, ui = fitted(2)
    answers(model, ui)
    model.partial_fit_items([3, 5], ui.T.tocsr()[[3, 5]] * np.float32(4))
    model.partial_fit_users([0, 45], ui[[0, 1]])  # grows user_factors
    assert model.user_factors.shape[0] == 46
    assert_same(answers(model, ui), answers(fresh_copy(model), ui))


def test_caches_are_built_once_per_version(monkeypatch):
    calls = []
    real = base._packed

    def counting(items, name, num_threads):
        calls.append(name)
        return real(items, name, num_threads)

    monkeypatch.setattr(base, "_packed", counting)
    model, ui = fitted(3)
    for u in range(5):
        model.recommend(u, ui[u], N=3)
        model.similar_items(u, N=3)
    assert sorted(calls) == ["item_factors", "item_factors"]  # raw and normalised
    model.user_factors = model.user_factors  # the other side: item caches stay
    model.recommend(0, ui[0], N=3)
    assert len(calls) == 2
    model.item_factors = model.item_factors
    model.recommend(0, ui[0], N=3)
    assert len(calls) == 3


def test_concurrent_first_queries_build_once_and_agree(monkeypatch):
    model, ui = fitted(4)
    want = [model.recommend(u, ui[u], N=5, recalculate_user=True) for u in range(16)]
    grams = []
    real_gram = _core.als_gram
    monkeypatch.setattr(tastemaker.models.als._core, "als_gram",
                        lambda *a: grams.append(1) or real_gram(*a), raising=True)
    cold = fresh_copy(model)
    barrier = threading.Barrier(8)
    got, errors = {}, []

    def worker(t):
        try:
            barrier.wait()
            for u in range(t, 16, 8):
                got[u] = cold.recommend(u, ui[u], N=5, recalculate_user=True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(grams) == 1
    for u in range(16):
        np.testing.assert_array_equal(got[u][0], want[u][0])
        np.testing.assert_array_equal(got[u][1], want[u][1])


def test_queries_during_assignment_see_old_or_new_factors_never_a_mix():
    model, ui = fitted(5)
    old_items = model.item_factors.copy()
    new_items = np.ascontiguousarray(old_items[::-1] * np.float32(2))
    refs = []
    for items in (old_items, new_items):
        model.item_factors = items
        refs.append((model.recommend(np.arange(10), ui[:10], N=5),
                     model.similar_items(np.arange(10), N=5)))
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            rec = model.recommend(np.arange(10), ui[:10], N=5)
            sim = model.similar_items(np.arange(10), N=5)
            ok_rec = any(np.array_equal(rec[1], r[0][1]) for r in refs)
            ok_sim = any(np.array_equal(sim[1], r[1][1]) for r in refs)
            if not (ok_rec and ok_sim):
                bad.append((rec, sim))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for i in range(60):
        model.item_factors = (old_items, new_items)[i % 2]
    stop.set()
    for th in threads:
        th.join()
    assert not bad


def test_a_cache_pickles_and_copies_as_an_empty_one():
    model, ui = fitted(6)
    answers(model, ui)
    cache = model._query_cache()
    for other in (pickle.loads(pickle.dumps(cache)), copy.deepcopy(cache), copy.copy(cache)):
        assert type(other) is type(cache) and other is not cache
        assert other._entries == {} and other._versions == {"user": 0, "item": 0}


@pytest.mark.parametrize("clone", ["pickle", "deepcopy", "copy"])
def test_copies_answer_like_the_original_and_leave_it_alone(clone):
    # copy.copy shares the cache object with the original (a shallow copy of __dict__):
    # harmless, entries match only the arrays they were built from
    model, ui = fitted(6)
    want = answers(model, ui)  # warm caches, with a lock inside, must not break pickling
    other = {"pickle": lambda m: pickle.loads(pickle.dumps(m)), "deepcopy": copy.deepcopy,
             "copy": copy.copy}[clone](model)
    if clone != "copy":
        assert other._query_cache() is not model._query_cache()
    assert_same(answers(other, ui), want)
    other.item_factors = other.item_factors * np.float32(2)  # must not touch the original
    assert_same(answers(model, ui), want)


def test_float64_factors_are_converted_once_and_still_agree():
    model, ui = fitted(7)
    want = answers(model, ui)
    model.user_factors = model.user_factors.astype(np.float64)
    model.item_factors = model.item_factors.astype(np.float64)
    assert_same(answers(model, ui), want)


def test_nan_assigned_after_warm_caches_is_still_reported():
    model, ui = fitted(8)
    answers(model, ui)
    bad = model.item_factors.copy()
    bad[3, 1] = np.nan
    model.item_factors = bad
    with pytest.raises(ValueError, match="item_factors"):
        model.recommend(0, ui[0])
    with pytest.raises(ValueError, match="item_factors"):
        model.similar_items(0)


def test_single_row_fast_path_keeps_every_error():
    model, ui = fitted(9)
    row = ui[2]
    as_array = sp.csr_array(row) if hasattr(sp, "csr_array") else row
    np.testing.assert_array_equal(model.recommend(2, as_array)[0], model.recommend(2, row)[0])
    unsorted = sp.csr_matrix((np.ones(2, np.float32), np.array([5, 1], np.int32),
                              np.array([0, 2], np.int32)), shape=(1, 70))
    with pytest.raises(ValueError, match="user_items.*unsorted"):
        model.recommend(0, unsorted)
    dup = sp.csr_matrix((np.ones(2, np.float32), np.array([5, 5], np.int32),
                         np.array([0, 2], np.int32)), shape=(1, 70))
    with pytest.raises(ValueError, match="user_items.*duplicate"):
        model.recommend(0, dup)
    nan = row.copy()
    nan.data[:] = np.nan
    with pytest.raises(ValueError, match="user_items.*NaN"):
        model.recommend(0, nan)
    with pytest.raises(ValueError, match="user_items.*NaN"):
        model.recommend(0, nan, recalculate_user=True)
    wide = sp.csr_matrix((1, 71), dtype=np.float32)
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, wide)
    out_of_range = sp.csr_matrix((np.ones(1, np.float32), np.array([70], np.int32),
                                  np.array([0, 1], np.int32)), shape=(1, 70), copy=False)
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, out_of_range)
