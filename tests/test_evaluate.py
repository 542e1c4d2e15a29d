"""evaluate(): end to end, against the metric functions and implicit's evaluator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tastemaker
from tastemaker.evaluation import evaluate, random_split
from tastemaker.evaluation import metrics as M


class _DotModel:
    """Reference recommender (NumPy only): inner-product scores, seen items removed."""

    def __init__(self, user_factors, item_factors):
        self.user_factors = user_factors
        self.item_factors = item_factors
        self.calls = []

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True, **kw):
        userid = np.asarray(userid)
        self.calls.append((userid.copy(), user_items.shape, N, kw))
        scores = self.user_factors[userid] @ self.item_factors.T
        if filter_already_liked_items:
            scores[user_items.toarray() != 0] = -np.inf
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :N]
        top = np.take_along_axis(scores, ids, axis=1)
        ids = np.where(np.isfinite(top), ids, -1)
        return ids.astype(np.int32), top.astype(np.float32)


def _data(seed=0, n_users=80, n_items=50):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, 4))
    v = rng.normal(size=(n_items, 4))
    p = 1 / (1 + np.exp(-(u @ v.T) * 1.5 + 1.5))
    dense = (rng.random((n_users, n_items)) < p).astype(np.float32)
    dense[0] = 0  # a user with no interactions
    return sp.csr_matrix(dense), u, v


def test_evaluate_matches_the_metric_functions():
    data, u, v = _data()
    train, test = random_split(data, 0.3, random_state=0)
    model = _DotModel(u, v)
    feats = np.random.default_rng(1).normal(size=(50, 3))
    df = evaluate({"dot": model}, train, test, k=(5, 10), baseline=False, show_progress=False,
                  batch_size=16, item_features=feats)
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["dot"] and df.index.name == "model"
    assert "ndcg@10" in df.columns and "diversity@5" in df.columns
    users = np.flatnonzero(np.diff(test.indptr))
    assert df.attrs["n_users"] == users.size
    # every scored user appeared once, in batches of at most 16, with its train rows
    called = np.concatenate([c[0] for c in model.calls])
    np.testing.assert_array_equal(called, users)
    assert all(c[2] == 10 and len(c[0]) <= 16 and c[1][0] == len(c[0]) for c in model.calls)
    rec, _ = _DotModel(u, v).recommend(users, train[users], N=10)
    for k in (5, 10):
        ref = M.ranking_metrics_at_k(rec, test, k, users=users, exclude=train)
        for name, value in ref.items():
            assert df.loc["dot", f"{name}@{k}"] == pytest.approx(value), name
        assert df.loc["dot", f"coverage@{k}"] == pytest.approx(M.catalog_coverage(rec, 50, k))
        assert df.loc["dot", f"novelty@{k}"] == pytest.approx(M.novelty(rec, train, k))
        assert df.loc["dot", f"arp@{k}"] == pytest.approx(M.popularity_bias(rec, train, k))
        assert df.loc["dot", f"personalization@{k}"] == pytest.approx(
            M.personalization(rec, k))
        assert df.loc["dot", f"diversity@{k}"] == pytest.approx(
            M.intra_list_diversity(rec, feats, k))
    # no training item was ever recommended
    assert not M.ranking_metrics_at_k(rec, train, 10, users=users, metrics=["hit_rate"])[
        "hit_rate"]


def test_evaluate_metric_selection_and_column_order():
    data, u, v = _data(1)
    train, test = random_split(data, 0.3, random_state=0)
    test.data[::7] = 0.0  # explicit zeros are not relevant, and stay in the caller's matrix
    before = (test.data.copy(), test.indices.copy())
    df = evaluate({"a": _DotModel(u, v), "b": _DotModel(-u, v)}, train, test, k=[20, 5],
                  metrics=["recall", "ndcg"], baseline=False, show_progress=False)
    np.testing.assert_array_equal(test.data, before[0])
    np.testing.assert_array_equal(test.indices, before[1])
    assert list(df.columns) == ["recall@5", "recall@20", "ndcg@5", "ndcg@20"]
    assert list(df.index) == ["a", "b"]
    assert df.loc["a", "ndcg@5"] > df.loc["b", "ndcg@5"]  # the true tastes beat their opposite


def test_evaluate_recalculate_user_is_passed_through():
    data, u, v = _data(2)
    train, test = random_split(data, 0.3, random_state=0)
    m = _DotModel(u, v)
    evaluate({"m": m}, train, test, k=3, metrics="precision", baseline=False,
             show_progress=False, recalculate_user=True)
    assert all(c[3] == {"recalculate_user": True} for c in m.calls)


def test_evaluate_input_errors():
    data, u, v = _data(3)
    train, test = random_split(data, 0.3, random_state=0)
    m = {"m": _DotModel(u, v)}
    kw = dict(baseline=False, show_progress=False)
    with pytest.raises(ValueError, match="models: expected a non-empty dict"):
        evaluate({}, train, test, **kw)
    with pytest.raises(ValueError, match="models: expected a non-empty dict"):
        evaluate([_DotModel(u, v)], train, test, **kw)
    with pytest.raises(ValueError, match=r"models\['x'\]: int has no recommend"):
        evaluate({"x": 3}, train, test, **kw)
    with pytest.raises(ValueError, match=r"models\['m'\]: has 50 items, train and test have 49"):
        evaluate(m, train[:, :49], test[:, :49], **kw)
    with pytest.raises(ValueError, match="test: expected shape"):
        evaluate(m, train, test[:10], **kw)
    with pytest.raises(ValueError, match="train: expected a tastemaker.Interactions"):
        evaluate(m, train.toarray(), test, **kw)
    with pytest.raises(ValueError, match="test: has no interactions"):
        evaluate(m, train, sp.csr_matrix(train.shape, dtype=np.float32), **kw)
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        evaluate(m, train, test, k=(0, 10), **kw)
    with pytest.raises(ValueError, match="k: expected an int or a sequence"):
        evaluate(m, train, test, k="ten", **kw)
    with pytest.raises(ValueError, match="metrics: unknown metric 'ndgc'"):
        evaluate(m, train, test, metrics=["ndgc"], **kw)
    with pytest.raises(ValueError, match="metrics: 'diversity' needs item_features"):
        evaluate(m, train, test, metrics=["diversity"], **kw)
    with pytest.raises(ValueError, match="item_features: expected 50 rows"):
        evaluate(m, train, test, item_features=np.ones((3, 2)), **kw)
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1"):
        evaluate(m, train, test, batch_size=0, **kw)


class _MemoryviewRows(sp.csr_matrix):
    # implicit 0.7.2 indexes train with a Cython memoryview, which recent scipy rejects.
    def __getitem__(self, key):
        return sp.csr_matrix(self)[np.asarray(key)]


def test_evaluate_agrees_with_implicit_on_its_own_als(ml100k_dir):
    implicit_als = pytest.importorskip("implicit.cpu.als")
    implicit_eval = pytest.importorskip("implicit.evaluation")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    raw = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    data = sp.csr_matrix((np.ones(len(raw), dtype=np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)))
    train, test = random_split(data, 0.2, random_state=0)
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = implicit_als.AlternatingLeastSquares(factors=16, iterations=5, random_state=0,
                                                     num_threads=1)
        model.fit(train, show_progress=False)
    df = evaluate({"implicit-als": model}, train, test, k=10, metrics=["ndcg", "map"],
                  baseline=False, show_progress=False)
    ref = implicit_eval.ranking_metrics_at_k(model, _MemoryviewRows(train), test, K=10,
                                             show_progress=False)
    assert df.loc["implicit-als", "ndcg@10"] == pytest.approx(ref["ndcg"], rel=1e-9)
    assert df.loc["implicit-als", "map@10"] == pytest.approx(ref["map"], rel=1e-9)
    assert ref["ndcg"] > 0.1  # a real model, not an empty comparison


class _Fixed(tastemaker.models.FactorModel):
    """Fixed factors: recommendations through the native top-k of the shared base."""

    def __init__(self, user_factors, item_factors):
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)


def test_native_topk_path_matches_the_numpy_reference():
    data, u, v = _data(4)
    train, test = random_split(data, 0.3, random_state=1)
    kw = dict(k=(5, 10), baseline=False, show_progress=False)
    native = evaluate({"m": _Fixed(u, v)}, train, test, batch_size=7, **kw)
    ref = evaluate({"m": _DotModel(u.astype(np.float32), v.astype(np.float32))}, train, test,
                   **kw)
    pd.testing.assert_frame_equal(native, ref)


def test_popularity_baseline_is_added_when_absent():
    data, u, v = _data(5)
    train, test = random_split(data, 0.3, random_state=0)
    df = evaluate({"dot": _DotModel(u, v)}, train, test, k=10, show_progress=False)
    assert list(df.index) == ["dot", "Popularity"]
    pop = tastemaker.Popularity().fit(train)
    alone = evaluate({"p": pop}, train, test, k=10, show_progress=False)
    assert list(alone.index) == ["p"]  # a Popularity is present: nothing added
    np.testing.assert_allclose(df.loc["Popularity"].to_numpy(), alone.loc["p"].to_numpy())
    clash = evaluate({"Popularity": _DotModel(u, v)}, train, test, k=10, show_progress=False)
    assert list(clash.index) == ["Popularity", "Popularity*"]


def test_user_kfold_with_fold_in():
    data, u, v = _data(6)
    from tastemaker.evaluation import user_kfold_split

    for fold in user_kfold_split(data, 3, random_state=0):
        pop = tastemaker.Popularity().fit(fold.train)
        a = evaluate({"pop": pop}, fold.fold_in, fold.test, k=5, show_progress=False,
                     recalculate_user=True)
        b = evaluate({"pop": pop}, fold.fold_in, fold.test, k=5, show_progress=False)
        assert a.attrs["n_users"] == fold.users.size
        pd.testing.assert_frame_equal(a, b)  # every user's popularity factor is 1 anyway


def test_end_to_end_on_movielens_interactions(ml100k_dir):
    implicit_als = pytest.importorskip("implicit.cpu.als")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    inter, items = tastemaker.datasets.movielens_100k(ml100k_dir, value=None)
    train, test = tastemaker.evaluation.leave_last_k_out_split(inter, k=5)
    assert isinstance(train, tastemaker.Interactions)
    with threadpoolctl.threadpool_limits(1, "blas"):
        als = implicit_als.AlternatingLeastSquares(factors=32, iterations=8, random_state=0,
                                                   num_threads=1)
        als.fit(train.to_csr(), show_progress=False)
    df = tastemaker.evaluate({"implicit-als": als}, train, test, show_progress=False)
    assert list(df.index) == ["implicit-als", "Popularity"]
    assert df.attrs["n_users"] == inter.n_users
    assert {"ndcg@10", "ndcg@20", "recall@20", "coverage@10", "auc@20"} <= set(df.columns)
    assert df.loc["implicit-als", "ndcg@10"] > df.loc["Popularity", "ndcg@10"]
    assert df.loc["implicit-als", "coverage@10"] > df.loc["Popularity", "coverage@10"]
    assert df.loc["Popularity", "arp@10"] > df.loc["implicit-als", "arp@10"]


def test_tastemaker_als_beats_popularity_in_user_kfold(ml100k_dir):
    inter, _ = tastemaker.datasets.movielens_100k(ml100k_dir, value=None)
    fold = next(tastemaker.evaluation.user_kfold_split(inter, 5, test_size=0.3, random_state=0))
    als = tastemaker.ALS(factors=32, iterations=10, regularization=0.05, random_state=0,
                         num_threads=1).fit(fold.train.to_csr(), show_progress=False)
    pop = tastemaker.Popularity().fit(fold.train)
    df = tastemaker.evaluate({"ALS": als, "Popularity": pop}, fold.fold_in, fold.test,
                             k=10, metrics=["ndcg", "recall"], show_progress=False,
                             recalculate_user=True)
    assert df.attrs["n_users"] == fold.users.size
    assert df.loc["ALS", "ndcg@10"] > 1.2 * df.loc["Popularity", "ndcg@10"]
    # the held-out users were never seen in training: without fold-in ALS knows nothing
    cold = tastemaker.evaluate({"ALS": als}, fold.fold_in, fold.test, k=10, metrics=["ndcg"],
                               show_progress=False, baseline=False)
    assert cold.loc["ALS", "ndcg@10"] < df.loc["ALS", "ndcg@10"]


def test_huge_k_is_capped_at_the_catalogue_not_allocated():
    # evaluate(k=10**9) allocated users x 10**9 ids before failing
    x = sp.random(50, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    y = sp.random(50, 20, density=0.1, format="csr", random_state=1, dtype=np.float32)
    y = (y - y.multiply(x > 0)).tocsr()
    y.eliminate_zeros()
    model = tastemaker.ALS(factors=3, iterations=2, random_state=0).fit(x, show_progress=False)
    table = evaluate({"ALS": model}, x, y, k=(20, 10**9), show_progress=False)
    for col in table.columns:
        name, k = col.rsplit("@", 1)
        if k == "20":
            other = table[f"{name}@{10**9}"]
            scale = 20 / 10**9 if name == "precision" else 1.0
            np.testing.assert_allclose(other, table[col] * scale, rtol=1e-12)


def test_bad_item_features_are_named_as_evaluates_argument():
    x = sp.random(30, 12, density=0.3, format="csr", random_state=0, dtype=np.float32)
    y = sp.random(30, 12, density=0.2, format="csr", random_state=1, dtype=np.float32)
    y = (y - y.multiply(x > 0)).tocsr()
    y.eliminate_zeros()
    model = tastemaker.ALS(factors=3, iterations=1, random_state=0).fit(x, show_progress=False)
    bad = np.full((12, 3), np.nan)
    with pytest.raises(ValueError, match="^item_features:"):
        evaluate({"ALS": model}, x, y, k=5, metrics=("diversity",), item_features=bad,
                 show_progress=False)
