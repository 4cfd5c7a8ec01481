"""Tests of the active-learning benchmark runner (sklearn_crtcl.experiments)."""

import io
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sklearn_crtcl.experiments import (
    METHODS,
    RESULT_COLUMNS,
    ExperimentConfig,
    area_under_curve,
    load_results,
    run_experiment,
    summary_table,
)
from sklearn_crtcl.experiments.cli import main
from sklearn_crtcl.experiments.runner import load_state
from sklearn_crtcl.query import entropy_sampling
from sklearn_crtcl.experiments.report import TIME_COLUMNS, record_columns

REPO = Path(__file__).resolve().parents[1]

# tiny settings: ResNet-18 of width 2, one epoch, 20 + 2 x 10 labeled digits; one torch
# thread (much faster for tiny nets on a shared machine)
SMALL = dict(dataset="digits", initial_size=20, query_size=10, n_cycles=2, n_trials=1,
             max_epochs=1, width=2, subset_size=100, device="cpu", progress=False,
             num_threads=1)


def _without_times(records):
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in records]


@pytest.fixture(scope="module")
def all_methods_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("all") / "run"
    records = run_experiment(ExperimentConfig(**SMALL, output_dir=str(out)))
    return out, records


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def test_config_defaults_follow_the_dataset_protocol():
    cfg = ExperimentConfig(dataset="cifar10", device="cpu")
    assert (cfg.initial_size, cfg.query_size, cfg.n_cycles, cfg.n_trials,
            cfg.max_epochs, cfg.width, cfg.batch_size) == (1200, 200, 7, 3, 200, 64, 128)
    assert cfg.methods == METHODS == ("random", "entropy", "crtcl", "ll4al", "lplgrad", "tod")
    cfg = ExperimentConfig(dataset="svhn", device="cpu", initial_size=7)
    assert (cfg.initial_size, cfg.query_size) == (7, 500)


@pytest.mark.parametrize("kwargs, match", [
    (dict(methods=["random", "nope"]), r"unknown method.*'nope'.*valid methods: random, "
                                       r"entropy, crtcl, ll4al, lplgrad, tod"),
    (dict(methods=[]), "methods is empty"),
    (dict(methods=["tod", "tod"]), "repeated"),
    (dict(dataset="mnist"), r"unknown dataset 'mnist'; valid datasets: digits, fashion_mnist"),
    (dict(query_size=0), "query_size must be >= 1"),
    (dict(initial_size=1.5), "initial_size must be an integer"),
    (dict(n_trials=True), "n_trials must be an integer"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(query_size=50, subset_size=10), r"subset_size \(10\) must be at least query_size"),
    (dict(warm_start="yes"), "warm_start must be True or False"),
    (dict(resume=True, overwrite=True), "exclude each other"),
    (dict(device="nosuchdevice"), r"device must be a torch device name such as 'cpu', 'cuda' "
                                  r"or 'cuda:1', got 'nosuchdevice' \(torch: Expected one of"),
    (dict(device="CPU"), "device must be a torch device name"),
    (dict(device=""), "device must be a torch device name"),
    (dict(device="meta"), "holds no data"),
    (dict(augment="rotate"), r"augment must be one of \('none', .*got 'rotate'"),
    (dict(augment=3), "augment must be one of"),
    (dict(methods=[["random"]]), r"method name must be a string, got \['random'\]"),
    (dict(methods=["crtcl:nope"]), r"unknown selection 'nope' in 'crtcl:nope'"),
    (dict(methods=["random:softmax"]), r"'random' does not pick its batch by score"),
    (dict(methods=["badge:topk"]), r"'badge' does not pick its batch by score"),
    (dict(num_threads=0), "num_threads must be >= 1"),
    (dict(seed=2 ** 32 - 1, n_trials=2), r"seed \+ n_trials - 1 = 4294967295 \+ 2 - 1 exceeds "
                                        r"4294967295"),
])
def test_config_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**{**SMALL, **kwargs})


def test_config_rejects_cuda_devices_this_machine_lacks(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device '{device}' requested but CUDA is not "
                                             r"available here \(torch.cuda.is_available\(\) is "
                                             "False"):
            ExperimentConfig(**dict(SMALL, device=device))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device 'cuda:2' requested but this machine has 2 "
                                         r"CUDA device\(s\): 'cuda:0' to 'cuda:1'"):
        ExperimentConfig(**dict(SMALL, device="cuda:2"))
    cfg = ExperimentConfig(**dict(SMALL, device="cuda:1", num_threads=None))
    assert cfg.device == "cuda:1"
    assert cfg.num_threads is None  # on CUDA, torch's own choice of CPU threads


def test_bad_device_fails_before_anything_is_written(tmp_path, capsys):
    # the device used to pass the checks, write config.json and the store, then crash
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["--device", "nosuchdevice", "--output-dir", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: --device must be a torch device name" in err and "'nosuchdevice'" in err
    assert "Traceback" not in err
    assert not out.exists()
    with pytest.raises(ValueError, match="device must be"):
        run_experiment(**dict(SMALL, device="nosuchdevice"), output_dir=str(out))
    assert not out.exists()


def test_pool_too_small_for_semi_supervised_methods_fails_before_output(tmp_path):
    # crtcl and tod train on the rest of the pool, which needs 2 samples (batch norm); this
    # used to fail inside the first fit, after config.json and the store were written
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"initial_size \+ n_cycles \* query_size = 1346 \+ 0 \* "
                                         r"10 = 1346 leaves 1 unlabeled sample\(s\) after the last "
                                         r"cycle .*\(crtcl, tod\)"):
        run_experiment(**dict(SMALL, methods=["random", "crtcl", "tod"], initial_size=1346,
                              n_cycles=0), output_dir=str(out))
    assert not out.exists()


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    for out, match in ((blocker, "output_dir .* is a file"),
                       (blocker / "run", r"output_dir .*run cannot be created: .*file is a file")):
        with pytest.raises(ValueError, match=match):
            run_experiment(**SMALL, output_dir=str(out))
    assert blocker.read_text() == "mine"


_DATA_FILES = {
    "cifar10": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
    + ["cifar-10-batches-py/test_batch"],
    "cifar100": ["cifar-100-python/train", "cifar-100-python/test"],
    "svhn": ["train_32x32.mat", "test_32x32.mat"],
    "fashion_mnist": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                      "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
}


@pytest.mark.parametrize("dataset", sorted(_DATA_FILES))
def test_missing_data_files_clear_cli_error_before_any_output(dataset, tmp_path, capsys):
    data_home = tmp_path / "data"  # empty: nothing is downloaded
    data_home.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    previous = {"results.csv": "a previous run", "config.json": "{}", "state.json": "{}"}
    for name, text in previous.items():
        (out / name).write_text(text)
    code = main(["--dataset", dataset, "--data-home", str(data_home), "--output-dir", str(out),
                 "--device", "cpu", "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1  # one paragraph
    assert lines[0].startswith(f"sklearn-crtcl-experiment: error: the {dataset} data files "
                               "are missing: ")
    for name in _DATA_FILES[dataset]:
        assert name in err
    assert str(data_home) in err and "--data-home" in err and "data_home" not in err
    if dataset == "fashion_mnist":
        assert "dataset-fashion-mnist" in err and "/usr/share/datasets/fashion-mnist" in err
    else:
        assert f"load_{dataset}(" in err and "download=True" in err
    # the previous run's files are untouched, nothing was added
    assert sorted(p.name for p in out.iterdir()) == sorted(previous)
    for name, text in previous.items():
        assert (out / name).read_text() == text
    # the Python API: a FileNotFoundError naming the field
    with pytest.raises(FileNotFoundError, match=f"the {dataset} data files are missing: ") as exc:
        run_experiment(dataset=dataset, data_home=str(data_home), device="cpu",
                       output_dir=str(tmp_path / "api"))
    assert "data_home" in str(exc.value) and "--data-home" not in str(exc.value)
    assert not (tmp_path / "api").exists()


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


def test_subset_larger_than_the_split_names_the_flag(tmp_path, capsys):
    # a tiny Fashion-MNIST in IDX files: 30 training, 10 test images
    rng = np.random.RandomState(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.randint(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^n_test=50 is larger than the number of available "
                                         r"samples \(10\)"):
        run_experiment(dataset="fashion_mnist", data_home=str(tmp_path), n_test=50,
                       device="cpu", output_dir=str(out))
    assert main(["--dataset", "fashion_mnist", "--data-home", str(tmp_path), "--n-test", "50",
                 "--device", "cpu", "--output-dir", str(out)]) == 2
    assert "error: --n-test=50 is larger than" in capsys.readouterr().err
    assert main(["--dataset", "fashion_mnist", "--data-home", str(tmp_path), "--n-train", "20",
                 "--initial-size", "15", "--query-size", "5", "--cycles", "1", "--device",
                 "cpu", "--output-dir", str(out)]) == 2
    assert ("error: --initial-size + --cycles * --query-size = 15 + 1 * 5 = 20 leaves 0 "
            "unlabeled sample(s) after the last cycle (the fashion_mnist training split has "
            "20 samples (--n-train))") in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("dataset", sorted(_DATA_FILES))
def test_data_file_check_looks_where_the_loader_reads(dataset, tmp_path):
    # empty files where the check looks: the check passes and the loader, reading exactly
    # those files, refuses their content (so the check and the loader agree on the layout)
    for name in _DATA_FILES[dataset]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    out = tmp_path / "run"
    with pytest.raises(ValueError) as exc:
        run_experiment(dataset=dataset, data_home=str(tmp_path), device="cpu",
                       output_dir=str(out))
    assert not isinstance(exc.value, FileNotFoundError)
    assert str(tmp_path) in str(exc.value)
    assert not out.exists()


def test_one_torch_thread_by_default_on_cpu_and_threads_restored(tmp_path, monkeypatch):
    import torch

    from sklearn_crtcl.experiments import runner

    cfg = {k: v for k, v in SMALL.items() if k != "num_threads"}
    cfg.update(methods=["random"], n_cycles=0)
    assert ExperimentConfig(**cfg).num_threads == 1
    assert ExperimentConfig(**cfg, num_threads=3).num_threads == 3
    seen = []
    run_all = runner._run_all

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return run_all(*args, **kwargs)

    def stop(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stopped")

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the process's own setting, which the run must give back
    try:
        monkeypatch.setattr(runner, "_run_all", spy)
        run_experiment(**cfg, output_dir=str(tmp_path / "default"))
        assert seen == [1] and torch.get_num_threads() == 2
        monkeypatch.setattr(runner, "_run_all", stop)
        with pytest.raises(RuntimeError, match="stopped"):
            run_experiment(**cfg, num_threads=3, output_dir=str(tmp_path / "three"))
        assert seen == [1, 3] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_budget_larger_than_pool_is_rejected_before_any_output(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"1000 \+ 2 \* 200 = 1400 exceeds the pool: the "
                                         r"digits training split has 1347 samples"):
        run_experiment(**{**SMALL, "initial_size": 1000, "query_size": 200, "subset_size": None},
                       output_dir=str(out))
    assert not out.exists()


# ---------------------------------------------------------------------------
# a run of all six methods
# ---------------------------------------------------------------------------


def test_records_of_all_methods(all_methods_run):
    out, records = all_methods_run
    assert len(records) == len(METHODS) * 3
    assert [(r["method"], r["cycle"]) for r in records] == [
        (m, c) for m in METHODS for c in range(3)]
    for r in records:
        assert tuple(r) == record_columns()
        assert tuple(r)[:len(RESULT_COLUMNS)] == RESULT_COLUMNS
        assert r["trial"] == 0
        assert r["n_labeled"] == 20 + 10 * r["cycle"]
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["ece"] <= 1.0
        assert np.isfinite(r["nll"]) and r["nll"] > 0
        assert r["wall_time"] > 0 and r["wall_time"] >= r["query_time"] >= 0
        assert (r["query_time"] == 0) == (r["cycle"] == 0)
    # the CSV holds exactly the returned records (floats round-trip exactly)
    assert load_results(out) == records
    assert load_results(out / "results.csv") == records


def test_state_labeled_sets(all_methods_run):
    out, _ = all_methods_run
    state = load_state(out)
    initial = None
    for method in METHODS:
        run = state["runs"][f"{method}/0"]
        assert run["done"] and run["cycle"] == 2 and run["checkpoint"] is None
        labeled = run["labeled"]
        assert len(labeled) == len(set(labeled)) == 40
        # the same random initial set for every method of a trial
        initial = labeled[:20] if initial is None else initial
        assert labeled[:20] == initial
    # query strategies pick different samples
    queried = {tuple(state["runs"][f"{m}/0"]["labeled"][20:]) for m in METHODS}
    assert len(queried) >= 4
    assert not list((out / "checkpoints").glob("*"))  # finished runs keep no checkpoint
    assert json.loads((out / "config.json").read_text())["methods"] == list(METHODS)


def test_summary_and_plots_written(all_methods_run):
    out, records = all_methods_run
    text = (out / "summary.md").read_text()
    # the estimator table names the run's importance interval (the runner's default)
    assert text == summary_table(records, title=text.splitlines()[2],
                                 interval="korn-graubard-truncated, 90%")
    # one trial: no standard deviation to show, so no "± 0.000"
    assert "±" not in text
    assert "## Test accuracy, one trial (no standard deviation)" in text
    for method in METHODS:
        acc = [r["accuracy"] for r in records if r["method"] == method]
        assert f" {acc[-1]:.3f} |" in text
    pytest.importorskip("matplotlib")
    for name in ("accuracy.png", "ece.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_run_is_not_overwritten_silently(all_methods_run):
    out, records = all_methods_run
    before = (out / "results.csv").read_bytes()
    with pytest.raises(ValueError, match=r"runs.sqlite3 already holds a run; pass resume=True"):
        run_experiment(**SMALL, output_dir=str(out))
    assert (out / "results.csv").read_bytes() == before
    # resuming a finished run trains nothing and gives back the same records
    assert run_experiment(**SMALL, output_dir=str(out), resume=True) == records


def test_overwrite_replaces_a_run(tmp_path):
    out = tmp_path / "run"
    first = run_experiment(**dict(SMALL, methods=["random"], n_cycles=0), output_dir=str(out))
    assert [r["n_labeled"] for r in first] == [20]
    second = run_experiment(**dict(SMALL, methods=["entropy"], n_cycles=1),
                            output_dir=str(out), overwrite=True)
    assert [(r["method"], r["n_labeled"]) for r in second] == [("entropy", 20),
                                                              ("entropy", 30)]
    assert load_results(out) == second
    assert json.loads((out / "config.json").read_text())["methods"] == ["entropy"]


# ---------------------------------------------------------------------------
# reproducibility and resume
# ---------------------------------------------------------------------------


def test_same_seed_same_results_other_seed_other_results(tmp_path):
    cfg = dict(SMALL, methods=["random", "crtcl"], n_trials=2, n_cycles=1)
    a = run_experiment(**cfg, output_dir=str(tmp_path / "a"))
    b = run_experiment(**cfg, output_dir=str(tmp_path / "b"))
    assert _without_times(a) == _without_times(b)
    assert len(a) == 2 * 2 * 2
    c = run_experiment(**dict(cfg, seed=5), output_dir=str(tmp_path / "c"))
    assert [r["accuracy"] for r in c] != [r["accuracy"] for r in a]
    # trial 1 of seed s is trial 0 of seed s + 1
    d = run_experiment(**dict(cfg, seed=1, n_trials=1), output_dir=str(tmp_path / "d"))
    assert _without_times(d) == [dict(r, trial=0) for r in _without_times(a) if r["trial"] == 1]


def _cli_args(cfg, out):
    args = ["--dataset", cfg["dataset"], "--methods", *cfg["methods"],
            "--initial-size", str(cfg["initial_size"]), "--query-size", str(cfg["query_size"]),
            "--cycles", str(cfg["n_cycles"]), "--trials", str(cfg["n_trials"]),
            "--epochs", str(cfg["max_epochs"]), "--width", str(cfg["width"]),
            "--subset-size", str(cfg["subset_size"]), "--seed", str(cfg.get("seed", 0)),
            "--device", cfg["device"], "--output-dir", str(out), "--no-progress",
            "--threads", str(cfg["num_threads"])]
    return args + (["--warm-start"] if cfg.get("warm_start", True) else ["--from-scratch"])


def _n_records(out):
    try:
        state = load_state(out)
        return 0 if state is None else len(state["records"])
    except ValueError:  # the store is being created
        return 0


@pytest.mark.parametrize("methods, warm_start", [(["tod", "random"], False),
                                                  (["crtcl", "lplgrad"], True)])
def test_resume_after_kill_gives_uninterrupted_results(tmp_path, methods, warm_start):
    cfg = dict(SMALL, methods=methods, n_cycles=3, max_epochs=2, warm_start=warm_start,
               seed=3)
    total = len(methods) * (cfg["n_cycles"] + 1)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "sklearn_crtcl.experiments",
                             *_cli_args(cfg, out)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _n_records(out) < 1:  # the first cycle is committed: kill mid-run
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run committed no cycle in 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    state = load_state(out)
    n_before = len(state["records"])
    assert 1 <= n_before < total, "the run was not interrupted mid-way"
    partial = [run for run in state["runs"].values() if not run["done"]]
    assert partial, "no (method, trial) was stopped mid-way"
    assert (out / "checkpoints" / partial[0]["checkpoint"]).exists()
    kept = state["records"]

    # start it again with --resume (the same command line)
    assert main(_cli_args(cfg, out) + ["--resume"]) == 0
    resumed = load_results(out)
    assert len(resumed) == total
    # cycles committed before the kill are kept, not recomputed (same wall times); a
    # record still awaiting the estimates from its next batch (estimation_time NaN) is
    # completed, the others are unchanged
    by_key = {(r["method"], r["trial"], r["cycle"]): r for r in resumed}
    for r in kept:
        again = by_key[r["method"], r["trial"], r["cycle"]]
        assert {k: again[k] for k in RESULT_COLUMNS} == {k: r[k] for k in RESULT_COLUMNS}
        assert again == r or np.isnan(r["estimation_time"])
        assert np.isfinite(again["estimation_time"])
    assert not list((out / "checkpoints").glob("*"))  # removed once a run is done
    reference = run_experiment(**cfg, output_dir=str(tmp_path / "uninterrupted"))
    assert _without_times(resumed) == _without_times(reference)


# Ctrl-C: during training (skorch's fit catches KeyboardInterrupt and returns the net
# half-trained) and during a query. The runner runs in a subprocess whose interpreter
# first imports a hook that sends the process a real SIGINT at a fixed point of cycle 1:
# after the third epoch of its fit, or as its query validates the pool (every strategy
# does, first thing; cycle 0 has no query). Deterministic on a machine of any speed.
_INTERRUPT_HOOK = """
import os, signal
from sklearn_crtcl import ResNetClassifier

PHASE = os.environ["CRTCL_TEST_INTERRUPT"]
# a job started in the background (nohup, CI) inherits an ignored SIGINT, and Python then
# installs no KeyboardInterrupt handler: restore what an interactive Ctrl-C meets
signal.signal(signal.SIGINT, signal.default_int_handler)
fits = []
on_train_begin, on_epoch_end = ResNetClassifier.on_train_begin, ResNetClassifier.on_epoch_end
validate_X = ResNetClassifier._validate_X


def begin(self, *args, **kwargs):
    fits.append(len(self.history))
    return on_train_begin(self, *args, **kwargs)


def epoch_end(self, *args, **kwargs):
    out = on_epoch_end(self, *args, **kwargs)
    if PHASE == "train" and len(fits) == 2 and len(self.history) - fits[-1] == 3:
        os.kill(os.getpid(), signal.SIGINT)
    return out


def validate(self, X, *args, **kwargs):
    if PHASE == "query" and kwargs.get("name") == "X_pool":
        os.kill(os.getpid(), signal.SIGINT)
    return validate_X(self, X, *args, **kwargs)


ResNetClassifier.on_train_begin, ResNetClassifier.on_epoch_end = begin, epoch_end
ResNetClassifier._validate_X = validate
"""


@pytest.mark.parametrize("phase, method", [("train", "random"), ("query", "lplgrad")])
def test_ctrl_c_stops_at_once_and_resume_finishes_the_run(tmp_path, phase, method):
    cfg = dict(SMALL, methods=[method], initial_size=20, query_size=200, n_cycles=1,
               max_epochs=6 if phase == "train" else 2, width=4, subset_size=None,
               seed=5)
    reference = run_experiment(**cfg, output_dir=str(tmp_path / "uninterrupted"))
    out = tmp_path / "interrupted"
    (tmp_path / "interrupt_hook.py").write_text(_INTERRUPT_HOOK)
    args = [a for a in _cli_args(cfg, out) if a != "--no-progress"]  # the cycle lines
    env = dict(os.environ, PYTHONUNBUFFERED="1", CRTCL_TEST_INTERRUPT=phase,
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO),
                                           os.environ.get("PYTHONPATH", "")]))
    run = ("import interrupt_hook, runpy; "
           "runpy.run_module('sklearn_crtcl.experiments', run_name='__main__', alter_sys=True)")
    proc = subprocess.run([sys.executable, "-c", run, *args], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    stdout, stderr = proc.stdout, proc.stderr
    assert f"[{method} trial 1/1] cycle 0/1:" in stdout, stderr  # cycle 0 was committed
    assert "cycle 1/1" not in stdout, "cycle 1 finished despite the signal"
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert (f"Interrupted. Continue with the same options and --resume (results so far are "
            f"in {out}).") in stderr
    # resumable: cycle 0 committed with its checkpoint, nothing of cycle 1, no temporary file
    state = load_state(out)
    assert [(r["method"], r["cycle"]) for r in state["records"]] == [(method, 0)]
    run = state["runs"][f"{method}/0"]
    assert run["cycle"] == 0 and not run["done"] and (out / "checkpoints" / run["checkpoint"]).exists()
    assert load_results(out) == state["records"]
    assert not list(out.rglob("*.tmp"))
    assert main(_cli_args(cfg, out) + ["--resume"]) == 0
    assert _without_times(load_results(out)) == _without_times(reference)


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    cfg = dict(SMALL, methods=["random"], n_cycles=1)
    out = tmp_path / "run"
    run_experiment(**cfg, output_dir=str(out))
    with pytest.raises(ValueError, match=r"configuration differs \(max_epochs: saved 1, "
                                         r"given 2; width: saved 2, given 3\)"):
        run_experiment(**dict(cfg, max_epochs=2, width=3), output_dir=str(out), resume=True)
    capsys.readouterr()
    assert main(_cli_args(dict(cfg, max_epochs=2), out) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "configuration differs (--epochs: saved 1, given 2)" in err
    assert "(or --overwrite to start over)" in err
    # a run already there: the flags to pass are named as flags
    assert main(_cli_args(cfg, out)) == 2
    assert ("pass --resume to continue it, --worker to join its workers, --overwrite to replace "
            "it") in capsys.readouterr().err


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def test_python_m_help(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sklearn_crtcl.experiments", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("sklearn_crtcl.experiments", run_name="__main__", alter_sys=True)
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--methods", "--initial-size", "--query-size", "--cycles",
                 "--trials", "--epochs", "--width", "--subset-size", "--seed", "--device",
                 "--warm-start", "--output-dir", "--resume", "--no-progress", "--preset"):
        assert flag in text
    assert "crtcl: critic loss" in text
    flat = " ".join(text.split())
    assert "--threads N CPU threads for torch (default: 1 on the CPU" in flat
    assert "236 s with 2 threads vs 8 s with 1" in flat


@pytest.mark.parametrize("argv, message", [
    (["--methods", "crtcl", "bogus"], "error: --methods: unknown method 'bogus'"),
    (["--methods", "crtcl:nope"], "error: --methods: unknown selection 'nope' in 'crtcl:nope'"),
    (["--query-size", "0"], "error: --query-size must be >= 1, got 0"),
    (["--cycles", "x"], "invalid int value"),
    (["--cycles", "-1"], "error: --cycles must be >= 0, got -1"),
    (["--trials", "0"], "error: --trials must be >= 1"),
    (["--epochs", "0"], "error: --epochs must be >= 1"),
    (["--threads", "0"], "error: --threads must be >= 1"),
    (["--resume", "--overwrite"], "not allowed with argument"),
    (["--subset-size", "5", "--query-size", "10"],
     "error: --subset-size (5) must be at least --query-size (10): each query picks "
     "--query-size samples"),
    (["--n-train", "100"], "error: --n-train and --n-test subsample the larger data sets"),
    (["--seed", str(2 ** 32 - 1), "--trials", "2"], "error: --seed + --trials - 1 = "),
])
def test_cli_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--device", "cpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    # the command line names its flags, not ExperimentConfig's fields
    for field in ("query_size", "n_cycles", "n_trials", "max_epochs", "num_threads",
                  "subset_size", "n_train"):
        assert field not in err


def test_cli_run_prints_summary_and_paths(tmp_path, capsys):
    out = tmp_path / "cli"
    cfg = dict(SMALL, methods=["entropy"], n_cycles=1)
    assert main(_cli_args(cfg, out)) == 0
    text = capsys.readouterr().out
    assert "## Test accuracy, one trial (no standard deviation)" in text
    assert "±" not in text.split("Plots")[0]
    assert "AUC accuracy" in text
    assert str(out / "results.csv") in text and str(out / "summary.md") in text
    records = load_results(out)
    assert [(r["method"], r["n_labeled"]) for r in records] == [("entropy", 20),
                                                               ("entropy", 30)]
    # a budget larger than the pool: clear error, exit status 2
    assert main(_cli_args(dict(cfg, initial_size=1340), tmp_path / "big")) == 2
    assert "exceeds the pool" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------


class _FixedProba:
    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)
        self.calls = []

    def predict_proba(self, X):
        self.calls.append(len(X))
        return self.proba[np.asarray(X, dtype=int).reshape(len(X), -1)[:, 0]]


def test_entropy_sampling_picks_highest_entropy_in_batches():
    proba = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3],
                      [0.8, 0.1, 0.1], [0.5, 0.5, 0.0]])
    X = np.arange(5).reshape(-1, 1)
    clf = _FixedProba(proba)
    idx = entropy_sampling(clf, X, n_instances=3, batch_size=2, selection="topk")
    assert idx.tolist() == [2, 1, 4]  # ties: lower index first
    assert clf.calls == [2, 2, 1]
    assert X.ravel().tolist() == [0, 1, 2, 3, 4]  # input untouched
    # with a candidate subset, only candidates are scored and returned
    sub = entropy_sampling(_FixedProba(proba), X, n_instances=2, subset_size=3, random_state=0,
                           selection="topk")
    cand = np.sort(np.random.RandomState(0).choice(5, size=3, replace=False))
    assert set(sub) <= set(cand) and len(sub) == 2
    with pytest.raises(ValueError, match="n_instances=6 is larger than the number of "
                                         "candidates"):
        entropy_sampling(clf, X, n_instances=6)
    with pytest.raises(ValueError, match="subset_size=2 candidates"):
        entropy_sampling(clf, X, n_instances=3, subset_size=2)
    with pytest.raises(TypeError, match="predict_proba"):
        entropy_sampling(object(), X, n_instances=1)


def test_area_under_curve_and_summary():
    records = []
    for trial, accs in enumerate([(0.5, 0.7, 0.8), (0.6, 0.6, 0.9)]):
        for cycle, acc in enumerate(accs):
            records.append(dict(method="m", trial=trial, cycle=cycle, n_labeled=10 + 10 * cycle,
                                accuracy=acc, ece=0.1 * trial, nll=1.0, wall_time=2.0,
                                query_time=0.5, train_time=1.5))
    auc = area_under_curve(records)
    # trapezoids over a range of 20: (6 + 7.5) / 20 for trial 0, (6 + 7.5) / 20 for trial 1
    np.testing.assert_allclose(auc["m"], [13.5 / 20, 13.5 / 20])
    single = area_under_curve([dict(records[0])])
    assert single["m"].tolist() == [0.5]
    text = summary_table(records)
    assert "| 0.675 ± 0.000 |" in text  # AUC: both trials 0.675
    assert "0.550 ± 0.050" in text  # cycle 0 accuracy
    assert "0.050 ± 0.050" in text  # ECE
    with pytest.raises(ValueError, match="no results"):
        summary_table([])


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def _cycle_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("[random")]


def test_progress_lines_without_tqdm(tmp_path, monkeypatch, capsys):
    from sklearn_crtcl.experiments import _progress

    cfg = dict(SMALL, methods=["random"], n_cycles=1, progress=True)
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    monkeypatch.setattr(sys, "stderr", _Terminal())  # even on a terminal
    records = run_experiment(**cfg, output_dir=str(tmp_path / "plain"))
    lines = _cycle_lines(capsys.readouterr().out)
    assert len(lines) == 2
    assert lines[1].startswith("[random trial 1/1] cycle 1/1: n_labeled=30 accuracy="
                               f"{records[1]['accuracy']:.4f}")
    assert sys.stderr.getvalue() == ""


def test_progress_bars_only_on_a_terminal(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    cfg = dict(SMALL, methods=["random"], n_cycles=1, progress=True)
    # stderr redirected to a file (here: captured, not a terminal): one line per cycle on
    # stdout, no cycle or epoch bars
    assert not sys.stderr.isatty()
    run_experiment(**cfg, output_dir=str(tmp_path / "redirected"))
    captured = capsys.readouterr()
    assert len(_cycle_lines(captured.out)) == 2
    assert "epoch" not in captured.err and "random trial" not in captured.err
    # stderr is a terminal: tqdm bars over cycles and epochs, no plain lines
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_experiment(**cfg, output_dir=str(tmp_path / "bars"))
    assert "random trial 1/1" in terminal.getvalue() and "epoch" in terminal.getvalue()
    assert _cycle_lines(capsys.readouterr().out) == []


def test_single_trial_summary_shows_no_std():
    records = [dict(method=m, trial=0, cycle=c, n_labeled=10 + 5 * c, accuracy=acc,
                    ece=0.25, nll=1.0, train_loss=0.5, wall_time=2.0, query_time=0.0,
                    train_time=2.0)
               for m, accs in (("a", (0.5, 0.7)), ("b", (0.6, 0.8))) for c, acc in enumerate(accs)]
    text = summary_table(records)
    assert "±" not in text
    assert "## Test accuracy, one trial (no standard deviation)" in text
    assert "## Test ECE (15 bins), one trial (no standard deviation)" in text
    assert "| a      |          0.500 |          0.700 |" in text  # a row per method
    assert "| b      |          0.600 |          0.800 |" in text
    assert "| a      |        0.600 |" in text  # AUC of a: (0.5 + 0.7) / 2


def test_plots_skipped_without_matplotlib(all_methods_run, tmp_path, monkeypatch):
    from sklearn_crtcl.experiments.report import save_plots

    _, records = all_methods_run
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert save_plots(records, tmp_path) == []
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------
# peers and selection variants


def test_peers_and_selection_variants_run_resume_and_differ_from_topk(tmp_path):
    from sklearn_crtcl.experiments import PEERS
    from sklearn_crtcl.experiments.methods import get_strategy, method_spec

    assert PEERS == ("badge", "coreset")
    assert not set(PEERS) & set(METHODS)
    spec = method_spec("crtcl:balanced")
    assert spec.name == "crtcl:balanced" and spec.query_params == {"selection": "balanced"}
    assert get_strategy("crtcl:balanced").keywords == {"selection": "balanced"}
    # (a 1-epoch net predicts one class: "balanced" would equal top-k here)
    methods = ("badge", "coreset", "entropy", "entropy:cluster", "entropy:softmax")
    cfg = dict(SMALL, methods=methods)
    records = run_experiment(ExperimentConfig(**cfg, output_dir=str(tmp_path / "a")))
    assert sorted({r["method"] for r in records}) == sorted(methods)
    state = load_state(tmp_path / "a")
    queried = {m: state["runs"][f"{m}/0"]["labeled"][20:] for m in methods}
    # the same first model (cycle 0) for the entropy variants, different batches
    assert len({tuple(q) for q in queried.values()}) == len(methods)
    for m in methods:
        assert len(set(queried[m])) == 20
    # reproducible, and a resumed run gives the same records
    again = run_experiment(ExperimentConfig(**cfg, output_dir=str(tmp_path / "b")))
    assert _without_times(again) == _without_times(records)
