"""Shared accounts: the several people ("tastes") inside one account, and who is watching.

Why tastes alone are not enough
-------------------------------
One person with two favourite genres and two people with one genre each produce the
same *set* of titles; clustering an account's titles (or its sessions' mean taste
vectors) splits both.  Two things do tell them apart:

* **co-occurrence inside a session** -- titles played in one sitting were chosen by one
  person.  A single person's picks are drawn from one taste distribution whatever the
  session, so modelling sessions as bags of picks from a per-person distribution
  gives no gain from a second component; two people make the picks of a session
  correlated, and a second component explains them;
* **context** -- each person watches on their own devices at their own hours.

The model
---------
For one account, :class:`Tastes` fits a *latent class model* over its sessions (each
session is watched by one of ``K`` people; given the person, the session's features are
independent):

* taste: the session's titles as counts over ``n_topics`` item *topics* -- a spherical
  k-means of the model's normalized item factors, so taste lives in the model's factor
  space -- with a per-person multinomial (Dirichlet-smoothed);
* each categorical context column (device, ...): a per-person categorical distribution;
* each circular context column (``hour``, period 24): a per-person von Mises
  distribution;
* any other numeric context column: a per-person Gaussian.

It is fitted by EM for ``K = 1 .. max_tastes`` (several seeded starts, kept by
likelihood) and ``K`` is chosen by an information criterion, by default Schwarz's
``BIC = -2 log L + p log(n_sessions)`` (Schwarz 1978; its use for choosing the number of
mixture components: Fraley & Raftery 2002; or Akaike's ``-2 log L + 2 p``), its
parameter cost weighted by ``penalty``.  ``p`` counts the free parameters, so a
second person must explain the sessions' titles *and* contexts better by more than
their cost: a single person's sessions (one taste distribution, one context
distribution) keep ``K = 1``.  EM runs for a batch of accounts at once: every E and M
step is a handful of array operations over all their sessions (sparse account x
session sums), never a loop over accounts.

Serving
-------
* a taste's factor vector is the model's fold-in of the account's history with each
  title weighted by the share of its plays that fall in that taste's sessions;
* ``tastes="auto"`` interleaves the tastes' rankings in proportion to their weights
  (Sainte-Lague quotas: every taste gets its fair share of each prefix of the list); an
  account kept at one taste whose two-taste fit is still plausible serves that fit's
  lighter taste too, its share scaled by how plausible (``uncertain_split``);
* a ``context`` dict (``{"device": "tv", "hour": 21}``) gives each taste its posterior
  probability of watching now (Bayes' rule with the taste's weight and its context
  distributions; unknown columns or values are ignored) and the list is interleaved by
  those probabilities, so a confident posterior serves that one person.  Those taste
  vectors also take the other tastes' titles as weak dislikes (``context_contrast``:
  what the other person chose is evidence of what this one did not) and a stronger
  regularization (``context_regularization``), which rank a person known from a few
  sessions better.
* :meth:`Tastes.fit_people` refits an ALS's item factors on the people found (each
  account split into one row per taste), so that they learn which titles one *person*
  watches together; ``Personalizer(..., people=True)`` serves that model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, i0e

from .._validation import check_float, check_int

__all__ = ["TASTE_MODES", "Taste", "Tastes"]

TASTE_MODES = ("auto", "single")
_LOG_2PI = float(np.log(2.0 * np.pi))
_KAPPA_MAX = 25.0  # von Mises concentration cap: an integer hour is a bin, not a point
_CONTRAST_MAX = 1e6  # Tastes(context_contrast=): beyond it the dislikes swamp the fold-in
_REG_SCALE_MAX = 1e6  # Tastes(context_regularization=): a multiple of the model's


@dataclass(frozen=True)
class Taste:
    """One person (taste) inside an account.

    Attributes
    ----------
    items : list
        External ids of the history titles this taste covers (played in its sessions).
    weight : float
        Share of the account's sessions it watched (the tastes' weights sum to 1).
    sessions : list
        External ids of its sessions.
    context : dict
        Its typical context: the most likely value of each categorical column, the mean
        direction of each circular one (an hour for ``hour``), the mean of numeric ones.
    """

    items: list
    weight: float
    sessions: list = field(default_factory=list)
    context: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        def plain(v):
            return v.item() if isinstance(v, np.generic) else v
        return {"items": [plain(i) for i in self.items], "weight": float(self.weight),
                "sessions": [plain(s) for s in self.sessions],
                "context": {k: plain(v) for k, v in self.context.items()}}


@dataclass
class _Fit:
    """The fitted latent class model of one account (dense indices, numpy arrays)."""

    sessions: np.ndarray          # session rows (into interactions.sessions)
    resp: np.ndarray              # (n_sessions, K) responsibilities
    log_weight: np.ndarray        # (K,)
    cat: dict                     # name -> (vocab, log_probs (K, V))
    circ: dict                    # name -> (period, mu (K,), kappa (K,))
    num: dict                     # name -> (mean (K,), var (K,))
    bic: np.ndarray               # (max_tastes,) BIC per K tried (inf = not tried)
    # one taste kept: the two-taste fit the criterion turned down (None if not tried)
    runner_up: "_Fit | None" = None

    @property
    def k(self) -> int:
        return int(self.resp.shape[1])


def _take_rows(sess, rows: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Rows of the sessions x items CSR without building the whole matrix."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = sess.indptr[rows]
    lens = sess.indptr[rows + 1] - starts
    ptr = np.concatenate(([0], np.cumsum(lens)))
    idx = np.repeat(starts - ptr[:-1], lens) + np.arange(ptr[-1])
    return sp.csr_matrix((sess.value[idx], sess.item[idx], ptr), shape=(rows.size, n_items))


def _kappa(r: np.ndarray) -> np.ndarray:
    """von Mises concentration from the mean resultant length (Best & Fisher 1981)."""
    r = np.clip(r, 0.0, 0.9999)
    k = np.where(r < 0.53, 2 * r + r ** 3 + 5 * r ** 5 / 6,
                 np.where(r < 0.85, -0.4 + 1.39 * r + 0.43 / (1 - r),
                          1.0 / np.maximum(r ** 3 - 4 * r ** 2 + 3 * r, 1e-9)))
    return np.clip(k, 0.0, _KAPPA_MAX)


def _log_i0(k: np.ndarray) -> np.ndarray:
    return np.log(i0e(k)) + k


class Tastes:
    """Finds the people inside shared accounts and serves the one watching.

    The pluggable "tastes" component of :class:`tastemaker.pages.Personalizer` (which
    calls :meth:`find`, :meth:`rank`); usable on its own with any fitted factor model
    and the :class:`~tastemaker.data.Interactions` it was trained on, built with
    ``session=`` (and ``context=``).  Without sessions every account is one taste.

    Parameters
    ----------
    max_tastes : int, default 3
        Largest number of people considered per account.
    criterion : {"bic", "aic"}, default "bic"
        How ``K`` is chosen: ``-2 log L + penalty * c * p`` with ``c = log(n_sessions)``
        (Schwarz) or ``c = 2`` (Akaike) and ``p`` free parameters.
    penalty : float > 0, default 0.55
        Weight of the criterion's parameter cost: below 1 a second person needs less
        evidence (a household's second viewer often watched only a few sessions), while
        the ``log(n_sessions)`` growth keeps long one-person histories at one taste.
        Chosen on synthetic logs of other seeds than bench/shared_accounts.py's (F1 0.81
        to 0.82 there, against at most 0.80 for any weight of AIC's cost; the bench's
        4,000-account log gives 0.794 on seed 1 and 0.820 on seed 2).
    balance : float in [0, 1], default 0.3
        ``tastes="auto"``: each taste's share of the interleave is its weight raised to
        ``1 - balance`` (0 = by weight, 1 = equal shares), so that a household's lighter
        viewer is not drowned out.  Checked on the logs of bench/shared_accounts.py's
        validation seeds 10-14, which its evaluation seeds 0-2 do not see: no balance
        with overall recall within 1% of single-vector on every log lifts the lighter
        viewer's mean recall beyond noise (1.29x single at 0.3, 1.30x at 0.4; 1.37x at
        equal shares, where overall falls to 0.971), so the default stays.
    main_account : bool, default True
        ``tastes="auto"`` (nobody known to be watching): the heaviest taste is served by
        the account's own vector (fitted on the whole history, it is its main viewer's
        best list) and the others by their own vectors.
    blend : float in [0, 1], default 0.0
        A taste's vector folds in its own titles at full weight and the other tastes'
        at ``blend`` (0 = its own titles only; 1 = the account vector).
    context_contrast : float >= 0, default 0.25
        With a ``context`` (someone known to be watching), a taste's vector also learns
        from the titles the account's *other* tastes played: title ``i`` enters its
        fold-in with the value ``v_i * s_i - context_contrast * |v_i| * (1 - s_i)``,
        where ``v_i`` is the account's value and ``s_i`` the title's share in this taste.
        So a title only the other person played becomes a dislike (preference 0) with
        confidence ``alpha * context_contrast * |v_i|`` instead of dropping out of the
        fit, pushing the taste away from the other person's titles instead of only
        towards its own few (0 = left out, as before).
    context_regularization : float > 0, default 3.0
        With a ``context``, the tastes' vectors are folded in with the model's
        regularization times this (ALS; other models fold in as they do): the stronger
        pull of the item Gram matrix ranks a person known from a few sessions more by
        the titles like their own and by popularity.

        Both were chosen on bench/shared_accounts.py's validation logs (seeds 10-19,
        which its evaluation seeds 0-2 do not see; 2026-11-30, harness outside the
        repository, paired per account).  The watching person's recall over
        single-vector, mean of seeds 10-14 / 15-19: 1.214x / 1.265x before; 1.245x /
        1.290x with regularization x3 alone (better on all 10 logs); 1.244x / 1.308x
        with contrast 0.25 as well (better on all 10); on seeds 10-14, x2 and x5 (with
        contrast 0.25) gave 1.230x / 1.232x, and contrast 0.5 / 1 (without the
        regularization) 1.217x / 1.210x against 0.25's 1.226x.  Without a context (the
        ``auto`` interleave, where the lighter viewer's taste gets about 7 of 20 slots)
        neither helped that viewer: contrast 0.25 moved the mean by +0.024 / +0.002
        (better on 5 of 10 logs) and regularization x3 by -0.011 / -0.019, so the
        interleave keeps the plain fold-in.

        The regularization is a multiple of the model's, chosen with the bench's ALS of
        64 factors at regularization 10.  A model regularized more strongly needs less:
        with 128 factors at regularization 50 (the better single list on those logs),
        1 beats 3 (context / single 1.223x against 1.193x, 2026-12-01; README,
        "Against a tuned single-vector list").
    people_regularization : float > 0, default 3.0
        :meth:`fit_people`: the people-level ALS is fitted with the account model's
        regularization times this (a person's row holds fewer titles than an account's).
        Chosen on bench/shared_accounts.py's validation logs (2026-11-30; bench/README.md,
        "Stop 20: item factors learned from people"): on logs 10-14, 3x kept the context
        ratio (1.239x single, against 1.185x at 6x) with the lighter viewer's `auto` ratio
        as at 6x (1.424x / 1.440x), and 1x was lower on logs 10-12.  The people model
        raises every recall over the account model (single +4% on logs 10-19) but not
        the ratios over its own single list.
    uncertain_split : float >= 0, default 0 (off)
        ``tastes="auto"`` for an account the criterion kept at one taste: its two-taste
        fit (turned down by the criterion) still serves while it is plausible, the lighter
        taste's share of the interleave scaled by :meth:`split_doubt`'s
        ``q = 1 / (1 + exp((BIC(2) - BIC(1)) / (2 * uncertain_split)))`` (a temperature,
        in the criterion's units: 1 = the BIC's own posterior odds of the two models);
        when that share wins no slot the account vector alone serves.  A household's
        second viewer seen in one or two sessions seldom passes the criterion.  Detection
        (``tastes()``, the home page's rows per taste) and ``context`` are unchanged.
        Off by default because it breaks "auto is single for a one-taste account": at
        3 (the best of 1 / 3 / 10 on bench/shared_accounts.py's validation logs 10-19)
        the lighter viewer's ``auto`` ratio rises from 1.374x to 1.403x single (better on
        8 logs, equal on 2, overall unchanged), but 77% of the one-taste accounts (log
        11) then get about 1.6 of 20 slots from a second taste, nearly all of them one
        person (bench/README.md, "Stop 21").
    n_topics : int, default 16
        Item topics (k-means clusters of the normalized item factors) that describe a
        session's taste.
    account_topics : int, default 4
        Per account, its most watched topics are kept apart and the rest lumped into one
        (fewer parameters per person).
    circular : dict of str -> float, optional
        Context columns that wrap around, with their period.  Default ``{"hour": 24}``.
    categorical : sequence of str, default ()
        Numeric context columns to treat as categories (text columns always are).
    n_init : int, default 4
        Seeded EM starts per ``K`` (the best likelihood is kept, per account).
    max_iter : int, default 60
    tol : float, default 1e-4
        EM stops when the mean log-likelihood per session improves by less.
    random_state : int, default 0
    cache_size : int, default 4096
        Accounts whose tastes are kept between calls (the key includes the model's
        factors and the interactions object, so new events or a refit recompute them).
    """

    def __init__(self, max_tastes=3, criterion="bic", balance=0.3, penalty=0.55, blend=0.0,
                 main_account=True, n_topics=16, context_contrast=0.25,
                 context_regularization=3.0, people_regularization=3.0,
                 account_topics=4, circular=None, categorical=(), n_init=4, max_iter=60,
                 tol=1e-4, random_state=0, cache_size=4096, uncertain_split=0.0):
        self.max_tastes = max_tastes
        self.balance = balance
        self.criterion = criterion
        self.penalty = penalty
        self.blend = blend
        self.context_contrast = context_contrast
        self.context_regularization = context_regularization
        self.people_regularization = people_regularization
        self.main_account = main_account
        self.n_topics = n_topics
        self.account_topics = account_topics
        self.circular = circular
        self.categorical = categorical
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.cache_size = cache_size
        self.uncertain_split = uncertain_split
        self._lock = threading.Lock()
        self._topics_key = None
        self._topics = None
        self._cache: dict = {}

    def __repr__(self) -> str:
        return (f"Tastes(max_tastes={self.max_tastes}, n_topics={self.n_topics}, "
                f"circular={self.circular}, categorical={self.categorical})")

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_cache"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("max_tastes", "criterion", "balance", "penalty",
                                              "blend", "context_contrast",
                                              "context_regularization",
                                              "people_regularization", "main_account",
                                              "n_topics",
                                              "account_topics",
                                              "circular",
                                              "categorical", "n_init", "max_iter", "tol",
                                              "random_state", "cache_size",
                                              "uncertain_split")}

    @staticmethod
    def _choice(value, name, options):
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"{name}: expected one of {options}, got {value!r}")
        return value

    @staticmethod
    def _flag(value, name):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}: expected True or False, got {value!r}")
        return bool(value)

    @staticmethod
    def _unit(value, name):
        v = check_float(value, name, minimum=0.0)
        if v > 1:
            raise ValueError(f"{name}: expected a number in [0, 1], got {v}")
        return v

    @staticmethod
    def _contrast(value, name="contrast") -> float:
        v = check_float(value, name, minimum=0.0)
        if v > _CONTRAST_MAX:
            raise ValueError(f"{name}: expected a number in [0, {_CONTRAST_MAX:g}] (the "
                             f"dislikes' confidence would swamp the fold-in), got {v}")
        return v

    @staticmethod
    def _temperature(value, name) -> float:
        v = check_float(value, name, minimum=0.0)
        if v > _REG_SCALE_MAX:
            raise ValueError(f"{name}: expected a number in [0, {_REG_SCALE_MAX:g}] (units of "
                             f"the criterion's log-likelihood), got {v}")
        return v

    @staticmethod
    def _reg_scale(value, name) -> float:
        v = check_float(value, name, minimum=0.0, strict=True)
        if v > _REG_SCALE_MAX:
            raise ValueError(f"{name}: expected a number in (0, {_REG_SCALE_MAX:g}] (a "
                             f"multiple of the model's regularization), got {v}")
        return v

    def _params(self) -> dict:
        circ = {"hour": 24.0} if self.circular is None else self.circular
        if not isinstance(circ, dict):
            raise ValueError(f"circular: expected a dict of column -> period, got "
                             f"{type(circ).__name__}")
        circ = {str(k): check_float(v, f"circular[{k!r}]", minimum=0.0, strict=True)
                for k, v in circ.items()}
        cat = self.categorical
        if isinstance(cat, str) or not all(isinstance(c, str) for c in cat):
            raise ValueError(f"categorical: expected a sequence of column names, got {cat!r}")
        return {"max_tastes": check_int(self.max_tastes, "max_tastes", minimum=1, maximum=8),
                "n_topics": check_int(self.n_topics, "n_topics", minimum=1),
                "account_topics": check_int(self.account_topics, "account_topics", minimum=1),
                "criterion": self._choice(self.criterion, "criterion", ("aic", "bic")),
                "balance": self._unit(self.balance, "balance"),
                "penalty": check_float(self.penalty, "penalty", minimum=0.0, strict=True),
                "blend": self._unit(self.blend, "blend"),
                "context_contrast": self._contrast(self.context_contrast,
                                                   "context_contrast"),
                "context_regularization": self._reg_scale(self.context_regularization,
                                                          "context_regularization"),
                "people_regularization": self._reg_scale(self.people_regularization,
                                                         "people_regularization"),
                "main_account": self._flag(self.main_account, "main_account"),
                "circular": circ, "categorical": set(cat),
                "n_init": check_int(self.n_init, "n_init", minimum=1),
                "max_iter": check_int(self.max_iter, "max_iter", minimum=1),
                "tol": check_float(self.tol, "tol", minimum=0.0),
                "random_state": check_int(self.random_state, "random_state", minimum=0),
                "cache_size": check_int(self.cache_size, "cache_size", minimum=0),
                "uncertain_split": self._temperature(self.uncertain_split,
                                                     "uncertain_split")}

    # ------------------------------------------------------------------ item topics
    @staticmethod
    def _factors_key(model):
        itf = model.item_factors
        return (id(itf), getattr(itf, "shape", None), getattr(model, "_factor_version", None))

    def topics(self, model, p=None) -> np.ndarray:
        """Topic of every item: spherical k-means (seeded k-means++) of the item factors."""
        p = p or self._params()
        key = (self._factors_key(model), p["n_topics"], p["random_state"])
        with self._lock:
            if self._topics_key == key:
                return self._topics
        y = np.asarray(model.item_factors, dtype=np.float64)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        y = np.divide(y, norms, out=np.zeros_like(y), where=norms > 0)
        n = y.shape[0]
        c = min(p["n_topics"], n)
        rng = np.random.default_rng(p["random_state"])
        centers = [y[rng.integers(n)]]
        best = 1.0 - y @ centers[0]
        for _ in range(1, c):  # k-means++ on cosine distance
            prob = np.maximum(best, 0)
            j = rng.choice(n, p=prob / prob.sum()) if prob.sum() > 0 else rng.integers(n)
            centers.append(y[j])
            best = np.minimum(best, 1.0 - y @ y[j])
        centers = np.array(centers)
        labels = np.full(n, -1, dtype=np.int64)
        for _ in range(50):
            new = np.argmax(y @ centers.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            sums = np.zeros_like(centers)
            np.add.at(sums, labels, y)
            nrm = np.linalg.norm(sums, axis=1, keepdims=True)
            centers = np.where(nrm > 0, sums / np.where(nrm > 0, nrm, 1), centers)
        with self._lock:
            self._topics_key, self._topics = key, labels
        return labels

    def _codes(self, sess, name):
        """(vocabulary, code per session) of a categorical context column, cached."""
        key = (id(sess), id(sess.context[name]), name)
        with self._lock:
            hit = self._cache.get(("codes",) + key)
        if hit is None:
            vocab, codes = np.unique(sess.context[name], return_inverse=True)
            hit = (vocab, codes.ravel())
            with self._lock:
                self._cache[("codes",) + key] = hit
        return hit

    # ------------------------------------------------------------------ fitting
    def _features(self, interactions, users, p, model):
        """Session rows, account of each, topic counts and context columns for ``users``."""
        sess = interactions.sessions
        spans = [sess.of_user(int(u)) for u in users]
        rows = np.concatenate([np.arange(s.start, s.stop) for s in spans]) if spans else (
            np.zeros(0, dtype=np.int64))
        acc = np.repeat(np.arange(len(users)), [s.stop - s.start for s in spans])
        m = _take_rows(sess, rows, interactions.n_items)
        m.data = (m.data > 0).astype(np.float64)  # a pick = a title played, not disliked
        m.eliminate_zeros()
        topics = self.topics(model, p)
        c = int(topics.max()) + 1
        onehot = sp.csr_matrix((np.ones(topics.size), (np.arange(topics.size), topics)),
                               shape=(topics.size, c))
        x = np.asarray((m @ onehot).todense())
        # each account's own most-watched topics, the rest lumped together: few parameters
        # per person, so that a second person is judged on the topics that matter
        t = p["account_topics"]
        if t < c:
            totals = np.zeros((len(users), c))
            np.add.at(totals, acc, x)
            rank = np.empty_like(totals, dtype=np.int64)
            np.put_along_axis(rank, np.argsort(-totals, axis=1, kind="stable"),
                              np.arange(c)[None, :].repeat(len(users), 0), axis=1)
            bucket = np.minimum(rank, t - 1)[acc]  # (S, C)
            x = np.stack([(x * (bucket == j)).sum(axis=1) for j in range(t)], axis=1)
        cat, circ, num = {}, {}, {}
        for name, col in sess.context.items():
            v = col[rows]
            if name in p["circular"] and v.dtype.kind == "f":
                circ[name] = (p["circular"][name], v)
            elif v.dtype.kind == "f" and name not in p["categorical"]:
                num[name] = (v, float(np.var(col)) if col.size else 1.0)
            else:
                vocab, codes = self._codes(sess, name)
                cat[name] = (vocab, codes[rows])
        return rows, acc, x, cat, circ, num

    def _em(self, acc, n_acc, x, cat, circ, num, k, p):
        """EM for ``k`` people on every account at once; returns per-account best start."""
        S = acc.size
        n_s = np.bincount(acc, minlength=n_acc).astype(np.float64)
        # sessions are grouped by account and every account has some: per-account sums
        # are one reduceat over contiguous segments
        bounds = np.concatenate(([0], np.cumsum(n_s.astype(np.int64))[:-1]))

        def A(arr):
            return np.add.reduceat(arr, bounds, axis=0)

        lgam_x = gammaln(x.sum(axis=1) + 1) - gammaln(x + 1).sum(axis=1)  # multinomial coef
        best_ll = np.full(n_acc, -np.inf)
        best = None
        # a session's start depends only on its position in its account, so an account's
        # result does not depend on the other accounts of the batch
        pos = np.arange(S) - bounds[acc]
        longest = int(pos.max()) + 1 if S else 1
        for start in range(p["n_init"] if k > 1 else 1):
            resp = (np.random.default_rng([p["random_state"], k, start])
                    .dirichlet(np.ones(k), size=longest)[pos] if k > 1 else np.ones((S, 1)))
            prev = np.full(n_acc, -np.inf)
            for it in range(p["max_iter"]):
                par = self._m_step(A, n_s, resp, x, cat, circ, num)
                logp = self._log_joint(acc, x, cat, circ, num, par) + lgam_x[:, None]
                mx = logp.max(axis=1, keepdims=True)
                lse = mx[:, 0] + np.log(np.exp(logp - mx).sum(axis=1))
                resp = np.exp(logp - lse[:, None])
                ll = np.bincount(acc, weights=lse, minlength=n_acc)
                if k == 1 or np.all(ll - prev <= p["tol"] * np.maximum(n_s, 1)):
                    break
                prev = ll
            better = ll > best_ll
            if best is None:
                best = [resp, par]
            else:
                best[0] = np.where(better[acc][:, None], resp, best[0])
                best[1] = self._merge(best[1], par, better)
            best_ll = np.where(better, ll, best_ll)
        return best[0], best[1], best_ll

    @staticmethod
    def _merge(old, new, take):
        out = {}
        for key, v in old.items():
            if isinstance(v, dict):
                out[key] = {n: tuple(np.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
                                     if isinstance(a, np.ndarray) and a.shape[:1] == take.shape
                                     else a for a, b in zip(v[n], new[key][n])) for n in v}
            else:
                out[key] = np.where(take.reshape((-1,) + (1,) * (v.ndim - 1)), new[key], v)
        return out

    @staticmethod
    def _m_step(A, n_s, resp, x, cat, circ, num):
        """MAP estimates per (account, person); ``A`` sums rows per account."""
        k = resp.shape[1]
        nk = A(resp)  # (n_acc, k)
        log_w = np.log((nk + 1e-3) / (n_s[:, None] + 1e-3 * k))
        # topic counts, Dirichlet-smoothed (0.1 per topic)
        tc = A(resp[:, :, None] * x[:, None, :])  # (n_acc, k, C)
        log_theta = np.log(tc + 0.1) - np.log(tc.sum(axis=2, keepdims=True) + 0.1 * x.shape[1])
        par = {"log_w": log_w, "log_theta": log_theta, "cat": {}, "circ": {}, "num": {}}
        for name, (vocab, codes) in cat.items():
            V = len(vocab)
            oh = np.zeros((codes.size, k, V))
            oh[np.arange(codes.size), :, codes] = resp
            cnt = A(oh)
            par["cat"][name] = (np.log(cnt + 0.5) - np.log(cnt.sum(axis=2, keepdims=True)
                                                           + 0.5 * V),)
        for name, (period, v) in circ.items():
            ang = v * (2 * np.pi / period)
            cs = A(resp * np.cos(ang)[:, None])
            sn = A(resp * np.sin(ang)[:, None])
            mu = np.arctan2(sn, cs)
            r = np.hypot(cs, sn) / np.maximum(nk, 1e-9)
            par["circ"][name] = (mu, _kappa(r))
        for name, (v, var_all) in num.items():
            mean = A(resp * v[:, None]) / np.maximum(nk, 1e-9)
            sq = A(resp * (v ** 2)[:, None]) / np.maximum(nk, 1e-9)
            var = np.maximum(sq - mean ** 2, 0.01 * var_all + 1e-9)
            par["num"][name] = (mean, var)
        return par

    @staticmethod
    def _log_joint(acc, x, cat, circ, num, par):
        """log p(session, person k) up to the multinomial coefficient: (S, k)."""
        out = par["log_w"][acc] + np.einsum("sc,skc->sk", x, par["log_theta"][acc])
        for name, (vocab, codes) in cat.items():
            out = out + par["cat"][name][0][acc, :, codes]  # (S, k)
        for name, (period, v) in circ.items():
            mu, kap = par["circ"][name]
            ang = v * (2 * np.pi / period)
            # density per unit of the column (hours), like the other terms' scale
            norm = -_LOG_2PI - _log_i0(kap) + np.log(2 * np.pi / period)  # (n_acc, k)
            out = out + (kap[acc] * np.cos(ang[:, None] - mu[acc]) + norm[acc])
        for name, (v, _) in num.items():
            mean, var = par["num"][name]
            out = out - 0.5 * ((v[:, None] - mean[acc]) ** 2 / var[acc] + np.log(var[acc])
                               + _LOG_2PI)
        return out

    @staticmethod
    def _n_params(k, C, cat, circ, num):
        per = (C - 1) + sum(len(v[0]) - 1 for v in cat.values()) + 2 * len(circ) + 2 * len(num)
        return (k - 1) + k * per

    def fit_users(self, model, interactions, users) -> list:
        """Fit the latent class model for a batch of dense user indices (one EM batch).

        Returns one ``_Fit`` per user (internal; see :meth:`find` for the public result).
        """
        p = self._params()
        users = np.asarray(users, dtype=np.int64).ravel()
        if interactions.sessions is None:
            raise ValueError("interactions: has no sessions; build it with session= (and "
                             "context=) to find the tastes of shared accounts")
        n_model = np.shape(getattr(model, "item_factors", None) if
                           getattr(model, "item_factors", None) is not None else [])[:1]
        if n_model != (interactions.n_items,):
            raise ValueError(f"interactions: {interactions.n_items} items but the model has "
                             f"{n_model[0] if n_model else 'no'} item factors; pass the "
                             "fitted model and the Interactions it was fitted on")
        if users.size and (users.min() < 0 or users.max() >= interactions.n_users):
            raise ValueError(f"users: expected user indices in [0, {interactions.n_users}), "
                             f"got {int(users.min())}..{int(users.max())}")
        rows, acc_all, x, cat, circ, num = self._features(interactions, users, p, model)
        n_all = np.bincount(acc_all, minlength=users.size)
        active = np.flatnonzero(n_all > 0)  # accounts without sessions: one taste
        remap = np.full(users.size, -1)
        remap[active] = np.arange(active.size)
        acc = remap[acc_all]
        n_acc = active.size
        n_s = n_all[active]
        fits, bics = [], []
        for k in range(1, p["max_tastes"] + 1):
            resp, par, ll = self._em(acc, n_acc, x, cat, circ, num, k, p)
            per_param = p["penalty"] * (np.log(np.maximum(n_s, 1)) if p["criterion"] == "bic"
                                        else np.full(n_acc, 2.0))
            bic = -2 * ll + self._n_params(k, x.shape[1], cat, circ, num) * per_param
            # k people need at least k sessions each to be told apart at all
            bic = np.where(n_s >= 2 * k if k > 1 else True, bic, np.inf)
            fits.append((resp, par))
            bics.append(bic)
        bics = np.stack(bics, axis=1) if n_acc else np.zeros((0, p["max_tastes"]))
        choice = np.argmin(bics, axis=1)
        out = []
        bounds = np.concatenate(([0], np.cumsum(n_s)))

        def one(a, k):
            resp, par = fits[k]
            sl = slice(bounds[a], bounds[a + 1])
            r = resp[sl]
            # drop people who own no session outright (EM can leave an empty component)
            keep = np.unique(np.argmax(r, axis=1)) if r.shape[0] else np.arange(1)
            r = r[:, keep] / np.maximum(r[:, keep].sum(axis=1, keepdims=True), 1e-300)
            lw = par["log_w"][a, keep]
            lw = lw - np.log(np.exp(lw).sum())
            return _Fit(
                sessions=rows[sl], resp=r, log_weight=lw,
                cat={n: (cat[n][0], par["cat"][n][0][a][keep]) for n in cat},
                circ={n: (circ[n][0], par["circ"][n][0][a][keep], par["circ"][n][1][a][keep])
                      for n in circ},
                num={n: (par["num"][n][0][a][keep], par["num"][n][1][a][keep]) for n in num},
                bic=bics[a])

        for u in range(users.size):
            a = remap[u]
            if a < 0:
                out.append(_Fit(sessions=np.zeros(0, dtype=np.int64), resp=np.ones((0, 1)),
                                log_weight=np.zeros(1), cat={}, circ={}, num={},
                                bic=np.full(p["max_tastes"], np.inf)))
                continue
            fit = one(a, int(choice[a]))
            if fit.k == 1 and len(fits) > 1 and np.isfinite(bics[a, 1]):
                alt = one(a, 1)
                fit.runner_up = alt if alt.k > 1 else None
            out.append(fit)
        return out

    # ------------------------------------------------------------------ public API
    def _fit_one(self, model, interactions, user: int) -> _Fit:
        p = self._params()
        key = (user, id(interactions.sessions), interactions.n_items, self._factors_key(model))
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        fit = self.fit_users(model, interactions, [user])[0]
        if p["cache_size"]:
            with self._lock:
                if len(self._cache) >= p["cache_size"]:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = fit
        return fit

    def find(self, model, interactions, user: int, fit: _Fit | None = None) -> list[Taste]:
        """The tastes of one account (dense user index), heaviest first."""
        if interactions.sessions is None:
            items = interactions.item_ids[interactions.item_idx[interactions.user_idx == user]]
            return [Taste(items=list(items), weight=1.0)]
        fit = fit or self._fit_one(model, interactions, user)
        return self._describe(interactions, fit)

    @staticmethod
    def _describe(interactions, fit: _Fit, order: bool = True) -> list[Taste]:
        sess = interactions.sessions
        hard = np.argmax(fit.resp, axis=1) if fit.resp.size else np.zeros(0, dtype=np.int64)
        w = np.exp(fit.log_weight)
        out = []
        for k in (np.argsort(-w, kind="stable") if order else range(w.size)):
            rows = fit.sessions[hard == k]
            items = np.unique(np.concatenate(
                [sess.item[sess.indptr[r]:sess.indptr[r + 1]][
                    sess.value[sess.indptr[r]:sess.indptr[r + 1]] > 0] for r in rows])
                if rows.size else np.zeros(0, dtype=np.int64))
            ctx = {}
            for n, (vocab, logp) in fit.cat.items():
                ctx[n] = vocab[int(np.argmax(logp[k]))].item()
            for n, (period, mu, _) in fit.circ.items():
                ctx[n] = float(round((mu[k] * period / (2 * np.pi)) % period, 2))
            for n, (mean, _) in fit.num.items():
                ctx[n] = float(mean[k])
            out.append(Taste(items=list(interactions.item_ids[items]), weight=float(w[k]),
                             sessions=list(sess.ids[rows]), context=ctx))
        return out

    def posterior(self, fit: _Fit, context: dict | None) -> np.ndarray:
        """P(person k is watching | context) for each taste of a fit (Bayes' rule).

        Columns the model does not know and category values never seen are ignored.
        """
        lp = fit.log_weight.copy()
        if context:
            if not isinstance(context, dict):
                raise ValueError(f"context: expected a dict such as {{'device': 'tv', "
                                 f"'hour': 21}}, got {type(context).__name__}")
            for name, value in context.items():
                if name in fit.cat:
                    vocab, logp = fit.cat[name]
                    key = str(value) if vocab.dtype.kind == "U" else value
                    try:
                        pos = np.flatnonzero(vocab == key)
                    except (TypeError, ValueError):
                        pos = np.zeros(0, dtype=np.int64)
                    if pos.size:
                        lp = lp + logp[:, pos[0]]
                elif name in fit.circ:
                    period, mu, kap = fit.circ[name]
                    v = check_float(value, f"context[{name!r}]")
                    lp = lp + kap * np.cos(v * 2 * np.pi / period - mu) - _log_i0(kap)
                elif name in fit.num:
                    mean, var = fit.num[name]
                    v = check_float(value, f"context[{name!r}]")
                    lp = lp - 0.5 * ((v - mean) ** 2 / var + np.log(var))
        lp = lp - lp.max()
        w = np.exp(lp)
        return w / w.sum()

    @staticmethod
    def shares(interactions, fit: _Fit, items) -> np.ndarray:
        """(len(items), K): the share of each title's plays that fall in each taste's
        sessions (titles outside every session: the tastes' weights)."""
        sess = interactions.sessions
        items = np.asarray(items, dtype=np.int64)
        share = np.tile(np.exp(fit.log_weight), (items.size, 1))
        if fit.sessions.size and items.size:
            m = _take_rows(sess, fit.sessions, interactions.n_items)
            m.data = np.maximum(m.data, 0.0)
            inside = items < interactions.n_items  # titles added live are in no session
            per = np.zeros((items.size, fit.k))
            per[inside] = np.asarray((m.T @ fit.resp)[items[inside]])  # plays per taste
            tot = per.sum(axis=1, keepdims=True)
            share = np.where(tot > 0, per / np.where(tot > 0, tot, 1.0), share)
        return share

    @classmethod
    def vectors(cls, model, interactions, fit: _Fit, items, values, blend=0.0,
                contrast=0.0, regularization=1.0) -> np.ndarray:
        """One factor vector per taste, shape (K, f): the model's fold-in of the history
        (``items``: sorted item indices, ``values``: what the model sees), title ``i``
        entering taste ``j``'s row as ``v_i * s_ij - contrast * |v_i| * (1 - s_ij)`` with
        ``s_ij = blend + (1 - blend) * share``, its share of plays that fall in that
        taste's sessions (titles outside every session: the tastes' weights); a negative
        entry is a dislike to the model (see the class's ``context_contrast``).  ``blend``
        is a number or one per taste (1 = the account's own vector).  ``regularization``
        multiplies the model's for these solves (a model without a native one-row fold-in
        ignores it).  ValueError if the model cannot fold in."""
        k = fit.k
        items = np.asarray(items, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        blend = np.broadcast_to(np.asarray(blend, dtype=np.float64), (k,))
        contrast = cls._contrast(contrast)
        scale = cls._reg_scale(regularization, "regularization")
        share = blend + (1.0 - blend) * cls.shares(interactions, fit, items)
        entries = values[:, None] * share - contrast * np.abs(values)[:, None] * (1.0 - share)
        n_cols = model.item_factors.shape[0]
        rows = sp.csr_matrix((entries.T.ravel(), np.tile(items, k),
                              np.arange(k + 1) * items.size), shape=(k, n_cols),
                             dtype=np.float32)
        one = getattr(model, "_fold_in_one", None)
        if scale != 1.0 and one is not None:
            rows.sum_duplicates()  # the native one-row solve takes ascending, distinct ids
            ptr = rows.indptr
            idx = rows.indices.astype(np.int32)
            out = [one(idx[ptr[j]:ptr[j + 1]], rows.data[ptr[j]:ptr[j + 1]],
                       regularization_scale=scale) for j in range(k)]
            if all(v is not None for v in out):
                return np.stack(out).astype(np.float32, copy=False)
        return np.asarray(model._fold_in_users(rows), dtype=np.float32)

    @classmethod
    def people_rows(cls, interactions, fits) -> tuple[sp.csr_matrix, np.ndarray]:
        """The accounts' people as rows of a people x items matrix: an account with one
        taste keeps its row, one with ``K`` tastes becomes ``K`` rows, taste ``j``'s holding
        each title's value times its share in that taste (:meth:`shares`), so the values of
        an account's rows add up to its own.  ``fits`` holds one fit per account (from
        :meth:`fit_users`).  Returns (rows, the account of each row)."""
        n_users, n_items = interactions.shape
        if len(fits) != n_users:
            raise ValueError(f"fits: expected one per account ({n_users}), got {len(fits)}")
        m = interactions.to_csr()
        data, cols, ptr, owner = [], [], [0], []
        for u in range(n_users):
            lo, hi = m.indptr[u], m.indptr[u + 1]
            items, vals = m.indices[lo:hi], m.data[lo:hi].astype(np.float64)
            fit = fits[u]
            share = (np.ones((items.size, 1)) if fit.k == 1 or not items.size
                     else cls.shares(interactions, fit, items))
            for j in range(share.shape[1]):
                v = vals * share[:, j]
                keep = v != 0
                data.append(v[keep])
                cols.append(items[keep])
                ptr.append(ptr[-1] + int(keep.sum()))
                owner.append(u)
        rows = sp.csr_matrix((np.concatenate(data).astype(np.float32) if data else
                              np.zeros(0, np.float32),
                              np.concatenate(cols) if cols else np.zeros(0, np.int32),
                              np.asarray(ptr, dtype=np.int64)), shape=(len(owner), n_items))
        return rows, np.asarray(owner, dtype=np.int64)

    def fit_people(self, model, interactions, fits=None):
        """An ALS whose item factors are learned from people instead of accounts.

        An account's row mixes the titles of everyone who watches on it, so item factors
        fitted on accounts learn that a parent's thrillers go with a child's cartoons.
        This finds the tastes of every account with ``model`` (:meth:`fit_users`), splits
        each account into one row per taste (:meth:`people_rows`), fits a new ALS with
        ``model``'s parameters and ``people_regularization`` times its regularization on
        those rows, then folds every account's whole history in over the new item factors
        (its ``user_factors``: the single-vector list still serves the account).  Serve
        the result in place of ``model`` (``Personalizer(..., people=True)`` does it);
        the tastes found with it serve ``tastes="auto"`` and ``context``.

        Parameters
        ----------
        model : ALS
            Fitted on ``interactions`` (not HybridALS: its fit needs the features).
        interactions : Interactions
            Built with ``session=`` (and ``context=``).
        fits : list, optional
            One fit per account from :meth:`fit_users` with ``model`` (found when None).

        Returns
        -------
        ALS
            A new model (``model`` is not changed) with the same users and items.
        """
        from ..data import Interactions
        from ..models.als import ALS
        from ..models.hybrid import HybridALS

        if not isinstance(model, ALS) or isinstance(model, HybridALS):
            raise ValueError(f"model: fit_people refits an ALS on the accounts' people, got "
                             f"{type(model).__name__}")
        model._check_fitted()
        if not isinstance(interactions, Interactions):
            raise ValueError(f"interactions: expected an Interactions, got "
                             f"{type(interactions).__name__}")
        if interactions.sessions is None:
            raise ValueError("interactions: has no sessions (build it with session=) to "
                             "find the people in")
        n_users, n_items = interactions.shape
        if model.user_factors.shape[0] != n_users or model.item_factors.shape[0] != n_items:
            raise ValueError(f"interactions: {n_users} users x {n_items} items but the model "
                             f"has {model.user_factors.shape[0]} x {model.item_factors.shape[0]}; "
                             "pass the Interactions it was fitted on")
        scale = self._params()["people_regularization"]
        if fits is None:
            fits = self.fit_users(model, interactions, np.arange(n_users))
        rows, _ = self.people_rows(interactions, fits)
        people = type(model)(**model.get_params())
        people.set_params(regularization=model._resolved_regularization() * scale)
        people.fit(rows, show_progress=False)
        people.user_factors = np.ascontiguousarray(
            people._fold_in_users(interactions.to_csr()), dtype=np.float32)
        for attr in ("user_ids", "item_ids"):
            if getattr(model, attr, None) is not None:
                setattr(people, attr, getattr(model, attr))
        return people

    def rank(self, model, interactions, user: int, n: int, tastes="auto", context=None,
             filter_items=None, items=None, fit: _Fit | None = None):
        """Taste-aware top picks of one account (dense indices), or None for "single".

        Returns None when the single account vector should serve (``tastes="single"``, no
        sessions, one taste and no context that could pick a person, or a model that
        cannot fold in); else ``(item indices, scores, taste of each, tastes, weights)``
        where ``weights`` are the shares each taste was served by (its weight, or the
        posterior given ``context``).  Seen items, ``filter_items`` (deny) and outside
        ``items`` (allow) are never returned.
        """
        mode = self._choice(tastes, "tastes", TASTE_MODES)
        n = check_int(n, "n", minimum=1)
        if context is not None and not isinstance(context, dict):
            raise ValueError(f"context: expected a dict such as {{'device': 'tv', "
                             f"'hour': 21}}, got {type(context).__name__}")
        if mode == "single" or interactions.sessions is None:
            return None
        fit, weights = self._serving(fit or self._fit_one(model, interactions, user),
                                     context, n)
        if weights is None:
            return None
        row = _user_row(interactions, user)
        try:
            vecs = self.vectors(model, interactions, fit, row.indices, row.data,
                                self._blends(fit, context), *self._context_fold(context))
        except ValueError:
            return None  # the model cannot fold in: one vector it is
        from ..models.base import _id_list, _topk

        n_items = model.item_factors.shape[0]
        allow = _id_list(items, "items", n_items)
        deny = _id_list(filter_items, "filter_items", n_items)
        pool = n_items if allow is None else len(allow)
        seen = row.indices.astype(np.int32)
        k = vecs.shape[0]
        indptr = np.arange(k + 1, dtype=np.int64) * seen.size
        ids, scores = _topk(np.ascontiguousarray(vecs), np.ascontiguousarray(
                                model.item_factors, dtype=np.float32),
                            min(2 * n, pool), indptr, np.tile(seen, k), allow, deny,
                            getattr(model, "num_threads", 0) or 0, "taste vectors",
                            "item_factors")
        ranked = [[int(i) for i in ids[j] if i >= 0] for j in range(k)]
        got, src = interleave(ranked, weights, n)
        score_of = [dict(zip(ids[j].tolist(), scores[j].tolist())) for j in range(k)]
        sc = np.array([score_of[j][i] for i, j in zip(got, src)], dtype=np.float32)
        return (np.asarray(got, dtype=np.int64), sc, np.asarray(src, dtype=np.int64),
                self._describe(interactions, fit, order=False), weights)

    def split_doubt(self, fit: _Fit) -> float:
        """How likely an account the criterion kept at one taste is two people after all:
        ``1 / (1 + exp(dBIC / (2 * uncertain_split)))`` with ``dBIC = BIC(2) - BIC(1)``
        (> 0: the evidence against a second person), 0 when no two-taste fit was tried,
        when ``uncertain_split`` is 0, and for an account with several tastes found."""
        t = self._params()["uncertain_split"]
        if fit.k > 1 or fit.runner_up is None or t == 0:
            return 0.0
        d = float(fit.bic[1] - fit.bic[0]) / (2.0 * t)
        return float(1.0 / (1.0 + np.exp(min(d, 700.0))))

    def _serving(self, fit: _Fit, context, n: int):
        """(fit, weights): the tastes that serve an account and each one's share of the
        interleave, or ``(fit, None)`` when the single account vector serves.

        With a ``context``: the posterior of the tastes found.  With nobody known to be
        watching: their weights tempered by ``balance``; and for an account kept at one
        taste whose two-taste fit is still plausible (:meth:`split_doubt` ``q`` > 0), that
        fit's tastes, the lighter one's share scaled by ``q`` (the heaviest, served by the
        account's own vector, keeps the rest), unless that share wins none of the ``n``
        slots."""
        if context:
            return (fit, None) if fit.k == 1 else (fit, self.posterior(fit, context))
        q = 1.0
        if fit.k == 1:
            q = self.split_doubt(fit)
            if q <= 0.0:
                return fit, None
            one, fit = fit, fit.runner_up
        # nobody known: shares tempered from proportional (0) towards equal (1)
        weights = np.exp(fit.log_weight * (1.0 - self._params()["balance"]))
        weights = q * weights / weights.sum()
        main = int(np.argmax(fit.log_weight))
        weights[main] += 1.0 - q
        if q < 1.0 and interleave([[j] * n for j in range(fit.k)], weights, n,
                                  distinct=False)[1].count(main) == n:
            return one, None  # the lighter taste would get no slot: the account vector
        return fit, weights

    def _context_fold(self, context) -> tuple:
        """(contrast, regularization scale) of the tastes' fold-in: the ``context_*``
        parameters when someone is known to be watching, else the plain fold-in."""
        if not context:
            return 0.0, 1.0
        p = self._params()
        return p["context_contrast"], p["context_regularization"]

    def _blends(self, fit: _Fit, context) -> np.ndarray:
        """Per taste, the weight of the other tastes' titles in its vector: ``blend``;
        with nobody known to be watching and ``main_account``, 1 for the heaviest taste
        (its list is the account's own)."""
        p = self._params()
        out = np.full(fit.k, p["blend"])
        if not context and p["main_account"]:
            out[int(np.argmax(fit.log_weight))] = 1.0
        return out

    # ------------------------------------------------------------------ Personalizer
    # The Personalizer plugs this component in (``set_tastes``; done for it when its
    # interactions have sessions) and delegates ``tastes``, taste-aware ``top_picks`` and
    # the home page's top-picks row(s) here.  Ranking goes through the Personalizer's own
    # ranking (business rules, re-ranking, live history), one taste vector at a time.
    @staticmethod
    def _view(pz):
        """(model, what the model was fitted on: sessions, n_items, item_ids) or None."""
        sess = getattr(pz, "sessions", None)
        if sess is None:
            return None
        st = pz._state
        return _SessionView(sess, st.items.n, st.items.ids, st.n_users)

    def _account(self, pz, st, u: int):
        view = self._view(pz)
        if view is None:
            return None, None
        span = view.sessions.of_user(u)
        if span.stop == span.start:  # no sessions (e.g. a user recorded live)
            return None, None
        return view, self._fit_one(st.items.model, view, u)

    def personalizer_tastes(self, pz, user) -> list[Taste]:
        """The tastes of an account of a Personalizer (external id), heaviest first."""
        st = pz._state
        u = pz._user(st, user)
        view, fit = self._account(pz, st, u)
        if fit is None:
            row = pz._row(st, u)
            return [Taste(items=pz._ext_items(st, row.items), weight=1.0)]
        out = self._describe(view, fit)
        return out

    def _taste_rows(self, pz, st, row, view, fit, blend=None, context=None):
        """(rows, own): the account's history row once per taste with that taste's vector
        (it still excludes everything seen), and the row of the titles that are mostly
        that taste's (to explain its picks by its own history).  With a ``context`` the
        vectors are folded in as :meth:`_context_fold` says."""
        from dataclasses import replace

        hist, vals = row.nonzero()
        try:
            vecs = self.vectors(st.items.model, view, fit, hist, vals,
                                self._params()["blend"] if blend is None else blend,
                                *self._context_fold(context))
        except ValueError:
            return None, None
        mine = np.argmax(self.shares(view, fit, row.items), axis=1) if row.items.size else (
            np.zeros(0, dtype=np.int64))
        rows = [replace(row, vector=vecs[j]) for j in range(vecs.shape[0])]
        own = [replace(row, items=row.items[mine == j], values=row.values[mine == j],
                       raw=row.raw[mine == j], counts=row.counts[mine == j],
                       ts=None if row.ts is None else row.ts[mine == j], vector=vecs[j])
               for j in range(vecs.shape[0])]
        return rows, own

    def top_picks(self, pz, user, n, tastes="auto", context=None, *, rules=None,
                  diversity=0.0, calibration=0.0, exclude=None, _layout="interleave"):
        """``Personalizer.top_picks`` for a possibly shared account (a Row; or, with
        ``_layout="rows"``, a list of Rows: one per taste)."""
        from .rows import Row

        mode = self._choice(tastes, "tastes", TASTE_MODES)
        n = check_int(n, "n", minimum=1)
        if context is not None and not isinstance(context, dict):
            raise ValueError(f"context: expected a dict such as {{'device': 'tv', "
                             f"'hour': 21}}, got {type(context).__name__}")
        st = pz._state
        u = pz._user(st, user)
        row = pz._row(st, u)
        deny, allow = pz._filters(st, rules)
        if exclude is not None and len(exclude):
            deny = np.union1d(deny, pz._known_items(st, exclude, "exclude"))

        def single():
            r = pz._top_picks_row(st, row, n, deny, allow, diversity, calibration)
            return [r] if _layout == "rows" else r

        if mode == "single":
            return single()
        view, fit = self._account(pz, st, u)
        if fit is None:
            return single()
        weights = None
        if _layout != "rows":
            fit, weights = self._serving(fit, context, n)
        if fit.k == 1 or (_layout != "rows" and weights is None):
            return single()
        trows, own = self._taste_rows(pz, st, row, view, fit,
                                      None if _layout == "rows" else self._blends(fit, context),
                                      None if _layout == "rows" else context)
        if trows is None:
            return single()
        described = self._describe(view, fit, order=False)
        if _layout == "rows":
            out, used = [], deny
            for j in np.argsort(-fit.log_weight, kind="stable"):
                ids, scores = pz._ranked_row(st, trows[j], n, used, allow, diversity,
                                             calibration)
                used = np.union1d(used, ids)
                out.append(Row(kind="top_picks", title=_taste_title(described[j]),
                               items=pz._ext_items(st, ids), scores=[float(x) for x in scores],
                               reasons=pz._pick_reasons(st, own[j], ids)))
            return out
        ranked = [pz._ranked_row(st, tr, 2 * n, deny, allow, diversity, calibration)
                  for tr in trows]
        got, src = interleave([ids.tolist() for ids, _ in ranked], weights, n)
        score_of = [dict(zip(ids.tolist(), sc.tolist())) for ids, sc in ranked]
        ids = np.asarray(got, dtype=np.int64)
        return Row(kind="top_picks", title="Top picks for you", items=pz._ext_items(st, ids),
                   scores=[float(score_of[j][i]) for i, j in zip(got, src)],
                   reasons=pz._pick_reasons(st, row, ids))

    def homepage_rows(self, pz, user, n, layout="rows", **options) -> list:
        """The home page's top-picks row(s): one per taste (``layout="rows"``) or the
        interleave (``"interleave"``); a one-taste account gets its one row either way."""
        layout = self._choice(layout, "tastes", ("rows", "interleave", "single"))
        if layout == "single":
            return [self.top_picks(pz, user, n, tastes="single", **options)]
        if layout == "interleave":
            return [self.top_picks(pz, user, n, **options)]
        return self.top_picks(pz, user, n, _layout="rows", **options)


@dataclass
class _SessionView:
    """What the component needs of an Interactions: its sessions and item space."""

    sessions: Any
    n_items: int
    item_ids: np.ndarray
    n_users: int


_DAYPARTS = ((5, "mornings"), (11, "lunchtime"), (14, "afternoons"), (18, "evenings"),
             (22, "late nights"))


def _taste_title(t: Taste) -> str:
    """A row title from a taste's typical context ("Top picks for evenings on the tv")."""
    parts = []
    hour = t.context.get("hour")
    if isinstance(hour, float):
        h = hour % 24
        name = "late nights"
        for start, label in _DAYPARTS:
            if h >= start:
                name = label
        parts.append(name)
    dev = t.context.get("device")
    if dev is not None:
        parts.append(f"on the {dev}")
    for k, v in t.context.items():
        if k not in ("hour", "device"):
            parts.append(f"{k} {v}")
    return "Top picks for " + (" ".join(parts) if parts else f"{t.weight:.0%} of the viewing")


def _user_row(interactions, user: int) -> sp.csr_matrix:
    """The account's row of the training matrix (values as the model saw them)."""
    lo, hi = np.searchsorted(interactions.user_idx, [user, user + 1])
    vals = interactions.values[lo:hi]
    keep = vals != 0
    idx = interactions.item_idx[lo:hi][keep]
    return sp.csr_matrix((vals[keep], idx, [0, idx.size]),
                         shape=(1, interactions.n_items), dtype=np.float32)


def interleave(ranked: list, weights: np.ndarray, n: int, distinct: bool = True):
    """Merge ranked lists of item ids by Sainte-Lague quotas of ``weights``.

    Each position goes to the list with the largest ``weight / (2 * taken + 1)`` that still
    has an unused item; an item already placed is skipped (``distinct=False``: repeats
    are allowed, so the lists' slot counts alone can be read).  Returns (items, list
    index).
    """
    weights = np.asarray(weights, dtype=np.float64)
    pos = [0] * len(ranked)
    taken = np.zeros(len(ranked))
    seen: set = set()
    items, src = [], []
    alive = np.array([len(r) > 0 for r in ranked])
    while len(items) < n and alive.any():
        prio = np.where(alive, weights / (2 * taken + 1), -np.inf)
        j = int(np.argmax(prio))
        lst = ranked[j]
        while distinct and pos[j] < len(lst) and lst[pos[j]] in seen:
            pos[j] += 1
        if pos[j] >= len(lst):
            alive[j] = False
            continue
        it = lst[pos[j]]
        pos[j] += 1
        seen.add(it)
        items.append(it)
        src.append(j)
        taken[j] += 1
    return items, src
