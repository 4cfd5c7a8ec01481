"""How one-sided are the query batches of a finished runner output directory?

For every (method, trial) of a run written by ``sklearn_crtcl.experiments``,
prints the share of the largest true class in each cycle's query batch (a
random batch of 10 balanced classes gives about 0.15 at 100 queries), and the
mean over cycles and trials per method. Reads ``config.json`` and
store and reloads the data set exactly as the runner did.

Usage::

    python benchmarks/query_class_share.py results/fashion_mnist [more run dirs]
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from sklearn_crtcl.experiments.runner import ExperimentConfig, _load_data, load_state


def run_config(run_dir):
    """The :class:`ExperimentConfig` saved in a runner output directory (``config.json``).

    Parameters
    ----------
    run_dir : str or path
        A directory written by ``sklearn_crtcl.experiments``.

    Returns
    -------
    ExperimentConfig
        Its settings, with ``resume``, ``overwrite`` and ``progress`` off.
    """
    saved = json.loads((Path(run_dir) / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    settings = {k: v for k, v in saved.items() if k in fields}
    settings.update(resume=False, overwrite=False, progress=False)
    return ExperimentConfig(**settings)


def class_shares(run_dir):
    """``{method: array (n_trials, n_cycles)}`` of the largest class share per batch."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    _, _, y_train, _ = _load_data(config)
    state = load_state(run_dir)
    shares = {}
    for key, run in state["runs"].items():  # key: "method/trial"
        method, trial = key.rsplit("/", 1)
        queried = np.asarray(run["labeled"][config.initial_size:])
        batches = queried.reshape(-1, config.query_size)
        row = [np.bincount(y_train[b]).max() / len(b) for b in batches]
        shares.setdefault(method, {})[int(trial)] = row
    return {m: np.array([rows[t] for t in sorted(rows)]) for m, rows in shares.items()}


def main(argv=None):
    """Print the table for each run directory.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        print(f"{run_dir}: share of the largest true class in each query batch")
        shares = class_shares(run_dir)
        w = max(len("method"), *(len(m) for m in shares))
        print(f"| {'method':{w}s} | per cycle (trial 0)        | mean over cycles and trials |")
        print(f"|{'-' * (w + 2)}|{'-' * 28}|{'-' * 28}:|")
        for method, table in shares.items():
            cycles = " ".join(f"{v:.2f}" for v in table[0])
            print(f"| {method:{w}s} | {cycles:26s} | {table.mean():27.2f} |")
        print()


if __name__ == "__main__":
    main()
