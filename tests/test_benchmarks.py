"""The speed benchmarks of ``benchmarks/`` run and write their tables (tiny sizes, CPU)."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def _check_tables(out, name, columns):
    header, rows = _read(out / f"{name}.csv")
    assert header == columns
    md = (out / f"{name}.md").read_text()
    assert "| " + " | ".join(columns) + " |" in md
    for key in ("machine", "torch", "date", "command"):
        assert f"- {key}: " in md
    return rows


def _cpu_rows(rows):
    return [r for r in rows if r.get("device", "cpu") == "cpu"]


def _gpu_rows_not_measured(rows, column):
    if torch.cuda.is_available():
        return
    assert any(r[column] == "not measured" for r in rows)


def test_bench_speed_epochs_and_query(tmp_path):
    speed = _load("bench_speed")
    assert speed.main(["--sections", "epochs,query,gradnorm", "--width", "2", "--n", "16",
                       "--n-unlabeled", "16", "--batch-size", "8", "--rounds", "1",
                       "--settings", "fp32,amp_cl", "--pool", "32", "--query-size", "4",
                       "--repeats", "1", "--naive", "4", "--batched", "16",
                       "--out", str(tmp_path)]) == 0
    rows = _check_tables(tmp_path, "epochs", [
        "net", "setting", "device", "precision", "channels_last", "compile", "net_s", "hand_s",
        "ratio", "ratio_cpu", "net_speedup_vs_fp32", "hand_speedup_vs_fp32", "net_first_s",
        "hand_first_s", "note"])
    cpu = _cpu_rows(rows)
    assert {(r["net"], r["setting"]) for r in cpu} == {
        (net, s) for net in ("ResNetClassifier", "CriticLossNet", "LossPredictionNet", "TODNet")
        for s in ("fp32", "amp_cl")}
    for r in cpu:
        assert r["note"] == "" and float(r["ratio"]) > 0 and float(r["net_s"]) > 0
        assert r["precision"] == ("fp32" if r["setting"] == "fp32" else "bf16")
    _gpu_rows_not_measured(rows, "ratio")

    rows = _check_tables(tmp_path, "query", [
        "strategy", "estimator", "work_per_image", "bare_forward_img_s", "strategy_img_s",
        "ratio", "ratio_cpu", "target", "note"])
    names = {r["strategy"] for r in rows}
    assert set(speed.query_strategies()) <= names
    assert {"critic_sampling", "badge_sampling", "coreset_sampling", "random_sampling"} <= names
    for r in rows:
        if r["strategy"] != "all":
            assert float(r["ratio"]) > 0
    _gpu_rows_not_measured(rows, "ratio")

    rows = _check_tables(tmp_path, "gradnorm", [
        "device", "threads", "naive_img_s", "batched_img_s", "ratio", "ratio_cpu",
        "max_rel_difference"])
    assert float(_cpu_rows(rows)[0]["max_rel_difference"]) < 1e-3


def test_bench_speed_compiled_hand_loop(tmp_path):
    # the compile setting (aot_eager: traces the training steps without generating
    # kernels) for the net with the most modules: student, auxiliary head, teacher
    speed = _load("bench_speed")
    assert speed.main(["--sections", "epochs", "--nets", "tod", "--settings", "amp_cl_compile",
                       "--compile-backend", "aot_eager", "--width", "2", "--n", "16",
                       "--n-unlabeled", "16", "--batch-size", "8", "--rounds", "1",
                       "--out", str(tmp_path)]) == 0
    _, rows = _read(tmp_path / "epochs.csv")
    (row,) = _cpu_rows(rows)
    assert row["compile"] == "True" and row["note"] == "" and float(row["ratio"]) > 0


def test_bench_cycle(tmp_path):
    cycle = _load("bench_cycle")
    assert cycle.main(["--n-train", "300", "--n-test", "50", "--width", "2", "--epochs", "1",
                       "--initial-size", "20", "--query-size", "10", "--cycles", "1",
                       "--subset-size", "100", "--batch-size", "16",
                       "--methods", "random,crtcl,lplgrad", "--out", str(tmp_path)]) == 0
    rows = _check_tables(tmp_path, "cycle", [
        "method", "estimator", "strategy", "cycles", "initial_train_s", "cycle_s", "query_s",
        "train_eval_s", "query_share", "accuracy_last", "note"])
    measured = [r for r in rows if r["method"] != "all"]
    assert [r["method"] for r in measured] == ["random", "crtcl", "lplgrad"]
    for r in measured:
        assert r["cycles"] == "1"
        assert float(r["cycle_s"]) >= float(r["query_s"]) >= 0


@pytest.mark.parametrize("name", ["bench_speed", "bench_cycle"])
def test_scripts_document_their_usage(name):
    module = _load(name)
    assert "Usage::" in module.__doc__
    parser = module.build_parser()
    for option in ("--device", "--threads", "--out"):
        assert option in parser.format_help()


def test_bench_inference_memory_prints_a_row_per_call(tmp_path, capsys):
    bench = _load("bench_inference_memory")
    assert bench.main(["--n", "300", "--width", "2", "--tmpdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["mode", "n"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == list(bench.MODES) and all(r[1] == "300" for r in rows)
    assert all(float(r[4]) > 0 for r in rows)  # each call read the mapped file's pages
    assert not list(tmp_path.iterdir())  # the pool file is removed


def test_bench_importance_interval_table(capsys):
    bench = _load("bench_importance_interval")
    rows = bench.main(["--labeled", "100", "--draws", "30", "--batch", "30"])
    names = ("uniform", "entropy", "rank, beta=1", "rank, beta=0.5")
    intervals = ("korn-graubard", "korn-graubard-truncated", "normal")
    assert [(r[2], r[3]) for r in rows] == [(p, i) for p in names for i in intervals]
    for kg, cut, normal in zip(rows[::3], rows[1::3], rows[2::3]):
        assert all(0 <= r[4] <= 1 for r in (kg, cut, normal))
        assert cut[5] >= kg[5] > normal[5] > 0  # Clopper-Pearson is the wider
    assert capsys.readouterr().out.count("\n| 100 |") == 12


def test_bench_temperature_estimate_table(capsys):
    bench = _load("bench_temperature_estimate")
    rows = bench.main(["--datasets", "digits", "--labeled-digits", "100", "--draws", "20",
                       "--batch", "30"])
    proposals = ("uniform", "entropy", "rank, beta=1", "top-k entropy")
    assert [r[3] for r in rows] == [p for p in proposals for e in bench.ESTIMATES
                                    if p != "top-k entropy" or e in ("confidence", "temperature",
                                                                     "atc", "temperature, oracle")]
    by = {(r[3], r[4]): r for r in rows}
    for r in rows:
        assert r[0] == "digits" and r[1] == 100 and 0 < r[2] < 1
        assert r[5] >= abs(r[6]) - 1e-12  # the mean absolute error bounds the bias
    # no labels: the same confidence whatever the batch; with uniform draws the
    # weights are nearly equal, so weighting hardly moves the temperature
    assert np.ptp([by[(p, "confidence")][6] for p in proposals]) < 1e-12
    assert abs(by[("uniform", "temperature")][6]
               - by[("uniform", "temperature, weighted")][6]) < 0.01
    # the strongly penalised regression is under-confident: the temperature fixes most of it
    assert by[("uniform", "temperature")][5] < by[("uniform", "confidence")][5] / 2
    # the oracle temperature is one number per model, and its |bias| is its error
    oracle = [by[(p, "temperature, oracle")] for p in proposals]
    assert np.ptp([r[6] for r in oracle]) == 0 and oracle[0][5] == abs(oracle[0][6])
    assert oracle[0][5] < by[("uniform", "confidence")][5]
    assert capsys.readouterr().out.count("\n| digits | 100 |") == 4


def test_bench_critic_correctness_probe_models_give_their_scores():
    """The class-probe models of bench_critic_correctness at a tiny size: each score's
    row, the probes' own accuracy and C, ce-split0.2's critics fitted on a share of
    the labeled set that its net did not train on, and the ensemble critics on the
    labeled set itself."""
    bench = _load("bench_critic_correctness")
    sizes = dict(n_labeled=120, n_unlabeled=0, n_heldout=150, n_test=100, epochs=1, width=2,
                 augment=None)
    data = bench.load("digits", sizes, 0)
    rows = bench.run_model("ce-probe", data, sizes, 0)
    assert [r["score"] for r in rows] == ["max_proba", "temp_max_proba"] + [
        name for name, _ in bench.PROBE_CRITICS]
    for r in rows:
        assert 0 <= r["auroc"] <= 1 and 0 <= r["ece_pc"] <= 1
        assert 0 <= r["posthoc_probe_acc"] <= 1 and r["posthoc_probe_C"] > 0
    split = bench.run_model("ce-split0.2", data, sizes, 0)
    assert [r["score"] for r in split] == ["max_proba", "posthoc_tcp", "posthoc_probe",
                                           "posthoc_probe_flip"]
    assert all(0 <= r["auroc"] <= 1 for r in split)
    for model, critics in bench.ENSEMBLE_CRITICS.items():
        if model in ("ce-ensemble10", "ce-ensemble20"):
            continue  # as ce-ensemble, with more copies
        ens = bench.run_model(model, data, sizes, 0)
        assert [r["score"] for r in ens] == ["max_proba"] + [name for name, _ in critics]
        assert all(0 <= r["auroc"] <= 1 and 0 <= r["ece_pc"] <= 1 for r in ens)
        assert all(r[f"{name}_seconds"] > 0 for name, _ in critics for r in ens)
        # the same net as ce-probe's (same seed, same data)
        assert ens[0]["auroc"] == rows[0]["auroc"]


def test_bench_estimation_ensemble_estimates_are_the_critics_mean_or_nan():
    """bench_estimation's --ensemble and --crossfit-cv estimates: NaN when off, the mean
    P(correct) of an EnsembleCritic on the labeled set otherwise (cross-fitted: with fewer
    folds when a class has fewer images than asked)."""
    from sklearn.datasets import load_digits
    from sklearn.frozen import FrozenEstimator
    from sklearn.neural_network import MLPClassifier

    from sklearn_crtcl import EnsembleCritic

    bench = _load("bench_estimation")
    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = MLPClassifier((8,), max_iter=2000, random_state=0).fit(X[:100], y[:100])
    labels = dict(X_labeled=X[:100], y_labeled=y[:100])
    for cv in (False, True):
        off = bench._ensemble_estimate(clf, X[100:], 0, seed=0, cv=cv, **labels)
        assert np.isnan(off.estimate) and off.method == "critic"
    rarest = int(np.bincount(y[:100]).min())
    est = bench._ensemble_estimate(clf, X[100:], 50, seed=3, cv=True, **labels)
    critic = EnsembleCritic(FrozenEstimator(clf), n_copies=rarest, cv=rarest,
                            calibration="temperature", random_state=3).fit(X[:100], y[:100])
    assert est.estimate == pytest.approx(critic.predict_correctness(X[100:]).mean())
    whole = bench._ensemble_estimate(clf, X[100:], 2, seed=3, **labels)
    critic = EnsembleCritic(FrozenEstimator(clf), n_copies=2, random_state=3).fit(X[:100],
                                                                                  y[:100])
    assert whole.estimate == pytest.approx(critic.predict_correctness(X[100:]).mean())
    assert 0 < whole.estimate < 1 and whole.estimate != est.estimate


@pytest.mark.parametrize("selection", ["topk", "uniform"])
def test_bench_estimation_selections_and_the_pooled_temperature(selection, tmp_path):
    """bench_estimation with the papers' top-k selection (no draw probabilities: no
    importance estimate) and with random sampling; ``temperature_pooled`` is the
    one-batch temperature in the first cycle, and pools the earlier batches after."""
    import argparse

    from sklearn_crtcl.datasets import load_digits_images

    bench = _load("bench_estimation")
    args = argparse.Namespace(initial=40, query=20, cycles=3, stop_set=50, width=2, epochs=1,
                              selection=selection, beta=1.0, ensemble=0, crossfit_cv=0)
    data = load_digits_images(random_state=0)
    records = []
    bench.run_trial("digits", data, 0, args, records.append)
    assert [r["cycle"] for r in records] == [0, 1, 2]
    assert [r["n_labeled"] for r in records] == [40, 60, 80]
    for r in records:
        assert set(bench.COLUMNS) <= set(r)
        assert np.isnan(r["est_importance"]) == (selection == "topk")
        assert np.isnan(r["est_importance_lure"]) == (selection == "topk")
        assert 0 < r["est_temperature_pooled"] < 1
    first, *later = records
    assert first["est_temperature_pooled"] == first["est_temperature"]
    assert all(r["est_temperature_pooled"] != r["est_temperature"] for r in later)
    # --table: one row per run, each estimate's mean absolute error / bias in points
    from sklearn_crtcl.experiments.report import write_results_csv
    out = tmp_path / selection
    out.mkdir()
    write_results_csv(records, out / "results.csv", columns=bench.COLUMNS)
    lines = bench.table([out]).splitlines()
    assert len(lines) == 5 and lines[0] == lines[2] == lines[4]
    cells = lines[3].split()
    assert cells[:3] == ["digits", selection, "3"]
    err = np.array([r["est_temperature_pooled"] - r["pool_accuracy"] for r in records])
    column = 3 + 3 * bench.TABLE_ESTIMATORS.index("temperature_pooled")
    assert cells[column:column + 3] == [f"{100 * np.mean(np.abs(err)):.1f}", "/",
                                        f"{100 * np.mean(err):+.1f}"]
    column = 3 + 3 * bench.TABLE_ESTIMATORS.index("importance")
    assert (cells[column] == "-") == (selection == "topk")
    # the floors are fitted on labels the loop lacks; the coverage column is last
    for r in records:
        assert 0 < r["est_oracle_test_temperature"] < 1
        assert 0 < r["est_oracle_pool_temperature"] < 1
        assert 0 < r["held_out_coverage"] <= 1
    assert cells[-1] == f"{100 * np.mean([r['held_out_coverage'] for r in records]):.0f}"
    # a results.csv of the release before the floors: read back with NaN there
    old_columns = [c for c in bench.COLUMNS
                   if "oracle" not in c and c != "held_out_coverage"]
    write_results_csv(records, out / "results.csv", columns=old_columns)
    back = bench._read(out / "results.csv")
    assert all(np.isnan(r["est_oracle_pool_temperature"]) and np.isnan(r["held_out_coverage"])
               for r in back)
    cells = bench.table([out]).splitlines()[3].split()
    assert cells[-3:] == ["-", "-", "-"]
    assert "oracle_pool_temperature | — |" in bench.summarize(back, 3)


def test_bench_estimation_coverage_is_the_pool_share_below_the_held_out_maximum():
    """``held_out_coverage``: the share of pool rows whose maximum probability is at most
    the largest one among all held-out rows."""
    bench = _load("bench_estimation")
    pool = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8], [0.75, 0.25]])
    held = [(np.array([[0.55, 0.45]]), np.array([0])),
            (np.array([[0.3, 0.7], [0.5, 0.5]]), np.array([1, 0]))]
    assert bench._coverage(pool, held) == pytest.approx(2 / 5)  # 0.6 and 0.5, not 0.75
    assert bench._coverage(pool, held[:1]) == pytest.approx(1 / 5)


def test_query_class_share_reads_a_runner_store(tmp_path, capsys):
    """The table of a finished run: the largest class's share of each query batch, from
    the store's labeled positions (keyed "method/trial") and the reloaded labels."""
    from sklearn_crtcl.experiments import ExperimentConfig, run_experiment
    from sklearn_crtcl.experiments.runner import _load_data, load_state

    config = ExperimentConfig(dataset="digits", initial_size=20, query_size=10, n_cycles=2,
                              n_trials=2, max_epochs=1, width=2, subset_size=100,
                              device="cpu", progress=False, num_threads=1,
                              methods=("random", "entropy"), output_dir=str(tmp_path))
    run_experiment(config)
    bench = _load("query_class_share")
    shares = bench.class_shares(tmp_path)
    assert sorted(shares) == ["entropy", "random"]
    y = _load_data(config)[2]
    labeled = load_state(tmp_path)["runs"]["entropy/1"]["labeled"]
    batch = np.asarray(labeled[30:40])  # the second query of trial 1
    assert shares["entropy"].shape == (2, 2)
    assert shares["entropy"][1, 1] == np.bincount(y[batch]).max() / 10
    bench.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| random " in out and "| entropy" in out
