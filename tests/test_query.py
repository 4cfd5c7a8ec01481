"""Tests for the query strategies of sklearn_crtcl.query."""

import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

import sklearn_crtcl._modal_compat  # noqa: F401  (modAL + scikit-learn >= 1.8)
from sklearn_crtcl import DatasetArray, ResNetClassifier
from sklearn_crtcl.nets.crtcl import CriticLossNet
from sklearn_crtcl.nets.lossnet import LossPredictionNet
from sklearn_crtcl.query import (
    badge_sampling,
    classifier_entropy,
    cod_sampling,
    coreset_sampling,
    critic_correctness,
    critic_sampling,
    cyclic_output_discrepancy,
    entropy_gradient_norm,
    entropy_sampling,
    gradient_norm_sampling,
    loss_prediction_sampling,
    predicted_loss,
    random_sampling,
    random_scores,
)
from sklearn_crtcl.query.gradnorm import per_sample_grad_sq_norms

modal = pytest.importorskip("modAL.models")
ActiveLearner = modal.ActiveLearner


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models on a shared machine: one thread avoids oversubscription."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


TINY = dict(module__width=4, max_epochs=2, input_shape=(1, 8, 8), device="cpu",
            random_state=0, batch_size=64)


def make_net(kind):
    if kind == "critic":
        return CriticLossNet(critic__hidden=8, **TINY)
    if kind == "lossnet":
        return LossPredictionNet(loss_head__hidden=8, **TINY)
    return ResNetClassifier(**TINY)


# strategy, utility, estimator kind, True if the highest scores are queried
def _topk(strategy):
    """The strategy with the papers' top-k selection (the scoring strategies'
    default is ``selection="rank"``; these tests check the papers' queries)."""
    return functools.wraps(strategy)(functools.partial(strategy, selection="topk"))


STRATEGIES = {
    "critic": (_topk(critic_sampling), critic_correctness, "critic", False),
    "cod": (_topk(cod_sampling), cyclic_output_discrepancy, "plain", True),
    "gradnorm": (_topk(gradient_norm_sampling), entropy_gradient_norm, "plain", True),
    "lossnet": (_topk(loss_prediction_sampling), predicted_loss, "lossnet", True),
    "random": (random_sampling, None, "plain", True),
}


@pytest.fixture(scope="module")
def fitted(digits):
    """One fitted tiny net of each kind (on the first 150 digits)."""
    X, y = digits
    return {kind: make_net(kind).fit(X[:150], y[:150]) for kind in ("plain", "critic", "lossnet")}


@pytest.fixture(scope="module")
def pool(digits):
    return digits[0][150:450]


def assert_same_scores(a, b, scores):
    """Same picks, up to the order of (numerically) tied scores."""
    np.testing.assert_allclose(np.sort(scores[a]), np.sort(scores[b]), rtol=1e-5, atol=1e-7)


def utility(name, est, X):
    strategy, util, _, _ = STRATEGIES[name]
    if util is None:
        return random_scores(est, X, random_state=0)
    return util(est, X)


# --------------------------------------------------------------------------- modAL loops
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_three_cycle_active_learner_loop(name, digits):
    strategy, _, kind, _ = STRATEGIES[name]
    X, y = digits
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    labeled, pool_idx = order[:100], order[100:400]
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return strategy(*args, **kwargs)

    learner = ActiveLearner(make_net(kind), query_strategy=counted,
                            X_training=X[labeled], y_training=y[labeled])
    seen = set(labeled.tolist())
    for cycle in range(3):
        X_pool = X[pool_idx]
        idx, X_query = learner.query(X_pool, n_instances=8, random_state=cycle)
        assert len(calls) == cycle + 1  # the strategy runs once per query
        idx = np.asarray(idx)
        assert idx.shape == (8,) and idx.dtype.kind == "i"
        assert len(np.unique(idx)) == 8
        assert idx.min() >= 0 and idx.max() < len(X_pool)
        np.testing.assert_array_equal(X_query, X_pool[idx])
        chosen = pool_idx[idx]
        assert not seen.intersection(chosen.tolist())  # never a labeled sample again
        seen.update(chosen.tolist())
        learner.teach(X[chosen], y[chosen])
        pool_idx = np.delete(pool_idx, idx)
    assert len(learner.X_training) == 100 + 3 * 8
    assert len(seen) == 124


# --------------------------------------------------------------------------- common behaviour
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_random_state_same_query(name, fitted, pool):
    strategy, _, kind, _ = STRATEGIES[name]
    est = fitted[kind]
    a = strategy(est, pool, n_instances=10, subset_size=120, random_state=3)
    b = strategy(est, pool, n_instances=10, subset_size=120, random_state=3)
    np.testing.assert_array_equal(a, b)
    c = strategy(est, pool, n_instances=10, subset_size=120,
                 random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(a, c)
    others = [strategy(est, pool, n_instances=10, subset_size=120, random_state=s)
              for s in (4, 5, 6)]
    assert any(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_subset_size_restricts_candidates(name, fitted, pool):
    strategy, _, kind, largest = STRATEGIES[name]
    est = fitted[kind]
    k = 40
    # asking for as many samples as candidates returns the candidate set itself
    candidates = strategy(est, pool, n_instances=k, subset_size=k, random_state=7)
    assert len(np.unique(candidates)) == k
    picked = strategy(est, pool, n_instances=5, subset_size=k, random_state=7)
    assert set(picked.tolist()) <= set(candidates.tolist())
    if name != "random":
        # the pick is the best of the candidates, not of the whole pool
        scores = utility(name, est, pool)
        cand = np.sort(candidates)
        order = np.argsort(-scores[cand] if largest else scores[cand], kind="stable")
        assert_same_scores(picked, cand[order[:5]], scores)
        whole = strategy(est, pool, n_instances=5)
        best = np.argsort(-scores if largest else scores, kind="stable")[:5]
        assert_same_scores(whole, best, scores)
        assert not np.allclose(np.sort(scores[picked]), np.sort(scores[best]))
    with pytest.raises(ValueError, match="n_instances=41 is larger"):
        strategy(est, pool, n_instances=k + 1, subset_size=k, random_state=7)
    # a subset at least as large as the pool is the whole pool
    np.testing.assert_array_equal(
        strategy(est, pool[:30], n_instances=30, subset_size=1000, random_state=0).size, 30)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_scores_one_per_pool_sample(name, fitted, pool):
    _, _, kind, _ = STRATEGIES[name]
    scores = utility(name, fitted[kind], pool)
    assert scores.shape == (len(pool),)
    assert np.isfinite(scores).all()
    assert np.unique(scores).size > len(pool) // 2  # informative, not constant


@pytest.mark.parametrize("name", ["critic", "cod", "gradnorm", "lossnet"])
def test_learner_or_estimator_and_batch_size_give_the_same_query(name, fitted, pool, digits):
    strategy, util, kind, _ = STRATEGIES[name]
    est = fitted[kind]
    learner = ActiveLearner(est, query_strategy=strategy)
    a = strategy(est, pool, n_instances=6)
    np.testing.assert_array_equal(a, strategy(learner, pool, n_instances=6))
    assert_same_scores(a, strategy(est, pool, n_instances=6, batch_size=7), util(est, pool))
    np.testing.assert_allclose(util(est, pool), util(est, pool, batch_size=13), rtol=1e-5,
                               atol=1e-7)
    # flat rows and images give the same scores
    np.testing.assert_allclose(util(est, pool), util(est, pool.reshape(-1, 1, 8, 8)),
                               rtol=1e-6)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_memmap_pool_gives_same_query_and_is_not_modified(name, fitted, pool, tmp_path):
    strategy, _, kind, _ = STRATEGIES[name]
    mm = np.lib.format.open_memmap(tmp_path / "pool.npy", mode="w+", dtype=np.float32,
                                   shape=pool.shape)
    mm[:] = pool
    mm.flush()
    mm = np.load(tmp_path / "pool.npy", mmap_mode="r")
    before = pool.copy()
    a = strategy(fitted[kind], pool, n_instances=5, subset_size=100, random_state=1)
    b = strategy(fitted[kind], mm, n_instances=5, subset_size=100, random_state=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pool, before)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_bad_n_instances_and_pool(name, fitted, pool):
    strategy, _, kind, _ = STRATEGIES[name]
    est = fitted[kind]
    with pytest.raises(ValueError, match="n_instances=301 is larger .* pool has 300"):
        strategy(est, pool, n_instances=301)
    for bad in (0, -1, 1.5, True, None, "3"):
        with pytest.raises(ValueError, match="n_instances must be a positive integer"):
            strategy(est, pool, n_instances=bad)
    for bad in (0, -5, 2.0):
        with pytest.raises(ValueError, match="subset_size must be"):
            strategy(est, pool, n_instances=1, subset_size=bad)
    with pytest.raises(ValueError, match="0 sample"):
        strategy(est, pool[:0], n_instances=1)


@pytest.mark.parametrize("name", ["critic", "cod", "gradnorm", "lossnet"])
def test_invalid_pool_contents(name, fitted, pool):
    strategy, _, kind, _ = STRATEGIES[name]
    est = fitted[kind]
    bad = pool.copy()
    bad[17, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        strategy(est, bad, n_instances=1)
    with pytest.raises(ValueError, match="features"):
        strategy(est, pool[:, :60], n_instances=1)
    with pytest.raises(ValueError, match="batch_size must be"):
        strategy(est, pool, n_instances=1, batch_size=0)


def test_strategy_needs_the_right_estimator(fitted, pool, digits):
    plain = fitted["plain"]
    with pytest.raises(TypeError, match="critic_sampling needs a fitted CriticLossNet.*"
                                        "predict_correctness.*ResNetClassifier"):
        critic_sampling(plain, pool)
    with pytest.raises(TypeError, match="CriticLossNet"):
        critic_correctness(ActiveLearner(plain, query_strategy=critic_sampling), pool)
    with pytest.raises(TypeError, match="LossPredictionNet.*predict_loss"):
        loss_prediction_sampling(plain, pool)
    with pytest.raises(TypeError, match="LossPredictionNet"):
        predicted_loss(fitted["critic"], pool)
    X, y = digits
    logreg = LogisticRegression(max_iter=200).fit(X[:200], y[:200])
    for strategy in (cod_sampling, gradient_norm_sampling):
        with pytest.raises(TypeError, match="needs a ResNetClassifier"):
            strategy(logreg, pool)
    pipe = make_pipeline(FunctionTransformer(), logreg)  # the final step is checked
    for strategy in (cod_sampling, gradient_norm_sampling):
        with pytest.raises(TypeError, match="needs a ResNetClassifier.*LogisticRegression"):
            strategy(pipe, pool)
    committee = modal.Committee([ActiveLearner(plain, query_strategy=cod_sampling)],
                                query_strategy=cod_sampling)
    with pytest.raises(TypeError, match="committee"):
        cod_sampling(committee, pool)
    with pytest.raises(TypeError, match="None"):
        gradient_norm_sampling(None, pool)
    for strategy in (cod_sampling, gradient_norm_sampling):
        with pytest.raises(NotFittedError):
            strategy(ResNetClassifier(**TINY), pool)
    with pytest.raises(ValueError, match="norm must be one of"):
        gradient_norm_sampling(plain, pool, norm="frobenius")
    with pytest.raises(ValueError, match="ord must be 1 or 2"):
        cod_sampling(plain, pool, ord=3)


def test_random_sampling_needs_no_model():
    X = np.zeros((50, 3))
    idx = random_sampling(LogisticRegression(), X, n_instances=50, random_state=0)
    np.testing.assert_array_equal(np.sort(idx), np.arange(50))
    a = random_sampling(None, X, n_instances=5, random_state=0)
    assert len(set(a.tolist())) == 5
    np.testing.assert_array_equal(a, random_sampling(None, X, n_instances=5, random_state=0))
    # roughly uniform: every sample is picked about equally often over many draws
    counts = np.bincount(np.concatenate(
        [random_sampling(None, X, n_instances=5, random_state=s) for s in range(400)]),
        minlength=50)
    assert counts.min() > 15 and counts.max() < 70


# --------------------------------------------------------------------------- COD
def test_cod_is_zero_when_the_model_has_not_changed(fitted, pool):
    est = fitted["plain"]
    saved = est.previous_state_dict_
    try:
        est.previous_state_dict_ = est._module_snapshot()
        d = cyclic_output_discrepancy(est, pool)
        np.testing.assert_array_equal(d, np.zeros(len(pool)))
        assert np.all(cyclic_output_discrepancy(est, pool, ord=1) == 0)
    finally:
        est.previous_state_dict_ = saved
    assert cyclic_output_discrepancy(est, pool).min() > 0


def test_cod_matches_a_copy_of_the_previous_model(fitted, pool):
    import copy

    est = fitted["plain"]
    old = copy.deepcopy(est.module_)
    old.load_state_dict(est.previous_state_dict_)
    old.eval()
    est.module_.eval()
    x = torch.as_tensor(pool.reshape(-1, 1, 8, 8))
    with torch.no_grad():
        diff = torch.softmax(est.module_(x), 1) - torch.softmax(old(x), 1)
    np.testing.assert_allclose(cyclic_output_discrepancy(est, pool),
                               diff.norm(dim=1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cyclic_output_discrepancy(est, pool, ord=1),
                               diff.abs().sum(dim=1).numpy(), rtol=1e-5, atol=1e-7)


def test_cod_follows_the_snapshot_of_each_fit(digits):
    X, y = digits
    est = ResNetClassifier(**TINY).fit(X[:100], y[:100])
    first = cyclic_output_discrepancy(est, X[500:600])
    est.fit(X[:200], y[:200])  # a new cycle: compare with the end of the first fit
    second = cyclic_output_discrepancy(est, X[500:600])
    assert not np.allclose(first, second)
    est2 = ResNetClassifier(**TINY).fit(X[:100], y[:100])
    saved = est2._module_snapshot()
    est2.fit(X[:200], y[:200])
    for key, value in saved.items():
        torch.testing.assert_close(est2.previous_state_dict_[key], value)


# --------------------------------------------------------------------------- gradient norms
def naive_grad_norms(module, X, norm="sum"):
    """One sample at a time: backward of the entropy, norms of .grad."""
    was_training = module.training
    module.eval()
    out = []
    for x in X:
        module.zero_grad()
        logp = torch.log_softmax(module(x.unsqueeze(0)), dim=1)
        (-(logp.exp() * logp).sum()).backward()
        norms = torch.stack([p.grad.norm() if p.grad is not None else torch.tensor(0.)
                             for p in module.parameters()]).double()
        out.append(norms.sum() if norm == "sum" else norms.pow(2).sum().sqrt())
    module.zero_grad()
    module.train(was_training)
    return torch.stack(out).numpy()


@pytest.mark.parametrize("norm", ["sum", "global"])
def test_gradient_norms_match_a_per_sample_loop(fitted, pool, norm):
    est = fitted["plain"]
    X = pool[:40]
    expected = naive_grad_norms(est.module_, torch.as_tensor(X.reshape(-1, 1, 8, 8)), norm)
    training = est.module_.training
    got = entropy_gradient_norm(est, X, norm=norm, batch_size=16)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert est.module_.training == training
    assert all(p.grad is None or not p.grad.any() for p in est.module_.parameters())


def _bn_stats(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module


@pytest.mark.parametrize("method", ["hooks", "vmap"])
def test_per_sample_gradients_both_methods_on_a_resnet(method):
    from sklearn_crtcl.backbones import resnet18

    torch.manual_seed(0)
    module = _bn_stats(resnet18(num_classes=5, in_channels=3, width=4)).eval()
    X = torch.randn(12, 3, 16, 16)
    expected = naive_grad_norms(module, X, "global")
    sq = per_sample_grad_sq_norms(module, X, method=method)
    assert sq.shape == (12, len(list(module.parameters())))
    np.testing.assert_allclose(sq.sum(1).sqrt().double().numpy(), expected, rtol=1e-4)


def test_per_sample_gradients_other_layers():
    torch.manual_seed(0)
    # in-place ReLU after batch norm, a bias-carrying strided/dilated conv, Linear on 3-D
    hooks_net = _bn_stats(nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2), nn.BatchNorm2d(3),
        nn.ReLU(inplace=True), nn.Flatten(2), nn.Linear(4, 4), nn.Flatten(), nn.Linear(12, 3),
    )).eval()
    # LayerNorm has no per-layer rule: falls back to vmap
    vmap_net = nn.Sequential(nn.Flatten(), nn.Linear(32, 6), nn.LayerNorm(6), nn.Tanh(),
                             nn.Linear(6, 3)).eval()
    X = torch.randn(9, 2, 4, 4) * 2
    for net in (hooks_net, vmap_net):
        expected = naive_grad_norms(net, X, "sum")
        sq = per_sample_grad_sq_norms(net, X)
        np.testing.assert_allclose(sq.sqrt().sum(1).double().numpy(), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="without a per-layer rule"):
        per_sample_grad_sq_norms(vmap_net, X, method="hooks")
    with pytest.raises(ValueError, match="eval mode"):
        per_sample_grad_sq_norms(hooks_net.train(), X)
    hooks_net.eval()
    # strides, dilations and paddings that differ per axis, in each of the three
    # ways a convolution's per-sample gradients are computed (grouped convolution
    # for large maps, one matrix product per kernel offset, Gram matrices)
    convs = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=(1, 2), padding=(2, 1), dilation=(2, 1)),  # 20x20 map
        nn.Tanh(), nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2, bias=False),  # 10x10
        nn.Tanh(), nn.Conv2d(8, 8, (3, 2), stride=4, padding=(0, 1)),  # 2x3
        nn.Flatten(), nn.Linear(48, 3)).eval()
    X2 = torch.randn(6, 2, 20, 40)
    np.testing.assert_allclose(
        per_sample_grad_sq_norms(convs, X2, method="hooks").sqrt().sum(1).double(),
        naive_grad_norms(convs, X2, "sum"), rtol=1e-4)
    # a layer used twice: the hook rules do not apply, auto falls back to vmap
    lin = nn.Linear(3, 3)
    shared = nn.Sequential(nn.Flatten(), nn.Linear(32, 3), lin, nn.Tanh(), lin).eval()
    np.testing.assert_allclose(per_sample_grad_sq_norms(shared, X).sqrt().sum(1).double(),
                               naive_grad_norms(shared, X, "sum"), rtol=1e-4)
    # a weight tied between two layers
    first, second = nn.Linear(32, 32), nn.Linear(32, 3)
    tied = nn.Sequential(nn.Flatten(), first, nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                         second).eval()
    tied[3].weight = first.weight
    weights = [p for p in tied.parameters()]
    np.testing.assert_allclose(per_sample_grad_sq_norms(tied, X).sqrt().sum(1).double(),
                               naive_grad_norms(tied, X, "sum"), rtol=1e-4)
    # the modules keep their own parameters (torch.func swaps them back)
    assert all(a is b for a, b in zip(weights, tied.parameters()))
    assert isinstance(lin.weight, nn.Parameter) and lin.weight is shared[4].weight


# --------------------------------------------------------------------------- BADGE
def naive_badge(P, H, n, rng):
    """Ash et al.'s k-means++ seeding on explicit gradient embeddings, with the
    same random draws: one uniform number per choice after the first."""
    P, H = np.asarray(P, np.float64), np.asarray(H, np.float64)
    A = P - np.eye(P.shape[1])[P.argmax(1)]
    G = np.einsum("ik,id->ikd", A, H).reshape(len(P), -1)  # (n, K * D), built here
    chosen = [int(np.argmax((G ** 2).sum(1)))]
    while len(chosen) < n:
        D2 = np.min([((G - G[c]) ** 2).sum(1) for c in chosen], axis=0)
        D2[chosen] = 0.0
        u = rng.random_sample()
        if D2.sum() > 0:
            cdf = np.cumsum(D2)
            chosen.append(int(np.searchsorted(cdf, u * cdf[-1], side="right")))
        else:
            free = [i for i in range(len(P)) if i not in chosen]
            chosen.append(free[int(u * len(free))])
    return np.array(chosen)


def test_proba_and_embedding_in_one_forward_pass(fitted, pool):
    est = fitted["plain"]
    proba, emb = est._proba_and_embedding(pool, batch_size=32)
    np.testing.assert_allclose(proba, est.predict_proba(pool), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(emb, est.embed(pool), rtol=1e-5, atol=1e-6)
    assert proba.dtype == emb.dtype == np.float32 and emb.shape == (len(pool), 32)


@pytest.mark.parametrize("subset_size", [None, 120])
def test_badge_matches_a_naive_kmeanspp_on_explicit_gradient_embeddings(fitted, pool,
                                                                       subset_size):
    est = fitted["plain"]
    got = badge_sampling(est, pool, n_instances=15, subset_size=subset_size, random_state=4)
    stream = np.random.RandomState(4)  # the candidate draw, then the k-means++ draws
    cand = (np.arange(len(pool)) if subset_size is None
            else np.sort(stream.choice(len(pool), size=subset_size, replace=False)))
    P, H = est.predict_proba(pool[cand]), est.embed(pool[cand])
    np.testing.assert_array_equal(got, cand[naive_badge(P, H, 15, stream)])
    # the first pick is the largest gradient norm
    A = P - np.eye(10)[P.argmax(1)]
    assert got[0] == cand[np.argmax((A ** 2).sum(1) * (H.astype(float) ** 2).sum(1))]
    np.testing.assert_array_equal(
        got, badge_sampling(est, pool, n_instances=15, subset_size=subset_size,
                            random_state=np.random.RandomState(4)))
    others = [badge_sampling(est, pool, n_instances=15, subset_size=subset_size,
                             random_state=s) for s in (5, 6)]
    assert all(not np.array_equal(got, o) for o in others)
    if subset_size:
        assert set(got.tolist()) <= set(cand.tolist())


def test_badge_never_repeats_an_index_on_duplicated_rows(fitted, digits):
    est = fitted["plain"]
    X = digits[0]
    dup = np.repeat(X[150:155], 10, axis=0)  # 5 distinct images, 10 copies each
    for seed in range(3):
        idx = badge_sampling(est, dup, n_instances=20, random_state=seed)
        assert idx.shape == (20,) and len(np.unique(idx)) == 20
        # the first five are the five distinct images (a copy of a center has D = 0)
        assert len(np.unique(idx[:5] // 10)) == 5
    same = np.repeat(X[150:151], 30, axis=0)  # every distance is 0: uniform, no repeat
    idx = badge_sampling(est, same, n_instances=30, random_state=0)
    np.testing.assert_array_equal(np.sort(idx), np.arange(30))
    assert idx[0] == 0  # the largest norm, ties to the smaller index


def test_badge_runs_one_forward_pass_per_batch(fitted, pool):
    est = fitted["plain"]
    calls = []
    module = est.module_
    original = module.forward_taps

    def counted(x):
        calls.append(len(x))
        return original(x)

    module.forward_taps = counted
    try:
        badge_sampling(est, pool, n_instances=5, batch_size=64)
    finally:
        del module.forward_taps
    assert calls == [64, 64, 64, 64, 44]  # 300 samples: proba and embeddings together


# --------------------------------------------------------------------------- CoreSet
def naive_k_center(H, L, n):
    """Brute-force greedy k-center: explicit differences, labeled rows as centers."""
    H, L = np.asarray(H, np.float64), np.asarray(L, np.float64)
    d = np.sqrt(((H[:, None, :] - L[None]) ** 2).sum(-1)).min(1)
    chosen = []
    for _ in range(n):
        masked = d.copy()
        masked[chosen] = -np.inf
        j = int(np.argmax(masked))
        chosen.append(j)
        d = np.minimum(d, np.sqrt(((H - H[j]) ** 2).sum(1)))
    return np.array(chosen)


@pytest.mark.parametrize("subset_size", [None, 150])
def test_coreset_matches_a_brute_force_k_center(fitted, pool, digits, subset_size):
    from sklearn import config_context

    est = fitted["critic"]  # any net of the package
    X_lab = digits[0][:150]
    got = coreset_sampling(est, pool, n_instances=12, X_labeled=X_lab,
                           subset_size=subset_size, random_state=8)
    cand = (np.arange(len(pool)) if subset_size is None else
            np.sort(np.random.RandomState(8).choice(len(pool), size=subset_size,
                                                     replace=False)))
    expected = cand[naive_k_center(est.embed(pool[cand]), est.embed(X_lab), 12)]
    np.testing.assert_array_equal(got, expected)
    with config_context(working_memory=1):  # distances in chunks of at most ~1 MiB
        np.testing.assert_array_equal(
            got, coreset_sampling(est, pool, n_instances=12, X_labeled=X_lab,
                                  subset_size=subset_size, random_state=8))


class _Points:
    """Embeddings are the rows themselves."""

    def embed(self, X):
        return np.asarray(X, dtype=np.float64)


def test_coreset_ties_go_to_the_smaller_index_and_duplicates_are_never_repeated():
    labeled = np.array([[0.0, 0.0]])
    pool = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [1.0, 0.0]])
    assert coreset_sampling(_Points(), pool, 4, X_labeled=labeled).tolist() == [0, 1, 2, 3]
    assert coreset_sampling(_Points(), pool[::-1].copy(), 4,
                            X_labeled=labeled).tolist() == [1, 2, 3, 0]
    # duplicated rows and rows equal to a labeled sample: distinct indices all the same
    dup = np.repeat(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]]), 4, axis=0)
    idx = coreset_sampling(_Points(), dup, 12, X_labeled=labeled)
    np.testing.assert_array_equal(np.sort(idx), np.arange(12))
    assert idx[:2].tolist() == [8, 4]  # the farthest copies first, the smaller index


def test_coreset_takes_the_labeled_set_from_the_modal_learner(digits, pool):
    X, y = digits
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return coreset_sampling(*args, **kwargs)

    learner = ActiveLearner(ResNetClassifier(**TINY), query_strategy=counted,
                            X_training=X[:120], y_training=y[:120])
    idx, X_query = learner.query(pool, n_instances=7)
    assert len(calls) == 1
    np.testing.assert_array_equal(
        idx, coreset_sampling(learner.estimator, pool, 7, X_labeled=X[:120]))
    np.testing.assert_array_equal(X_query, pool[idx])
    # an explicit X_labeled takes precedence
    idx2, _ = learner.query(pool, n_instances=7, X_labeled=X[:10])
    np.testing.assert_array_equal(
        idx2, coreset_sampling(learner.estimator, pool, 7, X_labeled=X[:10]))
    assert not np.array_equal(idx, idx2)
    learner.teach(X_query, y[450:457])
    idx3, _ = learner.query(pool, n_instances=7)  # the learner's new labeled set
    np.testing.assert_array_equal(
        idx3, coreset_sampling(learner.estimator, pool, 7, X_labeled=learner.X_training))


def test_coreset_equals_scikit_activeml(fitted, pool, digits):
    skal = pytest.importorskip("skactiveml.pool")
    est = fitted["plain"]
    X_lab = digits[0][:150]
    H_lab, H = est.embed(X_lab).astype(np.float64), est.embed(pool).astype(np.float64)
    X = np.vstack([H_lab, H])
    y = np.r_[np.zeros(len(H_lab)), np.full(len(H), np.nan)]
    theirs = np.asarray(skal.CoreSet(random_state=0).query(X, y, batch_size=10)) - len(H_lab)
    np.testing.assert_array_equal(
        coreset_sampling(est, pool, n_instances=10, X_labeled=X_lab), theirs)


# --------------------------------------------------------------------------- both
@pytest.mark.parametrize("strategy", [badge_sampling, coreset_sampling])
def test_badge_and_coreset_in_an_active_learner_loop(strategy, digits):
    X, y = digits
    order = np.random.RandomState(1).permutation(len(X))
    labeled, pool_idx = order[:100], order[100:400]
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return strategy(*args, **kwargs)

    learner = ActiveLearner(ResNetClassifier(**TINY), query_strategy=counted,
                            X_training=X[labeled], y_training=y[labeled])
    for cycle in range(2):
        X_pool = X[pool_idx]
        idx, X_query = learner.query(X_pool, n_instances=9, subset_size=200,
                                     random_state=cycle)
        assert len(calls) == cycle + 1
        assert idx.shape == (9,) and idx.dtype == np.intp and len(np.unique(idx)) == 9
        assert idx.min() >= 0 and idx.max() < len(X_pool)
        np.testing.assert_array_equal(X_query, X_pool[idx])
        learner.teach(X_query, y[pool_idx[idx]])
        pool_idx = np.delete(pool_idx, idx)
    assert len(learner.X_training) == 118


def test_badge_and_coreset_errors(fitted, pool, digits):
    est = fitted["plain"]
    X, y = digits
    logreg = LogisticRegression(max_iter=200).fit(X[:200], y[:200])
    with pytest.raises(TypeError, match=r"badge_sampling needs .*`embed\(X\)`.*"
                                        "LogisticRegression"):
        badge_sampling(logreg, pool)
    with pytest.raises(TypeError, match=r"coreset_sampling needs .*`embed\(X\)`"):
        coreset_sampling(logreg, pool, X_labeled=X[:10])
    with pytest.raises(TypeError, match="predict_proba"):
        badge_sampling(_Points(), pool)
    for strategy, kw in ((badge_sampling, {}), (coreset_sampling, {"X_labeled": X[:20]})):
        with pytest.raises(ValueError, match="n_instances=301 is larger"):
            strategy(est, pool, n_instances=301, **kw)
        with pytest.raises(ValueError, match="n_instances must be a positive integer"):
            strategy(est, pool, n_instances=0, **kw)
        with pytest.raises(ValueError, match="subset_size=5 candidates"):
            strategy(est, pool, n_instances=6, subset_size=5, **kw)
        with pytest.raises(ValueError, match="batch_size must be"):
            strategy(est, pool, batch_size=0, **kw)
        bad = pool.copy()
        bad[3, 3] = np.nan
        with pytest.raises(ValueError, match="X_pool contains NaN"):
            strategy(est, bad, **kw)
        with pytest.raises(ValueError, match="features"):
            strategy(est, pool[:, :60], **kw)
        with pytest.raises(TypeError, match="committee"):
            strategy(modal.Committee([ActiveLearner(est, query_strategy=strategy)],
                                     query_strategy=strategy), pool, **kw)
    with pytest.raises(ValueError, match="needs the labeled samples.*X_labeled"):
        coreset_sampling(est, pool)
    with pytest.raises(ValueError, match="needs the labeled samples"):
        coreset_sampling(ActiveLearner(est, query_strategy=coreset_sampling), pool)
    with pytest.raises(ValueError, match="X_labeled is empty"):
        coreset_sampling(est, pool, X_labeled=X[:0])
    with pytest.raises(ValueError, match="X_labeled.*features"):
        coreset_sampling(est, pool, X_labeled=X[:10, :60])
    bad = X[:10].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="X_labeled contains infinity"):
        coreset_sampling(est, pool, X_labeled=bad)
    with pytest.raises(NotFittedError):
        badge_sampling(ResNetClassifier(**TINY), pool)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("subset_size", [None, 40])
def test_pool_indices_query_the_rows_without_copying(name, subset_size, fitted, pool):
    # the runner's way: the whole training set and the pool's row indices
    strategy, _, kind, _ = STRATEGIES[name]
    est = fitted[kind]
    rows = np.sort(np.random.RandomState(3).choice(len(pool), size=150, replace=False))
    on_copy = strategy(est, pool[rows], n_instances=6, subset_size=subset_size,
                       random_state=5)
    on_rows = strategy(est, pool, n_instances=6, subset_size=subset_size, random_state=5,
                       pool_indices=rows)
    np.testing.assert_array_equal(on_rows, rows[on_copy])
    with pytest.raises(ValueError, match="pool_indices must be row indices"):
        strategy(est, pool, n_instances=2, pool_indices=[0, len(pool)])
    with pytest.raises(ValueError, match="repeated"):
        strategy(est, pool, n_instances=2, pool_indices=[1, 1, 2])
    with pytest.raises(ValueError, match="n_instances=7 is larger"):
        strategy(est, pool, n_instances=7, pool_indices=[1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize("strategy", [badge_sampling, coreset_sampling],
                         ids=lambda s: s.__name__)
def test_peers_take_pool_indices_too(strategy, fitted, pool):
    est = fitted["plain"]
    rows = np.arange(10, 160)
    kwargs = {"X_labeled": pool[:10]} if strategy is coreset_sampling else {}
    np.testing.assert_array_equal(
        strategy(est, pool, n_instances=5, random_state=1, pool_indices=rows, **kwargs),
        rows[strategy(est, pool[rows], n_instances=5, random_state=1, **kwargs)])


# --------------------------------------------------------------------------- Pipelines
def _affine(X):
    """The Pipeline's first step: a fixed affine map of the samples."""
    return np.asarray(X, dtype=np.float32) * np.float32(2.0) - np.float32(0.5)


#: every strategy, the kind of net it needs, its options
PIPELINE_STRATEGIES = {
    "critic": (critic_sampling, "critic", {}),
    "cod": (cod_sampling, "plain", {}),
    "gradnorm": (gradient_norm_sampling, "plain", {}),
    "lossnet": (loss_prediction_sampling, "lossnet", {}),
    "random": (random_sampling, "plain", {"selection": "balanced"}),  # uses the model
    "entropy": (entropy_sampling, "plain", {"selection": "cluster"}),
    "badge": (badge_sampling, "plain", {}),
    "coreset": (coreset_sampling, "plain", {}),
}


@pytest.mark.parametrize("name", sorted(PIPELINE_STRATEGIES))
def test_strategies_take_a_pipeline(name, fitted, pool, digits):
    """Pipeline(transformer, net): the query of the net on the transformed pool
    (also with pool_indices), as modAL's strategies call pipeline.predict_proba."""
    strategy, kind, options = PIPELINE_STRATEGIES[name]
    net = fitted[kind]
    raw = (pool + np.float32(0.5)) / np.float32(2.0)  # what the Pipeline maps back
    pipe = make_pipeline(FunctionTransformer(_affine), net)
    if name == "coreset":
        raw_labeled = (digits[0][:150] + 0.5) / 2
        options = dict(options, X_labeled=raw_labeled)
        direct_options = dict(options, X_labeled=_affine(raw_labeled))
    else:
        direct_options = options
    kw = dict(n_instances=6, random_state=3, subset_size=120)
    expected = strategy(net, _affine(raw), **kw, **direct_options)
    np.testing.assert_array_equal(strategy(pipe, raw, **kw, **options), expected)
    assert not np.array_equal(strategy(net, raw, **kw, **direct_options), expected) or \
        name == "random"  # (the transform matters: the raw pool gives another query)
    rows = np.arange(40, 300, 2)
    np.testing.assert_array_equal(
        strategy(pipe, raw, pool_indices=rows, **kw, **options),
        strategy(net, _affine(raw), pool_indices=rows, **kw, **direct_options))
    before = raw.copy()
    strategy(ActiveLearner(pipe, query_strategy=strategy), raw, **kw, **options)
    np.testing.assert_array_equal(raw, before)  # the pool is not modified


@pytest.mark.parametrize("utility_fn, kind", [
    (critic_correctness, "critic"), (cyclic_output_discrepancy, "plain"),
    (entropy_gradient_norm, "plain"), (predicted_loss, "lossnet"),
    (classifier_entropy, "plain")])
def test_utilities_take_a_pipeline(utility_fn, kind, fitted, pool):
    net = fitted[kind]
    raw = (pool[:50] + np.float32(0.5)) / np.float32(2.0)
    pipe = make_pipeline(FunctionTransformer(_affine), net)
    np.testing.assert_array_equal(utility_fn(pipe, raw), utility_fn(net, _affine(raw)))


@pytest.mark.parametrize("strategy", [critic_sampling, coreset_sampling, badge_sampling])
def test_pipeline_in_an_active_learner(strategy, digits):
    """A scaler fitted by modAL's ActiveLearner with the net; coreset's labeled set
    (the learner's X_training) is transformed too."""
    X, y = digits
    pipe = make_pipeline(StandardScaler(), make_net("critic"))
    learner = ActiveLearner(pipe, query_strategy=strategy, X_training=X[:120],
                            y_training=y[:120])
    X_pool = X[200:400]
    idx, X_query = learner.query(X_pool, n_instances=5, random_state=0)
    scaler, net = pipe[0], pipe[-1]
    options = {"X_labeled": scaler.transform(X[:120])} if strategy is coreset_sampling else {}
    np.testing.assert_array_equal(
        idx, strategy(net, scaler.transform(X_pool), n_instances=5, random_state=0, **options))
    np.testing.assert_array_equal(X_query, X_pool[idx])  # the rows as given


def test_pipeline_with_a_dataset_pool(fitted, pool):
    """A DatasetArray pool goes to the Pipeline's steps as it is (as in predict_proba)."""
    net = fitted["plain"]
    raw = ((pool[:60] + np.float32(0.5)) / np.float32(2.0)).reshape(-1, 1, 8, 8)
    X = DatasetArray(torch.utils.data.TensorDataset(torch.from_numpy(raw)))
    pipe = make_pipeline(FunctionTransformer(_affine), net)
    rows = np.arange(10, 60)
    for strategy in (entropy_sampling, badge_sampling):
        np.testing.assert_array_equal(
            strategy(pipe, X, n_instances=4, random_state=0, pool_indices=rows),
            strategy(net, _affine(raw), n_instances=4, random_state=0, pool_indices=rows))


def test_pipeline_errors_come_before_the_transform(fitted, pool):
    """Bad options raise before the steps run; a step that changes the number of
    samples is named."""
    ran = []

    def step(X):
        ran.append(1)
        return X

    pipe = make_pipeline(FunctionTransformer(step), fitted["plain"])
    with pytest.raises(ValueError, match="n_instances"):
        cod_sampling(pipe, pool, n_instances=0)
    with pytest.raises(ValueError, match="selection"):
        entropy_sampling(pipe, pool, selection="best")
    assert ran == []
    dropping = make_pipeline(FunctionTransformer(lambda X: X[1:]), fitted["plain"])
    with pytest.raises(ValueError, match="turned 300 samples into 299"):
        entropy_sampling(dropping, pool)


# ------------------------------------------------------- other classifiers: the pool as given
def test_a_scikit_learn_classifier_gets_the_pool_as_modal_gives_it():
    """A classifier that is not a net of the package gets the rows as given, as
    modAL's own strategies pass them: texts for a text pipeline, a sparse
    matrix, a DataFrame (rows, with their column names), NaN for a classifier
    that accepts it; the top-k picks are modAL's entropy_sampling's."""
    import warnings

    import pandas as pd
    from modAL.uncertainty import entropy_sampling as modal_entropy
    from scipy import sparse
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer

    def same_picks(clf, X_pool, n=5):
        ours = entropy_sampling(clf, X_pool, n_instances=n, selection="topk", batch_size=7)
        theirs = np.asarray(modal_entropy(clf, X_pool, n_instances=n))
        np.testing.assert_array_equal(np.sort(ours), np.sort(theirs))
        H = classifier_entropy(clf, X_pool, batch_size=7)
        assert H.shape == (len(H),) and len(H) == (X_pool.shape[0] if hasattr(X_pool, "shape")
                                                   else len(X_pool))
        return ours, H

    rng = np.random.RandomState(0)
    words = np.array(["good", "bad", "great", "awful", "fine", "poor", "nice", "meh"])
    docs = [" ".join(rng.choice(words, 5)) for _ in range(120)]
    labels = np.array([sum(w in ("good", "great", "nice", "fine") for w in d.split()) >= 3
                       for d in docs]).astype(int)
    text = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs[:40], labels[:40])
    same_picks(text, docs[40:])  # a list of str: no 2-D array needed

    X, y = load_digits(return_X_y=True)
    dense = LogisticRegression(max_iter=300).fit(X[:300], y[:300])
    picks, H = same_picks(dense, X[300:600])
    picks_sparse, H_sparse = same_picks(dense, sparse.csr_matrix(X[300:600]))
    np.testing.assert_array_equal(picks_sparse, picks)
    np.testing.assert_allclose(H_sparse, H, atol=1e-10)

    columns = [f"px{i}" for i in range(X.shape[1])]
    framed = LogisticRegression(max_iter=300).fit(pd.DataFrame(X[:300], columns=columns),
                                                  y[:300])
    frame = pd.DataFrame(X[300:600], columns=columns, index=np.arange(1000, 1300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        picks_frame, H_frame = same_picks(framed, frame)
    np.testing.assert_array_equal(picks_frame, picks)  # the same model as `dense`
    np.testing.assert_allclose(H_frame, H, atol=1e-10)
    idx = entropy_sampling(framed, frame, n_instances=5, subset_size=50, random_state=0)
    assert idx.min() >= 0 and idx.max() < 300  # positions, not the frame's index

    holes = X[:400].copy()
    holes[::7, 3] = np.nan  # HistGradientBoosting handles missing values itself
    hgb = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(holes[:300], y[:300])
    before = holes.copy()
    same_picks(hgb, holes[300:])
    np.testing.assert_array_equal(holes, before)  # the pool is left as it was

    with pytest.raises(ValueError, match="X_pool is empty"):
        entropy_sampling(dense, X[:0])
    with pytest.raises(ValueError, match="X_pool is None"):
        entropy_sampling(dense, None)
    with pytest.raises(ValueError, match="array-like of samples"):
        entropy_sampling(dense, 3.0)


class _Scores:
    """A classifier whose predict_proba returns the given rows: non-negative
    scores that need not sum to 1 (one-vs-rest sigmoids), logits, zeros."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=np.float64)

    def fit(self, X, y=None):
        return self

    def predict_proba(self, X):
        return self.rows[np.asarray(X, dtype=np.intp).ravel()]


def test_classifier_entropy_renormalises_rows_as_modal_and_refuses_what_is_not_a_score():
    """Rows that do not sum to 1 get modAL's entropy (scipy.stats.entropy divides
    each row by its sum): the same values and the same top-k picks; logits,
    NaN and all-zero rows, for which modAL returns nan or -inf, are a
    ValueError naming predict_proba."""
    from modAL.uncertainty import classifier_entropy as modal_classifier_entropy
    from modAL.uncertainty import entropy_sampling as modal_entropy

    rng = np.random.RandomState(0)
    rows = rng.uniform(0.0, 1.0, size=(40, 4))  # sigmoids: sums between 0.2 and 3.5
    rows[3] = [0.0, 0.5, 0.5, 0.0]  # a zero: 0 log 0 = 0
    rows[5] = [1.0, 1.0, 1.0, 1.0]  # sums to 4: the uniform entropy, log 4
    scores = _Scores(rows)
    X = np.arange(40).reshape(-1, 1)
    ours = classifier_entropy(scores, X, batch_size=7)
    theirs = np.asarray(modal_classifier_entropy(scores, X))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[5] == pytest.approx(np.log(4)) and ours[3] == pytest.approx(np.log(2))
    # the raw rows' -sum p log p would differ: the renormalisation is what matches
    raw = -(rows * np.log(np.where(rows > 0, rows, 1.0))).sum(axis=1)
    assert np.abs(raw - theirs).max() > 0.5
    np.testing.assert_array_equal(
        np.sort(entropy_sampling(scores, X, n_instances=6, selection="topk")),
        np.sort(np.asarray(modal_entropy(scores, X, n_instances=6))))

    # a classifier fitted on one class (a random forest from a first labeled
    # batch of one class) has one column: entropy 0, as modAL's
    from sklearn.ensemble import RandomForestClassifier
    one = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.zeros((4, 2)), [7] * 4)
    assert one.predict_proba(np.zeros((5, 2))).shape == (5, 1)
    np.testing.assert_array_equal(classifier_entropy(one, np.zeros((5, 2))), np.zeros(5))
    np.testing.assert_array_equal(modal_classifier_entropy(one, np.zeros((5, 2))), np.zeros(5))
    assert len(entropy_sampling(one, np.zeros((5, 2)), n_instances=2)) == 2

    for bad, match in (([[2.0, -1.0]] * 3, "non-negative.*predict_nonlinearity=None"),
                       ([[np.nan, 1.0]] * 3, "NaN or infinite"),
                       ([[0.5, 0.5], [0.0, 0.0], [0.2, 0.8]], "1 row\\(s\\) are all zeros")):
        with pytest.raises(ValueError, match="_Scores.predict_proba\\(X\\)") as info:
            classifier_entropy(_Scores(bad), np.arange(3).reshape(-1, 1))
        assert info.match(match)
        with pytest.raises(ValueError, match=match):
            entropy_sampling(_Scores(bad), np.arange(3).reshape(-1, 1))
