"""Stopping criteria, the per-cycle record helper and the hindsight summary."""

import math

import numpy as np
import pytest

from sklearn_crtcl.estimation import AccuracyEstimate
from sklearn_crtcl.stopping import (AccuracyGain, ClassificationChange, MaxUncertainty,
                                    OverallUncertainty, StabilizingPredictions, StopDecision,
                                    plot_estimates, stopping_summary)


class Model:
    """Fixed predictions (and probabilities) on row indices."""

    def __init__(self, pred=None, proba=None):
        self.pred = None if pred is None else np.asarray(pred)
        self.proba = None if proba is None else np.asarray(proba, float)

    def predict(self, X):
        rows = np.asarray(X).reshape(-1).astype(int)
        return self.pred[rows] if self.pred is not None else self.proba[rows].argmax(1)

    def predict_proba(self, X):
        return self.proba[np.asarray(X).reshape(-1).astype(int)]


STOP = np.arange(20)[:, None]


def test_stabilizing_predictions_needs_window_kappas_at_threshold():
    base = np.array([0, 1, 2, 3] * 5)
    flip = base.copy()
    flip[0] = 1  # kappa < 0.99 against base
    crit = StabilizingPredictions(STOP)  # defaults of Bloodgood and Vijay-Shanker
    assert (crit.threshold, crit.window) == (0.99, 3)
    decisions = [crit.update(Model(p), None) for p in (base, flip, flip, flip, flip)]
    assert [d.stop for d in decisions] == [False, False, False, False, True]
    assert math.isnan(decisions[0].value)
    assert decisions[1].value < 0.99 and decisions[2].value == 1.0
    assert decisions[4].history == tuple(crit.history_) and decisions[4].round == 5
    # the mean of the window decides (kappa(base, flip) = 0.933, mean with 1: 0.967)
    crit = StabilizingPredictions(STOP, threshold=0.95, window=2)
    values = [crit.update(Model(p), None) for p in (base, base, flip, flip)]
    assert values[2].value == pytest.approx(0.9333, abs=1e-4)
    assert [bool(d) for d in values] == [False, False, True, True]
    assert isinstance(values[0], StopDecision) and values[0].criterion == (
        "stabilizing_predictions")


def test_classification_change():
    a = np.zeros(20, dtype=int)
    b = a.copy()
    b[:2] = 1
    crit = ClassificationChange(STOP, threshold=0.05)
    d = [crit.update(Model(p), None) for p in (a, b, b)]
    assert [x.stop for x in d] == [False, False, True]
    assert d[1].value == pytest.approx(0.1) and d[2].value == 0.0
    assert ClassificationChange(STOP).threshold == 0.0  # the paper's rule: no change


def test_uncertainty_criteria():
    sure = np.tile([[0.99, 0.01]], (10, 1))
    one_unsure = sure.copy()
    one_unsure[0] = [0.5, 0.5]
    pool = np.arange(10)[:, None]
    overall, peak = OverallUncertainty(threshold=0.15), MaxUncertainty(threshold=0.2)
    h = -(0.99 * np.log(0.99) + 0.01 * np.log(0.01)) / np.log(2)
    d = overall.update(Model(proba=one_unsure), pool)
    assert d.value == pytest.approx((1 + 9 * h) / 10) and not d.stop  # 0.17 > 0.15
    assert OverallUncertainty(threshold=0.2).update(Model(proba=one_unsure), pool).stop
    assert peak.update(Model(proba=one_unsure), pool).value == pytest.approx(1.0)
    assert not peak.update(Model(proba=one_unsure), pool).stop
    assert peak.update(Model(proba=sure), pool).stop
    overall = OverallUncertainty(threshold=0.05)
    assert not overall.update(Model(proba=one_unsure), pool).stop


def test_accuracy_gain_over_a_window():
    crit = AccuracyGain(min_gain=0.01, window=2)
    accs = [0.5, 0.6, 0.65, 0.655, 0.657]
    d = [crit.update(None, None, estimate=AccuracyEstimate(a, math.nan, math.nan, "x"))
         for a in accs]
    assert [x.stop for x in d] == [False, False, False, False, True]
    assert math.isnan(d[1].value) and d[2].value == pytest.approx(0.15)
    assert d[3].value == pytest.approx(0.055) and d[4].value == pytest.approx(0.007)
    assert crit.name == "accuracy_gain_confidence"
    # by itself: the average confidence on the pool
    crit = AccuracyGain(window=1, min_gain=0.01)
    proba = np.tile([[0.8, 0.2]], (5, 1))
    pool = np.arange(5)[:, None]
    assert crit.update(Model(proba=proba), pool).history == (pytest.approx(0.8),)
    assert crit.update(Model(proba=proba), pool).stop  # no gain
    with pytest.raises(ValueError, match="not both"):
        crit.update(Model(proba=proba), pool, estimate=0.5, X_labeled=pool)


def test_break_even_gain_stops_where_a_round_no_longer_pays():
    # 50 labels a round, price 1 per error on 450 images: a round pays if it cuts
    # the errors by 50, i.e. raises the accuracy by 50 / 450
    crit = AccuracyGain.break_even(price=1.0, population=450, labels_per_round=50,
                                   method="importance")
    assert (crit.method, crit.window, crit.name) == ("importance", 1, "break_even_importance")
    assert crit.min_gain == pytest.approx(50 / 450)
    accs = [0.60, 0.75, 0.85, 0.90, 0.93]
    # gains 0.15, 0.10, 0.05, 0.03: the second is the first below 0.111
    assert [crit.update(None, None, estimate=a).stop for a in accs] == [
        False, False, True, True, True]
    # with exact accuracies it stops one round after the cheapest (cost: labels plus
    # price x errors), as the docstring says
    recs = [{"cycle": c, "n_labeled": 100 + 50 * c, "accuracy": a, "n_test": 450,
             "stop_be": s} for c, (a, s) in enumerate(zip(accs, [False, False, True, True,
                                                                  True]))]
    row, = stopping_summary(recs, prices=[1.0])
    assert (row["stop_cycle"], row["best_cycle"]) == (2, 1)  # costs 280, 262.5, 267.5, ...
    # a higher price asks for less gain; a window of w rounds for w times more
    assert AccuracyGain.break_even(10.0, 450, 50).min_gain == pytest.approx(5 / 450)
    assert AccuracyGain.break_even(1.0, 450, 50, window=2).min_gain == pytest.approx(100 / 450)
    for bad in (dict(price=0), dict(price=-1), dict(population=0), dict(labels_per_round=0),
                dict(labels_per_round=2.5), dict(price=float("nan")), dict(window=0)):
        kw = dict(dict(price=1.0, population=450, labels_per_round=50), **bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            AccuracyGain.break_even(**kw)


def test_criteria_misuse():
    with pytest.raises(ValueError, match="stop set"):
        StabilizingPredictions(None)
    with pytest.raises(ValueError, match="threshold"):
        StabilizingPredictions(STOP, threshold=2)
    with pytest.raises(ValueError, match="window"):
        StabilizingPredictions(STOP, window=0)
    with pytest.raises(ValueError, match="method must be"):
        AccuracyGain(method="kappa")
    with pytest.raises(TypeError, match="predict_proba"):
        OverallUncertainty().update(type("PredictOnly", (), {"predict": len})(),
                                    np.zeros((1, 1)))
    with pytest.raises(TypeError, match="None"):
        ClassificationChange(STOP).update(None, None)


def test_criteria_in_a_modal_loop():
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 2))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    stop_set = X[500:]
    criteria = [StabilizingPredictions(stop_set, threshold=0.95, window=2),
                ClassificationChange(stop_set, threshold=0.01), MaxUncertainty(0.5),
                OverallUncertainty(0.3), AccuracyGain("confidence", min_gain=0.02, window=1)]
    start = np.r_[np.flatnonzero(y[:500] == 0)[:5], np.flatnonzero(y[:500] == 1)[:5]]
    learner = ActiveLearner(LogisticRegression(), uncertainty_sampling,
                            X_training=X[start], y_training=y[start])
    pool = np.setdiff1d(np.arange(500), start)
    stopped = {}
    for cycle in range(15):
        idx, _ = learner.query(X[pool], n_instances=10)
        learner.teach(X[pool[idx]], y[pool[idx]])
        pool = np.delete(pool, idx)
        for c in criteria:
            d = c.update(learner, X[pool])
            if d.stop and c.name not in stopped:
                stopped[c.name] = cycle
    # a linear problem: the predictions settle within a few rounds, every criterion fires
    assert set(stopped) == {c.name for c in criteria}
    assert all(len(c.history_) == 15 for c in criteria)
    assert criteria[0].history_[-1] > 0.95
    assert stopped["stabilizing_predictions"] < stopped["max_uncertainty"]
    # reset forgets the past
    criteria[0].reset()
    assert not criteria[0].update(learner, None).stop and criteria[0].history_ == [
        criteria[0].history_[0]]


def _records():
    # cycle: labels, test accuracy, verdicts of two criteria
    rows = [(100, 0.60, False, False), (200, 0.80, False, True), (300, 0.85, True, True),
            (400, 0.87, True, True)]
    return [{"cycle": c, "n_labeled": n, "accuracy": a, "n_test": 1000, "stop_late": s1,
             "stop_early": s2} for c, (n, a, s1, s2) in enumerate(rows)]


def test_stopping_summary_on_hand_made_records():
    rows = stopping_summary(_records(), prices=(0.1, 1.0, 10.0))
    by = {(r["criterion"], r["price"]): r for r in rows}
    assert len(rows) == 6
    # price 1: costs 500, 400, 450, 530 -> best cycle 1
    late, early = by[("late", 1.0)], by[("early", 1.0)]
    assert (late["stop_cycle"], late["cost"], late["best_cycle"], late["best_cost"]) == (
        2, pytest.approx(450.0), 1, pytest.approx(400.0))
    assert late["regret"] == pytest.approx(50.0) and early["regret"] == pytest.approx(0.0)
    # price 0.1: costs 140, 220, 315, 413 -> labeling nothing more is best
    assert by[("early", 0.1)]["best_cycle"] == 0
    # price 10: costs 4100, 2200, 1800, 1700 -> labeling to the end is best
    assert by[("late", 10.0)]["best_cycle"] == 3
    assert by[("late", 10.0)]["regret"] == pytest.approx(100.0)
    # a criterion that never fires runs to the end
    recs = [dict(r, stop_never=False) for r in _records()]
    row = stopping_summary(recs, criteria=["never"], prices=[1.0])[0]
    assert row["stop_cycle"] == 3 and not row["stopped"] and row["n_labeled"] == 400


def test_stopping_summary_misuse():
    with pytest.raises(ValueError, match="empty"):
        stopping_summary([])
    with pytest.raises(ValueError, match="lacks"):
        stopping_summary([{"cycle": 0, "n_labeled": 1}])
    with pytest.raises(ValueError, match="cycle order"):
        stopping_summary(_records()[::-1])
    with pytest.raises(ValueError, match="price"):
        stopping_summary(_records(), prices=[-1])
    with pytest.raises(ValueError, match="no criterion"):
        stopping_summary([{"cycle": 0, "n_labeled": 1, "accuracy": 0.5, "n_test": 3}])


def test_plot_estimates_draws_truth_and_each_estimator():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    recs = [{"cycle": c, "accuracy": 0.5 + 0.1 * c, "est_confidence": 0.6 + 0.1 * c,
             "est_confidence_low": math.nan, "est_confidence_high": math.nan,
             "est_importance": 0.5 + 0.1 * c, "est_importance_low": 0.4 + 0.1 * c,
             "est_importance_high": 0.6 + 0.1 * c} for c in range(3)]
    ax = plot_estimates(recs)
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["Test accuracy", "confidence", "importance"]
    assert len(ax.collections) == 1  # one band: only importance has an interval
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [0.5, 0.6, 0.7])


def test_estimation_record_with_a_package_net():
    from sklearn_crtcl import ResNetClassifier
    from sklearn_crtcl.datasets import load_digits_images
    from sklearn_crtcl.experiments.estimates import estimation_record

    X, X_test, y, y_test = load_digits_images(random_state=0)
    net = ResNetClassifier(module__width=4, max_epochs=1, batch_size=32, random_state=0,
                           device="cpu", classes=np.arange(10)).fit(X[:40], y[:40])
    pool, y_pool = X[40:140], y[40:140]
    p = np.full(100, 0.01)
    order = np.array([5, 50, 7])
    crit = [StabilizingPredictions(X_test[:30]), AccuracyGain("atc", window=1)]
    rec = estimation_record(net, pool, X_test, y_test,
                            methods=("confidence", "atc", "doc", "importance"), criteria=crit,
                            X_labeled=pool[order], y_labeled=y_pool[order], q=p,
                            indices=order, y_pool=y_pool)
    assert rec["accuracy"] == pytest.approx(net.score(X_test, y_test))
    assert rec["pool_accuracy"] == pytest.approx(net.score(pool, y_pool))
    assert rec["n_test"] == len(y_test)
    assert rec["est_confidence"] == pytest.approx(net.predict_proba(pool).max(1).mean(),
                                                  rel=1e-6)
    assert rec["est_importance_low"] <= rec["est_importance"] <= rec["est_importance_high"]
    assert rec["stop_stabilizing_predictions"] is False
    assert rec["stat_accuracy_gain_atc"] != rec["stat_accuracy_gain_atc"]  # NaN
    assert crit[1].history_ == [rec["est_atc"]]  # the record's estimate, reused
    # the last cycle has no next batch: the label-based columns are NaN
    rec = estimation_record(net, pool, X_test, y_test, methods=("atc",), criteria=crit)
    assert math.isnan(rec["est_atc"]) and rec["stop_accuracy_gain_atc"] is False
