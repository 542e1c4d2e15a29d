"""tastemaker._memory.zeros: a drop-in for np.zeros whose large arrays sit on huge pages."""

import mmap

import numpy as np
from tastemaker import _memory


def _huge_pages_work() -> bool:
    if _memory._HUGE is None:
        return False
    try:
        mmap.mmap(-1, 1 << 21).madvise(_memory._HUGE)
    except (OSError, ValueError):
        return False
    return True


def test_large_array_is_usable_and_independent():
    n = _memory.HUGE_PAGE_MIN_BYTES // (4 * 64) + 17  # just past the threshold
    a = _memory.zeros((n, 64))
    b = _memory.zeros((n, 64))
    # past the threshold it really is the huge-page mapping (the test used to stay below)
    assert _mmap_backed(a) == _huge_pages_work()
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


def _mmap_backed(a) -> bool:
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, mmap.mmap) or isinstance(getattr(base, "obj", None), mmap.mmap)


def test_small_array_is_plain_numpy():
    a = _memory.zeros((3, 5), np.float64)
    assert not _mmap_backed(a) and a.dtype == np.float64 and not a.any()
