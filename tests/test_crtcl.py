"""Tests of CriticLossNet (CrtCl), its critic and its losses (CPU, tiny nets)."""

import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.losses import critic_generator_loss, wasserstein_critic_loss
from sklearn_crtcl.nets.base import ResNetClassifier
from sklearn_crtcl.nets.crtcl import CRITIC_TAPS, Critic, CriticLossNet

TINY = dict(module__width=2, critic__hidden=4, batch_size=64, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits_images(test_size=0.5, random_state=0)


def _fit_tiny(digits, n=256, n_unlabeled=256, max_epochs=2, **params):
    X_train, _, y_train, _ = digits
    net = CriticLossNet(**{**TINY, "max_epochs": max_epochs, **params})
    X_u = X_train[n:n + n_unlabeled] if n_unlabeled else None
    return net.fit(X_train[:n], y_train[:n], X_unlabeled=X_u)


# --------------------------------------------------------------------------- losses
def test_wasserstein_critic_loss_is_incorrect_sum_minus_correct_sum():
    # Eq. 4 of the paper, as written: sums over the two groups
    scores = torch.tensor([1.0, 2.0, -1.0, 4.0, 0.5], requires_grad=True)
    correct = torch.tensor([True, True, False, True, False])
    loss = wasserstein_critic_loss(scores, correct)
    assert loss.item() == pytest.approx((-1.0 + 0.5) - (1.0 + 2.0 + 4.0))
    loss.backward()
    np.testing.assert_allclose(scores.grad.numpy(), [-1, -1, 1, -1, 1])


def test_wasserstein_critic_loss_mean_form_is_incorrect_mean_minus_correct_mean():
    scores = torch.tensor([1.0, 2.0, -1.0, 4.0, 0.5], requires_grad=True)
    correct = torch.tensor([True, True, False, True, False])
    loss = wasserstein_critic_loss(scores, correct, reduction="mean")
    assert loss.item() == pytest.approx((-1.0 + 0.5) / 2 - (1.0 + 2.0 + 4.0) / 3)
    loss.backward()
    # d/ds: +1/|I| for incorrect, -1/|C_R| for correct
    np.testing.assert_allclose(scores.grad.numpy(), [-1 / 3, -1 / 3, 0.5, -1 / 3, 0.5])
    with pytest.raises(ValueError, match="reduction"):
        wasserstein_critic_loss(scores, correct, reduction="max")


@pytest.mark.parametrize("correct", [[True, True, True], [False, False, False]])
def test_wasserstein_critic_loss_one_sided_batch_is_an_error(correct):
    with pytest.raises(ValueError, match="both correct and incorrect"):
        wasserstein_critic_loss(torch.zeros(3), torch.tensor(correct))


def test_critic_loss_input_checks():
    with pytest.raises(ValueError, match="boolean"):
        wasserstein_critic_loss(torch.zeros(2), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="same length"):
        wasserstein_critic_loss(torch.zeros(3), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="gamma"):
        critic_generator_loss(torch.zeros(2), gamma=-0.1)
    with pytest.raises(ValueError, match="non-empty"):
        critic_generator_loss(torch.zeros(0))


def test_critic_generator_loss_is_minus_gamma_sum_of_scores():
    scores = torch.tensor([1.0, 2.0, 6.0], requires_grad=True)
    loss = critic_generator_loss(scores, gamma=0.04)
    assert loss.item() == pytest.approx(-0.04 * 9.0)
    loss.backward()
    np.testing.assert_allclose(scores.grad.numpy(), [-0.04] * 3, rtol=1e-6)


def test_critic_generator_loss_mean_form_is_minus_gamma_mean_score():
    scores = torch.tensor([1.0, 2.0, 6.0], requires_grad=True)
    loss = critic_generator_loss(scores, gamma=0.04, reduction="mean")
    assert loss.item() == pytest.approx(-0.04 * 3.0)
    loss.backward()
    np.testing.assert_allclose(scores.grad.numpy(), [-0.04 / 3] * 3, rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        critic_generator_loss(scores, reduction="none")


# --------------------------------------------------------------------------- critic
def test_critic_reads_its_taps_in_order():
    dims = {"input": 1, "stage1": 2, "stage2": 4, "stage3": 8, "stage4": 16, "logits": 10,
            "proba": 10}
    critic = Critic(dims, hidden=5)
    assert critic.taps == CRITIC_TAPS
    assert [p.in_features for p in critic.projections] == [1, 2, 4, 8, 16, 10]
    assert critic.out.in_features == 6 * 5
    taps = {"input": torch.randn(3, 1, 8, 8), "stage1": torch.randn(3, 2, 8, 8),
            "stage2": torch.randn(3, 4, 4, 4), "stage3": torch.randn(3, 8, 2, 2),
            "stage4": torch.randn(3, 16, 1, 1), "proba": torch.softmax(torch.randn(3, 10), 1)}
    pooled = {k: (v.mean(dim=(2, 3)) if v.dim() == 4 else v) for k, v in taps.items()}
    torch.testing.assert_close(critic(taps), critic(pooled))
    assert critic(taps).shape == (3,)
    with pytest.raises(ValueError, match="unknown critic taps"):
        Critic(dims, taps=("stage1", "stage9"))
    with pytest.raises(ValueError, match="string"):
        Critic(dims, taps="stage1")


# --------------------------------------------------------------------------- training
def test_gamma_zero_trains_the_classifier_exactly_like_resnet_classifier(digits):
    X_train, X_test, y_train, _ = digits
    params = dict(module__width=2, batch_size=64, max_epochs=2, device="cpu", random_state=3)
    base = ResNetClassifier(**params).fit(X_train[:256], y_train[:256])
    crt = CriticLossNet(gamma=0.0, critic__hidden=4, **params)
    crt.fit(X_train[:256], y_train[:256], X_unlabeled=X_train[256:512])
    np.testing.assert_array_equal(crt.predict_proba(X_test), base.predict_proba(X_test))
    for (name, a), b in zip(base.module_.state_dict().items(), crt.module_.state_dict().values()):
        assert torch.equal(a, b), name
    # the critic did train meanwhile, on detached features
    assert np.nansum(crt.history[:, "critic_steps"]) > 0
    assert crt.history[:, "generator_loss"] == [0.0, 0.0]
    # and with gamma > 0 the generator step does change the classifier
    crt_g = CriticLossNet(gamma=0.5, critic__hidden=4, **params)
    crt_g.fit(X_train[:256], y_train[:256], X_unlabeled=X_train[256:512])
    assert not np.array_equal(crt_g.predict_proba(X_test), base.predict_proba(X_test))


def test_critic_score_separates_correct_from_incorrect_predictions(digits):
    X_train, X_test, y_train, y_test = digits
    net = CriticLossNet(module__width=4, critic__hidden=16, max_epochs=10, batch_size=32,
                        lr=0.05, random_state=1, device="cpu")
    net.fit(X_train[:300], y_train[:300], X_unlabeled=X_train[300:])
    correct = net.predict(X_test) == y_test
    assert 0.6 < correct.mean() < 0.99  # some errors to detect
    scores = net.predict_correctness(X_test)
    assert scores.shape == (len(X_test),) and np.isfinite(scores).all()
    assert roc_auc_score(correct, scores) >= 0.65


class _ClipSpy(CriticLossNet):
    """Checks the critic's weights right after every critic step."""

    def _critic_step(self, inputs, correct):
        loss = super()._critic_step(inputs, correct)
        if loss is not None:
            self.max_abs_after_steps_.append(
                max(float(p.detach().abs().max()) for p in self.critic_.parameters()))
        return loss


@pytest.mark.parametrize("clip_value", [0.01, 0.003])
def test_critic_weights_are_clipped_after_every_step(digits, clip_value):
    X_train, _, y_train, _ = digits
    net = _ClipSpy(clip_value=clip_value, max_epochs=2, **TINY)
    net.max_abs_after_steps_ = []
    net.fit(X_train[:256], y_train[:256])
    steps = net.max_abs_after_steps_
    assert len(steps) == sum(net.history[:, "critic_steps"]) > 0
    bound = float(np.float32(clip_value))  # the weights are float32
    assert max(steps) <= bound
    # the clip is active: the weights sit at its bound
    assert max(steps) == bound
    # without clipping the same training leaves the range
    free = _ClipSpy(clip_value=None, max_epochs=2, **TINY)
    free.max_abs_after_steps_ = []
    free.fit(X_train[:256], y_train[:256])
    assert max(free.max_abs_after_steps_) > 0.05


def _record_critic_calls(monkeypatch):
    calls = []
    forward = Critic.forward

    def spy(self, taps):
        calls.append({name: (t.requires_grad, t.grad_fn is not None) for name, t in taps.items()}
                     | {"_critic_params_trainable": any(p.requires_grad
                                                        for p in self.parameters())})
        return forward(self, taps)

    monkeypatch.setattr(Critic, "forward", spy)
    return calls


@pytest.mark.parametrize("with_unlabeled, taps", [
    (True, CRITIC_TAPS), (False, CRITIC_TAPS), (True, ("stage2", "logits", "proba"))])
def test_generator_gradient_reaches_the_classifier_only_through_its_output(
        digits, monkeypatch, with_unlabeled, taps):
    calls = _record_critic_calls(monkeypatch)
    net = _fit_tiny(digits, n=192, n_unlabeled=192 if with_unlabeled else 0, max_epochs=1,
                    critic__taps=taps)
    n_batches = 3
    generator_calls = [c for c in calls if c["proba"][0]]
    critic_calls = [c for c in calls if not c["proba"][0]]
    assert len(generator_calls) + len(critic_calls) == len(calls)
    assert len(generator_calls) == n_batches  # one generator step per labeled batch
    assert len(critic_calls) == net.history[-1, "critic_steps"] > 0
    for call in generator_calls:
        # only the output (probabilities, and logits if the critic reads them)
        # carries gradient; the image and the stage outputs reach the critic
        # detached; the critic itself is frozen
        assert call["proba"] == (True, True)
        assert set(call) == set(taps) | {"_critic_params_trainable"}
        if "logits" in taps:
            assert call["logits"] == (True, True)
        for name in set(taps) - {"proba", "logits"}:
            assert call[name] == (False, False), name
        assert not call["_critic_params_trainable"]
    for call in critic_calls:  # the critic step sees no classifier graph at all
        assert all(v == (False, False) for k, v in call.items() if k != "_critic_params_trainable")
        assert call["_critic_params_trainable"]


def test_generator_loss_gradient_flows_only_through_the_logits(digits):
    from sklearn_crtcl.backbones import forward_taps

    net = _fit_tiny(digits, max_epochs=1, gamma=1.0)
    net.module_.train()
    taps = forward_taps(net.module_, torch.as_tensor(digits[0][:16]))
    stages = [taps[f"stage{i}"] for i in range(1, 5)]
    logits = taps["logits"]
    g_loss = net._generator_loss(net._critic_inputs(taps), logits)
    # the whole gradient of L_G on every stage output is the part that passes
    # through the logits: the critic's direct inputs contribute nothing
    (g_logits,) = torch.autograd.grad(g_loss, logits, retain_graph=True)
    through_logits = torch.autograd.grad(logits, stages, grad_outputs=g_logits,
                                         retain_graph=True)
    actual = torch.autograd.grad(g_loss, stages, retain_graph=True)
    for a, b in zip(actual, through_logits):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert g_logits.abs().sum() > 0 and all(a.abs().sum() > 0 for a in actual)
    # the critic was frozen for L_G (and is trainable again afterwards)
    params = list(net.critic_.parameters())
    assert all(p.requires_grad for p in params)
    assert torch.autograd.grad(g_loss, params, allow_unused=True) == (None,) * len(params)


def test_generator_step_uses_unlabeled_batches_until_the_stop_epoch(digits):
    net = _fit_tiny(digits, max_epochs=4, generator_stop_epoch=0.5)
    g = net.history[:, "generator_loss"]
    assert g[0] != 0 and g[1] != 0 and g[2] == 0 and g[3] == 0
    assert np.isfinite(net.history[:, "critic_loss"]).all()
    # an int is an epoch count; 0 never runs a generator step
    net = _fit_tiny(digits, max_epochs=2, generator_stop_epoch=1)
    assert net.history[0, "generator_loss"] != 0 and net.history[1, "generator_loss"] == 0
    net = _fit_tiny(digits, max_epochs=1, generator_stop_epoch=0)
    assert net.history[:, "generator_loss"] == [0.0]


def test_same_random_state_same_model_with_unlabeled_data(digits):
    X_test = digits[1]
    a = _fit_tiny(digits)
    b = _fit_tiny(digits)
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    np.testing.assert_array_equal(a.predict_correctness(X_test), b.predict_correctness(X_test))
    c = _fit_tiny(digits, random_state=1)
    assert not np.array_equal(a.predict_correctness(X_test), c.predict_correctness(X_test))


def test_one_sided_batches_skip_the_critic_step(digits):
    net = _fit_tiny(digits, max_epochs=1)
    before = [p.detach().clone() for p in net.critic_.parameters()]
    x = torch.as_tensor(digits[0][:8])
    with torch.no_grad():
        from sklearn_crtcl.backbones import forward_taps
        inputs = net._critic_inputs(forward_taps(net.module_, x))
    for flag in (True, False):
        assert net._critic_step(inputs, torch.full((8,), flag)) is None
    for p, q in zip(before, net.critic_.parameters()):
        assert torch.equal(p, q)
    # a nearly separable two-class problem learned perfectly: every batch is
    # all-correct in the end, the critic steps stop and nothing becomes NaN
    rng = np.random.RandomState(0)
    X = rng.standard_normal((128, 1, 8, 8)).astype(np.float32)
    y = np.arange(128) % 2
    X[:, 0] += 2 * (2 * y[:, None, None] - 1)
    easy = CriticLossNet(**{**TINY, "max_epochs": 12, "batch_size": 32}).fit(X, y)
    assert (easy.predict(X) == y).all()
    assert easy.history[-1, "critic_steps"] == 0
    assert np.isnan(easy.history[-1, "critic_loss"])  # no step taken: no loss to report
    assert all(torch.isfinite(p).all() for p in easy.critic_.parameters())
    assert all(torch.isfinite(p).all() for p in easy.module_.parameters())


def test_history_and_printed_log(digits, capsys):
    X_train, _, y_train, _ = digits
    net = CriticLossNet(**{**TINY, "max_epochs": 2, "verbose": 1})
    net.fit(X_train[:128], y_train[:128])
    out = capsys.readouterr().out
    assert "critic_loss" in out and "generator_loss" in out and "critic_steps" in out
    batches = net.history[-1, "batches"]
    assert all("critic_loss" in b or "generator_loss" in b for b in batches)
    crit = [b["critic_loss"] for b in batches if "critic_loss" in b]
    weights = [b["train_batch_size"] for b in batches if "critic_loss" in b]
    assert net.history[-1, "critic_loss"] == pytest.approx(np.average(crit, weights=weights))
    # generator_stop_epoch=0.65 of 2 epochs: a generator step in epoch 1 only
    assert net.history[0, "generator_loss"] != 0 and net.history[1, "generator_loss"] == 0
    assert net.history[-1, "critic_steps"] == len(crit)


# --------------------------------------------------------------------------- X_unlabeled
@pytest.mark.parametrize("X_unlabeled, match", [
    (np.zeros((10, 1, 4, 4), dtype=np.float32), "same per-sample shape"),
    (np.zeros((10, 64), dtype=np.float32), "same per-sample shape"),
    (np.full((10, 1, 8, 8), np.nan, dtype=np.float32), "NaN"),
    (np.zeros((0, 1, 8, 8), dtype=np.float32), "X_unlabeled is empty"),
    (np.zeros((10, 1, 8, 8, 1), dtype=np.float32), "X_unlabeled must have"),
    (np.zeros((1, 1, 8, 8), dtype=np.float32), "at least 2 samples"),
    ([[0.0] * 64] * 3, "same per-sample shape"),
])
def test_bad_unlabeled_data_is_a_clear_error_before_any_work(digits, X_unlabeled, match):
    X_train, _, y_train, _ = digits
    net = CriticLossNet(**TINY)
    with pytest.raises(ValueError, match=match):
        net.fit(X_train[:64], y_train[:64], X_unlabeled=X_unlabeled)
    assert not net.initialized_
    assert not hasattr(net, "classes_")


def test_modal_active_learner_loop_with_unlabeled_data(digits, monkeypatch):
    modal_base = pytest.importorskip("modAL.models.base")
    from modAL.models import ActiveLearner
    from sklearn.utils import check_X_y

    def check_X_y_compat(*args, force_all_finite=True, **kwargs):
        # modAL 0.4.1 still passes scikit-learn's removed `force_all_finite`
        return check_X_y(*args, ensure_all_finite=force_all_finite, **kwargs)

    monkeypatch.setattr(modal_base, "check_X_y", check_X_y_compat)

    seen = []

    class Spy(CriticLossNet):
        def fit(self, X, y, X_unlabeled=None, **fit_params):
            seen.append(None if X_unlabeled is None else len(X_unlabeled))
            return super().fit(X, y, X_unlabeled=X_unlabeled, **fit_params)

    def lowest_critic_score(learner, X_pool, n_instances=1):
        scores = learner.estimator.predict_correctness(X_pool)
        return np.argsort(scores, kind="stable")[:n_instances]

    X_train, X_test, y_train, y_test = digits
    labeled = np.arange(60)
    pool = np.arange(60, 400)
    learner = ActiveLearner(
        estimator=Spy(**{**TINY, "max_epochs": 2, "batch_size": 32}),
        query_strategy=lowest_critic_score,
        X_training=X_train[labeled], y_training=y_train[labeled],
        X_unlabeled=X_train[pool])
    for _ in range(2):
        idx, _ = learner.query(X_train[pool], n_instances=20)
        assert len(np.unique(idx)) == 20
        learner.teach(X_train[pool[idx]], y_train[pool[idx]], X_unlabeled=np.delete(
            X_train[pool], idx, axis=0))
        pool = np.delete(pool, idx)
    assert seen == [340, 320, 300]
    assert len(learner.X_training) == 100
    assert learner.estimator.history[0, "generator_loss"] != 0
    assert 0.0 <= learner.score(X_test, y_test) <= 1.0


# --------------------------------------------------------------------------- sklearn / skorch
def test_params_clone_and_set_params(digits):
    net = CriticLossNet(critic__hidden=16, critic_lr_milestones=(0.5,), gamma=0.02)
    params = net.get_params()
    for key, value in [("critic__hidden", 16), ("critic__taps", CRITIC_TAPS),
                       ("critic_optimizer", torch.optim.AdamW), ("critic_optimizer__lr", 1e-3),
                       ("critic_lr_milestones", (0.5,)), ("gamma", 0.02), ("clip_value", 0.05),
                       ("generator_stop_epoch", 0.65), ("unlabeled_batch_size", None)]:
        assert params[key] == value, key
    assert clone(net).get_params()["critic__hidden"] == 16

    # set_params before fit, including the names that start with "critic"
    net = CriticLossNet(**{**TINY, "max_epochs": 2})
    net.set_params(critic_lr_milestones=(1,), critic__hidden=6, critic_optimizer__lr=2e-3)
    X_train, _, y_train, _ = digits
    net.fit(X_train[:128], y_train[:128])
    assert net.critic_.hidden == 6
    assert net.critic_optimizer_.param_groups[0]["lr"] == pytest.approx(2e-4)  # decayed at 1
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1)  # milestone 0.8 of 2
    # ... and after fit: the critic is rebuilt, the optimizer updated in place
    net.set_params(critic__hidden=3)
    assert net.critic_.hidden == 3
    net.set_params(critic_optimizer__lr=5e-3, critic_lr_milestones=None)
    assert net.critic_optimizer_.param_groups[0]["lr"] == 5e-3
    assert net.get_params()["critic_optimizer__lr"] == 5e-3
    assert clone(net).critic_optimizer__lr == 5e-3
    net.set_params(critic_optimizer=torch.optim.SGD)
    assert isinstance(net.critic_optimizer_, torch.optim.SGD)


def test_optimizers_own_disjoint_parameters(digits):
    net = _fit_tiny(digits, max_epochs=1)
    clf = {id(p) for g in net.optimizer_.param_groups for p in g["params"]}
    crit = {id(p) for g in net.critic_optimizer_.param_groups for p in g["params"]}
    assert clf == {id(p) for p in net.module_.parameters()}
    assert crit == {id(p) for p in net.critic_.parameters()}
    assert isinstance(net.critic_optimizer_, torch.optim.AdamW)
    assert net.critic_optimizer_.param_groups[0]["lr"] == 1e-3
    assert str(next(net.critic_.parameters()).device) == net.device


def test_bad_parameters_are_errors_before_training(digits):
    X_train, _, y_train, _ = digits
    for params, match in [({"gamma": -1.0}, "gamma"), ({"gamma": np.inf}, "gamma"),
                          ({"clip_value": 0}, "clip_value"),
                          ({"generator_stop_epoch": 1.5}, "generator_stop_epoch"),
                          ({"generator_stop_epoch": -1}, "generator_stop_epoch"),
                          ({"generator_stop_epoch": "half"}, "generator_stop_epoch"),
                          ({"unlabeled_batch_size": 1}, "unlabeled_batch_size"),
                          ({"critic__taps": ("stage1", "nope")}, "unknown critic taps")]:
        net = CriticLossNet(**{**TINY, **params})
        with pytest.raises(ValueError, match=match):
            net.fit(X_train[:64], y_train[:64])
        assert not hasattr(net, "history_") or not net.history_


def test_save_load_and_pickle_keep_the_critic(digits, tmp_path):
    X_test = digits[1][:50]
    net = _fit_tiny(digits, max_epochs=1)
    scores = net.predict_correctness(X_test)
    net.save_params(f_params=tmp_path / "m.pt", f_critic=tmp_path / "c.pt",
                    f_critic_optimizer=tmp_path / "co.pt")
    other = _fit_tiny(digits, max_epochs=1, random_state=5)
    assert not np.array_equal(other.predict_correctness(X_test), scores)
    other.load_params(f_params=tmp_path / "m.pt", f_critic=tmp_path / "c.pt",
                      f_critic_optimizer=tmp_path / "co.pt")
    np.testing.assert_array_equal(other.predict_correctness(X_test), scores)
    buf = io.BytesIO()
    pickle.dump(net, buf)
    loaded = pickle.loads(buf.getvalue())
    np.testing.assert_array_equal(loaded.predict_correctness(X_test), scores)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), net.predict_proba(X_test))


def test_string_labels_and_unfitted_scoring(digits):
    X_train, X_test, y_train, _ = digits
    net = CriticLossNet(**{**TINY, "max_epochs": 1})
    with pytest.raises(NotFittedError):
        net.predict_correctness(X_test)
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                       "nine"])
    net.fit(X_train[:128], labels[y_train[:128]], X_unlabeled=X_train[128:256])
    assert set(net.predict(X_test[:20])) <= set(labels)
    assert net.predict_correctness(X_test[:20]).shape == (20,)


def test_unknown_fit_arguments_are_an_error_before_training(digits):
    X_train, _, y_train, _ = digits
    net = CriticLossNet(**TINY)
    with pytest.raises(TypeError, match="sample_weight"):
        net.fit(X_train[:64], y_train[:64], sample_weight=np.ones(64))
    assert not net.initialized_


def test_check_estimator_passes_what_resnet_classifier_passes():
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    params = dict(module__width=2, max_epochs=2, batch_size=32, device="cpu", random_state=0)

    def failed(estimator):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(estimator, on_fail=None)
        return {r["check_name"] for r in results if r["status"] == "failed"}, len(results)

    base_failed, _ = failed(ResNetClassifier(**params))
    crt_failed, n_checks = failed(CriticLossNet(critic__hidden=4, **params))
    assert n_checks > 40
    assert crt_failed <= base_failed, crt_failed - base_failed


def test_flat_rows_with_input_shape_for_both_arrays(digits):
    X_train, X_test, y_train, _ = digits
    flat = X_train.reshape(len(X_train), -1)
    net = CriticLossNet(**{**TINY, "max_epochs": 1, "input_shape": (1, 8, 8)})
    net.fit(flat[:128], y_train[:128], X_unlabeled=flat[128:256])
    assert net.history[0, "generator_loss"] != 0
    scores = net.predict_correctness(X_test[:10].reshape(10, -1))
    np.testing.assert_array_equal(scores, net.predict_correctness(X_test[:10]))


@pytest.mark.parametrize("kind", ["array", "memmap", "float64"])
def test_unlabeled_indices_train_as_the_selected_rows(digits, kind, tmp_path):
    """fit(X, y, X_unlabeled=X_all, unlabeled_indices=rows) is the training on
    X_all[rows] (the runner passes the training set and its pool's rows), for TOD
    too; a float32 array is used in place, other inputs are read at the rows."""
    from sklearn_crtcl import TODNet

    X_train, _, y_train, _ = digits
    X_all = np.ascontiguousarray(X_train[:400], dtype=np.float32)
    if kind == "memmap":
        path = tmp_path / "u.npy"
        np.save(path, X_all)
        X_all = np.load(path, mmap_mode="r")
    elif kind == "float64":
        X_all = X_all.astype(np.float64)
    rows = np.random.RandomState(0).permutation(np.arange(100, 400))[:250]
    for cls, extra in ((CriticLossNet, TINY), (TODNet, dict(module__width=2, batch_size=64,
                                                            device="cpu", random_state=0))):
        a = cls(max_epochs=2, **extra).fit(X_train[:100], y_train[:100],
                                          X_unlabeled=X_all, unlabeled_indices=rows)
        b = cls(max_epochs=2, **extra).fit(X_train[:100], y_train[:100],
                                          X_unlabeled=np.asarray(X_all)[rows])
        np.testing.assert_array_equal(a.predict_proba(X_train[:50]),
                                      b.predict_proba(X_train[:50]))


def test_unlabeled_indices_are_checked_before_any_work(digits):
    X_train, _, y_train, _ = digits
    net = CriticLossNet(max_epochs=1, **TINY)
    for kwargs, match in [({"unlabeled_indices": [1, 2]}, "pass X_unlabeled too"),
                          ({"X_unlabeled": X_train[:10], "unlabeled_indices": [3, 10]},
                           "row indices of X_unlabeled"),
                          ({"X_unlabeled": X_train[:10], "unlabeled_indices": [3, 3]},
                           "repeated"),
                          ({"X_unlabeled": X_train[:10], "unlabeled_indices": [4]},
                           "at least 2 samples")]:
        with pytest.raises(ValueError, match=match):
            net.fit(X_train[:50], y_train[:50], **kwargs)
        assert not hasattr(net, "module_")


def test_unlabeled_indices_use_a_float32_array_in_place(digits):
    from skorch.callbacks import Callback

    class Probe(Callback):
        def on_train_begin(self, net, **kwargs):
            self.shares = np.shares_memory(net._X_unlabeled.numpy(), X_all)

    X_train, _, y_train, _ = digits
    X_all = np.ascontiguousarray(X_train[:300], dtype=np.float32)
    probe = Probe()
    CriticLossNet(max_epochs=1, callbacks=[("probe", probe)], **TINY).fit(
        X_train[:100], y_train[:100], X_unlabeled=X_all, unlabeled_indices=np.arange(100, 300))
    assert probe.shares  # no copy of the unlabeled images
