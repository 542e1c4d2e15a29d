"""The Personalizer: a fitted model, its users' histories and the catalog, by external ids.

State and threads
-----------------
Everything a query reads hangs off one immutable :class:`_State` (the item side: ids,
model, explainer, catalog alignment; the fitted base histories and user vectors; the
rows changed live since the last fit).  A query takes ``self._state`` once and reads only
from it.  Writers (``record``, the end of ``refresh``) hold ``self._lock``:

* ``record`` on a known item builds the user's new :class:`~.history.UserRow` (history
  and freshly folded-in vector together) and stores it in the state's ``live`` dict in
  one assignment, so readers see the old row or the new one, never a mix;
* a new item or a refit builds a whole new ``_State`` (with a copy of ``live``) and swaps
  ``self._state`` in one assignment.

User vectors
------------
For ALS the Personalizer ranks by the *exact fold-in* of each user's history against the
item factors (Cholesky, in C++), not by the model's stored ``user_factors``: those lag the
final item factors by a half-step and come from an inexact CG solve, so they would not
decompose over the history.  With the exact fold-in, ``explain`` (Hu, Koren & Volinsky
2008, section 5) adds up to the ranking score, and a user folded in after ``record`` is
treated exactly like everyone else.  All users are folded in once at construction (one
extra exact half-step) and stored in the bundle.  Other factor models use their own user
factors (new users: the model's fold-in).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import check_float, check_int
from ..data.interactions import Interactions
from ..data.sessions import Sessions
from ..data.weighting import corpus_stats
from ..models.base import FactorModel
from . import rerank as _rerank
from .catalog import Catalog
from .scoring import scorer_for
from .history import EventRules, UserRow, with_event
from .rows import Explanation, Page, Row, external
from .rules import Rules
from .tastes import Taste, Tastes

__all__ = ["Personalizer", "ROW_KINDS"]

#: Row kinds of :meth:`Personalizer.homepage`, in the order they claim titles.
ROW_KINDS = ("continue_watching", "top_picks", "because_you_watched", "genres", "trending",
             "new_releases")
_PINNED = ("continue_watching", "top_picks")
_PARTIAL_EVENTS = ("pause",)
_FINISH_EVENTS = ("complete", "thumbs_down")
_DAY = 86400.0
_BUNDLE_KIND = "personalizer"


def _duration(value, name: str) -> float:
    if isinstance(value, str):
        try:
            return float(pd.Timedelta(value).total_seconds())
        except ValueError:
            raise ValueError(f"{name}: cannot parse {value!r} as a duration") from None
    return check_float(value, name, minimum=0.0, strict=True)


# --------------------------------------------------------------------------- state
@dataclass(frozen=True)
class _Items:
    ids: np.ndarray  # item index -> external id
    index: pd.Index
    model: FactorModel  # a vector model's item_factors has len(ids) rows
    scorer: Any  # .scoring adapter: ranks, scores, explains with this model
    cat_rows: np.ndarray  # item index -> catalog row, -1 when absent
    version: int

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def explainer(self):
        return self.scorer.explainer


@dataclass(frozen=True)
class _Base:
    """The fitted histories, CSR by user (entries sorted by item), and user vectors."""

    user_ids: np.ndarray
    user_index: pd.Index
    indptr: np.ndarray
    items: np.ndarray
    raw: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    ts: np.ndarray | None
    vectors: np.ndarray
    p_indptr: np.ndarray  # partial plays, CSR by user
    p_items: np.ndarray
    p_progress: np.ndarray
    p_ts: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])


@dataclass
class _State:
    items: _Items
    base: _Base
    live: dict  # user index -> UserRow (values immutable; dict written under the lock)
    new_users: dict  # external id -> index >= base.n_users
    new_user_ids: list
    events: EventRules
    clock: float
    seq: int
    generation: int
    cache: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.base.n_users + len(self.new_user_ids)


def _remember(st: _State, key, value) -> None:
    """Cache a derived array on the state; bounded (the clock moves with every event)."""
    if len(st.cache) > 32:
        st.cache.clear()
    st.cache[key] = value


def _lookup(index: pd.Index, ids: np.ndarray, key, what: str):
    """External id -> position in ``index`` or None; ValueError for an id of the wrong
    kind."""
    kind = ids.dtype.kind
    if isinstance(key, (bool, np.bool_)):
        raise ValueError(f"{what}: expected an {'int' if kind in 'iu' else 'str'} id, got "
                         f"{key!r}")
    if kind in "iu":
        if isinstance(key, (int, np.integer)):
            key = int(key)
        elif isinstance(key, (float, np.floating)) and float(key).is_integer():
            key = int(key)
        else:
            raise ValueError(f"{what}: ids are integers, got {type(key).__name__} {key!r}")
        if not -2**63 <= key < 2**63:
            raise ValueError(f"{what}: id {key} does not fit a 64-bit integer")
    else:
        if not isinstance(key, (str, np.str_)):
            key = str(key) if isinstance(key, (int, np.integer)) else key
            if not isinstance(key, str):
                raise ValueError(f"{what}: ids are strings, got {type(key).__name__} {key!r}")
        key = str(key)
    try:
        pos = index.get_loc(key)
    except KeyError:
        return key, None
    return key, int(pos)


# --------------------------------------------------------------------------- class
class Personalizer:
    """Top picks, "because you watched", explanations, home pages and live updates for a
    fitted model, all by external ids.

    Parameters
    ----------
    model : FactorModel
        A fitted model (``ALS`` gets exact explanations; any factor model serves).
    interactions : Interactions
        What the model was fitted on (same users and items, same order): id maps, seen
        items, values, timestamps, event weights and transform (used by ``record``).
    catalog : pandas.DataFrame, optional
        One row per title, indexed by external item id; see :mod:`.catalog` for the
        columns (title, genres, release_date / release_year, available_from /
        available_until, maturity, regions).  When given, ``record`` refuses items
        missing from it.
    features : ItemFeatures, optional
        Item features; genre columns (``genre=...`` / ``genres=...``) give genre rows and
        calibration their genres when the catalog has none.
    events : pandas.DataFrame, optional
        The raw event log (columns as the interactions were built): its partial plays
        (last event ``pause``) make the "Continue watching" row.
    progress_col : str, optional
        Column of ``events`` with the share watched (e.g. ``watch_fraction``).
    rules : Rules or dict, optional
        Default business rules of every query (each query may pass its own).
    title_col : str, default "title"
        Catalog column of display titles.
    trending_window, new_window : duration, default "7D" / "365D"
        "Trending now" counts viewers in the last ``trending_window``; "New releases"
        are titles released within ``new_window`` of the clock.
    people : bool, default False
        Shared accounts: serve an ALS whose item factors are learned from the people
        found inside the accounts instead of from the accounts
        (:meth:`~tastemaker.pages.tastes.Tastes.fit_people`, with ``model`` finding
        them); ``refresh`` refits the same way.  Needs ``interactions`` with sessions.

    Thread-safe: any number of threads may query while others ``record`` or ``refresh``.
    """

    def __init__(self, model, interactions, catalog=None, features=None, *, events=None,
                 progress_col=None, rules=None, title_col="title", trending_window="7D",
                 new_window="365D", people=False):
        if not isinstance(model, FactorModel):
            raise ValueError(f"model: expected a fitted tastemaker factor model, got "
                             f"{type(model).__name__}")
        model._check_fitted()
        if not isinstance(interactions, Interactions):
            raise ValueError(f"interactions: expected an Interactions, got "
                             f"{type(interactions).__name__}")
        n_users, n_items = interactions.shape
        scorer = scorer_for(model)
        if scorer.n_items != n_items:
            raise ValueError(f"interactions: {n_items} items but the model has "
                             f"{scorer.n_items}; pass the Interactions it was fitted on")
        if scorer.kind == "vector" and model.user_factors.shape[0] != n_users:
            raise ValueError(f"interactions: {n_users} users but the model has "
                             f"{model.user_factors.shape[0]}; pass the Interactions it was "
                             "fitted on")
        self._init_options(rules, trending_window, new_window)
        if not isinstance(people, (bool, np.bool_)):
            raise ValueError(f"people: expected True or False, got {people!r}")
        if people:
            if interactions.sessions is None:
                raise ValueError("people: needs interactions built with session= (the "
                                 "people are found among an account's sessions)")
            base = model.get_params().get("regularization")
            model = Tastes().fit_people(model, interactions)
            scorer = scorer_for(model)
            self._people = {"regularization": base}
        self.interactions = interactions
        self.catalog = None if catalog is None else Catalog.from_frame(catalog, title_col)
        self.features = features
        counts_u = np.bincount(interactions.user_idx, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts_u, out=indptr[1:])
        arrays = {
            "user_ids": interactions.user_ids, "item_ids": interactions.item_ids,
            "indptr": indptr, "items": interactions.item_idx, "raw": interactions.raw_values,
            "values": interactions.values, "counts": interactions.counts,
        }
        if interactions.timestamps is not None:
            arrays["ts"] = interactions.timestamps
        arrays.update(self._partial_arrays(interactions, events, progress_col))
        settings = interactions.settings
        self._settings = settings
        stats = self._stats_for(settings, interactions.user_idx, interactions.item_idx,
                                interactions.raw_values, interactions.shape)
        arrays["vectors"] = scorer.all_vectors(interactions.to_csr())
        self._state = self._make_state(model, arrays, stats, seq=0, generation=0)
        self.sessions = interactions.sessions
        if self.sessions is not None:  # shared accounts: who is watching (pages/tastes.py)
            self._tastes = Tastes()

    # ------------------------------------------------------------------ construction
    def _init_options(self, rules, trending_window, new_window):
        self.rules = Rules.of(rules).checked()
        self.trending_window = _duration(trending_window, "trending_window")
        self.new_window = _duration(new_window, "new_window")
        self._lock = threading.RLock()
        self._refreshing: Future | None = None
        self._tastes = None
        self._people = None  # people=True: the account model's regularization (refresh)
        self.sessions = None
        self.interactions = None
        self.features = None

    @staticmethod
    def _stats_for(settings, user_idx, item_idx, raw, shape):
        tr = settings.get("transform")
        if tr is None or tr["method"] not in ("tfidf", "bm25"):
            return None
        return corpus_stats(user_idx, item_idx, raw, shape)

    @staticmethod
    def _partial_arrays(inter: Interactions, events, progress_col) -> dict:
        n_users = inter.n_users
        empty = {"p_indptr": np.zeros(n_users + 1, dtype=np.int64),
                 "p_items": np.zeros(0, dtype=np.int32),
                 "p_progress": np.zeros(0, dtype=np.float32), "p_ts": np.zeros(0)}
        if events is None:
            return empty
        if not isinstance(events, pd.DataFrame):
            raise ValueError(f"events: expected a pandas DataFrame, got {type(events).__name__}")
        cols = inter.settings.get("columns", {})
        ucol, icol, ecol, tcol = (cols.get(k) for k in ("user", "item", "event", "timestamp"))
        if ucol is None or icol is None or ecol is None:
            raise ValueError("events: the interactions were not built from a frame with an "
                             "event column, so partial plays cannot be read")
        for c in (ucol, icol, ecol) + ((tcol,) if tcol else ()):
            if c not in events.columns:
                raise ValueError(f"events: column {c!r} missing (columns: {list(events.columns)})")
        if progress_col is not None and progress_col not in events.columns:
            raise ValueError(f"progress_col: column {progress_col!r} not in events")
        ev = events[events[ecol].astype(str).isin(_PARTIAL_EVENTS + _FINISH_EVENTS)]
        if tcol is not None:
            ev = ev.sort_values(tcol, kind="stable")
        last = ev.groupby([ucol, icol], sort=False, observed=True).tail(1)
        last = last[last[ecol].astype(str).isin(_PARTIAL_EVENTS)]
        if len(last) == 0:
            return empty
        u = pd.Index(inter.user_ids).get_indexer(last[ucol].to_numpy())
        i = pd.Index(inter.item_ids).get_indexer(last[icol].to_numpy())
        ok = (u >= 0) & (i >= 0)
        prog = (last[progress_col].to_numpy(dtype=np.float64) if progress_col is not None
                else np.full(len(last), np.nan))
        if tcol is not None:
            ts = pd.to_datetime(last[tcol]).astype("datetime64[ns]").to_numpy().astype(
                np.int64) / 1e9 if not pd.api.types.is_numeric_dtype(last[tcol]) else \
                last[tcol].to_numpy(dtype=np.float64)
        else:
            ts = np.full(len(last), np.nan)
        u, i, prog, ts = u[ok], i[ok], prog[ok], np.asarray(ts)[ok]
        order = np.lexsort((i, u))
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
        return {"p_indptr": indptr, "p_items": i[order].astype(np.int32),
                "p_progress": prog[order].astype(np.float32), "p_ts": ts[order]}

    def _make_state(self, model, a: dict, stats, seq: int, generation: int) -> _State:
        items = self._make_items(model, np.asarray(a["item_ids"]), version=generation * 1_000_000)
        user_ids = np.asarray(a["user_ids"])
        base = _Base(user_ids=user_ids, user_index=pd.Index(user_ids), indptr=a["indptr"],
                     items=a["items"], raw=a["raw"], values=a["values"], counts=a["counts"],
                     ts=a.get("ts"), vectors=a["vectors"], p_indptr=a["p_indptr"],
                     p_items=a["p_items"], p_progress=a["p_progress"], p_ts=a["p_ts"])
        events = EventRules(self._settings, stats, (base.n_users, items.n))
        ts = base.ts
        clock = float(ts.max()) if ts is not None and ts.size else float("nan")
        return _State(items=items, base=base, live={}, new_users={}, new_user_ids=[],
                      events=events, clock=clock, seq=seq, generation=generation)

    def _make_items(self, model, ids: np.ndarray, version: int) -> _Items:
        cat_rows = (np.full(ids.shape[0], -1, dtype=np.int64) if self.catalog is None
                    else self.catalog.rows_of(ids))
        return _Items(ids=ids, index=pd.Index(ids), model=model, scorer=scorer_for(model),
                      cat_rows=cat_rows, version=version)

    # ------------------------------------------------------------------ lookups
    def _user(self, st: _State, user, what="user") -> int:
        key, pos = _lookup(st.base.user_index, st.base.user_ids, user, what)
        if pos is None:
            pos = st.new_users.get(key)
        if pos is None:
            raise ValueError(f"{what}: unknown user {user!r} (record() an event for a new user "
                             "first)")
        return pos

    def _item(self, st: _State, item, what="item") -> int:
        key, pos = _lookup(st.items.index, st.items.ids, item, what)
        if pos is None:
            raise ValueError(f"{what}: unknown item {item!r}")
        return pos

    def _row(self, st: _State, u: int) -> UserRow:
        live = st.live.get(u)
        if live is not None:
            return live
        b = st.base
        lo, hi = int(b.indptr[u]), int(b.indptr[u + 1])
        plo, phi = int(b.p_indptr[u]), int(b.p_indptr[u + 1])
        partial = {int(i): (float(p), float(t)) for i, p, t in
                   zip(b.p_items[plo:phi], b.p_progress[plo:phi], b.p_ts[plo:phi])}
        return UserRow(items=b.items[lo:hi], raw=b.raw[lo:hi], values=b.values[lo:hi],
                       counts=b.counts[lo:hi], ts=None if b.ts is None else b.ts[lo:hi],
                       vector=b.vectors[u], partial=partial, seq=0)

    def _ext_items(self, st: _State, idx) -> list:
        return st.items.ids[np.asarray(idx, dtype=np.int64)].tolist()  # Python ints / strs

    def _title(self, st: _State, i: int) -> str:
        if self.catalog is not None:
            r = st.items.cat_rows[i]
            if r >= 0:
                return str(self.catalog.titles[r])
        return str(external(st.items.ids[i]))

    def title(self, item) -> str:
        """The display title of an item (its id when the catalog has none)."""
        st = self._state
        return self._title(st, self._item(st, item))

    def row_dict(self, row: Row) -> dict:
        """``row.to_dict()`` plus ``"titles"``: each item's display title (JSON-ready; what
        the HTTP service and the command line print)."""
        if not isinstance(row, Row):
            raise ValueError(f"row: expected a Row, got {type(row).__name__}")
        st = self._state
        d = row.to_dict()
        d["titles"] = [self._title(st, self._item(st, i)) for i in row.items]
        return d

    def page_dict(self, page: Page) -> dict:
        """``page.to_dict()`` with every row as :meth:`row_dict` (titles included)."""
        if not isinstance(page, Page):
            raise ValueError(f"page: expected a Page, got {type(page).__name__}")
        return {"user": external(page.user), "rows": [self.row_dict(r) for r in page.rows]}

    @property
    def n_users(self) -> int:
        return self._state.n_users

    @property
    def n_items(self) -> int:
        return self._state.items.n

    @property
    def model(self):
        return self._state.items.model

    def has_user(self, user) -> bool:
        try:
            self._user(self._state, user)
        except ValueError:
            return False
        return True

    def has_item(self, item) -> bool:
        try:
            self._item(self._state, item)
        except ValueError:
            return False
        return True

    def users(self, limit=None) -> list:
        """External ids of the users (the fitted ones, then those added by ``record``),
        the first ``limit`` of them when given."""
        st = self._state
        n = st.n_users if limit is None else min(check_int(limit, "limit", minimum=0),
                                                 st.n_users)
        base = [external(x) for x in st.base.user_ids[: min(n, st.base.n_users)]]
        return base + [external(x) for x in st.new_user_ids[: max(0, n - len(base))]]

    def user_key(self, text):
        """``text`` (from a URL or a command line) as a user id of the bundle's kind: its
        integer value when the ids are integers, else the string itself.  ValueError when
        the ids are integers and ``text`` is not one.  The user need not exist."""
        return self._key(text, self._state.base.user_ids, "user")

    def item_key(self, text):
        """``text`` as an item id of the bundle's kind (see :meth:`user_key`)."""
        return self._key(text, self._state.items.ids, "item")

    @staticmethod
    def _key(text, ids: np.ndarray, what: str):
        if isinstance(text, str) and ids.dtype.kind in "iu":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{what}: ids are integers, got {text!r}") from None
        return text

    def top_picks_for_history(self, events, n=10, *, rules=None) -> Row:
        """Top picks for a visitor with no account, from an anonymous history.

        Parameters
        ----------
        events : list of (item, event) pairs or dicts ``{"item": ..., "event": ...,
            "value": ..., "timestamp": ...}``
            What the visitor did, oldest first; weighted as :meth:`record` weighs events.
            Items unknown to the model are ignored.
        n : int

        Returns
        -------
        Row of kind ``"top_picks"`` without the history's titles, scored by the vector
        folded in from that history (nothing is stored).
        """
        n = check_int(n, "n", minimum=1)
        if isinstance(events, (str, bytes, dict)) or not hasattr(events, "__iter__"):
            raise ValueError(f"events: expected a list of events, got {type(events).__name__}")
        st = self._state
        f = st.items.scorer.factors
        row = UserRow(items=np.zeros(0, dtype=np.int32), raw=np.zeros(0),
                      values=np.zeros(0, dtype=np.float32), counts=np.zeros(0, dtype=np.int32),
                      ts=None if st.base.ts is None else np.zeros(0),
                      vector=np.zeros(f, dtype=np.float32), partial={})
        for k, ev in enumerate(events):
            if isinstance(ev, dict):
                unknown = set(ev) - {"item", "event", "value", "timestamp"}
                if unknown or "item" not in ev or "event" not in ev:
                    raise ValueError(f"events[{k}]: expected keys item, event (value, "
                                     f"timestamp optional), got {sorted(ev)}")
                item, event = ev["item"], ev["event"]
                value, timestamp = ev.get("value"), ev.get("timestamp")
            elif isinstance(ev, (tuple, list)) and len(ev) == 2:
                (item, event), value, timestamp = ev, None, None
            else:
                raise ValueError(f"events[{k}]: expected an (item, event) pair or a dict, got "
                                 f"{ev!r}")
            st.events.check_event(event)
            if value is not None:
                value = check_float(value, f"events[{k}].value")
            t = time.time() if timestamp is None else self._time(timestamp)
            key_i, i = _lookup(st.items.index, st.items.ids, item, f"events[{k}].item")
            if i is None:
                continue
            strength = st.events.strength(event, value, t)
            if not np.isfinite(strength) or abs(strength) > 1e30:
                raise ValueError(f"events[{k}].value: {value!r} gives the event a weight out "
                                 f"of range")
            row = with_event(row, i, strength, t, st.events, None, 0)
        if row.items.size:
            row = replace(row, vector=self._fold_in(st, row))
        deny, allow = self._filters(st, rules)
        return self._top_picks_row(st, row, n, deny, allow)

    # ------------------------------------------------------------------ rules
    def _clock(self, st: _State, rules: Rules) -> float:
        if rules.now is not None:
            return float(rules.now)
        return st.clock if np.isfinite(st.clock) else time.time()

    def _filters(self, st: _State, rules) -> tuple[np.ndarray, np.ndarray | None]:
        """(sorted deny item indices, allow item indices or None) of the rules."""
        r = self.rules if rules is None else Rules.of(rules).checked()
        # to the minute: the clock moves with every event, the windows do not need it
        now = float(np.floor(self._clock(st, r) / 60.0) * 60.0)
        key = ("blocked", st.items.version, now, r.max_maturity, r.region)
        blocked = st.cache.get(key)
        if blocked is None:
            if self.catalog is None:
                blocked = np.zeros(0, dtype=np.int64)
            else:
                rows = st.items.cat_rows
                bad_rows = self.catalog.blocked(now, r.max_maturity, r.region)
                blocked = np.flatnonzero((rows >= 0) & bad_rows[np.maximum(rows, 0)])
            _remember(st, key, blocked)
        deny = blocked
        if r.deny is not None and len(r.deny):
            deny = np.union1d(deny, self._known_items(st, r.deny, "rules.deny"))
        allow = None
        if r.allow is not None:
            allow = self._known_items(st, r.allow, "rules.allow")
        return deny, allow

    def _known_items(self, st, ids, what) -> np.ndarray:
        return np.array([self._item(st, i, what) for i in ids], dtype=np.int64)

    # ------------------------------------------------------------------ ranking
    def _rank(self, st: _State, vector, n: int, exclude, deny, allow):
        """Top-n (item indices, scores) for a query vector of a vector model."""
        return st.items.scorer.rank(vector, None, n, exclude, deny, allow)

    def _csr(self, st: _State, row: UserRow) -> sp.csr_matrix:
        """The row's nonzero values as a 1 x n_items CSR of the model's items."""
        items, vals = row.nonzero()
        n = st.items.scorer.n_items
        keep = items < n
        items, vals = items[keep], vals[keep]
        return sp.csr_matrix((vals.astype(np.float32), items.astype(np.int32),
                              np.array([0, items.size], dtype=np.int64)), shape=(1, n))

    def _rank_user(self, st: _State, row: UserRow, n: int, exclude, deny, allow):
        """Top-n (item indices, scores) of a user, by whatever the model scores from."""
        sc = st.items.scorer
        return sc.rank(row.vector, self._csr(st, row) if sc.kind == "rows" else None, n,
                       exclude, deny, allow)

    def _scores_of(self, st: _State, row: UserRow, items) -> np.ndarray:
        sc = st.items.scorer
        return sc.scores(row.vector, self._csr(st, row) if sc.kind == "rows" else None, items)

    def _genres(self, st: _State):
        """(genre names, CSR item index x genre, rows summing to 1) or None."""
        key = ("genres", st.items.version)
        if key in st.cache:
            return st.cache[key]
        out = None
        if self.catalog is not None and self.catalog.genre_names:
            gm = self.catalog.genre_matrix()
            rows = st.items.cat_rows
            sel = sp.csr_matrix((np.ones(int((rows >= 0).sum())),
                                 (np.flatnonzero(rows >= 0), rows[rows >= 0])),
                                shape=(st.items.n, len(self.catalog)))
            out = (list(self.catalog.genre_names), (sel @ gm).tocsr())
        elif self.features is not None:
            out = self._feature_genres(st)
        _remember(st, key, out)
        return out

    def _feature_genres(self, st: _State):
        """Genres from the ``genres`` (or ``genre``) columns of the ItemFeatures."""
        f = self.features
        names = np.asarray(getattr(f, "names", []), dtype=str)
        groups = getattr(f, "groups", None)
        groups = (np.array([n.split("=")[0] for n in names]) if groups is None
                  else np.asarray(groups, dtype=str))
        cols = np.flatnonzero(np.isin(groups, ("genres", "genre")))
        if cols.size == 0:
            return None
        m = sp.csr_matrix(f.matrix)[:, cols].astype(np.float64)
        pos = pd.Index(np.asarray(f.item_ids)).get_indexer(st.items.ids)
        sel = sp.csr_matrix((np.ones(int((pos >= 0).sum())),
                             (np.flatnonzero(pos >= 0), pos[pos >= 0])),
                            shape=(st.items.n, m.shape[0]))
        m = (sel @ m).tocsr()
        m.data = (m.data != 0).astype(np.float64)
        m.eliminate_zeros()
        sums = np.asarray(m.sum(axis=1)).ravel()
        m = sp.csr_matrix(sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums),
                                             where=sums > 0)) @ m)
        return [n.split("=", 1)[-1] for n in names[cols]], m

    def _user_mix(self, st: _State, row: UserRow, genres) -> np.ndarray:
        pos = row.values > 0
        return _rerank.genre_mix(genres[1][row.items[pos]], row.values[pos])

    def _ranked_row(self, st, row: UserRow, n, deny, allow, diversity, calibration):
        """Top-n (ids, scores) by the user's vector, seen excluded, then re-ranked."""
        diversity = _rerank._unit_interval(diversity, "diversity")
        calibration = _rerank._unit_interval(calibration, "calibration")
        genres = self._genres(st) if calibration > 0 else None
        pool = n if diversity == 0 and (calibration == 0 or genres is None) else n * 5
        ids, scores = self._rank_user(st, row, pool, row.items, deny, allow)
        if ids.size <= 1 or pool == n:
            return ids[:n], scores[:n]
        if calibration > 0 and genres is not None:
            order = _rerank.calibrate(scores, genres[1][ids], self._user_mix(st, row, genres),
                                      n, calibration)
            ids, scores = ids[order], scores[order]
        if diversity > 0:
            order = _rerank.mmr(scores, st.items.scorer.item_vectors(ids), n, diversity)
            ids, scores = ids[order], scores[order]
        return ids[:n], scores[:n]

    def _pick_reasons(self, st, row: UserRow, ids) -> list:
        ex = st.items.explainer
        hist, vals = row.nonzero()
        if ex is None or ids.size == 0 or not (vals > 0).any():
            return [None] * int(ids.size)
        h, contrib = ex.contributions(hist, vals, ids)
        best = np.argmax(contrib, axis=1)
        return [f"Because you watched {self._title(st, int(h[b]))}" if contrib[k, b] > 0
                else None for k, b in enumerate(best)]

    # ------------------------------------------------------------------ queries
    def set_tastes(self, component) -> None:
        """Plug in the shared-account component: ``top_picks(tastes=..., context=...)``
        and the home page delegate to ``component.top_picks(personalizer, user, n,
        tastes=, context=, **options)`` for anything but ``tastes="single"``.

        A :class:`~tastemaker.pages.tastes.Tastes` is plugged in by default when the
        interactions have sessions; ``set_tastes(None)`` turns it off."""
        self._tastes = component

    def tastes(self, user) -> list:
        """The people ("tastes") inside an account, heaviest first: a list of
        :class:`~tastemaker.pages.tastes.Taste` (``.items``, ``.weight``, ``.context``).
        One taste holding the whole history when the account is one person, or when
        there are no sessions to tell people apart."""
        if isinstance(self._tastes, Tastes):
            return self._tastes.personalizer_tastes(self, user)
        st = self._state
        row = self._row(st, self._user(st, user))
        return [Taste(items=self._ext_items(st, row.items), weight=1.0)]

    def top_picks(self, user, n=10, tastes="auto", context=None, *, rules=None,
                  diversity=0.0, calibration=0.0, exclude=None) -> Row:
        """The user's top ``n`` unseen titles.

        Parameters
        ----------
        user : external user id
        n : int
        tastes : {"auto", "single"}
            ``"single"`` ranks by the account's one vector; ``"auto"`` lets the tastes
            component serve each person of a shared account (the same as ``"single"``
            when none is plugged in, or for a one-taste account).
        context : dict, optional
            Who is watching now (``{"device": "tv", "hour": 21}``), for the tastes
            component.
        rules : Rules or dict, optional
            Business rules (default: the Personalizer's).
        diversity : float in [0, 1]
            MMR re-ranking strength (0 = off).
        calibration : float in [0, 1]
            Steck calibration to the user's genre mix (0 = off).
        exclude : list of external item ids, optional
            Titles not to repeat (already on the page).

        Returns
        -------
        Row of kind ``"top_picks"``; ``scores`` are the model scores (``explain`` adds up
        to them); ``reasons`` name the history title contributing most.
        """
        n = check_int(n, "n", minimum=1)
        if tastes not in ("auto", "single"):
            raise ValueError(f"tastes: expected 'auto' or 'single', got {tastes!r}")
        if context is not None and not isinstance(context, dict):
            raise ValueError(f"context: expected a dict such as {{'device': 'tv', 'hour': 21}},"
                             f" got {type(context).__name__}")
        if self._tastes is not None and (tastes != "single" or context is not None):
            return self._tastes.top_picks(self, user, n, tastes=tastes, context=context,
                                          rules=rules, diversity=diversity,
                                          calibration=calibration, exclude=exclude)
        st = self._state
        u = self._user(st, user)
        deny, allow = self._filters(st, rules)
        if exclude is not None and len(exclude):
            deny = np.union1d(deny, self._known_items(st, exclude, "exclude"))
        return self._top_picks_row(st, self._row(st, u), n, deny, allow, diversity, calibration)

    def _top_picks_row(self, st, row, n, deny, allow, diversity=0.0, calibration=0.0) -> Row:
        ids, scores = self._ranked_row(st, row, n, deny, allow, diversity, calibration)
        return Row(kind="top_picks", title="Top picks for you", items=self._ext_items(st, ids),
                   scores=[float(s) for s in scores], reasons=self._pick_reasons(st, row, ids))

    def similar(self, item, n=10, *, rules=None) -> Row:
        """Titles like ``item`` (cosine of the item factors), as a Row of kind
        ``"similar"``."""
        n = check_int(n, "n", minimum=1)
        st = self._state
        i = self._item(st, item)
        deny, allow = self._filters(st, rules)
        deny = np.union1d(deny, [i])
        ids, scores = st.items.model.similar_items(i, N=n, filter_items=deny, items=allow)
        title = self._title(st, i)
        return Row(kind="similar", title=f"More like {title}", items=self._ext_items(st, ids),
                   scores=[float(s) for s in scores], reasons=[f"Like {title}"] * len(ids),
                   seed=external(st.items.ids[i]))

    def history(self, user, n=None) -> Row:
        """The user's history, most recent first (strongest first without timestamps), as
        a Row of kind ``"history"`` with the values the model sees as scores."""
        st = self._state
        row = self._row(st, self._user(st, user))
        order = self._recent_strong(row)
        if n is not None:
            order = order[: check_int(n, "n", minimum=1)]
        reasons = ["disliked" if row.values[k] < 0 else None for k in order]
        return Row(kind="history", title="Your history", items=self._ext_items(st, row.items[order]),
                   scores=[float(row.values[k]) for k in order], reasons=reasons)

    @staticmethod
    def _recent_strong(row: UserRow) -> np.ndarray:
        if row.ts is not None:
            t = np.nan_to_num(row.ts, nan=-np.inf)
            return np.lexsort((-row.values, -t))
        return np.argsort(-row.values, kind="stable")

    def explain(self, user, item, n=5) -> Explanation:
        """Why ``item`` scores what it does for ``user``: the ``n`` history titles that
        contribute most, largest first, and the rest; ``score`` is the top-picks score.
        """
        n = check_int(n, "n", minimum=0)
        st = self._state
        u = self._user(st, user)
        i = self._item(st, item)
        row = self._row(st, u)
        score = float(self._scores_of(st, row, [i])[0])
        ex = st.items.explainer
        if ex is None:
            return Explanation(user=user, item=item, score=score, contributions=[], rest=score,
                               method="none")
        hist, vals = row.nonzero()
        if hist.size == 0:
            return Explanation(user=user, item=item, score=score, rest=score, method=ex.method)
        h, contrib = ex.contributions(hist, vals, [i])
        c = contrib[0]
        order = np.argsort(-c, kind="stable")[:n]
        top = [(external(st.items.ids[h[k]]), float(c[k])) for k in order]
        rest = score - float(np.sum([v for _, v in top]))
        return Explanation(user=user, item=item, score=score, contributions=top, rest=rest,
                           method=ex.method)

    def _seeds(self, row: UserRow, n_rows: int) -> np.ndarray:
        """Positions in ``row`` of the best seeds: liked titles, most recent and strongest
        first (value x 2^(-age / 30 days) from the user's latest event)."""
        pos = np.flatnonzero(row.values > 0)
        if pos.size == 0:
            return pos
        strength = row.values[pos].astype(np.float64)
        if row.ts is not None:
            t = row.ts[pos]
            latest = np.nanmax(t) if np.isfinite(t).any() else 0.0
            age = np.nan_to_num(latest - t, nan=1e12)
            strength = strength * np.exp2(-age / (30 * _DAY))
        order = np.lexsort((row.items[pos], -strength))
        return pos[order[:n_rows]]

    def because_you_watched(self, user, n_rows=3, n=10, *, rules=None, exclude=None) -> list:
        """Rows seeded by the user's most recent and strongest watches.

        For ALS a row ranks titles by the seed's exact contribution to their score
        (``y_i . c_s A^{-1} y_s``, see :mod:`.explain`), so every title is there because
        of its seed; other models rank the seed's nearest titles (cosine).
        """
        n_rows = check_int(n_rows, "n_rows", minimum=1)
        n = check_int(n, "n", minimum=1)
        st = self._state
        row = self._row(st, self._user(st, user))
        deny, allow = self._filters(st, rules)
        used = set() if exclude is None else set(self._known_items(st, exclude, "exclude").tolist())
        return self._byw_rows(st, row, n_rows, n, deny, allow, used)

    def _byw_rows(self, st, row: UserRow, n_rows, n, deny, allow, used: set) -> list:
        seeds = self._seeds(row, n_rows)
        if seeds.size == 0:
            return []
        ex = st.items.explainer
        out = []
        hist, vals = row.nonzero()
        for k, p in enumerate(seeds):
            s = int(row.items[p])
            d = np.union1d(deny, np.fromiter(used, dtype=np.int64)) if used else deny
            if ex is not None:
                ids, scores = st.items.scorer.seed_rank(row.vector, hist, vals, s, n,
                                                        row.items, d, allow)
            else:
                try:
                    ids, scores = st.items.model.similar_items(
                        s, N=n, filter_items=np.union1d(d, row.items), items=allow)
                except (NotImplementedError, ValueError):
                    continue
                ids = ids.astype(np.int64)
            if ids.size == 0:
                continue
            used.update(ids.tolist())
            title = self._title(st, s)
            out.append(Row(kind="because_you_watched", title=f"Because you watched {title}",
                           items=self._ext_items(st, ids), scores=[float(x) for x in scores],
                           reasons=[f"Because you watched {title}"] * int(ids.size),
                           seed=external(st.items.ids[s])))
        return out

    # ------------------------------------------------------------------ home page
    def _trending(self, st: _State, now: float) -> np.ndarray:
        """Viewers per item with an event in ``[now - trending_window, now]``, ``now``
        rounded up to the hour so that the base counts (a pass over every entry) are
        reused while the clock moves with each event; rows changed live replace their
        base rows."""
        now = float(np.ceil(now / 3600.0) * 3600.0)
        lo = now - self.trending_window
        key = ("trending", st.items.version, now)
        base = st.cache.get(key)
        b = st.base
        if base is None:
            base = np.zeros(st.items.n)
            if b.ts is not None:
                recent = (b.ts >= lo) & (b.ts <= now)
                base = np.bincount(b.items[recent], minlength=st.items.n).astype(np.float64)
            _remember(st, key, base)
        if b.ts is None or not st.live:
            return base
        key_live = ("trending_live", st.items.version, now, st.seq)
        hit = st.cache.get(key_live)
        if hit is None:
            hit = base.copy()
            for u, row in st.live.copy().items():
                if u < b.n_users:
                    s, e = int(b.indptr[u]), int(b.indptr[u + 1])
                    old = b.items[s:e][(b.ts[s:e] >= lo) & (b.ts[s:e] <= now)]
                    np.subtract.at(hit, old, 1.0)
                if row.ts is not None:
                    np.add.at(hit, row.items[(row.ts >= lo) & (row.ts <= now)], 1.0)
            _remember(st, key_live, hit)
        return hit

    def homepage(self, user, rows=None, row_size=10, *, rules=None, diversity=0.0,
                 calibration=0.0, n_because=2, n_genres=3, tastes="rows") -> Page:
        """The user's home page: ordered rows, each title at most once on the page.

        Parameters
        ----------
        user : external user id
        rows : list of str, optional
            Kinds to build, from :data:`ROW_KINDS` (default: all).
        row_size : int
        rules : Rules or dict, optional
        diversity, calibration : float in [0, 1]
            Re-ranking of the top-picks and genre rows (see :meth:`top_picks`).
        n_because, n_genres : int
            How many "Because you watched" and genre rows.
        tastes : {"rows", "interleave", "single"}
            A shared account's top picks: one row per taste (titled by its habits, e.g.
            "Top picks for evenings on the tv"), one row interleaving them, or one row
            by the account's single vector.  One-person accounts get one row anyway.

        Row order: "Continue watching" and "Top picks" first, then the other rows by the
        user's predicted engagement with their content (the mean model score of their
        titles for this user).
        """
        row_size = check_int(row_size, "row_size", minimum=1)
        n_because = check_int(n_because, "n_because", minimum=0)
        n_genres = check_int(n_genres, "n_genres", minimum=0)
        kinds = ROW_KINDS if rows is None else rows
        if isinstance(kinds, str) or not all(k in ROW_KINDS for k in kinds):
            raise ValueError(f"rows: expected a list of row kinds from {ROW_KINDS}, got {rows!r}")
        st = self._state
        u = self._user(st, user)
        row = self._row(st, u)
        deny, allow = self._filters(st, rules)
        r = self.rules if rules is None else Rules.of(rules).checked()
        now = self._clock(st, r)
        used: set = set()
        built: list[Row] = []

        def denied():
            return np.union1d(deny, np.fromiter(used, dtype=np.int64)) if used else deny

        for kind in ROW_KINDS:
            if kind not in kinds:
                continue
            if kind == "continue_watching":
                res = self._continue_row(st, row, row_size, deny, allow)
            elif kind == "top_picks":
                if isinstance(self._tastes, Tastes):
                    res = self._tastes.homepage_rows(
                        self, user, row_size, layout=tastes, rules=rules,
                        diversity=diversity, calibration=calibration,
                        exclude=self._ext_items(st, sorted(used)))
                elif self._tastes is not None:
                    res = self.top_picks(user, row_size, rules=rules, diversity=diversity,
                                         calibration=calibration,
                                         exclude=self._ext_items(st, sorted(used)))
                else:
                    res = self._top_picks_row(st, row, row_size, denied(), allow, diversity,
                                              calibration)
            elif kind == "because_you_watched":
                res = self._byw_rows(st, row, n_because, row_size, deny, allow, used) \
                    if n_because else []
            elif kind == "genres":
                res = self._genre_rows(st, row, n_genres, row_size, deny, allow, used,
                                       diversity, calibration)
            elif kind == "trending":
                res = self._trending_row(st, row, row_size, denied(), allow, now)
            else:
                res = self._new_row(st, row, row_size, denied(), allow, now)
            for rw in ([res] if isinstance(res, Row) else (res or [])):
                if rw is None or not rw.items:
                    continue
                idx = [self._item(st, i) for i in rw.items]
                used.update(idx)
                built.append(rw)
        return Page(user=external(user) if not isinstance(user, str) else user,
                    rows=self._order_rows(st, row, built))

    def _order_rows(self, st, row: UserRow, rows: list) -> list:
        pinned = [r for k in _PINNED for r in rows if r.kind == k]
        rest = [r for r in rows if r.kind not in _PINNED]
        if not rest:
            return pinned
        idx = [np.array([self._item(st, i) for i in r.items], dtype=np.int64) for r in rest]
        flat = np.concatenate(idx)
        got = dict(zip(flat.tolist(), self._scores_of(st, row, flat).tolist()))
        rel = [float(np.mean([got[int(i)] for i in ix])) for ix in idx]
        order = sorted(range(len(rest)), key=lambda k: (-rel[k], k))
        return pinned + [rest[k] for k in order]

    def _continue_row(self, st, row: UserRow, n, deny, allow):
        if not row.partial:
            return None
        items = np.array(sorted(row.partial, key=lambda i: (-np.nan_to_num(row.partial[i][1],
                                                                              nan=-np.inf), i)),
                         dtype=np.int64)
        ok = ~np.isin(items, deny)
        if allow is not None:
            ok &= np.isin(items, allow)
        items = items[ok][:n]
        reasons, scores = [], []
        for i in items:
            prog = row.partial[int(i)][0]
            scores.append(float(prog) if np.isfinite(prog) else 0.0)
            reasons.append(f"You stopped at {prog:.0%}" if np.isfinite(prog)
                           else "You started watching this")
        return Row(kind="continue_watching", title="Continue watching",
                   items=self._ext_items(st, items), scores=scores, reasons=reasons)

    def _genre_rows(self, st, row, n_rows, n, deny, allow, used, diversity, calibration):
        genres = self._genres(st) if n_rows else None
        if genres is None:
            return []
        names, gm = genres
        mix = self._user_mix(st, row, genres)
        if not mix.any():
            return []
        out = []
        for g in np.argsort(-mix, kind="stable")[:n_rows]:
            if mix[g] <= 0:
                break
            members = gm[:, g].nonzero()[0]
            al = members if allow is None else np.intersect1d(members, allow)
            if al.size == 0:
                continue
            d = np.union1d(deny, np.fromiter(used, dtype=np.int64)) if used else deny
            ids, scores = self._ranked_row(st, row, n, d, al, diversity, calibration)
            if ids.size == 0:
                continue
            used.update(ids.tolist())
            name = names[g]
            out.append(Row(kind="genre", title=str(name), items=self._ext_items(st, ids),
                           scores=[float(s) for s in scores],
                           reasons=[f"{name}: {mix[g]:.0%} of what you watch"] * int(ids.size)))
        return out

    def _trending_row(self, st, row, n, deny, allow, now):
        counts = self._trending(st, now).copy()
        counts[row.items] = 0
        counts[deny] = 0
        if allow is not None:
            mask = np.zeros(counts.size, dtype=bool)
            mask[allow] = True
            counts[~mask] = 0
        cand = np.flatnonzero(counts > 0)
        if cand.size == 0:
            return None
        order = np.lexsort((cand, -counts[cand]))[:n]
        ids = cand[order]
        days = self.trending_window / _DAY
        span = f"{days:g} days" if days != 1 else "day"
        return Row(kind="trending", title="Trending now", items=self._ext_items(st, ids),
                   scores=[float(c) for c in counts[ids]],
                   reasons=[f"{int(c)} viewers in the last {span}" for c in counts[ids]])

    def _new_row(self, st, row, n, deny, allow, now):
        if self.catalog is None:
            return None
        rows = st.items.cat_rows
        rel = np.full(st.items.n, np.nan)
        rel[rows >= 0] = self.catalog.release[rows[rows >= 0]]
        with np.errstate(invalid="ignore"):
            fresh = np.flatnonzero((rel <= now) & (rel >= now - self.new_window))
        fresh = np.setdiff1d(fresh, np.union1d(deny, row.items))
        if allow is not None:
            fresh = np.intersect1d(fresh, allow)
        if fresh.size == 0:
            return None
        ids, scores = self._rank_user(st, row, n, None, np.zeros(0, dtype=np.int64), fresh)
        return Row(kind="new_releases", title="New releases", items=self._ext_items(st, ids),
                   scores=[float(s) for s in scores],
                   reasons=[f"New: released {pd.Timestamp(rel[i], unit='s').date()}"
                            for i in ids])

    # ------------------------------------------------------------------ live updates
    def record(self, user, item, event, value=None, timestamp=None) -> None:
        """Append one event; the user's next query reflects it.

        Parameters
        ----------
        user, item : external ids
            New users and items are added (with a catalog, the item must be in it).  A
            new item gets its factors folded in from this first user (when the user is
            known to the model) and is refined by :meth:`refresh`.
        event : str
            An event type with a weight in the interactions' ``event_weights`` (``play``,
            ``complete``, ``thumbs_down``, ...).  ``pause`` puts the title in "Continue
            watching"; ``complete`` and ``thumbs_down`` take it out.
        value : float, optional
            Multiplies the event's weight (default 1); for ``pause``, a value in (0, 1)
            is also the share watched shown in "Continue watching".
        timestamp : time, optional
            Default: now (wall clock).

        The pair's value is rebuilt as :class:`~tastemaker.Interactions` builds it
        (weight, decay, aggregation, transform) and the user is folded in again against
        the item factors with the cached Gram (C++), so the very next query ranks by the
        new vector.  A thumbs-down leaves the title seen (never recommended again) and its
        negative value (preference 0 at high confidence) pushes similar titles down.
        """
        st = self._state
        st.events.check_event(event)
        if value is not None:
            value = check_float(value, "value")
        t = time.time() if timestamp is None else self._time(timestamp)
        with self._lock:
            st = self._state
            key_i, i = _lookup(st.items.index, st.items.ids, item, "item")
            key_u, u = _lookup(st.base.user_index, st.base.user_ids, user, "user")
            if u is None:
                u = st.new_users.get(key_u)
            if i is None and self.catalog is not None and not self.catalog.has(key_i):
                raise ValueError(f"item: {item!r} is not in the catalog")
            if u is None:
                u = st.n_users
                f = st.items.scorer.factors
                old = UserRow(items=np.zeros(0, dtype=np.int32), raw=np.zeros(0),
                              values=np.zeros(0, dtype=np.float32),
                              counts=np.zeros(0, dtype=np.int32),
                              ts=None if st.base.ts is None else np.zeros(0),
                              vector=np.zeros(f, dtype=np.float32), partial={})
            else:
                old = self._row(st, u)
            seq = st.seq + 1
            strength = st.events.strength(event, value, t)
            if not np.isfinite(strength) or abs(strength) > 1e30:
                raise ValueError(f"value: {value!r} gives the event a weight out of range")
            if event in _PARTIAL_EVENTS:
                pu = ("start", value if value is not None and 0 < value < 1 else np.nan)
            elif event in _FINISH_EVENTS:
                pu = ("stop", None)
            else:
                pu = None
            new_item = i is None
            if new_item:
                i = st.items.n
            new = with_event(old, i, strength, t, st.events, pu, seq)
            if new_item:
                k = int(np.searchsorted(new.items, i))
                st = self._add_item(st, key_i, u, float(new.values[k]))
            new = replace(new, vector=self._fold_in(st, new))
            st.live[u] = new  # history and vector in one assignment
            if u >= st.base.n_users and key_u not in st.new_users:
                st.new_user_ids.append(key_u)
                st.new_users[key_u] = u
            st.seq = seq
            if not np.isfinite(st.clock) or t > st.clock:
                st.clock = t  # the clock is the latest event
            self._state = st  # a no-op unless a new item made a new state

    @staticmethod
    def _time(timestamp) -> float:
        from ..data.interactions import _time_value

        return _time_value(timestamp, "timestamp")

    def _fold_in(self, st: _State, row: UserRow) -> np.ndarray:
        items, vals = row.nonzero()
        keep = items < st.items.scorer.n_items
        if not keep.all():
            items, vals = items[keep], vals[keep]
        x = st.items.scorer.fold_in_row(items.astype(np.int32, copy=False),
                                        vals.astype(np.float32, copy=False))
        return st.items.scorer.fold_in(self._csr(st, row)) if x is None else x

    @staticmethod
    def _with_item_factors(model, item_factors):
        """A new model object (own caches) sharing ``model``'s user side, with other item
        factors; ``model`` itself is never changed (readers may be using it)."""
        from ..io import _MODEL_REGISTRY

        params, arrays, extra = model._get_state()
        out = _MODEL_REGISTRY[type(model)._model_kind]._from_state(params, arrays, extra)
        out.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        out.user_factors = model.user_factors
        return out

    def _grown_model(self, model, u: int, value: float, key=None):
        """A copy of a vector model with one more item row: from the item's features
        when the model describes titles by metadata (``add_items``: ContentModel,
        HybridALS) and ``features`` has a row for ``key``; else folded in from user
        ``u``'s value (zeros when ``value`` is 0, ``u`` is unknown to the model or the
        model cannot fold in items)."""
        feats = self.features
        if (callable(getattr(model, "add_items", None)) and feats is not None
                and key is not None and pd.Index(feats.item_ids).get_indexer([key])[0] >= 0):
            grown = self._with_item_factors(model, model.item_factors)
            try:
                return grown.add_items(feats.reindex([key]))
            except ValueError:
                pass  # features in other columns than the model's: fold in as below
        f = model.item_factors.shape[1]
        vec = np.zeros((1, f), dtype=np.float32)
        n_model_users = model.user_factors.shape[0]
        if u < n_model_users and value != 0:
            row = sp.csr_matrix((np.array([value], dtype=np.float32),
                                 np.array([u], dtype=np.int32), np.array([0, 1])),
                                shape=(1, n_model_users))
            try:
                vec = np.asarray(model._fold_in_items(row), dtype=np.float32).reshape(1, f)
            except ValueError:
                pass  # the model cannot fold in items: the title stays cold until refresh
        return self._with_item_factors(model, np.vstack([model.item_factors, vec]))

    def _add_item(self, st: _State, key, u: int, value: float) -> _State:
        """A new state with one more item, folded in from user ``u``'s entry (zero
        factors, i.e. cold until the next refresh, when ``value`` is 0 or the model cannot
        fold in items)."""
        model = st.items.model
        if st.items.scorer.kind == "rows":  # a row model knows no new item until refresh
            grown = model
        else:
            grown = self._grown_model(model, u, value, key)
        ids = st.items.ids
        extra = np.asarray([key]).astype(ids.dtype if ids.dtype.kind in "iu" else str)
        ids = np.concatenate([ids.astype(str) if ids.dtype.kind == "U" else ids, extra])
        items = self._make_items(grown, ids, st.items.version + 1)
        events = EventRules(self._settings, st.events.stats, (st.base.n_users, items.n))
        return _State(items=items, base=st.base, live=dict(st.live), new_users=dict(st.new_users),
                      new_user_ids=list(st.new_user_ids), events=events, clock=st.clock,
                      seq=st.seq, generation=st.generation)

    # ------------------------------------------------------------------ snapshots
    def _snapshot(self, st: _State) -> dict:
        """Every array of the current state, live rows merged into the base (under the
        lock: ``live`` must not change meanwhile)."""
        b = st.base
        n_users = st.n_users
        live = {u: r for u, r in st.live.items()}
        lens = np.diff(b.indptr)
        counts = np.zeros(n_users, dtype=np.int64)
        counts[: b.n_users] = lens
        plens = np.zeros(n_users, dtype=np.int64)
        plens[: b.n_users] = np.diff(b.p_indptr)
        for u, r in live.items():
            counts[u] = r.items.size
            plens[u] = len(r.partial)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        p_indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(plens, out=p_indptr[1:])
        nnz = int(indptr[-1])
        keep = np.ones(b.n_users, dtype=bool)
        keep[[u for u in live if u < b.n_users]] = False
        # base users not changed live, copied in bulk
        src_rows = np.repeat(keep, lens)
        dst = np.repeat(np.concatenate([keep, np.zeros(n_users - b.n_users, dtype=bool)]),
                        counts)
        out = {"indptr": indptr, "items": np.empty(nnz, dtype=np.int32),
               "raw": np.empty(nnz), "values": np.empty(nnz, dtype=np.float32),
               "counts": np.empty(nnz, dtype=np.int32)}
        has_ts = b.ts is not None
        if has_ts:
            out["ts"] = np.empty(nnz)
        for k, src in (("items", b.items), ("raw", b.raw), ("values", b.values),
                       ("counts", b.counts)) + ((("ts", b.ts),) if has_ts else ()):
            out[k][dst] = np.asarray(src)[src_rows]
        pn = int(p_indptr[-1])
        p_items = np.empty(pn, dtype=np.int32)
        p_prog = np.empty(pn, dtype=np.float32)
        p_ts = np.empty(pn)
        p_src = np.repeat(keep, np.diff(b.p_indptr))
        p_dst = np.repeat(np.concatenate([keep, np.zeros(n_users - b.n_users, dtype=bool)]),
                          plens)
        p_items[p_dst] = np.asarray(b.p_items)[p_src]
        p_prog[p_dst] = np.asarray(b.p_progress)[p_src]
        p_ts[p_dst] = np.asarray(b.p_ts)[p_src]
        f = np.asarray(b.vectors).shape[1]
        vectors = np.empty((n_users, f), dtype=np.float32)
        vectors[: b.n_users] = b.vectors
        for u, r in live.items():
            lo, hi = indptr[u], indptr[u + 1]
            out["items"][lo:hi] = r.items
            out["raw"][lo:hi] = r.raw
            out["values"][lo:hi] = r.values
            out["counts"][lo:hi] = r.counts
            if has_ts:
                out["ts"][lo:hi] = r.ts
            plo = p_indptr[u]
            for k, it in enumerate(sorted(r.partial)):
                p_items[plo + k] = it
                p_prog[plo + k] = r.partial[it][0]
                p_ts[plo + k] = r.partial[it][1]
            vectors[u] = r.vector
        new_ids = np.asarray(st.new_user_ids)
        user_ids = np.asarray(b.user_ids)
        if new_ids.size:
            user_ids = (np.concatenate([user_ids, new_ids.astype(np.int64)])
                        if user_ids.dtype.kind in "iu" else
                        np.concatenate([user_ids.astype(str), new_ids.astype(str)]))
        out.update({"user_ids": user_ids, "item_ids": np.asarray(st.items.ids),
                    "vectors": vectors, "p_indptr": p_indptr, "p_items": p_items,
                    "p_progress": p_prog, "p_ts": p_ts})
        return out

    def _interactions_of(self, snap: dict) -> Interactions:
        """An Interactions holding a snapshot's entries (transform recomputed exactly)."""
        user_idx = np.repeat(np.arange(snap["indptr"].size - 1), np.diff(snap["indptr"]))
        return Interactions(user_ids=snap["user_ids"], item_ids=snap["item_ids"],
                            user_idx=user_idx, item_idx=snap["items"], raw_values=snap["raw"],
                            counts=snap["counts"], timestamps=snap.get("ts"),
                            settings=dict(self._settings), sessions=self.sessions)

    # ------------------------------------------------------------------ refresh
    def refresh(self, wait: bool = False, **fit_kwargs) -> Future:
        """Refit the model on everything recorded so far, in a background thread, and swap
        it in atomically.

        Queries keep being answered from the current state meanwhile; events recorded
        during the refit are folded in again against the new model before the swap, so
        none is lost.  A refresh already running is returned instead of starting another.

        Returns
        -------
        concurrent.futures.Future
            Resolves to None when the new model serves (its exception if the refit
            failed; the old model then keeps serving).
        """
        with self._lock:
            if self._refreshing is not None and not self._refreshing.done():
                fut = self._refreshing
            else:
                st = self._state
                snap = self._snapshot(st)
                snap_seq = st.seq
                fut = Future()
                self._refreshing = fut
                th = threading.Thread(target=self._refit, args=(snap, snap_seq, fit_kwargs, fut),
                                      name="tastemaker-refresh", daemon=True)
                th.start()
        if wait:
            fut.result()
        return fut

    def _refit(self, snap, snap_seq, fit_kwargs, fut: Future) -> None:
        try:
            inter = self._interactions_of(snap)
            old = self._state.items.model
            params = old.get_params()
            if self._people is not None:  # the account model people are found with
                params["regularization"] = self._people["regularization"]
            model = type(old)(**params)
            fit_kwargs.setdefault("show_progress", False)
            csr = inter.to_csr()
            import inspect

            if ("item_features" in inspect.signature(model.fit).parameters
                    and "item_features" not in fit_kwargs):
                if self.features is None:
                    raise ValueError(f"refresh: {type(old).__name__} is fitted with item "
                                     "features; give the Personalizer features=")
                fit_kwargs["item_features"] = self.features.reindex(inter.item_ids)
            model.fit(csr, **fit_kwargs)
            if self._people is not None and inter.sessions is not None:
                tastes = self._tastes if isinstance(self._tastes, Tastes) else Tastes()
                model = tastes.fit_people(model, inter)
            for attr in ("user_ids", "item_ids"):
                setattr(model, attr, getattr(inter, attr))
            arrays = dict(snap)
            arrays["values"] = inter.values
            arrays["vectors"] = scorer_for(model).all_vectors(csr)
            stats = self._stats_for(self._settings, inter.user_idx, inter.item_idx,
                                    inter.raw_values, inter.shape)
            with self._lock:
                cur = self._state
                new = self._make_state(model, arrays, stats, seq=cur.seq,
                                       generation=cur.generation + 1)
                # items added after the snapshot: fold them in from their first user
                n_snap_items = new.items.n
                for i in range(n_snap_items, cur.items.n):
                    new = self._add_item(new, external(cur.items.ids[i]), 0, 0.0)
                # users changed after the snapshot: their full rows, folded in anew
                n_snap_users = new.base.n_users
                for k, key in enumerate(cur.new_user_ids):
                    u = cur.base.n_users + k
                    if u >= n_snap_users:
                        new.new_user_ids.append(key)
                        new.new_users[key] = u
                for u, row in cur.live.items():
                    if row.seq > snap_seq:
                        new.live[u] = replace(row, vector=self._fold_in(new, row))
                new.clock = max(new.clock, cur.clock) if np.isfinite(cur.clock) else new.clock
                self.interactions = inter
                self._state = new
            fut.set_result(None)
        except BaseException as exc:  # the old state keeps serving
            fut.set_exception(exc)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write one file (no pickle) that :func:`tastemaker.load` reopens ready to serve.

        Holds the model, every user's history (live events included) and vector, partial
        plays, the catalog, event rules and options.  Arrays are stored raw and aligned, so
        opening memory-maps them instead of reading them: a large bundle opens in
        milliseconds.
        """
        from .._mapped import save_mapped

        with self._lock:
            st = self._state
            snap = self._snapshot(st)
        model = st.items.model
        kind = getattr(type(model), "_model_kind", None)
        if kind is None:
            raise ValueError(f"model: {type(model).__name__} is not a registered tastemaker model")
        params, m_arrays, extra = model._get_state()
        arrays = dict(snap)
        arrays.update({"model." + k: np.asarray(v) for k, v in m_arrays.items()})
        catalog_meta = None
        if self.catalog is not None:
            catalog_meta, c_arrays = self.catalog.arrays()
            arrays.update({"catalog." + k: v for k, v in c_arrays.items()})
        stats = st.events.stats
        if stats is not None:
            arrays["stats.df"] = np.asarray(stats["df"])
        sessions_meta = None
        if self.sessions is not None:
            sessions_meta, s_arrays = self.sessions.to_arrays()
            arrays.update({"sessions." + k: v for k, v in s_arrays.items()})
        features_meta = None
        if self.features is not None:
            fm = sp.csr_matrix(self.features.matrix)
            features_meta = {"spec": getattr(self.features, "spec", None),
                             "shape": list(fm.shape)}
            arrays.update({"features.indptr": fm.indptr.astype(np.int64),
                           "features.indices": fm.indices.astype(np.int32),
                           "features.data": fm.data.astype(np.float32),
                           "features.names": np.asarray(self.features.names, dtype=str),
                           "features.groups": np.asarray(self.features.groups, dtype=str),
                           "features.item_ids": np.asarray(self.features.item_ids)})
        r = self.rules
        meta = {
            "model": {"name": kind, "params": params, "extra": extra},
            "settings": self._settings,
            "catalog": catalog_meta,
            "features": features_meta,
            "stats": None if stats is None else {k: v for k, v in stats.items() if k != "df"},
            "seq": st.seq,
            "sessions": sessions_meta,
            "tastes": (self._tastes.get_params() if isinstance(self._tastes, Tastes)
                       else None),
            "options": {"trending_window": self.trending_window, "new_window": self.new_window,
                        "people": self._people,
                        "rules": {"now": r.now, "max_maturity": r.max_maturity,
                                  "region": r.region,
                                  "allow": None if r.allow is None else
                                  [external(x) for x in r.allow],
                                  "deny": None if r.deny is None else
                                  [external(x) for x in r.deny]}},
        }
        save_mapped(path, _BUNDLE_KIND, meta, arrays)

    @classmethod
    def load(cls, path) -> "Personalizer":
        """Open a bundle written by :meth:`save` (arrays memory-mapped, read-only)."""
        from .._mapped import load_mapped
        from ..io import _MODEL_REGISTRY

        meta, arrays = load_mapped(path, kind=_BUNDLE_KIND)
        try:
            m = meta["model"]
            if m["name"] not in _MODEL_REGISTRY:
                raise ValueError(f"path: {str(path)!r} holds an unknown model type {m['name']!r}")
            model = _MODEL_REGISTRY[m["name"]]._from_state(
                m["params"], {k[6:]: v for k, v in arrays.items() if k.startswith("model.")},
                m["extra"])
            self = cls.__new__(cls)
            opts = meta["options"]
            self._init_options(opts["rules"], opts["trending_window"], opts["new_window"])
            self._people = opts.get("people")
            self._settings = meta["settings"]
            cat = meta["catalog"]
            self.catalog = None if cat is None else Catalog.from_arrays(
                cat, {k[8:]: v for k, v in arrays.items() if k.startswith("catalog.")})
            fmeta = meta.get("features")
            if fmeta is not None:
                from ..data.features import ItemFeatures

                fm = sp.csr_matrix((arrays["features.data"], arrays["features.indices"],
                                    arrays["features.indptr"]), shape=tuple(fmeta["shape"]))
                self.features = ItemFeatures(fm, arrays["features.names"],
                                             arrays["features.item_ids"],
                                             arrays["features.groups"], fmeta["spec"])
            stats = None
            if meta.get("stats") is not None:
                stats = dict(meta["stats"], df=np.asarray(arrays["stats.df"], dtype=np.float64))
            n_users = len(arrays["user_ids"])
            n_items = len(arrays["item_ids"])
            if (arrays["indptr"].shape != (n_users + 1,) or arrays["vectors"].shape[0] != n_users
                    or scorer_for(model).n_items > n_items
                    or (arrays["items"].size and int(arrays["items"].max()) >= n_items)
                    or int(arrays["indptr"][-1]) != arrays["items"].size):
                raise ValueError("inconsistent array shapes")
            self._state = self._make_state(model, arrays, stats, seq=int(meta["seq"]),
                                           generation=0)
            if meta.get("sessions") is not None:
                self.sessions = Sessions.from_arrays(
                    meta["sessions"], {k[9:]: v for k, v in arrays.items()
                                       if k.startswith("sessions.")}, n_users, n_items)
                if meta.get("tastes") is not None:
                    self._tastes = Tastes(**meta["tastes"])
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            if str(exc).startswith("path:"):
                raise
            raise ValueError(f"path: {str(path)!r} is a damaged Personalizer bundle "
                             f"({exc})") from None
        return self

    def __repr__(self) -> str:
        st = self._state
        return (f"Personalizer({type(st.items.model).__name__}, {st.n_users} users, "
                f"{st.items.n} items, catalog={'yes' if self.catalog is not None else 'no'})")
