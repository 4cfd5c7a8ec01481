"""Tests for sklearn_crtcl.metrics."""

import math

import numpy as np
import pytest

from sklearn_crtcl.metrics import (
    CALIBRATION_SCORERS,
    ProbaScorer,
    ReliabilityCurve,
    brier_score,
    brier_scorer,
    ece_scorer,
    expected_calibration_error,
    get_scorer,
    make_proba_scorer,
    negative_log_likelihood,
    nll_scorer,
    reliability_curve,
)

ALL_METRICS = [expected_calibration_error, brier_score, negative_log_likelihood]


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


@pytest.mark.parametrize("func", [expected_calibration_error, reliability_curve])
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
    }
    assert get_scorer("neg_expected_calibration_error") is ece_scorer
    assert get_scorer("neg_brier_score_multiclass") is brier_scorer
    assert get_scorer("neg_log_likelihood") is nll_scorer
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
    for scorer, metric in [
        (ece_scorer, expected_calibration_error),
        (brier_scorer, brier_score),
        (nll_scorer, negative_log_likelihood),
    ]:
        expected = -metric(y, proba, labels=clf.classes_)
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
