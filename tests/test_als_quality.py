"""Quality on real data: precision@10 of tastemaker.ALS is at least implicit's ALS with the
same factors, regularization, iterations and the same random 80/20 split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastemaker import ALS


def load_ml100k(path):
    df = pd.read_csv(path / "u.data", sep="\t", names=["u", "i", "r", "t"])
    return df["u"].to_numpy() - 1, df["i"].to_numpy() - 1, df["r"].to_numpy(np.float32)


def load_lastfm(path):
    # no header line in this copy, CRLF line ends
    df = pd.read_csv(path / "user_artists.dat", sep="\t", header=None,
                     names=["userID", "artistID", "weight"])
    u = pd.factorize(df["userID"])[0]
    i = pd.factorize(df["artistID"])[0]
    return u, i, np.log1p(df["weight"].to_numpy(np.float32))


def split(u, i, v, seed=0):
    rng = np.random.default_rng(seed)
    shape = (u.max() + 1, i.max() + 1)
    test = rng.random(len(u)) < 0.2
    train = sp.csr_matrix((v[~test], (u[~test], i[~test])), shape=shape, dtype=np.float32)
    held = sp.csr_matrix((np.ones(test.sum(), np.float32), (u[test], i[test])), shape=shape)
    train.sum_duplicates()
    train.sort_indices()
    return train, held


def precision_at_10(U, V, train, test):
    scores = U.astype(np.float64) @ V.astype(np.float64).T
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]  # order within the top 10 is irrelevant
    hits, denom = 0.0, 0
    for u in range(U.shape[0]):
        liked = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(liked) == 0:
            continue
        hits += np.isin(top[u], liked).sum()
        denom += min(10, len(liked))
    return hits / denom


@pytest.mark.parametrize("dataset", ["ml100k", "lastfm"])
def test_precision_at_least_implicit(dataset, request):
    implicit_als = pytest.importorskip("implicit.cpu.als")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    loader = load_ml100k if dataset == "ml100k" else load_lastfm
    path = request.getfixturevalue("ml100k_dir" if dataset == "ml100k" else "lastfm_dir")
    train, test = split(*loader(path))
    params = dict(factors=32, regularization=0.05, iterations=15)
    ours = ALS(random_state=0, **params).fit(train, show_progress=False)
    with threadpoolctl.threadpool_limits(1, "blas"):
        theirs = implicit_als.AlternatingLeastSquares(random_state=0, **params)
        theirs.fit(train, show_progress=False)
    p_ours = precision_at_10(ours.user_factors, ours.item_factors, train, test)
    p_theirs = precision_at_10(theirs.user_factors, theirs.item_factors, train, test)
    print(f"{dataset}: precision@10 tastemaker {p_ours:.4f} implicit {p_theirs:.4f}")
    assert p_ours >= p_theirs - 0.005, (p_ours, p_theirs)
