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
    y_true, y_proba, n_bins=15, labels=None, ax=None, title=None, counts_ax=None
):
    r"""Draw a reliability diagram with confidence gaps, the ECE and bin counts.

    For each of the ``n_bins`` equal-width confidence bins (see
    :func:`sklearn_crtcl.metrics.reliability_curve`) a bar of height
    :math:`\mathrm{acc}(B_m)` is drawn, together with a hatched "gap" bar
    spanning from :math:`\mathrm{acc}(B_m)` to :math:`\mathrm{conf}(B_m)`
    and the diagonal of perfect calibration. The expected calibration error
    :math:`\sum_m \frac{|B_m|}{N}|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)|`
    is shown in the legend.

    A bin's bar says little without the number of samples behind it, so the
    counts :math:`|B_m|` are always shown: as a histogram of the samples per
    bin on ``counts_ax`` (like the histogram of predicted probabilities that
    scikit-learn's calibration examples draw under the curve), with the
    count written on each bar, or, when ``ax`` is given without
    ``counts_ax``, as a number in each non-empty bin of the diagram.

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
        Axes to draw the diagram on. If None, a new figure is created with
        the diagram on top and the histogram of bin counts below it (on
        ``ax.figure.axes[1]``).
    title : str, default=None
        Axes title; ``"Reliability diagram"`` if None.
    counts_ax : matplotlib.axes.Axes, default=None
        Axes for the histogram of bin counts, typically below ``ax`` with a
        shared x axis (e.g. ``plt.subplots(2, 1, sharex=True,
        gridspec_kw={"height_ratios": [3, 1]})``). The x-axis label
        ``"Confidence"`` moves there. If None and ``ax`` is given, the
        counts are written at the bottom of the bins of the diagram instead.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes with the diagram. ``ax.containers[0]`` holds the
        ``n_bins`` accuracy bars (height 0 for empty bins) and
        ``ax.containers[1]`` the ``n_bins`` gap bars (height
        ``conf - acc``, 0 for empty bins). The histogram's axes has the
        ``n_bins`` count bars in ``containers[0]`` and their numbers in its
        ``texts``; without a histogram the numbers are in ``ax.texts``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        On invalid inputs (see
        :func:`sklearn_crtcl.metrics.expected_calibration_error`).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_crtcl.plotting import reliability_diagram
    >>> proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    >>> ax = reliability_diagram([0, 1, 1, 1], proba, n_bins=5)
    >>> counts_ax = ax.figure.axes[1]
    >>> [int(bar.get_height()) for bar in counts_ax.containers[0]]
    [0, 0, 1, 1, 2]
    """
    curve = reliability_curve(y_true, y_proba, n_bins=n_bins, labels=labels)
    if ax is None:
        plt = _import_pyplot()
        _, (ax, counts_ax) = plt.subplots(
            2, 1, sharex=True, figsize=(5, 5.5), layout="constrained",
            gridspec_kw={"height_ratios": [3, 1]})
    else:
        _import_pyplot()

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

    if counts_ax is not None:
        bars = counts_ax.bar(left, curve.count, width=width, align="edge",
                             color="tab:gray", edgecolor="black", linewidth=0.8)
        # the number on each bar: a bin of 3 samples next to one of 400 is
        # invisible in the histogram, and the reader wants to know it is 3
        counts_ax.bar_label(bars, labels=[str(n) if n else "" for n in curve.count],
                            padding=2, rotation=90, fontsize="x-small")
        counts_ax.set_ylim(0, 1.6 * max(curve.count.max(), 1))
        counts_ax.set_xlim(0.0, 1.0)
        counts_ax.set_xlabel("Confidence")
        counts_ax.set_ylabel("Samples")
        ax.set_xlabel("")
    else:
        for x, n in zip(left + width / 2, curve.count):
            if n:
                ax.text(x, 0.02, str(n), ha="center", va="bottom", rotation=90,
                        fontsize="x-small",
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="white",
                                  alpha=0.8, linewidth=0))
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


#: Readable axis labels of the usual record keys (others: ``"n_foo"`` ->
#: ``"N foo"``).
_AXIS_LABELS = {
    "n_labeled": "Labeled samples",
    "cycle": "Query cycle",
    "trial": "Trial",
    "accuracy": "Test accuracy",
    "ece": "Test ECE",
    "brier": "Test Brier score",
    "nll": "Test NLL",
    "train_loss": "Training loss",
}
# Each curve gets its own marker and line style, so that curves that coincide
# (e.g. methods that share the random initial set at cycle 0) stay visible:
# hollow markers of different shapes and different dashes show through each
# other.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")


def _axis_label(key):
    if key in _AXIS_LABELS:
        return _AXIS_LABELS[key]
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _line_style(i):
    """Marker and dash pattern of the ``i``-th curve: distinct pairs."""
    marker = _MARKERS[i % len(_MARKERS)]
    # shift the dash pattern each time the markers start over, so that the
    # (marker, linestyle) pair stays distinct for len(_MARKERS) * 4 curves
    linestyle = _LINESTYLES[(i + i // len(_MARKERS)) % len(_LINESTYLES)]
    return marker, linestyle


def plot_learning_curves(
    results, metric="accuracy", ax=None, x="n_labeled", group="method", title=None
):
    """Plot mean learning curves with a ±1 standard deviation band.

    One line per ``group`` value (e.g. query strategy) showing the mean of
    ``metric`` over trials at each ``x`` value, with a shaded band of
    ±1 standard deviation (see :func:`aggregate_curves`). The legend title
    says what the line and the band are.

    Every line has its own hollow marker and line style (and colour), so
    lines that coincide, e.g. methods that share the initial labeled set,
    stay visible. Axis labels are readable names of the keys
    (``n_labeled`` -> "Labeled samples", ``accuracy`` -> "Test accuracy",
    ``ece`` -> "Test ECE"); change them with ``ax.set_xlabel`` and
    ``ax.set_ylabel``.

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
    title : str, default=None
        Axes title; ``"<metric label> vs. <x label>"`` (e.g. "Test
        accuracy vs. labeled samples") if None.

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

    Examples
    --------
    >>> from sklearn_crtcl.plotting import plot_learning_curves
    >>> recs = [{"method": m, "trial": t, "n_labeled": n, "accuracy": a}
    ...         for m, t, n, a in [("random", 0, 10, 0.5), ("random", 1, 10, 0.7),
    ...                            ("crtcl", 0, 10, 0.5), ("crtcl", 1, 10, 0.7)]]
    >>> ax = plot_learning_curves(recs)
    >>> [(line.get_marker(), line.get_linestyle()) for line in ax.lines]
    [('o', '-'), ('s', '--')]
    >>> ax.get_legend().get_title().get_text()
    'method (line: mean, band: ± 1 std)'
    """
    curves = aggregate_curves(results, metric, x=x, group=group)
    ax = _get_ax(ax)
    for i, (g, curve) in enumerate(curves.items()):
        label = _axis_label(metric) if g is None else str(g)
        marker, linestyle = _line_style(i)
        (line,) = ax.plot(curve.x, curve.mean, marker=marker, markersize=6,
                          markerfacecolor="none", linestyle=linestyle,
                          label=label)
        ax.fill_between(
            curve.x,
            curve.mean - curve.std,
            curve.mean + curve.std,
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    if all(float(v).is_integer() for c in curves.values() for v in c.x):
        # labeled-set sizes, cycles: no tick at 52.5 labels
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xlabel, ylabel = _axis_label(x), _axis_label(metric)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs. {xlabel[:1].lower() + xlabel[1:]}"
                 if title is None else title)
    band = "line: mean, band: ± 1 std"
    ax.legend(title=band if group is None else f"{group} ({band})")
    return ax
