"""EASE against numpy.linalg.solve, queries, persistence and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker as tm
from model_contract import ModelContract


class TestEASEContract(ModelContract):
    supports_similar_users = False
    supports_item_fold_in = False

    def make_model(self):
        return tm.EASE(regularization=5.0)


def _binary(seed, n_users=60, n_items=40, density=0.15):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))


def _reference_B(X: np.ndarray, lam: float) -> np.ndarray:
    """Steck's closed form through numpy.linalg.solve (not the library's LAPACK path)."""
    G = X.T.astype(np.float64) @ X + lam * np.eye(X.shape[1])
    P = np.linalg.solve(G, np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


@pytest.mark.parametrize("n_items", [40, 700])  # 700 spans several 512-row blocks
def test_weights_match_numpy_solve(n_items):
    X = _binary(1, n_users=300, n_items=n_items, density=0.05)
    model = tm.EASE(regularization=7.0).fit(X)
    B = _reference_B(X.toarray(), 7.0)
    np.testing.assert_allclose(model.item_factors, B.T, rtol=1e-4, atol=1e-6)


def test_recommend_matches_dense_scores():
    X = _binary(2)
    model = tm.EASE(regularization=3.0).fit(X)
    B = _reference_B(X.toarray(), 3.0)
    scores = X.toarray() @ B
    users = np.arange(X.shape[0])
    ids, got = model.recommend(users, X, N=5, filter_items=[0, 1])
    for u in users:
        s = scores[u].copy()
        s[X[u].indices] = -np.inf
        s[[0, 1]] = -np.inf
        np.testing.assert_allclose(got[u], np.sort(s)[::-1][:5], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(s[ids[u]], got[u], rtol=1e-4, atol=1e-5)
    # one user, a row passed on its own (a new user: no fold-in needed)
    row = sp.csr_matrix(X[3].toarray())
    i1, s1 = model.recommend(10_000, row, N=4, recalculate_user=True)
    np.testing.assert_array_equal(i1, model.recommend(3, X, N=4)[0])
    assert i1.ndim == 1 and len(i1) == 4


def test_similar_items_is_cosine_of_B_columns():
    X = _binary(3)
    model = tm.EASE(regularization=2.0).fit(X)
    ids, scores = model.similar_items(4, N=3)
    assert ids[0] == 4 and scores[0] == pytest.approx(1.0)
    cols = model.item_factors.astype(np.float64)
    cols /= np.linalg.norm(cols, axis=1, keepdims=True)
    cos = cols @ cols[4]
    cos[4] = -np.inf
    np.testing.assert_array_equal(ids[1:], np.argsort(-cos, kind="stable")[:2])


def test_save_load_pickle(tmp_path):
    X = _binary(4)
    model = tm.EASE(regularization=5.0).fit(X)
    model.save(tmp_path / "ease.npz")
    for other in (tm.load(tmp_path / "ease.npz"), pickle.loads(pickle.dumps(model))):
        assert other.get_params() == model.get_params()
        np.testing.assert_array_equal(other.recommend(np.arange(4), X, N=3)[0],
                                      model.recommend(np.arange(4), X, N=3)[0])


def test_bad_input(monkeypatch):
    X = _binary(5)
    with pytest.raises(ValueError, match="regularization"):
        tm.EASE(regularization=0).fit(X)
    with pytest.raises(ValueError, match="regularization"):
        tm.EASE(regularization=-1.0).fit(X)
    with pytest.raises(ValueError, match="user_items"):
        tm.EASE().fit(np.ones((3, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        tm.EASE().recommend(0, X)
    model = tm.EASE(regularization=1.0).fit(X)
    np.testing.assert_array_equal(model.recommend(0)[0], model.recommend(0, X)[0])
    with pytest.raises(ValueError, match="recalculate_item"):
        model.similar_items(0, recalculate_item=True)
    with pytest.raises(NotImplementedError, match="similar_users"):
        model.similar_users(0)
    # a catalog whose Gram matrix cannot fit: a clear error before any allocation
    import tastemaker._memory as mem

    monkeypatch.setattr(mem, "available_bytes", lambda: 1024)
    with pytest.raises(ValueError, match="GiB"):
        tm.EASE().fit(X)


def test_ml100k_beats_popularity(ml100k_dir):
    data, _ = tm.datasets.movielens_100k(ml100k_dir, value=None)
    train, test = tm.evaluation.random_split(data, test_size=0.2, random_state=0)
    model = tm.EASE(regularization=300.0).fit(train)
    df = tm.evaluate({"EASE": model}, train, test, k=10, metrics=["ndcg"], show_progress=False)
    assert df.loc["EASE", "ndcg@10"] > df.loc["Popularity", "ndcg@10"] + 0.05
