"""The package's strategies as scikit-activeml query strategies (sklearn_crtcl.skactiveml)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

skactiveml = pytest.importorskip("skactiveml")

from skactiveml.base import SingleAnnotatorPoolQueryStrategy  # noqa: E402
from skactiveml.classifier import SklearnClassifier  # noqa: E402
from skactiveml.utils import MISSING_LABEL, check_random_state, is_unlabeled  # noqa: E402

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet  # noqa: E402
from sklearn_crtcl import query  # noqa: E402
from sklearn_crtcl import skactiveml as adapters  # noqa: E402

TINY = dict(module__width=4, max_epochs=2, input_shape=(1, 8, 8), device="cpu",
            random_state=0, batch_size=64)
N, N_LABELED = 240, 60

# name -> (named class, net class, package strategy, strategy_params)
CASES = {
    "critic": (adapters.CriticSampling, CriticLossNet, query.critic_sampling, {}),
    "cod": (adapters.CODSampling, TODNet, query.cod_sampling, {}),
    "gradient_norm": (adapters.GradientNormSampling, ResNetClassifier,
                      query.gradient_norm_sampling, {}),
    "loss_prediction": (adapters.LossPredictionSampling, LossPredictionNet,
                        query.loss_prediction_sampling, {}),
    "entropy": (adapters.EntropySampling, ResNetClassifier, query.entropy_sampling, {}),
    "random": (adapters.RandomSampling, ResNetClassifier, query.random_sampling, {}),
    "badge": (adapters.BadgeSampling, ResNetClassifier, query.badge_sampling, {}),
    "coreset": (adapters.CoreSetSampling, ResNetClassifier, query.coreset_sampling, {}),
}


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    X = (X[:N] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y_true = y[:N]
    y_obs = np.full(N, MISSING_LABEL)  # scikit-activeml's convention: NaN = unlabeled
    y_obs[:N_LABELED] = y_true[:N_LABELED]
    return X, y_true, y_obs


@pytest.fixture(scope="module")
def nets(data):
    X, y_true, _ = data
    fitted = {}
    for cls in {CriticLossNet, TODNet, LossPredictionNet, ResNetClassifier}:
        kwargs = {"X_unlabeled": X[N_LABELED:]} if cls in (CriticLossNet, TODNet) else {}
        fitted[cls] = cls(**TINY).fit(X[:N_LABELED], y_true[:N_LABELED], **kwargs)
    return fitted


def _direct(name, net, X, labeled, pool, n, seed_rows, **params):
    """The package strategy called directly on the pool X[pool], mapped back to rows of X,
    with the random state scikit-activeml derives from random_state=0."""
    _, _, strategy, _ = CASES[name]
    if name == "coreset":
        params["X_labeled"] = X[labeled]
    rs = check_random_state(0, seed_rows + 1)
    return pool[strategy(net, X[pool], n, random_state=rs, **params)]


@pytest.mark.parametrize("name", list(CASES))
def test_same_indices_as_the_package_strategy_and_utilities(name, data, nets):
    named, net_cls, _, _ = CASES[name]
    X, _, y = data
    qs = named(random_state=0)
    assert isinstance(qs, SingleAnnotatorPoolQueryStrategy)
    assert qs.get_params()["random_state"] == 0 and clone(qs).strategy == name
    labeled, pool = np.arange(N_LABELED), np.arange(N_LABELED, N)
    idx, utilities = qs.query(X, y, nets[net_cls], fit_clf=False, batch_size=7,
                              return_utilities=True)
    np.testing.assert_array_equal(idx, _direct(name, nets[net_cls], X, labeled, pool, 7,
                                               len(pool)))
    assert idx.shape == (7,) and len(np.unique(idx)) == 7
    assert utilities.shape == (7, N)
    assert np.isnan(utilities[:, labeled]).all()  # labeled rows are no candidates
    for i in range(7):
        assert np.isnan(utilities[i, idx[:i]]).all()  # chosen before step i
        rest = np.setdiff1d(pool, idx[:i])
        assert np.isfinite(utilities[i, rest]).all()
    if name == "coreset":  # the greedy step takes the largest distance of each row
        np.testing.assert_array_equal(np.nanargmax(utilities, axis=1), idx)
    if name not in ("badge", "coreset"):
        # the scoring strategies (default: selection="power", a draw): with "topk", the
        # query is the maximum utility of each row, as scikit-activeml's simple_batch
        topk = named(random_state=0, strategy_params={"selection": "topk"})
        idx_topk, util_topk = topk.query(X, y, nets[net_cls], fit_clf=False, batch_size=7,
                                         return_utilities=True)
        np.testing.assert_array_equal(idx_topk, _direct(name, nets[net_cls], X, labeled, pool,
                                                        7, len(pool), selection="topk"))
        np.testing.assert_array_equal(np.nanargmax(util_topk, axis=1), idx_topk)
        np.testing.assert_array_equal(util_topk[0], utilities[0])  # the same scores
    if name == "critic":  # lowest critic score = highest utility
        np.testing.assert_allclose(
            utilities[0, pool], -query.critic_correctness(nets[net_cls], X[pool]), rtol=1e-6)
    if name == "badge":  # the first step takes the largest squared gradient norm
        assert np.nanargmax(utilities[0]) == idx[0]


def test_a_sklearn_classifier_wrapping_a_fitted_net_gives_the_same_query(data, nets):
    X, _, y = data
    net = nets[CriticLossNet]
    clf = SklearnClassifier(net, classes=np.arange(10))
    qs = adapters.CriticSampling(random_state=0, strategy_params={"selection": "topk"})
    np.testing.assert_array_equal(
        qs.query(X, y, clf, fit_clf=False, batch_size=5),
        qs.query(X, y, net, fit_clf=False, batch_size=5))
    idx, util = qs.query(X, y, clf, fit_clf=False, batch_size=5, return_utilities=True)
    np.testing.assert_array_equal(np.nanargmax(util, axis=1), idx)  # topk: lowest critic
    # the seed depends on the number of unlabeled samples, as in scikit-activeml
    other = adapters.RandomSampling(random_state=0)
    y2 = y.copy()
    y2[N_LABELED] = 0
    a = other.query(X, y, net, fit_clf=False, batch_size=5)
    b = other.query(X, y2, net, fit_clf=False, batch_size=5)
    assert not np.array_equal(a, b)


def test_string_missing_label(data, nets):
    X, y_true, y = data
    net = nets[ResNetClassifier]
    letters = np.array(list("abcdefghij"))
    y_str = np.full(N, "none")  # a str array, as scikit-activeml wants string labels
    y_str[:N_LABELED] = letters[y_true[:N_LABELED]]
    qs = adapters.EntropySampling(missing_label="none", random_state=0)
    np.testing.assert_array_equal(
        qs.query(X, y_str, net, fit_clf=False, batch_size=6),
        adapters.EntropySampling(random_state=0).query(X, y, net, fit_clf=False, batch_size=6))
    # a fit on the string labels: the labeled rows only
    idx = qs.query(X, y_str, ResNetClassifier(**TINY), batch_size=6)
    assert (y_str[idx] == "none").all()
    # the classifier's missing_label must be the strategy's (scikit-activeml's check)
    with pytest.raises(ValueError, match="missing_label1=unknown and missing_label2=none "
                                         "must be equal"):
        qs.query(X, y_str, SklearnClassifier(net, missing_label="unknown"), fit_clf=False)


def test_candidates_as_indices_and_as_samples(data, nets):
    X, _, y = data
    net = nets[ResNetClassifier]
    qs = adapters.GradientNormSampling(random_state=0)
    n_unl = int(is_unlabeled(y).sum())
    cand = np.arange(N_LABELED + 10, N, 3)
    idx, util = qs.query(X, y, net, fit_clf=False, candidates=cand, batch_size=4,
                         return_utilities=True)
    assert np.isin(idx, cand).all()
    np.testing.assert_array_equal(
        idx, cand[query.gradient_norm_sampling(net, X[cand], 4,
                                               random_state=check_random_state(0, n_unl + 1))])
    assert util.shape == (4, N)
    outside = np.setdiff1d(np.arange(N), cand)
    assert np.isnan(util[:, outside]).all() and np.isfinite(util[0, cand]).all()
    # samples not in X: indices and utilities refer to the candidates
    X_new = X[::-1][:50].copy()
    idx, util = qs.query(X, y, net, fit_clf=False, candidates=X_new, batch_size=4,
                         return_utilities=True)
    assert util.shape == (4, 50)
    np.testing.assert_array_equal(
        idx, query.gradient_norm_sampling(net, X_new, 4,
                                          random_state=check_random_state(0, n_unl + 1)))
    np.testing.assert_allclose(util[0], query.entropy_gradient_norm(net, X_new), rtol=1e-6)
    # a batch larger than the candidates: scikit-activeml's warning and the whole set
    with pytest.warns(UserWarning, match="batch_size=5"):
        idx = qs.query(X, y, net, fit_clf=False, candidates=cand[:3], batch_size=5)
    np.testing.assert_array_equal(np.sort(idx), cand[:3])


@pytest.mark.parametrize("wrapped", [False, True])
def test_fit_clf_fits_a_clone_on_the_labeled_rows_with_the_unlabeled_pool(data, wrapped):
    X, y_true, y = data
    net = CriticLossNet(**TINY)
    clf = SklearnClassifier(net, classes=np.arange(10)) if wrapped else net
    qs = adapters.CriticSampling(random_state=0)
    idx, util = qs.query(X, y, clf, batch_size=5, return_utilities=True)
    assert not hasattr(net, "module_") and not hasattr(clf, "estimator_")  # left as it was
    # the same as fitting it by hand on the labeled rows, the unlabeled rows as X_unlabeled
    pool = np.arange(N_LABELED, N)
    by_hand = CriticLossNet(**TINY).fit(X[:N_LABELED], y_true[:N_LABELED], X_unlabeled=X[pool])
    np.testing.assert_array_equal(idx, _direct("critic", by_hand, X, None, pool, 5, len(pool)))
    np.testing.assert_allclose(util[0, pool], -query.critic_correctness(by_hand, X[pool]),
                               rtol=1e-6)
    # without the unlabeled pool the critic scores differ
    without_pool = CriticLossNet(**TINY).fit(X[:N_LABELED], y_true[:N_LABELED])
    assert np.abs(util[0, pool] + query.critic_correctness(without_pool, X[pool])).max() > 1e-4


def test_coreset_takes_the_labeled_rows_as_centers(data, nets):
    X, _, y = data
    net = nets[ResNetClassifier]
    y_fewer = y.copy()
    y_fewer[10:N_LABELED] = np.nan  # 10 labeled rows: other centers, another batch
    qs = adapters.CoreSetSampling(random_state=0)
    a = qs.query(X, y, net, fit_clf=False, batch_size=6)
    b = qs.query(X, y_fewer, net, fit_clf=False, batch_size=6)
    pool = np.arange(10, N)
    np.testing.assert_array_equal(
        b, pool[query.coreset_sampling(net, X[pool], 6, X_labeled=X[:10])])
    assert not np.array_equal(a, b)


def test_the_generic_adapter_takes_names_and_functions(data, nets):
    X, _, y = data
    net = nets[ResNetClassifier]
    by_name = adapters.QueryStrategyAdapter("entropy", strategy_params={"subset_size": 50},
                                            random_state=1)
    by_function = adapters.QueryStrategyAdapter(query.entropy_sampling,
                                                strategy_params={"subset_size": 50},
                                                random_state=1)
    idx, util = by_name.query(X, y, net, fit_clf=False, batch_size=3, return_utilities=True)
    np.testing.assert_array_equal(idx, by_function.query(X, y, net, fit_clf=False,
                                                         batch_size=3))
    # only the 50 drawn candidates were scored
    drawn = np.flatnonzero(np.isfinite(util[0]))
    assert len(drawn) == 50 and np.isin(idx, drawn).all()
    # random sampling: the utilities are its own draws, after the subset's
    for name in ("random", "coreset"):
        qs = adapters.QueryStrategyAdapter(name, strategy_params={"subset_size": 50},
                                           random_state=3)
        idx, util = qs.query(X, y, net, fit_clf=False, batch_size=4, return_utilities=True)
        assert np.isfinite(util[0]).sum() == 50
        np.testing.assert_array_equal(np.nanargmax(util, axis=1), idx)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(strategy="nope"), ValueError, "unknown strategy 'nope'; valid strategies: critic"),
    (dict(strategy=len), TypeError, "strategy must be a name"),
    (dict(strategy="entropy", strategy_params={"n_instances": 3}), ValueError,
     "'n_instances' is set by the adapter"),
    (dict(strategy="entropy", strategy_params={"norm": "max"}), ValueError,
     "entropy_sampling has no option 'norm'"),
    (dict(strategy="entropy", strategy_params=[1]), TypeError, "strategy_params must be a dict"),
    (dict(strategy="critic", strategy_params={"return_proposal": True}), ValueError,
     r"'return_proposal' is not supported.*critic_sampling\(\.\.\., return_proposal=True\)"),
])
def test_bad_settings_are_refused_before_any_work(kwargs, error, match, data):
    X, _, y = data
    net = ResNetClassifier(**TINY)
    with pytest.raises(error, match=match):
        adapters.QueryStrategyAdapter(**kwargs).query(X, y, net)
    assert not hasattr(net, "module_")


def test_bad_query_arguments(data, nets):
    X, _, y = data
    net = nets[ResNetClassifier]
    qs = adapters.EntropySampling()
    with pytest.raises(TypeError, match="sample_weight is not supported"):
        qs.query(X, y, ResNetClassifier(**TINY), sample_weight=np.ones(N))
    with pytest.raises(TypeError, match="fit_clf must be a bool"):
        qs.query(X, y, net, fit_clf=1)
    with pytest.raises(TypeError, match="clf must be a net of sklearn_crtcl"):
        qs.query(X, y, object())
    with pytest.raises(ValueError, match="no labeled sample"):
        qs.query(X, np.full(N, np.nan), ResNetClassifier(**TINY))
    fresh = ResNetClassifier(**TINY)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no sample to query"):
        qs.query(X, np.where(np.isnan(y), 0, y), fresh, batch_size=2)  # every row labeled
    assert not hasattr(fresh, "module_")  # refused before the fit


def test_a_scikit_activeml_query_loop(data):
    """The loop of scikit-activeml's tutorials, with a package net and strategy."""
    X, y_true, _ = data
    # trained long enough to learn (2 epochs stay at chance: a score of 0.1 said nothing)
    clf = SklearnClassifier(CriticLossNet(**{**TINY, "max_epochs": 30, "batch_size": 32}),
                            classes=np.arange(10), missing_label=MISSING_LABEL)
    qs = adapters.CriticSampling(random_state=0)
    y = np.full(N, MISSING_LABEL)
    y[:N_LABELED] = y_true[:N_LABELED]
    clf.fit(X, y)
    queried = []
    for _ in range(3):
        query_idx = qs.query(X=X, y=y, clf=clf, fit_clf=False, batch_size=8)
        assert is_unlabeled(y[query_idx]).all()
        y[query_idx] = y_true[query_idx]
        queried.append(query_idx)
        clf.fit(X, y)
    assert int((~is_unlabeled(y)).sum()) == N_LABELED + 24
    assert len(np.unique(np.concatenate(queried))) == 24
    assert clf.predict(X).shape == (N,) and clf.score(X, y_true) > 0.6  # chance: 0.1


def test_the_nets_inside_scikit_activeml_strategies(data, nets):
    """The other direction: a net wrapped in SklearnClassifier, queried by scikit-activeml."""
    from skactiveml.pool import QueryByCommittee, RandomSampling, UncertaintySampling

    X, _, y = data
    X = X.reshape(N, -1)  # flat rows (n_features_in_ = 64, as the nets were fitted)
    clf = SklearnClassifier(nets[ResNetClassifier], classes=np.arange(10))
    theirs = UncertaintySampling(method="entropy", random_state=0).query(
        X, y, clf, fit_clf=False, batch_size=5)
    ours = adapters.EntropySampling(random_state=0, strategy_params={"selection": "topk"})
    np.testing.assert_array_equal(theirs, ours.query(X, y, clf, fit_clf=False, batch_size=5))
    assert is_unlabeled(y[RandomSampling(random_state=0).query(X, y, batch_size=5)]).all()
    committee = [clf, SklearnClassifier(nets[CriticLossNet], classes=np.arange(10))]
    idx = QueryByCommittee(random_state=0).query(X, y, committee, fit_ensemble=False,
                                                 batch_size=5)
    assert idx.shape == (5,) and is_unlabeled(y[idx]).all()
