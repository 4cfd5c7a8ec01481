"""Calibration benchmark: training criteria, CrtCl and temperature scaling side by side.

Each *method* trains one classifier on the same labeled images and is scored
on a held-out test split (accuracy, ECE, equal-mass ECE, NLL, Brier) and on
telling the test images from out-of-distribution images (AUROC of the
maximum softmax probability):

====================  ==========================================================
method                training
====================  ==========================================================
``ce``                cross-entropy (:class:`~sklearn_crtcl.ResNetClassifier`)
``ce+temperature``    the ``ce`` model, temperature-scaled on a held-out
                      calibration split with scikit-learn's
                      ``CalibratedClassifierCV(FrozenEstimator(net),
                      method="temperature")``
``label_smoothing``   cross-entropy with label smoothing 0.1 (torch)
``focal``             :class:`~sklearn_crtcl.criteria.FocalLoss` (gamma 2)
``iq_<divergence>``   :class:`~sklearn_crtcl.criteria.IQLoss` with each divergence
                      of :data:`~sklearn_crtcl.criteria.IQ_DIVERGENCES`
``crtcl``             :class:`~sklearn_crtcl.CriticLossNet` on the labeled images
``crtcl+unlabeled``   :class:`~sklearn_crtcl.CriticLossNet` with the unlabeled split
                      as ``X_unlabeled``
====================  ==========================================================

Every method sees the same labeled images and the same seed per trial.
In-distribution data: Fashion-MNIST (stratified random subsets of its
training split for the labeled, unlabeled and calibration sets, of its test
split for the test set). Out of distribution: scikit-learn's digits, scaled
to [0, 1], resized to 28x28 (bilinear) and standardised with the same
statistics as Fashion-MNIST. The run is resumable: each (method, trial)
result is committed to ``state.json`` when it is done.

Command line: ``python -m sklearn_crtcl.experiments.calibration --help``.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .report import _atomic_write_bytes, _atomic_write_json, write_results_csv
from .runner import _torch_threads

__all__ = ["CALIBRATION_METHODS", "CalibrationConfig", "run_calibration", "main"]


def _methods():
    from ..criteria import IQ_DIVERGENCES
    return (("ce", "ce+temperature", "label_smoothing", "focal")
            + tuple(f"iq_{d}" for d in IQ_DIVERGENCES) + ("crtcl", "crtcl+unlabeled"))


#: Names of the methods of the calibration benchmark, in table order.
CALIBRATION_METHODS = _methods()

_COLUMNS = ("method", "trial", "accuracy", "ece", "ece_equal_mass", "nll", "brier",
            "ood_auroc", "temperature", "fit_time")


@dataclass
class CalibrationConfig:
    """Settings of a calibration benchmark run.

    Parameters
    ----------
    methods : sequence of str, default=CALIBRATION_METHODS
        Methods to run (``ce+temperature`` needs ``ce``, whose model it
        calibrates).
    n_labeled : int, default=2000
        Labeled training images (stratified).
    n_unlabeled : int, default=5000
        Unlabeled images for ``crtcl+unlabeled``.
    n_calibration : int, default=1000
        Held-out labeled images for temperature scaling.
    n_test : int, default=2000
        Test images (stratified, from the test split).
    n_ood : int, default=1797
        Out-of-distribution images (scikit-learn's digits; at most 1797).
    n_trials : int, default=3
        Trials, seeded ``seed``, ``seed + 1``, ...: the subsets and the
        weights change with the trial.
    max_epochs : int, default=20
        Training epochs.
    width : int, default=8
        Width of the ResNet-18 backbone.
    batch_size : int, default=64
        Mini-batch size.
    augment : str, default="flip"
        Augmentation of the training batches (``"none"`` for none).
    seed : int, default=0
        Base seed.
    device : str, default="cpu"
        Torch device.
    num_threads : int or None, default=1
        CPU threads of torch during the run (restored afterwards).
    data_home : str or None, default=None
        Directory of the Fashion-MNIST files (see
        :func:`~sklearn_crtcl.datasets.load_fashion_mnist`).
    output_dir : str, default="results/calibration"
        Where ``results.csv``, ``summary.md``, ``reliability.png`` and the
        run's state are written.
    resume : bool, default=False
        Continue the run in ``output_dir`` (same settings required).
    overwrite : bool, default=False
        Replace the run in ``output_dir``.
    progress : bool, default=True
        Print one line per finished (method, trial).
    """

    methods: tuple = CALIBRATION_METHODS
    n_labeled: int = 2000
    n_unlabeled: int = 5000
    n_calibration: int = 1000
    n_test: int = 2000
    n_ood: int = 1797
    n_trials: int = 3
    max_epochs: int = 20
    width: int = 8
    batch_size: int = 64
    augment: str = "flip"
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    data_home: str = None
    output_dir: str = "results/calibration"
    resume: bool = False
    overwrite: bool = False
    progress: bool = field(default=True)

    def __post_init__(self):
        from .._checks import check_device, check_number
        methods = (self.methods,) if isinstance(self.methods, str) else tuple(self.methods)
        unknown = [m for m in methods if m not in CALIBRATION_METHODS]
        if not methods or unknown:
            raise ValueError(f"methods must be names among {', '.join(CALIBRATION_METHODS)}; "
                             f"got {list(methods)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods has repeated names: {list(methods)}")
        if "ce+temperature" in methods and "ce" not in methods:
            raise ValueError("ce+temperature calibrates the model of ce: add 'ce' to methods")
        self.methods = methods
        for name, low in (("n_labeled", 20), ("n_unlabeled", 2), ("n_calibration", 10),
                          ("n_test", 10), ("n_ood", 10), ("n_trials", 1), ("max_epochs", 1),
                          ("width", 1), ("batch_size", 2), ("seed", 0)):
            check_number(getattr(self, name), name, integer=True, min_val=low)
        check_number(self.n_ood, "n_ood", integer=True, max_val=1797)
        check_number(self.num_threads, "num_threads", integer=True, min_val=1, allow_none=True)
        if self.augment not in ("none", "flip", "crop", "flip+crop"):
            raise ValueError(f"augment must be 'none', 'flip', 'crop' or 'flip+crop', "
                             f"got {self.augment!r}")
        check_device(self.device)
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")

    def settings(self):
        """The settings a resumed run must repeat (all but paths and flags).

        Returns
        -------
        dict
            Field name to value, JSON-serialisable.
        """
        skip = {"output_dir", "resume", "overwrite", "progress", "data_home"}
        out = {k: v for k, v in asdict(self).items() if k not in skip}
        out["methods"] = list(self.methods)
        return out


# ---------------------------------------------------------------------------
# data


def _stratified(y, n, rng):
    from sklearn.model_selection import train_test_split
    if n >= len(y):
        return np.arange(len(y))
    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=rng)
    return np.sort(idx)


def _read_files(config):
    """The raw Fashion-MNIST splits and the digits (read once per run)."""
    import torch
    from sklearn.datasets import load_digits

    from ..datasets import _locate_fashion_files, _read_fashion_split

    files = _locate_fashion_files(config.data_home)
    X_tr, y_tr = _read_fashion_split(files["train_images"], files["train_labels"])
    X_te, y_te = _read_fashion_split(files["test_images"], files["test_labels"])
    digits = load_digits()
    X_ood = torch.nn.functional.interpolate(
        torch.from_numpy(digits.images[:config.n_ood, None].astype(np.float32) / 16),
        size=(28, 28), mode="bilinear", align_corners=False).numpy()
    return X_tr, y_tr, X_te, y_te, X_ood


def _load(config, trial, raw):
    """Labeled, unlabeled, calibration, test and OOD images of one trial."""
    X_tr, y_tr, X_te, y_te, X_ood = raw
    rng = np.random.RandomState(config.seed + trial)
    n_train = config.n_labeled + config.n_unlabeled + config.n_calibration
    pick = _stratified(y_tr, n_train, rng)
    perm = rng.permutation(pick)
    lab = perm[:config.n_labeled]
    unl = perm[config.n_labeled:config.n_labeled + config.n_unlabeled]
    cal = perm[config.n_labeled + config.n_unlabeled:]
    test = _stratified(y_te, config.n_test, rng)
    scale = lambda X: X.astype(np.float32) / np.float32(255)  # noqa: E731
    X_lab = scale(X_tr[lab])
    mean, std = float(X_lab.mean()), float(X_lab.std())
    standard = lambda X: (X - np.float32(mean)) / np.float32(std)  # noqa: E731
    return {"labeled": (standard(X_lab), y_tr[lab]),
            "unlabeled": standard(scale(X_tr[unl])),
            "calibration": (standard(scale(X_tr[cal])), y_tr[cal]),
            "test": (standard(scale(X_te[test])), y_te[test]),
            "ood": standard(X_ood)}


# ---------------------------------------------------------------------------
# methods


def _estimator(method, config, trial):
    import torch

    from .. import CriticLossNet, ResNetClassifier
    from ..criteria import FocalLoss, IQLoss

    common = dict(module__width=config.width, max_epochs=config.max_epochs,
                  batch_size=config.batch_size, device=config.device,
                  random_state=config.seed + trial,
                  augment=None if config.augment == "none" else config.augment)
    if method in ("crtcl", "crtcl+unlabeled"):
        return CriticLossNet(**common)
    if method == "label_smoothing":
        return ResNetClassifier(criterion=torch.nn.CrossEntropyLoss,
                                criterion__label_smoothing=0.1, **common)
    if method == "focal":
        return ResNetClassifier(criterion=FocalLoss, criterion__gamma=2.0, **common)
    if method.startswith("iq_"):
        return ResNetClassifier(criterion=IQLoss, criterion__divergence=method[3:], **common)
    return ResNetClassifier(**common)


def _scores(proba, y, proba_ood):
    from ..metrics import (brier_score, expected_calibration_error, negative_log_likelihood,
                           ood_auroc)
    return {"accuracy": float((proba.argmax(1) == y).mean()),
            "ece": expected_calibration_error(y, proba),
            "ece_equal_mass": expected_calibration_error(y, proba, strategy="quantile"),
            "nll": negative_log_likelihood(y, proba),
            "brier": brier_score(y, proba),
            "ood_auroc": ood_auroc(proba, proba_ood, score="msp")}


def _temperature_scaled(net, X_cal, y_cal):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    calibrated = CalibratedClassifierCV(FrozenEstimator(net), method="temperature")
    calibrated.fit(X_cal, y_cal)
    calibrator = calibrated.calibrated_classifiers_[0].calibrators[0]
    return calibrated, float(getattr(calibrator, "beta_", np.nan))


def _run_trial_method(method, config, trial, data):
    """Fit one method; return its records (``ce`` also gives ``ce+temperature``)."""
    X, y = data["labeled"]
    X_test, y_test = data["test"]
    start = time.perf_counter()
    net = _estimator(method, config, trial)
    if method == "crtcl+unlabeled":
        net.fit(X, y, X_unlabeled=data["unlabeled"])
    else:
        net.fit(X, y)
    fit_time = time.perf_counter() - start
    out = {method: dict(_scores(net.predict_proba(X_test), y_test,
                                net.predict_proba(data["ood"])),
                        temperature=1.0, fit_time=fit_time)}
    probas = {method: net.predict_proba(X_test)}
    if method == "ce" and "ce+temperature" in config.methods:
        calibrated, beta = _temperature_scaled(net, *data["calibration"])
        # scikit-learn's temperature calibrator stores the inverse temperature
        temperature = 1.0 / beta if beta and np.isfinite(beta) else np.nan
        p_test = calibrated.predict_proba(X_test)
        out["ce+temperature"] = dict(_scores(p_test, y_test,
                                             calibrated.predict_proba(data["ood"])),
                                     temperature=temperature, fit_time=fit_time)
        probas["ce+temperature"] = p_test
    records = [{"method": m, "trial": trial, **scores} for m, scores in out.items()]
    return records, probas


# ---------------------------------------------------------------------------
# run


def _summary(records, config):
    from .report import _mean_std  # one formatting of mean ± std for every table
    rows = ["| method | accuracy | ECE | equal-mass ECE | NLL | Brier | OOD AUROC | T |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method in config.methods:
        rec = [r for r in records if r["method"] == method]
        if not rec:
            continue
        cells = [_mean_std([r[k] for r in rec]) for k in
                 ("accuracy", "ece", "ece_equal_mass", "nll", "brier", "ood_auroc",
                  "temperature")]
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    n = len({r["trial"] for r in records})
    head = (f"# Calibration benchmark\n\nFashion-MNIST, {config.n_labeled} labeled images, "
            f"ResNet-18 width {config.width}, {config.max_epochs} epochs, "
            f"{config.n_test} test images; OOD: digits resized to 28x28. Mean ± std over "
            f"{n} trial(s).\n\n")
    return head + "\n".join(rows) + "\n"


def _reliability_figure(probas, y_test, path):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from ..plotting import reliability_diagram
    methods = list(probas)
    n_cols = min(4, len(methods))
    n_rows = -(-len(methods) // n_cols)
    fig = Figure(figsize=(3.2 * n_cols, 3.4 * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax, method in zip(axes, methods):
        reliability_diagram(y_test, probas[method], ax=ax, title=method)
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    fig.savefig(path, dpi=110)
    return path


def run_calibration(config=None, **kwargs):
    """Run (or resume) the calibration benchmark.

    Parameters
    ----------
    config : CalibrationConfig, optional
        Settings; or give them as keyword arguments.
    **kwargs
        :class:`CalibrationConfig` fields.

    Returns
    -------
    records : list of dict
        One record per (method, trial): ``method``, ``trial``, ``accuracy``,
        ``ece``, ``ece_equal_mass``, ``nll``, ``brier``, ``ood_auroc``,
        ``temperature`` (1 without temperature scaling) and ``fit_time``.
    """
    config = config if config is not None else CalibrationConfig(**kwargs)
    out = Path(config.output_dir)
    state_path = out / "state.json"
    state = None
    if state_path.exists():
        if config.resume:
            state = json.loads(state_path.read_text())
            if state["settings"] != json.loads(json.dumps(config.settings())):
                raise ValueError(f"cannot resume the run in {out}: its settings differ; use "
                                 "the same settings, another output_dir, or overwrite=True")
        elif not config.overwrite:
            raise ValueError(f"{out} already holds a run; pass resume=True to continue it or "
                             "overwrite=True to replace it")
    if state is None:
        state = {"settings": config.settings(), "records": [], "done": []}
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(state_path, state)
    fitted = [m for m in config.methods if m != "ce+temperature"]
    # trial 0's test probabilities, for the reliability diagrams (kept across resumes)
    probas_path = out / "probas_trial0.npz"
    probas = dict(np.load(probas_path)) if probas_path.exists() else {}
    y_test0 = probas.pop("y_test", None)
    raw = None
    with _torch_threads(config.num_threads):
        for trial in range(config.n_trials):
            data = None
            for method in fitted:
                key = f"{method}/{trial}"
                if key in state["done"]:
                    continue
                raw = raw or _read_files(config)
                data = data or _load(config, trial, raw)
                records, p = _run_trial_method(method, config, trial, data)
                if trial == 0:
                    probas.update(p)
                    y_test0 = data["test"][1]
                    np.savez(probas_path, y_test=y_test0, **probas)
                state["records"].extend(records)
                state["done"].append(key)
                _atomic_write_json(state_path, state)
                if config.progress:
                    for r in records:
                        print(f"[{r['method']} trial {trial + 1}/{config.n_trials}] "
                              f"accuracy={r['accuracy']:.4f} ece={r['ece']:.4f} "
                              f"nll={r['nll']:.4f} ood_auroc={r['ood_auroc']:.4f} "
                              f"({r['fit_time']:.1f} s)", flush=True)
    if probas:
        _reliability_figure({m: probas[m] for m in config.methods if m in probas}, y_test0,
                            out / "reliability.png")
    records = state["records"]
    write_results_csv(records, out / "results.csv", columns=_COLUMNS)
    _atomic_write_bytes(out / "summary.md", _summary(records, config).encode())
    return records


def main(argv=None):
    """Run the calibration benchmark from the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for invalid options or missing data.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_crtcl.experiments.calibration",
        description=__doc__.splitlines()[0] + " Writes results.csv, summary.md and "
                    "reliability.png to --output-dir.")
    flags = {f.name: f for f in fields(CalibrationConfig)}
    for name in ("n_labeled", "n_unlabeled", "n_calibration", "n_test", "n_ood", "n_trials",
                 "max_epochs", "width", "batch_size", "seed", "num_threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, dest=name,
                            help=f"(default: {flags[name].default})")
    for name in ("augment", "device", "data_home", "output_dir"):
        parser.add_argument("--" + name.replace("_", "-"), dest=name,
                            help=f"(default: {flags[name].default})")
    parser.add_argument("--methods", nargs="+", help="(default: all: "
                        + ", ".join(CALIBRATION_METHODS) + ")")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true")
    group.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    settings = {k: v for k, v in vars(args).items()
                if v is not None and k in flags and k not in ("resume", "overwrite")}
    settings.update(resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    try:
        config = CalibrationConfig(**settings)
        run_calibration(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print((Path(config.output_dir) / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
