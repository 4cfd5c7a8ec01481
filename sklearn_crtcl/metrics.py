"""Calibration metrics and scikit-learn scorers.

This module implements the calibration measures used to evaluate CrtCl and
active-learning experiments:

* :func:`expected_calibration_error` -- the binned expected calibration error
  (ECE, Eq. 6 of the CrtCl paper), with equal-width or equal-mass
  (``strategy="quantile"``) bins;
* :func:`maximum_calibration_error` -- the largest gap of a bin (MCE);
* :func:`classwise_calibration_error` -- the class-wise ECE;
* :func:`reliability_curve` -- the per-bin statistics behind the ECE, used to
  draw reliability diagrams;
* :func:`brier_score` -- the multiclass Brier score;
* :func:`negative_log_likelihood` -- the mean negative log-likelihood;
* :func:`ood_auroc` -- the AUROC of out-of-distribution detection from the
  maximum probability (:func:`max_probability_score`) or the energy
  (:func:`energy_score`) of the outputs.

All metrics take ``y_true`` (class labels) and ``y_proba`` (an ``(n_samples,
n_classes)`` array of predicted probabilities, as returned by
``predict_proba``).  By default ``y_true`` holds integer column indices of
``y_proba``; pass ``labels`` (e.g. a fitted classifier's ``classes_``) to use
arbitrary class labels instead.

The module also provides scikit-learn compatible scorers
(:data:`ece_scorer`, :data:`brier_scorer`, :data:`nll_scorer`,
:data:`equal_mass_ece_scorer`, :data:`mce_scorer`,
:data:`classwise_ece_scorer`) that can be
used as ``scoring=`` in :mod:`sklearn.model_selection` and in
:class:`skorch.callbacks.EpochScoring`.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ReliabilityCurve",
    "expected_calibration_error",
    "maximum_calibration_error",
    "classwise_calibration_error",
    "reliability_curve",
    "brier_score",
    "negative_log_likelihood",
    "max_probability_score",
    "energy_score",
    "ood_auroc",
    "correctness_auroc",
    "error_average_precision",
    "correctness_calibration_error",
    "BIN_STRATEGIES",
    "ProbaScorer",
    "make_proba_scorer",
    "ece_scorer",
    "brier_scorer",
    "nll_scorer",
    "equal_mass_ece_scorer",
    "mce_scorer",
    "classwise_ece_scorer",
    "CALIBRATION_SCORERS",
    "get_scorer",
]

#: Absolute tolerance on ``|sum_k p_k - 1|`` for each row of ``y_proba``.
#: Loose enough for float32 softmax outputs.
ROW_SUM_TOL = 1e-3

#: Binning strategies of the calibration errors: ``"uniform"`` (equal-width
#: bins) and ``"quantile"`` (equal-mass bins), as in
#: :func:`sklearn.calibration.calibration_curve`.
BIN_STRATEGIES = ("uniform", "quantile")


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _to_numpy(a, name):
    """Convert array-likes (lists, numpy, torch tensors, pandas) to numpy.

    Never modifies ``a``; the returned array may share memory with it, so
    callers must not write into it.
    """
    if a is None:
        raise ValueError(f"{name} must not be None.")
    # torch tensors (possibly on GPU / requiring grad) without importing torch
    if hasattr(a, "detach") and hasattr(a, "cpu") and hasattr(a, "numpy"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_proba(y_proba, *, normalized=True, name="y_proba"):
    """Validate a 2-D probability matrix and return it as float64.

    With ``normalized=False`` the rows need only be non-negative scores with a
    positive sum (what :func:`scipy.stats.entropy`, and so modAL, accepts and
    renormalises), and one column is accepted (a scikit-learn classifier
    fitted on one class); otherwise they are probabilities summing to 1
    within :data:`ROW_SUM_TOL`, in at least two columns.
    """
    proba = _to_numpy(y_proba, name)
    if proba.dtype == object or not (
        np.issubdtype(proba.dtype, np.floating)
        or np.issubdtype(proba.dtype, np.integer)
        or proba.dtype == bool
    ):
        raise TypeError(
            f"{name} must be a numeric array, got dtype {proba.dtype}."
        )
    if proba.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_classes) with "
            f"n_classes >= 2, got an array with shape {proba.shape}. Binary "
            "probabilities of shape (n_samples,) are not accepted: pass both "
            "columns, e.g. np.column_stack([1 - p, p])."
        )
    if proba.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one sample is required.")
    if proba.shape[1] < (2 if normalized else 1):
        raise ValueError(
            f"{name} must have at least 2 columns (one per class), got shape "
            f"{proba.shape}. Binary probabilities must be given as two "
            "columns, e.g. np.column_stack([1 - p, p])."
        )
    proba = proba.astype(np.float64, copy=True)
    if not np.all(np.isfinite(proba)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if not normalized:
        if proba.min() < 0.0:
            raise ValueError(
                f"{name} must be non-negative (probabilities, or scores that are "
                f"renormalised per row), got a minimum of {proba.min():.6g}; logits "
                "are not probabilities (a skorch net with predict_nonlinearity=None "
                "returns them)."
            )
        row_sums = proba.sum(axis=1)
        if np.any(row_sums <= 0.0):
            raise ValueError(
                f"Each row of {name} must have a positive sum; "
                f"{int((row_sums <= 0.0).sum())} row(s) are all zeros."
            )
        return proba
    if proba.min() < 0.0 or proba.max() > 1.0:
        raise ValueError(
            f"{name} must contain probabilities in [0, 1], got values in "
            f"[{proba.min():.6g}, {proba.max():.6g}]."
        )
    row_sums = proba.sum(axis=1)
    bad = np.abs(row_sums - 1.0) > ROW_SUM_TOL
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Each row of {name} must sum to 1 (tolerance {ROW_SUM_TOL}); "
            f"{int(bad.sum())} row(s) do not, e.g. row {first} sums to "
            f"{row_sums[first]:.6g}."
        )
    return proba


def _entropy(proba):
    r"""Entropy in nats of each row of a validated ``proba``, renormalised.

    Each row is divided by its sum first, as :func:`scipy.stats.entropy`
    (which modAL's uncertainty measures call) does, with
    :math:`0 \log 0 = 0`.
    """
    proba = proba / proba.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(proba > 0, proba * np.log(proba), 0.0).sum(axis=1)


def _map_with_labels(y, labels, n_classes):
    """Map arbitrary labels to column indices through ``labels``."""
    labels = _to_numpy(labels, "labels")
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be 1-D, got an array with shape {labels.shape}."
        )
    if labels.shape[0] != n_classes:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but y_proba has "
            f"{n_classes} columns; labels must name the columns of y_proba."
        )
    lookup = {}
    for i, lab in enumerate(labels.tolist()):
        if lab in lookup:
            raise ValueError(f"labels must be unique, {lab!r} appears twice.")
        lookup[lab] = i
    # Map the unique values only (fast for large y), fall back to a plain
    # loop for unsortable object arrays.
    try:
        uniq, inverse = np.unique(y, return_inverse=True)
    except TypeError:
        uniq, inverse = None, None
    values = uniq.tolist() if uniq is not None else y.tolist()
    mapped = np.empty(len(values), dtype=np.intp)
    for j, v in enumerate(values):
        try:
            mapped[j] = lookup[v]
        except (KeyError, TypeError):
            raise ValueError(
                f"y_true contains label {v!r} which is not in labels "
                f"{labels.tolist()!r}."
            ) from None
    if uniq is None:
        return mapped
    return mapped[np.asarray(inverse).reshape(-1)]


def _check_targets(y_true, n_classes, labels):
    """Validate ``y_true`` and return integer column indices (intp)."""
    y = _to_numpy(y_true, "y_true")
    if y.ndim != 1:
        raise ValueError(
            f"y_true must be a 1-D array of class labels, got an array with "
            f"shape {y.shape}."
        )
    if y.shape[0] == 0:
        raise ValueError("y_true is empty: at least one sample is required.")
    if labels is not None:
        return _map_with_labels(y, labels, n_classes)

    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        # booleans are columns 0 (False) and 1 (True): scikit-learn's sorted classes
        idx = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)):
            raise ValueError("y_true contains NaN or infinite values.")
        if not np.all(y == np.round(y)):
            raise ValueError(
                "y_true must contain integer class indices; got non-integral "
                "float values. Pass labels=... to use other class labels."
            )
        idx = y.astype(np.int64)
    else:
        raise TypeError(
            f"y_true has dtype {y.dtype}; without labels, y_true must contain "
            "integer column indices of y_proba (0..n_classes-1). Pass "
            "labels=estimator.classes_ to use other class labels."
        )
    if idx.min() < 0 or idx.max() >= n_classes:
        bad = idx[(idx < 0) | (idx >= n_classes)][0]
        raise ValueError(
            f"y_true contains class index {int(bad)} outside the valid range "
            f"[0, {n_classes - 1}] given by the {n_classes} columns of y_proba."
        )
    return idx.astype(np.intp)


def _check_inputs(y_true, y_proba, labels):
    """Validate ``(y_true, y_proba)``; return (indices, float64 proba)."""
    proba = _check_proba(y_proba)
    idx = _check_targets(y_true, proba.shape[1], labels)
    if idx.shape[0] != proba.shape[0]:
        raise ValueError(
            f"y_true and y_proba have inconsistent numbers of samples: "
            f"{idx.shape[0]} != {proba.shape[0]}."
        )
    return idx, proba


def _check_sample_weight(sample_weight, n):
    """``None``, or ``n`` finite non-negative weights (float64) with a positive sum,
    checked after the cast."""
    if sample_weight is None:
        return None
    w = _to_numpy(sample_weight, "sample_weight")
    if w.dtype == object or w.dtype == bool or not (
            np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"sample_weight must be numeric, got dtype {w.dtype}.")
    w = w.astype(np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight must be 1-D with one weight per sample ({n}), got "
                         f"shape {w.shape}.")
    if not np.all(np.isfinite(w)) or w.min() < 0:
        raise ValueError("sample_weight must hold finite weights >= 0.")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to 0: at least one sample needs a positive "
                         "weight.")
    return w


def _check_n_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral):
        raise TypeError(f"n_bins must be an integer, got {n_bins!r}.")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    return int(n_bins)


def _check_strategy(strategy):
    if not isinstance(strategy, str) or strategy not in BIN_STRATEGIES:
        raise ValueError(
            f"strategy must be one of {BIN_STRATEGIES} ('uniform': equal-width "
            f"bins, 'quantile': equal-mass bins), got {strategy!r}."
        )
    return strategy


# ---------------------------------------------------------------------------
# Reliability curve and ECE
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of a reliability diagram.

    Returned by :func:`reliability_curve`.  All arrays have length
    ``n_bins`` except ``bin_edges`` (length ``n_bins + 1``). The fields
    are also the constructor parameters.

    Parameters
    ----------
    accuracy : ndarray of shape (n_bins,)
        Fraction of correctly classified samples in each bin,
        :math:`\\mathrm{acc}(B_m)`. ``NaN`` for empty bins.
    confidence : ndarray of shape (n_bins,)
        Mean top-class probability in each bin, :math:`\\mathrm{conf}(B_m)`.
        ``NaN`` for empty bins.
    count : ndarray of shape (n_bins,)
        Number of samples :math:`|B_m|` in each bin (``int64``).
    bin_edges : ndarray of shape (n_bins + 1,)
        Bin edges: ``[0, 1/M, ..., 1]`` for equal-width bins, ``[0, q_1,
        ..., q_{M-1}, 1]`` (the confidences' quantiles) for equal-mass bins;
        bin ``m`` (0-based) covers ``bin_edges[m] < conf <= bin_edges[m +
        1]`` (confidence 0 falls in the first bin).
    """

    accuracy: np.ndarray
    confidence: np.ndarray
    count: np.ndarray
    bin_edges: np.ndarray

    @property
    def n_samples(self):
        """int: Total number of samples :math:`N = \\sum_m |B_m|`."""
        return int(self.count.sum())

    @property
    def gap(self):
        """ndarray: Signed per-bin gap ``confidence - accuracy`` (NaN if empty).

        Positive values indicate over-confidence.
        """
        return self.confidence - self.accuracy

    @property
    def ece(self):
        """float: Expected calibration error computed from the bins.

        Equal to :func:`expected_calibration_error` on the same inputs:
        :math:`\\sum_m \\frac{|B_m|}{N} |\\mathrm{acc}(B_m) -
        \\mathrm{conf}(B_m)|`, empty bins contributing zero.
        """
        nonempty = self.count > 0
        weights = self.count[nonempty] / self.count.sum()
        return float(
            np.sum(
                weights
                * np.abs(self.accuracy[nonempty] - self.confidence[nonempty])
            )
        )

    @property
    def mce(self):
        r"""float: Maximum calibration error computed from the bins.

        Equal to :func:`maximum_calibration_error` on the same inputs:
        :math:`\max_{m : |B_m| > 0} |\mathrm{acc}(B_m) -
        \mathrm{conf}(B_m)|`.
        """
        nonempty = self.count > 0
        return float(
            np.max(np.abs(self.accuracy[nonempty] - self.confidence[nonempty]))
        )


def _bin_edges(confidence, n_bins, strategy):
    """Edges of ``n_bins`` right-closed bins on ``[0, 1]``."""
    if strategy == "uniform":
        # Edges m / M computed by a correctly rounded division, so that a
        # confidence written as the float literal m / M lands in bin m
        # (1-based).
        return np.arange(n_bins + 1, dtype=np.float64) / n_bins
    # equal mass: the interior edges are the empirical quantiles m / M
    # (linear interpolation between order statistics): with distinct
    # confidences the bins hold N / M samples each, give or take one; tied
    # confidences stay together (in the lowest bin whose right edge they are)
    inner = np.quantile(confidence, np.arange(1, n_bins) / n_bins)
    return np.concatenate(([0.0], inner, [1.0]))


def _binned_stats(idx, proba, n_bins, strategy="uniform"):
    confidence = proba.max(axis=1)
    prediction = proba.argmax(axis=1)
    correct = (prediction == idx).astype(np.float64)
    return _bin_statistics(confidence, correct, n_bins, strategy)


def _bin_statistics(confidence, outcome, n_bins, strategy):
    """Per-bin mean outcome, mean confidence and count of right-closed bins."""
    edges = _bin_edges(confidence, n_bins, strategy)
    # side="left" -> edges[i-1] < conf <= edges[i]; bin index is i - 1.
    bins = np.searchsorted(edges, confidence, side="left") - 1
    bins = np.clip(bins, 0, n_bins - 1)  # conf == 0 -> first bin

    count = np.bincount(bins, minlength=n_bins).astype(np.int64)
    sum_correct = np.bincount(bins, weights=outcome, minlength=n_bins)
    sum_conf = np.bincount(bins, weights=confidence, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(count > 0, sum_correct / count, np.nan)
        mean_conf = np.where(count > 0, sum_conf / count, np.nan)
    return ReliabilityCurve(
        accuracy=accuracy, confidence=mean_conf, count=count, bin_edges=edges
    )


def reliability_curve(y_true, y_proba, n_bins=15, labels=None, strategy="uniform"):
    r"""Per-bin accuracy, confidence and counts of a reliability diagram.

    The top-class confidence :math:`\hat p_i = \max_k p_{ik}` of every
    sample is assigned to one of :math:`M` bins, equal-width by default,

    .. math::

        B_m = \{ i : \tfrac{m-1}{M} < \hat p_i \le \tfrac{m}{M} \},
        \qquad m = 1, \dots, M,

    (a confidence of exactly 0 is put in :math:`B_1`), or equal-mass with
    ``strategy="quantile"`` (the edges :math:`m/M` replaced by the
    confidences' empirical quantiles, see
    :func:`expected_calibration_error`), and for each bin

    .. math::

        \mathrm{acc}(B_m) = \frac{1}{|B_m|} \sum_{i \in B_m}
            \mathbf{1}[\hat y_i = y_i], \qquad
        \mathrm{conf}(B_m) = \frac{1}{|B_m|} \sum_{i \in B_m} \hat p_i,

    where :math:`\hat y_i = \arg\max_k p_{ik}` (ties resolved to the first
    column, as :func:`numpy.argmax`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``. Each row must lie
        in ``[0, 1]`` and sum to 1 within an absolute tolerance of ``1e-3``.
        One-dimensional binary probabilities are not accepted.
    n_bins : int, default=15
        Number :math:`M \ge 1` of confidence bins.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. a fitted
        classifier's ``classes_``). If given, ``y_true`` may contain any of
        these labels.
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width bins, or equal-mass bins (edges at the quantiles of the
        confidences).

    Returns
    -------
    curve : ReliabilityCurve
        Dataclass with arrays ``accuracy``, ``confidence`` and ``count`` of
        length ``n_bins`` and ``bin_edges`` of length ``n_bins + 1``. Empty
        bins have ``count == 0`` and NaN ``accuracy`` / ``confidence``.
        ``curve.ece`` gives the expected calibration error, ``curve.mce``
        the maximum calibration error.

    Raises
    ------
    ValueError
        If the inputs are empty, have inconsistent or wrong shapes, contain
        NaN/inf, probabilities outside ``[0, 1]``, rows not summing to 1,
        labels outside the valid range, ``n_bins < 1`` or an unknown
        ``strategy``.
    TypeError
        If ``n_bins`` is not an integer, or ``y_true`` holds non-numeric
        labels and ``labels`` is None.

    See Also
    --------
    expected_calibration_error : The scalar summary of this curve.
    sklearn_crtcl.plotting.reliability_diagram : Plot the curve.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import reliability_curve
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    >>> curve = reliability_curve([0, 1, 1, 1], proba, n_bins=2)
    >>> curve.count
    array([0, 4])
    >>> round(curve.ece, 3)
    0.0
    """
    n_bins = _check_n_bins(n_bins)
    strategy = _check_strategy(strategy)
    idx, proba = _check_inputs(y_true, y_proba, labels)
    return _binned_stats(idx, proba, n_bins, strategy)


def expected_calibration_error(y_true, y_proba, n_bins=15, labels=None,
                               strategy="uniform"):
    r"""Expected calibration error (ECE) with equal-width or equal-mass bins.

    Implements Eq. 6 of the CrtCl paper (the binned ECE of Naeini et al.
    and Guo et al.):

    .. math::

        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{N}
            \left| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \right|,

    where :math:`N` is the number of samples and :math:`B_m` the set of
    samples whose top-class confidence :math:`\hat p_i = \max_k p_{ik}`
    falls in the :math:`m`-th of :math:`M` equal-width bins,

    .. math::

        B_m = \{ i : \tfrac{m-1}{M} < \hat p_i \le \tfrac{m}{M} \}

    (right-closed bins; a confidence of exactly 0 is put in the first bin).
    :math:`\mathrm{acc}(B_m)` is the fraction of samples in the bin whose
    prediction :math:`\hat y_i = \arg\max_k p_{ik}` equals the true label and
    :math:`\mathrm{conf}(B_m)` their mean confidence. Empty bins contribute
    zero. Comparisons with the edges :math:`m/M` are done in float64 on the
    given probabilities (a float32 input is first cast to float64).

    With ``strategy="quantile"`` the bins have equal mass instead (the
    equal-mass or adaptive ECE of Nguyen and O'Connor 2015 and Nixon et al.
    2019): the edges :math:`m/M` are replaced by the empirical quantiles
    :math:`q_{m/M}` of the confidences (:func:`numpy.quantile`, linear
    interpolation), :math:`B_m = \{ i : q_{(m-1)/M} < \hat p_i \le q_{m/M}
    \}` with :math:`q_0 = 0` and :math:`q_1 = 1`. With distinct
    confidences every bin holds :math:`N/M` samples, give or take one; tied
    confidences stay in one bin (the bins above are then empty), so the
    result does not depend on the order of the samples.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``. Each row must lie
        in ``[0, 1]`` and sum to 1 within an absolute tolerance of ``1e-3``.
        One-dimensional binary probabilities are not accepted: pass
        ``np.column_stack([1 - p, p])``.
    n_bins : int, default=15
        Number :math:`M \ge 1` of bins. With ``n_bins=1`` the ECE is
        ``|accuracy - mean confidence|``.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. a fitted
        classifier's ``classes_``). If given, ``y_true`` may contain any of
        these labels; an unknown label raises a ValueError.
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins (Eq. 6 of the CrtCl paper);
        ``"quantile"``: equal-mass bins.

    Returns
    -------
    ece : float
        The expected calibration error, in ``[0, 1]``; lower is better.

    Raises
    ------
    ValueError
        If the inputs are empty, have inconsistent or wrong shapes, contain
        NaN/inf, probabilities outside ``[0, 1]``, rows not summing to 1,
        labels outside the valid range, ``n_bins < 1`` or an unknown
        ``strategy``.
    TypeError
        If ``n_bins`` is not an integer, or ``y_true`` holds non-numeric
        labels and ``labels`` is None.

    See Also
    --------
    reliability_curve : The per-bin statistics behind the ECE.
    maximum_calibration_error : The largest gap of a bin.
    classwise_calibration_error : The ECE of every class's probability.
    ece_scorer : Scikit-learn scorer returning ``-ECE``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import expected_calibration_error
    >>> proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    >>> round(expected_calibration_error([0, 1, 1, 1], proba, n_bins=10), 6)
    0.4
    >>> round(expected_calibration_error([0, 1, 1, 1], proba, n_bins=2,
    ...                                  strategy="quantile"), 6)
    0.4
    """
    return reliability_curve(y_true, y_proba, n_bins=n_bins, labels=labels,
                             strategy=strategy).ece


def maximum_calibration_error(y_true, y_proba, n_bins=15, labels=None,
                              strategy="uniform"):
    r"""Maximum calibration error (MCE): the largest gap of a confidence bin.

    With the bins :math:`B_m` of :func:`expected_calibration_error`
    (Naeini, Cooper and Hauskrecht 2015; Guo et al. 2017),

    .. math::

        \mathrm{MCE} = \max_{m \,:\, |B_m| > 0}
            \left| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \right|.

    The worst-case counterpart of the ECE: a bin of a few samples weighs as
    much as a full one, so the MCE is noisy with many bins and few samples.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``, rows in ``[0, 1]``
        summing to 1 within ``1e-3``.
    n_bins : int, default=15
        Number :math:`M \ge 1` of bins.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. ``classes_``).
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins.

    Returns
    -------
    mce : float
        The maximum calibration error, in ``[0, 1]``; lower is better.

    Raises
    ------
    ValueError
        On invalid inputs (see :func:`expected_calibration_error`).
    TypeError
        If ``n_bins`` is not an integer, or ``y_true`` holds non-numeric
        labels and ``labels`` is None.

    See Also
    --------
    expected_calibration_error : The weighted mean of the same gaps.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import maximum_calibration_error
    >>> proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.30, 0.70], [0.55, 0.45]])
    >>> round(maximum_calibration_error([0, 1, 1, 1], proba, n_bins=5), 6)
    0.55
    """
    return reliability_curve(y_true, y_proba, n_bins=n_bins, labels=labels,
                             strategy=strategy).mce


def classwise_calibration_error(y_true, y_proba, n_bins=15, labels=None,
                                strategy="uniform"):
    r"""Class-wise expected calibration error: the ECE of every class's probability.

    The ECE looks at the top-class confidence only. The class-wise ECE (Kull
    et al. 2019; the static calibration error of Nixon et al. 2019) bins,
    for each class :math:`k`, the probabilities :math:`p_{ik}` of all
    samples into :math:`M` bins :math:`B_{mk}` (as
    :func:`expected_calibration_error` bins the confidences) and compares
    their mean with the frequency of class :math:`k` in the bin:

    .. math::

        \mathrm{cwECE} = \frac{1}{K} \sum_{k=1}^{K} \sum_{m=1}^{M}
            \frac{|B_{mk}|}{N} \left| \frac{1}{|B_{mk}|} \sum_{i \in B_{mk}}
            \mathbf{1}[y_i = k] - \frac{1}{|B_{mk}|} \sum_{i \in B_{mk}}
            p_{ik} \right|.

    Empty bins contribute zero. With ``strategy="quantile"`` (equal-mass
    bins per class) it is the adaptive calibration error (ACE) of Nixon et
    al. 2019. For two classes the two terms are equal (up to probabilities
    on a bin edge): the class-wise ECE is then the binned calibration error
    of the positive class's probability.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``, rows in ``[0, 1]``
        summing to 1 within ``1e-3``.
    n_bins : int, default=15
        Number :math:`M \ge 1` of bins per class.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. ``classes_``).
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins (per class).

    Returns
    -------
    cw_ece : float
        The class-wise ECE, in ``[0, 1]``; lower is better.

    Raises
    ------
    ValueError
        On invalid inputs (see :func:`expected_calibration_error`).
    TypeError
        If ``n_bins`` is not an integer, or ``y_true`` holds non-numeric
        labels and ``labels`` is None.

    References
    ----------
    M. Kull, M. Perello-Nieto, M. Kängsepp, T. Silva Filho, H. Song and
    P. Flach, "Beyond temperature scaling: Obtaining well-calibrated
    multiclass probabilities with Dirichlet calibration", NeurIPS 2019.
    J. Nixon, M. Dusenberry, L. Zhang, G. Jerfel and D. Tran, "Measuring
    Calibration in Deep Learning", CVPR Workshops 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import classwise_calibration_error
    >>> proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    >>> round(classwise_calibration_error([0, 1, 1, 1], proba, n_bins=10), 6)
    0.4
    """
    n_bins = _check_n_bins(n_bins)
    strategy = _check_strategy(strategy)
    idx, proba = _check_inputs(y_true, y_proba, labels)
    n_classes = proba.shape[1]
    total = 0.0
    for k in range(n_classes):
        curve = _bin_statistics(proba[:, k], (idx == k).astype(np.float64), n_bins,
                                strategy)
        total += curve.ece
    return float(total / n_classes)


# ---------------------------------------------------------------------------
# Proper scoring rules
# ---------------------------------------------------------------------------


def brier_score(y_true, y_proba, labels=None, sample_weight=None):
    r"""Multiclass Brier score.

    .. math::

        \mathrm{BS} = \frac{1}{N} \sum_{i=1}^{N} \sum_{k=1}^{K}
            \left( p_{ik} - \mathbf{1}[y_i = k] \right)^2 .

    This is the original (Brier, 1950) multiclass definition, ranging in
    ``[0, 2]``; for two classes it is twice
    :func:`sklearn.metrics.brier_score_loss` on the positive-class column
    (it is ``brier_score_loss(..., scale_by_half=False)`` of scikit-learn
    1.7 and later). With ``sample_weight`` the mean is the weighted mean
    :math:`\sum_i w_i \ell_i / \sum_i w_i`, as in scikit-learn.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``, rows in ``[0, 1]``
        summing to 1 within ``1e-3``.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. ``classes_``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the samples (not all zero); ``None``: all 1.

    Returns
    -------
    score : float
        The Brier score; lower is better.

    Raises
    ------
    ValueError
        On invalid inputs (see :func:`expected_calibration_error`), or a
        ``sample_weight`` of the wrong length, with a negative or
        non-finite weight, or summing to 0.
    TypeError
        If ``y_true`` holds non-numeric labels and ``labels`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import brier_score
    >>> float(brier_score([0, 1], np.array([[1.0, 0.0], [0.5, 0.5]])))
    0.25
    """
    idx, proba = _check_inputs(y_true, y_proba, labels)
    n = proba.shape[0]
    weight = _check_sample_weight(sample_weight, n)
    sq = np.sum(proba**2, axis=1)
    # sum_k (p_k - e_yk)^2 = sum_k p_k^2 - 2 p_y + 1
    p_true = proba[np.arange(n), idx]
    return float(np.average(sq - 2.0 * p_true + 1.0, weights=weight))


def negative_log_likelihood(y_true, y_proba, labels=None, eps=1e-12, sample_weight=None):
    r"""Mean negative log-likelihood (cross-entropy) of the true class.

    .. math::

        \mathrm{NLL} = -\frac{1}{N} \sum_{i=1}^{N}
            \log \max(p_{i, y_i}, \varepsilon).

    Probabilities are not renormalised. With ``sample_weight`` the mean is
    the weighted mean :math:`\sum_i w_i \ell_i / \sum_i w_i`, as in
    :func:`sklearn.metrics.log_loss`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Integer column indices ``0 .. n_classes - 1`` of
        ``y_proba`` when ``labels`` is None, otherwise values of ``labels``.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``, rows in ``[0, 1]``
        summing to 1 within ``1e-3``.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. ``classes_``).
    eps : float, default=1e-12
        Lower clip :math:`\varepsilon` of the true-class probability, which
        bounds the loss of a single sample by :math:`-\log \varepsilon`.
        Must satisfy ``0 < eps < 1``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the samples (not all zero); ``None``: all 1.

    Returns
    -------
    nll : float
        The mean negative log-likelihood in nats; lower is better.

    Raises
    ------
    ValueError
        On invalid inputs (see :func:`expected_calibration_error`), if
        ``eps`` is not in ``(0, 1)``, or for an invalid ``sample_weight``
        (see :func:`brier_score`).
    TypeError
        If ``y_true`` holds non-numeric labels and ``labels`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import negative_log_likelihood
    >>> proba = np.array([[0.5, 0.5], [0.25, 0.75]])
    >>> round(negative_log_likelihood([0, 1], proba), 4)
    0.4904
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {eps!r}.")
    if not (0.0 < eps < 1.0):
        raise ValueError(f"eps must be in (0, 1), got {eps!r}.")
    idx, proba = _check_inputs(y_true, y_proba, labels)
    weight = _check_sample_weight(sample_weight, proba.shape[0])
    p_true = proba[np.arange(proba.shape[0]), idx]
    return float(-np.average(np.log(np.maximum(p_true, eps)), weights=weight))


# ---------------------------------------------------------------------------
# Out-of-distribution detection
# ---------------------------------------------------------------------------

#: Scores of :func:`ood_auroc`.
_OOD_SCORES = ("msp", "energy", "precomputed")


def _check_logits(logits, name):
    """Validate a 2-D array of finite real logits; return it as float64."""
    z = _to_numpy(logits, name)
    if z.dtype == object or not (
        np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {z.dtype}.")
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(
            f"{name} must be a 2-D array of logits of shape (n_samples, "
            f"n_classes) with n_classes >= 2, got shape {z.shape}."
        )
    if z.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one sample is required.")
    z = z.astype(np.float64, copy=True)
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return z


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a real number, got {temperature!r}.")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}.")
    return float(temperature)


def max_probability_score(y_proba):
    r"""Maximum softmax probability (MSP) of each sample.

    :math:`s(x) = \max_k p_k(x)`, the baseline in-distribution score of
    Hendrycks and Gimpel (2017): higher means the sample looks more like
    the training distribution.

    Parameters
    ----------
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities, ``n_classes >= 2``, rows in ``[0, 1]``
        summing to 1 within ``1e-3``.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
        The top-class probabilities (float64).

    Raises
    ------
    ValueError
        If ``y_proba`` is not a valid probability matrix.
    TypeError
        If ``y_proba`` is not numeric.

    Examples
    --------
    >>> from sklearn_crtcl.metrics import max_probability_score
    >>> max_probability_score([[0.9, 0.1], [0.4, 0.6]])
    array([0.9, 0.6])
    """
    return _check_proba(y_proba).max(axis=1)


def energy_score(logits, temperature=1.0):
    r"""Negative free energy of each sample, from its logits.

    Liu et al. (2020) read a classifier with logits :math:`f_k(x)` as an
    energy-based model with free energy :math:`E(x) = -T \log \sum_k
    e^{f_k(x)/T}`; the score is

    .. math::

        s(x) = -E(x) = T \log \sum_{k} e^{f_k(x) / T},

    higher for in-distribution samples. Unlike the maximum probability it
    keeps the logits' scale, which the softmax discards: it needs the
    logits, not ``predict_proba``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Logits (finite real numbers), e.g. ``net.forward(X)`` of a skorch
        net.
    temperature : float, default=1.0
        Temperature :math:`T > 0` (1 in Liu et al.).

    Returns
    -------
    scores : ndarray of shape (n_samples,)
        :math:`T \log \sum_k e^{f_k/T}` (float64, computed stably).

    Raises
    ------
    ValueError
        If ``logits`` is not 2-D with at least 2 columns, is empty or holds
        NaN/inf, or ``temperature`` is not finite and positive.
    TypeError
        If ``logits`` is not numeric or ``temperature`` not a real number.

    References
    ----------
    W. Liu, X. Wang, J. Owens and Y. Li, "Energy-based Out-of-distribution
    Detection", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import energy_score
    >>> energy_score(np.log([[1.0, 3.0], [2.0, 2.0]]))
    array([1.38629436, 1.38629436])
    """
    temperature = _check_temperature(temperature)
    z = _check_logits(logits, "logits") / temperature
    top = z.max(axis=1)
    return temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def ood_auroc(in_dist, out_dist, score="msp", temperature=1.0):
    r"""AUROC of telling in-distribution samples from out-of-distribution ones.

    Every sample gets a score :math:`s(x)`, higher meaning "in
    distribution"; the AUROC is the probability that a random
    in-distribution sample scores above a random out-of-distribution one
    (ties count one half),

    .. math::

        \mathrm{AUROC} = \frac{1}{n_{\text{in}}\, n_{\text{out}}}
            \sum_{i \in \text{in}} \sum_{j \in \text{out}}
            \Big( \mathbf{1}[s_i > s_j] + \tfrac12 \mathbf{1}[s_i = s_j] \Big),

    computed by :func:`sklearn.metrics.roc_auc_score` with the
    in-distribution samples as positives (the AUROC with the
    out-of-distribution samples as positives and :math:`-s` as score is
    the same number). 0.5 is chance, 1 a perfect detector.

    Parameters
    ----------
    in_dist : array-like
        The model's outputs on in-distribution samples (e.g. the test split
        of the training data set): probabilities ``(n_in, n_classes)`` for
        ``score="msp"``, logits ``(n_in, n_classes)`` for
        ``score="energy"``, scores ``(n_in,)`` for ``score="precomputed"``.
    out_dist : array-like
        The same for out-of-distribution samples (e.g. SVHN for a CIFAR-10
        model), with the same number of columns.
    score : {"msp", "energy", "precomputed"}, default="msp"
        ``"msp"``: :func:`max_probability_score` of probabilities (Hendrycks
        and Gimpel 2017); ``"energy"``: :func:`energy_score` of logits (Liu
        et al. 2020); ``"precomputed"``: the given 1-D scores (any other
        score, higher meaning in-distribution, e.g. a CrtCl critic's).
    temperature : float, default=1.0
        Temperature of the energy score (``score="energy"`` only).

    Returns
    -------
    auroc : float
        In ``[0, 1]``; higher is better.

    Raises
    ------
    ValueError
        If ``score`` is unknown, an input is empty, holds NaN/inf or has the
        wrong shape (probabilities must be valid for ``"msp"``), or the two
        inputs have different numbers of columns.
    TypeError
        If an input is not numeric.

    See Also
    --------
    max_probability_score, energy_score : The scores.

    References
    ----------
    D. Hendrycks and K. Gimpel, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.metrics import ood_auroc
    >>> p_in = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> p_out = np.array([[0.5, 0.5], [0.6, 0.4]])
    >>> ood_auroc(p_in, p_out)
    1.0
    """
    from sklearn.metrics import roc_auc_score

    if not isinstance(score, str) or score not in _OOD_SCORES:
        raise ValueError(f"score must be one of {_OOD_SCORES}, got {score!r}.")
    if score != "energy" and temperature != 1.0:
        raise ValueError("temperature is only used with score='energy'.")
    if score == "msp":
        s_in, s_out = _msp(in_dist, "in_dist"), _msp(out_dist, "out_dist")
        widths = (_to_numpy(in_dist, "in_dist").shape[1],
                  _to_numpy(out_dist, "out_dist").shape[1])
    elif score == "energy":
        s_in = energy_score(in_dist, temperature)
        s_out = energy_score(out_dist, temperature)
        widths = (_to_numpy(in_dist, "in_dist").shape[1],
                  _to_numpy(out_dist, "out_dist").shape[1])
    else:
        s_in, s_out = (_check_scores(in_dist, "in_dist"),
                       _check_scores(out_dist, "out_dist"))
        widths = (1, 1)
    if widths[0] != widths[1]:
        raise ValueError(f"in_dist and out_dist must have the same number of columns "
                         f"(classes), got {widths[0]} and {widths[1]}.")
    y = np.concatenate([np.ones(s_in.shape[0]), np.zeros(s_out.shape[0])])
    return float(roc_auc_score(y, np.concatenate([s_in, s_out])))


def _msp(y_proba, name):
    """:func:`max_probability_score`, its errors naming the argument."""
    try:
        return max_probability_score(y_proba)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: score='msp' takes probabilities (predict_proba), "
                        f"but {exc}") from None


def _check_scores(scores, name):
    """Validate 1-D finite real scores; return them as float64."""
    s = _to_numpy(scores, name)
    if s.dtype == object or not (
        np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be numeric scores, got dtype {s.dtype}.")
    if s.ndim != 1:
        raise ValueError(f"with score='precomputed', {name} must be 1-D scores "
                         f"(n_samples,), got shape {s.shape}.")
    if s.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one sample is required.")
    s = s.astype(np.float64, copy=True)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return s


# ---------------------------------------------------------------------------
# Failure prediction: is the classifier right?
# ---------------------------------------------------------------------------
def _check_correctness(correct, scores, name="scores"):
    c = _to_numpy(correct, "correct")
    if c.ndim != 1 or c.shape[0] == 0:
        raise ValueError(f"correct must be a non-empty 1-D array, got shape {c.shape}.")
    if c.dtype != bool:
        if not np.isin(c, (0, 1)).all():
            raise ValueError("correct must be boolean (or 0/1): whether each prediction is right.")
        c = c.astype(bool)
    s = _to_numpy(scores, name)
    if s.dtype == object or not (np.issubdtype(s.dtype, np.floating)
                                 or np.issubdtype(s.dtype, np.integer)):
        raise TypeError(f"{name} must be numeric, got dtype {s.dtype}.")
    if s.shape != c.shape:
        raise ValueError(f"{name} must have the shape of correct {c.shape}, got {s.shape}.")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return c, s


def correctness_auroc(correct, scores):
    r"""AUROC of a score for "the prediction is correct" (failure prediction).

    The probability that a correctly classified sample scores above a
    misclassified one (ties count half): 0.5 is chance, 1 a perfect
    separation of right and wrong predictions (Hendrycks and Gimpel,
    "A Baseline for Detecting Misclassified and Out-of-Distribution
    Examples", ICLR 2017).

    Parameters
    ----------
    correct : array-like of bool of shape (n,)
        Whether each prediction is right.
    scores : array-like of shape (n,)
        Higher: more likely right (a critic's score, the maximum softmax
        probability...).

    Returns
    -------
    float
        NaN when every prediction is right or every one wrong.

    Examples
    --------
    >>> correctness_auroc([True, True, False], [0.9, 0.4, 0.5])
    0.5
    """
    from sklearn.metrics import roc_auc_score

    c, s = _check_correctness(correct, scores)
    if c.all() or not c.any():
        return float("nan")
    return float(roc_auc_score(c, s))


def error_average_precision(correct, scores):
    r"""Average precision of the errors (AUPR-Error) when ranked by lowest score.

    The misclassified samples are the positives and :math:`-s` their score,
    the area under the precision-recall curve of finding the errors that
    failure-prediction papers report beside the AUROC (ConfidNet, Corbiere
    et al. 2019); chance is the error rate.

    Parameters
    ----------
    correct : array-like of bool of shape (n,)
        Whether each prediction is right.
    scores : array-like of shape (n,)
        Higher: more likely right.

    Returns
    -------
    float
        NaN when every prediction is right or every one wrong.

    Examples
    --------
    >>> error_average_precision([True, True, False], [0.9, 0.4, 0.5])
    0.5
    """
    from sklearn.metrics import average_precision_score

    c, s = _check_correctness(correct, scores)
    if c.all() or not c.any():
        return float("nan")
    return float(average_precision_score(~c, -s))


def correctness_calibration_error(correct, p_correct, n_bins=15, strategy="uniform"):
    r"""Calibration error of a predicted probability that the classifier is right.

    The binned ECE of :func:`expected_calibration_error`, with the predicted
    probability of being right :math:`\hat c_i` as confidence and the event
    "the prediction is right" as outcome:

    .. math::

        \mathrm{ECE}_c = \sum_{m=1}^{M} \frac{|B_m|}{N}
            \Big| \frac{1}{|B_m|}\sum_{i \in B_m} [\hat y_i = y_i]
            - \frac{1}{|B_m|}\sum_{i \in B_m} \hat c_i \Big|,
        \qquad B_m = \{ i : \tfrac{m-1}{M} < \hat c_i \le \tfrac{m}{M} \}.

    With :math:`\hat c_i = \max_k p_{ik}` it is the classifier's own ECE.

    Parameters
    ----------
    correct : array-like of bool of shape (n,)
        Whether each prediction is right.
    p_correct : array-like of shape (n,)
        Predicted probability of being right, in ``[0, 1]``.
    n_bins : int, default=15
        Number of bins :math:`M`.
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins (see :func:`expected_calibration_error`).

    Returns
    -------
    float

    Examples
    --------
    >>> correctness_calibration_error([True, False], [1.0, 0.0])
    0.0
    >>> correctness_calibration_error([True, False], [0.5, 0.5])
    0.0
    >>> correctness_calibration_error([True, True], [0.5, 0.5])
    0.5
    """
    c, p = _check_correctness(correct, p_correct, "p_correct")
    if p.min() < 0 or p.max() > 1:
        raise ValueError("p_correct must be probabilities in [0, 1].")
    n_bins = _check_n_bins(n_bins)
    _check_strategy(strategy)
    return _bin_statistics(p, c.astype(np.float64), n_bins, strategy).ece


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


def _estimator_labels(estimator, n_classes):
    """Labels of the ``predict_proba`` columns of ``estimator``, or None.

    Returns ``estimator.classes_`` when it names the ``n_classes`` columns.
    Returns None (``y`` is then read as column indices) when the estimator
    has no ``classes_`` or when ``classes_`` is a subset of
    ``0 .. n_classes - 1`` -- e.g. a skorch net whose module has
    ``n_classes`` outputs but was fitted on a labelled pool missing some
    classes, in which case ``classes_`` is inferred from the seen targets.
    """
    try:
        classes = getattr(estimator, "classes_", None)
    except Exception:  # e.g. skorch raises if classes cannot be inferred
        classes = None
    if classes is None:
        return None
    classes = _to_numpy(classes, "classes_")
    if classes.ndim == 1 and classes.shape[0] == n_classes:
        return classes
    if (
        classes.ndim == 1
        and np.issubdtype(classes.dtype, np.integer)
        and classes.size > 0
        and classes.min() >= 0
        and classes.max() < n_classes
    ):
        return None
    raise ValueError(
        f"estimator.classes_ has {classes.shape[0]} entries but "
        f"predict_proba returned {n_classes} columns; cannot map y to "
        "probability columns."
    )


#: "Leave the request as it is" (the default of :meth:`ProbaScorer.set_score_request`).
_UNCHANGED = "$UNCHANGED$"


def _takes_sample_weight(metric):
    """Whether ``metric`` has a ``sample_weight`` parameter (or takes ``**kwargs``)."""
    try:
        params = inspect.signature(metric).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: let it say
        return True
    return any(p.name == "sample_weight" or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in params)


class ProbaScorer:
    """Scorer for metrics of ``predict_proba`` outputs (scikit-learn protocol).

    A plain callable ``scorer(estimator, X, y)`` (the scikit-learn scorer
    protocol) that calls ``estimator.predict_proba(X)`` and evaluates
    ``metric(y, proba, labels=estimator.classes_, **kwargs)``, so that
    ``y`` may contain the estimator's original labels (e.g. strings).
    Unlike :func:`sklearn.metrics.make_scorer`, it forwards ``classes_`` to
    the metric, which scikit-learn's scorers cannot do without metadata
    routing.

    The returned value is ``sign * metric(...)``; with
    ``greater_is_better=False`` the scorer returns the *negated* loss, as
    scikit-learn's ``neg_*`` scorers do, so that higher is always better.

    Parameters
    ----------
    metric : callable
        Function ``metric(y_true, y_proba, labels=None, **kwargs)``
        returning a float, e.g. :func:`expected_calibration_error`.
    greater_is_better : bool, default=False
        Whether a higher metric value is better. If False the score is
        negated.
    name : str, default=None
        Name of the scorer, also exposed as ``__name__`` (used by
        :class:`skorch.callbacks.EpochScoring` to name the history key).
        Defaults to ``"neg_" + metric.__name__`` if ``greater_is_better`` is
        False, else ``metric.__name__``.
    **kwargs : dict
        Extra keyword arguments passed to ``metric`` (e.g. ``n_bins=10``).

    Notes
    -----
    With scikit-learn's metadata routing
    (``sklearn.set_config(enable_metadata_routing=True)``), a scorer whose
    metric takes ``sample_weight`` receives it from ``cross_validate(...,
    params={"sample_weight": w})`` or a grid search once it asks for it,
    ``scorer.set_score_request(sample_weight=True)``, as scikit-learn's own
    scorers do (and, as theirs, it is an error to pass one to a scorer that
    did not ask).

    ``y`` may be a list, numpy array or torch tensor (skorch passes either).
    If the estimator has no ``classes_`` attribute, or its ``classes_`` is a
    subset of ``0 .. n_columns - 1`` (a skorch net fitted on a labelled pool
    missing some classes), ``y`` is interpreted as column indices.
    """

    def __init__(self, metric, *, greater_is_better=False, name=None, **kwargs):
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}.")
        self.metric = metric
        self.greater_is_better = bool(greater_is_better)
        self.kwargs = kwargs
        if name is None:
            base = getattr(metric, "__name__", type(metric).__name__)
            name = base if greater_is_better else f"neg_{base}"
        self.name = name
        self.__name__ = name
        self._sample_weight_request = None  # scikit-learn's default: not requested

    def set_score_request(self, *, sample_weight=_UNCHANGED):
        """Request ``sample_weight`` under scikit-learn's metadata routing.

        As :meth:`sklearn.metrics.make_scorer`'s ``set_score_request``: the
        scorer is changed in place and returned.

        Parameters
        ----------
        sample_weight : bool, None or str, default=unchanged
            ``True``: pass the routed ``sample_weight`` to the metric;
            ``False``: do not; ``None``: an error if one is routed here (the
            default); a string: the name under which it is routed (an alias).

        Returns
        -------
        self : ProbaScorer

        Raises
        ------
        TypeError
            If ``sample_weight`` is requested (``True`` or an alias) for a
            metric without a ``sample_weight`` parameter, or is not a bool,
            None or str.
        """
        if sample_weight is _UNCHANGED:
            return self
        if not (sample_weight is None or isinstance(sample_weight, (bool, str))):
            raise TypeError(f"sample_weight must be True, False, None or an alias (str), got "
                            f"{sample_weight!r}.")
        if (sample_weight is True or isinstance(sample_weight, str)) \
                and not _takes_sample_weight(self.metric):
            raise TypeError(f"{self.name}: {self._metric_name} takes no sample_weight, so it "
                            "cannot be requested.")
        self._sample_weight_request = sample_weight
        return self

    def get_metadata_routing(self):
        """The scorer's metadata request (scikit-learn's metadata routing).

        Returns
        -------
        request : sklearn.utils.metadata_routing.MetadataRequest
            ``score`` asks for ``sample_weight`` as set by
            :meth:`set_score_request`.
        """
        from sklearn.utils.metadata_routing import MetadataRequest
        request = MetadataRequest(owner=self.name)
        # getattr: a scorer pickled by an earlier release has no request (the default)
        request.score.add_request(param="sample_weight",
                                  alias=getattr(self, "_sample_weight_request", None))
        return request

    @property
    def _metric_name(self):
        return getattr(self.metric, "__name__", repr(self.metric))

    @property
    def sign(self):
        """int: ``1`` if greater is better, else ``-1``."""
        return 1 if self.greater_is_better else -1

    def __call__(self, estimator, X, y_true, sample_weight=None):
        """Score ``estimator`` on ``(X, y_true)``.

        Parameters
        ----------
        estimator : object
            Fitted estimator with a ``predict_proba`` method.
        X : array-like or dataset
            Input passed unchanged to ``estimator.predict_proba``.
        y_true : array-like of shape (n_samples,)
            True labels (values of ``estimator.classes_`` or column
            indices), as a list, numpy array or torch tensor.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples, passed to the metric; only for a metric
            with a ``sample_weight`` parameter (:func:`brier_score`,
            :func:`negative_log_likelihood`), else a ``TypeError``, raised
            before ``predict_proba`` runs.

        Returns
        -------
        score : float
            ``sign * metric(y_true, estimator.predict_proba(X), ...)``.
        """
        if y_true is None:
            raise ValueError(
                f"{self.name} needs the true labels y, got None."
            )
        weights = {}
        if sample_weight is not None:
            if not _takes_sample_weight(self.metric):
                raise TypeError(
                    f"{self.name}: {self._metric_name} takes no sample_weight (the binned "
                    "calibration errors have none, as scikit-learn's calibration_curve); "
                    "the Brier score and the NLL do."
                )
            weights["sample_weight"] = sample_weight
        y = _to_numpy(y_true, "y_true")
        proba = _to_numpy(estimator.predict_proba(X), "y_proba")
        labels = None
        if proba.ndim == 2:
            labels = _estimator_labels(estimator, proba.shape[1])
        return self.sign * float(self.metric(y, proba, labels=labels, **self.kwargs,
                                             **weights))

    def __repr__(self):
        kw = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return (
            f"{type(self).__name__}({self._metric_name}, "
            f"greater_is_better={self.greater_is_better}{kw})"
        )


def make_proba_scorer(metric, *, greater_is_better=False, name=None, **kwargs):
    """Build a scorer from a metric of ``(y_true, y_proba, labels=...)``.

    Convenience constructor for :class:`ProbaScorer`, e.g. an ECE scorer
    with 10 bins::

        make_proba_scorer(expected_calibration_error, n_bins=10)

    Parameters
    ----------
    metric : callable
        Function ``metric(y_true, y_proba, labels=None, **kwargs)``.
    greater_is_better : bool, default=False
        If False (losses), the scorer returns ``-metric``.
    name : str, default=None
        Scorer name (see :class:`ProbaScorer`).
    **kwargs : dict
        Extra keyword arguments passed to ``metric``.

    Returns
    -------
    scorer : ProbaScorer
        A callable ``scorer(estimator, X, y) -> float``.
    """
    return ProbaScorer(
        metric, greater_is_better=greater_is_better, name=name, **kwargs
    )


#: Scorer returning ``-expected_calibration_error`` (15 bins).
ece_scorer = ProbaScorer(
    expected_calibration_error, name="neg_expected_calibration_error"
)
#: Scorer returning ``-brier_score`` (multiclass Brier score).
brier_scorer = ProbaScorer(brier_score, name="neg_brier_score_multiclass")
#: Scorer returning ``-negative_log_likelihood``.
nll_scorer = ProbaScorer(negative_log_likelihood, name="neg_log_likelihood")
#: Scorer returning ``-expected_calibration_error`` with 15 equal-mass bins.
equal_mass_ece_scorer = ProbaScorer(
    expected_calibration_error, name="neg_equal_mass_calibration_error",
    strategy="quantile",
)
#: Scorer returning ``-maximum_calibration_error`` (15 bins).
mce_scorer = ProbaScorer(maximum_calibration_error,
                         name="neg_maximum_calibration_error")
#: Scorer returning ``-classwise_calibration_error`` (15 bins).
classwise_ece_scorer = ProbaScorer(classwise_calibration_error,
                                   name="neg_classwise_calibration_error")

#: Mapping of scorer names to the calibration scorers of this module.
CALIBRATION_SCORERS = {
    "neg_expected_calibration_error": ece_scorer,
    "neg_brier_score_multiclass": brier_scorer,
    "neg_log_likelihood": nll_scorer,
    "neg_equal_mass_calibration_error": equal_mass_ece_scorer,
    "neg_maximum_calibration_error": mce_scorer,
    "neg_classwise_calibration_error": classwise_ece_scorer,
}


def get_scorer(scoring):
    """Get a scorer by name, including the calibration scorers.

    Looks ``scoring`` up in :data:`CALIBRATION_SCORERS` first, then falls
    back to :func:`sklearn.metrics.get_scorer` (so ``"accuracy"`` etc. also
    work). Callables are returned unchanged.

    Parameters
    ----------
    scoring : str or callable
        A name of :data:`CALIBRATION_SCORERS`
        (``"neg_expected_calibration_error"``,
        ``"neg_brier_score_multiclass"``, ``"neg_log_likelihood"``,
        ``"neg_equal_mass_calibration_error"``,
        ``"neg_maximum_calibration_error"``,
        ``"neg_classwise_calibration_error"``), any scikit-learn scorer
        name, or a scorer callable.

    Returns
    -------
    scorer : callable
        A scorer ``scorer(estimator, X, y) -> float`` (greater is better); a
        calibration scorer is a copy of the one in
        :data:`CALIBRATION_SCORERS`, as scikit-learn's ``get_scorer`` copies
        its own, so that ``set_score_request`` on it changes nothing else.

    Raises
    ------
    ValueError
        If ``scoring`` is an unknown name.
    """
    if callable(scoring):
        return scoring
    if isinstance(scoring, str) and scoring in CALIBRATION_SCORERS:
        # a copy, as scikit-learn's get_scorer: set_score_request changes a scorer
        return copy.deepcopy(CALIBRATION_SCORERS[scoring])
    from sklearn.metrics import get_scorer as _sk_get_scorer

    try:
        return _sk_get_scorer(scoring)
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"{scoring!r} is not a valid scoring value. Use one of "
            f"{sorted(CALIBRATION_SCORERS)} or a name accepted by "
            "sklearn.metrics.get_scorer."
        ) from None
