"""Tests of the shared mechanism for auxiliary modules (``AuxiliaryModule`` and
the base class's handling of ``auxiliary_modules``), on a toy net declared only
through it and on the three ported nets (CPU, tiny nets)."""

import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.dataset import unpack_data
from skorch.utils import to_device

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.backbones import resnet18
from sklearn_crtcl.callbacks import MilestoneLR
from sklearn_crtcl.heads import tap_dims
from sklearn_crtcl.nets.auxiliary import AuxiliaryModule


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32).reshape(-1, 1, 8, 8), y


class ProbeHead(torch.nn.Module):
    """Predicts from the detached logits whether the prediction is correct."""

    def __init__(self, n_classes, hidden=4):
        super().__init__()
        self.hidden = hidden
        self.body = torch.nn.Sequential(torch.nn.Linear(n_classes, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, 1))

    def forward(self, logits):
        return self.body(logits).reshape(-1)


class ProbeNet(ResNetClassifier):
    """A new net written only through the shared mechanism: the probe is built,
    seeded, optimised, scheduled, restarted, saved and set by the base class."""

    auxiliary_modules = (
        AuxiliaryModule("probe", inputs="_n_classes", seed_offset=5, optimizer=True,
                        milestones="probe_lr_milestones", phase="probe_epochs",
                        switches="the probe's training"),
    )

    def __init__(self, module=resnet18, *, probe=ProbeHead, probe__hidden=4,
                 probe_optimizer=torch.optim.SGD, probe_optimizer__lr=0.5,
                 probe_lr_milestones=None, probe_epochs=None, **kwargs):
        super().__init__(module, probe__hidden=probe__hidden,
                         probe_optimizer__lr=probe_optimizer__lr, **kwargs)
        self.probe = probe
        self.probe_optimizer = probe_optimizer
        self.probe_lr_milestones = probe_lr_milestones
        self.probe_epochs = probe_epochs

    def _n_classes(self):
        return tap_dims(self.module_, ("logits",))[0]

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        x = self.augment_batch(to_device(Xi, self.device))
        y = to_device(yi, self.device)
        logits = self.module_(x)
        loss = self.get_loss(logits, y, X=x, training=True)
        in_phase = self._in_phase("probe")
        self.history.record_batch("probe_phase", in_phase)
        if in_phase:
            target = (logits.detach().argmax(dim=1) == y).float()
            loss = loss + torch.nn.functional.mse_loss(self.probe_(logits.detach()), target)
        loss.backward()
        return {"loss": loss, "y_pred": logits}

    def probe_scores(self, X):
        self.probe_modes_ = []

        def score(module, xb):
            self.probe_modes_.append((module.training, self.probe_.training))
            return self.probe_(module(xb)).numpy()

        return self._inference_batches(X, score)


TINY = dict(module__width=2, batch_size=32, max_epochs=2, device="cpu", random_state=0)


def _params_of(optimizer):
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def _state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- the description
def test_description_names_its_parts():
    aux = AuxiliaryModule("critic", optimizer=True, milestones="critic_lr_milestones",
                          phase="generator_stop_epoch")
    assert (aux.attribute, aux.optimizer_name, aux.optimizer_attribute,
            aux.schedule_callback) == ("critic_", "critic_optimizer", "critic_optimizer_",
                                       "critic_lr_schedule")
    # names starting with "critic" that skorch must not route to the critic
    assert aux.plain_params == ("critic_optimizer", "critic_lr_milestones")
    plain = AuxiliaryModule("teacher", trainable=False)
    assert plain.optimizer_name is None and plain.schedule_callback is None
    assert plain.plain_params == ()


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="_x"), "name"),
    (dict(name="x_"), "name"),
    (dict(name="a__b"), "name"),
    (dict(name="module"), "skorch"),
    (dict(name="x", factory="_f", inputs="_g"), "inputs"),
    (dict(name="x", optimizer=True, trainable=False), "frozen"),
    (dict(name="x", optimizer=True, when="_w"), "optional"),
])
def test_description_rejects_inconsistent_declarations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AuxiliaryModule(**kwargs)


# ---------------------------------------------------------------------- a new net
def test_new_net_gets_a_seeded_module_that_leaves_the_backbone_alone(digits):
    X, y = digits
    state = torch.random.get_rng_state()
    net = ProbeNet(**TINY).fit(X[:96], y[:96])
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert isinstance(net.probe_, ProbeHead) and net.probe_.hidden == 4
    # the probe reads detached logits: the backbone trains exactly like a plain
    # classifier with the same random_state (same init, batch order, augmentation)
    ref = ResNetClassifier(**TINY).fit(X[:96], y[:96])
    assert _state_equal(ref.module_.state_dict(), net.module_.state_dict())
    # the probe's initial weights come from random_state + seed_offset (5)
    fresh = ProbeNet(**TINY, module__in_channels=1, classes=np.arange(10),
                     input_shape=(1, 8, 8)).initialize()
    torch.manual_seed(5)
    expected = ProbeHead(10, hidden=4)
    torch.random.set_rng_state(state)
    assert _state_equal(fresh.probe_.state_dict(), expected.state_dict())
    # ... and are trained afterwards
    assert not _state_equal(net.probe_.state_dict(), expected.state_dict())
    other = ProbeNet(**{**TINY, "random_state": 1}).fit(X[:96], y[:96])
    assert not _state_equal(other.probe_.state_dict(), net.probe_.state_dict())


def test_new_net_gets_its_own_optimizer_schedule_and_restart(digits):
    X, y = digits
    net = ProbeNet(**TINY, warm_start=True, lr_milestones=(1,), lr_gamma=0.5)
    net.fit(X[:64], y[:64])
    assert _params_of(net.optimizer_) == {id(p) for p in net.module_.parameters()}
    assert _params_of(net.probe_optimizer_) == {id(p) for p in net.probe_.parameters()}
    assert isinstance(net.probe_optimizer_, torch.optim.SGD)
    names = [name for name, _ in net.callbacks_]
    assert names.index("lr_schedule") < names.index("probe_lr_schedule") < names.index(
        "print_log")
    # probe_lr_milestones=None follows lr_milestones: decayed at epoch 1
    assert net.probe_optimizer_.param_groups[0]["lr"] == pytest.approx(0.25)
    # a warm-started fit: same modules, new optimizers, the schedule restarts
    module, probe, opt, probe_opt = (net.module_, net.probe_, net.optimizer_,
                                     net.probe_optimizer_)
    before = {k: v.clone() for k, v in net.probe_.state_dict().items()}
    net.set_params(probe_lr_milestones=(5,), max_epochs=1)
    net.fit(X[:64], y[:64])
    assert net.module_ is module and net.probe_ is probe
    assert net.optimizer_ is not opt and net.probe_optimizer_ is not probe_opt
    assert net.probe_optimizer_.param_groups[0]["lr"] == pytest.approx(0.5)
    assert not _state_equal(before, net.probe_.state_dict())  # the new optimizer stepped
    # partial_fit keeps the optimizers
    probe_opt = net.probe_optimizer_
    net.partial_fit(X[:64], y[:64])
    assert net.probe_optimizer_ is probe_opt


@pytest.mark.parametrize("probe_epochs, expected", [
    (None, [True, True]), (1, [True, False]), (0.5, [True, False]), (0, [False, False])])
def test_new_net_phase_counts_from_the_start_of_each_fit(digits, probe_epochs, expected):
    X, y = digits
    net = ProbeNet(**TINY, probe_epochs=probe_epochs, warm_start=True)
    for _ in range(2):
        net.fit(X[:64], y[:64])
        flags = [epoch["batches"][0]["probe_phase"] for epoch in net.history[-2:]]
        assert flags == expected
        assert net.fit_start_epoch_ == len(net.history) - 2


def test_new_net_probe_in_eval_mode_for_inference(digits):
    X, y = digits
    net = ProbeNet(**TINY).fit(X[:64], y[:64])
    assert net.probe_.training  # left in training mode by fit
    scores = net.probe_scores(X[64:100])
    assert scores.shape == (36,)
    assert net.probe_modes_ and all(mode == (False, False) for mode in net.probe_modes_)
    assert net.probe_.training and net.module_.training  # restored afterwards


def test_new_net_set_params_of_the_module_and_its_optimizer(digits):
    X, y = digits
    net = ProbeNet(**TINY).fit(X[:64], y[:64])
    optimizer = net.optimizer_
    net.set_params(probe__hidden=3)  # rebuilds the probe (and, as skorch does, the net)
    assert net.probe_.hidden == 3
    assert _params_of(net.probe_optimizer_) == {id(p) for p in net.probe_.parameters()}
    optimizer = net.optimizer_
    net.set_params(probe_optimizer__lr=0.01)  # in place
    assert net.probe_optimizer_.param_groups[0]["lr"] == 0.01
    assert clone(net).get_params()["probe_optimizer__lr"] == 0.01
    # a new class, with an argument left out: only the probe's optimizer is rebuilt
    net.set_params(probe_optimizer=torch.optim.Adam, probe_optimizer__lr=None)
    assert isinstance(net.probe_optimizer_, torch.optim.Adam)
    assert net.probe_optimizer_.param_groups[0]["lr"] == net.lr  # lr None: the net's
    assert net.optimizer_ is optimizer
    assert net.get_params()["probe_optimizer"] is torch.optim.Adam
    net.set_params(probe_lr_milestones=(1,), probe_epochs=1)  # plain parameters
    assert (net.probe_lr_milestones, net.probe_epochs) == ((1,), 1)
    net.fit(X[:64], y[:64])  # still trains
    assert net.history[-1, "batches", 0, "probe_phase"] is False


def test_new_net_save_load_and_pickle(digits, tmp_path):
    X, y = digits
    net = ProbeNet(**TINY).fit(X[:64], y[:64])
    expected = net.probe_scores(X[64:100])
    net.save_params(f_params=tmp_path / "m.pt", f_probe=tmp_path / "p.pt",
                    f_probe_optimizer=tmp_path / "po.pt")
    other = ProbeNet(**{**TINY, "random_state": 3}).fit(X[:64], y[:64])
    assert not np.array_equal(other.probe_scores(X[64:100]), expected)
    other.load_params(f_params=tmp_path / "m.pt", f_probe=tmp_path / "p.pt",
                      f_probe_optimizer=tmp_path / "po.pt")
    np.testing.assert_array_equal(other.probe_scores(X[64:100]), expected)
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.probe_scores(X[64:100]), expected)


@pytest.mark.parametrize("params, match", [
    (dict(probe_epochs=1.5), "probe_epochs"),
    (dict(probe_epochs="all"), "probe_epochs"),
    (dict(probe_lr_milestones="half"), "probe_lr_milestones"),
    (dict(probe_lr_milestones=(-1,)), "probe_lr_milestones"),
    (dict(probe="a head"), "probe"),
])
def test_new_net_bad_values_are_errors_before_any_work(digits, params, match):
    X, y = digits
    net = ProbeNet(**TINY, **params)
    with pytest.raises((ValueError, TypeError), match=match):
        net.fit(X[:64], y[:64])
    assert not hasattr(net, "history_") or not net.history_


# ---------------------------------------------------------------------- the ported nets
@pytest.mark.parametrize("cls, names", [
    (ResNetClassifier, []),
    (CriticLossNet, ["critic"]),
    (LossPredictionNet, ["loss_head"]),
    (TODNet, ["aux_head", "teacher"]),
])
def test_ported_nets_declare_their_modules(digits, cls, names):
    X, y = digits
    assert [aux.name for aux in cls.auxiliary_modules] == names
    net = cls(**TINY).fit(X[:64], y[:64])
    schedules = [name for name, cb in net.callbacks_ if isinstance(cb, MilestoneLR)]
    assert schedules == ["lr_schedule"] + [aux.schedule_callback
                                           for aux in cls.auxiliary_modules if aux.optimizer]
    owned = set()
    for aux in cls.auxiliary_modules:
        module = getattr(net, aux.attribute)
        params = {id(p) for p in module.parameters()}
        assert params.isdisjoint(_params_of(net.optimizer_)) == (aux.optimizer or
                                                                 not aux.trainable)
        if aux.optimizer:
            assert _params_of(getattr(net, aux.optimizer_attribute)) == params
            owned |= params
        assert all(p.requires_grad == aux.trainable for p in module.parameters())
    # the classifier's optimizer holds the backbone and the modules without their own
    expected = {id(p) for p in net.module_.parameters()}
    if cls is TODNet:
        expected |= {id(p) for p in net.aux_head_.parameters()}
    assert _params_of(net.optimizer_) == expected


def test_crtcl_critic_optimizer_set_params_rebuilds_only_the_critics(digits):
    X, y = digits
    net = CriticLossNet(**TINY, critic__hidden=4).fit(X[:64], y[:64])
    optimizer, steps = net.optimizer_, len(net.optimizer_.state)
    assert steps > 0
    net.set_params(critic_optimizer=torch.optim.SGD)
    assert isinstance(net.critic_optimizer_, torch.optim.SGD)
    assert net.optimizer_ is optimizer and len(optimizer.state) == steps  # momentum kept
    # an argument left out (None) rebuilds the critic's optimizer without it
    net.set_params(critic_optimizer=torch.optim.AdamW, critic_optimizer__weight_decay=None)
    assert net.critic_optimizer_.param_groups[0]["weight_decay"] == 0.01  # AdamW's default
    assert net.get_params()["critic_optimizer__weight_decay"] is None
    net.fit(X[:64], y[:64])


def test_crtcl_critic_lr_milestones_are_validated_before_any_work(digits):
    X, y = digits
    net = CriticLossNet(**TINY, critic_lr_milestones="late")
    with pytest.raises(ValueError, match="critic_lr_milestones"):
        net.fit(X[:64], y[:64])
    assert not net.initialized_


def test_tod_auxiliary_head_exists_only_with_the_auxiliary_consistency(digits):
    X, y = digits
    net = TODNet(**TINY).fit(X[:64], y[:64])
    assert isinstance(net.aux_head_, torch.nn.Linear)
    net.set_params(consistency_head="main").fit(X[:64], y[:64])
    assert not hasattr(net, "aux_head_") and "aux_head" not in net._modules
    assert _params_of(net.optimizer_) == {id(p) for p in net.module_.parameters()}
    buf = io.BytesIO()
    pickle.dump(net, buf)
    assert not hasattr(pickle.loads(buf.getvalue()), "aux_head_")
