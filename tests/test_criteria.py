"""Tests of sklearn_crtcl.criteria (focal loss, IQ losses), of label smoothing
through torch's CrossEntropyLoss, and of temperature scaling through
scikit-learn, with every net of the package."""

import math

import numpy as np
import pytest
import sklearn
import torch
from torch.nn import functional as F

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.criteria import IQ_DIVERGENCES, FocalLoss, IQLoss
from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.metrics import expected_calibration_error, negative_log_likelihood

ALL_NETS = (ResNetClassifier, CriticLossNet, LossPredictionNet, TODNet)


def _random_logits(seed, n=64, k=10, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, k, generator=g, dtype=dtype)
    target = torch.randint(0, k, (n,), generator=g)
    return logits, target


# ---------------------------------------------------------------------------
# Focal loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_gamma_zero_is_cross_entropy(reduction):
    logits, y = _random_logits(0)
    ours = FocalLoss(gamma=0.0, reduction=reduction)(logits, y)
    torch.testing.assert_close(ours, F.cross_entropy(logits, y, reduction=reduction))


def test_focal_gamma_zero_with_alpha_is_weighted_cross_entropy_per_sample():
    logits, y = _random_logits(1, k=4)
    alpha = [0.25, 1.0, 2.0, 0.5]
    ours = FocalLoss(gamma=0.0, alpha=alpha, reduction="none")(logits, y)
    ref = F.cross_entropy(logits, y, weight=torch.tensor(alpha, dtype=logits.dtype),
                          reduction="none")
    torch.testing.assert_close(ours, ref)
    # "mean" is the plain mean over samples (not torch's weight-normalised mean)
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=alpha)(logits, y), ref.mean())


def test_focal_matches_the_formula():
    logits, y = _random_logits(2, k=5)
    alpha = np.array([0.125, 0.25, 0.5, 0.75, 1.0])  # exact in float32 (the buffer)
    p = torch.softmax(logits, dim=1).numpy()[np.arange(len(y)), y.numpy()]
    expected = -alpha[y.numpy()] * (1 - p) ** 2.5 * np.log(p)
    ours = FocalLoss(gamma=2.5, alpha=alpha, reduction="none")(logits, y)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)
    # down-weights confident samples: every term below cross-entropy x alpha
    ce = F.cross_entropy(logits, y, reduction="none").numpy() * alpha[y.numpy()]
    assert np.all(ours.numpy() <= ce + 1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_finite_when_probability_rounds_to_one(gamma):
    logits = torch.tensor([[200.0, 0.0, -5.0], [0.0, 1.0, 2.0]], requires_grad=True)
    loss = FocalLoss(gamma=gamma)(logits, torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(logits.grad[0], torch.zeros(3))


def test_focal_alpha_is_a_buffer_that_follows_the_module():
    crit = FocalLoss(alpha=[1.0, 2.0])
    assert "alpha" in dict(crit.named_buffers())
    assert not list(crit.parameters())  # nothing for skorch's optimizer
    assert crit.double().alpha.dtype == torch.float64


@pytest.mark.parametrize("kwargs, error, match", [
    ({"gamma": -1.0}, ValueError, "gamma"),
    ({"gamma": float("nan")}, ValueError, "gamma"),
    ({"gamma": "2"}, TypeError, "gamma"),
    ({"alpha": 0.25}, TypeError, "per-class weights"),
    ({"alpha": [1.0]}, ValueError, "one weight per class"),
    ({"alpha": [[1.0, 2.0]]}, ValueError, "one weight per class"),
    ({"alpha": [1.0, -2.0]}, ValueError, ">= 0"),
    ({"alpha": [1.0, float("inf")]}, ValueError, "finite"),
    ({"alpha": ["a", "b"]}, TypeError, "numeric"),
    ({"reduction": "avg"}, ValueError, "reduction"),
])
def test_focal_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        FocalLoss(**kwargs)


@pytest.mark.parametrize("crit", [FocalLoss(alpha=[1.0, 1.0, 1.0]), IQLoss("forward_kl")])
def test_criteria_reject_bad_inputs(crit):
    logits, y = _random_logits(3, n=4, k=3)
    name = type(crit).__name__
    with pytest.raises(ValueError, match=f"{name} takes logits of shape"):
        crit(logits[0], y)
    with pytest.raises(ValueError, match="one class index per sample"):
        crit(logits, y[:3])
    with pytest.raises(TypeError, match="integer class indices"):
        crit(logits, y.double())
    with pytest.raises(TypeError, match="torch tensors"):
        crit(logits.numpy(), y)
    if isinstance(crit, FocalLoss):
        with pytest.raises(ValueError, match="3 class weights but the logits have 4"):
            crit(torch.zeros(4, 4), y)
    crit.reduction = "mean "  # set by hand, as LossPredictionNet does
    with pytest.raises(ValueError, match="reduction"):
        crit(logits, y)


# ---------------------------------------------------------------------------
# IQ loss
# ---------------------------------------------------------------------------

#: phi of Table 1 of the IQ-loss poster, transcribed independently of the module.
TABLE_1 = {
    "forward_kl": lambda x: 1 + math.log(x),
    "reverse_kl": lambda x: -math.exp(-x),
    "squared_hellinger": lambda x: x / (1 + x),
    "pearson_chi2": lambda x: x - x ** 2 / 4,
    "total_variation": lambda x: x,
    "jensen_shannon": lambda x: math.log(2 - math.exp(-x)),
}
#: phi' (derivatives of the same formulas).
TABLE_1_SLOPE = {
    "forward_kl": lambda x: 1 / x,
    "reverse_kl": lambda x: math.exp(-x),
    "squared_hellinger": lambda x: 1 / (1 + x) ** 2,
    "pearson_chi2": lambda x: 1 - x / 2,
    "total_variation": lambda x: 1.0,
    "jensen_shannon": lambda x: math.exp(-x) / (2 - math.exp(-x)),
}


def test_the_six_divergences_of_table_1():
    assert set(IQ_DIVERGENCES) == set(TABLE_1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", [0, 1])
def test_total_variation_with_alpha_one_is_cross_entropy(seed, reduction):
    logits, y = _random_logits(seed, n=128, k=10, scale=5.0)
    logits.requires_grad_(True)
    ours = IQLoss("total_variation", alpha=1.0, reduction=reduction)(logits, y)
    ref = F.cross_entropy(logits, y, reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours, = torch.autograd.grad(ours.sum(), logits)
    g_ref, = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref)


def test_total_variation_with_another_alpha_is_not_cross_entropy():
    logits, y = _random_logits(4)
    ours = IQLoss("total_variation", alpha=0.5, reduction="none")(logits, y)
    expected = -logits[torch.arange(len(y)), y] + 0.5 * torch.logsumexp(logits / 0.5, 1)
    torch.testing.assert_close(ours, expected)
    assert not torch.allclose(ours, F.cross_entropy(logits, y, reduction="none"))


@pytest.mark.parametrize("divergence", IQ_DIVERGENCES)
def test_phi_matches_table_1(divergence):
    crit = IQLoss(divergence)
    lower = -math.inf if crit.x0 is None else crit.x0
    points = [x for x in (-0.15, 0.0, 0.7, 0.9, 1.5, 3.0) if x >= lower]
    if crit.x0 is not None:
        points.append(crit.x0 + 1e-3)
    assert len(points) >= 4
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    phi = crit.phi(x)
    np.testing.assert_allclose(phi.detach().numpy(), [TABLE_1[divergence](v) for v in points],
                               rtol=1e-12, atol=1e-12)
    slope, = torch.autograd.grad(phi.sum(), x)
    np.testing.assert_allclose(slope.numpy(), [TABLE_1_SLOPE[divergence](v) for v in points],
                               rtol=1e-10)


@pytest.mark.parametrize("divergence", IQ_DIVERGENCES)
@pytest.mark.parametrize("max_slope", [1.5, 10.0])
def test_phi_is_continued_by_its_tangent_below_x0(divergence, max_slope):
    crit = IQLoss(divergence, max_slope=max_slope)
    if crit.x0 is None:  # total variation: phi' = 1 < max_slope everywhere
        assert divergence == "total_variation"
        return
    x0 = crit.x0
    # x0 is where phi' reaches max_slope ...
    assert TABLE_1_SLOPE[divergence](x0) == pytest.approx(max_slope, rel=1e-12)
    # ... and below it phi is the tangent at x0: finite, slope max_slope
    x = torch.tensor([x0 - 1e6, x0 - 50.0, x0 - 1.0, x0 - 1e-9, x0],
                     dtype=torch.float64, requires_grad=True)
    phi = crit.phi(x)
    expected = TABLE_1[divergence](x0) + max_slope * (x.detach().numpy() - x0)
    np.testing.assert_allclose(phi.detach().numpy(), expected, rtol=1e-12)
    slope, = torch.autograd.grad(phi.sum(), x)
    np.testing.assert_allclose(slope.numpy()[:-1], max_slope)


@pytest.mark.parametrize("divergence", IQ_DIVERGENCES)
@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_iq_loss_formula_and_finite_gradients(divergence, alpha):
    logits, y = _random_logits(5, n=32, k=6, scale=30.0, dtype=torch.float32)
    logits[0] = torch.tensor([-1e4, 1e4, 0.0, 0.0, 0.0, 0.0])  # true class -> far negative
    y[0] = 0
    logits.requires_grad_(True)
    crit = IQLoss(divergence, alpha=alpha, reduction="none")
    loss = crit(logits, y)
    energy_y = logits[torch.arange(len(y)), y]
    expected = -crit.phi(energy_y) + alpha * torch.logsumexp(logits / alpha, dim=1)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    # the gradient on the true class is -phi'(eps_y) + softmax(eps / alpha)_y
    e = energy_y.detach().double()
    q = torch.softmax(logits.detach().double() / alpha, dim=1)[torch.arange(len(y)), y]
    lo = -math.inf if crit.x0 is None else crit.x0
    phi_slope = torch.tensor([TABLE_1_SLOPE[divergence](v) if v >= lo else crit.max_slope
                              for v in e.tolist()], dtype=torch.float64)
    torch.testing.assert_close(logits.grad[torch.arange(len(y)), y].double(), -phi_slope + q,
                               rtol=1e-4, atol=1e-5)


def test_iq_reductions_agree():
    logits, y = _random_logits(6)
    per_sample = IQLoss("jensen_shannon", reduction="none")(logits, y)
    assert per_sample.shape == (64,)
    torch.testing.assert_close(IQLoss("jensen_shannon")(logits, y), per_sample.mean())
    torch.testing.assert_close(IQLoss("jensen_shannon", reduction="sum")(logits, y),
                               per_sample.sum())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"divergence": "kl"}, ValueError, "divergence must be one of"),
    ({"divergence": None}, ValueError, "divergence must be one of"),
    ({"divergence": "forward_kl", "alpha": 0.0}, ValueError, "alpha"),
    ({"divergence": "forward_kl", "alpha": -1.0}, ValueError, "alpha"),
    ({"divergence": "forward_kl", "alpha": True}, TypeError, "alpha"),
    ({"divergence": "forward_kl", "max_slope": 1.0}, ValueError, "max_slope"),
    ({"divergence": "forward_kl", "max_slope": float("inf")}, ValueError, "max_slope"),
    ({"divergence": "forward_kl", "reduction": None}, ValueError, "reduction"),
])
def test_iq_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        IQLoss(**kwargs)


def test_iq_divergence_is_required():
    with pytest.raises(TypeError, match="divergence"):
        IQLoss()


# ---------------------------------------------------------------------------
# Training every net with every criterion
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X_train, X_test, y_train, y_test = load_digits_images(test_size=0.5, random_state=0)
    return X_train[:480], y_train[:480], X_test, y_test


def _net(cls, **params):
    kwargs = dict(module__width=4, max_epochs=10, batch_size=64, random_state=0,
                  device="cpu")
    if cls is CriticLossNet:
        kwargs.update(critic__hidden=8)
    if cls is LossPredictionNet:
        kwargs.update(loss_head__hidden=8)
    kwargs.update(params)
    return cls(**kwargs)


def _accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


@pytest.mark.parametrize("cls", [ResNetClassifier, CriticLossNet])
@pytest.mark.parametrize("divergence", IQ_DIVERGENCES)
def test_every_divergence_trains_resnet_and_critic_nets(digits, cls, divergence):
    X, y, X_test, y_test = digits
    net = _net(cls, criterion=IQLoss, criterion__divergence=divergence).fit(X, y)
    assert isinstance(net.criterion_, IQLoss) and net.criterion_.divergence == divergence
    losses = np.asarray(net.history[:, "train_loss"])
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert _accuracy(net, X_test, y_test) >= 0.8  # chance: 0.1


CRITERIA = {
    "focal": dict(criterion=FocalLoss, criterion__gamma=2.0),
    "label_smoothing": dict(criterion=torch.nn.CrossEntropyLoss,
                            criterion__label_smoothing=0.1),
    "iq_jensen_shannon": dict(criterion=IQLoss, criterion__divergence="jensen_shannon"),
}


def _smoothed_entropy(eps, n_classes):
    """Smallest value of label-smoothed cross-entropy: the smoothed target's entropy."""
    on, off = 1 - eps + eps / n_classes, eps / n_classes
    return -(on * math.log(on) + (n_classes - 1) * off * math.log(off))


@pytest.mark.parametrize("cls, criterion", [
    (cls, criterion) for criterion in sorted(CRITERIA) for cls in ALL_NETS
    # IQ losses with these two: test_every_divergence_trains_resnet_and_critic_nets
    if not (criterion.startswith("iq") and cls in (ResNetClassifier, CriticLossNet))])
def test_every_criterion_trains_every_net(digits, cls, criterion):
    X, y, X_test, y_test = digits
    params = CRITERIA[criterion]
    net = _net(cls, **params).fit(X, y)
    assert type(net.criterion_) is params["criterion"]
    losses = np.asarray(net.history[:, "train_loss"])
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert _accuracy(net, X_test, y_test) >= 0.8
    if criterion == "label_smoothing":
        # the smoothed loss never goes below the smoothed target's entropy (0.50
        # for 10 classes), the cross-entropy of the same net does
        floor = _smoothed_entropy(0.1, 10)
        assert floor == pytest.approx(0.5003, abs=1e-4)
        assert losses.min() >= floor - 1e-3
    if cls is LossPredictionNet:
        # the per-sample losses the head learns to rank are this criterion's
        Xt = torch.as_tensor(X_test[:32])
        yt = torch.as_tensor(y_test[:32])
        logits, true_loss, _, _ = net.compute_losses(Xt, yt, detach_features=True)
        ref = params["criterion"](**{k.split("__")[1]: v for k, v in params.items()
                                     if k != "criterion"}, reduction="none")
        torch.testing.assert_close(true_loss, ref(logits, yt))
        assert net.criterion_.reduction == "mean"  # restored after the call


def test_criterion_parameters_are_routed_and_validated_before_training(digits):
    X, y, _, _ = digits
    net = _net(ResNetClassifier, max_epochs=1, criterion=FocalLoss,
               criterion__alpha=[1.0] * 10, criterion__gamma=0.5).fit(X[:128], y[:128])
    assert net.criterion_.gamma == 0.5 and net.criterion_.alpha.shape == (10,)
    before = {k: v.clone() for k, v in net.module_.state_dict().items()}
    with pytest.raises(ValueError, match="gamma"):
        net.set_params(criterion__gamma=-1.0)
    bad = _net(ResNetClassifier, max_epochs=1, criterion=IQLoss, criterion__divergence="kl")
    with pytest.raises(ValueError, match="divergence must be one of"):
        bad.fit(X[:128], y[:128])
    assert not bad.initialized_  # rejected while setting up, before any epoch
    for k, v in net.module_.state_dict().items():
        torch.testing.assert_close(v, before[k])


# ---------------------------------------------------------------------------
# Temperature scaling with scikit-learn (>= 1.8)
# ---------------------------------------------------------------------------

needs_temperature = pytest.mark.skipif(
    tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 8),
    reason="CalibratedClassifierCV(method='temperature') needs scikit-learn >= 1.8")


@pytest.fixture(scope="module")
def overconfident_nets(digits):
    """Each net fitted long on few samples: over-confident on new data."""
    X, y, _, _ = digits
    return {cls: _net(cls, max_epochs=25, lr_milestones=None).fit(X[:300], y[:300])
            for cls in ALL_NETS}


@needs_temperature
@pytest.mark.parametrize("cls", ALL_NETS)
def test_temperature_scaling_every_net(digits, overconfident_nets, cls):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    net = overconfident_nets[cls]
    _, _, X_held, y_held = digits
    X_cal, y_cal, X_test, y_test = X_held[:400], y_held[:400], X_held[400:], y_held[400:]
    weights = {k: v.clone() for k, v in net.module_.state_dict().items()}

    calibrated = CalibratedClassifierCV(FrozenEstimator(net), method="temperature")
    calibrated.fit(X_cal, y_cal)

    for k, v in net.module_.state_dict().items():  # the fitted net is frozen
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    beta = float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    assert 0.2 < beta < 1.0  # an over-confident net is cooled down (T = 1 / beta > 1)

    p_net, p_cal = net.predict_proba(X_test), calibrated.predict_proba(X_test)
    assert p_cal.shape == (len(X_test), 10) and np.all(p_cal >= 0)
    np.testing.assert_allclose(p_cal.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(calibrated.classes_, net.classes_)
    # a temperature keeps the ranking of the classes: same predictions
    np.testing.assert_array_equal(p_cal.argmax(axis=1), p_net.argmax(axis=1))
    # the calibrated probabilities are softmax(beta * log p)
    log_p = np.log(net.predict_proba(X_test).astype(np.float64) + 1e-12)
    ref = np.exp(beta * log_p - (beta * log_p).max(axis=1, keepdims=True))
    np.testing.assert_allclose(p_cal, ref / ref.sum(axis=1, keepdims=True), atol=1e-5)

    # What temperature scaling guarantees: beta minimises the NLL of the calibration set
    # over all temperatures (T = 1 among them). Held-out NLL and ECE usually fall too, but
    # nothing guarantees it (TODNet's held-out NLL rose by 5e-4 with scikit-learn 1.9.1).
    log_p_cal = np.log(net.predict_proba(X_cal).astype(np.float64) + 1e-12)

    def nll_at(b):
        z = b * log_p_cal
        z = z - z.max(axis=1, keepdims=True)
        log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -log_q[np.arange(len(y_cal)), np.searchsorted(net.classes_, y_cal)].mean()

    best = nll_at(beta)
    np.testing.assert_allclose(negative_log_likelihood(y_cal, calibrated.predict_proba(X_cal)),
                               best, rtol=1e-4)
    for other in (1.0, 0.5 * beta, 0.9 * beta, 0.99 * beta, 1.01 * beta, 1.1 * beta, 2 * beta):
        assert best <= nll_at(other) + 1e-6, other
    assert nll_at(1.0) - best > 1e-3  # and cooling helped these over-confident nets there


@needs_temperature
def test_temperature_scaling_flat_rows_with_input_shape(digits):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    X, y, X_held, y_held = digits
    net = _net(ResNetClassifier, max_epochs=3, input_shape=(1, 8, 8))
    net.fit(X[:300].reshape(300, -1), y[:300])
    flat = X_held.reshape(len(X_held), -1)
    calibrated = CalibratedClassifierCV(FrozenEstimator(net), method="temperature")
    calibrated.fit(flat[:300], y_held[:300])
    assert calibrated.n_features_in_ == 64
    proba = calibrated.predict_proba(flat[300:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1),
                                  net.predict_proba(flat[300:]).argmax(axis=1))


@pytest.mark.parametrize("crit", [FocalLoss(alpha=[0.5] * 10)]
                         + [IQLoss(d) for d in IQ_DIVERGENCES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_upcast_like_torch_losses(crit, dtype):
    logits, y = _random_logits(7, k=10, dtype=torch.float32)
    half = logits.to(dtype).requires_grad_(True)
    loss = crit(half, y)
    assert loss.dtype == torch.float32 == F.cross_entropy(half.float(), y).dtype
    torch.testing.assert_close(loss, crit(half.detach().float(), y))
    loss.backward()
    assert half.grad.dtype == dtype and torch.isfinite(half.grad.float()).all()


def test_focal_alpha_of_the_wrong_length_fails_before_training_and_keeps_the_model():
    from sklearn.datasets import load_digits

    from sklearn_crtcl import ResNetClassifier
    from sklearn_crtcl.criteria import FocalLoss
    X, y = load_digits(return_X_y=True)
    X = (X[:96] / 16).reshape(-1, 1, 8, 8).astype("float32")
    net = ResNetClassifier(criterion=FocalLoss, module__width=2, max_epochs=1, device="cpu",
                           random_state=0).fit(X, y[:96])
    proba = net.predict_proba(X)
    # skorch rebuilds the criterion of an initialised net at set_params: checked there,
    # and again at every fit, before any training step
    with pytest.raises(ValueError, match="3 class weights but the net has 10 classes"):
        net.set_params(criterion__alpha=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 class weights but the net has 10 classes"):
        net.fit(X, y[:96])
    assert len(net.history) == 1
    np.testing.assert_array_equal(net.predict_proba(X), proba)


def test_skorch_scoring_gets_probabilities_with_any_criterion():
    # skorch's "auto" nonlinearity is softmax only for CrossEntropyLoss; the nets
    # make it softmax for the criteria that declare takes_logits (the package's),
    # so a probability scorer works
    from skorch.callbacks import EpochScoring
    from sklearn.datasets import load_digits
    from skorch.dataset import ValidSplit

    from sklearn_crtcl import ResNetClassifier
    from sklearn_crtcl.criteria import FocalLoss
    from sklearn_crtcl.metrics import ece_scorer
    X, y = load_digits(return_X_y=True)
    X = (X[:200] / 16).reshape(-1, 1, 8, 8).astype("float32")
    net = ResNetClassifier(criterion=FocalLoss, module__width=2, max_epochs=1, device="cpu",
                           random_state=0, train_split=ValidSplit(4),
                           callbacks=[("ece", EpochScoring(ece_scorer, name="valid_ece"))])
    net.fit(X, y[:200])
    assert -1 <= net.history[-1, "valid_ece"] < 0  # a scorer: the negated ECE


# ------------------------------------------------------------------ ignore_index
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ignore_index_is_torch_cross_entropys(reduction):
    """Targets equal to ignore_index (default -100, as torch.nn.CrossEntropyLoss) are
    ignored: at gamma=0 FocalLoss is torch's cross-entropy with the same ignore_index
    in every reduction, and the ignored samples get no gradient; IQLoss over a batch
    with ignored samples is IQLoss over the others."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, -100, 3, 1, -100, 2, 2, 0])
    for ignore, y in ((-100, target), (3, torch.where(target == -100, 3, target))):
        z = logits.clone().requires_grad_(True)
        ours = FocalLoss(gamma=0.0, reduction=reduction, ignore_index=ignore)(z, y)
        theirs = torch.nn.CrossEntropyLoss(reduction=reduction, ignore_index=ignore)(logits, y)
        torch.testing.assert_close(ours, theirs)
        FocalLoss(gamma=2.0, reduction=reduction, ignore_index=ignore)(z, y).sum().backward()
        assert torch.all(z.grad[y == ignore] == 0) and torch.any(z.grad[y != ignore] != 0)
    keep = target != -100
    for divergence in ("forward_kl", "jensen_shannon"):
        loss = IQLoss(divergence, reduction=reduction)
        got = loss(logits, target)
        subset = loss(logits[keep], target[keep])
        if reduction == "none":
            torch.testing.assert_close(got[keep], subset)
            assert torch.all(got[~keep] == 0)
        else:
            torch.testing.assert_close(got, subset)
    # a batch of ignored samples only: nan, as torch's mean
    assert torch.isnan(FocalLoss()(logits, torch.full((8,), -100)))


def test_bad_ignore_index_is_a_type_error():
    for bad in (1.5, True, "x", None):
        with pytest.raises(TypeError, match="ignore_index must be an integer"):
            FocalLoss(ignore_index=bad)
        with pytest.raises(TypeError, match="ignore_index must be an integer"):
            IQLoss("forward_kl", ignore_index=bad)
    assert "ignore_index=-100" in repr(FocalLoss()) and "ignore_index=7" in repr(
        IQLoss("forward_kl", ignore_index=7))
