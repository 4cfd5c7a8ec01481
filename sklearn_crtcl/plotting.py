"""Plotting helpers: reliability diagrams and active-learning curves.

matplotlib is an optional dependency; it is imported only when a plotting
function is called. Install it with ``pip install sklearn-crtcl[plot]``.
:func:`aggregate_curves` does not need matplotlib.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .metrics import reliability_curve

__all__ = [
    "CurveSummary",
    "aggregate_curves",
    "reliability_diagram",
    "plot_learning_curves",
]

_INSTALL_HINT = (
    "matplotlib is required for plotting; install it with "
    "`pip install sklearn-crtcl[plot]` (or `pip install matplotlib`)."
)


def _import_pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return plt


def _get_ax(ax):
    plt = _import_pyplot()
    if ax is None:
        _, ax = plt.subplots()
    return ax


# ---------------------------------------------------------------------------
# Reliability diagram
# ---------------------------------------------------------------------------


def reliability_diagram(
    y_true, y_proba, n_bins=15, labels=None, ax=None, title=None
):
    r"""Draw a reliability diagram with confidence gaps and the ECE.

    For each of the ``n_bins`` equal-width confidence bins (see
    :func:`sklearn_crtcl.metrics.reliability_curve`) a bar of height
    :math:`\mathrm{acc}(B_m)` is drawn, together with a hatched "gap" bar
    spanning from :math:`\mathrm{acc}(B_m)` to :math:`\mathrm{conf}(B_m)`
    and the diagonal of perfect calibration. The expected calibration error
    :math:`\sum_m \frac{|B_m|}{N}|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)|`
    is shown in the legend.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: integer column indices of ``y_proba``, or values of
        ``labels`` if given.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities (``n_classes >= 2``).
    n_bins : int, default=15
        Number of equal-width confidence bins.
    labels : array-like of shape (n_classes,), default=None
        Class labels of the columns of ``y_proba`` (e.g. ``classes_``).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on. A new figure is created if None.
    title : str, default=None
        Axes title; ``"Reliability diagram"`` if None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes with the diagram. ``ax.containers[0]`` holds the
        ``n_bins`` accuracy bars (height 0 for empty bins) and
        ``ax.containers[1]`` the ``n_bins`` gap bars (height
        ``conf - acc``, 0 for empty bins).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        On invalid inputs (see
        :func:`sklearn_crtcl.metrics.expected_calibration_error`).
    """
    curve = reliability_curve(y_true, y_proba, n_bins=n_bins, labels=labels)
    ax = _get_ax(ax)

    edges = curve.bin_edges
    width = np.diff(edges)
    left = edges[:-1]
    nonempty = curve.count > 0
    acc = np.where(nonempty, curve.accuracy, 0.0)
    gap = np.where(nonempty, curve.confidence - curve.accuracy, 0.0)
    ece = curve.ece

    ax.bar(
        left,
        acc,
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.8,
        label="Accuracy",
    )
    ax.bar(
        left,
        gap,
        bottom=acc,
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        linewidth=0.8,
        label=f"Gap (ECE = {ece:.4f})",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray",
            label="Perfect calibration")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    ax.set_title("Reliability diagram" if title is None else title)
    ax.legend(loc="upper left")
    return ax


# ---------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------

#: Aggregated curve of one group: sorted ``x`` values and the mean and
#: (population) standard deviation of the metric at each ``x``.
CurveSummary = namedtuple("CurveSummary", ["x", "mean", "std"])
CurveSummary.__doc__ = """Mean and spread of one learning curve over trials.

Parameters
----------
x : ndarray of shape (n_points,)
    Sorted x values (e.g. labeled-set sizes).
mean : ndarray of shape (n_points,)
    Mean of the metric over trials at each x.
std : ndarray of shape (n_points,)
    Population standard deviation over trials (0 for a single trial).
"""


def _records_to_columns(records):
    """Return a dict of columns from a list of dicts or a dict of columns."""
    if isinstance(records, dict):
        columns = {k: list(v) for k, v in records.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(
                "All columns of results must have the same length, got "
                f"lengths { {k: len(v) for k, v in columns.items()} }."
            )
        return columns
    try:
        records = list(records)
    except TypeError:
        raise TypeError(
            "results must be a list of dict records or a dict of columns, "
            f"got {type(records).__name__}."
        ) from None
    if not all(isinstance(r, dict) for r in records):
        raise TypeError("results must be a list of dicts or a dict of columns.")
    keys = set().union(*records) if records else set()
    return {k: [r.get(k, None) for r in records] for k in keys}


def aggregate_curves(records, metric, x="n_labeled", group="method"):
    r"""Mean and standard deviation of a metric over trials, per group.

    Records sharing the same ``group`` value (e.g. the query strategy) and
    the same ``x`` value (e.g. the number of labelled samples) are
    aggregated, typically over repeated trials:

    .. math::

        \mu_g(x) = \frac{1}{T} \sum_{t=1}^{T} v_{g,t}(x), \qquad
        \sigma_g(x) = \sqrt{\frac{1}{T} \sum_{t=1}^{T}
            \left(v_{g,t}(x) - \mu_g(x)\right)^2},

    where :math:`v_{g,t}(x)` are the metric values of the :math:`T` records
    of group :math:`g` at :math:`x` (population standard deviation, zero
    for a single trial).

    Parameters
    ----------
    records : list of dict or dict of sequences
        Results as records, e.g. ``[{"method": "crtcl", "trial": 0,
        "cycle": 0, "n_labeled": 100, "accuracy": 0.8, "ece": 0.05}, ...]``,
        or as a dict of equal-length columns with the same keys.
    metric : str
        Key of the metric to aggregate (e.g. ``"accuracy"`` or ``"ece"``).
    x : str, default="n_labeled"
        Key of the x-axis value.
    group : str or None, default="method"
        Key defining the curves. If None, all records form one group whose
        key is None.

    Returns
    -------
    curves : dict
        Mapping ``group value -> CurveSummary(x, mean, std)`` where the
        three fields are float arrays sorted by ``x``. Groups appear in the
        order in which they are first seen in ``records``.

    Raises
    ------
    ValueError
        If ``records`` is empty, a required key is missing, or a metric
        value is missing (None).
    TypeError
        If ``records`` is neither a list of dicts nor a dict of columns.

    Examples
    --------
    >>> from sklearn_crtcl.plotting import aggregate_curves
    >>> recs = [{"method": "a", "n_labeled": 10, "accuracy": 0.5},
    ...         {"method": "a", "n_labeled": 10, "accuracy": 0.7}]
    >>> c = aggregate_curves(recs, "accuracy")["a"]
    >>> c.x.tolist(), c.mean.round(3).tolist(), c.std.round(3).tolist()
    ([10.0], [0.6], [0.1])
    """
    columns = _records_to_columns(records)
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        raise ValueError("results is empty.")
    required = [metric, x] + ([group] if group is not None else [])
    for key in required:
        if key not in columns:
            raise ValueError(
                f"results has no key {key!r}; available keys: "
                f"{sorted(map(str, columns))}."
            )
    for key in (metric, x):
        if any(v is None for v in columns[key]):
            raise ValueError(f"results has missing (None) values for {key!r}.")

    xs = np.asarray(columns[x], dtype=np.float64)
    values = np.asarray(columns[metric], dtype=np.float64)
    groups = columns[group] if group is not None else [None] * n

    order = []
    members = {}
    for i, g in enumerate(groups):
        if g not in members:
            members[g] = []
            order.append(g)
        members[g].append(i)

    curves = {}
    for g in order:
        idx = np.asarray(members[g])
        gx, gv = xs[idx], values[idx]
        ux, inverse = np.unique(gx, return_inverse=True)
        inverse = inverse.reshape(-1)
        counts = np.bincount(inverse, minlength=ux.size)
        mean = np.bincount(inverse, weights=gv, minlength=ux.size) / counts
        sq = np.bincount(
            inverse, weights=(gv - mean[inverse]) ** 2, minlength=ux.size
        )
        std = np.sqrt(sq / counts)
        curves[g] = CurveSummary(ux, mean, std)
    return curves


def plot_learning_curves(
    results, metric="accuracy", ax=None, x="n_labeled", group="method"
):
    """Plot mean learning curves with a ±1 standard deviation band.

    One line per ``group`` value (e.g. query strategy) showing the mean of
    ``metric`` over trials at each ``x`` value, with a shaded band of
    ±1 standard deviation (see :func:`aggregate_curves`).

    Parameters
    ----------
    results : list of dict or dict of sequences
        Experiment records with at least the keys ``group``, ``x`` and
        ``metric`` (e.g. ``method``, ``trial``, ``cycle``, ``n_labeled``,
        ``accuracy``, ``ece``), or a dict of equal-length columns.
    metric : str, default="accuracy"
        Key of the metric on the y-axis.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on. A new figure is created if None.
    x : str, default="n_labeled"
        Key of the x-axis value.
    group : str or None, default="method"
        Key defining the separate curves; None plots a single curve.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes, with one line (labelled with the group value) and one
        ``fill_between`` band per group, and a legend.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``results`` is empty or lacks a required key.
    """
    curves = aggregate_curves(results, metric, x=x, group=group)
    ax = _get_ax(ax)
    for g, curve in curves.items():
        label = metric if g is None else str(g)
        (line,) = ax.plot(curve.x, curve.mean, marker="o", markersize=3,
                          label=label)
        ax.fill_between(
            curve.x,
            curve.mean - curve.std,
            curve.mean + curve.std,
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.legend(title=group)
    return ax
