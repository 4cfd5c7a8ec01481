"""Cost of batch selection, apart from scoring: how each selection scales.

Scoring a pool is one forward (or backward) pass per candidate, linear in
the number of candidates. The selection step after it differs: top-k and the
stochastic selections sort once; "balanced" sorts once per class; "cluster"
runs k-means on ``cluster_pool * k`` embeddings; BADGE's k-means++ seeding and
CoreSet's greedy k-center make ``k`` passes over all candidates (O(n k D)).
This times that step alone on synthetic scores, probabilities and embeddings
(D = 512, the width-64 ResNet-18 of the papers; 10 classes), one torch/BLAS
thread, median of ``--repeats`` runs.

Usage::

    python benchmarks/bench_selection.py [--sizes 2000 10000 50000] [--k 100 1000]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sklearn_crtcl.query.badge import _kmeanspp  # noqa: E402
from sklearn_crtcl.query.coreset import _k_center  # noqa: E402
from sklearn_crtcl.query.selection import choose  # noqa: E402


def _time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    """Print the table.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument("--k", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.RandomState(0)
    print("| candidates | k | topk | power | balanced | cluster | BADGE | CoreSet (1000 labeled) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        scores = rng.random_sample(n)
        logits = rng.standard_normal((n, 10)) * 3
        proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        emb = rng.standard_normal((n, args.dim)).astype(np.float32)
        labeled = rng.standard_normal((1000, args.dim)).astype(np.float32)
        for k in args.k:
            if k > n:
                continue
            row = []
            for selection in ("topk", "power", "balanced", "cluster"):
                row.append(_time(lambda: choose(
                    scores, k, largest=True, selection=selection,
                    rng=np.random.RandomState(0), proba=lambda pos: proba[pos],
                    embed=lambda pos: emb[pos]), args.repeats))
            row.append(_time(lambda: _kmeanspp(proba, emb, k, np.random.RandomState(0)),
                             args.repeats))
            row.append(_time(lambda: _k_center(emb, labeled, k), args.repeats))
            print(f"| {n} | {k} | " + " | ".join(f"{t:.3f} s" for t in row) + " |", flush=True)


if __name__ == "__main__":
    main()
