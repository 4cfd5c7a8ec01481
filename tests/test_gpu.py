"""The estimators and strategies on a CUDA device, against the same nets on the CPU.

Every test is marked ``gpu``: ``tests/conftest.py`` skips them where CUDA is
not available (CI has no GPU). On a machine with one::

    python -m pytest -m gpu

GPU convolutions are not bit-identical to CPU ones (cuDNN algorithms, TF32),
so CPU/GPU comparisons use tolerances relative to the spread of the values.
The nets train with their GPU defaults here (``precision="auto"``: bf16 or
fp16 autocast, channels-last); inference is float32 on both devices.
``tests/test_precision.py`` has the GPU tests of each precision, of the
memory format, of ``compile=True`` and of the training arrays moved once per
fit.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_crtcl import CriticLossNet, LossPredictionNet, TODNet
from sklearn_crtcl.query import (
    cod_sampling,
    critic_correctness,
    cyclic_output_discrepancy,
    entropy_gradient_norm,
    predicted_loss,
)

pytestmark = pytest.mark.gpu

DEVICE = "cuda"
ON = torch.device(DEVICE).type
TINY = dict(module__width=4, max_epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return X[:400], y[:400], X[400:900], X[900:1000]


def _on(module, device):
    return all(p.device.type == device for p in module.parameters())


def _close(a, b, rel=1e-2):
    """``a`` and ``b`` agree within ``rel`` of the spread of ``a``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.ptp(a), np.abs(a).max(), 1e-12)
    assert np.abs(a - b).max() <= rel * scale, np.abs(a - b).max() / scale


def _cpu_twin(net, data, tmp_path, fit_kwargs=None, prefix="", **files):
    """A CPU net of the same configuration loaded with ``net``'s parameters."""
    X, y = data[0], data[1]
    twin = type(net)(**{**net.get_params(), "device": "cpu", "max_epochs": 1})
    twin.fit(X, y, **(fit_kwargs or {}))
    paths = {key: tmp_path / f"{prefix}{key}.pt" for key in ("f_params", *files)}
    net.save_params(**paths)
    twin.load_params(**paths)
    return twin


def test_crtcl_trains_on_the_gpu_with_unlabeled_data(digits):
    X, y, X_u, X_test = digits
    net = CriticLossNet(device=DEVICE, critic__hidden=8, generator_stop_epoch=None, **TINY)
    net.fit(X, y, X_unlabeled=X_u)
    assert _on(net.module_, ON) and _on(net.critic_, ON)
    assert all(s["exp_avg"].device.type == ON for s in net.critic_optimizer_.state.values())
    assert np.all(np.isfinite(net.history[:, "critic_loss"]))
    assert all(g != 0 for g in net.history[:, "generator_loss"])
    clip = net.clip_value
    assert all(float(p.detach().abs().max()) <= clip for p in net.critic_.parameters())
    proba = net.predict_proba(X_test)
    assert isinstance(proba, np.ndarray) and proba.shape == (100, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    scores = net.predict_correctness(X_test)
    assert isinstance(scores, np.ndarray) and scores.shape == (100,)
    assert np.all(np.isfinite(scores))


def test_gpu_crtcl_loads_into_a_cpu_net_and_pickles(digits, tmp_path):
    X, y, X_u, X_test = digits
    net = CriticLossNet(device=DEVICE, critic__hidden=8, **TINY).fit(X, y, X_unlabeled=X_u)
    twin = _cpu_twin(net, digits, tmp_path, {"X_unlabeled": X_u}, f_critic=None)
    assert _on(twin.module_, "cpu") and _on(twin.critic_, "cpu")
    _close(net.predict_proba(X_test), twin.predict_proba(X_test))
    _close(net.predict_correctness(X_test), twin.predict_correctness(X_test))
    loaded = pickle.loads(pickle.dumps(net))
    assert _on(loaded.critic_, ON)
    np.testing.assert_array_equal(loaded.predict_correctness(X_test),
                                  net.predict_correctness(X_test))


def test_same_random_state_same_result_on_the_gpu(digits):
    X, y, X_u, X_test = digits
    torch.backends.cudnn.deterministic, previous = True, torch.backends.cudnn.deterministic
    try:
        # float32 (precision="auto" would train in bf16 here, where a different
        # order of the atomic additions moves results by bf16 rounding steps)
        runs = [CriticLossNet(device=DEVICE, critic__hidden=8, precision="fp32", **TINY)
                .fit(X, y, X_unlabeled=X_u).predict_proba(X_test) for _ in range(2)]
    finally:
        torch.backends.cudnn.deterministic = previous
    _close(runs[0], runs[1], rel=1e-3)  # a few CUDA backward kernels add atomically


def test_query_scores_on_the_gpu_match_the_cpu(digits, tmp_path):
    X, y, X_u, X_test = digits
    crtcl = CriticLossNet(device=DEVICE, critic__hidden=8, **TINY).fit(X, y)
    twin = _cpu_twin(crtcl, digits, tmp_path, f_critic=None)
    _close(critic_correctness(crtcl, X_u), critic_correctness(twin, X_u))
    _close(entropy_gradient_norm(crtcl, X_u), entropy_gradient_norm(twin, X_u), rel=2e-2)

    lossnet = LossPredictionNet(device=DEVICE, loss_head__hidden=8, **TINY).fit(X, y)
    assert _on(lossnet.loss_head_, ON)
    twin = _cpu_twin(lossnet, digits, tmp_path, prefix="ll_", f_loss_head=None)
    _close(predicted_loss(lossnet, X_u), predicted_loss(twin, X_u))


def test_tod_on_the_gpu(digits):
    X, y, X_u, X_test = digits
    net = TODNet(device=DEVICE, **TINY).fit(X, y, X_unlabeled=X_u)
    assert _on(net.module_, ON) and _on(net.teacher_, ON)
    cod = cyclic_output_discrepancy(net, X_test)
    assert cod.shape == (100,) and np.all(np.isfinite(cod)) and np.all(cod >= 0)
    assert np.any(cod > 0)  # the fit moved the weights from their pre-fit snapshot
    idx = cod_sampling(net, X_test, n_instances=5)
    np.testing.assert_array_equal(idx, np.argsort(-cod, kind="stable")[:5])
