r"""When to stop labeling: stopping criteria for an active-learning loop.

Each criterion is a small object with one method,
``update(learner, X_pool, **kwargs) -> StopDecision``, called once after each
round (after ``learner.teach``), with a modAL ``ActiveLearner`` or the
estimator itself and the current unlabeled pool. It returns whether to stop,
with the evidence (:class:`StopDecision`). A criterion keeps what it needs
between rounds (the previous predictions, the past estimates); ``reset()``
starts it over.

* :class:`StabilizingPredictions`: Cohen's kappa between consecutive models'
  predictions on a fixed unlabeled *stop set* (Bloodgood and
  Vijay-Shanker, CoNLL 2009);
* :class:`OverallUncertainty` and :class:`MaxUncertainty`: the mean and the
  largest predictive entropy of the pool (Zhu, Wang and Hovy, COLING 2008);
* :class:`ClassificationChange`: the share of the stop set whose predicted
  class changed since the last round (Zhu, Wang and Hovy 2008);
* :class:`AccuracyGain`: the gain of the estimated accuracy
  (:func:`~sklearn_crtcl.estimation.estimate_accuracy`) over a window of
  rounds.

:func:`stopping_summary` compares the cycle at which each criterion would have
stopped with the cheapest cycle in hindsight, under the cost of Pullar-Strecker
et al. (Machine Learning 2022); :func:`plot_estimates` draws estimated against
true accuracy per cycle. The equations and defaults are in :doc:`/estimation`.
"""

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_number
from .estimation import estimate_accuracy
from .metrics import _check_proba, _entropy

__all__ = ["StopDecision", "StoppingCriterion", "StabilizingPredictions", "OverallUncertainty",
           "MaxUncertainty", "ClassificationChange", "AccuracyGain", "stopping_summary",
           "plot_estimates", "DEFAULT_PRICES"]

#: Prices of one test error, in labels, of :func:`stopping_summary`.
DEFAULT_PRICES = (0.1, 1.0, 10.0)


@dataclass(frozen=True)
class StopDecision:
    """A stopping criterion's verdict after one round, with its evidence.

    Attributes
    ----------
    stop : bool
        Whether to stop labeling now.
    criterion : str
        The criterion's name.
    round : int
        How many times the criterion has been updated, this call included
        (1 after the first round).
    value : float
        The statistic compared with the threshold this round (NaN while the
        criterion has too few rounds to tell).
    threshold : float
        The threshold it is compared with.
    history : tuple of float
        The statistic of every round so far, this one last.
    """

    stop: bool
    criterion: str
    round: int
    value: float
    threshold: float
    history: tuple = field(default=())

    def __bool__(self):
        return bool(self.stop)


def _estimator(learner):
    if learner is None:
        raise TypeError("a stopping criterion needs a fitted estimator or a modAL learner, "
                        "got None")
    if hasattr(learner, "query_strategy") and hasattr(learner, "estimator"):
        return learner.estimator
    return learner


def _predict(learner, X, name):
    est = _estimator(learner)
    if not callable(getattr(est, "predict", None)):
        raise TypeError(f"{name} needs an estimator with predict(X), got {type(est).__name__}")
    return np.asarray(est.predict(X))


def _normalized_entropy(learner, X, name):
    est = _estimator(learner)
    if not callable(getattr(est, "predict_proba", None)):
        raise TypeError(f"{name} needs an estimator with predict_proba(X), got "
                        f"{type(est).__name__}")
    if X is None or len(X) == 0:
        raise ValueError(f"{name} needs a non-empty pool X_pool")
    proba = _check_proba(est.predict_proba(X))
    return _entropy(proba) / math.log(proba.shape[1])


def _check_stop_set(X_stop, name):
    if X_stop is None or not hasattr(X_stop, "__len__") or len(X_stop) == 0:
        raise ValueError(f"{name} needs a non-empty stop set X_stop (a fixed sample of "
                         "unlabeled rows)")
    return X_stop


class StoppingCriterion:
    """Base of the stopping criteria: the round counter and the history.

    Subclasses implement ``_statistic(learner, X_pool, **kwargs)``, returning
    this round's statistic, and ``_decide(history)``, returning whether to
    stop.
    """

    #: Name of the criterion in :class:`StopDecision` and in records.
    name = "criterion"

    def __init__(self):
        self.history_ = []

    def reset(self):
        """Forget the past rounds.

        Returns
        -------
        self : StoppingCriterion
        """
        self.history_ = []
        return self

    def restore(self, history, learner=None):
        """Continue a run that was interrupted: take the statistics of its past rounds.

        After ``restore(h, learner)``, :meth:`update` decides as if the
        rounds of ``h`` had been updated in this object (the runner resumes a
        run's criteria from its stored records this way).

        Parameters
        ----------
        history : sequence of float
            The statistic of each past round, in order (``value`` of each
            round's :class:`StopDecision`; for :class:`AccuracyGain`, each
            round's estimate).
        learner : modAL learner or estimator, optional
            The model of the last past round: the criteria that compare
            consecutive models take its predictions on the stop set as the
            previous round's (required by them when ``history`` is not
            empty).

        Returns
        -------
        self : StoppingCriterion
        """
        values = []
        for v in history:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"history must hold numbers, got {v!r}")
            values.append(float(v))
        self.reset()
        self.history_ = values
        return self

    def update(self, learner, X_pool, **kwargs):
        """Take this round's model and pool into account; decide whether to stop.

        Parameters
        ----------
        learner : modAL learner or estimator
            The model after this round's training.
        X_pool : array-like
            The unlabeled pool after this round.
        **kwargs
            Options of the criterion's statistic (:class:`AccuracyGain`: the
            options of :func:`~sklearn_crtcl.estimation.estimate_accuracy`).

        Returns
        -------
        StopDecision
        """
        value = float(self._statistic(learner, X_pool, **kwargs))
        self.history_.append(value)
        history = tuple(self.history_)
        stop = self._decide(history)
        return StopDecision(bool(stop), self.name, len(history), value,
                            float(self.threshold), history)

    def _statistic(self, learner, X_pool, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decide(self, history):  # pragma: no cover - abstract
        raise NotImplementedError


class _ConsecutivePredictions(StoppingCriterion):
    """Base of the criteria that compare consecutive models' predictions on a stop set."""

    def __init__(self, X_stop):
        super().__init__()
        self.X_stop = _check_stop_set(X_stop, type(self).__name__)
        self._previous = None

    def reset(self):
        """Forget the past rounds and predictions.

        Returns
        -------
        self : StoppingCriterion
        """
        self._previous = None
        return super().reset()

    def restore(self, history, learner=None):
        """Continue a run that was interrupted (see :meth:`StoppingCriterion.restore`).

        Parameters
        ----------
        history : sequence of float
            The statistic of each past round.
        learner : modAL learner or estimator, optional
            The last past round's model, whose predictions on the stop set
            the next round compares with (required when ``history`` is not
            empty).

        Returns
        -------
        self : StoppingCriterion
        """
        super().restore(history)
        if self.history_:
            if learner is None:
                raise ValueError(f"{type(self).__name__}.restore needs the last round's "
                                 "learner to compare the next round's predictions with")
            self._previous = _predict(learner, self.X_stop, type(self).__name__)
        return self

    def _consecutive(self, learner):
        """The previous round's predictions on the stop set (None at first) and this one's."""
        pred = _predict(learner, self.X_stop, type(self).__name__)
        previous, self._previous = self._previous, pred
        return previous, pred


class StabilizingPredictions(_ConsecutivePredictions):
    r"""Stop when consecutive models agree on a stop set (stabilizing predictions).

    Bloodgood and Vijay-Shanker (CoNLL 2009): after round :math:`t`, Cohen's
    kappa between the predictions of models :math:`t-1` and :math:`t` on a
    fixed unlabeled stop set :math:`S`,

    .. math::

        \kappa_t = \frac{p_o - p_e}{1 - p_e},

    with :math:`p_o` the share of :math:`S` on which they agree and
    :math:`p_e` the agreement expected by chance from their class frequencies
    (:func:`sklearn.metrics.cohen_kappa_score`); stop when the mean of the last
    ``window`` kappas is at least ``threshold`` (their defaults: 0.99 and
    :math:`k = 3`). Two identical constant predictions count as
    :math:`\kappa = 1`.

    Parameters
    ----------
    X_stop : array-like
        The stop set: a fixed sample of unlabeled rows (it need not shrink
        with the pool).
    threshold : float, default=0.99
        Kappa in [-1, 1] at or above which the predictions count as stable.
    window : int, default=3
        Number of consecutive kappas averaged.

    Attributes
    ----------
    history_ : list of float
        The kappa of each round (NaN in the first, which has no predecessor).
    """

    name = "stabilizing_predictions"

    def __init__(self, X_stop, threshold=0.99, window=3):
        super().__init__(X_stop)
        self.threshold = check_number(threshold, "threshold", min_val=-1, max_val=1)
        self.window = check_number(window, "window", integer=True, min_val=1)

    def _statistic(self, learner, X_pool, **kwargs):
        from sklearn.metrics import cohen_kappa_score

        previous, pred = self._consecutive(learner)
        if previous is None:
            return math.nan
        if np.array_equal(previous, pred):
            return 1.0
        kappa = cohen_kappa_score(previous, pred)
        return 0.0 if math.isnan(kappa) else kappa  # one model constant, the other not

    def _decide(self, history):
        last = history[-self.window:]
        return len(last) == self.window and not np.isnan(last).any() and \
            float(np.mean(last)) >= self.threshold


class ClassificationChange(_ConsecutivePredictions):
    r"""Stop when (almost) no prediction of the stop set changes between rounds.

    Zhu, Wang and Hovy (2008) stop when no unlabeled example changes its
    predicted class between two consecutive rounds. With
    :math:`\hat y_t` the predictions of round :math:`t` on the fixed stop set
    :math:`S`,

    .. math::

        c_t = \frac{1}{|S|} \sum_{x \in S} \mathbb{1}[\hat y_t(x) \ne
        \hat y_{t-1}(x)],

    stop when :math:`c_t \le` ``threshold`` (0: no change, the paper's rule).
    The changes are counted on a fixed stop set rather than on the shrinking
    pool, whose rows lose their identity between rounds (:doc:`/fidelity`).

    Parameters
    ----------
    X_stop : array-like
        The stop set.
    threshold : float, default=0.0
        Largest share of changed predictions, in [0, 1], at which to stop.

    Attributes
    ----------
    history_ : list of float
        The share of changes of each round (NaN in the first).
    """

    name = "classification_change"

    def __init__(self, X_stop, threshold=0.0):
        super().__init__(X_stop)
        self.threshold = check_number(threshold, "threshold", min_val=0, max_val=1)

    def _statistic(self, learner, X_pool, **kwargs):
        previous, pred = self._consecutive(learner)
        return math.nan if previous is None else float(np.mean(previous != pred))

    def _decide(self, history):
        return not math.isnan(history[-1]) and history[-1] <= self.threshold


class OverallUncertainty(StoppingCriterion):
    r"""Stop when the pool's mean uncertainty falls below a threshold.

    Zhu, Wang and Hovy (COLING 2008), overall uncertainty: with the
    normalised predictive entropy :math:`u(x) = -\sum_k p_k(x) \log p_k(x)
    / \log K \in [0, 1]` of each row of the unlabeled pool :math:`U`, stop
    when

    .. math::

        \frac{1}{|U|} \sum_{x \in U} u(x) \le \text{threshold}.

    Parameters
    ----------
    threshold : float, default=0.05
        In [0, 1]; the entropy is divided by :math:`\log K`, so that one
        threshold serves any number of classes (this package's default).

    Attributes
    ----------
    history_ : list of float
        The mean normalised entropy of each round's pool.
    """

    name = "overall_uncertainty"

    def __init__(self, threshold=0.05):
        super().__init__()
        self.threshold = check_number(threshold, "threshold", min_val=0, max_val=1)

    def _statistic(self, learner, X_pool, **kwargs):
        return float(_normalized_entropy(learner, X_pool, type(self).__name__).mean())

    def _decide(self, history):
        return history[-1] <= self.threshold


class MaxUncertainty(OverallUncertainty):
    r"""Stop when the most uncertain row of the pool is no longer uncertain.

    Zhu, Wang and Hovy (COLING 2008), maximum uncertainty: stop when the
    normalised entropy of the most uncertain unlabeled row (the one
    uncertainty sampling would query next) is at most the threshold,

    .. math::

        \max_{x \in U} u(x) \le \text{threshold}.

    Parameters
    ----------
    threshold : float, default=0.2
        In [0, 1] (this package's default).

    Attributes
    ----------
    history_ : list of float
        The largest normalised entropy of each round's pool.
    """

    name = "max_uncertainty"

    def __init__(self, threshold=0.2):
        super().__init__(threshold)

    def _statistic(self, learner, X_pool, **kwargs):
        return float(_normalized_entropy(learner, X_pool, type(self).__name__).max())


class AccuracyGain(StoppingCriterion):
    r"""Stop when the estimated accuracy stops rising.

    With :math:`\widehat{\operatorname{acc}}_t` the accuracy that
    :func:`~sklearn_crtcl.estimation.estimate_accuracy` estimates on the pool
    after round :math:`t`, stop when the gain over the last ``window`` rounds
    is below ``min_gain``,

    .. math::

        \widehat{\operatorname{acc}}_t - \widehat{\operatorname{acc}}_{t-w}
        < \text{min\_gain}.

    Parameters
    ----------
    method : str, default="confidence"
        The method of :func:`~sklearn_crtcl.estimation.estimate_accuracy`;
        its options (e.g. ``X_labeled=``, ``y_labeled=``, ``q=``) are passed
        to :meth:`update` each round.
    min_gain : float, default=0.005
        Smallest gain (in accuracy, e.g. 0.005 = half a point) over the
        window that keeps labeling going.
    window : int, default=2
        Number of rounds :math:`w` over which the gain is measured.

    Attributes
    ----------
    history_ : list of float
        The estimated accuracy of each round.
    estimates_ : list of AccuracyEstimate
        The full estimates (with their intervals) of each round.
    """

    #: ``accuracy_gain_<method>``, e.g. ``accuracy_gain_confidence`` (per instance).
    name = "accuracy_gain"

    def __init__(self, method="confidence", min_gain=0.005, window=2):
        super().__init__()
        from .estimation import ESTIMATION_METHODS

        if not isinstance(method, str) or method not in ESTIMATION_METHODS:
            raise ValueError(f"method must be one of {ESTIMATION_METHODS}, got {method!r}")
        self.method = method
        self.name = f"accuracy_gain_{method}"
        self.min_gain = check_number(min_gain, "min_gain")
        self.window = check_number(window, "window", integer=True, min_val=1)
        self.estimates_ = []

    @classmethod
    def break_even(cls, price, population, labels_per_round, method="confidence", window=1):
        r"""The gain below which the last rounds' labels cost more than the errors they saved.

        Under the cost measure of :func:`stopping_summary` (labels plus
        ``price`` per error on ``population`` images), :math:`w` rounds of
        :math:`B` labels each paid for themselves if they cut the errors by
        at least :math:`wB/\lambda`, that is if the accuracy rose by at
        least

        .. math::

            \text{min\_gain} = \frac{w\, B}{\lambda\, N}.

        This criterion stops at the first round whose estimated gain over
        the last ``window`` rounds is below that: it looks back, not ahead
        (the next round would need the gain still to come), so with the
        accuracy's concave learning curve it stops at most one round after
        the cheapest one when the estimates are exact. Stopping where the
        cost of labels stops paying is the idea of cost-based optimal
        stopping (Dimitrakakis and Savu-Krohn, *Cost-minimising strategies
        for data labelling: optimal stopping and active learning*, FoIKS
        2008); the cost is Pullar-Strecker et al.'s (2022).

        Parameters
        ----------
        price : float
            :math:`\lambda > 0`: the cost of one error, in labels.
        population : int or float
            :math:`N > 0`: how many images the model will classify (the
            test split in a benchmark).
        labels_per_round : int
            :math:`B \ge 1`: labels bought per round (the query size).
        method : str, default="confidence"
            The estimator (see :class:`AccuracyGain`).
        window : int, default=1
            Rounds :math:`w` over which the gain is measured.

        Returns
        -------
        AccuracyGain
            With ``min_gain`` :math:`wB/(\lambda N)`, named
            ``break_even_<method>`` (its ``stop_``/``stat_`` keys in
            records).

        Examples
        --------
        >>> crit = AccuracyGain.break_even(price=1.0, population=450, labels_per_round=50)
        >>> round(crit.min_gain, 4)
        0.1111
        >>> [crit.update(None, None, estimate=a).stop for a in (0.60, 0.80, 0.85)]
        [False, False, True]
        """
        price = check_number(price, "price", min_val=0, include_boundaries="neither")
        population = check_number(population, "population", min_val=0,
                                   include_boundaries="neither")
        labels_per_round = check_number(labels_per_round, "labels_per_round", integer=True,
                                        min_val=1)
        window = check_number(window, "window", integer=True, min_val=1)
        crit = cls(method, min_gain=window * labels_per_round / (price * population),
                   window=window)
        crit.name = f"break_even_{method}"
        return crit

    @property
    def threshold(self):
        """float: The threshold of :class:`StopDecision`, ``min_gain``."""
        return self.min_gain

    def reset(self):
        """Forget the past rounds and estimates.

        Returns
        -------
        self : AccuracyGain
        """
        self.estimates_ = []
        return super().reset()

    def restore(self, history, learner=None):
        """Continue a run that was interrupted from its past estimates.

        Parameters
        ----------
        history : sequence of float
            The estimated accuracy of each past round (``estimates_`` then
            holds these numbers).
        learner : ignored
            For the interface of :meth:`StoppingCriterion.restore`.

        Returns
        -------
        self : AccuracyGain
        """
        super().restore(history)
        self.estimates_ = list(self.history_)
        return self

    def update(self, learner, X_pool, estimate=None, **kwargs):
        """Estimate the accuracy on the pool (or take ``estimate``) and decide.

        Parameters
        ----------
        learner : modAL learner or estimator
            The model after this round's training.
        X_pool : array-like
            The unlabeled pool after this round.
        estimate : AccuracyEstimate or float, optional
            This round's estimate, already computed (then nothing is
            estimated and ``kwargs`` must be empty).
        **kwargs
            Options of :func:`~sklearn_crtcl.estimation.estimate_accuracy`.

        Returns
        -------
        StopDecision
            ``value`` is the gain over the window (NaN for the first
            ``window`` rounds).
        """
        if estimate is not None and kwargs:
            raise ValueError("pass either estimate= or the options of estimate_accuracy, "
                             "not both")
        if estimate is None:
            estimate = estimate_accuracy(learner, X_pool, self.method, **kwargs)
        elif not hasattr(estimate, "estimate"):
            if (isinstance(estimate, bool) or not isinstance(estimate, numbers.Real)
                    or not math.isfinite(estimate)):
                raise ValueError(f"estimate must be an AccuracyEstimate or a finite number, "
                                 f"got {estimate!r}")
        self.estimates_.append(estimate)
        value = float(getattr(estimate, "estimate", estimate))
        self.history_.append(value)
        history = tuple(self.history_)
        gain = (history[-1] - history[-1 - self.window] if len(history) > self.window
                else math.nan)
        return StopDecision(bool(not math.isnan(gain) and gain < self.min_gain), self.name,
                            len(history), gain, float(self.min_gain), history)


# ---------------------------------------------------------------------------
# Summary over the cycles of a run
# ---------------------------------------------------------------------------


def _records_check(records, keys):
    if isinstance(records, dict) or not hasattr(records, "__iter__"):
        raise TypeError("records must be a list of dicts, one per cycle")
    records = list(records)
    if not records:
        raise ValueError("records is empty: at least one cycle is required")
    for r in records:
        missing = [k for k in keys if k not in r]
        if missing:
            raise ValueError(f"a record lacks the key(s) {missing}: {r}")
    return records


def stopping_summary(records, criteria=None, prices=DEFAULT_PRICES, n_test=None):
    r"""For each criterion, the cycle it stops at and its cost against the best in hindsight.

    The cost of stopping after cycle :math:`c` is the cost measure of
    Pullar-Strecker, Dost, Frank and Wicker (Machine Learning 2022): the
    labels spent plus a price :math:`\lambda` (in labels) per error of the
    model on the test split, which stands for the images the model will
    classify,

    .. math::

        \operatorname{cost}_\lambda(c) = n_{\text{labeled}}(c) + \lambda\,
        n_{\text{test}}\,\big(1 - \operatorname{acc}_{\text{test}}(c)\big).

    A criterion stops at the first cycle whose record says ``stop_<name>``
    is true; one that never does runs to the last cycle (``stopped`` false).
    The hindsight optimum is the cycle of least cost for that price.

    Parameters
    ----------
    records : list of dict
        One record per cycle of one run, in cycle order, each with
        ``cycle``, ``n_labeled``, ``accuracy`` (true test accuracy) and, for
        each criterion, a boolean ``stop_<name>``; ``n_test`` too unless
        given as an argument.
    criteria : sequence of str, optional
        The criteria's names; by default every ``stop_<name>`` key of the
        first record.
    prices : sequence of float, default=DEFAULT_PRICES
        Prices :math:`\lambda \ge 0` of one test error, in labels.
    n_test : int, optional
        Size of the test split, if the records lack ``n_test``.

    Returns
    -------
    rows : list of dict
        One row per criterion and price: ``criterion``, ``price``,
        ``stop_cycle``, ``stopped`` (whether the criterion fired),
        ``n_labeled``, ``cost`` (at the stop cycle), ``best_cycle``,
        ``best_cost`` and ``regret`` (``cost - best_cost``, >= 0).

    Raises
    ------
    ValueError
        For empty records, missing keys, unordered cycles or a negative price.

    Examples
    --------
    >>> recs = [{"cycle": c, "n_labeled": 100 * (c + 1), "accuracy": a, "n_test": 1000,
    ...          "stop_kappa": s}
    ...         for c, (a, s) in enumerate([(0.6, False), (0.8, False), (0.82, True)])]
    >>> row = stopping_summary(recs, prices=[1.0])[0]
    >>> row["stop_cycle"], round(row["cost"], 6), row["best_cycle"], round(row["best_cost"], 6)
    (2, 480.0, 1, 400.0)
    """
    records = _records_check(records, ("cycle", "n_labeled", "accuracy"))
    if criteria is None:
        criteria = [k[len("stop_"):] for k in records[0] if k.startswith("stop_")]
    if not criteria:
        raise ValueError("no criterion: the records have no stop_<name> key")
    prices = [check_number(p, "price", min_val=0) for p in prices]
    if not prices:
        raise ValueError("prices is empty")
    _records_check(records, [f"stop_{c}" for c in criteria])
    cycles = [int(r["cycle"]) for r in records]
    if cycles != sorted(cycles) or len(set(cycles)) != len(cycles):
        raise ValueError(f"records must be one per cycle in cycle order, got cycles {cycles}")
    if n_test is None:
        _records_check(records, ("n_test",))
        sizes = np.array([r["n_test"] for r in records], dtype=np.float64)
    else:
        sizes = np.full(len(records), check_number(n_test, "n_test", integer=True, min_val=1),
                        dtype=np.float64)
    labeled = np.array([r["n_labeled"] for r in records], dtype=np.float64)
    errors = sizes * (1 - np.array([r["accuracy"] for r in records], dtype=np.float64))
    rows = []
    for name in criteria:
        flags = [bool(r[f"stop_{name}"]) for r in records]
        stop = flags.index(True) if any(flags) else len(records) - 1
        for price in prices:
            cost = labeled + price * errors
            best = int(np.argmin(cost))
            rows.append({"criterion": name, "price": float(price),
                         "stop_cycle": cycles[stop], "stopped": any(flags),
                         "n_labeled": int(labeled[stop]), "cost": float(cost[stop]),
                         "best_cycle": cycles[best], "best_cost": float(cost[best]),
                         "regret": float(cost[stop] - cost[best])})
    return rows


def plot_estimates(records, methods=None, ax=None, x="cycle", truth="accuracy", title=None):
    """Plot estimated against true accuracy per cycle, one line per estimator.

    The true accuracy (key ``truth``) is a solid black line; each estimator
    a line of its own, with a shaded band where its records hold an interval
    (``est_<method>_low`` and ``est_<method>_high``).

    Parameters
    ----------
    records : list of dict
        One record per cycle with ``x``, ``truth`` and, per
        estimator, ``est_<method>`` (as
        :func:`~sklearn_crtcl.experiments.estimates.estimation_record`
        writes them).
    methods : sequence of str, optional
        The estimators to draw; by default every ``est_<method>`` key.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure if None.
    x : str, default="cycle"
        Key of the x-axis.
    truth : str, default="accuracy"
        Key of the true accuracy: ``"accuracy"`` (test) or
        ``"pool_accuracy"`` (the pool, the estimates' target, when known).
    title : str, optional
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        For empty records or missing keys.
    """
    from .plotting import _axis_label, _get_ax, _line_style

    records = _records_check(records, (x, truth))
    if methods is None:
        methods = [k[4:] for k in records[0]
                   if k.startswith("est_") and not k.endswith(("_low", "_high"))]
    records = _records_check(records, [f"est_{m}" for m in methods])
    ax = _get_ax(ax)
    xs = np.array([r[x] for r in records], dtype=np.float64)
    ax.plot(xs, [r[truth] for r in records], color="black", linewidth=2,
            label=_axis_label(truth))
    for i, m in enumerate(methods):
        marker, linestyle = _line_style(i)
        (line,) = ax.plot(xs, [r[f"est_{m}"] for r in records], marker=marker,
                          markerfacecolor="none", linestyle=linestyle, label=m)
        low = np.array([r.get(f"est_{m}_low", np.nan) for r in records], dtype=np.float64)
        high = np.array([r.get(f"est_{m}_high", np.nan) for r in records], dtype=np.float64)
        if np.isfinite(low).any():
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel("Accuracy")
    ax.set_title("Estimated and true accuracy" if title is None else title)
    ax.legend(title="estimator (band: interval)")
    return ax
