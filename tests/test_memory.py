"""tastemaker._memory.zeros: a drop-in for np.zeros whose large arrays sit on huge pages."""

import numpy as np
from hypothesis import given, settings, strategies as st

from tastemaker import _memory


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 300), cols=st.integers(1, 70),
       dtype=st.sampled_from([np.float32, np.float64, np.int32]))
def test_matches_numpy_zeros_small(rows, cols, dtype):
    a = _memory.zeros((rows, cols), dtype)
    b = np.zeros((rows, cols), dtype)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
    np.testing.assert_array_equal(a, b)


def test_large_array_is_usable_and_independent():
    n = _memory.HUGE_PAGE_MIN_BYTES // (4 * 64) + 17  # just past the threshold
    a = _memory.zeros((n, 64))
    b = _memory.zeros((n, 64))
    assert a.shape == (n, 64) and a.dtype == np.float32 and not a.any()
    assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
    a[:] = 1.5
    assert not b.any()  # separate memory
    np.random.default_rng(0).random(dtype=np.float32, out=b)
    ref = np.random.default_rng(0).random((n, 64), dtype=np.float32)
    np.testing.assert_array_equal(b, ref)
    view = a[10:20]
    del a
    assert float(view.sum()) == 1.5 * 10 * 64  # a view keeps the mapping alive
