"""``tastemaker.evaluate``: score several fitted models on one train/test split."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from .._validation import check_int
from ..models.base import _as_user_items
from . import metrics as _m

__all__ = ["evaluate", "EVALUATE_METRICS"]

#: Metrics ``evaluate`` can report, each at every k.  The ranking ones are defined in
#: :mod:`tastemaker.evaluation.metrics`; ``coverage`` is catalog coverage, ``novelty``
#: the mean self-information, ``arp`` the average recommendation popularity (popularity
#: bias), ``personalization`` the mean dissimilarity between users' lists and
#: ``diversity`` the intra-list diversity over ``item_features`` (only when given).
#: ``auc`` counts as non-relevant candidates only the items outside the user's train
#: and test rows (training items cannot be recommended).  ``rmse`` and ``mae`` (one
#: column each, no cut-off) score the predicted ratings of models with a
#: ``predict(userids, itemids)`` method (``ExplicitALS``) against every stored ``test``
#: value; they are NaN for models that do not predict.
RATING_METRICS = ("rmse", "mae")
EVALUATE_METRICS = _m.RANKING_METRICS + (
    "coverage", "novelty", "arp", "personalization", "diversity") + RATING_METRICS

_DEFAULT_METRICS = ("precision", "recall", "map", "map_full", "ndcg", "mrr", "hit_rate", "auc",
                    "coverage", "novelty", "arp", "personalization")

_BASELINE_NAME = "Popularity"


def _check_ks(k) -> tuple[int, ...]:
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        ks = (k,)
    else:
        try:
            if isinstance(k, (str, bytes)):
                raise TypeError
            ks = tuple(k)
        except TypeError:
            raise ValueError(f"k: expected an int or a sequence of ints, got {k!r}") from None
    if not ks:
        raise ValueError("k: expected at least one cut-off")
    return tuple(sorted({check_int(x, "k", minimum=1) for x in ks}))


def _predicts(model) -> bool:
    return callable(getattr(model, "predict", None))


def _check_metrics(metrics, have_features: bool, have_predict: bool = False) -> tuple[str, ...]:
    if metrics is None:
        names = (_DEFAULT_METRICS + (("diversity",) if have_features else ())
                 + (RATING_METRICS if have_predict else ()))
    else:
        names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        if not names:
            raise ValueError("metrics: expected at least one metric name")
    for n in names:
        if n not in EVALUATE_METRICS:
            raise ValueError(f"metrics: unknown metric {n!r}; expected some of "
                             f"{', '.join(EVALUATE_METRICS)}")
    if "diversity" in names and not have_features:
        raise ValueError("metrics: 'diversity' needs item_features (item factors or a "
                         "feature matrix shared by all models)")
    return tuple(dict.fromkeys(names))


def _recommend_all(model, name, users, train, n, batch_size, recalculate_user, bar):
    """Top-``n`` ids for ``users`` in batches through the model's batch ``recommend``."""
    out = np.full((users.size, n), -1, dtype=np.int64)
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        kwargs = {"recalculate_user": True} if recalculate_user else {}
        ids, _ = model.recommend(batch, train[batch], N=n, filter_already_liked_items=True,
                                 **kwargs)
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] != batch.size or ids.shape[1] > n:
            raise ValueError(f"models[{name!r}]: recommend returned ids of shape {ids.shape} "
                             f"for {batch.size} users and N={n}")
        out[start:start + batch.size, :ids.shape[1]] = ids
        bar.update(1)
    return out


def evaluate(models, train, test, k=(10, 20), metrics=None, *, show_progress: bool = True,
             baseline: bool = True, item_features=None, recalculate_user: bool = False,
             batch_size: int = 1024):
    """Compare fitted models on a train/test split; one row per model.

    Each model recommends, for every user with at least one test item, its top
    ``max(k)`` items through its batch ``recommend(userids, train_rows, N=max(k),
    filter_already_liked_items=True)`` (the native top-k), in batches of
    ``batch_size`` users; the training items of a user are never recommended.  The
    lists are then scored against ``test`` at every ``k``.

    A :class:`tastemaker.Popularity` baseline, fitted on ``train``, is added under
    the name ``"Popularity"`` when no model in ``models`` is a ``Popularity`` (disable
    with ``baseline=False``), so every table shows how far the models beat it.  When
    ``train`` is only the held-out users' fold-in history (:func:`user_kfold_split`),
    pass your own ``Popularity().fit(fold.train)`` instead, which counts every
    training user.

    Parameters
    ----------
    models : dict of str -> fitted model
        Models with a batch ``recommend`` (any ``tastemaker`` model, or one following
        the same signature) trained on ``train``'s users and items.
    train : Interactions or scipy.sparse matrix, shape (n_users, n_items)
        What the models were trained on (or, for held-out users, their fold-in
        history): excluded from the recommendations and fed to ``recommend``.
    test : Interactions or scipy.sparse matrix, shape (n_users, n_items)
        Held-out interactions; every stored positive value is a relevant item (a
        dislike is not).
    k : int or sequence of int, default (10, 20)
        Cut-offs.
    metrics : sequence of str, optional
        Subset of :data:`EVALUATE_METRICS`.  By default all of them, ``diversity`` only
        when ``item_features`` is given.
    show_progress : bool, default True
        tqdm progress bar over the batches.
    baseline : bool, default True
        Add the Popularity baseline when absent.
    item_features : array (n_items, d) or scipy.sparse matrix (n_items, f), optional
        Item vectors for intra-list diversity, shared by all models so that their
        values are comparable.
    recalculate_user : bool, default False
        Pass ``recalculate_user=True`` to ``recommend`` (users folded in from their
        ``train`` rows, e.g. the ``fold_in`` part of :func:`user_kfold_split`).
    batch_size : int, default 1024
        Users per ``recommend`` call.

    Returns
    -------
    pandas.DataFrame
        Indexed by model name (``index.name == "model"``), one float column per metric
        and cut-off named ``"<metric>@<k>"`` (e.g. ``"ndcg@10"``), metrics in the order
        asked and each at increasing k.  Ranking metrics are means over the users with
        test items; ``df.attrs["n_users"]`` holds how many users were scored.  When a
        model can ``predict`` ratings (``ExplicitALS``), ``"rmse"`` and ``"mae"`` columns
        (no cut-off) score its predictions of every stored ``test`` value (NaN for the
        models that cannot predict); they are in the default metrics then.

    Raises
    ------
    ValueError
        Naming the argument: empty or non-dict ``models``, a model without
        ``recommend`` or with another catalog size, mismatched ``train``/``test``
        shapes, a ``test`` with no interactions, unknown metric names, bad ``k``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if not isinstance(models, dict) or not models:
        raise ValueError(f"models: expected a non-empty dict of name -> fitted model, got "
                         f"{type(models).__name__ if not isinstance(models, dict) else 'an empty dict'}")
    for name, model in models.items():
        if not isinstance(name, str):
            raise ValueError(f"models: names must be str, got {name!r}")
        if not callable(getattr(model, "recommend", None)):
            raise ValueError(f"models[{name!r}]: {type(model).__name__} has no recommend method")
    train_data = train
    train = _as_user_items(train, "train", allow_empty=True)
    test = _as_user_items(test, "test", shape=train.shape, allow_empty=True)
    n_users, n_items = train.shape
    ks = _check_ks(k)
    names = _check_metrics(metrics, item_features is not None,
                           any(_predicts(m) for m in models.values()))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    ratings = test  # every stored value, for rmse / mae
    test = _m._nonzero_csr(test, "test", positive=True)
    if test.nnz == 0:
        raise ValueError("test: has no interactions to score")
    if item_features is not None:
        rows_f = item_features.shape[0] if sp.issparse(item_features) else np.shape(item_features)[0]
        if np.ndim(item_features) != 2 or rows_f != n_items:
            raise ValueError(f"item_features: expected {n_items} rows (one per item), got "
                             f"shape {np.shape(item_features)}")
    for name, model in models.items():
        factors = getattr(model, "item_factors", None)
        if factors is not None and np.shape(factors)[0] != n_items:
            raise ValueError(f"models[{name!r}]: has {np.shape(factors)[0]} items, train and "
                             f"test have {n_items}")

    models = dict(models)
    if baseline:
        from ..models.popularity import Popularity

        if not any(isinstance(m, Popularity) for m in models.values()):
            label = _BASELINE_NAME
            while label in models:
                label += "*"
            models[label] = Popularity().fit(train_data if not sp.issparse(train_data)
                                             else train)

    users = np.flatnonzero(np.diff(test.indptr)).astype(np.int64)
    # no list is longer than the catalogue: k=10**9 must not allocate users x 10**9
    n = min(ks[-1], test.shape[1])
    n_batches = -(-users.size // batch_size)
    bar = tqdm(total=n_batches * len(models), desc="evaluate", unit="batch",
               disable=not show_progress)
    rows = {}
    try:
        for name, model in models.items():
            bar.set_postfix_str(name)
            rec = _recommend_all(model, name, users, train, n, batch_size, recalculate_user, bar)
            rows[name] = _score(rec, users, train, test, ks, names, item_features)
            rows[name].update(_rating_scores(model, ratings, names))
    finally:
        bar.close()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "model"
    df.attrs["n_users"] = int(users.size)
    return df


def _rating_scores(model, ratings: sp.csr_matrix, names) -> dict:
    """``rmse`` / ``mae`` of ``model.predict`` on every stored test value (NaN when the
    model does not predict or there is no rating)."""
    wanted = [m for m in RATING_METRICS if m in names]
    if not wanted:
        return {}
    if not _predicts(model) or ratings.nnz == 0:
        return {m: float("nan") for m in wanted}
    users = np.repeat(np.arange(ratings.shape[0], dtype=np.int64), np.diff(ratings.indptr))
    pred = np.asarray(model.predict(users, ratings.indices.astype(np.int64)), dtype=np.float64)
    fns = {"rmse": _m.rmse, "mae": _m.mae}
    return {m: fns[m](ratings.data, pred) for m in wanted}


def _score(rec, users, train, test, ks, names, item_features) -> dict:
    ranking = [m for m in names if m in _m.RANKING_METRICS]
    hits = _m._Hits(rec, test, users, exclude=train) if ranking else None
    out = {}
    for name in names:
        for k in ks:
            col = f"{name}@{k}"
            kl = min(k, rec.shape[1])  # a list is never longer than the catalogue
            if name in _m.RANKING_METRICS:
                out[col] = _m._reduce(hits.metric(name, k), False)
            elif name == "coverage":
                out[col] = _m.catalog_coverage(rec, test.shape[1], kl)
            elif name == "novelty":
                out[col] = _m.novelty(rec, train, kl)
            elif name == "arp":
                out[col] = _m.popularity_bias(rec, train, kl)
            elif name == "personalization":
                out[col] = _m.personalization(rec, kl)
            elif name == "diversity":
                try:
                    out[col] = _m.intra_list_diversity(rec, item_features, kl)
                except ValueError as exc:  # the metric's argument is evaluate's item_features
                    msg = str(exc)
                    if msg.startswith("item_vectors:"):
                        raise ValueError("item_features:" + msg[len("item_vectors:"):]) from None
                    raise
    return out
