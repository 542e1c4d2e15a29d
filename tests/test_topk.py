"""The native exact top-k kernel against a NumPy reference."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

import tastemaker
from tastemaker import _core


def reference_topk(Q, I, k, seen=None, allow=None, deny=None):
    """Exact (score desc, id asc) top-k with float64 scores; padding -1 / -inf."""
    nq, ni = Q.shape[0], I.shape[0]
    S = Q.astype(np.float64) @ I.astype(np.float64).T
    ids = np.full((nq, k), -1, dtype=np.int64)
    scores = np.full((nq, k), -np.inf)
    ok_items = np.ones(ni, dtype=bool)
    if allow is not None:
        ok_items[:] = False
        ok_items[allow] = True
    if deny is not None:
        ok_items[deny] = False
    for q in range(nq):
        ok = ok_items.copy()
        if seen is not None:
            ok[seen[q]] = False
        cand = np.flatnonzero(ok)
        order = np.lexsort((cand, -S[q, cand]))[:k]
        ids[q, : len(order)] = cand[order]
        scores[q, : len(order)] = S[q, cand[order]]
    return ids, scores


def as_csr(seen, ni):
    indptr = np.zeros(len(seen) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(s) for s in seen])
    indices = np.concatenate([np.sort(s) for s in seen] + [np.empty(0, int)]).astype(np.int32)
    return indptr, indices


@st.composite
def problems(draw):
    nq = draw(st.integers(0, 40))
    ni = draw(st.integers(0, 90))
    d = draw(st.integers(1, 9))
    k = draw(st.integers(0, 100))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    # small integers: every score is exact in float32, so ids must match exactly, ties included
    Q = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    I = rng.integers(-2, 3, size=(ni, d)).astype(np.float32)
    seen = [rng.choice(ni, size=rng.integers(0, ni + 1), replace=False) if ni else
            np.empty(0, int) for _ in range(nq)]
    allow = rng.choice(ni, size=rng.integers(0, ni + 1)) if ni and draw(st.booleans()) else None
    deny = rng.choice(ni, size=rng.integers(0, ni + 1)) if ni and draw(st.booleans()) else None
    return Q, I, k, seen, allow, deny


def run_kernel(Q, I, k, seen, allow, deny, num_threads=0):
    indptr, indices = as_csr(seen, I.shape[0]) if seen is not None else (None, None)
    a = None if allow is None else np.asarray(allow, dtype=np.int32)
    d = None if deny is None else np.asarray(deny, dtype=np.int32)
    return _core.topk_inner_product(Q, I, k, indptr, indices, a, d, num_threads)


@pytest.fixture(params=_core.simd_available())
def simd(request):
    before = tastemaker.simd_path()
    tastemaker.set_simd_path(request.param)
    yield request.param
    tastemaker.set_simd_path(before)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_matches_reference_exactly_on_every_path(problem):
    Q, I, k, seen, allow, deny = problem
    ref_ids, ref_scores = reference_topk(Q, I, k, seen, allow, deny)
    before = tastemaker.simd_path()
    try:
        for isa in _core.simd_available():
            tastemaker.set_simd_path(isa)
            ids, scores = run_kernel(Q, I, k, seen, allow, deny)
            assert ids.dtype == np.int32 and scores.dtype == np.float32
            np.testing.assert_array_equal(ids, ref_ids)
            np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
    finally:
        tastemaker.set_simd_path(before)


def random_problem(seed, nq, ni, d, density=0.05):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((nq, d), dtype=np.float32)
    I = rng.standard_normal((ni, d), dtype=np.float32)
    seen = sp.random(nq, ni, density=density, format="csr", random_state=seed)
    seen.sort_indices()
    return Q, I, seen


@pytest.mark.parametrize("nq", [1, 5, 15, 16, 97, 300])
def test_float_scores_near_reference_and_optimal(simd, nq):
    Q, I, seen = random_problem(1, nq, 1000, 37)
    k = 20
    ids, scores = _core.topk_inner_product(Q, I, k, seen.indptr.astype(np.int64),
                                          seen.indices.astype(np.int32))
    S = Q.astype(np.float64) @ I.T.astype(np.float64)
    for q in range(nq):
        row_seen = seen.indices[seen.indptr[q]:seen.indptr[q + 1]]
        assert not np.isin(ids[q], row_seen).any()
        assert len(np.unique(ids[q])) == k
        np.testing.assert_allclose(scores[q], S[q, ids[q]], rtol=1e-5, atol=1e-4)
        assert np.all(np.diff(scores[q]) <= 0)
        eligible = np.setdiff1d(np.arange(1000), np.concatenate([row_seen, ids[q]]))
        assert S[q, eligible].max() <= scores[q, -1] + 1e-4


def test_simd_paths_bit_identical_and_batch_equals_single():
    Q, I, seen = random_problem(2, 64, 777, 64)
    indptr, indices = seen.indptr.astype(np.int64), seen.indices.astype(np.int32)
    before = tastemaker.simd_path()
    results = []
    try:
        for isa in _core.simd_available():
            tastemaker.set_simd_path(isa)
            results.append(_core.topk_inner_product(Q, I, 15, indptr, indices))
            # a single query takes the unpacked path; it must agree with the batch row
            for q in (0, 13, 63):
                row = np.array([0, indptr[q + 1] - indptr[q]], dtype=np.int64)
                one = _core.topk_inner_product(Q[q:q + 1], I, 15, row, indices[indptr[q]:indptr[q + 1]])
                np.testing.assert_array_equal(one[0][0], results[-1][0][q])
                np.testing.assert_array_equal(one[1][0], results[-1][1][q])
    finally:
        tastemaker.set_simd_path(before)
    for ids, scores in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


def test_thread_count_does_not_change_results():
    Q, I, seen = random_problem(3, 500, 2000, 16)
    indptr, indices = seen.indptr.astype(np.int64), seen.indices.astype(np.int32)
    a = _core.topk_inner_product(Q, I, 10, indptr, indices, None, None, 1)
    b = _core.topk_inner_product(Q, I, 10, indptr, indices, None, None, 2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_concurrent_python_threads_agree():
    Q, I, seen = random_problem(4, 300, 3000, 32)
    indptr, indices = seen.indptr.astype(np.int64), seen.indices.astype(np.int32)
    expected = _core.topk_inner_product(Q, I, 10, indptr, indices)
    out = [None] * 4

    def work(t):
        out[t] = [_core.topk_inner_product(Q, I, 10, indptr, indices) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for res in out:
        for ids, scores in res:
            np.testing.assert_array_equal(ids, expected[0])
            np.testing.assert_array_equal(scores, expected[1])


def test_long_deny_list_and_allow_list_paths():
    Q, I, _ = random_problem(5, 40, 500, 8)
    deny = np.arange(0, 500, 2, dtype=np.int32)  # long: the kernel scores only the rest
    ids, _ = _core.topk_inner_product(Q, I, 30, None, None, None, deny)
    ref, _ = reference_topk(Q, I, 30, deny=deny)
    np.testing.assert_array_equal(ids, ref)
    allow = np.array([499, 3, 3, 250], dtype=np.int32)
    ids, scores = _core.topk_inner_product(Q, I, 6, None, None, allow, np.array([250], np.int32))
    ref, _ = reference_topk(Q, I, 6, allow=allow, deny=[250])
    np.testing.assert_array_equal(ids, ref)
    assert (ids[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()
    ids, _ = _core.topk_inner_product(Q, I, 3, None, None, np.empty(0, np.int32))
    assert (ids == -1).all()


def test_kernel_rejects_bad_input():
    Q = np.ones((3, 4), np.float32)
    I = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="queries"):
        _core.topk_inner_product(Q.astype(np.float64), I, 2)
    with pytest.raises(ValueError, match="items"):
        _core.topk_inner_product(Q, np.ones((5, 3), np.float32), 2)
    with pytest.raises(ValueError, match="k"):
        _core.topk_inner_product(Q, I, -1)
    with pytest.raises(ValueError, match="exclude_indptr"):
        _core.topk_inner_product(Q, I, 2, np.array([0, 1, 2], np.int64), np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="exclude_indptr"):
        _core.topk_inner_product(Q, I, 2, np.array([0, 2, 1, 2], np.int64), np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="exclude_indptr"):
        _core.topk_inner_product(Q, I, 2, np.array([0, 1, 2, 9], np.int64), np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="not sorted"):
        _core.topk_inner_product(Q, I, 2, np.array([0, 2, 2, 2], np.int64), np.array([3, 1], np.int32))
    with pytest.raises(ValueError, match="allow"):
        _core.topk_inner_product(Q, I, 2, None, None, np.array([5], np.int32))
    with pytest.raises(ValueError, match="deny"):
        _core.topk_inner_product(Q, I, 2, None, None, None, np.array([-1], np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.topk_inner_product(np.ones((4, 3), np.float32).T, I, 2)


def test_non_finite_or_overflowing_values_rejected_on_every_path(simd):
    rng = np.random.default_rng(9)
    Q = rng.standard_normal((20, 19), dtype=np.float32)
    I = rng.standard_normal((70, 19), dtype=np.float32)
    for pos in [(0, 0), (69, 18), (33, 7)]:
        for value in (np.nan, np.inf, -np.inf):
            bad = I.copy()
            bad[pos] = value
            with pytest.raises(ValueError, match="items: contains NaN or inf"):
                _core.topk_inner_product(Q, bad, 3)
            badq = Q.copy()
            badq[pos[0] % 20, pos[1]] = value
            with pytest.raises(ValueError, match="queries: contains NaN or inf"):
                _core.topk_inner_product(badq, I, 3)
    with pytest.raises(ValueError, match="overflow"):
        _core.topk_inner_product(Q * np.float32(1e19), I * np.float32(1e19), 3)
    ids, _ = _core.topk_inner_product(Q * np.float32(1e15), I * np.float32(1e15), 3)
    np.testing.assert_array_equal(ids, _core.topk_inner_product(Q, I, 3)[0])


@settings(max_examples=40, deadline=None)
@given(problems(), st.booleans())
def test_packed_items_change_nothing(problem, single):
    # a model's cached PackedItems: the same ids and score bits as packing per call,
    # for one query (the service path) and for batches
    Q, I, k, seen, allow, deny = problem
    if single:
        Q, seen = Q[:1], seen[:1]
    if I.shape[0] == 0:
        return
    rng = np.random.default_rng(Q.shape[0] * 1000 + I.shape[0])
    Qf = Q + rng.standard_normal(Q.shape, dtype=np.float32)  # inexact scores
    If = I + rng.standard_normal(I.shape, dtype=np.float32)
    packed = _core.PackedItems(If)
    assert (packed.n_items, packed.dim) == If.shape
    assert packed.nbytes == -(-If.shape[0] // 32) * 32 * If.shape[1] * 4
    # the single-query pre-filter's int8 copy: dim rounded up to 4, + 12 bytes per item
    assert packed.prefilter_nbytes == -(-If.shape[0] // 32) * 32 * (-(-If.shape[1] // 4) * 4 + 12)
    want = run_kernel(Qf, If, k, seen, allow, deny)
    indptr, indices = as_csr(seen, I.shape[0])
    a = None if allow is None else np.asarray(allow, dtype=np.int32)
    d = None if deny is None else np.asarray(deny, dtype=np.int32)
    got = _core.topk_inner_product(Qf, If, k, indptr, indices, a, d, 0, packed)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1].tobytes() == want[1].tobytes()


def test_single_query_bit_identical_on_every_path(simd):
    rng = np.random.default_rng(12)
    Q = rng.standard_normal((5, 64), dtype=np.float32)
    I = rng.standard_normal((3001, 64), dtype=np.float32)
    packed = _core.PackedItems(I)
    batch = _core.topk_inner_product(Q, I, 50)
    for q in range(5):
        for pk in (None, packed):
            ids, scores = _core.topk_inner_product(Q[q:q + 1], I, 50, packed=pk)
            np.testing.assert_array_equal(ids[0], batch[0][q])
            assert scores[0].tobytes() == batch[1][q].tobytes()


def test_packed_items_rejects_bad_input():
    with pytest.raises(ValueError, match="items: contains NaN"):
        _core.PackedItems(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="items"):
        _core.PackedItems(np.ones((3, 2), np.float64))
    with pytest.raises(ValueError, match="items"):
        _core.PackedItems(np.ones((3, 0), np.float32))
    with pytest.raises(ValueError, match="items"):
        _core.PackedItems(np.ones(3, np.float32))
    packed = _core.PackedItems(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="items: packed for 4 x 3"):
        _core.topk_inner_product(np.ones((1, 3), np.float32), np.ones((5, 3), np.float32), 2,
                                 packed=packed)
    with pytest.raises(TypeError):
        _core.topk_inner_product(np.ones((1, 3), np.float32), np.ones((4, 3), np.float32), 2,
                                 packed="not packed")


def test_self_join_prefilter_override_same_results_on_every_path():
    """topk_inner_product(X, X) with each row excluding itself is the self-join
    (similar_items for every item); its int8 pre-filter (self_bounds: vpdpbusd on
    avx512vnni) is on or off per SIMD path by measurement, and `self_prefilter` forces it
    for A/B runs: the ranking of the float64 reference and the same ids and score bits in
    every variant, on every path, at 1 and 2 threads."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((700, 20), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X[300] = X[12]  # an exact tie
    S = X.astype(np.float64) @ X.T.astype(np.float64)
    np.fill_diagonal(S, -np.inf)
    ref = np.argsort(-S, axis=1, kind="stable")[:, :9]
    own = (np.arange(701, dtype=np.int64), np.arange(700, dtype=np.int32))  # self excluded
    want = None
    before = tastemaker.simd_path()
    try:
        for isa in _core.simd_available():
            tastemaker.set_simd_path(isa)
            for mode in (-1, 0, 1):
                for threads in (1, 2):
                    got = _core.topk_inner_product(X, X, 9, *own, num_threads=threads,
                                                   self_prefilter=mode)
                    if want is None:
                        want = got
                        close = np.abs(np.take_along_axis(S, got[0], 1) - np.take_along_axis(S, ref, 1))
                        assert close.max() < 1e-5  # the same ranking as float64, up to rounding
                        assert not (got[0] == np.arange(700)[:, None]).any()
                    np.testing.assert_array_equal(got[0], want[0])
                    assert got[1].tobytes() == want[1].tobytes(), (isa, mode, threads)
    finally:
        tastemaker.set_simd_path(before)
    for bad in (-2, 2):
        with pytest.raises(ValueError, match="self_prefilter: expected -1"):
            _core.topk_inner_product(X, X, 9, *own, self_prefilter=bad)


@st.composite
def batch_problems(draw):
    # more items than a block's first chunk (32 panels of 32), so the batch scan's int8
    # pre-filter bounds the rest; small integers (ties, exact scores) or normal floats,
    # zero rows, huge-but-valid or tiny magnitudes
    nq = draw(st.integers(16, 60))
    ni = draw(st.integers(1025, 1400))
    d = draw(st.integers(1, 70))
    k = draw(st.integers(1, 50))
    kind = draw(st.sampled_from(["ints", "normal", "huge", "tiny"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if kind == "ints":
        Q = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
        I = rng.integers(-2, 3, size=(ni, d)).astype(np.float32)
    else:
        Q = rng.standard_normal((nq, d), dtype=np.float32)
        I = rng.standard_normal((ni, d), dtype=np.float32)
        if kind == "huge":  # just inside the overflow bound dim * max|q| * max|i| <= 1e37
            Q *= np.float32(1e37 / (8 * d * 1e18 * np.abs(I).max() * np.abs(Q).max()))
            I *= np.float32(1e18)
        elif kind == "tiny":
            Q *= np.float32(2.0 ** -60)
    Q[:: 7] = 0.0
    I[3:: 11] = 0.0
    seen = [rng.choice(ni, size=rng.integers(0, 200), replace=False) for _ in range(nq)]
    deny = rng.choice(ni, size=rng.integers(0, 100)).astype(np.int32) if draw(st.booleans()) else None
    return Q, I, k, seen, deny


@settings(max_examples=25, deadline=None)
@given(batch_problems(), st.integers(1, 3), st.booleans())
def test_batch_prefilter_equals_the_float32_scan_on_every_path(problem, threads, packed):
    # the int8 pre-filter (user_prefilter=1) bounds every pair past a block's first chunk and
    # scores exactly only those above a user's bar: the ids and score bits of the float32
    # scan (user_prefilter=0), and of the path's default, on every path and thread count
    Q, I, k, seen, deny = problem
    indptr, indices = as_csr(seen, I.shape[0])
    pk = _core.PackedItems(I, 1) if packed else None
    before = tastemaker.simd_path()
    try:
        for isa in _core.simd_available():
            tastemaker.set_simd_path(isa)
            want = _core.topk_inner_product(Q, I, k, indptr, indices, None, deny, threads, pk,
                                            user_prefilter=0)
            for pre in (1, -1):
                got = _core.topk_inner_product(Q, I, k, indptr, indices, None, deny, threads, pk,
                                               user_prefilter=pre)
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1].view(np.uint32), want[1].view(np.uint32))
    finally:
        tastemaker.set_simd_path(before)


def test_batch_prefilter_matches_numpy_and_counts_its_work(simd):
    # small integers: exact scores, so the NumPy reference gives the same ids and scores;
    # the counters say most pairs were bounded in int8 and few scored exactly
    rng = np.random.default_rng(5)
    Q = rng.integers(-3, 4, size=(200, 24)).astype(np.float32)
    I = rng.integers(-3, 4, size=(3000, 24)).astype(np.float32)
    seen = [rng.choice(3000, size=rng.integers(0, 300), replace=False) for _ in range(200)]
    indptr, indices = as_csr(seen, 3000)
    ref_ids, ref_scores = reference_topk(Q, I, 10, seen)
    for pre in (0, 1):
        ids, scores, stats = _core.topk_inner_product(Q, I, 10, indptr, indices, None, None, 2,
                                                      user_prefilter=pre, stats=True)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
        assert set(stats) == {"bounded", "exact", "single", "tile_rows"}
        if pre == 0:
            assert stats["bounded"] == 0 and stats["exact"] >= 200 * 3000
        else:
            assert 0 < stats["bounded"] <= 200 * 3000 and stats["exact"] < 200 * 3000
            assert stats["exact"] >= stats["single"] + 32 * stats["tile_rows"]


def test_user_prefilter_rejects_bad_values():
    Q = np.ones((3, 4), np.float32)
    I = np.ones((5, 4), np.float32)
    for bad in (2, -2, 7):
        with pytest.raises(ValueError, match="user_prefilter: expected -1"):
            _core.topk_inner_product(Q, I, 2, user_prefilter=bad)
