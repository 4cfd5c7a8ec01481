#!/usr/bin/env python
"""Build the documentation with every Sphinx warning treated as an error.

Usage (from anywhere)::

    python tools/check_docs.py            # fresh strict HTML build
    python tools/check_docs.py --keep     # reuse the previous build (faster, less strict)
    SKLEARN_CRTCL_SMOKE=1 python tools/check_docs.py   # examples at smoke size (CI)

It runs::

    sphinx-build -W --keep-going -b html docs docs/_build/html

from the repository root, after deleting ``docs/_build``, the autosummary
stubs in ``docs/generated`` and the example gallery in ``docs/auto_examples``.
A fresh build matters: Sphinx re-reads only the pages that changed, so an
incremental build does not repeat the warnings of unchanged pages, stubs of
renamed objects would linger and be reported as "not included in any
toctree", and sphinx-gallery would not run the examples again.

The build runs every example of ``examples/`` (sphinx-gallery) and fails if
one raises.  With ``SKLEARN_CRTCL_SMOKE=1`` in the environment the examples
run at smoke size (seconds each instead of minutes), as in the test suite.

After an HTML build, every internal link of every built page is checked
(:func:`find_broken_links`): Sphinx's ``-W`` does not check that the target
file of ``href="page.html#anchor"`` exists or that it has the ``anchor`` id.

The exit status is 0 when the build produced no warning and no broken
internal link.

Requirements: ``pip install -r docs/requirements.txt`` (Sphinx, numpydoc, MyST-Parser,
sphinx-gallery, matplotlib); the package's own dependencies must be
importable.  No network access is needed.
"""

import argparse
import os
import posixpath
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"
GENERATED = DOCS / "generated"
GALLERY = DOCS / "auto_examples"

# (tag, attribute) pairs that point to another file of the site.
_LINK_ATTRS = {("a", "href"), ("area", "href"), ("link", "href"),
               ("img", "src"), ("script", "src")}


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


class _PageParser(HTMLParser):
    """Collect the ids (anchors) and the link targets of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for name, value in attrs.items():
            if (tag, name) in _LINK_ATTRS and value is not None:
                self.links.append(value)

    handle_startendtag = handle_starttag


def _parse_page(path):
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def find_broken_links(html_dir):
    """List the internal links of a built HTML site that lead nowhere.

    Every ``*.html`` file under ``html_dir`` is parsed with
    :class:`html.parser.HTMLParser`.  A link (``href`` of ``a``, ``area``
    and ``link``, ``src`` of ``img`` and ``script``) is internal when it has
    no URL scheme and no host (``https://...``, ``mailto:...`` and
    ``//host/...`` are not checked).  An internal link is broken when the
    file it names does not exist, or when it has a ``#fragment`` and the
    target HTML page has no element with that ``id`` (or ``<a name>``).
    ``href="#"`` and an empty fragment always resolve.

    Parameters
    ----------
    html_dir : str or path
        Output directory of the HTML builder (e.g. ``docs/_build/html``).

    Returns
    -------
    list of str
        One line per broken link, ``"page: href (reason)"``, with ``page``
        relative to ``html_dir``; sorted, empty when every link resolves.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> site = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (site / "a.html").write_text('<a href="b.html#x">b</a> <a href="b.html#y">b</a>')
    >>> _ = (site / "b.html").write_text('<h1 id="x">B</h1>')
    >>> find_broken_links(site)
    ['a.html: b.html#y (no id "y" in b.html)']
    """
    html_dir = Path(html_dir).resolve()
    pages = {p.relative_to(html_dir).as_posix(): p for p in sorted(html_dir.rglob("*.html"))}
    parsed = {}

    def page(rel):
        if rel not in parsed:
            parsed[rel] = _parse_page(pages[rel])
        return parsed[rel]

    broken = []
    for rel in pages:
        for link in page(rel).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("//"):
                continue
            if parts.path:
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(rel), unquote(parts.path)))
                if target.startswith("../") or target == "..":
                    broken.append(f"{rel}: {link} (outside the site)")
                    continue
                if (html_dir / target).is_dir():
                    target = posixpath.join(target, "index.html")
                if not (html_dir / target).is_file():
                    broken.append(f"{rel}: {link} (no file {target})")
                    continue
            else:
                target = rel
            fragment = unquote(parts.fragment)
            if not fragment or target not in pages:
                continue
            if fragment not in page(target).ids:
                broken.append(f'{rel}: {link} (no id "{fragment}" in {target})')
    return sorted(broken)


def main(argv=None):
    """Run the strict documentation build and check its internal links.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when ``sphinx-build`` reported no warning and no internal link is
        broken; otherwise ``sphinx-build``'s exit status, or 1 for broken
        links only.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep docs/_build, docs/generated and docs/auto_examples "
                             "(incremental build)")
    parser.add_argument("--builder", default="html", help="Sphinx builder (default: html)")
    args = parser.parse_args(argv)

    try:
        import numpydoc  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_gallery  # noqa: F401
    except ImportError as exc:
        print(f"check_docs: {exc.name} is not installed; "
              "run `pip install -r docs/requirements.txt`", file=sys.stderr)
        return 2

    if not args.keep:
        for path in (BUILD, GENERATED, GALLERY):
            if path.exists():
                shutil.rmtree(path)
    cmd = build_command(args.builder)
    size = "smoke" if os.environ.get("SKLEARN_CRTCL_SMOKE") == "1" else "full"
    print("check_docs:", " ".join(["sphinx-build"] + cmd[3:]),
          f"(examples at {size} size)", flush=True)
    status = subprocess.call(cmd, cwd=ROOT)
    if status != 0:
        print(f"check_docs: FAILED (sphinx-build exit status {status}); "
              "every warning above is an error", file=sys.stderr)
    out = BUILD / args.builder
    if args.builder in ("html", "dirhtml") and out.is_dir():
        broken = find_broken_links(out)
        if broken:
            print(f"check_docs: FAILED, {len(broken)} broken internal link(s):",
                  *broken, sep="\n  ", file=sys.stderr)
            status = status or 1
    if status == 0:
        print(f"check_docs: OK, no warnings, no broken internal links; "
              f"output in docs/_build/{args.builder}")
    return status


if __name__ == "__main__":
    sys.exit(main())
