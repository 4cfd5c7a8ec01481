"""The per-step values of the greedy batch strategies (BADGE, core-set), on demand.

:func:`~sklearn_crtcl.query.badge_sampling` and
:func:`~sklearn_crtcl.query.coreset_sampling` choose their batch one sample
at a time by a value per candidate: the core-set distance to the nearest
center, BADGE's squared gradient norm (first step) and squared distance to
the nearest chosen gradient embedding (the k-means++ weights). Inside
:func:`recording`, each step hands its values to :func:`record`, in the order
of the steps; outside, :func:`record` does nothing. The scikit-activeml
adapters (:mod:`sklearn_crtcl.skactiveml`) return them as utilities.
"""

import contextlib
import contextvars

import numpy as np

_STEPS = contextvars.ContextVar("sklearn_crtcl_query_steps", default=None)


@contextlib.contextmanager
def recording():
    """Collect the values of the steps of the greedy strategies called inside.

    Yields
    ------
    steps : list of ndarray
        One float64 array per step, one value per candidate position (as the
        strategy saw them: samples already chosen hold ``-inf`` or ``0``).
    """
    steps = []
    token = _STEPS.set(steps)
    try:
        yield steps
    finally:
        _STEPS.reset(token)


def record(values):
    """Hand one step's values to the enclosing :func:`recording`, if any."""
    steps = _STEPS.get()
    if steps is not None:
        steps.append(np.array(values, dtype=np.float64))
