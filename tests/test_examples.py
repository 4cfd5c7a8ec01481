"""Every example runs, draws its figures and prints labeled numbers.

The examples are run once, by sphinx-gallery during the strict documentation
build at smoke size (``SKLEARN_CRTCL_SMOKE=1``; see
:func:`test_docs_build.strict_docs_build`, shared with
``tests/test_docs_build.py``).  These tests check what the gallery made of
each script: a page without a traceback, at least one rendered figure, and
printed output in which every number says what it is.
"""

import re
from pathlib import Path

import pytest

from test_docs_build import strict_docs_build

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
GALLERY = ROOT / "docs" / "auto_examples"
GALLERY_HTML = ROOT / "docs" / "_build" / "html" / "auto_examples"


def test_there_are_examples():
    assert len(EXAMPLES) >= 4
    assert all(p.name.startswith("plot_") for p in EXAMPLES)  # all run by the gallery
    assert (ROOT / "examples" / "README.rst").is_file()  # the gallery's index


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_source_conventions(script):
    source = script.read_text()
    assert source.startswith('"""\n'), "a sphinx-gallery docstring (title first) comes first"
    assert "# %%" in source
    # one torch thread: small networks on a CPU train fastest that way
    assert "torch.set_num_threads(1)" in source
    assert "SKLEARN_CRTCL_SMOKE" in source
    # figures are captured by sphinx-gallery (plt.show()), never written to disk
    assert "savefig" not in source and "plt.show()" in source
    assert "matplotlib.use(" not in source


@pytest.fixture(scope="module")
def gallery_build():
    return strict_docs_build()


def _failure_context(proc):
    return (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_draws(script, gallery_build):
    proc, _ = gallery_build
    rst = GALLERY / f"{script.stem}.rst"
    assert rst.is_file(), f"the gallery did not render {script.name}\n{_failure_context(proc)}"
    text = rst.read_text()
    assert "Traceback (most recent call last)" not in text, (
        f"{script.name} raised:\n" + text[text.index("Traceback"):][:3000])
    figures = sorted((GALLERY / "images").glob(f"sphx_glr_{script.stem}_[0-9]*.png"))
    assert figures, f"{script.name} drew no figure"
    page = (GALLERY_HTML / f"{script.stem}.html").read_text(encoding="utf-8")
    for figure in figures:
        assert figure.name in page, f"{figure.name} is not shown on the example's page"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_smoke_size_page_says_its_numbers_are_meaningless(script, gallery_build):
    # the suite builds the gallery at smoke size: each page must say so, below its title
    page = (GALLERY_HTML / f"{script.stem}.html").read_text(encoding="utf-8")
    title = page.index("<h1>")
    notice = page.find("smoke size")
    assert notice > title, f"{script.name}'s page does not say it was built at smoke size"
    assert "meaningless" in page[notice:notice + 400]
    assert page.count("smoke size</strong>") == 1


def _printed_blocks(rst_text):
    """Text that an example printed: the gallery's ``sphx-glr-script-out`` blocks."""
    blocks = []
    for match in re.finditer(r"\.\. rst-class:: sphx-glr-script-out\n\n"
                             r" *\.\. code-block:: none\n\n((?: {4,}.*\n|\n)*)", rst_text):
        lines = [line.strip() for line in match.group(1).splitlines()]
        blocks.append([line for line in lines if line])
    return blocks


_LETTER = re.compile(r"[A-Za-z]")


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_output_is_labeled(script, gallery_build):
    rst = GALLERY / f"{script.stem}.rst"
    if not rst.is_file():
        pytest.fail(f"the gallery did not render {script.name}")
    blocks = _printed_blocks(rst.read_text())
    assert blocks, f"{script.name} printed nothing"
    for block in blocks:
        header_seen = False
        for line in block:
            assert "np.float64(" not in line and "np.int64(" not in line, line
            # rounded for reading: no 0.8458961474036851
            assert not re.search(r"\d\.\d{5,}", line), f"unrounded number in {line!r}"
            if _LETTER.search(line):
                header_seen = True
            else:
                # a row of bare numbers needs a header line above it
                assert header_seen, f"{script.name} printed unlabeled numbers: {line!r}"


def test_examples_write_no_files(gallery_build):
    # sphinx-gallery runs each example in examples/: anything an example wrote
    # to its working directory (figures, experiment output) would land there
    _, new_files = gallery_build
    assert new_files == []
