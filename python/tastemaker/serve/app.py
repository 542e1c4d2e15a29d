"""The HTTP service: a thin FastAPI shell over a :class:`tastemaker.Personalizer` bundle.

Every route parses its input, calls one Personalizer method and turns the answer into
JSON; no recommendation logic lives here.  Errors have one shape::

    {"error": {"status": 404, "code": "unknown_user", "message": "..."}}

with 404 for an unknown user or item, 422 for bad input, 401 for a missing or wrong API
key on a write route, 413 for a body over the limit and 503 when the server sheds load
or has no model yet.

Needs the ``[serve]`` extra (``pip install 'tastemaker[serve]'``).
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..pages import Personalizer
from .metrics import Metrics

__all__ = ["create_app", "ServiceState", "ServeError"]

Id = Union[int, str]
_STATIC = Path(__file__).parent / "static"


class ServeError(Exception):
    """An error answered with the service's JSON error shape."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}},
                        status_code=status, headers=headers)


# --------------------------------------------------------------------------- bodies
class Event(BaseModel):
    """One event: ``user`` did ``event`` on ``item``."""

    model_config = ConfigDict(extra="forbid")
    user: Id = Field(description="External user id (a new user is created)")
    item: Id = Field(description="External item id")
    event: str = Field(min_length=1, max_length=64, description="Event type, e.g. play")
    value: Optional[float] = Field(None, description="Multiplies the event's weight")
    timestamp: Optional[Union[float, str]] = Field(None, description="Seconds or ISO time")


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=10_000)


class HistoryEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Id
    event: str = Field("play", min_length=1, max_length=64)
    value: Optional[float] = None
    timestamp: Optional[Union[float, str]] = None


class AnonymousRequest(BaseModel):
    """A visitor with no account: what they did in this session."""

    model_config = ConfigDict(extra="forbid")
    history: list[HistoryEvent] = Field(max_length=10_000)
    n: int = Field(10, ge=1, le=1000)


class RowOut(BaseModel):
    kind: str
    title: str
    items: list[Id]
    titles: list[str]
    scores: list[float]
    reasons: list[Optional[str]]
    seed: Optional[Id] = None


class PageOut(BaseModel):
    user: Id
    rows: list[RowOut]


class ExplanationOut(BaseModel):
    user: Id
    item: Id
    score: float
    contributions: list[tuple[Id, float]]
    rest: float
    method: str


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


_ERRORS = {404: {"model": ErrorOut, "description": "Unknown user or item"},
           422: {"model": ErrorOut, "description": "Bad input"},
           503: {"model": ErrorOut, "description": "Overloaded or no model loaded"}}
_WRITE_ERRORS = {**_ERRORS, 401: {"model": ErrorOut, "description": "Missing or wrong API key"},
                 413: {"model": ErrorOut, "description": "Body too large"}}


# --------------------------------------------------------------------------- state
class ServiceState:
    """What a server process holds: the current Personalizer (swapped atomically on
    reload), the API key, the event log and the metrics.

    Parameters
    ----------
    bundle : str or Path, optional
        A Personalizer bundle (``Personalizer.save``); reloaded by ``reload()`` and, with
        ``watch``, when the file changes on disk.
    personalizer : Personalizer, optional
        Serve this object instead of (or before) loading ``bundle``.
    api_key : str, optional
        Required (header ``X-API-Key``) by ``POST /events`` and ``POST /admin/reload``.
    event_log : str or Path, optional
        Every recorded event is appended here as one JSON line and fsync'd before the
        request answers; on start (and after each reload) the log is replayed, so
        recorded events survive a restart.
    """

    def __init__(self, bundle=None, personalizer: Personalizer | None = None, *,
                 api_key: str | None = None, event_log=None, max_inflight: int = 64,
                 max_body_bytes: int = 1 << 20, watch: bool = False,
                 watch_interval: float = 1.0):
        if bundle is None and personalizer is None:
            raise ValueError("bundle: give a bundle path or a Personalizer")
        if personalizer is not None and not isinstance(personalizer, Personalizer):
            raise ValueError(f"personalizer: expected a Personalizer, got "
                             f"{type(personalizer).__name__}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key: expected a non-empty string")
        if not isinstance(max_inflight, int) or max_inflight < 1:
            raise ValueError(f"max_inflight: expected an int >= 1, got {max_inflight!r}")
        if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
            raise ValueError(f"max_body_bytes: expected an int >= 1, got {max_body_bytes!r}")
        self.bundle = None if bundle is None else Path(bundle)
        self.api_key = None if api_key is None else api_key.strip()
        self.event_log = None if event_log is None else Path(event_log)
        self.max_inflight = max_inflight
        self.max_body_bytes = max_body_bytes
        self.metrics = Metrics()
        self._lock = threading.Lock()  # writers: reload, record + log append
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._mtime = None
        self.generation = 0
        self.personalizer: Personalizer | None = None
        if personalizer is not None:
            self._install(personalizer)
        else:
            self.reload()
        self._stop = threading.Event()
        self._watcher = None
        if watch and self.bundle is not None:
            self._watcher = threading.Thread(target=self._watch, args=(watch_interval,),
                                             name="tastemaker-bundle-watch", daemon=True)
            self._watcher.start()

    # -- model swap
    def _install(self, p: Personalizer) -> None:
        self._replay(p)
        self.personalizer = p  # one reference assignment: readers see old or new
        self.generation += 1

    def reload(self) -> int:
        """Load the bundle again, replay the event log into it and swap it in; readers
        keep the old one until the swap.  Returns the new generation."""
        if self.bundle is None:
            raise ServeError(422, "no_bundle", "this server was started without a bundle "
                                               "file; nothing to reload")
        with self._lock:
            mtime = self.bundle.stat().st_mtime_ns
            p = Personalizer.load(self.bundle)
            self._mtime = mtime
            self._install(p)
            return self.generation

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                mtime = self.bundle.stat().st_mtime_ns
            except OSError:
                continue
            if mtime != self._mtime:
                try:
                    self.reload()
                except Exception:  # a half-written file: keep serving, retry next tick
                    continue

    def close(self) -> None:
        self._stop.set()

    # -- events
    def _replay(self, p: Personalizer) -> None:
        if self.event_log is None or not self.event_log.exists():
            return
        with open(self.event_log, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                    p.record(ev["user"], ev["item"], ev["event"], ev.get("value"),
                             ev.get("timestamp"))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash, or an item since removed

    def record(self, events: list[dict]) -> int:
        p = self.current()
        with self._lock:
            done = []
            for ev in events:
                p.record(ev["user"], ev["item"], ev["event"], ev["value"], ev["timestamp"])
                done.append(ev)
            if self.event_log is not None and done:
                data = "".join(json.dumps(ev, separators=(",", ":")) + "\n" for ev in done)
                fd = os.open(self.event_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return len(done)

    def current(self) -> Personalizer:
        p = self.personalizer
        if p is None:
            raise ServeError(503, "not_ready", "no model loaded yet")
        return p

    # -- load shedding
    def enter(self) -> bool:
        with self._inflight_lock:
            if self._inflight >= self.max_inflight:
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1


# --------------------------------------------------------------------------- middleware
class _Guard:
    """ASGI middleware: sheds load beyond ``max_inflight`` with 503, refuses bodies over
    ``max_body_bytes`` with 413 (by Content-Length, and while streaming), and records
    request counts and latencies."""

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        st = self.state
        route = _route_label(scope)
        start = time.perf_counter()
        status_box = {"status": 500}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        async def reply(resp):
            await resp(scope, receive, send_wrapped)

        try:
            length = None
            for k, v in scope.get("headers", []):
                if k == b"content-length":
                    try:
                        length = int(v)
                    except ValueError:
                        length = -1
            if length is not None and (length < 0 or length > st.max_body_bytes):
                return await reply(_error(413, "body_too_large",
                                          f"request body over {st.max_body_bytes} bytes"))
            if route not in ("/healthz", "/metrics") and not st.enter():
                return await reply(_error(503, "overloaded", "too many requests in flight; "
                                          "retry shortly", headers={"Retry-After": "1"}))
            try:
                received = 0

                async def receive_limited():
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > st.max_body_bytes:
                            raise _TooLarge()
                    return message

                try:
                    await self.app(scope, receive_limited, send_wrapped)
                except _TooLarge:
                    await reply(_error(413, "body_too_large",
                                       f"request body over {st.max_body_bytes} bytes"))
            finally:
                if route not in ("/healthz", "/metrics"):
                    st.leave()
        finally:
            st.metrics.observe(scope.get("method", "GET"), route, status_box["status"],
                               time.perf_counter() - start)


class _TooLarge(Exception):
    pass


_ROUTES = ("/users/{user}/top-picks", "/users/{user}/homepage",
           "/users/{user}/because-you-watched", "/users/{user}/explain/{item}",
           "/items/{item}/similar")


def _route_label(scope) -> str:
    """The route template of a path (bounded label set for the metrics)."""
    path = scope.get("path", "")
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "users":
        rest = "/".join(parts[2:3])
        if rest in ("top-picks", "homepage", "because-you-watched") and len(parts) == 3:
            return f"/users/{{user}}/{rest}"
        if rest == "explain" and len(parts) == 4:
            return "/users/{user}/explain/{item}"
    if len(parts) == 3 and parts[0] == "items" and parts[2] == "similar":
        return "/items/{item}/similar"
    if path in ("/", "/events", "/recommend", "/healthz", "/readyz", "/metrics",
                "/admin/reload", "/users", "/openapi.json", "/docs"):
        return path
    return "other"


# --------------------------------------------------------------------------- app
def _known(p: Personalizer, text: str, which: str):
    """A path id -> the bundle's id of a known user or item, else 404."""
    key_of, has = (p.user_key, p.has_user) if which == "user" else (p.item_key, p.has_item)
    try:
        key = key_of(text)
    except ValueError:
        key = None
    if key is None or not has(key):
        raise ServeError(404, f"unknown_{which}", f"unknown {which} {text!r}")
    return key


def _user(p: Personalizer, text: str):
    return _known(p, text, "user")


def _item(p: Personalizer, text: str):
    return _known(p, text, "item")


def _event_key(p: Personalizer, value, which: str):
    """A JSON id as the bundle's kind (a numeric string for integer ids)."""
    try:
        return p.user_key(value) if which == "user" else p.item_key(value)
    except ValueError as exc:
        raise ServeError(422, "bad_id", str(exc)) from None


def create_app(bundle=None, personalizer: Personalizer | None = None, *,
               api_key: str | None = None, event_log=None, max_inflight: int = 64,
               max_body_bytes: int = 1 << 20, watch: bool = True,
               watch_interval: float = 1.0) -> FastAPI:
    """The FastAPI application serving one Personalizer (see :class:`ServiceState` for
    the parameters).  ``app.state.service`` is the :class:`ServiceState`."""
    state = ServiceState(bundle, personalizer, api_key=api_key, event_log=event_log,
                         max_inflight=max_inflight, max_body_bytes=max_body_bytes,
                         watch=watch, watch_interval=watch_interval)
    app = FastAPI(title="tastemaker", version=_version(),
                  description="Personalised rows, explanations and live updates over a "
                              "tastemaker Personalizer bundle, by external ids.")
    app.state.service = state

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError):
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        msgs = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                         for e in exc.errors()[:5])
        return _error(422, "bad_input", msgs or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError):
        return _error(422, "bad_input", str(exc))

    def check_key(request: Request) -> None:
        if state.api_key is None:
            return
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), state.api_key.encode()):
            raise ServeError(401, "unauthorized", "missing or wrong X-API-Key")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse((_STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: _ERRORS[503]})
    def readyz() -> dict:
        """Readiness: a model is loaded."""
        p = state.current()
        return {"status": "ready", "generation": state.generation, "users": p.n_users,
                "items": p.n_items}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        """Prometheus text format: request counts and latency histograms per route."""
        return PlainTextResponse(state.metrics.render(),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/users", responses=_ERRORS)
    def users(limit: int = Query(20, ge=1, le=1000)) -> dict:
        """A sample of user ids (the first ``limit``), for pickers."""
        p = state.current()
        return {"users": p.users(limit)}

    @app.get("/users/{user}/top-picks", response_model=RowOut, responses=_ERRORS)
    def top_picks(user: str, n: int = Query(10, ge=1, le=1000),
                  tastes: str = Query("auto", pattern="^(auto|single)$"),
                  device: Optional[str] = Query(None, max_length=64),
                  hour: Optional[int] = Query(None, ge=0, le=23)):
        """The user's top unseen titles; ``device``/``hour`` say who is watching now."""
        p = state.current()
        context = {k: v for k, v in (("device", device), ("hour", hour)) if v is not None}
        row = p.top_picks(_user(p, user), n=n, tastes=tastes, context=context or None)
        return p.row_dict(row)

    @app.get("/users/{user}/homepage", response_model=PageOut, responses=_ERRORS)
    def homepage(user: str, row_size: int = Query(10, ge=1, le=100)):
        """The user's home page: ordered rows, each title at most once."""
        p = state.current()
        key = _user(p, user)
        page = p.homepage(key, row_size=row_size)
        return p.page_dict(page)

    @app.get("/users/{user}/because-you-watched", response_model=list[RowOut],
             responses=_ERRORS)
    def because_you_watched(user: str, n_rows: int = Query(3, ge=1, le=20),
                            n: int = Query(10, ge=1, le=100)):
        """Rows seeded by the user's most recent and strongest watches."""
        p = state.current()
        return [p.row_dict(r) for r in p.because_you_watched(_user(p, user), n_rows=n_rows,
                                                              n=n)]

    @app.get("/users/{user}/explain/{item}", response_model=ExplanationOut, responses=_ERRORS)
    def explain(user: str, item: str, n: int = Query(5, ge=0, le=100)):
        """The history titles contributing most to ``item``'s score for ``user``."""
        p = state.current()
        return p.explain(_user(p, user), _item(p, item), n=n).to_dict()

    @app.get("/items/{item}/similar", response_model=RowOut, responses=_ERRORS)
    def similar(item: str, n: int = Query(10, ge=1, le=1000)):
        """Titles like ``item``."""
        p = state.current()
        return p.row_dict(p.similar(_item(p, item), n=n))

    @app.post("/events", responses=_WRITE_ERRORS)
    def events(body: Union[Event, EventBatch, list[Event]], request: Request) -> dict:
        """Record one event, a batch (``{"events": [...]}``) or a list; each user's next
        answer reflects them.  Needs ``X-API-Key`` when the server has a key."""
        check_key(request)
        p = state.current()
        if isinstance(body, Event):
            items = [body]
        elif isinstance(body, EventBatch):
            items = body.events
        else:
            items = body
        if not items:
            raise ServeError(422, "bad_input", "no events")
        if len(items) > 10_000:
            raise ServeError(422, "bad_input", "at most 10000 events per request")
        evs = [{"user": _event_key(p, e.user, "user"), "item": _event_key(p, e.item, "item"),
                "event": e.event, "value": e.value, "timestamp": e.timestamp} for e in items]
        return {"recorded": state.record(evs)}

    @app.post("/recommend", response_model=RowOut, responses=_ERRORS)
    def recommend(body: AnonymousRequest):
        """Top picks for a visitor with no account, from this session's history."""
        p = state.current()
        history = [{"item": _event_key(p, h.item, "item"), "event": h.event, "value": h.value,
                    "timestamp": h.timestamp} for h in body.history]
        return p.row_dict(p.top_picks_for_history(history, n=body.n))

    @app.post("/admin/reload", responses=_WRITE_ERRORS)
    def reload(request: Request) -> dict:
        """Reload the bundle from disk and swap it in atomically (needs the API key)."""
        check_key(request)
        return {"generation": state.reload()}

    app.add_middleware(_Guard, state=state)
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def app_from_env():
    """Uvicorn factory for ``tastemaker serve`` workers: configuration comes from
    ``TASTEMAKER_SERVE_*`` environment variables set by the command."""
    env = os.environ
    key = None
    key_file = env.get("TASTEMAKER_SERVE_API_KEY_FILE")
    if key_file:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    return create_app(env["TASTEMAKER_SERVE_BUNDLE"], api_key=key,
                      event_log=env.get("TASTEMAKER_SERVE_EVENT_LOG") or None,
                      max_inflight=int(env.get("TASTEMAKER_SERVE_MAX_INFLIGHT", "64")),
                      watch=env.get("TASTEMAKER_SERVE_WATCH", "1") == "1")
