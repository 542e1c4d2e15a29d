"""Data set loaders: real files via TASTEMAKER_DATA, tiny synthesized ML-1M / ML-latest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tastemaker as tm
from tastemaker import datasets


def test_movielens_100k(ml100k_dir):
    X, items = datasets.movielens_100k(ml100k_dir)
    assert X.shape == (943, 1682) and X.nnz == 100_000
    assert X.timestamps is not None and X.user_ids.dtype == np.int64
    np.testing.assert_array_equal(items.index.to_numpy(), X.item_ids)
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert items.loc[1, "release_date"] == pd.Timestamp("1995-01-01")
    assert items["title"].notna().all()
    # values are the stars of u.data
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", header=None)
    first = raw.iloc[0]
    k = np.flatnonzero((X.user_idx == X.user_index(int(first[0])))
                       & (X.item_idx == X.item_index(int(first[1]))))
    assert X.values[k[0]] == first[2] and X.timestamps[k[0]] == first[3]
    assert set(np.unique(X.values)) == {1, 2, 3, 4, 5}
    implicit, _ = datasets.movielens_100k(ml100k_dir, value=None, min_user_count=50)
    assert np.all(implicit.values == 1) and implicit.n_users < 943


def test_movielens_100k_latin1_fixture(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t4\t881250949\n2\t2\t1\t881250950\n")
    flags = "|".join(["0"] * 19)
    row = f"2|Caf\xe9 Society (1995)|01-Jan-1995||http://x|{flags}\n"
    row = row[: -len(flags) - 1] + "0|0|0|0|0|1" + "|0" * 13 + "\n"  # Comedy
    (tmp_path / "u.item").write_bytes(row.encode("latin-1"))
    X, items = datasets.movielens_100k(tmp_path)
    assert items.loc[2, "title"] == "Caf\xe9 Society (1995)"
    assert items.loc[2, "genres"] == "Comedy"
    np.testing.assert_array_equal(X.to_csr().toarray(), [[4], [1]])


def test_lastfm_2k(lastfm_dir):
    X, items = datasets.lastfm_2k(lastfm_dir)
    assert X.n_users == 1892 and X.nnz == 92_834
    np.testing.assert_array_equal(items.index.to_numpy(), X.item_ids)
    assert items.loc[1, "title"] == "MALICE MIZER"
    assert items["title"].notna().mean() > 0.99
    raw = np.loadtxt(lastfm_dir / "user_artists.dat", dtype=np.int64,
                     skiprows=0 if b"user" not in (lastfm_dir / "user_artists.dat")
                     .read_bytes()[:20] else 1)
    assert X.values.sum() == pytest.approx(raw[:, 2].sum(), rel=1e-6)


def test_lastfm_with_header_and_lf(tmp_path):
    (tmp_path / "user_artists.dat").write_text(
        "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t5\n")
    (tmp_path / "artists.dat").write_text(
        "id\tname\turl\tpictureURL\n51\tDuran Duran\thttp://x\thttp://y\n"
        "52\tMorcheeba\thttp://z\thttp://w\n", encoding="utf-8")
    X, items = datasets.lastfm_2k(tmp_path, transform="log1p")
    assert X.shape == (2, 2)
    np.testing.assert_allclose(X.raw_values, [13883, 11690, 5])
    np.testing.assert_allclose(X.values, np.log1p([13883, 11690, 5]), rtol=1e-6)
    assert list(items["title"]) == ["Duran Duran", "Morcheeba"]
    (tmp_path / "user_artists.dat").write_bytes(b"2\t51\t7\r\n3\t52\t1\r\n")
    X, _ = datasets.lastfm_2k(tmp_path)
    np.testing.assert_array_equal(X.raw_values, [7, 1])
    # a UTF-8 byte-order mark must not hide the first row (nor be taken for a header)
    (tmp_path / "user_artists.dat").write_bytes(b"\xef\xbb\xbf2\t51\t7\r\n3\t52\t1\r\n")
    X, _ = datasets.lastfm_2k(tmp_path)
    np.testing.assert_array_equal(X.raw_values, [7, 1])
    np.testing.assert_array_equal(X.user_ids, [2, 3])


def test_movielens_1m_fixture(tmp_path):
    (tmp_path / "ratings.dat").write_bytes(
        b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "7::Caf\xe9 Society (1995)::Drama\n".encode("latin-1"))
    X, items = datasets.movielens_1m(tmp_path)
    assert X.shape == (2, 2)
    np.testing.assert_array_equal(X.item_ids, [661, 1193])
    assert list(items["title"]) == ["James and the Giant Peach (1996)",
                                    "One Flew Over the Cuckoo's Nest (1975)"]
    assert items.loc[661, "genres"] == "Animation|Children's|Musical"
    dense = X.to_csr().toarray()
    np.testing.assert_array_equal(dense, [[3, 5], [0, 4]])
    assert X.timestamps.max() == 978302109


def test_movielens_latest_fixture(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
        "5,1,0.5,964982224\n")
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
        '3,"American President, The (1995)",Comedy|Drama|Romance\n', encoding="utf-8")
    X, items = datasets.movielens_latest(tmp_path)
    np.testing.assert_allclose(X.values, [4.0, 4.5, 0.5])
    assert items.loc[3, "title"] == "American President, The (1995)"
    implicit, _ = datasets.movielens_latest(tmp_path, value=None)
    np.testing.assert_array_equal(implicit.values, [1, 1, 1])
    np.testing.assert_array_equal(items.index.to_numpy(), X.item_ids)


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="path: .* has no 'u.data'"):
        datasets.movielens_100k(tmp_path)
    with pytest.raises(ValueError, match="ratings.dat"):
        datasets.movielens_1m(tmp_path / "missing")
    (tmp_path / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="no column 'userId'"):
        datasets.movielens_latest(tmp_path)


def test_package_exports():
    assert tm.datasets.synthetic_streaming is datasets.synthetic_streaming
