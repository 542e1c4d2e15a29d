"""The product layer: Personalizer, rows, explanations, live updates, bundles."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tastemaker as tm
from tastemaker.pages import Rules, calibrate, mmr
from tastemaker.pages.rerank import genre_mix, kl_divergence

ALS_PARAMS = dict(factors=12, regularization=5.0, iterations=6, random_state=0)


@pytest.fixture(scope="module")
def synth():
    return tm.datasets.synthetic_streaming(n_users=160, n_items=120, seed=3)


@pytest.fixture(scope="module")
def data(synth):
    return synth.interactions()


@pytest.fixture(scope="module")
def catalog(synth):
    cat = synth.items.copy()
    cat["maturity"] = np.where(cat.index % 7 == 0, "R", "PG")
    cat["regions"] = np.where(cat.index % 5 == 0, "US", "")
    return cat


@pytest.fixture(scope="module")
def model(data):
    return tm.ALS(**ALS_PARAMS).fit(data.to_csr(), show_progress=False)


def make(model, data, catalog, synth, **kw):
    return tm.Personalizer(model, data, catalog=catalog, events=synth.events,
                           progress_col="watch_fraction", **kw)


@pytest.fixture()
def pers(model, data, catalog, synth):
    return make(model, data, catalog, synth)


def some_users(data, k=6):
    n = np.bincount(data.user_idx, minlength=data.n_users)
    return [data.user_ids[u].item() for u in np.flatnonzero(n >= 8)[:k]]


def seen_of(data, user):
    u = data.user_index(user)
    return set(data.item_ids[data.item_idx[data.user_idx == u]].tolist())


# ------------------------------------------------------------------ explanations
def numpy_als_vector(model, items, values):
    """Independent reference: the exact implicit-ALS solve for one history."""
    y = model.item_factors.astype(np.float64)
    a_, reg = model.alpha, model._checked_params()["regularization"]
    c = a_ * np.abs(values)
    yh = y[items]
    A = y.T @ y + reg * np.eye(y.shape[1]) + (yh.T * (c - 1)) @ yh
    b = (yh * np.where(values > 0, c, 0)[:, None]).sum(axis=0)
    return np.linalg.solve(A, b), A, c


def test_explanations_sum_to_the_score_and_match_numpy(pers, data, model):
    csr = data.to_csr()
    for user in some_users(data):
        u = data.user_index(user)
        row = pers.top_picks(user, n=5)
        items, values = csr[u].indices, csr[u].data.astype(np.float64)
        x, A, c = numpy_als_vector(model, items, values)
        for item, score in zip(row.items, row.scores):
            e = pers.explain(user, item, n=3)
            assert e.score == score  # exactly what top_picks ranked by
            assert sum(v for _, v in e.contributions) + e.rest == pytest.approx(e.score, abs=1e-12)
            vals = [v for _, v in e.contributions]
            assert vals == sorted(vals, reverse=True)
            full = pers.explain(user, item, n=10_000)
            assert abs(full.rest) < 1e-4 * max(1.0, abs(full.score))
            i = data.item_index(item)
            yi = model.item_factors[i].astype(np.float64)
            assert yi @ x == pytest.approx(score, rel=1e-4, abs=1e-5)
            ref = c * (items.astype(np.int64) >= 0) * (values > 0) * (model.item_factors[items]
                                                                     .astype(np.float64)
                                                                     @ np.linalg.solve(A, yi))
            got = dict(full.contributions)
            for j, v in zip(data.item_ids[items].tolist(), ref):
                assert got.get(j, 0.0) == pytest.approx(v, rel=1e-5, abs=1e-7)
            assert set(got) <= seen_of(data, user)


def test_popularity_explanation_has_no_history_terms(data, catalog):
    pop = tm.Popularity().fit(data.to_csr())
    p = tm.Personalizer(pop, data, catalog=catalog)
    user = some_users(data, 1)[0]
    row = p.top_picks(user, n=3)
    e = p.explain(user, row.items[0])
    assert e.method == "none" and e.contributions == [] and e.rest == e.score == row.scores[0]
    assert set(row.items).isdisjoint(seen_of(data, user))


# ------------------------------------------------------------------ rows and pages
def test_top_picks_leave_out_seen_and_are_sorted(pers, data):
    for user in some_users(data):
        row = pers.top_picks(user, n=7)
        assert row.kind == "top_picks" and len(row) == 7 == len(row.reasons)
        assert set(row.items).isdisjoint(seen_of(data, user))
        assert row.scores == sorted(row.scores, reverse=True)
        d = row.to_dict()
        assert d["items"] == row.items and all(isinstance(i, int) for i in d["items"])


def test_because_you_watched_seeds_are_in_history_and_explain_their_rows(pers, data):
    for user in some_users(data, 4):
        rows = pers.because_you_watched(user, n_rows=3, n=5)
        assert rows
        seen = seen_of(data, user)
        for row in rows:
            assert row.seed in seen
            assert row.title == f"Because you watched {pers.title(row.seed)}"
            assert set(row.items).isdisjoint(seen)
            for item, s in zip(row.items, row.scores):
                contrib = dict(pers.explain(user, item, n=10_000).contributions)
                assert contrib[row.seed] == pytest.approx(s, rel=1e-4, abs=1e-6)
                assert s > 0


@pytest.mark.parametrize("row_size", [1, 4, 10])
def test_a_page_never_repeats_a_title(pers, data, row_size):
    for user in some_users(data):
        page = pers.homepage(user, row_size=row_size)
        items = page.items()
        assert len(items) == len(set(items))
        kinds = [r.kind for r in page.rows]
        assert kinds[0] in ("continue_watching", "top_picks")
        assert all(len(r.items) <= row_size for r in page.rows)
        assert page.to_dict()["rows"][0]["kind"] == kinds[0]
        for r in page.rows:
            assert len(r.items) == len(r.scores) == len(r.reasons)
            if r.kind != "continue_watching":
                assert set(r.items).isdisjoint(seen_of(data, user))


def test_homepage_row_kinds(pers, data, synth):
    user = some_users(data, 1)[0]
    page = pers.homepage(user, row_size=5)
    kinds = {r.kind for r in page.rows}
    assert {"top_picks", "because_you_watched", "genre", "trending"} <= kinds
    genre_rows = [r for r in page.rows if r.kind == "genre"]
    cat = synth.items
    for r in genre_rows:
        assert all(r.title in cat.loc[i, "genres"].split("|") for i in r.items)
    only = pers.homepage(user, rows=["trending"], row_size=3)
    assert [r.kind for r in only.rows] == ["trending"]
    counts = only.rows[0].scores
    assert counts == sorted(counts, reverse=True)


def test_continue_watching_comes_from_partial_plays(pers, data, synth):
    ev = synth.events
    last = ev[ev.event.isin(["pause", "complete", "thumbs_down"])].groupby(
        ["user", "item"], observed=True).tail(1)
    partial = last[last.event == "pause"]
    user = int(partial.user.value_counts().index[0])
    expect = set(partial[partial.user == user].item.tolist())
    row = pers.homepage(user, rows=["continue_watching"], row_size=100).rows[0]
    assert set(row.items) == expect
    item = row.items[0]
    pers.record(user, item, "complete")
    after = pers.homepage(user, rows=["continue_watching"], row_size=100).rows
    assert not after or item not in after[0].items


def test_row_order_is_personalised(pers, data):
    orders = {tuple(r.title for r in pers.homepage(u, row_size=5).rows[2:])
              for u in some_users(data, 6)}
    assert len(orders) > 1


def test_business_rules(pers, data, catalog):
    user = some_users(data, 1)[0]
    kids = pers.homepage(user, rules={"max_maturity": "PG-13"}).items()
    assert kids and all(catalog.loc[i, "maturity"] == "PG" for i in kids
                        if i not in seen_of(data, user))
    ca = pers.top_picks(user, 20, rules=Rules(region="CA")).items
    assert all(catalog.loc[i, "regions"] == "" for i in ca)
    base = pers.top_picks(user, 5).items
    denied = pers.top_picks(user, 5, rules={"deny": base[:2]}).items
    assert set(base[:2]).isdisjoint(denied)
    allow = pers.top_picks(user, 5, rules={"allow": base[2:4]}).items
    assert set(allow) == set(base[2:4])
    # availability window: nothing is available before the catalog opens
    cat = catalog.copy()
    cat["available_from"] = pd.Timestamp("2030-01-01")
    p2 = tm.Personalizer(pers.model, data, catalog=cat)
    assert p2.top_picks(user, 5).items == []
    assert p2.top_picks(user, 5, rules={"now": "2031-01-01"}).items == base


def test_rerank_in_top_picks(pers, data):
    user = some_users(data, 1)[0]
    plain = pers.top_picks(user, 8)
    div = pers.top_picks(user, 8, diversity=0.7)
    cal = pers.top_picks(user, 8, calibration=0.9)
    for r in (div, cal):
        assert len(r) == 8 and len(set(r.items)) == 8
        assert set(r.items).isdisjoint(seen_of(data, user))
    assert pers.top_picks(user, 8, diversity=0.0).items == plain.items


def test_mmr_reference():
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(30, 4))
    scores = np.sort(rng.random(30))[::-1]
    assert list(mmr(scores, vec, 10, 0.0)) == list(range(10))
    picked = mmr(scores, vec, 10, 0.5)
    # reference: the greedy rule written out
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    v = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    chosen = [int(np.argmax(rel))]
    while len(chosen) < 10:
        best = max((k for k in range(30) if k not in chosen),
                   key=lambda k: 0.5 * rel[k] - 0.5 * max(v[k] @ v[j] for j in chosen))
        chosen.append(best)
    assert list(picked) == chosen


def reference_calibrate(scores, g, p, n, lam):
    """Steck 2018's greedy, written out item by item."""
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    chosen = []
    for _ in range(n):
        best, best_obj = None, -np.inf
        for k in range(len(scores)):
            if k in chosen:
                continue
            lst = chosen + [k]
            q = g[lst].mean(axis=0)
            obj = (1 - lam) * rel[lst].sum() - lam * kl_divergence(p, q)
            if obj > best_obj:
                best, best_obj = k, obj
        chosen.append(best)
    return chosen


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 1.0))
def test_calibration_is_steck_greedy(seed, weight):
    rng = np.random.default_rng(seed)
    g = (rng.random((25, 5)) < 0.3).astype(float)
    g[g.sum(axis=1) == 0, 0] = 1
    g /= g.sum(axis=1, keepdims=True)
    target = rng.dirichlet(np.ones(5))
    scores = rng.random(25)
    cal = calibrate(scores, g, target, 6, weight)
    assert list(cal) == reference_calibrate(scores, g, target, 6, weight)
    assert list(calibrate(scores, g, target, 6, 0.0)) == list(np.argsort(-scores)[:6])


def test_calibration_brings_back_the_minority_genre():
    # the user watches genre 0 and 1 equally; the best-scored titles are all genre 0
    g = np.zeros((20, 2))
    g[:10, 0] = 1
    g[10:, 1] = 1
    scores = np.r_[np.linspace(1.0, 0.9, 10), np.linspace(0.8, 0.7, 10)]
    target = np.array([0.5, 0.5])
    plain = calibrate(scores, g, target, 6, 0.0)
    cal = calibrate(scores, g, target, 6, 0.99)
    assert genre_mix(g[plain])[1] == 0
    assert genre_mix(g[cal])[1] == pytest.approx(0.5)
    assert 0 < genre_mix(g[calibrate(scores, g, target, 6, 0.9)])[1] < 0.5
    assert kl_divergence(target, genre_mix(g[cal])) < kl_divergence(target, genre_mix(g[plain]))


# ------------------------------------------------------------------ live updates
def test_record_play_removes_the_title_and_moves_the_vector(pers, data):
    user = some_users(data, 1)[0]
    before = pers.top_picks(user, 5)
    pers.record(user, before.items[0], "complete")
    after = pers.top_picks(user, 5)
    assert before.items[0] not in after.items
    assert after.scores != before.scores[1:] + after.scores[-1:]  # vector changed
    e = pers.explain(user, after.items[0], n=10_000)
    assert abs(e.rest) < 1e-4 * max(1.0, abs(e.score))


def test_thumbs_down_removes_the_title_and_pushes_neighbours_down(pers, data):
    user = some_users(data, 3)[2]
    row = pers.top_picks(user, 3)
    bad = row.items[0]
    near = [i for i in pers.similar(bad, 5).items if i not in seen_of(data, user)]
    def scores(items):
        return np.array([pers.explain(user, i, n=0).score for i in items])
    s0 = scores(near)
    pers.record(user, bad, "thumbs_down")
    assert bad not in pers.top_picks(user, 50).items
    assert bad in pers.history(user).items
    s1 = scores(near)
    assert s1.mean() < s0.mean()


def test_record_new_user_and_new_item(model, data, synth):
    cat = synth.items  # 120 catalog titles, some never watched
    p = tm.Personalizer(model, data, catalog=cat)
    unseen = [i for i in cat.index if i not in set(data.item_ids.tolist())]
    new_user = 10**9
    with pytest.raises(ValueError, match="unknown user"):
        p.top_picks(new_user)
    p.record(new_user, data.item_ids[0].item(), "complete")
    row = p.top_picks(new_user, 4)
    assert len(row) == 4 and data.item_ids[0].item() not in row.items
    if unseen:
        known = some_users(data, 1)[0]
        p.record(known, unseen[0], "complete")
        assert unseen[0] in p.history(known).items
        assert p.n_items == data.n_items + 1
        p.top_picks(known, 5)
    with pytest.raises(ValueError, match="not in the catalog"):
        p.record(new_user, 10**7, "play")


def test_refresh_swaps_in_a_new_model_and_keeps_later_events(pers, data):
    user = some_users(data, 1)[0]
    item = pers.top_picks(user, 1).items[0]
    pers.record(user, item, "complete")
    old_model = pers.model
    fut = pers.refresh()
    pers.record(user, pers.top_picks(user, 1).items[0], "play")  # during or after the refit
    fut.result(timeout=60)
    assert pers.model is not old_model
    assert item in pers.history(user).items
    assert pers.explain(user, pers.top_picks(user, 1).items[0], n=0).score == \
        pers.top_picks(user, 1).scores[0]


def test_concurrent_readers_see_consistent_state(pers, data):
    users = some_users(data, 4)
    errors: list = []
    done = threading.Event()
    recorded: dict = {u: set() for u in users}

    def reader(k):
        try:
            while not done.is_set():
                u = users[k % len(users)]
                already = set(recorded[u])  # recorded before this call started
                row = pers.top_picks(u, 6)
                assert len(set(row.items)) == len(row.items)
                assert row.scores == sorted(row.scores, reverse=True)
                assert already.isdisjoint(row.items), "a recorded title came back"
                if row.items:
                    e = pers.explain(u, row.items[0], n=3)
                    assert sum(v for _, v in e.contributions) + e.rest == pytest.approx(e.score)
                page = pers.homepage(u, row_size=4)
                assert len(page.items()) == len(set(page.items()))
                k += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        for step in range(12):
            u = users[step % len(users)]
            item = pers.top_picks(u, 1).items[0]
            pers.record(u, item, "play")
            recorded[u].add(item)
            if step == 3:
                fut = pers.refresh()
        fut.result(timeout=60)
        time.sleep(0.05)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]


# ------------------------------------------------------------------ persistence
def test_save_load_round_trip(pers, data, tmp_path):
    users = some_users(data, 3)
    pers.record(users[0], pers.top_picks(users[0], 1).items[0], "thumbs_up")
    pers.record(10**9, data.item_ids[3].item(), "pause", value=0.25)
    path = tmp_path / "bundle.tm"
    pers.save(path)
    q = tm.load(path)
    assert isinstance(q, tm.Personalizer)
    for u in users + [10**9]:
        assert q.top_picks(u, 5) == pers.top_picks(u, 5)
        assert q.homepage(u).to_dict() == pers.homepage(u).to_dict()
        it = q.top_picks(u, 1).items[0]
        assert q.explain(u, it) == pers.explain(u, it)
    vec = q._state.base.vectors
    assert not vec.flags.writeable  # memory-mapped, read-only
    q.record(users[1], q.top_picks(users[1], 1).items[0], "play")  # serves writes too
    q.refresh(wait=True)
    assert q.top_picks(users[1], 3).items


def test_bundle_errors(tmp_path, pers):
    bad = tmp_path / "bad.tm"
    bad.write_bytes(b"TMMAPPED" + b"\xff" * 40)
    with pytest.raises(ValueError, match="path"):
        tm.load(bad)
    good = tmp_path / "good.tm"
    pers.save(good)
    raw = bytearray(good.read_bytes())
    cut = tmp_path / "cut.tm"
    cut.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ValueError, match="path"):
        tm.load(cut)
    assert not os.path.exists(str(good) + ".tmp")


# ------------------------------------------------------------------ bad input
def test_bad_ids_and_events_give_clear_errors(pers, data):
    user = some_users(data, 1)[0]
    item = data.item_ids[0].item()
    cases = [
        (lambda: pers.top_picks("nobody"), "user"),
        (lambda: pers.top_picks(10**12), "unknown user"),
        (lambda: pers.top_picks(user, n=0), "n"),
        (lambda: pers.top_picks(user, tastes="many"), "tastes"),
        (lambda: pers.top_picks(user, context="tv"), "context"),
        (lambda: pers.top_picks(user, diversity=2.0), "diversity"),
        (lambda: pers.top_picks(user, calibration=-1), "calibration"),
        (lambda: pers.top_picks(user, rules={"colour": "red"}), "rules"),
        (lambda: pers.top_picks(user, rules={"max_maturity": "XYZ"}), "max_maturity"),
        (lambda: pers.top_picks(user, rules={"deny": [10**8]}), "rules.deny"),
        (lambda: pers.explain(user, 10**8), "item"),
        (lambda: pers.explain(user, "x"), "item"),
        (lambda: pers.because_you_watched(user, n_rows=0), "n_rows"),
        (lambda: pers.homepage(user, rows=["nope"]), "rows"),
        (lambda: pers.homepage(user, row_size=0), "row_size"),
        (lambda: pers.record(user, item, "teleport"), "event"),
        (lambda: pers.record(user, item, "play", value=float("nan")), "value"),
        (lambda: pers.record(user, item, "play", timestamp="not a time"), "timestamp"),
        (lambda: pers.record(True, item, "play"), "user"),
        (lambda: tm.Personalizer("model", data), "model"),
        (lambda: tm.Personalizer(pers.model, "data"), "interactions"),
    ]
    for call, word in cases:
        with pytest.raises(ValueError, match=word):
            call()


@pytest.mark.parametrize("transform", ["log1p", "bm25"])
def test_record_builds_values_as_interactions_do(synth, transform):
    ev = synth.events[synth.events.user < 60]
    data = tm.Interactions.from_frame(ev, user="user", item="item", event="event",
                                      timestamp="timestamp", transform=transform)
    model = tm.ALS(**ALS_PARAMS).fit(data.to_csr(), show_progress=False)
    p = tm.Personalizer(model, data)
    user = data.user_ids[0].item()
    item = next(i for i in data.item_ids.tolist() if i not in seen_of(data, user))
    t = pd.Timestamp("2024-06-01")
    p.record(user, item, "complete", timestamp=t)
    new = pd.DataFrame({"user": [user], "item": [item], "event": ["complete"], "timestamp": [t]})
    ref = data.append(new)
    if transform == "bm25":  # the live row keeps the fitted corpus statistics
        from tastemaker.data.weighting import corpus_stats, transform_values

        u = ref.user_index(user)
        m = ref.user_idx == u
        corpus = corpus_stats(data.user_idx, data.item_idx, data.raw_values, data.shape)
        corpus["df"] = np.concatenate([corpus["df"], np.ones(ref.n_items - data.n_items)])
        expect = transform_values(np.zeros(m.sum(), dtype=np.int64), ref.item_idx[m],
                                  ref.raw_values[m], (1, ref.n_items), "bm25", corpus=corpus)
    else:
        m = ref.user_idx == ref.user_index(user)
        expect = ref.values[m]
    got = dict(zip(p.history(user).items, p.history(user).scores))
    want = dict(zip(ref.item_ids[ref.item_idx[m]].tolist(), np.asarray(expect, np.float32)))
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(float(want[k]), rel=1e-6)


def test_readme_personalizer_example_runs(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        pytest.skip("needs the source checkout")
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.S)
    code = next(b for b in blocks if "Personalizer(" in b)
    code = code.replace("n_users=2000, n_items=500", "n_users=300, n_items=150")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README personalizer", "exec"), {"__name__": "readme"})
    assert "Top picks for you" in capsys.readouterr().out
    assert isinstance(tm.load(tmp_path / "home.tm"), tm.Personalizer)


def test_genre_rows_and_calibration_from_item_features(model, data, synth, tmp_path):
    feats = tm.datasets.item_features(synth.items)
    p = tm.Personalizer(model, data, features=feats)  # no catalog: genres from features
    user = some_users(data, 1)[0]
    rows = [r for r in p.homepage(user, row_size=5).rows if r.kind == "genre"]
    assert rows
    for r in rows:
        assert all(r.title in synth.items.loc[i, "genres"].split("|") for i in r.items)
    assert len(p.top_picks(user, 6, calibration=0.8)) == 6
    p.save(tmp_path / "f.tm")
    q = tm.load(tmp_path / "f.tm")
    assert q.features == feats
    assert q.homepage(user, row_size=5).to_dict() == p.homepage(user, row_size=5).to_dict()


_junk = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                  st.lists(st.integers(0, 5), max_size=3), st.binary(max_size=3))


@settings(max_examples=60, deadline=None)
@given(user=_junk, item=_junk, event=st.one_of(_junk, st.sampled_from(["play", "pause"])),
       value=_junk, n=_junk, when=_junk)
def test_junk_input_gives_value_errors_only(model, data, user, item, event, value, n, when):
    p = _JUNK.get("p")
    if p is None:
        p = _JUNK["p"] = tm.Personalizer(model, data)
    calls = [lambda: p.top_picks(user, n=n if isinstance(n, int) else 3),
             lambda: p.explain(user, item, n=3),
             lambda: p.homepage(user, row_size=n if isinstance(n, int) else 3),
             lambda: p.because_you_watched(user, n_rows=1, n=n if isinstance(n, int) else 3),
             lambda: p.similar(item, n=3),
             lambda: p.record(user, item, event, value=value, timestamp=when),
             lambda: p.top_picks(data.user_ids[0].item(), 2, rules={"now": when}),
             lambda: p.top_picks(data.user_ids[0].item(), 2, rules={"deny": item}),
             lambda: p.top_picks(data.user_ids[0].item(), 2, rules={"max_maturity": value})]
    for call in calls:
        try:
            call()
        except ValueError:
            pass
    p.top_picks(data.user_ids[0].item(), 2)  # still serves
    p.save(_JUNK.setdefault("path", _tmp_bundle()))  # and saves


_JUNK: dict = {}


def _tmp_bundle() -> str:
    import tempfile

    return os.path.join(tempfile.mkdtemp(), "junk.tm")


# ------------------------------------------------------------------ other models
def _other_model(name, data, feats):
    cls = getattr(tm, name, None)
    if cls is None:
        pytest.skip(f"{name} is not in this tastemaker")
    csr = data.to_csr()
    if name == "ItemKNN":
        return cls(K=20).fit(csr, show_progress=False)
    if name == "EASE":
        return cls(regularization=20.0).fit(csr, show_progress=False)
    if name == "ContentModel":
        return cls().fit(csr, feats.reindex(data.item_ids))
    return cls(factors=8, iterations=3, random_state=0).fit(csr, feats.reindex(data.item_ids),
                                                            show_progress=False)


def _reference_contributions(name, model, items, values, target):
    if name == "ItemKNN":
        return values * model.similarity_[items][:, [target]].toarray().ravel()
    if name == "EASE":
        return values * model.item_factors[target, items].astype(np.float64)
    if name == "ContentModel":
        e = model.item_factors.astype(np.float64)
        return values * (e[items] @ e[target])
    return None  # HybridALS: the ALS decomposition, checked through the sum


@pytest.mark.parametrize("name", ["ItemKNN", "EASE", "ContentModel", "HybridALS"])
def test_other_models_explain_and_serve(name, data, synth, catalog, tmp_path):
    feats = tm.datasets.item_features(synth.items)
    model = _other_model(name, data, feats)
    p = tm.Personalizer(model, data, catalog=catalog, features=feats)
    csr = data.to_csr()
    for user in some_users(data, 3):
        u = data.user_index(user)
        row = p.top_picks(user, n=5)
        assert row.items and set(row.items).isdisjoint(seen_of(data, user))
        for item, score in zip(row.items, row.scores):
            e = p.explain(user, item, n=10_000)
            assert e.score == score and e.method != "none"
            assert abs(e.rest) < 1e-4 * max(1.0, abs(e.score))
            ref = _reference_contributions(name, model, csr[u].indices,
                                           csr[u].data.astype(np.float64),
                                           data.item_index(item))
            if ref is not None:
                got = dict(e.contributions)
                for j, v in zip(data.item_ids[csr[u].indices].tolist(), ref):
                    assert got.get(j, 0.0) == pytest.approx(v, rel=1e-5, abs=1e-6)
        for r in p.because_you_watched(user, n_rows=2, n=4):
            assert r.seed in seen_of(data, user)
            for item, s in zip(r.items, r.scores):
                assert dict(p.explain(user, item, n=10_000).contributions)[r.seed] == \
                    pytest.approx(s, rel=1e-4, abs=1e-6)
        page = p.homepage(user, row_size=4)
        assert len(page.items()) == len(set(page.items()))
    user = some_users(data, 1)[0]
    first = p.top_picks(user, 3).items[0]
    p.record(user, first, "complete")
    assert first not in p.top_picks(user, 10).items
    p.save(tmp_path / "m.tm")
    q = tm.load(tmp_path / "m.tm")
    assert q.top_picks(user, 5) == p.top_picks(user, 5)
    p.refresh(wait=True)
    assert first in p.history(user).items and len(p.top_picks(user, 5)) == 5


def test_row_dict_and_page_dict_add_titles(pers, data, catalog):
    """One JSON shape for a row (the service and the CLI both print it): to_dict() plus
    each item's catalog title, in order; a page's rows all get it."""
    user = some_users(data, 1)[0]
    row = pers.top_picks(user, 5)
    d = pers.row_dict(row)
    assert {k: v for k, v in d.items() if k != "titles"} == row.to_dict()
    assert d["titles"] == [catalog.loc[i, "title"] for i in row.items]
    page = pers.homepage(user, row_size=4)
    pd_ = pers.page_dict(page)
    assert pd_["user"] == page.to_dict()["user"]
    assert [r["titles"] for r in pd_["rows"]] == [[catalog.loc[i, "title"] for i in r.items]
                                                 for r in page.rows]
    with pytest.raises(ValueError, match="unknown item"):
        pers.row_dict(tm.pages.Row(kind="x", title="x", items=[10**8], scores=[0.0],
                                   reasons=[None]))
    with pytest.raises(ValueError, match="row: expected a Row"):
        pers.row_dict(row.to_dict())
    with pytest.raises(ValueError, match="page: expected a Page"):
        pers.page_dict([row])


@pytest.mark.parametrize("name", ["ContentModel", "HybridALS"])
def test_record_of_a_new_title_describes_it_by_its_features(name, synth, catalog):
    """A title outside the training data, recorded live, gets its item vector from its
    catalog features (the model's add_items), not zeros: "More like this" on it ranks by
    feature cosine (ContentModel) and other users can be recommended it at once."""
    ev = synth.events
    new_titles = [int(i) for i in synth.items.index[:3]]
    x = tm.Interactions.from_frame(ev[~ev["item"].isin(new_titles)], event="event",
                                   timestamp="timestamp", event_weights=synth.event_weights)
    feats = tm.datasets.item_features(synth.items)
    model = (tm.ContentModel(max_dims=4096).fit(x.to_csr(), feats.reindex(x.item_ids))
             if name == "ContentModel" else _other_model(name, x, feats))  # exact cosines
    p = tm.Personalizer(model, x, catalog=catalog, features=feats)
    user = some_users(x, 1)[0]
    new = new_titles[0]
    p.record(user, new, "complete")
    grown = p.model
    assert grown.item_factors.shape[0] == x.n_items + 1 and model is not grown
    assert model.item_factors.shape[0] == x.n_items  # readers' model untouched
    ref = model.item_factors_from_features(feats.reindex([new])) if name == "HybridALS" \
        else None
    if name == "ContentModel":  # independent reference: unit-norm feature rows, cosines
        f = feats.reindex(list(x.item_ids) + [new]).matrix.toarray().astype(np.float64)
        e = f / np.linalg.norm(f, axis=1, keepdims=True)
        np.testing.assert_allclose(grown.item_factors[-1], e[-1], rtol=1e-5, atol=1e-6)
        sim = p.similar(new, n=10)
        cos = e[:-1] @ e[-1]
        assert sim.scores == pytest.approx(np.sort(cos)[::-1][:10].tolist(), rel=1e-4,
                                           abs=1e-5)
        assert all(cos[x.item_index(i)] == pytest.approx(s, rel=1e-4, abs=1e-5)
                   for i, s in zip(sim.items, sim.scores))
    else:
        np.testing.assert_allclose(grown.item_factors[-1], np.asarray(ref).ravel(),
                                   rtol=1e-5, atol=1e-6)
    assert np.abs(grown.item_factors[-1]).sum() > 0
    # another user whose profile points at the new title's features gets it offered
    others = [u for u in some_users(x, 40) if u != user]
    best = max(others, key=lambda o: float(p.explain(o, new, n=1).score))
    score = p.explain(best, new, n=1).score
    assert score > 0 and new in p.top_picks(best, n=x.n_items).items
    if name == "ContentModel":  # profile . e_new = sum_j v_j cos(j, new)
        row = x.to_csr()[x.user_index(best)]
        assert score == pytest.approx(float(row.data @ cos[row.indices]), rel=1e-4)
