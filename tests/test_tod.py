"""Tests of TOD's semi-supervised training (``TODNet``) and of the EMA and
consistency functions."""

import pickle

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.backbones import forward_taps
from sklearn_crtcl.losses import consistency_loss, ema_update, ema_warmup_decay
from sklearn_crtcl.nets.tod import TODNet


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32).reshape(-1, 1, 8, 8), y


TINY = dict(module__width=2, batch_size=32, device="cpu", random_state=0)


def _state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- pure functions
def test_ema_warmup_decay_values():
    assert ema_warmup_decay(0, 0.999) == 0.0
    assert ema_warmup_decay(1, 0.999) == 0.5
    assert ema_warmup_decay(3, 0.999) == 0.75
    assert ema_warmup_decay(2, 0.6) == 0.6  # min(2/3, 0.6)
    assert ema_warmup_decay(10 ** 6, 0.999) == 0.999
    for bad_step in (-1, 1.5, True):
        with pytest.raises(ValueError, match="step"):
            ema_warmup_decay(bad_step, 0.9)
    with pytest.raises(ValueError, match="decay"):
        ema_warmup_decay(1, 1.5)


def test_ema_update_hand_computed_and_buffers_copied():
    teacher = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    student = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        teacher[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        teacher[0].bias.fill_(0.0)
        student[0].weight.copy_(torch.tensor([[3.0, -2.0]]))
        student[0].bias.fill_(10.0)
        student[1].running_mean.fill_(4.0)
    student[1].num_batches_tracked += 7
    out = ema_update(teacher, student, 0.75)
    assert out is teacher
    torch.testing.assert_close(teacher[0].weight, torch.tensor([[1.5, 1.0]]))
    torch.testing.assert_close(teacher[0].bias, torch.tensor([2.5]))
    assert teacher[1].running_mean.item() == 4.0
    assert teacher[1].num_batches_tracked.item() == 7
    # the student is untouched
    torch.testing.assert_close(student[0].weight, torch.tensor([[3.0, -2.0]]))
    # decay 0: the teacher becomes a copy of the student
    ema_update(teacher, student, 0.0)
    assert _state_equal(teacher.state_dict(), student.state_dict())


def test_ema_update_rejects_mismatched_modules_and_bad_decay():
    with pytest.raises(ValueError, match="same parameters"):
        ema_update(torch.nn.Linear(2, 1), torch.nn.Sequential(torch.nn.Linear(2, 1)), 0.5)
    with pytest.raises(ValueError, match="shape"):
        ema_update(torch.nn.Linear(2, 1), torch.nn.Linear(3, 1), 0.5)
    with pytest.raises(ValueError, match="decay"):
        ema_update(torch.nn.Linear(2, 1), torch.nn.Linear(2, 1), -0.1)


def test_consistency_loss_value_and_gradient():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 2.0], [2.0, 0.0]], requires_grad=True)
    loss = consistency_loss(student, teacher)
    assert loss.item() == pytest.approx((1 + 0 + 4 + 1) / 4)
    loss.backward()
    torch.testing.assert_close(student.grad, 2 * (student - teacher).detach() / 4)
    assert teacher.grad is None  # the teacher's outputs are targets
    with pytest.raises(ValueError, match="same shape"):
        consistency_loss(torch.zeros(2, 3), torch.zeros(2, 2))


# ---------------------------------------------------------------------- the net
class _RecordSteps(Callback):
    """Copies of the student's parameters after every training step."""

    def initialize(self):
        self.states = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.states.append({k: v.detach().clone()
                                for k, v in net.module_.named_parameters()})


def test_teacher_is_a_copy_then_an_ema_of_the_student(digits):
    X, y = digits
    rec = _RecordSteps()
    # 96 samples / 32 = 3 optimizer steps; decay capped at 0.6 at the third step
    net = TODNet(**TINY, ema_decay=0.6, max_epochs=1, callbacks=[("rec", rec)])
    net.initialize()
    # before training: an exact copy that is not trained by the optimizer
    assert _state_equal(net.teacher_.state_dict(), net.module_.state_dict())
    assert all(not p.requires_grad for p in net.teacher_.parameters())
    net.fit(X[:96], y[:96], X_unlabeled=X[96:200])
    assert net.ema_step_ == 3 and len(rec.states) == 3
    w1, w2, w3 = rec.states
    teacher = dict(net.teacher_.named_parameters())
    for name in w1:
        t1 = w1[name]                        # step 0: decay 0 -> copy of the student
        t2 = 0.5 * t1 + 0.5 * w2[name]       # step 1: min(1/2, 0.6)
        t3 = 0.6 * t2 + 0.4 * w3[name]       # step 2: min(2/3, 0.6)
        torch.testing.assert_close(teacher[name], t3)
    # buffers (batch-norm statistics) follow the student
    for (name, b_t), (_, b_s) in zip(net.teacher_.named_buffers(),
                                     net.module_.named_buffers()):
        assert torch.equal(b_t, b_s), name
    # the optimizer never sees the teacher, nor does it get gradients
    opt = {id(p) for g in net.optimizer_.param_groups for p in g["params"]}
    assert opt == {id(p) for m in (net.module_, net.aux_head_) for p in m.parameters()}
    assert all(p.grad is None for p in net.teacher_.parameters())


def test_first_step_teacher_equals_student(digits):
    X, y = digits
    net = TODNet(**{**TINY, "batch_size": 64}, max_epochs=1).fit(X[:64], y[:64])
    assert net.ema_step_ == 1
    assert _state_equal(net.teacher_.state_dict(), net.module_.state_dict())


def test_teacher_runs_in_training_mode_as_the_reference(digits):
    X, y = digits
    modes = []
    net = TODNet(**TINY, max_epochs=1).fit(X[:64], y[:64])
    net.teacher_.register_forward_hook(lambda m, i, o: modes.append(m.training))
    # (fit would re-initialise the modules; partial_fit keeps the hooked teacher)
    net.partial_fit(X[:64], y[:64], X_unlabeled=X[64:128])
    assert modes and all(modes)
    assert len(modes) == 2 * 2  # two batches, labeled + unlabeled teacher passes each


def test_unsupervised_weight_zero_trains_like_resnet_classifier(digits):
    X, y = digits
    kw = dict(module__width=2, batch_size=32, device="cpu", random_state=5, max_epochs=2)
    ref = ResNetClassifier(**kw).fit(X[:100], y[:100])
    for X_u in (None, X[100:300]):
        net = TODNet(unsupervised_weight=0, **kw).fit(X[:100], y[:100], X_unlabeled=X_u)
        assert _state_equal(ref.module_.state_dict(), net.module_.state_dict())
        np.testing.assert_array_equal(ref.predict_proba(X[300:350]),
                                      net.predict_proba(X[300:350]))
        assert net.ema_step_ == 2 * 3  # the teacher is still averaged (32+32+36 rows)


def test_consistency_changes_training_and_is_recorded(digits):
    X, y = digits
    kw = dict(TINY, max_epochs=2, unsupervised_weight=1.0)
    labeled_only = TODNet(**kw).fit(X[:100], y[:100])
    semi = TODNet(**kw).fit(X[:100], y[:100], X_unlabeled=X[100:300])
    again = TODNet(**kw).fit(X[:100], y[:100], X_unlabeled=X[100:300])
    assert _state_equal(semi.module_.state_dict(), again.module_.state_dict())  # reproducible
    assert not _state_equal(labeled_only.module_.state_dict(), semi.module_.state_dict())
    ref = ResNetClassifier(**{k: v for k, v in kw.items() if k != "unsupervised_weight"})
    ref.fit(X[:100], y[:100])
    assert not _state_equal(ref.module_.state_dict(), labeled_only.module_.state_dict())
    for net in (labeled_only, semi):
        epoch = net.history[-1]
        values = [b["consistency_loss"] for b in epoch["batches"]]
        sizes = [b["train_batch_size"] for b in epoch["batches"]]
        assert all(v >= 0 for v in values) and max(values) > 0
        assert epoch["consistency_loss"] == pytest.approx(np.average(values, weights=sizes))


def test_consistency_on_the_first_step_is_zero_without_unlabeled_data(digits):
    # at the first step the teacher is the initial student: identical logits
    # (both in training mode on the same batch)
    X, y = digits
    net = TODNet(**{**TINY, "batch_size": 64}, max_epochs=1, consistency_head="main")
    net.fit(X[:64], y[:64])
    assert net.history[0, "batches", 0, "consistency_loss"] == 0.0


def test_auxiliary_head_consistency_is_the_reference_sum_of_two_mse(digits):
    # TOD's reference: MSE(aux head, teacher's classifier) + MSE(classifier, aux head).
    # With lr=0 the weights after fit are those of the first step.
    X, y = digits
    net = TODNet(**{**TINY, "batch_size": 64}, max_epochs=1, lr=0.0).fit(X[:64], y[:64])
    x = torch.as_tensor(X[:64].reshape(-1, 1, 8, 8), dtype=torch.float32)
    net.module_.train(), net.teacher_.train()
    with torch.no_grad():
        taps = forward_taps(net.module_, x)
        aux = net.aux_head_(taps["stage4"].mean(dim=(2, 3)))
        expected = (F.mse_loss(aux, net.teacher_(x)) + F.mse_loss(taps["logits"], aux)).item()
    assert net.history[0, "batches", 0, "consistency_loss"] == pytest.approx(expected, rel=1e-4)
    assert expected > 0


@pytest.mark.parametrize("head", ["auxiliary", "main"])
def test_unsupervised_weight_changes_the_model_with_either_head(digits, head):
    X, y = digits
    kw = dict(TINY, max_epochs=3, consistency_head=head)
    a = TODNet(**kw).fit(X[:100], y[:100], X_unlabeled=X[100:300])
    b = TODNet(**kw, unsupervised_weight=0.0).fit(X[:100], y[:100], X_unlabeled=X[100:300])
    assert np.abs(a.predict_proba(X[300:400]) - b.predict_proba(X[300:400])).max() > 1e-3
    if head == "auxiliary":  # the auxiliary head is trained
        assert a.aux_head_.weight.grad is not None


def test_consistency_head_is_checked(digits):
    X, y = digits
    with pytest.raises(ValueError, match="consistency_head"):
        TODNet(**TINY, consistency_head="second").fit(X[:64], y[:64])


def test_modal_active_learner_with_unlabeled_pool(digits):
    modAL = pytest.importorskip("modAL")
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling

    X, y = digits
    X_pool, y_pool = X[60:400], y[60:400]
    net = TODNet(**TINY, max_epochs=2)
    learner = ActiveLearner(net, query_strategy=uncertainty_sampling,
                            X_training=X[:60], y_training=y[:60], X_unlabeled=X_pool)
    assert learner.estimator.ema_step_ == 2 * 2  # 60 samples: batches of 32 and 28
    assert "consistency_loss" in learner.estimator.history[-1]
    idx, X_query = learner.query(X_pool, n_instances=10)
    assert idx.shape == (10,) and len(np.unique(idx)) == 10
    np.testing.assert_array_equal(X_query, X_pool[idx])
    proba = learner.predict_proba(X_pool)
    assert proba.shape == (len(X_pool), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_bad_X_unlabeled_raises_before_training(digits):
    X, y = digits
    net = TODNet(**TINY, max_epochs=1)
    with pytest.raises(ValueError, match="X_unlabeled"):
        net.fit(X[:40], y[:40], X_unlabeled=X[40:80, :, :4, :4])
    assert not net.initialized_
    X_u = X[40:80].copy()
    X_u[3, 0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="X_unlabeled"):
        net.fit(X[:40], y[:40], X_unlabeled=X_u)
    assert not net.initialized_
    with pytest.raises(ValueError, match="X_unlabeled"):
        net.fit(X[:40], y[:40], X_unlabeled=np.zeros((0, 1, 8, 8), np.float32))
    X_before = X_u.copy()
    with pytest.raises(ValueError):
        net.fit(X[:40], y[:40], X_unlabeled=X_u)
    np.testing.assert_array_equal(X_u, X_before)  # never modified


@pytest.mark.parametrize("params, match", [
    (dict(ema_decay=1.2), "ema_decay"),
    (dict(ema_decay="high"), "ema_decay"),
    (dict(unsupervised_weight=-0.1), "unsupervised_weight"),
    (dict(unlabeled_batch_size=0), "unlabeled_batch_size"),
])
def test_bad_parameters(digits, params, match):
    X, y = digits
    net = TODNet(**TINY, max_epochs=1, **params)
    with pytest.raises(ValueError, match=match):
        net.fit(X[:40], y[:40])
    assert not net.initialized_


def test_unlabeled_batch_size_is_used(digits):
    X, y = digits
    seen = []
    net = TODNet(**TINY, max_epochs=1, unlabeled_batch_size=7).fit(X[:64], y[:64])
    net.teacher_.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    net.partial_fit(X[:64], y[:64], X_unlabeled=X[64:200])
    assert seen == [32, 7, 32, 7]


def test_clone_pickle_and_save_params(digits, tmp_path):
    X, y = digits
    net = TODNet(**TINY, max_epochs=1, ema_decay=0.9, unsupervised_weight=0.2,
                 unlabeled_batch_size=16)
    twin = clone(net)
    assert (twin.ema_decay, twin.unsupervised_weight, twin.unlabeled_batch_size) == \
        (0.9, 0.2, 16)
    net.fit(X[:64], y[:64], X_unlabeled=X[64:128])
    restored = pickle.loads(pickle.dumps(net))
    assert restored.ema_step_ == net.ema_step_
    assert _state_equal(restored.teacher_.state_dict(), net.teacher_.state_dict())
    np.testing.assert_array_equal(restored.predict_proba(X[:20]), net.predict_proba(X[:20]))

    f_teacher = tmp_path / "teacher.pt"
    net.save_params(f_params=tmp_path / "module.pt", f_teacher=f_teacher)
    fresh = TODNet(**{**TINY, "random_state": 1}, max_epochs=1).fit(X[:64], y[:64])
    assert not _state_equal(fresh.teacher_.state_dict(), net.teacher_.state_dict())
    fresh.load_params(f_params=tmp_path / "module.pt", f_teacher=f_teacher)
    assert _state_equal(fresh.teacher_.state_dict(), net.teacher_.state_dict())
    np.testing.assert_array_equal(fresh.predict_proba(X[:20]), net.predict_proba(X[:20]))
    # a clone of the fitted net trains again from scratch
    clone(net).fit(X[:64], y[:64])


def test_warm_start_keeps_teacher_and_step_count(digits):
    X, y = digits
    net = TODNet(**TINY, max_epochs=1, warm_start=True)
    net.fit(X[:64], y[:64])
    teacher = net.teacher_
    net.fit(X[:64], y[:64], X_unlabeled=X[64:128])
    assert net.teacher_ is teacher and net.ema_step_ == 4
    net.set_params(module__width=3)  # re-initialises student and teacher
    assert net.ema_step_ == 0
    assert _state_equal(net.teacher_.state_dict(), net.module_.state_dict())
