"""The runner's per-cycle accuracy estimates and stopping verdicts (``estimation=True``)."""

import math

import numpy as np
import pytest

from sklearn_crtcl.estimation import estimate_accuracy
from sklearn_crtcl.experiments import run_experiment
from sklearn_crtcl.experiments.estimates import (ESTIMATE_COLUMNS, RUN_CRITERIA,
                                                 RUN_ESTIMATES, estimation_summary)
from sklearn_crtcl.experiments.report import (RESULT_COLUMNS, TIME_COLUMNS, load_results,
                                              record_columns)
from sklearn_crtcl.experiments.runner import load_state
from sklearn_crtcl.stopping import (AccuracyGain, ClassificationChange, StabilizingPredictions,
                                    stopping_summary)

# random (a uniform draw: importance estimate), entropy (top-k: none), entropy:rank (a
# stochastic selection's proposal); 3 cycles so that the criteria have a history
CFG = dict(dataset="digits", methods=["random", "entropy", "entropy:rank"], initial_size=30,
           query_size=20, n_cycles=3, n_trials=1, max_epochs=2, width=2, subset_size=200,
           device="cpu", num_threads=1, progress=False, seed=1)


def _strip(records, columns=None):
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS
             and (columns is None or k in columns)} for r in records]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("estimation") / "run"
    records = run_experiment(**CFG, output_dir=str(out))
    _LABELED["random"] = load_state(out)["runs"]["random/0"]["labeled"]
    return out, records


_LABELED = {}


def load_state_of(records):
    """The final labeled rows of the run's random unit, in the order they were labeled."""
    return np.asarray(_LABELED["random"])


def test_records_hold_the_estimates_and_verdicts(run):
    out, records = run
    assert len(records) == 3 * 4
    for r in records:
        assert tuple(r) == RESULT_COLUMNS + ESTIMATE_COLUMNS
        assert r["n_test"] > 0 and 0 <= r["pool_accuracy"] <= 1
        assert 0 <= r["est_confidence"] <= 1
        last = r["cycle"] == CFG["n_cycles"]
        # the label-based estimates need the next batch: none after the last cycle
        for m in ("temperature", "atc", "doc"):
            assert math.isnan(r[f"est_{m}"]) == last
        # the pooled temperature has the earlier batches even after the last cycle
        assert 0 < r["est_temperature_pooled"] < 1
        if r["cycle"] == 0:
            assert r["est_temperature_pooled"] == r["est_temperature"]
        # a top-k query has no proposal, random sampling and "rank" have one
        has_draw = r["method"] != "entropy" and not last
        assert math.isfinite(r["est_importance"]) == has_draw
        assert math.isfinite(r["est_importance_low"]) == has_draw
        assert math.isnan(r["est_critic"])  # no probabilistic critic among these methods
        for c in RUN_CRITERIA:
            assert isinstance(r[f"stop_{c}"], bool)
        assert r["estimation_time"] >= 0
    # NaN round-trips as one object: the CSV's records equal the store's
    assert load_results(out) == records


def test_estimation_leaves_the_papers_records_unchanged(run, tmp_path):
    out, records = run
    plain = run_experiment(**CFG, output_dir=str(tmp_path / "plain"), estimation=False)
    assert all(tuple(r) == RESULT_COLUMNS for r in plain)
    assert _strip(plain) == _strip(records, RESULT_COLUMNS)
    assert tuple(load_results(tmp_path / "plain")[0]) == record_columns(False)


def _interrupted(out, n_commits, monkeypatch, **cfg):
    """Run ``cfg`` (default: CFG) in ``out`` and stop it (Ctrl-C) at the commit after
    ``n_commits``."""
    from sklearn_crtcl.experiments import storage

    real = storage.RunStore.commit_cycle
    calls = {"n": 0}

    def commit(self, *args, **kwargs):
        if calls["n"] == n_commits:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(storage.RunStore, "commit_cycle", commit)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(**(cfg or CFG), output_dir=str(out))
    monkeypatch.setattr(storage.RunStore, "commit_cycle", real)
    return out


def test_resume_restores_the_criteria(run, tmp_path, monkeypatch):
    """A run stopped after cycle 1 and resumed gives the uninterrupted records,
    the criteria's statistics and verdicts included (they carry state)."""
    out, records = run
    cut = _interrupted(tmp_path / "cut", 2, monkeypatch)  # cycles 0 and 1 committed
    state = load_state(cut)
    assert len(state["records"]) == 2
    _check_by_hand(cut, state, records)
    resumed = run_experiment(**CFG, output_dir=str(cut), resume=True)
    assert _strip(resumed) == _strip(records)


def _check_by_hand(out, state, records):
    """Random's estimates of its committed cycle, recomputed from its checkpoint
    (the model of that cycle) and the batch it queried (the next 20 labeled rows of
    the uninterrupted run)."""
    from sklearn_crtcl.experiments.checkpoint import load_net
    from sklearn_crtcl.experiments.runner import (_FIT, ExperimentConfig, _derived_seed,
                                                  _estimation_rows, _load_data,
                                                  _proposal_kind)
    from sklearn_crtcl.experiments.methods import make_estimator, method_spec

    config = ExperimentConfig(**CFG, output_dir=str(out))
    X_train, _, y_train, _ = _load_data(config)
    unit = state["runs"]["random/0"]
    c = unit["cycle"]
    assert c == 1 and _proposal_kind(method_spec("random")) == "uniform"
    net = make_estimator("random", classes=np.unique(y_train), width=config.width,
                         max_epochs=config.max_epochs, batch_size=config.batch_size,
                         device="cpu", warm_start=True,
                         random_state=_derived_seed(config, 0, 0, _FIT))
    net = load_net(net, out / "checkpoints" / unit["checkpoint"], unit["checkpoint_sha256"])
    final = next(r for r in records if r["method"] == "random" and r["cycle"] == c)
    full = load_state_of(records)
    pool = np.setdiff1d(np.arange(len(X_train)), unit["labeled"])
    n = len(unit["labeled"])
    assert list(full[:n]) == unit["labeled"]
    batch = full[n:n + 20]
    # the estimated rows: a random subset_size subset of the pool, drawn by the runner
    rows = _estimation_rows(config, 0, c, len(X_train), unit["labeled"])
    assert len(rows) == CFG["subset_size"] and np.isin(rows, pool).all()
    X_est = X_train[rows]
    assert final["pool_accuracy"] == np.mean(net.predict(X_est) == y_train[rows])
    assert final["est_confidence"] == pytest.approx(
        estimate_accuracy(net, X_est).estimate, abs=1e-12)
    kw = dict(X_labeled=X_train[batch], y_labeled=y_train[batch])
    assert final["est_atc"] == pytest.approx(
        estimate_accuracy(net, X_est, "atc", **kw).estimate, abs=1e-12)
    # the importance estimate is over the query's candidates: the whole pool (a uniform
    # draw from a random subset of it is a uniform draw from it)
    q = 1.0 / (len(pool) - np.arange(20, dtype=np.float64))
    # ...with the runner's interval: Korn-Graubard's at 90 %
    imp = estimate_accuracy(net, X_train[pool], "importance", q=q, confidence_level=0.9, **kw)
    got = (final["est_importance"], final["est_importance_low"], final["est_importance_high"])
    assert got == pytest.approx((imp.estimate, imp.low, imp.high), abs=1e-12)
    wider = estimate_accuracy(net, X_train[pool], "importance", q=q, **kw)  # 95 %
    assert wider.high - wider.low > imp.high - imp.low > 0
    # the store keeps each cycle's batch with its model's probabilities (held out
    # from it): cycle 1's are this checkpoint's; the pooled temperature of cycle 1
    # fits them and cycle 0's
    held = _stored_held_out(out, "random")
    assert [h["rows"] for h in held] == [list(full[30:50]), list(batch)]
    np.testing.assert_allclose(held[1]["proba"], net.predict_proba(X_train[batch]),
                               rtol=0, atol=1e-12)
    pooled = estimate_accuracy(
        net, X_est, "temperature", held_out=[(np.asarray(held[0]["proba"]),
                                              y_train[held[0]["rows"]])], **kw)
    assert final["est_temperature_pooled"] == pytest.approx(pooled.estimate, abs=1e-12)
    assert final["est_temperature_pooled"] != final["est_temperature"]


def _stored_held_out(out, method):
    """The held-out batches of ``method``'s stored records, in cycle order."""
    import json
    import sqlite3

    from sklearn_crtcl.experiments.estimates import HELD_OUT_KEY
    db = sqlite3.connect(out / "runs.sqlite3")
    rows = db.execute("SELECT cycle, data FROM crtcl_records WHERE method = ? ORDER BY cycle",
                      (method,)).fetchall()
    db.close()
    records = [json.loads(data) for _, data in rows]
    return [r[HELD_OUT_KEY] for r in records if HELD_OUT_KEY in r]


def test_damaged_held_out_batches_are_refused(tmp_path, monkeypatch):
    """Held-out probabilities read back from the store are checked before use: a
    damaged one makes the store contradict itself (recomputed with recover=True)."""
    import json
    import sqlite3

    from sklearn_crtcl.experiments.estimates import HELD_OUT_KEY
    cfg = dict(CFG, methods=["random"], n_trials=1, n_cycles=3)
    for damage in ("proba", "rows", "nan"):
        out = _interrupted(tmp_path / damage, 2, monkeypatch, **cfg)
        db = sqlite3.connect(out / "runs.sqlite3")
        data = json.loads(db.execute("SELECT data FROM crtcl_records WHERE cycle = 0")
                          .fetchone()[0])
        held = data[HELD_OUT_KEY]
        if damage == "proba":
            held["proba"][0] = [2.0] + held["proba"][0][1:]
        elif damage == "rows":
            held["rows"][1] = held["rows"][0]
        else:
            held["proba"][3][0] = float("nan")
        db.execute("UPDATE crtcl_records SET data = ? WHERE cycle = 0", (json.dumps(data),))
        db.commit()
        db.close()
        with pytest.raises(Exception, match="holds damaged held-out probabilities"):
            run_experiment(**cfg, output_dir=str(out), resume=True)


def test_a_recomputed_unit_restores_the_criteria(run, tmp_path, monkeypatch):
    """The same when the checkpoint is lost: the unit is replayed from its seeds."""
    out, records = run
    cut = _interrupted(tmp_path / "cut", 3, monkeypatch)
    for f in (cut / "checkpoints").glob("*"):
        f.unlink()
    with pytest.warns(RuntimeWarning, match="recomputed from its seeds"):
        resumed = run_experiment(**CFG, output_dir=str(cut), resume=True)
    assert _strip(resumed) == _strip(records)


def test_summary_and_plot_report_estimates_and_stops(run):
    out, records = run
    summary = (out / "summary.md").read_text()
    assert "## Accuracy estimates" in summary and "## Stopping" in summary
    assert (out / "estimates.png").stat().st_size > 10_000
    # the stopping table's numbers are stopping_summary's
    rows = stopping_summary([r for r in records if r["method"] == "random"],
                            criteria=RUN_CRITERIA, prices=[1.0])
    row = next(r for r in rows if r["criterion"] == "overall_uncertainty")
    stops = summary.split("## Stopping")[1].splitlines()

    def cells(criterion, method):  # the row's cells for the prices 0.1, 1 and 10
        line = next(ln.split("|") for ln in stops
                    if ln.startswith(f"| {criterion} ") and f"| {method} " in ln)
        return [c.strip() for c in line[3:6]]

    assert f"{float(row['stop_cycle']):.1f} / {row['regret']:.0f} /" in cells(
        "overall_uncertainty", "random")[1]
    # the estimators' errors: the mean absolute error over cycles with an estimate
    rand = [r for r in records if r["method"] == "random"]
    mae = np.mean([abs(r["est_confidence"] - r["pool_accuracy"]) for r in rand])
    section = summary.split("## Accuracy estimates")[1].split("## Stopping")[0]
    assert section.strip() in estimation_summary(records, interval="korn-graubard-truncated, 90%")
    assert "interval (korn-graubard-truncated, 90%) covers" in section
    table = next(ln for ln in section.splitlines() if ln.startswith("| random "))
    assert table.split("|")[2].strip() == f"{mae:.3f}"
    # entropy (top-k) has no importance estimate, so no verdict on its gain: dashes;
    # the hindsight rows give the cheapest cycle
    assert cells("accuracy_gain_importance", "entropy") == ["-"] * 3
    assert "-" not in cells("accuracy_gain_importance", "random")
    assert cells("hindsight optimum", "random")[1] == f"{float(row['best_cycle']):.1f} / 0 / 100%"
    # the break-even gain, by hand: the first cycle whose confidence rose by less than
    # query size / (price x test size) since the previous one, else the last
    stops_at, regrets = [], []
    for t in sorted({r["trial"] for r in rand}):
        run_t = sorted((r for r in rand if r["trial"] == t), key=lambda r: r["cycle"])
        est = [r["est_confidence"] for r in run_t]
        bar = CFG["query_size"] / (1.0 * run_t[0]["n_test"])
        stop = next((c for c in range(1, len(est)) if est[c] - est[c - 1] < bar),
                    len(est) - 1)
        cost = [r["n_labeled"] + 1.0 * r["n_test"] * (1 - r["accuracy"]) for r in run_t]
        stops_at.append(stop)
        regrets.append(cost[stop] - min(cost))
    assert cells("break_even_confidence", "random")[1].startswith(
        f"{np.mean(stops_at):.1f} / {np.mean(regrets):.0f} /")
    assert cells("break_even_importance", "entropy") == ["-"] * 3
    assert "break_even_<e>" in summary
    # every table fits a page: at most 9 columns
    assert all(ln.count("|") <= 10 for ln in summary.splitlines())
    table = next(ln for ln in section.splitlines() if ln.startswith("| entropy "))
    # a top-k query has no importance estimate (columns: "", method, RUN_ESTIMATES)
    assert table.split("|")[2 + RUN_ESTIMATES.index("importance")].strip() == "-"


def test_a_summary_of_runs_too_short_for_a_gain_has_dashes_and_no_warning(run):
    """One cycle per trial: no gain and no break-even verdict exists; their cells are
    dashes, not the mean of nothing (numpy's "Mean of empty slice" and a nan)."""
    import warnings
    _, records = run
    first = [r for r in records if r["cycle"] == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = estimation_summary(first)
    stops = summary.split("## Stopping")[1]
    assert "nan" not in summary
    line = next(ln for ln in stops.splitlines() if ln.startswith("| break_even_confidence ")
                and "| random " in ln)
    assert [c.strip() for c in line.split("|")[3:6]] == ["-"] * 3
    assert "or no trial with the two cycles a gain needs" in stops


def test_uniform_draw_importance_estimate_is_the_batch_mean_with_lure():
    """The runner's per-draw probabilities of random sampling, 1 / (N - m), are
    those of a uniform draw: LURE's weights are then all 1 (the batch mean)."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int)
    clf = LogisticRegression().fit(X[:50], y[:50])
    batch = rng.choice(300, 40, replace=False)
    q = 1.0 / (300 - np.arange(40, dtype=np.float64))
    e = estimate_accuracy(clf, X, "importance", X_labeled=X[batch], y_labeled=y[batch], q=q,
                          estimator="lure")
    assert e.estimate == pytest.approx(np.mean(clf.predict(X[batch]) == y[batch]))


@pytest.mark.parametrize("make", [
    lambda X: StabilizingPredictions(X, window=2),
    lambda X: ClassificationChange(X, threshold=0.05),
    lambda X: AccuracyGain("confidence", window=2),
])
def test_restore_continues_like_an_uninterrupted_criterion(make):
    from sklearn.linear_model import LogisticRegression
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    models = [LogisticRegression(C=c).fit(X[:n], y[:n])
              for c, n in ((0.01, 20), (0.1, 60), (1.0, 150), (1.0, 300), (1.0, 310))]
    whole = make(X[300:])
    decisions = [whole.update(m, X[300:]) for m in models]
    again = make(X[300:]).restore([d.value if not isinstance(whole, AccuracyGain)
                                   else whole.history_[i] for i, d in enumerate(decisions[:3])],
                                  models[2])
    later = [again.update(m, X[300:]) for m in models[3:]]
    for a, b in zip(later, decisions[3:]):
        assert (a.stop, a.round) == (b.stop, b.round)
        assert a.value == pytest.approx(b.value, nan_ok=True)


def test_restore_checks_its_input():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="needs the last round's learner"):
        StabilizingPredictions(X).restore([0.5])
    with pytest.raises(ValueError, match="history must hold numbers"):
        AccuracyGain().restore(["0.5"])
    assert StabilizingPredictions(X).restore([]).history_ == []


def test_a_run_of_the_release_before_estimation_resumes_without_it(tmp_path, capsys):
    """A store whose settings predate ``estimation`` recorded the paper's columns
    only: resuming it asks for --no-estimation, and continues with it."""
    import json
    import sqlite3

    from sklearn_crtcl.experiments.cli import main
    cfg = dict(CFG, methods=["random"], n_cycles=1)
    out = tmp_path / "old"
    run_experiment(**cfg, output_dir=str(out), estimation=False)
    db = sqlite3.connect(out / "runs.sqlite3")
    (value,) = db.execute("SELECT value FROM crtcl_meta WHERE key = 'config'").fetchone()
    old = json.loads(value)
    del old["estimation"]
    db.execute("UPDATE crtcl_meta SET value = ? WHERE key = 'config'",
               (json.dumps(old, sort_keys=True),))
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=r"estimation: saved False, given True"):
        run_experiment(**cfg, output_dir=str(out), resume=True)
    args = ["--dataset", "digits", "--methods", "random", "--initial-size", "30",
            "--query-size", "20", "--cycles", "1", "--trials", "1", "--epochs", "2",
            "--width", "2", "--subset-size", "200", "--device", "cpu", "--threads", "1",
            "--seed", "1", "--no-progress", "--output-dir", str(out), "--resume"]
    assert main(args) == 2
    assert "--no-estimation: saved False, given True" in capsys.readouterr().err
    records = run_experiment(**cfg, output_dir=str(out), resume=True, estimation=False)
    assert len(records) == 2 and all(tuple(r) == RESULT_COLUMNS for r in records)


def test_a_run_of_the_release_before_the_interval_options_resumes_with_its_interval(
        tmp_path, capsys, monkeypatch):
    """A store whose settings predate ``importance_interval`` and ``confidence_level``
    recorded the normal 95 % interval: resuming asks for both, and goes on with them."""
    import json
    import sqlite3

    from sklearn_crtcl.experiments.cli import main
    cfg = dict(CFG, methods=["random"], n_trials=1, n_cycles=2)
    out = tmp_path / "old"
    with pytest.raises(ValueError, match=r"importance_interval.*'wald'"):
        run_experiment(**cfg, output_dir=str(out), importance_interval="wald")
    for level in (0.0, 1.0, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match="confidence_level"):
            run_experiment(**cfg, output_dir=str(out), confidence_level=level)
    _interrupted(out, 2, monkeypatch, **cfg, importance_interval="normal",
                 confidence_level=0.95)
    db = sqlite3.connect(out / "runs.sqlite3")
    (value,) = db.execute("SELECT value FROM crtcl_meta WHERE key = 'config'").fetchone()
    old = json.loads(value)
    del old["importance_interval"], old["confidence_level"]
    db.execute("UPDATE crtcl_meta SET value = ? WHERE key = 'config'",
               (json.dumps(old, sort_keys=True),))
    db.commit()
    db.close()
    args = ["--dataset", "digits", "--methods", "random", "--initial-size", "30",
            "--query-size", "20", "--cycles", "2", "--trials", "1", "--epochs", "2",
            "--width", "2", "--subset-size", "200", "--device", "cpu", "--threads", "1",
            "--seed", "1", "--no-progress", "--output-dir", str(out), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--importance-interval: saved 'normal', given 'korn-graubard-truncated'" in err, err
    assert "--confidence-level: saved 0.95, given 0.9" in err, err
    assert main(args + ["--importance-interval", "normal", "--confidence-level", "0.95"]) == 0
    records = load_results(out)
    assert len(records) == 3
    # the resumed cycle's interval is the stored run's: the normal 95 % one
    full = run_experiment(**cfg, output_dir=str(tmp_path / "whole"),
                          importance_interval="normal", confidence_level=0.95)
    assert _strip(records) == _strip(full)


@pytest.mark.parametrize("newer", [3, 6])
def test_a_run_of_an_earlier_release_resumes(tmp_path, monkeypatch, newer):
    """Records of a release before ``est_temperature_pooled`` (``newer=3``: and the
    held-out batches it fits on) or before ``est_temperature`` too (6) are read back
    with NaN there; the resumed cycles have them, every other column is the
    uninterrupted run's."""
    import json
    import sqlite3

    from sklearn_crtcl.experiments.estimates import HELD_OUT_KEY, NEWER_COLUMNS
    lacking = set(NEWER_COLUMNS[:newer]) | {HELD_OUT_KEY}
    cfg = dict(CFG, methods=["random"], n_trials=1, n_cycles=3)
    out = _interrupted(tmp_path / "old", 2, monkeypatch, **cfg)
    db = sqlite3.connect(out / "runs.sqlite3")
    for cycle, data in db.execute("SELECT cycle, data FROM crtcl_records").fetchall():
        record = json.loads(data)
        assert set(NEWER_COLUMNS) <= set(record)
        db.execute("UPDATE crtcl_records SET data = ? WHERE cycle = ?",
                   (json.dumps({k: v for k, v in record.items() if k not in lacking}),
                    cycle))
    db.commit()
    db.close()
    records = run_experiment(**cfg, output_dir=str(out), resume=True)
    full = run_experiment(**cfg, output_dir=str(tmp_path / "whole"))
    assert [tuple(r) for r in records] == [tuple(r) for r in full]
    # the stored cycles lost their newer estimates, the resumed ones have them (the
    # last cycle has no next batch: never a one-batch temperature)
    gone = [c for c in NEWER_COLUMNS[:newer] if not c.endswith(("_low", "_high"))]
    for name in gone:
        assert math.isnan(records[0][name]) and math.isfinite(full[0][name])
    assert math.isfinite(records[2]["est_temperature"])
    assert records[2]["est_temperature"] == full[2]["est_temperature"]
    assert math.isnan(full[3]["est_temperature"])
    # the pooled temperature of the resumed cycles fits only the batches of the
    # records that still hold theirs: cycle 2's own, where the whole run has 0 .. 2
    assert math.isfinite(records[2]["est_temperature_pooled"])
    assert records[2]["est_temperature_pooled"] != full[2]["est_temperature_pooled"]
    keep = [k for k in full[0] if k not in NEWER_COLUMNS]
    assert _strip(records, keep) == _strip(full, keep)
    if newer == 6:
        assert "est_temperature" not in keep
    assert _strip(load_results(out)) == _strip(records)


def test_long_runs_split_the_per_cycle_tables_to_fit_a_page():
    from sklearn_crtcl.experiments import summary_table
    records = [{"method": m, "trial": 0, "cycle": c, "n_labeled": 10 * (c + 1),
                "accuracy": 0.5 + c / 100, "ece": 0.1, "nll": 1.0, "train_loss": 0.1,
                "wall_time": 1.0, "query_time": 0.0, "train_time": 1.0}
               for m in ("a", "b") for c in range(13)]
    text = summary_table(records)
    headers = [ln for ln in text.splitlines() if ln.startswith("| method ") and "(n=" in ln]
    # accuracy and ECE, each in a table of cycles 0-7 and one of cycles 8-12
    assert len(headers) == 4
    assert all(h.count("|") <= 10 for h in headers)
    assert "cycle 7 (n=80)" in headers[0] and "cycle 8 (n=90)" in headers[1]
    assert "cycle 12 (n=130)" in headers[1] and "cycle 0 " not in headers[1]


def test_a_diverged_training_stops_the_run_with_a_clear_error(tmp_path, monkeypatch):
    """A cycle whose training loss is not finite (NaN predictions) stops the run with
    a ValueError naming the unit, the cycle and the epoch, before the cycle is
    evaluated or committed; the earlier cycles stay committed."""
    from sklearn_crtcl.experiments import runner
    real = runner.make_estimator

    def diverging(*args, **kwargs):
        return real(*args, **kwargs).set_params(lr=1e12)

    cfg = dict(CFG, methods=["random"], n_cycles=2)
    monkeypatch.setattr(runner, "make_estimator", diverging)
    with pytest.raises(ValueError, match=r"random/0: the training of cycle 0 diverged \(its "
                                         r"training loss is not finite since epoch [0-9]+ of the net"):
        run_experiment(**cfg, output_dir=str(tmp_path / "run"))
    assert load_state(tmp_path / "run")["records"] == []
