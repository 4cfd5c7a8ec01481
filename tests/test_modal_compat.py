"""Tests for sklearn_crtcl._modal_compat: modAL 0.4.x with scikit-learn >= 1.8.

The checks against modAL's own ``query`` are in modal_compat_worker.py; they
run here under the installed modAL (0.4.1 in CI) and, in a subprocess, under
modAL 0.4.2.1, installed with ``pip --no-deps`` into a temporary folder (it
pins an old skorch): skipped, saying why, when pip cannot install it.
"""

import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import validation

from sklearn_crtcl import _modal_compat as compat

modal_base = pytest.importorskip("modAL.models.base")
import modal_compat_worker as worker  # noqa: E402  (tests/ is on sys.path)

SKLEARN_DROPPED_FORCE_ALL_FINITE = "force_all_finite" not in inspect.signature(
    validation.check_X_y).parameters
MODAL_0421 = "0.4.2.1"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("check", worker.CHECKS)
def test_installed_modal(check):
    getattr(worker, check)()


@pytest.fixture(scope="session")
def modal_0421(tmp_path_factory):
    """A folder holding modAL 0.4.2.1 (``pip install --no-deps --target``)."""
    target = tmp_path_factory.mktemp("modal0421")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
             "--quiet", "--target", str(target), f"modAL-python=={MODAL_0421}"],
            capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run pip to install modAL-python=={MODAL_0421}: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"pip could not install modAL-python=={MODAL_0421} (offline?), so the "
                    f"modAL 0.4.2.1 checks did not run: {proc.stderr.strip()[-500:]}")
    return target


def test_modal_0421(modal_0421):
    """Every check of modal_compat_worker.py under modAL 0.4.2.1, in a subprocess."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(modal_0421), str(ROOT)]))
    proc = subprocess.run([sys.executable, str(Path(worker.__file__)), MODAL_0421],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [w for name in worker.CHECKS for w in ("ok", name)]


def test_validators_patched_only_when_needed():
    if SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert "modAL.models.base.check_X_y" in compat.PATCHED["check_X_y"] or \
            "modAL.models.learners.check_X_y" in compat.PATCHED["check_X_y"]
        with pytest.raises(TypeError):  # what modAL hits without the patch
            validation.check_X_y(np.ones((2, 2)), [0, 1], force_all_finite=True)
    fake = types.ModuleType("fake_modal_module")
    fake.check_X_y = validation.check_X_y
    fake.check_array = validation.check_array
    other = types.ModuleType("fake_other")
    own = lambda *a, **k: "own"  # noqa: E731
    other.check_X_y = own
    done = compat.patch_validators([fake, other])
    assert other.check_X_y is own
    if not SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert done == [] and fake.check_X_y is validation.check_X_y
        return
    assert done == ["fake_modal_module.check_X_y", "fake_modal_module.check_array"]
    X, y = fake.check_X_y(np.ones((3, 2)), [0, 1, 0], force_all_finite=True)
    assert X.shape == (3, 2)
    assert fake.check_array(np.array([[np.nan]]), force_all_finite=False).shape == (1, 1)
    with pytest.raises(ValueError, match="NaN"):
        fake.check_array(np.array([[np.nan]]), force_all_finite=True)
    with pytest.raises(TypeError, match="both"):
        fake.check_array(np.ones((1, 1)), force_all_finite=True, ensure_all_finite=True)
    wrapped = fake.check_X_y
    assert compat.patch_validators([fake]) == []  # idempotent: no double wrapping
    assert fake.check_X_y is wrapped


@pytest.mark.parametrize("version, expected", [
    ((0, 3, 6), False), ((0, 4, 0), True), ((0, 4, 1), True), ((0, 4, 2), True),
    ((0, 4, 2, 1), True), ((0, 4, 3), False), ((0, 5, 0), False), (None, False),
])
def test_needs_query_patch(version, expected):
    assert compat.needs_query_patch(version) is expected




def test_every_strategy_of_the_package_is_marked():
    import functools

    from sklearn_crtcl import query

    strategies = [name for name in query.__all__ if name.endswith("_sampling")]
    assert len(strategies) == 8
    for name in query.__all__:
        func = getattr(query, name)
        if callable(func):  # strategies return indices; utilities return scores: unmarked
            assert compat.is_package_strategy(func) is (name in strategies), name
    partial = functools.partial(functools.partial(query.critic_sampling, subset_size=10),
                                selection="topk")
    assert compat.is_package_strategy(partial)
    assert not compat.is_package_strategy(functools.wraps(query.critic_sampling)(lambda *a: 0))
