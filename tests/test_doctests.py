"""The Examples sections of the package's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import sklearn_crtcl

MODULES = sorted(m.name for m in pkgutil.walk_packages(sklearn_crtcl.__path__, "sklearn_crtcl.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
