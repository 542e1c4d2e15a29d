"""The synthetic streaming generator: determinism, structure, scale, and signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker import datasets
from tastemaker.data import DEFAULT_EVENT_WEIGHTS


@pytest.fixture(scope="module")
def small():
    return datasets.synthetic_streaming(600, 300, seed=7)


def test_deterministic_for_a_seed(small):
    again = datasets.synthetic_streaming(600, 300, seed=7)
    pd.testing.assert_frame_equal(small.events, again.events)
    pd.testing.assert_frame_equal(small.items, again.items)
    np.testing.assert_array_equal(small.user_tastes, again.user_tastes)
    other = datasets.synthetic_streaming(600, 300, seed=8)
    assert not small.events[["user", "item"]].equals(other.events[["user", "item"]])


def test_structure_and_ground_truth(small):
    ev, items, users = small.events, small.items, small.users
    G = len(datasets.GENRES)
    assert set(ev["event"].cat.categories) == set(datasets.EVENT_TYPES)
    assert set(ev["event"].unique()) == set(datasets.EVENT_TYPES)
    assert ev["timestamp"].is_monotonic_increasing
    assert ev["user"].between(0, 599).all() and ev["item"].between(0, 299).all()
    assert len(items) == 300 and items["title"].is_unique
    assert items["title"].str.match(r"^[A-Z][\w ]+ \(\d{4}\)$").all()
    assert items["runtime"].between(60, 200).all()
    assert items["cast"].str.count(", ").eq(2).all()
    n_genres = items["genres"].str.count(r"\|") + 1
    np.testing.assert_array_equal(n_genres, (small.item_tastes > 0).sum(axis=1))
    np.testing.assert_allclose(small.item_tastes.sum(axis=1), 1.0)
    np.testing.assert_allclose(small.user_tastes.sum(axis=1), 1.0)
    assert small.user_tastes.shape == (600, G) and small.persona_tastes.shape == (600, 2, G)
    np.testing.assert_allclose(small.user_tastes, small.persona_tastes.mean(axis=1))
    solo = ~small.shared
    np.testing.assert_array_equal(small.persona_tastes[solo, 0], small.persona_tastes[solo, 1])
    assert 0.2 < small.shared.mean() < 0.4
    np.testing.assert_array_equal(users["shared"], small.shared)
    np.testing.assert_array_equal(users["n_events"], np.bincount(ev["user"], minlength=600))
    # each play is followed by exactly one complete-or-pause of the same pick
    counts = ev["event"].value_counts()
    assert counts["play"] == counts["complete"] + counts["pause"]
    assert small.event_weights == DEFAULT_EVENT_WEIGHTS
    # inside a session titles play one after the other: in time order the watch events
    # alternate play, (complete | pause), play, ... and each session has one account
    watch = ev[ev["event"].isin(["play", "complete", "pause"])]
    watch = watch.sort_values(["session", "timestamp"], kind="stable")
    sess = watch["session"].to_numpy()
    pos = np.arange(len(sess)) - np.searchsorted(sess, sess, side="left")
    np.testing.assert_array_equal(watch["event"].to_numpy() == "play", pos % 2 == 0)
    assert (ev.groupby("session")["user"].nunique() == 1).all()


def test_event_rates_follow_tastes(small):
    ev = small.events
    # affinity of the account (mean of personas) with the played title
    plays = ev[ev["event"] == "play"]
    comp = ev[ev["event"] == "complete"]
    aff = np.einsum("ij,ij->i", small.user_tastes[plays["user"]],
                    small.item_tastes[plays["item"]])
    aff_c = np.einsum("ij,ij->i", small.user_tastes[comp["user"]],
                      small.item_tastes[comp["item"]])
    assert aff_c.mean() > aff.mean() * 1.1
    downs = ev[ev["event"] == "thumbs_down"]
    aff_d = np.einsum("ij,ij->i", small.user_tastes[downs["user"]],
                      small.item_tastes[downs["item"]])
    assert aff_d.mean() < aff.mean()
    # picks concentrate on the account's tastes: far above a random title's affinity
    rand = small.user_tastes @ small.item_tastes.mean(axis=0)
    assert aff.mean() > 2 * rand.mean()


def test_interactions_from_generator(small):
    X = small.interactions()
    assert X.timestamps is not None
    assert np.all(X.user_ids == np.sort(small.events["user"].unique()))
    assert (X.values < 0).any() and (X.values > 0).mean() > 0.8
    Y = small.interactions(transform="binary", min_item_count=3)
    assert set(np.unique(Y.values)) <= {-1.0, 0.0, 1.0}


def test_scale_one_million_events():
    data = datasets.synthetic_streaming(10_000, 3_000, seed=0)
    assert len(data.events) > 1_000_000
    assert data.events["user"].nunique() > 9_900


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_categorical_rows_matches_per_row_searchsorted(n_rows, n_cols, seed):
    from tastemaker.data.synthetic import _categorical_rows

    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n_cols, 0.3), size=n_rows)
    p[rng.random(p.shape) < 0.2] = 0.0  # empty categories must never be drawn
    p[p.sum(1) == 0, 0] = 1.0
    cum = np.cumsum(p / p.sum(1, keepdims=True), axis=1)
    rows = rng.integers(0, n_rows, 200)
    u = rng.random(200)
    got = _categorical_rows(cum, rows, u)
    want = np.array([min(np.searchsorted(cum[r], x, side="right"), n_cols - 1)
                     for r, x in zip(rows, u)])
    np.testing.assert_array_equal(got, want)
    assert np.all(p[rows, got] > 0)


def test_generator_errors():
    with pytest.raises(ValueError, match="n_users"):
        datasets.synthetic_streaming(0, 100)
    with pytest.raises(ValueError, match="n_items"):
        datasets.synthetic_streaming(10, 3)
    with pytest.raises(ValueError, match="shared_fraction"):
        datasets.synthetic_streaming(10, 100, shared_fraction=1.5)
    with pytest.raises(ValueError, match="seed"):
        datasets.synthetic_streaming(10, 100, seed="x")
    with pytest.raises(ValueError, match="start"):
        datasets.synthetic_streaming(10, 100, start="someday")
    with pytest.raises(ValueError, match="picks_per_session"):
        datasets.synthetic_streaming(10, 100, picks_per_session=0.5)


def _top_k(scores, exclude, k):
    s = np.array(scores, dtype=np.float64)
    s[exclude.nonzero()] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def _row_corr(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-300)


def test_als_recovers_tastes_better_than_popularity():
    tm = pytest.importorskip("tastemaker")
    from tastemaker.evaluation.splitters import random_split

    data = datasets.synthetic_streaming(1500, 600, seed=3)
    X = data.interactions()
    train, test = random_split(X.subset(X.values > 0), test_size=0.2, random_state=0)
    A = train.to_csr()
    model = tm.ALS(factors=16, iterations=10, regularization=0.05, random_state=0)
    model.fit(A, show_progress=False)
    pop = np.asarray((A > 0).sum(axis=0), dtype=np.float64).ravel()
    k = 20
    top_als = _top_k(model.user_factors @ model.item_factors.T, A, k)
    top_pop = _top_k(np.tile(pop, (A.shape[0], 1)), A, k)
    # held-out positives: recall@k (normalized by min(k, |test|))
    T = (test.to_csr() > 0).toarray()
    n = T.sum(1)
    ok = n > 0

    def recall(top):
        return (np.take_along_axis(T, top, 1).sum(1)[ok] / np.minimum(n[ok], k)).mean()

    assert recall(top_als) > 1.15 * recall(top_pop)
    # taste recovery: genre profile of the recommendations vs the account's true taste
    # (matrix indices -> item ids: a title nobody played has no column)
    truth = data.user_tastes[X.user_ids]
    corr_als = _row_corr(data.item_tastes[X.item_ids[top_als]].mean(axis=1), truth).mean()
    corr_pop = _row_corr(data.item_tastes[X.item_ids[top_pop]].mean(axis=1), truth).mean()
    assert corr_als > corr_pop + 0.2


def test_personas_have_their_own_habits(small):
    """device / hour / persona: constant within a session, persona 0 alone on one-person
    accounts, each persona mostly on its preferred device near its peak hour."""
    ev = small.events
    assert set(ev["device"].cat.categories) == set(datasets.DEVICES)
    assert ev["hour"].between(0, 23).all()
    per = ev.groupby("session")[["device", "hour", "persona", "user"]].nunique()
    assert (per == 1).all().all()
    sess = ev.groupby("session").agg(user=("user", "first"), persona=("persona", "first"),
                                     device=("device", "first"), hour=("hour", "first"),
                                     t=("timestamp", "min"))
    shared = small.shared[sess["user"]]
    assert (sess.loc[~shared, "persona"] == 0).all()
    assert set(sess.loc[shared, "persona"]) == {0, 1}
    # the main viewer (persona 0) watches most sessions of a shared account
    assert 0.6 < (sess.loc[shared, "persona"] == 0).mean() < 0.8
    pref = small.persona_devices[sess["user"], sess["persona"]]
    on_pref = np.asarray(datasets.DEVICES)[pref] == sess["device"].astype(str).to_numpy()
    assert 0.85 < on_pref.mean() < 0.95  # loyalty 0.85 plus chance picks of the same
    peak = small.persona_hours[sess["user"], sess["persona"]]
    start = sess["t"].dt.hour + sess["t"].dt.minute / 60
    gap = np.abs((start.to_numpy() - peak + 12) % 24 - 12)
    assert np.median(gap) < 1.0  # hour_noise 1.0
    np.testing.assert_array_equal(sess["hour"], sess["t"].dt.hour)
    assert small.users["device"].str.count(r"\|").eq(small.shared.astype(int)).all()
    # the habits never change the picks: a seed's items and outcomes stay put
    loyal = datasets.synthetic_streaming(600, 300, seed=7, device_loyalty=1.0, hour_noise=0.0)
    pd.testing.assert_frame_equal(
        small.events.sort_values(["session", "timestamp"])[["user", "item", "event"]]
        .reset_index(drop=True),
        loyal.events.sort_values(["session", "timestamp"])[["user", "item", "event"]]
        .reset_index(drop=True))
    with pytest.raises(ValueError, match="device_loyalty"):
        datasets.synthetic_streaming(10, 100, device_loyalty=1.5)
    with pytest.raises(ValueError, match="main_share"):
        datasets.synthetic_streaming(10, 100, main_share=1.0)


def test_household_members_differ_in_taste(small):
    """A shared household's people differ: a child watches family titles only (on a tablet
    mostly), the second persona's favourite genre is rarely the main viewer's, and
    pick_probability is the distribution the picks were drawn from."""
    ev, users = small.events, small.users
    child = small.child
    assert users["child"].to_numpy().tolist() == child.tolist()
    assert not child[~small.shared].any() and 0.2 < child[small.shared].mean() < 0.6
    g = small.item_tastes > 0
    kid_g = np.isin(np.array(datasets.GENRES), datasets.CHILD_GENRES)
    family = ~(g & ~kid_g).any(axis=1)
    kid_picks = ev[(ev["event"] == "play") & (ev["persona"] == 1)
                   & child[ev["user"].to_numpy()]]
    assert len(kid_picks) > 100 and family[kid_picks["item"].to_numpy()].all()
    def on_main_favourite(synth):  # the second persona's liking for the main's favourite
        pt = synth.persona_tastes[synth.shared]
        return pt[np.arange(len(pt)), 1, np.argmax(pt[:, 0], axis=1)].mean()

    loose = datasets.synthetic_streaming(600, 300, seed=7, taste_contrast=0.0,
                                         child_fraction=0.0)
    assert on_main_favourite(small) < 0.25 * on_main_favourite(loose)
    # the main viewer watches about main_share (0.75) of a household's sessions
    sess = ev.groupby("session").agg(user=("user", "first"), persona=("persona", "first"))
    assert 0.7 < (sess.loc[small.shared[sess["user"]], "persona"] == 0).mean() < 0.8
    # pick_probability: rows sum to 1, zero off the family titles for a child, and the
    # empirical pick frequencies of all persona-0 picks follow it (total variation)
    users_ = np.arange(small.shared.size)
    p1 = small.pick_probability(users_, 1)
    np.testing.assert_allclose(p1[small.shared].sum(axis=1), 1.0, atol=1e-6)
    assert np.all(p1[child][:, ~family] < 1e-9)
    plays = ev[(ev["event"] == "play") & (ev["persona"] == 0)]
    p0 = small.pick_probability(plays["user"].to_numpy(), 0).mean(axis=0)
    freq = np.bincount(plays["item"].to_numpy(), minlength=p0.size) / len(plays)
    assert 0.5 * np.abs(freq - p0).sum() < 0.12
    for bad in ({"child_fraction": 1.5}, {"taste_contrast": -0.1}, {"child_fraction": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            datasets.synthetic_streaming(10, 100, **bad)


def test_pick_probability_from_observed_picks(small):
    """pick_probability(observed=): the generator's structure with the preference
    inferred from picks.  Checked against the EM fixed point written out in NumPy
    (preference recovered from the output by least squares), and: no picks give the
    prior's mean preference, a persona's own picks move towards its true distribution."""
    ev = small.events
    plays = ev[(ev["event"] == "play") & (ev["persona"] == 0)]
    users_ = np.flatnonzero(~small.shared)[:40]
    picks = [plays.loc[plays["user"] == u, "item"].to_numpy() for u in users_]
    post = small.pick_probability(users_, 0, observed=picks)
    prior = small.pick_probability(users_, 0, observed=[[] for _ in users_])
    G = small.item_tastes.shape[1]
    np.testing.assert_allclose(prior, small.pick_probability(users_, np.full((40, G), 1 / G)),
                               rtol=1e-12)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-9)
    true = small.pick_probability(users_, 0)

    def tv(a):
        return 0.5 * np.abs(a - true).sum(axis=1)

    assert tv(post).mean() < 0.6 * tv(prior).mean()
    # the fixed point: pref = (a + sum_n resp_n) / (G a + sum_n,g resp_n(g)), resp_n(g)
    # proportional to (1 - e) pref_g P(item_n | g) against e P_explore(item_n) (an
    # exploring pick says nothing about the preference); P(item | g) by popularity x the
    # persona's liking exp(item_taste z . v) within the genre
    g = small.item_tastes > 0
    pop, e, a = small.item_popularity, small.explore, small.taste_concentration
    expl = pop / pop.sum()
    assert small.item_taste > 0
    for u, row, items in zip(users_[:5], post[:5], picks[:5]):
        w = pop * np.exp(small.item_taste * small.item_factors @ small.persona_factors[u, 0])
        given = g * w[:, None] / (g * w[:, None]).sum(axis=0)
        pref = np.linalg.lstsq((1 - e) * given, row - e * expl, rcond=None)[0]
        num = (1 - e) * given[items] * pref
        resp = num / (num.sum(axis=1, keepdims=True) + e * expl[items][:, None])
        np.testing.assert_allclose(pref, (a + resp.sum(axis=0)) / (G * a + resp.sum()),
                                   atol=1e-6)
    # a child's inferred list stays on the family titles
    kid = np.flatnonzero(small.child)[:5]
    kid_picks = [ev.loc[(ev["user"] == u) & (ev["persona"] == 1), "item"].to_numpy()
                 for u in kid]
    kid_g = np.isin(np.array(datasets.GENRES), datasets.CHILD_GENRES)
    family = ~(g & ~kid_g).any(axis=1)
    assert np.all(small.pick_probability(kid, 1, observed=kid_picks)[:, ~family] == 0)
    for bad, kwargs in ((("observed",), {"observed": [[0]]}),
                        (("observed",), {"observed": [[10 ** 6]] * 40}),
                        (("observed",), {"observed": "abc"})):
        with pytest.raises(ValueError, match=bad[0]):
            small.pick_probability(users_, 0, **kwargs)
    with pytest.raises(ValueError, match="users"):
        small.pick_probability([10 ** 6], 0)
    with pytest.raises(ValueError, match="persona"):
        small.pick_probability(users_, 2)
    with pytest.raises(ValueError, match="persona"):
        small.pick_probability(users_, np.ones((3, 2)))


def test_item_taste_within_genre(small):
    """item_taste: within a genre a persona picks by popularity x exp(item_taste z . v).
    The accounts, sessions and who watched them do not depend on it (its vectors come
    from a stream of their own); picks lean to the persona's own liked titles as much as
    pick_probability says (mean z . v over picks against its expectation under
    pick_probability, an independent NumPy sum), and not at all with item_taste=0."""
    flat = datasets.synthetic_streaming(600, 300, seed=7, item_taste=0.0)
    sess = ["session", "user", "persona", "device", "hour"]

    def sessions(s):
        return s.events[sess].drop_duplicates().sort_values("session").reset_index(drop=True)

    pd.testing.assert_frame_equal(sessions(small), sessions(flat))
    np.testing.assert_array_equal(small.persona_tastes, flat.persona_tastes)
    np.testing.assert_array_equal(small.persona_factors, flat.persona_factors)
    solo = ~small.shared
    np.testing.assert_array_equal(small.persona_factors[solo, 0],
                                  small.persona_factors[solo, 1])
    assert small.item_factors.shape == (300, datasets.TASTE_DIMS)
    assert small.item_taste == datasets.ITEM_TASTE > 0

    def lean(s):
        plays = s.events[s.events["event"] == "play"]
        u, i, who = (plays[c].to_numpy() for c in ("user", "item", "persona"))
        zv = np.einsum("nd,nd->n", s.persona_factors[u, who], s.item_factors[i])
        expect = np.empty(u.size)
        for w in (0, 1):  # E[z . v] of each pick under pick_probability
            m = who == w
            p = s.pick_probability(u[m], w)
            expect[m] = np.einsum("ni,id,nd->n", p, s.item_factors, s.persona_factors[u[m], w])
        return zv.mean(), expect.mean(), zv.std() / np.sqrt(zv.size)

    got, expect, se = lean(small)
    assert got > 0.3 and abs(got - expect) < 4 * se, (got, expect, se)
    got, expect, se = lean(flat)
    assert abs(got) < 0.1 and abs(got - expect) < 4 * se, (got, expect, se)
    for bad in (-0.5, "x", float("nan")):
        with pytest.raises(ValueError, match="item_taste"):
            datasets.synthetic_streaming(10, 100, item_taste=bad)
