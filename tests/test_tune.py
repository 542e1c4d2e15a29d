"""tastemaker.tune: Optuna search on a validation split."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import tastemaker as tm
from tastemaker.evaluation import stratified_split

pytest.importorskip("optuna")


def _planted(seed=0, n_users=120, n_items=60, k=4):
    """Users who like one of k item blocks: a model can learn the blocks."""
    rng = np.random.default_rng(seed)
    block = rng.integers(0, k, n_users)
    items_of = np.array_split(np.arange(n_items), k)
    rows, cols = [], []
    for u in range(n_users):
        liked = rng.choice(items_of[block[u]], size=8, replace=False)
        rows += [u] * 8
        cols += list(liked)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    return x


def test_tune_finds_the_best_of_its_trials_and_refits():
    x = _planted()
    train, val = stratified_split(x, 0.25, random_state=0)
    res = tm.tune(tm.ALS, train, val, metric="ndcg@5", n_trials=6, random_state=3,
                  show_progress=False, fixed_params={"iterations": 5})
    assert list(res.trials.columns[:3]) == ["state", "value", "seconds"]
    done = res.trials[res.trials.state == "COMPLETE"]
    assert len(done) == 6
    assert res.value == pytest.approx(done.value.max())
    assert res.params["iterations"] == 5 and set(res.params) >= {"factors", "regularization"}
    assert "alpha" not in res.params  # not searched by default (see SEARCH_SPACES)
    # the reported value is what the best trial's parameters score on validation
    row = res.trials.loc[res.study.best_trial.number]
    trial_params = {p: row[p] for p in ("factors", "regularization")}
    trial_params["factors"] = int(trial_params["factors"])
    trial_params["iterations"] = 5
    again = tm.ALS(random_state=3, **trial_params).fit(train, show_progress=False)
    df = tm.evaluate({"m": again}, train, val, k=5, metrics=("ndcg",), show_progress=False,
                     baseline=False)
    assert df.loc["m", "ndcg@5"] == pytest.approx(res.value)
    # refit="all": fitted on train + validation with the best trial's parameters, the
    # searched regularization kept at the absolute weight that trial used
    assert res.params["regularization"] == pytest.approx(trial_params["regularization"])
    from tastemaker.models.als import auto_regularization
    base = auto_regularization(train, 1.0)
    assert base / 30 <= res.params["regularization"] <= base * 30
    ref = tm.ALS(random_state=3, **res.params).fit(train + val, show_progress=False)
    np.testing.assert_allclose(res.model.item_factors, ref.item_factors, rtol=1e-5, atol=1e-7)
    # and the search beats a deliberately bad fixed setting
    bad = tm.ALS(factors=2, regularization=1e4, iterations=5, random_state=3).fit(
        train, show_progress=False)
    bad_v = tm.evaluate({"m": bad}, train, val, k=5, metrics=("ndcg",), show_progress=False,
                        baseline=False).loc["m", "ndcg@5"]
    assert res.value > bad_v


def test_tune_is_deterministic_for_a_seed_and_refit_train_keeps_the_trial_model():
    x = _planted(1)
    train, val = stratified_split(x, 0.25, random_state=1)
    a = tm.tune(tm.ALS, train, val, n_trials=3, random_state=7, show_progress=False,
                refit="train", search_space={"factors": ("int", 2, 16, True)},
                fixed_params={"iterations": 3})
    b = tm.tune(tm.ALS, train, val, n_trials=3, random_state=7, show_progress=False,
                refit="train", search_space={"factors": ("int", 2, 16, True)},
                fixed_params={"iterations": 3})
    assert a.params == b.params and a.value == b.value
    np.testing.assert_array_equal(a.model.user_factors, b.model.user_factors)
    assert a.model.user_factors.shape[0] == train.shape[0]


def test_tune_rating_metric_needs_predict():
    x = _planted(2)
    train, val = stratified_split(x, 0.25, random_state=2)
    with pytest.raises(ValueError, match="no trial"):
        tm.tune(tm.ALS, train, val, metric="rmse", n_trials=2, show_progress=False,
                fixed_params={"iterations": 1})


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "ndcg"}, "metric"),
    ({"metric": "ndcg@x"}, "metric"),
    ({"metric": "bogus@10"}, "metric"),
    ({"metric": 10}, "metric"),
    ({"n_trials": 0}, "n_trials"),
    ({"n_trials": None}, "n_trials"),
    ({"timeout": -1}, "timeout"),
    ({"refit": "both"}, "refit"),
    ({"search_space": {"nope": ("int", 1, 2)}}, "search_space"),
    ({"search_space": {"factors": ("int", 5, 2)}}, "search_space"),
    ({"search_space": {"alpha": ("float", 0, 1, True)}}, "search_space"),
    ({"search_space": {"factors": ("normal", 1, 2)}}, "search_space"),
    ({"search_space": {"factors": [1, 2]}}, "search_space"),
    ({"fixed_params": {"nope": 1}}, "fixed_params"),
    ({"random_state": 1.5}, "random_state"),
])
def test_tune_bad_input(kwargs, match):
    x = _planted(3)
    train, val = stratified_split(x, 0.25, random_state=3)
    with pytest.raises(ValueError, match=match):
        tm.tune(tm.ALS, train, val, show_progress=False, **{"n_trials": 1, **kwargs})


def test_tune_bad_data():
    x = _planted(4)
    with pytest.raises(ValueError, match="model_class"):
        tm.tune(tm.ALS(), x, x, n_trials=1, show_progress=False)
    with pytest.raises(ValueError, match="validation"):
        tm.tune(tm.ALS, x, x[:, :10], n_trials=1, show_progress=False)
    with pytest.raises(ValueError, match="validation"):
        tm.tune(tm.ALS, x, sp.csr_matrix(x.shape, dtype=np.float32), n_trials=1,
                show_progress=False)
    with pytest.raises(ValueError, match="train"):
        tm.tune(tm.ALS, x.toarray(), x, n_trials=1, show_progress=False)
