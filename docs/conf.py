"""Sphinx configuration for the sklearn-crtcl documentation.

Build (warnings are errors)::

    python tools/check_docs.py
    # or directly:
    sphinx-build -W --keep-going -b html docs docs/_build/html

The build needs no network: intersphinx is off unless the environment
variable ``SKLEARN_CRTCL_INTERSPHINX=1`` is set.

The example gallery (``auto_examples/``, made by sphinx-gallery from the
scripts in ``examples/``) runs every example during the build; an example
that raises fails the build.  ``SKLEARN_CRTCL_SMOKE=1`` runs them at smoke
size (what the test suite does); without it they run at full size.
``sphinx-build -D plot_gallery=0 ...`` renders the examples without running
them (no outputs, no figures).

Conventions for the pages:

* The API reference (``api.rst``) is the one place where objects are
  documented: its autosummary tables generate one page per object under
  ``docs/generated/``.  Narrative pages refer to objects with roles
  (``:func:`~sklearn_crtcl.metrics.expected_calibration_error```) or with an
  autosummary table *without* ``:toctree:``.  An ``.. autofunction::`` (or
  ``autoclass``...) on a narrative page must carry ``:no-index:``, otherwise
  Sphinx reports a duplicate object description.
* A class page shows the public members defined in this package, including
  those inherited from the package's own base classes and mixins
  (``_templates/autosummary/class.rst`` and :func:`_skip_foreign_members`).
  Members that come from skorch, PyTorch or scikit-learn are documented by
  those projects, and their docstrings are not numpydoc.
"""

import importlib
import inspect
import os
import sys
from pathlib import Path

from sphinx import addnodes
from sphinx.pycode import ModuleAnalyzer, PycodeError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Document the working tree, not an installed copy.
sys.path.insert(0, str(ROOT))

import sklearn_crtcl  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "sklearn-crtcl"
author = "sklearn-crtcl developers"
copyright = "sklearn-crtcl developers"  # noqa: A001 (Sphinx's name)
release = sklearn_crtcl.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",  # loaded by the reader's browser, not at build time
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # renders the runner's Markdown summaries (docs/_static/results/*_summary.md) as tables
    "myst_parser",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
language = "en"

# Single back-quotes (`x`) render as inline code, as in scikit-learn's docs.
default_role = "literal"

# The results page includes the runner's summaries without their "# ..." title line
# (the page's own section is the title), so they start at "##": not a mistake there.
suppress_warnings = ["myst.header"]

# -- autodoc / autosummary ---------------------------------------------------

autosummary_generate = True
# The stubs under docs/generated/ are build products: rewritten at each build.
autosummary_generate_overwrite = True
autosummary_imported_members = False
# Values of these module-level constants depend on the machine that builds the
# docs (e.g. DEFAULT_DEVICE is "cuda" on a GPU machine): the data template
# hides them, the docstring says what they are.
autosummary_context = {"hide_value": ["DEFAULT_DEVICE"]}

autodoc_typehints = "none"  # types are written in the numpydoc sections
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False

# -- numpydoc ----------------------------------------------------------------

# The class template lists members itself; numpydoc's own member tables would
# duplicate them (and pull in skorch's inherited members).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
# Docstring *style* is checked by tests/test_docstrings.py, not by the build.
numpydoc_validation_checks = set()

# -- intersphinx ---------------------------------------------------------------

# The build machine has no internet access: intersphinx stays off unless asked
# for.  Unresolved cross-references to other projects are rendered as plain
# text (``nitpicky`` is off), so the build is the same either way.
intersphinx_mapping = {}
if os.environ.get("SKLEARN_CRTCL_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
    }
nitpicky = False

# -- sphinx-gallery -------------------------------------------------------------

#: Size the examples run at: they read ``SKLEARN_CRTCL_SMOKE`` themselves.
EXAMPLE_SIZE = "smoke" if os.environ.get("SKLEARN_CRTCL_SMOKE") == "1" else "full"
# sphinx-gallery runs an example again only when its source changed, and the
# size comes from the environment: a build at the other size than the last one
# (a full-size build after the test suite's smoke build) must run them all.
_GALLERY_DIR = HERE / "auto_examples"
_SIZE_STAMP = _GALLERY_DIR / ".example-size"
_other_size_before = _GALLERY_DIR.is_dir() and not (
    _SIZE_STAMP.is_file() and _SIZE_STAMP.read_text().strip() == EXAMPLE_SIZE)

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",  # run (and capture figures of) every plot_ script
    "run_stale_examples": _other_size_before,
    # an example that raises fails the build (after the others have run)
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    # the summary page of all galleries would be written to docs/, not to the
    # (ignored) auto_examples/; the console log has the times
    "write_computation_times": False,
}


def _stamp_example_size(app):
    """Record the size the gallery's examples were run at (see above)."""
    if _GALLERY_DIR.is_dir() and app.config.sphinx_gallery_conf.get("plot_gallery"):
        _SIZE_STAMP.write_text(EXAMPLE_SIZE + "\n")


#: The notice that heads every example page of a smoke-size build.
SMOKE_NOTICE = (
    ".. warning::\n\n"
    "   This page was built at **smoke size** (``SKLEARN_CRTCL_SMOKE=1``: a few images\n"
    "   and one or two epochs, to check that the example runs). Its printed numbers and\n"
    "   figures are meaningless; build the documentation without ``SKLEARN_CRTCL_SMOKE``\n"
    "   (``python tools/check_docs.py``) or run the script to see the real ones.\n\n")


def _smoke_notice(app, docname, source):
    """Head each example page of a smoke-size build with :data:`SMOKE_NOTICE`.

    The notice goes right below the page's title (the first line underlined
    with ``=``), so that the page keeps its title.
    """
    if EXAMPLE_SIZE != "smoke" or not docname.startswith("auto_examples/") \
            or docname.endswith("/index"):
        return
    lines = source[0].split("\n")
    for i in range(1, len(lines)):
        title, rule = lines[i - 1].strip(), lines[i].strip()
        if title and rule and set(rule) == {"="} and len(rule) >= len(title):
            lines.insert(i + 1, "\n" + SMOKE_NOTICE)
            source[0] = "\n".join(lines)
            return


# -- HTML --------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"sklearn-crtcl {release}"
html_static_path = ["_static"]
html_theme_options = {
    "description": "Critic loss and deep active learning for scikit-learn",
    "fixed_sidebar": True,
    "page_width": "1100px",
}
html_show_sourcelink = False


# -- Members of classes ------------------------------------------------------


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Skip class members defined outside sklearn_crtcl (skorch, torch, ...).

    The class template asks for inherited members so that, e.g., the page of
    a ResNetClassifier subclass shows ``fit`` and ``predict_proba``; members
    that come from skorch, PyTorch, scikit-learn or builtins are left to
    those projects' documentation (their docstrings are not numpydoc).
    """
    if what != "class":
        return None
    if isinstance(obj, property):
        func = obj.fget
    elif callable(obj) or isinstance(obj, (classmethod, staticmethod)):
        func = getattr(obj, "__func__", obj)
    else:
        # data attributes: autodoc keeps only those with a doc comment
        return None
    module = getattr(func, "__module__", None)
    if not (isinstance(module, str) and module.split(".")[0] == "sklearn_crtcl"):
        return True
    return None


def _docs_of_reexported_data(app, what, name, obj, options, lines):
    """Give re-exported constants the ``#:`` doc comment of their definition.

    autodoc reads the doc comment of a module-level constant from the source
    of the module named in the directive.  For a constant documented where
    it is re-exported (``sklearn_crtcl.experiments.METHODS`` is defined in
    ``sklearn_crtcl.experiments.methods``) it finds none, and shows the
    docstring of the value's type (``tuple``, ``str``) instead.  This drops
    that docstring and looks the comment up in the module that defines the
    same object under the same name.
    """
    if what != "data":
        return
    type_doc = inspect.getdoc(type(obj)) or ""
    if lines and "\n".join(lines).strip() == type_doc.strip():
        lines[:] = []
    if any(line.strip() for line in lines):
        return
    modname, _, attr = name.rpartition(".")
    for other in sorted(m for m in sys.modules if m.split(".")[0] == "sklearn_crtcl"):
        if other == modname or getattr(sys.modules[other], attr, lines) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(other).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in docs:
            lines[:] = list(docs[("", attr)])
            return


def _source_module(modname, fullname):
    """Module that defines ``modname.fullname`` (as viewcode follows imports)."""
    try:
        obj = importlib.import_module(modname)
        for attr in fullname.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError):
        return None
    return getattr(obj, "__module__", None)


def _viewcode_backlink_anchors(app, doctree, docname):
    """Give each object the anchor that its ``[docs]`` back-link points to.

    sphinx.ext.viewcode keeps, per *source* module, the module name under
    which the first object of that file was documented, and writes every
    ``[docs]`` back-link of the file's source page as that name plus the
    object's name (Sphinx issue #6651).  ``sklearn_crtcl/nets/crtcl.py``
    holds ``CriticLossNet``, documented as ``sklearn_crtcl.CriticLossNet``,
    and ``Critic``, documented as ``sklearn_crtcl.nets.crtcl.Critic``: the
    back-link of ``Critic`` pointed to ``#sklearn_crtcl.Critic``, an anchor
    that did not exist.  Once all pages are read, this adds that anchor to
    the object's signature (next to its own id) on the page the back-link
    leads to.  ``tools/check_docs.py`` checks every internal anchor.
    """
    modules = getattr(app.env, "_viewcode_modules", None)
    if not modules:
        return
    for sig in doctree.findall(addnodes.desc_signature):
        modname, fullname = sig.get("module"), sig.get("fullname")
        if not (modname and fullname and sig["ids"]):
            continue
        entry = modules.get(_source_module(modname, fullname))
        # False: no source; else viewcode's (code, tags, used, refname)
        if not (isinstance(entry, tuple) and len(entry) == 4):
            continue
        _code, _tags, used, refname = entry
        anchor = f"{refname}.{fullname}"
        if used.get(fullname) == docname and anchor not in sig["ids"]:
            sig["ids"].append(anchor)


def setup(app):
    """Register the member filter, the constant-docs lookup and the doc fixes."""
    app.connect("autodoc-skip-member", _skip_foreign_members)
    # before numpydoc (priority 500) rewrites the lines
    app.connect("autodoc-process-docstring", _docs_of_reexported_data, priority=400)
    app.connect("doctree-resolved", _viewcode_backlink_anchors)
    app.connect("source-read", _smoke_notice)
    # after sphinx-gallery has run the examples (generate_gallery_rst, 500)
    app.connect("builder-inited", _stamp_example_size, priority=900)
