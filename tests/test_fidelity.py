"""Training behaviour that silent bugs would break: batch order, augmentation,
loss weights, warm-started cycles (the fidelity issue)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.augment import AUGMENTATIONS, RandomFlipCrop, check_augment
from sklearn_crtcl.query import cod_sampling, critic_sampling, cyclic_output_discrepancy

TINY = dict(module__width=4, batch_size=32, device="cpu", random_state=0)
NETS = [ResNetClassifier, CriticLossNet, LossPredictionNet, TODNet]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), y


class _Spy:
    """An augmentation that records what it sees and changes nothing."""

    def __init__(self):
        self.batches = []

    def __call__(self, x):
        self.batches.append(x.detach().clone())
        return x


# --------------------------------------------------------------------------- batch order
def test_deterministic_views_are_the_crop_at_fixed_offsets():
    from sklearn_crtcl.augment import VIEWS, hflip, pad_crop, shift
    x = torch.randn(3, 2, 5, 6)
    torch.testing.assert_close(hflip(x), x.flip(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            out = shift(x, dy, dx)
            # content moves dy rows down, dx columns right, zeros come in
            torch.testing.assert_close(out, padded[:, :, 2 - dy:2 - dy + 5, 2 - dx:2 - dx + 6])
            offsets = torch.tensor([[2 - dy], [2 - dx]]).expand(2, 3)
            torch.testing.assert_close(pad_crop(x, 2, offsets), out)
    assert torch.equal(shift(x, 1, 0)[:, :, 0], torch.zeros(3, 2, 6))
    assert torch.equal(shift(x, 1, 0)[:, :, 1:], x[:, :, :-1])
    assert [len(VIEWS[k]) for k in ("flip", "shift", "shift2")] == [1, 4, 4]
    torch.testing.assert_close(VIEWS["shift"][0](x), shift(x, -1, 0))  # up first
    torch.testing.assert_close(VIEWS["shift2"][3](x), shift(x, 0, 2))


@pytest.mark.parametrize("cls", NETS)
def test_class_sorted_data_trains_as_well_as_shuffled_data(digits, cls):
    X, y = digits
    order = np.argsort(y[:300], kind="stable")  # blocks of one class
    mixed = np.random.RandomState(0).permutation(300)

    def accuracy(idx, seed, **params):
        net = cls(**{**TINY, "random_state": seed, "module__width": 8}, max_epochs=12, **params)
        return accuracy_score(y[1000:], net.fit(X[idx], y[idx]).predict(X[1000:]))

    # mean over two seeds: single runs of these small nets vary by about 0.05
    acc_sorted = np.mean([accuracy(order, seed) for seed in (0, 1)])
    acc_mixed = np.mean([accuracy(mixed, seed) for seed in (0, 1)])
    assert acc_mixed > 0.7
    assert acc_sorted > acc_mixed - 0.1
    # without shuffling, the sorted data do not train (the bug this guards against)
    if cls is ResNetClassifier:
        assert accuracy(order, 0, iterator_train__shuffle=False) < acc_mixed - 0.3


def test_each_epoch_draws_a_new_batch_order_reproducibly(digits):
    X, y = digits

    def orders(seed):
        spy = _Spy()
        ResNetClassifier(**{**TINY, "random_state": seed}, max_epochs=2, augment=spy).fit(
            X[:64], y[:64])
        # identify each image by its pixel sum: batches of 32 -> two per epoch
        sums = [b.sum(dim=(1, 2, 3)) for b in spy.batches]
        return torch.cat(sums[:2]), torch.cat(sums[2:])

    first, second = orders(0)
    assert not torch.equal(first, second)  # a new order in epoch 2
    torch.testing.assert_close(torch.sort(first).values, torch.sort(second).values)
    again = orders(0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])  # same seed
    assert not torch.equal(first, orders(1)[0])


# --------------------------------------------------------------------------- augmentation
def test_random_flip_crop_matches_a_per_image_reference():
    x = torch.randn(16, 3, 6, 5)
    torch.manual_seed(0)
    out = RandomFlipCrop(flip=True, padding=2)(x)
    torch.manual_seed(0)
    flips = torch.rand(16) < 0.5
    offsets = torch.randint(0, 5, (2, 16))
    for i in range(16):
        img = x[i].flip(2) if flips[i] else x[i]
        padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
        r, c = int(offsets[0, i]), int(offsets[1, i])
        torch.testing.assert_close(out[i], padded[:, r:r + 6, c:c + 5])
    assert flips.any() and not flips.all()


def test_augmentations_by_name_and_bad_values():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    torch.testing.assert_close(RandomFlipCrop(flip_prob=1.0, padding=0)(x), x.flip(3))
    torch.testing.assert_close(RandomFlipCrop(flip=False, padding=0)(x), x)
    assert check_augment("flip") == RandomFlipCrop(padding=0)
    assert set(AUGMENTATIONS) == {"flip", "crop", "flip+crop"}
    assert check_augment(None) is None
    with pytest.raises(ValueError, match="augment must be"):
        check_augment("rotate")
    with pytest.raises(TypeError, match="augment must be"):
        check_augment(3)
    with pytest.raises(ValueError, match="padding"):
        RandomFlipCrop(padding=-1)
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        RandomFlipCrop()(torch.zeros(3, 4))


@pytest.mark.parametrize("cls", NETS)
def test_augmentation_is_on_in_training_and_off_at_inference(digits, cls):
    X, y = digits
    spy = _Spy()
    semi = cls in (CriticLossNet, TODNet)
    fit_kw = {"X_unlabeled": X[64:200]} if semi else {}
    net = cls(**TINY, max_epochs=2, augment=spy).fit(X[:64], y[:64], **fit_kw)
    n_train = len(spy.batches)
    labeled = 2 * 2  # two epochs of two batches
    # the semi-supervised nets augment their unlabeled batches too (CrtCl in the
    # generator phase: the first 65% of the epochs, here 1 of 2)
    expected = {CriticLossNet: labeled + 2, TODNet: 2 * labeled}.get(cls, labeled)
    assert n_train == expected
    net.predict_proba(X[200:300])
    if cls is CriticLossNet:
        net.predict_correctness(X[200:300])
        critic_sampling(net, X[200:300], n_instances=5)
    if cls is TODNet:
        cod_sampling(net, X[200:300], n_instances=5)
    assert len(spy.batches) == n_train  # nothing at inference or scoring


def test_bad_augment_is_rejected_before_any_work(digits):
    X, y = digits
    net = ResNetClassifier(**TINY, max_epochs=1).fit(X[:64], y[:64])
    before = {k: v.clone() for k, v in net.module_.state_dict().items()}
    net.set_params(augment="mirror", warm_start=True)
    with pytest.raises(ValueError, match="augment"):
        net.fit(X[:64], y[:64])
    for k, v in net.module_.state_dict().items():
        assert torch.equal(v, before[k])


def test_augmentation_changes_training_and_is_reproducible(digits):
    X, y = digits
    kw = dict(TINY, max_epochs=3)
    plain = ResNetClassifier(**kw).fit(X[:128], y[:128]).predict_proba(X[300:400])
    aug = [ResNetClassifier(**kw, augment=RandomFlipCrop(flip=False, padding=1))
           .fit(X[:128], y[:128]).predict_proba(X[300:400]) for _ in range(2)]
    np.testing.assert_array_equal(aug[0], aug[1])
    assert np.abs(aug[0] - plain).max() > 1e-3


# --------------------------------------------------------------------------- loss weights
def test_gamma_changes_the_trained_model_at_the_defaults(digits):
    X, y = digits
    kw = dict(TINY, max_epochs=4)
    a = CriticLossNet(**kw).fit(X[:200], y[:200], X_unlabeled=X[200:800])
    b = CriticLossNet(**kw, gamma=0.0).fit(X[:200], y[:200], X_unlabeled=X[200:800])
    diff = np.abs(a.predict_proba(X[1000:]) - b.predict_proba(X[1000:])).mean()
    assert diff > 0.01


def test_sum_form_generator_gradient_is_batch_size_times_the_mean_form(digits):
    X, y = digits
    net = CriticLossNet(**TINY, max_epochs=1).fit(X[:64], y[:64])
    from sklearn_crtcl.backbones import forward_taps

    net.module_.train()
    taps = forward_taps(net.module_, torch.as_tensor(X[:32]))
    grads = {}
    for reduction in ("sum", "mean"):
        net.set_params(loss_reduction=reduction)
        logits = taps["logits"].detach().requires_grad_(True)
        loss = net._generator_loss(net._critic_inputs(taps), logits)
        grads[reduction], = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(grads["sum"], 32 * grads["mean"])


def test_critic_without_an_output_tap_and_gamma_is_refused_before_work(digits):
    X, y = digits
    net = CriticLossNet(**TINY, max_epochs=1, critic__taps=("stage3", "stage4"))
    with pytest.raises(ValueError, match="'proba' or 'logits'"):
        net.fit(X[:64], y[:64])
    # with gamma=0 there is no generator loss: such a critic is fine
    net.set_params(gamma=0.0).fit(X[:64], y[:64])
    # the logits alone are a path into the classifier too
    CriticLossNet(**TINY, max_epochs=1, critic__taps=("stage4", "logits")).fit(X[:64], y[:64])


def test_critic_auroc_is_recorded_with_a_validation_split(digits):
    from skorch.dataset import ValidSplit

    X, y = digits
    net = CriticLossNet(**TINY, max_epochs=3, train_split=ValidSplit(4, stratified=True))
    net.fit(X[:400], y[:400])
    aurocs = net.history[:, "critic_auroc"]
    assert len(aurocs) == 3 and all(0 <= a <= 1 or np.isnan(a) for a in aurocs)
    assert not np.isnan(aurocs[-1])
    assert "critic_auroc" not in CriticLossNet(**TINY, max_epochs=1).fit(
        X[:64], y[:64]).history[-1]


def test_n_critic_takes_that_many_critic_steps(digits, monkeypatch):
    X, y = digits
    calls = []
    step = torch.optim.AdamW.step

    def counting(self, *a, **k):
        calls.append(1)
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting)
    net = CriticLossNet(**TINY, max_epochs=1, n_critic=3, gamma=0.0).fit(X[:64], y[:64])
    assert len(calls) == 3 * net.history[-1, "critic_steps"] > 0
    with pytest.raises(ValueError, match="n_critic"):
        CriticLossNet(**TINY, n_critic=0).fit(X[:64], y[:64])


# --------------------------------------------------------------------------- cycles
@pytest.mark.parametrize("cls", NETS)
def test_warm_started_fit_continues_the_weights_with_new_optimizers(digits, cls):
    X, y = digits
    net = cls(**TINY, max_epochs=1, warm_start=True).fit(X[:64], y[:64])
    trained = {k: v.clone() for k, v in net.module_.state_dict().items()}
    old_optimizer = net.optimizer_
    net.set_params(max_epochs=1)
    net.fit(X[:96], y[:96])
    assert net.optimizer_ is not old_optimizer  # a new optimizer per cycle
    for k, v in net.previous_state_dict_.items():  # the cycle started from the trained model
        assert torch.equal(v, trained[k]), k
    # partial_fit keeps the optimizer (a continuation, not a new cycle)
    optimizer = net.optimizer_
    net.partial_fit(X[:64], y[:64])
    assert net.optimizer_ is optimizer


def test_cod_after_a_warm_started_cycle_compares_one_models_two_states(digits):
    X, y = digits
    net = TODNet(**TINY, max_epochs=2, warm_start=True).fit(X[:100], y[:100])
    before = ResNetClassifier(**TINY, max_epochs=1).fit(X[:64], y[:64])  # a shell to load into
    net.fit(X[:150], y[:150])
    state_after_cycle_1 = net.previous_state_dict_
    before.module_.load_state_dict(state_after_cycle_1)
    pool = X[300:400]
    expected = np.linalg.norm(net.predict_proba(pool) - before.predict_proba(pool), axis=1)
    np.testing.assert_allclose(cyclic_output_discrepancy(net, pool), expected, rtol=1e-4,
                               atol=1e-6)
    assert expected.max() > 0
