"""Misuse of the nets: a clear error before any work, and nothing the user had is lost."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet

TINY = dict(module__width=2, max_epochs=1, batch_size=32, random_state=0, device="cpu")
NETS = [ResNetClassifier, CriticLossNet, LossPredictionNet, TODNet]


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return (X[:96] / 16).reshape(-1, 1, 8, 8).astype(np.float32), y[:96]


def _state(net):
    return {k: v.clone() for k, v in net.module_.state_dict().items()}


def _assert_unchanged(net, state, proba, X):
    for k, v in net.module_.state_dict().items():
        assert torch.equal(v, state[k]), k
    np.testing.assert_array_equal(net.predict_proba(X), proba)


BAD_PARAMS = [
    ({"max_epochs": 0}, "max_epochs"),
    ({"max_epochs": -1}, "max_epochs"),
    ({"max_epochs": 1.5}, "max_epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"batch_size": 8.0}, "batch_size"),
    ({"lr": -0.1}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr_gamma": 0}, "lr_gamma"),
    ({"lr_milestones": "0.8"}, "lr_milestones"),
    ({"lr_milestones": (0.5, -1)}, "milestones"),
    ({"verbose": -1}, "verbose"),
    ({"warm_start": "yes"}, "warm_start"),
    ({"input_shape": (1, 0, 8)}, "input_shape"),
    ({"augment": "rotate"}, "augment"),
    ({"random_state": "seed"}, "random_state|RandomState"),
    ({"device": "nosuchdevice"}, "device"),
]


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("params, match", BAD_PARAMS, ids=lambda p: str(p))
def test_bad_parameter_is_an_error_before_any_work_and_keeps_the_fitted_model(
        cls, params, match, data):
    X, y = data
    net = cls(**TINY).fit(X, y)
    state, proba, n_epochs = _state(net), net.predict_proba(X), len(net.history)
    original = {k: net.get_params()[k] for k in params}
    net.set_params(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        net.fit(X, y)
    with pytest.raises((ValueError, TypeError), match=match):
        net.partial_fit(X, y)
    assert len(net.history) == n_epochs
    net.set_params(**original)
    _assert_unchanged(net, state, proba, X)
    # a fresh net is not even initialised
    fresh = cls(**{**TINY, **params})
    with pytest.raises((ValueError, TypeError), match=match):
        fresh.fit(X, y)
    assert not fresh.initialized_


def test_cuda_without_cuda_is_an_error(data):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    X, y = data
    with pytest.raises(ValueError, match="CUDA is not available"):
        ResNetClassifier(**{**TINY, "device": "cuda"}).fit(X, y)


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_batch_size_minus_one_is_one_batch_of_all_samples(cls, data):
    # skorch's convention for batch_size=-1: one batch per epoch, in training and inference
    X, y = data
    net = cls(**{**TINY, "batch_size": -1, "max_epochs": 2}).fit(X, y)
    assert [len(h["batches"]) for h in net.history] == [1, 1]
    assert net.history[-1, "batches", 0, "train_batch_size"] == len(X)
    assert net.predict_proba(X).shape == (len(X), 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"X_unlabeled": np.zeros((10, 1, 8, 8), np.float32)}, "X_unlabeled.*CriticLossNet"),
    ({"X_unlabeled": None}, "X_unlabeled"),
    ({"X_unlabled": np.zeros((10, 1, 8, 8), np.float32)}, "X_unlabled"),
])
def test_resnet_classifier_rejects_fit_kwargs_keeping_the_model(kwargs, match, data):
    X, y = data
    net = ResNetClassifier(**TINY).fit(X, y)
    state, proba = _state(net), net.predict_proba(X)
    for method in (net.fit, net.partial_fit):
        with pytest.raises(TypeError, match=match):
            method(X, y, **kwargs)
    _assert_unchanged(net, state, proba, X)


@pytest.mark.parametrize("cls", [CriticLossNet, TODNet], ids=lambda c: c.__name__)
def test_semi_supervised_nets_reject_a_misspelt_x_unlabeled(cls, data):
    X, y = data
    net = cls(**TINY).fit(X, y)
    state, proba = _state(net), net.predict_proba(X)
    with pytest.raises(TypeError, match="X_unlabled"):
        net.fit(X, y, X_unlabled=X)
    _assert_unchanged(net, state, proba, X)


def test_a_failing_set_up_restores_the_fitted_model(data):
    # the optimizer rejects its arguments only when it is built: the net must
    # come back as it was, not half re-initialised
    X, y = data
    net = CriticLossNet(**TINY).fit(X, y)
    state, proba, history = _state(net), net.predict_proba(X), len(net.history)
    critic = {k: v.clone() for k, v in net.critic_.state_dict().items()}
    net.set_params(optimizer__momentum=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        net.fit(X, y)
    assert len(net.history) == history
    _assert_unchanged(net, state, proba, X)
    for k, v in net.critic_.state_dict().items():
        assert torch.equal(v, critic[k])
    # a rejected new data shape does not overwrite what the model was fitted on
    net.set_params(optimizer__momentum=0.9)
    with pytest.raises(ValueError, match="only one class"):
        net.fit(X.repeat(2, axis=2).repeat(2, axis=3), np.zeros(len(X)))
    assert net.input_shape_ == (1, 8, 8) and net.n_features_in_ == 64
    _assert_unchanged(net, state, proba, X)


@pytest.mark.parametrize("cls, method", [
    (ResNetClassifier, "predict"), (ResNetClassifier, "predict_proba"),
    (CriticLossNet, "predict_correctness"), (LossPredictionNet, "predict_loss"),
    (TODNet, "predict"),
])
def test_predict_after_initialize_is_not_fitted(cls, method, data):
    X, _ = data
    net = cls(**TINY).initialize()
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(net, method)(X)


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 4, 4), (1, 7, 32)])
def test_images_below_the_minimum_size_are_rejected(shape, data):
    _, y = data
    X = np.zeros((len(y),) + shape, np.float32)
    with pytest.raises(ValueError, match="at least 8x8"):
        ResNetClassifier(**TINY).fit(X, y)
    flat = X.reshape(len(y), -1)
    with pytest.raises(ValueError, match="at least 8x8"):
        ResNetClassifier(**TINY, input_shape=shape).fit(flat, y)


def test_flat_features_and_other_modules_are_not_size_checked(data):
    X, y = data
    # flat rows without input_shape: the documented fallback for non-image features
    ResNetClassifier(**TINY).fit(X.reshape(len(X), -1)[:, :5], y)
    # a module of the user's own: its own business
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10))
    ResNetClassifier(small, max_epochs=1, device="cpu").fit(X[:, :, :2, :2], y)


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_fit_from_a_read_only_memmap_gives_no_warning(cls, data, tmp_path):
    X, y = data
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_mm = np.load(path, mmap_mode="r")
    kwargs = {"X_unlabeled": X_mm} if cls in (CriticLossNet, TODNet) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = cls(**TINY).fit(X_mm, y, **kwargs)
        net.predict_proba(X_mm)
    assert not X_mm.flags.writeable


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_initialize_with_input_shape_and_classes_is_ready_for_load_params(cls, data, tmp_path):
    # the replacement for the zero-epoch fit the docs used to suggest
    X, y = data
    params = dict(TINY, input_shape=(1, 8, 8))
    net = cls(**params).fit(X.reshape(len(X), -1), y)
    f = tmp_path / "params.pt"
    net.save_params(f_params=f)
    new = cls(**params, classes=net.classes_).initialize()
    assert new.input_shape_ == (1, 8, 8) and new.n_features_in_ == 64
    new.load_params(f_params=f)
    np.testing.assert_array_equal(new.predict_proba(X), net.predict_proba(X))
    # without input_shape the data are unknown: not fitted, with a hint
    with pytest.raises(NotFittedError, match="input_shape and classes"):
        cls(**TINY, classes=net.classes_).initialize().predict(X)


# --------------------------------------------------------------------------- float32 range
@pytest.fixture(scope="module")
def overflowing(data):
    """The digits as float64 with one value beyond float32's range in row 5."""
    X, _ = data
    X64 = X.astype(np.float64)
    X64[5, 0, 3, 3] = 1e39  # finite as float64, infinite as float32
    with np.errstate(over="ignore"):
        assert np.isfinite(X64).all() and not np.isfinite(X64.astype(np.float32)).all()
    return X64


@pytest.mark.parametrize("cls", NETS)
def test_fit_refuses_values_beyond_float32_range(cls, data, overflowing):
    _, y = data
    net = cls(**TINY)
    with pytest.raises(ValueError, match=r"X contains a value beyond float32's range.*"
                                         r"first at sample 5"):
        net.fit(overflowing, y)
    assert not net.initialized_


def test_unlabeled_images_beyond_float32_range_are_refused(data, overflowing):
    X, y = data
    with pytest.raises(ValueError, match="X_unlabeled contains a value beyond float32's range"):
        CriticLossNet(**TINY).fit(X[:48], y[:48], X_unlabeled=overflowing)


def test_inference_and_strategies_refuse_values_beyond_float32_range(data, overflowing,
                                                                     tmp_path):
    from sklearn_crtcl.query import badge_sampling, entropy_sampling, random_sampling

    X, y = data
    net = ResNetClassifier(**TINY).fit(X, y)
    path = tmp_path / "pool.npy"
    np.save(path, overflowing)
    memmap = np.load(path, mmap_mode="r")  # read chunk by chunk, cast per chunk
    for pool in (overflowing, memmap):
        with pytest.raises(ValueError, match="beyond float32's range"):
            net.predict_proba(pool)
        for strategy in (badge_sampling, entropy_sampling, random_sampling):
            with pytest.raises(ValueError, match="beyond float32's range"):
                strategy(net, pool, n_instances=3, random_state=0)
    # a float32 pool of the same values minus the overflow is accepted
    fine = overflowing.copy()
    fine[5, 0, 3, 3] = 3e38
    assert net.predict_proba(fine).shape == (len(fine), 10)


@pytest.mark.parametrize("with_net", [True, False])
def test_random_sampling_refuses_a_pool_with_nan(data, with_net):
    from sklearn_crtcl.query import random_sampling

    X, y = data
    pool = X.copy()
    pool[7, 0, 0, 0] = np.nan
    clf = ResNetClassifier(**TINY).fit(X, y) if with_net else None
    with pytest.raises(ValueError, match=r"X_pool contains NaN \(first at sample 7\)"):
        random_sampling(clf, pool, n_instances=2, random_state=0)
    assert np.isnan(pool[7, 0, 0, 0])  # the user's pool is left as it was
