"""Docstring checks: numpydoc validation of every public name, and the API
reference listing every public name.

What is public
--------------
Every module of :mod:`sklearn_crtcl` whose dotted name has no part starting
with ``_`` (``__main__`` excluded), and in each such module the names of its
``__all__``.  Modules that do not exist yet are simply not found, so the test
keeps working while the package grows.  An object re-exported by several
modules is checked once, under the module that defines it.

Enforced numpydoc codes (``numpydoc.validate.validate``)
---------------------------------------------------------
For public modules:

* ``GL08`` the module has no docstring.

For public functions and classes (``__all__`` entries), and for the public
methods and properties that the package defines on them (including those
inherited from the package's own base classes and mixins):

* ``GL08`` the object has no docstring;
* ``SS01`` no one-line summary;
* ``PR01`` a parameter of the signature is not documented (for a class: of
  ``__init__``; fields of a dataclass or named tuple may be documented under
  ``Attributes`` instead);
* ``PR02`` a documented parameter is not in the signature;
* ``RT01`` a function or method that returns a value has no ``Returns``
  section;
* ``YD01`` a generator has no ``Yields`` section.

Framework hooks are methods whose first definition in the class's MRO is
outside the package (``torch.nn.Module.forward``, skorch's ``train_step`` or
``initialize_module``, a skorch callback's ``on_epoch_end``), except the
estimator methods users call (``fit``, ``partial_fit``, ``predict``,
``predict_proba``, ``score``...: :data:`ESTIMATOR_API`), which get the full
set.
Their signature and return value are the framework's, documented there, so
for them only ``GL08``, ``SS01``, ``PR02`` and ``YD01`` apply, and ``PR01``
only to the named parameters the override *adds* to the framework's
signature (e.g. ``x`` of a ``forward``, whose framework signature is
``forward(*input)``).

numpydoc's own escape hatch is honoured: a ``# numpydoc ignore=RT01`` comment
on a ``def`` or ``class`` line skips those codes for that object.

Module-level constants are not checked here (numpydoc cannot see their
``#:`` doc comments); the strict documentation build renders them.

API reference coverage
----------------------
``docs/api.rst`` must list every public name of the modules that make up the
API (see :data:`API_MODULES`): a name is listed when an autosummary entry
resolves to the same object.  Entries that do not resolve are reported by the
strict documentation build (``python tools/check_docs.py``), not here.
"""

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")
from numpydoc.docscrape import get_doc_object  # noqa: E402

import sklearn_crtcl  # noqa: E402

PACKAGE = "sklearn_crtcl"
API_RST = Path(__file__).resolve().parents[1] / "docs" / "api.rst"

#: Codes enforced on functions, classes and the package's own methods.
FULL_CODES = frozenset({"GL08", "SS01", "PR01", "PR02", "RT01", "YD01"})
#: Methods users call on an estimator: always fully checked, even where they
#: override skorch's or scikit-learn's.
ESTIMATOR_API = frozenset({"fit", "partial_fit", "predict", "predict_proba",
                           "predict_log_proba", "decision_function", "score",
                           "transform", "fit_transform"})
#: Codes enforced on framework hooks (``PR01`` is checked separately, on the
#: parameters the override adds).
HOOK_CODES = frozenset({"GL08", "SS01", "PR02", "YD01"})


def _is_public_module(name):
    return not any(part.startswith("_") for part in name.split("."))


#: Public modules built on an optional dependency (an extra): checked when it is installed.
OPTIONAL_MODULES = {"sklearn_crtcl.skactiveml": "skactiveml"}


def public_modules():
    """Names of the importable public modules of the package, sorted."""
    names = [PACKAGE]
    for info in pkgutil.walk_packages(sklearn_crtcl.__path__, PACKAGE + "."):
        needs = OPTIONAL_MODULES.get(info.name)
        if needs is not None and importlib.util.find_spec(needs) is None:
            continue
        if _is_public_module(info.name):
            names.append(info.name)
    return sorted(names)


def _in_package(obj):
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] == PACKAGE


def _public_members(cls):
    """Public methods/properties defined by package classes in ``cls``'s MRO.

    Yields ``(defining_class, name)`` with the first package class of the MRO
    that defines ``name`` (the one whose code runs).
    """
    seen = set()
    for klass in cls.__mro__:
        if not _in_package(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                seen.add(name)
                yield klass, name


def _framework_definition(cls, name):
    """The first definition of ``name`` in ``cls``'s MRO if it is outside the package."""
    for klass in reversed(cls.__mro__):
        if name in vars(klass):
            return None if _in_package(klass) else getattr(klass, name)
    return None


def _signature_params(func):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return set()
    params = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            params.add("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            params.add("**" + p.name)
        else:
            params.add(p.name)
    return params - {"self", "cls"}


def collect_targets():
    """Everything to validate: ``{qualified name: (kind, extra)}``.

    ``kind`` is ``"module"``, ``"object"`` (function or class), ``"method"``
    or ``"hook"``; for hooks, ``extra`` is the framework's definition.
    """
    targets = {}
    for modname in public_modules():
        if modname.rsplit(".", 1)[-1] == "__main__":
            continue
        module = importlib.import_module(modname)
        targets[modname] = ("module", None)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not _in_package(obj):
                continue
            qualname = f"{obj.__module__}.{obj.__qualname__}"
            targets.setdefault(qualname, ("object", None))
            if not inspect.isclass(obj):
                continue
            for klass, name in _public_members(obj):
                key = f"{klass.__module__}.{klass.__qualname__}.{name}"
                framework = _framework_definition(obj, name)
                if framework is not None and name not in ESTIMATOR_API:
                    targets[key] = ("hook", framework)
                else:
                    targets.setdefault(key, ("method", None))
    return targets


TARGETS = collect_targets()


def _class_missing_params(name):
    """Signature parameters of a class documented nowhere (Parameters,
    Other Parameters or Attributes)."""
    obj = numpydoc_validate.Validator._load_obj(name)
    doc = get_doc_object(obj)
    documented = {p.name.replace("\\", "")
                  for section in ("Parameters", "Other Parameters", "Attributes")
                  for p in doc[section]}
    # numpydoc documents "x, y : int" as one entry
    documented = {n.strip() for d in documented for n in d.split(",")}
    return _signature_params(obj) - documented


def check(name):
    """Enforced numpydoc errors of one target, as ``[(code, message)]``."""
    kind, framework = TARGETS[name]
    if kind == "module":
        # (numpydoc's validate() fails on a module without any def or class)
        module = importlib.import_module(name)
        return [] if (inspect.getdoc(module) or "").strip() else [
            ("GL08", "The object does not have a docstring")]
    result = numpydoc_validate.validate(name)
    codes = HOOK_CODES if kind == "hook" else FULL_CODES
    errors = [(code, msg) for code, msg in result["errors"] if code in codes]
    if kind == "object" and any(code == "PR01" for code, _ in errors):
        obj = numpydoc_validate.Validator._load_obj(name)
        if inspect.isclass(obj):
            errors = [(c, m) for c, m in errors if c != "PR01"]
            missing = _class_missing_params(name)
            if missing:
                errors.append(("PR01", f"Parameters {sorted(missing)} not documented"))
    if kind == "hook" and not any(code == "GL08" for code, _ in result["errors"]):
        obj = numpydoc_validate.Validator._load_obj(name)
        # *args / **kwargs of an override only pass arguments on to the framework
        added = {p for p in _signature_params(obj) - _signature_params(framework)
                 if not p.startswith("*")}
        doc = get_doc_object(obj)
        documented = {p.name.replace("\\", "")
                      for section in ("Parameters", "Other Parameters") for p in doc[section]}
        documented = {n.strip() for d in documented for n in d.split(",")}
        missing = added - documented
        if missing:
            errors.append(("PR01", f"Parameters {sorted(missing)} (added to the framework's "
                                   "signature) not documented"))
    return errors


def test_targets_found():
    # the walk must find the modules that exist today, with their members
    for name in ("sklearn_crtcl", "sklearn_crtcl.backbones", "sklearn_crtcl.metrics",
                 "sklearn_crtcl.nets.base.ResNetClassifier",
                 "sklearn_crtcl.nets.base.ResNetClassifier.predict_proba",
                 "sklearn_crtcl.backbones.ResNet.forward_taps",
                 "sklearn_crtcl.backbones.resnet18"):
        assert name in TARGETS, name
    # re-exported objects are checked once, where they are defined
    assert "sklearn_crtcl.ResNetClassifier" not in TARGETS
    # private modules and private members are not checked
    assert all(_is_public_module(name) for name, (kind, _) in TARGETS.items()
               if kind == "module")
    assert not any(name.rsplit(".", 1)[-1].startswith("_") for name in TARGETS)
    # framework hooks are recognised as such, the package's own API is not
    assert TARGETS["sklearn_crtcl.backbones.ResNet.forward"][0] == "hook"
    assert TARGETS["sklearn_crtcl.nets.base.ResNetClassifier.initialize_module"][0] == "hook"
    assert TARGETS["sklearn_crtcl.nets.base.ResNetClassifier.fit"][0] == "method"
    assert TARGETS["sklearn_crtcl.backbones.ResNet.forward_taps"][0] == "method"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_docstring(name):
    errors = check(name)
    assert not errors, f"{name}: " + "; ".join(f"{code} {msg}" for code, msg in errors)


# ---------------------------------------------------------------------------
# the checker itself must catch what it claims to catch
# ---------------------------------------------------------------------------


def _undocumented(a, b=1):
    """Add two numbers."""
    return a + b


def _documented(a, b=1):
    """Add two numbers.

    Parameters
    ----------
    a : int
        First.
    c : int
        Not a parameter.

    Returns
    -------
    int
        The sum.
    """
    return a + b


def test_validator_catches_missing_and_unknown_parameters():
    name = f"{__name__}._undocumented"
    codes = {code for code, _ in numpydoc_validate.validate(name)["errors"]}
    assert {"PR01", "RT01"} <= codes
    name = f"{__name__}._documented"
    errors = dict(numpydoc_validate.validate(name)["errors"])
    assert "b" in errors["PR01"] and "c" in errors["PR02"] and "RT01" not in errors


# ---------------------------------------------------------------------------
# API reference coverage
# ---------------------------------------------------------------------------

#: Modules whose ``__all__`` must be listed in docs/api.rst: every public
#: module except the implementation submodules of ``query`` and
#: ``experiments``, whose packages re-export their public API.
API_MODULES = tuple(
    m for m in public_modules()
    if not m.startswith(("sklearn_crtcl.query.", "sklearn_crtcl.experiments."))
)


def _resolve(name):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def api_rst_entries(text):
    """Full names listed in the autosummary tables of ``api.rst``."""
    entries = []
    current = None
    in_table = False
    for line in text.splitlines():
        m = re.match(r"\.\. (?:current)?module:: (\S+)", line)
        if m:
            current, in_table = m.group(1), False
            continue
        if re.match(r"\.\. autosummary::", line):
            in_table = True
            continue
        if in_table:
            stripped = line.strip()
            if not stripped or stripped.startswith(":"):
                continue
            if not line.startswith(" "):
                in_table = False
                continue
            entry = stripped.lstrip("~")
            candidates = [f"{current}.{entry}", entry] if current else [entry]
            entries.append(next((c for c in candidates if _resolve(c) is not None),
                                candidates[0]))
    return entries


def test_api_rst_parser():
    text = (".. currentmodule:: sklearn_crtcl.backbones\n\n.. autosummary::\n"
            "   :toctree: generated\n\n   resnet18\n   TAP_NAMES\n\nText.\n\n"
            "   not_an_entry\n")
    assert api_rst_entries(text) == ["sklearn_crtcl.backbones.resnet18",
                                     "sklearn_crtcl.backbones.TAP_NAMES"]


def test_api_reference_lists_every_public_name():
    entries = api_rst_entries(API_RST.read_text())
    listed = {id(obj) for obj in map(_resolve, entries) if obj is not None}
    unresolved = [e for e in entries if _resolve(e) is None]
    missing = []
    for modname in API_MODULES:
        module = importlib.import_module(modname)
        for attr in getattr(module, "__all__", ()):
            if attr.startswith("__"):
                continue
            if id(getattr(module, attr)) not in listed:
                missing.append(f"{modname}.{attr}")
    assert not missing, ("docs/api.rst does not list these public names "
                         f"(add them to an autosummary table): {missing}; "
                         f"api.rst entries that do not resolve: {unresolved}")
