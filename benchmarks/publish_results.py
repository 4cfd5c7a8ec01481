"""Copy a finished runner output into the docs: results CSV, summary and plots.

Usage::

    python benchmarks/publish_results.py RUN_DIR NAME   # e.g. results/digits digits

writes ``docs/_static/results/NAME_results.csv``, ``NAME_summary.md``,
``NAME_accuracy.png`` and ``NAME_ece.png`` (and ``NAME_estimates.png`` for a
run with estimation), all from ``RUN_DIR/results.csv``; the summary names the
run's importance interval (from ``RUN_DIR/config.json``; a run of the release
before the interval options recorded the normal 95 % one).
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from sklearn_crtcl.experiments import load_results, summary_table
from sklearn_crtcl.experiments.report import save_plots
from sklearn_crtcl.experiments.runner import _interval

DOCS = Path(__file__).resolve().parents[1] / "docs" / "_static" / "results"


def main(run_dir, name):
    run_dir = Path(run_dir)
    records = load_results(run_dir)
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "results.csv", DOCS / f"{name}_results.csv")
    interval = _interval(json.loads((run_dir / "config.json").read_text()))
    (DOCS / f"{name}_summary.md").write_text(summary_table(records, interval=interval))
    with tempfile.TemporaryDirectory() as tmp:
        save_plots(records, tmp, title=name)
        for plot in ("accuracy", "ece", "estimates"):
            if (Path(tmp) / f"{plot}.png").exists():
                shutil.copyfile(Path(tmp) / f"{plot}.png", DOCS / f"{name}_{plot}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
