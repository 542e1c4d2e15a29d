import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker._validation import check_csr, check_dense, check_ids, check_int


def test_check_csr_canonical_dtypes_and_no_mutation():
    m = sp.random(5, 7, density=0.4, format="csr", random_state=0, dtype=np.float64)
    before = m.copy()
    out = check_csr(m, "user_items")
    assert out.dtype == np.float32 and out.indices.dtype == np.int32
    assert (m != before).nnz == 0
    np.testing.assert_allclose(out.toarray(), m.toarray(), rtol=1e-6)


def test_check_csr_errors_name_the_argument():
    with pytest.raises(ValueError, match="user_items: expected a scipy.sparse"):
        check_csr(np.zeros((2, 2)), "user_items")
    with pytest.raises(ValueError, match="user_items: matrix is empty"):
        check_csr(sp.csr_matrix((3, 3), dtype=np.float32), "user_items")
    bad = sp.csr_matrix(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        check_csr(bad, "user_items")
    unsorted = sp.csr_matrix((np.ones(2), np.array([1, 0]), np.array([0, 2])), shape=(1, 2))
    with pytest.raises(ValueError, match="unsorted"):
        check_csr(unsorted, "user_items")
    dup = sp.csr_matrix((np.ones(2), np.array([1, 1]), np.array([0, 2])), shape=(1, 2))
    with pytest.raises(ValueError, match="duplicate"):
        check_csr(dup, "user_items")
    with pytest.raises(ValueError, match=r"shape\[1\] == 3"):
        check_csr(sp.csr_matrix(np.ones((2, 2))), "user_items", shape=(None, 3))
    with pytest.raises(ValueError, match="negative"):
        check_csr(sp.csr_matrix(-np.ones((2, 2))), "x", allow_negative=False)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_check_csr_accepts_every_valid_matrix(n, m, seed):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, m)) < 0.5) * rng.random((n, m))
    dense[0, 0] = 1.0
    out = check_csr(sp.csr_matrix(dense), "x")
    np.testing.assert_allclose(out.toarray(), dense.astype(np.float32))


def test_check_ids_and_ints():
    ids, scalar = check_ids(3, "userid", 5)
    assert scalar and ids.tolist() == [3]
    with pytest.raises(ValueError, match="userid: id 5 out of range"):
        check_ids(5, "userid", 5)
    with pytest.raises(ValueError, match="userid: expected integer ids"):
        check_ids(np.array([1.0]), "userid", 5)
    with pytest.raises(ValueError, match="N: expected an int >= 1"):
        check_int(0, "N", minimum=1)
    with pytest.raises(ValueError, match="N: expected an int"):
        check_int(True, "N")
    with pytest.raises(ValueError, match="factors: contains NaN"):
        check_dense(np.array([[np.nan]]), "factors")


# ------------------------------------------------------------- crash regressions (issue 9)
def _valid_csr():
    return sp.csr_matrix(np.array([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]], dtype=np.float32))


def test_non_csr_out_of_range_index_is_a_value_error_not_a_crash():
    # scipy's tocsr() trusts the index arrays: validation must come before conversion
    csc = sp.csc_matrix((np.ones(1, np.float32), np.array([10**9]), np.array([0, 1])),
                        shape=(2, 1))
    with pytest.raises(ValueError, match=r"user_items: row index 1000000000 out of range"):
        check_csr(csc, "user_items")
    lil = sp.lil_matrix((2, 3), dtype=np.float32)
    lil.rows[0] = [10**9]
    lil.data[0] = [1.0]
    with pytest.raises(ValueError, match="column index 1000000000 out of range"):
        check_csr(lil, "user_items")
    coo = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([2]))), shape=(2, 3))
    coo.col[0] = 10**6
    with pytest.raises(ValueError, match="column index 1000000 out of range"):
        check_csr(coo, "user_items")
    coo = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([1]))), shape=(2, 3))
    coo.row[0] = -5
    with pytest.raises(ValueError, match="user_items: row index -5 out of range"):
        check_csr(coo, "user_items")


def test_unsigned_indptr_that_wraps_is_rejected():
    x = _valid_csr()
    x.indptr = np.array([0, 2**64 - 10**7, 3, x.nnz], dtype=np.uint64)
    with pytest.raises(ValueError, match="user_items: malformed"):
        check_csr(x, "user_items")
    x = _valid_csr()
    x.indptr = np.array([0, 3, 2, 4], dtype=np.uint32)  # decreasing, unsigned
    with pytest.raises(ValueError, match="indptr decreases"):
        check_csr(x, "user_items")
    # a valid matrix with unsigned index arrays is accepted and equal
    y = _valid_csr()
    y.indptr = y.indptr.astype(np.uint64)
    y.indices = y.indices.astype(np.uint32)
    np.testing.assert_array_equal(check_csr(y, "x").toarray(), _valid_csr().toarray())


def test_csc_and_coo_duplicates_are_summed():
    csc = sp.csc_matrix((np.array([1.0, 2.0, 5.0], np.float32), np.array([1, 1, 0]),
                         np.array([0, 2, 3])), shape=(2, 2))
    out = check_csr(csc, "x")
    np.testing.assert_array_equal(out.toarray(), [[0, 5], [3, 0]])
    assert out.has_canonical_format and np.all(np.diff(out.indptr) == [1, 1])
    coo = sp.coo_matrix((np.array([1.0, 1.0, 1.0]), (np.array([1, 0, 1]), np.array([2, 0, 2]))),
                        shape=(2, 3))
    np.testing.assert_array_equal(check_csr(coo, "x").toarray(), [[1, 0, 0], [0, 0, 2]])


def test_more_than_int32_columns_is_rejected():
    wide = sp.csr_matrix((np.ones(1, np.float32), np.array([0]), np.array([0, 1])),
                         shape=(1, 2**31))
    with pytest.raises(ValueError, match=r"user_items: shape .* too large"):
        check_csr(wide, "user_items")


def test_every_format_converts_to_the_same_canonical_csr():
    dense = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, -1, 0]], dtype=np.float32)
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia"):
        out = check_csr(sp.csr_matrix(dense).asformat(fmt), "x")
        assert out.dtype == np.float32 and out.indices.dtype == np.int32
        np.testing.assert_array_equal(out.toarray(), dense)


def test_id_error_is_both_value_error_and_index_error():
    from tastemaker import IdError

    assert issubclass(IdError, ValueError) and issubclass(IdError, IndexError)
    for exc in (ValueError, IndexError, IdError):
        with pytest.raises(exc, match="userid: id 9 out of range"):
            check_ids(9, "userid", 5)
    with pytest.raises(IndexError):
        check_ids(np.array([0, -1]), "userid", 5)


def test_absurd_thread_count_is_clamped_with_a_warning():
    from tastemaker._validation import check_num_threads, max_threads

    with pytest.warns(RuntimeWarning, match="num_threads=1000000000 is more than 4x"):
        assert check_num_threads(10**9) == max_threads()
    with pytest.warns(RuntimeWarning):
        assert check_num_threads(2**40) == max_threads()  # > int32: never reaches pybind
    assert check_num_threads(0) == 0 and check_num_threads(1) == 1
    with pytest.raises(ValueError, match="num_threads: expected an int >= 0"):
        check_num_threads(-1)
