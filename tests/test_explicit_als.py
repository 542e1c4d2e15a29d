"""ExplicitALS against dense least-squares solves; predict / recommend / evaluate."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker as tm
from model_contract import ModelContract


class TestExplicitALSContract(ModelContract):
    supports_item_fold_in = False

    def make_model(self):
        return tm.ExplicitALS(factors=3, iterations=2, samples=4, burn_in=2, random_state=0,
                              num_threads=1)


def _ratings(seed=0, n_users=40, n_items=30, density=0.3):
    rng = np.random.default_rng(seed)
    u_lat, i_lat = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = np.clip(np.rint(3 + u_lat @ i_lat.T + rng.normal(0, 0.5, (n_users, n_items))), 1, 5)
    mask = rng.random((n_users, n_items)) < density
    return sp.csr_matrix(np.where(mask, full, 0).astype(np.float32))


def _lstsq_row(A, t, reg_diag):
    """argmin |A z - t|^2 + sum reg_diag * z^2, by numpy.linalg.lstsq on the stacked system."""
    stacked = np.vstack([A, np.diag(np.sqrt(reg_diag))])
    rhs = np.concatenate([t, np.zeros(A.shape[1])])
    return np.linalg.lstsq(stacked, rhs, rcond=None)[0]


def test_item_step_is_the_dense_least_squares_solution():
    R = _ratings(1)
    lam, lam_b = 0.2, 0.05
    model = tm.ExplicitALS(factors=3, regularization=lam, bias_regularization=lam_b,
                           iterations=4, samples=0, random_state=0).fit(R, show_progress=False)
    f = 3
    x, b = model.user_factors[:, :f].astype(np.float64), model.user_bias_.astype(np.float64)
    Rc = R.tocsc()
    # The last half-step solved the items with the users fixed: check every item.
    for i in range(R.shape[1]):
        users = Rc.indices[Rc.indptr[i]:Rc.indptr[i + 1]]
        y = model.item_factors[i, :f + 1].astype(np.float64)  # [y_i, c_i]
        assert model.item_factors[i, f + 1] == 1.0
        if users.size == 0:
            assert not y.any()
            continue
        t = Rc.data[Rc.indptr[i]:Rc.indptr[i + 1]] - model.global_mean_ - b[users]
        A = np.hstack([x[users], np.ones((users.size, 1))])
        n = users.size
        z = _lstsq_row(A, t, np.r_[np.full(f, lam * n), lam_b * n])
        np.testing.assert_allclose(y, z, rtol=1e-4, atol=1e-5)


def test_predict_recommend_and_threads():
    R = _ratings(2)
    one = tm.ExplicitALS(factors=4, iterations=5, samples=20, random_state=3,
                         num_threads=1).fit(R, show_progress=False)
    two = tm.ExplicitALS(factors=4, iterations=5, samples=20, random_state=3,
                         num_threads=2).fit(R, show_progress=False)
    np.testing.assert_array_equal(one.user_factors, two.user_factors)
    np.testing.assert_array_equal(one.item_factors, two.item_factors)
    u, i = np.array([0, 1, 5]), np.array([3, 2, 9])
    pred = one.predict(u, i)
    f = 4
    manual = (one.global_mean_ + one.user_bias_[u] + one.item_bias_[i]
              + np.einsum("ij,ij->i", one.user_factors[u, :f], one.item_factors[i, :f]))
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, np.clip(manual, 1, 5), rtol=1e-5)
    ids, scores = one.recommend(0, R, N=5)
    unseen = np.setdiff1d(np.arange(R.shape[1]), R[0].indices)
    full = (one.global_mean_ + one.user_bias_[0] + one.item_bias_[unseen]
            + one.item_factors[unseen, :f] @ one.user_factors[0, :f])
    order = unseen[np.argsort(-full, kind="stable")[:5]]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.sort(full)[::-1][:5], rtol=1e-5)
    # fold-in of a known user from its row reproduces a least-squares solve
    ids2, _ = one.recommend(0, R[0], N=5, recalculate_user=True)
    assert len(ids2) == 5
    sim, sc = one.similar_items(3, N=3)
    assert sim[0] == 3 and sc[0] == pytest.approx(1.0)
    sim_u, _ = one.similar_users(2, N=3)
    assert sim_u[0] == 2


def test_save_load_pickle(tmp_path):
    R = _ratings(3)
    model = tm.ExplicitALS(factors=3, iterations=3, clip=(1, 5), samples=5,
                           random_state=1).fit(R, show_progress=False)
    model.save(tmp_path / "ex.npz")
    for other in (tm.load(tmp_path / "ex.npz"), pickle.loads(pickle.dumps(model))):
        assert other.get_params() == model.get_params()
        np.testing.assert_array_equal(other.predict([0, 1], [2, 3]), model.predict([0, 1], [2, 3]))


def test_evaluate_reports_rmse_and_mae():
    R = _ratings(4, n_users=60, n_items=40, density=0.5)
    coo = R.tocoo()
    test_mask = np.random.default_rng(0).random(coo.nnz) < 0.2
    def part(m):
        out = sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=R.shape)
        out.sort_indices()
        return out
    train, test = part(~test_mask), part(test_mask)
    model = tm.ExplicitALS(factors=2, iterations=5, samples=10, random_state=0).fit(
        train, show_progress=False)
    df = tm.evaluate({"ExplicitALS": model}, train, test, k=5, show_progress=False)
    users = np.repeat(np.arange(test.shape[0]), np.diff(test.indptr))
    pred = model.predict(users, test.indices)
    assert df.loc["ExplicitALS", "rmse"] == pytest.approx(np.sqrt(np.mean((pred - test.data) ** 2)))
    assert df.loc["ExplicitALS", "mae"] == pytest.approx(np.mean(np.abs(pred - test.data)))
    assert np.isnan(df.loc["Popularity", "rmse"])
    assert "ndcg@5" in df.columns


def test_bad_input():
    R = _ratings(5)
    for kwargs, name in (({"factors": 0}, "factors"), ({"regularization": -1}, "regularization"),
                         ({"bias_regularization": np.nan}, "bias_regularization"),
                         ({"clip": (5, 1)}, "clip"), ({"clip": 3}, "clip"),
                         ({"iterations": -1}, "iterations"), ({"samples": -1}, "samples"),
                         ({"burn_in": 1.5}, "burn_in"), ({"rating_noise": 0}, "rating_noise"),
                         ({"rating_noise": np.inf}, "rating_noise")):
        with pytest.raises(ValueError, match=name):
            tm.ExplicitALS(**kwargs).fit(R, show_progress=False)
    with pytest.raises(ValueError, match="not fitted"):
        tm.ExplicitALS().predict([0], [0])
    model = tm.ExplicitALS(factors=2, iterations=1, samples=2).fit(R, show_progress=False)
    with pytest.raises(ValueError, match="itemids"):
        model.predict([0, 1], [0])
    with pytest.raises(ValueError, match="userids"):
        model.predict([R.shape[0]], [0])
    with pytest.raises(ValueError, match="recalculate_item"):
        model.similar_items(0, recalculate_item=True)
    bad = R.copy()
    bad.data[0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        tm.ExplicitALS().fit(bad, show_progress=False)


def test_ml100k_rmse(ml100k_dir):
    data, _ = tm.datasets.movielens_100k(ml100k_dir)
    R = data.to_csr()
    coo = R.tocoo()
    test_mask = np.random.default_rng(0).random(coo.nnz) < 0.2
    train = sp.csr_matrix((coo.data[~test_mask], (coo.row[~test_mask], coo.col[~test_mask])),
                          shape=R.shape)
    train.sort_indices()
    def rmse(model):
        pred = model.predict(coo.row[test_mask], coo.col[test_mask])
        return float(np.sqrt(np.mean((pred - coo.data[test_mask]) ** 2)))

    sampled = rmse(tm.ExplicitALS(samples=30, random_state=0).fit(train, show_progress=False))
    als = rmse(tm.ExplicitALS(samples=0, random_state=0).fit(train, show_progress=False))
    assert sampled < 0.91
    assert sampled < als - 0.005  # averaging over the posterior beats its mode


def test_gibbs_draw_matches_the_gaussian_conditional():
    """The native draw (noise_sd > 0) of one row is N(A^-1 (b + P m), noise^2 A^-1) with
    A = Y^T Y + P: mean and covariance of many draws against numpy."""
    from tastemaker import _core

    rng = np.random.default_rng(0)
    f, n_other, noise = 2, 6, 0.7
    Y = rng.normal(size=(n_other, f)).astype(np.float32)
    c = rng.normal(size=n_other).astype(np.float32)
    R = sp.csr_matrix(np.array([[4, 0, 2, 5, 0, 3]], dtype=np.float32))
    P = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.0], [0.1, 0.0, 3.0]])
    m = np.array([0.2, -0.1, 0.4])
    mu = 3.0
    cols = R.indices
    Ya = np.hstack([Y[cols], np.ones((cols.size, 1))]).astype(np.float64)
    A = Ya.T @ Ya + P
    mean = np.linalg.solve(A, Ya.T @ (R.data - mu - c[cols]) + P @ m)
    cov = noise**2 * np.linalg.inv(A)
    draws = []
    for seed in range(4000):
        x, b = np.zeros((1, f), np.float32), np.zeros(1, np.float32)
        _core.explicit_als_solve(R.indptr.astype(np.int64), R.indices, R.data, Y, c, x, b,
                                 regularization=0.0, bias_regularization=0.0, weighted=False,
                                 global_mean=mu, num_threads=1, noise_sd=noise, seed=seed,
                                 prior_precision=P, prior_mean=m)
        draws.append(np.r_[x[0], b[0]])
    draws = np.array(draws)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sd / np.sqrt(len(draws)))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.1 * sd.max() ** 2)
    # noise_sd = 0 is the posterior mean itself, and the draws depend on the seed only
    x0, b0 = np.zeros((1, f), np.float32), np.zeros(1, np.float32)
    _core.explicit_als_solve(R.indptr.astype(np.int64), R.indices, R.data, Y, c, x0, b0,
                             regularization=0.0, bias_regularization=0.0, weighted=False,
                             global_mean=mu, prior_precision=P, prior_mean=m)
    np.testing.assert_allclose(np.r_[x0[0], b0[0]], mean, rtol=1e-5)
    with pytest.raises(ValueError, match="noise_sd"):
        _core.explicit_als_solve(R.indptr.astype(np.int64), R.indices, R.data, Y, c, x0, b0,
                                 regularization=0.1, bias_regularization=0.1, weighted=True,
                                 global_mean=mu, noise_sd=-1.0)
    with pytest.raises(ValueError, match="prior_precision"):
        _core.explicit_als_solve(R.indptr.astype(np.int64), R.indices, R.data, Y, c, x0, b0,
                                 regularization=0.1, bias_regularization=0.1, weighted=True,
                                 global_mean=mu, prior_precision=np.eye(2))


def test_wishart_and_low_rank_mean_against_numpy():
    from tastemaker.models.explicit import _mean_product_low_rank, _wishart

    rng = np.random.default_rng(1)
    scale = np.array([[1.0, 0.3], [0.3, 0.5]])
    draws = np.array([_wishart(rng, 5.0, scale) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), 5.0 * scale, atol=0.1)
    xs = rng.normal(size=(7, 30, 3)).astype(np.float32)
    ys = rng.normal(size=(7, 20, 3)).astype(np.float32)
    mean = np.mean([x.astype(np.float64) @ y.T for x, y in zip(xs, ys)], axis=0)
    u, s, vt = np.linalg.svd(mean)
    for k in (3, 8):
        best = (u[:, :k] * s[:k]) @ vt[:k]
        lu, lv = _mean_product_low_rank(xs, ys, k, np.random.default_rng(0), power=4)
        np.testing.assert_allclose(lu @ lv.T, best, atol=1e-3 * s[0])


def test_sampling_is_deterministic_and_old_files_load(tmp_path):
    R = _ratings(6)
    a = tm.ExplicitALS(factors=3, samples=6, random_state=5).fit(R, show_progress=False)
    b = tm.ExplicitALS(factors=3, samples=6, random_state=5).fit(R, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    c = tm.ExplicitALS(factors=3, samples=6, random_state=6).fit(R, show_progress=False)
    assert not np.array_equal(a.user_factors, c.user_factors)
    # a state saved before the bias columns ([x, 1] / [y, c]) loads into the new layout
    params, arrays, extra = a._get_state()
    f = 3
    old = dict(arrays, user_factors=np.hstack([a.user_factors[:, :f], np.ones((R.shape[0], 1),
                                                                             np.float32)]),
               item_factors=a.item_factors[:, :f + 1])
    extra = {k: v for k, v in extra.items() if k != "layout"}
    loaded = tm.ExplicitALS._from_state(params, old, extra)
    np.testing.assert_allclose(loaded.user_factors, a.user_factors, rtol=1e-6)
    np.testing.assert_array_equal(loaded.item_factors, a.item_factors)
