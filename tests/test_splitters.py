"""Splitters: no leakage, sizes as asked, determinism, documented edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker import Interactions
from tastemaker.evaluation import (
    leave_last_k_out_split,
    random_split,
    temporal_split,
    user_kfold_split,
)


def _make(user, item, ts):
    return Interactions.from_arrays(np.asarray(user), np.asarray(item), timestamps=ts)


def _random_log(seed, n_users=40, n_items=30, density=0.2):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=density, format="coo", random_state=rng)
    # a couple of users with a single interaction and one with none
    keep = ~np.isin(m.row, [0, 1, 2]) | ((m.row != 2) & (m.col == m.col.min()))
    user, item = m.row[keep], m.col[keep]
    user = np.concatenate([user, [0, 1]])
    item = np.concatenate([item, [3, 4]])
    pairs = np.unique(np.stack([user, item], 1), axis=0)
    ts = rng.integers(0, 50, size=len(pairs)).astype(float)  # ties on purpose
    return _make(pairs[:, 0], pairs[:, 1], ts)


def _pairs(x):
    if sp.issparse(x):
        c = x.tocoo()
        return set(zip(c.row.tolist(), c.col.tolist()))
    return set(zip(x.user_idx.tolist(), x.item_idx.tolist()))


def _per_user(x, _unused=None):
    if sp.issparse(x):
        return np.diff(x.tocsr().indptr)
    return np.bincount(x.user_idx, minlength=x.shape[0])


def _check_partition(data, *parts):
    all_pairs = _pairs(data)
    seen = set()
    for p in parts:
        assert p.shape == data.shape
        pp = _pairs(p)
        assert not (pp & seen), "an interaction is in two parts"
        seen |= pp
    assert seen == all_pairs


@pytest.mark.parametrize("as_matrix", [False, True])
def test_random_split_fraction_sizes_and_no_leakage(as_matrix):
    data = _random_log(0)
    src = data.to_csr() if as_matrix else data
    train, test = random_split(src, 0.25, random_state=1)
    _check_partition(src, train, test)
    n = _per_user(src, 40)
    expected = np.clip(np.minimum(np.floor(0.25 * n + 0.5), n - 1), 0, None)
    np.testing.assert_array_equal(_per_user(test, 40), expected)
    assert _per_user(test, 40)[:2].sum() == 0  # users with <= 1 interaction stay in train
    if as_matrix:  # values travel with their entries
        np.testing.assert_array_equal((train + test).toarray(), src.toarray())


def test_random_split_count_and_min_train():
    data = _random_log(1)
    n = _per_user(data, 40)
    train, test = random_split(data, 2, min_train=3, random_state=0)
    _check_partition(data, train, test)
    np.testing.assert_array_equal(_per_user(test, 40), np.clip(np.minimum(2, n - 3), 0, None))
    assert np.all(_per_user(train, 40) >= np.minimum(n, 3))


def test_random_split_is_deterministic_for_a_seed():
    data = _random_log(2).to_csr()
    a = random_split(data, 0.3, random_state=7)
    b = random_split(data, 0.3, random_state=7)
    c = random_split(data, 0.3, random_state=8)
    assert _pairs(a[1]) == _pairs(b[1])
    assert _pairs(a[1]) != _pairs(c[1])
    gen = random_split(data, 0.3, random_state=np.random.default_rng(7))
    assert _pairs(gen[1]) == _pairs(a[1])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.one_of(st.floats(0.01, 0.99), st.integers(1, 6)),
       st.integers(0, 3))
def test_random_split_property(seed, test_size, min_train):
    data = _random_log(seed, n_users=15, n_items=12, density=0.3).to_csr()
    train, test = random_split(data, test_size, min_train=min_train, random_state=seed)
    _check_partition(data, train, test)
    n = _per_user(data, 15)
    assert np.all(_per_user(train, 15) >= np.minimum(n, min_train))
    if isinstance(test_size, int):
        assert np.all(_per_user(test, 15) <= test_size)


def test_leave_last_k_out_takes_the_latest_entries():
    data = _random_log(3)
    train, test = leave_last_k_out_split(data, k=2)
    _check_partition(data, train, test)
    n = _per_user(data, 40)
    np.testing.assert_array_equal(_per_user(test, 40), np.clip(np.minimum(2, n - 1), 0, None))
    ts = {(u, i): t for u, i, t in zip(data.user_idx, data.item_idx, data.timestamps)}
    for u in range(data.shape[0]):
        tr = [(ts[(u, i)], i) for (uu, i) in _pairs(train) if uu == u]
        te = [(ts[(u, i)], i) for (uu, i) in _pairs(test) if uu == u]
        if tr and te:
            assert max(tr) < min(te)  # ordered by (time, item): ties broken by item


def test_temporal_split_at_a_time_and_cold_start():
    data = _random_log(4)
    train, test = temporal_split(data, 30, drop_cold_start=False)
    _check_partition(data, train, test)
    assert train.timestamps.max() < 30 <= test.timestamps.min()
    train2, test2 = temporal_split(data, 30)
    assert _pairs(train2) == _pairs(train)
    assert _pairs(test2) <= _pairs(test)
    warm_u = set(train.user_idx.tolist())
    warm_i = set(train.item_idx.tolist())
    assert _pairs(test2) == {(u, i) for u, i in _pairs(test) if u in warm_u and i in warm_i}


def test_temporal_split_by_fraction():
    user = np.repeat(np.arange(10), 10)
    item = np.tile(np.arange(10), 10)
    data = _make(user, item, np.arange(100.0))
    train, test = temporal_split(data, test_fraction=0.25, drop_cold_start=False)
    assert train.nnz == 75 and test.nnz == 25
    # users 8 and 9 act only after the split: cold, dropped by default
    train, test = temporal_split(data, test_fraction=0.25)
    assert train.nnz == 75 and test.nnz == 5


def test_user_kfold_holds_out_each_eligible_user_once():
    data = _random_log(5)
    n = _per_user(data, 40)
    held = []
    for fold in user_kfold_split(data, 4, test_size=0.5, random_state=3):
        _check_partition(data, fold.train, fold.fold_in, fold.test)
        train_users = set(np.flatnonzero(_per_user(fold.train, 40)).tolist())
        assert not train_users & set(fold.users.tolist())
        assert set(fold.fold_in.user_idx.tolist()) <= set(fold.users.tolist())
        assert set(fold.test.user_idx.tolist()) == set(fold.users.tolist())
        fi, te = _per_user(fold.fold_in, 40), _per_user(fold.test, 40)
        np.testing.assert_array_equal(te[fold.users], np.floor(0.5 * n[fold.users] + 0.5))
        assert np.all(fi[fold.users] >= 1)
        held.extend(fold.users.tolist())
    assert sorted(held) == np.flatnonzero(n >= 2).tolist()
    again = [f.users for f in user_kfold_split(data, 4, test_size=0.5, random_state=3)]
    first = [f.users for f in user_kfold_split(data, 4, test_size=0.5, random_state=3)]
    for a, b in zip(again, first):
        np.testing.assert_array_equal(a, b)


def test_user_kfold_by_time_on_a_matrix_needs_timestamps():
    data = _random_log(6)
    for fold in user_kfold_split(data, 3, test_size=1, by_time=True, random_state=0):
        ts = {(u, i): t for u, i, t in zip(data.user_idx, data.item_idx, data.timestamps)}
        for u in fold.users:
            fi = [(ts[(u, i)], i) for (uu, i) in _pairs(fold.fold_in) if uu == u]
            te = [(ts[(u, i)], i) for (uu, i) in _pairs(fold.test) if uu == u]
            assert len(te) == 1 and max(fi) < te[0]
    with pytest.raises(ValueError, match="data: this split needs timestamps"):
        next(user_kfold_split(data.to_csr(), 3, test_size=1, by_time=True))
    folds = list(user_kfold_split(data.to_csr(), 3, random_state=0))
    assert len(folds) == 3 and all(sp.issparse(f.test) for f in folds)


def test_splitter_errors():
    data = _random_log(7)
    csr = data.to_csr()
    with pytest.raises(ValueError, match="data: expected a tastemaker.Interactions"):
        random_split(csr.toarray())
    with pytest.raises(ValueError, match="data: has no interactions"):
        random_split(sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="test_size: a fraction must be < 1"):
        random_split(csr, 1.0)
    with pytest.raises(ValueError, match="test_size: expected a number > 0"):
        random_split(csr, 0.0)
    with pytest.raises(ValueError, match="test_size: expected an int >= 1"):
        random_split(csr, 0)
    with pytest.raises(ValueError, match="test_size: expected a number"):
        random_split(csr, True)
    with pytest.raises(ValueError, match="min_train: expected an int >= 0"):
        random_split(csr, 0.2, min_train=-1)
    with pytest.raises(ValueError, match="random_state"):
        random_split(csr, 0.2, random_state="x")
    with pytest.raises(ValueError, match="data: this split needs timestamps"):
        leave_last_k_out_split(csr)
    no_time = _make(data.user_idx, data.item_idx, None)
    with pytest.raises(ValueError, match="data: this split needs timestamps, and this"):
        temporal_split(no_time, 3)
    with pytest.raises(ValueError, match="at: give exactly one"):
        temporal_split(data)
    with pytest.raises(ValueError, match="at: give exactly one"):
        temporal_split(data, 3, test_fraction=0.2)
    with pytest.raises(ValueError, match="test_fraction: expected a number < 1"):
        temporal_split(data, test_fraction=1.5)
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        leave_last_k_out_split(data, 0)
    with pytest.raises(ValueError, match="n_splits: 50 folds need"):
        next(user_kfold_split(data, 50))
    with pytest.raises(ValueError, match="n_splits: expected an int >= 2"):
        next(user_kfold_split(data, 1))
    with pytest.raises(ValueError, match="test_size: with by_time=True"):
        next(user_kfold_split(data, 3, by_time=True))


def test_interactions_keep_their_id_maps_and_type():
    rng = np.random.default_rng(9)
    users = rng.choice(["ann", "bob", "cy", "dee"], 60)
    items = rng.choice([f"title-{i}" for i in range(12)], 60)
    data = Interactions.from_arrays(users, items, timestamps=rng.random(60) * 1e6)
    splits = (random_split(data, 0.3, random_state=0), leave_last_k_out_split(data),
              temporal_split(data, test_fraction=0.3, drop_cold_start=False))
    for train, test in splits:
        _check_partition(data, train, test)
        for part in (train, test):
            assert isinstance(part, Interactions) and part.shape == data.shape
            np.testing.assert_array_equal(part.user_ids, data.user_ids)
            np.testing.assert_array_equal(part.item_ids, data.item_ids)
    fold = next(user_kfold_split(data, 2, random_state=0))
    assert isinstance(fold.fold_in, Interactions)
    np.testing.assert_array_equal(fold.test.item_ids, data.item_ids)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 12), st.floats(0.05, 0.95), st.sampled_from(["user", "item"]),
       st.integers(0, 2**32 - 1))
def test_stratified_split_keeps_each_groups_proportion(n_users, n_items, frac, by, seed):
    from tastemaker.evaluation import stratified_split
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=0.6, format="csr", random_state=rng,
                  dtype=np.float32)
    m.data[:] = rng.integers(1, 6, m.nnz)
    if m.nnz == 0:
        with pytest.raises(ValueError, match="no interactions"):
            stratified_split(m, frac, by=by, random_state=seed)
        return
    train, test = stratified_split(m, frac, by=by, random_state=seed)
    # disjoint and together the input
    assert (train.multiply(test)).nnz == 0
    np.testing.assert_array_equal((train + test).toarray(), m.toarray())
    axis = 1 if by == "user" else 0
    n = np.asarray((m != 0).sum(axis=axis)).ravel()
    n_train = np.asarray((train != 0).sum(axis=axis)).ravel()
    np.testing.assert_array_equal(n_train, np.round((1 - frac) * n))  # numpy: half to even
    # same seed, same split
    again, _ = stratified_split(m, frac, by=by, random_state=seed)
    np.testing.assert_array_equal(again.toarray(), train.toarray())


def test_stratified_split_bad_input():
    from tastemaker.evaluation import stratified_split
    m = sp.csr_matrix(np.ones((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="by"):
        stratified_split(m, 0.25, by="session")
    for bad in (0, 1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="test_size"):
            stratified_split(m, bad)
