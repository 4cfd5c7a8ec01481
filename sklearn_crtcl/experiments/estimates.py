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
from ..stopping import AccuracyGain

__all__ = ["estimation_record"]

_NEED_LABELS = ("atc", "doc", "importance")


def estimation_record(net, X_pool, X_test, y_test, *, methods=("confidence",), criteria=(),
                      X_labeled=None, y_labeled=None, q=None, indices=None, critic=None,
                      y_pool=None):
    """The estimate and stopping columns of one cycle's record.

    Parameters
    ----------
    net : estimator or modAL learner
        The cycle's model (trained on the labeled set, not yet on the batch
        ``X_labeled``).
    X_pool : array-like
        The unlabeled pool the cycle's batch was drawn from (batch
        included): the images whose accuracy is estimated.
    X_test, y_test : array-like
        The test split: its true accuracy and size go into the record
        (``accuracy``, ``n_test``) for :func:`~sklearn_crtcl.stopping.stopping_summary`.
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

    Returns
    -------
    record : dict
        ``accuracy``, ``n_test``, ``pool_accuracy`` (NaN without ``y_pool``),
        for each method ``est_<method>``, ``est_<method>_low`` and
        ``est_<method>_high``, and for each criterion ``stop_<name>`` (bool)
        and ``stat_<name>`` (its statistic).
    """
    est = net.estimator if hasattr(net, "query_strategy") and hasattr(net, "estimator") else net
    y_test = np.asarray(y_test)
    record = {"accuracy": float(np.mean(np.asarray(est.predict(X_test)) == y_test)),
              "n_test": int(len(y_test)), "pool_accuracy": math.nan}
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
                    kwargs.update(q=q, indices=indices)
        elif method == "critic" and critic is not None:
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
