"""Load and fault tests of `tastemaker serve`, on loopback only, with bounded loops.

    python bench/serve.py [--seconds 5] [--clients 8] [--workers 1 2]

Builds a Personalizer bundle (MovieLens 100K from TASTEMAKER_DATA, else the synthetic
log), starts `tastemaker serve` as a subprocess and measures, in one run:

1. in-process `Personalizer` call latency against the HTTP round trip (one connection);
2. sustained requests/s and p50/p99 latency for top-picks, homepage and events with
   `--clients` keep-alive client threads, for each `--workers` count;
3. overload: 8x the clients against `--max-inflight 4`: every answer must be a 200 or a
   503 (shed), never a connection error or a 5xx other than 503;
4. a worker killed (SIGKILL) under load with 2 workers: errors seen, and that the others
   keep serving;
5. bundle replaced on disk under load (hot reload): failed requests;
6. events posted with `--event-log`, server killed and restarted: the events are back.

Writes bench/results/serve.json.  The client threads share the 2 cores with the server:
read the figures as what one box does with both on it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common  # noqa: F401  (sys.path, BLAS settings)
import numpy as np

import tastemaker as tm

ROOT = Path(__file__).resolve().parents[1]


def make_bundle(path: Path, seed: int = 0):
    root = os.environ.get("TASTEMAKER_DATA")
    if root and (Path(root) / "ml-100k").exists():
        data, items = tm.datasets.movielens_100k(Path(root) / "ml-100k")
        name = "MovieLens 100K"
    else:
        synth = tm.datasets.synthetic_streaming(n_users=2000, n_items=1000, seed=1)
        data = tm.Interactions.from_frame(synth.events, user="user", item="item",
                                          event="event", timestamp="timestamp")
        items, name = synth.items, "synthetic 2000 x 1000"
    model = tm.ALS(factors=64, random_state=seed).fit(data.to_csr(), show_progress=False)
    p = tm.Personalizer(model, data, catalog=items)
    p.save(path)
    return p, name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bundle, workers=1, extra=()):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tastemaker", "serve", str(bundle), "--port", str(self.port),
             "--workers", str(workers), *extra], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if request(self.port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        if workers > 1:  # every worker up
            time.sleep(3)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        pids = []
        for x in out.stdout.split():
            try:
                cmd = Path(f"/proc/{x}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "spawn_main" in cmd and "resource_tracker" not in cmd:
                pids.append(int(x))  # uvicorn workers, not multiprocessing's tracker
        return pids

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def request(port, method, path, body=None, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


def load(port, paths, seconds, clients, body_of=None):
    """Keep-alive client threads for ``seconds``: statuses and latencies."""
    stop = time.time() + seconds
    lat, statuses, errors = [], [], []
    lock = threading.Lock()

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        rng = np.random.default_rng(k)
        mine_l, mine_s, mine_e = [], [], 0
        while time.time() < stop:
            path = paths[rng.integers(len(paths))]
            method, body = ("POST", body_of(rng)) if body_of else ("GET", None)
            t = time.perf_counter()
            try:
                status, _ = request(port, method, path, body, conn)
                mine_l.append(time.perf_counter() - t)
                mine_s.append(status)
            except (OSError, http.client.HTTPException):
                mine_e += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            lat.extend(mine_l)
            statuses.extend(mine_s)
            errors.append(mine_e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    lat_ms = np.array(lat) * 1e3
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    return {"rps": round(len(statuses) / wall, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 2) if lat else None,
            "p99_ms": round(float(np.percentile(lat_ms, 99)), 2) if lat else None,
            "statuses": counts, "connection_errors": int(sum(errors))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tm-serve-bench-"))
    bundle = tmp / "bundle.tmb"
    p, data_name = make_bundle(bundle)
    users = p.users(500)
    items = [p.top_picks(u, n=1).items[0] for u in users[:50]]
    out = {"data": data_name, "clients": args.clients, "seconds": args.seconds,
           "machine": _common.machine_info(), "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                    time.gmtime())}

    # 1. in-process vs HTTP, one connection
    t_in = []
    for u in users[:300]:
        t = time.perf_counter()
        p.top_picks(u, n=10)
        t_in.append(time.perf_counter() - t)
    srv = Server(bundle, 1, ["--no-watch"])
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    t_http = []
    for u in users[:300]:
        t = time.perf_counter()
        request(srv.port, "GET", f"/users/{u}/top-picks?n=10", conn=conn)
        t_http.append(time.perf_counter() - t)
    conn.close()
    srv.stop()
    out["single_request_ms"] = {
        "in_process_top_picks_p50": round(statistics.median(t_in) * 1e3, 3),
        "http_top_picks_p50": round(statistics.median(t_http) * 1e3, 3),
        "http_overhead_p50": round((statistics.median(t_http) - statistics.median(t_in)) * 1e3, 3)}
    print(json.dumps(out["single_request_ms"]), flush=True)

    # 2. sustained load per worker count
    out["load"] = {}
    for w in args.workers:
        srv = Server(bundle, w, ["--no-watch"])
        res = {}
        try:
            res["top-picks"] = load(srv.port, [f"/users/{u}/top-picks?n=10" for u in users],
                                    args.seconds, args.clients)
            res["homepage"] = load(srv.port, [f"/users/{u}/homepage" for u in users],
                                   args.seconds, args.clients)
            res["events"] = load(srv.port, ["/events"], args.seconds, args.clients,
                                 body_of=lambda rng: {"user": users[rng.integers(len(users))],
                                                      "item": items[rng.integers(len(items))],
                                                      "event": "play"})
        finally:
            srv.stop()
        out["load"][f"{w} worker(s)"] = res
        print(w, json.dumps(res), flush=True)

    # 3. overload: 8x the clients against a small in-flight limit
    srv = Server(bundle, 1, ["--no-watch", "--max-inflight", "4"])
    try:
        out["overload"] = load(srv.port, [f"/users/{u}/homepage" for u in users], args.seconds,
                               args.clients * 8)
    finally:
        srv.stop()
    print("overload", json.dumps(out["overload"]), flush=True)

    # 4. kill a worker under load (2 workers)
    srv = Server(bundle, 2, ["--no-watch"])
    try:
        pids = srv.worker_pids()
        result = {}

        def killer():
            time.sleep(args.seconds / 3)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                result["killed"] = pids[0]

        k = threading.Thread(target=killer)
        k.start()
        res = load(srv.port, [f"/users/{u}/top-picks?n=10" for u in users], args.seconds,
                   args.clients)
        k.join()
        after = load(srv.port, [f"/users/{u}/top-picks?n=10" for u in users], 2.0, 2)
        out["kill_worker"] = {"workers_before": len(pids), "during": res, "after": after,
                              "workers_after": len(srv.worker_pids()), **result}
    finally:
        srv.stop()
    print("kill", json.dumps(out["kill_worker"]), flush=True)

    # 5. hot reload under load: replace the bundle file twice
    live = tmp / "live.tmb"
    live.write_bytes(bundle.read_bytes())
    other = tmp / "other.tmb"
    make_bundle(other, seed=5)
    srv = Server(live, 1)
    try:
        def swapper():
            for _ in range(2):
                time.sleep(args.seconds / 3)
                tmpf = tmp / "swap.tmb"
                tmpf.write_bytes(other.read_bytes())
                os.replace(tmpf, live)

        sw = threading.Thread(target=swapper)
        sw.start()
        out["reload_under_load"] = load(srv.port, [f"/users/{u}/top-picks?n=10" for u in users],
                                        args.seconds, args.clients)
        sw.join()
        ready = json.loads(request(srv.port, "GET", "/readyz")[1])
        out["reload_under_load"]["generation_after"] = ready["generation"]
    finally:
        srv.stop()
    print("reload", json.dumps(out["reload_under_load"]), flush=True)

    # 6. events survive a restart with --event-log
    log = tmp / "events.jsonl"
    srv = Server(bundle, 1, ["--no-watch", "--event-log", str(log)])
    u = users[0]
    before = json.loads(request(srv.port, "GET", f"/users/{u}/top-picks?n=5")[1])["items"]
    request(srv.port, "POST", "/events", {"events": [{"user": u, "item": i, "event": "complete"}
                                                     for i in before[:3]]})
    want = json.loads(request(srv.port, "GET", f"/users/{u}/top-picks?n=5")[1])["items"]
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    srv = Server(bundle, 1, ["--no-watch", "--event-log", str(log)])
    got = json.loads(request(srv.port, "GET", f"/users/{u}/top-picks?n=5")[1])["items"]
    srv.stop()
    out["event_log_restart"] = {"events": 3, "same_picks_after_kill_and_restart": got == want,
                                "completed_titles_stay_out_of_picks": not set(before[:3]) & set(got)}
    print("event log", json.dumps(out["event_log_restart"]), flush=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
