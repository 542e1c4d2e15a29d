"""ItemFeatures: encodings against hand / NumPy references, row order, persistence, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tastemaker as tm
from tastemaker import ItemFeatures, datasets


@pytest.fixture
def catalog():
    return pd.DataFrame({
        "item": [10, 20, 30, 40],
        "genres": ["Drama|Comedy", "Action", None, "Comedy| Drama |Horror"],
        "language": ["en", "fr", "en", None],
        "runtime": [90.0, 120.0, np.nan, 100.0],
        "year": [1990, 2000, 2010, 2020],
        "tags": ["funny dog dog", "car chase", "", "funny car"],
    })


def col(F, name):
    return F.matrix[:, list(F.names).index(name)].toarray().ravel()


def test_categorical_and_multi_valued(catalog):
    F = ItemFeatures.from_frame(catalog, categorical=["language"],
                                multi_valued={"genres": "|"})
    assert F.matrix.dtype == np.float32 and sp.isspmatrix_csr(F.matrix)
    assert F.shape == (4, 6)
    assert list(F.names) == ["language=en", "language=fr", "genres=Action",
                             "genres=Comedy", "genres=Drama", "genres=Horror"]
    assert list(F.groups) == ["language"] * 2 + ["genres"] * 4
    np.testing.assert_array_equal(F.item_ids, [10, 20, 30, 40])
    dense = F.matrix.toarray()
    np.testing.assert_array_equal(dense, [[1, 0, 0, 1, 1, 0], [0, 1, 1, 0, 0, 0],
                                          [1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])


def test_numeric_bucket_and_standardize(catalog):
    F = ItemFeatures.from_frame(catalog, numeric={"year": 2, "runtime": "standardize"})
    years = catalog["year"].to_numpy(float)
    edge = np.quantile(years, 0.5)
    assert list(F.names) == [f"year=(-inf, {edge:g})", f"year=[{edge:g}, inf)", "runtime:z"]
    np.testing.assert_array_equal(col(F, f"year=(-inf, {edge:g})"), years < edge)
    rt = catalog["runtime"].to_numpy()
    ok = np.isfinite(rt)
    z = np.where(ok, (rt - rt[ok].mean()) / rt[ok].std(), 0.0)
    np.testing.assert_allclose(col(F, "runtime:z"), z, rtol=1e-6)
    # default: 10 quantile buckets, one-hot, one per item
    F = ItemFeatures.from_frame(catalog, numeric=["year"])
    np.testing.assert_array_equal(F.matrix.sum(axis=1).A.ravel(), 1)


def test_text_tfidf_matches_numpy(catalog):
    F = ItemFeatures.from_frame(catalog, text=["tags"])
    vocab = sorted({"funny", "dog", "car", "chase"})
    assert list(F.names) == [f"tags~{w}" for w in vocab]
    docs = [t.split() for t in catalog["tags"]]
    tf = np.array([[d.count(w) for w in vocab] for d in docs], dtype=float)
    dfreq = (tf > 0).sum(axis=0)
    idf = np.log((1 + len(docs)) / (1 + dfreq)) + 1
    x = tf * idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    np.testing.assert_allclose(F.matrix.toarray(), x, rtol=1e-6, atol=1e-7)


def test_embeddings_keyed_by_item(catalog):
    emb = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=[40, 10])
    F = ItemFeatures.from_frame(catalog, multi_valued={"genres": "|"}, embeddings=emb)
    e = F.matrix.toarray()[:, -2:]
    np.testing.assert_array_equal(e, [[3, 4], [0, 0], [0, 0], [1, 2]])
    assert list(F.names[-2:]) == ["embedding:0", "embedding:1"]
    F2 = ItemFeatures.from_frame(catalog, embeddings={10: [3, 4], 40: np.array([1, 2])})
    np.testing.assert_array_equal(F2.matrix.toarray(), e)


def test_item_ids_fix_rows(catalog):
    F = ItemFeatures.from_frame(catalog, multi_valued={"genres": "|"}, item_ids=[40, 99, 10])
    np.testing.assert_array_equal(F.item_ids, [40, 99, 10])
    full = ItemFeatures.from_frame(catalog, multi_valued={"genres": "|"})
    # vocabulary from the described rows only (20's Action is dropped with its row)
    assert "genres=Action" not in F.names
    ref = full.reindex([40, 99, 10])
    keep = [list(full.names).index(n) for n in F.names]
    np.testing.assert_array_equal(F.matrix.toarray(), ref.matrix.toarray()[:, keep])
    assert F.matrix[1].nnz == 0
    # the index named "item" works as the id column
    G = ItemFeatures.from_frame(catalog.set_index("item"), multi_valued={"genres": "|"})
    assert G == full


def test_from_interactions_one_liner(catalog):
    X = tm.Interactions.from_frame(pd.DataFrame({"user": [1, 1, 2], "item": [30, 10, 77]}))
    F = ItemFeatures.from_interactions(X, catalog, multi_valued={"genres": "|"})
    np.testing.assert_array_equal(F.item_ids, X.item_ids)
    assert F.shape[0] == X.n_items and F.matrix[X.item_index(77)].nnz == 0
    with pytest.raises(ValueError, match="item_ids: taken from interactions"):
        ItemFeatures.from_interactions(X, catalog, item_ids=[1])


def test_encode_new_items_in_same_columns(catalog):
    F = ItemFeatures.from_frame(catalog, categorical=["language"], multi_valued={"genres": "|"},
                                numeric={"year": 3, "runtime": "standardize"}, text=["tags"])
    new = pd.DataFrame({"item": [50], "genres": ["Horror|Western"], "language": ["ko"],
                        "runtime": [110.0], "year": [1985], "tags": ["dog chase"]})
    G = F.encode(new)
    assert list(G.names) == list(F.names) and G.shape == (1, F.n_features)
    assert col(G, "genres=Horror")[0] == 1 and G.matrix[0, :2].nnz == 0  # unseen ko
    again = F.encode(catalog)
    np.testing.assert_allclose(again.matrix.toarray(), F.matrix.toarray(), rtol=1e-6)


def test_save_load_pickle(tmp_path, catalog):
    F = ItemFeatures.from_frame(catalog, categorical=["language"], multi_valued={"genres": "|"},
                                numeric=["year"], text=["tags"])
    F.save(tmp_path / "f.npz")
    G = ItemFeatures.load(tmp_path / "f.npz")
    assert G == F and G.spec == F.spec
    assert G.encode(catalog) == F
    H = pickle.loads(pickle.dumps(F))
    assert H == F
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="path:"):
        ItemFeatures.load(tmp_path / "bad.npz")
    tm.ALS(factors=2, iterations=1).fit(sp.csr_matrix(np.eye(3, dtype=np.float32)),
                                        show_progress=False).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="expected 'item_features'"):
        ItemFeatures.load(tmp_path / "m.npz")
    s = pd.DataFrame({"item": ["a", "b"], "g": ["x", "y|x"]})
    F = ItemFeatures.from_frame(s, multi_valued={"g": "|"})
    F.save(tmp_path / "s.npz")
    assert ItemFeatures.load(tmp_path / "s.npz") == F


def test_weighted(catalog):
    F = ItemFeatures.from_frame(catalog, categorical=["language"], multi_valued={"genres": "|"})
    W = F.weighted({"genres": 0.5})
    np.testing.assert_allclose(W.toarray(), F.matrix.toarray() * np.where(
        F.groups == "genres", 0.5, 1.0))
    with pytest.raises(ValueError, match="weights: 'cast' is not a feature column"):
        F.weighted({"cast": 1.0})
    with pytest.raises(ValueError, match=r"weights\['genres'\]"):
        F.weighted({"genres": -1})


@pytest.mark.parametrize("kwargs, match", [
    (dict(categorical=["nope"]), "categorical: no column 'nope'"),
    (dict(categorical="language"), "categorical: expected a sequence"),
    (dict(multi_valued={"genres": ""}), r"multi_valued\['genres'\]: expected a non-empty"),
    (dict(multi_valued=["genres"]), "multi_valued: expected a mapping"),
    (dict(numeric={"year": "log"}), r"numeric\['year'\]: expected 'bucket'"),
    (dict(numeric={"year": 0}), r"numeric\['year'\]: expected an int >= 1"),
    (dict(numeric=["language"]), "numeric: column 'language' has a non-numeric value 'en'"),
    (dict(categorical=["year"], numeric=["year"]), "named in more than one feature kind"),
    (dict(item="sku"), "item: no column 'sku'"),
    (dict(embeddings=[[1, 2]]), "embeddings: expected a DataFrame"),
    (dict(embeddings={10: [1, 2], 20: [1]}), "embeddings: expected 1-D vectors all of one"),
    (dict(embeddings=pd.DataFrame([[np.nan]], index=[10])), "embeddings: contains NaN"),
    (dict(item_ids=["10", "20"]), "item_ids: none of the 2 ids is in df"),
    (dict(item_ids=[10, 10]), "item_ids: duplicate"),
    (dict(min_df=0), "min_df: expected an int >= 1"),
])
def test_bad_input(catalog, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ItemFeatures.from_frame(catalog, **kwargs)


def test_bad_frames(catalog):
    with pytest.raises(ValueError, match="df: expected a pandas DataFrame"):
        ItemFeatures.from_frame(catalog.to_numpy())
    dup = pd.concat([catalog, catalog.iloc[:1]])
    with pytest.raises(ValueError, match="df: item id 10 appears in more than one row"):
        ItemFeatures.from_frame(dup, categorical=["language"])
    with pytest.raises(ValueError, match="df\\[item\\]: contains missing ids"):
        ItemFeatures.from_frame(catalog.assign(item=[1, None, 3, 4]))
    with pytest.raises(ValueError, match="numeric: column 'when' holds dates"):
        ItemFeatures.from_frame(catalog.assign(when=pd.Timestamp("2020-01-01")),
                                numeric=["when"])
    F = ItemFeatures.from_frame(catalog, multi_valued={"genres": "|"})
    with pytest.raises(ValueError, match="df: no column 'genres'"):
        F.encode(catalog.drop(columns="genres"))
    with pytest.raises(ValueError, match="names: 1 names for 2"):
        ItemFeatures(sp.csr_matrix((1, 2), dtype=np.float32), ["a"], [1])
    with pytest.raises(ValueError, match="item_ids: duplicate"):
        ItemFeatures(sp.csr_matrix((2, 1), dtype=np.float32), ["a"], [1, 1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.sets(st.sampled_from("abcde"), max_size=3)),
                min_size=1, max_size=12, unique_by=lambda t: t[0]),
       st.lists(st.integers(0, 40), max_size=15, unique=True))
def test_rows_follow_item_ids(rows, order):
    df = pd.DataFrame({"item": [r[0] for r in rows], "g": ["|".join(sorted(r[1])) for r in rows]})
    full = ItemFeatures.from_frame(df, multi_valued={"g": "|"})
    # each row is exactly the item's set of values
    for k, (_, vals) in enumerate(rows):
        assert {n[2:] for n, v in zip(full.names, full.matrix[k].toarray().ravel()) if v} == vals
    if not set(order) & set(df["item"]) and order:
        return
    F = ItemFeatures.from_frame(df, multi_valued={"g": "|"}, item_ids=order)
    assert F.shape[0] == len(order)
    ref = full.reindex(order)
    keep = [list(full.names).index(n) for n in F.names]
    np.testing.assert_array_equal(F.matrix.toarray(), ref.matrix.toarray()[:, keep])


# ------------------------------------------------------------------ loaders' metadata
def test_movielens_100k_features(ml100k_dir):
    X, items = datasets.movielens_100k(ml100k_dir)
    assert items.loc[1, "year"] == 1995
    F = datasets.item_features(items)
    np.testing.assert_array_equal(F.item_ids, X.item_ids)
    assert set(F.groups) == {"genres", "year"}
    k = X.item_index(1)
    on = {n for n, v in zip(F.names, F.matrix[k].toarray().ravel()) if v}
    assert {"genres=Animation", "genres=Children's", "genres=Comedy"} <= on
    assert sum(n.startswith("year=") for n in on) == 1
    assert sum(n.startswith("genres=") for n in F.names) == 19


def test_movielens_1m_latest_lastfm_features(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    (tmp_path / "movies.dat").write_text(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n")
    X, items = datasets.movielens_1m(tmp_path)
    assert list(items["year"]) == [1996, 1975]
    F = datasets.item_features(items)
    assert "genres=Musical" in F.names and F.matrix[0, list(F.names).index("genres=Musical")]
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,9\n1,3,4,9\n")
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Animation\n'
                                         '3,"Untitled",(no genres listed)\n')
    X, items = datasets.movielens_latest(tmp_path)
    assert items.loc[1, "year"] == 1995 and pd.isna(items.loc[3, "year"])
    F = datasets.item_features(items)
    assert list(F.names[:1]) == ["genres=Animation"] and F.matrix[1].nnz == 0
    (tmp_path / "user_artists.dat").write_text("2\t51\t13\n2\t52\t11\n3\t51\t5\n")
    (tmp_path / "artists.dat").write_text("id\tname\turl\tpictureURL\n51\tA\tu\tp\n"
                                          "52\tB\tu\tp\n")
    X, items = datasets.lastfm_2k(tmp_path)
    assert list(items["tags"]) == ["", ""]  # no tag files: empty tags, same columns
    (tmp_path / "tags.dat").write_bytes("tagID\ttagValue\n1\trock\n2\tj\xe4zz\n3\tpop\n"
                                        .encode("latin-1"))
    (tmp_path / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t51\t1\t1\t1\t2008\n"
        "3\t51\t2\t1\t1\t2008\n4\t51\t2\t1\t1\t2008\n2\t52\t3\t1\t1\t2008\n")
    X, items = datasets.lastfm_2k(tmp_path)
    assert items.loc[51, "tags"] == "j\xe4zz|rock" and items.loc[52, "tags"] == "pop"
    F = datasets.item_features(items)
    assert list(F.names) == ["tags=j\xe4zz", "tags=pop", "tags=rock"]
    X, items = datasets.lastfm_2k(tmp_path, max_tags=1)
    assert items.loc[51, "tags"] == "j\xe4zz"


def test_synthetic_features():
    s = datasets.synthetic_streaming(n_users=50, n_items=40, seed=3)
    F = s.item_features()
    assert set(F.groups) == {"genres", "cast", "language", "runtime", "release_year"}
    np.testing.assert_array_equal(F.item_ids, np.arange(40))
    g = F.matrix[:, F.groups == "genres"].toarray() > 0
    truth = s.item_tastes > 0
    names = [n[len("genres="):] for n in F.names[F.groups == "genres"]]
    np.testing.assert_array_equal(g, truth[:, [s.genres.index(n) for n in names]])
    with pytest.raises(ValueError, match="items: expected a pandas DataFrame"):
        datasets.item_features(s.items.to_numpy())
