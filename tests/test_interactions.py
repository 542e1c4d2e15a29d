"""Interactions: ids, weighting, aggregation, decay, transforms, append, persistence, errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tastemaker as tm
from tastemaker.data import DEFAULT_EVENT_WEIGHTS, Interactions, apply_transform
from tastemaker.data.weighting import transform_values

WEIGHTS = {"play": 1, "complete": 3, "thumbs_up": 5, "thumbs_down": -5, "click": 0.2}


def _reference(df, weights=None, value=None):
    """Independent pandas groupby reference: summed weighted strength per pair."""
    w = np.ones(len(df))
    if value is not None:
        w = df[value].to_numpy(float)
    if weights is not None:
        w = w * df["event"].map(weights).to_numpy(float)
    g = df.assign(w=w).groupby(["user", "item"]).agg(w=("w", "sum"), n=("w", "size"))
    return g


def _log(seed=0, n=400, n_users=30, n_items=25, strings=True):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    df = pd.DataFrame({
        "user": [f"u{x:03d}" for x in users] if strings else users,
        "item": [f"i{x:03d}" for x in items] if strings else items * 10,
        "event": rng.choice(list(WEIGHTS), n),
        "ts": 1.7e9 + rng.integers(0, 10**6, n).astype(float),
        "frac": rng.random(n),
    })
    return df


def test_string_id_round_trip_and_weighting_match_reference():
    df = _log()
    X = Interactions.from_frame(df, event="event", timestamp="ts", event_weights=WEIGHTS)
    assert X.shape == (X.n_users, X.n_items) == (df.user.nunique(), df.item.nunique())
    assert X.user_ids.dtype.kind == "U" and X.item_ids.dtype.kind == "U"
    assert X.user_idx.dtype == np.int32 and X.item_idx.dtype == np.int32
    assert X.values.dtype == np.float32 and X.counts.dtype == np.int32
    assert X.timestamps.dtype == np.float64
    # sorted by (user, item), one entry per pair
    key = X.user_idx.astype(np.int64) * X.n_items + X.item_idx
    assert np.all(np.diff(key) > 0)
    ref = _reference(df, WEIGHTS)
    got = pd.DataFrame({"user": X.user_ids[X.user_idx], "item": X.item_ids[X.item_idx],
                        "v": X.values, "n": X.counts}).set_index(["user", "item"])
    got = got.loc[ref.index]
    np.testing.assert_allclose(got.v, ref.w, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got.n, ref.n)
    # latest timestamp per pair
    last = df.groupby(["user", "item"]).ts.max().loc[ref.index]
    got_ts = pd.Series(X.timestamps, index=pd.MultiIndex.from_arrays(
        [X.user_ids[X.user_idx], X.item_ids[X.item_idx]])).loc[ref.index]
    np.testing.assert_array_equal(got_ts.to_numpy(), last.to_numpy())
    # id maps round trip
    uid = df.user.to_numpy()
    np.testing.assert_array_equal(X.user_ids[X.user_index(uid)], uid)
    assert X.user_id(X.user_index("u001")) == "u001"
    assert X.item_index(X.item_id(3)) == 3
    np.testing.assert_array_equal(X.item_id(np.array([0, 2])), X.item_ids[[0, 2]])
    with pytest.raises(ValueError, match="unknown user id 'nobody'"):
        X.user_index(["u001", "nobody"])
    with pytest.raises(ValueError, match="unknown item id"):
        X.item_index(5)
    with pytest.raises(ValueError, match="index"):
        X.user_id(X.n_users)


def test_int_ids_and_values_and_csr():
    df = _log(1, strings=False)
    X = Interactions.from_frame(df, value="frac")
    assert X.user_ids.dtype == np.int64 and X.item_ids.dtype == np.int64
    ref = _reference(df, value="frac")
    dense = np.zeros(X.shape)
    dense[X.user_index(ref.index.get_level_values(0).to_numpy()),
          X.item_index(ref.index.get_level_values(1).to_numpy())] = ref.w
    csr = X.to_csr()
    assert sp.isspmatrix_csr(csr) and csr.dtype == np.float32 and csr.has_sorted_indices
    np.testing.assert_allclose(csr.toarray(), dense, rtol=1e-6)
    assert X.timestamps is None
    assert X.item_index(np.array([10.0]))[0] == X.item_index(10)


def test_csr_has_no_explicit_zeros_and_negative_totals_are_dislikes():
    df = pd.DataFrame({"user": [1, 1, 1, 2], "item": [1, 1, 2, 2],
                       "event": ["thumbs_up", "thumbs_down", "thumbs_down", "play"]})
    X = Interactions.from_frame(df, event="event", event_weights=WEIGHTS)
    np.testing.assert_array_equal(X.values, [0, -5, 1])
    csr = X.to_csr()
    assert csr.nnz == 2 and np.all(csr.data != 0)
    assert csr[0, 1] == -5


def test_default_event_weights_and_from_arrays():
    ev = np.array(["play", "complete", "thumbs_down", "pause"])
    X = Interactions.from_arrays(np.array([5, 5, 6, 6]), np.array(["a", "a", "a", "b"]),
                                 events=ev)
    d = DEFAULT_EVENT_WEIGHTS
    np.testing.assert_allclose(X.values, [d["play"] + d["complete"], d["thumbs_down"],
                                          d["pause"]])


@pytest.mark.parametrize("agg", ["mean", "max", "last"])
def test_aggregations_for_ratings(agg):
    df = pd.DataFrame({"user": [1, 1, 1, 2], "item": [7, 7, 7, 7],
                       "stars": [4.0, 2.0, 5.0, 3.0], "t": [10, 30, 20, 5]})
    X = Interactions.from_frame(df, value="stars", timestamp="t", aggregate=agg)
    expect = {"mean": 11 / 3, "max": 5.0, "last": 2.0}[agg]
    np.testing.assert_allclose(X.values, [expect, 3.0], rtol=1e-6)
    np.testing.assert_array_equal(X.timestamps, [30, 5])
    np.testing.assert_array_equal(X.counts, [3, 1])


def test_recency_decay_half_life():
    day = 86400.0
    df = pd.DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "x"],
                       "t": [100 * day, 90 * day, 80 * day]})
    X = Interactions.from_frame(df, timestamp="t", half_life="10D")
    np.testing.assert_allclose(X.values, [1.0, 0.5, 0.25], rtol=1e-6)
    Y = Interactions.from_frame(df, timestamp="t", half_life=20 * day,
                                reference_time=120 * day)
    np.testing.assert_allclose(Y.values, [0.5, 2 ** -1.5, 0.25], rtol=1e-6)
    # appended events decay on the same reference
    Z = X.append(pd.DataFrame({"user": ["a"], "item": ["x"], "t": [90 * day]}))
    np.testing.assert_allclose(Z.values, [1.5, 0.5, 0.25], rtol=1e-6)


def _np_transform(dense, method, **p):
    """Dense NumPy reference for the weighting module."""
    x = dense.astype(float)
    mask = x != 0
    s, m = np.sign(x), np.abs(x)
    n_users = x.shape[0]
    df = mask.sum(axis=0)
    idf = np.log(n_users / np.maximum(df, 1))
    if method == "binary":
        return s
    if method == "linear":
        return p.get("alpha", 1.0) * x
    if method == "log1p":
        return s * p.get("alpha", 1.0) * np.log(1 + m / p.get("epsilon", 1.0))
    if method == "tfidf":
        return x * idf[None, :]
    k1, b = p.get("k1", 1.2), p.get("b", 0.75)
    length = m.sum(axis=1)
    avg = length.mean()  # over every row: the collection N counts, empty rows included
    out = s * idf[None, :] * m * (k1 + 1) / (m + k1 * (1 - b + b * length[:, None] / avg))
    return np.where(mask, out, 0.0)


@pytest.mark.parametrize("method,params", [
    ("binary", {}), ("linear", {"alpha": 2.5}), ("log1p", {"alpha": 40, "epsilon": 0.5}),
    ("tfidf", {}), ("bm25", {}), ("bm25", {"k1": 2.0, "b": 0.3})])
def test_transforms_match_numpy_reference(method, params):
    rng = np.random.default_rng(3)
    dense = rng.integers(-3, 8, size=(20, 15)) * (rng.random((20, 15)) < 0.3)
    dense[:, 4] = 0
    ref = _np_transform(dense, method, **params)
    out = apply_transform(sp.csr_matrix(dense), method, **params)
    np.testing.assert_allclose(out.toarray(), ref, rtol=1e-5, atol=1e-6)
    # an empty row is a document of the collection: counted in N and in the average length
    with_empty = dense.copy()
    with_empty[7] = 0
    np.testing.assert_allclose(apply_transform(sp.csr_matrix(with_empty), method, **params).toarray(),
                               _np_transform(with_empty, method, **params), rtol=1e-5, atol=1e-6)
    # the same through Interactions
    r, c = np.nonzero(dense)
    X = Interactions.from_arrays(r, c, values=dense[r, c]).transform(method, **params)
    np.testing.assert_allclose(X.values, ref[r, c], rtol=1e-5, atol=1e-6)
    Y = Interactions.from_arrays(r, c, values=dense[r, c], transform={"method": method, **params})
    np.testing.assert_array_equal(X.values, Y.values)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5),
                          st.floats(-10, 10, allow_nan=False)), min_size=1, max_size=40))
def test_aggregation_property(rows):
    u, i, v = (np.array(x) for x in zip(*rows))
    X = Interactions.from_arrays(u, i, values=v)
    dense = np.zeros((6, 6))
    np.add.at(dense, (u, i), v)
    got = np.zeros((6, 6))
    got[X.user_ids[X.user_idx], X.item_ids[X.item_idx]] = X.raw_values
    np.testing.assert_allclose(got, dense, atol=1e-9)
    assert X.counts.sum() == len(rows)


def test_min_count_filter_is_a_core():
    df = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3], "item": [1, 2, 3, 1, 2, 1]})
    X = Interactions.from_frame(df, min_user_count=2, min_item_count=2)
    # item 3 seen once -> dropped; then user 3 has 1 item -> dropped; user 1 keeps 2
    np.testing.assert_array_equal(X.user_ids, [1, 2])
    np.testing.assert_array_equal(X.item_ids, [1, 2])
    assert X.nnz == 4
    with pytest.raises(ValueError, match="min_user_count"):
        Interactions.from_frame(df, min_user_count=10)


def test_subset_and_time_value():
    df = _log(2)
    X = Interactions.from_frame(df, timestamp="ts", transform="bm25")
    mask = np.arange(X.nnz) % 3 == 0
    S = X.subset(mask)
    assert S.shape == X.shape and S.nnz == mask.sum()
    assert S.user_ids is X.user_ids
    np.testing.assert_array_equal(S.raw_values, X.raw_values[mask])
    np.testing.assert_array_equal(S.timestamps, X.timestamps[mask])
    t = 1_700_000_000.0
    assert X.time_value(t) == t
    iso = dt.datetime.fromtimestamp(t, tz=dt.timezone.utc)
    assert X.time_value(iso) == t
    assert X.time_value(pd.Timestamp(t, unit="s")) == t
    assert X.time_value(iso.isoformat()) == t
    with pytest.raises(ValueError, match="mask"):
        X.subset(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="t:"):
        X.time_value("not a date")


def test_datetime_and_string_timestamps():
    df = pd.DataFrame({"user": [1, 2], "item": [1, 1],
                       "t": ["2024-01-01T00:00:00Z", "2024-01-02"]})
    X = Interactions.from_frame(df, timestamp="t")
    np.testing.assert_array_equal(X.timestamps, [1704067200.0, 1704153600.0])
    df["t"] = pd.to_datetime(X.timestamps, unit="s", utc=True).tz_convert("Europe/Paris")
    np.testing.assert_array_equal(Interactions.from_frame(df, timestamp="t").timestamps,
                                  X.timestamps)


def test_append_keeps_indices_stable():
    df = _log(4)
    X = Interactions.from_frame(df, event="event", timestamp="ts", event_weights=WEIGHTS)
    new = pd.DataFrame({"user": ["u001", "zz_new", "aa_new"], "item": ["i002", "i999", "i002"],
                        "event": ["complete", "play", "thumbs_up"], "ts": [2e9, 2e9, 1e9]})
    Y = X.append(new)
    np.testing.assert_array_equal(Y.user_ids[: X.n_users], X.user_ids)
    np.testing.assert_array_equal(Y.item_ids[: X.n_items], X.item_ids)
    np.testing.assert_array_equal(Y.user_ids[X.n_users:], ["aa_new", "zz_new"])
    assert Y.item_ids[-1] == "i999" and Y.n_items == X.n_items + 1
    # same result as rebuilding from all events, up to the index order
    full = Interactions.from_frame(pd.concat([df, new]), event="event", timestamp="ts",
                                   event_weights=WEIGHTS)
    a = Y.to_frame().sort_values(["user", "item"]).reset_index(drop=True)
    b = full.to_frame().sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="event"):
        X.append(new[["user", "item", "ts"]])


def test_append_mixed_id_kinds_become_strings():
    X = Interactions.from_arrays([1, 2], [1, 1])
    Y = X.append(pd.DataFrame({"u": ["x"], "i": [1]}), user="u", item="i")
    assert Y.user_ids.dtype.kind == "U"
    np.testing.assert_array_equal(Y.user_ids, ["1", "2", "x"])
    mixed = Interactions.from_arrays(np.array([1, "a"], dtype=object), [1, 2])
    np.testing.assert_array_equal(mixed.user_ids, ["1", "a"])


@pytest.mark.parametrize("with_ts", [True, False])
def test_save_load_round_trip(tmp_path, with_ts):
    df = _log(5)
    X = Interactions.from_frame(df, event="event", event_weights=WEIGHTS,
                                timestamp="ts" if with_ts else None,
                                transform={"method": "log1p", "alpha": 3.0})
    path = tmp_path / "x.npz"
    X.save(path)
    Y = Interactions.load(path)
    assert Y == X and Y.settings == X.settings
    # the loaded object keeps working (append uses the stored settings)
    Y.append(df.head(3))
    with np.load(path, allow_pickle=False) as npz:
        assert npz["user_ids"].dtype.kind == "U"
    with pytest.raises(ValueError, match="path"):
        Interactions.load(tmp_path / "missing.npz")


def test_csv_and_parquet_readers(tmp_path):
    df = _log(6).drop(columns="frac")
    df.to_csv(tmp_path / "ev.csv", index=False)
    df.to_parquet(tmp_path / "ev.parquet")
    a = Interactions.from_frame(df, event="event", timestamp="ts", event_weights=WEIGHTS)
    for name in ("ev.csv", "ev.parquet"):
        b = Interactions.from_path(tmp_path / name, event="event", timestamp="ts",
                                   event_weights=WEIGHTS)
        assert a == b
    with pytest.raises(ValueError, match="path"):
        Interactions.from_path(tmp_path / "ev.xlsx")
    with pytest.raises(ValueError, match="path"):
        Interactions.read_csv(tmp_path / "nope.csv")


def test_errors_name_the_column_and_problem():
    good = pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "ev": ["play", "play"],
                         "v": [1.0, 2.0]})
    with pytest.raises(ValueError, match="item: column 'itm' not in the frame"):
        Interactions.from_frame(good, item="itm")
    with pytest.raises(ValueError, match="df: the frame is empty"):
        Interactions.from_frame(good.iloc[:0])
    with pytest.raises(ValueError, match="df: expected a pandas DataFrame"):
        Interactions.from_frame(good.to_numpy())
    bad = good.assign(user=[1.0, np.nan])
    with pytest.raises(ValueError, match="column 'user': contains NaN"):
        Interactions.from_frame(bad)
    bad = good.assign(item=["a", None])
    with pytest.raises(ValueError, match="column 'item': contains NaN"):
        Interactions.from_frame(bad)
    with pytest.raises(ValueError, match=r"column 'ev': event type\(s\) \['skip'\]"):
        Interactions.from_frame(good.assign(ev=["play", "skip"]), event="ev",
                                event_weights={"play": 1})
    with pytest.raises(ValueError, match="column 'v': expected numeric values, got 'lots'"):
        Interactions.from_frame(good.assign(v=["1", "lots"]), value="v")
    with pytest.raises(ValueError, match="column 'v': contains NaN"):
        Interactions.from_frame(good.assign(v=[1.0, np.nan]), value="v")
    with pytest.raises(ValueError, match="half_life: recency decay needs a timestamp"):
        Interactions.from_frame(good, half_life=10)
    with pytest.raises(ValueError, match="half_life"):
        Interactions.from_frame(good.assign(t=[1, 2]), timestamp="t", half_life=-1)
    with pytest.raises(ValueError, match="column 't': cannot parse"):
        Interactions.from_frame(good.assign(t=["2024-01-01", "whenever"]), timestamp="t")
    with pytest.raises(ValueError, match="aggregate"):
        Interactions.from_frame(good, aggregate="median")
    with pytest.raises(ValueError, match="transform"):
        Interactions.from_frame(good, transform="sqrt")
    with pytest.raises(ValueError, match="transform"):
        Interactions.from_frame(good, transform={"method": "bm25", "alpha": 1})
    with pytest.raises(ValueError, match="k1"):
        Interactions.from_frame(good, transform={"method": "bm25", "k1": -1})
    with pytest.raises(ValueError, match="min_item_count"):
        Interactions.from_frame(good, min_item_count=0)
    with pytest.raises(ValueError, match="event_weights"):
        Interactions.from_frame(good, event="ev", event_weights={"play": "x"})
    with pytest.raises(ValueError, match="column 'item': float ids"):
        Interactions.from_frame(good.assign(item=[1.5, 2.0]))
    with pytest.raises(ValueError, match="users: unsigned ids above"):
        Interactions.from_arrays(np.array([2**63 + 5, 1], dtype=np.uint64), [1, 2])
    with pytest.raises(ValueError, match="items: length 1 differs"):
        Interactions.from_arrays([1, 2], [1])
    with pytest.raises(ValueError, match="users: no events"):
        Interactions.from_arrays([], [])
    with pytest.raises(ValueError, match="matrix"):
        apply_transform(np.eye(3), "binary")


def test_exported_from_package():
    assert tm.Interactions is Interactions
    assert transform_values is not None


# ------------------------------------------------------------------ issue 9 regressions
def test_float_ids_beyond_int64_are_refused_not_collapsed():
    with pytest.raises(ValueError, match="users: float ids of 2\\*\\*63 or more"):
        Interactions.from_arrays(np.array([2.0**63, 2.0**64]), [1, 2])
    ok = Interactions.from_arrays(np.array([1.0, 2.0**62]), [1, 2])
    assert ok.user_ids.tolist() == [1, 2**62]


@pytest.mark.parametrize("kwargs, match", [
    ({"values": [1e308, 1e308]}, "values: the aggregated values overflow"),
    ({"values": [1e39, 1.0], "users": [1, 2]}, "values: aggregated values beyond float32"),
    ({"values": [1.0, 1.0], "timestamps": [0.0, 1e9], "half_life": 1e-3,
      "reference_time": 0.0}, "half_life: the weighted value of event 1 overflows"),
])
def test_infinite_values_are_refused_when_built(kwargs, match):
    args = {"users": [1, 1], "items": [5, 5], **kwargs}
    with pytest.raises(ValueError, match=match):
        Interactions.from_arrays(args.pop("users"), args.pop("items"), **args)


def test_load_refuses_nan_values_and_inconsistent_arrays(tmp_path):
    from tastemaker import io

    X = Interactions.from_arrays([1, 2, 2], ["a", "b", "a"], values=[1.0, 2.0, 3.0])
    X.save(tmp_path / "x.npz")
    header, arrays = io.load_archive(tmp_path / "x.npz")
    for key, value in (("raw_values", np.array([np.nan, 1.0, 1.0])),
                       ("user_idx", np.array([0, 5, 1], np.int32)),
                       ("item_idx", np.array([0, 1], np.int32)),
                       ("counts", np.array([0, 1, 1], np.int32)),
                       ("user_ids", np.array([[1, 2]]))):
        bad = dict(arrays, **{key: value})
        io.save_archive(tmp_path / "bad.npz", header["kind"], {"settings": header["settings"]},
                        bad)
        with pytest.raises(ValueError, match=f"path: .*damaged interactions file \\({key}"):
            Interactions.load(tmp_path / "bad.npz")


def test_file_errors_name_the_file_not_internal_arguments(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("user,item\n")
    with pytest.raises(ValueError, match=r"^path: '.*empty.csv': the frame is empty"):
        Interactions.from_path(p)
    with pytest.raises(ValueError, match="delimiter: only for text files"):
        Interactions.from_path(tmp_path / "x.parquet", delimiter=";")


def test_csv_ids_keep_leading_zeros_like_parquet(tmp_path):
    df = pd.DataFrame({"user": ["007", "026", "26"], "item": ["1", "01", "001"]})
    df.to_csv(tmp_path / "e.csv", index=False)
    df.to_parquet(tmp_path / "e.parquet")
    a = Interactions.from_path(tmp_path / "e.csv")
    b = Interactions.from_path(tmp_path / "e.parquet")
    assert a == b and sorted(a.user_ids.tolist()) == ["007", "026", "26"]
    auto = Interactions.read_csv(tmp_path / "e.csv", id_type="auto")
    assert auto.user_ids.tolist() == [7, 26]  # inferred numbers, when asked for
    semi = tmp_path / "e.txt.csv"
    semi.write_text("u;i\nx;1\ny;2\n")
    got = Interactions.read_csv(semi, delimiter=";", user="u", item="i")
    assert got.item_ids.tolist() == ["1", "2"]
