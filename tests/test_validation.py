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
