"""Command line of the benchmark runner.

Run ``python -m sklearn_crtcl.experiments --help`` or, once the package is
installed, ``sklearn-crtcl-experiment --help``.
"""

import argparse
import os
import sys
from pathlib import Path

from ..estimation import IMPORTANCE_INTERVALS
from ..query.selection import SELECTIONS
from .methods import METHOD_SPECS
from .runner import (PROTOCOLS, QUICK_PRESET, ExperimentConfig, _MissingDataError,
                     _NamedSettingsMixin, run_experiment)

__all__ = ["build_parser", "config_from_args", "main"]

PRESETS = {"quick": QUICK_PRESET}

# command-line flag -> ExperimentConfig field
_FIELDS = {
    "dataset": "dataset", "methods": "methods", "initial_size": "initial_size",
    "query_size": "query_size", "cycles": "n_cycles", "trials": "n_trials",
    "epochs": "max_epochs", "width": "width", "subset_size": "subset_size", "seed": "seed",
    "device": "device", "warm_start": "warm_start", "output_dir": "output_dir",
    "resume": "resume", "overwrite": "overwrite", "batch_size": "batch_size",
    "data_home": "data_home", "threads": "num_threads", "n_train": "n_train",
    "n_test": "n_test", "augment": "augment", "storage": "storage", "worker": "worker",
    "heartbeat_timeout": "heartbeat_timeout", "recover": "recover", "estimation": "estimation",
    "importance_interval": "importance_interval", "confidence_level": "confidence_level",
}

# ExperimentConfig field -> how error messages name it on the command line
_FLAGS = {field: "--" + flag.replace("_", "-") for flag, field in _FIELDS.items()}
_FLAGS.update(warm_start="--warm-start/--from-scratch", progress="--no-progress",
              estimation="--no-estimation")


def _error_message(exc):
    """The message of a runner error, naming the options by their flags."""
    if isinstance(exc, _NamedSettingsMixin):
        return exc.message(_FLAGS)
    return str(exc)


def _subset_size(text):
    if text.lower() in ("all", "none"):
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'all', got {text!r}") from None


def build_parser():
    """The argument parser of ``sklearn-crtcl-experiment``.

    Returns
    -------
    argparse.ArgumentParser
    """
    from ..datasets import DATASET_NAMES

    methods_help = "; ".join(f"{name}: {spec.description}" for name, spec in METHOD_SPECS.items())
    protocols = "; ".join(
        f"{name}: initial {p['initial_size']}, query {p['query_size']}, {p['n_cycles']} cycles, "
        f"{p['n_trials']} trials, {p['max_epochs']} epochs, width {p['width']}, "
        f"batch {p['batch_size']}"
        for name, p in PROTOCOLS.items())
    quick = " ".join(f"{k}={v}" for k, v in QUICK_PRESET.items())
    parser = argparse.ArgumentParser(
        prog="sklearn-crtcl-experiment",
        description=(
            "Deep active-learning benchmark of the CrtCl paper (Section IV): each method "
            "starts from the same random labeled set per trial, then queries --query-size "
            "samples per cycle and retrains; test accuracy, ECE and NLL are recorded per "
            "cycle. Writes results.csv, summary.md, accuracy.png and ece.png to "
            "--output-dir. Options left unset take the data set's protocol: " + protocols
            + "."),
        epilog=f"Quick start: %(prog)s --preset quick   ({quick})",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from named settings; other options override them")
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="data set (default: digits)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD",
                        help="methods to compare (default: the six methods without the "
                             "ablations and peers). " + methods_help + ". Any method that "
                             "queries by score also takes another batch selection as "
                             "METHOD:SELECTION, e.g. crtcl:softmax (selections: "
                             + ", ".join(SELECTIONS) + ")")
    parser.add_argument("--initial-size", type=int, help="size of the random initial labeled set")
    parser.add_argument("--query-size", type=int, help="samples labeled per cycle")
    parser.add_argument("--cycles", type=int, help="query cycles after the initial training")
    parser.add_argument("--trials", type=int, help="repetitions with seeds seed, seed+1, ...")
    parser.add_argument("--epochs", type=int, help="training epochs per cycle")
    parser.add_argument("--width", type=int, help="width of the ResNet-18 backbone (paper: 64)")
    parser.add_argument("--subset-size", type=_subset_size, metavar="N",
                        help="score only N random pool samples per query ('all': the whole "
                             "pool, the default)")
    parser.add_argument("--batch-size", type=int, help="training mini-batch size")
    parser.add_argument("--seed", type=int, help="base random seed (default: 0)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if "
                                         "available, else cpu); checked before anything runs")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--warm-start", action="store_true", default=None,
                       help="each cycle continues training the previous cycle's model, with "
                            "new optimizers and schedule, as the reference code (the default)")
    start.add_argument("--from-scratch", dest="warm_start", action="store_false",
                       help="retrain from a fresh initialisation each cycle")
    parser.add_argument("--augment", choices=("none", "flip", "crop", "flip+crop"),
                        help="augmentation of the training batches (default: the data set's "
                             "protocol: flips for CIFAR, SVHN and Fashion-MNIST, none for "
                             "digits)")
    parser.add_argument("--output-dir", help="where to write results (default: results)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: 1 on the CPU, where torch's own "
                             "choice of one thread per core is much slower when the cores are "
                             "shared: a small CriticLossNet fit took 236 s with 2 threads vs "
                             "8 s with 1 on 2 cores with one busy; on CUDA: torch's choice)")
    parser.add_argument("--data-home", help="directory of the data set files (not for digits)")
    parser.add_argument("--n-train", type=int, metavar="N",
                        help="use a stratified random subset of N training images as the pool "
                             "(not for digits; default: all)")
    parser.add_argument("--n-test", type=int, metavar="N",
                        help="use a stratified random subset of N test images (not for digits)")
    parser.add_argument("--storage", metavar="URL",
                        help="database of the run, as an SQLAlchemy URL (default: the SQLite "
                             "file runs.sqlite3 in --output-dir); e.g. "
                             "postgresql://user@host/database for workers on several machines "
                             "(they must share --output-dir, where the checkpoints are)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", default=None,
                       help="continue the run in the store (same options required; refused "
                            "while workers run it)")
    group.add_argument("--overwrite", action="store_true", default=None,
                       help="replace the run in the store (refused while workers run it)")
    group.add_argument("--worker", action="store_true", default=None,
                       help="join the run in the store, new, unfinished or live, as one more "
                            "worker: start the same command N times (one per GPU with "
                            "--device cuda:K, or on several machines with a shared --storage) "
                            "and each claims the next unfinished (method, trial)")
    group.add_argument("--export", action="store_true",
                       help="only rebuild results.csv, summary.md and the plots in "
                            "--output-dir from the store, and exit")
    parser.add_argument("--heartbeat-timeout", type=float, metavar="SECONDS",
                        help="a worker silent this long counts as dead and its unit is taken "
                             "over from its last committed cycle (default: 120)")
    parser.add_argument("--recover", action="store_true", default=None,
                        help="with --resume or --worker: recompute from their seeds the units "
                             "whose stored records contradict each other (otherwise such a "
                             "store is refused); the other units' records are kept")
    parser.add_argument("--no-estimation", dest="estimation", action="store_false",
                        default=None,
                        help="record the paper's columns only, without each cycle's accuracy "
                             "estimates on the pool and stopping verdicts (recorded by "
                             "default; see the docs' estimation page)")
    parser.add_argument("--importance-interval", choices=IMPORTANCE_INTERVALS,
                        help="the interval of the importance-weighted accuracy estimate "
                             "(default: korn-graubard-truncated)")
    parser.add_argument("--confidence-level", type=float, metavar="LEVEL",
                        help="the level of that interval, in (0, 1) (default: 0.9)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars or per-cycle lines (bars are shown when stderr "
                             "is a terminal and tqdm is installed; otherwise one line per "
                             "cycle)")
    return parser


def config_from_args(args):
    """Build the :class:`ExperimentConfig` of parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`build_parser`.

    Returns
    -------
    ExperimentConfig
    """
    settings = dict(PRESETS[args.preset]) if args.preset else {}
    for flag, name in _FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            settings[name] = value
    if settings.get("subset_size") == "all":
        settings["subset_size"] = None
    settings["progress"] = not args.no_progress
    return ExperimentConfig(**settings)


def main(argv=None):
    """Run the benchmark from the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for invalid options or missing data
        files (reported before anything is written) or a cycle whose training
        diverged (reported before that cycle is committed), 130 when
        interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export:
        from .runner import export_results
        out = args.output_dir or "results"
        try:
            records = export_results(out, storage=args.storage)
        except ValueError as exc:
            print(f"{parser.prog}: error: {_error_message(exc)}", file=sys.stderr)
            return 2
        print(f"Exported {len(records)} records to {Path(out) / 'results.csv'} and "
              f"{Path(out) / 'summary.md'}")
        return 0
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(_error_message(exc))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # started by torchrun with several processes: train and score data-parallel
        from ..distributed import init_distributed
        init_distributed()
    try:
        records = run_experiment(config)
    except (ValueError, _MissingDataError) as exc:
        print(f"{parser.prog}: error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted. Continue with the same options and --resume "
              f"(results so far are in {config.output_dir}).", file=sys.stderr)
        return 130
    from ..distributed import world
    from .report import summary_table
    from .runner import _interval, _title
    if world()[0] != 0:  # process 0 of a distributed job reports
        return 0
    out = Path(config.output_dir)
    expected = config.n_trials * len(config.methods) * (config.n_cycles + 1)
    if len(records) < expected:  # other workers still run units of the run
        print(f"This worker is done; other workers are finishing the run "
              f"({len(records)} of {expected} cycles committed so far, in "
              f"{out / 'results.csv'}). The last one writes summary.md and the plots.")
        return 0
    print()
    print(summary_table(records, title=_title(config), interval=_interval(config.to_dict())))
    print(f"Results (one row per method, trial, cycle): {out / 'results.csv'}")
    print(f"Summary table:                              {out / 'summary.md'}")
    plots = [out / "accuracy.png", out / "ece.png"]
    if all(p.exists() for p in plots):
        print(f"Plots (mean ± std against labeled size):    {plots[0]}, {plots[1]}")
    else:
        print("Plots skipped: matplotlib is not installed "
              "(pip install sklearn-crtcl[plot]).")
    return 0
