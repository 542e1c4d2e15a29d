"""ItemKNN against dense NumPy similarity references and implicit's kNN models."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker as tm
from hypothesis import given, settings
from hypothesis import strategies as st
from model_contract import ModelContract


class TestItemKNNContract(ModelContract):
    supports_similar_users = False
    supports_item_fold_in = False

    def make_model(self):
        return tm.ItemKNN(K=5)


class TestItemKNNBM25Contract(ModelContract):
    supports_similar_users = False
    supports_item_fold_in = False

    def make_model(self):
        return tm.ItemKNN(K=5, similarity="bm25")


def _random_matrix(seed, n_users=30, n_items=25, density=0.2, integer=False):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * (
        rng.integers(1, 6, (n_users, n_items)) if integer else rng.random((n_users, n_items)) * 4 + 0.5)
    return sp.csr_matrix(dense.astype(np.float32))


# --------------------------------------------------------------- dense references
def _dense_similarity(X: np.ndarray, kind: str, K1=1.2, B=0.75) -> np.ndarray:
    """Item x item similarity written from the definitions, independently of the library."""
    X = X.astype(np.float64)
    n_users, n_items = X.shape
    if kind == "jaccard":
        b = (X > 0).astype(np.float64)
        inter = b.T @ b
        n = b.sum(axis=0)
        union = n[:, None] + n[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    if kind in ("bm25", "tfidf"):
        df = (X != 0).sum(axis=1)  # items per user: users are the terms
        idf = np.log(n_items) - np.log1p(df)
        if kind == "bm25":
            length = np.abs(X).sum(axis=0)  # per item: items are the documents
            avg = length.mean()  # over the whole collection, empty items included
            norm = K1 * ((1 - B) + B * length / avg)
            W = np.where(X != 0, X * (K1 + 1) / (X + norm[None, :]), 0.0) * idf[:, None]
            return W.T @ W
        X = np.sqrt(X) * idf[:, None]
    norms = np.linalg.norm(X, axis=0)
    Xn = np.divide(X, norms[None, :], out=np.zeros_like(X), where=norms[None, :] > 0)
    return Xn.T @ Xn


def _top_k_graph(S: np.ndarray, K: int) -> np.ndarray:
    """Keep, per row, the K best positive off-diagonal entries (score desc, id asc)."""
    S = S.copy()
    np.fill_diagonal(S, 0.0)
    out = np.zeros_like(S)
    for i in range(S.shape[0]):
        cand = [(-S[i, j], j) for j in range(S.shape[1]) if S[i, j] > 0]
        for _, j in sorted(cand)[:K]:
            out[i, j] = S[i, j]
    return out


def _reference_recommend(rows: np.ndarray, G: np.ndarray, N: int, exclude_seen=True, deny=()):
    scores = rows.astype(np.float64) @ G
    ids_out, sc_out = [], []
    for r in range(rows.shape[0]):
        cand = [(-scores[r, j], j) for j in range(G.shape[0])
                if not (exclude_seen and rows[r, j] != 0) and j not in deny]
        best = sorted(cand)[:N]
        ids_out.append([j for _, j in best])
        sc_out.append([-s for s, _ in best])
    return ids_out, sc_out


# --------------------------------------------------------------- numerics
@pytest.mark.parametrize("kind", ["cosine", "bm25", "tfidf", "jaccard"])
def test_graph_matches_dense_reference(kind):
    X = _random_matrix(1).tolil()
    X[:, 3] = 0  # an empty item: in BM25's collection with length 0
    X = X.tocsr()
    X.eliminate_zeros()
    K = 6
    model = tm.ItemKNN(K=K, similarity=kind).fit(X)
    ref = _top_k_graph(_dense_similarity(X.toarray(), kind), K)
    np.testing.assert_allclose(model.similarity_.toarray(), ref, rtol=2e-5, atol=1e-6)
    self_ref = np.diag(_dense_similarity(X.toarray(), kind))
    np.testing.assert_allclose(model.self_similarity_, self_ref, rtol=2e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 12),
       kind=st.sampled_from(["cosine", "bm25", "tfidf", "jaccard"]),
       density=st.floats(0.05, 0.6))
def test_graph_property(seed, K, kind, density):
    X = _random_matrix(seed, n_users=12, n_items=10, density=density)
    if X.nnz == 0:
        return
    model = tm.ItemKNN(K=K, similarity=kind).fit(X)
    S = _dense_similarity(X.toarray(), kind)
    got = model.similarity_.toarray()
    ref = _top_k_graph(S, K)
    # Every kept neighbour has its exact similarity, rows hold min(K, positives), and no
    # dropped entry beats a kept one (ties at the cut may legitimately go either way
    # after float32 rounding).
    kept = got != 0
    np.testing.assert_allclose(got[kept], S[kept], rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(kept.sum(axis=1), (ref != 0).sum(axis=1))
    off = ~np.eye(S.shape[0], dtype=bool) & (S > 0) & ~kept
    for i in range(S.shape[0]):
        if kept[i].any() and off[i].any():
            assert S[i, off[i]].max() <= S[i, kept[i]].min() * (1 + 1e-5) + 1e-7


@pytest.mark.parametrize("kind", ["cosine", "bm25"])
def test_recommend_matches_dense_reference(kind):
    X = _random_matrix(2, integer=True)
    model = tm.ItemKNN(K=5, similarity=kind).fit(X)
    G = model.similarity_.toarray()
    users = np.arange(X.shape[0])
    ids, scores = model.recommend(users, X, N=7, filter_items=[3])
    ref_ids, ref_scores = _reference_recommend(X.toarray(), G, 7, deny=(3,))
    for r in users:
        np.testing.assert_array_equal(ids[r], ref_ids[r])
        np.testing.assert_allclose(scores[r], ref_scores[r], rtol=1e-5, atol=1e-5)
    ids2, scores2 = model.recommend(users, X, N=7, filter_already_liked_items=False)
    ref_ids2, _ = _reference_recommend(X.toarray(), G, 7, exclude_seen=False)
    for r in users:
        np.testing.assert_array_equal(ids2[r], ref_ids2[r])


def test_recommend_single_allow_list_and_padding():
    X = _random_matrix(3)
    model = tm.ItemKNN(K=4).fit(X)
    ids, scores = model.recommend(0, X, N=100)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    assert len(ids) == X.shape[1] - X[0].nnz  # every unseen item, 0 for unreached ones
    assert np.all(np.diff(scores) <= 0)
    assert not np.isin(ids, X[0].indices).any()
    allow = np.array([1, 2, 5, 7])
    ids, _ = model.recommend(np.array([0, 1]), X, N=10, items=allow)
    assert ids.shape == (2, 4)
    assert np.isin(ids[ids >= 0], allow).all()
    for r, u in enumerate([0, 1]):
        # implicit's rule: every given item is ranked, the already-liked ones last
        assert sorted(ids[r]) == sorted(allow)
        n_new = len(set(allow) - set(X[u].indices))
        assert not np.isin(ids[r][:n_new], X[u].indices).any()


def test_similar_items_and_thread_determinism():
    X = _random_matrix(4, n_users=60, n_items=40)
    one = tm.ItemKNN(K=8, num_threads=1).fit(X)
    two = tm.ItemKNN(K=8, num_threads=2).fit(X)
    for a in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(one.similarity_, a), getattr(two.similarity_, a))
    ids, scores = one.similar_items(5, N=4)
    assert ids[0] == 5 and scores[0] == pytest.approx(1.0)
    row = one.similarity_[5].toarray().ravel()
    best = sorted((-row[j], j) for j in range(len(row)) if row[j] > 0)[:3]
    np.testing.assert_array_equal(ids[1:], [j for _, j in best])
    ids, _ = one.similar_items([5, 6], N=3, filter_items=[5])
    assert ids.shape == (2, 3) and 5 not in ids[0] and ids[1, 0] == 6


def test_matches_implicit_similarity():
    implicit_nn = pytest.importorskip("implicit.nearest_neighbours")
    X = _random_matrix(5, n_users=50, n_items=30, integer=True).tolil()
    X[:, [4, 17]] = 0  # empty catalog items: both libraries count them in BM25's avglen
    X = X.tocsr()
    X.eliminate_zeros()
    n = X.shape[1]
    for ours, theirs in (("cosine", implicit_nn.CosineRecommender(K=n, num_threads=1)),
                         ("bm25", implicit_nn.BM25Recommender(K=n, num_threads=1))):
        theirs.fit(X, show_progress=False)
        S = theirs.similarity.toarray()
        np.fill_diagonal(S, 0)
        model = tm.ItemKNN(K=n, similarity=ours).fit(X)
        np.testing.assert_allclose(model.similarity_.toarray(), S, rtol=1e-5, atol=1e-6)


def test_concurrent_queries_agree():
    X = _random_matrix(6, n_users=80, n_items=50)
    model = tm.ItemKNN(K=10, num_threads=1).fit(X)
    users = np.arange(X.shape[0])
    expected = model.recommend(users, X, N=5)[0]
    results = [None] * 8

    def run(t):
        results[t] = model.recommend(users, X, N=5)[0]

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_save_load_and_pickle(tmp_path):
    X = _random_matrix(7)
    model = tm.ItemKNN(K=5, similarity="bm25", K1=2.0, B=0.5).fit(X)
    path = tmp_path / "knn.npz"
    model.save(path)
    for other in (tm.load(path), pickle.loads(pickle.dumps(model))):
        assert isinstance(other, tm.ItemKNN)
        assert other.get_params() == model.get_params()
        a, b = model.recommend(np.arange(5), X, N=4), other.recommend(np.arange(5), X, N=4)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


# --------------------------------------------------------------- bad input
def test_bad_input():
    X = _random_matrix(8)
    with pytest.raises(ValueError, match="K"):
        tm.ItemKNN(K=0).fit(X)
    with pytest.raises(ValueError, match="similarity"):
        tm.ItemKNN(similarity="euclid").fit(X)
    with pytest.raises(ValueError, match="B"):
        tm.ItemKNN(similarity="bm25", B=1.5).fit(X)
    with pytest.raises(ValueError, match="user_items"):
        tm.ItemKNN().fit(np.ones((3, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        tm.ItemKNN().recommend(0, X)
    model = tm.ItemKNN(K=3).fit(X)
    # without user_items the training rows are used
    np.testing.assert_array_equal(model.recommend(0)[0], model.recommend(0, X)[0])
    with pytest.raises(ValueError, match="user_items"):
        model.recommend([0, 1], X[:, :5])
    with pytest.raises(ValueError, match="userid"):
        model.recommend(X.shape[0], X)
    with pytest.raises(ValueError, match="N"):
        model.recommend(0, X, N=0)
    with pytest.raises(ValueError, match="filter_items"):
        model.recommend(0, X, filter_items=[X.shape[1]])
    with pytest.raises(ValueError, match="itemid"):
        model.similar_items(-1)
    with pytest.raises(ValueError, match="recalculate_item"):
        model.similar_items(0, recalculate_item=True)
    with pytest.raises(NotImplementedError, match="similar_users"):
        model.similar_users(0)
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tm.ItemKNN().fit(bad)


# --------------------------------------------------------------- real data
def _split(X, seed=0):
    rng = np.random.default_rng(seed)
    coo = X.tocoo()
    test = rng.random(coo.nnz) < 0.2
    def part(mask):
        m = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=X.shape)
        m.sort_indices()
        return m
    return part(~test), part(test)


def test_ml100k_precision_matches_implicit(ml100k_dir):
    implicit_nn = pytest.importorskip("implicit.nearest_neighbours")
    data, _ = tm.datasets.movielens_100k(ml100k_dir)
    train, test = _split(data.to_csr())
    users = np.flatnonzero(np.diff(test.indptr))
    theirs = implicit_nn.CosineRecommender(K=21, num_threads=1)
    theirs.fit(train, show_progress=False)
    ours = tm.ItemKNN(K=20, similarity="cosine").fit(train)
    p_theirs = tm.evaluation.precision_at_k(theirs.recommend(users, train[users], N=10)[0], test,
                                            10, users=users)
    p_ours = tm.evaluation.precision_at_k(ours.recommend(users, train[users], N=10)[0], test, 10,
                                          users=users)
    assert p_ours > 0.2
    assert abs(p_ours - p_theirs) <= 0.005
