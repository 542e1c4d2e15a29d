"""The single-request paths (one native call per request: tastemaker/query.hpp) against
NumPy references and the batch paths, and their bad-input errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker
from hypothesis import given, settings
from hypothesis import strategies as st
from tastemaker import _core


def als_model(seed, n_users=30, n_items=90, f=6, integer=False, reg=0.1, alpha=1.0, expo=0.0):
    rng = np.random.default_rng(seed)
    if integer:  # exact scores: rankings comparable with NumPy bit for bit
        uf = rng.integers(-2, 3, (n_users, f)).astype(np.float32)
        itf = rng.integers(-2, 3, (n_items, f)).astype(np.float32)
    else:
        uf = rng.standard_normal((n_users, f), dtype=np.float32)
        itf = rng.standard_normal((n_items, f), dtype=np.float32) * np.float32(0.3)
    model = tastemaker.ALS(factors=f, regularization=reg, alpha=alpha,
                           regularization_exponent=expo, num_threads=1)
    model.user_factors, model.item_factors = uf, itf
    return model


def one_row(rng, n_items, nnz, negative=False):
    cols = np.sort(rng.choice(n_items, nnz, replace=False)).astype(np.int32)
    vals = rng.integers(1, 5, nnz).astype(np.float32)
    if negative and nnz:
        vals[rng.random(nnz) < 0.3] *= -1
        vals[0] = 0.0  # a stored zero: seen, no signal
    return sp.csr_matrix((vals, cols, np.array([0, nnz], dtype=np.int32)), shape=(1, n_items))


def ref_rank(scores, excluded, N):
    cand = np.setdiff1d(np.arange(scores.size), excluded)
    order = np.lexsort((cand, -scores[cand]))[:N]
    return cand[order], scores[cand[order]]


def ref_fold_in(model, row):
    """x of the exact ALS normal equations, in float64 (als.hpp's model)."""
    Y = model.item_factors.astype(np.float64)
    p = model._checked_params()
    keep = row.data != 0
    cols, v = row.indices[keep], row.data[keep].astype(np.float64)
    c = p["alpha"] * np.abs(v)
    lam = np.float32(p["regularization"] * (1.0 + row.nnz) ** p["reg_exponent"])
    A = Y.T @ Y + np.float64(lam) * np.eye(Y.shape[1]) + (Y[cols].T * (c - 1.0)) @ Y[cols]
    b = (Y[cols] * np.where(v > 0, c, 0.0)[:, None]).sum(axis=0)
    return np.linalg.solve(A, b)


def spy(monkeypatch, name):
    calls = []
    real = getattr(_core, name)

    def wrapped(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, name, wrapped)
    return calls


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 100), st.integers(0, 40), st.booleans())
def test_recommend_one_matches_numpy_and_the_batch_path(seed, N, nnz, with_deny):
    model = als_model(seed, integer=True)
    rng = np.random.default_rng(seed)
    row = one_row(rng, 90, nnz)
    u = int(rng.integers(0, 30))
    deny = rng.choice(90, 7).astype(np.int32) if with_deny else None
    ids, scores = model.recommend(u, row, N=N, filter_items=deny)
    excluded = row.indices if deny is None else np.union1d(row.indices, deny)
    want_ids, want_scores = ref_rank(model.item_factors @ model.user_factors[u], excluded, N)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    b_ids, _ = model.recommend(np.array([u]), row, N=N, filter_items=deny)
    n = int((b_ids[0] >= 0).sum())
    np.testing.assert_array_equal(ids, b_ids[0, :n])


def test_the_single_request_paths_are_taken(monkeypatch):
    model = als_model(1)
    row = one_row(np.random.default_rng(1), 90, 8)
    rec = spy(monkeypatch, "query_recommend")
    fold = spy(monkeypatch, "query_fold_in")
    sim = spy(monkeypatch, "query_similar")
    vec = spy(monkeypatch, "query_vector")
    model.recommend(3, row)
    model.recommend(np.int64(3), row, recalculate_user=True)
    model.similar_items(4)
    model.recommend_vectors(model.user_factors[0], exclude=row.indices)
    assert (len(rec), len(fold), len(sim), len(vec)) == (1, 1, 1, 1)


@pytest.mark.parametrize("expo", [0.0, 0.5])
def test_fold_in_one_matches_the_numpy_solve_and_the_batch_path(expo):
    model = als_model(2, n_items=200, f=16, reg=0.3, alpha=2.0, expo=expo)
    rng = np.random.default_rng(2)
    for nnz in (0, 1, 5, 60):
        row = one_row(rng, 200, nnz, negative=True)
        x_ref = ref_fold_in(model, row)
        x = model._fold_in_one(row.indices, row.data)
        np.testing.assert_allclose(x, x_ref, rtol=1e-4, atol=1e-6)
        x_batch = model._fold_in_users(row)[0]
        np.testing.assert_allclose(x, x_batch, rtol=1e-5, atol=1e-7)
        ids, scores = model.recommend(7, row, N=10, recalculate_user=True)
        want_ids, _ = ref_rank(model.item_factors.astype(np.float64) @ x_ref, row.indices, 10)
        np.testing.assert_array_equal(ids, want_ids)
        b_ids, b_scores = model.recommend(np.array([7]), row, N=10, recalculate_user=True)
        np.testing.assert_array_equal(ids, b_ids[0])
        np.testing.assert_allclose(scores, b_scores[0], rtol=1e-5, atol=1e-6)
        # the factor: A = U^T U
        _, upper = model._fold_in_one(row.indices, row.data, want_factor=True)
        U = np.triu(upper)
        Y = model.item_factors.astype(np.float64)
        keep = row.data != 0
        c = 2.0 * np.abs(row.data[keep].astype(np.float64))
        # stored zeros count (als.hpp); the float32 regularization times a float64 power
        lam = np.float32(float(np.float32(0.3)) * (1.0 + row.nnz) ** expo)
        A = Y.T @ Y + lam * np.eye(16) + (Y[row.indices[keep]].T * (c - 1)) @ Y[row.indices[keep]]
        np.testing.assert_allclose(U.T @ U, A, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.booleans())
def test_similar_items_one_matches_cosine_and_the_batch_path(seed, N, with_deny):
    model = als_model(seed, n_items=60)
    itf = model.item_factors.copy()
    itf[[5, 17]] = 0.0  # items without direction
    model.item_factors = itf
    rng = np.random.default_rng(seed)
    i = int(rng.integers(0, 60))
    deny = np.unique(rng.choice(60, 5)).astype(np.int32) if with_deny else None
    ids, scores = model.similar_items(i, N=N, filter_items=deny)
    b_ids, b_scores = model.similar_items(np.array([i]), N=N, filter_items=deny)
    n = int((b_ids[0] >= 0).sum())
    np.testing.assert_array_equal(ids, b_ids[0, :n])
    np.testing.assert_array_equal(scores, b_scores[0, :n])
    norms = np.linalg.norm(itf.astype(np.float64), axis=1)
    if norms[i] == 0:
        assert ids.size == 0
        return
    cos = itf.astype(np.float64) @ itf[i] / np.where(norms > 0, norms, 1.0) / norms[i]
    bad = [5, 17] + ([] if deny is None else deny.tolist())
    assert not np.isin(ids, [j for j in bad if j != i or (deny is not None and i in deny)]).any()
    np.testing.assert_allclose(scores, np.clip(cos[ids], -1, 1), atol=1e-5)
    if deny is None or i not in deny:
        assert ids[0] == i and scores[0] == 1.0


def prefilter_model(seed, regime, n_items, f=8):
    """A model large enough for the single-query int8 pre-filter (>= 1024 items), in a
    regime that stresses its bounds: 0 small integers times powers of two (exact scores,
    many ties, magnitudes from 2^-60 to 2^50), 1 integers up to 100 with duplicated rows
    (exact, ties at the top), 2 normals with per-item magnitudes 1e-12..1e12 and zero rows
    (inexact: rounding must agree)."""
    rng = np.random.default_rng(seed)
    if regime == 0:
        ea, eb = (int(e) for e in rng.integers(-30, 26, 2))
        uf = np.ldexp(rng.integers(-8, 9, (20, f)), ea).astype(np.float32)
        itf = np.ldexp(rng.integers(-8, 9, (n_items, f)), eb).astype(np.float32)
    elif regime == 1:
        uf = rng.integers(-100, 101, (20, f)).astype(np.float32)
        itf = rng.integers(-100, 101, (n_items, f)).astype(np.float32)
        src = rng.choice(n_items, n_items // 10)
        itf[rng.choice(n_items, src.size, replace=False)] = itf[src]
    else:
        uf = rng.standard_normal((20, f), dtype=np.float32)
        mag = np.float32(10.0) ** rng.uniform(-12, 12, (n_items, 1)).astype(np.float32)
        itf = (rng.standard_normal((n_items, f), dtype=np.float32) * mag).astype(np.float32)
        itf[rng.choice(n_items, 30)] = 0.0
        uf *= np.float32(1e-12)  # keeps dim * max|q| * max|y| inside the overflow bound
    model = tastemaker.ALS(factors=f, regularization=0.1, num_threads=1)
    model.user_factors, model.item_factors = uf, itf
    return model


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 2), st.integers(1, 60), st.integers(0, 300),
       st.booleans(), st.booleans())
def test_prefiltered_single_requests_equal_the_exact_scan(seed, regime, N, nnz, with_deny,
                                                          all_seen):
    """One request over >= 1024 items takes the int8 pre-filter with exact re-scoring: its
    results must be the exact scan's (a batch of two queries) bit for bit, and NumPy's
    ranking where the scores are exact; also with every item seen (nothing to return)."""
    n_items = 1024 + seed % 1000
    model = prefilter_model(seed, regime, n_items)
    rng = np.random.default_rng(seed + 1)
    row = one_row(rng, n_items, n_items if all_seen else nnz)
    u = int(rng.integers(0, 20))
    deny = rng.choice(n_items, 40).astype(np.int32) if with_deny else None
    ids, scores = model.recommend(u, row, N=N, filter_items=deny)
    b_ids, b_scores = model.recommend(np.array([u, u]), sp.vstack([row, row]).tocsr(), N=N,
                                      filter_items=deny)
    n = int((b_ids[0] >= 0).sum())
    np.testing.assert_array_equal(ids, b_ids[0, :n])
    np.testing.assert_array_equal(scores, b_scores[0, :n])
    if all_seen:
        assert ids.size == 0
    if regime < 2:  # exact scores: NumPy's ranking, bit for bit
        excluded = row.indices if deny is None else np.union1d(row.indices, deny)
        exact = model.item_factors.astype(np.float64) @ model.user_factors[u].astype(np.float64)
        want_ids, want_scores = ref_rank(exact.astype(np.float32), excluded, N)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)
    # the same for a fold-in and for similar_items (their single paths scan alike)
    x_ids, x_scores = model.recommend(u, row, N=N, recalculate_user=True, filter_items=deny)
    x = model._fold_in_one(row.indices, row.data)
    v_ids, v_scores = model.recommend_vectors(np.stack([x, x]), N=N,
                                              exclude=sp.vstack([row, row]).tocsr(),
                                              filter_items=deny)
    n = int((v_ids[0] >= 0).sum())
    np.testing.assert_array_equal(x_ids, v_ids[0, :n])
    np.testing.assert_array_equal(x_scores, v_scores[0, :n])
    i = int(rng.integers(0, n_items))
    s_ids, s_scores = model.similar_items(i, N=N, filter_items=deny)
    b_ids, b_scores = model.similar_items(np.array([i, i]), N=N, filter_items=deny)
    n = int((b_ids[0] >= 0).sum())
    np.testing.assert_array_equal(s_ids, b_ids[0, :n])
    np.testing.assert_array_equal(s_scores, b_scores[0, :n])


def test_recommend_vectors_one_matches_the_batch_path():
    model = als_model(3, integer=True)
    rng = np.random.default_rng(3)
    for _ in range(10):
        v = model.user_factors[int(rng.integers(0, 30))]
        ex = np.sort(rng.choice(90, 12, replace=False)).astype(np.int32)
        deny = rng.choice(90, 4).astype(np.int32)
        ids, scores = model.recommend_vectors(v, N=7, exclude=ex, filter_items=deny)
        want_ids, want_scores = ref_rank(model.item_factors @ v, np.union1d(ex, deny), 7)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(scores, want_scores)


def test_bad_single_requests_raise_clear_value_errors():
    model = als_model(4, n_items=70)
    good = one_row(np.random.default_rng(4), 70, 5)
    for recalc in (False, True):
        unsorted = sp.csr_matrix((np.ones(2, np.float32), np.array([5, 1], np.int32),
                                  np.array([0, 2], np.int32)), shape=(1, 70))
        with pytest.raises(ValueError, match="user_items.*unsorted"):
            model.recommend(0, unsorted, recalculate_user=recalc)
        dup = sp.csr_matrix((np.ones(2, np.float32), np.array([5, 5], np.int32),
                             np.array([0, 2], np.int32)), shape=(1, 70))
        with pytest.raises(ValueError, match="user_items.*duplicate"):
            model.recommend(0, dup, recalculate_user=recalc)
        nan = good.copy()
        nan.data[1] = np.inf
        with pytest.raises(ValueError, match="user_items.*NaN"):
            model.recommend(0, nan, recalculate_user=recalc)
        high = sp.csr_matrix((np.ones(1, np.float32), np.array([70], np.int32),
                              np.array([0, 1], np.int32)), shape=(1, 70), copy=False)
        with pytest.raises(ValueError, match="user_items"):
            model.recommend(0, high, recalculate_user=recalc)
        with pytest.raises(ValueError, match="user_items"):
            model.recommend(0, sp.csr_matrix((1, 71), dtype=np.float32), recalculate_user=recalc)
        with pytest.raises(ValueError, match="N"):
            model.recommend(0, good, N=0, recalculate_user=recalc)
        with pytest.raises(ValueError, match="userid"):
            model.recommend(-1, good, recalculate_user=recalc)
    with pytest.raises(ValueError, match="userid"):
        model.recommend(30, good)
    for recalc in (False, True):
        with pytest.raises(ValueError, match="filter_items"):
            model.recommend(0, good, filter_items=np.array([70], np.int32),
                            recalculate_user=recalc)
        with pytest.raises(ValueError, match="filter_items"):
            model.recommend(0, good, filter_items=np.array([[1]], np.int32),
                            recalculate_user=recalc)
    with pytest.raises(ValueError, match="itemid"):
        model.similar_items(70)
    with pytest.raises(ValueError, match="filter_items"):
        model.similar_items(3, filter_items=np.array([70], np.int32))
    with pytest.raises(ValueError, match="N"):
        model.similar_items(3, N=0)
    with pytest.raises(ValueError, match="exclude|vectors"):
        model.recommend_vectors(np.ones(5, np.float32), exclude=np.array([1], np.int32))
    bad = als_model(4, n_items=70)
    bad.num_threads = -1
    with pytest.raises(ValueError, match="num_threads"):
        bad.recommend(0, good)
    nan_model = als_model(4, n_items=70)
    uf = nan_model.user_factors.copy()
    uf[2, 0] = np.nan
    nan_model.user_factors = uf
    with pytest.raises(ValueError, match="user_factors"):
        nan_model.recommend(2, good)
    nan_model.recommend(1, good)  # other users are fine
    itf = nan_model.item_factors.copy()
    itf[3, 1] = np.inf
    nan_model.item_factors = itf
    with pytest.raises(ValueError, match="item_factors"):
        nan_model.recommend(1, good, recalculate_user=True)
    with pytest.raises(ValueError, match="item_factors"):
        nan_model.similar_items(1)
    # other index and value dtypes take the general path, with the same answer
    wide = sp.csr_matrix((good.data.astype(np.float64), good.indices.astype(np.int64),
                          good.indptr.astype(np.int64)), shape=(1, 70))
    np.testing.assert_array_equal(model.recommend(2, wide)[0], model.recommend(2, good)[0])


def test_native_entry_points_check_their_arguments():
    model = als_model(5, n_items=40, f=4)
    itf, uf = model.item_factors, model.user_factors
    packed = model._packed_items("item", "factors", itf, "item_factors")
    gram = _core.als_gram(itf, 1)
    ip, ix, d = np.array([0, 2], np.int64), np.array([1, 3], np.int32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="user_factors"):
        _core.query_recommend(uf.astype(np.float64), 0, packed, itf, 3, ip, ix, d)
    with pytest.raises(ValueError, match="userid"):
        _core.query_recommend(uf, 30, packed, itf, 3, ip, ix, d)
    with pytest.raises(ValueError, match="item_factors"):
        _core.query_recommend(uf, 0, packed, itf[:10], 3, ip, ix, d)
    with pytest.raises(ValueError, match="N"):
        _core.query_recommend(uf, 0, packed, itf, -1, ip, ix, d)
    with pytest.raises(ValueError, match="user_items"):
        _core.query_recommend(uf, 0, packed, itf, 3, np.array([0, 3], np.int64), ix, d)
    with pytest.raises(ValueError, match="user_items.indices"):
        _core.query_recommend(uf, 0, packed, itf, 3, ip, ix.astype(np.int64), d)
    with pytest.raises(ValueError, match="gram"):
        _core.query_fold_in(itf, gram[:2], 0.1, 0.0, 1.0, ip, ix, d)
    with pytest.raises(ValueError, match="gram"):
        _core.query_fold_in(itf, np.full_like(gram, np.nan), 0.1, 0.0, 1.0, ip, ix, d)
    with pytest.raises(ValueError, match="alpha"):
        _core.query_fold_in(itf, gram, 0.1, 0.0, 0.0, ip, ix, d)
    with pytest.raises(ValueError, match="regularization"):
        _core.query_fold_in(itf, gram, -1.0, 0.0, 1.0, ip, ix, d)
    with pytest.raises(ValueError, match="packed"):
        _core.query_fold_in(itf, gram, 0.1, 0.0, 1.0, ip, ix, d, None, 3)
    with pytest.raises(RuntimeError, match="positive definite"):
        _core.query_fold_in(itf, np.zeros_like(gram), 0.0, 0.0, 1.0, np.array([0, 0], np.int64),
                            ix[:0], d[:0])
    with pytest.raises(ValueError, match="vectors"):
        _core.query_vector(np.ones(3, np.float32), packed, itf, 3)
    with pytest.raises(ValueError, match="exclude"):
        _core.query_vector(np.ones(4, np.float32), packed, itf, 3, np.array([3, 1], np.int32))
    with pytest.raises(ValueError, match="deny"):
        _core.query_vector(np.ones(4, np.float32), packed, itf, 3, None, np.array([40], np.int32))
    normed = model._normalized_factors("item", itf)
    npk = model._packed_items("item", "normalized", normed, "item_factors")
    with pytest.raises(ValueError, match="itemid"):
        _core.query_similar(normed, npk, -1, 3)
    with pytest.raises(ValueError, match="zero"):
        _core.query_similar(normed, npk, 1, 3, np.array([4, 2], np.int32))


def test_personalizer_reasons_with_the_kept_factorisation_equal_a_fresh_solve():
    rng = np.random.default_rng(6)
    users = np.repeat(np.arange(20), 8)
    items = rng.integers(0, 50, users.size)
    data = tastemaker.Interactions.from_arrays(users, items)
    model = tastemaker.ALS(factors=6, iterations=3, random_state=0, num_threads=1).fit(
        data, show_progress=False)
    p = tastemaker.Personalizer(model, data)
    user = data.user_ids[3]
    p.record(user, data.item_ids[7], "play")
    kept = p.top_picks(user, 5)
    ex = p._state.items.explainer
    ex._systems.clear()  # the next explanation factors A itself (LAPACK)
    fresh = p.top_picks(user, 5)
    assert kept.items == fresh.items and kept.reasons == fresh.reasons
    e = p.explain(user, kept.items[0], n=1000)  # every contribution: the rest is rounding
    assert sum(v for _, v in e.contributions) + e.rest == pytest.approx(e.score, abs=1e-12)
    assert abs(e.rest) < 1e-4 * max(1.0, abs(e.score))


def test_single_request_state_follows_factors_and_hyperparameters():
    model = als_model(7, n_items=80, f=8, reg=0.1)
    row = one_row(np.random.default_rng(7), 80, 12)
    before = model.recommend(1, row, recalculate_user=True)
    model.regularization = 5.0  # a new hyperparameter: the fold-in spec is rebuilt
    x = model._fold_in_one(row.indices, row.data)
    np.testing.assert_allclose(x, ref_fold_in(model, row), rtol=1e-4, atol=1e-6)
    model.item_factors = model.item_factors * np.float32(2)  # new factors: everything
    ids, scores = model.recommend(1, row, recalculate_user=True)
    b_ids, b_scores = model.recommend(np.array([1]), row, recalculate_user=True)
    np.testing.assert_array_equal(ids, b_ids[0])
    np.testing.assert_allclose(scores, b_scores[0], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(scores, before[1])
    ids, scores = model.recommend(1, row)
    want_ids, want_scores = ref_rank(model.item_factors @ model.user_factors[1], row.indices, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    sims, _ = model.similar_items(3)
    np.testing.assert_array_equal(sims, model.similar_items(np.array([3]))[0][0])


def test_single_requests_bit_identical_on_every_simd_path():
    """The single-request scans go through the int8 pre-filter (PackedItems' copy, from
    1024 items): its integer dot products differ per path (vpmaddubsw chains on avx2 and
    avx512, vpdpbusd on avx512vnni), the results must not."""
    model = als_model(11, n_users=40, n_items=1500, f=24)
    rng = np.random.default_rng(11)
    rows = [one_row(rng, 1500, nnz) for nnz in (0, 3, 40)]
    before = tastemaker.simd_path()
    got = {}
    try:
        for path in _core.simd_available():
            tastemaker.set_simd_path(path)
            out = [model.recommend(u, row, N=10) for u, row in enumerate(rows)]
            out += [model.recommend(5, rows[2], N=10, recalculate_user=True)]
            out += [model.similar_items(i, N=10) for i in (0, 77, 1499)]
            got[path] = out
    finally:
        tastemaker.set_simd_path(before)
    for path, out in got.items():
        for (ids, sc), (want_ids, want_sc) in zip(out, got["scalar"]):
            np.testing.assert_array_equal(ids, want_ids, err_msg=path)
            assert sc.tobytes() == want_sc.tobytes(), path
    S = model.user_factors[1] @ model.item_factors.T
    r_ids, _ = ref_rank(S, rows[1].indices, 10)
    np.testing.assert_array_equal(got["scalar"][1][0], r_ids)
