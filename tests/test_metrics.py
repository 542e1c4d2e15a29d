"""Metrics: hand-worked examples, an independent per-user reference, and implicit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker.evaluation import metrics as M


def _csr(rows, n_items):
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, list(items)] = 1.0
    return sp.csr_matrix(dense)


# Two users with test items, one without.  Hand-worked below.
TEST = _csr([{0, 2, 5}, {1}, set()], 6)
REC = np.array([[0, 1, 2], [3, 1, -1], [0, 1, 2]])


def test_hand_worked_ranking_example():
    got = M.ranking_metrics_at_k(REC, TEST, 3, per_user=True)
    log4 = 1 / math.log2(4)
    log3 = 1 / math.log2(3)
    # user 0: hits at ranks 1 and 3 of 3 test items; user 1: hit at rank 2 of 1 test item
    np.testing.assert_allclose(got["precision"][:2], [2 / 3, 1 / 3])
    np.testing.assert_allclose(got["recall"][:2], [2 / 3, 1.0])
    np.testing.assert_allclose(got["map"][:2], [(1 + 2 / 3) / 3, 1 / 2])
    np.testing.assert_allclose(got["ndcg"][:2], [(1 + log4) / (1 + log3 + log4), log3])
    np.testing.assert_allclose(got["mrr"][:2], [1.0, 0.5])
    np.testing.assert_allclose(got["hit_rate"][:2], [1.0, 1.0])
    # AUC user 0: 3 relevant, 3 others; the one miss (item 1) has 1 hit above it, the 2
    # unranked negatives are beaten by 2 ranked hits and tie with 1 unranked hit.
    # user 1: 1 relevant, 5 others; miss (item 3) has 0 above, 4 unranked negatives tie.
    np.testing.assert_allclose(got["auc"][:2], [(1 + 2 * 2.5) / 9, (0 + 4 * 1) / 5])
    for values in got.values():
        assert np.isnan(values[2])  # user without test items is undefined
    means = M.ranking_metrics_at_k(REC, TEST, 3)
    for name, values in got.items():
        assert means[name] == pytest.approx(np.mean(values[:2]))


def test_recall_uses_all_test_items_and_ndcg_ideal_is_capped_at_k():
    test = _csr([set(range(10))], 12)
    rec = np.array([[0, 1, 2]])
    assert M.recall_at_k(rec, test, 3) == pytest.approx(0.3)
    assert M.ndcg_at_k(rec, test, 3) == pytest.approx(1.0)
    assert M.map_at_k(rec, test, 3) == pytest.approx(1.0)


def test_users_maps_rows_to_test_rows():
    rec = np.array([[3, 1]])
    assert M.precision_at_k(rec, TEST, 2, users=[1]) == 0.5
    assert M.precision_at_k(rec, TEST, 2, users=[0]) == 0.0


def test_auc_exclude_removes_training_items_from_the_negatives():
    train = _csr([{3, 4}, set(), set()], 6)
    got = M.auc_at_k(REC, TEST, 3, exclude=train, per_user=True)
    # user 0 negatives: {1, 3, 4} minus the excluded {3, 4} -> {1}; item 1 is ranked
    # below one hit: pairs (0,1) right, (2,1) wrong, (5,1) wrong -> 1/3
    assert got[0] == pytest.approx(1 / 3)
    assert got[1] == pytest.approx(0.8)


def _reference(rec, test_rows, n_items, k, exclude_rows=None):
    """Independent per-user loop implementation (the textbook definitions)."""
    out = {m: [] for m in M.RANKING_METRICS}
    for r, rel in enumerate(test_rows):
        if not rel:
            for m in out:
                out[m].append(np.nan)
            continue
        top = [i for i in rec[r][:k]]
        hit = [i >= 0 and i in rel for i in top]
        out["precision"].append(sum(hit) / k)
        out["recall"].append(sum(hit) / len(rel))
        out["hit_rate"].append(float(any(hit)))
        out["mrr"].append(next((1 / (i + 1) for i, h in enumerate(hit) if h), 0.0))
        ap, seen = 0.0, 0
        for i, h in enumerate(hit):
            if h:
                seen += 1
                ap += seen / (i + 1)
        out["map"].append(ap / min(k, len(rel)))
        out["map_full"].append(ap / len(rel))
        dcg = sum(1 / math.log2(i + 2) for i, h in enumerate(hit) if h)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
        out["ndcg"].append(dcg / idcg)
        # AUC by enumerating pairs: score = position from the top, unranked tie at -inf
        excl = exclude_rows[r] if exclude_rows else set()
        score = {item: -i for i, item in enumerate(top) if item >= 0}
        negs = [j for j in range(n_items) if j not in rel and j not in excl]
        if not negs:
            out["auc"].append(np.nan)
            continue
        total = 0.0
        for p in rel:
            for q in negs:
                sp_, sq = score.get(p, -np.inf), score.get(q, -np.inf)
                total += 1.0 if sp_ > sq else 0.5 if sp_ == sq else 0.0
        out["auc"].append(total / (len(rel) * len(negs)))
    return {m: np.array(v) for m, v in out.items()}


@st.composite
def _ranking_case(draw):
    n_items = draw(st.integers(2, 12))
    n_users = draw(st.integers(1, 6))
    width = draw(st.integers(1, n_items))
    k = draw(st.integers(1, width))
    test_rows, recs, excl = [], [], []
    for _ in range(n_users):
        test_rows.append(set(draw(st.lists(st.integers(0, n_items - 1), max_size=n_items))))
        perm = draw(st.permutations(range(n_items)))
        n_pad = draw(st.integers(0, width - 1))
        recs.append(list(perm[:width - n_pad]) + [-1] * n_pad)
        # exclusions only among items the row does not recommend (as filtering ensures)
        rest = [i for i in range(n_items) if i not in recs[-1]]
        excl.append(set(draw(st.lists(st.sampled_from(rest), max_size=3))) if rest else set())
    return n_items, np.array(recs), test_rows, k, excl


@settings(max_examples=60, deadline=None)
@given(_ranking_case())
def test_ranking_metrics_match_a_per_user_reference(case):
    n_items, rec, test_rows, k, excl = case
    test = _csr(test_rows, n_items)
    exclude = _csr(excl, n_items)
    got = M.ranking_metrics_at_k(rec, test, k, per_user=True, exclude=exclude)
    ref = _reference(rec, test_rows, n_items, k, excl)
    for name in M.RANKING_METRICS:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)


class _FixedLists:
    """A model for implicit's evaluator whose recommend returns fixed lists."""

    def __init__(self, recs):
        self.recs = recs

    def recommend(self, userid, user_items, N=10, **kwargs):
        userid = np.asarray(userid)
        return self.recs[userid, :N], np.zeros((len(userid), N), dtype=np.float32)


class _MemoryviewRows(sp.csr_matrix):
    # implicit 0.7.2 indexes the train matrix with a Cython memoryview, which recent
    # scipy rejects; convert the key so the comparison can run.
    def __getitem__(self, key):
        return sp.csr_matrix(self)[np.asarray(key)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_map_auc_agree_with_implicit(seed):
    implicit_eval = pytest.importorskip("implicit.evaluation")
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 60, 40, 7
    test = sp.random(n_users, n_items, density=0.12, format="csr", random_state=rng,
                     dtype=np.float32)
    train = sp.random(n_users, n_items, density=0.1, format="csr", random_state=rng,
                      dtype=np.float32)
    test.data[:] = 1
    train.data[:] = 1
    # bias the lists toward test items so that hits are common
    scores = rng.random((n_users, n_items)) + test.toarray()
    recs = np.argsort(-scores, axis=1)[:, :k].astype(np.int32)
    ref = implicit_eval.ranking_metrics_at_k(_FixedLists(recs), _MemoryviewRows(train), test,
                                             K=k, show_progress=False)
    users = np.flatnonzero(np.diff(test.indptr))
    got = M.ranking_metrics_at_k(recs[users], test, k, users=users)
    for name in ("ndcg", "map", "auc"):
        assert got[name] == pytest.approx(ref[name], rel=1e-9), name


def test_metric_input_errors():
    with pytest.raises(ValueError, match="recommended: expected a 2-D"):
        M.precision_at_k(np.arange(3), TEST)
    with pytest.raises(ValueError, match="recommended: expected integer"):
        M.precision_at_k(REC.astype(float), TEST, 3)
    with pytest.raises(ValueError, match="recommended: item id 6 out of range"):
        M.precision_at_k(np.array([[6, 0, 1]] * 3), TEST, 3)
    with pytest.raises(ValueError, match="recommended: row 1 recommends the same item"):
        M.precision_at_k(np.array([[0, 1, 2], [1, 1, 3], [0, 1, 2]]), TEST, 3)
    with pytest.raises(ValueError, match="k: 4 is larger"):
        M.precision_at_k(REC, TEST, 4)
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        M.precision_at_k(REC, TEST, 0)
    with pytest.raises(ValueError, match="users: required"):
        M.precision_at_k(REC[:2], TEST, 3)
    with pytest.raises(ValueError, match="users: id 7 out of range"):
        M.precision_at_k(REC[:1], TEST, 3, users=[7])
    with pytest.raises(ValueError, match="users: expected a 1-D array of 2"):
        M.precision_at_k(REC[:2], TEST, 3, users=[0])
    with pytest.raises(ValueError, match="test: expected a scipy.sparse"):
        M.precision_at_k(REC, TEST.toarray(), 3)
    bad = TEST.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="test: contains NaN"):
        M.precision_at_k(REC, bad, 3)
    with pytest.raises(ValueError, match="metrics: unknown ranking metric 'ndgc'"):
        M.ranking_metrics_at_k(REC, TEST, 3, metrics=["ndgc"])
    with pytest.raises(ValueError, match="exclude: expected shape"):
        M.auc_at_k(REC, TEST, 3, exclude=sp.csr_matrix((3, 5), dtype=np.float32))


def test_zero_and_negative_test_values_are_not_relevant():
    data = np.array([0.0, 1.0, -2.0], dtype=np.float32)
    test = sp.csr_matrix((data, np.array([0, 1, 2]), np.array([0, 3])), shape=(1, 4))
    before = test.copy()
    assert M.precision_at_k(np.array([[0, 1, 2]]), test, 3) == pytest.approx(1 / 3)
    assert M.recall_at_k(np.array([[0, 1, 2]]), test, 3) == 1.0
    assert (test != before).nnz == 0 and test.nnz == 3  # the caller's matrix is untouched


def test_rmse_and_mae():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 1.0, 4.0])
    assert M.rmse(y, p) == pytest.approx(math.sqrt((1 + 0 + 4 + 0) / 4))
    assert M.mae(y, p) == pytest.approx(3 / 4)
    per = M.rmse(y, p, users=[0, 0, 2, 2], n_users=4)
    np.testing.assert_allclose(per, [math.sqrt(0.5), np.nan, math.sqrt(2.0), np.nan])
    np.testing.assert_allclose(M.mae(y, p, users=[1, 0, 0, 1]), [1.0, 0.5])
    with pytest.raises(ValueError, match="y_pred: expected shape"):
        M.rmse(y, p[:3])
    with pytest.raises(ValueError, match="y_true: contains NaN"):
        M.mae([np.nan], [1.0])
    with pytest.raises(ValueError, match="y_true: no ratings"):
        M.rmse([], [])
    with pytest.raises(ValueError, match="n_users: expected an int >= 3"):
        M.rmse(y, p, users=[0, 0, 2, 2], n_users=2)


TRAIN = _csr([{0, 1}, {0}, {0, 2}, {3}], 5)  # popularity: 3/4, 1/4, 1/4, 1/4, 0


def test_item_popularity_and_novelty_and_arp():
    np.testing.assert_allclose(M.item_popularity(TRAIN), [0.75, 0.25, 0.25, 0.25, 0.0])
    rec = np.array([[0, 1], [4, -1]])
    nov = M.novelty(rec, TRAIN, per_user=True)
    # item 4 was never seen: counted as one user of four
    np.testing.assert_allclose(nov, [(-math.log2(0.75) + 2) / 2, 2.0])
    assert M.novelty(rec, TRAIN) == pytest.approx(nov.mean())
    np.testing.assert_allclose(M.popularity_bias(rec, TRAIN, per_user=True), [0.5, 0.0])
    np.testing.assert_allclose(M.popularity_bias(rec, TRAIN, k=1, per_user=True), [0.75, 0.0])


def test_catalog_coverage():
    rec = np.array([[0, 1, 2], [1, 2, -1]])
    assert M.catalog_coverage(rec, 10) == pytest.approx(0.3)
    assert M.catalog_coverage(rec, 10, k=1) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="n_items: expected an int >= 1"):
        M.catalog_coverage(rec, 0)


def _ild_reference(rec, vectors):
    out = []
    for row in rec:
        items = [i for i in row if i >= 0]
        d = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                x, y = vectors[items[a]], vectors[items[b]]
                nx, ny = np.linalg.norm(x), np.linalg.norm(y)
                d.append(1 - (x @ y / (nx * ny) if nx > 0 and ny > 0 else 0.0))
        out.append(np.mean(d) if d else np.nan)
    return np.array(out)


def test_intra_list_diversity_dense_and_sparse_features():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(8, 4))
    vectors[5] = 0.0
    rec = np.array([[0, 1, 2, 5], [3, 4, -1, -1], [6, -1, -1, -1], [7, 0, 1, 2]])
    ref = _ild_reference(rec, vectors)
    got = M.intra_list_diversity(rec, vectors, per_user=True, batch_size=3)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert M.intra_list_diversity(rec, vectors) == pytest.approx(np.nanmean(ref))
    features = sp.random(8, 30, density=0.3, format="csr", random_state=4)
    got_sp = M.intra_list_diversity(rec, features, per_user=True)
    np.testing.assert_allclose(got_sp, _ild_reference(rec, features.toarray()), rtol=1e-6)  # float32
    with pytest.raises(ValueError, match="recommended: item id 8 out of range"):
        M.intra_list_diversity(np.array([[8, 0]]), vectors)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 5), st.integers(0, 10_000))
def test_personalization_matches_pairwise_cosine(n_rows, k, seed):
    rng = np.random.default_rng(seed)
    n_items = k + 3
    rec = np.stack([rng.permutation(n_items)[:k] for _ in range(n_rows)])
    rec[rng.random(rec.shape) < 0.2] = -1
    sets = [set(r[r >= 0].tolist()) for r in rec]
    per = []
    for u, a in enumerate(sets):
        if not a:
            per.append(np.nan)
            continue
        others = [1 - len(a & b) / math.sqrt(len(a) * len(b))
                  for v, b in enumerate(sets) if v != u and b]
        per.append(np.mean(others) if others else np.nan)
    got = M.personalization(rec, per_user=True)
    np.testing.assert_allclose(got, per, atol=1e-12)


def test_personalization_extremes():
    same = np.tile(np.arange(5), (4, 1))
    assert M.personalization(same) == pytest.approx(0.0)
    disjoint = np.arange(20).reshape(4, 5)
    assert M.personalization(disjoint) == pytest.approx(1.0)


def test_map_full_divides_by_all_test_items():
    # 3 relevant items, k=2, hits at ranks 1 and 2: AP sum = 1 + 1 = 2
    rec = np.array([[0, 1, 5]])
    test = _csr([{0, 1, 2}], 6)
    assert M.map_at_k(rec, test, 2) == pytest.approx(2 / 2)
    assert M.map_full_at_k(rec, test, 2) == pytest.approx(2 / 3)
