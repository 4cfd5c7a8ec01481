"""The active-learning benchmark: configuration, the loop, checkpoints and resume.

One run is ``n_trials`` trials of ``n_cycles`` query cycles for each method.
Trial ``t`` draws one random initial labeled set (seeded by ``seed + t``)
shared by all methods. Every cycle trains through a modAL
:class:`~modAL.models.ActiveLearner` (the path users take), evaluates on the
test split and writes, atomically, the results and the state needed to
continue. Everything after a cycle depends only on ``(seed, trial, cycle)``,
the labeled indices and the saved estimator, so a run killed and resumed ends
with the same results as an uninterrupted one.
"""

import contextlib
import dataclasses
import json
import numbers
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..distributed import world
from ._progress import CycleProgress
from .methods import ALL_METHODS, METHODS, get_strategy, make_estimator, method_spec
from .report import (RESULT_COLUMNS, _atomic_write_bytes, _atomic_write_json, save_plots,
                     summary_table, write_results_csv)

__all__ = ["ExperimentConfig", "PROTOCOLS", "QUICK_PRESET", "run_experiment", "load_state"]

#: Defaults of the protocol per data set, used for the options left ``None``.
#: CIFAR-10, CIFAR-100 and SVHN follow Section IV of the CrtCl paper
#: (ResNet-18 of width 64, 200 epochs, batches of 128, 7 cycles, 3 trials,
#: random horizontal flips); the digits and Fashion-MNIST values are this
#: package's scaled-down choices (no augmentation for digits, whose 8x8
#: images flips and crops would distort; flips for Fashion-MNIST).
PROTOCOLS = {
    "cifar10": dict(initial_size=1200, query_size=200, n_cycles=7, n_trials=3,
                    max_epochs=200, width=64, batch_size=128, augment="flip"),
    "cifar100": dict(initial_size=1200, query_size=200, n_cycles=7, n_trials=3,
                     max_epochs=200, width=64, batch_size=128, augment="flip"),
    "svhn": dict(initial_size=500, query_size=500, n_cycles=7, n_trials=3,
                 max_epochs=200, width=64, batch_size=128, augment="flip"),
    "fashion_mnist": dict(initial_size=1000, query_size=500, n_cycles=7, n_trials=3,
                          max_epochs=100, width=32, batch_size=128, augment="flip"),
    "digits": dict(initial_size=100, query_size=50, n_cycles=7, n_trials=3,
                   max_epochs=50, width=16, batch_size=32, augment="none"),
}

#: The small settings of ``--preset quick``: all six methods on the digits in
#: a few minutes on two CPU cores (one torch thread: these networks are too
#: small to gain from more, and threads competing for busy cores slow torch
#: down a lot).
QUICK_PRESET = dict(dataset="digits", initial_size=100, query_size=50, n_cycles=3,
                    n_trials=2, max_epochs=15, width=8, batch_size=32, subset_size=500,
                    num_threads=1)

# fields that do not change results: they may differ when resuming
_RUN_ONLY_FIELDS = ("output_dir", "resume", "overwrite", "progress", "data_home")

_STATE_FORMAT = 2
_MAX_SEED = 2 ** 32 - 1  # numpy.random.RandomState(seed + trial)
_FIT, _QUERY = 0, 1


def _default_device():
    from ..nets.base import DEFAULT_DEVICE
    return DEFAULT_DEVICE


def _dataset_names():
    from ..datasets import DATASET_NAMES
    return tuple(DATASET_NAMES)


# ``{field}`` (or ``{field=True}``, a switch turned on) in an error message template
_PLACEHOLDER = re.compile(r"\{(\w+)(=True)?\}")


class _NamedSettingsMixin:
    """An error whose message names settings of :class:`ExperimentConfig`.

    The message is a template in which ``{field}`` stands for a field and
    ``{field=True}`` for a switched-on field (``resume=True``). ``str(error)``
    names the fields as the Python API does (``n_cycles``, ``resume=True``);
    :meth:`message` can name them otherwise, e.g. by their command-line flags
    (``--cycles``, ``--resume``).
    """

    def _render(self, template):
        self.template = template
        return self.message()

    def message(self, labels=None):
        """The message, with the fields named by ``labels`` where given.

        Parameters
        ----------
        labels : dict, optional
            ``field -> name`` to use; fields it lacks keep their own name.

        Returns
        -------
        str
        """
        fields = {f.name for f in dataclasses.fields(ExperimentConfig)}

        def name(match):
            field_name = match.group(1)
            if field_name not in fields:
                return match.group(0)
            if labels is not None and field_name in labels:
                return labels[field_name]
            return match.group(0)[1:-1]

        return _PLACEHOLDER.sub(name, self.template)


class _SettingError(_NamedSettingsMixin, ValueError):
    """A bad setting of the runner (a ``ValueError``), raised before any work."""

    def __init__(self, template):
        super().__init__(self._render(template))


class _MissingDataError(_NamedSettingsMixin, FileNotFoundError):
    """The data set's files are not where the runner looked (a ``FileNotFoundError``)."""

    def __init__(self, template):
        super().__init__(self._render(template))


def _check_int(value, name, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _SettingError(f"{{{name}}} must be an integer, got {value!r}")
    if value < minimum:
        raise _SettingError(f"{{{name}}} must be >= {minimum}, got {value}")
    return int(value)


def _check_device(device):
    """Refuse a device torch cannot parse or this machine does not have."""
    from .._checks import check_device
    if not isinstance(device, str):
        raise _SettingError(f"{{device}} must be a torch device name such as 'cpu', 'cuda' "
                            f"or 'cuda:1', got {device!r}")
    try:
        return check_device(device, name="{device}")
    except ValueError as exc:
        raise _SettingError(str(exc)) from None


@dataclass
class ExperimentConfig:
    """Settings of an active-learning benchmark run.

    Options left ``None`` take the value of :data:`PROTOCOLS` for the data
    set when the configuration is created. Every value is checked here, so
    a bad option fails with a ``ValueError`` (naming the field) before any
    data are loaded or files written: the device too, which must parse as a
    :class:`torch.device` and exist on this machine (a CUDA device needs
    ``torch.cuda.is_available()``).

    Parameters
    ----------
    dataset : str, default="digits"
        One of ``"digits"``, ``"fashion_mnist"``, ``"cifar10"``,
        ``"cifar100"``, ``"svhn"`` (see :func:`sklearn_crtcl.datasets.load_dataset`).
        The training split is the pool, the test split the evaluation set.
    methods : sequence of str, default=METHODS
        Methods to compare, among
        :data:`~sklearn_crtcl.experiments.ALL_METHODS`: by default the six of
        :data:`~sklearn_crtcl.experiments.METHODS`; the ablation methods of
        :data:`~sklearn_crtcl.experiments.ABLATIONS` on demand.
    initial_size : int, optional
        Size of the random initial labeled set (the paper's :math:`k`).
    query_size : int, optional
        Samples labeled per cycle (the paper's :math:`t`).
    n_cycles : int, optional
        Query cycles after the initial training; results are recorded at
        cycles ``0 .. n_cycles``.
    n_trials : int, optional
        Repetitions with different seeds (initial set, weights, queries).
    max_epochs : int, optional
        Training epochs per cycle.
    width : int, optional
        Width of the ResNet-18 backbone (64 in the paper).
    subset_size : int, optional
        Score only a random subset of this many pool samples per query
        (all of them when ``None``).
    seed : int, default=0
        Base seed; trial ``t`` uses ``seed + t``.
    device : str, default=DEFAULT_DEVICE
        Torch device (``"cuda"`` when available, else ``"cpu"``); checked
        when the configuration is created.
    warm_start : bool, default=True
        Each cycle continues training the previous cycle's model (with new
        optimizers and a restarted learning-rate schedule), as the LL4AL and
        TOD reference code do; ``False`` retrains from a fresh initialisation
        each cycle.
    augment : str, optional
        Augmentation of the training batches: ``"none"``, ``"flip"``,
        ``"crop"`` or ``"flip+crop"`` (see
        :class:`~sklearn_crtcl.ResNetClassifier`); by default the data set's
        protocol.
    output_dir : str or path, default="results"
        Where results, state, summary and plots are written.
    resume : bool, default=False
        Continue the run saved in ``output_dir``.
    overwrite : bool, default=False
        Replace a run already saved in ``output_dir``.
    batch_size : int, optional
        Mini-batch size for training (128 in the paper).
    progress : bool, default=True
        Show progress bars (tqdm if installed, else one line per cycle).
    data_home : str or path, optional
        Where the data set files are (not used for digits).
    n_train : int, optional
        Use a stratified random subset of this many training images as the
        pool (all when ``None``; not for digits, which is small).
    n_test : int, optional
        Likewise for the test split.
    num_threads : int, optional
        CPU threads of torch during the run (``torch.set_num_threads``; the
        process's previous count is restored when :func:`run_experiment`
        returns or raises). ``None`` means one thread when ``device`` is the
        CPU (the field is set to 1) and torch's own choice on CUDA (the field
        stays ``None``). One thread is the CPU default because torch's
        default, one thread per core, loses badly when the cores are shared:
        on a 2-core machine with one core busy, a small
        :class:`~sklearn_crtcl.CriticLossNet` fit took 236 s with torch's 2
        threads against 8 s with one. Give more threads for larger networks
        on an idle machine. The thread count can change the last bits of CPU
        results, so it is part of the settings a resumed run must repeat.
    """

    dataset: str = "digits"
    methods: tuple = METHODS
    initial_size: int = None
    query_size: int = None
    n_cycles: int = None
    n_trials: int = None
    max_epochs: int = None
    width: int = None
    subset_size: int = None
    seed: int = 0
    device: str = field(default_factory=_default_device)
    warm_start: bool = True
    augment: str = None
    output_dir: str = "results"
    resume: bool = False
    overwrite: bool = False
    batch_size: int = None
    progress: bool = True
    data_home: str = None
    num_threads: int = None
    n_train: int = None
    n_test: int = None

    def __post_init__(self):
        names = _dataset_names()
        if not isinstance(self.dataset, str) or self.dataset not in names:
            raise _SettingError(f"unknown {{dataset}} {self.dataset!r}; valid datasets: "
                                + ", ".join(names))
        methods = (self.methods,) if isinstance(self.methods, str) else self.methods
        try:
            methods = tuple(methods)
        except TypeError:
            raise _SettingError(f"{{methods}} must be a sequence of method names, "
                                f"got {self.methods!r}") from None
        if not methods:
            raise _SettingError("{methods} is empty; valid methods: " + ", ".join(ALL_METHODS))
        for m in methods:
            try:
                method_spec(m)
            except ValueError as exc:
                raise _SettingError(f"{{methods}}: {exc}") from None
        if len(set(methods)) != len(methods):
            raise _SettingError(f"{{methods}} has repeated names: {list(methods)}")
        self.methods = methods
        for key, value in PROTOCOLS[self.dataset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        from ..augment import AUGMENTATIONS
        augmentations = ("none",) + tuple(AUGMENTATIONS)
        if not isinstance(self.augment, str) or self.augment not in augmentations:
            raise _SettingError(f"{{augment}} must be one of {augmentations}, "
                                f"got {self.augment!r}")
        self.initial_size = _check_int(self.initial_size, "initial_size", 2)
        self.query_size = _check_int(self.query_size, "query_size", 1)
        self.n_cycles = _check_int(self.n_cycles, "n_cycles", 0)
        self.n_trials = _check_int(self.n_trials, "n_trials", 1)
        self.max_epochs = _check_int(self.max_epochs, "max_epochs", 1)
        self.width = _check_int(self.width, "width", 1)
        self.batch_size = _check_int(self.batch_size, "batch_size", 2)
        self.seed = _check_int(self.seed, "seed", 0)
        self.subset_size = _check_int(self.subset_size, "subset_size", 1, allow_none=True)
        self.num_threads = _check_int(self.num_threads, "num_threads", 1, allow_none=True)
        self.n_train = _check_int(self.n_train, "n_train", 2, allow_none=True)
        self.n_test = _check_int(self.n_test, "n_test", 1, allow_none=True)
        if self.seed + self.n_trials - 1 > _MAX_SEED:
            raise _SettingError(f"{{seed}} + {{n_trials}} - 1 = {self.seed} + {self.n_trials} "
                                f"- 1 exceeds {_MAX_SEED}: trial t is seeded with seed + t, "
                                "and NumPy seeds are below 2**32")
        if self.dataset == "digits" and (self.n_train is not None or self.n_test is not None):
            raise _SettingError("{n_train} and {n_test} subsample the larger data sets; digits "
                                "is used whole (leave them unset)")
        if self.subset_size is not None and self.subset_size < self.query_size:
            raise _SettingError(f"{{subset_size}} ({self.subset_size}) must be at least "
                                f"{{query_size}} ({self.query_size}): each query picks "
                                "{query_size} samples from the candidate subset")
        for key in ("warm_start", "resume", "overwrite", "progress"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise _SettingError(f"{{{key}}} must be True or False, "
                                    f"got {getattr(self, key)!r}")
            setattr(self, key, bool(getattr(self, key)))
        if self.resume and self.overwrite:
            raise _SettingError("{resume} and {overwrite} exclude each other: {resume} "
                                "continues the run in {output_dir}, {overwrite} replaces it")
        self.device = _check_device(self.device)
        if self.num_threads is None and self.device.startswith("cpu"):
            self.num_threads = 1
        if not isinstance(self.output_dir, (str, os.PathLike)) or not str(self.output_dir):
            raise _SettingError(f"{{output_dir}} must be a path, got {self.output_dir!r}")
        if self.data_home is not None and not isinstance(self.data_home, (str, os.PathLike)):
            raise _SettingError(f"{{data_home}} must be a path or None, got {self.data_home!r}")

    @property
    def n_labeled_final(self):
        """int: size of the labeled set after the last cycle."""
        return self.initial_size + self.n_cycles * self.query_size

    def to_dict(self):
        """The settings as a JSON-serialisable dict.

        Returns
        -------
        dict
        """
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        for key in ("output_dir", "data_home"):
            if d[key] is not None:
                d[key] = str(d[key])
        return d


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------


def _derived_seed(config, trial, cycle, purpose):
    """A 31-bit seed that depends only on (seed + trial, cycle, purpose)."""
    seq = np.random.SeedSequence([config.seed + trial, cycle, purpose])
    return int(seq.generate_state(1)[0] >> 1)


def _initial_indices(config, trial, n_pool):
    rng = np.random.RandomState(config.seed + trial)
    return rng.choice(n_pool, size=config.initial_size, replace=False).astype(np.int64)


# ---------------------------------------------------------------------------
# Output directory: atomic writes, state, resume
# ---------------------------------------------------------------------------


def load_state(output_dir):
    """Read the saved state of a run.

    Parameters
    ----------
    output_dir : str or path
        A run's output directory.

    Returns
    -------
    state : dict or None
        ``{"format", "config", "records", "runs"}``, where ``runs`` maps
        ``"method/trial"`` to ``{"cycle", "labeled", "done", "checkpoint"}``;
        ``None`` if the directory holds no run.
    """
    path = Path(output_dir) / "state.json"
    if not path.exists():
        return None
    with open(path) as f:
        state = json.load(f)
    if state.get("format") != _STATE_FORMAT:
        raise ValueError(f"{path} was written by an incompatible version of the runner "
                         f"(format {state.get('format')!r}, expected {_STATE_FORMAT})")
    return state


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in _RUN_ONLY_FIELDS}


_OUTPUT_FILES = ("state.json", "config.json", "results.csv", "summary.md", "accuracy.png",
                 "ece.png")


def _check_output(config):
    """Check ``output_dir`` without changing anything in it.

    Returns
    -------
    state : dict or None
        The saved state of the run to resume; ``None`` for a new run.
    """
    out = Path(config.output_dir)
    # the output directory, or its nearest existing parent, must be a writable directory
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == out else f"cannot be created: {existing} is a file"
        raise _SettingError(f"{{output_dir}} {out} {what}; choose a directory")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise _SettingError(f"{{output_dir}} {out} cannot be written: no write permission "
                            f"in {existing}")
    # a new run (overwrite or not) never reads the old state: it may be unreadable
    state = load_state(out) if config.resume and out.is_dir() else None
    if state is not None:
        saved, given = _comparable(state["config"]), _comparable(config.to_dict())
        diffs = [f"{{{k}}}: saved {saved.get(k)!r}, given {given.get(k)!r}"
                 for k in sorted(set(saved) | set(given)) if saved.get(k) != given.get(k)]
        if diffs:
            raise _SettingError(f"cannot resume the run in {out}: its configuration differs ("
                                + "; ".join(diffs) + "). Use the same options, or another "
                                "{output_dir} (or {overwrite=True} to start over)")
        for key, run in state["runs"].items():
            if not run["done"] and not (out / run["checkpoint"]).exists():
                raise _SettingError(f"cannot resume the run in {out}: the checkpoint "
                                    f"{run['checkpoint']} of the unfinished run {key!r} is "
                                    "missing; use {overwrite=True} to start over")
        return state
    existing = [name for name in _OUTPUT_FILES if (out / name).exists()]
    if existing and not config.overwrite:
        raise _SettingError(f"{out} already holds a run ({', '.join(existing)}); pass "
                            "{resume=True} to continue it, {overwrite=True} to replace it, "
                            "or choose another {output_dir}")
    return None


def _writes():
    """Whether this process writes the outputs: the only process, or process 0 of
    a distributed job (every process runs the same experiment)."""
    return world()[0] == 0


def _new_state(config):
    return {"format": _STATE_FORMAT, "config": config.to_dict(), "records": [], "runs": {}}


def _prepare_output(config, state):
    """Set up ``output_dir`` for the run checked by :func:`_check_output`."""
    out = Path(config.output_dir)
    if not _writes():  # process 0 of a distributed job prepares the directory
        return out, _new_state(config) if state is None else state
    ckpt = out / "checkpoints"
    if state is not None:
        # checkpoints written by a cycle that was killed before its commit
        referenced = {run["checkpoint"] for run in state["runs"].values() if not run["done"]}
        for p in ckpt.glob("*.pkl*") if ckpt.exists() else ():
            if f"checkpoints/{p.name}" not in referenced:
                p.unlink()
        return out, state
    if config.resume and config.progress:
        print(f"Nothing to resume in {out}: starting a new run.", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for p in ckpt.glob("*.pkl*") if ckpt.exists() else ():
        p.unlink()
    for name in _OUTPUT_FILES:
        if (out / name).exists():
            (out / name).unlink()
    state = _new_state(config)
    _atomic_write_json(out / "config.json", config.to_dict())
    _atomic_write_json(out / "state.json", state)
    return out, state


def _commit(out, state, key, run, estimator):
    """Save one finished cycle: checkpoint, results, then state (the commit point).
    Only the state in memory in the processes of a distributed job but process 0."""
    ckpt_dir = out / "checkpoints"
    previous = state["runs"].get(key, {}).get("checkpoint")
    if run["done"]:
        run["checkpoint"] = None
    else:
        name = f"{run['method']}-trial{run['trial']}-cycle{run['cycle']}.pkl"
        if _writes():
            ckpt_dir.mkdir(exist_ok=True)
            _atomic_write_bytes(ckpt_dir / name, pickle.dumps(estimator, protocol=4))
        run["checkpoint"] = f"checkpoints/{name}"
    state["runs"][key] = run
    if not _writes():
        return
    write_results_csv(state["records"], out / "results.csv")
    _atomic_write_json(out / "state.json", state)
    if previous and previous != run["checkpoint"]:
        try:
            (out / previous).unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


# where the files of the downloadable data sets come from: the loader of
# sklearn_crtcl.datasets (whose download=True fetches them with torchvision), the
# files under the data folder, and the archive to unpack there by hand
_DATA_SOURCES = {
    "cifar10": ("load_cifar10", "extract cifar-10-python.tar.gz from "
                "https://www.cs.toronto.edu/~kriz/cifar.html into that folder"),
    "cifar100": ("load_cifar100", "extract cifar-100-python.tar.gz from "
                 "https://www.cs.toronto.edu/~kriz/cifar.html into that folder"),
    "svhn": ("load_svhn", "put train_32x32.mat and test_32x32.mat from "
             "http://ufldl.stanford.edu/housenumbers/ in that folder"),
}


def _data_file_layout(dataset, data_home):
    """The folder and the files (relative to it) the loader of ``dataset`` reads."""
    from .. import datasets

    root = datasets._resolve_data_home(data_home)
    if dataset == "cifar10":
        base, train, test = datasets._cifar10_paths(root)
        return root, [os.path.relpath(f, root) for f in train + [test]]
    if dataset == "cifar100":
        return root, [os.path.join("cifar-100-python", name) for name in ("train", "test")]
    return root, ["train_32x32.mat", "test_32x32.mat"]


def _check_data_files(config):
    """Raise :class:`_MissingDataError` when the data set's files are not there.

    Looks where :func:`sklearn_crtcl.datasets.load_dataset` will look, without
    reading anything, so a missing file is reported before any work.
    """
    if config.dataset == "digits":
        return
    from .. import datasets

    data_home = config.data_home
    if config.dataset == "fashion_mnist":
        names = list(datasets._FASHION_FILES.values())
        report = []
        for directory in datasets._fashion_search_dirs(data_home):
            missing = [n for n in names if datasets._find_in_dir(directory, n) is None]
            if not missing:
                return
            report.append(f"{directory} (" + ("does not exist" if not os.path.isdir(directory)
                                                else "missing " + ", ".join(missing)) + ")")
        where = ("the system folder, used when {data_home} is not given"
                 if data_home is None else "{data_home} and its usual subfolders")
        raise _MissingDataError(
            "the fashion_mnist data files are missing: " + ", ".join(names)
            + f" (each plain or .gz) were looked for in {where}: " + "; ".join(report)
            + ". To get them: on Debian or Ubuntu, `apt-get install dataset-fashion-mnist` "
            f"puts them in {datasets.FASHION_MNIST_SYSTEM_DIR}, where they are found without "
            "{data_home}; or download them with torchvision, `python -c \"import torchvision; "
            "torchvision.datasets.FashionMNIST('DIR', download=True)\"`, and give DIR as "
            "{data_home} (the files land in DIR/FashionMNIST/raw).")
    root, files = _data_file_layout(config.dataset, data_home)
    missing = [f for f in files if not os.path.isfile(os.path.join(root, f))]
    if not missing:
        return
    loader, manual = _DATA_SOURCES[config.dataset]
    where = ("the default data folder, $SCIKIT_LEARN_DATA or ~/scikit_learn_data, as "
             "{data_home} is not given" if data_home is None else "{data_home}")
    if not os.path.isdir(root):
        where += "; the folder does not exist"
    elif len(missing) < len(files):
        where += f"; the other {len(files) - len(missing)} of the {len(files)} files are there"
    raise _MissingDataError(
        f"the {config.dataset} data files are missing: " + ", ".join(missing)
        + f" not found in {root} ({where})"
        + f". To get them, download them with `python -c \"from sklearn_crtcl.datasets "
        f"import {loader}; {loader}({root!r}, download=True)\"` (needs torchvision: pip "
        f"install sklearn-crtcl[vision]), or {manual}; then run again"
        + (" with the same {data_home}." if data_home is not None else
           ", or give the folder that holds them as {data_home}."))


def _load_data(config):
    from ..datasets import load_dataset
    kwargs = {}
    if config.dataset != "digits" and config.data_home is not None:
        kwargs["data_home"] = config.data_home
    for key in ("n_train", "n_test"):
        if getattr(config, key) is not None:
            kwargs[key] = getattr(config, key)
    try:
        X_train, X_test, y_train, y_test = load_dataset(config.dataset, **kwargs)
    except ValueError as exc:
        # "n_train=70000 is larger than the number of available samples (60000)."
        for key in ("n_train", "n_test"):
            if key in kwargs and str(exc).startswith(f"{key}="):
                raise _SettingError("{" + key + "}" + str(exc)[len(key):]) from None
        raise
    budget = (f"{{initial_size}} + {{n_cycles}} * {{query_size}} = {config.initial_size} + "
              f"{config.n_cycles} * {config.query_size} = {config.n_labeled_final}")
    pool = (f"the {config.dataset} training split has {len(X_train)} samples"
            + (" ({n_train})" if config.n_train is not None else ""))
    if config.n_labeled_final > len(X_train):
        raise _SettingError(f"{budget} exceeds the pool: {pool}")
    semi = [m for m in config.methods if method_spec(m).semi_supervised]
    if semi and len(X_train) - config.n_labeled_final < 2:
        raise _SettingError(
            f"{budget} leaves {len(X_train) - config.n_labeled_final} unlabeled sample(s) "
            f"after the last cycle ({pool}); the semi-supervised methods ({', '.join(semi)}) "
            "train on the unlabeled pool too and need at least 2 samples in it (batch "
            "normalisation)")
    return X_train, X_test, y_train, y_test


def _evaluate(learner, X_test, y_test):
    from ..metrics import expected_calibration_error, negative_log_likelihood
    proba = learner.predict_proba(X_test)
    classes = learner.estimator.classes_
    y_pred = classes[np.argmax(proba, axis=1)]
    return {
        "accuracy": float(np.mean(y_pred == y_test)),
        "ece": float(expected_calibration_error(y_test, proba, n_bins=15, labels=classes)),
        "nll": float(negative_log_likelihood(y_test, proba, labels=classes)),
    }


def _check_query(idx, pool, n_instances, method):
    """The queried rows: ``n_instances`` distinct rows of the training set, all in ``pool``."""
    idx = np.asarray(idx)
    if (idx.ndim != 1 or len(idx) != n_instances or not np.issubdtype(idx.dtype, np.integer)
            or len(np.unique(idx)) != n_instances or not np.isin(idx, pool).all()):
        raise RuntimeError(f"the query strategy of {method!r} returned {idx!r}; expected "
                           f"{n_instances} distinct rows of the pool ({len(pool)} rows)")
    return idx.astype(np.int64)


def _run_one(config, method, trial, data, classes, out, state):
    """All cycles of one (method, trial), continuing from the saved state if any."""
    from modAL.models import ActiveLearner

    from .. import _modal_compat  # noqa: F401  (modAL on recent scikit-learn)

    X_train, X_test, y_train, y_test = data
    spec = method_spec(method)
    strategy = get_strategy(method)
    key = f"{method}/{trial}"
    saved = state["runs"].get(key)
    n_pool = len(X_train)
    desc = f"{method} trial {trial + 1}/{config.n_trials}"
    show = config.progress and _writes()  # one progress display per job
    progress = CycleProgress(desc, config.n_cycles + 1,
                             initial=0 if saved is None else saved["cycle"] + 1,
                             enabled=show)

    def fit_kwargs(labeled):
        if not spec.semi_supervised:
            return {}
        # the training set and the rows of its pool: no copy of the pool per cycle
        return {"X_unlabeled": X_train,
                "unlabeled_indices": np.setdiff1d(np.arange(n_pool), labeled)}

    def finish_cycle(cycle, labeled, learner, t_start, t_query):
        if getattr(learner.estimator, "fit_interrupted_", False):
            # Ctrl-C during training: skorch's fit caught it and returned the net
            # half-trained; stop here, before anything of this cycle is evaluated
            # or committed (the command line then says how to resume)
            raise KeyboardInterrupt
        record = {"method": method, "trial": trial, "cycle": cycle,
                  "n_labeled": len(labeled)}
        record.update(_evaluate(learner, X_test, y_test))
        # the last epoch's training loss: shows whether the cycle's training converged
        record["train_loss"] = float(learner.estimator.history[-1, "train_loss"])
        now = time.perf_counter()
        record.update(wall_time=now - t_start, query_time=t_query,
                      train_time=now - t_start - t_query)  # training + evaluation
        record = {k: record[k] for k in RESULT_COLUMNS}
        state["records"].append(record)
        run = {"method": method, "trial": trial, "cycle": cycle,
               "labeled": [int(i) for i in labeled], "done": cycle == config.n_cycles}
        _commit(out, state, key, run, learner.estimator)
        progress.cycle_done(record)

    try:
        if saved is None:
            t_start = time.perf_counter()
            labeled = _initial_indices(config, trial, n_pool)
            net = make_estimator(method, classes=classes, width=config.width,
                                 max_epochs=config.max_epochs, batch_size=config.batch_size,
                                 device=config.device, warm_start=config.warm_start,
                                 random_state=_derived_seed(config, trial, 0, _FIT),
                                 augment=None if config.augment == "none" else config.augment,
                                 progress=show)
            learner = ActiveLearner(estimator=net, query_strategy=strategy,
                                    X_training=X_train[labeled], y_training=y_train[labeled],
                                    **fit_kwargs(labeled))
            finish_cycle(0, labeled, learner, t_start, 0.0)
            first = 1
        else:
            labeled = np.asarray(saved["labeled"], dtype=np.int64)
            with open(out / saved["checkpoint"], "rb") as f:
                net = pickle.load(f)
            net.set_params(callbacks__epoch_progress__enabled=show)
            learner = ActiveLearner(estimator=net, query_strategy=strategy)
            learner.X_training, learner.y_training = X_train[labeled], y_train[labeled]
            first = saved["cycle"] + 1

        for cycle in range(first, config.n_cycles + 1):
            t_start = time.perf_counter()
            pool = np.setdiff1d(np.arange(n_pool), labeled)
            # the pool as row indices of the training set: no copy of the pool per
            # cycle; the same query as on X_train[pool] (the strategies' pool_indices)
            idx, _ = learner.query(X_train, n_instances=config.query_size,
                                   random_state=_derived_seed(config, trial, cycle, _QUERY),
                                   subset_size=config.subset_size, pool_indices=pool)
            new = _check_query(idx, pool, config.query_size, method)
            t_query = time.perf_counter() - t_start
            labeled = np.concatenate([labeled, new])
            learner.estimator.set_params(random_state=_derived_seed(config, trial, cycle, _FIT))
            learner.teach(X_train[new], y_train[new], only_new=False, **fit_kwargs(labeled))
            finish_cycle(cycle, labeled, learner, t_start, t_query)
    finally:
        progress.close()


def _sorted_records(records, config):
    method_order = {m: i for i, m in enumerate(config.methods)}
    return sorted(records, key=lambda r: (method_order[r["method"]], r["trial"], r["cycle"]))


def run_experiment(config=None, **kwargs):
    """Run the active-learning benchmark of the CrtCl paper (Section IV).

    For each trial ``t`` a random initial labeled set is drawn from the
    training split (seeded by ``seed + t``, the same for every method); for
    each method an estimator is trained on it through a modAL
    :class:`~modAL.models.ActiveLearner` and evaluated on the test split
    (cycle 0); then each of the ``n_cycles`` cycles queries ``query_size``
    pool samples with the method's strategy, labels them from the known
    labels and retrains (``teach`` on the whole labeled set). After every
    cycle the results, the labeled indices and the estimator are saved
    atomically in ``output_dir``; with ``resume=True`` a killed run
    continues where it stopped and ends with the same results as an
    uninterrupted one (wall times aside). At the end, ``summary.md`` and the
    plots ``accuracy.png`` and ``ece.png`` (when matplotlib is installed)
    are written.

    Parameters
    ----------
    config : ExperimentConfig, optional
        The settings; built from ``kwargs`` when ``None``.
    **kwargs
        :class:`ExperimentConfig` fields, when ``config`` is ``None``.

    Returns
    -------
    records : list of dict
        One per (method, trial, cycle), sorted in that order, with the keys
        ``method, trial, cycle, n_labeled, accuracy, ece, nll, train_loss, wall_time,
        query_time, train_time`` (times in seconds; ``wall_time`` covers the
        query, training and evaluation of the cycle).

    Raises
    ------
    ValueError
        For invalid settings, a labeled-set size larger than the pool (or
        leaving fewer than 2 unlabeled samples for the semi-supervised
        methods), an ``output_dir`` that is not a writable directory, a
        non-empty ``output_dir`` without ``resume`` or ``overwrite``, or a
        ``resume`` whose settings differ from the saved run.
    FileNotFoundError
        When the data set's files are missing; the message says which files
        were looked for where, and how to get them.

    Notes
    -----
    All these errors are raised before any training and before anything is
    written or removed in ``output_dir``. The process's torch thread count
    is restored when the function returns or raises (see ``num_threads`` of
    :class:`ExperimentConfig`).
    """
    if config is None:
        config = ExperimentConfig(**kwargs)
    elif kwargs:
        raise TypeError("pass either an ExperimentConfig or keyword settings, not both")
    elif not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    # every check before any work: the settings (checked by ExperimentConfig), the data
    # files, the output directory, then the sizes against the loaded data
    _check_data_files(config)
    state = _check_output(config)
    data = _load_data(config)
    if world()[1] > 1:  # every process has read the saved state before process 0 writes
        import torch
        torch.distributed.barrier()
    out, state = _prepare_output(config, state)
    with _torch_threads(config.num_threads):
        _run_all(config, data, out, state)
    records = _sorted_records(state["records"], config)
    if not _writes():
        return records
    write_results_csv(records, out / "results.csv")
    _atomic_write_bytes(out / "summary.md",
                        summary_table(records, title=_title(config)).encode())
    save_plots(records, out, title=_title(config))
    return records


@contextlib.contextmanager
def _torch_threads(n):
    if n is None:
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_all(config, data, out, state):
    classes = np.unique(data[2])
    for trial in range(config.n_trials):
        for method in config.methods:
            saved = state["runs"].get(f"{method}/{trial}")
            if saved is not None and saved["done"]:
                continue
            if saved is not None:
                # drop rows of cycles after the committed one (none if state is consistent)
                state["records"] = [r for r in state["records"]
                                    if not (r["method"] == method and r["trial"] == trial
                                            and r["cycle"] > saved["cycle"])]
            _run_one(config, method, trial, data, classes, out, state)


def _title(config):
    return (f"{config.dataset}: initial {config.initial_size}, +{config.query_size} x "
            f"{config.n_cycles} cycles, {config.n_trials} trial(s)")

