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
import math
import numbers
import os
import re
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..distributed import world
from ._progress import CycleProgress
from .methods import ALL_METHODS, METHODS, get_strategy, make_estimator, method_spec
from .report import (RESULT_COLUMNS, _OLD_TMP_NAME, _TMP_NAME, _atomic_write_bytes,
                     _atomic_write_json, record_columns, save_plots, summary_table,
                     write_results_csv)
from .storage import LostClaimError, worker_alive

__all__ = ["ExperimentConfig", "PROTOCOLS", "QUICK_PRESET", "run_experiment", "load_state",
           "export_results"]

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
_RUN_ONLY_FIELDS = ("output_dir", "resume", "overwrite", "progress", "data_home", "storage",
                    "worker", "heartbeat_timeout", "recover")

_MAX_SEED = 2 ** 32 - 1  # numpy.random.RandomState(seed + trial)
_FIT, _QUERY, _STOP = 0, 1, 2


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


def _check_real(name, value, valid, what):
    """``value`` as a float: a real number (not a bool) for which ``valid`` holds."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not valid(float(value))):  # NaN fails every comparison
        raise _SettingError(f"{{{name}}} must be {what}, got {value!r}")
    return float(value)


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
        Replace a run already saved in the store (refused while workers of
        it are alive).
    storage : str, optional
        SQLAlchemy URL of the database that holds the run (see
        :doc:`/experiments`): ``None`` means the SQLite file
        ``runs.sqlite3`` in ``output_dir``; a PostgreSQL URL such as
        ``postgresql://user@host/database`` lets workers of several
        machines share one run. Checkpoints always go to
        ``output_dir/checkpoints``, which workers of one run must share.
    worker : bool, default=False
        Join the run in the store as one more worker, whether it is new,
        unfinished or being run by other workers: each worker claims the next
        (method, trial) unit nobody holds, so any number of them share the
        work, and their records equal a single process's. Excludes
        ``resume`` and ``overwrite``.
    heartbeat_timeout : float, default=120.0
        Seconds after a worker's last heartbeat (sent every quarter of
        this) at which its unit counts as abandoned: another worker, or a
        ``resume``, takes it over from its last committed cycle.
    recover : bool, default=False
        With ``resume`` or ``worker``: recompute from their seeds the units
        whose stored records contradict each other (otherwise such a store
        is refused); every other unit's records are kept.
    estimation : bool, default=True
        Record, every cycle, the label-free accuracy estimates of the
        cycle's model on the unlabeled pool, the estimates from the batch it
        queries (labeled, but not yet trained on), the true pool accuracy
        and each stopping criterion's statistic and verdict (the columns
        :data:`~sklearn_crtcl.experiments.estimates.ESTIMATE_COLUMNS`, see
        :doc:`/estimation`); the summary then reports each estimator's error
        and where each criterion would have stopped, at what cost. The
        estimates from the batch that cycle ``c``'s model queries are added
        to cycle ``c``'s committed record once the query is made (the same
        query, with the same seed, as without estimation: the paper's
        columns do not change). ``False`` records the paper's columns only.
    importance_interval : str, default="korn-graubard-truncated"
        The interval of the importance-weighted estimate,
        ``"korn-graubard-truncated"``, ``"korn-graubard"`` or ``"normal"``
        (:data:`~sklearn_crtcl.estimation.IMPORTANCE_INTERVALS`).
    confidence_level : float, default=0.9
        The level of the importance-weighted estimate's interval, in (0, 1).
        (A store of the release before these two options recorded the
        ``"normal"`` interval at 0.95.)
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
    storage: str = None
    worker: bool = False
    heartbeat_timeout: float = 120.0
    recover: bool = False
    estimation: bool = True
    importance_interval: str = "korn-graubard-truncated"
    confidence_level: float = 0.9

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
        for key in ("warm_start", "resume", "overwrite", "progress", "worker", "recover",
                    "estimation"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise _SettingError(f"{{{key}}} must be True or False, "
                                    f"got {getattr(self, key)!r}")
            setattr(self, key, bool(getattr(self, key)))
        if self.resume and self.overwrite:
            raise _SettingError("{resume} and {overwrite} exclude each other: {resume} "
                                "continues the run in {output_dir}, {overwrite} replaces it")
        if self.worker and (self.resume or self.overwrite):
            raise _SettingError("{worker=True} joins the run as it is in the store; it "
                                "excludes {resume} and {overwrite}")
        if self.recover and not (self.resume or self.worker):
            raise _SettingError("{recover=True} repairs a stored run while continuing it: "
                                "pass it with {resume=True} or {worker=True}")
        from ..estimation import IMPORTANCE_INTERVALS
        if (not isinstance(self.importance_interval, str)
                or self.importance_interval not in IMPORTANCE_INTERVALS):
            raise _SettingError(f"{{importance_interval}} must be one of "
                                f"{IMPORTANCE_INTERVALS}, got {self.importance_interval!r}")
        self.confidence_level = _check_real("confidence_level", self.confidence_level,
                                            lambda v: 0 < v < 1, "a number in (0, 1)")
        self.heartbeat_timeout = _check_real(
            "heartbeat_timeout", self.heartbeat_timeout,
            lambda v: np.isfinite(v) and v > 0, "a positive number of seconds")
        if self.storage is not None and (not isinstance(self.storage, str)
                                         or not self.storage):
            raise _SettingError(f"{{storage}} must be a database URL or None, "
                                f"got {self.storage!r}")
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
# Output directory and store: checks, consistency, creation
# ---------------------------------------------------------------------------


def load_state(output_dir, storage=None):
    """Read what the store of a run holds.

    Parameters
    ----------
    output_dir : str or path
        A run's output directory.
    storage : str, optional
        The run's store URL (default: the SQLite file in ``output_dir``).

    Returns
    -------
    state : dict or None
        ``{"config", "records", "runs"}``, where ``records`` are the
        committed records in the order of the run and ``runs`` maps
        ``"method/trial"`` to ``{"cycle", "labeled", "done", "checkpoint",
        "checkpoint_sha256", "worker", "heartbeat"}``; ``None`` if the store
        holds no run.

    Raises
    ------
    ValueError
        If the store is damaged, foreign or from a newer release (the
        message names it).
    """
    store = _open_store(storage, output_dir)
    try:
        status = store.status()
        if status is None:
            return None
        config = status["config"]
        runs = {f"{u['method']}/{u['trial']}": {k: u[k] for k in (
            "cycle", "labeled", "done", "checkpoint", "checkpoint_sha256", "worker",
            "heartbeat")} for u in store.units_list()}
        order = {m: i for i, m in enumerate(config.get("methods", []))}
        from .estimates import HELD_OUT_KEY
        # the held-out batches of the pooled temperature are the runner's, not a column
        records = [{k: v for k, v in r["record"].items() if k != HELD_OUT_KEY}
                   for r in sorted(store.records(), key=lambda r: (
                       order.get(r["method"], len(order)), r["trial"], r["cycle"]))]
        return {"config": config, "records": records, "runs": runs}
    finally:
        store.dispose()


# what a stored configuration without these keys ran with: a store of the release
# before estimation recorded the paper's columns only, one of the release before the
# interval options the normal 95 % interval
_LEGACY_SETTINGS = {"estimation": False, "importance_interval": "normal",
                    "confidence_level": 0.95}


def _comparable(config_dict):
    config_dict = {**_LEGACY_SETTINGS, **config_dict}
    return {k: v for k, v in config_dict.items() if k not in _RUN_ONLY_FIELDS}


# the exports of the store, rebuilt from it at any time
_EXPORTS = ("config.json", "results.csv", "summary.md", "accuracy.png", "ece.png",
            "estimates.png")
# what the runner of earlier releases kept instead of a store
_LEGACY = "state.json"
_STORE_FILE = "runs.sqlite3"
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9_.-]+\.safetensors")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _StoreError(_NamedSettingsMixin, ValueError):
    """A store the runner cannot use as it is (a ``ValueError``: exit 2)."""

    def __init__(self, template):
        super().__init__(self._render(template))


def _open_store(storage, output_dir):
    from .storage import RunStore, StoreError, default_url
    try:
        return RunStore(storage if storage is not None else default_url(output_dir))
    except StoreError as exc:
        raise _StoreError(str(exc).replace("{", "(").replace("}", ")")) from None


def _store_call(fn, *args):
    """Call a store method; its damaged-store error as a runner error."""
    from .storage import StoreError
    try:
        return fn(*args)
    except StoreError as exc:
        raise _StoreError(str(exc).replace("{", "(").replace("}", ")")) from None


def _live_message(live):
    return "; ".join(f"{w['method']}/{w['trial']} by {w['worker']} (heartbeat "
                     f"{w['age']:.0f} s ago)" for w in live)


def _check_output(config, store):
    """Check ``output_dir`` and the store without changing anything.

    Returns
    -------
    plan : {"new", "overwrite", "continue", "join"}
        ``"join"``: a worker finding no run (it creates it, or joins the one
        another worker creates first).
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
    status = _store_call(store.status)
    where = store.describe()
    if status is None:
        if (out / _LEGACY).exists() and not config.overwrite:
            raise _StoreError(
                f"{out} holds a run of an earlier release of the runner (state.json and "
                "pickled checkpoints), which this release neither resumes nor loads (a "
                "pickle can run code); its results.csv stays readable with load_results. "
                "Start the run again in another {output_dir}, or pass {overwrite=True} to "
                "replace it there")
        exports = [name for name in _EXPORTS if (out / name).exists()]
        if exports and not (config.overwrite or config.resume or config.worker):
            raise _SettingError(f"{out} already holds results ({', '.join(exports)}) but "
                                f"the store {where} holds no run; pass {{overwrite=True}} to "
                                "replace them, or choose another {output_dir}")
        if config.worker:
            return "join"
        if config.resume and config.progress and _writes():
            print(f"Nothing to resume in {where}: starting a new run.", flush=True)
        return "new"
    live = _store_call(store.live_workers, config.heartbeat_timeout)
    if config.overwrite:
        if live:
            raise _SettingError(f"cannot replace the run in {where}: workers are running it "
                                f"({_live_message(live)}); stop them first, or wait "
                                "{heartbeat_timeout} seconds after they died")
        return "overwrite"
    if not (config.resume or config.worker):
        raise _SettingError(f"{where} already holds a run; pass {{resume=True}} to continue "
                            "it, {worker=True} to join its workers, {overwrite=True} to "
                            "replace it, or choose another {output_dir}")
    saved, given = _comparable(status["config"]), _comparable(config.to_dict())
    diffs = [f"{{{k}}}: saved {saved.get(k)!r}, given {given.get(k)!r}"
             for k in sorted(set(saved) | set(given)) if saved.get(k) != given.get(k)]
    if diffs:
        raise _SettingError(f"cannot {'join' if config.worker else 'resume'} the run in "
                            f"{where}: its configuration differs (" + "; ".join(diffs)
                            + "). Use the same options, or another {output_dir} (or "
                            "{overwrite=True} to start over)")
    if config.resume and live:
        raise _SettingError(f"cannot resume the run in {where}: workers are running it "
                            f"({_live_message(live)}); join them with {{worker=True}}, or "
                            "resume once they have stopped (a worker silent for "
                            "{heartbeat_timeout} seconds counts as dead)")
    return "continue" if config.resume else "join"


def _unit_problems(config, unit, records, n_pool):
    """What in a stored unit contradicts the settings or its records (empty if nothing)."""
    problems = []
    cycle, labeled = unit["cycle"], unit["labeled"]
    if not isinstance(cycle, int) or not -1 <= cycle <= config.n_cycles:
        return [f"its cycle {cycle!r} is not in -1..{config.n_cycles}"]
    if bool(unit["done"]) != (cycle == config.n_cycles):
        problems.append(f"it is marked {'done' if unit['done'] else 'unfinished'} at cycle "
                        f"{cycle} of {config.n_cycles}")
    expected = 0 if cycle < 0 else config.initial_size + cycle * config.query_size
    if (not isinstance(labeled, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in labeled)):
        problems.append("its labeled indices are not a list of integers")
    else:
        if len(labeled) != expected:
            problems.append(f"it has {len(labeled)} labeled indices, {expected} at cycle "
                            f"{cycle}")
        if len(set(labeled)) != len(labeled):
            problems.append("its labeled indices repeat")
        if labeled and not (0 <= min(labeled) and max(labeled) < n_pool):
            problems.append(f"its labeled indices leave the pool of {n_pool}")
        initial = _initial_indices(config, unit["trial"], n_pool).tolist()
        if cycle >= 0 and labeled[:config.initial_size] != initial:
            problems.append("its initial labeled set is not the trial's")
    cycles = sorted(r["cycle"] for r in records)
    if cycles != list(range(cycle + 1)):
        problems.append(f"it has records of cycles {cycles}, committed up to {cycle}")
    for r in records:
        rec = r["record"]
        if (not isinstance(rec, dict) or rec.get("method") != unit["method"]
                or rec.get("trial") != unit["trial"] or rec.get("cycle") != r["cycle"]
                or rec.get("n_labeled") != config.initial_size + r["cycle"] * config.query_size
                or set(rec) not in _record_keys(config)):
            problems.append(f"its record of cycle {r['cycle']} is damaged")
        elif not _held_out_ok(config, rec, n_pool):
            problems.append(f"its record of cycle {r['cycle']} holds damaged held-out "
                            "probabilities")
    name, sha = unit["checkpoint"], unit["checkpoint_sha256"]
    if unit["done"] or cycle < 0:
        if name is not None:
            problems.append(f"it names a checkpoint {name!r} but needs none")
    elif not (isinstance(name, str) and _CHECKPOINT_NAME.fullmatch(name)):
        problems.append(f"its checkpoint {name!r} is not a file name in checkpoints/ (the "
                        "runner never reads or removes files elsewhere)")
    elif not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        problems.append(f"its checkpoint's SHA-256 {sha!r} is not a digest")
    return problems


def _held_out_ok(config, record, n_pool):
    """Whether a record's held-out batch (if any) is ``query_size`` distinct rows of
    the pool with a probability matrix of one row each."""
    from ..metrics import _check_proba
    from .estimates import HELD_OUT_KEY
    if HELD_OUT_KEY not in record:
        return True
    value = record[HELD_OUT_KEY]
    if not isinstance(value, dict) or set(value) != {"rows", "proba"}:
        return False
    rows, proba = value["rows"], value["proba"]
    if (not isinstance(rows, list) or len(rows) != config.query_size
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_pool
                       for i in rows) or len(set(rows)) != len(rows)):
        return False
    if (not isinstance(proba, list) or len(proba) != len(rows)
            or not all(isinstance(row, list) and row and all(
                isinstance(v, float) for v in row) for row in proba)):
        return False
    try:
        _check_proba(np.asarray(proba, dtype=np.float64))
    except ValueError:
        return False
    return True


def _record_keys(config):
    """The key sets a stored record of the run may have: today's, with or without
    the held-out probabilities of its batch
    (:data:`~sklearn_crtcl.experiments.estimates.HELD_OUT_KEY`), or an earlier
    release's (without some of
    :data:`~sklearn_crtcl.experiments.estimates.NEWER_COLUMNS`)."""
    from .estimates import HELD_OUT_KEY, NEWER_COLUMNS
    keys = set(record_columns(config.estimation))
    if not config.estimation:
        return [keys]
    sets = [keys - set(NEWER_COLUMNS[:k]) for k in range(0, len(NEWER_COLUMNS) + 1, 3)]
    return sets + [keys | {HELD_OUT_KEY}]


def _verify_store(config, store, n_pool):
    """The units whose stored state contradicts itself: an error without
    ``recover``, the keys to recompute with it."""
    units = _store_call(store.units_list)
    keys = [(u["method"], u["trial"]) for u in units]
    if keys != _unit_keys(config):
        raise _StoreError(f"the store {store.describe()} lists the units {keys}, not those "
                          f"of its settings: it is damaged; nothing was changed. Start over "
                          "with {overwrite=True} or in another {output_dir}")
    by_unit = {}
    for r in _store_call(store.records):
        by_unit.setdefault((r["method"], r["trial"]), []).append(r)
    bad = {}
    for u in units:
        problems = _unit_problems(config, u, by_unit.get((u["method"], u["trial"]), []),
                                  n_pool)
        if problems:
            bad[(u["method"], u["trial"])] = problems
    if bad and not config.recover:
        report = "; ".join(f"{m}/{t}: " + ", ".join(p) for (m, t), p in bad.items())
        raise _StoreError(
            f"the store {store.describe()} contradicts itself ({report}). Nothing was "
            "changed. Continue with {recover=True} to recompute those units from their "
            "seeds (every other unit's records are kept), or restore the database from a "
            "backup")
    return list(bad)


def _unit_keys(config):
    return [(method, trial) for trial in range(config.n_trials) for method in config.methods]


def _writes():
    """Whether this process writes the outputs: the only process, or process 0 of
    a distributed job (every process runs the same experiment)."""
    return world()[0] == 0


def _prepare_output(config, store, plan, recover):
    """Create or join the run in the store (process 0 of a distributed job)."""
    out = Path(config.output_dir)
    if not _writes():
        return out
    out.mkdir(parents=True, exist_ok=True)
    if plan in ("new", "overwrite"):
        ckpt = out / "checkpoints"
        for p in ckpt.glob("*.safetensors*") if ckpt.exists() else ():
            p.unlink()
        for name in _EXPORTS + (_LEGACY,):
            (out / name).unlink(missing_ok=True)
        for p in ckpt.glob("*.pkl*") if ckpt.exists() else ():  # an earlier release's
            p.unlink()
    saved = _store_call(store.create, config.to_dict(), _unit_keys(config),
                        plan in ("new", "overwrite"))
    if plan == "join" and _comparable(saved) != _comparable(config.to_dict()):
        raise _SettingError(f"cannot join the run in {store.describe()}: another worker "
                            "created it with other settings; use the same options")
    if recover:
        _store_call(store.reset_units, recover)
    if not (out / "config.json").exists():
        _atomic_write_json(out / "config.json", config.to_dict())
    _remove_leftovers(config, store, out)
    return out


def _remove_leftovers(config, store, out):
    """Remove what killed workers left behind in ``out``: temporary files whose
    writer is dead, and checkpoints that no unit references.

    A temporary file of an export or a checkpoint goes once its writer's process
    is gone (a writer of this host) or it is ``heartbeat_timeout`` seconds old
    (another host's, or one of the release before the writer was in the name; a
    write takes seconds). An unreferenced checkpoint (saved by
    a worker killed before it committed the cycle) goes once no live worker holds
    a unit, or once it is ``heartbeat_timeout`` seconds old: a live worker's
    checkpoint is unreferenced only between its write and its commit.
    """
    timeout, now = config.heartbeat_timeout, time.time()
    ckpt = out / "checkpoints"

    def old(p):
        try:
            return now - p.stat().st_mtime >= timeout
        except FileNotFoundError:  # another worker removed it first
            return False

    for folder, ours in ((out, lambda t: t in _EXPORTS),
                         (ckpt, lambda t: _CHECKPOINT_NAME.fullmatch(t) is not None)):
        for p in folder.glob("*.tmp") if folder.is_dir() else ():
            m = _TMP_NAME.fullmatch(p.name)
            if m is not None and ours(m["target"]):
                if not worker_alive(f"{m['host']}:{m['pid']}:") or old(p):
                    p.unlink(missing_ok=True)
                continue
            # an earlier release's name, without its writer: once heartbeat_timeout old
            m = _OLD_TMP_NAME.fullmatch(p.name)
            if m is not None and ours(m["target"]) and old(p):
                p.unlink(missing_ok=True)
    if not ckpt.is_dir():
        return
    units = _store_call(store.units_list)
    referenced = {u["checkpoint"] for u in units}
    idle = not _store_call(store.live_workers, timeout)
    for p in ckpt.glob("*.safetensors"):
        if p.name not in referenced and (idle or old(p)):
            p.unlink(missing_ok=True)


def _checkpoint_name(method, trial, cycle):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", method)
    return f"{safe}-trial{trial}-cycle{cycle}-{uuid.uuid4().hex[:12]}.safetensors"


class _Heartbeat:
    """Renews a worker's claim on a unit in a background thread."""

    def __init__(self, store, worker, method, trial, interval):
        self.store, self.worker, self.key, self.interval = store, worker, (method, trial), interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"heartbeat {method}/{trial}")

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                if not self.store.beat(self.worker, *self.key):
                    self.lost = True
                    return
            except Exception:  # a busy or unreachable database: try again next time
                continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


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


def _run_one(config, unit, data, classes, out, store, worker, beat):
    """All cycles of one claimed (method, trial) unit, from its last committed cycle."""
    from modAL.models import ActiveLearner

    from .. import _modal_compat  # noqa: F401  (modAL on recent scikit-learn)
    from .checkpoint import CheckpointError, load_net, save_net

    X_train, X_test, y_train, y_test = data
    method, trial = unit["method"], unit["trial"]
    spec = method_spec(method)
    strategy = get_strategy(method)
    n_pool = len(X_train)
    committed = unit["cycle"]
    desc = f"{method} trial {trial + 1}/{config.n_trials}"
    show = config.progress and _writes()  # one progress display per job
    ckpt_dir = out / "checkpoints"

    def new_net():
        return make_estimator(method, classes=classes, width=config.width,
                              max_epochs=config.max_epochs, batch_size=config.batch_size,
                              device=config.device, warm_start=config.warm_start,
                              random_state=_derived_seed(config, trial, 0, _FIT),
                              augment=None if config.augment == "none" else config.augment,
                              progress=show)

    # continue from the unit's checkpoint; recompute from the seeds (cycle 0) when it is
    # missing or fails its SHA-256: the committed cycles are replayed, not committed again
    net = None
    if committed >= 0:
        try:
            net = load_net(new_net(), ckpt_dir / unit["checkpoint"], unit["checkpoint_sha256"])
        except CheckpointError as exc:
            if _writes():
                warnings.warn(f"{exc}. It is not used: {method}/{trial} is recomputed from "
                              f"its seeds up to its committed cycle {committed}, whose "
                              "records are kept", RuntimeWarning, stacklevel=2)
    replay = committed if net is None else -1
    progress = CycleProgress(desc, config.n_cycles + 1,
                             initial=0 if net is None else committed + 1, enabled=show)

    def fit_kwargs(labeled):
        if not spec.semi_supervised:
            return {}
        # the training set and the rows of its pool: no copy of the pool per cycle
        return {"X_unlabeled": X_train,
                "unlabeled_indices": np.setdiff1d(np.arange(n_pool), labeled)}

    checkpoint = {"name": unit["checkpoint"] if net is not None else None}
    # estimation: the criteria carry state from cycle to cycle (a continued unit
    # restores it from its stored records and the model of its last committed cycle);
    # the estimates that need the next batch's labels are added to a committed
    # record once that batch is queried (``awaiting``), in a second transaction
    criteria = _trial_criteria(config, trial, X_train, n_pool) if config.estimation else []
    # held: (probabilities of cycle s's model, labels) of each batch s it queried, for
    # the pooled temperature (restored from the stored records on a continued unit)
    state = {"awaiting": None, "pool": None, "held": []}

    def stored_records():
        return sorted((r["record"] for r in _store_call(store.records)
                       if (r["method"], r["trial"]) == (method, trial)),
                      key=lambda r: r["cycle"])

    def continue_from(cycle, learner):
        """Restore the criteria at a committed ``cycle``; does its record await estimates?"""
        rows = stored_records()
        _restore_criteria(criteria, rows, learner)
        state["held"] = _restore_held_out(rows, y_train)
        last = rows[-1] if rows else None
        if last is not None and last["cycle"] == cycle and _awaits_batch(last):
            state["awaiting"] = cycle

    def query(cycle, learner, labeled):
        """Query the batch of ``cycle`` with the current model: (new rows, draw, time),
        ``draw`` the candidates and the per-draw probabilities of the batch (None
        when the query has none)."""
        t0 = time.perf_counter()
        pool = np.setdiff1d(np.arange(n_pool), labeled)
        # the pool as row indices of the training set: no copy of the pool per
        # cycle; the same query as on X_train[pool] (the strategies' pool_indices)
        kwargs = dict(n_instances=config.query_size, subset_size=config.subset_size,
                      random_state=_derived_seed(config, trial, cycle, _QUERY),
                      pool_indices=pool)
        draw = None
        kind = _proposal_kind(spec) if config.estimation else None
        if kind == "proposal":
            idx, _, proposal = learner.query(X_train, return_proposal=True, **kwargs)
            draw = (np.asarray(proposal.candidates), np.asarray(proposal.q))
        else:
            idx, _ = learner.query(X_train, **kwargs)
        new = _check_query(idx, pool, config.query_size, method)
        if kind == "uniform":
            # a uniform draw without replacement from the pool (a random subset too):
            # draw m takes any remaining row with probability 1 / (N - m)
            draw = (pool, 1.0 / (len(pool) - np.arange(len(new), dtype=np.float64)))
        return new, draw, time.perf_counter() - t0

    def add_batch_estimates(cycle, learner, labeled, batch, draw):
        """The estimates of a committed cycle's model from the batch it queried."""
        t0 = time.perf_counter()
        if state["pool"] is not None and state["pool"][0] == cycle:
            _, est, X_est, record, elapsed = state["pool"]
        else:  # continued from the store: this process has not seen the cycle
            est, X_est, elapsed = None, None, 0.0
            record = stored_records()[-1]
        state["pool"] = None
        record = {**record, **_batch_estimates(config, trial, cycle, learner, data, labeled,
                                               batch, draw, criteria, est, X_est,
                                               state["held"])}
        # both parts' time (this part's alone for a cycle continued from the store)
        record["estimation_time"] = elapsed + time.perf_counter() - t0
        from .estimates import HELD_OUT_KEY
        record = {k: record[k] for k in record_columns(True) + (HELD_OUT_KEY,)}
        state["held"].extend(_restore_held_out([record], y_train))
        if _writes():
            if beat is not None and beat.lost:
                raise LostClaimError(f"{method}/{trial}: the claim was taken over")
            _store_call(store.update_record, worker, method, trial, cycle, record)
            _export_csv(config, store, out)

    def finish_cycle(cycle, labeled, learner, t_start, t_query):
        if getattr(learner.estimator, "fit_interrupted_", False):
            # Ctrl-C during training: skorch's fit caught it and returned the net
            # half-trained; stop here, before anything of this cycle is evaluated
            # or committed (the command line then says how to resume)
            raise KeyboardInterrupt
        if cycle <= replay:  # recomputing a committed cycle: its record is in the store
            if cycle == replay:
                if list(labeled) != unit["labeled"]:
                    warnings.warn(f"{method}/{trial}: the recomputed labeled set of cycle "
                                  f"{cycle} differs from the stored one (a nondeterministic "
                                  "device); the run goes on from the recomputed one",
                                  RuntimeWarning, stacklevel=2)
                if config.estimation:
                    continue_from(cycle, learner)
            progress.cycle_replayed(cycle)
            return
        _check_converged(learner.estimator, method, trial, cycle)
        record = {"method": method, "trial": trial, "cycle": cycle,
                  "n_labeled": len(labeled)}
        record.update(_evaluate(learner, X_test, y_test))
        # the last epoch's training loss: shows whether the cycle's training converged
        record["train_loss"] = float(learner.estimator.history[-1, "train_loss"])
        now = time.perf_counter()
        record.update(wall_time=now - t_start, query_time=t_query,
                      train_time=now - t_start - t_query)  # training + evaluation
        done = cycle == config.n_cycles
        if config.estimation:
            t0 = time.perf_counter()
            part, est, X_est = _pool_estimates(config, trial, cycle, learner, data, labeled,
                                               criteria, state["held"] if done else None)
            record.update(part)
            elapsed = time.perf_counter() - t0
            # NaN: the record awaits the estimates from the next batch (not after the last)
            record["estimation_time"] = elapsed if done else math.nan
        record = {k: record[k] for k in record_columns(config.estimation)}
        if config.estimation and not done:
            state["pool"] = (cycle, est, X_est, record, elapsed)
        if _writes():
            if beat is not None and beat.lost:
                raise LostClaimError(f"{method}/{trial}: the claim was taken over")
            name = sha = None
            if not done:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                name = _checkpoint_name(method, trial, cycle)
                sha = save_net(learner.estimator, ckpt_dir / name)
            try:
                _store_call(store.commit_cycle, worker, method, trial, cycle,
                            [int(i) for i in labeled], name, sha, done, record)
            except BaseException:
                if name is not None:
                    (ckpt_dir / name).unlink(missing_ok=True)
                raise
            previous, checkpoint["name"] = checkpoint["name"], name
            if previous is not None and _CHECKPOINT_NAME.fullmatch(previous):
                (ckpt_dir / previous).unlink(missing_ok=True)
            _export_csv(config, store, out)
        if config.estimation and not done:
            state["awaiting"] = cycle
        progress.cycle_done(record)

    try:
        if net is None:
            t_start = time.perf_counter()
            labeled = _initial_indices(config, trial, n_pool)
            learner = ActiveLearner(estimator=new_net(), query_strategy=strategy,
                                    X_training=X_train[labeled], y_training=y_train[labeled],
                                    **fit_kwargs(labeled))
            finish_cycle(0, labeled, learner, t_start, 0.0)
            first = 1
        else:
            labeled = np.asarray(unit["labeled"], dtype=np.int64)
            learner = ActiveLearner(estimator=net, query_strategy=strategy)
            learner.X_training, learner.y_training = X_train[labeled], y_train[labeled]
            first = committed + 1
            if config.estimation:
                continue_from(committed, learner)

        for cycle in range(first, config.n_cycles + 1):
            t_start = time.perf_counter()
            new, draw, t_query = query(cycle, learner, labeled)
            if state["awaiting"] == cycle - 1:  # the model of cycle - 1, before training
                add_batch_estimates(cycle - 1, learner, labeled, new, draw)
                state["awaiting"] = None
                t_start = time.perf_counter() - t_query  # the wall time covers the query
            labeled = np.concatenate([labeled, new])
            learner.estimator.set_params(random_state=_derived_seed(config, trial, cycle, _FIT))
            learner.teach(X_train[new], y_train[new], only_new=False, **fit_kwargs(labeled))
            finish_cycle(cycle, labeled, learner, t_start, t_query)
    finally:
        progress.close()


def _check_converged(net, method, trial, cycle):
    """Raise a ``ValueError`` naming the unit and the epoch when the cycle's training
    loss is not finite (the training diverged), before anything of the cycle is
    evaluated or committed."""
    losses = [row.get("train_loss") for row in net.history]
    if losses and losses[-1] is not None and math.isfinite(float(losses[-1])):
        return
    since = len(losses)
    while since > 0 and (losses[since - 1] is None
                         or not math.isfinite(float(losses[since - 1]))):
        since -= 1
    raise ValueError(
        f"{method}/{trial}: the training of cycle {cycle} diverged (its training loss is "
        f"not finite since epoch {since + 1} of the net's history; the predictions would be "
        "NaN). Nothing of the cycle was committed; the same settings diverge the same way "
        "on this machine, so rerun with other settings (e.g. fewer epochs, another seed) "
        "in another output directory")


def _proposal_kind(spec):
    """How the method's query draws its batch with known probabilities:
    ``"proposal"`` (a stochastic selection), ``"uniform"`` (random sampling's
    top-k of uniform scores) or None (a deterministic selection)."""
    from ..query.selection import STOCHASTIC_SELECTIONS
    selection = spec.query_params.get("selection")
    if selection in STOCHASTIC_SELECTIONS:
        return "proposal"
    if spec.strategy.endswith(":random_sampling") and selection in (None, "topk"):
        return "uniform"
    return None


def _trial_criteria(config, trial, X_train, n_pool):
    """Fresh stopping criteria of a trial, on its stop set: rows of the initial pool."""
    from .estimates import STOP_SET_SIZE, run_criteria
    pool = np.setdiff1d(np.arange(n_pool), _initial_indices(config, trial, n_pool))
    rng = np.random.RandomState(_derived_seed(config, trial, 0, _STOP))
    rows = np.sort(rng.choice(pool, size=min(STOP_SET_SIZE, len(pool)), replace=False))
    return run_criteria(X_train[rows])


def _awaits_batch(record):
    """Whether a committed record still lacks the estimates from the next batch."""
    return bool(np.isnan(record["estimation_time"]))


def _needs_batch(criterion):
    from ..stopping import AccuracyGain
    from .estimates import _NEED_LABELS
    return isinstance(criterion, AccuracyGain) and criterion.method in _NEED_LABELS


def _restore_criteria(criteria, records, learner):
    """Give the criteria the statistics of the committed ``records`` (in cycle order)."""
    from ..stopping import AccuracyGain
    for criterion in criteria:
        if isinstance(criterion, AccuracyGain):
            # rounds without an estimate (no batch yet, no proposal) were not rounds
            values = [r[f"est_{criterion.method}"] for r in records]
            criterion.restore([v for v in values if not np.isnan(v)])
        else:
            criterion.restore([r[f"stat_{criterion.name}"] for r in records], learner)


def _estimation_rows(config, trial, cycle, n_pool, labeled):
    """The rows whose accuracy is estimated: the unlabeled pool, or a random
    ``subset_size`` subset of it."""
    rows = np.setdiff1d(np.arange(n_pool), labeled)
    if config.subset_size is not None and config.subset_size < len(rows):
        rng = np.random.RandomState(_derived_seed(config, trial, cycle, _STOP))
        rows = np.sort(rng.choice(rows, size=config.subset_size, replace=False))
    return rows


def _pool_estimates(config, trial, cycle, learner, data, labeled, criteria, held=None):
    """The columns of a cycle's record known at its commit (no next batch needed):
    ``confidence`` and ``critic``, the pool accuracy, the criteria but the gains of
    label-based estimates, and with ``held`` (the last cycle's: the earlier batches'
    held-out probabilities and labels) ``temperature_pooled`` from those alone; the
    others NaN. Also the net with its pool probabilities and the pool rows, for
    :func:`_batch_estimates`."""
    from ..estimation import _check_critic, estimate_accuracy
    from .estimates import ESTIMATE_COLUMNS, _PoolProba, estimation_record

    X_train, X_test, y_train, y_test = data
    methods = ["confidence", "critic"]
    try:
        _check_critic(learner.estimator)
    except (TypeError, ValueError):  # no probabilistic critic in this method
        methods.remove("critic")
    rows = _estimation_rows(config, trial, cycle, len(X_train), labeled)
    X_est = X_train[rows]
    est = _PoolProba(learner.estimator)
    record = estimation_record(est, X_est, None, None, methods=methods,
                               criteria=[c for c in criteria if not _needs_batch(c)],
                               y_pool=y_train[rows], critic=learner.estimator)
    record["n_test"] = int(len(y_test))
    if held:
        e = estimate_accuracy(est, X_est, "temperature", held_out=held)
        record.update(est_temperature_pooled=e.estimate, est_temperature_pooled_low=e.low,
                      est_temperature_pooled_high=e.high)
    for key in ESTIMATE_COLUMNS:
        record.setdefault(key, False if key.startswith("stop_") else math.nan)
    return record, est, X_est


def _batch_estimates(config, trial, cycle, learner, data, labeled, batch, draw, criteria,
                     est, X_est, held):
    """The columns of a committed cycle's record from the batch its model queried:
    ``temperature``, ``atc``, ``doc``, ``importance`` (with the query's draw) and
    ``temperature_pooled`` (with the earlier cycles' batches ``held``), the gains of
    these estimates, and the batch's probabilities (held out from this model) under
    :data:`~sklearn_crtcl.experiments.estimates.HELD_OUT_KEY`."""
    from ..estimation import estimate_accuracy
    from .estimates import HELD_OUT_KEY, _PoolProba, estimation_record

    X_train, _, y_train, _ = data
    if est is None:
        rows = _estimation_rows(config, trial, cycle, len(X_train), labeled)
        est, X_est = _PoolProba(learner.estimator), X_train[rows]
    labels = dict(X_labeled=X_train[batch], y_labeled=y_train[batch])
    gains = {c.method: c for c in criteria if _needs_batch(c)}
    fitted = ("temperature", "atc", "doc")  # on the batch, unweighted
    out = estimation_record(est, X_est, None, None, methods=fitted,
                            criteria=[c for m, c in gains.items() if m in fitted],
                            **labels)
    if draw is not None:
        out.update(estimation_record(est, X_train[draw[0]], None, None, methods=("importance",),
                                     criteria=[c for m, c in gains.items() if m == "importance"],
                                     q=draw[1], importance_options=dict(
                                         interval=config.importance_interval,
                                         confidence_level=config.confidence_level),
                                     **labels))
    pooled = estimate_accuracy(est, X_est, "temperature", held_out=held, **labels)
    out.update(est_temperature_pooled=pooled.estimate, est_temperature_pooled_low=pooled.low,
               est_temperature_pooled_high=pooled.high)
    # the same array as the fits': its probabilities are computed once (_PoolProba)
    out[HELD_OUT_KEY] = {"rows": [int(i) for i in batch],
                         "proba": np.asarray(est.predict_proba(labels["X_labeled"]),
                                             dtype=np.float64).tolist()}
    out.pop("pool_accuracy")
    return out


def _restore_held_out(records, y_train):
    """The ``(probabilities, labels)`` of the held-out batches of ``records`` (the
    records that hold one, in their order)."""
    from .estimates import HELD_OUT_KEY
    return [(np.asarray(r[HELD_OUT_KEY]["proba"], dtype=np.float64),
             y_train[np.asarray(r[HELD_OUT_KEY]["rows"], dtype=np.int64)])
            for r in records if HELD_OUT_KEY in r]


def _store_records(config, store):
    """The committed records, sorted as the run orders them."""
    method_order = {m: i for i, m in enumerate(config.methods)}
    rows = sorted(_store_call(store.records),
                  key=lambda r: (method_order.get(r["method"], len(method_order)),
                                 r["trial"], r["cycle"]))
    records = [r["record"] for r in rows]
    if config.estimation:  # a record of an older release lacks the newer estimates;
        # the held-out probabilities are the runner's, not a column
        columns = record_columns(True)
        records = [{k: r.get(k, math.nan) for k in columns} for r in records]
    return records


def _export_csv(config, store, out):
    write_results_csv(_store_records(config, store), out / "results.csv",
                      columns=record_columns(config.estimation))


def export_results(output_dir, storage=None):
    """Rebuild ``results.csv``, ``summary.md`` and the plots of a run from its store.

    Parameters
    ----------
    output_dir : str or path
        Where the exports go (the run's output directory).
    storage : str, optional
        The run's store URL (default: the SQLite file in ``output_dir``).

    Returns
    -------
    records : list of dict
        The committed records, in the order of the run.

    Raises
    ------
    ValueError
        If the store holds no run or cannot be read.
    """
    store = _open_store(storage, output_dir)
    try:
        status = _store_call(store.status)
        if status is None:
            raise _StoreError(f"the store {store.describe()} holds no run to export")
        config = ExperimentConfig(**{k: v for k, v in status["config"].items()
                                     if k not in ("device", "output_dir")},
                                  device="cpu", output_dir=str(output_dir))
        return _write_exports(config, store, Path(output_dir))
    finally:
        store.dispose()


def _write_exports(config, store, out):
    records = _store_records(config, store)
    out.mkdir(parents=True, exist_ok=True)
    write_results_csv(records, out / "results.csv", columns=record_columns(config.estimation))
    _atomic_write_bytes(out / "summary.md",
                        summary_table(records, title=_title(config),
                                      interval=_interval(config.to_dict())).encode())
    save_plots(records, out, title=_title(config))
    return records


def run_experiment(config=None, **kwargs):
    """Run the active-learning benchmark of the CrtCl paper (Section IV).

    For each trial ``t`` a random initial labeled set is drawn from the
    training split (seeded by ``seed + t``, the same for every method); for
    each method an estimator is trained on it through a modAL
    :class:`~modAL.models.ActiveLearner` and evaluated on the test split
    (cycle 0); then each of the ``n_cycles`` cycles queries ``query_size``
    pool samples with the method's strategy, labels them from the known
    labels and retrains (``teach`` on the whole labeled set). After every
    cycle its record, the labeled indices and the reference to the
    estimator's checkpoint (a safetensors file with its SHA-256) are
    committed to the run's store in one transaction; with ``resume=True`` a
    killed run continues where it stopped and ends with the same results as
    an uninterrupted one (wall times aside), and with ``worker=True`` any
    number of processes share the (method, trial) units of one run. At the
    end, ``results.csv``, ``summary.md`` and the plots ``accuracy.png`` and
    ``ece.png`` (when matplotlib is installed) are exported from the store.

    Parameters
    ----------
    config : ExperimentConfig, optional
        The settings; built from ``kwargs`` when ``None``.
    **kwargs
        :class:`ExperimentConfig` fields, when ``config`` is ``None``.

    Returns
    -------
    records : list of dict
        One per (method, trial, cycle) committed in the store, sorted in that
        order, with the keys ``method, trial, cycle, n_labeled, accuracy,
        ece, nll, train_loss, wall_time, query_time, train_time`` (times in
        seconds; ``wall_time`` covers the query, training and evaluation of
        the cycle). All of the run's records once it is finished.

    Raises
    ------
    ValueError
        For invalid settings, a labeled-set size larger than the pool (or
        leaving fewer than 2 unlabeled samples for the semi-supervised
        methods), an ``output_dir`` that is not a writable directory, a
        store that already holds a run without ``resume``, ``worker`` or
        ``overwrite``, a ``resume`` whose settings differ from the saved
        run, a ``resume`` or ``overwrite`` while workers run it, or a store
        that is damaged, foreign, from a newer release or contradicts
        itself (see ``recover``).
    FileNotFoundError
        When the data set's files are missing; the message says which files
        were looked for where, and how to get them.

    Notes
    -----
    All these errors are raised before any training and before anything is
    written or removed in ``output_dir`` or the store. The process's torch
    thread count is restored when the function returns or raises (see
    ``num_threads`` of :class:`ExperimentConfig`).
    """
    if config is None:
        config = ExperimentConfig(**kwargs)
    elif kwargs:
        raise TypeError("pass either an ExperimentConfig or keyword settings, not both")
    elif not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    # every check before any work: the settings (checked by ExperimentConfig), the data
    # files, the output directory and the store, then the sizes against the loaded data
    _check_data_files(config)
    store = _open_store(config.storage, config.output_dir)
    try:
        plan = _check_output(config, store)
        data = _load_data(config)
        recover = (_verify_store(config, store, len(data[0]))
                   if plan in ("continue", "join") and _store_call(store.status) else [])
        if world()[1] > 1:  # every process has read the store before process 0 writes
            import torch
            torch.distributed.barrier()
        out = _prepare_output(config, store, plan, recover)
        with _torch_threads(config.num_threads):
            _run_all(config, data, out, store)
        if not _writes():
            from ..distributed import broadcast_object
            return broadcast_object(None)
        units = _store_call(store.units_list)
        complete = all(u["done"] for u in units)
        if complete:
            _remove_leftovers(config, store, out)
        records = (_write_exports(config, store, out) if complete
                   else _store_records(config, store))
        if world()[1] > 1:
            from ..distributed import broadcast_object
            broadcast_object(records)
        return records
    finally:
        store.dispose()


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


def _worker_id():
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claim(config, store, worker):
    """The next unit for this worker (process 0 claims for a distributed job):
    ``None`` when all are done; waits while others hold the unfinished ones."""
    interval = config.heartbeat_timeout / 4
    while True:
        unit = None
        if _writes():
            unit = _store_call(store.claim, worker, config.heartbeat_timeout)
            if unit is None and not all(u["done"] for u in _store_call(store.units_list)):
                time.sleep(min(interval, 5.0))  # held by live workers: wait for them
                unit = "wait"
        if world()[1] > 1:
            from ..distributed import broadcast_object
            unit = broadcast_object(unit)
        if unit != "wait":
            return unit


def _run_all(config, data, out, store):
    classes = np.unique(data[2])
    worker = _worker_id()
    while True:
        unit = _claim(config, store, worker)
        if unit is None:
            return
        key = (unit["method"], unit["trial"])
        beat = (_Heartbeat(store, worker, *key, interval=config.heartbeat_timeout / 4)
                if _writes() else None)
        try:
            with beat if beat is not None else contextlib.nullcontext():
                _run_one(config, unit, data, classes, out, store, worker, beat)
        except LostClaimError as exc:
            warnings.warn(f"{exc}: another worker goes on with it; this one takes the next "
                          "unit", RuntimeWarning, stacklevel=2)
        except BaseException:
            if _writes():  # Ctrl-C or an error: another worker may take the unit at once
                try:
                    store.release(worker, *key)
                except Exception:
                    pass
            raise


def _interval(settings):
    """The importance estimate's interval of a run, for its summary, from its
    settings (``ExperimentConfig.to_dict()`` or a stored configuration)."""
    settings = {**_LEGACY_SETTINGS, **settings}
    return f"{settings['importance_interval']}, {settings['confidence_level']:.0%}"


def _title(config):
    return (f"{config.dataset}: initial {config.initial_size}, +{config.query_size} x "
            f"{config.n_cycles} cycles, {config.n_trials} trial(s)")

