"""Tests of the fast-training parameters of every net: ``precision`` (autocast
and gradient scaling), ``channels_last``, skorch's ``compile`` and the training
arrays moved to the device once per fit.

The CPU tests run everywhere (CPU autocast supports bfloat16 and float16); the
tests marked ``gpu`` need CUDA (``tests/conftest.py`` skips them without it).
"""

import pickle

import os
import platform
import traceback

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback, GradientNormClipping

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.nets.base import PRECISIONS

NETS = {
    "resnet": (ResNetClassifier, {}, False),
    "crtcl": (CriticLossNet, dict(critic__hidden=4, generator_stop_epoch=None), True),
    "lossnet": (LossPredictionNet, dict(loss_head__hidden=4, epoch_loss=None), False),
    "tod": (TODNet, {}, True),
    "tod_main": (TODNet, dict(consistency_head="main"), True),
}
#: the auxiliary modules whose forward passes run in training
AUX = {"resnet": (), "crtcl": ("critic_",), "lossnet": ("loss_head_",),
       "tod": ("aux_head_", "teacher_"), "tod_main": ("teacher_",)}
TINY = dict(module__width=4, batch_size=64, max_epochs=1, lr=0.05, device="cpu",
            random_state=0, augment="flip+crop")
LOSSES = ("train_loss", "critic_loss", "generator_loss", "ranking_loss", "consistency_loss")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    # three channels, so that the channels-last layout differs from the default one
    return np.repeat(X, 3, axis=1), y


def _net(name, **params):
    cls, extra, _ = NETS[name]
    return cls(**{**TINY, **extra, **params})


def _fit(net, name, digits, n=128, **fit_kw):
    X, y = digits
    if NETS[name][2]:
        fit_kw.setdefault("X_unlabeled", X[300:556])
    return net.fit(X[:n], y[:n], **fit_kw)


def _optimizers(net):
    return [getattr(net, name + "_") for name in net._optimizers]


class ForwardSpy(Callback):
    """Records, for the backbone and each auxiliary module, the dtype and memory
    layout of the inputs and outputs of its layers, in training and after."""

    def __init__(self, attributes=("module_",)):
        self.attributes = attributes

    def initialize(self):
        self.records = []
        self.handles = []
        self.phase = "before"
        return self

    def remove(self):
        """Remove the hooks (hooked modules do not pickle)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def on_train_begin(self, net, **kwargs):
        self.phase = "train"
        for attr in self.attributes:
            module = getattr(net, attr)
            for layer_name, layer in module.named_modules():
                if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                    self.handles.append(
                        layer.register_forward_hook(self._hook(attr, layer_name)))

    def on_train_end(self, net, **kwargs):
        self.phase = "after"

    def _hook(self, attr, layer_name):
        def hook(layer, inputs, output):
            x = inputs[0]
            self.records.append(dict(
                module=attr, layer=layer_name.replace("_orig_mod.", ""), phase=self.phase,
                out_dtype=output.dtype,
                autocast=torch.is_autocast_enabled(x.device.type),
                channels_last=(x.dim() == 4 and x.shape[1] > 1
                               and x.is_contiguous(memory_format=torch.channels_last)
                               and not x.is_contiguous())))
        return hook

    def where(self, **match):
        return [r for r in self.records if all(r[k] == v for k, v in match.items())]


def _finite_losses(net):
    for key in LOSSES:
        if key not in net.history[-1]:
            continue
        values = np.asarray(net.history[:, key], dtype=float)
        if key == "critic_loss":  # NaN marks an epoch without critic step
            values = values[np.asarray(net.history[:, "critic_steps"]) > 0]
            assert len(values)
        assert np.all(np.isfinite(values)), key
    return True


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("params, match", [
    (dict(precision="fp8"), "precision"),
    (dict(precision="FP16"), "precision"),
    (dict(precision=None), "precision"),
    (dict(precision=16), "precision"),
    (dict(channels_last="yes"), "channels_last"),
    (dict(channels_last=1), "channels_last"),
    (dict(channels_last=None), "channels_last"),
    (dict(compile="yes"), "compile"),
    (dict(compile=None), "compile"),
])
def test_bad_speed_parameters_are_errors_before_any_work(digits, name, params, match):
    net = _net(name, **params)
    with pytest.raises(ValueError, match=match):
        _fit(net, name, digits)
    assert not net.initialized_
    assert not hasattr(net, "classes_")


def test_bad_speed_parameter_leaves_a_fitted_net_intact(digits):
    X, _ = digits
    net = _fit(_net("crtcl"), "crtcl", digits)
    proba = net.predict_proba(X[600:650])
    net.set_params(precision="half")
    with pytest.raises(ValueError, match="precision"):
        _fit(net, "crtcl", digits)
    with pytest.raises(ValueError, match="precision"):
        net.partial_fit(X[:64], digits[1][:64])
    np.testing.assert_array_equal(net.predict_proba(X[600:650]), proba)


def test_speed_parameters_are_estimator_parameters():
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    for cls, _, _ in NETS.values():
        params = cls().get_params()
        assert (params["precision"], params["channels_last"], params["compile"]) == \
            ("auto", "auto", False)


@pytest.mark.parametrize("name", sorted(NETS))
def test_defaults_on_the_cpu_are_fp32_and_the_default_layout(digits, name):
    spy = ForwardSpy(("module_",) + AUX[name])
    default = _fit(_net(name, callbacks=[("spy", spy)]), name, digits)
    assert default.grad_scaler_ is None
    assert spy.where(phase="train")
    assert not spy.where(autocast=True) and not spy.where(channels_last=True)
    assert all(r["out_dtype"] == torch.float32 for r in spy.records)
    assert all(p.is_contiguous() for p in default.module_.parameters())
    # "auto" is exactly fp32 with the default layout: the same model, bit for bit
    explicit = _fit(_net(name, precision="fp32", channels_last=False), name, digits)
    X = digits[0]
    np.testing.assert_array_equal(default.predict_proba(X[600:700]),
                                  explicit.predict_proba(X[600:700]))
    for attr in ("module_",) + AUX[name]:
        a, b = getattr(default, attr).state_dict(), getattr(explicit, attr).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), attr


# ---------------------------------------------------------------------- precision
@pytest.mark.parametrize("name", sorted(NETS))
def test_bf16_autocast_trains_every_net_and_its_auxiliary_modules(digits, name):
    X, _ = digits
    spy = ForwardSpy(("module_",) + AUX[name])
    net = _net(name, precision="bf16", callbacks=[("spy", spy)])
    _fit(net, name, digits)
    # every training forward, of the backbone and of each auxiliary module, in bf16
    for attr in ("module_",) + AUX[name]:
        records = spy.where(module=attr, phase="train")
        assert records, attr
        assert all(r["autocast"] and r["out_dtype"] == torch.bfloat16 for r in records), attr
    assert net.grad_scaler_ is None  # bf16 needs no loss scaling
    assert _finite_losses(net)
    # weights stay float32, and inference runs without autocast
    for attr in ("module_",) + AUX[name]:
        assert all(p.dtype == torch.float32 for p in getattr(net, attr).parameters())
    proba = net.predict_proba(X[600:700])
    assert proba.dtype == np.float32 and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    after = spy.where(phase="after")
    assert after and not any(r["autocast"] for r in after)
    assert all(r["out_dtype"] == torch.float32 for r in after)
    # it trained, and not like fp32
    fp32 = _fit(_net(name), name, digits)
    assert not np.array_equal(proba, fp32.predict_proba(X[600:700]))
    assert np.abs(proba - fp32.predict_proba(X[600:700])).max() < 0.05


@pytest.mark.parametrize("name", sorted(NETS))
def test_fp16_steps_every_optimizer_through_one_grad_scaler(digits, name, monkeypatch):
    stepped = []
    step = torch.amp.GradScaler.step

    def spy(scaler, optimizer, *args, **kwargs):
        stepped.append((id(scaler), id(optimizer)))
        return step(scaler, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", spy)
    # every backward pass starts from a scaled loss
    scaled, backwards = set(), []
    scale, backward = torch.amp.GradScaler.scale, torch.Tensor.backward

    def scale_spy(scaler, outputs):
        out = scale(scaler, outputs)
        scaled.add(id(out))
        return out

    def backward_spy(tensor, *args, **kwargs):
        backwards.append(id(tensor) in scaled)
        return backward(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", scale_spy)
    monkeypatch.setattr(torch.Tensor, "backward", backward_spy)
    spy_fwd = ForwardSpy(("module_",) + AUX[name])
    net = _fit(_net(name, precision="fp16", warm_start=True,
                    callbacks=[("spy", spy_fwd)]), name, digits)
    scaler = net.grad_scaler_
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    assert {s for s, _ in stepped} == {id(scaler)}
    assert {o for _, o in stepped} == {id(o) for o in _optimizers(net)}
    n_batches = 2
    assert len(backwards) >= n_batches and all(backwards)
    main = sum(o == id(net.optimizer_) for _, o in stepped)
    assert main == n_batches
    if name == "crtcl":
        assert len(stepped) - main == net.history[-1, "critic_steps"]
    assert all(r["out_dtype"] == torch.float16 for r in spy_fwd.where(phase="train"))
    assert _finite_losses(net)
    assert np.all(np.isfinite(net.predict_proba(digits[0][600:700])))
    # the scaler is pickled with the net; a warm-started fit restarts it with the
    # optimizers, partial_fit keeps it
    spy_fwd.remove()
    assert pickle.loads(pickle.dumps(net)).grad_scaler_.get_scale() == scaler.get_scale()
    _fit(net, name, digits)
    assert net.grad_scaler_ is not scaler
    scaler = net.grad_scaler_
    net.partial_fit(digits[0][:64], digits[1][:64])
    assert net.grad_scaler_ is scaler
    net.set_params(precision="fp32").partial_fit(digits[0][:64], digits[1][:64])
    assert net.grad_scaler_ is None


class GradNorm(Callback):
    """Records, per batch, the norm of the gradients ``on_grad_computed`` receives."""

    def __init__(self, key):
        self.key = key

    def on_grad_computed(self, net, named_parameters, **kwargs):
        norms = [p.grad.detach().float().norm() for _, p in named_parameters
                 if p.grad is not None]
        net.history.record_batch(self.key, float(torch.stack(norms).norm()))


def _fit_with_grad_callbacks(digits, name, precision, init_scale=None):
    """One epoch of ``partial_fit`` after ``fit(epochs=0)`` (the same start in every
    precision), recording the gradient norm before and after skorch's
    ``GradientNormClipping(1.0)``; ``init_scale``: a new loss scaler first.
    Returns the net and the backbone's parameters before the epoch."""
    X, y = digits
    net = _net(name, precision=precision, callbacks=[
        ("seen", GradNorm("seen")), ("clip", GradientNormClipping(1.0)),
        ("clipped", GradNorm("clipped"))])
    fit_kw = {"X_unlabeled": X[300:556]} if NETS[name][2] else {}
    net.fit(X[:128], y[:128], epochs=0, **fit_kw)
    if init_scale is not None:
        net.grad_scaler_ = torch.amp.GradScaler("cpu", init_scale=init_scale)
    before = {k: p.detach().clone() for k, p in net.module_.named_parameters()}
    net.partial_fit(X[:128], y[:128], **fit_kw)
    return net, before


@pytest.mark.parametrize("name", ["resnet", "crtcl", "lossnet", "tod"])
def test_fp16_gradient_callbacks_see_the_unscaled_gradients(digits, name):
    # the AMP recipe: GradScaler.unscale_ before on_grad_computed, so that skorch's
    # GradientNormClipping clips the true gradient, not 2**8 times it
    fp32, _ = _fit_with_grad_callbacks(digits, name, "fp32")
    fp16, _ = _fit_with_grad_callbacks(digits, name, "fp16", init_scale=2.0 ** 8)
    first = [net.history[0, "batches", 0, "seen"] for net in (fp32, fp16)]
    # same batch, same weights: the fp16 norm is the fp32 one up to fp16 rounding (within
    # 2 % where fp16 is emulated, up to 3.6 % measured on a CPU with native fp16, AVX-512-FP16);
    # the scaled gradient would be 256 times it
    assert first[1] == pytest.approx(first[0], rel=0.1)
    clipped = [b["clipped"] for b in fp16.history[0, "batches"]]
    assert len(clipped) == 2 and all(c <= 1 + 1e-4 for c in clipped)
    assert _finite_losses(fp16)
    # an overflowing scale: each step sees non-finite gradients and is skipped (the
    # weights do not move), the scale backs off, and nothing is unscaled twice
    overflow, before = _fit_with_grad_callbacks(digits, name, "fp16", init_scale=2.0 ** 40)
    assert not np.isfinite([b["seen"] for b in overflow.history[0, "batches"]]).any()
    assert overflow.grad_scaler_.get_scale() < 2.0 ** 40
    for k, p in overflow.module_.named_parameters():
        assert torch.equal(p, before[k]), k


# ---------------------------------------------------------------------- channels last
def _in_child(fn):
    """Run ``fn`` in a forked process, so that a native crash of torch (measured:
    SIGABRT/SIGSEGV in the backward pass of channels-last training on an AMD EPYC
    CPU, torch 2.13.0+cpu) skips the test, saying so, instead of killing the suite;
    a failed assertion still fails it, with the child's traceback."""
    if not hasattr(os, "fork"):
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            fn()
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        os.close(write)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.skip(f"torch crashed natively (signal {os.WTERMSIG(status)}) training "
                    f"channels-last on this CPU ({platform.processor() or 'unknown'}): a "
                    "fault of torch's CPU kernels, outside this package")
    if os.WEXITSTATUS(status) != 0:
        pytest.fail(message, pytrace=False)


@pytest.mark.parametrize("name", sorted(NETS))
def test_channels_last_trains_every_net_close_to_the_default(digits, name):
    _in_child(lambda: _channels_last_trains_close_to_the_default(digits, name))


def _channels_last_trains_close_to_the_default(digits, name):
    X, _ = digits
    spy = ForwardSpy(("module_",) + AUX[name])
    # a small learning rate: rounding differences stay at rounding level
    net = _fit(_net(name, channels_last=True, lr=0.02, callbacks=[("spy", spy)]), name,
               digits)
    convs = [p for p in net.module_.parameters()
             if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1]  # not the 1x1 ones
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last)
                         and not p.is_contiguous() for p in convs)
    if name.startswith("tod"):
        assert all(p.is_contiguous(memory_format=torch.channels_last)
                   for p in net.teacher_.parameters() if p.dim() == 4)
    # every training batch of images (labeled and unlabeled) enters channels-last
    stems = spy.where(module="module_", phase="train", layer="conv1")
    assert len(stems) >= 2 and all(r["channels_last"] for r in stems)
    proba = net.predict_proba(X[600:700])
    assert _finite_losses(net)
    # the same training up to rounding: far closer than a change of augmentation
    tol = 2.5e-4
    default = _fit(_net(name, lr=0.02), name, digits).predict_proba(X[600:700])
    assert np.abs(proba - default).max() <= tol
    control = _fit(_net(name, lr=0.02, augment="flip"), name, digits).predict_proba(
        X[600:700])
    assert np.abs(control - default).max() > 5 * tol


def test_channels_last_can_be_switched_off_again(digits):
    _in_child(lambda: _channels_last_switched_off(digits))


def _channels_last_switched_off(digits):
    net = _fit(_net("crtcl", channels_last=True, warm_start=True), "crtcl", digits)
    assert not all(p.is_contiguous() for p in net.module_.parameters())
    net.set_params(channels_last=False)
    _fit(net, "crtcl", digits)
    assert all(p.is_contiguous() for p in net.module_.parameters())
    assert all(p.is_contiguous() for p in net.critic_.parameters())


# ---------------------------------------------------------------------- compile
@pytest.mark.parametrize("name", sorted(NETS))
def test_skorch_compile_works_with_every_net_on_the_cpu(digits, name):
    # aot_eager: dynamo tracing and AOT autograd without a C++ toolchain; on a GPU
    # the default inductor backend generates kernels
    X, _ = digits
    net = _fit(_net(name, compile=True, compile__backend="aot_eager"), name, digits)
    for attr in ("module_",) + AUX[name]:
        assert hasattr(getattr(net, attr), "_orig_mod"), attr  # a torch.compile wrapper
    if name in ("crtcl", "lossnet", "tod"):  # the training forward through the taps
        assert vars(net)["_compiled_taps"][0] is net.module_._orig_mod
    eager = _fit(_net(name), name, digits)
    proba = net.predict_proba(X[600:700])
    np.testing.assert_allclose(proba, eager.predict_proba(X[600:700]), rtol=1e-5, atol=1e-6)
    loaded = pickle.loads(pickle.dumps(net))
    assert "_compiled_taps" not in vars(loaded)
    np.testing.assert_array_equal(loaded.predict_proba(X[600:700]), proba)


# ---------------------------------------------------------------------- data on device
class _SeenData(Callback):
    def initialize(self):
        self.X = []
        return self

    def on_train_begin(self, net, X=None, **kwargs):
        self.X.append(X)
        self.unlabeled = getattr(net, "_X_unlabeled", None)


@pytest.mark.parametrize("name", ["resnet", "crtcl", "tod"])
def test_training_arrays_moved_once_keep_batch_order_and_draws(digits, name, monkeypatch):
    X, _ = digits
    seen = _SeenData()
    plain = _fit(_net(name, max_epochs=2, callbacks=[("seen", seen)]), name, digits)
    assert isinstance(seen.X[0], np.ndarray)  # on the CPU nothing is copied
    # force the once-per-fit move (to the CPU here: a GPU where one is lent)
    monkeypatch.setattr(ResNetClassifier, "_fits_on_device", lambda self, *a, **kw: True)
    seen = _SeenData()
    staged = _fit(_net(name, max_epochs=2, callbacks=[("seen", seen)]), name, digits)
    assert isinstance(seen.X[0], torch.Tensor)
    if NETS[name][2]:
        assert isinstance(seen.unlabeled, torch.Tensor)
    np.testing.assert_array_equal(staged.predict_proba(X[600:700]),
                                  plain.predict_proba(X[600:700]))


@pytest.mark.parametrize("name", ["crtcl", "tod"])
def test_unlabeled_rows_moved_once_are_those_rows(digits, name, monkeypatch):
    """With unlabeled_indices, only those rows go to the device, and training is
    the training on X_unlabeled[rows]."""
    X, _ = digits
    rows = np.arange(900, 300, -3)  # 200 rows, not sorted
    plain = _fit(_net(name, max_epochs=2), name, digits, X_unlabeled=X[rows])
    monkeypatch.setattr(ResNetClassifier, "_fits_on_device", lambda self, *a, **kw: True)
    seen = _SeenData()
    staged = _fit(_net(name, max_epochs=2, callbacks=[("seen", seen)]), name, digits,
                  X_unlabeled=X, unlabeled_indices=rows)
    assert isinstance(seen.unlabeled, torch.Tensor) and len(seen.unlabeled) == len(rows)
    np.testing.assert_array_equal(staged.predict_proba(X[600:700]),
                                  plain.predict_proba(X[600:700]))


# ---------------------------------------------------------------------- on a GPU
GPU = dict(TINY, device="cuda", max_epochs=2)


def _gpu_net(name, **params):
    cls, extra, _ = NETS[name]
    return cls(**{**GPU, **extra, **params})


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_gpu_precision_trains_every_net(digits, name, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    X, _ = digits
    spy = ForwardSpy(("module_",) + AUX[name])
    net = _fit(_gpu_net(name, precision=precision, callbacks=[("spy", spy)]), name, digits)
    expected = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                "auto": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16}
    dtype = expected[precision]
    for attr in ("module_",) + AUX[name]:
        records = spy.where(module=attr, phase="train")
        assert records and all(r["out_dtype"] == dtype for r in records), attr
    assert (net.grad_scaler_ is not None) == (dtype == torch.float16)
    # "auto" turns channels-last on with reduced precision
    on = precision != "fp32"
    stems = spy.where(module="module_", phase="train", layer="conv1")
    assert stems and all(r["channels_last"] == on for r in stems)
    assert _finite_losses(net)
    proba = net.predict_proba(X[600:700])
    assert np.all(np.isfinite(proba)) and proba.dtype == np.float32


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(NETS))
def test_gpu_channels_last_is_close_to_the_default_layout(digits, name):
    X, _ = digits
    a = _fit(_gpu_net(name, precision="fp32", channels_last=True), name, digits)
    b = _fit(_gpu_net(name, precision="fp32", channels_last=False), name, digits)
    assert np.abs(a.predict_proba(X[600:700]) - b.predict_proba(X[600:700])).max() < 0.02


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(NETS))
def test_gpu_compile_trains_every_net(digits, name):
    X, _ = digits
    net = _fit(_gpu_net(name, compile=True), name, digits)
    for attr in ("module_",) + AUX[name]:
        assert hasattr(getattr(net, attr), "_orig_mod"), attr
    assert _finite_losses(net)
    assert np.all(np.isfinite(net.predict_proba(X[600:700])))


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["resnet", "crtcl", "tod"])
def test_gpu_training_arrays_are_moved_once_per_fit(digits, name):
    seen = _SeenData()
    net = _fit(_gpu_net(name, callbacks=[("seen", seen)]), name, digits)
    assert isinstance(seen.X[0], torch.Tensor) and seen.X[0].is_cuda
    if NETS[name][2]:
        assert seen.unlabeled.is_cuda
    assert net.history[-1, "train_loss"] > 0


def test_nets_pickled_without_the_speed_parameters_get_their_defaults(digits):
    X, _ = digits
    net = _fit(_net("crtcl"), "crtcl", digits)
    state = net.__getstate__()
    del state["precision"], state["channels_last"]  # as pickled by an older version
    old = CriticLossNet.__new__(CriticLossNet)
    old.__setstate__(state)
    assert (old.precision, old.channels_last) == ("auto", "auto")
    np.testing.assert_array_equal(old.predict_proba(X[600:650]), net.predict_proba(X[600:650]))
    old.partial_fit(X[:64], digits[1][:64])
    assert old.grad_scaler_ is None
