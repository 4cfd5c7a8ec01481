"""Parameter checks shared by the estimators and the runner.

Thin wrappers around :func:`sklearn.utils.check_scalar` (which gives
scikit-learn's messages, e.g. ``max_epochs == 0, must be >= 1.``) that also
reject booleans and non-finite numbers, and a check of torch device names.
"""

import math
import numbers

import numpy as np
import torch
from sklearn.utils import check_scalar

__all__ = ["InvalidParameterError", "check_number", "check_device", "check_row_indices"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a wrong type or value.

    A subclass of both ``ValueError`` and ``TypeError``, like scikit-learn's
    error of the same name, so that either ``except`` clause catches it.
    """


def check_number(value, name, *, integer=False, min_val=None, max_val=None,
                 include_boundaries="both", allow_none=False):
    """Check a numeric parameter; return it unchanged.

    Parameters
    ----------
    value : object
        The parameter's value.
    name : str
        Its name, used in the messages.
    integer : bool, default=False
        Require an integer (``numbers.Integral``); otherwise any real number.
    min_val, max_val : float, optional
        Bounds, as in :func:`sklearn.utils.check_scalar`.
    include_boundaries : {"both", "left", "right", "neither"}, default="both"
        Whether the bounds are allowed values.
    allow_none : bool, default=False
        Accept ``None``.

    Returns
    -------
    object
        ``value``.

    Raises
    ------
    InvalidParameterError
        For a boolean, a value that is not a number of the right kind, NaN,
        infinity, or a value outside the bounds (a ``ValueError`` and a
        ``TypeError``).
    """
    if value is None and allow_none:
        return value
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be {'an integer' if integer else 'a number'}"
                                    f", not a bool ({value!r})")
    try:
        check_scalar(value, name, kind, min_val=min_val, max_val=max_val,
                     include_boundaries=include_boundaries)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(str(exc)) from None
    if not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return value


def check_device(device, name="device"):
    """Check that ``device`` names a torch device this machine has.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` is accepted (skorch: leave the modules where they are).
    name : str, default="device"
        Name used in the messages.

    Returns
    -------
    str, torch.device or None
        ``device``, unchanged.

    Raises
    ------
    ValueError
        For a value torch cannot parse, a CUDA device on a machine without
        CUDA (or with fewer GPUs than the index), ``"meta"`` (it holds no
        data), or another backend that cannot allocate a tensor here.
    """
    if device is None:
        return device
    if not isinstance(device, (str, torch.device)) or device == "":
        raise ValueError(f"{name} must be a torch device name such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a torch device name such as 'cpu', 'cuda' or 'cuda:1', "
                         f"got {device!r} (torch: {exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {str(device)!r} requested but CUDA is not available here "
                             "(torch.cuda.is_available() is False: a CPU-only "
                             "build of torch, or no GPU or driver); use 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name} {str(device)!r} requested but this machine has {count} "
                             f"CUDA device(s): 'cuda:0' to 'cuda:{count - 1}'")
    elif dev.type == "meta":
        raise ValueError(f"{name} 'meta' holds no data: nothing can be trained on it; use "
                         "'cpu' or 'cuda'")
    elif dev.type != "cpu":
        try:
            torch.empty(1, device=dev)
        except Exception as exc:  # each backend fails in its own way
            raise ValueError(f"{name} {str(device)!r} is not usable here "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return device


def check_row_indices(indices, n_rows, name, array_name):
    """Validate distinct row indices of an array of ``n_rows`` rows.

    Parameters
    ----------
    indices : array-like of int
        The row indices.
    n_rows : int
        Rows of the array they index.
    name : str
        Name of ``indices`` in error messages (e.g. ``"pool_indices"``).
    array_name : str
        Name of the array (e.g. ``"X_pool"``).

    Returns
    -------
    ndarray of intp

    Raises
    ------
    ValueError
        If ``indices`` is not a non-empty 1-d integer array of distinct row
        indices of the array.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or (idx.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a non-empty 1-d array of integer row indices "
                         f"of {array_name}, got {idx.dtype} array of shape {idx.shape}")
    if idx.min() < 0 or idx.max() >= n_rows:
        raise ValueError(f"{name} must be row indices of {array_name} (0 to {n_rows - 1}), "
                         f"got values from {idx.min()} to {idx.max()}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{name} has repeated indices")
    return idx.astype(np.intp)
