"""Interactions keeps sessions and context columns: build, subset, append, k-core, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tastemaker import Interactions, datasets


@pytest.fixture(scope="module")
def synth():
    return datasets.synthetic_streaming(150, 120, seed=5)


@pytest.fixture(scope="module")
def inter(synth):
    return synth.interactions(session="session", context=("device", "hour"))


def _reference(ev: pd.DataFrame, weights: dict) -> pd.DataFrame:
    """Per (user, session, item) summed strength and per-session first context, in pandas."""
    ev = ev.assign(strength=ev["event"].astype(str).map(weights).astype(float))
    return ev.groupby(["user", "session", "item"])["strength"].sum()


def _session_frame(x: Interactions) -> pd.DataFrame:
    s = x.sessions
    rows = np.repeat(np.arange(s.n_sessions), np.diff(s.indptr))
    return pd.DataFrame({"user": x.user_ids[s.user[rows]], "session": s.ids[rows],
                         "item": x.item_ids[s.item], "value": s.value})


def test_sessions_match_a_pandas_reference(synth, inter):
    ev = synth.events
    ref = _reference(ev, synth.event_weights)
    got = _session_frame(inter).set_index(["user", "session", "item"])["value"]
    pd.testing.assert_series_equal(got.sort_index(), ref.sort_index(), check_names=False)
    s = inter.sessions
    assert s.n_sessions == ev.groupby(["user", "session"]).ngroups
    # context and start: the session's first event
    first = ev.sort_values("timestamp", kind="stable").groupby("session").first()
    np.testing.assert_array_equal(s.context["device"], first.loc[s.ids, "device"].astype(str))
    np.testing.assert_array_equal(s.context["hour"], first.loc[s.ids, "hour"].astype(float))
    np.testing.assert_allclose(s.start, first.loc[s.ids, "timestamp"].astype("int64") / 1e9)
    # sorted by user, then start
    key = s.user.astype(np.int64) * 10**10 + (s.start - s.start.min())
    assert np.all(np.diff(key) >= 0)
    # the matrix is unchanged by keeping sessions
    plain = synth.interactions()
    np.testing.assert_array_equal(plain.values, inter.values)
    assert plain.sessions is None and "sessions" in repr(inter)
    # of_user slices
    u = int(s.user[len(s.user) // 2])
    sl = s.of_user(u)
    assert np.all(s.user[sl] == u) and np.sum(s.user == u) == sl.stop - sl.start


def test_context_kinds_and_any_columns(synth):
    ev = synth.events.assign(tv=synth.events["device"].astype(str) == "tv",
                             region=np.where(synth.events["user"] % 2 == 0, "eu", "us"))
    x = Interactions.from_frame(ev, event="event", timestamp="timestamp",
                                event_weights=synth.event_weights, session="session",
                                context=["region", "tv"])
    assert x.sessions.context_names == ("region", "tv")
    assert x.sessions.context["region"].dtype.kind == "U"
    assert x.sessions.context["tv"].dtype == np.float64
    one = Interactions.from_frame(ev, event="event", session="session", context="region")
    assert one.sessions.context_names == ("region",) and one.sessions.start is None


def test_subset_keeps_sessions_of_kept_pairs(inter):
    mask = np.random.default_rng(0).random(inter.nnz) < 0.6
    sub = inter.subset(mask)
    kept = set(zip(inter.user_idx[mask].tolist(), inter.item_idx[mask].tolist()))
    s = sub.sessions
    rows = np.repeat(np.arange(s.n_sessions), np.diff(s.indptr))
    got = set(zip(s.user[rows].tolist(), s.item.tolist()))
    assert got == {p for p in kept if p in got} and got <= kept
    # every kept pair that was in a session still is
    full = inter.sessions
    frows = np.repeat(np.arange(full.n_sessions), np.diff(full.indptr))
    before = set(zip(full.user[frows].tolist(), full.item.tolist()))
    assert got == before & kept
    assert np.all(np.diff(s.indptr) > 0)  # no empty sessions


def test_append_equals_building_at_once(synth, inter):
    ev = synth.events
    cut = ev["timestamp"].quantile(0.55)
    a = Interactions.from_frame(ev[ev["timestamp"] < cut], event="event", timestamp="timestamp",
                                event_weights=synth.event_weights, session="session",
                                context=("device", "hour"))
    both = a.append(ev[ev["timestamp"] >= cut])
    f1 = _session_frame(inter).sort_values(["user", "session", "item"]).reset_index(drop=True)
    f2 = _session_frame(both).sort_values(["user", "session", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(f1, f2, check_dtype=False, atol=1e-9)
    c1 = inter.sessions.to_frame().assign(user=lambda d: inter.user_ids[d["user"]])
    c2 = both.sessions.to_frame().assign(user=lambda d: both.user_ids[d["user"]])
    key = ["user", "session"]
    pd.testing.assert_frame_equal(c1.sort_values(key).reset_index(drop=True),
                                  c2.sort_values(key).reset_index(drop=True))
    plain = Interactions.from_frame(ev, event="event", timestamp="timestamp")
    with pytest.raises(ValueError, match="sessions"):
        a.append(plain)


def test_kcore_drops_sessions_of_removed_ids(synth):
    x = synth.interactions(session="session", context=("device",), min_user_count=5,
                           min_item_count=15)
    s = x.sessions
    assert s.user.max() < x.n_users and s.item.max() < x.n_items
    rows = np.repeat(np.arange(s.n_sessions), np.diff(s.indptr))
    pairs = set(zip(x.user_idx.tolist(), x.item_idx.tolist()))
    assert set(zip(s.user[rows].tolist(), s.item.tolist())) <= pairs


def test_save_load_round_trip(inter, tmp_path):
    path = tmp_path / "x.npz"
    inter.save(path)
    back = Interactions.load(path)
    assert back == inter and back.sessions == inter.sessions
    assert back.sessions.context_names == ("device", "hour")


def test_bad_session_and_context_arguments(synth):
    ev = synth.events
    with pytest.raises(ValueError, match="context: needs session"):
        Interactions.from_frame(ev, context=("device",))
    with pytest.raises(ValueError, match="context: column 'nope'"):
        Interactions.from_frame(ev, session="session", context=("nope",))
    with pytest.raises(ValueError, match="session: column 'nope'"):
        Interactions.from_frame(ev, session="nope")
    with pytest.raises(ValueError, match="context: expected column names"):
        Interactions.from_frame(ev, session="session", context=(1, 2))
    with pytest.raises(ValueError, match="context: repeated"):
        Interactions.from_frame(ev, session="session", context=("hour", "hour"))
    bad = ev.assign(device=ev["device"].astype(object))
    bad.loc[bad.index[3], "device"] = None
    with pytest.raises(ValueError, match="missing context values"):
        Interactions.from_frame(bad, session="session", context=("device",))
    with pytest.raises(ValueError, match="sessions"):
        Interactions.from_arrays([1, 2], [3, 4], sessions=[1])
    with pytest.raises(ValueError, match="context: expected a dict"):
        Interactions.from_arrays([1, 2], [3, 4], sessions=[1, 1], context=["a"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6), st.integers(0, 3),
                          st.integers(-2, 3), st.sampled_from(["tv", "phone"])),
                min_size=1, max_size=40))
def test_from_arrays_sessions_property(rows):
    u, i, s, v, d = (np.array(c) for c in zip(*rows))
    x = Interactions.from_arrays(u, i, values=v.astype(float), sessions=s,
                                 context={"device": d})
    ref = pd.DataFrame({"u": u, "s": s, "i": i, "v": v.astype(float)}).groupby(
        ["u", "s", "i"])["v"].sum()
    got = _session_frame(x).rename(columns={"user": "u", "session": "s", "item": "i"})
    got = got.set_index(["u", "s", "i"])["value"].sort_index()
    pd.testing.assert_series_equal(got, ref.sort_index(), check_names=False,
                                   check_index_type=False)
    first = pd.DataFrame({"u": u, "s": s, "d": d}).groupby(["u", "s"])["d"].first()
    ss = x.sessions
    np.testing.assert_array_equal(ss.context["device"],
                                  first.loc[list(zip(x.user_ids[ss.user], ss.ids))].to_numpy())
