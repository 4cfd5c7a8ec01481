"""Checks of sklearn_crtcl._modal_compat against modAL's own ``query``, for the installed modAL.

tests/test_modal_compat.py runs every ``check_*`` function in its own process
(the modAL of the environment, 0.4.1 in CI) and runs this file as a script
under modAL 0.4.2.1 (``python modal_compat_worker.py 0.4.2.1``, with that
modAL first on ``PYTHONPATH``); the script prints ``ok <check>`` per check.

The reference is always modAL's own, unpatched ``BaseLearner.query`` (kept by
the patch as the ``_sklearn_crtcl_compat`` attribute of the wrapper): a user's
strategy must give the same result, the same warnings, the same errors and
the same number of strategy calls through the patched ``query``.
"""

import functools
import inspect
import sys
import warnings

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

import sklearn_crtcl.query.entropy as entropy_module
import sklearn_crtcl.query.random as random_module
from sklearn_crtcl import DatasetArray
from sklearn_crtcl import _modal_compat as compat
from sklearn_crtcl.query import Proposal, entropy_sampling, random_sampling

from modAL.models import ActiveLearner, Committee  # noqa: E402  (after the patch)
from modAL.models import base as modal_base  # noqa: E402

ORIGINAL_QUERY = getattr(modal_base.BaseLearner.query, compat._MARK, None)
#: modAL 0.4.2.x's query takes return_metrics; 0.4.0 and 0.4.1 pass it to the strategy
TAKES_METRICS = "return_metrics" in inspect.signature(modal_base.BaseLearner.query).parameters

_rng = np.random.RandomState(0)
X = _rng.rand(60, 4)
y = (X[:, 0] > 0.5).astype(int)
X_POOL = X[10:]


def make_learner(strategy):
    """A modAL ActiveLearner (k-nearest neighbours) with ``strategy``."""
    return ActiveLearner(KNeighborsClassifier(3), query_strategy=strategy,
                         X_training=X[:10], y_training=y[:10])


def _counted(func):
    """``func`` with a ``calls`` counter (a plain user strategy)."""
    def strategy(classifier, X_pool, *args, **kwargs):
        strategy.calls += 1
        return func(classifier, X_pool, *args, **kwargs)
    strategy.calls = 0
    return strategy


def _last(X_pool, n_instances=1):
    return np.arange(len(X_pool))[::-1][:n_instances].copy()


def user_strategies():
    """name -> factory of a fresh user-written strategy (with ``calls``)."""
    def own_metrics(classifier, X_pool, n_instances=1, return_metrics=False):
        idx = _last(X_pool, n_instances)
        return (idx, np.full(n_instances, 0.25)) if return_metrics else idx

    def wrapped():  # a user's wrapper of a package strategy: the user's strategy
        @functools.wraps(random_sampling)
        def strategy(classifier, X_pool, *args, **kwargs):
            strategy.calls += 1
            return random_sampling(classifier, X_pool, *args, random_state=3, **kwargs)
        strategy.calls = 0
        return strategy

    return {
        "indices": lambda: _counted(lambda c, X_pool, n_instances=1: _last(X_pool, n_instances)),
        # modAL 0.4.1's documented protocol: a strategy may return (indices, instances),
        # e.g. synthesized ones
        "synthesized": lambda: _counted(lambda c, X_pool, n_instances=1: (
            _last(X_pool, n_instances), X_pool[_last(X_pool, n_instances)] + 100.0)),
        "metrics": lambda: _counted(lambda c, X_pool, n_instances=1: (
            _last(X_pool, n_instances), np.full(n_instances, 0.5))),
        "triple": lambda: _counted(lambda c, X_pool, n_instances=1: (
            _last(X_pool, n_instances), X_pool[:n_instances], "third")),
        "own_return_metrics": lambda: _counted(own_metrics),
        "wrapped_package_strategy": wrapped,
    }


CALLS = [((), {}), ((), {"n_instances": 2}), ((), {"n_instances": 3}), ((3,), {}),
         ((), {"n_instances": 2, "return_metrics": True}),
         ((), {"n_instances": 3, "return_metrics": False})]


def outcome(call):
    """``(result, error, warnings)`` of ``call()``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, error = call(), None
        except Exception as exc:  # noqa: BLE001 - the error is part of the outcome
            result, error = None, (type(exc), str(exc))
    return result, error, [(w.category, str(w.message)) for w in caught]


def same(a, b):
    """Equal results: tuples item by item, arrays by value and dtype."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(same(x, z) for x, z in zip(a, b)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b))
    return type(a) is type(b) and a == b


def check_query_wrapped_only_where_needed():
    """BaseLearner.query wraps modAL's own; BaseCommittee.query is modAL's."""
    assert compat.needs_query_patch(compat._modal_version())
    assert ORIGINAL_QUERY is not None and ORIGINAL_QUERY.__module__ == "modAL.models.base"
    assert not hasattr(ORIGINAL_QUERY, compat._MARK)
    assert not hasattr(modal_base.BaseCommittee.query, compat._MARK)
    assert modal_base.BaseCommittee.query.__module__ == "modAL.models.base"
    assert compat.patch_modal() == {"check_X_y": [], "query": []}  # idempotent


def check_user_strategies_behave_as_in_modal():
    """Result, warnings, errors and number of calls of modAL's own query."""
    for name, make in user_strategies().items():
        assert not compat.is_package_strategy(make())
        for args, kwargs in CALLS:
            ours, theirs = make(), make()
            patched = outcome(lambda: make_learner(ours).query(X_POOL, *args, **kwargs))
            original = outcome(lambda: ORIGINAL_QUERY(make_learner(theirs), X_POOL, *args,
                                                      **kwargs))
            where = f"{name} query(X_pool, *{args}, **{kwargs})"
            assert same(patched[0], original[0]), f"{where}: {patched[0]} != {original[0]}"
            assert patched[1:] == original[1:], f"{where}: {patched[1:]} != {original[1:]}"
            assert ours.calls == theirs.calls, f"{where}: {ours.calls} != {theirs.calls} calls"


def check_user_strategy_keeps_modal_protocol():
    """What modAL's protocol gives, spelled out (and the old patch changed)."""
    strategy = user_strategies()["synthesized"]()
    result = make_learner(strategy).query(X_POOL, n_instances=2)
    if TAKES_METRICS:  # 0.4.2.x: unpacked as (indices, metrics)
        assert len(result) == 2 and np.array_equal(result[1], X_POOL[result[0]])
    else:  # 0.4.1: the strategy's own tuple, synthesized instances included
        np.testing.assert_array_equal(result[1], X_POOL[[49, 48]] + 100.0)
    own = user_strategies()["own_return_metrics"]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = make_learner(own).query(X_POOL, n_instances=3, return_metrics=True)
    if TAKES_METRICS:  # modAL takes the keyword; the strategy returns indices only
        assert len(result) == 3 and result[2] is None and own.calls == 2
    else:  # 0.4.1 passes it on to the strategy, returns its tuple
        assert len(result) == 2 and np.array_equal(result[1], [0.25] * 3)


def check_committee_query_is_modals():
    """``committee.query(X, True)``: 0.4.2.x's ``return_metrics``, 0.4.1's n_instances."""
    seen = []

    def strategy(committee, X_pool, n_instances=1, **kwargs):
        seen.append((n_instances, kwargs))
        return _last(X_pool, int(n_instances))

    committee = Committee([make_learner(strategy), make_learner(strategy)],
                          query_strategy=strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.4.2.x warns: the strategy has no metrics
        result = committee.query(X_POOL, True)
    if TAKES_METRICS:
        assert len(result) == 3 and result[2] is None
        assert seen[-1] == (1, {}) and len(seen) == 2  # modAL 0.4.2.x calls it twice
    else:
        assert len(result) == 2 and seen == [(True, {})]


def check_package_strategies_run_once():
    """One call per query, the indices of a direct call, the rows, metrics ``None``."""
    calls = []
    select = random_module.select

    def counting_select(*args, **kwargs):
        calls.append(1)
        return select(*args, **kwargs)

    random_module.select = counting_select
    try:
        for strategy in (random_sampling,
                         functools.partial(random_sampling, selection="rank", beta=2.0)):
            assert compat.is_package_strategy(strategy)
            for args, kwargs in [((), {"n_instances": 1}), ((), {"n_instances": 2}),
                                 ((3,), {}), ((), {"n_instances": 7})]:
                learner = make_learner(strategy)
                calls.clear()
                idx, rows = learner.query(X_POOL, *args, random_state=4, **kwargs)
                assert len(calls) == 1, (strategy, args, kwargs, len(calls))
                np.testing.assert_array_equal(
                    idx, strategy(learner, X_POOL, *args, random_state=4, **kwargs))
                np.testing.assert_array_equal(rows, X_POOL[idx])
            calls.clear()
            if TAKES_METRICS:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    idx, rows, metrics = learner.query(X_POOL, n_instances=2, random_state=4,
                                                       return_metrics=True)
                assert metrics is None and len(calls) == 1
                assert "doesn't support return_metrics" in str(caught[0].message)
                np.testing.assert_array_equal(rows, X_POOL[idx])
            else:  # modAL 0.4.1 passes return_metrics on to the strategy
                try:
                    learner.query(X_POOL, n_instances=2, return_metrics=True)
                except TypeError as exc:
                    assert "return_metrics" in str(exc)
                else:  # pragma: no cover
                    raise AssertionError("return_metrics reached no strategy")
    finally:
        random_module.select = select


def check_package_strategy_proposal_is_opt_in():
    """The default query: one call, ``(indices, rows)``, the indices of a direct call;
    ``return_proposal=True`` (to query or bound by a partial): still one call, the same
    indices, ``(indices, rows, proposal)``."""
    calls = []
    select = entropy_module.select

    def counting_select(*args, **kwargs):
        calls.append(kwargs.get("return_proposal"))
        return select(*args, **kwargs)

    entropy_module.select = counting_select
    try:
        for n in (1, 2, 3):
            learner = make_learner(entropy_sampling)
            calls.clear()
            result = learner.query(X_POOL, n_instances=n, random_state=4)
            assert calls == [False] and len(result) == 2, (n, calls, len(result))
            direct = entropy_sampling(learner, X_POOL, n_instances=n, random_state=4)
            np.testing.assert_array_equal(result[0], direct)
            calls.clear()
            idx, rows, proposal = learner.query(X_POOL, n_instances=n, random_state=4,
                                                return_proposal=True)
            assert calls == [True], (n, calls)
            np.testing.assert_array_equal(idx, direct)
            np.testing.assert_array_equal(rows, X_POOL[idx])
            assert isinstance(proposal, Proposal) and proposal.q.shape == (n,)
            np.testing.assert_array_equal(proposal.indices, idx)
        bound = functools.partial(entropy_sampling, selection="power", return_proposal=True)
        learner = make_learner(bound)
        calls.clear()
        idx, rows, proposal = learner.query(X_POOL, n_instances=2, random_state=4)
        assert calls == [True] and proposal.selection == "power"
        np.testing.assert_array_equal(idx, entropy_sampling(learner, X_POOL, n_instances=2,
                                                            random_state=4, selection="power"))
        if TAKES_METRICS:  # modAL 0.4.2.x: metrics None, then the proposal
            calls.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idx, rows, metrics, proposal = learner.query(X_POOL, n_instances=2,
                                                             random_state=4,
                                                             return_metrics=True)
            assert metrics is None and isinstance(proposal, Proposal) and calls == [True]
    finally:
        entropy_module.select = select


def check_dataset_pool_rows():
    """A DatasetArray pool: the rows as an array (modAL 0.4.1's retrieve_rows cannot)."""
    images = np.random.RandomState(1).rand(20, 1, 2, 3).astype(np.float32)
    pool = DatasetArray(torch.utils.data.TensorDataset(torch.from_numpy(images)))
    learner = make_learner(random_sampling)
    idx, rows = learner.query(pool, n_instances=3, random_state=0)
    assert isinstance(rows, np.ndarray)
    np.testing.assert_array_equal(rows, images[idx])
    from modAL.utils.data import retrieve_rows

    try:
        theirs = retrieve_rows(pool, idx)
    except TypeError as exc:  # modAL 0.4.1 knows arrays, lists, frames, sparse matrices
        assert "not supported" in str(exc) and not TAKES_METRICS
    else:  # 0.4.2.x tries X[I] first
        np.testing.assert_array_equal(theirs, rows)


def check_teach_with_the_installed_scikit_learn():
    """``teach``/``fit`` work (check_X_y's force_all_finite), finiteness still checked."""
    learner = make_learner(random_sampling)
    learner.teach(X[10:15], y[10:15])
    assert learner.X_training.shape == (15, 4)
    np.testing.assert_array_equal(learner.y_training, y[:15])
    learner.teach(X[15:20], y[15:20], only_new=True)  # (0.4.2.x keeps no X_training then)
    learner.fit(X[:30], y[:30])
    assert learner.X_training.shape == (30, 4)
    bad = X[20:22].copy()
    bad[0, 0] = np.nan
    try:
        learner.teach(bad, y[20:22])
    except ValueError as exc:
        assert "NaN" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a NaN was taught")


CHECKS = [name for name in dir() if name.startswith("check_")]


def main(expected_version):
    from importlib.metadata import version

    installed = version("modAL-python")
    assert installed == expected_version, f"modAL {installed} loaded, not {expected_version}"
    for name in CHECKS:
        globals()[name]()
        print("ok", name, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
