"""Every model's ``fit`` hands its own ``num_threads`` to the native transpose (a model
used to call it with the process-wide default, ignoring the thread count it was given)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker as tm
from tastemaker import _core


def _matrix(seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    m.data[:] = rng.integers(1, 6, m.nnz).astype(np.float32)
    return m


@pytest.mark.parametrize("make", [
    lambda: tm.ALS(factors=4, iterations=1, num_threads=3, random_state=0),
    lambda: tm.ExplicitALS(factors=4, iterations=1, num_threads=3, random_state=0),
    lambda: tm.EASE(num_threads=3),
    lambda: tm.HybridALS(factors=4, iterations=1, num_threads=3, random_state=0),
], ids=["ALS", "ExplicitALS", "EASE", "HybridALS"])
def test_transpose_gets_the_models_thread_count(make, monkeypatch):
    seen = []
    real = _core.csr_transpose

    def spy(indptr, indices, data, n_cols, num_threads=0):
        seen.append(num_threads)
        return real(indptr, indices, data, n_cols, num_threads)

    monkeypatch.setattr(_core, "csr_transpose", spy)
    model, m = make(), _matrix()
    if isinstance(model, tm.HybridALS):
        features = sp.random(m.shape[1], 5, density=0.4, format="csr", random_state=1, dtype=np.float32)
        model.fit(m, features, show_progress=False)
    else:
        model.fit(m, show_progress=False)
    assert seen and all(t == 3 for t in seen), seen
