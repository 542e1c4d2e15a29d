"""``tastemaker.tune``: hyper-parameter search on a validation split, with Optuna.

Optuna is an optional dependency (``pip install tastemaker[tune]``); it is imported
only when :func:`tune` runs.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import check_int, check_random_state
from ..models.base import _as_user_items
from .evaluate import EVALUATE_METRICS

__all__ = ["tune", "TuneResult", "SEARCH_SPACES"]

#: Metrics scored from ``model.predict`` on the validation entries (lower is better).
RATING_METRICS = ("rmse", "mae")

#: Default search spaces by model class name.  Each entry maps a constructor parameter to
#: ``("int", low, high, log)``, ``("float", low, high, log)`` or
#: ``("categorical", choices)``; ``("auto_float", lo_factor, hi_factor)`` is a log-uniform
#: range around the training split's ``auto_regularization`` (so the range follows the
#: scale of the values and of ``alpha``).  The weight found is used as it is in the refit
#: on train + validation: on MovieLens 100K the best absolute ALS weight is the same when
#: fitted on 56% and on 75% of the ratings, and rescaling it with the larger data's
#: confidence mass moved it a third past the optimum (about -0.02 NDCG@10 on the test
#: part).  Parameters a class does not take are skipped, so a space may list
#: alternatives.
SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    # alpha is not searched by default: on a validation split, alpha and regularization
    # trade off along a ridge of equal scores (regularization / alpha about constant), and
    # the ridge does not carry over to the refit on more data -- on MovieLens 100K its
    # high-alpha end scored as well on validation and 0.01-0.03 NDCG@10 lower after the
    # refit.  Few iterations act as extra regularization in the same way, so the search
    # starts at 10.  Put alpha in search_space to search it (for example on play counts).
    "ALS": {
        "factors": ("int", 16, 256, True),
        "regularization": ("auto_float", 1 / 30, 30.0),
        "iterations": ("int", 10, 30, False),
    },
    "HybridALS": {
        "factors": ("int", 16, 256, True),
        "regularization": ("auto_float", 1 / 30, 30.0),
        "item_regularization": ("float", 1.0, 1e4, True),
        "feature_regularization": ("float", 1e-3, 1e3, True),
    },
    "ExplicitALS": {
        "factors": ("int", 4, 256, True),
        "regularization": ("float", 1e-3, 10.0, True),
        "bias_regularization": ("float", 1e-3, 100.0, True),
        "iterations": ("int", 5, 40, False),
    },
    "EASE": {
        "regularization": ("float", 10.0, 1e5, True),
    },
    "ItemKNN": {
        "K": ("int", 5, 1000, True),
        "similarity": ("categorical", ("cosine", "bm25", "tfidf", "jaccard")),
    },
    "ContentModel": {},
    "Popularity": {},
}


@dataclass
class TuneResult:
    """What :func:`tune` found.

    Attributes
    ----------
    model : fitted model
        The best parameters, refitted as ``refit`` asked.
    params : dict
        The parameters of ``model``: the best trial's searched ones (an ``auto_float``
        weight as the absolute value that trial used) plus ``fixed_params``.
    value : float
        The best trial's validation score.
    metric : str
        The metric optimised.
    trials : pandas.DataFrame
        One row per trial: number, state, value, seconds and each parameter.
    study : optuna.Study
        The study itself, for plots and further trials.
    """

    model: Any
    params: dict
    value: float
    metric: str
    trials: Any
    study: Any = field(repr=False)


def _parse_metric(metric) -> tuple[str, int | None, str]:
    """(name, k or None, optuna direction)."""
    if not isinstance(metric, str):
        raise ValueError(f"metric: expected a string such as 'ndcg@10' or 'rmse', got "
                         f"{type(metric).__name__}")
    if metric in RATING_METRICS:
        return metric, None, "minimize"
    name, sep, k = metric.partition("@")
    if not sep or name not in EVALUATE_METRICS or name == "diversity":
        raise ValueError(f"metric: expected '<name>@<k>' with a name among "
                         f"{', '.join(m for m in EVALUATE_METRICS if m != 'diversity')}, or "
                         f"one of {', '.join(RATING_METRICS)}; got {metric!r}")
    try:
        k_val = int(k)
    except ValueError:
        raise ValueError(f"metric: the cut-off after '@' must be an int, got {metric!r}") from None
    k_val = check_int(k_val, "metric cut-off", minimum=1)
    lower_better = name in ("arp",)
    return name, k_val, "minimize" if lower_better else "maximize"


def _constructor_params(model_class) -> set[str]:
    try:
        sig = inspect.signature(model_class.__init__)
    except (TypeError, ValueError):
        return set()
    return {n for n, p in sig.parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_space(space: dict, accepted: set[str], model_name: str) -> dict:
    if not isinstance(space, dict):
        raise ValueError(f"search_space: expected a dict of parameter -> spec, got "
                         f"{type(space).__name__}")
    out = {}
    for name, spec in space.items():
        if name not in accepted:
            raise ValueError(f"search_space: {model_name} has no parameter {name!r}")
        if not isinstance(spec, tuple) or not spec:
            raise ValueError(f"search_space[{name!r}]: expected a tuple such as "
                             f"('float', low, high, log), got {spec!r}")
        kind = spec[0]
        if kind in ("int", "float"):
            if len(spec) not in (3, 4):
                raise ValueError(f"search_space[{name!r}]: expected ({kind!r}, low, high[, log])")
            low, high = spec[1], spec[2]
            log = bool(spec[3]) if len(spec) == 4 else False
            for v in (low, high):
                if not isinstance(v, numbers.Real) or not math.isfinite(v):
                    raise ValueError(f"search_space[{name!r}]: bounds must be finite numbers, "
                                     f"got {spec!r}")
            if not low <= high or (log and low <= 0):
                raise ValueError(f"search_space[{name!r}]: need low <= high (and low > 0 "
                                 f"on a log scale), got {spec!r}")
            out[name] = (kind, low, high, log)
        elif kind == "auto_float":
            if len(spec) != 3 or not all(isinstance(v, numbers.Real) and v > 0 and
                                         math.isfinite(v) for v in spec[1:]) or spec[1] > spec[2]:
                raise ValueError(f"search_space[{name!r}]: expected ('auto_float', "
                                 f"lo_factor > 0, hi_factor >= lo_factor), got {spec!r}")
            out[name] = spec
        elif kind == "categorical":
            if len(spec) != 2 or not isinstance(spec[1], (tuple, list)) or not spec[1]:
                raise ValueError(f"search_space[{name!r}]: expected ('categorical', "
                                 f"[choices]), got {spec!r}")
            out[name] = ("categorical", tuple(spec[1]))
        else:
            raise ValueError(f"search_space[{name!r}]: unknown kind {kind!r}; expected "
                             f"'int', 'float', 'auto_float' or 'categorical'")
    return out


_AUTO_SUFFIX = "/auto"


def _resolve(trial_params: dict, matrix: sp.csr_matrix, fixed: dict,
             alpha_default: float = 1.0) -> dict:
    """Constructor parameters from a trial's raw Optuna parameters.

    An ``auto_float`` parameter is searched as a multiple of the ALS ``"auto"`` weight of
    ``matrix`` (with the trial's ``alpha``, else the fixed or the class's default one);
    ``matrix`` is always the training split, so a refit uses the same absolute weight.
    """
    from ..models.als import auto_regularization

    out = {}
    for name, value in trial_params.items():
        if name.endswith(_AUTO_SUFFIX):
            alpha = trial_params.get("alpha", fixed.get("alpha", alpha_default))
            base = auto_regularization(matrix, float(alpha))
            out[name[: -len(_AUTO_SUFFIX)]] = float(value) * (base if base > 0 else 1.0)
        else:
            out[name] = value
    return out


def _suggest(trial, space: dict) -> None:
    for name, spec in space.items():
        kind = spec[0]
        if kind == "int":
            trial.suggest_int(name, int(spec[1]), int(spec[2]), log=spec[3])
        elif kind == "float":
            trial.suggest_float(name, float(spec[1]), float(spec[2]), log=spec[3])
        elif kind == "auto_float":
            trial.suggest_float(name + _AUTO_SUFFIX, spec[1], spec[2], log=True)
        else:
            trial.suggest_categorical(name, list(spec[1]))


def _default_of(model_class, name: str, fallback: float) -> float:
    """The constructor default of a numeric parameter, else ``fallback``."""
    try:
        d = inspect.signature(model_class.__init__).parameters[name].default
    except (TypeError, ValueError, KeyError):
        return fallback
    ok = isinstance(d, numbers.Real) and not isinstance(d, bool) and math.isfinite(d) and d > 0
    return float(d) if ok else fallback


def _default_trial(model_class, space: dict) -> dict:
    """The class's own defaults as a first trial, where they lie inside the space, so the
    search never ends below the defaults on the validation split."""
    try:
        sig = inspect.signature(model_class.__init__)
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, spec in space.items():
        param = sig.parameters.get(name)
        if param is None or param.default is inspect.Parameter.empty:
            continue
        d = param.default
        kind = spec[0]
        if kind == "auto_float":
            if d == "auto" and spec[1] <= 1.0 <= spec[2]:
                out[name + _AUTO_SUFFIX] = 1.0
        elif kind in ("int", "float"):
            if isinstance(d, numbers.Real) and not isinstance(d, bool) and spec[1] <= d <= spec[2]:
                out[name] = int(d) if kind == "int" else float(d)
        elif d in spec[1]:
            out[name] = d
    return out


def _score(model, train, validation, name: str, k: int | None) -> float:
    if k is None:
        from . import metrics as _m

        predict = getattr(model, "predict", None)
        if not callable(predict):
            raise ValueError(f"metric: {name!r} needs a model with predict(userids, itemids) "
                             f"(a rating model such as ExplicitALS); "
                             f"{type(model).__name__} has none")
        coo = validation.tocoo()
        pred = np.asarray(predict(coo.row, coo.col), dtype=np.float64)
        fn = _m.rmse if name == "rmse" else _m.mae
        return float(fn(coo.data.astype(np.float64), pred))
    from .evaluate import evaluate

    df = evaluate({"m": model}, train, validation, k=k, metrics=(name,), show_progress=False,
                  baseline=False)
    return float(df.loc["m", f"{name}@{k}"])


def tune(model_class, train, validation, metric: str = "ndcg@10", n_trials: int | None = 30,
         timeout: float | None = None, *, search_space: dict | None = None,
         fixed_params: dict | None = None, fit_params: dict | None = None,
         refit: str | bool = "all", random_state=0, show_progress: bool = True) -> TuneResult:
    """Search a model's hyper-parameters on a validation split, then refit the best.

    Each Optuna trial (TPE sampler, seeded by ``random_state``) constructs
    ``model_class(**fixed_params, **sampled)``, fits it on ``train`` and scores it on
    ``validation`` -- ranking metrics through :func:`tastemaker.evaluate` (training
    items never recommended), ``"rmse"``/``"mae"`` through ``model.predict`` on the
    validation entries.  A trial whose parameters the model rejects with
    ``ValueError`` (for example a memory limit) is recorded as failed and the search
    goes on.

    Parameters
    ----------
    model_class : class
        A tastemaker model class (``ALS``, ``EASE``, ``ItemKNN``, ``ExplicitALS``, ...)
        or any class with the same ``fit``/``recommend`` contract.
    train, validation : Interactions or scipy.sparse matrix, shape (n_users, n_items)
        Disjoint parts of the training data (for example from
        :func:`tastemaker.evaluation.stratified_split`).
    metric : str, default "ndcg@10"
        ``"<metric>@<k>"`` with a metric of :data:`EVALUATE_METRICS` (maximised; ``arp``
        minimised), or ``"rmse"`` / ``"mae"`` (minimised).
    n_trials : int or None, default 30
        Number of trials (None: until ``timeout``).
    timeout : float, optional
        Stop starting new trials after this many seconds.
    search_space : dict, optional
        Parameter -> spec (see :data:`SEARCH_SPACES`); by default the space registered
        for the class name, restricted to the parameters its constructor takes.
    fixed_params : dict, optional
        Constructor parameters held fixed in every trial.
    fit_params : dict, optional
        Extra keyword arguments for ``fit`` (for example ``item_features`` of
        ``HybridALS``).
    refit : {"all", "train"} or bool, default "all"
        ``"all"`` (or True): refit the best parameters on ``train + validation``;
        ``"train"`` (or False): return the best trial's model, fitted on ``train``.
    random_state : int, default 0
        Seeds the sampler and, when the class takes one, each model's ``random_state``.
    show_progress : bool, default True
        Optuna's progress bar.

    Returns
    -------
    TuneResult
        ``.model``, ``.params``, ``.value``, ``.metric``, ``.trials`` (DataFrame), ``.study``.
    """
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("tune needs Optuna: pip install 'tastemaker[tune]'") from None
    import pandas as pd

    if not isinstance(model_class, type):
        raise ValueError(f"model_class: expected a model class such as tastemaker.ALS, got "
                         f"{type(model_class).__name__}")
    model_name = model_class.__name__
    accepted = _constructor_params(model_class)
    name, k, direction = _parse_metric(metric)
    train_m = _as_user_items(train, "train", allow_empty=True)
    val_m = _as_user_items(validation, "validation", shape=train_m.shape, allow_empty=True)
    if val_m.nnz == 0:
        raise ValueError("validation: has no interactions to score")
    if n_trials is not None:
        n_trials = check_int(n_trials, "n_trials", minimum=1)
    if timeout is not None:
        if not isinstance(timeout, numbers.Real) or not timeout > 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if n_trials is None and timeout is None:
        raise ValueError("n_trials: give n_trials, timeout or both (the search must stop)")
    if refit is True:
        refit = "all"
    elif refit is False:
        refit = "train"
    if refit not in ("all", "train"):
        raise ValueError(f"refit: expected 'all', 'train' or a bool, got {refit!r}")
    fixed = dict(fixed_params or {})
    for p in fixed:
        if p not in accepted:
            raise ValueError(f"fixed_params: {model_name} has no parameter {p!r}")
    fit_kw = dict(fit_params or {})
    if search_space is None:
        default = SEARCH_SPACES.get(model_name)
        if default is None:
            raise ValueError(f"search_space: no default space for {model_name}; pass one, "
                             f"e.g. {{'factors': ('int', 16, 256, True)}}")
        search_space = {p: s for p, s in default.items() if p in accepted}
    space = _check_space(search_space, accepted, model_name)
    space = {p: s for p, s in space.items() if p not in fixed}
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        check_random_state(random_state)  # a clear error for bad types
        raise ValueError(f"random_state: expected an int seed, got {type(random_state).__name__}")
    seed = int(random_state)

    takes_seed = "random_state" in accepted and "random_state" not in fixed
    alpha0 = _default_of(model_class, "alpha", 1.0)

    def build(params):
        kw = {**fixed, **params}
        if takes_seed:
            kw["random_state"] = seed
        return model_class(**kw)

    best: dict[str, Any] = {"model": None, "value": None}
    seconds: dict[int, float] = {}
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)

    def objective(trial):
        _suggest(trial, space)
        params = _resolve(trial.params, train_m, fixed, alpha0)
        start = time.perf_counter()
        model = build(params).fit(train_m, show_progress=False, **fit_kw)
        value = _score(model, train_m, val_m, name, k)
        seconds[trial.number] = time.perf_counter() - start
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{metric} is not finite")
        if best["value"] is None or better(value, best["value"]):
            best["model"], best["value"] = model, value
        return value

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        sampler = optuna.samplers.TPESampler(seed=seed)
        study = optuna.create_study(direction=direction, sampler=sampler)
        if not space:
            study.enqueue_trial({})
            n_trials = 1
        else:
            first = _default_trial(model_class, space)
            if first:
                study.enqueue_trial(first)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(ValueError,),
                       show_progress_bar=bool(show_progress))
    finally:
        optuna.logging.set_verbosity(previous)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        errors = {t.user_attrs.get("fail_reason") or t.system_attrs.get("fail_reason")
                  for t in study.trials}
        raise ValueError(f"model_class: no trial of {model_name} completed "
                         f"({'; '.join(str(e) for e in errors if e) or 'all failed'})")
    best_trial = study.best_trial
    # the absolute weights of the best trial, also for the refit (see SEARCH_SPACES)
    best_params = _resolve(best_trial.params, train_m, fixed, alpha0)
    if refit == "all":
        full = (train_m + val_m).tocsr()
        model = build(best_params).fit(full, show_progress=False, **fit_kw)
    else:
        model = best["model"]
    params = {**fixed, **best_params}
    rows = []
    for t in study.trials:
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "seconds": seconds.get(t.number, np.nan),
                     **_resolve(t.params, train_m, fixed, alpha0)})
    trials = pd.DataFrame(rows).set_index("number")
    return TuneResult(model=model, params=params, value=float(best_trial.value),
                      metric=metric, trials=trials, study=study)
