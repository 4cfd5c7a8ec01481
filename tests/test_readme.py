"""The README's commands and snippet work as written."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _snippet():
    section = README[README.index("## A first look"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_first_look_snippet_runs_and_prints_readable_results(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _snippet()], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"test accuracy (0\.\d{3}), expected calibration error \(ECE\) "
                         r"(0\.\d{3})", last)
    assert match, last
    assert float(match.group(1)) > 0.8
    # the per-epoch table of verbose=1: a header and one row per epoch
    assert "train_loss" in proc.stdout and "critic_loss" in proc.stdout
    assert len(re.findall(r"^\s+30\s", proc.stdout, re.M)) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


def test_readme_commands_name_existing_extras_and_entry_points():
    setup = (ROOT / "setup.py").read_text()
    for extras in re.findall(r'pip install -e "\.\[([a-z,]+)\]"', README):
        for extra in extras.split(","):
            assert f'"{extra}":' in setup, extra
    assert "sklearn-crtcl-experiment = " in setup
