"""Results of a benchmark run: the CSV file, the summary table and the plots."""

import csv
import io
import json
import math
import os
import re
import socket
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["RESULT_COLUMNS", "TIME_COLUMNS", "record_columns", "write_results_csv",
           "load_results", "area_under_curve", "summary_table", "save_plots"]

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = ("method", "trial", "cycle", "n_labeled", "accuracy", "ece", "nll",
                  "train_loss", "wall_time", "query_time", "train_time")

#: The timing columns (seconds): they differ between otherwise identical runs.
TIME_COLUMNS = ("wall_time", "query_time", "train_time", "estimation_time")


def record_columns(estimation=True):
    """The columns of the runner's records and ``results.csv``, in order.

    Parameters
    ----------
    estimation : bool, default=True
        Whether the run records accuracy estimates and stopping verdicts
        (``estimation`` of :class:`~sklearn_crtcl.experiments.ExperimentConfig`).

    Returns
    -------
    tuple of str
        :data:`RESULT_COLUMNS`, followed with ``estimation`` by
        :data:`~sklearn_crtcl.experiments.estimates.ESTIMATE_COLUMNS`.
    """
    if not estimation:
        return RESULT_COLUMNS
    from .estimates import ESTIMATE_COLUMNS
    return RESULT_COLUMNS + ESTIMATE_COLUMNS

# mkstemp creates files readable by their owner only: give exports the usual mode
_UMASK = os.umask(0)
os.umask(_UMASK)

_TYPES = {"method": str, "trial": int, "cycle": int, "n_labeled": int, "n_test": int}


def _parse(key, value):
    if key.startswith("stop_"):  # a criterion's verdict
        if value not in ("True", "False"):
            raise ValueError(f"column {key!r} holds {value!r}, not True or False")
        return value == "True"
    value = _TYPES.get(key, float)(value)
    # NaN as the one object math.nan, as the store gives it: records compare equal
    return math.nan if isinstance(value, float) and value != value else value


# the name of _atomic_write_bytes' temporary file: <target>.<pid>@<host>.<random>.tmp
_TMP_NAME = re.compile(r"(?P<target>.+)\.(?P<pid>[0-9]+)@(?P<host>.+)\.[A-Za-z0-9_]+\.tmp")

#: The name of such a file written by the release before the writer was in it
#: (``tempfile.mkstemp``'s eight random characters): its writer is unknown.
_OLD_TMP_NAME = re.compile(r"(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def _atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file beside it, moved in
    place: a reader never sees a half-written file."""
    path = Path(path)
    # a name of its own: several workers may export the same file at once; the
    # writer's pid and host in it tell a later run whether a leftover's writer died
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}@{socket.gethostname()}.",
                               suffix=".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:  # an error or Ctrl-C: leave no temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_json(path, obj):
    _atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def write_results_csv(records, path, columns=RESULT_COLUMNS):
    """Write result records to a CSV file, atomically.

    Floats are written with Python's shortest round-trip representation, so
    :func:`load_results` gives back exactly the same numbers.

    Parameters
    ----------
    records : list of dict
        Rows with the keys ``columns``.
    path : str or path
        Destination; a temporary file is written beside it and moved in
        place, so a reader never sees a half-written file.
    columns : sequence of str, default=RESULT_COLUMNS
        The columns, in order.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: record[k] for k in columns})
    _atomic_write_bytes(path, buf.getvalue().encode())


def load_results(path):
    """Read the records of a ``results.csv`` file (or a run's output directory).

    Parameters
    ----------
    path : str or path
        ``results.csv``, or the directory that holds it.

    Returns
    -------
    records : list of dict
        One dict per row; ``method`` is a string, ``trial``, ``cycle``,
        ``n_labeled`` and ``n_test`` integers, the criteria's verdicts
        ``stop_<name>`` booleans, the other columns floats.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: _parse(k, v) for k, v in row.items()} for row in rows]


def _group(records, key_fn):
    groups = {}
    for r in records:
        groups.setdefault(key_fn(r), []).append(r)
    return groups


def area_under_curve(records, metric="accuracy", x="n_labeled"):
    r"""Normalised area under each trial's learning curve, per method.

    For a trial with points :math:`(x_c, v_c)`, :math:`c = 0..C`, sorted
    by :math:`x`:

    .. math::

        \mathrm{AUC} = \frac{1}{x_C - x_0} \sum_{c=1}^{C}
            (x_c - x_{c-1}) \frac{v_c + v_{c-1}}{2},

    the trapezoid rule divided by the range of :math:`x`, so the AUC is the
    mean metric over the labeling budget (same scale as the metric). A
    single point gives its value.

    Parameters
    ----------
    records : list of dict
        Result records with the keys ``method``, ``trial``, ``x`` and
        ``metric``.
    metric : str, default="accuracy"
        The curve's y value.
    x : str, default="n_labeled"
        The curve's x value.

    Returns
    -------
    auc : dict
        ``method -> ndarray`` of one AUC per trial, in trial order; methods
        in order of first appearance.
    """
    out = {}
    for method, rows in _group(records, lambda r: r["method"]).items():
        per_trial = []
        for _, trial_rows in sorted(_group(rows, lambda r: r["trial"]).items()):
            pts = sorted((float(r[x]), float(r[metric])) for r in trial_rows)
            xs, vs = np.array(pts).T
            if len(xs) == 1 or xs[-1] == xs[0]:
                per_trial.append(float(np.mean(vs)))
            else:
                area = np.sum(np.diff(xs) * (vs[1:] + vs[:-1]) / 2)
                per_trial.append(float(area / (xs[-1] - xs[0])))
        out[method] = np.array(per_trial)
    return out


def _mean_std(values, digits=3):
    """``mean ± std`` of several values; a single value alone (it has no spread)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def _markdown(header, rows, align):
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "| " + " | ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)
        ) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                         for w, a in zip(widths, align)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


#: Cycles per table of :func:`summary_table` (with the method, 9 columns: a table
#: that fits a page).
_MAX_CYCLE_COLUMNS = 8


def summary_table(records, title=None, interval=None):
    """Markdown summary of a run: per-cycle mean ± std and the accuracy AUC.

    Three tables: accuracy and ECE per method (rows) and cycle (columns),
    mean ± standard deviation over trials (population standard deviation),
    then per method the normalised area under the accuracy curve
    (:func:`area_under_curve`), the final accuracy, ECE and training loss
    (of the last epoch), and the mean wall time per cycle. A run of more
    than 8 cycles (9 with cycle 0) has its per-cycle tables split in several
    of at most 8 cycles each, so that they fit a page. A value from a
    single trial has no standard deviation: it is printed alone (``0.812``,
    not ``0.812 ± 0.000``), and with one trial the headings say so.

    Parameters
    ----------
    records : list of dict
        Result records (see :data:`RESULT_COLUMNS`).
    title : str, optional
        A line printed under the heading.
    interval : str, optional
        Records with estimates: the importance estimate's interval, named
        in the estimator table (e.g. ``"korn-graubard, 90 %"``).

    Returns
    -------
    str
        The tables in Markdown.
    """
    if not records:
        raise ValueError("no results to summarise")
    methods = list(dict.fromkeys(r["method"] for r in records))
    n_trials = len({r["trial"] for r in records})
    by_cell = _group(records, lambda r: (r["method"], r["cycle"]))
    cycles = sorted({r["cycle"] for r in records})
    n_labeled = {c: sorted({r["n_labeled"] for r in records if r["cycle"] == c})
                 for c in cycles}
    parts = ["# Active-learning results", ""]
    if title:
        parts += [title, ""]
    # one row per method, one column per cycle: many methods stay readable (a page
    # or a terminal is long, not wide)
    columns = {c: f"cycle {c} (n={'/'.join(map(str, n_labeled[c]))})" for c in cycles}
    # at most _MAX_CYCLE_COLUMNS cycles a table: a long run gives several tables
    chunks = [cycles[i:i + _MAX_CYCLE_COLUMNS]
              for i in range(0, len(cycles), _MAX_CYCLE_COLUMNS)]
    for metric, label in (("accuracy", "Test accuracy"), ("ece", "Test ECE (15 bins)")):
        heading = (f"## {label}, one trial (no standard deviation)" if n_trials == 1
                   else f"## {label}, mean ± std over {n_trials} trial(s)")
        parts += [heading, "", "Rows: methods; columns: cycles, n = labeled images.", ""]
        for chunk in chunks:
            rows = []
            for m in methods:
                row = [m]
                for c in chunk:
                    cell = by_cell.get((m, c))
                    row.append(_mean_std([r[metric] for r in cell]) if cell else "-")
                rows.append(row)
            parts += [_markdown(["method"] + [columns[c] for c in chunk], rows,
                                ["l"] + ["r"] * len(chunk)), ""]
    auc = area_under_curve(records)
    last = max(cycles)
    rows = []
    for m in methods:
        final = by_cell.get((m, last), [])
        times = [r["wall_time"] for r in records if r["method"] == m]
        losses = [r["train_loss"] for r in final if r.get("train_loss") is not None]
        rows.append([m, _mean_std(auc[m]),
                     _mean_std([r["accuracy"] for r in final]) if final else "-",
                     _mean_std([r["ece"] for r in final]) if final else "-",
                     _mean_std(losses) if losses else "-",
                     f"{np.mean(times):.1f}"])
    parts += ["## Per method", "",
              "AUC: area under the accuracy curve over n_labeled, divided by the "
              "n_labeled range (the mean accuracy over the labeling budget). Train loss: "
              "the training loss of the last epoch of the last cycle (has the training "
              "converged?).", "",
              _markdown(["method", "AUC accuracy", f"accuracy (cycle {last})",
                         f"ECE (cycle {last})", f"train loss (cycle {last})",
                         "time per cycle (s)"], rows,
                        ["l", "r", "r", "r", "r", "r"]), ""]
    if "pool_accuracy" in records[0]:  # a run with estimation
        from .estimates import estimation_summary
        parts += [estimation_summary(records, interval=interval)]
    return "\n".join(parts)


def save_plots(records, output_dir, title=None):
    """Save ``accuracy.png`` and ``ece.png``: mean curves with ±std bands.

    One line per method against the labeled-set size, as in Fig. 2 of the
    CrtCl paper, drawn with
    :func:`sklearn_crtcl.plotting.plot_learning_curves`. Records with
    estimates (``estimation=True``) also give ``estimates.png``
    (:func:`~sklearn_crtcl.experiments.estimates.plot_run_estimates`). Uses
    matplotlib's object-oriented API (no pyplot state, any backend).

    Parameters
    ----------
    records : list of dict
        Result records.
    output_dir : str or path
        Destination directory.
    title : str, optional
        Figure title.

    Returns
    -------
    paths : list of Path
        The written files; empty when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    from ..plotting import plot_learning_curves

    paths = []
    for metric in ("accuracy", "ece"):
        fig = Figure(figsize=(6, 4.2), layout="constrained")
        ax = fig.subplots()
        plot_learning_curves(records, metric=metric, ax=ax, x="n_labeled", group="method",
                             title=title)
        if metric == "ece":
            ax.set_ylabel("Test ECE (15 bins)")
        ax.grid(alpha=0.3)
        if title:
            ax.title.set_fontsize(9)
        path = Path(output_dir) / f"{metric}.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        _atomic_write_bytes(path, buf.getvalue())  # several workers may export at once
        paths.append(path)
    if records and "pool_accuracy" in records[0]:
        from .estimates import plot_run_estimates
        fig = plot_run_estimates(records, title=title)
        path = Path(output_dir) / "estimates.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        _atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths
