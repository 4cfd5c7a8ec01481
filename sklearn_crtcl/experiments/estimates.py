"""Per-cycle accuracy estimates and stopping verdicts, as record columns.

:func:`estimation_record` is what an active-learning loop (the runner, the
estimation benchmark, the gallery's stopping example) calls once per cycle,
after the cycle's model is trained and its next batch is queried and labeled
(but before it trains on that batch): it returns the columns to add to the
cycle's record, which :func:`~sklearn_crtcl.stopping.stopping_summary` and
:func:`~sklearn_crtcl.stopping.plot_estimates` read.
"""

import math

import numpy as np

from ..estimation import estimate_accuracy
from ..metrics import _estimator_labels
from ..stopping import (AccuracyGain, ClassificationChange, MaxUncertainty, OverallUncertainty,
                        StabilizingPredictions, stopping_summary)

__all__ = ["estimation_record", "estimation_summary", "plot_run_estimates", "run_criteria",
           "RUN_ESTIMATES", "RUN_CRITERIA",
           "ESTIMATE_COLUMNS", "NEWER_COLUMNS", "HELD_OUT_KEY", "STOP_SET_SIZE", "STOP_PRICES"]

#: The estimators the runner records every cycle (``est_<method>``, with
#: ``_low`` and ``_high``): NaN where a method cannot run (``"importance"``
#: needs a stochastic selection's proposal or random sampling, ``"critic"`` a
#: probabilistic critic, the label-based ones a next batch). ``"temperature"``
#: is fitted on the next batch unweighted, as ATC and DoC are;
#: ``"temperature_pooled"`` is ``"temperature"`` with ``held_out=`` every
#: earlier cycle's batch with the probabilities of the model that queried it
#: (the last cycle, which has no next batch, gets it from those alone).
#: Records of a release before an estimate hold NaN there.
RUN_ESTIMATES = ("confidence", "temperature", "temperature_pooled", "atc", "doc", "importance",
                 "critic")

#: Size of the unlabeled stop set of the criteria that compare consecutive
#: models (drawn once per trial from the initial pool).
STOP_SET_SIZE = 300

#: Prices of one test error, in labels, of the runner's stopping summary
#: (Pullar-Strecker et al. 2022's cost measure).
STOP_PRICES = (0.1, 1.0, 10.0)


def run_criteria(X_stop):
    """The stopping criteria that the runner and the estimation benchmark record.

    Parameters
    ----------
    X_stop : array-like
        The fixed unlabeled stop set of the criteria that compare
        consecutive models.

    Returns
    -------
    list of StoppingCriterion
        Fresh criteria: :class:`~sklearn_crtcl.stopping.StabilizingPredictions`
        (kappa 0.99 over 3 rounds),
        :class:`~sklearn_crtcl.stopping.ClassificationChange` (below 1% of
        the stop set), :class:`~sklearn_crtcl.stopping.OverallUncertainty`
        (0.05), :class:`~sklearn_crtcl.stopping.MaxUncertainty` (0.2) and
        :class:`~sklearn_crtcl.stopping.AccuracyGain` on the ATC and the
        importance estimates (half a point over 2 rounds).
    """
    return [StabilizingPredictions(X_stop), ClassificationChange(X_stop, threshold=0.01),
            OverallUncertainty(0.05), MaxUncertainty(0.2), AccuracyGain("atc"),
            AccuracyGain("importance")]


#: Names of :func:`run_criteria` (``stop_<name>``, ``stat_<name>``).
RUN_CRITERIA = ("stabilizing_predictions", "classification_change", "overall_uncertainty",
                "max_uncertainty", "accuracy_gain_atc", "accuracy_gain_importance")

#: The columns the runner adds to each cycle's record (``estimation=True``).
ESTIMATE_COLUMNS = (("n_test", "pool_accuracy")
                    + tuple(f"est_{m}{s}" for m in RUN_ESTIMATES for s in ("", "_low", "_high"))
                    + tuple(f"{p}_{c}" for c in RUN_CRITERIA for p in ("stat", "stop"))
                    + ("estimation_time",))

#: The columns of :data:`ESTIMATE_COLUMNS` that records of an earlier release
#: lack (read back as NaN): those of ``"temperature"`` and of
#: ``"temperature_pooled"``, the newest release's first (a record lacks the
#: first k of them, k = 0, 3 or 6).
NEWER_COLUMNS = ("est_temperature_pooled", "est_temperature_pooled_low",
                 "est_temperature_pooled_high",
                 "est_temperature", "est_temperature_low", "est_temperature_high")

# the estimate_accuracy method of a recorded estimate that is an option of one
_METHOD_OF = {"temperature_pooled": "temperature"}

#: The key of a stored record (not a column of ``results.csv``) that holds the
#: batch the cycle's model queried, held out from it: ``{"rows": its rows of the
#: training set, "proba": the model's probabilities on them}``; the later
#: cycles' ``"temperature_pooled"`` fits on them.
HELD_OUT_KEY = "held_out_proba"

_NEED_LABELS = ("temperature", "atc", "doc", "importance")


class _PoolProba:
    """A fitted estimator whose ``predict_proba`` (and ``predict``) of the arrays
    it was asked about is computed once: the estimators and criteria of one
    cycle share one pass of the net over the pool. Everything else is the
    estimator's."""

    def __init__(self, estimator):
        self._estimator = estimator
        self._seen = []  # (array, proba): the array is kept, so its id is not reused

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def predict_proba(self, X):
        for array, proba in self._seen:
            if array is X:
                return proba
        proba = self._estimator.predict_proba(X)
        self._seen.append((X, proba))
        return proba

    def predict(self, X):
        if not any(array is X for array, _ in self._seen):
            return self._estimator.predict(X)
        proba = np.asarray(self.predict_proba(X))
        # the classes as estimate_accuracy reads them (estimation._correct)
        labels = _estimator_labels(self._estimator, proba.shape[1])
        pred = np.argmax(proba, axis=1)
        return pred if labels is None else np.asarray(labels)[pred]


def estimation_record(net, X_pool, X_test, y_test, *, methods=("confidence",), criteria=(),
                      X_labeled=None, y_labeled=None, q=None, indices=None, critic=None,
                      y_pool=None, importance_options=None):
    """The estimate and stopping columns of one cycle's record.

    Parameters
    ----------
    net : estimator or modAL learner
        The cycle's model (trained on the labeled set, not yet on the batch
        ``X_labeled``).
    X_pool : array-like
        The unlabeled pool the cycle's batch was drawn from (batch
        included): the images whose accuracy is estimated.
    X_test, y_test : array-like or None
        The test split: its true accuracy and size go into the record
        (``accuracy``, ``n_test``) for :func:`~sklearn_crtcl.stopping.stopping_summary`;
        None leaves both out (the caller has them, as the runner does).
    methods : sequence of str, default=("confidence",)
        Methods of :func:`~sklearn_crtcl.estimation.estimate_accuracy`. A
        method that needs labels gets NaN when ``X_labeled`` is None (the last
        cycle has no next batch); ``"critic"`` uses ``critic`` (default:
        ``net``).
    criteria : sequence of StoppingCriterion, default=()
        The cycle state: the criteria, updated here once per cycle (create
        them once per run). An :class:`~sklearn_crtcl.stopping.AccuracyGain`
        whose method is in ``methods`` reuses that estimate.
    X_labeled, y_labeled : array-like, optional
        The batch queried by this cycle's model, with its labels, in draw
        order (rows of ``X_pool`` at ``indices``).
    q : array-like, optional
        For ``"importance"``: per-draw probabilities of the batch, or with
        ``indices`` the proposal over ``X_pool``.
    indices : array-like of int, optional
        Positions of the batch in ``X_pool``, in draw order.
    critic : object with ``predict_correctness``, optional
        The probabilistic critic of ``"critic"``.
    y_pool : array-like, optional
        The pool's labels, when known (benchmarks): the record then holds the
        true pool accuracy ``pool_accuracy``, the estimates' target.
    importance_options : dict, optional
        More options of ``"importance"`` (``estimator``, ``interval``,
        ``confidence_level``).

    Returns
    -------
    record : dict
        ``accuracy`` and ``n_test`` (unless ``X_test`` is None),
        ``pool_accuracy`` (NaN without ``y_pool``),
        for each method ``est_<method>``, ``est_<method>_low`` and
        ``est_<method>_high``, and for each criterion ``stop_<name>`` (bool)
        and ``stat_<name>`` (its statistic).

    Notes
    -----
    The net runs once over ``X_pool``: the estimators, the criteria and the
    pool accuracy share its ``predict_proba``.
    """
    est = net.estimator if hasattr(net, "query_strategy") and hasattr(net, "estimator") else net
    if critic is None and "critic" in methods:
        critic = est
    if not isinstance(est, _PoolProba):
        est = _PoolProba(est)
    net = est
    record = {}
    if X_test is not None:
        y_test = np.asarray(y_test)
        record.update(accuracy=float(np.mean(np.asarray(est.predict(X_test)) == y_test)),
                      n_test=int(len(y_test)))
    record["pool_accuracy"] = math.nan
    if y_pool is not None:
        record["pool_accuracy"] = float(np.mean(np.asarray(est.predict(X_pool))
                                                == np.asarray(y_pool)))
    estimates = {}
    for method in methods:
        kwargs = {}
        if method in _NEED_LABELS:
            if y_labeled is None:
                estimates[method] = None
            else:
                kwargs = {"X_labeled": X_labeled, "y_labeled": y_labeled}
                if method == "importance":
                    kwargs.update(q=q, indices=indices, **(importance_options or {}))
        elif method == "critic":
            kwargs = {"critic": critic}
        if method not in estimates:
            estimates[method] = estimate_accuracy(net, X_pool, method, **kwargs)
        e = estimates[method]
        record[f"est_{method}"] = math.nan if e is None else e.estimate
        record[f"est_{method}_low"] = math.nan if e is None else e.low
        record[f"est_{method}_high"] = math.nan if e is None else e.high
    for criterion in criteria:
        if isinstance(criterion, AccuracyGain) and estimates.get(criterion.method) is not None:
            decision = criterion.update(net, X_pool, estimate=estimates[criterion.method])
        elif isinstance(criterion, AccuracyGain) and criterion.method in _NEED_LABELS:
            decision = None  # no labeled batch this cycle: no estimate, no verdict
        else:
            decision = criterion.update(net, X_pool)
        record[f"stop_{criterion.name}"] = False if decision is None else decision.stop
        record[f"stat_{criterion.name}"] = math.nan if decision is None else decision.value
    return record


def _runs_by_method(records):
    """``method -> [records of one trial, in cycle order]``, methods in order of
    appearance."""
    runs = {}
    for r in records:
        runs.setdefault((r["method"], r["trial"]), []).append(r)
    by_method = {}
    for (method, _), rows in runs.items():
        by_method.setdefault(method, []).append(sorted(rows, key=lambda r: r["cycle"]))
    return by_method


def _break_even_rows(run, prices):
    """:func:`~sklearn_crtcl.stopping.stopping_summary` rows of the break-even gain
    of each estimate (``break_even_<estimate>``) on one run's records, one
    criterion per price (:meth:`~sklearn_crtcl.stopping.AccuracyGain.break_even`:
    labels per cycle and the test size from the records). Cycles without the
    estimate are not rounds, as for the recorded gains."""
    if len(run) < 2:
        return []
    per_round = int(run[1]["n_labeled"] - run[0]["n_labeled"])
    rows = []
    for e in RUN_ESTIMATES:
        for price in prices:
            crit = AccuracyGain.break_even(price, run[0]["n_test"], per_round,
                                           method=_METHOD_OF.get(e, e))
            flags = [bool(np.isfinite(r[f"est_{e}"])
                          and crit.update(None, None, estimate=float(r[f"est_{e}"])).stop)
                     for r in run]
            marked = [{**r, f"stop_break_even_{e}": f} for r, f in zip(run, flags)]
            rows += stopping_summary(marked, criteria=[f"break_even_{e}"], prices=[price])
    return rows


def estimation_summary(records, prices=STOP_PRICES, interval=None):
    """Markdown tables of a run's accuracy estimates and stopping verdicts.

    Two tables. Estimators: per method and estimator, the mean absolute
    error of the estimate against the true accuracy on the pool it
    estimates (``pool_accuracy``) over all cycles and trials that have one,
    and the share of cycles whose interval covers it (the estimators with
    an interval). Stopping: per criterion and price, for each method, the
    mean stop cycle and the mean regret, the cost at that cycle minus the
    least cost of the run in hindsight
    (:func:`~sklearn_crtcl.stopping.stopping_summary`), with the share of
    trials in which the criterion stopped within one cycle of the cheapest;
    besides the recorded criteria, the break-even gain of each estimate at
    each price (:meth:`~sklearn_crtcl.stopping.AccuracyGain.break_even`
    with the records' test size and labels per cycle, decided here from the
    recorded estimates; rows ``break_even_<estimate>``).

    Parameters
    ----------
    records : list of dict
        The runner's records with the columns of :data:`ESTIMATE_COLUMNS`.
    prices : sequence of float, default=STOP_PRICES
        Prices of one test error, in labels.
    interval : str, optional
        The importance estimate's interval (e.g. ``"korn-graubard, 90 %"``),
        named in the table's legend.

    Returns
    -------
    str
    """
    from .report import _markdown

    runs = _runs_by_method(records)
    methods = list(runs)
    rows = []
    for m in methods:
        recs = [r for run in runs[m] for r in run]
        truth = np.array([r["pool_accuracy"] for r in recs], dtype=np.float64)
        row = [m]
        for e in RUN_ESTIMATES:
            est = np.array([r[f"est_{e}"] for r in recs], dtype=np.float64)
            ok = np.isfinite(est) & np.isfinite(truth)
            cell = f"{np.mean(np.abs(est[ok] - truth[ok])):.3f}" if ok.any() else "-"
            low = np.array([r[f"est_{e}_low"] for r in recs], dtype=np.float64)
            high = np.array([r[f"est_{e}_high"] for r in recs], dtype=np.float64)
            has = ok & np.isfinite(low) & np.isfinite(high)
            if has.any():
                cover = np.mean((low[has] <= truth[has]) & (truth[has] <= high[has]))
                cell += f" ({cover:.0%})"
            row.append(cell)
        rows.append(row)
    parts = ["## Accuracy estimates", "",
             "Mean absolute error of each estimate of the accuracy on the unlabeled pool "
             "(all cycles and trials with an estimate; in brackets, the share of them whose "
             "interval" + (f" ({interval})" if interval else "") + " covers the true pool "
             "accuracy). `-`: the method cannot give this "
             "estimate (importance: a top-k query has no proposal; critic: no probabilistic "
             "critic).", "",
             _markdown(["method"] + list(RUN_ESTIMATES), rows, ["l"] + ["r"] * len(RUN_ESTIMATES)),
             ""]
    # per method, the rows of stopping_summary of each of its trials: the recorded
    # verdicts, then the break-even gain of each estimate, decided here per price
    summaries = {m: [s for run in runs[m]
                     for s in stopping_summary(run, criteria=RUN_CRITERIA, prices=prices)
                     + _break_even_rows(run, prices)]
                 for m in methods}
    # a gain of an estimate the method never gives never fires: not a verdict
    never = {(m, f"{kind}_{e}") for m in methods for e in RUN_ESTIMATES
             for kind in ("accuracy_gain", "break_even")
             if not any(np.isfinite(r[f"est_{e}"]) for run in runs[m] for r in run)}
    rows = []
    for m in methods:
        row = ["hindsight optimum", m]
        for price in prices:
            best = [s["best_cycle"] for s in summaries[m]
                    if s["criterion"] == RUN_CRITERIA[0] and s["price"] == price]
            row.append(f"{np.mean(best):.1f} / 0 / 100%" if best else "-")
        rows.append(row)
    for name in RUN_CRITERIA + tuple(f"break_even_{e}" for e in RUN_ESTIMATES):
        for m in methods:
            row = [name, m]
            for price in prices:
                if (m, name) in never:
                    row.append("-")
                    continue
                got = [s for s in summaries[m]
                       if s["criterion"] == name and s["price"] == price]
                if not got:  # no trial has the two cycles a gain needs
                    row.append("-")
                    continue
                stop = np.mean([s["stop_cycle"] for s in got])
                regret = np.mean([s["regret"] for s in got])
                near = np.mean([abs(s["stop_cycle"] - s["best_cycle"]) <= 1 for s in got])
                row.append(f"{stop:.1f} / {regret:.0f} / {near:.0%}")
            rows.append(row)
    parts += ["## Stopping", "",
              "Per criterion and method, for each price of a test error (in labels): mean "
              "stop cycle / mean regret (cost at the stop minus the least cost in "
              "hindsight; cost = labels + price x test errors, Pullar-Strecker et al. 2022) "
              "/ share of trials stopped within one cycle of the cheapest (first rows: the "
              "cheapest cycle itself). A criterion that never fires stops at the last cycle; "
              "`-`: the gain of an estimate the method does not give, or no trial with the "
              "two cycles a gain needs. `break_even_<e>`: "
              "stop once estimate e rose by less than query size / (price x test size) "
              "since the previous cycle, the gain that pays for a batch at that price "
              "(AccuracyGain.break_even, decided from the recorded estimates).", "",
              _markdown(["criterion", "method"] + [f"price {p:g}" for p in prices], rows,
                        ["l", "l"] + ["r"] * len(prices)), ""]
    return "\n".join(parts)


def plot_run_estimates(records, title=None):
    """A figure of estimated against true pool accuracy per cycle, one panel per method.

    Each panel is :func:`~sklearn_crtcl.stopping.plot_estimates` of the
    method's records averaged over trials (the estimators that the method
    gives), against the true accuracy on the pool.

    Parameters
    ----------
    records : list of dict
        The runner's records with the columns of :data:`ESTIMATE_COLUMNS`.
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from ..stopping import plot_estimates

    runs = _runs_by_method(records)
    methods = list(runs)
    ncols = min(3, len(methods))
    nrows = -(-len(methods) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    keys = ["pool_accuracy"] + [f"est_{e}{s}" for e in RUN_ESTIMATES
                                for s in ("", "_low", "_high")]
    for ax, m in zip(axes, methods):
        by_cycle = {}
        for run in runs[m]:
            for r in run:
                by_cycle.setdefault(r["cycle"], []).append(r)
        mean = [{"cycle": c, **{k: float(np.mean([r[k] for r in rr])) for k in keys}}
                for c, rr in sorted(by_cycle.items())]
        shown = [e for e in RUN_ESTIMATES
                 if np.isfinite([r[f"est_{e}"] for r in mean]).any()]
        plot_estimates(mean, methods=shown, ax=ax, truth="pool_accuracy", title=m)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
