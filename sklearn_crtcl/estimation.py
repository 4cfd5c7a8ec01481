r"""How accurate is the model on the unlabeled pool, without a labeled test set.

:func:`estimate_accuracy` estimates the accuracy of a fitted classifier on the
images ``X`` (typically the unlabeled pool of an active-learning round),

.. math::

    \operatorname{acc}(X) = \frac{1}{N} \sum_{i=1}^{N}
    \mathbb{1}[\hat y(x_i) = y_i],

with one of six methods (:data:`ESTIMATION_METHODS`; equations, papers and
what each needs in :doc:`/estimation`):

* ``"confidence"``: average confidence (AC), from the predictions alone;
* ``"temperature"``: average confidence after temperature scaling (Guo et
  al., ICML 2017) fitted on labeled data the model was not trained on
  (scikit-learn's ``CalibratedClassifierCV(method="temperature")``), the
  labels weighted by their draw probabilities when a query drew them;
* ``"atc"``: average thresholded confidence (Garg et al., ICLR 2022), a
  threshold fitted on labeled data the model was not trained on;
* ``"doc"``: difference of confidences (Guillory et al., ICCV 2021) against a
  labeled reference;
* ``"critic"``: the mean predicted probability of being correct of a
  probabilistic critic (anything with ``predict_correctness`` returning
  probabilities);
* ``"importance"``: an unbiased estimate from the labels of a batch drawn at
  random with known per-draw probabilities (the stochastic selections of
  :mod:`sklearn_crtcl.query` return them with ``return_proposal=True``), with
  a confidence interval (Active Testing, Kossen et al., ICML 2021; LURE,
  Farquhar et al., ICLR 2021; Des Raj 1956).

In active learning the batch just labeled, *before* the model is trained on
it, is labeled data the model was not trained on: it serves
``"temperature"``, ``"atc"``, ``"doc"`` and ``"importance"``.
"""

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .metrics import _check_proba, _entropy, _estimator_labels

__all__ = ["AccuracyEstimate", "estimate_accuracy", "draw_probabilities", "ESTIMATION_METHODS",
           "ATC_SCORES", "IMPORTANCE_ESTIMATORS", "IMPORTANCE_INTERVALS"]

#: The values of ``method`` of :func:`estimate_accuracy`.
ESTIMATION_METHODS = ("confidence", "temperature", "atc", "doc", "critic", "importance")

#: The score functions of ``method="atc"`` (the two of Garg et al. 2022).
ATC_SCORES = ("max_confidence", "negative_entropy")

#: The estimators of ``method="importance"``: ``"desraj"`` (the default, with
#: an unbiased variance estimate) and ``"lure"`` (Farquhar et al. 2021).
IMPORTANCE_ESTIMATORS = ("desraj", "lure")

#: The intervals of ``method="importance"``: ``"korn-graubard"`` (a
#: Clopper-Pearson interval on the effective sample size; Korn and Graubard
#: 1998), ``"korn-graubard-truncated"`` (the default: the same with the effective
#: sample size at most the number of draws, a design effect of at least 1) and
#: ``"normal"`` (the estimate plus or minus a normal quantile times its standard
#: error).
IMPORTANCE_INTERVALS = ("korn-graubard", "korn-graubard-truncated", "normal")

# the keyword arguments each method reads; any other one given is an error
_USES = {
    "confidence": (),
    "temperature": ("X_labeled", "y_labeled", "q", "indices", "held_out"),
    "atc": ("X_labeled", "y_labeled", "score"),
    "doc": ("X_labeled", "y_labeled"),
    "critic": ("critic",),
    "importance": ("X_labeled", "y_labeled", "q", "indices", "estimator",
                   "confidence_level", "interval"),
}
# the methods that need labeled rows the model was not trained on
_NEEDS_LABELS = ("temperature", "atc", "doc", "importance")
_DEFAULTS = {"X_labeled": None, "y_labeled": None, "score": "max_confidence", "critic": None,
             "q": None, "indices": None, "estimator": "desraj", "confidence_level": 0.95,
             "interval": "korn-graubard-truncated", "held_out": None}


@dataclass(frozen=True)
class AccuracyEstimate:
    """An estimate of a classifier's accuracy, with its interval where the method gives one.

    Attributes
    ----------
    estimate : float
        The estimated accuracy (for ``"importance"`` an unbiased estimate,
        which may fall outside ``[0, 1]`` on a small batch).
    low, high : float
        The bounds of the confidence interval, clipped to ``[0, 1]``; NaN for
        the methods that give none (all but ``"importance"``).
    method : str
        The method of :func:`estimate_accuracy` that made the estimate.
    """

    estimate: float
    low: float
    high: float
    method: str

    @property
    def has_interval(self):
        """bool: Whether the method gave a confidence interval."""
        return not (math.isnan(self.low) or math.isnan(self.high))


def _unwrap(classifier, name):
    """The estimator behind a modAL learner, or ``classifier`` itself."""
    if classifier is None:
        raise TypeError(f"estimate_accuracy needs a fitted {name}, got None")
    if hasattr(classifier, "query_strategy") and hasattr(classifier, "estimator"):
        return classifier.estimator
    return classifier


def _require(est, method, what):
    if not callable(getattr(est, method, None)):
        raise TypeError(f"estimate_accuracy needs {what} with a `{method}(X)` method, got "
                        f"{type(est).__name__}")


def _n_rows(X, name):
    if X is None:
        raise ValueError(f"{name} must not be None")
    if not hasattr(X, "__len__") or isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be an array of rows, got {type(X).__name__}")
    n = len(X)
    if n == 0:
        raise ValueError(f"{name} is empty: at least one row is required")
    return n


def _proba(est, X, name):
    try:
        return _check_proba(est.predict_proba(X))
    except ValueError as exc:
        raise ValueError(f"predict_proba({name}) is not a probability matrix: {exc}") from None


def _label_columns(est, n_classes, y, name="y_labeled"):
    """The classifier's classes and the column of each label of ``y`` among them.

    Raises ``ValueError`` naming the labels that are not among the classes (a
    string label for an integer classifier, a class the net was not built
    for): compared as they are, they would count as errors.
    """
    labels = _estimator_labels(est, n_classes)
    classes = np.arange(n_classes) if labels is None else np.asarray(labels)
    position = {c: k for k, c in enumerate(classes.tolist())}
    values = np.asarray(y).tolist()
    unknown = sorted({v for v in values if v not in position}, key=str)
    if unknown:
        raise ValueError(f"{name} holds labels {unknown[:5]} that are not among the "
                         f"classifier's classes {classes.tolist()}")
    return classes, np.array([position[v] for v in values], dtype=np.intp)


def _correct(est, proba, y):
    """Whether each row's predicted class, ``proba``'s argmax, is its label ``y``."""
    _, columns = _label_columns(est, proba.shape[1], y)
    return (np.argmax(proba, axis=1) == columns).astype(np.float64)


def _score(proba, score):
    """The ATC score of each row: max probability or negative entropy."""
    if score == "max_confidence":
        return proba.max(axis=1)
    return -_entropy(proba)


def _check_y(y, n, name="y_labeled"):
    if y is None:
        raise ValueError(f"{name} must not be None")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be 1-D with one label per row of X_labeled ({n}), got "
                         f"shape {y.shape}")
    return y


def _check_q(q, indices, n_pool, n_labeled):
    """Per-draw probabilities of the labeled rows, in draw order."""
    if q is None:
        raise ValueError("method='importance' needs q, the selection probabilities of the "
                         "labeled rows (per draw) or the proposal over the pool X with "
                         "indices=")
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 1 or not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError("q must be a 1-D array of finite probabilities >= 0")
    if indices is None:
        if len(q) != n_labeled:
            raise ValueError(f"q must give one per-draw probability per labeled row "
                             f"({n_labeled}), got {len(q)}; to pass the proposal over the "
                             "pool, pass indices= too")
        if np.any(q <= 0) or np.any(q > 1):
            raise ValueError("each per-draw probability of q must lie in (0, 1]: a row "
                             "drawn with probability 0 cannot have been drawn")
        return q
    indices = np.asarray(indices)
    if (indices.ndim != 1 or len(indices) != n_labeled
            or not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(f"indices must be 1-D integer positions into X, one per labeled "
                         f"row ({n_labeled}), in draw order")
    if len(q) != n_pool:
        raise ValueError(f"with indices=, q is the proposal over the pool X: one "
                         f"probability per row of X ({n_pool}), got {len(q)}")
    if np.any(indices < 0) or np.any(indices >= n_pool) or len(np.unique(indices)) != n_labeled:
        raise ValueError(f"indices must be distinct positions in [0, {n_pool})")
    if abs(q.sum() - 1.0) > 1e-6:
        raise ValueError(f"the proposal q over the pool must sum to 1, got {q.sum():.6g}")
    return draw_probabilities(q, indices)


def draw_probabilities(proposal, order):
    r"""The probability of each draw of a sequential draw without replacement.

    A batch drawn one item at a time with probabilities proportional to
    ``proposal`` among the items not yet drawn (the Plackett--Luce design,
    which the Gumbel-top-:math:`k` trick of the stochastic selections draws
    in one go) has, at draw :math:`m`,

    .. math::

        q_m(i_m) = \frac{p_{i_m}}{1 - \sum_{j < m} p_{i_j}}.

    Parameters
    ----------
    proposal : array-like of shape (n_pool,)
        The first draw's probabilities :math:`p` over the pool (sum 1).
    order : array-like of int of shape (m,)
        Distinct positions of the drawn items, in draw order.

    Returns
    -------
    q : ndarray of shape (m,)
        :math:`q_m(i_m)` for each draw.
    """
    p = np.asarray(proposal, dtype=np.float64)[np.asarray(order)]
    before = np.r_[0.0, np.cumsum(p)[:-1]]
    remaining = np.clip(1.0 - before, np.finfo(np.float64).tiny, None)
    q = np.minimum(p / remaining, 1.0)
    if np.any(q <= 0):
        raise ValueError("a drawn row has proposal probability 0: it cannot have been drawn")
    return q


def _z(confidence_level):
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence_level / 2))


def _korn_graubard(error, variance, m, confidence_level, truncate=False):
    """Clopper-Pearson bounds of an error rate estimated with ``variance`` from
    ``m`` draws, on the effective sample size ``error (1 - error) / variance``
    (``m`` when that is undefined: no error drawn, or an estimate outside (0, 1);
    at most ``m`` with ``truncate``)."""
    from scipy.stats import beta

    e = min(max(error, 0.0), 1.0)
    n = e * (1 - e) / variance if 0 < e < 1 and variance > 0 else float(m)
    if truncate:
        n = min(n, float(m))
    x = e * n  # the effective number of errors
    alpha = 1 - confidence_level
    low = beta.ppf(alpha / 2, x, n - x + 1) if x > 0 else 0.0
    high = beta.ppf(1 - alpha / 2, x + 1, n - x) if x < n else 1.0
    return float(low), float(high)


def _importance(a, q, n_pool, estimator, confidence_level, interval):
    """Accuracy on the pool: one minus the error rate estimated from the draws' losses."""
    loss = 1.0 - a  # the 0-1 loss of each draw, in draw order
    m = len(loss)
    if estimator == "desraj":
        # t_m = (sum_{j<m} L_j + L_m / q_m) / N: each unbiased given the draws before it
        before = np.r_[0.0, np.cumsum(loss)[:-1]]
        terms = (before + loss / q) / n_pool
    else:  # lure
        steps = np.arange(1, m + 1)
        if m == n_pool:
            v = np.ones(m)
        else:
            v = 1 + (n_pool - m) / (n_pool - steps) * (1 / ((n_pool - steps + 1) * q) - 1)
        terms = v * loss
    error = float(terms.mean())
    estimate = 1.0 - error
    if m < 2:
        return estimate, float("nan"), float("nan")
    variance = float(terms.var(ddof=1)) / m
    if interval == "normal":
        half = _z(confidence_level) * np.sqrt(variance)
        return estimate, max(0.0, estimate - half), min(1.0, estimate + half)
    low, high = _korn_graubard(error, variance, m, confidence_level,
                               truncate=interval == "korn-graubard-truncated")
    return estimate, 1.0 - high, 1.0 - low


def _desraj_weights(q):
    """Each draw's coefficient in Des Raj's estimator of a pool total, ``1/q_m + M - m``
    (``m`` from 1): the weight that makes a drawn batch stand for its pool."""
    m = len(q)
    return 1.0 / q + (m - np.arange(1, m + 1))


def _check_held_out(held_out):
    """The ``(probabilities, labels)`` pairs of ``held_out``, checked (before any
    prediction): a list of ``(ndarray (n, K), ndarray (n,))``, one K for all."""
    if isinstance(held_out, (str, bytes, np.ndarray)) or not hasattr(held_out, "__iter__"):
        raise TypeError("held_out must be a sequence of (probabilities, labels) pairs, got "
                        f"{type(held_out).__name__}")
    pairs, n_classes = [], None
    for k, pair in enumerate(held_out):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"held_out[{k}] must be a (probabilities, labels) pair, got "
                             f"{type(pair).__name__}")
        try:
            proba = _check_proba(pair[0])
        except ValueError as exc:
            raise ValueError(f"held_out[{k}]'s probabilities: {exc}") from None
        if n_classes is not None and proba.shape[1] != n_classes:
            raise ValueError(f"held_out[{k}] has {proba.shape[1]} probability columns, "
                             f"held_out[0] {n_classes}")
        n_classes = proba.shape[1]
        y = _check_y(pair[1], len(proba), name=f"held_out[{k}]'s labels")
        pairs.append((proba, y))
    return pairs


def _temperature_confidence(est, X, X_l, y_l, weights, held_out=()):
    """Mean maximum probability on ``X`` after scikit-learn's temperature scaling
    of ``est``'s probabilities, fitted on ``(X_l, y_l)`` with ``weights`` and on the
    checked ``held_out`` pairs (weight 1); ``X_l`` may be None if there are pairs."""
    from sklearn.calibration import CalibratedClassifierCV
    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # scikit-learn < 1.6
        raise ValueError("method='temperature' needs scikit-learn 1.8 or later (its "
                         "CalibratedClassifierCV(method='temperature'))") from None

    fit_rows = []  # (probabilities, labels, weights, the labels' name in errors)
    proba = None  # of X: predicted after the checks, unless it gives the class count
    if X_l is not None:
        fit_rows.append((_proba(est, X_l, "X_labeled"), y_l, weights, "y_labeled"))
        n_classes = fit_rows[0][0].shape[1]
    else:  # only held-out batches: the classifier's class count is read off X
        proba = _proba(est, X, "X")
        n_classes = proba.shape[1]
    for k, (p, y) in enumerate(held_out):
        if p.shape[1] != n_classes:
            raise ValueError(f"held_out[{k}] has {p.shape[1]} probability columns, the "
                             f"classifier {n_classes}")
        fit_rows.append((p, y, None, f"held_out[{k}]'s labels"))
    classes, proba_l, columns, w = None, [], [], []
    for p, y, weight, name in fit_rows:
        classes, cols = _label_columns(est, n_classes, y, name)
        proba_l.append(p)
        columns.append(cols)
        w.append(np.ones(len(cols)) if weight is None else np.asarray(weight, np.float64))
    proba_l, columns, weights = np.vstack(proba_l), np.concatenate(columns), np.concatenate(w)
    # scikit-learn takes the classes from y: a class the batch lacks gets a row of
    # weight 0 (no term in the likelihood), so that the columns stay the classes
    missing = np.setdiff1d(np.arange(len(classes)), columns)
    if len(missing):
        proba_l = np.vstack([proba_l, np.full((len(missing), len(classes)), 1 / len(classes))])
        columns = np.r_[columns, missing]
        weights = np.r_[weights, np.zeros(len(missing))]
    rows = np.arange(len(columns))  # one split: the frozen model needs no folds
    calibrated = CalibratedClassifierCV(FrozenEstimator(_Probabilities(len(classes))),
                                        method="temperature", cv=[(rows, rows)])
    try:
        with warnings.catch_warnings():
            # the weights are meant for the calibration alone (the classifier is frozen)
            warnings.filterwarnings("ignore", message=".*does not appear to accept sample_weight",
                                    category=UserWarning)
            calibrated.fit(proba_l, columns, sample_weight=weights)
    except ValueError as exc:
        if "temperature" in str(exc) and "method" in str(exc):
            raise ValueError("method='temperature' needs scikit-learn 1.8 or later (its "
                             "CalibratedClassifierCV(method='temperature'))") from exc
        raise
    if proba is None:
        proba = _proba(est, X, "X")
    return float(calibrated.predict_proba(proba).max(axis=1).mean())


class _Probabilities(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose input is already its probabilities, for
    scikit-learn's calibration of probabilities computed once."""

    def __init__(self, n_classes):
        self.n_classes = n_classes

    def __sklearn_is_fitted__(self):
        return True

    @property
    def classes_(self):
        return np.arange(self.n_classes)

    def fit(self, X, y=None):
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):
        return self.classes_[np.argmax(X, axis=1)]


def _check_critic(critic):
    _require(critic, "predict_correctness", "a critic")
    loss = getattr(critic, "critic_loss", None)
    if loss is None:
        from .nets import CriticLossNet

        if isinstance(critic, CriticLossNet) and "critic_loss" not in critic.get_params():
            loss = "wasserstein"  # the paper's critic, the only one of this CriticLossNet
    if isinstance(loss, str) and loss == "wasserstein":
        raise ValueError(
            "method='critic' averages probabilities of being correct, but this critic is "
            "trained with the Wasserstein critic loss (critic_loss='wasserstein', the CrtCl "
            "paper's): its scores rank samples and have no probability scale. Use a "
            "probabilistic critic (e.g. critic_loss='bce' or 'tcp'), or another method")


def estimate_accuracy(classifier, X, method="confidence", **kwargs):
    r"""Estimate the accuracy of ``classifier`` on the unlabeled images ``X``.

    With :math:`p(x)` the classifier's ``predict_proba`` on :math:`N` rows
    :math:`x_1..x_N` of ``X`` and :math:`\hat y(x) = \arg\max_k p_k(x)`:

    ``"confidence"`` (average confidence, AC; e.g. Hendrycks and Gimpel 2017,
    Guillory et al. 2021): exact for a calibrated classifier,

    .. math:: \widehat{\operatorname{acc}} = \frac{1}{N}\sum_i \max_k p_k(x_i).

    ``"temperature"`` (average confidence after temperature scaling, Guo et
    al., ICML 2017; Garg et al., ICLR 2022, apply it before every estimator):
    the inverse temperature :math:`\hat\beta` minimises the negative
    log-likelihood of the :math:`n` labeled rows, weighted by :math:`w_j`,
    :math:`-\sum_j w_j \log \operatorname{softmax}(\beta \log p(x'_j))_{y'_j}`
    (scikit-learn's ``CalibratedClassifierCV(FrozenEstimator(.),
    method="temperature")`` on the probabilities), and

    .. math:: \widehat{\operatorname{acc}} = \frac{1}{N}\sum_i \max_k
              \operatorname{softmax}(\hat\beta \log p(x_i))_k.

    Scaling does not change the predicted classes: this is the accuracy of the
    classifier itself, with its over- or under-confidence measured on the
    labeled rows. With ``q`` (a batch drawn as for ``"importance"``), row
    :math:`m` of :math:`M` weighs :math:`w_m = 1/q_m + M - m`, its
    coefficient in Des Raj's estimator (below), so that the fitted likelihood
    is the pool's; without ``q`` the rows weigh the same, which suits a
    random sample of the pool and not a batch an uncertainty query chose
    (its hard images make :math:`\hat\beta` too small). With
    ``held_out``, the batches of earlier rounds join the fit, each row
    :math:`(p_s(x'), y')` with the probabilities of the model *of its
    round*, which had not been trained on it (the model changes from round
    to round, its temperature less: this trades a little drift for many
    more labels in the fit),

    .. math:: \hat\beta = \arg\min_\beta -\sum_{s \le t} \sum_{j \in B_s}
              \log \operatorname{softmax}(\beta \log p_s(x'_j))_{y'_j},

    and the estimate scales the current model's probabilities on ``X`` with
    it. Needs scikit-learn 1.8 or later.

    ``"atc"`` (Average Thresholded Confidence, Garg et al., ICLR 2022, Eq. 1):
    on the :math:`n` labeled rows :math:`(x'_j, y'_j)`, the threshold
    :math:`t` makes the share of scores below it equal the error rate,
    :math:`\frac{1}{n}\sum_j \mathbb{1}[s(x'_j) < t] = \frac{1}{n}\sum_j
    \mathbb{1}[\hat y(x'_j) \ne y'_j]` (:math:`t` is the
    :math:`(e+1)`-th smallest labeled score for :math:`e` errors), then

    .. math:: \widehat{\operatorname{acc}} = \frac{1}{N}\sum_i \mathbb{1}[s(x_i) \ge t],

    with :math:`s` the maximum probability (``score="max_confidence"``) or the
    negative entropy :math:`\sum_k p_k \log p_k` (``"negative_entropy"``).
    The labeled rows must not have been used to train the model.

    ``"doc"`` (difference of confidences, Guillory et al., ICCV 2021): the
    labeled accuracy shifted by the fall in average confidence,

    .. math:: \widehat{\operatorname{acc}} = \operatorname{acc}(X') -
              \big(\operatorname{AC}(X') - \operatorname{AC}(X)\big).

    ``"critic"``: the mean of a probabilistic critic's probability that each
    prediction is correct, :math:`\frac{1}{N}\sum_i c(x_i)`, :math:`c(x) \in
    [0, 1]` from ``critic.predict_correctness`` (``critic`` defaults to
    ``classifier``). A Wasserstein critic (``critic_loss="wasserstein"``, the
    CrtCl paper's, and this package's :class:`~sklearn_crtcl.CriticLossNet`
    without a ``critic_loss`` parameter) gives scores, not probabilities, and
    is refused, as are scores outside :math:`[0, 1]`.

    ``"importance"``: the labeled rows are a batch drawn from ``X`` one at a
    time without replacement, draw :math:`m` taking row :math:`i_m` with
    probability :math:`q_m` among the rows not yet drawn (the stochastic
    selections ``"power"``, ``"softmax"``, ``"rank"`` of
    :mod:`sklearn_crtcl.query`; Active Testing, Kossen et al., ICML 2021).
    As in Active Testing, the estimate is one minus the estimated error
    rate, from the 0-1 losses :math:`L_m = \mathbb{1}[\hat y(x_{i_m}) \ne
    y_{i_m}]` of the draws: a proposal that follows the chance of an error
    (an uncertainty score) then has a small variance, where weighting the
    correct draws would divide by the small probabilities of the confident
    rows. Either estimator is unbiased for :math:`\operatorname{acc}(X)`
    under this design:

    * ``estimator="desraj"`` (the default; Des Raj 1956's ordered estimator)
      gives :math:`1 - \bar t` with :math:`t_m = \frac{1}{N}\big(\sum_{j<m}
      L_j + L_m / q_m\big)`, each unbiased for the error rate given the
      draws before it, so that :math:`\frac{1}{M(M-1)}\sum_m (t_m - \bar
      t)^2` is an unbiased estimate :math:`\hat V` of its variance;
    * ``estimator="lure"`` (LURE, Farquhar et al., ICLR 2021, Eq. 4) gives
      :math:`1 - \frac{1}{M}\sum_m v_m L_m` with :math:`v_m = 1 +
      \frac{N-M}{N-m}\big(\frac{1}{(N-m+1) q_m} - 1\big)`; :math:`\hat V`,
      the sample variance of the :math:`v_m L_m` over :math:`M`, is an
      approximation (the terms are correlated).

    The interval at level :math:`\gamma` is built on the estimated error
    rate :math:`\hat e` and :math:`\hat V`:

    * ``interval="korn-graubard"`` (Korn and Graubard,
      *Survey Methodology* 24(2), 1998): the Clopper-Pearson interval of
      :math:`x^* = n^* \hat e` errors in :math:`n^* = \hat e(1 - \hat e) /
      \hat V` draws (the effective sample size; :math:`n^* = M` when no
      error was drawn), :math:`[B^{-1}_{(1-\gamma)/2}(x^*, n^* - x^* + 1),
      B^{-1}_{(1+\gamma)/2}(x^* + 1, n^* - x^*)]` with :math:`B^{-1}` the
      beta quantile. A batch with few errors then gets an interval as wide
      as its evidence: with no error drawn it is :math:`[0,
      1 - ((1-\gamma)/2)^{1/M}]`, where the normal one is a single point;
    * ``interval="korn-graubard-truncated"`` (the default): the same with
      :math:`n^* = \min(\hat e(1 - \hat e) / \hat V, M)`, a design effect
      of at least 1 (the truncation survey practice applies to this
      interval). When the
      batch holds one or two errors, :math:`\hat V` is often far too small
      (an error drawn early makes every later Des Raj term alike) and
      :math:`n^*` runs to thousands of draws: the interval shrinks to a
      point. Truncated, it is never narrower than a uniform batch of
      :math:`M` with the same error rate would give, so it covers more and
      forgoes the narrower intervals a good proposal can earn (measured in
      the runner's tables: a 90 % interval covering 97 % of the digits
      cycles, against 78 % for the plain one, and 91 % of the
      Fashion-MNIST ones; the docs' estimation page);
    * ``interval="normal"``: :math:`\hat e \pm z_{(1+\gamma)/2} \sqrt{\hat
      V}`, which covers much less than :math:`\gamma` when the batch holds
      few errors.

    The accuracy's interval is one minus the error's, within :math:`[0,
    1]`. The estimate is not clipped (that would bias it): on a small batch
    it can leave :math:`[0, 1]`.

    Parameters
    ----------
    classifier : estimator or modAL learner
        A fitted classifier with ``predict_proba`` (for ``"critic"`` with a
        separate ``critic``, only that critic is used), or a modAL
        ``ActiveLearner`` wrapping one.
    X : array-like of shape (N, ...)
        The images whose accuracy is estimated (the unlabeled pool); for
        ``"importance"`` the pool the labeled batch was drawn from, batch
        included (with a random candidate subset, the candidates: the
        estimate is then unbiased for the candidates and so for the pool).
    method : str, default="confidence"
        The estimator, one of :data:`ESTIMATION_METHODS`: ``"confidence"``,
        ``"temperature"``, ``"atc"``, ``"doc"``, ``"critic"``, ``"importance"``.
    **kwargs
        The options of the method; one the method does not use is an error:

        X_labeled, y_labeled : array-like
            ``"temperature"``, ``"atc"``, ``"doc"``, ``"importance"``:
            labeled rows the model was not trained on (for ``"importance"``,
            and ``"temperature"`` with ``q``, the drawn batch in draw order;
            with ``indices``, ``X_labeled`` defaults to ``X[indices]``).
        score : {"max_confidence", "negative_entropy"}, default="max_confidence"
            ``"atc"``: the score function (:data:`ATC_SCORES`).
        critic : object with ``predict_correctness``, optional
            ``"critic"``: the critic, if not ``classifier``.
        q : array-like
            ``"importance"`` (and, optional, ``"temperature"``): the per-draw probabilities :math:`q_m` of the
            labeled rows, shape ``(M,)`` (``proposal.q`` of a query with
            ``return_proposal=True``, ``X`` then being
            ``X_pool[proposal.candidates]``); or, with ``indices``, the
            proposal over ``X`` (shape ``(N,)``, sum 1) of a draw
            proportional to it without replacement, converted by
            :func:`draw_probabilities`.
        indices : array-like of int, optional
            ``"importance"``, ``"temperature"``: positions of the labeled rows in ``X``, in draw
            order.
        held_out : sequence of (array-like, array-like), optional
            ``"temperature"``: earlier rounds' batches as ``(probabilities,
            labels)`` pairs, the probabilities (shape ``(n_s, K)``) those of
            the model of that round, queried before it trained on them
            (``predict_proba`` of the batch before ``teach``). They join the
            fit with weight 1; with them ``X_labeled`` and ``y_labeled`` may
            be left out (the last round, which has no next batch). Not with
            ``q``.
        estimator : {"desraj", "lure"}, default="desraj"
            ``"importance"``: :data:`IMPORTANCE_ESTIMATORS`.
        confidence_level : float, default=0.95
            ``"importance"``: the level :math:`\gamma` of the interval, in
            (0, 1).
        interval : str, default="korn-graubard-truncated"
            ``"importance"``: the interval, ``"korn-graubard-truncated"``,
            ``"korn-graubard"`` or ``"normal"``
            (:data:`IMPORTANCE_INTERVALS`, Notes).

    Returns
    -------
    AccuracyEstimate
        ``estimate``, the interval ``low``, ``high`` (NaN when the method
        gives none, or for ``"importance"`` with a single draw) and
        ``method``.

    Raises
    ------
    ValueError
        For an unknown method or option, an option the method does not use,
        missing labeled data, inconsistent shapes, labels ``y_labeled`` that
        are not among the classifier's classes (``classes_``, else ``0 .. K-1``),
        invalid probabilities (of the classifier or in ``held_out``),
        ``held_out`` pairs that are not pairs or disagree in their number of
        classes, ``held_out`` with ``q``, a Wasserstein critic or critic
        scores outside ``[0, 1]``.
    TypeError
        If the classifier has no ``predict_proba`` (or the critic no
        ``predict_correctness``), or ``held_out`` is not a sequence.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_crtcl.estimation import estimate_accuracy
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(400, 2)); y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    >>> clf = LogisticRegression().fit(X[:100], y[:100])
    >>> est = estimate_accuracy(clf, X[200:], "atc", X_labeled=X[100:200], y_labeled=y[100:200])
    >>> est.method, 0 <= est.estimate <= 1
    ('atc', True)
    """
    if not isinstance(method, str) or method not in ESTIMATION_METHODS:
        raise ValueError(f"method must be one of {ESTIMATION_METHODS}, got {method!r}")
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"estimate_accuracy got unknown option(s) {unknown}; the options "
                         f"are {sorted(_DEFAULTS)}")
    unused = sorted(set(kwargs) - set(_USES[method]))
    if unused:
        raise ValueError(f"method={method!r} does not use {unused}; it takes "
                         f"{list(_USES[method]) or 'no option'}")
    opts = {**_DEFAULTS, **kwargs}
    n_pool = _n_rows(X, "X")

    if method == "critic":
        critic = _unwrap(classifier if opts["critic"] is None else opts["critic"], "critic")
        _check_critic(critic)
        c = np.asarray(critic.predict_correctness(X), dtype=np.float64).reshape(-1)
        if len(c) != n_pool:
            raise ValueError(f"predict_correctness(X) returned {len(c)} values for {n_pool} "
                             "rows")
        if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
            raise ValueError(
                "method='critic' needs probabilities of being correct in [0, 1], but "
                f"predict_correctness returned values in [{np.nanmin(c):.4g}, "
                f"{np.nanmax(c):.4g}]: scores of a ranking critic (e.g. a Wasserstein one) "
                "are not probabilities")
        return AccuracyEstimate(float(c.mean()), math.nan, math.nan, method)

    est = _unwrap(classifier, "classifier")
    _require(est, "predict_proba", "a fitted classifier")
    X_l, y_l = opts["X_labeled"], opts["y_labeled"]
    held_out = [] if opts["held_out"] is None else _check_held_out(opts["held_out"])
    if held_out and opts["q"] is not None:
        raise ValueError("method='temperature' takes q= or held_out=, not both: q weights "
                         "one drawn batch, held_out pools earlier batches unweighted")
    n_l = 0
    if method in _NEEDS_LABELS and not (held_out and X_l is None and y_l is None
                                        and opts["indices"] is None):
        if method in ("importance", "temperature") and X_l is None and opts["indices"] is not None:
            X_l = X[np.asarray(opts["indices"])]
        if X_l is None or y_l is None:
            raise ValueError(
                f"method={method!r} needs labeled data the model was not trained on: pass "
                "X_labeled= and y_labeled= (in active learning, the newly labeled batch "
                "before training on it)")
        n_l = _n_rows(X_l, "X_labeled")
        y_l = _check_y(y_l, n_l)
    if method == "atc" and (not isinstance(opts["score"], str)
                            or opts["score"] not in ATC_SCORES):
        raise ValueError(f"score must be one of {ATC_SCORES}, got {opts['score']!r}")
    if method == "temperature":
        weights = None
        if opts["q"] is not None:
            weights = _desraj_weights(_check_q(opts["q"], opts["indices"], n_pool, n_l))
        elif opts["indices"] is not None:
            raise ValueError("method='temperature' got indices= without q=: the indices "
                             "only locate a drawn batch whose proposal q weights it")
        return AccuracyEstimate(_temperature_confidence(est, X, X_l, y_l, weights, held_out),
                                math.nan, math.nan, method)
    if method == "importance":
        if opts["estimator"] not in IMPORTANCE_ESTIMATORS:
            raise ValueError(f"estimator must be one of {IMPORTANCE_ESTIMATORS}, got "
                             f"{opts['estimator']!r}")
        if not isinstance(opts["interval"], str) or opts["interval"] not in IMPORTANCE_INTERVALS:
            raise ValueError(f"interval must be one of {IMPORTANCE_INTERVALS}, got "
                             f"{opts['interval']!r}")
        level = opts["confidence_level"]
        if (isinstance(level, bool) or not isinstance(level, numbers.Real)
                or not 0 < level < 1):
            raise ValueError(f"confidence_level must be a number in (0, 1), got {level!r}")
        if n_l > n_pool:
            raise ValueError(f"the batch ({n_l} rows) cannot be larger than the pool X it "
                             f"was drawn from ({n_pool} rows)")
        q = _check_q(opts["q"], opts["indices"], n_pool, n_l)
        proba_l = _proba(est, X_l, "X_labeled")
        a = _correct(est, proba_l, y_l)
        estimate, low, high = _importance(a, q, n_pool, opts["estimator"], float(level),
                                          opts["interval"])
        return AccuracyEstimate(estimate, low, high, method)

    proba = _proba(est, X, "X")
    if method == "confidence":
        return AccuracyEstimate(float(proba.max(axis=1).mean()), math.nan, math.nan, method)
    proba_l = _proba(est, X_l, "X_labeled")
    a = _correct(est, proba_l, y_l)
    if method == "doc":
        value = a.mean() - (proba_l.max(axis=1).mean() - proba.max(axis=1).mean())
        return AccuracyEstimate(float(value), math.nan, math.nan, method)
    s_l, s = _score(proba_l, opts["score"]), _score(proba, opts["score"])
    errors = int(round(len(a) - a.sum()))
    threshold = np.inf if errors == len(a) else np.sort(s_l)[errors]
    return AccuracyEstimate(float(np.mean(s >= threshold)), math.nan, math.nan, method)
