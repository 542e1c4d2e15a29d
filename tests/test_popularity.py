"""Popularity baseline: counts, window, native recommend, persistence, errors."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import scipy.sparse as sp

import tastemaker
from model_contract import ModelContract
from tastemaker import Popularity


def _matrix():
    # item popularity (users with a positive value): item0: 4, item1: 2, item2: 3,
    # item3: 0 (one dislike only), item4: 1
    dense = np.array([
        [1, 1, 1, 0, 0],
        [1, 0, 1, -1, 0],
        [1, 0, 0, 0, 2],
        [1, 3, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=np.float32)
    return sp.csr_matrix(dense)


def test_counts_and_factors():
    m = Popularity().fit(_matrix())
    np.testing.assert_array_equal(m.popularity_, [4, 2, 3, 0, 1])
    np.testing.assert_allclose(m.item_factors[:, 0], np.array([4, 2, 3, 0, 1]) / 5)
    assert m.item_factors.dtype == np.float32 and m.item_factors.shape == (5, 1)
    np.testing.assert_array_equal(m.user_factors, np.ones((5, 1), dtype=np.float32))


def test_recommend_goes_most_popular_first_without_seen_items():
    x = _matrix()
    m = Popularity().fit(x)
    ids, scores = m.recommend(np.arange(5), x, N=3)
    np.testing.assert_array_equal(ids[4], [0, 2, 1])  # the user with no history
    np.testing.assert_array_equal(ids[2][:2], [2, 1])  # items 0 and 4 seen
    np.testing.assert_allclose(scores[4], [0.8, 0.6, 0.4], rtol=1e-6)
    for u in range(5):
        assert not set(ids[u][ids[u] >= 0]) & set(x[u].indices)
    one, _ = m.recommend(4, x[4], N=2)
    np.testing.assert_array_equal(one, [0, 2])


def _interactions(ts):
    pytest.importorskip("tastemaker.data")
    import pandas as pd

    df = pd.DataFrame({
        "user": ["a", "a", "b", "b", "c", "c", "d"],
        "item": ["old", "new", "old", "new", "old", "mid", "old"],
        "t": ts,
    })
    return tastemaker.Interactions.from_frame(df, timestamp="t")


def test_window_counts_only_recent_interactions():
    day = 86400.0
    inter = _interactions([0, 9 * day, 0, 10 * day, 1 * day, 8 * day, 2 * day])
    full = Popularity().fit(inter)
    recent = Popularity(window=datetime.timedelta(days=3)).fit(inter)
    idx = {name: int(inter.item_index([name])[0]) for name in ("old", "new", "mid")}
    assert full.popularity_[idx["old"]] == 4
    assert recent.popularity_[idx["old"]] == 0
    assert recent.popularity_[idx["new"]] == 2 and recent.popularity_[idx["mid"]] == 1
    same = Popularity(window=3 * day).fit(inter)
    np.testing.assert_array_equal(same.popularity_, recent.popularity_)


def test_recalculate_user_folds_in_a_new_history():
    x = _matrix()
    m = Popularity().fit(x)
    new_user = sp.csr_matrix(np.array([[1, 0, 1, 0, 0]], dtype=np.float32))
    ids, _ = m.recommend(0, new_user, N=2, recalculate_user=True)
    np.testing.assert_array_equal(ids, [1, 4])


def test_similarity_queries_are_meaningless():
    m = Popularity().fit(_matrix())
    with pytest.raises(NotImplementedError, match="Popularity.similar_items"):
        m.similar_items(0)
    with pytest.raises(NotImplementedError, match="Popularity.similar_users"):
        m.similar_users(0)


def test_errors():
    x = _matrix()
    with pytest.raises(ValueError, match="user_items: window needs timestamps"):
        Popularity(window=10).fit(x)
    with pytest.raises(ValueError, match="window: expected a number > 0"):
        Popularity(window=-1.0).fit(x)
    with pytest.raises(ValueError, match="window: expected None, a number"):
        Popularity(window="3 days").fit(x)
    with pytest.raises(ValueError, match="user_items: expected a tastemaker.Interactions"):
        Popularity().fit(x.toarray())
    with pytest.raises(ValueError, match="user_items: matrix is empty"):
        Popularity().fit(sp.csr_matrix((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="num_threads"):
        Popularity(num_threads=-1).fit(x)
    with pytest.raises(ValueError, match="not fitted|fit"):
        Popularity().recommend(0, x[0])


class TestPopularityContract(ModelContract):
    supports_similar_items = False
    supports_similar_users = False

    def make_model(self):
        return Popularity()
