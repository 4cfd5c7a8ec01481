"""Tests for sklearn_crtcl.plotting."""

import sys

import numpy as np
import pytest

from sklearn_crtcl.metrics import expected_calibration_error, reliability_curve
from sklearn_crtcl.plotting import (
    CurveSummary,
    aggregate_curves,
    plot_learning_curves,
    reliability_diagram,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _data(seed=0, n=400, k=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, k))
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    y = np.where(rng.random(n) < 0.5, proba.argmax(axis=1), rng.integers(0, k, n))
    return y, proba


# ---------------------------------------------------------------------------
# reliability_diagram
# ---------------------------------------------------------------------------


def test_reliability_diagram_bars_match_curve():
    y, proba = _data()
    ax = reliability_diagram(y, proba, n_bins=10)
    curve = reliability_curve(y, proba, n_bins=10)

    assert len(ax.containers) == 2
    acc_bars, gap_bars = ax.containers
    assert len(acc_bars.patches) == 10
    assert len(gap_bars.patches) == 10
    nonempty = curve.count > 0
    heights = np.array([p.get_height() for p in acc_bars.patches])
    np.testing.assert_allclose(heights[nonempty], curve.accuracy[nonempty])
    np.testing.assert_array_equal(heights[~nonempty], 0.0)
    # bars cover the bins
    lefts = np.array([p.get_x() for p in acc_bars.patches])
    widths = np.array([p.get_width() for p in acc_bars.patches])
    np.testing.assert_allclose(lefts, curve.bin_edges[:-1])
    np.testing.assert_allclose(widths, 0.1)
    # gap bars go from accuracy to confidence
    gap_bottoms = np.array([p.get_y() for p in gap_bars.patches])
    gap_tops = gap_bottoms + np.array([p.get_height() for p in gap_bars.patches])
    np.testing.assert_allclose(gap_bottoms[nonempty], curve.accuracy[nonempty])
    np.testing.assert_allclose(gap_tops[nonempty], curve.confidence[nonempty])


def test_reliability_diagram_legend_and_diagonal():
    y, proba = _data(1)
    ax = reliability_diagram(y, proba, n_bins=15)
    ece = expected_calibration_error(y, proba, n_bins=15)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"ECE = {ece:.4f}" in t for t in texts), texts
    assert "Perfect calibration" in texts
    # the diagonal
    assert len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 1])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0, 1])
    assert ax.get_title() == "Reliability diagram"
    assert ax.get_ylabel() == "Accuracy"
    assert ax.get_xlim() == (0.0, 1.0)
    # the x label sits under the histogram of counts below the diagram
    assert ax.get_xlabel() == ""
    assert ax.figure.axes[1].get_xlabel() == "Confidence"


def test_reliability_diagram_existing_ax_title_and_labels():
    fig, (ax1, ax2) = plt.subplots(1, 2)
    names = np.array(["a", "b", "c"])
    y, proba = _data(2, k=3)
    out = reliability_diagram(names[y], proba, n_bins=5, labels=names, ax=ax2,
                              title="My model")
    assert out is ax2
    assert ax2.get_title() == "My model"
    assert len(ax1.patches) == 0
    curve = reliability_curve(y, proba, n_bins=5)
    heights = [p.get_height() for p in ax2.containers[0].patches]
    np.testing.assert_allclose(heights, np.nan_to_num(curve.accuracy))


def test_reliability_diagram_hand_case():
    # see test_metrics.test_ece_hand_computed_binary: ECE = .4125
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    ax = reliability_diagram([0, 1, 1, 1], proba, n_bins=5)
    heights = [p.get_height() for p in ax.containers[0].patches]
    np.testing.assert_allclose(heights, [0, 0, 0, 1, 0.5])
    assert "0.4125" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_reliability_diagram_new_figure_has_count_histogram():
    y, proba = _data(3)
    ax = reliability_diagram(y, proba, n_bins=10)
    curve = reliability_curve(y, proba, n_bins=10)
    fig = ax.figure
    assert len(fig.axes) == 2 and fig.axes[0] is ax
    counts_ax = fig.axes[1]
    bars = counts_ax.containers[0]
    np.testing.assert_array_equal([b.get_height() for b in bars], curve.count)
    np.testing.assert_allclose([b.get_x() for b in bars], curve.bin_edges[:-1])
    assert counts_ax.get_ylabel() == "Samples"
    # each non-empty bar carries its count
    numbers = sorted(int(t.get_text()) for t in counts_ax.texts if t.get_text())
    assert numbers == sorted(curve.count[curve.count > 0].tolist())
    # below the diagram, sharing its x axis
    assert counts_ax.get_position().y1 <= ax.get_position().y0
    assert counts_ax.get_shared_x_axes().joined(ax, counts_ax)
    assert len(ax.texts) == 0


def test_reliability_diagram_given_counts_ax():
    fig, (ax, cax) = plt.subplots(2, 1, sharex=True)
    y, proba = _data(4)
    out = reliability_diagram(y, proba, n_bins=5, ax=ax, counts_ax=cax)
    assert out is ax
    curve = reliability_curve(y, proba, n_bins=5)
    np.testing.assert_array_equal([b.get_height() for b in cax.containers[0]], curve.count)
    assert cax.get_xlabel() == "Confidence" and cax.get_ylabel() == "Samples"
    assert len(fig.axes) == 2


def test_reliability_diagram_given_ax_writes_counts():
    # hand case: counts per bin [0, 0, 1, 1, 2]
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.3, 0.7], [0.55, 0.45]])
    fig, ax = plt.subplots()
    reliability_diagram([0, 1, 1, 1], proba, n_bins=5, ax=ax)
    assert len(fig.axes) == 1
    written = sorted((round(t.get_position()[0], 3), t.get_text()) for t in ax.texts)
    # one number per non-empty bin, at the bin's centre
    assert written == [(0.5, "1"), (0.7, "1"), (0.9, "2")]
    assert ax.get_xlabel() == "Confidence"


def test_reliability_diagram_validates_inputs():
    with pytest.raises(ValueError, match="Binary probabilities"):
        reliability_diagram([0, 1], np.array([0.2, 0.9]))


# ---------------------------------------------------------------------------
# aggregate_curves / plot_learning_curves
# ---------------------------------------------------------------------------


def _records():
    # method "a": 2 trials at n_labeled 10 and 20
    # method "b": 3 trials at n_labeled 10, 1 trial at 30 (given out of order)
    return [
        {"method": "a", "trial": 0, "cycle": 0, "n_labeled": 10, "accuracy": 0.5, "ece": 0.2},
        {"method": "a", "trial": 1, "cycle": 0, "n_labeled": 10, "accuracy": 0.7, "ece": 0.1},
        {"method": "a", "trial": 0, "cycle": 1, "n_labeled": 20, "accuracy": 0.8, "ece": 0.1},
        {"method": "a", "trial": 1, "cycle": 1, "n_labeled": 20, "accuracy": 0.8, "ece": 0.3},
        {"method": "b", "trial": 0, "cycle": 1, "n_labeled": 30, "accuracy": 0.9, "ece": 0.05},
        {"method": "b", "trial": 0, "cycle": 0, "n_labeled": 10, "accuracy": 0.1, "ece": 0.4},
        {"method": "b", "trial": 1, "cycle": 0, "n_labeled": 10, "accuracy": 0.2, "ece": 0.4},
        {"method": "b", "trial": 2, "cycle": 0, "n_labeled": 10, "accuracy": 0.6, "ece": 0.4},
    ]


def test_aggregate_curves_numbers():
    curves = aggregate_curves(_records(), "accuracy")
    assert list(curves) == ["a", "b"]
    a, b = curves["a"], curves["b"]
    assert isinstance(a, CurveSummary)
    np.testing.assert_array_equal(a.x, [10, 20])
    np.testing.assert_allclose(a.mean, [0.6, 0.8])
    np.testing.assert_allclose(a.std, [0.1, 0.0], atol=1e-12)  # population std
    np.testing.assert_array_equal(b.x, [10, 30])
    # b at 10: values .1 .2 .6, mean .3, var ((.2^2)+(.1^2)+(.3^2))/3 = .14/3
    np.testing.assert_allclose(b.mean, [0.3, 0.9])
    np.testing.assert_allclose(b.std, [np.sqrt(0.14 / 3), 0.0], atol=1e-12)

    ece = aggregate_curves(_records(), "ece")
    np.testing.assert_allclose(ece["a"].mean, [0.15, 0.2])
    np.testing.assert_allclose(ece["a"].std, [0.05, 0.1])


def test_aggregate_curves_dict_of_columns_and_other_keys():
    recs = _records()
    cols = {k: [r[k] for r in recs] for k in recs[0]}
    from_cols = aggregate_curves(cols, "accuracy", x="cycle")
    from_recs = aggregate_curves(recs, "accuracy", x="cycle")
    for m in ("a", "b"):
        for f in CurveSummary._fields:
            np.testing.assert_allclose(getattr(from_cols[m], f), getattr(from_recs[m], f))
    # by cycle, method a: cycle 0 -> (.5, .7), cycle 1 -> (.8, .8)
    np.testing.assert_allclose(from_cols["a"].mean, [0.6, 0.8])
    # single group
    single = aggregate_curves(recs, "accuracy", group=None)
    assert list(single) == [None]
    np.testing.assert_array_equal(single[None].x, [10, 20, 30])
    np.testing.assert_allclose(single[None].mean, [(0.5 + 0.7 + 0.1 + 0.2 + 0.6) / 5, 0.8, 0.9])


def test_aggregate_curves_errors():
    with pytest.raises(ValueError, match="empty"):
        aggregate_curves([], "accuracy")
    with pytest.raises(ValueError, match="no key 'f1'"):
        aggregate_curves(_records(), "f1")
    with pytest.raises(ValueError, match="same length"):
        aggregate_curves({"method": ["a"], "n_labeled": [1, 2], "accuracy": [1]}, "accuracy")
    with pytest.raises(ValueError, match="missing"):
        aggregate_curves([{"method": "a", "n_labeled": 1, "accuracy": None}], "accuracy")
    with pytest.raises(TypeError, match="list of dicts"):
        aggregate_curves([1, 2], "accuracy")


def test_plot_learning_curves_artists():
    ax = plot_learning_curves(_records(), metric="accuracy")
    assert len(ax.lines) == 2
    line_a, line_b = ax.lines
    assert line_a.get_label() == "a" and line_b.get_label() == "b"
    np.testing.assert_allclose(line_a.get_xdata(), [10, 20])
    np.testing.assert_allclose(line_a.get_ydata(), [0.6, 0.8])
    np.testing.assert_allclose(line_b.get_ydata(), [0.3, 0.9])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # band of method a spans mean +- std
    verts = bands[0].get_paths()[0].vertices
    at10 = verts[np.isclose(verts[:, 0], 10), 1]
    assert at10.min() == pytest.approx(0.5) and at10.max() == pytest.approx(0.7)
    # same colour for a line and its band
    np.testing.assert_allclose(
        matplotlib.colors.to_rgb(line_a.get_color()), bands[0].get_facecolor()[0][:3]
    )
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_xlabel() == "Labeled samples" and ax.get_ylabel() == "Test accuracy"
    assert ax.get_title() == "Test accuracy vs. labeled samples"


def test_plot_learning_curves_on_given_ax_with_metric():
    fig, ax = plt.subplots()
    out = plot_learning_curves(_records(), metric="ece", ax=ax, x="cycle", title="Digits")
    assert out is ax
    assert ax.get_ylabel() == "Test ECE" and ax.get_xlabel() == "Query cycle"
    assert ax.get_title() == "Digits"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.15, 0.2])
    # integer x values: integer ticks only
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    # keys without a known label are made readable
    ax = plot_learning_curves({"method": ["a"], "n_queried": [1], "f1_macro": [0.5]},
                              metric="f1_macro", x="n_queried")
    assert ax.get_xlabel() == "N queried" and ax.get_ylabel() == "F1 macro"


def test_plot_learning_curves_legend_says_band_is_std():
    ax = plot_learning_curves(_records())
    title = ax.get_legend().get_title().get_text()
    assert "method" in title and "mean" in title and "± 1 std" in title
    ax = plot_learning_curves(_records(), group=None)
    assert "± 1 std" in ax.get_legend().get_title().get_text()


def test_plot_learning_curves_coinciding_lines_stay_visible():
    # ten methods with identical results: every line lies on the others
    recs = [dict(r, method=f"m{i}") for i in range(10) for r in _records()
            if r["method"] == "a"]
    ax = plot_learning_curves(recs)
    styles = [(line.get_marker(), line.get_linestyle()) for line in ax.lines]
    assert len(styles) == 10
    assert len({m for m, _ in styles}) == 10  # one marker shape per method
    assert len({ls for _, ls in styles}) > 1  # and varied dash patterns
    # neighbours never share a dash pattern, and markers are hollow
    assert all(a[1] != b[1] for a, b in zip(styles, styles[1:]))
    assert all(line.get_markerfacecolor() == "none" for line in ax.lines)
    # more curves than markers: the (marker, dash) pairs stay distinct
    many = [dict(r, method=f"m{i}") for i in range(25) for r in _records()[:1]]
    ax = plot_learning_curves(many)
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in ax.lines}) == 25


# ---------------------------------------------------------------------------
# matplotlib is optional
# ---------------------------------------------------------------------------


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    y, proba = _data()
    with pytest.raises(ImportError, match=r"pip install sklearn-crtcl\[plot\]"):
        reliability_diagram(y, proba)
    with pytest.raises(ImportError, match=r"sklearn-crtcl\[plot\]"):
        plot_learning_curves(_records())
    # aggregation does not need matplotlib
    assert list(aggregate_curves(_records(), "accuracy")) == ["a", "b"]
