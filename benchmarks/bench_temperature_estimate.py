"""How close is each estimate from one labeled batch to the model's pool accuracy?

One model per labeled-set size -- on scikit-learn's digits a logistic
regression (strong L2 penalty, so that it errs), on Fashion-MNIST the results
page's network (:class:`~sklearn_crtcl.ResNetClassifier`, width 8, 15 epochs,
flips, 5,000 training images) -- is fitted on a random labeled set; the rest
of the training images are the pool. For each proposal over the pool of
``bench_importance_interval.py`` (uniform, proportional to the entropy, the
stochastic ``"rank"`` selection's ``rank ** -beta``) the script draws a batch
of ``--batch`` rows without replacement (Gumbel-top-k) ``--draws`` times and
estimates the pool accuracy from it with
:func:`~sklearn_crtcl.estimation.estimate_accuracy`: ``"temperature"`` with
and without the draw's weights, ``"importance"`` (Des Raj), ``"atc"`` and,
for reference, ``"confidence"`` (no labels) and ``"temperature, oracle"``
(the temperature fitted on the whole pool's labels: the floor of temperature
scaling, the same in every row of a model). A top-k batch (the ``--batch``
rows of highest entropy, one deterministic batch) has no draw probabilities:
it gets the unweighted ones. It prints, per data set, labeled-set size and
proposal, each estimate's mean absolute error and mean signed error (bias)
against the true pool accuracy, in accuracy points, as a markdown table
(docs/estimation.rst).

Usage::

    python benchmarks/bench_temperature_estimate.py [--datasets digits fashion_mnist]
        [--labeled-digits 60 200 600] [--labeled-fmnist 200 400 800] [--batch 50]
        [--batch-fmnist 100] [--draws 300] [--seed 0]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sklearn_crtcl.estimation import draw_probabilities, estimate_accuracy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_importance_interval import proposals  # noqa: E402

#: The estimates of a drawn batch, in the table's order.
BATCH_ESTIMATES = ("confidence", "temperature", "temperature, weighted", "importance", "atc")
#: The table's columns: the batch estimates, then the floor of temperature scaling.
ESTIMATES = BATCH_ESTIMATES + ("temperature, oracle",)


class _Fixed:
    """The fitted model's pool probabilities, computed once; rows are pool positions."""

    def __init__(self, proba, classes):
        self.proba, self.classes_ = proba, classes

    def predict_proba(self, X):
        return self.proba[np.asarray(X).reshape(-1)]


def _estimates(clf, X, y, order, q):
    batch = dict(X_labeled=X[order], y_labeled=y[order])
    out = {"confidence": estimate_accuracy(clf, X).estimate,
           "temperature": estimate_accuracy(clf, X, "temperature", **batch).estimate,
           "atc": estimate_accuracy(clf, X, "atc", **batch).estimate}
    if q is not None:
        out["temperature, weighted"] = estimate_accuracy(clf, X, "temperature", q=q,
                                                         **batch).estimate
        out["importance"] = estimate_accuracy(clf, X, "importance", q=q, **batch).estimate
    return out


def errors(proba, y, batch, draws, rng, betas=(1.0,)):
    """``proposal -> {estimate: (mean absolute error, bias)}`` of the pool accuracy."""
    clf = _Fixed(proba, np.arange(proba.shape[1]))
    X = np.arange(len(y))[:, None]
    truth = float(np.mean(proba.argmax(1) == y))
    # the floor of temperature scaling: its temperature fitted on the whole pool's labels
    oracle = estimate_accuracy(clf, X, "temperature", X_labeled=X, y_labeled=y).estimate - truth
    table = {}
    for name, p in proposals(proba, betas).items():
        found = {e: [] for e in BATCH_ESTIMATES}
        for _ in range(draws):
            order = np.argsort(-(np.log(p) + rng.gumbel(size=len(p))))[:batch]
            for e, v in _estimates(clf, X, y, order, draw_probabilities(p, order)).items():
                found[e].append(v - truth)
        table[name] = {e: (float(np.mean(np.abs(v))), float(np.mean(v)))
                       for e, v in found.items()}
    entropy = -(proba * np.log(np.clip(proba, 1e-300, None))).sum(axis=1)
    top = np.argsort(-entropy, kind="stable")[:batch]
    table["top-k entropy"] = {e: (abs(v - truth), v - truth)
                              for e, v in _estimates(clf, X, y, top, None).items()}
    for found in table.values():  # one number per model, the same in every row
        found["temperature, oracle"] = (abs(oracle), oracle)
    return truth, table


def _models(dataset, sizes, seed):
    """``(n_labeled, pool probabilities, pool labels)`` per labeled-set size."""
    rng = np.random.RandomState(seed)
    if dataset == "digits":
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        X, y = load_digits(return_X_y=True)
        for n in sizes:
            perm = rng.permutation(len(y))
            clf = LogisticRegression(C=0.01, max_iter=2000).fit(X[perm[:n]], y[perm[:n]])
            yield n, clf.predict_proba(X[perm[n:]]), y[perm[n:]]
        return
    import torch

    from sklearn_crtcl import ResNetClassifier
    from sklearn_crtcl.datasets import load_fashion_mnist
    torch.set_num_threads(1)
    X, _, y, _ = load_fashion_mnist(n_train=5000, n_test=10, random_state=seed)
    for n in sizes:
        perm = rng.permutation(len(y))
        net = ResNetClassifier(module__width=8, max_epochs=15, batch_size=64, augment="flip",
                               random_state=seed, device="cpu", verbose=0)
        net.fit(X[perm[:n]], y[perm[:n]])
        yield n, net.predict_proba(X[perm[n:]]), y[perm[n:]]


def main(argv=None):
    """Print the error table.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    rows : list of tuple
        ``(dataset, n_labeled, accuracy, proposal, estimate, mae, bias)``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"],
                        choices=["digits", "fashion_mnist"])
    parser.add_argument("--labeled-digits", type=int, nargs="+", default=[60, 200, 600])
    parser.add_argument("--labeled-fmnist", type=int, nargs="+", default=[200, 400, 800])
    parser.add_argument("--batch", type=int, default=50, help="digits batch size")
    parser.add_argument("--batch-fmnist", type=int, default=100)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.RandomState(args.seed)
    rows = []
    print(f"{args.draws} draws per proposal; mean absolute error / bias, accuracy points\n")
    print("| data | labeled | pool accuracy | batch | " + " | ".join(ESTIMATES) + " |")
    print("|---|---:|---:|---|" + "---:|" * len(ESTIMATES))
    for dataset in args.datasets:
        sizes = args.labeled_digits if dataset == "digits" else args.labeled_fmnist
        batch = args.batch if dataset == "digits" else args.batch_fmnist
        for n, proba, y in _models(dataset, sizes, args.seed):
            truth, table = errors(proba, y, batch, args.draws, rng)
            for name, found in table.items():
                cells = []
                for e in ESTIMATES:
                    if e in found:
                        mae, bias = found[e]
                        rows.append((dataset, n, truth, name, e, mae, bias))
                        cells.append(f"{100 * mae:.1f} / {100 * bias:+.1f}")
                    else:
                        cells.append("-")
                print(f"| {dataset} | {n} | {truth:.3f} | {name} | " + " | ".join(cells) + " |",
                      flush=True)
    return rows


if __name__ == "__main__":
    main()
