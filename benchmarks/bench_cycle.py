"""Per-cycle time of the experiment runner on CIFAR-sized synthetic data.

Writes ``--n-train`` random ``3x32x32`` uint8 images with random labels of 10
classes (and ``--n-test`` test images) as CIFAR-10 python batches
(``cifar-10-batches-py/data_batch_1..5``, ``test_batch``) in a temporary
folder, then runs :func:`sklearn_crtcl.experiments.run_experiment` on them
(``dataset="cifar10"``, ``data_home`` = that folder) for each method, one
trial, and reports, per method, the runner's own records: the time of the
initial training (cycle 0) and, over the query cycles, the median cycle time
split into query and training (the runner's ``train_time``: training on the
labeled set, the semi-supervised methods with the rest of the pool as
``X_unlabeled``, plus evaluation on the test split). The run's total time
also covers loading the data, checkpoints and the summary.

Usage::

    python benchmarks/bench_cycle.py [--device cpu] [--threads 1] [--n-train 50000]
        [--n-test 2000] [--width 4] [--epochs 2] [--initial-size 500] [--query-size 200]
        [--cycles 2] [--subset-size 10000] [--batch-size 128] [--methods m1,m2,...]
        [--out DIR]
"""

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_speed import NOT_MEASURED, fmt, machine_info, write_table  # noqa: E402

from sklearn_crtcl.experiments import METHODS, run_experiment  # noqa: E402
from sklearn_crtcl.experiments.methods import method_spec  # noqa: E402


def write_synthetic_cifar10(root, n_train, n_test, seed=0):
    """Write random images and labels in the CIFAR-10 python layout under ``root``.

    Five training batches share the ``n_train`` images; returns the folder.
    """
    rng = np.random.RandomState(seed)
    base = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(base, exist_ok=True)
    bounds = np.linspace(0, n_train, 6).astype(int)
    for i in range(5):
        n = int(bounds[i + 1] - bounds[i])
        batch = {"data": rng.randint(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
                 "labels": rng.randint(0, 10, size=n).tolist()}
        with open(os.path.join(base, f"data_batch_{i + 1}"), "wb") as fh:
            pickle.dump(batch, fh, protocol=4)
    test = {"data": rng.randint(0, 256, size=(n_test, 3 * 32 * 32), dtype=np.uint8),
            "labels": rng.randint(0, 10, size=n_test).tolist()}
    with open(os.path.join(base, "test_batch"), "wb") as fh:
        pickle.dump(test, fh, protocol=4)
    with open(os.path.join(base, "batches.meta"), "wb") as fh:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, fh, protocol=4)
    return base


def summarize(records, methods):
    """Per method: cycle-0 time and median query-cycle times from the runner's records."""
    rows = []
    for method in methods:
        recs = [r for r in records if r["method"] == method]
        first = [r for r in recs if r["cycle"] == 0]
        later = [r for r in recs if r["cycle"] > 0]
        row = {"method": method, "estimator": method_spec(method).estimator.split(":")[1],
               "strategy": method_spec(method).strategy.split(":")[1],
               "cycles": len(later),
               "initial_train_s": fmt(first[0]["train_time"], 1) if first else ""}
        if later:
            med = {k: statistics.median(r[k] for r in later)
                   for k in ("wall_time", "query_time", "train_time")}
            row.update(cycle_s=fmt(med["wall_time"], 1), query_s=fmt(med["query_time"], 1),
                       train_eval_s=fmt(med["train_time"], 1),
                       query_share=fmt(med["query_time"] / med["wall_time"], 2),
                       accuracy_last=fmt(later[-1]["accuracy"], 3))
        rows.append(row)
    return rows


def build_parser():
    """The command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (num_threads)")
    parser.add_argument("--n-train", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--n-test", type=int, default=2000, help="synthetic test images")
    parser.add_argument("--width", type=int, default=4, help="ResNet-18 width (64 = papers)")
    parser.add_argument("--epochs", type=int, default=2, help="max_epochs per cycle")
    parser.add_argument("--initial-size", type=int, default=500)
    parser.add_argument("--query-size", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=2, help="query cycles after cycle 0")
    parser.add_argument("--subset-size", type=int, default=10_000,
                        help="candidates scored per query (0: the whole pool)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--augment", default="flip", help="the CIFAR-10 protocol's default")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated runner methods")
    parser.add_argument("--workdir", default=None,
                        help="where the synthetic data and the run go (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--out", default=None, help="directory for the CSV and Markdown tables")
    return parser


def main(argv=None):
    """Write the data, run the runner, print (and with ``--out`` write) the table."""
    args = build_parser().parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_cycle_")
    try:
        info = machine_info(args.device)
        t0 = time.perf_counter()
        write_synthetic_cifar10(workdir, args.n_train, args.n_test)
        t_write = time.perf_counter() - t0
        print(f"wrote {args.n_train} + {args.n_test} synthetic images in {t_write:.1f} s",
              flush=True)
        t0 = time.perf_counter()
        records = run_experiment(
            dataset="cifar10", data_home=workdir, methods=tuple(methods),
            initial_size=args.initial_size, query_size=args.query_size,
            n_cycles=args.cycles, n_trials=1, max_epochs=args.epochs, width=args.width,
            batch_size=args.batch_size, subset_size=args.subset_size or None,
            augment=args.augment, device=args.device, num_threads=args.threads,
            output_dir=os.path.join(workdir, "run"), progress=False, seed=0)
        total = time.perf_counter() - t0
        rows = summarize(records, methods)
        cycles_sum = sum(r["wall_time"] for r in records)
        for row in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        print(f"run_experiment: {total:.0f} s in all, {cycles_sum:.0f} s in the cycles' "
              "records", flush=True)
        if not args.device.startswith("cuda"):
            rows.append({"method": "all", "estimator": "", "strategy": "", "cycles": "",
                         **{c: NOT_MEASURED for c in ("initial_train_s", "cycle_s", "query_s",
                                                      "train_eval_s", "query_share",
                                                      "accuracy_last")},
                         "note": "cuda: no GPU in this run"})
        columns = ["method", "estimator", "strategy", "cycles", "initial_train_s", "cycle_s",
                   "query_s", "train_eval_s", "query_share", "accuracy_last", "note"]
        settings = dict(info)
        settings.update({
            "torch threads": args.threads,
            "data": f"synthetic CIFAR-10 files: {args.n_train} training (the pool) and "
                    f"{args.n_test} test images, uniform random pixels and labels (10 classes); "
                    f"written in {t_write:.1f} s",
            "runner": f"run_experiment(dataset='cifar10', width={args.width}, "
                      f"max_epochs={args.epochs}, batch_size={args.batch_size}, "
                      f"initial_size={args.initial_size}, query_size={args.query_size}, "
                      f"n_cycles={args.cycles}, n_trials=1, subset_size="
                      f"{args.subset_size or None}, augment={args.augment!r}, "
                      "warm_start=True, seed=0)",
            "columns": "initial_train_s: cycle 0 (first fit + evaluation); cycle_s, query_s, "
                       "train_eval_s: medians over the query cycles of the runner's "
                       "wall_time, query_time and train_time (training + evaluation on the "
                       "test split); accuracy_last: test accuracy after the last cycle "
                       "(chance level: random labels)",
            "total": f"run_experiment took {total:.0f} s, {cycles_sum:.0f} s of it in the "
                     "cycles (the rest: loading and standardising the data, checkpoints, "
                     "summary and plots)",
            "command": "python benchmarks/bench_cycle.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
        })
        if args.out:
            for path in write_table(args.out, "cycle", "Runner: time per active-learning "
                                    "cycle on CIFAR-sized synthetic data", columns, rows,
                                    settings):
                print(f"wrote {path}", flush=True)
    finally:
        torch.set_num_threads(previous_threads)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
