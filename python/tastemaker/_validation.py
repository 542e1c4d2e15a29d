"""Input validation shared by every public entry point.

Each helper raises ``ValueError`` whose message starts with the argument's name and
says what was expected and what was given.  Helpers return canonical forms (float32
C-contiguous arrays, CSR with sorted unique int32 indices) so the native core only
ever sees data it can trust.  They never modify the caller's data.
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import scipy.sparse as sp

__all__ = [
    "IdError",
    "check_int",
    "check_num_threads",
    "check_positive_int",
    "check_float",
    "check_csr",
    "check_dense",
    "check_ids",
    "check_random_state",
]


class IdError(ValueError, IndexError):
    """An id (user, item, row index) outside the valid range.

    Both a ``ValueError`` (tastemaker's convention for bad input) and an ``IndexError``
    (what the implicit library raises), like numpy's ``AxisError``, so code written for
    either keeps working.
    """


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {value}")
    return value


def max_threads() -> int:
    """The most threads a kernel starts: 4x the CPUs this process may use (at least 4)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(4, 4 * cpus)


def check_num_threads(value, name: str = "num_threads") -> int:
    """A thread count: 0 (the global setting) or a positive int.

    Counts above :func:`max_threads` (4x the CPU count) are clamped to it with a
    ``RuntimeWarning``: more threads than that only cost memory, and thread creation
    failing inside OpenMP ends the process with no Python exception.
    """
    n = check_int(value, name, minimum=0)
    cap = max_threads()
    if n > cap:
        warnings.warn(f"{name}={n} is more than 4x the CPU count; using {cap} threads",
                      RuntimeWarning, stacklevel=3)
        n = cap
    return n


def check_positive_int(value, name: str) -> int:
    return check_int(value, name, minimum=1)


def check_float(value, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{name}: expected a number {op} {minimum}, got {value}")
    return value


_INDEX_MAX = np.iinfo(np.int32).max


def _int_array(a, name: str, what: str) -> np.ndarray:
    """An index array as a signed integer array (no copy when it already is one), rejecting
    non-integers; unsigned arrays become int64 (their differences would wrap)."""
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name}: malformed sparse matrix ({what} is not 1-D)")
    if a.size and a.dtype.kind not in "iu":
        raise ValueError(f"{name}: malformed sparse matrix ({what} has dtype {a.dtype})")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: malformed sparse matrix ({what} holds values >= 2**63)")
    if a.dtype.kind == "i":
        return a
    return a.astype(np.int64)


def _check_range(a: np.ndarray, n: int, name: str, what: str) -> None:
    if a.size and (a.min() < 0 or a.max() >= n):
        bad = int(a[(a < 0) | (a >= n)][0])
        raise ValueError(f"{name}: {what} index {bad} out of range [0, {n})")


def _compressed_parts(matrix, name: str, n_major: int, n_minor: int, what: str):
    """Validated (indptr int64, indices int64) of a CSR/CSC matrix, never trusting them."""
    indptr = _int_array(matrix.indptr, name, "indptr")
    indices = _int_array(matrix.indices, name, "indices")
    if len(indptr) != n_major + 1 or indptr[0] != 0 or indptr[-1] != len(indices):
        raise ValueError(f"{name}: malformed sparse matrix (indptr must have {n_major + 1} "
                         f"entries, start at 0 and end at len(indices) = {len(indices)})")
    if np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}: malformed sparse matrix (indptr decreases)")
    _check_range(indices, n_minor, name, what)
    return indptr, indices


def _coo_parts(matrix, name: str):
    """(row int64, col int64, data) of any scipy sparse matrix, validated BEFORE any scipy
    conversion: scipy's own conversions trust the index arrays and crash on bad ones."""
    n_rows, n_cols = matrix.shape
    fmt = matrix.format
    if fmt == "csc":
        indptr, indices = _compressed_parts(matrix, name, n_cols, n_rows, "row")
        return indices, np.repeat(np.arange(n_cols, dtype=np.int64), np.diff(indptr)), \
            np.asarray(matrix.data)
    if fmt == "coo":
        row = _int_array(matrix.row, name, "row")
        col = _int_array(matrix.col, name, "col")
        if not (len(row) == len(col) == len(matrix.data)):
            raise ValueError(f"{name}: malformed COO matrix (row, col and data lengths differ)")
        _check_range(row, n_rows, name, "row")
        _check_range(col, n_cols, name, "column")
        return row, col, np.asarray(matrix.data)
    if fmt == "lil":
        rows, vals = matrix.rows, matrix.data
        if len(rows) != n_rows or len(vals) != n_rows:
            raise ValueError(f"{name}: malformed LIL matrix (rows/data do not have "
                             f"{n_rows} entries)")
        lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n_rows)
        if any(len(r) != n for r, n in zip(vals, lens)):
            raise ValueError(f"{name}: malformed LIL matrix (rows and data lengths differ)")
        try:
            col = np.array([c for r in rows for c in r])
            data = np.array([v for r in vals for v in r])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: malformed LIL matrix ({exc})") from None
        col = _int_array(col if col.size else col.astype(np.int64), name, "rows")
        _check_range(col, n_cols, name, "column")
        return np.repeat(np.arange(n_rows, dtype=np.int64), lens), col, data
    if fmt == "bsr":
        r, c = matrix.blocksize
        if r < 1 or c < 1 or n_rows % r or n_cols % c:
            raise ValueError(f"{name}: malformed BSR matrix (blocksize {matrix.blocksize})")
        _compressed_parts(matrix, name, n_rows // r, n_cols // c, "block column")
        if np.asarray(matrix.data).shape != (len(matrix.indices), r, c):
            raise ValueError(f"{name}: malformed BSR matrix (data shape)")
    # bsr (checked above), dok and dia: scipy builds the COO form from validated or
    # bounded data; check the result anyway
    try:
        coo = matrix.tocoo()
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{name}: malformed sparse matrix ({exc})") from None
    row, col = _int_array(coo.row, name, "row"), _int_array(coo.col, name, "col")
    _check_range(row, n_rows, name, "row")
    _check_range(col, n_cols, name, "column")
    return row, col, np.asarray(coo.data)


def _check_sorted_unique(indptr: np.ndarray, indices: np.ndarray, name: str) -> None:
    """Raise unless the column indices increase strictly within every row."""
    if len(indices) <= 1:
        return
    # a decrease at a row boundary is fine
    row_starts = indptr[1:-1]
    starts = row_starts[(row_starts > 0) & (row_starts < len(indices))] - 1
    # In chunks: temporaries stay ~17 MB even for 10^8 non-zeros.
    chunk = 1 << 20
    for lo in range(0, len(indices) - 1, chunk):
        hi = min(lo + chunk, len(indices) - 1)
        d = indices[lo + 1:hi + 1] - indices[lo:hi]
        bad = d <= 0
        at = starts[np.searchsorted(starts, lo):np.searchsorted(starts, hi)] - lo
        bad[at] = False
        if bad.any():
            pos = lo + int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(indptr, pos, side="right") - 1)
            kind = "duplicate" if d[pos - lo] == 0 else "unsorted"
            raise ValueError(
                f"{name}: {kind} column indices in row {row}; call "
                f"sum_duplicates() / sort_indices() first"
            )


def check_csr(
    matrix,
    name: str,
    *,
    shape: tuple[int | None, int | None] | None = None,
    allow_empty: bool = False,
    allow_negative: bool = True,
) -> sp.csr_matrix:
    """Validate a scipy sparse matrix and return it as CSR float32 with int32 indices.

    Every index array is checked *before* any conversion (scipy's conversions trust them,
    and an out-of-range index would crash the process).  A CSR matrix must already be
    canonical: unsorted or duplicate column indices within a row are errors.  Any other
    format (CSC, COO, LIL, DOK, BSR, DIA) is converted, and there duplicate entries are
    summed, which is what a user means by them.

    Rejects: non-sparse input, more than 2**31 - 1 rows or columns, wrong shape, malformed
    or out-of-range indices (signed or unsigned), NaN/inf values or values that overflow
    float32, non-numeric values, negative values (if not allowed), and an empty matrix
    (no stored entries) unless ``allow_empty``.  The input is never modified; a copy is
    made only when a conversion is needed.
    """
    if not sp.issparse(matrix):
        raise ValueError(
            f"{name}: expected a scipy.sparse matrix, got {type(matrix).__name__}"
        )
    if matrix.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D sparse matrix, got ndim={matrix.ndim}")
    n_rows, n_cols = (int(x) for x in matrix.shape)
    if n_rows > _INDEX_MAX or n_cols > _INDEX_MAX:
        raise ValueError(f"{name}: shape {matrix.shape} too large: at most 2**31 - 1 rows and "
                         f"columns (ids are int32)")
    if shape is not None:
        for axis, expected in enumerate(shape):
            if expected is not None and matrix.shape[axis] != expected:
                raise ValueError(
                    f"{name}: expected shape[{axis}] == {expected}, got shape {matrix.shape}"
                )
    if matrix.format == "csr":
        indptr, indices = _compressed_parts(matrix, name, n_rows, n_cols, "column")
        data = np.asarray(matrix.data)
        if data.shape != indices.shape:
            raise ValueError(f"{name}: malformed sparse matrix (data and indices lengths "
                             f"differ)")
        _check_sorted_unique(indptr, indices, name)
    else:
        row, col, data = _coo_parts(matrix, name)
        if data.shape != row.shape:
            raise ValueError(f"{name}: malformed sparse matrix (data and index lengths "
                             f"differ)")
        order = np.lexsort((col, row))
        row, col, data = row[order], col[order], data[order]
        first = np.ones(len(row), dtype=bool)
        first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        if not first.all():
            if data.dtype.kind not in "fiub":
                raise ValueError(f"{name}: expected numeric values, got dtype {data.dtype}")
            starts = np.flatnonzero(first)
            data = np.add.reduceat(data.astype(np.float64), starts)
            row, col = row[starts], col[starts]
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
        indices = col
    if data.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numeric values, got dtype {data.dtype}")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ValueError(f"{name}: contains NaN or inf values")
    if not allow_negative and data.size and data.min() < 0:
        raise ValueError(f"{name}: contains negative values")
    if not allow_empty and (n_rows == 0 or n_cols == 0 or len(indices) == 0):
        raise ValueError(f"{name}: matrix is empty (shape {matrix.shape}, nnz {len(indices)})")
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(data, dtype=np.float32)
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: values overflow float32")
    out = sp.csr_matrix(
        (
            values,
            np.ascontiguousarray(indices, dtype=np.int32),
            np.ascontiguousarray(indptr, dtype=np.int64),
        ),
        shape=(n_rows, n_cols),
        copy=False,
    )
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def check_dense(
    array, name: str, *, ndim: int = 2, shape: tuple | None = None, dtype=np.float32
) -> np.ndarray:
    """Return ``array`` as a finite, C-contiguous array of ``dtype`` with ``ndim`` dims."""
    try:
        arr = np.asarray(array)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from None
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if shape is not None:
        for axis, expected in enumerate(shape):
            if expected is not None and arr.shape[axis] != expected:
                raise ValueError(
                    f"{name}: expected shape[{axis}] == {expected}, got shape {arr.shape}"
                )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf values")
    return arr


def check_ids(ids, name: str, n: int, *, allow_scalar: bool = True):
    """Validate integer ids in ``[0, n)``.

    Returns ``(array_int64, was_scalar)``.  Rejects floats, bools, out-of-range ids and
    non 1-D arrays.
    """
    if allow_scalar and isinstance(ids, numbers.Integral) and not isinstance(ids, (bool, np.bool_)):
        value = int(ids)
        if not 0 <= value < n:
            raise IdError(f"{name}: id {value} out of range [0, {n})")
        return np.array([value], dtype=np.int64), True
    arr = np.asarray(ids)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an int or a 1-D array of ints, got {ids!r}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ints, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise IdError(f"{name}: id {int(bad)} out of range [0, {n})")
    return np.ascontiguousarray(arr), False


def check_random_state(random_state, name: str = "random_state") -> np.random.Generator:
    """Resolve ``None``/int/``Generator``/``RandomState`` to a ``numpy.random.Generator``."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        if isinstance(random_state, (bool, np.bool_)):
            raise ValueError(f"{name}: expected None, an int or a numpy Generator, got bool")
        if random_state is not None and int(random_state) < 0:
            raise ValueError(f"{name}: expected a non-negative seed, got {random_state}")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise ValueError(
        f"{name}: expected None, an int or a numpy Generator, got {type(random_state).__name__}"
    )
