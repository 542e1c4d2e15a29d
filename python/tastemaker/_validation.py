"""Input validation shared by every public entry point.

Each helper raises ``ValueError`` whose message starts with the argument's name and
says what was expected and what was given.  Helpers return canonical forms (float32
C-contiguous arrays, CSR with sorted unique int32 indices) so the native core only
ever sees data it can trust.  They never modify the caller's data.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_int",
    "check_positive_int",
    "check_float",
    "check_csr",
    "check_dense",
    "check_ids",
    "check_random_state",
]


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {value}")
    return value


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


def check_csr(
    matrix,
    name: str,
    *,
    shape: tuple[int | None, int | None] | None = None,
    allow_empty: bool = False,
    allow_negative: bool = True,
) -> sp.csr_matrix:
    """Validate a scipy sparse matrix and return it as CSR float32 with int32 indices.

    Rejects: non-sparse input, wrong shape, NaN/inf values, unsorted or duplicate
    column indices within a row, negative values (if not allowed), and an empty
    matrix (no stored non-zeros) unless ``allow_empty``.  The input is not modified;
    a copy is made only when a conversion is needed.
    """
    if not sp.issparse(matrix):
        raise ValueError(
            f"{name}: expected a scipy.sparse CSR matrix, got {type(matrix).__name__}"
        )
    if matrix.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D sparse matrix, got ndim={matrix.ndim}")
    if shape is not None:
        for axis, expected in enumerate(shape):
            if expected is not None and matrix.shape[axis] != expected:
                raise ValueError(
                    f"{name}: expected shape[{axis}] == {expected}, got shape {matrix.shape}"
                )
    if matrix.format != "csr":
        # Converting from COO/CSC sums duplicates, which is what a user means by them.
        matrix = matrix.tocsr()
    else:
        indptr, indices = matrix.indptr, matrix.indices
        if len(indptr) != matrix.shape[0] + 1 or indptr[0] != 0 or indptr[-1] != len(indices):
            raise ValueError(f"{name}: malformed CSR indptr")
        if np.any(np.diff(indptr) < 0):
            raise ValueError(f"{name}: malformed CSR indptr (decreasing)")
        if len(indices) and (indices.min() < 0 or indices.max() >= matrix.shape[1]):
            raise ValueError(f"{name}: column index out of range [0, {matrix.shape[1]})")
        if len(indices) > 1:
            # a decrease at a row boundary is fine
            row_starts = np.asarray(indptr[1:-1], dtype=np.int64)
            starts = row_starts[(row_starts > 0) & (row_starts < len(indices))] - 1
            # In chunks: temporaries stay ~17 MB even for 10^8 non-zeros.
            chunk = 1 << 20
            for lo in range(0, len(indices) - 1, chunk):
                hi = min(lo + chunk, len(indices) - 1)
                d = indices[lo + 1:hi + 1].astype(np.int64) - indices[lo:hi]
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
    data = matrix.data
    if data.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numeric values, got dtype {data.dtype}")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ValueError(f"{name}: contains NaN or inf values")
    if not allow_negative and data.size and data.min() < 0:
        raise ValueError(f"{name}: contains negative values")
    if not allow_empty and (matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0):
        raise ValueError(f"{name}: matrix is empty (shape {matrix.shape}, nnz {matrix.nnz})")
    out = sp.csr_matrix(
        (
            np.ascontiguousarray(data, dtype=np.float32),
            np.ascontiguousarray(matrix.indices, dtype=np.int32),
            np.ascontiguousarray(matrix.indptr, dtype=np.int64),
        ),
        shape=matrix.shape,
        copy=False,
    )
    if out.data.size and not np.all(np.isfinite(out.data)):
        raise ValueError(f"{name}: values overflow float32")
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
            raise ValueError(f"{name}: id {value} out of range [0, {n})")
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
        raise ValueError(f"{name}: id {int(bad)} out of range [0, {n})")
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
