"""The contract every tastemaker model keeps: one mixin, inherited by each model's tests.

How to use it (one class per model, in that model's test file)::

    from model_contract import ModelContract

    class TestMyModelContract(ModelContract):
        def make_model(self):
            return MyModel(factors=4, iterations=2, random_state=0)   # small and fast

        # what the model cannot do (each defaults to True):
        supports_fold_in = True         # recommend(..., recalculate_user=True)
        supports_item_fold_in = True    # similar_items(..., recalculate_item=True)
        supports_similar_items = True
        supports_similar_users = True

Models whose ``fit`` needs more than ``user_items`` (item features) return it from
``fit_kwargs(user_items)``; every fit below passes it.

Everything else is shared: fit on an ``Interactions`` and on a matrix, the estimator
contract (get_params / set_params / repr / the ``fit`` signature), recommend with every
filter checked against the model's own single-user answers, implicit's ``items=`` rule,
zero vectors in ``similar_items``, pickle / deepcopy / save-load through paths and file
objects (fitted and unfitted), bad input, and concurrent queries.  A model that cannot do
something must say so with a clear ``ValueError`` or ``NotImplementedError``, which is
checked too.  Override ``make_data`` for models that need other data (it must return an
``Interactions``); keep it small: the whole mixin should run in a few seconds per model.

The mixin compares a model with itself under transformations (pickled, reloaded, one
query vs a batch, one thread vs many).  Each model's own test file checks its numbers
against an independent NumPy reference.
"""

from __future__ import annotations

import copy
import inspect
import io
import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp
import tastemaker
from tastemaker import IdError, Interactions

__all__ = ["ModelContract", "contract_data"]

N_USERS, N_ITEMS = 40, 30


def contract_data(seed: int = 0, n_users: int = N_USERS, n_items: int = N_ITEMS,
                  cold_items: int = 2) -> Interactions:
    """A small implicit-feedback log: every user has a few items, and the last
    ``cold_items`` items appear only once (for one user) so a model has near-cold items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    warm = n_items - cold_items
    taste = rng.integers(0, 3, n_users)
    for u in range(n_users):
        k = int(rng.integers(3, 9))
        # three taste groups, so that similar items and users mean something
        pool = np.arange(warm)[np.arange(warm) % 3 == taste[u]]
        pick = rng.choice(pool, size=min(k, len(pool)), replace=False)
        noise = rng.choice(warm, size=2, replace=False)
        users += [u] * (len(pick) + 2)
        items += list(pick) + list(noise)
    for j in range(cold_items):
        users.append(int(rng.integers(0, n_users)))
        items.append(warm + j)
    values = rng.integers(1, 5, len(users)).astype(np.float64)
    return Interactions.from_arrays(np.array(users), np.array(items), values=values)


def _same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


class ModelContract:
    """Mixin of contract tests; see the module documentation."""

    supports_fold_in = True
    supports_item_fold_in = True  # similar_items(..., recalculate_item=True, item_users=...)
    supports_similar_items = True
    supports_similar_users = True

    # ---------------------------------------------------------------- hooks
    def make_model(self):  # pragma: no cover - every subclass defines it
        raise NotImplementedError("define make_model() in the test class")

    def make_data(self) -> Interactions:
        return contract_data()

    def fit_kwargs(self, user_items) -> dict:
        """Extra arguments of ``fit`` for this ``user_items`` (an Interactions or a
        matrix, possibly malformed: size anything from its ``shape``), such as the item
        features of content and hybrid models."""
        return {}

    def _fit(self, model, user_items, **kwargs):
        return model.fit(user_items, **kwargs, **self.fit_kwargs(user_items))

    # ---------------------------------------------------------------- fixtures
    # built once per test class (the tests never modify them)
    _shared: dict = {}

    def _once(self, what, build):
        key = (type(self), what)
        if key not in ModelContract._shared:
            ModelContract._shared[key] = build()
        return ModelContract._shared[key]

    @pytest.fixture
    def data(self):
        return self._once("data", self.make_data)

    @pytest.fixture
    def fitted(self, data):
        return self._once("fitted", lambda: self._fit(self.make_model(), data, show_progress=False))

    @staticmethod
    def _users(data):
        return np.arange(min(data.n_users, 12))

    # ---------------------------------------------------------------- estimator contract
    def test_fit_signature_is_uniform(self):
        sig = inspect.signature(type(self.make_model()).fit)
        params = list(sig.parameters.values())
        assert params[1].name == "user_items"
        assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        for name in ("show_progress", "callback"):
            assert name in sig.parameters, f"fit() lacks {name}"
            assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert sig.parameters["callback"].default is None

    def test_get_params_set_params_and_repr(self):
        model = self.make_model()
        params = model.get_params()
        init = inspect.signature(type(model).__init__).parameters
        assert set(params) == {n for n, p in init.items() if n != "self"
                               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        clone = type(model)(**params)
        assert clone.get_params().keys() == params.keys()
        assert model.set_params(**params) is model
        with pytest.raises(ValueError, match="not_a_parameter"):
            model.set_params(not_a_parameter=1)
        text = repr(model)
        assert text.startswith(type(model).__name__ + "(") and text.endswith(")")

    def test_fit_returns_self_and_takes_interactions_or_a_matrix(self, data, fitted):
        model = self.make_model()
        calls = []
        assert self._fit(model, data.to_csr(), show_progress=False,
                         callback=lambda *a: calls.append(a)) is model
        assert calls, "fit() never called its callback"
        users = self._users(data)
        _same(model.recommend(users, data.to_csr(), N=5), fitted.recommend(users, data, N=5))
        with pytest.raises(ValueError, match="callback"):
            self._fit(self.make_model(), data, show_progress=False, callback=3)

    def test_query_before_fit_is_a_clear_error(self, data):
        with pytest.raises(ValueError, match="not fitted"):
            self.make_model().recommend(0, data.to_csr())

    # ---------------------------------------------------------------- recommend
    def test_recommend_results_and_filters(self, data, fitted):
        ui = data.to_csr()
        users = self._users(data)
        ids, scores = fitted.recommend(users, ui, N=7)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert ids.shape == scores.shape == (len(users), min(7, data.n_items))
        for row, u in enumerate(users):
            valid = ids[row] >= 0
            got = ids[row][valid]
            assert not np.isin(got, ui[u].indices).any(), "an already-liked item came back"
            assert len(np.unique(got)) == len(got)
            s = scores[row][valid]
            assert np.all(s[:-1] >= s[1:]), "scores not sorted"
            # a batch row is the single query's answer, and the full matrix is sliced by id
            _same(fitted.recommend(int(u), ui[u], N=7), (got, s))
            _same(fitted.recommend(int(u), ui, N=7), (got, s))
        # full matrix: a permutation of all users is still sliced by id
        perm = np.random.default_rng(1).permutation(data.n_users)
        p_ids, _ = fitted.recommend(perm, ui, N=7)
        for row, u in enumerate(perm):
            assert not np.isin(p_ids[row], ui[u].indices).any()
        deny = np.arange(0, data.n_items, 2)
        d_ids, _ = fitted.recommend(users, ui, N=7, filter_items=deny)
        assert not np.isin(d_ids, deny).any()
        free, _ = fitted.recommend(users, None, N=data.n_items, filter_already_liked_items=False)
        assert (free >= 0).all() and all(len(set(r)) == data.n_items for r in free)

    def test_items_ranks_every_given_item_liked_last(self, data, fitted):
        ui = data.to_csr()
        users = self._users(data)
        allow = np.arange(data.n_items // 2)
        ids, scores = fitted.recommend(users, ui, N=len(allow), items=allow)
        assert ids.shape == (len(users), len(allow))
        for row, u in enumerate(users):
            assert sorted(ids[row]) == sorted(allow), "items= must rank every given item"
            liked = np.isin(ids[row], ui[u].indices)
            n_new = int((~liked).sum())
            assert not liked[:n_new].any(), "liked items must come last"
            assert np.all(scores[row, n_new:] == np.finfo(np.float32).min)
        one, _ = fitted.recommend(int(users[0]), ui, N=3, items=allow)
        assert len(one) == 3 and np.isin(one, allow).all()

    def test_fold_in_or_a_clear_error(self, data, fitted):
        ui = data.to_csr()
        if not self.supports_fold_in:
            with pytest.raises((ValueError, NotImplementedError), match="recalculate_user"):
                fitted.recommend(0, ui[0], recalculate_user=True)
            return
        ids, scores = fitted.recommend(0, ui[0], N=5, recalculate_user=True)
        assert ids.dtype == np.int32 and len(ids) == 5 and not np.isin(ids, ui[0].indices).any()
        # a brand-new user id, given only by its row
        new_ids, new_scores = fitted.recommend(data.n_users + 5, ui[0], N=5,
                                               recalculate_user=True)
        _same((new_ids, new_scores), (ids, scores))

    # ---------------------------------------------------------------- similar
    def test_similar_items_or_a_clear_error(self, data, fitted):
        if not self.supports_similar_items:
            with pytest.raises((ValueError, NotImplementedError), match="similar_items"):
                fitted.similar_items(0)
            return
        ids, scores = fitted.similar_items(0, N=5)
        assert ids.dtype == np.int32 and scores.dtype == np.float32 and ids[0] == 0
        batch, _ = fitted.similar_items(np.arange(4), N=5)
        assert batch.shape == (4, 5)
        np.testing.assert_array_equal(batch[0], ids)
        f_ids, _ = fitted.similar_items(0, N=5, filter_items=[0, 1, 2])
        assert not np.isin(f_ids, [0, 1, 2]).any()
        a_ids, _ = fitted.similar_items(0, N=50, items=[3, 4, 5])
        assert np.isin(a_ids, [3, 4, 5]).all()
        if self.supports_item_fold_in:  # an Interactions serves as item_users (transposed)
            item_users = data.to_csr().T.tocsr()
            _same(fitted.similar_items(2, N=5, recalculate_item=True, item_users=data),
                  fitted.similar_items(2, N=5, recalculate_item=True, item_users=item_users))

    def test_item_without_interactions_is_never_similar(self, data):
        if not self.supports_similar_items:
            return
        ui = data.to_csr()
        wide = sp.hstack([ui, sp.csr_matrix((ui.shape[0], 1), dtype=np.float32)]).tocsr()
        model = self._fit(self.make_model(), wide, show_progress=False)
        empty = ui.shape[1]
        ids, _ = model.similar_items(np.arange(empty + 1), N=empty + 1)
        assert not (ids[:empty] == empty).any(), "a zero vector came back as similar"
        assert (ids[empty] == -1).all(), "a zero vector has no similar items"

    def test_similar_users_or_a_clear_error(self, data, fitted):
        if not self.supports_similar_users:
            with pytest.raises((ValueError, NotImplementedError), match="similar_users"):
                fitted.similar_users(0)
            return
        ids, scores = fitted.similar_users(1, N=5)
        assert ids.dtype == np.int32 and ids[0] == 1 and len(ids) == 5

    # ---------------------------------------------------------------- copies and files
    def _answers(self, model, data):
        ui = data.to_csr()
        users = self._users(data)
        out = [model.recommend(users, ui, N=6)]
        if self.supports_similar_items:
            out.append(model.similar_items(np.arange(5), N=4))
        if self.supports_fold_in:
            out.append(model.recommend(2, ui[2], N=6, recalculate_user=True))
        return out

    def _check_same(self, a, b, data):
        assert type(a) is type(b)
        assert a.get_params().keys() == b.get_params().keys()
        for x, y in zip(self._answers(a, data), self._answers(b, data)):
            _same(x, y)

    def test_pickle_and_deepcopy_give_identical_answers(self, data, fitted):
        self._answers(fitted, data)  # warm any caches first: they must not leak
        for clone in (pickle.loads(pickle.dumps(fitted)), copy.deepcopy(fitted),
                      copy.copy(fitted)):
            self._check_same(fitted, clone, data)
        blank = pickle.loads(pickle.dumps(self.make_model()))
        assert blank.get_params().keys() == self.make_model().get_params().keys()

    def test_save_load_paths_and_file_objects(self, data, fitted, tmp_path):
        path = tmp_path / "model.npz"
        fitted.save(path)
        self._check_same(fitted, tastemaker.load(path), data)
        self._check_same(fitted, type(fitted).load(str(path)), data)
        buf = io.BytesIO()
        fitted.save(buf)
        buf.seek(0)
        self._check_same(fitted, type(fitted).load(buf), data)
        with open(path, "rb") as fh:
            self._check_same(fitted, tastemaker.load(fh), data)
        with pytest.raises(ValueError, match="path"):
            type(fitted).load(tmp_path / "missing.npz")
        # the on-disk format holds no pickle
        with np.load(path, allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)

    def test_unfitted_model_saves_and_loads(self, data, tmp_path):
        model = self.make_model()
        path = tmp_path / "blank.npz"
        model.save(path)
        back = tastemaker.load(path)
        assert type(back) is type(model)
        with pytest.raises(ValueError, match="not fitted"):
            back.recommend(0, data.to_csr())
        # and trains to the same model
        self._check_same(self._fit(model, data, show_progress=False),
                         self._fit(back, data, show_progress=False), data)

    def test_loading_another_model_class_is_an_error(self, fitted, tmp_path):
        path = tmp_path / "m.npz"
        fitted.save(path)
        other = tastemaker.Popularity if not isinstance(fitted, tastemaker.Popularity) \
            else tastemaker.ALS
        with pytest.raises(ValueError, match=f"not a {other.__name__}"):
            other.load(path)

    # ---------------------------------------------------------------- bad input
    def test_bad_input_is_a_value_error_naming_the_argument(self, data, fitted):
        ui = data.to_csr()
        with pytest.raises(IdError, match="userid"):
            fitted.recommend(data.n_users, ui)
        with pytest.raises(IndexError):  # implicit's exception type works too
            fitted.recommend(-1, ui)
        with pytest.raises(ValueError, match="N"):
            fitted.recommend(0, ui, N=0)
        with pytest.raises(ValueError, match="user_items"):
            fitted.recommend(0, sp.csr_matrix((1, data.n_items + 1), dtype=np.float32))
        with pytest.raises(ValueError, match="user_items"):
            fitted.recommend(0, ui.toarray())
        with pytest.raises(ValueError, match="filter_items"):
            fitted.recommend(0, ui, filter_items=[data.n_items])
        with pytest.raises(ValueError, match="items"):
            fitted.recommend(0, ui, items=[0.5])
        with pytest.raises(ValueError, match="user_items"):
            self._fit(self.make_model(), np.ones((3, 3)), show_progress=False)
        with pytest.raises(ValueError, match="user_items"):
            self._fit(self.make_model(), sp.csr_matrix((3, 3), dtype=np.float32),
                      show_progress=False)
        bad = ui.copy().astype(np.float32)
        bad.data[0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            self._fit(self.make_model(), bad, show_progress=False)
        if self.supports_similar_items:
            with pytest.raises(IdError, match="itemid"):
                fitted.similar_items(data.n_items)

    # ---------------------------------------------------------------- threads
    def test_concurrent_queries_agree(self, data, fitted):
        ui = data.to_csr()
        users = self._users(data)
        fresh = pickle.loads(pickle.dumps(fitted))  # cold caches: first queries race
        expected = fitted.recommend(users, ui, N=5)
        results, errors = [], []

        def worker():
            try:
                for _ in range(5):
                    results.append(fresh.recommend(users, ui, N=5))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(results) == 20
        for r in results:
            _same(r, expected)
