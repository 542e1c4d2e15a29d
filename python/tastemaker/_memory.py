"""Allocation of the large arrays that the native kernels gather from at random.

ALS gathers one factor row of the other side per stored entry, at random, from arrays of
tens of megabytes (138k users x 64 factors is 35 MB).  With 4 KiB pages nearly every
gather also misses the TLB; on 2 MiB transparent huge pages the whole array needs a few
dozen TLB entries.  On Linux with transparent huge pages in ``madvise`` mode (the usual
default) nothing is huge unless asked for, so large factor matrices are allocated here
from an anonymous mapping marked ``MADV_HUGEPAGE``.  Measured on the ML-20M-sized
synthetic matrix (64 factors, 2 cores, AVX2): an ALS iteration went from about 1.27 s to
0.93 s.  Elsewhere (no ``MADV_HUGEPAGE``, small arrays) this is plain ``np.zeros``.
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["zeros", "aligned", "available_bytes", "check_fits"]

# below this, an array spans few pages anyway and a mapping per array is not worth it
HUGE_PAGE_MIN_BYTES = 4 << 20
CACHE_LINE = 64
_HUGE = getattr(mmap, "MADV_HUGEPAGE", None)


def zeros(shape, dtype=np.float32) -> np.ndarray:
    """A zero-filled, C-contiguous, writable array starting on a 64-byte cache line;
    large ones on transparent huge pages.

    The array owns its memory like any other (the mapping is freed with the last view of
    it), pickles, saves and slices as usual.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if _HUGE is None or nbytes < HUGE_PAGE_MIN_BYTES:
        return _aligned_zeros(shape, dtype, count)
    try:
        # private: mmap.mmap(-1, n) alone maps *shared* anonymous memory (shmem), which
        # follows transparent_hugepage/shmem_enabled (usually "never") and ignores the
        # advice: measured here, 4,314 page faults for 17 MB and no huge page at all
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buf.madvise(_HUGE)
    except (OSError, ValueError):  # no such advice on this kernel, or no memory map
        return _aligned_zeros(shape, dtype, count)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is C-contiguous and starts on a cache line, else a copy in
    ``zeros`` memory (aligned, and on huge pages when large).  For arrays that did not
    come from ``zeros``: NumPy's own (loaded from a file, unpickled) start 16 bytes into
    a line, and the ALS kernels gather their rows (see ``_aligned_zeros``)."""
    if a.flags.c_contiguous and a.ctypes.data % CACHE_LINE == 0:
        return a
    out = zeros(a.shape, a.dtype)
    out[...] = a
    return out


def _aligned_zeros(shape: tuple, dtype: np.dtype, count: int) -> np.ndarray:
    """np.zeros starting on a cache line (CACHE_LINE bytes).  NumPy aligns to 16 bytes
    only, and a factor row that straddles lines costs the kernels two loads per vector:
    measured at 64 factors on AVX-512, a CG half-step gathering from a 16-byte-offset
    matrix took 1.5x as long as from an aligned one."""
    raw = np.zeros(count * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def available_bytes() -> int | None:
    """Memory the process can still allocate without swapping: ``MemAvailable`` of
    ``/proc/meminfo`` (Linux), else free physical pages; None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(nbytes: int, name: str, what: str) -> None:
    """Raise ``ValueError`` naming ``name`` when ``nbytes`` cannot fit in available memory,
    before anything is allocated (a failed huge allocation would otherwise swap the
    machine to a halt or get the process killed)."""
    avail = available_bytes()
    if avail is not None and nbytes > avail:
        raise ValueError(f"{name}: {what} needs {nbytes / 2**30:.1f} GiB but only "
                         f"{avail / 2**30:.1f} GiB of memory is available")
