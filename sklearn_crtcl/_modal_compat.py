"""Compatibility of modAL 0.4.x with this package and with recent scikit-learn.

Importing :mod:`sklearn_crtcl` applies two fixes to an installed modAL
(``modAL-python``), each only where it is needed; both are idempotent and
touch nothing else:

1. **scikit-learn >= 1.8.** modAL calls
   ``check_X_y(..., force_all_finite=...)`` in ``ActiveLearner.teach``,
   ``fit`` and ``_add_training_data``; scikit-learn renamed that keyword to
   ``ensure_all_finite`` in 1.6 and removed the old name in 1.8, so every
   ``teach`` fails with a ``TypeError``. When the installed ``check_X_y`` no
   longer accepts ``force_all_finite``, the ``check_X_y``/``check_array``
   names *imported by modAL's modules* (``modAL.models.base`` in 0.4.1,
   ``modAL.models.learners`` in 0.4.2.x) are replaced by a wrapper that
   renames the keyword. scikit-learn itself is not modified and not pinned.

2. **One query protocol for modAL 0.4.0 - 0.4.2.x.** The versions disagree
   on what ``learner.query`` does with a strategy's return value: 0.4.0 and
   0.4.1 call the strategy once and return ``(indices, X_pool[indices])``,
   but return a tuple from the strategy unchanged; 0.4.2.x first tries to
   unpack ``indices, metrics = strategy(...)`` and, when that fails (a plain
   array of indices of any length but 2), calls the strategy a *second*
   time; with ``n_instances=2`` it silently takes the two indices as
   ``(indices, metrics)``. ``BaseLearner.query`` and
   ``BaseCommittee.query`` of those versions are replaced by one method
   that calls the strategy exactly once; takes the indices from it (the first
   item when it returns a tuple, e.g. 0.4.2-style ``(indices, metrics)``);
   and returns ``(indices, X_pool[indices])``, or
   ``(indices, X_pool[indices], metrics)`` with ``return_metrics=True``
   (0.4.2's keyword, accepted under every version).

Other modAL versions are left alone. :func:`patch_modal` applies the fixes
(it runs on import) and returns what it changed; :data:`PATCHED` records it.
"""

import functools
import importlib
import importlib.util
import inspect
import re
import sys
import warnings

from .data import DatasetArray

__all__ = ["patch_modal", "PATCHED"]

#: What :func:`patch_modal` changed: ``"check_X_y"`` -> list of patched
#: ``module.name``; ``"query"`` -> list of patched classes.
PATCHED = {"check_X_y": [], "query": []}

_MARK = "_sklearn_crtcl_compat"
_VALIDATORS = ("check_X_y", "check_array")


def _accepts(func, keyword):
    try:
        return keyword in inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return True


def _renaming_wrapper(func):
    """``func`` accepting the removed ``force_all_finite`` as ``ensure_all_finite``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if "force_all_finite" in kwargs:
            value = kwargs.pop("force_all_finite")
            if "ensure_all_finite" in kwargs:
                raise TypeError(f"{func.__name__}() got both force_all_finite and "
                                "ensure_all_finite")
            kwargs["ensure_all_finite"] = value
        return func(*args, **kwargs)

    setattr(wrapper, _MARK, func)
    return wrapper


def patch_validators(modules):
    """Rename ``force_all_finite`` in the sklearn validators imported by ``modules``.

    Only when scikit-learn's ``check_X_y`` lacks ``force_all_finite`` (1.8+).

    Parameters
    ----------
    modules : iterable of module
        Modules whose global ``check_X_y``/``check_array`` are patched.

    Returns
    -------
    list of str
        ``"module.name"`` of every name patched by this call.
    """
    from sklearn.utils import validation

    if _accepts(validation.check_X_y, "force_all_finite"):
        return []
    done = []
    for module in modules:
        for name in _VALIDATORS:
            func = getattr(module, name, None)
            if func is None or not callable(func) or hasattr(func, _MARK):
                continue
            if func is not getattr(validation, name, None):
                continue  # not scikit-learn's validator: leave it
            setattr(module, name, _renaming_wrapper(func))
            done.append(f"{module.__name__}.{name}")
    return done


def unified_query(self, X_pool, *query_args, return_metrics=False, **query_kwargs):
    """Query the pool: call the strategy once, return the indices and the samples.

    Replaces ``query`` of modAL 0.4.x learners and committees (see
    :mod:`sklearn_crtcl._modal_compat`).

    Parameters
    ----------
    X_pool : array-like
        The pool passed to the query strategy.
    *query_args
        More positional arguments for the strategy.
    return_metrics : bool, default=False
        Also return what the strategy returned after the indices (modAL
        0.4.2-style strategies return ``(indices, metrics)``); ``None`` with a
        warning when it returned only indices.
    **query_kwargs
        Keyword arguments for the strategy (``n_instances``, ...).

    Returns
    -------
    indices : array-like
        What the strategy chose (the first item of a returned tuple).
    instances : array-like
        ``X_pool[indices]`` (modAL's ``retrieve_rows``; for a
        :class:`~sklearn_crtcl.data.DatasetArray`, its rows as a numpy array).
    metrics : object
        Only with ``return_metrics=True``.
    """
    from modAL.utils.data import retrieve_rows

    result = self.query_strategy(self, X_pool, *query_args, **query_kwargs)
    metrics = None
    if isinstance(result, tuple):
        if not result:
            raise ValueError("the query strategy returned an empty tuple")
        indices = result[0]
        if len(result) == 2:
            metrics = result[1]
        elif len(result) > 2:
            metrics = result[1:]
    else:
        indices = result
    # modAL's retrieve_rows knows arrays, lists and frames, not a streamed dataset
    instances = X_pool[indices] if isinstance(X_pool, DatasetArray) \
        else retrieve_rows(X_pool, indices)
    if return_metrics:
        if metrics is None:
            warnings.warn("the query strategy returned no metrics", UserWarning, stacklevel=2)
        return indices, instances, metrics
    return indices, instances


setattr(unified_query, _MARK, True)


def _modal_version():
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        text = version("modAL-python")
    except PackageNotFoundError:
        return None
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers[:4]) if numbers else None


def needs_query_patch(version):
    """Whether ``learner.query`` of modAL ``version`` (a tuple) needs :func:`unified_query`.

    True for 0.4.0 up to 0.4.2.x, whose protocols differ (see module docstring).
    """
    return version is not None and (0, 4) <= tuple(version[:2]) < (0, 5) and \
        tuple(version[:3]) <= (0, 4, 2)


def patch_query(*classes):
    """Replace ``query`` of ``classes`` by :func:`unified_query` (idempotent).

    Parameters
    ----------
    *classes : type
        Classes defining ``query`` (modAL's ``BaseLearner``, ``BaseCommittee``).

    Returns
    -------
    list of str
        Names of the classes patched by this call.
    """
    done = []
    for cls in classes:
        current = cls.__dict__.get("query")
        if current is None or getattr(current, _MARK, False):
            continue
        cls.query = unified_query
        done.append(f"{cls.__module__}.{cls.__qualname__}")
    return done


def patch_modal():
    """Apply the modAL fixes that the installed versions need (idempotent).

    Does nothing when modAL is not installed or fails to import.

    Returns
    -------
    dict
        ``{"check_X_y": [...], "query": [...]}``: what this call patched.
    """
    changed = {"check_X_y": [], "query": []}
    if "modAL" not in sys.modules and importlib.util.find_spec("modAL") is None:
        return changed
    try:
        base = importlib.import_module("modAL.models.base")
        importlib.import_module("modAL.models")
    except Exception:  # a broken modAL must not break this package  # pragma: no cover
        return changed
    modules = [m for name, m in list(sys.modules.items())
               if m is not None and (name == "modAL" or name.startswith("modAL."))]
    changed["check_X_y"] = patch_validators(modules)
    if needs_query_patch(_modal_version()):
        changed["query"] = patch_query(base.BaseLearner, base.BaseCommittee)
    PATCHED["check_X_y"].extend(changed["check_X_y"])
    PATCHED["query"].extend(changed["query"])
    return changed


patch_modal()
