"""Tests of the batch selection shared by every query strategy (``selection=``)."""

import inspect
import warnings
from collections import OrderedDict

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import sklearn_crtcl._modal_compat  # noqa: F401  (modAL + scikit-learn >= 1.8)
from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.nets.crtcl import CriticLossNet
from sklearn_crtcl.nets.lossnet import LossPredictionNet
from sklearn_crtcl.nets.tod import TODNet
from sklearn_crtcl.query import (
    SELECTIONS,
    classifier_entropy,
    cod_sampling,
    critic_correctness,
    critic_sampling,
    entropy_sampling,
    gradient_norm_sampling,
    loss_prediction_sampling,
    cyclic_output_discrepancy,
    entropy_gradient_norm,
    predicted_loss,
    random_sampling,
)
from sklearn_crtcl.estimation import draw_probabilities
from sklearn_crtcl.query.selection import DEFAULT_SELECTION, Proposal, choose, log_weights

STOCHASTIC = ("power", "softmax", "rank")


# ------------------------------------------------------------------ a transparent estimator
class Fake:
    """Reads everything from the rows: column 0 is the score (``NAN_CODE``: a NaN
    score, the pool itself must be finite), column 1 the predicted class, the
    other columns the embedding. Counts the rows it sees."""

    n_classes = 4
    NAN_CODE = -12345.0

    def __init__(self):
        self.rows = {"score": 0, "proba": 0, "embed": 0}

    @staticmethod
    def _flat(X):
        X = np.asarray(X, dtype=np.float64)
        return X.reshape(len(X), -1)

    def _score(self, X):
        self.rows["score"] += len(X)
        score = self._flat(X)[:, 0]
        return np.where(score == self.NAN_CODE, np.nan, score)

    predict_loss = _score          # loss_prediction_sampling: highest first
    predict_correctness = _score   # critic_sampling: lowest first

    def predict_proba(self, X):
        self.rows["proba"] += len(X)
        classes = self._flat(X)[:, 1].astype(int)
        proba = np.full((len(X), self.n_classes), 0.1 / (self.n_classes - 1))
        proba[np.arange(len(X)), classes] = 0.9
        return proba


class FakeWithEmbedding(Fake):
    def embed(self, X):
        self.rows["embed"] += len(X)
        return self._flat(X)[:, 2:]


def make_pool(scores, classes=None, embeddings=None):
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(scores), Fake.NAN_CODE, scores)
    classes = np.zeros(len(scores)) if classes is None else np.asarray(classes, dtype=float)
    emb = np.zeros((len(scores), 2)) if embeddings is None else np.asarray(embeddings, float)
    return np.column_stack([scores, classes, emb])


def gumbel_order(log_weight, beta, gumbel):
    keys = beta * np.asarray(log_weight, dtype=np.float64) + gumbel
    return np.argsort(-keys, kind="stable")


# --------------------------------------------------------------------------- validation
SCORING = {  # name: (strategy, estimator kind for the fake)
    "critic": critic_sampling,
    "lossnet": loss_prediction_sampling,
    "entropy": entropy_sampling,
    "random": random_sampling,
}


@pytest.mark.parametrize("name", sorted(SCORING))
def test_invalid_options_raise_before_any_scoring(name):
    strategy = SCORING[name]
    est = FakeWithEmbedding()
    X = make_pool(np.arange(10.0))
    for bad in ("top-k", "TOPK", "", None, 3, ("topk",)):
        with pytest.raises(ValueError, match=r"selection must be one of \('topk', 'power', "
                                             r"'softmax', 'rank', 'balanced', 'cluster'\)"):
            strategy(est, X, n_instances=2, selection=bad)
    for bad in (0, -1.0, np.nan, np.inf, -np.inf, True, "1", None):
        with pytest.raises(ValueError, match="beta must be a finite number > 0"):
            strategy(est, X, n_instances=2, selection="power", beta=bad)
    with pytest.raises(ValueError, match="beta must be"):  # checked whatever the selection
        strategy(est, X, n_instances=2, beta=0)
    for bad in (0, -3, 1.5, True, None, "10"):
        with pytest.raises(ValueError, match="cluster_pool must be a positive integer"):
            strategy(est, X, n_instances=2, selection="cluster", cluster_pool=bad)
    assert est.rows == {"score": 0, "proba": 0, "embed": 0}
    # numpy scalars are fine
    idx = strategy(est, X, n_instances=2, selection="softmax", beta=np.float32(2),
                   cluster_pool=np.int64(3), random_state=0)
    assert len(set(idx.tolist())) == 2


def test_diversity_selections_need_proba_and_embeddings():
    X = make_pool(np.arange(10.0))
    est = Fake()  # predict_proba, no embed
    with pytest.raises(TypeError, match=r"critic_sampling needs an estimator with embeddings "
                                        r"for selection='cluster'.*`embed\(X\)`.*Fake"):
        critic_sampling(est, X, n_instances=2, selection="cluster")
    assert est.rows["score"] == 0
    with pytest.raises(TypeError, match=r"random_sampling needs a fitted classifier for "
                                        r"selection='balanced'.*predict_proba.*NoneType"):
        random_sampling(None, X, n_instances=2, selection="balanced")
    with pytest.raises(TypeError, match="embed"):
        random_sampling(LogisticRegression(), X, n_instances=2, selection="cluster")

    class ScoreOnly:
        def predict_loss(self, X):  # pragma: no cover - never reached
            raise AssertionError("scored before the options were checked")

    with pytest.raises(TypeError, match="loss_prediction_sampling needs a fitted classifier "
                                        "for selection='balanced'"):
        loss_prediction_sampling(ScoreOnly(), X, n_instances=2, selection="balanced")
    # without a diversity selection the estimator needs neither
    assert loss_prediction_sampling(Fake(), X, n_instances=3,
                                    selection="topk").tolist() == [9, 8, 7]


# ------------------------------------------------------------ top-k and the stochastic draws
def test_rank_is_the_default_of_the_scoring_strategies_topk_of_random():
    # chosen from the measurements on the results page (docs/results.rst)
    assert DEFAULT_SELECTION == "rank"
    scores = np.array([3.0, 7.0, 7.0, 1.0, 9.0, np.nan, 0.5])
    X = make_pool(scores)
    for strategy in (loss_prediction_sampling, critic_sampling):
        for seed in range(3):
            np.testing.assert_array_equal(
                strategy(Fake(), X, n_instances=4, random_state=seed),
                strategy(Fake(), X, n_instances=4, random_state=seed, selection="rank"))
    assert loss_prediction_sampling(Fake(), X, n_instances=4,
                                    selection="topk").tolist() == [4, 1, 2, 0]
    assert critic_sampling(Fake(), X, n_instances=4, selection="topk").tolist() == [6, 3, 0, 1]
    assert inspect.signature(random_sampling).parameters["selection"].default == "topk"
    for strategy in (critic_sampling, cod_sampling, gradient_norm_sampling,
                     loss_prediction_sampling, entropy_sampling):
        assert inspect.signature(strategy).parameters["selection"].default == "rank"
        assert 'default="rank"' in strategy.__doc__
    assert loss_prediction_sampling(Fake(), X, n_instances=7,
                                    selection="topk").tolist() == [4, 1, 2, 0, 3, 6, 5]


@pytest.mark.parametrize("a, b", [(1000.0, -959.0), (3.0, 2.0), (1e-4, -5.0)])
def test_default_selection_is_invariant_to_affine_maps_of_the_scores(a, b):
    # nearly equal scores (as COD's of a fitted TODNet, 0.9591 to 0.9600) and a*s + b:
    # the same batch for the same random_state (power's weights s**beta depend on b)
    scores = np.random.RandomState(0).uniform(0.9591, 0.9600, size=200)
    for strategy in (loss_prediction_sampling, critic_sampling):
        for seed in range(5):
            kwargs = dict(n_instances=20, subset_size=150, random_state=seed)
            np.testing.assert_array_equal(
                strategy(Fake(), make_pool(scores), **kwargs),
                strategy(Fake(), make_pool(a * scores + b), **kwargs))


@pytest.mark.parametrize("selection", STOCHASTIC)
@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_stochastic_selection_is_gumbel_top_k_on_one_random_stream(selection, beta):
    rng = np.random.RandomState(0)
    scores = rng.gamma(2.0, size=50)
    X = make_pool(scores)
    got = loss_prediction_sampling(Fake(), X, n_instances=6, subset_size=20, random_state=7,
                                   selection=selection, beta=beta)
    # the query's stream: the candidate draw first, then one Gumbel number per candidate
    stream = np.random.RandomState(7)
    cand = np.sort(stream.choice(50, size=20, replace=False))
    gumbel = stream.gumbel(size=20)
    s = scores[cand]
    log_weight = {"power": np.log(s), "softmax": s,
                  "rank": -np.log(np.argsort(np.argsort(-s, kind="stable")) + 1.0)}[selection]
    np.testing.assert_array_equal(got, cand[gumbel_order(log_weight, beta, gumbel)[:6]])
    # same seed (int or RandomState), same query; other seeds, other queries
    again = loss_prediction_sampling(Fake(), X, n_instances=6, subset_size=20,
                                     random_state=np.random.RandomState(7),
                                     selection=selection, beta=beta)
    np.testing.assert_array_equal(got, again)
    others = [loss_prediction_sampling(Fake(), X, n_instances=6, subset_size=20,
                                       random_state=s, selection=selection, beta=beta)
              for s in (8, 9)]
    assert all(not np.array_equal(got, o) for o in others)


def test_power_shifts_negative_scores_by_their_minimum():
    # critic_sampling queries the lowest correctness: its scores are negated, then
    # shifted by their minimum, so the most likely correct sample has weight 0
    correctness = np.array([0.1, 0.5, 0.9, 0.3])
    X = make_pool(correctness)
    got = critic_sampling(Fake(), X, n_instances=3, random_state=3, selection="power",
                          beta=2.0)
    stream = np.random.RandomState(3)
    oriented = -correctness
    weight = oriented - oriented.min()  # [0.8, 0.4, 0, 0.6]
    with np.errstate(divide="ignore"):
        expected = gumbel_order(np.log(weight), 2.0, stream.gumbel(size=4))[:3]
    np.testing.assert_array_equal(got, expected)
    for seed in range(200):  # weight 0: only when needed, then last
        assert 2 not in critic_sampling(Fake(), X, n_instances=3, random_state=seed,
                                        selection="power")
        assert critic_sampling(Fake(), X, n_instances=4, random_state=seed,
                               selection="power")[-1] == 2


def _inclusion(p):
    """P(i in a sample of 2 drawn without replacement with probabilities p)."""
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    out = p.copy()
    for j in range(len(p)):
        if p[j] < 1:
            mask = np.arange(len(p)) != j
            out[mask] += p[j] * p[mask] / (1 - p[j])
    return out


@pytest.mark.parametrize("selection, weights", [
    ("power", [4.0, 3.0, 2.0, 1.0, 0.0]),
    ("softmax", np.exp([4.0, 3.0, 2.0, 1.0, 0.0])),
    ("rank", 1.0 / np.arange(1, 6)),
])
def test_stochastic_selection_samples_without_replacement_with_the_documented_probabilities(
        selection, weights):
    X = make_pool([4.0, 3.0, 2.0, 1.0, 0.0])
    n_draws = 3000
    first = np.zeros(5)
    included = np.zeros(5)
    for seed in range(n_draws):
        idx = loss_prediction_sampling(Fake(), X, n_instances=2, random_state=seed,
                                       selection=selection)
        assert idx[0] != idx[1]
        first[idx[0]] += 1
        included[idx] += 1
    p = np.asarray(weights) / np.sum(weights)
    # first pick ~ p, the pair ~ sampling without replacement (3.3 sigma at most)
    np.testing.assert_allclose(first / n_draws, p, atol=0.03)
    np.testing.assert_allclose(included / n_draws, _inclusion(weights), atol=0.03)
    if selection == "power":
        assert first[4] == 0 and included[4] == 0  # weight 0: never sampled


@pytest.mark.parametrize("selection", STOCHASTIC)
def test_large_beta_tends_to_topk(selection):
    rng = np.random.RandomState(1)
    X = make_pool(rng.uniform(1, 2, size=40))
    topk = loss_prediction_sampling(Fake(), X, n_instances=8, selection="topk")
    for seed in range(5):
        np.testing.assert_array_equal(
            loss_prediction_sampling(Fake(), X, n_instances=8, random_state=seed,
                                     selection=selection, beta=1e9), topk)
    # beta = 1: a random batch, not the top-k
    assert any(not np.array_equal(loss_prediction_sampling(
        Fake(), X, n_instances=8, random_state=s, selection=selection), topk)
        for s in range(5))


@pytest.mark.parametrize("selection", SELECTIONS)
def test_nan_scores_are_picked_only_when_needed_and_last(selection):
    scores = np.array([np.nan, 2.0, 5.0, np.nan, 1.0, 3.0])
    rng = np.random.RandomState(0)
    X = make_pool(scores, classes=[0, 1, 1, 2, 2, 0], embeddings=rng.randn(6, 2))
    for seed in range(30):
        idx = loss_prediction_sampling(FakeWithEmbedding(), X, n_instances=4,
                                       random_state=seed, selection=selection, cluster_pool=2)
        assert set(idx.tolist()) == {1, 2, 4, 5}
        full = loss_prediction_sampling(FakeWithEmbedding(), X, n_instances=6,
                                        random_state=seed, selection=selection)
        assert sorted(full.tolist()) == list(range(6))
        assert full[4:].tolist() == [0, 3]  # NaN last, by index


# ------------------------------------------------------------------- the proposal of a draw
# pool of the fixed-output test: 40 scores, two NaN, recorded with the code before
# return_proposal existed (commit 4364b7e)
FIXED_SCORES = np.array([
    2.304, 1.275, 7.186, np.nan, 0.747, 1.014, 0.552, 1.416, 0.309, 0.916, 0.378, 2.645,
    0.775, 1.179, 3.312, 2.766, 1.671, np.nan, 2.914, 0.977, 1.659, 1.54, 1.935, 4.052,
    1.302, 1.123, 2.04, 3.953, 1.269, 1.54, 0.483, 0.926, 1.532, 1.165, 3.263, 2.513,
    1.683, 3.721, 1.573, 4.547])
FIXED_QUERIES = {  # selection: (whole pool, subset_size=25, pool_indices + subset, beta=2)
    "power": ([16, 1, 6, 11, 28, 14], [30, 4, 26, 21, 9, 39], [19, 21, 25, 1]),
    "softmax": ([2, 16, 1, 14, 23, 6], [30, 4, 9, 21, 26, 6], [19, 21, 25, 31]),
    "rank": ([16, 6, 1, 2, 14, 11], [30, 4, 9, 21, 26, 39], [19, 31, 25, 21]),
}


def _fixed_queries(selection, **extra):
    X = make_pool(FIXED_SCORES)
    return (loss_prediction_sampling(Fake(), X, n_instances=6, random_state=11,
                                     selection=selection, **extra),
            critic_sampling(Fake(), X, n_instances=6, random_state=11, selection=selection,
                            subset_size=25, **extra),
            critic_sampling(Fake(), X, n_instances=4, random_state=12, selection=selection,
                            beta=2.0, subset_size=10, pool_indices=np.arange(39, 0, -2),
                            **extra))


@pytest.mark.parametrize("selection", STOCHASTIC)
def test_return_proposal_leaves_the_query_unchanged(selection):
    default = _fixed_queries(selection)
    for got, expected in zip(default, FIXED_QUERIES[selection]):
        assert got.dtype == np.intp and got.tolist() == expected
    explicit_off = _fixed_queries(selection, return_proposal=False)
    with_proposal = _fixed_queries(selection, return_proposal=True)
    for off, plain, (idx, proposal) in zip(explicit_off, default, with_proposal):
        np.testing.assert_array_equal(off, plain)
        np.testing.assert_array_equal(idx, plain)
        assert isinstance(proposal, Proposal) and idx.dtype == np.intp
        np.testing.assert_array_equal(proposal.indices, idx)
    # the default selection is "rank": the same without naming it
    X = make_pool(FIXED_SCORES)
    assert loss_prediction_sampling(Fake(), X, n_instances=6,
                                    random_state=11).tolist() == FIXED_QUERIES["rank"][0]


@pytest.mark.parametrize("selection", STOCHASTIC)
def test_proposal_is_over_the_candidates_of_the_query(selection):
    X = make_pool(FIXED_SCORES)
    # whole pool: the candidates are its rows; weight 0 for the NaN scores
    idx, prop = loss_prediction_sampling(Fake(), X, n_instances=6, random_state=11,
                                         selection=selection, return_proposal=True)
    np.testing.assert_array_equal(prop.candidates, np.arange(40))
    np.testing.assert_array_equal(prop.positions, idx)
    assert not np.shares_memory(prop.positions, idx)  # the caller may write into idx
    assert prop.selection == selection and prop.beta == 1.0
    lw = log_weights(FIXED_SCORES, selection)
    np.testing.assert_allclose(prop.p, np.exp(lw) / np.exp(lw).sum(), rtol=1e-12)
    assert prop.p[[3, 17]].tolist() == [0.0, 0.0] and not prop.full_support
    np.testing.assert_allclose(prop.q, draw_probabilities(prop.p, idx), rtol=1e-12)
    # a random subset of the rows pool_indices: the candidates, rows of X_pool, as the
    # query's stream drew them (the order of pool_indices)
    pool = np.arange(39, 0, -2)
    idx, prop = critic_sampling(Fake(), X, n_instances=4, random_state=12, selection=selection,
                                beta=2.0, subset_size=10, pool_indices=pool,
                                return_proposal=True)
    stream = np.random.RandomState(12)
    cand = pool[np.sort(stream.choice(20, size=10, replace=False))]
    np.testing.assert_array_equal(prop.candidates, cand)
    np.testing.assert_array_equal(prop.candidates[prop.positions], idx)
    lw = log_weights(FIXED_SCORES[cand], selection, beta=2.0, largest=False)
    # the Gumbel noise of the query is the next draw of the stream: the same order
    order = gumbel_order(lw, 1.0, stream.gumbel(size=10))[:4]
    np.testing.assert_array_equal(prop.positions, order)
    np.testing.assert_allclose(prop.p, np.exp(lw) / np.exp(lw).sum(), rtol=1e-12)
    assert abs(prop.p.sum() - 1) < 1e-12 and prop.beta == 2.0
    np.testing.assert_allclose(prop.q, draw_probabilities(prop.p, prop.positions), rtol=1e-12)
    assert np.all((prop.q > 0) & (prop.q <= 1))


@pytest.mark.parametrize("selection", STOCHASTIC)
def test_reported_draw_probabilities_are_the_empirical_frequencies(selection):
    """P(first = i) and P(first = i, second = j) over seeds against the reported p, q."""
    X = make_pool([4.0, 3.0, 2.0, 1.0, 0.5])
    n_draws = 3000
    first = np.zeros(5)
    pairs = np.zeros((5, 5))
    reported_first, reported_pairs = {}, {}
    for seed in range(n_draws):
        idx, prop = loss_prediction_sampling(Fake(), X, n_instances=2, random_state=seed,
                                             selection=selection, return_proposal=True)
        i, j = idx
        first[i] += 1
        pairs[i, j] += 1
        assert prop.q[0] == pytest.approx(prop.p[i], rel=1e-12)
        # the same pair always has the same reported probabilities
        np.testing.assert_allclose(reported_first.setdefault(i, prop.p), prop.p, rtol=1e-12)
        reported_pairs.setdefault((i, j), prop.q[0] * prop.q[1])
        assert reported_pairs[i, j] == pytest.approx(prop.q[0] * prop.q[1], rel=1e-12)
    p = next(iter(reported_first.values()))
    expected_pairs = np.zeros((5, 5))
    for (i, j), value in reported_pairs.items():
        expected_pairs[i, j] = value
    # 4 standard errors of a binomial frequency (and the unseen pairs: nearly impossible)
    for freq, prob in ((first / n_draws, p), (pairs / n_draws, expected_pairs)):
        bound = 4 * np.sqrt(prob * (1 - prob) / n_draws) + 1e-3
        assert np.all(np.abs(freq - prob) <= bound), (freq, prob)
    assert abs(expected_pairs.sum() - 1) < 0.01  # (almost) every pair was seen


def test_proposal_is_refused_without_a_stochastic_selection_before_any_scoring():
    X = make_pool(np.arange(10.0))
    for strategy in (critic_sampling, loss_prediction_sampling, entropy_sampling,
                     random_sampling):
        for selection in ("topk", "balanced", "cluster"):
            est = FakeWithEmbedding()
            with pytest.raises(ValueError, match=rf"{strategy.__name__}\(\.\.\., "
                                                 rf"return_proposal=True\) needs a stochastic "
                                                 rf"selection.*selection='{selection}'"):
                strategy(est, X, n_instances=2, selection=selection, return_proposal=True)
            assert est.rows == {"score": 0, "proba": 0, "embed": 0}
        for bad in (1, "yes", None, [True]):
            with pytest.raises(TypeError, match="return_proposal must be True or False"):
                strategy(Fake(), X, n_instances=2, selection="rank", return_proposal=bad)
    # random_sampling's default is "topk": the proposal needs a stochastic selection
    with pytest.raises(ValueError, match="selection='topk'"):
        random_sampling(None, X, n_instances=2, return_proposal=True)
    with pytest.raises(ValueError, match=r"choose\(\.\.\., return_proposal=True\).*'topk'"):
        choose(np.arange(5.0), 2, largest=True, return_proposal=True)
    with pytest.raises(ValueError, match="log_weights needs a stochastic selection.*'cluster'"):
        log_weights(np.arange(5.0), "cluster")
    with pytest.raises(ValueError, match="selection must be one of"):
        log_weights(np.arange(5.0), "Rank")
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        log_weights(np.arange(5.0), "rank", beta=0)
    # numpy booleans are fine
    idx, prop = loss_prediction_sampling(Fake(), X, n_instances=2, random_state=0,
                                         return_proposal=np.bool_(True))
    np.testing.assert_array_equal(idx, loss_prediction_sampling(Fake(), X, n_instances=2,
                                                                random_state=0))


def test_proposal_is_exact_for_a_cold_draw_and_for_weights_zero():
    # beta = 200: the first draws take nearly all the mass; 1 - cumsum(p) would be 0
    scores = np.linspace(0.0, 1.0, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        positions, prop = choose(scores, 30, largest=True, selection="softmax", beta=200.0,
                                 rng=np.random.RandomState(0), return_proposal=True)
    assert np.all(np.isfinite(prop.q)) and np.all((prop.q > 0) & (prop.q <= 1))
    lw = 200.0 * scores
    for m, i in enumerate(positions):  # w_i / (the weights not drawn yet), in log space
        left = np.delete(lw, positions[:m])
        expected = np.exp(lw[i] - left.max()) / np.exp(left - left.max()).sum()
        assert prop.q[m] == pytest.approx(expected, rel=1e-9)
    assert prop.q[-1] == 1.0  # the last candidate left
    # power: the lowest score has weight 0 (shift by the minimum), drawn last, surely
    positions, prop = choose(np.array([-1.0, 2.0, 0.5]), 3, largest=True, selection="power",
                             rng=np.random.RandomState(1), return_proposal=True)
    assert positions[-1] == 0 and prop.p[0] == 0 and prop.q[-1] == 1.0
    assert not prop.full_support
    # every weight 0 (all NaN): a deterministic draw
    positions, prop = choose(np.full(3, np.nan), 2, largest=True, selection="rank",
                             rng=np.random.RandomState(1), return_proposal=True)
    assert positions.tolist() == [0, 1] and prop.q.tolist() == [1.0, 1.0]
    assert prop.p.tolist() == [1.0, 0.0, 0.0]


# --------------------------------------------------------------------------- balanced
def naive_round_robin(scores, classes, n, largest=True):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i] if largest else scores[i], i))
    queues = OrderedDict()
    for i in order:
        queues.setdefault(classes[i], []).append(i)
    out = []
    while len(out) < n:
        for queue in queues.values():
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


def test_balanced_round_robin_by_class_and_score():
    scores = np.array([6.0, 9.0, 4.0, 8.0, 1.0, 7.0, 3.0, 5.0])
    classes = np.array([1, 0, 2, 0, 2, 0, 2, 1])
    X = make_pool(scores, classes)
    est = Fake()
    got = loss_prediction_sampling(est, X, n_instances=7, selection="balanced")
    # classes by their best score: 0 (9), 1 (6), 2 (4); best first within a class
    assert got.tolist() == [1, 0, 2, 3, 7, 6, 5]
    assert got.tolist() == naive_round_robin(scores, classes, 7)
    assert est.rows == {"score": 8, "proba": 8, "embed": 0}  # one predict_proba pass
    # lowest first for the critic
    got = critic_sampling(Fake(), X, n_instances=5, selection="balanced")
    assert got.tolist() == [4, 7, 5, 6, 0] == naive_round_robin(scores, classes, 5, False)


def test_balanced_matches_a_naive_round_robin_with_a_subset():
    rng = np.random.RandomState(0)
    scores = rng.randn(200)
    classes = rng.choice(4, size=200, p=[0.7, 0.2, 0.07, 0.03])
    X = make_pool(scores, classes)
    for seed in range(3):
        got = loss_prediction_sampling(Fake(), X, n_instances=30, subset_size=120,
                                       random_state=seed, selection="balanced")
        cand = np.sort(np.random.RandomState(seed).choice(200, size=120, replace=False))
        expected = cand[naive_round_robin(scores[cand], classes[cand], 30)]
        np.testing.assert_array_equal(got, expected)
        counts = np.bincount(classes[got], minlength=4)
        available = np.bincount(classes[cand], minlength=4)
        # as balanced as the candidates allow
        assert all(c == a or c >= counts.max() - 1 for c, a in zip(counts, available))


# --------------------------------------------------------------------------- cluster
def test_cluster_takes_the_best_of_each_cluster():
    rng = np.random.RandomState(0)
    centers = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    blob = np.repeat(np.arange(3), 10)
    emb = centers[blob] + rng.randn(30, 2)
    scores = np.where(blob == 0, 10.0, 0.0) + rng.rand(30)  # top-k: all in blob 0
    X = make_pool(scores, embeddings=emb)
    topk = loss_prediction_sampling(Fake(), X, n_instances=3, selection="topk")
    assert set(blob[topk]) == {0}
    for seed in range(3):
        est = FakeWithEmbedding()
        got = loss_prediction_sampling(est, X, n_instances=3, random_state=seed,
                                       selection="cluster")
        best = [int(np.flatnonzero(blob == b)[np.argmax(scores[blob == b])]) for b in range(3)]
        # one per cluster, the best of each, clusters by their best score
        assert got.tolist() == sorted(best, key=lambda i: -scores[i])
        assert est.rows["embed"] == 30  # min(30 candidates, 10 * 3)
    # only the cluster_pool * n_instances best candidates are embedded and clustered
    est = FakeWithEmbedding()
    got = loss_prediction_sampling(est, X, n_instances=3, random_state=0,
                                   selection="cluster", cluster_pool=3)
    assert est.rows["embed"] == 9 and set(blob[got]) == {0}
    # cluster_pool=1: each of the top n is its own cluster, nothing is embedded
    est = FakeWithEmbedding()
    got = loss_prediction_sampling(est, X, n_instances=3, selection="cluster", cluster_pool=1)
    np.testing.assert_array_equal(got, topk)
    assert est.rows["embed"] == 0


def test_cluster_fills_the_shortfall_by_score_on_duplicated_embeddings():
    X = make_pool(np.arange(20.0)[::-1], embeddings=np.ones((20, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the empty clusters are handled, not warned about
        got = loss_prediction_sampling(FakeWithEmbedding(), X, n_instances=5,
                                       random_state=0, selection="cluster")
    assert got.tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- random sampling
def test_random_sampling_accepts_every_selection():
    X = make_pool(np.zeros(30), classes=np.repeat([0, 1, 2], 10),
                  embeddings=np.random.RandomState(0).randn(30, 2))
    counts = np.zeros(30)
    for seed in range(300):
        idx = random_sampling(None, X, n_instances=3, random_state=seed, selection="softmax")
        counts[idx] += 1
        # the stream: candidates (none here), then the uniform scores, then the Gumbel noise
        stream = np.random.RandomState(seed)
        u = stream.random_sample(30)
        expected = gumbel_order(u, 1.0, stream.gumbel(size=30))[:3]
        np.testing.assert_array_equal(idx, expected)
    assert counts.min() > 10 and counts.max() < 60  # uniform: 30 expected each
    # balanced: a class-balanced random sample
    for seed in range(20):
        idx = random_sampling(FakeWithEmbedding(), X, n_instances=6, random_state=seed,
                              selection="balanced")
        assert np.bincount(idx // 10, minlength=3).tolist() == [2, 2, 2]
        idx = random_sampling(FakeWithEmbedding(), X, n_instances=6, random_state=seed,
                              selection="cluster")
        assert len(set(idx.tolist())) == 6


def test_entropy_and_random_balanced_with_a_scikit_learn_classifier():
    X, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X[:300], y[:300])
    pool = X[300:900]
    top = entropy_sampling(clf, pool, n_instances=5, selection="topk")
    H = classifier_entropy(clf, pool)
    np.testing.assert_array_equal(top, np.argsort(-H, kind="stable")[:5])
    idx = entropy_sampling(clf, pool, n_instances=20, selection="balanced")
    pred = clf.predict(pool)
    np.testing.assert_array_equal(idx, naive_round_robin(H, pred, 20))
    idx = random_sampling(clf, pool, n_instances=20, random_state=0, selection="balanced")
    assert np.bincount(pred[idx], minlength=10).max() == 2


# ------------------------------------------------------------------ with the package's nets
TINY = dict(module__width=4, max_epochs=2, input_shape=(1, 8, 8), device="cpu",
            random_state=0, batch_size=64)

NET_STRATEGIES = {  # name: (strategy, estimator kind)
    "critic": (critic_sampling, "critic"),
    "lossnet": (loss_prediction_sampling, "lossnet"),
    "cod": (cod_sampling, "plain"),
    "gradnorm": (gradient_norm_sampling, "plain"),
    "entropy": (entropy_sampling, "plain"),
    "random": (random_sampling, "plain"),
}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


@pytest.fixture(scope="module")
def nets(digits):
    X, y = digits
    return {"plain": ResNetClassifier(**TINY).fit(X[:150], y[:150]),
            "critic": CriticLossNet(critic__hidden=8, **TINY).fit(X[:150], y[:150]),
            "lossnet": LossPredictionNet(loss_head__hidden=8, **TINY).fit(X[:150], y[:150]),
            "tod": TODNet(**TINY).fit(X[:150], y[:150], X_unlabeled=X[150:450])}


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("name", sorted(NET_STRATEGIES))
def test_every_strategy_with_every_selection(name, selection, nets, digits):
    strategy, kind = NET_STRATEGIES[name]
    est = nets[kind]
    pool = digits[0][150:450]
    kwargs = dict(n_instances=12, subset_size=100, random_state=5, selection=selection)
    idx = strategy(est, pool, **kwargs)
    assert isinstance(idx, np.ndarray) and idx.dtype == np.intp and idx.shape == (12,)
    assert len(np.unique(idx)) == 12
    cand = np.sort(np.random.RandomState(5).choice(300, size=100, replace=False))
    assert set(idx.tolist()) <= set(cand.tolist())
    np.testing.assert_array_equal(idx, strategy(est, pool, **kwargs))
    np.testing.assert_array_equal(
        idx, strategy(est, pool, **dict(kwargs, random_state=np.random.RandomState(5))))
    if selection in STOCHASTIC:  # the same query, with its proposal over the candidates
        same, proposal = strategy(est, pool, return_proposal=True, **kwargs)
        np.testing.assert_array_equal(same, idx)
        np.testing.assert_array_equal(proposal.candidates, cand)
        np.testing.assert_array_equal(proposal.indices, idx)
        assert proposal.p.shape == (100,) and abs(proposal.p.sum() - 1) < 1e-9
        assert proposal.q.shape == (12,) and np.all((proposal.q > 0) & (proposal.q <= 1))
    # the whole candidate set when n_instances equals it
    everything = strategy(est, pool, n_instances=100, subset_size=100, random_state=5,
                          selection=selection)
    np.testing.assert_array_equal(np.sort(everything), cand)


@pytest.mark.parametrize("name, largest", [("entropy", True), ("critic", False)])
def test_diversity_selections_on_nets_match_naive_references(name, largest, nets, digits):
    strategy, kind = NET_STRATEGIES[name]
    est = nets[kind]
    pool = digits[0][150:450]
    util = classifier_entropy if name == "entropy" else critic_correctness
    cand = np.sort(np.random.RandomState(2).choice(300, size=150, replace=False))
    scores = util(est, pool[cand])
    # balanced: round-robin over the predicted classes of the candidates
    got = strategy(est, pool, n_instances=20, subset_size=150, random_state=2,
                   selection="balanced")
    pred = est.predict_proba(pool[cand]).argmax(1)
    np.testing.assert_array_equal(got, cand[naive_round_robin(scores, pred, 20, largest)])
    # cluster: k-means (seeded from the query's stream) on the top 4 * 8 embeddings
    got = strategy(est, pool, n_instances=8, subset_size=150, random_state=2,
                   selection="cluster", cluster_pool=4)
    stream = np.random.RandomState(2)
    stream.choice(300, size=150, replace=False)
    seed = stream.randint(np.iinfo(np.int32).max)
    ranking = np.argsort(-scores if largest else scores, kind="stable")
    top = ranking[:32]
    labels = KMeans(n_clusters=8, n_init=1, random_state=seed).fit(
        est.embed(pool[cand[top]]).astype(np.float64)).labels_
    best = [top[np.flatnonzero(labels == c)[0]] for c in range(8)]
    expected = sorted(best, key=lambda i: np.flatnonzero(ranking == i)[0])
    np.testing.assert_array_equal(got, cand[expected])


def test_balanced_selection_spreads_the_batch_over_classes(nets, digits):
    """Why the selections exist: top-k batches concentrate on few predicted classes."""
    est = nets["plain"]
    pool = digits[0][150:1150]
    pred = est.predict(pool)

    def n_classes(idx):
        return len(np.unique(pred[idx]))

    topk = entropy_sampling(est, pool, n_instances=40)
    balanced = entropy_sampling(est, pool, n_instances=40, selection="balanced")
    assert n_classes(balanced) == len(np.unique(pred))
    assert n_classes(balanced) >= n_classes(topk)
    assert np.bincount(pred[balanced]).max() <= np.bincount(pred[topk]).max()


# (strategy, utility, estimator kind, larger is better) for the preference test
UTILITIES = {
    "critic": (critic_sampling, critic_correctness, "critic", False),
    "cod": (cod_sampling, cyclic_output_discrepancy, "tod", True),
    "gradnorm": (gradient_norm_sampling, entropy_gradient_norm, "lossnet", True),
    "lossnet": (loss_prediction_sampling, predicted_loss, "lossnet", True),
    "entropy": (entropy_sampling, classifier_entropy, "plain", True),
}


def _mean_percentile(oriented, batches):
    """Mean percentile (0 worst, 1 best candidate) of the chosen batches."""
    percentile = np.argsort(np.argsort(oriented, kind="stable")) / (len(oriented) - 1)
    return float(np.mean([percentile[b].mean() for b in batches]))


@pytest.mark.parametrize("name", sorted(UTILITIES))
def test_default_selection_prefers_high_scores_on_fitted_nets(name, nets, digits):
    """The default batch is far from a uniform one: uniform batches have mean
    percentile 0.5, with a standard deviation of 0.015 over 20 batches of 20 of 300
    (<= 0.29 / sqrt(20) / sqrt(20)); 0.7 is 13 of them above."""
    strategy, utility, kind, largest = UTILITIES[name]
    est = nets[kind]
    pool = digits[0][150:450]
    scores = utility(est, pool)
    oriented = scores if largest else -scores
    batches = [strategy(est, pool, n_instances=20, random_state=seed) for seed in range(20)]
    assert _mean_percentile(oriented, batches) > 0.7
    uniform = [np.random.RandomState(seed).permutation(300)[:20] for seed in range(20)]
    assert abs(_mean_percentile(oriented, uniform) - 0.5) < 0.06


def test_default_selection_prefers_high_scores_when_they_are_nearly_equal():
    # the flat case: a fitted TODNet's COD scores lay in 0.9591..0.9600
    scores = np.random.RandomState(1).uniform(0.9591, 0.9600, size=300)
    batches = [loss_prediction_sampling(Fake(), make_pool(scores), n_instances=20,
                                        random_state=seed) for seed in range(20)]
    assert _mean_percentile(scores, batches) > 0.7


def test_rank_gives_tied_scores_their_average_rank():
    """Equal scores weigh the same wherever they sit in the pool: a block of ties
    (every entropy of identical rows, COD 0 where the model did not change)
    is drawn uniformly, not from its first rows."""
    lw = log_weights(np.array([0.5, 0.9, 0.5, 0.1, 0.5, np.nan]), "rank")
    np.testing.assert_allclose(lw[:5], -np.log([3.0, 1.0, 3.0, 5.0, 3.0]))  # ranks 2-4: 3
    assert lw[5] == -np.inf
    # without ties, the ranks 1..n as before
    np.testing.assert_allclose(log_weights(np.array([0.2, 0.7, 0.4]), "rank"),
                               -np.log([3.0, 1.0, 2.0]))
    X, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(X[:300], y[:300])
    pool = np.repeat(X[300:301], 200, axis=0)  # 200 identical rows: one entropy
    picks = np.concatenate([entropy_sampling(clf, pool, n_instances=1, random_state=s)
                            for s in range(400)])
    counts = np.bincount(picks, minlength=200)
    # uniform: 2 expected per row, 400 in all; by position, row 0 took 20% of the picks
    assert counts.max() <= 10 and counts[:10].sum() <= 45
