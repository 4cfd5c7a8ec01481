"""How good are the accuracy estimates, and where would each stopping criterion stop?

A standalone active-learning loop per data set (digits, Fashion-MNIST): a
:class:`~sklearn_crtcl.ResNetClassifier` in a modAL ``ActiveLearner`` queries
a batch per cycle with entropy sampling and a stochastic selection (the
strategies' default, ``"rank"``, unless ``--selection`` says otherwise), and
the same query returns the per-draw probabilities of its batch
(``return_proposal=True``); ``--selection topk`` takes the highest entropies
(the papers' selection, no importance estimate) and ``uniform`` a random
batch. Each cycle, before the model learns its new
batch, every estimator of
:func:`~sklearn_crtcl.estimation.estimate_accuracy` estimates the model's
accuracy on the pool (ATC and DoC fit on the new batch, the importance
estimates weight its labels by the query's probabilities), and every
criterion of
:mod:`sklearn_crtcl.stopping` gives its verdict
(:func:`~sklearn_crtcl.experiments.estimates.estimation_record`).

Output, in ``--out``:

* ``results.csv``: one row per data set, trial and cycle (true pool and test
  accuracy, each estimate with its interval, each criterion's statistic and
  verdict), rewritten atomically after every cycle;
* ``summary.md``: per data set, the mean absolute error of each estimator
  against the true pool accuracy (and the interval's coverage where there is
  one), and per criterion and price the mean stopping cycle, cost and regret
  against the cheapest cycle in hindsight
  (:func:`~sklearn_crtcl.stopping.stopping_summary`).

``--resume`` keeps the trials already complete in ``results.csv`` and runs
the rest (a trial cut short is run again from its start).

Usage::

    python benchmarks/bench_estimation.py --out bench_estimation [--resume]
        [--datasets digits fashion_mnist] [--trials 3 | --trial-ids 0 1 2] [--cycles 8]
        [--selection rank|power|softmax|topk|uniform] [--beta 1.0] [--ensemble 5]
        [--crossfit-cv 5]
    python benchmarks/bench_estimation.py --table OUT [OUT ...]   # the runs' RST table
"""

import argparse
import csv
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sklearn_crtcl import ResNetClassifier  # noqa: E402
from sklearn_crtcl.datasets import load_digits_images, load_fashion_mnist  # noqa: E402
from sklearn_crtcl.estimation import estimate_accuracy  # noqa: E402
from sklearn_crtcl.experiments.estimates import (RUN_CRITERIA, estimation_record,  # noqa
                                                 run_criteria)
from sklearn_crtcl.experiments.report import _atomic_write_bytes, write_results_csv  # noqa
from sklearn_crtcl.query import (DEFAULT_SELECTION, STOCHASTIC_SELECTIONS,  # noqa: E402
                                 entropy_sampling)
from sklearn_crtcl.stopping import stopping_summary  # noqa: E402

METHODS = ("confidence", "temperature", "atc", "doc", "importance")
#: Estimates computed beside estimation_record's: ATC with the negative entropy, LURE,
#: and the mean P(correct) of an :class:`~sklearn_crtcl.EnsembleCritic` trained on the
#: labeled set: ``ensemble`` (``--ensemble`` copies on all of it) and ``crossfit``
#: (``--crossfit-cv`` copies cross-fitted on its folds, temperature-scaled on the fold
#: each did not see); NaN when their option is 0.
#: ``temperature_pooled`` is ``"temperature"`` fitted on this cycle's batch and every
#: earlier cycle's, each with the probabilities of the model that queried it
#: (``held_out=``).
EXTRA = ("atc_entropy", "importance_lure", "ensemble", "crossfit", "temperature_pooled")
#: Not estimates but floors, fitted on labels no loop has: the temperature fitted on the
#: labeled test split (a random sample of the data, 1,000 Fashion-MNIST or 450 digits
#: images) and on the pool's own labels, each applied to the pool; what any temperature
#: fit from the loop's batches can at best reach.
ORACLES = ("oracle_test_temperature", "oracle_pool_temperature")
ESTIMATORS = METHODS + EXTRA + ORACLES
PRICES = (0.1, 1.0, 10.0)


#: The runner's criteria (the same defaults).
_criteria = run_criteria
CRITERIA = RUN_CRITERIA
#: ``held_out_coverage``: the share of the pool whose confidence (maximum probability) is
#: at most the highest confidence of a held-out row of ``temperature_pooled`` (this
#: cycle's batch and the earlier ones, each under the model that queried it): the part of
#: the pool whose confidence range the labeled held-out rows span.
COLUMNS = (("dataset", "trial", "cycle", "n_labeled", "accuracy", "n_test", "pool_accuracy",
            "held_out_coverage")
           + tuple(f"est_{m}{s}" for m in ESTIMATORS for s in ("", "_low", "_high"))
           + tuple(f"{p}_{c}" for c in CRITERIA for p in ("stat", "stop")))


def _load(name, n_train, n_test):
    if name == "digits":
        return load_digits_images(random_state=0)
    return load_fashion_mnist(n_train=n_train, n_test=n_test, random_state=0)


def run_trial(dataset, data, trial, args, emit):
    """One active-learning run; ``emit(record)`` after each cycle."""
    X_train, X_test, y_train, y_test = data
    rng = np.random.RandomState(1000 + trial)
    labeled = rng.choice(len(X_train), args.initial, replace=False)
    pool = np.setdiff1d(np.arange(len(X_train)), labeled)
    stop_set = X_train[rng.choice(pool, min(args.stop_set, len(pool)), replace=False)]
    criteria = _criteria(stop_set)
    net = ResNetClassifier(module__width=args.width, max_epochs=args.epochs, batch_size=32,
                           classes=np.unique(y_train), random_state=trial, device="cpu")
    from modAL.models import ActiveLearner

    learner = ActiveLearner(estimator=net, query_strategy=entropy_sampling,
                            X_training=X_train[labeled], y_training=y_train[labeled])
    held = []  # (probabilities of the cycle's model, labels) of each queried batch
    for cycle in range(args.cycles):
        X_pool = X_train[pool]
        n_query = min(args.query, len(pool))
        idx, q = _query(learner, X_pool, n_query, args, seed=1000 * trial + cycle)
        batch = dict(X_labeled=X_pool[idx], y_labeled=y_train[pool[idx]])
        methods = METHODS if q is not None else tuple(m for m in METHODS if m != "importance")
        record = estimation_record(learner, X_pool, X_test, y_test, methods=methods,
                                   criteria=criteria, q=q, y_pool=y_train[pool], **batch)
        extra = {"atc_entropy": estimate_accuracy(learner, X_pool, "atc",
                                                  score="negative_entropy", **batch),
                 "temperature_pooled": estimate_accuracy(learner, X_pool, "temperature",
                                                         held_out=held, **batch)}
        if q is not None:
            extra["importance_lure"] = estimate_accuracy(learner, X_pool, "importance", q=q,
                                                         estimator="lure", **batch)
        labels = dict(X_labeled=X_train[labeled], y_labeled=y_train[labeled],
                      seed=1000 * trial + cycle)
        extra["ensemble"] = _ensemble_estimate(learner.estimator, X_pool, args.ensemble,
                                               **labels)
        extra["crossfit"] = _ensemble_estimate(learner.estimator, X_pool, args.crossfit_cv,
                                               cv=True, **labels)
        extra["oracle_test_temperature"] = estimate_accuracy(
            learner, X_pool, "temperature", X_labeled=X_test, y_labeled=y_test)
        extra["oracle_pool_temperature"] = estimate_accuracy(
            learner, X_pool, "temperature", X_labeled=X_pool, y_labeled=y_train[pool])
        batch_held = (learner.predict_proba(batch["X_labeled"]), batch["y_labeled"])
        record["held_out_coverage"] = _coverage(learner.predict_proba(X_pool),
                                                held + [batch_held])
        for name, e in extra.items():
            record.update({f"est_{name}": e.estimate, f"est_{name}_low": e.low,
                           f"est_{name}_high": e.high})
        record.update(dataset=dataset, trial=trial, cycle=cycle, n_labeled=len(labeled))
        emit({**{c: math.nan for c in COLUMNS}, **record})
        held.append(batch_held)
        chosen = pool[idx]
        learner.teach(X_train[chosen], y_train[chosen])
        labeled, pool = np.r_[labeled, chosen], np.setdiff1d(pool, chosen)


def _coverage(proba_pool, held_out):
    """Share of the pool rows whose maximum probability is at most the largest one of
    the held-out rows (``(proba, y)`` pairs)."""
    top = max(float(np.max(p)) for p, _ in held_out)
    return float(np.mean(np.max(proba_pool, axis=1) <= top))


def _query(learner, X_pool, n_query, args, seed):
    """The cycle's batch (positions in ``X_pool``, in draw order) and its per-draw
    probabilities (None for top-k, which has none): entropy sampling with
    ``args.selection``, or a uniform draw for ``"uniform"``."""
    if args.selection == "uniform":
        idx = np.random.RandomState(seed).choice(len(X_pool), n_query, replace=False)
        return idx, 1.0 / (len(X_pool) - np.arange(n_query, dtype=np.float64))
    if args.selection == "topk":
        idx, _ = learner.query(X_pool, n_instances=n_query, selection="topk")
        return np.asarray(idx), None
    # the whole pool is scored (no subset_size): the proposal is over X_pool
    idx, _, proposal = learner.query(X_pool, n_instances=n_query, selection=args.selection,
                                     beta=args.beta, random_state=seed, return_proposal=True)
    return np.asarray(idx), proposal.q


def _ensemble_estimate(net, X_pool, n_copies, X_labeled, y_labeled, seed, cv=False):
    """``method="critic"`` with an EnsembleCritic of ``n_copies`` copies trained on the
    labeled set: on all of it, or (``cv=True``) cross-fitted on ``n_copies`` folds and
    temperature-scaled (fewer folds if a class has fewer images); NaN for ``n_copies=0``
    or fewer than 2 folds."""
    from sklearn.frozen import FrozenEstimator

    from sklearn_crtcl import EnsembleCritic
    from sklearn_crtcl.estimation import AccuracyEstimate
    params = {}
    if cv:
        n_copies = min(n_copies, int(np.unique(y_labeled, return_counts=True)[1].min()))
        params = dict(cv=n_copies, calibration="temperature")
        if n_copies < 2:
            n_copies = 0
    if n_copies == 0:
        nan = float("nan")
        return AccuracyEstimate(nan, nan, nan, "critic")
    critic = EnsembleCritic(FrozenEstimator(net), n_copies=n_copies, random_state=seed,
                            **params).fit(X_labeled, y_labeled)
    return estimate_accuracy(net, X_pool, "critic", critic=critic)


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        rec = {}
        for k, v in row.items():
            if k == "dataset":
                rec[k] = v
            elif k in ("trial", "cycle", "n_labeled", "n_test"):
                rec[k] = int(v)
            elif k.startswith("stop_"):
                rec[k] = v == "True"
            else:
                rec[k] = float(v)
        # a run of a release before a column: NaN there
        out.append({**{c: math.nan for c in COLUMNS if c.startswith("est_")
                       or c == "held_out_coverage"}, **rec})
    return out


def _fmt(x, digits=3):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def summarize(records, cycles):
    """The Markdown tables of ``summary.md``."""
    lines = []
    for dataset in sorted({r["dataset"] for r in records}):
        rows = [r for r in records if r["dataset"] == dataset]
        trials = sorted({r["trial"] for r in rows})
        lines += [f"## {dataset} ({len(trials)} trials, {len(rows)} cycles)", "",
                  "Estimators against the true pool accuracy (all cycles of all trials):", "",
                  "| estimator | mean abs. error | mean error | interval coverage |",
                  "|---|---:|---:|---:|"]
        for m in ESTIMATORS:
            err = np.array([r[f"est_{m}"] - r["pool_accuracy"] for r in rows])
            low = np.array([r[f"est_{m}_low"] for r in rows])
            high = np.array([r[f"est_{m}_high"] for r in rows])
            truth = np.array([r["pool_accuracy"] for r in rows])
            cov = (float(np.mean((low <= truth) & (truth <= high)))
                   if np.isfinite(low).all() else float("nan"))
            if np.isnan(err).all():  # not computed in this run (an option left at 0)
                lines.append(f"| {m} | — | — | — |")
                continue
            lines.append(f"| {m} | {_fmt(np.nanmean(np.abs(err)))} | {_fmt(np.nanmean(err))} "
                         f"| {_fmt(cov, 2)} |")
        cov = np.array([r["held_out_coverage"] for r in rows])
        if np.isfinite(cov).all():
            lines += ["", f"Held-out coverage (share of the pool within the confidence range of "
                      f"the labeled held-out rows), mean over cycles: {_fmt(np.mean(cov), 2)}"]
        lines += ["", "Stopping criteria (means over trials; cost = labels + price x test "
                  "errors, Pullar-Strecker et al. 2022):", "",
                  "| criterion | price | stop cycle | fired | cost | best cycle | best cost "
                  "| regret |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        summaries = [stopping_summary(sorted([r for r in rows if r["trial"] == t],
                                             key=lambda r: r["cycle"]),
                                      criteria=CRITERIA, prices=PRICES) for t in trials]
        for i, first in enumerate(summaries[0]):
            same = [s[i] for s in summaries]
            mean = {k: float(np.mean([s[k] for s in same]))
                    for k in ("stop_cycle", "stopped", "cost", "best_cycle", "best_cost",
                              "regret")}
            lines.append(f"| {first['criterion']} | {first['price']:g} | "
                         f"{mean['stop_cycle']:.1f} | {mean['stopped']:.2f} | "
                         f"{mean['cost']:.0f} | {mean['best_cycle']:.1f} | "
                         f"{mean['best_cost']:.0f} | {mean['regret']:.0f} |")
        lines.append("")
    return "\n".join(lines)


#: The estimators of :func:`table`, in its column order.
TABLE_ESTIMATORS = ("confidence", "temperature", "temperature_pooled", "atc", "doc",
                    "importance") + ORACLES


def table(outs):
    """An RST table of several runs' estimators: per run (``--out`` directory; a row
    per data set in it), the number of records (cycles times trials) and the mean
    absolute error / bias against the pool accuracy over them, in accuracy points
    ("-": not estimated), and the mean ``held_out_coverage`` in percent."""
    head = ["data", "run", "records"] + list(TABLE_ESTIMATORS) + ["coverage"]
    rows = []
    for out in outs:
        records = _read(Path(out) / "results.csv")
        for dataset in sorted({r["dataset"] for r in records}):
            recs = [r for r in records if r["dataset"] == dataset]
            cells = [dataset, Path(out).name, str(len(recs))]
            for m in TABLE_ESTIMATORS:
                err = np.array([r[f"est_{m}"] - r["pool_accuracy"] for r in recs])
                err = err[np.isfinite(err)]
                cells.append(f"{100 * np.mean(np.abs(err)):.1f} / {100 * np.mean(err):+.1f}"
                             if len(err) else "-")
            cov = np.array([r["held_out_coverage"] for r in recs])
            cells.append(f"{100 * np.mean(cov):.0f}" if np.isfinite(cov).all() else "-")
            rows.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    rule = " ".join("=" * w for w in widths)
    line = lambda cells: " ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa
    return "\n".join([rule, line(head), rule] + [line(r) for r in rows] + [rule])


def main(argv=None):
    """Run the benchmark and write its files.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_estimation")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"],
                        choices=["digits", "fashion_mnist"])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--trial-ids", type=int, nargs="+",
                        help="run these trials instead of 0 .. --trials - 1 (e.g. one per "
                             "process, each with its own --out)")
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--initial", type=int, default=100)
    parser.add_argument("--query", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=3000, help="Fashion-MNIST pool size")
    parser.add_argument("--n-test", type=int, default=1000, help="Fashion-MNIST test size")
    parser.add_argument("--stop-set", type=int, default=300)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--selection", default=DEFAULT_SELECTION,
                        choices=STOCHASTIC_SELECTIONS + ("topk", "uniform"),
                        help="batch selection of entropy sampling: a stochastic one (its "
                             "per-draw probabilities weight the importance estimates), "
                             "'topk' (no importance estimate) or 'uniform' (random "
                             "sampling)")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="coldness of the selection")
    parser.add_argument("--ensemble", type=int, default=0,
                        help="copies of the EnsembleCritic estimate, trained on all the "
                             "labels (0: not computed; it costs that many more fits per cycle)")
    parser.add_argument("--crossfit-cv", type=int, default=0,
                        help="folds (and copies) of the cross-fitted EnsembleCritic estimate "
                             "(0: not computed)")
    parser.add_argument("--table", nargs="+", metavar="OUT",
                        help="print the RST table of these runs' estimators (their --out "
                             "directories) and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if not (math.isfinite(args.beta) and args.beta > 0):
        parser.error(f"--beta must be a finite number > 0, got {args.beta}")
    if args.crossfit_cv < 0 or args.crossfit_cv == 1:
        parser.error(f"--crossfit-cv must be 0 (off) or at least 2, got {args.crossfit_cv}")
    if args.ensemble < 0:
        parser.error(f"--ensemble must be 0 (off) or more, got {args.ensemble}")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    records = _read(path) if args.resume and path.exists() else []
    done = {(d, t) for d, t in {(r["dataset"], r["trial"]) for r in records}
            if sum(r["dataset"] == d and r["trial"] == t for r in records) == args.cycles}
    records = [r for r in records if (r["dataset"], r["trial"]) in done]
    for dataset in args.datasets:
        data = _load(dataset, args.n_train, args.n_test)
        for trial in (args.trial_ids if args.trial_ids is not None else range(args.trials)):
            if (dataset, trial) in done:
                print(f"{dataset} trial {trial}: done, kept", flush=True)
                continue
            start = time.perf_counter()
            kept = list(records)

            def emit(record):
                kept.append(record)
                write_results_csv(kept, path, columns=COLUMNS)
                print(f"{dataset} trial {record['trial']} cycle {record['cycle']}: "
                      f"pool acc {record['pool_accuracy']:.3f}, importance "
                      f"{record['est_importance']:.3f}, ATC {record['est_atc']:.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)

            run_trial(dataset, data, trial, args, emit)
            records = kept
    header = [f"# Accuracy estimation and stopping ({len(records)} cycles)", "",
              f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip(),
              f"- torch: {torch.__version__}",
              f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
              f"- command: {' '.join([Path(sys.argv[0]).name] + list(argv or sys.argv[1:]))}",
              ""]
    _atomic_write_bytes(out / "summary.md",
                        ("\n".join(header) + "\n" + summarize(records, args.cycles)).encode())
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
