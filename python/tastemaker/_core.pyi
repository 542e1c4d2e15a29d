"""Type stub for the private native module tastemaker._core."""

import numpy as np
import numpy.typing as npt

__version__: str

def simd_active() -> str: ...
def simd_best() -> str: ...
def simd_available() -> list[str]: ...
def simd_set(name: str) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def have_openmp() -> bool: ...
def dot(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> float: ...
def fma_peak_gflops(seconds: float = 0.2, num_threads: int = 0) -> float: ...
def als_gram(Y: npt.NDArray[np.float32], num_threads: int = 0) -> npt.NDArray[np.float64]: ...
def als_solve(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    Y: npt.NDArray[np.float32],
    gram: npt.NDArray[np.float64],
    X: npt.NDArray[np.float32],
    regularization: float,
    reg_exponent: float,
    alpha: float,
    solver: str,
    cg_steps: int,
    num_threads: int = 0,
) -> None: ...
def als_loss(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    X: npt.NDArray[np.float32],
    Y: npt.NDArray[np.float32],
    gram: npt.NDArray[np.float64],
    regularization: float,
    reg_exponent: float,
    alpha: float,
    num_threads: int = 0,
) -> float: ...
class PackedItems:
    def __init__(self, items: npt.NDArray[np.float32], num_threads: int = 0) -> None: ...
    @property
    def n_items(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def nbytes(self) -> int: ...

def topk_inner_product(
    queries: npt.NDArray[np.float32],
    items: npt.NDArray[np.float32],
    k: int,
    exclude_indptr: npt.NDArray[np.int64] | None = None,
    exclude_indices: npt.NDArray[np.int32] | None = None,
    allow: npt.NDArray[np.int32] | None = None,
    deny: npt.NDArray[np.int32] | None = None,
    num_threads: int = 0,
    packed: PackedItems | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
