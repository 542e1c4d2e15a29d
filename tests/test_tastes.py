"""Shared accounts: tastes(user), taste-aware top picks, per-taste home page rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tastemaker as tm
from hypothesis import given, settings
from hypothesis import strategies as st
from tastemaker.pages import Personalizer, Taste, Tastes
from tastemaker.pages.tastes import interleave

N_ITEMS = 60


def _obvious_log(seed=0, n_single=12, n_shared=12, sessions=24):
    """Accounts whose people are obvious: persona A watches items 0-29 on the tv at 21h,
    persona B items 30-59 on the tablet at 16h; single accounts are A-like or B-like."""
    rng = np.random.default_rng(seed)
    rows = []
    sid = 0
    n_users = n_single + n_shared
    for u in range(n_users):
        shared = u >= n_single
        for s in range(sessions):
            who = (s % 2) if shared else (u % 2)
            lo = 0 if who == 0 else 30
            dev = ("tv" if who == 0 else "tablet") if rng.random() < 0.9 else "phone"
            hour = int((21 if who == 0 else 16) + rng.normal(0, 0.8)) % 24
            for it in rng.choice(np.arange(lo, lo + 30), size=3, replace=False):
                rows.append((u, int(it), "play", s * 86400.0 + hour * 3600, sid, dev, hour, who))
                rows.append((u, int(it), "complete", s * 86400.0 + hour * 3600 + 60, sid,
                             dev, hour, who))
            sid += 1
    ev = pd.DataFrame(rows, columns=["user", "item", "event", "timestamp", "session",
                                     "device", "hour", "persona"])
    return ev, np.arange(n_users) >= n_single


@pytest.fixture(scope="module")
def obvious():
    ev, shared = _obvious_log()
    x = tm.Interactions.from_frame(ev, event="event", timestamp="timestamp",
                                   session="session", context=("device", "hour"))
    model = tm.ALS(factors=8, iterations=10, regularization=0.1, random_state=0).fit(
        x.to_csr(), show_progress=False)
    return ev, shared, x, model


def test_detection_on_an_obvious_case(obvious):
    _ev, shared, x, model = obvious
    comp = Tastes(n_topics=4)
    fits = comp.fit_users(model, x, np.arange(x.n_users))
    k = np.array([f.k for f in fits])
    np.testing.assert_array_equal(k > 1, shared[x.user_ids])
    assert np.all(k[~shared[x.user_ids]] == 1)  # one person: one taste
    # one account at a time gives the same answer as the batch
    for u in (0, x.n_users - 1):
        assert len(comp.find(model, x, u)) == k[u]


def test_tastes_cover_the_history_by_person(obvious):
    ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    tastes = Tastes(n_topics=4).find(model, x, u)
    assert len(tastes) == 2 and all(isinstance(t, Taste) for t in tastes)
    assert sum(t.weight for t in tastes) == pytest.approx(1.0)
    assert tastes[0].weight >= tastes[1].weight
    by_dev = {t.context["device"]: t for t in tastes}
    assert set(by_dev) == {"tv", "tablet"}
    assert set(by_dev["tv"].items) <= set(range(30))
    assert set(by_dev["tablet"].items) <= set(range(30, 60))
    assert abs(by_dev["tv"].context["hour"] - 21) < 1.5
    # the sessions split as the people did
    mine = ev[ev["user"] == x.user_ids[u]].groupby("session")["persona"].first()
    assert set(mine.loc[by_dev["tv"].sessions]) == {0}
    hist = set(x.item_ids[x.item_idx[x.user_idx == u]].tolist())
    assert set(by_dev["tv"].items) | set(by_dev["tablet"].items) == hist
    d = tastes[0].to_dict()
    assert set(d) == {"items", "weight", "sessions", "context"}


def test_one_taste_fit_matches_closed_form(obvious):
    """K = 1 parameters against independent numpy: smoothed device frequencies, the
    circular mean hour."""
    _ev, _shared, x, model = obvious
    comp = Tastes(max_tastes=1, n_topics=4)
    u = 0
    fit = comp.fit_users(model, x, [u])[0]
    s = x.sessions
    sl = s.of_user(u)
    dev = s.context["device"][sl]
    vocab = np.unique(s.context["device"])
    counts = np.array([(dev == v).sum() for v in vocab], dtype=float)
    np.testing.assert_allclose(np.exp(fit.cat["device"][1][0]),
                               (counts + 0.5) / (counts.sum() + 0.5 * vocab.size))
    ang = s.context["hour"][sl] * 2 * np.pi / 24
    mu = np.arctan2(np.sin(ang).sum(), np.cos(ang).sum())
    assert fit.circ["hour"][1][0] == pytest.approx(mu)
    assert fit.k == 1 and fit.resp.shape == (sl.stop - sl.start, 1)


def test_posterior_picks_who_is_watching(obvious):
    _ev, shared, x, model = obvious
    comp = Tastes(n_topics=4)
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    fit = comp.fit_users(model, x, [u])[0]
    tastes = comp._describe(x, fit, order=False)
    tv = next(j for j, t in enumerate(tastes) if t.context["device"] == "tv")
    p = comp.posterior(fit, {"device": "tv", "hour": 21})
    assert p[tv] > 0.95 and p.sum() == pytest.approx(1.0)
    assert comp.posterior(fit, {"device": "tablet", "hour": 16})[tv] < 0.05
    # unknown columns and values are ignored: the prior
    np.testing.assert_allclose(comp.posterior(fit, {"device": "toaster", "weekday": 3}),
                               np.exp(fit.log_weight))
    with pytest.raises(ValueError, match="context"):
        comp.posterior(fit, {"hour": "late"})


def test_rank_auto_and_context(obvious):
    _ev, shared, x, model = obvious
    comp = Tastes(n_topics=4)
    solo = int(np.flatnonzero(~shared[x.user_ids])[0])
    assert comp.rank(model, x, solo, 10) is None  # one taste: the single vector serves
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    assert comp.rank(model, x, u, 10, tastes="single") is None
    ids, _scores, src, _tastes, _w = comp.rank(model, x, u, 10)
    seen = set(x.item_idx[x.user_idx == u].tolist())
    assert len(set(ids.tolist())) == ids.size and not seen & set(ids.tolist())
    assert set(src.tolist()) == {0, 1}  # both people are served
    ids_tv, *_ = comp.rank(model, x, u, 6, context={"device": "tv", "hour": 21})
    ids_tab, *_ = comp.rank(model, x, u, 6, context={"device": "tablet", "hour": 16})
    # each person's own kind of titles (items 0-29 for the tv viewer)
    assert np.mean(x.item_ids[ids_tv] < 30) > 0.8
    assert np.mean(x.item_ids[ids_tab] >= 30) > 0.8
    with pytest.raises(ValueError, match="tastes"):
        comp.rank(model, x, u, 10, tastes="many")
    with pytest.raises(ValueError, match="context"):
        comp.rank(model, x, u, 10, context="tv")


def test_auto_serves_the_main_viewer_with_the_account_vector(obvious):
    """tastes="auto": the heaviest taste's picks are the account vector's own ranking (in
    order, skipping what the other taste placed), the other taste's come from a vector
    of its titles alone (numpy reference: the ALS fold-in, solved here), and the shares
    follow the weights tempered by ``balance``."""
    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    comp = Tastes(n_topics=4, balance=0.5)
    fit = comp.fit_users(model, x, [u])[0]
    ids, _sc, src, _t, w = comp.rank(model, x, u, 12, fit=fit)
    main = int(np.argmax(fit.log_weight))
    single, _ = model.recommend(u, x.to_csr()[u], N=60)
    mine = ids[src == main].tolist()
    assert mine == [i for i in single.tolist() if i not in set(ids[src != main].tolist())][
        :len(mine)]
    lw = fit.log_weight * 0.5
    np.testing.assert_allclose(w, np.exp(lw) / np.exp(lw).sum())
    # the other taste: ALS fold-in of its share-weighted titles (independent solve)
    row = x.to_csr()[u]
    share = Tastes.shares(x, fit, row.indices)[:, 1 - main]
    y = model.item_factors.astype(np.float64)
    val = row.data * share
    keep = val != 0  # a title of none of its sessions is unobserved, not observed at 0
    c = model.alpha * val[keep]
    yh = y[row.indices[keep]]
    reg = model._checked_params()["regularization"]
    A = y.T @ y + reg * np.eye(y.shape[1]) + (yh.T * (c - 1)) @ yh
    v = np.linalg.solve(A, (yh * c[:, None]).sum(axis=0))
    got = Tastes.vectors(model, x, fit, row.indices, row.data)[1 - main]
    np.testing.assert_allclose(got, v, rtol=2e-3, atol=2e-4)
    # main_account=False: both tastes by their own vectors, so the main list changes
    other = Tastes(n_topics=4, balance=0.5, main_account=False).rank(model, x, u, 12, fit=fit)
    assert other[0].tolist() != ids.tolist() or other[2].tolist() != src.tolist()


def test_bad_parameters(obvious):
    ev, _shared, x, model = obvious
    for kw, msg in (({"max_tastes": 0}, "max_tastes"), ({"criterion": "x"}, "criterion"),
                    ({"balance": 2}, "balance"), ({"circular": [1]}, "circular"),
                    ({"categorical": "hour"}, "categorical"), ({"n_init": 0}, "n_init"),
                    ({"penalty": 0}, "penalty"), ({"penalty": "x"}, "penalty"),
                    ({"blend": -0.1}, "blend"), ({"main_account": "yes"}, "main_account"),
                    ({"context_contrast": -0.5}, "context_contrast"),
                    ({"context_contrast": "x"}, "context_contrast"),
                    ({"context_contrast": float("nan")}, "context_contrast"),
                    ({"context_contrast": 1e9}, "context_contrast"),
                    ({"context_regularization": 0}, "context_regularization"),
                    ({"context_regularization": -2.0}, "context_regularization"),
                    ({"context_regularization": 1e9}, "context_regularization"),
                    ({"context_regularization": None}, "context_regularization"),
                    ({"uncertain_split": -1.0}, "uncertain_split"),
                    ({"uncertain_split": float("nan")}, "uncertain_split"),
                    ({"uncertain_split": 1e9}, "uncertain_split"),
                    ({"uncertain_split": "x"}, "uncertain_split")):
        with pytest.raises(ValueError, match=msg):
            Tastes(**kw).fit_users(model, x, [0])
    plain = tm.Interactions.from_frame(ev, event="event")
    with pytest.raises(ValueError, match="sessions"):
        Tastes().fit_users(model, plain, [0])


def test_uncertain_split_serves_a_plausible_second_taste(obvious):
    """An account the criterion keeps at one taste (a heavy penalty here) still serves its
    two-taste fit under "auto", the lighter taste's share scaled by
    q = 1 / (1 + exp((BIC2 - BIC1) / (2 t))) (numpy reference); q = 0 (t = 0) or a share
    that wins no slot leaves the single vector; detection and contexts are unchanged."""
    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    for t in (1e5, 30.0):
        comp = Tastes(n_topics=4, penalty=1e4, balance=0.5, uncertain_split=t)
        fit = comp.fit_users(model, x, [u])[0]
        assert fit.k == 1 and fit.runner_up is not None and fit.runner_up.k == 2
        assert len(comp.find(model, x, u, fit=fit)) == 1  # detection: one taste
        with np.errstate(over="ignore"):
            q = 1.0 / (1.0 + np.exp((fit.bic[1] - fit.bic[0]) / (2.0 * t)))
        assert comp.split_doubt(fit) == pytest.approx(q, rel=1e-9)
        alt = fit.runner_up
        main = int(np.argmax(alt.log_weight))
        w = np.exp(alt.log_weight * 0.5)
        w = q * w / w.sum()
        w[main] += 1.0 - q
        got = comp.rank(model, x, u, 12, fit=fit)
        if t == 1e5:  # q ~ 1/2: both tastes of the runner-up serve, as a found split would
            ids, _sc, src, tastes, weights = got
            np.testing.assert_allclose(weights, w)
            assert len(tastes) == 2 and set(src.tolist()) == {0, 1}
            same = Tastes(n_topics=4, balance=0.5).rank(model, x, u, 12, fit=alt)
            share = np.exp(alt.log_weight * 0.5)
            if np.allclose(share / share.sum(), weights, atol=0.02):
                assert ids.tolist() == same[0].tolist()
        else:  # q tiny: the lighter share wins no slot of 12
            assert q < 1e-3 and got is None
        # the context path and tastes="single" never use the runner-up
        assert comp.rank(model, x, u, 12, context={"device": "tv", "hour": 21},
                         fit=fit) is None
        assert comp.rank(model, x, u, 12, tastes="single", fit=fit) is None
    off = Tastes(n_topics=4, penalty=1e4, uncertain_split=0.0)
    fit = off.fit_users(model, x, [u])[0]
    assert off.split_doubt(fit) == 0.0 and off.rank(model, x, u, 12, fit=fit) is None
    # the Personalizer serves what the component ranks
    pz = Personalizer(model, x)
    pz.set_tastes(Tastes(n_topics=4, penalty=1e4, uncertain_split=1e5))
    ids = Tastes(n_topics=4, penalty=1e4, uncertain_split=1e5).rank(model, x, u, 10)[0]
    ext = int(x.user_ids[u])
    assert pz.top_picks(ext, 10).items == x.item_ids[ids].tolist()
    assert len(pz.tastes(ext)) == 1


def test_interleave_slot_counts_without_items():
    """``distinct=False`` reads the quotas alone: repeated ids are placed as they come."""
    items, src = interleave([[7] * 9, [7] * 9], np.array([0.75, 0.25]), 8, distinct=False)
    assert items == [7] * 8 and src.count(0) == 6 and src.count(1) == 2


def _numpy_shares(x, fit, items):
    """Share of each title's (positive) plays in each taste's sessions, by loops over the
    account's sessions (independent of Tastes.shares)."""
    s = x.sessions
    per = np.zeros((len(items), fit.k))
    where = {int(i): n for n, i in enumerate(items)}
    for row, resp in zip(fit.sessions, fit.resp):
        for t in range(s.indptr[row], s.indptr[row + 1]):
            n = where.get(int(s.item[t]))
            if n is not None:
                per[n] += resp * max(s.value[t], 0.0)
    return per / per.sum(axis=1, keepdims=True)


def _numpy_fold_in(model, items, entries, scale=1.0):
    """Implicit ALS fold-in of one row (Hu et al.; dislikes: preference 0), solved here,
    with the model's regularization times ``scale``."""
    y = model.item_factors.astype(np.float64)
    keep = entries != 0
    e, yh = entries[keep], y[items[keep]]
    c = model.alpha * np.abs(e)
    reg = model._checked_params()["regularization"] * scale
    A = y.T @ y + reg * np.eye(y.shape[1]) + (yh.T * (c - 1)) @ yh
    return np.linalg.solve(A, (yh * np.where(e > 0, c, 0.0)[:, None]).sum(axis=0))


def test_contrastive_fold_in_matches_numpy(obvious):
    """contrast: title i enters taste j's fold-in as v s - contrast |v| (1 - s) with s
    its share in j after blend; the other person's titles become dislikes."""
    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    fit = Tastes(n_topics=4).fit_users(model, x, [u])[0]
    assert fit.k == 2
    row = x.to_csr()[u]
    share = _numpy_shares(x, fit, row.indices)
    blend = np.array([0.0, 0.3])
    for contrast in (0.0, 0.25, 2.0):
        got = Tastes.vectors(model, x, fit, row.indices, row.data, blend, contrast)
        for j in range(2):
            s = blend[j] + (1 - blend[j]) * share[:, j]
            e = row.data * s - contrast * np.abs(row.data) * (1 - s)
            if blend[j] == 0:  # the other person's titles become dislikes
                assert (e < 0).any() == (contrast > 0)
            np.testing.assert_allclose(got[j], _numpy_fold_in(model, row.indices, e),
                                       rtol=2e-3, atol=2e-4)
    # the account's own vector (blend 1) is untouched by contrast
    acc = Tastes.vectors(model, x, fit, row.indices, row.data, 1.0, 5.0)
    np.testing.assert_allclose(acc[0], _numpy_fold_in(model, row.indices, row.data),
                               rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(acc[1], acc[0], rtol=1e-6)
    with pytest.raises(ValueError, match="contrast"):
        Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, -1.0)
    # served: the tablet viewer's picks under contrast stay the tablet viewer's titles
    ids, *_ = Tastes(n_topics=4, context_contrast=2.0).rank(
        model, x, u, 6, context={"device": "tablet", "hour": 16})
    assert np.mean(x.item_ids[ids] >= 30) > 0.8


def test_context_vectors_take_context_contrast_and_regularization(obvious):
    """With a context, the tastes' vectors are folded in with context_contrast and the
    model's regularization times context_regularization (NumPy reference), and the
    confident posterior's list is that vector's own top picks; without a context the
    interleave keeps the plain fold-in."""
    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    comp = Tastes(n_topics=4, context_contrast=0.5, context_regularization=40.0)
    fit = comp.fit_users(model, x, [u])[0]
    row = x.to_csr()[u]
    share = _numpy_shares(x, fit, row.indices)
    e = row.data[:, None] * share - 0.5 * np.abs(row.data)[:, None] * (1 - share)
    ref = [_numpy_fold_in(model, row.indices, e[:, j], 40.0) for j in range(2)]
    got = Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, 0.5, 40.0)
    for j in range(2):
        np.testing.assert_allclose(got[j], ref[j], rtol=2e-3, atol=2e-4)
    tv = next(j for j, t in enumerate(comp._describe(x, fit, order=False))
              if t.context["device"] == "tv")
    ids, scores, src, _t, w = comp.rank(model, x, u, 6, context={"device": "tv", "hour": 21},
                                        fit=fit)
    assert w[tv] > 0.99 and set(src.tolist()) == {tv}
    sc = model.item_factors.astype(np.float64) @ ref[tv]
    sc[row.indices] = -np.inf
    np.testing.assert_array_equal(ids, np.argsort(-sc, kind="stable")[:6])
    np.testing.assert_allclose(scores, sc[ids], rtol=2e-3, atol=2e-4)
    # no context: the plain fold-in (the lighter taste's vector, no contrast, scale 1)
    ids_auto, _s, src_auto, *_ = comp.rank(model, x, u, 12, fit=fit)
    light = int(np.argmin(fit.log_weight))
    plain = Tastes.vectors(model, x, fit, row.indices, row.data)[light]
    sc = model.item_factors.astype(np.float64) @ plain.astype(np.float64)
    sc[row.indices] = -np.inf
    mine = ids_auto[src_auto == light].tolist()
    assert mine == [i for i in np.argsort(-sc, kind="stable").tolist()
                    if i not in set(ids_auto[src_auto != light].tolist())][:len(mine)]
    with pytest.raises(ValueError, match="regularization"):
        Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, 0.0, 0.0)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.05, 200.0), st.floats(0.0, 3.0))
def test_regularization_scale_is_the_models_own_fold_in(obvious, scale, contrast):
    """The one-row solves at regularization x scale equal the model's batch fold-in with
    its regularization set to that (an independent path: a copy of the model)."""
    import copy

    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    fit = Tastes(n_topics=4).fit_users(model, x, [u])[0]
    row = x.to_csr()[u]
    other = copy.deepcopy(model)
    other.regularization = model._checked_params()["regularization"] * scale
    np.testing.assert_allclose(
        Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, contrast, scale),
        Tastes.vectors(other, x, fit, row.indices, row.data, 0.0, contrast),
        rtol=2e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.5, 20.0), st.floats(0.5, 20.0), st.integers(0, 1))
def test_contrast_pushes_a_taste_away_from_the_other_titles(obvious, g1, g2, j):
    """Raising contrast weights the other person's titles' squared scores more in the
    fold-in's loss, so (weighted by their dislike confidence) those scores never grow:
    x(g) minimizes f(x) + g * x^T G x with G fixed while every such entry is negative."""
    _ev, shared, x, model = obvious
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    fit = Tastes(n_topics=4).fit_users(model, x, [u])[0]
    row = x.to_csr()[u]
    s = Tastes.shares(x, fit, row.indices)[:, j]
    lo, hi = sorted((g1, g2))
    other = s < 0.5
    # the other titles are dislikes at both values and the own titles likes
    assert other.any() and np.all(lo * (1 - s[other]) > s[other])
    assert np.all(s[~other] > hi * (1 - s[~other]))
    y = model.item_factors.astype(np.float64)[row.indices[other]]
    w = model.alpha * np.abs(row.data[other]) * (1 - s[other])

    def g(vec):
        return float(np.sum(w * (y @ vec.astype(np.float64)) ** 2))

    a = Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, lo)[j]
    b = Tastes.vectors(model, x, fit, row.indices, row.data, 0.0, hi)[j]
    assert g(b) <= g(a) * (1 + 1e-3) + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=12, unique=True), min_size=1,
                max_size=4),
       st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4), st.integers(1, 25))
def test_interleave_property(lists, w, n):
    weights = np.array(w[:len(lists)])
    items, src = interleave(lists, weights, n)
    assert len(items) == len(set(items)) <= n
    assert len(items) == min(n, len(set().union(*map(set, lists))))
    for it, j in zip(items, src):
        assert it in lists[j]
    # Sainte-Lague: while every list still has fresh items, no list is more than one
    # ahead of its share of the prefix
    if sum(len(a) for a in lists) == len(set().union(*map(set, lists))):  # disjoint
        lens = np.array([len(a) for a in lists])
        counts = np.zeros(len(lists))
        for pos, j in enumerate(src):
            if np.any(counts >= lens):
                break  # a list ran out: the others take its share from here
            counts[j] += 1
            share = weights / weights.sum() * (pos + 1)
            assert np.all(counts <= np.floor(share) + 1 + 1e-9)


# ------------------------------------------------------------------ Personalizer
@pytest.fixture(scope="module")
def pz(obvious):
    _ev, _shared, x, model = obvious
    return Personalizer(model, x)


def test_personalizer_tastes_and_top_picks(obvious, pz):
    _ev, shared, x, _model = obvious
    solo = int(x.user_ids[np.flatnonzero(~shared[x.user_ids])[0]])
    both = int(x.user_ids[np.flatnonzero(shared[x.user_ids])[0]])
    assert len(pz.tastes(solo)) == 1 and len(pz.tastes(both)) == 2
    # one-taste account: auto is exactly single
    assert pz.top_picks(solo, 8).items == pz.top_picks(solo, 8, tastes="single").items
    auto = pz.top_picks(both, 10)
    assert len(auto.items) == 10 and len(set(auto.items)) == 10
    assert auto.kind == "top_picks" and len(auto.reasons) == 10
    tv = pz.top_picks(both, 6, context={"device": "tv", "hour": 21})
    tab = pz.top_picks(both, 6, context={"device": "tablet", "hour": 16})
    assert np.mean(np.array(tv.items) < 30) > 0.8 and np.mean(np.array(tab.items) >= 30) > 0.8
    # the Personalizer ranks as the component does (same vectors, same interleave)
    u = x.user_index(both)
    for ctx in (None, {"device": "tablet", "hour": 16}):
        ids = Tastes().rank(_model, x, u, 10, context=ctx)[0]
        assert pz.top_picks(both, 10, context=ctx).items == x.item_ids[ids].tolist()
    with pytest.raises(ValueError, match="tastes"):
        pz.top_picks(both, 5, tastes="both")
    with pytest.raises(ValueError, match="unknown user"):
        pz.tastes(10**6)


def test_homepage_rows_per_taste_or_interleaved(obvious, pz):
    _ev, shared, x, _model = obvious
    both = int(x.user_ids[np.flatnonzero(shared[x.user_ids])[0]])
    page = pz.homepage(both, rows=["top_picks"], row_size=5)
    titles = [r.title for r in page.rows]
    assert len(page.rows) == 2 and len(set(titles)) == 2
    assert any("on the tv" in t for t in titles) and any("on the tablet" in t for t in titles)
    items = page.items()
    assert len(items) == len(set(items)) == 10  # never twice on a page
    one = pz.homepage(both, rows=["top_picks"], row_size=5, tastes="interleave")
    assert len(one.rows) == 1 and one.rows[0].title == "Top picks for you"
    solo = int(x.user_ids[np.flatnonzero(~shared[x.user_ids])[0]])
    assert len(pz.homepage(solo, rows=["top_picks"], row_size=5).rows) == 1
    with pytest.raises(ValueError, match="tastes"):
        pz.homepage(both, tastes="columns")


def test_bundle_keeps_sessions_and_tastes(obvious, pz, tmp_path):
    _ev, shared, x, _model = obvious
    pz.set_tastes(Tastes(n_topics=4, balance=0.5))
    path = tmp_path / "bundle.tm"
    pz.save(path)
    back = tm.load(path)
    both = int(x.user_ids[np.flatnonzero(shared[x.user_ids])[0]])
    assert back.sessions == pz.sessions
    assert back._tastes.get_params() == pz._tastes.get_params() | {
        "categorical": list(pz._tastes.categorical)}
    assert back.top_picks(both, 8).items == pz.top_picks(both, 8).items
    assert [t.items for t in back.tastes(both)] == [t.items for t in pz.tastes(both)]
    pz.set_tastes(None)  # off: a single vector everywhere
    assert len(pz.tastes(both)) == 1
    assert pz.top_picks(both, 8).items == pz.top_picks(both, 8, tastes="single").items
    pz.set_tastes(Tastes())


def test_synthetic_accounts_are_told_apart():
    """On the generator's log, shared accounts are found far above chance and every
    detected taste is mostly one persona's sessions."""
    synth = tm.datasets.synthetic_streaming(300, 200, seed=2, sessions_per_user=30)
    x = synth.interactions(session="session", context=("device", "hour"))
    model = tm.ALS(factors=16, iterations=8, random_state=0).fit(x.to_csr(),
                                                                 show_progress=False)
    fits = Tastes().fit_users(model, x, np.arange(x.n_users))
    pred = np.array([f.k > 1 for f in fits])
    truth = synth.shared[x.user_ids]
    tp = (pred & truth).sum()
    f1 = 2 * tp / (pred.sum() + truth.sum())
    assert f1 > 0.7 and (pred & ~truth).sum() <= 0.05 * (~truth).sum()
    persona = synth.events.groupby("session")["persona"].first()
    purity = []
    for f in fits:
        if f.k > 1:
            who = persona.loc[x.sessions.ids[f.sessions]].to_numpy()
            hard = np.argmax(f.resp, axis=1)
            purity.append(max(np.mean(who == hard), np.mean(who != hard)))
    assert np.median(purity) > 0.85


def test_people_rows_split_each_account_by_its_tastes(obvious):
    """people_rows: a one-taste account keeps its row; a K-taste account becomes K rows,
    title i of taste j's row holding v_i times its share in j (NumPy reference by loops
    over the sessions), so an account's rows add up to its own."""
    _ev, _shared, x, model = obvious
    fits = Tastes(n_topics=4).fit_users(model, x, np.arange(x.n_users))
    rows, owner = Tastes.people_rows(x, fits)
    acc = x.to_csr()
    assert rows.shape == (sum(f.k for f in fits), x.n_items)
    np.testing.assert_array_equal(owner, np.repeat(np.arange(x.n_users), [f.k for f in fits]))
    r = 0
    for u, fit in enumerate(fits):
        row = acc[u]
        if fit.k == 1:
            np.testing.assert_allclose(rows[r].toarray(), row.toarray())
        else:
            share = _numpy_shares(x, fit, row.indices)
            for j in range(fit.k):
                ref = np.zeros(x.n_items)
                ref[row.indices] = row.data * share[:, j]
                np.testing.assert_allclose(rows[r + j].toarray().ravel(), ref, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(rows[r:r + fit.k].sum(axis=0)).ravel(),
                                   row.toarray().ravel(), rtol=1e-5)
        r += fit.k
    with pytest.raises(ValueError, match="fits"):
        Tastes.people_rows(x, fits[:-1])


def test_fit_people_is_an_als_on_the_people_rows(obvious):
    """fit_people: an ALS with the model's parameters and people_regularization times its
    regularization, fitted on people_rows (an independent fit of the same rows gives the
    same item factors); each account's vector is the NumPy fold-in of its whole row over
    them; the given model is not changed."""
    _ev, shared, x, model = obvious
    before = model.item_factors.copy()
    comp = Tastes(n_topics=4, people_regularization=2.5)
    fits = comp.fit_users(model, x, np.arange(x.n_users))
    people = comp.fit_people(model, x)
    np.testing.assert_array_equal(model.item_factors, before)
    assert people is not model and type(people) is type(model)
    assert people.regularization == pytest.approx(0.1 * 2.5)
    rows, _ = Tastes.people_rows(x, fits)
    ref = tm.ALS(**dict(model.get_params(), regularization=0.25)).fit(rows, show_progress=False)
    np.testing.assert_allclose(people.item_factors, ref.item_factors, rtol=1e-4, atol=1e-5)
    acc = x.to_csr()
    for u in (0, int(np.flatnonzero(shared[x.user_ids])[0])):
        row = acc[u]
        np.testing.assert_allclose(people.user_factors[u],
                                   _numpy_fold_in(people, row.indices, row.data.astype(float)),
                                   rtol=2e-3, atol=2e-4)
    # it serves: the tastes found with it split a shared account's people as before
    u = int(np.flatnonzero(shared[x.user_ids])[0])
    ids, *_ = comp.rank(people, x, u, 6, context={"device": "tablet", "hour": 16})
    assert np.mean(x.item_ids[ids] >= 30) > 0.8
    # given fits are used as they are
    np.testing.assert_allclose(comp.fit_people(model, x, fits=fits).item_factors,
                               people.item_factors, rtol=1e-6)


def test_fit_people_bad_input(obvious):
    ev, _shared, x, model = obvious
    for kw in ({"people_regularization": 0}, {"people_regularization": -1.0},
               {"people_regularization": 1e9}, {"people_regularization": None},
               {"people_regularization": "x"},
               {"people_regularization": float("nan")}):
        with pytest.raises(ValueError, match="people_regularization"):
            Tastes(**kw).fit_people(model, x)
    csr = x.to_csr()
    with pytest.raises(ValueError, match="model"):
        Tastes().fit_people(tm.EASE(regularization=10.0).fit(csr), x)
    with pytest.raises(ValueError, match="model"):
        Tastes().fit_people("als", x)
    with pytest.raises(ValueError):
        Tastes().fit_people(tm.ALS(factors=4), x)  # not fitted
    with pytest.raises(ValueError, match="interactions"):
        Tastes().fit_people(model, csr)
    with pytest.raises(ValueError, match="sessions"):
        Tastes().fit_people(model, tm.Interactions.from_frame(ev, event="event"))
    small = tm.Interactions.from_frame(ev[ev["user"] < 3], event="event", session="session")
    with pytest.raises(ValueError, match="interactions"):
        Tastes().fit_people(model, small)
    with pytest.raises(ValueError, match="people"):
        Personalizer(model, tm.Interactions.from_frame(ev, event="event"), people=True)
    with pytest.raises(ValueError, match="people"):
        Personalizer(model, x, people="yes")


def test_personalizer_people_saves_and_refreshes(obvious, tmp_path):
    """Personalizer(people=True) serves fit_people's model, keeps it through save/load,
    and refresh refits at the account model's regularization, then on the people."""
    _ev, shared, x, model = obvious
    pz = Personalizer(model, x, people=True)
    served = pz.model
    ref = Tastes().fit_people(model, x)
    np.testing.assert_allclose(served.item_factors, ref.item_factors, rtol=1e-6)
    assert served.regularization == pytest.approx(0.3)
    u = x.user_ids[int(np.flatnonzero(shared[x.user_ids])[0])]
    picks = pz.top_picks(u, 5, context={"device": "tv", "hour": 21})
    pz.save(tmp_path / "b.tm")
    back = tm.load(tmp_path / "b.tm")
    assert back.top_picks(u, 5, context={"device": "tv", "hour": 21}).items == picks.items
    back.refresh(wait=True)
    assert back.model.regularization == pytest.approx(0.3)  # not 0.3 x 3
    np.testing.assert_allclose(back.model.item_factors, ref.item_factors, rtol=1e-4,
                               atol=1e-5)
