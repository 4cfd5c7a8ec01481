"""Every example runs at smoke size (SKLEARN_CRTCL_SMOKE=1)."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, SKLEARN_CRTCL_SMOKE="1", SKLEARN_CRTCL_EXAMPLE_OUT=str(tmp_path),
               MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    produced = list(tmp_path.rglob("*.png"))
    assert produced, f"{script.name} wrote no figure"
