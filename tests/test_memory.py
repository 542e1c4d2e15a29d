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


def _mapping_of(a):
    """(permissions, THPeligible) of the /proc/self/smaps mapping holding ``a``."""
    import re

    addr = a.ctypes.data
    with open("/proc/self/smaps") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if m and int(m.group(1), 16) <= addr < int(m.group(2), 16):
            eligible = next((ln.split()[1] for ln in lines[i + 1:i + 40]
                             if ln.startswith("THPeligible:")), None)
            return m.group(3), eligible
    return None, None


def test_large_array_is_private_memory_that_may_take_huge_pages():
    """A shared anonymous mapping (mmap.mmap(-1, n) without flags) is shmem: the kernel
    ignores MADV_HUGEPAGE there unless shmem_enabled allows it, so the arrays were on
    4 KiB pages after all.  Private memory follows transparent_hugepage/enabled."""
    import os

    import pytest

    if not os.path.exists("/proc/self/smaps") or not _huge_pages_work():
        pytest.skip("no /proc/self/smaps or no MADV_HUGEPAGE here")
    a = _memory.zeros((_memory.HUGE_PAGE_MIN_BYTES // 4 + 1024,))
    perms, eligible = _mapping_of(a)
    assert perms is not None and perms.endswith("p"), perms  # private, not shared
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
        mode = fh.read()
    if "[never]" not in mode and eligible is not None:
        assert eligible == "1"


def _mmap_backed(a) -> bool:
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, mmap.mmap) or isinstance(getattr(base, "obj", None), mmap.mmap)


def test_small_array_is_plain_numpy():
    a = _memory.zeros((3, 5), np.float64)
    assert not _mmap_backed(a) and a.dtype == np.float64 and not a.any()


def test_aligned_copies_only_what_does_not_start_on_a_cache_line():
    from tastemaker._memory import CACHE_LINE, aligned, zeros

    a = zeros((1000, 64))
    a[:] = np.arange(64000, dtype=np.float32).reshape(1000, 64)
    assert aligned(a) is a
    raw = np.zeros(64000 + 16, dtype=np.float32)
    off = raw[(-raw.ctypes.data % CACHE_LINE) // 4 + 4:][:64000].reshape(1000, 64)  # 16 bytes in
    off[:] = a
    assert off.ctypes.data % CACHE_LINE == 16
    b = aligned(off)
    assert b is not off and b.ctypes.data % CACHE_LINE == 0 and b.flags.c_contiguous
    np.testing.assert_array_equal(b, a)
    strided = a[:, ::2]
    c = aligned(strided)
    assert c.flags.c_contiguous and c.ctypes.data % CACHE_LINE == 0
    np.testing.assert_array_equal(c, strided)


def test_loaded_factors_start_on_a_cache_line(tmp_path):
    import scipy.sparse as sp

    from tastemaker import ALS
    from tastemaker._memory import CACHE_LINE

    m = sp.random(60, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    model = ALS(factors=16, iterations=2, random_state=0).fit(m, show_progress=False)
    model.save(tmp_path / "m.npz")
    loaded = ALS.load(tmp_path / "m.npz")
    for side in ("user_factors", "item_factors"):
        arr = getattr(loaded, side)
        assert arr.ctypes.data % CACHE_LINE == 0
        np.testing.assert_array_equal(arr, getattr(model, side))


def test_unpickled_and_copied_factors_start_on_a_cache_line():
    """Regression: pickle restores NumPy arrays 16 bytes into a cache line; a factor
    row across two lines costs the gathering kernels two loads per vector."""
    import copy
    import pickle

    import scipy.sparse as sp

    from tastemaker import ALS
    from tastemaker._memory import CACHE_LINE

    m = sp.random(60, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    model = ALS(factors=16, iterations=2, random_state=0).fit(m, show_progress=False)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        for side in ("user_factors", "item_factors"):
            arr = getattr(clone, side)
            assert arr.ctypes.data % CACHE_LINE == 0 and arr.flags.c_contiguous
            np.testing.assert_array_equal(arr, getattr(model, side))
        ids, scores = clone.recommend(0, m[0], N=5)
        ref_ids, ref_scores = model.recommend(0, m[0], N=5)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores)
