"""Query time per cycle of each method of finished runner output directories.

Reads ``results.csv`` (column ``query_time``: seconds spent in the query
strategy, scoring and selection, per cycle) and prints, per method, the mean
and maximum over the query cycles and trials, and the mean for the last cycle.

Usage::

    python benchmarks/query_time_table.py results/selection_digits [more run dirs]
"""

import argparse
from pathlib import Path

import numpy as np

from sklearn_crtcl.experiments import load_results


def main(argv=None):
    """Print one table per run directory.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        records = [r for r in load_results(Path(run_dir) / "results.csv") if r["cycle"] > 0]
        last = max(r["cycle"] for r in records)
        print(f"{run_dir}: query time per cycle (s), over {len({r['trial'] for r in records})} "
              "trial(s)")
        print("| method | mean | max | last cycle |")
        print("|---|---:|---:|---:|")
        for method in dict.fromkeys(r["method"] for r in records):
            t = np.array([r["query_time"] for r in records if r["method"] == method])
            t_last = [r["query_time"] for r in records
                      if r["method"] == method and r["cycle"] == last]
            print(f"| {method} | {t.mean():.2f} | {t.max():.2f} | {np.mean(t_last):.2f} |")
        print()


if __name__ == "__main__":
    main()
