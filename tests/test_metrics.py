"""Tests for sklearn_crtcl.metrics."""

import math

import numpy as np
import pytest

from sklearn_crtcl.metrics import (
    BIN_STRATEGIES,
    CALIBRATION_SCORERS,
    ProbaScorer,
    ReliabilityCurve,
    brier_score,
    brier_scorer,
    classwise_calibration_error,
    classwise_ece_scorer,
    ece_scorer,
    energy_score,
    equal_mass_ece_scorer,
    expected_calibration_error,
    get_scorer,
    make_proba_scorer,
    max_probability_score,
    maximum_calibration_error,
    mce_scorer,
    negative_log_likelihood,
    nll_scorer,
    ood_auroc,
    reliability_curve,
)

ALL_METRICS = [expected_calibration_error, brier_score, negative_log_likelihood,
               maximum_calibration_error, classwise_calibration_error]
BINNED_METRICS = [expected_calibration_error, maximum_calibration_error,
                  classwise_calibration_error, reliability_curve]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models: avoid BLAS/OpenMP/torch thread oversubscription."""
    from threadpoolctl import threadpool_limits

    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    n_torch = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(n_torch)


def _random_proba(rng, n, k, sharpness=3.0):
    logits = rng.normal(scale=sharpness, size=(n, k))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_ece(y, proba, n_bins):
    """Brute-force ECE: explicit loop over bins (m-1)/M < conf <= m/M."""
    conf = [max(row) for row in proba.tolist()]
    pred = [int(np.argmax(row)) for row in proba]
    n = len(conf)
    ece = 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        members = [
            i for i in range(n)
            if (lo < conf[i] <= hi) or (m == 1 and conf[i] == 0.0)
        ]
        if not members:
            continue
        acc = sum(pred[i] == y[i] for i in members) / len(members)
        avg_conf = sum(conf[i] for i in members) / len(members)
        ece += len(members) / n * abs(acc - avg_conf)
    return ece


# ---------------------------------------------------------------------------
# ECE: hand-computed values
# ---------------------------------------------------------------------------


def test_ece_hand_computed_binary():
    # n_bins=5 -> bins (0,.2], (.2,.4], (.4,.6], (.6,.8], (.8,1]
    # s0: conf .95, pred 0, y 0 -> correct, bin (.8,1]
    # s1: conf .85, pred 0, y 1 -> wrong,   bin (.8,1]
    # s2: conf .70, pred 1, y 1 -> correct, bin (.6,.8]
    # s3: conf .55, pred 0, y 1 -> wrong,   bin (.4,.6]
    # bin (.8,1]:  |B|=2, acc .5, conf .90 -> 2/4 * .40 = .2
    # bin (.6,.8]: |B|=1, acc 1., conf .70 -> 1/4 * .30 = .075
    # bin (.4,.6]: |B|=1, acc 0., conf .55 -> 1/4 * .55 = .1375
    # ECE = .4125
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])
    assert expected_calibration_error(y, proba, n_bins=5) == pytest.approx(0.4125)

    curve = reliability_curve(y, proba, n_bins=5)
    np.testing.assert_array_equal(curve.count, [0, 0, 1, 1, 2])
    np.testing.assert_allclose(curve.accuracy[2:], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(curve.confidence[2:], [0.55, 0.70, 0.90])
    assert np.all(np.isnan(curve.accuracy[:2]))
    assert np.all(np.isnan(curve.confidence[:2]))


def test_ece_hand_computed_multiclass():
    # 3 classes, n_bins=2 -> bins (0,.5], (.5,1]
    # s0: [.6,.3,.1]  y0: conf .6  correct -> bin 2
    # s1: [.2,.7,.1]  y2: conf .7  wrong   -> bin 2
    # s2: [.4,.35,.25] y0: conf .4 correct -> bin 1
    # s3: [.1,.1,.8]  y2: conf .8  correct -> bin 2
    # s4: [.45,.45,.1] y1: conf .45, argmax 0 (first tie) -> wrong, bin 1
    # bin 1: |B|=2 acc .5,  conf .425 -> 2/5 * .075 = .03
    # bin 2: |B|=3 acc 2/3, conf .7   -> 3/5 * (.7 - 2/3) = .02
    # ECE = .05
    proba = np.array(
        [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25],
         [0.1, 0.1, 0.8], [0.45, 0.45, 0.1]]
    )
    y = [0, 2, 0, 2, 1]
    assert expected_calibration_error(y, proba, n_bins=2) == pytest.approx(0.05)


def test_ece_perfect_calibration_is_zero():
    # 10 samples with confidence .8 of which 8 are correct, 4 with
    # confidence .5 of which 2 are correct -> every bin is calibrated.
    proba = np.array([[0.8, 0.2]] * 10 + [[0.5, 0.5]] * 4)
    y = np.array([0] * 8 + [1] * 2 + [0, 0, 1, 1])
    for n_bins in (1, 2, 10, 15):
        assert expected_calibration_error(y, proba, n_bins=n_bins) == pytest.approx(
            0.0, abs=1e-12
        )


def test_ece_one_hot_correct_and_wrong():
    proba = np.eye(4)
    assert expected_calibration_error([0, 1, 2, 3], proba) == 0.0
    assert expected_calibration_error([1, 2, 3, 0], proba) == 1.0


def test_ece_bin_boundary_is_right_closed():
    # n_bins=5: conf .6 belongs to (.4,.6], conf .65 to (.6,.8].
    # s0 conf .60 correct, s1 conf .65 wrong.
    # Right-closed bins: 1/2*|1-.6| + 1/2*|0-.65| = .2 + .325 = .525
    # (a left-closed convention would pool them: |.5 - .625| = .125)
    proba = np.array([[0.6, 0.4], [0.35, 0.65]])
    y = [0, 0]
    assert expected_calibration_error(y, proba, n_bins=5) == pytest.approx(0.525)
    np.testing.assert_array_equal(
        reliability_curve(y, proba, n_bins=5).count, [0, 0, 1, 1, 0]
    )


@pytest.mark.parametrize(
    "conf, n_bins, expected_bin",
    [
        (0.7, 10, 6),  # 0.7 * 10 = 7.000000000000001 in float: still bin 6
        (0.3, 10, 2),  # multiclass row [.3, .7/3, .7/3, .7/3]
        (0.6, 5, 2),
        # 5/6 as a float literal is above linspace(0, 1, 7)[5]; with edges
        # m / M it stays in bin (4/6, 5/6]
        (5 / 6, 6, 4),
        (0.5, 2, 0),
        (2 / 3, 3, 1),
        (1.0, 15, 14),
        (0.5 + 1e-12, 2, 1),
        (0.5, 1, 0),
    ],
)
def test_bin_assignment_at_edges(conf, n_bins, expected_bin):
    # top-class probability `conf`, the rest spread over enough classes
    k = math.ceil(1.0 / conf) + 1
    proba = np.array([[conf] + [(1.0 - conf) / (k - 1)] * (k - 1)])
    assert proba.max() == conf
    curve = reliability_curve([0], proba, n_bins=n_bins)
    expected = np.zeros(n_bins, dtype=int)
    expected[expected_bin] = 1
    np.testing.assert_array_equal(curve.count, expected)


def test_n_bins_one_equals_accuracy_minus_confidence():
    rng = np.random.default_rng(0)
    proba = _random_proba(rng, 200, 5)
    y = rng.integers(0, 5, size=200)
    acc = np.mean(proba.argmax(axis=1) == y)
    conf = np.mean(proba.max(axis=1))
    assert expected_calibration_error(y, proba, n_bins=1) == pytest.approx(
        abs(acc - conf), rel=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_bins", [1, 3, 10, 15, 37])
def test_ece_matches_brute_force_reference(seed, n_bins):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    proba = _random_proba(rng, 300, k, sharpness=float(rng.uniform(0.5, 4)))
    # make labels correlated with predictions so accuracy is not trivial
    y = np.where(rng.random(300) < 0.6, proba.argmax(axis=1),
                 rng.integers(0, k, size=300))
    # include exact bin edges among the confidences
    proba[0] = [1.0] + [0.0] * (k - 1)
    if k == 2:
        proba[1] = [0.6, 0.4]
    expected = _reference_ece(y, proba, n_bins)
    assert expected_calibration_error(y, proba, n_bins=n_bins) == pytest.approx(
        expected, rel=1e-10, abs=1e-12
    )


def test_ece_from_reliability_curve():
    rng = np.random.default_rng(1)
    proba = _random_proba(rng, 500, 4)
    y = rng.integers(0, 4, size=500)
    curve = reliability_curve(y, proba, n_bins=12)
    assert isinstance(curve, ReliabilityCurve)
    assert curve.accuracy.shape == curve.confidence.shape == curve.count.shape == (12,)
    np.testing.assert_allclose(curve.bin_edges, np.linspace(0, 1, 13))
    assert curve.count.sum() == 500 == curve.n_samples
    # ECE by hand from the curve's arrays
    mask = curve.count > 0
    ece_manual = np.sum(
        curve.count[mask] / 500 * np.abs(curve.accuracy[mask] - curve.confidence[mask])
    )
    ece = expected_calibration_error(y, proba, n_bins=12)
    assert ece == pytest.approx(ece_manual, rel=1e-12)
    assert curve.ece == pytest.approx(ece, rel=1e-12)
    np.testing.assert_allclose(curve.gap[mask],
                               (curve.confidence - curve.accuracy)[mask])
    # confidences lie inside their bins
    assert np.all(curve.confidence[mask] > curve.bin_edges[:-1][mask])
    assert np.all(curve.confidence[mask] <= curve.bin_edges[1:][mask])


def test_default_n_bins_is_15():
    rng = np.random.default_rng(2)
    proba = _random_proba(rng, 100, 3)
    y = rng.integers(0, 3, size=100)
    assert reliability_curve(y, proba).count.shape == (15,)
    assert expected_calibration_error(y, proba) == pytest.approx(
        _reference_ece(y, proba, 15)
    )


def test_float32_softmax_accepted():
    rng = np.random.default_rng(3)
    proba = _random_proba(rng, 1000, 10, sharpness=5.0).astype(np.float32)
    y = rng.integers(0, 10, size=1000)
    assert 0.0 <= expected_calibration_error(y, proba) <= 1.0
    assert brier_score(y, proba) >= 0.0
    assert negative_log_likelihood(y, proba) >= 0.0


def test_lists_accepted():
    assert expected_calibration_error([0, 1], [[0.9, 0.1], [0.2, 0.8]], n_bins=10) \
        == pytest.approx(0.15)


# ---------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------


def test_labels_mapping_matches_indices():
    rng = np.random.default_rng(4)
    proba = _random_proba(rng, 50, 3)
    idx = rng.integers(0, 3, size=50)
    labels = np.array(["cat", "dog", "emu"])
    y_str = labels[idx]
    for metric in ALL_METRICS:
        assert metric(y_str, proba, labels=labels) == pytest.approx(
            metric(idx, proba)
        )
    # non-sorted integer labels: column j is label labels[j]
    int_labels = np.array([10, 3, 7])
    assert brier_score(int_labels[idx], proba, labels=int_labels) == pytest.approx(
        brier_score(idx, proba)
    )
    curve = reliability_curve(list(y_str), proba, labels=list(labels))
    assert curve.ece == pytest.approx(expected_calibration_error(idx, proba))


def test_unknown_label_raises_naming_it():
    proba = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="'bird'"):
        expected_calibration_error(["cat", "bird"], proba, labels=["cat", "dog"])


def test_labels_wrong_length_or_duplicates():
    proba = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="labels has 3 entries"):
        brier_score(["a", "b"], proba, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="unique"):
        brier_score(["a", "a"], proba, labels=["a", "a"])


# ---------------------------------------------------------------------------
# Brier and NLL
# ---------------------------------------------------------------------------


def test_brier_hand_computed():
    # s0: p=[.7,.2,.1], y=0: .3^2 + .2^2 + .1^2 = .14
    # s1: p=[.2,.5,.3], y=2: .2^2 + .5^2 + .7^2 = .78
    # mean = .46
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    assert brier_score([0, 2], proba) == pytest.approx(0.46)
    assert brier_score([0, 1], np.eye(2)) == 0.0
    assert brier_score([1, 0], np.eye(2)) == pytest.approx(2.0)


def test_brier_binary_is_twice_sklearn():
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(5)
    p = rng.random(40)
    y = rng.integers(0, 2, size=40)
    proba = np.column_stack([1 - p, p])
    assert brier_score(y, proba) == pytest.approx(2 * brier_score_loss(y, p))


def test_nll_hand_computed():
    # -(log .7 + log .3) / 2 = (0.356675 + 1.203973) / 2 = 0.780324
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    assert negative_log_likelihood([0, 2], proba) == pytest.approx(
        -(math.log(0.7) + math.log(0.3)) / 2
    )
    assert negative_log_likelihood([0, 2], proba) == pytest.approx(0.780324, abs=1e-6)


def test_nll_matches_sklearn_log_loss():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(6)
    proba = _random_proba(rng, 80, 4)
    y = rng.integers(0, 4, size=80)
    assert negative_log_likelihood(y, proba) == pytest.approx(
        log_loss(y, proba, labels=[0, 1, 2, 3])
    )


def test_nll_eps_clipping():
    proba = np.array([[1.0, 0.0], [1.0, 0.0]])
    # sample 1 has p_true = 0 -> clipped to eps
    assert negative_log_likelihood([0, 1], proba) == pytest.approx(
        -math.log(1e-12) / 2
    )
    assert negative_log_likelihood([0, 1], proba, eps=1e-3) == pytest.approx(
        -math.log(1e-3) / 2
    )
    with pytest.raises(ValueError, match="eps"):
        negative_log_likelihood([0, 1], proba, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        negative_log_likelihood([0, 1], proba, eps=1.5)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

GOOD_P = np.array([[0.9, 0.1], [0.3, 0.7]])


@pytest.mark.parametrize("metric", ALL_METRICS + [reliability_curve])
@pytest.mark.parametrize(
    "y, proba, match",
    [
        ([0, 1], np.array([[np.nan, 0.1], [0.3, 0.7]]), "NaN or infinite"),
        ([0, 1], np.array([[np.inf, 0.1], [0.3, 0.7]]), "NaN or infinite"),
        ([0, 1], np.array([0.9, 0.3]), "Binary probabilities"),
        ([0, 1], np.ones((2, 2, 1)) / 2, "2-D array"),
        ([0, 1], np.array([[1.0], [1.0]]), "at least 2 columns"),
        ([0, 1, 1], GOOD_P, "inconsistent numbers of samples"),
        ([0], GOOD_P, "inconsistent numbers of samples"),
        ([], np.empty((0, 2)), "empty"),
        ([], GOOD_P, "empty"),
        ([0, 1], np.array([[1.1, -0.1], [0.3, 0.7]]), r"in \[0, 1\]"),
        ([0, 1], np.array([[0.6, 0.5, -0.1], [0.3, 0.7, 0.0]]), r"in \[0, 1\]"),
        ([0, 1], np.array([[0.9, 0.2], [0.3, 0.7]]), "sum to 1"),
        ([0, 1], np.array([[0.5, 0.4], [0.3, 0.7]]), "sum to 1"),
        ([0, 2], GOOD_P, "outside the valid range"),
        ([-1, 0], GOOD_P, "outside the valid range"),
        ([0.5, 1.0], GOOD_P, "integer class indices"),
        ([[0], [1]], GOOD_P, "1-D"),
    ],
)
def test_invalid_inputs_raise(metric, y, proba, match):
    with pytest.raises(ValueError, match=match):
        metric(y, proba)


def test_row_sum_tolerance():
    # off by 5e-4 -> accepted; off by 5e-3 -> rejected
    ok = np.array([[0.8995, 0.1], [0.3, 0.7]])
    assert expected_calibration_error([0, 1], ok) >= 0
    bad = np.array([[0.895, 0.1], [0.3, 0.7]])
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([0, 1], bad)


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_string_targets_without_labels_raise_type_error(metric):
    with pytest.raises(TypeError, match="labels="):
        metric(["a", "b"], GOOD_P)


@pytest.mark.parametrize("func", BINNED_METRICS)
def test_invalid_n_bins(func):
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        func([0, 1], GOOD_P, n_bins=0)
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        func([0, 1], GOOD_P, n_bins=-3)
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        func([0, 1], GOOD_P, n_bins=2.5)
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        func([0, 1], GOOD_P, n_bins=True)
    # numpy integers are fine
    assert func([0, 1], GOOD_P, n_bins=np.int64(3)) is not None


def test_non_numeric_proba_raises_type_error():
    with pytest.raises(TypeError, match="numeric"):
        brier_score([0, 1], np.array([["a", "b"], ["c", "d"]]))


def test_inputs_not_modified():
    rng = np.random.default_rng(7)
    proba = _random_proba(rng, 60, 3).astype(np.float32)
    y = rng.integers(0, 3, size=60)
    proba_copy, y_copy = proba.copy(), y.copy()
    labels = np.array(["a", "b", "c"])
    y_str = labels[y]
    y_str_copy = y_str.copy()
    proba.setflags(write=False)
    y.setflags(write=False)
    for metric in ALL_METRICS:
        metric(y, proba)
        metric(y_str, proba, labels=labels)
    reliability_curve(y, proba, n_bins=7)
    np.testing.assert_array_equal(proba, proba_copy)
    assert proba.dtype == np.float32
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(y_str, y_str_copy)
    np.testing.assert_array_equal(labels, ["a", "b", "c"])


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    proba = torch.tensor([[0.9, 0.1], [0.3, 0.7]], requires_grad=True)
    y = torch.tensor([0, 0])
    assert expected_calibration_error(y, proba, n_bins=10) == pytest.approx(
        expected_calibration_error([0, 0], [[0.9, 0.1], [0.3, 0.7]], n_bins=10)
    )


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_strings():
    from sklearn.datasets import load_iris

    data = load_iris()
    names = np.array(["setosa", "versicolor", "virginica"])
    return data.data, names[data.target]


def test_scorer_registry_and_get_scorer():
    assert set(CALIBRATION_SCORERS) == {
        "neg_expected_calibration_error",
        "neg_brier_score_multiclass",
        "neg_log_likelihood",
        "neg_equal_mass_calibration_error",
        "neg_maximum_calibration_error",
        "neg_classwise_calibration_error",
    }
    # copies (as scikit-learn's get_scorer), of the same metric, name and settings
    for name, scorer in (("neg_expected_calibration_error", ece_scorer),
                         ("neg_brier_score_multiclass", brier_scorer),
                         ("neg_log_likelihood", nll_scorer),
                         ("neg_equal_mass_calibration_error", equal_mass_ece_scorer),
                         ("neg_maximum_calibration_error", mce_scorer),
                         ("neg_classwise_calibration_error", classwise_ece_scorer)):
        got = get_scorer(name)
        assert got is not scorer and repr(got) == repr(scorer) and got.name == scorer.name
        assert got.metric is scorer.metric
    for name, scorer in CALIBRATION_SCORERS.items():
        assert scorer.__name__ == name
    assert get_scorer(ece_scorer) is ece_scorer
    assert callable(get_scorer("accuracy"))  # falls back to scikit-learn
    with pytest.raises(ValueError, match="not a valid scoring value"):
        get_scorer("no_such_scorer")
    assert ece_scorer.__name__ == "neg_expected_calibration_error"
    assert "expected_calibration_error" in repr(ece_scorer)


def test_scorers_equal_negated_metrics_on_string_labels(iris_strings):
    from sklearn.linear_model import LogisticRegression

    X, y = iris_strings
    clf = LogisticRegression(max_iter=500).fit(X, y)
    proba = clf.predict_proba(X)
    for scorer, metric, kwargs in [
        (ece_scorer, expected_calibration_error, {}),
        (brier_scorer, brier_score, {}),
        (nll_scorer, negative_log_likelihood, {}),
        (equal_mass_ece_scorer, expected_calibration_error, {"strategy": "quantile"}),
        (mce_scorer, maximum_calibration_error, {}),
        (classwise_ece_scorer, classwise_calibration_error, {}),
    ]:
        expected = -metric(y, proba, labels=clf.classes_, **kwargs)
        assert scorer(clf, X, y) == pytest.approx(expected)
        assert scorer(clf, X, y) <= 0.0
    # the mapping must be used: y as column indices gives the same value
    idx = np.searchsorted(clf.classes_, y)
    assert ece_scorer(clf, X, y) == pytest.approx(
        -expected_calibration_error(idx, proba)
    )


def test_cross_val_score_with_string_labels(iris_strings):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score, cross_validate

    X, y = iris_strings
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    clf = LogisticRegression(max_iter=500)
    scores = cross_val_score(clf, X, y, scoring=ece_scorer, cv=cv)
    assert scores.shape == (3,) and np.all(scores < 0)

    res = cross_validate(
        clf, X, y, cv=cv, return_estimator=True,
        scoring={"ece": ece_scorer, "brier": brier_scorer, "nll": nll_scorer,
                 "acc": "accuracy"},
    )
    expected = {"ece": [], "brier": [], "nll": []}
    for fitted, (_, test) in zip(res["estimator"], cv.split(X, y)):
        proba = fitted.predict_proba(X[test])
        for key, metric in [("ece", expected_calibration_error),
                            ("brier", brier_score),
                            ("nll", negative_log_likelihood)]:
            expected[key].append(-metric(y[test], proba, labels=fitted.classes_))
    for key, values in expected.items():
        np.testing.assert_allclose(res[f"test_{key}"], values, rtol=1e-6)
    np.testing.assert_allclose(scores, expected["ece"], rtol=1e-6)


def test_make_proba_scorer_kwargs(iris_strings):
    from sklearn.linear_model import LogisticRegression

    X, y = iris_strings
    clf = LogisticRegression(max_iter=500).fit(X, y)
    scorer = make_proba_scorer(expected_calibration_error, n_bins=5)
    assert isinstance(scorer, ProbaScorer)
    assert scorer.__name__ == "neg_expected_calibration_error"
    assert scorer(clf, X, y) == pytest.approx(
        -expected_calibration_error(y, clf.predict_proba(X), n_bins=5,
                                    labels=clf.classes_)
    )
    pos = make_proba_scorer(brier_score, greater_is_better=True, name="brier")
    assert pos(clf, X, y) == pytest.approx(-brier_scorer(clf, X, y))
    assert pos.__name__ == "brier"
    with pytest.raises(TypeError, match="callable"):
        ProbaScorer("ece")


def test_scorer_rejects_missing_y(iris_strings):
    from sklearn.linear_model import LogisticRegression

    X, y = iris_strings
    clf = LogisticRegression(max_iter=200).fit(X, y)
    with pytest.raises(ValueError, match="needs the true labels"):
        ece_scorer(clf, X, None)


# --- skorch -----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def _make_net(max_epochs, callbacks=(), train_split=None, seed=0):
    torch = pytest.importorskip("torch")
    skorch = pytest.importorskip("skorch")
    torch.manual_seed(seed)
    module = torch.nn.Sequential(
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
        torch.nn.Softmax(dim=-1),
    )
    kwargs = {} if train_split is None else {"train_split": train_split}
    return skorch.NeuralNetClassifier(
        module,
        max_epochs=max_epochs,
        lr=0.1,
        batch_size=128,
        callbacks=list(callbacks),
        verbose=0,
        **kwargs,
    )


def test_skorch_epoch_scoring(digits):
    torch = pytest.importorskip("torch")
    skorch = pytest.importorskip("skorch")
    from skorch.callbacks import EpochScoring
    from skorch.helper import predefined_split

    X, y = digits
    X_tr, y_tr, X_va, y_va = X[:600], y[:600], X[1200:], y[1200:]
    valid_ds = skorch.dataset.Dataset(X_va, y_va)
    net = _make_net(
        2,
        callbacks=[
            EpochScoring(ece_scorer, lower_is_better=False),
            EpochScoring(nll_scorer, lower_is_better=False),
            EpochScoring(brier_scorer, lower_is_better=False, on_train=True,
                         name="train_brier"),
        ],
        train_split=predefined_split(valid_ds),
    )
    net.fit(X_tr, y_tr)

    ece_hist = net.history[:, "neg_expected_calibration_error"]
    assert len(ece_hist) == 2
    assert all(-1.0 <= v <= 0.0 for v in ece_hist)
    assert "neg_expected_calibration_error_best" in net.history[-1]

    # the last epoch's value is the ECE of the final net on the valid set
    proba_va = net.predict_proba(X_va)
    assert ece_hist[-1] == pytest.approx(
        -expected_calibration_error(y_va, proba_va), abs=1e-6
    )
    assert net.history[-1, "neg_log_likelihood"] == pytest.approx(
        -negative_log_likelihood(y_va, proba_va), rel=1e-5
    )
    # the train_brier callback scores the training set
    assert net.history[-1, "train_brier"] < 0

    # y as a torch tensor or as numpy gives the same score
    from_tensor = ece_scorer(net, X_va, torch.as_tensor(y_va))
    assert from_tensor == pytest.approx(ece_scorer(net, X_va, y_va))


def test_skorch_default_valid_split_and_missing_classes(digits):
    pytest.importorskip("skorch")
    from skorch.callbacks import EpochScoring

    X, y = digits
    # default ValidSplit(5); valid y arrives as numpy from skorch
    net = _make_net(2, callbacks=[EpochScoring(ece_scorer, lower_is_better=False)])
    net.fit(X[:300], y[:300])
    assert np.isfinite(net.history[-1, "neg_expected_calibration_error"])

    # a labelled pool missing class 9: classes_ has 9 entries but the module
    # has 10 outputs -> y is read as column indices
    mask = y != 9
    net2 = _make_net(1, train_split=False).fit(X[mask][:300], y[mask][:300])
    assert len(net2.classes_) == 9
    proba = net2.predict_proba(X[:200])
    assert proba.shape == (200, 10)
    assert ece_scorer(net2, X[:200], y[:200]) == pytest.approx(
        -expected_calibration_error(y[:200], proba)
    )


# ---------------------------------------------------------------------------
# Equal-mass ECE, MCE and class-wise ECE
# ---------------------------------------------------------------------------


def _reference_binned(conf, outcome, edges):
    """Brute force: loop over right-closed bins (edges[m-1], edges[m]]; returns
    (ECE, MCE) of the outcome frequencies against the mean confidences."""
    n = len(conf)
    ece, mce = 0.0, 0.0
    for m in range(1, len(edges)):
        members = [i for i in range(n)
                   if edges[m - 1] < conf[i] <= edges[m] or (m == 1 and conf[i] == 0.0)]
        if not members:
            continue
        gap = abs(sum(outcome[i] for i in members) / len(members)
                  - sum(conf[i] for i in members) / len(members))
        ece += len(members) / n * gap
        mce = max(mce, gap)
    return ece, mce


def _correlated_labels(rng, proba, p_correct=0.7):
    n, k = proba.shape
    return np.where(rng.random(n) < p_correct, proba.argmax(axis=1),
                    rng.integers(0, k, size=n))


def test_equal_mass_bins_hold_equal_numbers_of_samples():
    rng = np.random.default_rng(0)
    for n, n_bins in [(100, 7), (99, 3), (1000, 15), (10, 3), (5, 10)]:
        proba = _random_proba(rng, n, 4)
        y = rng.integers(0, 4, size=n)
        curve = reliability_curve(y, proba, n_bins=n_bins, strategy="quantile")
        assert curve.count.sum() == n
        nonempty = curve.count[curve.count > 0]
        assert nonempty.max() - nonempty.min() <= 1
        assert len(nonempty) == min(n, n_bins)
        assert curve.bin_edges[0] == 0.0 and curve.bin_edges[-1] == 1.0
        assert np.all(np.diff(curve.bin_edges) >= 0)
    # 10 samples, 3 bins: 4, 3, 3 (numpy.quantile, linear interpolation)
    proba = _random_proba(np.random.default_rng(1), 10, 3)
    counts = reliability_curve(np.zeros(10, int), proba, n_bins=3, strategy="quantile").count
    np.testing.assert_array_equal(counts, [4, 3, 3])


def test_equal_mass_ece_hand_computed():
    # confidences .55 .6 .7 .8 .9 .95, two bins of three split at the median .75
    # low bin:  .55 wrong, .6 right, .7 right -> acc 2/3, conf .6167 -> gap .05
    # high bin: .8 wrong,  .9 right, .95 wrong -> acc 1/3, conf .8833 -> gap .55
    # ECE = (.05 + .55) / 2 = .3; MCE = .55; equal-width (2 bins: all in (.5, 1]):
    # acc 1/2, conf .75 -> .25
    conf = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95])
    proba = np.column_stack([conf, 1 - conf])
    y = np.array([1, 0, 0, 1, 0, 1])
    assert expected_calibration_error(y, proba, n_bins=2, strategy="quantile") == (
        pytest.approx(0.3))
    assert maximum_calibration_error(y, proba, n_bins=2, strategy="quantile") == (
        pytest.approx(0.55))
    assert expected_calibration_error(y, proba, n_bins=2) == pytest.approx(0.25)
    curve = reliability_curve(y, proba, n_bins=2, strategy="quantile")
    np.testing.assert_allclose(curve.bin_edges, [0.0, 0.75, 1.0])
    np.testing.assert_array_equal(curve.count, [3, 3])


def test_equal_mass_ties_stay_in_one_bin_and_order_does_not_matter():
    # six samples at confidence .9 (3 right), two at .6 (both right): with 4 bins
    # the quantile edges are .6, .9, .9 -> bins {.6, .6}, {.9 x 6}, {}, {}
    proba = np.array([[0.9, 0.1]] * 6 + [[0.6, 0.4]] * 2)
    y = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    curve = reliability_curve(y, proba, n_bins=4, strategy="quantile")
    np.testing.assert_array_equal(curve.count, [2, 6, 0, 0])
    ece = 2 / 8 * 0.4 + 6 / 8 * 0.4
    assert curve.ece == pytest.approx(ece)
    rng = np.random.default_rng(3)
    for _ in range(5):
        perm = rng.permutation(8)
        assert expected_calibration_error(y[perm], proba[perm], n_bins=4,
                                          strategy="quantile") == pytest.approx(ece)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_bins", [1, 4, 15])
def test_equal_mass_ece_and_mce_match_brute_force(seed, n_bins):
    rng = np.random.default_rng(seed)
    proba = _random_proba(rng, 257, 5, sharpness=2.0)
    y = _correlated_labels(rng, proba)
    conf = proba.max(axis=1)
    edges = np.concatenate([[0.0], np.quantile(conf, np.arange(1, n_bins) / n_bins), [1.0]])
    ece, mce = _reference_binned(conf.tolist(), (proba.argmax(1) == y).tolist(), edges)
    assert expected_calibration_error(y, proba, n_bins=n_bins, strategy="quantile") == (
        pytest.approx(ece, rel=1e-10))
    assert maximum_calibration_error(y, proba, n_bins=n_bins, strategy="quantile") == (
        pytest.approx(mce, rel=1e-10))
    if n_bins == 1:  # one bin is one bin, whatever the strategy
        assert ece == pytest.approx(expected_calibration_error(y, proba, n_bins=1))


def test_mce_hand_computed_and_from_curve():
    # the ECE example: gaps .55 (1 sample), .3 (1 sample), .4 (2 samples)
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    y = [0, 1, 1, 1]
    assert maximum_calibration_error(y, proba, n_bins=5) == pytest.approx(0.55)
    assert reliability_curve(y, proba, n_bins=5).mce == pytest.approx(0.55)
    # perfectly calibrated bins -> 0; one-hot and all wrong -> 1
    assert maximum_calibration_error([1, 2, 3, 0], np.eye(4)) == 1.0
    assert maximum_calibration_error([0, 1, 2, 3], np.eye(4)) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_mce_is_at_least_ece(seed):
    rng = np.random.default_rng(seed)
    proba = _random_proba(rng, 200, 3)
    y = _correlated_labels(rng, proba)
    for strategy in BIN_STRATEGIES:
        assert (maximum_calibration_error(y, proba, strategy=strategy)
                >= expected_calibration_error(y, proba, strategy=strategy) - 1e-15)


def test_classwise_ece_hand_computed():
    # 3 classes, 2 bins (0, .5], (.5, 1]
    # class 0: p = .6 .2 .4 .1 | y==0: 1 0 1 0
    #   (0, .5]: p .2 .4 .1 (mean .2333) freq 1/3 -> 3/4 * .1 = .075
    #   (.5, 1]: p .6 freq 1 -> 1/4 * .4 = .1          -> .175
    # class 1: p = .3 .7 .35 .1 | y==1: 0 0 0 0
    #   (0, .5]: .3 .35 .1 (mean .25) freq 0 -> 3/4 * .25 = .1875
    #   (.5, 1]: .7 freq 0 -> 1/4 * .7 = .175           -> .3625
    # class 2: p = .1 .1 .25 .8 | y==2: 0 1 0 1
    #   (0, .5]: .1 .1 .25 (mean .15) freq 1/3 -> 3/4 * (1/3 - .15) = .1375
    #   (.5, 1]: .8 freq 1 -> 1/4 * .2 = .05            -> .1875
    # mean: (.175 + .3625 + .1875) / 3 = .241666...
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25],
                      [0.1, 0.1, 0.8]])
    y = [0, 2, 0, 2]
    assert classwise_calibration_error(y, proba, n_bins=2) == pytest.approx(0.725 / 3)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("strategy", BIN_STRATEGIES)
def test_classwise_ece_matches_brute_force(seed, strategy):
    rng = np.random.default_rng(seed)
    k, n_bins = 4, 6
    proba = _random_proba(rng, 150, k)
    y = _correlated_labels(rng, proba)
    terms = []
    for c in range(k):
        p = proba[:, c]
        edges = (np.linspace(0, 1, n_bins + 1) if strategy == "uniform" else
                 np.concatenate([[0.0], np.quantile(p, np.arange(1, n_bins) / n_bins), [1.0]]))
        terms.append(_reference_binned(p.tolist(), (y == c).tolist(), edges)[0])
    assert classwise_calibration_error(y, proba, n_bins=n_bins, strategy=strategy) == (
        pytest.approx(np.mean(terms), rel=1e-10))


def test_classwise_ece_with_labels_and_perfect_one_hot():
    labels = np.array(["cat", "dog", "eel"])
    proba = np.eye(3)[[0, 1, 2, 1]]
    assert classwise_calibration_error(labels[[0, 1, 2, 1]], proba, labels=labels) == 0.0
    # every prediction wrong (predicted 0 1 2 1, true 1 2 0 0); per class, the
    # bin of p = 1 and the bin of p = 0:
    # cat: p=1 {0} freq 0 -> 1/4;   p=0 {1,2,3} freq 2/3 -> 3/4 * 2/3 = 1/2
    # dog: p=1 {1,3} freq 0 -> 2/4; p=0 {0,2} freq 1/2   -> 2/4 * 1/2 = 1/4
    # eel: p=1 {2} freq 0 -> 1/4;   p=0 {0,1,3} freq 1/3 -> 3/4 * 1/3 = 1/4
    wrong = labels[[1, 2, 0, 0]]
    value = classwise_calibration_error(wrong, proba, labels=labels)
    assert value == pytest.approx((3 / 4 + 3 / 4 + 1 / 2) / 3)


@pytest.mark.parametrize("func", BINNED_METRICS)
def test_unknown_strategy_raises(func):
    with pytest.raises(ValueError, match="strategy must be one of"):
        func([0, 1], GOOD_P, strategy="equal_mass")
    with pytest.raises(ValueError, match="strategy must be one of"):
        func([0, 1], GOOD_P, strategy=None)


# ---------------------------------------------------------------------------
# Cross-check against torchmetrics (an independent, well-kept implementation)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_ece_and_mce_match_torchmetrics(seed, n_bins):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 11))
    proba = _random_proba(rng, 500, k, sharpness=float(rng.uniform(0.5, 3.0)))
    proba = proba.astype(np.float32)  # torchmetrics works in float32
    y = _correlated_labels(rng, proba)
    p_t, y_t = torch.from_numpy(proba), torch.from_numpy(y)
    for norm, ours in [("l1", expected_calibration_error), ("max", maximum_calibration_error)]:
        metric = tm.MulticlassCalibrationError(num_classes=k, n_bins=n_bins, norm=norm)
        expected = float(metric(p_t, y_t))
        assert ours(y, proba, n_bins=n_bins) == pytest.approx(expected, abs=1e-6), norm


def test_ece_differs_from_torchmetrics_on_bin_edges_as_documented():
    # docs/calibration.rst: right-closed bins (scikit-learn's calibration_curve)
    # against torchmetrics' left-closed ones, which give a confidence of exactly 1
    # a bin of its own
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    from sklearn.calibration import calibration_curve

    proba = np.array([[1, 0], [0.95, 0.05], [0.95, 0.05], [0.95, 0.05]], dtype=np.float32)
    y = np.array([1, 0, 0, 0])
    theirs = float(tm.MulticlassCalibrationError(num_classes=2, n_bins=15, norm="l1")(
        torch.from_numpy(proba), torch.from_numpy(y)))
    assert expected_calibration_error(y, proba) == pytest.approx(0.2125, abs=1e-6)
    assert theirs == pytest.approx(0.2875, abs=1e-6)
    # a confidence on an edge: 0.6 in (0.4, 0.6] of 5 bins and 0.7 in (0.6, 0.8], as
    # in scikit-learn (left-closed bins would pool them in [0.6, 0.8))
    conf = np.array([0.6, 0.7])
    _, mean = calibration_curve(np.array([1, 0]), conf, n_bins=5)
    np.testing.assert_allclose(mean, [0.6, 0.7])
    np.testing.assert_array_equal(
        reliability_curve([0, 0], np.c_[conf, 1 - conf], n_bins=5).count, [0, 0, 1, 1, 0])


@pytest.mark.parametrize("seed", range(4))
def test_classwise_ece_matches_torchmetrics_binary_per_class(seed):
    # torchmetrics' binary calibration error bins the positive-class probability
    # and compares it with the frequency of positives: one class-wise term
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    rng = np.random.default_rng(seed)
    k, n_bins = 5, 10
    proba = _random_proba(rng, 400, k, sharpness=1.5).astype(np.float32)
    y = _correlated_labels(rng, proba)
    terms = [float(tm.BinaryCalibrationError(n_bins=n_bins)(
        torch.from_numpy(proba[:, c]), torch.from_numpy((y == c).astype(np.int64))))
        for c in range(k)]
    assert classwise_calibration_error(y, proba, n_bins=n_bins) == pytest.approx(
        np.mean(terms), abs=1e-6)


# ---------------------------------------------------------------------------
# Out-of-distribution detection
# ---------------------------------------------------------------------------


def _brute_force_auroc(s_in, s_out):
    pairs = [(a > b) + 0.5 * (a == b) for a in s_in for b in s_out]
    return sum(pairs) / len(pairs)


def test_max_probability_and_energy_scores():
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(50, 7))
    proba = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    np.testing.assert_allclose(max_probability_score(proba), proba.max(axis=1))
    np.testing.assert_allclose(energy_score(logits), logsumexp(logits, axis=1), rtol=1e-12)
    np.testing.assert_allclose(energy_score(logits, temperature=2.5),
                               2.5 * logsumexp(logits / 2.5, axis=1), rtol=1e-12)
    # stable for huge logits, and keeps their scale (which the softmax discards)
    big = np.array([[1000.0, 999.0], [10.0, 9.0]])
    np.testing.assert_allclose(energy_score(big), [1000 + np.log1p(np.exp(-1)),
                                                   10 + np.log1p(np.exp(-1))])
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(energy_score(torch.tensor(logits)), logsumexp(logits, axis=1))


@pytest.mark.parametrize("seed", range(3))
def test_ood_auroc_matches_brute_force_and_sklearn(seed):
    from scipy.special import logsumexp

    rng = np.random.default_rng(seed)
    z_in = rng.normal(scale=3.0, size=(60, 4)) + np.array([4.0, 0, 0, 0])
    z_out = rng.normal(scale=3.0, size=(45, 4))
    p_in = np.exp(z_in - logsumexp(z_in, axis=1, keepdims=True))
    p_out = np.exp(z_out - logsumexp(z_out, axis=1, keepdims=True))
    msp = ood_auroc(p_in, p_out)
    assert msp == pytest.approx(_brute_force_auroc(p_in.max(1), p_out.max(1)))
    energy = ood_auroc(z_in, z_out, score="energy")
    assert energy == pytest.approx(
        _brute_force_auroc(logsumexp(z_in, axis=1), logsumexp(z_out, axis=1)))
    assert ood_auroc(z_in, z_out, score="energy", temperature=3.0) == pytest.approx(
        _brute_force_auroc(3 * logsumexp(z_in / 3, axis=1), 3 * logsumexp(z_out / 3, axis=1)))
    assert 0.5 < msp < 1.0 and 0.5 < energy < 1.0
    # swapping the roles gives 1 - AUROC
    assert ood_auroc(p_out, p_in) == pytest.approx(1 - msp)
    s_in, s_out = rng.normal(size=30), rng.normal(size=20)
    assert ood_auroc(s_in, s_out, score="precomputed") == pytest.approx(
        _brute_force_auroc(s_in, s_out))


def test_ood_auroc_extremes_and_ties():
    p_conf = np.array([[0.99, 0.01], [0.9, 0.1]])
    p_flat = np.array([[0.5, 0.5], [0.6, 0.4], [0.55, 0.45]])
    assert ood_auroc(p_conf, p_flat) == 1.0
    assert ood_auroc(p_flat, p_conf) == 0.0
    assert ood_auroc(p_flat, p_flat) == 0.5  # all ties
    # the energy sees the scale of the logits, the MSP does not
    z_in = np.array([[10.0, 9.0], [20.0, 19.0]])
    z_out = np.array([[1.0, 0.0], [2.0, 1.0]])
    assert ood_auroc(z_in, z_out, score="energy") == 1.0


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((GOOD_P, GOOD_P), {"score": "entropy"}, ValueError, "score must be one of"),
    ((GOOD_P, GOOD_P), {"temperature": 2.0}, ValueError, "only used with score='energy'"),
    ((GOOD_P, np.ones((2, 3)) / 3), {}, ValueError, "same number of columns"),
    ((np.array([[2.0, -1.0]]), GOOD_P), {}, ValueError, "in_dist: score='msp' takes"),
    ((GOOD_P, np.array([[0.2, 0.2]])), {}, ValueError, "out_dist: .*sum to 1"),
    ((GOOD_P, np.empty((0, 2))), {}, ValueError, "empty"),
    ((GOOD_P, GOOD_P), {"score": "energy", "temperature": 0.0}, ValueError, "temperature"),
    ((GOOD_P, GOOD_P), {"score": "energy", "temperature": "1"}, TypeError, "temperature"),
    ((np.array([[np.inf, 0.0]]), GOOD_P), {"score": "energy"}, ValueError, "NaN or infinite"),
    ((np.ones(3), GOOD_P), {"score": "energy"}, ValueError, "2-D array of logits"),
    ((GOOD_P, GOOD_P), {"score": "precomputed"}, ValueError, "1-D scores"),
    ((np.array(["a"]), np.ones(2)), {"score": "precomputed"}, TypeError, "numeric"),
    ((np.array([np.nan]), np.ones(2)), {"score": "precomputed"}, ValueError, "NaN"),
])
def test_ood_auroc_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ood_auroc(*args, **kwargs)


# ------------------------------------------------------------------ sample weights
def test_brier_and_nll_sample_weight_match_scikit_learn():
    """The weighted Brier score and NLL are scikit-learn's brier_score_loss
    (scale_by_half=False: the multiclass sum) and log_loss with the same weights;
    integer weights are repeated samples; unit weights are the plain mean."""
    from sklearn.metrics import brier_score_loss, log_loss

    from sklearn_crtcl.metrics import brier_score, negative_log_likelihood
    rng = np.random.RandomState(0)
    proba = rng.dirichlet(np.ones(4), size=60)
    y = rng.randint(0, 4, size=60)
    w = rng.uniform(0, 3, size=60)
    assert brier_score(y, proba, sample_weight=w) == pytest.approx(
        brier_score_loss(y, proba, sample_weight=w, labels=range(4), scale_by_half=False),
        rel=1e-12)
    assert negative_log_likelihood(y, proba, sample_weight=w) == pytest.approx(
        log_loss(y, proba, sample_weight=w, labels=range(4)), rel=1e-12)
    counts = rng.randint(0, 4, size=60)
    counts[0] = 1
    rep = np.repeat(np.arange(60), counts)
    for metric in (brier_score, negative_log_likelihood):
        assert metric(y, proba, sample_weight=counts) == pytest.approx(
            metric(y[rep], proba[rep]), rel=1e-12)
        assert metric(y, proba, sample_weight=np.ones(60)) == metric(y, proba)
        for bad, match in (([1.0] * 59, "one weight per sample"),
                           ([-1.0] + [1.0] * 59, "finite weights >= 0"),
                           ([np.nan] + [1.0] * 59, "finite weights >= 0"),
                           ([0.0] * 60, "sums to 0"),
                           (np.ones((60, 1)), "1-D")):
            with pytest.raises(ValueError, match=match):
                metric(y, proba, sample_weight=bad)
        with pytest.raises(TypeError, match="numeric"):
            metric(y, proba, sample_weight=["a"] * 60)


def test_scorers_pass_sample_weight_to_the_metrics_that_take_one():
    """brier_scorer / nll_scorer weigh the samples as the metric does; the binned
    calibration errors' scorers refuse a weight (TypeError) before predict_proba."""
    from sklearn.linear_model import LogisticRegression

    from sklearn_crtcl.metrics import (brier_score, brier_scorer, ece_scorer, make_proba_scorer,
                                       negative_log_likelihood, nll_scorer)
    rng = np.random.RandomState(1)
    X = rng.normal(size=(120, 3))
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    clf = LogisticRegression().fit(X, y)
    w = rng.uniform(0.1, 2.0, size=120)
    proba = clf.predict_proba(X)
    assert brier_scorer(clf, X, y, sample_weight=w) == pytest.approx(
        -brier_score(y, proba, labels=clf.classes_, sample_weight=w))
    assert nll_scorer(clf, X, y, sample_weight=w) == pytest.approx(
        -negative_log_likelihood(y, proba, labels=clf.classes_, sample_weight=w))
    assert brier_scorer(clf, X, y, sample_weight=w) != brier_scorer(clf, X, y)

    class Counting(LogisticRegression):
        calls = 0

        def predict_proba(self, X):
            type(self).calls += 1
            return super().predict_proba(X)

    counting = Counting().fit(X, y)
    with pytest.raises(TypeError, match="expected_calibration_error takes no sample_weight"):
        ece_scorer(counting, X, y, sample_weight=w)
    custom = make_proba_scorer(lambda y_true, y_proba, labels=None: 0.0, name="zero")
    with pytest.raises(TypeError, match="zero: .* takes no sample_weight"):
        custom(counting, X, y, sample_weight=w)
    assert Counting.calls == 0


def test_scorers_take_routed_sample_weight_once_they_ask_for_it():
    """Under scikit-learn's metadata routing, cross_validate(params={"sample_weight":
    w}) weighs the Brier scorer's folds once it asked (set_score_request), as
    scikit-learn's scorers; routing a weight to a scorer that did not ask is
    scikit-learn's error; get_scorer gives a copy, so a request changes no other
    scorer."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_validate

    from sklearn_crtcl.metrics import brier_score, brier_scorer, ece_scorer, get_scorer
    rng = np.random.RandomState(2)
    X = rng.normal(size=(150, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=150) > 0).astype(int)
    w = rng.uniform(0.1, 3.0, size=150)
    cv = KFold(3)
    scorer = get_scorer("neg_brier_score_multiclass").set_score_request(sample_weight=True)
    assert scorer is not brier_scorer and brier_scorer._sample_weight_request is None
    with sklearn.config_context(enable_metadata_routing=True):
        est = LogisticRegression().set_fit_request(sample_weight=False)
        got = cross_validate(est, X, y, scoring=scorer, params={"sample_weight": w}, cv=cv)
        expected = []
        for train, test in cv.split(X):
            fold = LogisticRegression().fit(X[train], y[train])
            expected.append(-brier_score(y[test], fold.predict_proba(X[test]),
                                         sample_weight=w[test]))
        np.testing.assert_allclose(got["test_score"], expected, rtol=1e-10)
        unweighted = cross_validate(est, X, y, scoring=get_scorer("neg_log_likelihood"),
                                    cv=cv)["test_score"]
        assert unweighted.shape == (3,)
        with pytest.raises(Exception, match="sample_weight"):
            cross_validate(est, X, y, scoring=get_scorer("neg_brier_score_multiclass"),
                           params={"sample_weight": w}, cv=cv)
    with pytest.raises(TypeError, match="takes no sample_weight, so it cannot be requested"):
        get_scorer("neg_expected_calibration_error").set_score_request(sample_weight=True)
    assert ece_scorer.set_score_request(sample_weight=False) is ece_scorer
    ece_scorer.set_score_request(sample_weight=None)  # back to the default
    with pytest.raises(TypeError, match="True, False, None or an alias"):
        get_scorer("neg_log_likelihood").set_score_request(sample_weight=1)


def test_boolean_labels_are_columns_false_then_true_as_scikit_learn():
    """y_true of booleans: False is column 0, True column 1, as the classes_ of a
    scikit-learn classifier fitted on booleans; the metrics equal those with 0/1 and
    scikit-learn's log_loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    rng = np.random.RandomState(3)
    X = rng.normal(size=(80, 2))
    y = X[:, 0] + 0.3 * rng.normal(size=80) > 0
    clf = LogisticRegression().fit(X, y)
    assert clf.classes_.tolist() == [False, True]
    proba = clf.predict_proba(X)
    assert negative_log_likelihood(y, proba) == pytest.approx(log_loss(y, proba), rel=1e-12)
    for metric in (expected_calibration_error, brier_score, negative_log_likelihood):
        assert metric(y, proba) == metric(y.astype(int), proba)
        assert metric(y, proba) == metric(y, proba, labels=clf.classes_)
