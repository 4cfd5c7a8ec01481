"""The documentation builds strictly, example gallery included.

``tools/check_docs.py`` runs ``sphinx-build -W --keep-going`` (every Sphinx
warning is an error; sphinx-gallery runs every example, and an example that
raises fails the build) and then checks every internal link of the built
pages.  The build runs once per test session (:func:`strict_docs_build`):
``tests/test_examples.py`` checks what the gallery produced from the same
build, so each example runs once.
"""

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"


def _load_check_docs():
    spec = importlib.util.spec_from_file_location("check_docs",
                                                  ROOT / "tools" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_docs = _load_check_docs()


def _files_under(directory):
    return {p.relative_to(ROOT).as_posix() for p in directory.rglob("*")
            if "__pycache__" not in p.parts}


@functools.lru_cache(maxsize=None)
def _build():
    env = dict(os.environ, SKLEARN_CRTCL_SMOKE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    before = _files_under(EXAMPLES_DIR)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_docs.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    after = _files_under(EXAMPLES_DIR)
    return proc, sorted(after - before)


def strict_docs_build():
    """Run ``tools/check_docs.py`` once per session, examples at smoke size.

    Skips the calling test when Sphinx, numpydoc, sphinx-gallery or
    matplotlib is not installed.

    Returns
    -------
    proc : subprocess.CompletedProcess
        The finished build, with its ``returncode`` and text output.
    new_files : list of str
        Files that appeared in ``examples/`` during the build: sphinx-gallery
        runs the examples with ``examples/`` as their working directory.
    """
    for name in ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser", "matplotlib"):
        pytest.importorskip(name)
    return _build()


def test_docs_build_strict():
    proc, _ = strict_docs_build()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "no broken internal links" in proc.stdout


def test_results_tables_fit_the_page():
    # the runner's summaries are HTML tables of a few columns (one row per method, one
    # column per cycle), not preformatted text wider than the page
    import html
    import re

    proc, _ = strict_docs_build()
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    page = (ROOT / "docs" / "_build" / "html" / "results.html").read_text(encoding="utf-8")
    tables = re.findall(r"<table.*?</table>", page, flags=re.S)
    summaries = [t for t in tables if "cycle 0 (n=" in t]
    assert len(summaries) >= 12  # accuracy and ECE of each of the six runs
    for table in tables:
        header = re.search(r"<tr.*?</tr>", table, flags=re.S).group(0)
        assert header.count("<th") <= 9, header[:300]
    for block in re.findall(r"<pre>(.*?)</pre>", page, flags=re.S):
        for line in html.unescape(re.sub(r"<[^>]+>", "", block)).splitlines():
            assert len(line) <= 100, line


# ---------------------------------------------------------------------------
# the internal-link check of tools/check_docs.py
# ---------------------------------------------------------------------------


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_find_broken_links_reports_missing_anchors_and_files(tmp_path):
    _write(tmp_path / "index.html", """<html><body id="top">
        <a href="page.html#intro">ok</a>
        <a href="page.html#nowhere">broken anchor</a>
        <a href="missing.html">missing page</a>
        <a href="#top">ok, same page</a> <a href="#">ok</a> <a href="#gone">broken</a>
        <a href="sub/">ok, a folder's index</a>
        <a href="https://example.org/x.html#y">external</a> <a href="mailto:a@b.c">mail</a>
        <img src="_images/fig.png"> <img src="_images/nofig.png">
        <link rel="stylesheet" href="_static/style.css">
        </body></html>""")
    _write(tmp_path / "page.html", '<h1 id="intro">P</h1><a name="old">x</a>'
                                   '<a href="index.html?q=1#top">ok</a>'
                                   '<a href="page.html#old">ok, a name</a>')
    _write(tmp_path / "sub" / "index.html", '<a href="../page.html#intro%20x">broken</a>'
                                            '<a href="../../outside.html">outside</a>')
    _write(tmp_path / "_images" / "fig.png", "png")
    _write(tmp_path / "_static" / "style.css", "")
    broken = check_docs.find_broken_links(tmp_path)
    assert broken == [
        'index.html: #gone (no id "gone" in index.html)',
        "index.html: _images/nofig.png (no file _images/nofig.png)",
        "index.html: missing.html (no file missing.html)",
        'index.html: page.html#nowhere (no id "nowhere" in page.html)',
        "sub/index.html: ../../outside.html (outside the site)",
        'sub/index.html: ../page.html#intro%20x (no id "intro x" in page.html)',
    ]


def test_find_broken_links_catches_viewcode_backlinks(tmp_path):
    # The bug this check was written for: sphinx.ext.viewcode's [docs] link of
    # an object pointed to its page with the anchor of another module path.
    _write(tmp_path / "_modules" / "pkg" / "nets" / "crtcl.html",
           '<div class="viewcode-block" id="Critic">'
           '<a class="viewcode-back" href="../../../generated/pkg.nets.crtcl.Critic.html'
           '#pkg.Critic">[docs]</a></div>')
    _write(tmp_path / "generated" / "pkg.nets.crtcl.Critic.html",
           '<dt class="sig" id="pkg.nets.crtcl.Critic">class Critic</dt>')
    assert check_docs.find_broken_links(tmp_path) == [
        "_modules/pkg/nets/crtcl.html: ../../../generated/pkg.nets.crtcl.Critic.html"
        '#pkg.Critic (no id "pkg.Critic" in generated/pkg.nets.crtcl.Critic.html)']
    # with the anchor the docs' conf.py adds, the link resolves
    _write(tmp_path / "generated" / "pkg.nets.crtcl.Critic.html",
           '<dt class="sig" id="pkg.nets.crtcl.Critic"><span id="pkg.Critic"></span>'
           'class Critic</dt>')
    assert check_docs.find_broken_links(tmp_path) == []


def test_built_source_pages_link_back_to_existing_anchors():
    proc, _ = strict_docs_build()
    html = ROOT / "docs" / "_build" / "html"
    source_page = html / "_modules" / "sklearn_crtcl" / "nets" / "crtcl.html"
    assert source_page.is_file(), (proc.stdout + proc.stderr)[-3000:]
    text = source_page.read_text(encoding="utf-8")
    assert "nets.crtcl.Critic.html#" in text  # Critic's [docs] back-link
    assert "sklearn_crtcl.CriticLossNet.html#" in text
    broken = [b for b in check_docs.find_broken_links(html) if b.startswith("_modules/")]
    assert broken == []
