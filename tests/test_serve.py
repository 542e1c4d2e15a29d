"""The HTTP service (tastemaker.serve): routes, errors, live events, reload, event log,
load shedding, the OpenAPI schema fuzzed by schemathesis, and the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import tastemaker as tm  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from tastemaker.serve import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _bundle(path: Path, seed: int = 1, factors: int = 8) -> Path:
    synth = tm.datasets.synthetic_streaming(n_users=200, n_items=80, seed=1)
    data = tm.Interactions.from_frame(synth.events, user="user", item="item", event="event",
                                      timestamp="timestamp")
    model = tm.ALS(factors=factors, iterations=4, random_state=seed).fit(data.to_csr(),
                                                                        show_progress=False)
    tm.Personalizer(model, data, catalog=synth.items).save(path)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return _bundle(tmp_path_factory.mktemp("serve") / "b.tmb")


@pytest.fixture()
def client(bundle):
    app = create_app(bundle, watch=False)
    with TestClient(app) as c:
        yield c
    app.state.service.close()


def _err(r, status, code=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def test_routes_answer_what_the_personalizer_answers(client, bundle):
    p = tm.load(bundle)
    user = p.users(1)[0]
    r = client.get(f"/users/{user}/top-picks", params={"n": 5})
    assert r.status_code == 200
    row = r.json()
    ref = p.top_picks(user, n=5)
    assert row["items"] == ref.items and row["kind"] == "top_picks"
    np.testing.assert_allclose(row["scores"], ref.scores, rtol=1e-6)
    assert row["titles"] == [p.title(i) for i in ref.items]
    page = client.get(f"/users/{user}/homepage", params={"row_size": 4}).json()
    assert [r_["kind"] for r_ in page["rows"]] == [r_.kind for r_ in p.homepage(user, row_size=4).rows]
    seen = [i for r_ in page["rows"] for i in r_["items"]]
    assert len(seen) == len(set(seen))  # a title at most once on the page
    byw = client.get(f"/users/{user}/because-you-watched", params={"n_rows": 2, "n": 3}).json()
    assert [r_["seed"] for r_ in byw] == [r_.seed for r_ in p.because_you_watched(user, 2, 3)]
    item = ref.items[0]
    ex = client.get(f"/users/{user}/explain/{item}").json()
    assert ex["score"] == pytest.approx(ref.scores[0], rel=1e-5)
    assert ex["score"] == pytest.approx(sum(v for _, v in ex["contributions"]) + ex["rest"])
    sim = client.get(f"/items/{item}/similar", params={"n": 3}).json()
    assert sim["items"] == p.similar(item, n=3).items
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["users"] == p.n_users
    assert client.get("/users", params={"limit": 3}).json() == {"users": p.users(3)}
    html = client.get("/")
    assert html.status_code == 200 and "<script>" in html.text


def test_errors_have_one_shape_and_the_right_status(client, bundle):
    _err(client.get("/users/nobody/top-picks"), 404, "unknown_user")
    _err(client.get("/users/999999/homepage"), 404, "unknown_user")
    _err(client.get("/items/nothing/similar"), 404, "unknown_item")
    _err(client.get("/users/0/explain/424242"), 404, "unknown_item")
    _err(client.get("/users/0/top-picks", params={"n": 0}), 422, "bad_input")
    _err(client.get("/users/0/top-picks", params={"n": "ten"}), 422)
    _err(client.get("/users/0/top-picks", params={"hour": 25}), 422)
    _err(client.post("/events", json={"user": 0, "item": 3}), 422)
    _err(client.post("/events", json={"user": 0, "item": 3, "event": "bogus"}), 422)
    _err(client.post("/events", json={"user": "zero", "item": 3, "event": "play"}), 422, "bad_id")
    _err(client.post("/events", json={"events": []}), 422)
    _err(client.post("/events", content=b"{not json", headers={"content-type": "application/json"}), 422)
    _err(client.post("/recommend", json={"history": "abc"}), 422)
    _err(client.post("/events", content=b"x" * (2 << 20),
                     headers={"content-type": "application/json"}), 413, "body_too_large")
    _err(client.get("/no/such/route"), 404)
    _err(client.delete("/healthz"), 405)


def test_events_update_the_user_live_and_the_anonymous_visitor_gets_picks(client):
    before = client.get("/users/3/top-picks", params={"n": 5}).json()["items"]
    r = client.post("/events", json={"user": 3, "item": before[0], "event": "complete"})
    assert r.status_code == 200 and r.json() == {"recorded": 1}
    after = client.get("/users/3/top-picks", params={"n": 5}).json()["items"]
    assert before[0] not in after  # seen now
    # a batch, with a brand-new user (ids are ints in this bundle: "5000" is 5000)
    r = client.post("/events", json={"events": [
        {"user": 5000, "item": before[1], "event": "play"},
        {"user": "5000", "item": before[2], "event": "thumbs_up", "timestamp": 1.7e9}]})
    assert r.json() == {"recorded": 2}
    new_row = client.get("/users/5000/top-picks", params={"n": 5}).json()
    assert new_row["items"] and not {before[1], before[2]} & set(new_row["items"])
    anon = client.post("/recommend", json={"history": [{"item": before[1]},
                                                       {"item": before[2], "event": "complete"}],
                                           "n": 4}).json()
    assert len(anon["items"]) == 4 and not {before[1], before[2]} & set(anon["items"])
    assert anon["items"] == new_row["items"][:4] or len(set(anon["items"])) == 4


def test_metrics_count_requests_in_prometheus_text(client):
    for _ in range(3):
        client.get("/users/1/top-picks")
    client.get("/users/nobody/top-picks")
    text = client.get("/metrics").text
    assert ('tastemaker_requests_total{method="GET",route="/users/{user}/top-picks",'
            'status="200"} 3') in text
    assert 'route="/users/{user}/top-picks",status="404"} 1' in text
    assert 'tastemaker_request_duration_seconds_count{route="/users/{user}/top-picks"} 4' in text
    assert 'le="+Inf"} 4' in text


def test_api_key_protects_the_write_routes(bundle):
    app = create_app(bundle, api_key="s3cret", watch=False)
    with TestClient(app) as c:
        _err(c.post("/events", json={"user": 1, "item": 2, "event": "play"}), 401, "unauthorized")
        _err(c.post("/events", json={"user": 1, "item": 2, "event": "play"},
                    headers={"X-API-Key": "wrong"}), 401)
        _err(c.post("/admin/reload"), 401)
        assert c.post("/events", json={"user": 1, "item": 2, "event": "play"},
                      headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/admin/reload", headers={"X-API-Key": "s3cret"}).json() == {"generation": 2}
        assert c.get("/users/1/top-picks").status_code == 200  # reads need no key


def test_event_log_survives_a_restart(bundle, tmp_path):
    log = tmp_path / "events.jsonl"
    app = create_app(bundle, event_log=log, watch=False)
    with TestClient(app) as c:
        top = c.get("/users/7/top-picks", params={"n": 3}).json()["items"]
        c.post("/events", json=[{"user": 7, "item": top[0], "event": "complete"},
                                {"user": 6001, "item": top[1], "event": "play"}])
        want = c.get("/users/7/top-picks", params={"n": 3}).json()["items"]
    lines = log.read_text().splitlines()
    assert [json.loads(x)["user"] for x in lines] == [7, 6001]
    app2 = create_app(bundle, event_log=log, watch=False)  # a restarted process
    with TestClient(app2) as c:
        assert c.get("/users/7/top-picks", params={"n": 3}).json()["items"] == want
        assert c.get("/users/6001/top-picks").status_code == 200
        # a torn last line (crash mid-write) is skipped, the rest replayed
    with open(log, "a") as f:
        f.write('{"user": 7, "item"')
    app3 = create_app(bundle, event_log=log, watch=False)
    with TestClient(app3) as c:
        assert c.get("/users/7/top-picks", params={"n": 3}).json()["items"] == want


class _Live:
    """A real uvicorn server on a loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def test_reload_under_load_fails_no_request(bundle, tmp_path):
    path = tmp_path / "live.tmb"
    path.write_bytes(bundle.read_bytes())
    app = create_app(path, watch=True, watch_interval=0.05)
    live = _Live(app)
    statuses, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            statuses.append(live.get("/users/2/top-picks?n=5")[0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        before = live.get("/users/2/top-picks?n=5")[1]["scores"]
        gen = app.state.service.generation
        _bundle(tmp_path / "other.tmb", seed=9, factors=6)  # another model...
        os.replace(tmp_path / "other.tmb", path)  # ...swapped in on disk, atomically
        deadline = time.time() + 20
        while app.state.service.generation == gen and time.time() < deadline:
            time.sleep(0.05)
        assert app.state.service.generation > gen  # the watcher reloaded it
        for _ in range(2):
            app.state.service.reload()  # and explicit reloads while serving
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        after = live.get("/users/2/top-picks?n=5")[1]["scores"]
        live.stop()
        app.state.service.close()
    assert statuses and set(statuses) == {200}
    assert after != before


def test_overload_is_shed_with_503_not_errors(bundle):
    app = create_app(bundle, watch=False, max_inflight=1)
    state = app.state.service
    p = state.current()
    entered, release = threading.Event(), threading.Event()
    original = p.top_picks

    def slow(*a, **kw):
        entered.set()
        release.wait(20)
        return original(*a, **kw)

    p.top_picks = slow
    live = _Live(app)
    try:
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", live.get("/users/1/top-picks")))
        t.start()
        assert entered.wait(20)
        status, body = live.get("/users/1/homepage")
        assert status == 503 and body["error"]["code"] == "overloaded"
        assert live.get("/healthz")[0] == 200  # health checks are never shed
        release.set()
        t.join(20)
        assert first["r"][0] == 200
        assert live.get("/users/1/homepage")[0] == 200
    finally:
        release.set()
        live.stop()


def test_openapi_schema_fuzzed_no_server_errors(bundle):
    """Every route, random inputs from its OpenAPI schema (schemathesis strategies driven by
    hypothesis): never a 5xx, and every error in the one JSON shape."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import given

    app = create_app(bundle, watch=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {(o.method.upper(), o.path) for o in ops} >= {
        ("GET", "/users/{user}/top-picks"), ("GET", "/users/{user}/homepage"),
        ("GET", "/users/{user}/because-you-watched"), ("GET", "/users/{user}/explain/{item}"),
        ("GET", "/items/{item}/similar"), ("POST", "/events"), ("POST", "/recommend"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("POST", "/admin/reload")}
    seen = []
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=10, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 response.text)
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}

        run()
    app.state.service.close()
    assert len(seen) >= len(ops)


def test_cli_serve_starts_and_rejects_bad_input(bundle, tmp_path):
    # the tastemaker this test imported (the installed one under CI, the source tree with
    # its built _core in a dev checkout), not blindly the source tree
    env = {**os.environ, "PYTHONPATH": str(Path(tm.__file__).resolve().parents[1])}
    bad = subprocess.run([sys.executable, "-m", "tastemaker", "serve", str(tmp_path / "no.tmb")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "no such file" in bad.stderr
    empty = tmp_path / "key"
    empty.write_text("  \n")
    bad = subprocess.run([sys.executable, "-m", "tastemaker", "serve", str(bundle),
                          "--api-key-file", str(empty)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "--api-key-file" in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tastemaker", "serve", str(bundle),
                             "--port", str(port), "--no-watch"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, status = time.time() + 90, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(20)
