"""Compatibility of modAL 0.4.x with this package and with recent scikit-learn.

Importing :mod:`sklearn_crtcl` applies two fixes to an installed modAL
(``modAL-python``), each only where it is needed; both are idempotent, and
neither changes what modAL does for anything else:

1. **scikit-learn >= 1.8.** modAL calls
   ``check_X_y(..., force_all_finite=...)`` in ``ActiveLearner.teach``,
   ``fit`` and ``_add_training_data``; scikit-learn renamed that keyword to
   ``ensure_all_finite`` in 1.6 and removed the old name in 1.8, so every
   ``teach`` fails with a ``TypeError``. When the installed ``check_X_y`` no
   longer accepts ``force_all_finite``, the ``check_X_y``/``check_array``
   names *imported by modAL's modules* (``modAL.models.base`` in 0.4.1,
   ``modAL.models.learners`` in 0.4.2.x) are replaced by a wrapper that
   renames the keyword. scikit-learn itself is not modified and not pinned.

2. **The package's strategies are called once per query.** modAL 0.4.2.x's
   ``BaseLearner.query`` first tries ``indices, metrics = strategy(...)``
   and, when that fails (an array of indices of any length but 2), calls the
   strategy a *second* time; with ``n_instances=2`` it takes the two indices
   as ``(indices, metrics)``. 0.4.0 and 0.4.1 call it once, but modAL's
   ``retrieve_rows`` cannot read the rows of a
   :class:`~sklearn_crtcl.data.DatasetArray` pool. For modAL 0.4.0 -
   0.4.2.x, ``BaseLearner.query`` is wrapped: when the learner's
   ``query_strategy`` is one of this package's strategies (marked by
   :func:`package_strategy`; also through ``functools.partial``), the
   strategy is called once and ``(indices, X_pool[indices])`` returned
   (0.4.2.x: ``(indices, X_pool[indices], None)`` with ``return_metrics=True``
   and modAL's warning, as it does for a strategy without metrics; 0.4.0 and
   0.4.1 have no ``return_metrics`` and pass it on to the strategy). Asked
   for its proposal (``return_proposal=True``, passed to ``query`` or bound
   by a ``partial``), a strategy returns ``(indices, proposal)``, and the
   query ``(indices, X_pool[indices], proposal)`` (``(indices,
   X_pool[indices], None, proposal)`` with ``return_metrics=True``), still
   from one call. Every other strategy goes to modAL's own ``query``,
   unchanged: a user's
   ``(indices, instances)`` tuple, its own ``return_metrics`` keyword, 0.4.2's
   second call, committees.

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

__all__ = ["patch_modal", "package_strategy", "is_package_strategy", "PATCHED"]

#: What :func:`patch_modal` changed: ``"check_X_y"`` -> list of patched
#: ``module.name``; ``"query"`` -> list of classes whose ``query`` was wrapped.
PATCHED = {"check_X_y": [], "query": []}

_MARK = "_sklearn_crtcl_compat"
_STRATEGY_MARK = "_sklearn_crtcl_strategy"
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


def package_strategy(func):
    """Mark ``func`` as a query strategy of this package (a decorator).

    A marked strategy returns an array of indices into ``X_pool`` (and,
    only when asked with ``return_proposal=True``, the pair ``(indices,
    proposal)``); the patched modAL ``query`` then calls it once (see
    :mod:`sklearn_crtcl._modal_compat`). A wrapper made with
    ``functools.wraps`` is not marked (the mark names the function itself);
    a ``functools.partial`` of a marked strategy is recognised.

    Parameters
    ----------
    func : callable
        ``func(classifier, X_pool, n_instances=1, **options) -> indices``.

    Returns
    -------
    func : callable
        The same function, marked.
    """
    setattr(func, _STRATEGY_MARK, func)
    return func


def is_package_strategy(strategy):
    """Whether ``strategy`` is (a ``functools.partial`` of) a :func:`package_strategy`.

    Parameters
    ----------
    strategy : callable
        A modAL ``query_strategy``.

    Returns
    -------
    bool
    """
    while isinstance(strategy, functools.partial):
        strategy = strategy.func
    return getattr(strategy, _STRATEGY_MARK, None) is strategy


def _rows(X_pool, indices):
    """``X_pool[indices]`` as modAL's ``retrieve_rows`` gives it, and for a DatasetArray."""
    from modAL.utils.data import retrieve_rows

    # modAL's retrieve_rows knows arrays, lists, frames and sparse matrices
    return X_pool[indices] if isinstance(X_pool, DatasetArray) else retrieve_rows(X_pool, indices)


def _once_query(original):
    """``original`` (a modAL ``BaseLearner.query``), calling the package's strategies once."""
    takes_metrics = _accepts(original, "return_metrics")

    @functools.wraps(original)
    def query(self, X_pool, *query_args, **query_kwargs):
        if not is_package_strategy(self.query_strategy):
            return original(self, X_pool, *query_args, **query_kwargs)
        return_metrics = query_kwargs.pop("return_metrics", False) if takes_metrics else False
        indices = self.query_strategy(self, X_pool, *query_args, **query_kwargs)
        extra = ()
        if isinstance(indices, tuple):  # return_proposal=True: (indices, proposal)
            indices, proposal = indices
            extra = (proposal,)
        rows = _rows(X_pool, indices)
        if return_metrics:  # as modAL 0.4.2.x does for a strategy without metrics
            warnings.warn("The selected query strategy doesn't support return_metrics",
                          stacklevel=2)
            return (indices, rows, None) + extra
        return (indices, rows) + extra

    setattr(query, _MARK, original)
    return query


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
    """Whether ``BaseLearner.query`` of modAL ``version`` (a tuple) is wrapped.

    True for 0.4.0 up to 0.4.2.x (see :mod:`sklearn_crtcl._modal_compat`).
    """
    return version is not None and (0, 4) <= tuple(version[:2]) < (0, 5) and \
        tuple(version[:3]) <= (0, 4, 2)


def patch_query(*classes):
    """Wrap ``query`` of ``classes`` so that the package's strategies run once (idempotent).

    The strategies of other users still go to the original ``query``.

    Parameters
    ----------
    *classes : type
        Classes defining ``query`` (modAL's ``BaseLearner``).

    Returns
    -------
    list of str
        Names of the classes patched by this call.
    """
    done = []
    for cls in classes:
        current = cls.__dict__.get("query")
        if current is None or hasattr(current, _MARK):
            continue
        cls.query = _once_query(current)
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
        changed["query"] = patch_query(base.BaseLearner)
    PATCHED["check_X_y"].extend(changed["check_X_y"])
    PATCHED["query"].extend(changed["query"])
    return changed


patch_modal()
