"""How far from a uniform draw is each batch selection? Mean score percentile of the batch.

For a runner output directory (its ``config.json``: data set, sizes, widths,
epochs, seed), fits the estimator of each scoring strategy as the runner's
cycle 0 of each trial does (same initial labeled set, same seed), draws the
candidates of the runner's first query (``subset_size`` of the pool, same
seed), scores them with the strategy's utility function and, for each batch
selection, draws ``--repeats`` batches of ``query_size`` and reports the mean
*score percentile* of the chosen candidates: 0 for the worst score, 1 for the
best (ties share their mean rank), so a uniform draw gives 0.5 and top-k
:math:`1 - (n-1)/(2(N-1))` for ``n`` of ``N`` candidates.

Strategies (utility, the runner's estimator): critic (``critic_correctness``,
lowest first; ``crtcl``), COD (``cyclic_output_discrepancy``; ``tod``),
gradient norm (``entropy_gradient_norm``; ``lplgrad``), loss prediction
(``predicted_loss``; ``ll4al``, the same estimator as ``lplgrad``), entropy
(``classifier_entropy``; ``entropy``). Selections: ``uniform`` (a random
batch), ``topk``, ``power``, ``rank`` (the default,
:data:`~sklearn_crtcl.query.selection.DEFAULT_SELECTION`), and two
shift- and scale-invariant alternatives that were candidates for the default,
through the same :func:`~sklearn_crtcl.query.selection.choose`:
``softmax-z``, ``softmax`` on the standardised scores
:math:`(s - \\bar s)/\\sigma_s`, and ``power-rank``, ``power`` on the ranks
(1 for the worst), :math:`p_i \\propto (N + 1 - r_i)^\\beta`; all with
``beta=1``. ``range`` is the oriented score's minimum and maximum over the
candidates, ``cv`` its standard deviation over the absolute mean (how flat the
scores are). Each trial's numbers are checked against the strategy itself:
its default query with ``random_state=0`` on those candidates is the first
``rank`` batch.

Usage::

    python benchmarks/query_score_percentile.py results/default_digits [--repeats 100]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_class_share import run_config  # noqa: E402

from sklearn_crtcl.experiments.methods import make_estimator, method_spec  # noqa: E402
from sklearn_crtcl.experiments.runner import (  # noqa: E402
    _FIT, _QUERY, _derived_seed, _initial_indices, _load_data)
from sklearn_crtcl.query import (  # noqa: E402
    classifier_entropy, cod_sampling, critic_correctness, critic_sampling,
    cyclic_output_discrepancy, entropy_gradient_norm, entropy_sampling,
    gradient_norm_sampling, loss_prediction_sampling, predicted_loss)
from sklearn_crtcl.query._common import draw_candidates  # noqa: E402
from sklearn_crtcl.query.selection import DEFAULT_SELECTION, choose  # noqa: E402

#: name: (runner method of the estimator, utility, strategy, larger is better)
STRATEGIES = {
    "critic": ("crtcl", critic_correctness, critic_sampling, False),
    "COD": ("tod", cyclic_output_discrepancy, cod_sampling, True),
    "gradient norm": ("lplgrad", entropy_gradient_norm, gradient_norm_sampling, True),
    "loss prediction": ("ll4al", predicted_loss, loss_prediction_sampling, True),
    "entropy": ("entropy", classifier_entropy, entropy_sampling, True),
}
SELECTIONS = ("uniform", "topk", "power", "rank", "softmax-z", "power-rank")


def batch(oriented, n, selection, rng):
    """Positions of one batch of ``n`` candidates by ``selection`` (larger is better)."""
    if selection == "uniform":
        return rng.permutation(len(oriented))[:n]
    if selection == "softmax-z":
        z = (oriented - oriented.mean()) / oriented.std()
        return choose(z, n, largest=True, selection="softmax", rng=rng)
    if selection == "power-rank":
        return choose(rankdata(oriented, method="ordinal"), n, largest=True,
                      selection="power", rng=rng)
    return choose(oriented, n, largest=True, selection=selection, rng=rng)


def percentiles(run_dir, repeats=100):
    """Per strategy: score range, flatness and mean batch percentile per selection.

    Parameters
    ----------
    run_dir : str or path
        A runner output directory (only its ``config.json`` is read).
    repeats : int, default=100
        Batches drawn per trial and selection (seeds ``0 .. repeats - 1``).

    Returns
    -------
    table : dict
        ``{strategy: {"range": (min, max), "cv": float, selection: float}}``,
        the percentiles averaged over the batches and trials.
    """
    config = run_config(run_dir)
    X_train, _, y_train, _ = _load_data(config)
    classes = np.unique(y_train)
    n_pool = len(X_train)
    rows = {name: [] for name in STRATEGIES}
    for trial in range(config.n_trials):
        labeled = _initial_indices(config, trial, n_pool)
        pool = np.setdiff1d(np.arange(n_pool), labeled)
        fitted = {}
        for name, (method, utility, strategy, largest) in STRATEGIES.items():
            spec = method_spec(method)
            key = (spec.estimator, repr(spec.params), spec.semi_supervised)
            if key not in fitted:  # ll4al and lplgrad: one estimator
                net = make_estimator(method, classes=classes, width=config.width,
                                     max_epochs=config.max_epochs,
                                     batch_size=config.batch_size, device=config.device,
                                     warm_start=config.warm_start,
                                     random_state=_derived_seed(config, trial, 0, _FIT),
                                     augment=None if config.augment == "none"
                                     else config.augment)
                kwargs = ({"X_unlabeled": X_train, "unlabeled_indices": pool}
                          if spec.semi_supervised else {})
                fitted[key] = net.fit(X_train[labeled], y_train[labeled], **kwargs)
            net = fitted[key]
            # the candidates of the runner's first query
            cand = draw_candidates(len(pool), config.subset_size,
                                   _derived_seed(config, trial, 1, _QUERY))
            cand = pool if cand is None else pool[cand]
            scores = np.asarray(utility(net, X_train[cand]), dtype=np.float64)
            oriented = scores if largest else -scores
            n = config.query_size
            got = strategy(net, X_train, n_instances=n, random_state=0, pool_indices=cand)
            expected = cand[choose(oriented, n, largest=True, selection=DEFAULT_SELECTION,
                                   rng=np.random.RandomState(0))]
            if not np.array_equal(got, expected):
                raise RuntimeError(f"{name}: the strategy's default query is not the "
                                   f"{DEFAULT_SELECTION!r} batch of its utility's scores")
            pct = (rankdata(oriented) - 1) / (len(oriented) - 1)
            row = {"range": (oriented.min(), oriented.max()),
                   "cv": oriented.std() / abs(oriented.mean())}
            for selection in SELECTIONS:
                row[selection] = np.mean([
                    pct[batch(oriented, n, selection, np.random.RandomState(seed))].mean()
                    for seed in range(repeats)])
            rows[name].append(row)
    table = {}
    for name, trials in rows.items():
        table[name] = {"range": (min(r["range"][0] for r in trials),
                                 max(r["range"][1] for r in trials)),
                       "cv": float(np.mean([r["cv"] for r in trials]))}
        table[name].update({s: float(np.mean([r[s] for r in trials])) for s in SELECTIONS})
    return config, table


def main(argv=None):
    """Print the table for each run directory.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--repeats", type=int, default=100,
                        help="batches per trial and selection (default: 100)")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        config, table = percentiles(run_dir, args.repeats)
        n_cand = config.subset_size
        print(f"{run_dir} ({config.dataset}): mean score percentile of a batch of "
              f"{config.query_size} of {n_cand} candidates (first query, cycle-0 nets), "
              f"{config.n_trials} trial(s) x {args.repeats} batches; uniform = 0.5, "
              "1 = the best score\n")  # a blank line: the table is Markdown
        head = ["strategy", "range (oriented)", "cv"] + [
            f"{s} (default)" if s == DEFAULT_SELECTION else s for s in SELECTIONS]
        w = [max(len(h), 15) for h in head]
        w[1] = max(w[1], 19)
        print("| " + " | ".join(f"{h:{w[i]}s}" for i, h in enumerate(head)) + " |")
        print("|" + "|".join("-" * (w[0] + 2) if i == 0 else "-" * (w[i] + 1) + ":"
                             for i in range(len(head))) + "|")
        for name, row in table.items():
            lo, hi = row["range"]
            cells = [name, f"{lo:.4g} .. {hi:.4g}", f"{row['cv']:.3f}"] + [
                f"{row[s]:.3f}" for s in SELECTIONS]
            print("| " + " | ".join(f"{c:{w[i]}s}" if i == 0 else f"{c:>{w[i]}s}"
                                    for i, c in enumerate(cells)) + " |")
        print()


if __name__ == "__main__":
    main()
