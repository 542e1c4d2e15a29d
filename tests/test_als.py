"""tastemaker.ALS: numerics against NumPy, determinism, SIMD paths, persistence, growth,
validation, and quality against implicit on real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tastemaker
from model_contract import ModelContract
from tastemaker import ALS, _core


def random_matrix(n_users=40, n_items=30, density=0.2, seed=0, negatives=False):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=density, random_state=rng, format="csr",
                  data_rvs=lambda k: rng.uniform(1.0, 5.0, k)).astype(np.float32)
    if negatives:
        flip = rng.random(m.nnz) < 0.15
        m.data[flip] *= -1
    return m


def numpy_solve(Y, rows, reg, alpha, expo=0.0):
    """Reference: x_u = (YtY + l_u I + Y^T (C_u - I) Y)^-1 Y^T C_u p_u in float64."""
    Y = Y.astype(np.float64)
    f = Y.shape[1]
    G = Y.T @ Y
    out = np.zeros((rows.shape[0], f))
    for u in range(rows.shape[0]):
        idx = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
        v = rows.data[rows.indptr[u]:rows.indptr[u + 1]].astype(np.float64)
        c = alpha * np.abs(v)
        lam = reg * (1.0 + len(idx)) ** expo
        A = G + lam * np.eye(f) + (Y[idx].T * (c - 1.0)) @ Y[idx]
        b = Y[idx].T @ (c * (v > 0))
        out[u] = np.linalg.solve(A, b)
    return out


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


# ---------------------------------------------------------------- numerics
@pytest.mark.parametrize("expo", [0.0, 1.0])
def test_cholesky_fit_satisfies_normal_equations(expo):
    m = random_matrix(negatives=True)
    model = ALS(factors=8, regularization=0.3, alpha=2.0, iterations=3, solver="cholesky",
                regularization_exponent=expo, random_state=0).fit(m, show_progress=False)
    # the last half-step solved the items exactly with the users fixed
    ref = numpy_solve(model.user_factors, m.T.tocsr(), 0.3, 2.0, expo)
    assert rel(model.item_factors, ref) < 2e-5
    assert model.user_factors.dtype == np.float32 and model.user_factors.flags.c_contiguous
    assert model.user_factors.shape == (40, 8) and model.item_factors.shape == (30, 8)


def test_fold_in_matches_numpy():
    m = random_matrix(negatives=True, seed=1)
    model = ALS(factors=6, regularization=0.1, alpha=3.0, iterations=2, random_state=1)
    model.fit(m, show_progress=False)
    new_rows = random_matrix(n_users=5, n_items=30, seed=9, negatives=True)
    got = model._fold_in_users(new_rows)
    assert rel(got, numpy_solve(model.item_factors, new_rows, 0.1, 3.0)) < 2e-5
    got_i = model._fold_in_items(m.T.tocsr()[:4])
    assert rel(got_i, numpy_solve(model.user_factors, m.T.tocsr()[:4], 0.1, 3.0)) < 2e-5


def test_cg_approaches_cholesky_as_steps_grow():
    m = random_matrix(60, 50, seed=3)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(50, 10)).astype(np.float32)
    gram = _core.als_gram(Y)
    exact = numpy_solve(Y, m, 0.5, 2.0)
    errs = []
    for steps in (1, 2, 4, 8, 30):
        X = np.zeros((60, 10), dtype=np.float32)
        _core.als_solve(m.indptr.astype(np.int64), m.indices, m.data, Y, gram, X, 0.5, 0.0,
                        2.0, "cg", steps)
        errs.append(rel(X, exact))
    assert all(b <= a * 1.001 + 1e-7 for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-3 and errs[0] > 10 * errs[-1]


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_loss_decreases(solver):
    m = random_matrix(80, 60, seed=4)
    losses = []
    ALS(factors=8, regularization=0.05, iterations=8, solver=solver, random_state=0,
        calculate_training_loss=True).fit(
        m, show_progress=False, callback=lambda it, t, loss: losses.append((it, t, loss)))
    assert [it for it, _, _ in losses] == list(range(8))
    vals = [loss for _, _, loss in losses]
    assert all(np.isfinite(vals))
    assert all(b <= a * (1 + 1e-4) for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] < vals[0]


def test_loss_matches_dense_numpy():
    m = random_matrix(20, 15, seed=5, negatives=True)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4)).astype(np.float32)
    Y = rng.normal(size=(15, 4)).astype(np.float32)
    dense = m.toarray().astype(np.float64)
    C = np.where(dense != 0, 2.0 * np.abs(dense), 1.0)
    P = (dense > 0).astype(np.float64)
    S = X.astype(np.float64) @ Y.T.astype(np.float64)
    ref = (np.sum(C * (P - S) ** 2) + 0.3 * (np.sum(X.astype(np.float64) ** 2)
                                             + np.sum(Y.astype(np.float64) ** 2))) / C.sum()
    got = _core.als_loss(m.indptr.astype(np.int64), m.indices, m.data, X, Y, _core.als_gram(Y),
                         0.3, 0.0, 2.0)
    assert got == pytest.approx(ref, rel=1e-6)


def test_callback_without_loss_gets_none():
    seen = []
    ALS(factors=4, iterations=2, random_state=0).fit(
        random_matrix(), show_progress=False, callback=lambda *a: seen.append(a))
    assert len(seen) == 2 and seen[0][2] is None and seen[1][1] >= seen[0][1] >= 0


# ---------------------------------------------------------------- determinism, SIMD
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_deterministic_for_seed_and_thread_count(solver):
    m = random_matrix(300, 200, density=0.05, seed=6)
    fits = [ALS(factors=16, iterations=3, solver=solver, random_state=42, num_threads=t)
            .fit(m, show_progress=False) for t in (1, 2, 1)]
    for other in fits[1:]:
        np.testing.assert_array_equal(fits[0].user_factors, other.user_factors)
        np.testing.assert_array_equal(fits[0].item_factors, other.item_factors)
    different = ALS(factors=16, iterations=3, solver=solver, random_state=43).fit(
        m, show_progress=False)
    assert not np.array_equal(different.user_factors, fits[0].user_factors)


@pytest.mark.parametrize("factors", [5, 16, 64, 70])
def test_every_simd_path_agrees_with_scalar(factors):
    m = random_matrix(200, 150, density=0.08, seed=7, negatives=True)
    before = tastemaker.simd_path()
    results = {}
    try:
        for path in _core.simd_available():
            tastemaker.set_simd_path(path)
            model = ALS(factors=factors, iterations=2, regularization=0.1, random_state=3)
            results[path] = model.fit(m, show_progress=False)
    finally:
        tastemaker.set_simd_path(before)
    ref = results["scalar"]
    for path, model in results.items():
        assert rel(model.user_factors, ref.user_factors) < 1e-3, path
        assert rel(model.item_factors, ref.item_factors) < 1e-3, path


# ---------------------------------------------------------------- persistence, growth


def test_partial_fit_grows_and_matches_fold_in():
    m = random_matrix(seed=8)
    model = ALS(factors=6, iterations=2, random_state=0).fit(m, show_progress=False)
    old_users = model.user_factors.copy()
    rows = random_matrix(n_users=2, n_items=30, seed=10)
    model.partial_fit_users([3, 45], rows)
    assert model.user_factors.shape == (46, 6)
    np.testing.assert_array_equal(model.user_factors[[3, 45]], model._fold_in_users(rows))
    np.testing.assert_array_equal(model.user_factors[40:45], 0)
    np.testing.assert_array_equal(np.delete(model.user_factors[:40], 3, axis=0),
                                  np.delete(old_users, 3, axis=0))
    item_rows = random_matrix(n_users=1, n_items=46, seed=11)
    model.partial_fit_items([31], item_rows)
    assert model.item_factors.shape == (32, 6)
    np.testing.assert_array_equal(model.item_factors[30], 0)
    assert np.any(model.item_factors[31] != 0)


def test_fold_in_of_empty_row_is_zero():
    model = ALS(factors=4, iterations=1, random_state=0).fit(random_matrix(), show_progress=False)
    np.testing.assert_array_equal(model._fold_in_users(sp.csr_matrix((2, 30))), 0)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "params, match",
    [
        ({"factors": 0}, "factors"),
        ({"factors": 2.5}, "factors"),
        ({"regularization": -1.0}, "regularization"),
        ({"regularization": float("nan")}, "regularization"),
        ({"alpha": 0.0}, "alpha"),
        ({"iterations": -1}, "iterations"),
        ({"solver": "lu"}, "solver"),
        ({"cg_steps": 0}, "cg_steps"),
        ({"num_threads": -2}, "num_threads"),
        ({"random_state": "x"}, "random_state"),
        ({"regularization_exponent": float("inf")}, "regularization_exponent"),
        ({"calculate_training_loss": "yes"}, "calculate_training_loss"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ALS(**params).fit(random_matrix(), show_progress=False)


def test_bad_matrices():
    with pytest.raises(ValueError, match="user_items"):
        ALS().fit(np.ones((3, 3)), show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        ALS().fit(sp.csr_matrix((3, 3), dtype=np.float32), show_progress=False)
    bad = random_matrix()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ALS().fit(bad, show_progress=False)
    unsorted = random_matrix()
    row = np.flatnonzero(np.diff(unsorted.indptr) >= 2)[0]
    a = unsorted.indptr[row]
    unsorted.indices[a], unsorted.indices[a + 1] = unsorted.indices[a + 1], unsorted.indices[a]
    unsorted.has_sorted_indices = False
    with pytest.raises(ValueError, match="unsorted"):
        ALS().fit(unsorted, show_progress=False)
    with pytest.raises(ValueError, match="callback"):
        ALS().fit(random_matrix(), show_progress=False, callback=3)


def test_not_fitted_and_bad_fold_in():
    with pytest.raises(ValueError, match="not fitted"):
        ALS()._fold_in_users(random_matrix())
    with pytest.raises(ValueError, match="not fitted"):
        ALS().partial_fit_users([0], random_matrix(1, 30))
    with pytest.raises(ValueError, match="path: directory '/nonexistent' does not exist"):
        ALS().save("/nonexistent/x.npz")  # an unfitted model saves, but not there
    model = ALS(factors=4, iterations=1, random_state=0).fit(random_matrix(), show_progress=False)
    with pytest.raises(ValueError, match="user_items"):
        model._fold_in_users(random_matrix(2, 31))
    with pytest.raises(ValueError, match="userids"):
        model.partial_fit_users([-1], random_matrix(1, 30))
    with pytest.raises(ValueError, match="userids"):
        model.partial_fit_users([1, 1], random_matrix(2, 30))
    with pytest.raises(ValueError, match="userids"):
        model.partial_fit_users([1.5], random_matrix(1, 30))
    with pytest.raises(ValueError, match="userids"):
        model.partial_fit_users([1, 2], random_matrix(1, 30))
    with pytest.raises(ValueError, match="item_users"):
        model.partial_fit_items([0], random_matrix(1, 30))  # wrong width: n_users is 40
    with pytest.raises(ValueError, match="itemids"):
        model.partial_fit_items([[0]], random_matrix(1, 40))


def test_native_layer_rejects_bad_arrays():
    m = random_matrix()
    Y = np.ones((30, 4), dtype=np.float32)
    X = np.zeros((40, 4), dtype=np.float32)
    g = _core.als_gram(Y)
    ip, ix, d = m.indptr.astype(np.int64), m.indices.copy(), m.data
    with pytest.raises(ValueError, match="X"):
        _core.als_solve(ip, ix, d, Y, g, X[:, :3].copy(), 0.1, 0.0, 1.0, "cg", 3)
    with pytest.raises(ValueError, match="indptr"):
        _core.als_solve(ip.astype(np.int32), ix, d, Y, g, X, 0.1, 0.0, 1.0, "cg", 3)
    bad = ix.copy()
    bad[0] = 30
    with pytest.raises(ValueError, match="out of range"):
        _core.als_solve(ip, bad, d, Y, g, X, 0.1, 0.0, 1.0, "cg", 3)
    with pytest.raises(ValueError, match="solver"):
        _core.als_solve(ip, ix, d, Y, g, X, 0.1, 0.0, 1.0, "qr", 3)
    with pytest.raises(RuntimeError, match="positive definite"):
        Z = np.zeros_like(Y)
        _core.als_solve(ip, ix, d, Z, _core.als_gram(Z), X, 0.0, 0.0, 1.0, "cholesky", 3)


@settings(max_examples=25, deadline=None)
@given(n_users=st.integers(1, 12), n_items=st.integers(1, 12), f=st.integers(1, 9),
       seed=st.integers(0, 2**16), alpha=st.floats(0.1, 20.0))
def test_property_fold_in_matches_numpy(n_users, n_items, f, seed, alpha):
    m = random_matrix(n_users, n_items, density=0.5, seed=seed, negatives=True)
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n_items, f)).astype(np.float32)
    X = np.zeros((n_users, f), dtype=np.float32)
    _core.als_solve(m.indptr.astype(np.int64), m.indices, m.data, Y, _core.als_gram(Y), X,
                    1.0, 0.0, alpha, "cholesky", 1)
    ref = numpy_solve(Y, m, 1.0, alpha)
    np.testing.assert_allclose(X, ref, rtol=1e-3, atol=1e-4 * (1 + np.abs(ref).max()))


def numpy_cg(Y, rows, X0, reg, alpha, steps):
    """Reference: ``steps`` conjugate-gradient steps per row from the warm start X0, in
    float64, over every stored item (an item with c = 1 multiplies its y y^T by 0), with
    the kernel's stopping rules (r.r <= 1e-20, or p'Ap <= 0: keep x)."""
    Y = Y.astype(np.float64)
    f = Y.shape[1]
    G = Y.T @ Y
    out = X0.astype(np.float64)
    for u in range(rows.shape[0]):
        idx = rows.indices[rows.indptr[u]:rows.indptr[u + 1]]
        v = rows.data[rows.indptr[u]:rows.indptr[u + 1]].astype(np.float64)
        c = alpha * np.abs(v)
        A = G + reg * np.eye(f) + (Y[idx].T * np.where(v != 0, c - 1.0, 0.0)) @ Y[idx]
        x = out[u]
        r = Y[idx].T @ (c * (v > 0)) - A @ x
        p, rsold = r.copy(), r @ r
        for _ in range(steps):
            if rsold <= 1e-20:
                break
            ap = A @ p
            pap = p @ ap
            if pap <= 0:
                break
            a = rsold / pap
            x += a * p
            r -= a * ap
            rsnew = r @ r
            p = r + (rsnew / rsold) * p
            rsold = rsnew
    return out


@settings(max_examples=25, deadline=None)
@given(n_users=st.integers(1, 10), n_items=st.integers(1, 60), f=st.integers(1, 20),
       seed=st.integers(0, 2**16), alpha=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
       share_one=st.floats(0.0, 1.0), steps=st.integers(1, 4))
def test_property_cg_steps_match_numpy_with_confidence_one_items(n_users, n_items, f, seed,
                                                                 alpha, share_one, steps):
    # Items of confidence exactly 1 (value 1 / alpha) and stored zeros are skipped by the
    # kernel's later passes; the last step takes only p'Ap.  Every path, every step count
    # follows the plain float64 iteration over all items.
    rng = np.random.default_rng(seed)
    m = random_matrix(n_users, n_items, density=0.6, seed=seed, negatives=True)
    pick = rng.random(m.nnz) < share_one
    m.data[pick] = np.where(rng.random(pick.sum()) < 0.8, 1.0 / alpha, 0.0).astype(np.float32)
    Y = (0.3 * rng.normal(size=(n_items, f))).astype(np.float32)
    X0 = (0.1 * rng.normal(size=(n_users, f))).astype(np.float32)
    ref = numpy_cg(Y, m, X0, 1.0, alpha, steps)
    before = tastemaker.simd_path()
    try:
        for path in _core.simd_available():
            tastemaker.set_simd_path(path)
            X = X0.copy()
            _core.als_solve(m.indptr.astype(np.int64), m.indices, m.data, Y, _core.als_gram(Y),
                            X, 1.0, 0.0, alpha, "cg", steps)
            np.testing.assert_allclose(X, ref, rtol=1e-3, atol=1e-4 * (1 + np.abs(ref).max()),
                                       err_msg=path)
    finally:
        tastemaker.set_simd_path(before)


def test_unsorted_indices_found_across_validation_chunks():
    # check_csr scans indices in chunks of 2**20 (memory bound); a defect straddling a
    # chunk boundary must still be caught, a row boundary there must not be flagged.
    n = (1 << 20) + 16
    indices = np.arange(n, dtype=np.int32)
    indptr = np.array([0, 1 << 20, n], dtype=np.int64)  # row boundary at the chunk edge
    data = np.ones(n, dtype=np.float32)
    ok = sp.csr_matrix((data, indices % ((1 << 20) + 16), indptr), shape=(2, n))
    ok.indices[(1 << 20):] = np.arange(16)  # second row restarts at 0: fine
    tastemaker._validation.check_csr(ok, "m")
    bad = ok.copy()
    bad.indices[(1 << 20) - 1] = bad.indices[(1 << 20) - 2]  # duplicate at the edge
    with pytest.raises(ValueError, match="duplicate column indices in row 0"):
        tastemaker._validation.check_csr(bad, "m")


def test_queries_from_factor_model_use_als_fold_in():
    m = random_matrix(seed=12)
    model = ALS(factors=8, iterations=3, regularization=0.1, random_state=0)
    model.fit(m, show_progress=False)
    assert isinstance(model, tastemaker.models.FactorModel)
    ids, scores = model.recommend(0, m[0], N=5)
    seen = set(m[0].indices)
    assert len(ids) == 5 and not seen & set(ids.tolist())
    ref = model.item_factors @ model.user_factors[0]
    np.testing.assert_allclose(scores, ref[ids], rtol=1e-5)
    # recalculate_user folds the row in exactly (same as _fold_in_users)
    ids2, scores2 = model.recommend(0, m[0], N=5, recalculate_user=True)
    x = model._fold_in_users(m[0])[0]
    np.testing.assert_allclose(scores2, (model.item_factors @ x)[ids2], rtol=1e-5)
    sim_ids, _ = model.similar_items(3, N=4)
    assert sim_ids[0] == 3


def test_absurd_thread_count_does_not_crash():
    m = random_matrix()
    # clamped to 4x the CPU count with a warning (10^9 threads made libgomp exit the
    # process under a memory limit; >= 2^31 made pybind11 reject the call)
    with pytest.warns(RuntimeWarning, match="more than 4x the CPU count"):
        a = ALS(factors=4, iterations=1, random_state=0, num_threads=10**9).fit(
            m, show_progress=False)
    b = ALS(factors=4, iterations=1, random_state=0, num_threads=1).fit(m, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    before = tastemaker.get_num_threads()
    try:
        with pytest.warns(RuntimeWarning):
            tastemaker.set_num_threads(2**40)
        c = ALS(factors=4, iterations=1, random_state=0).fit(m, show_progress=False)
        np.testing.assert_array_equal(c.user_factors, b.user_factors)
        with pytest.warns(RuntimeWarning):
            ids, _ = a.recommend(0, m, N=3)
        np.testing.assert_array_equal(ids, b.recommend(0, m, N=3)[0])
    finally:
        tastemaker.set_num_threads(0)
    assert tastemaker.get_num_threads() == before


def test_pickled_factors_reach_the_kernels():
    # the binding compared dtypes by identity: after pickle, "expected dtype float32, got
    # float32"
    import pickle

    m = random_matrix()
    model = ALS(factors=4, iterations=2, random_state=0).fit(m, show_progress=False)
    back = pickle.loads(pickle.dumps(model))
    for a, b in ((model.recommend(np.arange(5), m, N=4), back.recommend(np.arange(5), m, N=4)),
                 (model.similar_items(2, N=4), back.similar_items(2, N=4)),
                 (model.recommend(1, m[1], N=4, recalculate_user=True),
                  back.recommend(1, m[1], N=4, recalculate_user=True))):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    big_endian = np.ascontiguousarray(model.user_factors, dtype=">f4")
    with pytest.raises(ValueError, match="expected dtype float32"):
        _core.als_gram(big_endian)


def test_bad_non_csr_matrix_at_every_entry_point_is_a_value_error():
    model = ALS(factors=4, iterations=1, random_state=0).fit(random_matrix(), show_progress=False)
    n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
    row = sp.csc_matrix((np.ones(1, np.float32), np.array([10**9]), np.array([0, 1] + [1] * (n_items - 1))),
                        shape=(1, n_items))
    with pytest.raises(ValueError, match="user_items: row index 1000000000"):
        model.recommend(0, row, recalculate_user=True)
    with pytest.raises(ValueError, match="user_items: row index 1000000000"):
        model.recommend(0, row)
    with pytest.raises(ValueError, match="user_items: row index 1000000000"):
        model.partial_fit_users([n_users], row)
    with pytest.raises(ValueError, match="user_items: row index 1000000000"):
        ALS().fit(sp.csc_matrix((np.ones(1, np.float32), np.array([10**9]), np.array([0, 1])),
                                shape=(2, 1)))


class TestALSContract(ModelContract):
    def make_model(self):
        return ALS(factors=4, iterations=3, regularization=0.1, random_state=0)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("params, match", [
    ({"regularization": 1e30}, "regularization: regularization"),
    ({"regularization_exponent": 50.0}, "regularization_exponent=50"),
    ({"alpha": 1e30}, "alpha: alpha"),
])
def test_extreme_scales_are_refused_never_nan(solver, params, match):
    # CG used to return NaN factors for these and raise nothing
    params = {"regularization": 0.01, **params}
    with pytest.raises(ValueError, match=match):
        ALS(factors=4, iterations=2, random_state=0, solver=solver, **params).fit(
            random_matrix(), show_progress=False)
    # large but supported values give finite factors
    big = {k: (1e12 if k == "alpha" else 1e14 if k == "regularization" else 3.0)
           for k, v in params.items() if v != 0.01}
    big = {"regularization": 0.01, **big}
    model = ALS(factors=4, iterations=2, random_state=0, solver=solver, **big).fit(
        random_matrix(), show_progress=False)
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()


def test_rows_without_interactions_get_zero_factors():
    m = random_matrix().tolil()
    m[:, 4] = 0
    m[2, :] = 0
    m = m.tocsr()
    m.eliminate_zeros()
    for solver in ("cg", "cholesky"):
        model = ALS(factors=4, iterations=3, random_state=0, solver=solver).fit(
            m, show_progress=False)
        assert not model.item_factors[4].any() and not model.user_factors[2].any()
        assert model.item_factors[3].any()


def test_nan_factors_are_named_in_fold_in():
    m = random_matrix()
    model = ALS(factors=4, iterations=2, random_state=0).fit(m, show_progress=False)
    model.item_factors = model.item_factors.copy()
    model.item_factors[1, 0] = np.nan
    with pytest.raises(ValueError, match="item_factors: contains NaN"):
        model.recommend(0, m[0], recalculate_user=True)


def test_auto_regularization_is_a_tenth_of_the_average_users_confidence_mass():
    from tastemaker.models.als import auto_regularization
    x = sp.csr_matrix(np.array([[1, 0, 3], [0, 0, 0], [2, 2, 0]], dtype=np.float32))
    # active users 0 and 2; |v| sums to 8; alpha 2 -> 0.1 * 2 * 8 / 2
    assert auto_regularization(x, 2.0) == pytest.approx(0.8)
    m = ALS(factors=4, iterations=2, random_state=0).fit(x, show_progress=False)
    assert m.regularization == "auto" and m.regularization_ == pytest.approx(0.4)
    # the same as passing the resolved number
    ref = ALS(factors=4, iterations=2, random_state=0, regularization=0.4).fit(
        x, show_progress=False)
    np.testing.assert_allclose(m.user_factors, ref.user_factors, rtol=1e-6)
    assert auto_regularization(sp.csr_matrix((2, 2), dtype=np.float32), 1.0) == 0.0
    with pytest.raises(ValueError, match="regularization"):
        ALS(regularization="big").fit(x, show_progress=False)


def test_auto_regularization_survives_save_and_load(tmp_path):
    x = sp.random(20, 15, density=0.3, format="csr", dtype=np.float32, random_state=1)
    m = ALS(factors=4, iterations=2, random_state=0).fit(x, show_progress=False)
    m.save(tmp_path / "m.npz")
    back = tastemaker.load(tmp_path / "m.npz")
    assert back.regularization_ == pytest.approx(m.regularization_)
    a, _ = m.recommend(0, x[0], N=5, recalculate_user=True)
    b, _ = back.recommend(0, x[0], N=5, recalculate_user=True)
    np.testing.assert_array_equal(a, b)


def test_huge_integer_parameters_are_value_errors_not_pybind_errors():
    # ints >= 2**31 reached pybind11 as "incompatible function arguments" (a TypeError)
    m = random_matrix()
    with pytest.raises(ValueError, match="cg_steps: expected an int <= 1024"):
        ALS(cg_steps=2**31).fit(m, show_progress=False)
    with pytest.raises(ValueError, match="factors: expected an int <= 4096"):
        ALS(factors=2**31).fit(m, show_progress=False)
    model = ALS(factors=3, iterations=1, random_state=0).fit(m, show_progress=False)
    ids, _ = model.recommend(0, m, N=2**40)
    assert len(ids) == m.shape[1] - m[0].nnz
    with pytest.raises(IndexError, match="userid: id 1099511627776 out of range"):
        model.recommend(2**40, m[0], recalculate_user=True)


def test_partial_fit_keeps_the_carried_seen_items_in_step(tmp_path):
    # the saved file used to load and then fail at the first recommend
    m = random_matrix()
    model = ALS(factors=3, iterations=1, random_state=0).fit(m, show_progress=False)
    model.user_items = m
    new_rows = random_matrix(n_users=2, seed=4)
    model.partial_fit_users([1, m.shape[0] + 1], new_rows)
    ui = model.user_items.toarray()
    assert ui.shape == (m.shape[0] + 2, m.shape[1])
    np.testing.assert_array_equal(ui[1], new_rows[0].toarray()[0])
    np.testing.assert_array_equal(ui[m.shape[0] + 1], new_rows[1].toarray()[0])
    assert not ui[m.shape[0]].any()
    np.testing.assert_array_equal(ui[0], m[0].toarray()[0])
    cols = random_matrix(n_users=1, n_items=ui.shape[0], seed=5)
    model.partial_fit_items([m.shape[1]], cols)
    ui2 = model.user_items.toarray()
    assert ui2.shape == (m.shape[0] + 2, m.shape[1] + 1)
    np.testing.assert_array_equal(ui2[:, m.shape[1]], cols.toarray()[0])
    model.save(tmp_path / "m.npz")
    back = tastemaker.load(tmp_path / "m.npz")
    ids, _ = back.recommend(m.shape[0] + 1, back.user_items, N=3)
    assert not np.isin(ids, back.user_items[m.shape[0] + 1].indices).any()


def _numpy_transpose(m: sp.csr_matrix):
    """Reference transpose from the (row, column, value) triples, ordered by column then row
    with NumPy (stored zeros kept): what every fit's item side is built from."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((rows, m.indices))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(m.indices, minlength=m.shape[1]))])
    return indptr, rows[order], m.data[order]


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(0, 60), n_cols=st.integers(1, 40), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**31 - 1), threads=st.integers(1, 4))
def test_native_transpose_matches_numpy_for_any_thread_count(n_rows, n_cols, density, seed, threads):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, random_state=rng, format="csr",
                  dtype=np.float32)
    if m.nnz:
        m.data[rng.random(m.nnz) < 0.1] = 0.0  # stored zeros stay stored
    ref = _numpy_transpose(m)
    from tastemaker.models.als import _transpose
    t = _transpose(m, threads)
    assert t.shape == (n_cols, n_rows) and t.has_sorted_indices
    np.testing.assert_array_equal(t.indptr, ref[0])
    np.testing.assert_array_equal(t.indices, ref[1])
    np.testing.assert_array_equal(t.data, ref[2])
    # many entries per column: several blocks on more threads, the same arrays
    big = sp.random(3000, 7, density=0.5, random_state=rng, format="csr", dtype=np.float32)
    one, many = (_core.csr_transpose(big.indptr.astype(np.int64), big.indices, big.data, 7, k)
                 for k in (1, threads))
    ref = _numpy_transpose(big)
    for a, b, r in zip(one, many, ref):
        np.testing.assert_array_equal(a, r)
        np.testing.assert_array_equal(b, r)


def test_native_transpose_rejects_bad_arrays():
    indptr = np.array([0, 2, 3], dtype=np.int64)
    data = np.ones(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"m: column index 5 out of range \[0, 4\)"):
        _core.csr_transpose(indptr, np.array([0, 5, 1], dtype=np.int32), data, 4)
    with pytest.raises(ValueError, match="m: indptr is decreasing"):
        _core.csr_transpose(np.array([0, 3, 2], dtype=np.int64), np.zeros(2, np.int32),
                            np.ones(2, np.float32), 4)
    with pytest.raises(ValueError, match="m.indptr: last entry"):
        _core.csr_transpose(indptr, np.zeros(2, np.int32), np.ones(2, np.float32), 4)
    with pytest.raises(ValueError, match="negative number of columns"):
        _core.csr_transpose(indptr, np.zeros(3, np.int32), data, -1)
