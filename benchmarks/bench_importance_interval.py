"""How often does the importance-weighted estimate's interval cover the accuracy?

A logistic regression (strong L2 penalty, so that it errs) is fitted on a
random labeled set of scikit-learn's digits; the remaining rows are the pool.
For three proposals over the pool -- uniform (random sampling), proportional
to the entropy, and the stochastic ``"rank"`` selection's ``rank ** -beta`` of
the entropy (:mod:`sklearn_crtcl.query`; ``beta=1``, its default, and
``--betas``) -- the script draws a batch
of ``--batch`` rows without replacement (Gumbel-top-k) ``--draws`` times and
estimates the pool accuracy with
:func:`~sklearn_crtcl.estimation.estimate_accuracy` ``"importance"``
(Des Raj's estimator) under each interval of
:data:`~sklearn_crtcl.estimation.IMPORTANCE_INTERVALS`. It prints, per
labeled-set size, proposal and interval, the share of draws whose interval
covers the true pool accuracy and the mean interval width, as a markdown
table (docs/estimation.rst).

Usage::

    python benchmarks/bench_importance_interval.py [--labeled 60 200 600]
        [--batch 50] [--draws 500] [--level 0.9] [--betas 1.0 0.5] [--seed 0]
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from sklearn_crtcl.estimation import (IMPORTANCE_INTERVALS, draw_probabilities,
                                      estimate_accuracy)


def proposals(proba, betas=(1.0,)):
    """``name -> proposal over the pool`` for the pool's probabilities."""
    entropy = -(proba * np.log(np.clip(proba, 1e-300, None))).sum(axis=1)
    rank = np.argsort(np.argsort(-entropy)) + 1.0  # 1: the most uncertain row
    weights = {"uniform": np.ones(len(proba)), "entropy": entropy + 1e-12}
    weights.update({f"rank, beta={b:g}": rank ** -b for b in betas})
    return {name: w / w.sum() for name, w in weights.items()}


def coverage(clf, X_pool, y_pool, p, batch, draws, level, rng):
    """``interval -> (coverage, mean width)`` over ``draws`` batches drawn from ``p``."""
    truth = float(np.mean(clf.predict(X_pool) == y_pool))
    hits = {i: 0 for i in IMPORTANCE_INTERVALS}
    widths = {i: 0.0 for i in IMPORTANCE_INTERVALS}
    for _ in range(draws):
        order = np.argsort(-(np.log(p) + rng.gumbel(size=len(p))))[:batch]
        q = draw_probabilities(p, order)
        for interval in IMPORTANCE_INTERVALS:
            est = estimate_accuracy(clf, X_pool, "importance", X_labeled=X_pool[order],
                                    y_labeled=y_pool[order], q=q, confidence_level=level,
                                    interval=interval)
            hits[interval] += est.low <= truth <= est.high
            widths[interval] += est.high - est.low
    return truth, {i: (hits[i] / draws, widths[i] / draws) for i in IMPORTANCE_INTERVALS}


def main(argv=None):
    """Print the coverage table.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    rows : list of tuple
        ``(n_labeled, accuracy, proposal, interval, coverage, width)``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, nargs="+", default=[60, 200, 600])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(args.seed)
    rows = []
    print(f"{args.level:.0%} interval, batches of {args.batch}, {args.draws} draws each\n")
    print("| labeled | pool accuracy | proposal | interval | coverage | mean width |")
    print("|---:|---:|---|---|---:|---:|")
    for n_labeled in args.labeled:
        perm = rng.permutation(len(y))
        labeled, pool = perm[:n_labeled], perm[n_labeled:]
        clf = LogisticRegression(C=0.01, max_iter=2000).fit(X[labeled], y[labeled])
        for name, p in proposals(clf.predict_proba(X[pool]), args.betas).items():
            truth, result = coverage(clf, X[pool], y[pool], p, args.batch, args.draws,
                                     args.level, rng)
            for interval, (cover, width) in result.items():
                rows.append((n_labeled, truth, name, interval, cover, width))
                print(f"| {n_labeled} | {truth:.3f} | {name} | {interval} | {cover:.3f} | "
                      f"{width:.3f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
