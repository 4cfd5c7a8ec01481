"""The nets follow skorch's own ``NeuralNetClassifier`` conventions where users rely on them.

Each test uses skorch's own classes (its callbacks, ``ValidSplit``, ``Dataset``)
and checks the behaviour a skorch user expects: a user's learning-rate
scheduler wins (and continues over warm-started fits, as in skorch),
``predict_nonlinearity`` is honoured on every path, skorch's history keys and
``fit(..., epochs=N)`` work, torch ``Dataset`` inputs are accepted (and
``predict`` gives labels for a user's skorch ``Dataset``), inference batches
follow ``iterator_valid__batch_size``, the global seeds reproduce a net
without ``random_state``, a warm fit keeps loaded weights, and the surprises
(a validation scorer without validation data, flat image rows without
``input_shape``, a module without ``in_channels``, ``EarlyStopping(load_best=True)``
with auxiliary modules) are errors or warnings before any training.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import Dataset as SkorchDataset
from skorch.dataset import ValidSplit

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.backbones import resnet18
from sklearn_crtcl.criteria import FocalLoss
from sklearn_crtcl.query import cyclic_output_discrepancy, entropy_gradient_norm

BASE = dict(batch_size=32, random_state=0, device="cpu")
TINY = dict(module__width=4, **BASE)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:64] / 16).astype(np.float32).reshape(-1, 1, 8, 8), y[:64]


def _lr(optimizer):
    return optimizer.param_groups[0]["lr"]


# ------------------------------------------------------------------ 2. schedulers
@pytest.mark.parametrize("milestones", [(), (0.8,)])
def test_user_steplr_sets_the_learning_rate(digits, milestones):
    # () : the built-in schedule has nothing to do; (0.8,) (the default): it
    # steps aside for the user's LRScheduler, which acts on optimizer_
    X, y = digits
    net = ResNetClassifier(max_epochs=5, lr=0.1, lr_milestones=milestones,
                           callbacks=[LRScheduler("StepLR", step_size=1, gamma=0.5)],
                           **TINY).fit(X, y)
    assert _lr(net.optimizer_) == pytest.approx(0.1 * 0.5 ** 5)
    assert net.history[:, "event_lr"] == pytest.approx([0.1 * 0.5 ** k for k in range(5)])


def test_user_reduce_lr_on_plateau_with_a_validation_split(digits):
    X, y = digits
    net = ResNetClassifier(max_epochs=6, lr=0.1, train_split=ValidSplit(0.25, random_state=0),
                           callbacks=[LRScheduler("ReduceLROnPlateau", monitor="valid_loss",
                                                  patience=0, factor=0.5)],
                           **TINY).fit(X, y)
    # torch's ReduceLROnPlateau alone, fed the same validation losses
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for loss in net.history[:, "valid_loss"]:
        sched.step(loss)
    assert _lr(opt) < 0.1  # the probe is only a test if the rate was reduced
    assert _lr(net.optimizer_) == pytest.approx(_lr(opt))


class LRSeen(Callback):
    """Records the learning rate of ``optimizer_`` at the start of every epoch."""

    def on_epoch_begin(self, net, **kwargs):
        net.history.record("lr_seen", _lr(net.optimizer_))


@pytest.mark.parametrize("policy", [dict(policy="StepLR", step_size=1, gamma=0.5),
                                    dict(policy="CosineAnnealingLR", T_max=6)])
def test_user_lr_scheduler_continues_over_warm_fits_as_in_skorch(digits, policy):
    # the package builds new optimizers at every warm-started fit (a new cycle of
    # the reference code); they take over the user's schedule, which continues as
    # in a plain skorch net (no restart, and no mix of the two)
    X, y = digits

    def two_warm_fits(net):
        net.fit(X, y)
        first = net.optimizer_
        net.fit(X, y)
        return net.history[:, "lr_seen"], first

    ours, first = two_warm_fits(ResNetClassifier(
        max_epochs=3, lr=0.1, warm_start=True,
        callbacks=[LRScheduler(**policy), LRSeen()], **TINY))
    plain, _ = two_warm_fits(NeuralNetClassifier(
        resnet18, module__width=4, module__num_classes=10, module__in_channels=1,
        criterion=torch.nn.CrossEntropyLoss, max_epochs=3, lr=0.1, batch_size=32,
        train_split=None, warm_start=True, device="cpu", verbose=0,
        callbacks=[LRScheduler(**policy), LRSeen()]))
    assert len(ours) == 6
    np.testing.assert_allclose(ours, plain, rtol=1e-12)


def test_warm_fit_without_a_user_scheduler_restarts_the_built_in_schedule(digits):
    X, y = digits
    net = ResNetClassifier(max_epochs=2, lr=0.1, lr_milestones=(1,), warm_start=True,
                           callbacks=[LRSeen()], **TINY)
    net.fit(X, y).fit(X, y)
    assert net.history[:, "lr_seen"] == pytest.approx([0.1, 0.01, 0.1, 0.01])


class HalveCriticLR(Callback):
    """A user's schedule of the critic's optimizer: halve its rate after each epoch."""

    def on_epoch_end(self, net, **kwargs):
        for group in net.critic_optimizer_.param_groups:
            group["lr"] *= 0.5


def test_empty_milestones_leave_an_auxiliary_optimizer_alone(digits):
    X, y = digits
    net = CriticLossNet(max_epochs=3, lr_milestones=(), critic_lr_milestones=(),
                        critic__hidden=8, critic_optimizer__lr=1e-3,
                        callbacks=[HalveCriticLR()], **TINY).fit(X, y)
    assert _lr(net.critic_optimizer_) == pytest.approx(1e-3 * 0.5 ** 3)


# ------------------------------------------------------------------ 3. predict_nonlinearity
class SoftmaxNet(torch.nn.Module):
    """skorch's NLLLoss convention: the module returns probabilities."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.lin = torch.nn.Linear(in_channels * 64, num_classes)

    def forward(self, x):
        return torch.softmax(self.lin(x.flatten(1)), dim=-1)


def _module_output(net, X):
    net.module_.eval()
    with torch.no_grad():
        return net.module_(torch.as_tensor(X)).numpy()


def test_probability_module_with_nllloss(digits):
    X, y = digits
    net = ResNetClassifier(SoftmaxNet, criterion=torch.nn.NLLLoss, max_epochs=3,
                           lr_milestones=(), **BASE).fit(X, y)
    out = _module_output(net, X)
    np.testing.assert_allclose(net.predict_proba(X), out, rtol=1e-5, atol=1e-6)
    # the same through skorch's Dataset path (its scoring callbacks)
    np.testing.assert_allclose(net.predict_proba(SkorchDataset(X, None)), out,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.predict_proba(X).sum(1), 1, rtol=1e-5)
    # skorch's NeuralNetClassifier.get_loss takes the log of the probabilities
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]


def test_predict_nonlinearity_none_and_callable(digits):
    X, y = digits
    net = ResNetClassifier(max_epochs=1, predict_nonlinearity=None, **TINY).fit(X, y)
    logits = _module_output(net, X)
    np.testing.assert_allclose(net.predict_proba(X), logits, rtol=1e-5, atol=1e-5)
    net.set_params(predict_nonlinearity=torch.sigmoid)
    np.testing.assert_allclose(net.predict_proba(X), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5, atol=1e-6)
    net.set_params(predict_nonlinearity="auto")  # CrossEntropyLoss: the softmax
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(net.predict_proba(X), p / p.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_logit_criteria_give_the_softmax_under_auto(digits):
    X, y = digits
    net = ResNetClassifier(criterion=FocalLoss, max_epochs=1, **TINY).fit(X, y)
    logits = _module_output(net, X)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(net.predict_proba(X), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.predict_proba(SkorchDataset(X, None)), p,
                               rtol=1e-5, atol=1e-6)


def test_query_strategies_follow_predict_proba(digits):
    X, y = digits
    net = ResNetClassifier(SoftmaxNet, criterion=torch.nn.NLLLoss, max_epochs=2,
                           **BASE).fit(X, y)
    previous = ResNetClassifier(SoftmaxNet, criterion=torch.nn.NLLLoss, max_epochs=1,
                                **BASE).fit(X, y)
    previous.module_.load_state_dict(net.previous_state_dict_)
    expected = np.linalg.norm(net.predict_proba(X) - previous.predict_proba(X), axis=1)
    np.testing.assert_allclose(cyclic_output_discrepancy(net, X), expected,
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="returns logits"):
        entropy_gradient_norm(net, X[:4])


# ------------------------------------------------------------------ 4. history keys, epochs=
def test_valid_acc_is_recorded_as_skorch_does(digits):
    X, y = digits
    labels = np.array(list("abcdefghij"))
    split = ValidSplit(0.25, random_state=0)
    net = ResNetClassifier(max_epochs=2, train_split=split, classes=labels, **TINY)
    net.fit(X, labels[y])
    _, valid = split(SkorchDataset(X, y), y)
    rows = np.asarray(valid.indices)
    expected = np.mean(net.predict(X[rows]) == labels[y[rows]])
    assert net.history[-1, "valid_acc"] == pytest.approx(expected)
    assert "valid_acc_best" in net.history[-1]


@pytest.mark.parametrize("make", [
    lambda: ResNetClassifier(max_epochs=5, **TINY),
    lambda: CriticLossNet(max_epochs=5, critic__hidden=8, **TINY),
    lambda: TODNet(max_epochs=5, **TINY),
    lambda: LossPredictionNet(max_epochs=5, **TINY),
])
def test_fit_and_partial_fit_take_skorchs_epochs(digits, make):
    X, y = digits
    extra = {"X_unlabeled": X[:16]} if isinstance(make(), (CriticLossNet, TODNet)) else {}
    net = make().fit(X, y, epochs=2, **extra)
    assert len(net.history) == 2
    net.partial_fit(X, y, epochs=1, **extra)
    assert len(net.history) == 3
    with pytest.raises(ValueError, match="epochs"):
        make().fit(X, y, epochs=-1)


def test_validation_scorer_without_validation_data_is_an_error(digits):
    X, y = digits
    net = ResNetClassifier(max_epochs=1, **TINY, callbacks=[
        ("valid_f1", EpochScoring("f1_macro", on_train=False))])
    with pytest.raises(ValueError, match="train_split"):
        net.fit(X, y)
    assert not net.initialized_  # before any work
    # on the training data it is fine
    ResNetClassifier(max_epochs=1, **TINY, callbacks=[
        ("train_f1", EpochScoring("f1_macro", on_train=True))]).fit(X, y)


# ------------------------------------------------------------------ 6. initialize from input_shape
def test_initialize_builds_from_input_shape(digits):
    net = ResNetClassifier(input_shape=(1, 8, 8), **TINY).initialize()
    assert net.module_.conv1.in_channels == 1


# ------------------------------------------------------------------ 7. module arguments
class PlainModule(torch.nn.Module):
    """A user's module that takes neither in_channels nor num_classes."""

    def __init__(self, hidden=8):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden),
                                       torch.nn.ReLU(), torch.nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)


def test_module_gets_only_the_arguments_it_accepts(digits):
    X, y = digits
    net = ResNetClassifier(PlainModule, module__hidden=6, max_epochs=1, **BASE).fit(X, y)
    assert net.module_.net[1].out_features == 6
    assert net.predict_proba(X).shape == (64, 10)


def test_auxiliary_callable_with_the_wrong_signature_is_named(digits):
    X, y = digits
    with pytest.raises(TypeError, match="critic.*first positional argument"):
        CriticLossNet(critic=lambda: torch.nn.Linear(1, 1), max_epochs=1, **TINY).fit(X, y)


# ------------------------------------------------------------------ 8a. torch Datasets
def test_fit_takes_a_map_style_dataset_of_pairs(digits):
    X, y = digits
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    from_ds = ResNetClassifier(max_epochs=2, **TINY).fit(ds, None)
    from_arrays = ResNetClassifier(max_epochs=2, **TINY).fit(X, y)
    np.testing.assert_allclose(from_ds.predict_proba(ds), from_arrays.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(from_ds.classes_, np.unique(y))
    crt = CriticLossNet(max_epochs=1, critic__hidden=8, **TINY).fit(
        ds, None, X_unlabeled=torch.utils.data.TensorDataset(torch.from_numpy(X[:16])))
    assert crt.predict(ds).shape == (64,)


def test_predict_on_a_users_skorch_dataset_returns_labels(digits):
    # only the datasets skorch builds in fit (its scorers') hold encoded labels
    X, y = digits
    labels = np.array(list("abcdefghij"))
    net = ResNetClassifier(max_epochs=1, **TINY).fit(X, labels[y])
    expected = net.predict(X)
    assert expected.dtype.kind == "U"
    for dataset in (SkorchDataset(X, None), SkorchDataset(X, y),
                    torch.utils.data.Subset(SkorchDataset(X, y), range(len(X)))):
        np.testing.assert_array_equal(net.predict(dataset), expected)
    np.testing.assert_allclose(net.predict_proba(SkorchDataset(X, None)),
                               net.predict_proba(X), rtol=1e-6, atol=1e-7)
    assert net.score(SkorchDataset(X, None), labels[y]) == net.score(X, labels[y])
    assert "_fit_datasets" not in vars(net)  # forgotten when fit ends


# ------------------------------------------------------------------ 8b. inference batches
class ConvBatches:
    """Rows of each forward pass of the backbone's first convolution."""

    def __init__(self, net):
        self.sizes = []
        self.handle = net.module_.conv1.register_forward_hook(
            lambda m, inputs, out: self.sizes.append(len(inputs[0])))

    def pop(self):
        sizes, self.sizes = self.sizes, []
        return sizes


def test_inference_follows_iterator_valid_batch_size(digits):
    X, y = digits  # 64 images
    net = LossPredictionNet(max_epochs=1, iterator_valid__batch_size=48, **TINY).fit(X, y)
    spy = ConvBatches(net)
    list(net.forward_iter(X))  # skorch's own inference iterator
    assert spy.pop() == [48, 16]
    for method in (net.predict_proba, net.predict, net.embed, net.predict_loss):
        method(X)
        assert spy.pop() == [48, 16], method.__name__
    net.embed(X, batch_size=40)  # an explicit batch_size wins
    assert spy.pop() == [40, 24]
    crt = CriticLossNet(max_epochs=1, critic__hidden=8, iterator_valid__batch_size=48,
                        **TINY).fit(X, y)
    spy = ConvBatches(crt)
    crt.predict_correctness(X)
    assert spy.pop() == [48, 16]
    for params, sizes in (({}, [32, 32]),  # the default: batch_size
                          ({"iterator_valid__batch_size": -1}, [64])):  # all at once
        plain = ResNetClassifier(max_epochs=1, **params, **TINY).fit(X, y)
        spy = ConvBatches(plain)
        plain.predict_proba(X)
        assert spy.pop() == sizes


# ------------------------------------------------------------------ 9. seeds, warm starts
@pytest.mark.parametrize("make", [
    lambda: CriticLossNet(max_epochs=2, critic__hidden=8, critic_loss="bce", **TINY),
    lambda: TODNet(max_epochs=2, **TINY),
], ids=["crtcl", "tod"])
def test_global_seeds_reproduce_a_net_without_random_state(digits, make):
    # as with a skorch net: torch.manual_seed (and np.random.seed) before fit; the
    # unlabeled batches and the critic's held-out split (20% for "bce") included
    X, y = digits

    def run():
        torch.manual_seed(0)
        np.random.seed(0)
        net = make().set_params(random_state=None).fit(X, y, X_unlabeled=X[:32])
        return net.predict_proba(X), getattr(net, "critic_split_indices_", None)

    (proba_a, held_a), (proba_b, held_b) = run(), run()
    np.testing.assert_array_equal(proba_a, proba_b)
    if held_a is not None:
        assert len(held_a) == 13
        np.testing.assert_array_equal(held_a, held_b)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_warm_fit_after_load_params_keeps_the_loaded_weights(digits, tmp_path, method):
    # as skorch's: initialize(), load_params, then a warm-started fit continues from
    # the loaded weights (here without classes: fit sets classes_ from the data)
    X, y = digits
    source = ResNetClassifier(max_epochs=2, **TINY).fit(X, y)
    source.save_params(f_params=tmp_path / "params.pt")
    net = ResNetClassifier(max_epochs=1, lr=0.0, warm_start=True, input_shape=(1, 8, 8),
                           **TINY)
    net.initialize()
    net.load_params(f_params=tmp_path / "params.pt")
    getattr(net, method)(X, y)  # lr=0: the weights must stay those loaded
    loaded = dict(source.module_.named_parameters())
    for k, p in net.module_.named_parameters():
        assert torch.equal(p, loaded[k]), k
    for k, v in net.previous_state_dict_.items():
        assert torch.equal(v, source.module_.state_dict()[k]), k
    np.testing.assert_array_equal(net.classes_, source.classes_)
    # a kept module built for other classes (10 outputs by default) is a clear
    # error, and the net is left as it was
    other = ResNetClassifier(max_epochs=1, warm_start=True, input_shape=(1, 8, 8),
                             **TINY).initialize()
    with pytest.raises(ValueError, match="set classes before initialize"):
        getattr(other, method)(X[y < 3], y[y < 3])
    assert other.initialized_ and not hasattr(other, "n_features_in_")


# ------------------------------------------------------------------ 10. early stopping
def test_early_stopping_load_best_warns_when_it_misses_auxiliary_modules(digits):
    # skorch's EarlyStopping(load_best=True) restores module_ only
    X, y = digits

    def stopper(load_best=True):
        return [("stop", EarlyStopping(monitor="train_loss", load_best=load_best))]

    with pytest.warns(UserWarning, match=r"'stop' is an EarlyStopping\(load_best=True\)"
                      r".*not the auxiliary modules \(critic_\).*Checkpoint\("
                      r"monitor='train_loss_best', load_best=True\)"):
        CriticLossNet(max_epochs=1, critic__hidden=8, callbacks=stopper(), **TINY).fit(X, y)
    with pytest.warns(UserWarning, match=r"loss_head_"):
        LossPredictionNet(max_epochs=1, callbacks=stopper(), **TINY).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the backbone alone: EarlyStopping restores the whole model
        ResNetClassifier(max_epochs=1, callbacks=stopper(), **TINY).fit(X, y)
        CriticLossNet(max_epochs=1, critic__hidden=8, callbacks=stopper(load_best=False),
                      **TINY).fit(X, y)


# ------------------------------------------------------------------ 11. flat rows
def test_flat_image_rows_without_input_shape_warn_once(digits):
    X, y = digits
    flat = X.reshape(len(X), -1)
    with pytest.warns(UserWarning, match=r"input_shape=\(1, 8, 8\)") as record:
        net = ResNetClassifier(max_epochs=2, **TINY).fit(flat, y)
    assert sum("input_shape" in str(w.message) for w in record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.predict(flat)
        ResNetClassifier(max_epochs=1, input_shape=(1, 8, 8), **TINY).fit(flat, y)
        ResNetClassifier(max_epochs=1, **TINY).fit(flat[:, :10], y)  # not an image size


def test_loss_prediction_ranks_skorchs_loss_with_nllloss(digits):
    # LossPredictionNet's per-sample losses are skorch's get_loss: with NLLLoss,
    # of the log of the probabilities, as NeuralNetClassifier.get_loss takes it
    X, y = digits
    net = LossPredictionNet(criterion=torch.nn.NLLLoss, max_epochs=1, **TINY).fit(X, y)
    p = torch.softmax(torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), dim=1)
    target = torch.arange(6)
    eps = torch.finfo(p.dtype).eps
    torch.testing.assert_close(net._per_sample_loss(p, target),
                               -torch.log(p[target, target] + eps))
