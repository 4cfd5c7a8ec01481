#!/usr/bin/env python
"""Build the documentation with every Sphinx warning treated as an error.

Usage (from anywhere)::

    python tools/check_docs.py            # fresh strict HTML build
    python tools/check_docs.py --keep     # reuse the previous build (faster, less strict)

It runs::

    sphinx-build -W --keep-going -b html docs docs/_build/html

from the repository root, after deleting ``docs/_build`` and the autosummary
stubs in ``docs/generated``.  A fresh build matters: Sphinx re-reads only the
pages that changed, so an incremental build does not repeat the warnings of
unchanged pages, and stubs of renamed objects would linger and be reported as
"not included in any toctree".  The exit status is Sphinx's: 0 when the build
produced no warning.

Requirements: ``pip install -r docs/requirements.txt`` (Sphinx and numpydoc);
the package's own dependencies must be importable.  No network access is
needed.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"
GENERATED = DOCS / "generated"


def build_command(builder="html"):
    """The strict sphinx-build command line, relative to the repository root.

    Parameters
    ----------
    builder : str, default="html"
        Sphinx builder name.

    Returns
    -------
    list of str
        The command, run with the current Python interpreter.
    """
    return [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", builder,
            "docs", f"docs/_build/{builder}"]


def main(argv=None):
    """Run the strict documentation build.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status of ``sphinx-build`` (0: no warning).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep docs/_build and docs/generated (incremental build)")
    parser.add_argument("--builder", default="html", help="Sphinx builder (default: html)")
    args = parser.parse_args(argv)

    try:
        import numpydoc  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as exc:
        print(f"check_docs: {exc.name} is not installed; "
              "run `pip install -r docs/requirements.txt`", file=sys.stderr)
        return 2

    if not args.keep:
        for path in (BUILD, GENERATED):
            if path.exists():
                shutil.rmtree(path)
    cmd = build_command(args.builder)
    print("check_docs:", " ".join(["sphinx-build"] + cmd[3:]), flush=True)
    status = subprocess.call(cmd, cwd=ROOT)
    if status == 0:
        print(f"check_docs: OK, no warnings; output in docs/_build/{args.builder}")
    else:
        print(f"check_docs: FAILED (sphinx-build exit status {status}); "
              "every warning above is an error", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
