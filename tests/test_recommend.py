"""FactorModel: recommend / similar_items / similar_users against NumPy references."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

import tastemaker
from tastemaker.io import register_model
from tastemaker.models import FactorModel


@register_model("_TestFactorModel")
class Toy(FactorModel):
    """Factors given directly; fold-in = the mean of the row's item factors."""

    def __init__(self, user_factors=None, item_factors=None, num_threads=0):
        self.user_factors = user_factors
        self.item_factors = item_factors
        self.num_threads = num_threads

    def _fold_in_users(self, user_items):
        m = sp.csr_matrix(user_items)
        counts = np.maximum(np.diff(m.indptr), 1)[:, None]
        return np.ascontiguousarray((m @ self.item_factors) / counts, dtype=np.float32)

    def _get_state(self):
        return {"num_threads": self.num_threads}, {"user_factors": self.user_factors,
                                                   "item_factors": self.item_factors}, {}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        return cls(arrays["user_factors"], arrays["item_factors"], params["num_threads"])


def make(seed=0, n_users=50, n_items=120, f=8, integer=False, density=0.1):
    rng = np.random.default_rng(seed)
    if integer:
        uf = rng.integers(-2, 3, (n_users, f)).astype(np.float32)
        itf = rng.integers(-2, 3, (n_items, f)).astype(np.float32)
    else:
        uf = rng.standard_normal((n_users, f), dtype=np.float32)
        itf = rng.standard_normal((n_items, f), dtype=np.float32)
    ui = sp.random(n_users, n_items, density=density, format="csr", random_state=seed,
                   dtype=np.float32)
    ui.sort_indices()
    return Toy(uf, itf), ui


def ref_rank(scores, eligible, N):
    cand = np.flatnonzero(eligible)
    order = np.lexsort((cand, -scores[cand]))[:N]
    return cand[order], scores[cand[order]]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 150), st.booleans(), st.booleans(), st.booleans())
def test_recommend_matches_reference(seed, N, filt, use_allow, use_deny):
    model, ui = make(seed, n_users=20, n_items=60, integer=True, density=0.2)
    rng = np.random.default_rng(seed)
    allow = rng.choice(60, 25) if use_allow else None
    deny = rng.choice(60, 10) if use_deny else None
    users = rng.choice(20, 7)
    ids, scores = model.recommend(users, ui[users], N=N, filter_already_liked_items=filt,
                                  filter_items=deny, items=allow)
    pool = 60 if allow is None else len(np.unique(allow))
    assert ids.shape == scores.shape == (7, min(N, pool))
    S = model.user_factors.astype(np.float64) @ model.item_factors.T
    for row, u in enumerate(users):
        ok = np.ones(60, bool)
        if allow is not None:
            ok[:] = False
            ok[allow] = True
        if deny is not None:
            ok[deny] = False
        if filt:
            ok[ui[u].indices] = False
        r_ids, r_scores = ref_rank(S[u], ok, N)
        if filt and allow is not None:
            # implicit's rule: every given item is ranked; liked ones last, own order
            liked = np.zeros(60, bool)
            liked[np.intersect1d(ui[u].indices, allow)] = True
            if deny is not None:
                liked[deny] = False
            l_ids, _ = ref_rank(S[u], liked, N - len(r_ids))
            r_ids = np.concatenate([r_ids, l_ids])
            r_scores = np.concatenate([r_scores, np.full(len(l_ids), np.finfo(np.float32).min)])
        n = len(r_ids)
        np.testing.assert_array_equal(ids[row, :n], r_ids)
        np.testing.assert_array_equal(scores[row, :n], r_scores.astype(np.float32))
        assert (ids[row, n:] == -1).all() and np.isneginf(scores[row, n:]).all()
        one_ids, one_scores = model.recommend(int(u), ui, N=N, filter_already_liked_items=filt,
                                              filter_items=deny, items=allow)
        np.testing.assert_array_equal(one_ids, r_ids)
        np.testing.assert_array_equal(one_scores, r_scores.astype(np.float32))


def test_recommend_types_and_full_matrix_slicing():
    model, ui = make(1)
    ids, scores = model.recommend(3, ui, N=5)
    assert ids.dtype == np.int32 and scores.dtype == np.float32 and ids.shape == (5,)
    ids2, _ = model.recommend(3, ui[3], N=5)
    np.testing.assert_array_equal(ids, ids2)
    batch, _ = model.recommend(np.array([3, 7]), ui, N=5)
    assert batch.shape == (2, 5)
    np.testing.assert_array_equal(batch[0], ids)
    assert not np.isin(ids, ui[3].indices).any()
    # no user_items needed when nothing is filtered
    free, _ = model.recommend(3, None, N=5, filter_already_liked_items=False)
    S = model.user_factors[3] @ model.item_factors.T
    np.testing.assert_array_equal(free, np.argsort(-S, kind="stable")[:5])


def test_recommend_recalculate_user_uses_fold_in():
    model, ui = make(2)
    row = ui[4]
    ids, scores = model.recommend(4, row, N=6, recalculate_user=True)
    x = model._fold_in_users(row)[0]
    S = model.item_factors.astype(np.float64) @ x
    ok = np.ones(ui.shape[1], bool)
    ok[row.indices] = False
    r_ids, r_scores = ref_rank(S, ok, 6)
    np.testing.assert_array_equal(ids, r_ids)
    np.testing.assert_allclose(scores, r_scores, rtol=1e-5, atol=1e-5)
    # a brand-new user id (beyond the model) works with its own row
    ids_new, _ = model.recommend(10_000, row, N=6, recalculate_user=True)
    np.testing.assert_array_equal(ids_new, ids)


def test_fold_in_missing_is_a_clear_error():
    class NoFold(FactorModel):
        pass

    m = NoFold()
    m.user_factors = np.ones((3, 2), np.float32)
    m.item_factors = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="recalculate_user"):
        m.recommend(0, sp.csr_matrix(np.ones((1, 4), np.float32)), recalculate_user=True)
    with pytest.raises(ValueError, match="recalculate_item"):
        m.similar_items(0, recalculate_item=True, item_users=sp.csr_matrix(np.ones((1, 3), np.float32)))


def test_padding_when_fewer_items_are_eligible():
    model, _ = make(3, n_users=4, n_items=6)
    seen = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 0], [0] * 6, [1] * 6, [1, 0, 1, 0, 1, 0]],
                                  dtype=np.float32))
    ids, scores = model.recommend(np.arange(4), seen, N=4)
    assert ids.shape == (4, 4)
    assert list(ids[0]) == [5, -1, -1, -1]
    assert (ids[1] >= 0).all()
    assert (ids[2] == -1).all() and np.isneginf(scores[2]).all()
    assert set(ids[3][:3]) == {1, 3, 5} and ids[3][3] == -1
    one, one_scores = model.recommend(2, seen, N=4)
    assert one.shape == (0,) and one_scores.shape == (0,)
    wide, _ = model.recommend(np.arange(4), seen, N=100)
    assert wide.shape == (4, 6)


def cosine_reference(F, q, N, ok):
    Fn = F.astype(np.float64)
    norms = np.linalg.norm(Fn, axis=1)
    Fn = np.divide(Fn, norms[:, None], out=np.zeros_like(Fn), where=norms[:, None] > 0)
    S = Fn @ Fn[q]
    ok = ok.copy()
    first = []
    if ok[q]:
        first = [q]
        ok[q] = False
    ids, _ = ref_rank(S, ok, N - len(first))
    return np.concatenate([first, ids]).astype(int), S


def test_similar_items_cosine_and_self_first():
    model, _ = make(4, n_items=80)
    model.item_factors[10] = model.item_factors[3] * 2  # same direction as item 3, lower id
    ok = np.ones(80, bool)
    ids, scores = model.similar_items(10, N=7)
    r_ids, S = cosine_reference(model.item_factors, 10, 7, ok)
    assert ids[0] == 10 and scores[0] == 1.0 and ids[1] == 3
    np.testing.assert_array_equal(ids, r_ids)
    np.testing.assert_allclose(scores[1:], S[ids[1:]], atol=1e-5)
    assert scores.max() <= 1.0 and np.all(np.diff(scores) <= 0)
    # filtered query: not returned
    ids_f, _ = model.similar_items(10, N=7, filter_items=[10])
    assert 10 not in ids_f and ids_f[0] == 3
    ids_a, _ = model.similar_items(10, N=7, items=[1, 2, 3, 40])
    assert set(ids_a) == {1, 2, 3, 40} and ids_a[0] == 3
    batch, bscores = model.similar_items([10, 0, 79], N=7)
    np.testing.assert_array_equal(batch[0], ids)
    assert list(batch[:, 0]) == [10, 0, 79]


@pytest.mark.parametrize("integer", [False, True])
def test_similar_items_for_every_item_matches_one_by_one(integer):
    # All items in order take the kernel's symmetric path (each pair scored once); a
    # shuffled batch takes the general one.  Same ids and score bits on every SIMD path
    # and thread count; integer factors and duplicated rows make exact ties.
    model, _ = make(9, n_items=300, f=16, integer=integer)
    model.item_factors[40] = model.item_factors[7]
    model.item_factors[250] = model.item_factors[7]
    everything = np.arange(300)
    perm = np.random.default_rng(0).permutation(300)
    want_ids, want_sc = model.similar_items(perm, N=12)
    inv = np.argsort(perm)
    want_ids, want_sc = want_ids[inv], want_sc[inv]
    ids7, _ = model.similar_items(7, N=3)
    assert list(ids7) == [7, 40, 250]
    before = tastemaker.simd_path()
    try:
        for path in tastemaker._core.simd_available():
            tastemaker.set_simd_path(path)
            for threads in (1, 2):
                model.num_threads = threads
                ids, sc = model.similar_items(everything, N=12)
                np.testing.assert_array_equal(ids, want_ids)
                np.testing.assert_array_equal(sc, want_sc)
    finally:
        tastemaker.set_simd_path(before)
        model.num_threads = 0
    Fn = model.item_factors / np.linalg.norm(model.item_factors, axis=1)[:, None]
    for q in (0, 7, 299):
        S = Fn @ Fn[q]
        ok = np.ones(300, bool)
        ok[q] = False
        r_ids, _ = ref_rank(S, ok, 11)
        if not integer:  # float rounding may reorder exact-in-theory ties of integers
            np.testing.assert_array_equal(want_ids[q, 1:], r_ids)
        np.testing.assert_allclose(want_sc[q, 1:], S[want_ids[q, 1:]], atol=1e-5)


def test_similar_users_and_zero_vectors():
    model, _ = make(5, n_users=30)
    model.user_factors[7] = 0.0
    # a zero vector has no direction: no results for it, and never a result for others
    ids, scores = model.similar_users(7, N=5)
    assert ids.size == 0 and scores.size == 0
    batch, _ = model.similar_users(np.arange(30), N=30)
    assert (batch[7] == -1).all() and not (batch == 7).any()
    assert ((batch >= 0).sum(axis=1)[np.arange(30) != 7] == 29).all()
    ids, scores = model.similar_users(2, N=30, filter_users=[0, 1], users=np.arange(20))
    assert len(ids) == 17 and ids[0] == 2 and not np.isin(ids, [0, 1, 7]).any()
    r_ids, _ = cosine_reference(model.user_factors, 2, 30,
                                np.isin(np.arange(30), np.arange(2, 20)) & (np.arange(30) != 7))
    np.testing.assert_array_equal(ids, r_ids)


def test_similar_items_recalculate():
    class Fold(Toy):
        def _fold_in_items(self, item_users):
            m = sp.csr_matrix(item_users)
            return np.ascontiguousarray(m @ self.user_factors, dtype=np.float32)

    base, ui = make(6)
    model = Fold(base.user_factors, base.item_factors)
    iu = ui.T.tocsr()
    iu.sort_indices()
    ids, scores = model.similar_items(5, N=4, recalculate_item=True, item_users=iu)
    q = (iu[5] @ model.user_factors)[0]
    Fn = model.item_factors / np.linalg.norm(model.item_factors, axis=1)[:, None]
    S = Fn @ (q / np.linalg.norm(q))
    r_ids, _ = ref_rank(S, np.ones(len(S), bool), 4)
    np.testing.assert_array_equal(ids, r_ids)


def test_threads_and_simd_paths_agree():
    model, ui = make(7, n_users=300, n_items=700, f=32)
    users = np.arange(300)
    expected = model.recommend(users, ui, N=10)
    model.num_threads = 1
    one = model.recommend(users, ui, N=10)
    model.num_threads = 2
    two = model.recommend(users, ui, N=10)
    for got in (one, two):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    before = tastemaker.simd_path()
    try:
        for isa in tastemaker._core.simd_available():
            tastemaker.set_simd_path(isa)
            got = model.recommend(users[:40], ui[:40], N=10)
            np.testing.assert_array_equal(got[0], expected[0][:40])
            np.testing.assert_array_equal(got[1], expected[1][:40])
    finally:
        tastemaker.set_simd_path(before)

    out = {}

    def work(t):
        out[t] = [model.recommend(users, ui, N=10) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for res in out.values():
        for ids, scores in res:
            np.testing.assert_array_equal(ids, expected[0])
            np.testing.assert_array_equal(scores, expected[1])


def test_validation_errors():
    model, ui = make(9, n_users=10, n_items=20)
    with pytest.raises(ValueError, match="not fitted"):
        Toy().recommend(0, ui)
    with pytest.raises(ValueError, match="not fitted"):
        Toy().similar_items(0)
    with pytest.raises(ValueError, match="N"):
        model.recommend(0, ui, N=0)
    with pytest.raises(ValueError, match="N"):
        model.similar_items(0, N=-3)
    with pytest.raises(ValueError, match="N"):
        model.recommend(0, ui, N=2.5)
    with pytest.raises(ValueError, match="userid"):
        model.recommend(10, ui)
    with pytest.raises(ValueError, match="userid"):
        model.recommend(-1, ui)
    with pytest.raises(ValueError, match="userid"):
        model.recommend(np.array([0.5]), ui)
    with pytest.raises(ValueError, match="userid"):
        model.recommend(np.zeros((2, 2), int), ui)
    with pytest.raises(ValueError, match="itemid"):
        model.similar_items(20)
    with pytest.raises(ValueError, match="userid"):
        model.similar_users(10)
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, None)
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, ui.toarray())
    with pytest.raises(ValueError, match="user_items"):
        model.recommend([0, 1, 2], ui[:5])
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, ui[:, :5])
    bad = ui[0].copy()
    bad.data[:] = np.nan
    with pytest.raises(ValueError, match="user_items"):
        model.recommend(0, bad)
    unsorted = sp.csr_matrix((np.ones(2, np.float32), np.array([5, 1]), np.array([0, 2])),
                             shape=(1, 20))
    with pytest.raises(ValueError, match="user_items.*unsorted"):
        model.recommend(0, unsorted)
    with pytest.raises(ValueError, match="filter_items"):
        model.recommend(0, ui, filter_items=[20])
    with pytest.raises(ValueError, match="filter_items"):
        model.recommend(0, ui, filter_items=[[1, 2]])
    with pytest.raises(ValueError, match="items"):
        model.recommend(0, ui, items=[1.5])
    with pytest.raises(ValueError, match="filter_users"):
        model.similar_users(0, filter_users=[-1])
    with pytest.raises(ValueError, match="filter_already_liked_items"):
        model.recommend(0, ui, filter_already_liked_items="yes")
    with pytest.raises(ValueError, match="num_threads"):
        Toy(model.user_factors, model.item_factors, num_threads=-1).recommend(0, ui)
    nan_model = Toy(model.user_factors.copy(), model.item_factors.copy())
    nan_model.item_factors[3, 1] = np.nan
    with pytest.raises(ValueError, match="item_factors"):
        nan_model.recommend(0, ui)
    with pytest.raises(ValueError, match="item_factors"):
        nan_model.similar_items(0)
    huge = Toy(model.user_factors * 1e20, model.item_factors * 1e20)
    with pytest.raises(ValueError, match="overflow"):
        huge.recommend(0, ui)
    mismatched = Toy(model.user_factors, model.item_factors[:, :3].copy())
    with pytest.raises(ValueError, match="item_factors"):
        mismatched.recommend(0, ui)


def test_empty_allow_list_and_float64_factors():
    model, ui = make(10, n_users=5, n_items=9)
    ids, scores = model.recommend(0, ui, items=[])
    assert ids.shape == (0,)
    ids, scores = model.recommend([0, 1], ui, items=np.array([], dtype=int))
    assert ids.shape == (2, 0)
    m64 = Toy(model.user_factors.astype(np.float64), model.item_factors.astype(np.float64))
    np.testing.assert_array_equal(m64.recommend(0, ui)[0], model.recommend(0, ui)[0])


def test_cosine_of_tiny_and_huge_vectors():
    model, _ = make(11, n_items=40)
    V = model.item_factors
    ref_ids, _ = model.similar_items(np.arange(40), N=5)
    for factor in (1e-30, 1e25):
        scaled = Toy(model.user_factors, np.ascontiguousarray(V * np.float32(factor)))
        ids, scores = scaled.similar_items(np.arange(40), N=5)
        np.testing.assert_array_equal(ids, ref_ids)
        assert np.isfinite(scores).all() and scores.max() <= 1.0


def test_nan_in_any_factor_is_named():
    model, ui = make(12, n_users=6, n_items=9)
    bad_users = Toy(model.user_factors.copy(), model.item_factors)
    bad_users.user_factors[2, 0] = np.inf
    with pytest.raises(ValueError, match="user_factors"):
        bad_users.recommend(2, ui)
    with pytest.raises(ValueError, match="user_factors"):
        bad_users.similar_users(0)
    bad_users.recommend(1, ui)  # other users' rows are fine


def test_empty_batches_and_numpy_scalar_ids():
    model, ui = make(13)
    assert model.recommend([], ui[:0], N=3)[0].shape == (0, 3)
    assert model.similar_items(np.array([], dtype=np.int64), N=3)[1].shape == (0, 3)
    ids, _ = model.recommend(np.int32(2), ui, N=3)
    np.testing.assert_array_equal(ids, model.recommend(2, ui, N=3)[0])
    assert model.similar_users(np.int64(3), N=2)[0][0] == 3
