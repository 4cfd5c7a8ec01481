"""skorch's save/load paths keep the whole net: the auxiliary modules, their
optimizers and extra state, and the snapshot of cyclic output discrepancy.

Tested with skorch's own ``save_params`` / ``load_params``, ``Checkpoint``,
``LoadInitState`` and ``TrainEndCheckpoint``, as skorch's docs use them.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback, Checkpoint, LoadInitState, TrainEndCheckpoint

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier
from sklearn_crtcl.backbones import resnet18
from sklearn_crtcl.nets.auxiliary import AuxiliaryModule
from sklearn_crtcl.nets.tod import TODNet
from sklearn_crtcl.query import (cod_sampling, critic_sampling, cyclic_output_discrepancy,
                                 loss_prediction_sampling)

TINY = dict(module__width=4, max_epochs=2, batch_size=16, device="cpu", random_state=0,
            input_shape=(1, 8, 8), classes=np.arange(10))
NETS = (CriticLossNet, LossPredictionNet, TODNet)
FILES = ("f_params", "f_optimizer", "f_history")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    return X[:60], y[:60], X[60:100], X[100:140]


def _fit_kwargs(cls, X_u):
    return {} if cls is LossPredictionNet else {"X_unlabeled": X_u}


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, X_u, _ = digits
    return {cls: cls(**TINY).fit(X, y, **_fit_kwargs(cls, X_u)) for cls in NETS}


def _paths(tmp_path, names=FILES, prefix=""):
    return {name: tmp_path / f"{prefix}{name[2:]}.pt" for name in names}


def _states(net):
    """Every module's state (backbone and auxiliary) and the extra numbers."""
    out = {"module_": net.module_.state_dict()}
    for aux, module in net._present_auxiliary_modules():
        out[aux.attribute] = module.state_dict()
    if isinstance(net, TODNet):
        out["ema_step_"] = net.ema_step_
    return out


def _assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, dict):
            assert value.keys() == b[key].keys(), key
            for k in value:
                torch.testing.assert_close(value[k], b[key][k], rtol=0, atol=0, msg=key + k)
        else:
            assert value == b[key], key


def _optimizer_states(net):
    names = ["optimizer_"] + [aux.optimizer_attribute for aux, _ in
                              net._present_auxiliary_modules() if aux.optimizer]
    return {name: getattr(net, name).state_dict() for name in names}


def _assert_optimizers_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name]["param_groups"] == b[name]["param_groups"], name
        sa, sb = a[name]["state"], b[name]["state"]
        assert sa.keys() == sb.keys(), name
        for i in sa:
            for k in sa[i]:
                torch.testing.assert_close(sa[i][k], sb[i][k], rtol=0, atol=0)


def _scores(net, X_pool):
    """What a restored net must give as the original: probabilities, the
    auxiliary scores and the query strategies that use them."""
    out = {"proba": net.predict_proba(X_pool),
           "cod": cyclic_output_discrepancy(net, X_pool),
           "cod_sampling": cod_sampling(net, X_pool, 5, random_state=0)}
    if isinstance(net, CriticLossNet):
        out["correctness"] = net.predict_correctness(X_pool)
        out["critic_sampling"] = critic_sampling(net, X_pool, 5, random_state=0)
    if isinstance(net, LossPredictionNet):
        out["loss"] = net.predict_loss(X_pool)
        out["loss_prediction_sampling"] = loss_prediction_sampling(net, X_pool, 5,
                                                                   random_state=0)
    if isinstance(net, TODNet):
        with torch.no_grad():
            x = torch.as_tensor(X_pool)
            net.teacher_.eval()
            out["teacher"] = net.teacher_(x).numpy()
            net.aux_head_.eval()
            out["aux_head"] = net.aux_head_(torch.ones(1, net.aux_head_.in_features)).numpy()
    return out


def _assert_scores_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------- save_params / load_params
@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_save_params_load_params_restore_the_whole_net(cls, fitted, digits, tmp_path):
    # skorch's documented round trip: save_params, then initialize() and load_params
    net, X_pool = fitted[cls], digits[2]
    files = _paths(tmp_path)
    net.save_params(**files)
    new = cls(**TINY).initialize()
    new.load_params(**files)
    _assert_states_equal(_states(net), _states(new))
    _assert_optimizers_equal(_optimizer_states(net), _optimizer_states(new))
    assert new.previous_state_dict_.keys() == net.previous_state_dict_.keys()
    _assert_scores_equal(_scores(net, X_pool), _scores(new, X_pool))


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_resumed_training_equals_uninterrupted_training(cls, digits, tmp_path):
    # partial_fit keeps the optimizers' state: a net restored from f_params,
    # f_optimizer and f_history continues exactly as the original
    X, y, X_u, X_pool = digits
    kw = _fit_kwargs(cls, X_u)
    net = cls(**TINY).fit(X, y, **kw)
    files = _paths(tmp_path)
    net.save_params(**files)
    net.partial_fit(X, y, **kw)
    resumed = cls(**TINY).initialize()
    resumed.load_params(**files)
    resumed.partial_fit(X, y, **kw)
    _assert_states_equal(_states(net), _states(resumed))
    _assert_optimizers_equal(_optimizer_states(net), _optimizer_states(resumed))
    assert len(resumed.history) == len(net.history) == 4
    _assert_scores_equal(_scores(net, X_pool), _scores(resumed, X_pool))


# ----------------------------------------------------------------- skorch's callbacks
class _StatesAtTrainBegin(Callback):
    """Records the net's states at on_train_begin (after LoadInitState)."""

    def on_train_begin(self, net, **kwargs):
        self.states_ = copy.deepcopy(_states(net))
        self.optimizers_ = copy.deepcopy(_optimizer_states(net))
        self.history_length_ = len(net.history)


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_checkpoint_and_load_init_state(cls, digits, tmp_path):
    X, y, X_u, X_pool = digits
    kw = _fit_kwargs(cls, X_u)
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))  # every epoch
    net = cls(**TINY, callbacks=[checkpoint]).fit(X, y, **kw)
    assert net.history[-1, "event_cp"]
    # load_params(checkpoint=...): what Checkpoint(load_best=True) and LoadInitState call
    new = cls(**TINY)
    new.load_params(checkpoint=checkpoint)
    _assert_states_equal(_states(net), _states(new))
    _assert_scores_equal(_scores(net, X_pool), _scores(new, X_pool))
    # LoadInitState restores all modules and optimizers when training begins
    recorder = _StatesAtTrainBegin()
    resumed = cls(**TINY, callbacks=[LoadInitState(checkpoint), recorder])
    resumed.fit(X, y, **kw)
    assert recorder.history_length_ == 2
    _assert_states_equal(_states(net), recorder.states_)
    _assert_optimizers_equal(_optimizer_states(net), recorder.optimizers_)
    assert len(resumed.history) == 4


@pytest.mark.parametrize("cls", NETS, ids=lambda c: c.__name__)
def test_train_end_checkpoint(cls, digits, tmp_path):
    X, y, X_u, X_pool = digits
    cb = TrainEndCheckpoint(dirname=str(tmp_path))
    net = cls(**TINY, callbacks=[cb]).fit(X, y, **_fit_kwargs(cls, X_u))
    new = cls(**TINY).initialize()
    new.load_params(checkpoint=cb.checkpoint_)
    _assert_states_equal(_states(net), _states(new))
    _assert_optimizers_equal(_optimizer_states(net), _optimizer_states(new))
    _assert_scores_equal(_scores(net, X_pool), _scores(new, X_pool))


# ----------------------------------------------------------------- file format
def test_params_file_is_a_flat_dict_of_tensors(fitted, tmp_path):
    # what use_safetensors=True can store; the backbone's keys are its own, the
    # other states are prefixed by their attribute
    net = fitted[TODNet]
    f = tmp_path / "params.pt"
    net.save_params(f_params=f)
    state = torch.load(f, weights_only=True)
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    prefixes = ("aux_head_.", "teacher_.", "previous_state_dict_.")
    backbone = {k: v for k, v in state.items() if not k.startswith(prefixes) and k != "ema_step_"}
    module = resnet18(num_classes=10, in_channels=1, width=4)
    module.load_state_dict(backbone)  # a bare backbone loads its own keys
    assert int(state["ema_step_"]) == net.ema_step_ == 6  # 2 epochs of 16+16+28 rows
    # (60 rows: the 12-row tail gives a 1x1 batch norm too few values and is merged)
    assert {k[len("teacher_."):] for k in state if k.startswith("teacher_.")} == set(backbone)


@pytest.mark.parametrize("cls", (CriticLossNet, TODNet), ids=lambda c: c.__name__)
def test_use_safetensors(cls, fitted, digits, tmp_path):
    pytest.importorskip("safetensors")
    net, X_pool = fitted[cls], digits[2]
    f = tmp_path / "params.safetensors"
    net.save_params(f_params=f, use_safetensors=True)
    new = cls(**TINY).initialize()
    new.load_params(f_params=f, use_safetensors=True)
    _assert_states_equal(_states(net), _states(new))
    _assert_scores_equal(_scores(net, X_pool), _scores(new, X_pool))
    checkpoint = Checkpoint(monitor=None, f_optimizer=None, dirname=str(tmp_path / "cp"),
                            use_safetensors=True)
    net2 = clone(net).set_params(callbacks=[checkpoint])
    net2.fit(*digits[:2], **_fit_kwargs(cls, digits[2]))
    new2 = cls(**TINY)
    new2.load_params(checkpoint=checkpoint, use_safetensors=True)
    _assert_scores_equal(_scores(net2, X_pool), _scores(new2, X_pool))


def test_fp16_loss_scaler_is_restored(digits, tmp_path):
    X, y, _, X_pool = digits
    params = {**TINY, "precision": "fp16", "max_epochs": 1}
    net = LossPredictionNet(**params).fit(X, y)
    net.grad_scaler_.update(new_scale=8.0)
    files = _paths(tmp_path)
    net.save_params(**files)
    new = LossPredictionNet(**params).initialize()
    assert new.grad_scaler_.get_scale() != 8.0
    new.load_params(**files)
    assert new.grad_scaler_.state_dict() == net.grad_scaler_.state_dict()
    _assert_optimizers_equal(_optimizer_states(net), _optimizer_states(new))


def test_plain_classifier_keeps_its_snapshot_and_pickles(digits, tmp_path):
    X, y, _, X_pool = digits
    net = ResNetClassifier(**TINY).fit(X, y)
    files = _paths(tmp_path)
    net.save_params(**files)
    new = ResNetClassifier(**TINY).initialize()
    new.load_params(**files)
    _assert_scores_equal(_scores(net, X_pool), _scores(new, X_pool))
    for copy_ in (pickle.loads(pickle.dumps(new)), copy.deepcopy(new)):
        _assert_scores_equal(_scores(net, X_pool), _scores(copy_, X_pool))
    assert not hasattr(clone(new), "previous_state_dict_")


# ----------------------------------------------------------------- earlier files, mismatches
def test_backbone_only_files_of_earlier_versions_and_own_files(fitted, digits, tmp_path):
    # the f_params file of earlier versions held module_.state_dict() only
    net, X_pool = fitted[CriticLossNet], digits[2]
    old = tmp_path / "old_params.pt"
    torch.save(net.module_.state_dict(), old)
    new = CriticLossNet(**TINY).initialize()
    critic_before = copy.deepcopy(new.critic_.state_dict())
    with pytest.warns(UserWarning, match="critic_"):
        new.load_params(f_params=old)
    np.testing.assert_array_equal(new.predict_proba(X_pool), net.predict_proba(X_pool))
    _assert_states_equal({"c": critic_before}, {"c": new.critic_.state_dict()})
    # with the critic's own file (the earlier way): no warning, the whole net
    torch.save(net.critic_.state_dict(), tmp_path / "critic.pt")
    new = CriticLossNet(**TINY).initialize()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new.load_params(f_params=old, f_critic=tmp_path / "critic.pt")
    np.testing.assert_array_equal(new.predict_correctness(X_pool),
                                  net.predict_correctness(X_pool))
    # the f_optimizer file of earlier versions held optimizer_ only
    torch.save(net.optimizer_.state_dict(), tmp_path / "old_optimizer.pt")
    with pytest.warns(UserWarning, match="critic_optimizer_"):
        new.load_params(f_optimizer=tmp_path / "old_optimizer.pt")
    _assert_optimizers_equal({"o": net.optimizer_.state_dict()},
                             {"o": new.optimizer_.state_dict()})
    # no snapshot in the file: cod_sampling says so (no stale snapshot is kept)
    fitted_other = CriticLossNet(**{**TINY, "max_epochs": 1}).fit(*digits[:2])
    with pytest.warns(UserWarning):
        fitted_other.load_params(f_params=old)
    assert not hasattr(fitted_other, "previous_state_dict_")
    with pytest.raises(TypeError, match="previous_state_dict_.*load_params"):
        cod_sampling(fitted_other, X_pool, 5)
    fitted_other.set_params(warm_start=True).fit(*digits[:2])  # a new cycle
    for key, value in net.module_.state_dict().items():  # compares with the loaded weights
        torch.testing.assert_close(fitted_other.previous_state_dict_[key], value)
    # a module's own file, given with a file that holds it too, wins
    other = CriticLossNet(**{**TINY, "random_state": 1}).fit(*digits[:2])
    net.save_params(f_params=tmp_path / "params.pt")
    other.save_params(f_critic=tmp_path / "other_critic.pt")
    new = CriticLossNet(**TINY).initialize()
    new.load_params(f_params=tmp_path / "params.pt", f_critic=tmp_path / "other_critic.pt")
    np.testing.assert_array_equal(new.predict_proba(X_pool), net.predict_proba(X_pool))
    _assert_states_equal({"c": other.critic_.state_dict()}, {"c": new.critic_.state_dict()})


def test_other_auxiliary_modules_are_a_clear_error(fitted, tmp_path):
    net = fitted[TODNet]  # consistency_head="auxiliary": an aux_head_
    net.save_params(f_params=tmp_path / "params.pt")
    new = TODNet(**TINY, consistency_head="main").initialize()
    before = copy.deepcopy(new.module_.state_dict())
    with pytest.raises(ValueError, match="aux_head_"):
        new.load_params(f_params=tmp_path / "params.pt")
    _assert_states_equal({"m": before}, {"m": new.module_.state_dict()})  # nothing loaded
    wider = CriticLossNet(**TINY, critic__hidden=4).initialize()
    fitted_critic = CriticLossNet(**TINY).initialize()
    fitted_critic.save_params(f_params=tmp_path / "crtcl.pt")
    with pytest.raises(ValueError, match="critic_ does not fit"):
        wider.load_params(f_params=tmp_path / "crtcl.pt")


def test_extra_state_names_are_checked():
    assert AuxiliaryModule("teacher", extra_state=("ema_step_",)).extra_state == ("ema_step_",)
    for bad in (("ema_step",), ("_ema_step_",), "ema_step_", (1,)):
        with pytest.raises(ValueError, match="extra_state"):
            AuxiliaryModule("teacher", extra_state=bad)


@pytest.mark.parametrize("other", [dict(input_shape=(3, 8, 8)), dict(classes=np.arange(4)),
                                   dict(input_shape=None, classes=None)])
def test_a_backbone_of_another_shape_names_input_shape_and_classes(digits, tmp_path, other):
    X, y, _, X_pool = digits
    net = ResNetClassifier(**TINY).fit(X, y)
    net.save_params(f_params=tmp_path / "params.pt")
    new = ResNetClassifier(**{**TINY, **other}).initialize()  # built for other data
    before = copy.deepcopy(new.module_.state_dict())
    with pytest.raises(ValueError, match=r"does not fit this ResNetClassifier's.*input_shape"
                                         r".*classes"):
        new.load_params(f_params=tmp_path / "params.pt")
    _assert_states_equal({"m": before}, {"m": new.module_.state_dict()})  # nothing loaded
