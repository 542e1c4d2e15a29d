"""Request counts and latency histograms in the Prometheus text format (no dependency)."""

from __future__ import annotations

import bisect
import threading

__all__ = ["Metrics", "BUCKETS"]

#: Latency histogram bucket upper bounds, seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Thread-safe counters per (method, route, status) and histograms per route."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._hist: dict[str, list] = {}  # route -> [bucket counts..., +Inf], sum, count

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, int(status))
            self._counts[key] = self._counts.get(key, 0) + 1
            h = self._hist.get(route)
            if h is None:
                h = self._hist[route] = [[0] * (len(BUCKETS) + 1), 0.0, 0]
            h[0][bisect.bisect_left(BUCKETS, seconds)] += 1
            h[1] += seconds
            h[2] += 1

    def render(self) -> str:
        with self._lock:
            counts = dict(self._counts)
            hist = {r: ([*h[0]], h[1], h[2]) for r, h in self._hist.items()}
        out = ["# HELP tastemaker_requests_total HTTP requests by method, route and status.",
               "# TYPE tastemaker_requests_total counter"]
        for (m, r, s), c in sorted(counts.items()):
            out.append(f'tastemaker_requests_total{{method="{m}",route="{_esc(r)}",'
                       f'status="{s}"}} {c}')
        out += ["# HELP tastemaker_request_duration_seconds Request latency by route.",
                "# TYPE tastemaker_request_duration_seconds histogram"]
        for r, (buckets, total, n) in sorted(hist.items()):
            acc = 0
            for le, c in zip(BUCKETS, buckets):
                acc += c
                out.append(f'tastemaker_request_duration_seconds_bucket{{route="{_esc(r)}",'
                           f'le="{le}"}} {acc}')
            acc += buckets[-1]
            out.append(f'tastemaker_request_duration_seconds_bucket{{route="{_esc(r)}",'
                       f'le="+Inf"}} {acc}')
            out.append(f'tastemaker_request_duration_seconds_sum{{route="{_esc(r)}"}} {total:.6f}')
            out.append(f'tastemaker_request_duration_seconds_count{{route="{_esc(r)}"}} {n}')
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
