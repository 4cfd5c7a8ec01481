"""The runner's store: workers, claims, heartbeats, safe checkpoints, damaged stores.

Every test that runs the benchmark runs against the default SQLite store and,
where ``CRTCL_TEST_POSTGRESQL_URL`` names a PostgreSQL role that may create
databases (``.ci/run`` starts a local server from Debian's package with
``.ci/postgres.sh``), against a fresh PostgreSQL database; without a server
those cases skip, saying so.
"""

import json
import math
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_crtcl.experiments import run_experiment
from sklearn_crtcl.experiments.checkpoint import CheckpointError, load_net, save_net
from sklearn_crtcl.experiments.cli import main
from sklearn_crtcl.experiments.methods import METHODS, get_strategy, make_estimator, method_spec
from sklearn_crtcl.experiments.report import RESULT_COLUMNS, TIME_COLUMNS, load_results
from sklearn_crtcl.experiments.runner import export_results, load_state
from sklearn_crtcl.experiments.storage import RunStore, default_url

REPO = Path(__file__).resolve().parents[1]
CFG = dict(dataset="digits", methods=["random", "crtcl"], initial_size=20, query_size=10,
           n_cycles=2, n_trials=2, max_epochs=1, width=2, subset_size=100, device="cpu",
           num_threads=1, seed=0, progress=False)
N_RECORDS = 2 * 2 * 3
PG_ENV = "CRTCL_TEST_POSTGRESQL_URL"


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The records of one process, times left out."""
    return _strip(run_experiment(**CFG, output_dir=str(tmp_path_factory.mktemp("single"))))


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    """A store URL: ``None`` (the default SQLite file) or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (.ci/postgres.sh starts one)")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (psycopg) is missing")
    from sqlalchemy.engine import make_url
    name = "crtcl_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"the PostgreSQL server of {PG_ENV} cannot be reached: {exc.orig}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def _args(out, storage=None, **overrides):
    cfg = {**CFG, **overrides}
    args = ["--dataset", cfg["dataset"], "--methods", *cfg["methods"],
            "--initial-size", str(cfg["initial_size"]), "--query-size", str(cfg["query_size"]),
            "--cycles", str(cfg["n_cycles"]), "--trials", str(cfg["n_trials"]),
            "--epochs", str(cfg["max_epochs"]), "--width", str(cfg["width"]),
            "--subset-size", str(cfg["subset_size"]), "--seed", str(cfg["seed"]),
            "--device", "cpu", "--threads", "1", "--output-dir", str(out), "--no-progress"]
    return args + (["--storage", storage] if storage else [])


def _worker(out, storage=None, timeout=2.0, hook=None):
    """A runner process started with --worker."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    args = _args(out, storage) + ["--worker", "--heartbeat-timeout", str(timeout)]
    code = "import runpy; runpy.run_module('sklearn_crtcl.experiments', run_name='__main__')"
    if hook:
        code = hook + "\n" + code
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(out, storage=None):
    state = load_state(out, storage)
    return [] if state is None else state["records"]


def _wait(procs, timeout=600):
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        outs.append((p.returncode, stdout, stderr))
    return outs


def _committed(out, storage, n, procs, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(_records(out, storage)) >= n:
                return
        except ValueError:  # the store is being created
            pass
        for p in procs:
            assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} cycles in {timeout} s"
        time.sleep(0.05)


# --------------------------------------------------------------------------- workers
@pytest.mark.parametrize("n_workers", [2, 3])
def test_workers_give_the_single_process_records(n_workers, storage, tmp_path, reference):
    out = tmp_path / "run"
    procs = [_worker(out, storage) for _ in range(n_workers)]
    results = _wait(procs)
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
    state = load_state(out, storage)
    assert _strip(state["records"]) == reference
    assert all(run["done"] and run["worker"] is None for run in state["runs"].values())
    # the last worker to finish wrote the exports, from the store
    assert _strip(load_results(out)) == reference
    assert (out / "summary.md").exists()
    # more than one worker did the work (each unit is claimed by whoever is free)
    summaries = [stdout for _, stdout, _ in results]
    assert sum("other workers are finishing" in s or "## Per method" in s
               for s in summaries) == n_workers


def test_a_killed_worker_is_replaced_and_nothing_is_lost_or_repeated(storage, tmp_path,
                                                                     reference):
    out = tmp_path / "run"
    first = _worker(out, storage, timeout=3.0)
    _committed(out, storage, 1, [first])
    second = _worker(out, storage, timeout=3.0)
    time.sleep(1.0)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    (code, _, stderr), = _wait([second])
    assert code == 0, stderr
    records = _records(out, storage)
    keys = [(r["method"], r["trial"], r["cycle"]) for r in records]
    assert len(keys) == len(set(keys)) == N_RECORDS
    assert _strip(records) == reference
    assert not list((out / "checkpoints").glob("*.safetensors"))


def _assert_kept(before, after):
    """The records of ``before`` are still in ``after``, unchanged; one that awaited its
    batch estimates (``estimation_time`` NaN) may have gained them meanwhile from the
    live worker, its paper columns unchanged."""
    assert len(after) >= len(before)
    for old, new in zip(before, after):
        if math.isnan(old["estimation_time"]):
            assert {k: new[k] for k in RESULT_COLUMNS} == {k: old[k] for k in RESULT_COLUMNS}
        else:
            assert new == old


def test_resume_and_overwrite_are_refused_while_a_worker_lives(storage, tmp_path, capsys):
    out = tmp_path / "run"
    proc = _worker(out, storage, timeout=30.0)
    try:
        _committed(out, storage, 1, [proc])
        before = _records(out, storage)
        for flag in ("--resume", "--overwrite"):
            assert main(_args(out, storage) + [flag]) == 2
            err = capsys.readouterr().err
            assert "workers are running it" in err and "heartbeat" in err, err
        # a plain run is refused too, naming --worker
        assert main(_args(out, storage)) == 2
        assert "--worker to join its workers" in capsys.readouterr().err
        _assert_kept(before, _records(out, storage))
    finally:
        proc.kill()
        proc.communicate()
    # the worker is dead (its pid is gone): --resume finishes the run
    assert main(_args(out, storage) + ["--resume"]) == 0
    assert len(_records(out, storage)) == N_RECORDS


def test_a_worker_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    run_experiment(**dict(CFG, n_cycles=0, n_trials=1), output_dir=str(out))
    assert main(_args(out, n_cycles=1) + ["--worker"]) == 2
    assert "cannot join the run" in capsys.readouterr().err


# --------------------------------------------------------------------------- resume, faults
def _killed_run(out, storage=None, n=1):
    """A run killed (SIGKILL) after ``n`` committed cycles."""
    proc = _worker(out, storage, timeout=60.0)
    _committed(out, storage, n, [proc])
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    state = load_state(out, storage)
    partial = [(key, run) for key, run in state["runs"].items()
               if not run["done"] and run["cycle"] >= 0]
    assert partial, "no unit was stopped mid-way"
    return state, partial[0]


def test_resume_loads_no_pickle(storage, tmp_path, reference, monkeypatch):
    out = tmp_path / "run"
    _killed_run(out, storage)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle.load called while resuming")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert _strip(run_experiment(**CFG, output_dir=str(out), storage=storage,
                                 resume=True)) == reference


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_checkpoint_is_never_used_and_the_unit_recomputed(damage, tmp_path,
                                                                    reference):
    out = tmp_path / "run"
    state, (key, run) = _killed_run(out, n=2)
    path = out / "checkpoints" / run["checkpoint"]
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:len(data) // 3]))
    else:
        path.unlink()
    kept = state["records"]
    with pytest.warns(RuntimeWarning, match=rf"checkpoint {path} "
                      + ("is missing" if damage == "delete" else "fails its SHA-256 check")
                      + rf".*{key} is recomputed from its seeds"):
        records = run_experiment(**CFG, output_dir=str(out), resume=True)
    assert _strip(records) == reference
    # the committed records are kept as they were (times included); one killed before
    # the estimates from its next batch were added (estimation_time NaN) is completed
    by_key = {(r["method"], r["trial"], r["cycle"]): r for r in records}
    for r in kept:
        again = by_key[r["method"], r["trial"], r["cycle"]]
        assert again == r or (math.isnan(r["estimation_time"])
                              and {k: again[k] for k in RESULT_COLUMNS}
                              == {k: r[k] for k in RESULT_COLUMNS})


def test_a_checkpoint_path_outside_the_store_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    _, (key, run) = _killed_run(out)
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(b"not to be read or removed")
    method, trial = key.split("/")
    with sqlite3.connect(out / "runs.sqlite3") as db:
        db.execute("UPDATE crtcl_units SET checkpoint = ? WHERE method = ? AND trial = ?",
                   (str(victim), method, int(trial)))
    before = (out / "runs.sqlite3").read_bytes()
    assert main(_args(out) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "contradicts itself" in err and "not a file name in checkpoints/" in err
    assert "--recover" in err and "Traceback" not in err
    assert victim.read_bytes() == b"not to be read or removed"
    assert (out / "runs.sqlite3").read_bytes() == before


def test_contradicting_records_are_refused_then_recovered(tmp_path, capsys, reference):
    out = tmp_path / "run"
    run_experiment(**CFG, output_dir=str(out))
    with sqlite3.connect(out / "runs.sqlite3") as db:
        labeled = json.loads(db.execute("SELECT labeled FROM crtcl_units WHERE method = "
                                        "'crtcl' AND trial = 1").fetchone()[0])
        labeled[-1] = labeled[0]  # a repeated index
        db.execute("UPDATE crtcl_units SET labeled = ? WHERE method = 'crtcl' AND trial = 1",
                   (json.dumps(labeled),))
        db.execute("DELETE FROM crtcl_records WHERE method = 'random' AND trial = 0 "
                   "AND cycle = 1")
    before = (out / "runs.sqlite3").read_bytes()
    assert main(_args(out) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "crtcl/1: its labeled indices repeat" in err
    assert "random/0: it has records of cycles [0, 2], committed up to 2" in err
    assert (out / "runs.sqlite3").read_bytes() == before  # nothing changed
    kept = [r for r in load_results(out) if (r["method"], r["trial"]) in
            {("random", 1), ("crtcl", 0)}]
    assert main(_args(out) + ["--resume", "--recover"]) == 0
    records = load_state(out)["records"]
    assert _strip(records) == reference
    for r in kept:  # the units that did not contradict themselves kept their records
        assert r in records


def test_a_store_that_is_not_a_database_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "runs.sqlite3").write_bytes(b"garbage, not a database" * 10)
    assert main(_args(out) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert f"the store {out / 'runs.sqlite3'} is not an SQLite database" in err
    assert (out / "runs.sqlite3").read_bytes() == b"garbage, not a database" * 10
    # a truncated SQLite file: named, untouched
    good = tmp_path / "good"
    run_experiment(**dict(CFG, n_cycles=0, n_trials=1), output_dir=str(good))
    data = (good / "runs.sqlite3").read_bytes()
    (good / "runs.sqlite3").write_bytes(data[:len(data) // 2 + 7])
    code = main(_args(good, n_cycles=0, n_trials=1) + ["--resume"])
    err = capsys.readouterr().err
    assert code == 2 and str(good / "runs.sqlite3") in err and "Traceback" not in err, err
    assert (good / "runs.sqlite3").read_bytes() == data[:len(data) // 2 + 7]


def test_a_store_from_a_newer_release_or_foreign_tables_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    run_experiment(**dict(CFG, n_cycles=0, n_trials=1), output_dir=str(out))
    with sqlite3.connect(out / "runs.sqlite3") as db:
        db.execute("UPDATE crtcl_meta SET value = '99' WHERE key = 'schema'")
    assert main(_args(out, n_cycles=0, n_trials=1) + ["--resume"]) == 2
    assert "written by a newer release of sklearn-crtcl (schema 99" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "runs.sqlite3") as db:
        db.execute("CREATE TABLE crtcl_units (x)")
    assert main(_args(foreign) + ["--resume"]) == 2
    assert "not a sklearn-crtcl run's" in capsys.readouterr().err


def test_an_output_dir_of_an_earlier_release_is_refused(tmp_path, capsys):
    out = tmp_path / "old"
    (out / "checkpoints").mkdir(parents=True)
    (out / "state.json").write_text('{"format": 2}')
    (out / "checkpoints" / "random-trial0-cycle0.pkl").write_bytes(b"\x80\x04N.")
    assert main(_args(out) + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "earlier release" in err and "a pickle can run code" in err and "--overwrite" in err
    assert (out / "checkpoints" / "random-trial0-cycle0.pkl").exists()
    assert main(_args(out, n_cycles=0, n_trials=1) + ["--overwrite"]) == 0
    assert not (out / "state.json").exists()
    assert not list((out / "checkpoints").glob("*.pkl"))


def test_exports_are_rebuilt_from_the_store(tmp_path, capsys):
    out = tmp_path / "run"
    records = run_experiment(**dict(CFG, n_trials=1), output_dir=str(out))
    csv, summary = (out / "results.csv").read_bytes(), (out / "summary.md").read_bytes()
    (out / "results.csv").unlink()
    (out / "summary.md").write_text("edited")
    assert export_results(out) == records
    assert (out / "results.csv").read_bytes() == csv
    assert (out / "summary.md").read_bytes() == summary
    (out / "results.csv").unlink()
    assert main(["--export", "--output-dir", str(out)]) == 0
    assert (out / "results.csv").read_bytes() == csv
    assert main(["--export", "--output-dir", str(tmp_path / "empty")]) == 2
    assert "holds no run to export" in capsys.readouterr().err


def test_opening_a_store_writes_nothing(tmp_path):
    store = RunStore(default_url(tmp_path / "absent"))
    assert store.status() is None and not (tmp_path / "absent").exists()
    with pytest.raises(ValueError, match="not an in-memory database"):
        RunStore("sqlite://")
    with pytest.raises(ValueError, match="is not a database URL"):
        RunStore("no url")


# --------------------------------------------------------------------------- checkpoints
def _digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32).reshape(-1, 1, 8, 8), y


@pytest.mark.parametrize("method", METHODS)
def test_checkpoint_round_trip_continues_bit_for_bit(method, tmp_path):
    X, y = _digits()

    def build():
        return make_estimator(method, classes=np.arange(10), width=2, max_epochs=2,
                              batch_size=32, device="cpu", warm_start=True, random_state=0)
    kw = {"X_unlabeled": X[100:200]} if method_spec(method).semi_supervised else {}
    net = build().fit(X[:50], y[:50], **kw)
    sha = save_net(net, tmp_path / "net.safetensors")
    loaded = load_net(build(), tmp_path / "net.safetensors", sha)
    strategy = get_strategy(method)
    np.testing.assert_array_equal(strategy(net, X[200:400], n_instances=5, random_state=1)[0],
                                  strategy(loaded, X[200:400], n_instances=5,
                                           random_state=1)[0])
    for n in (net, loaded):
        n.set_params(random_state=7)
        n.fit(X[:80], y[:80], **kw)
    np.testing.assert_array_equal(net.predict_proba(X[400:500]),
                                  loaded.predict_proba(X[400:500]))
    assert len(net.history) == len(loaded.history)


def test_checkpoint_refuses_other_bytes_and_other_nets(tmp_path):
    X, y = _digits()
    kwargs = dict(classes=np.arange(10), width=2, max_epochs=1, batch_size=32, device="cpu",
                  warm_start=True, random_state=0)
    net = make_estimator("random", **kwargs).fit(X[:40], y[:40])
    path = tmp_path / "net.safetensors"
    sha = save_net(net, path)
    with pytest.raises(CheckpointError, match="fails its SHA-256 check"):
        load_net(make_estimator("random", **kwargs), path, "0" * 64)
    with pytest.raises(CheckpointError, match="holds 'ResNetClassifier'.*not a CriticLossNet"):
        load_net(make_estimator("crtcl", **kwargs), path, sha)
    with pytest.raises(CheckpointError, match="is missing"):
        load_net(make_estimator("random", **kwargs), tmp_path / "absent", sha)


def test_writers_killed_at_random_moments_resume_to_the_same_records(tmp_path, reference):
    # SIGKILL at random moments (during training, a query, a checkpoint write or a
    # commit), resumed each time; the run ends with the uninterrupted records
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(4):
        proc = _worker(out, timeout=60.0)
        _committed(out, None, len(_records(out)) + 1, [proc])  # it is under way
        time.sleep(float(rng.uniform(0.0, 1.0)))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        counts.append(len(_records(out)))
    # each process was killed mid-run, and the run went on between kills
    assert counts[-1] < N_RECORDS and counts[0] < counts[-1], counts
    assert main(_args(out) + ["--resume"]) == 0
    records = load_state(out)["records"]
    keys = [(r["method"], r["trial"], r["cycle"]) for r in records]
    assert len(keys) == len(set(keys)) == N_RECORDS
    assert _strip(records) == reference
    assert not list((out / "checkpoints").glob("*"))
    assert not list(out.rglob("*.tmp"))


def test_leftovers_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    """A resumed or finished run removes the temporary files of dead writers and the
    checkpoints no unit references; a live writer's files, files of other hosts
    younger than heartbeat_timeout, and files that are not the runner's stay. The
    earlier release's temporary files (no writer in the name) go once
    heartbeat_timeout old."""
    import socket
    out = tmp_path / "run"
    cfg = dict(CFG, methods=["random"], n_trials=1)
    # a run stopped after cycle 0: its unit references one checkpoint
    from sklearn_crtcl.experiments import storage
    real = storage.RunStore.commit_cycle

    def stop_after_cycle_0(self, *args, **kwargs):
        if args[3] == 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    storage.RunStore.commit_cycle = stop_after_cycle_0
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(**cfg, output_dir=str(out))
    finally:
        storage.RunStore.commit_cycle = real
    ckpt = out / "checkpoints"
    (kept_ckpt,) = [p.name for p in ckpt.glob("*.safetensors")]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host, live, old = socket.gethostname(), os.getpid(), time.time() - 10 * 120.0
    planted = {  # name -> removed by the resume
        ckpt / f"random-trial0-cycle1-0123456789ab.safetensors": True,  # never committed
        ckpt / f"random-trial0-cycle1-ba9876543210.safetensors.{dead}@{host}.ab_12cd.tmp":
            True,
        out / f"results.csv.{dead}@{host}.x9y8z7w6.tmp": True,
        out / f"summary.md.{live}@{host}.abcdefgh.tmp": False,  # its writer lives
        out / f"results.csv.{live}@other-host.example.abcdefgh.tmp": False,  # too young
        out / f"summary.md.{live}@other-host.example.zyxwvuts.tmp": True,  # old: dead
        out / f"notes.txt.{dead}@{host}.abcdefgh.tmp": False,  # not an export
        out / "scratch.tmp": False,
        ckpt / "mine.bin": False,
        # the release before the writer was in the name (mkstemp's 8 characters)
        out / "results.csv.k2j4_h8q.tmp": True,  # old: its writer is long gone
        out / "summary.md.a1b2c3d4.tmp": False,  # young: it may still be written
        ckpt / "random-trial0-cycle2-0123456789ab.safetensors.zz9y8x7w.tmp": True,  # old
        out / "notes.txt.k2j4_h8q.tmp": False,  # old, but not an export
    }
    for p in planted:
        p.write_bytes(b"x")
    os.utime(out / f"summary.md.{live}@other-host.example.zyxwvuts.tmp", (old, old))
    for name in ("results.csv.k2j4_h8q.tmp", "notes.txt.k2j4_h8q.tmp"):
        os.utime(out / name, (old, old))
    os.utime(ckpt / "random-trial0-cycle2-0123456789ab.safetensors.zz9y8x7w.tmp", (old, old))
    records = run_experiment(**cfg, output_dir=str(out), resume=True)
    assert len(records) == 3
    for p, removed in planted.items():
        assert p.exists() != removed, p.name
    assert not (ckpt / kept_ckpt).exists()  # the finished unit no longer needs it
    assert sorted(p.name for p in ckpt.iterdir()) == ["mine.bin"]


def test_an_interrupted_unit_is_released_at_once(tmp_path, monkeypatch):
    """Ctrl-C (or an error) in a unit gives it up in the store: no worker holds it,
    so a resume from the same, still running, process is not refused as live."""
    from sklearn_crtcl.experiments import storage

    real = storage.RunStore.commit_cycle

    def interrupted(self, *args, **kwargs):
        if args[3] == 1:  # cycle 1 of the first unit
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(storage.RunStore, "commit_cycle", interrupted)
    cfg = dict(CFG, methods=["random"], n_trials=1)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(**cfg, output_dir=str(tmp_path))
    unit = load_state(tmp_path)["runs"]["random/0"]
    assert unit["cycle"] == 0 and unit["worker"] is None and unit["heartbeat"] is None
    monkeypatch.setattr(storage.RunStore, "commit_cycle", real)
    assert len(run_experiment(**cfg, output_dir=str(tmp_path), resume=True)) == 3


def test_update_record_needs_the_claim_at_that_cycle(tmp_path):
    """A record is completed only by the worker that holds its unit at that cycle."""
    from sklearn_crtcl.experiments.storage import LostClaimError
    store = RunStore(default_url(tmp_path))
    try:
        store.create({"n": 1}, [("random", 0)])
        assert store.claim("me", 60.0)["method"] == "random"
        store.commit_cycle("me", "random", 0, 0, [1, 2], "c.safetensors", "0" * 64, False,
                           {"a": 1})
        for worker, cycle in (("other", 0), ("me", 1)):
            with pytest.raises(LostClaimError, match="no longer holds the unit at cycle"):
                store.update_record(worker, "random", 0, cycle, {"a": 3})
        assert [r["record"] for r in store.records()] == [{"a": 1}]  # nothing written
        store.update_record("me", "random", 0, 0, {"a": 2})
        assert [r["record"] for r in store.records()] == [{"a": 2}]
        store.release("me", "random", 0)
        with pytest.raises(LostClaimError):
            store.update_record("me", "random", 0, 0, {"a": 4})
    finally:
        store.dispose()


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "30"])
def test_heartbeat_timeout_must_be_a_positive_number_of_seconds(value, tmp_path):
    with pytest.raises(ValueError, match=r"heartbeat_timeout must be a positive number of "
                                         r"seconds, got"):
        run_experiment(**CFG, output_dir=str(tmp_path / "run"), heartbeat_timeout=value)
    assert not (tmp_path / "run").exists()  # refused before any work
