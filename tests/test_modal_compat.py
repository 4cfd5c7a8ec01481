"""Tests for sklearn_crtcl._modal_compat: modAL 0.4.x with scikit-learn >= 1.8."""

import inspect
import types
import warnings

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import validation

from sklearn_crtcl import _modal_compat as compat

modal_base = pytest.importorskip("modAL.models.base")
from modAL.models import ActiveLearner, Committee  # noqa: E402

SKLEARN_DROPPED_FORCE_ALL_FINITE = "force_all_finite" not in inspect.signature(
    validation.check_X_y).parameters


class CountingStrategy:
    """A strategy returning ``n_instances`` indices (or a tuple), counting its calls."""

    def __init__(self, metrics=False):
        self.calls = 0
        self.metrics = metrics

    def __call__(self, classifier, X_pool, n_instances=1, **kwargs):
        self.calls += 1
        idx = np.arange(len(X_pool))[::-1][:n_instances].copy()
        if self.metrics:
            return idx, np.full(n_instances, 0.5)
        return idx


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    y = (X[:, 0] > 0.5).astype(int)
    return X, y


def make_learner(data, strategy):
    X, y = data
    return ActiveLearner(KNeighborsClassifier(3), query_strategy=strategy,
                         X_training=X[:10], y_training=y[:10])


@pytest.mark.parametrize("n_instances", [1, 2, 3, 7])
def test_query_calls_the_strategy_once_and_returns_the_rows(data, n_instances):
    strategy = CountingStrategy()
    learner = make_learner(data, strategy)
    X_pool = data[0][10:]
    result = learner.query(X_pool, n_instances=n_instances)
    assert strategy.calls == 1
    assert isinstance(result, tuple) and len(result) == 2
    idx, rows = result
    expected = np.arange(len(X_pool))[::-1][:n_instances]
    np.testing.assert_array_equal(idx, expected)  # n_instances=2 is not read as (idx, metrics)
    np.testing.assert_array_equal(rows, X_pool[expected])


def test_query_with_a_metrics_returning_strategy(data):
    strategy = CountingStrategy(metrics=True)
    learner = make_learner(data, strategy)
    X_pool = data[0][10:]
    idx, rows = learner.query(X_pool, n_instances=3)
    np.testing.assert_array_equal(rows, X_pool[idx])
    idx2, rows2, metrics = learner.query(X_pool, n_instances=3, return_metrics=True)
    np.testing.assert_array_equal(idx2, idx)
    np.testing.assert_array_equal(metrics, [0.5, 0.5, 0.5])
    assert strategy.calls == 2
    plain = make_learner(data, CountingStrategy())
    with pytest.warns(UserWarning, match="no metrics"):
        _, _, none = plain.query(X_pool, n_instances=2, return_metrics=True)
    assert none is None


def test_committee_query_calls_the_strategy_once(data):
    strategy = CountingStrategy()
    committee = Committee([make_learner(data, strategy), make_learner(data, strategy)],
                          query_strategy=strategy)
    X_pool = data[0][10:]
    idx, rows = committee.query(X_pool, n_instances=2)
    assert strategy.calls == 1
    np.testing.assert_array_equal(rows, X_pool[idx])


def test_teach_works_with_the_installed_scikit_learn(data):
    X, y = data
    learner = make_learner(data, CountingStrategy())
    learner.teach(X[10:15], y[10:15])
    assert learner.X_training.shape == (15, 4)
    np.testing.assert_array_equal(learner.y_training, y[:15])
    learner.teach(X[15:20], y[15:20], only_new=True)
    assert learner.X_training.shape == (20, 4)
    learner.fit(X[:30], y[:30])
    assert learner.X_training.shape == (30, 4)
    bad = X[20:22].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # finiteness still checked
        learner.teach(bad, y[20:22])


def test_validators_patched_only_when_needed():
    if SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert "modAL.models.base.check_X_y" in compat.PATCHED["check_X_y"] or \
            "modAL.models.learners.check_X_y" in compat.PATCHED["check_X_y"]
        with pytest.raises(TypeError):  # what modAL hits without the patch
            validation.check_X_y(np.ones((2, 2)), [0, 1], force_all_finite=True)
    fake = types.ModuleType("fake_modal_module")
    fake.check_X_y = validation.check_X_y
    fake.check_array = validation.check_array
    other = types.ModuleType("fake_other")
    own = lambda *a, **k: "own"  # noqa: E731
    other.check_X_y = own
    done = compat.patch_validators([fake, other])
    assert other.check_X_y is own
    if not SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert done == [] and fake.check_X_y is validation.check_X_y
        return
    assert done == ["fake_modal_module.check_X_y", "fake_modal_module.check_array"]
    X, y = fake.check_X_y(np.ones((3, 2)), [0, 1, 0], force_all_finite=True)
    assert X.shape == (3, 2)
    assert fake.check_array(np.array([[np.nan]]), force_all_finite=False).shape == (1, 1)
    with pytest.raises(ValueError, match="NaN"):
        fake.check_array(np.array([[np.nan]]), force_all_finite=True)
    with pytest.raises(TypeError, match="both"):
        fake.check_array(np.ones((1, 1)), force_all_finite=True, ensure_all_finite=True)
    wrapped = fake.check_X_y
    assert compat.patch_validators([fake]) == []  # idempotent: no double wrapping
    assert fake.check_X_y is wrapped


def test_modal_query_patched_on_import():
    assert modal_base.BaseLearner.query is compat.unified_query
    assert modal_base.BaseCommittee.query is compat.unified_query
    assert compat.patch_modal() == {"check_X_y": [], "query": []}  # idempotent


@pytest.mark.parametrize("version, expected", [
    ((0, 3, 6), False), ((0, 4, 0), True), ((0, 4, 1), True), ((0, 4, 2), True),
    ((0, 4, 2, 1), True), ((0, 4, 3), False), ((0, 5, 0), False), (None, False),
])
def test_needs_query_patch(version, expected):
    assert compat.needs_query_patch(version) is expected


class Modal0421Learner:
    """The query protocol of modAL 0.4.2.1 (BaseLearner.query), reimplemented."""

    def __init__(self, query_strategy):
        self.query_strategy = query_strategy

    def query(self, X_pool, *query_args, return_metrics=False, **query_kwargs):
        try:
            query_result, query_metrics = self.query_strategy(
                self, X_pool, *query_args, **query_kwargs)
        except Exception:
            query_metrics = None
            query_result = self.query_strategy(self, X_pool, *query_args, **query_kwargs)
        if return_metrics:
            return query_result, X_pool[query_result], query_metrics
        return query_result, X_pool[query_result]


def test_patch_fixes_the_modal_0421_protocol():
    X_pool = np.arange(40.0).reshape(20, 2)
    Learner = type("Learner", (Modal0421Learner,), dict(Modal0421Learner.__dict__))

    strategy = CountingStrategy()
    learner = Learner(strategy)
    learner.query(X_pool, n_instances=3)
    assert strategy.calls == 2  # unpatched 0.4.2.1: called twice
    idx, _ = learner.query(X_pool, n_instances=2)
    assert np.ndim(idx) == 0  # unpatched 0.4.2.1: the two indices read as (idx, metrics)

    assert compat.patch_query(Learner) == [f"{__name__}.Learner"]
    assert compat.patch_query(Learner) == []  # idempotent
    for n in (1, 2, 3):
        strategy = CountingStrategy()
        idx, rows = Learner(strategy).query(X_pool, n_instances=n)
        assert strategy.calls == 1
        np.testing.assert_array_equal(idx, np.arange(20)[::-1][:n])
        np.testing.assert_array_equal(rows, X_pool[idx])
    metrics_strategy = CountingStrategy(metrics=True)
    idx, rows, metrics = Learner(metrics_strategy).query(X_pool, n_instances=4,
                                                          return_metrics=True)
    assert metrics_strategy.calls == 1 and len(metrics) == 4
    np.testing.assert_array_equal(rows, X_pool[idx])


def test_tuple_returning_strategy_gives_rows_and_no_deprecation_warning(data):
    """Unpatched modAL 0.4.1 returns such a tuple as is, with a DeprecationWarning."""
    learner = make_learner(data, CountingStrategy(metrics=True))
    X_pool = data[0][10:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx, rows = learner.query(X_pool, n_instances=2)
    np.testing.assert_array_equal(rows, X_pool[idx])


@pytest.mark.parametrize("selection", ["power", "softmax", "rank", "balanced"])
@pytest.mark.parametrize("n_instances", [1, 2, 3])
def test_stochastic_selection_through_query_calls_the_strategy_once(data, selection,
                                                                    n_instances):
    """A strategy whose batch is random must run once per query: a second call
    (unpatched modAL 0.4.2.x) would draw another batch than the one returned."""
    from sklearn_crtcl.query import random_sampling

    calls = []

    def strategy(classifier, X_pool, n_instances=1, **kwargs):
        calls.append(1)
        return random_sampling(classifier, X_pool, n_instances, **kwargs)

    learner = make_learner(data, strategy)
    X_pool = data[0][10:]
    idx, rows = learner.query(X_pool, n_instances=n_instances, random_state=4,
                              selection=selection, beta=2.0)
    assert len(calls) == 1
    assert np.shape(idx) == (n_instances,) and len(set(np.asarray(idx).tolist())) == n_instances
    np.testing.assert_array_equal(rows, X_pool[idx])
    np.testing.assert_array_equal(
        idx, random_sampling(learner, X_pool, n_instances, random_state=4,
                             selection=selection, beta=2.0))
    if selection == "balanced":  # needs a classifier, which the stub below lacks
        return
    # under the modAL 0.4.2.1 protocol too, once patched
    Learner = type("Learner", (Modal0421Learner,), dict(Modal0421Learner.__dict__))
    compat.patch_query(Learner)
    calls.clear()
    idx2, _ = Learner(strategy).query(X_pool, n_instances=n_instances, random_state=4,
                                      selection=selection, beta=2.0)
    assert len(calls) == 1
    np.testing.assert_array_equal(idx2, idx)
