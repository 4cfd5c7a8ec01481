"""Tests of the LL4AL loss-prediction training (``LossPredictionNet``) and of
its ranking loss."""

import io
import pickle

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.heads import MultiTapHead
from sklearn_crtcl.losses import loss_prediction_ranking_loss
from sklearn_crtcl.nets.lossnet import LOSS_HEAD_TAPS, LossPredictionNet


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32).reshape(-1, 1, 8, 8), y


TINY = dict(module__width=2, loss_head__hidden=4, batch_size=32, device="cpu",
            random_state=0)


def _state_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


# ---------------------------------------------------------------------- ranking loss
def test_ranking_loss_hand_computed_odd_batch_ties_and_detached_target():
    # B = 5: pairs (0, 4), (1, 3); sample 2 (the middle one) is left out
    pred = torch.tensor([0.5, 2.0, 100.0, 1.0, 0.0], requires_grad=True)
    true = torch.tensor([3.0, 2.0, -50.0, 2.0, 1.0], requires_grad=True)
    loss = loss_prediction_ranking_loss(pred, true, margin=1.0)
    # pair (0, 4): true 3 > 1 -> s=+1, pred diff 0.5 -> max(0, 1 - 0.5) = 0.5
    # pair (1, 3): tie 2 == 2 -> s=-1, pred diff 1.0 -> max(0, 1 + 1.0) = 2.0
    assert loss.item() == pytest.approx((0.5 + 2.0) / 2)
    loss.backward()
    # d/dpred: pair (0,4): -s/P on pred0, +s/P on pred4; pair (1,3): +1/P on pred1, -1/P on pred3
    np.testing.assert_allclose(pred.grad.numpy(), [-0.5, 0.5, 0.0, -0.5, 0.5])
    assert true.grad is None  # the target is detached


def test_ranking_loss_margin_and_satisfied_pairs():
    pred = torch.tensor([5.0, 0.0, 1.0, 1.0])
    true = torch.tensor([2.0, 0.0, 1.0, 1.0])
    # pair (0, 3): s=+1, diff 4 -> 0 ; pair (1, 2): s=-1, diff -1 -> max(0, 2.5 - 1) = 1.5
    assert loss_prediction_ranking_loss(pred, true, margin=2.5).item() == pytest.approx(0.75)
    assert loss_prediction_ranking_loss(pred, true, margin=0.0).item() == pytest.approx(0.0)


def test_ranking_loss_matches_flip_pairing_of_the_reference():
    g = torch.Generator().manual_seed(0)
    pred, true = torch.randn(8, generator=g), torch.randn(8, generator=g)
    half = 4
    d_pred = (pred - pred.flip(0))[:half]
    d_true = (true - true.flip(0))[:half]
    sign = 2 * torch.sign(torch.clamp(d_true, min=0)) - 1
    expected = torch.clamp(1.0 - sign * d_pred, min=0).sum() / half
    assert loss_prediction_ranking_loss(pred, true).item() == pytest.approx(expected.item())


def test_ranking_loss_single_sample_is_zero_and_attached():
    pred = torch.tensor([3.0], requires_grad=True)
    loss = loss_prediction_ranking_loss(pred, torch.tensor([1.0]))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and pred.grad.item() == 0.0


@pytest.mark.parametrize("pred, true, margin, match", [
    (torch.zeros(4), torch.zeros(3), 1.0, "same length"),
    (torch.zeros(4, 1), torch.zeros(4, 1), 1.0, "1-d"),
    (torch.zeros(4), torch.zeros(4), -1.0, "margin"),
    (torch.zeros(4), torch.zeros(4), float("nan"), "margin"),
])
def test_ranking_loss_bad_input(pred, true, margin, match):
    with pytest.raises(ValueError, match=match):
        loss_prediction_ranking_loss(pred, true, margin=margin)


def test_ranking_loss_rejects_arrays():
    with pytest.raises(TypeError, match="torch tensors"):
        loss_prediction_ranking_loss(np.zeros(4), torch.zeros(4))


# ---------------------------------------------------------------------- the net
def test_head_shape_and_optimizers_split(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, module__in_channels=1).initialize()
    assert isinstance(net.loss_head_, MultiTapHead)
    assert net.loss_head_.in_features == (2, 4, 8, 16)  # width 2 x (1, 2, 4, 8)
    assert net.loss_head_.hidden == 4
    backbone = {id(p) for p in net.module_.parameters()}
    head = {id(p) for p in net.loss_head_.parameters()}
    opt = {id(p) for g in net.optimizer_.param_groups for p in g["params"]}
    head_opt = {id(p) for g in net.loss_head_optimizer_.param_groups for p in g["params"]}
    assert opt == backbone and head_opt == head
    group = net.loss_head_optimizer_.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 5e-4)
    assert isinstance(net.loss_head_optimizer_, torch.optim.SGD)


def test_ranking_gradient_reaches_backbone_only_before_epoch_loss(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, module__in_channels=1).initialize()
    xb, yb = torch.from_numpy(X[:16]), torch.from_numpy(y[:16])
    for detach in (False, True):
        net.module_.zero_grad(set_to_none=True)
        net.loss_head_.zero_grad(set_to_none=True)
        _, true_loss, pred_loss, ranking = net.compute_losses(xb, yb, detach_features=detach)
        assert true_loss.shape == pred_loss.shape == (16,)
        ranking.backward()  # the ranking term alone
        head_grad = sum(p.grad.abs().sum().item() for p in net.loss_head_.parameters())
        assert head_grad > 0
        grads = [p.grad for p in net.module_.parameters()]
        stage_grad = sum(g.abs().sum().item() for g in grads if g is not None)
        if detach:
            assert stage_grad == 0.0
        else:
            assert stage_grad > 0
            # through the stage outputs only: the classifier's linear layer gets nothing
            assert net.module_.fc.weight.grad is None


class _RecordDetach(Callback):
    def initialize(self):
        self.flags = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.flags.append(net._stage_outputs_detached())


@pytest.mark.parametrize("epoch_loss, max_epochs, expected", [
    (0.5, 4, [False, False, True, True]),
    (1, 3, [False, True, True]),
    (0, 2, [True, True]),
    (None, 2, [False, False]),
    (0.6, 200, None),
])
def test_epoch_loss_schedule_restarts_each_fit(digits, epoch_loss, max_epochs, expected):
    if expected is None:  # the reference: 120 of 200 epochs
        assert LossPredictionNet._epoch_loss_index(epoch_loss, max_epochs) == 120
        return
    X, y = digits
    rec = _RecordDetach()
    net = LossPredictionNet(**TINY, max_epochs=max_epochs, epoch_loss=epoch_loss,
                            callbacks=[("rec", rec)], warm_start=True)
    net.fit(X[:40], y[:40])
    net.fit(X[:40], y[:40])  # a second active-learning cycle
    assert rec.flags == expected + expected


def test_lambda_zero_trains_like_resnet_classifier(digits):
    X, y = digits
    kw = dict(module__width=2, batch_size=32, device="cpu", random_state=3, max_epochs=2)
    ref = ResNetClassifier(**kw).fit(X[:100], y[:100])
    net = LossPredictionNet(lambda_=0.0, loss_head__hidden=4, **kw).fit(X[:100], y[:100])
    assert _state_equal(ref.module_.state_dict(), net.module_.state_dict())
    np.testing.assert_array_equal(ref.predict_proba(X[100:150]), net.predict_proba(X[100:150]))
    # the head was trained on a zero loss (weight decay only), but it ran
    assert np.isfinite(net.history[-1, "ranking_loss"])


def test_detached_from_start_trains_backbone_like_resnet_classifier(digits):
    X, y = digits
    kw = dict(module__width=2, batch_size=32, device="cpu", random_state=4, max_epochs=2)
    ref = ResNetClassifier(**kw).fit(X[:100], y[:100])
    detached = LossPredictionNet(epoch_loss=0, loss_head__hidden=4, **kw).fit(X[:100], y[:100])
    joint = LossPredictionNet(epoch_loss=None, loss_head__hidden=4, **kw).fit(X[:100], y[:100])
    assert _state_equal(ref.module_.state_dict(), detached.module_.state_dict())
    assert not _state_equal(ref.module_.state_dict(), joint.module_.state_dict())


def test_same_random_state_same_model(digits):
    X, y = digits
    a = LossPredictionNet(**TINY, max_epochs=2).fit(X[:80], y[:80])
    b = LossPredictionNet(**TINY, max_epochs=2).fit(X[:80], y[:80])
    np.testing.assert_array_equal(a.predict_loss(X[80:120]), b.predict_loss(X[80:120]))
    assert _state_equal(a.loss_head_.state_dict(), b.loss_head_.state_dict())


def test_predicted_loss_ranks_true_loss_after_training(digits):
    X, y = digits
    net = LossPredictionNet(module__width=4, loss_head__hidden=16, batch_size=32, max_epochs=8,
                            epoch_loss=None, random_state=0, device="cpu")
    net.fit(X[:300], y[:300])
    pred = net.predict_loss(X[:300])
    assert pred.shape == (300,) and pred.dtype == np.float32
    proba = net.predict_proba(X[:300])
    true_ce = -np.log(proba[np.arange(300), y[:300]])
    rho = spearmanr(pred, true_ce)[0]
    assert rho > 0.3


def test_history_records_ranking_loss_per_batch_and_epoch(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, max_epochs=2).fit(X[:70], y[:70])
    for epoch in net.history:
        batches = epoch["batches"]
        values = [b["ranking_loss"] for b in batches]
        sizes = [b["train_batch_size"] for b in batches]
        assert sizes == [32, 38]  # 70 rows: the 6-row tail is merged (8x8 images)
        assert epoch["ranking_loss"] == pytest.approx(np.average(values, weights=sizes))
        # train_loss = CE + lambda_ * ranking > ranking with lambda_ = 1
        assert all(b["train_loss"] > b["ranking_loss"] for b in batches)


def test_lr_schedule_of_the_head(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, max_epochs=2, lr_milestones=(1,), lr_gamma=0.5,
                            loss_head_optimizer__lr=0.2)
    net.fit(X[:40], y[:40])
    assert net.loss_head_optimizer_.param_groups[0]["lr"] == pytest.approx(0.1)
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(0.05)


def test_predict_loss_before_fit_and_bad_X(digits):
    X, y = digits
    net = LossPredictionNet(**TINY)
    with pytest.raises(Exception, match="not initialized|fit"):
        net.predict_loss(X[:5])
    net.set_params(max_epochs=1).fit(X[:40], y[:40])
    with pytest.raises(ValueError, match="features"):
        net.predict_loss(X[:5, :, :4, :4])
    X_nan = X[:5].copy()
    X_nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.predict_loss(X_nan)


@pytest.mark.parametrize("params, err, match", [
    (dict(lambda_=-1.0), ValueError, "lambda_"),
    (dict(margin=float("inf")), ValueError, "margin"),
    (dict(epoch_loss=1.5), ValueError, "epoch_loss"),
    (dict(epoch_loss=-2), ValueError, "epoch_loss"),
    (dict(epoch_loss="half"), ValueError, "epoch_loss"),
    (dict(loss_head="mlp"), TypeError, "loss_head"),
])
def test_bad_parameters_raise_before_training(digits, params, err, match):
    X, y = digits
    net = LossPredictionNet(**{**TINY, **params}, max_epochs=1)
    with pytest.raises(err, match=match):
        net.fit(X[:40], y[:40])
    assert not net.initialized_


def test_fit_params_are_rejected_before_training(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, max_epochs=1)
    with pytest.raises(TypeError, match="sample_weight"):
        net.fit(X[:40], y[:40], sample_weight=np.ones(40))
    assert not net.initialized_


def test_criterion_without_reduction_is_rejected(digits):
    X, y = digits

    class NoReduction(torch.nn.Module):
        def forward(self, logits, y):
            return torch.nn.functional.cross_entropy(logits, y)

    with pytest.raises(TypeError, match="reduction"):
        LossPredictionNet(**TINY, criterion=NoReduction, max_epochs=1).fit(X[:40], y[:40])


def test_criterion_options_are_used(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, criterion__label_smoothing=0.3, module__in_channels=1)
    net.initialize()
    xb, yb = torch.from_numpy(X[:8]), torch.from_numpy(y[:8])
    logits, true_loss, _, _ = net.compute_losses(xb, yb)
    expected = torch.nn.functional.cross_entropy(logits, yb, reduction="none",
                                                 label_smoothing=0.3)
    torch.testing.assert_close(true_loss, expected)
    assert net.criterion_.reduction == "mean"  # restored


def test_get_params_clone_and_set_params(digits):
    X, y = digits
    net = LossPredictionNet(**TINY, lambda_=0.3, margin=0.5, epoch_loss=2)
    params = net.get_params()
    assert params["lambda_"] == 0.3 and params["margin"] == 0.5 and params["epoch_loss"] == 2
    assert params["loss_head__hidden"] == 4
    twin = clone(net)
    assert (twin.lambda_, twin.margin, twin.epoch_loss) == (0.3, 0.5, 2)
    net.set_params(max_epochs=1).fit(X[:40], y[:40])
    net.set_params(loss_head__hidden=3)  # rebuilds the head
    assert net.loss_head_.hidden == 3
    assert {id(p) for g in net.loss_head_optimizer_.param_groups for p in g["params"]} == \
        {id(p) for p in net.loss_head_.parameters()}
    net.set_params(loss_head_optimizer__lr=0.01)
    assert net.loss_head_optimizer_.param_groups[0]["lr"] == 0.01
    assert clone(net).get_params()["loss_head_optimizer__lr"] == 0.01
    net.set_params(loss_head_optimizer=torch.optim.Adam, loss_head_optimizer__momentum=None,
                   loss_head_optimizer__weight_decay=None)
    assert isinstance(net.loss_head_optimizer_, torch.optim.Adam)
    assert isinstance(net.optimizer_, torch.optim.SGD)
    net.fit(X[:40], y[:40])  # still trains


def test_pickle_and_save_params_round_trip(digits, tmp_path):
    X, y = digits
    net = LossPredictionNet(**TINY, max_epochs=1).fit(X[:60], y[:60])
    expected = net.predict_loss(X[60:90])
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict_loss(X[60:90]), expected)

    f_params, f_head = tmp_path / "module.pt", tmp_path / "head.pt"
    f_opt = io.BytesIO()
    net.save_params(f_params=f_params, f_loss_head=f_head, f_loss_head_optimizer=f_opt)
    fresh = LossPredictionNet(**{**TINY, "random_state": 1}, max_epochs=1).fit(X[:60], y[:60])
    assert not np.array_equal(fresh.predict_loss(X[60:90]), expected)
    f_opt.seek(0)
    fresh.load_params(f_params=f_params, f_loss_head=f_head, f_loss_head_optimizer=f_opt)
    np.testing.assert_array_equal(fresh.predict_loss(X[60:90]), expected)


def test_loss_head_taps_constant():
    assert LOSS_HEAD_TAPS == ("stage1", "stage2", "stage3", "stage4")
