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
def l2_cache_bytes() -> int: ...
def dot(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> float: ...
def fma_peak_gflops(seconds: float = 0.2, num_threads: int = 0) -> float: ...
def triad_gbs(array_bytes: int, seconds: float = 0.2, num_threads: int = 0) -> float: ...
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
    @property
    def prefilter_nbytes(self) -> int: ...

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
    self_prefilter: int = -1,
    user_prefilter: int = -1,
    stats: bool = False,
) -> (tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]
      | tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], dict[str, int]]): ...
# Single-request queries (cpp/include/tastemaker/query.hpp): one call, GIL released once.
def query_recommend(
    user_factors: npt.NDArray[np.float32],
    userid: int,
    packed: PackedItems,
    items: npt.NDArray[np.float32],
    k: int,
    indptr: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    deny: npt.NDArray[np.int32] | None = None,
    allow: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def query_vector(
    vector: npt.NDArray[np.float32],
    packed: PackedItems,
    items: npt.NDArray[np.float32],
    k: int,
    exclude: npt.NDArray[np.int32] | None = None,
    deny: npt.NDArray[np.int32] | None = None,
    allow: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def query_fold_in(
    items: npt.NDArray[np.float32],
    gram: npt.NDArray[np.float64],
    regularization: float,
    reg_exponent: float,
    alpha: float,
    indptr: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    packed: PackedItems | None = None,
    k: int = 0,
    filter: bool = True,
    deny: npt.NDArray[np.int32] | None = None,
    allow: npt.NDArray[np.int32] | None = None,
    want_factor: bool = False,
) -> tuple: ...
def query_similar(
    normed: npt.NDArray[np.float32],
    packed: PackedItems,
    id: int,
    k: int,
    zero: npt.NDArray[np.int32] | None = None,
    deny: npt.NDArray[np.int32] | None = None,
    allow: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def csr_transpose(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def knn_fit(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_items: int,
    K: int,
    similarity: str = "cosine",
    K1: float = 1.2,
    B: float = 0.75,
    num_threads: int = 0,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.float32]
]: ...
def corpus_stats(
    doc: npt.NDArray[np.int64],
    term: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_docs: int,
    n_terms: int,
) -> tuple[npt.NDArray[np.float64], float]: ...
def term_weights(
    method: str,
    doc: npt.NDArray[np.int64],
    term: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_docs: int,
    n_terms: int,
    k1: float = 1.2,
    b: float = 0.75,
    idf_offset: float = 0.0,
    corpus_df: npt.NDArray[np.float64] | None = None,
    corpus_n_docs: int = 0,
    corpus_length_sum: float = 0.0,
) -> npt.NDArray[np.float64]: ...
def knn_recommend(
    n_indptr: npt.NDArray[np.int64],
    n_indices: npt.NDArray[np.int32],
    n_data: npt.NDArray[np.float32],
    r_indptr: npt.NDArray[np.int64],
    r_indices: npt.NDArray[np.int32],
    r_data: npt.NDArray[np.float32],
    exclude_seen: bool,
    allow: npt.NDArray[np.int32] | None = None,
    deny: npt.NDArray[np.int32] | None = None,
    k: int = 10,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def item_gram_dense(
    w_indptr: npt.NDArray[np.int64],
    w_indices: npt.NDArray[np.int32],
    w_data: npt.NDArray[np.float32],
    t_indptr: npt.NDArray[np.int64],
    t_indices: npt.NDArray[np.int32],
    t_data: npt.NDArray[np.float32],
    ridge: float,
    out: npt.NDArray[np.float64],
    num_threads: int = 0,
) -> npt.NDArray[np.float64]: ...
def explicit_als_solve(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    Y: npt.NDArray[np.float32],
    other_bias: npt.NDArray[np.float32],
    X: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    regularization: float,
    bias_regularization: float,
    weighted: bool,
    global_mean: float,
    num_threads: int = 0,
    noise_sd: float = 0.0,
    seed: int = 0,
    prior_precision: npt.NDArray[np.float64] | None = None,
    prior_mean: npt.NDArray[np.float64] | None = None,
) -> None: ...
def explicit_als_rmse(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    X: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    Y: npt.NDArray[np.float32],
    other_bias: npt.NDArray[np.float32],
    global_mean: float,
    num_threads: int = 0,
) -> float: ...
