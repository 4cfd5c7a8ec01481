"""The calibration benchmark (sklearn_crtcl.experiments.calibration) on tiny IDX files."""

import json

import numpy as np
import pytest

from sklearn_crtcl.experiments.calibration import (CALIBRATION_METHODS, CalibrationConfig,
                                                   main, run_calibration)


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture(scope="module")
def fashion_home(tmp_path_factory):
    # a learnable tiny "Fashion-MNIST": the class sets the brightness of one band of rows
    home = tmp_path_factory.mktemp("fmnist")
    rng = np.random.RandomState(0)
    for split, n in (("train", 300), ("t10k", 100)):
        y = np.arange(n) % 10
        X = rng.randint(0, 60, (n, 28, 28))
        for i, label in enumerate(y):
            X[i, 2 * label:2 * label + 4] += 190
        _write_idx(home / f"{split}-images-idx3-ubyte", X)
        _write_idx(home / f"{split}-labels-idx1-ubyte", y)
    return home


TINY = dict(n_labeled=100, n_unlabeled=60, n_calibration=60, n_test=80, n_ood=50, n_trials=2,
            max_epochs=3, width=2, batch_size=32, progress=False)


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_every_method_runs_and_resume_is_exact(fashion_home, tmp_path):
    out = tmp_path / "run"
    config = CalibrationConfig(**TINY, data_home=str(fashion_home), output_dir=str(out))
    records = run_calibration(config)
    assert [(r["method"], r["trial"]) for r in records if r["trial"] == 0] == [
        (m, 0) for m in CALIBRATION_METHODS]
    assert len(records) == 2 * len(CALIBRATION_METHODS)
    for r in records:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and 0 <= r["ood_auroc"] <= 1
        assert np.isfinite(r["nll"]) and np.isfinite(r["brier"])
    by = {(r["method"], r["trial"]): r for r in records}
    for t in range(2):
        # temperature scaling keeps the predictions of the model it calibrates
        assert by[("ce+temperature", t)]["accuracy"] == by[("ce", t)]["accuracy"]
        assert by[("ce+temperature", t)]["temperature"] > 0
        assert by[("ce", t)]["temperature"] == 1.0
    assert (out / "reliability.png").exists() and (out / "summary.md").exists()
    summary = (out / "summary.md").read_text()
    assert all(f"| {m} |" in summary for m in CALIBRATION_METHODS)
    # an interrupted run (here: trial 1 forgotten) continues with the same numbers
    state = json.loads((out / "state.json").read_text())
    state["done"] = [k for k in state["done"] if not k.endswith("/1")]
    state["records"] = [r for r in state["records"] if r["trial"] == 0]
    (out / "state.json").write_text(json.dumps(state))
    resumed = run_calibration(CalibrationConfig(**TINY, data_home=str(fashion_home),
                                                output_dir=str(out), resume=True))
    strip = lambda recs: sorted((r["method"], r["trial"], r["accuracy"], r["ece"], r["nll"])
                                for r in recs)  # noqa: E731
    assert strip(resumed) == strip(records)
    # changed settings cannot resume; an existing run is not overwritten silently
    with pytest.raises(ValueError, match="settings differ"):
        run_calibration(CalibrationConfig(**{**TINY, "max_epochs": 4}, output_dir=str(out),
                                          data_home=str(fashion_home), resume=True))
    with pytest.raises(ValueError, match="already holds a run"):
        run_calibration(CalibrationConfig(**TINY, data_home=str(fashion_home),
                                          output_dir=str(out)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(methods=["ce", "nope"]), "methods must be names"),
    (dict(methods=["ce+temperature"]), "add 'ce'"),
    (dict(n_labeled=5), "n_labeled"),
    (dict(n_ood=5000), "n_ood"),
    (dict(augment="rotate"), "augment"),
    (dict(device="nosuchdevice"), "device"),
    (dict(resume=True, overwrite=True), "exclude each other"),
])
def test_bad_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CalibrationConfig(**kwargs)


def test_cli_reports_missing_files_and_bad_options(tmp_path, capsys):
    assert main(["--data-home", str(tmp_path), "--output-dir", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert "Fashion-MNIST IDX files not found" in capsys.readouterr().err
    assert main(["--methods", "ce+temperature", "--output-dir", str(tmp_path / "o")]) == 2
    assert "add 'ce'" in capsys.readouterr().err


def test_module_runs_as_a_script_without_runpy_warning():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "sklearn_crtcl.experiments.calibration", "--methods",
                           "ce+temperature"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "add 'ce'" in proc.stderr and "RuntimeWarning" not in proc.stderr
