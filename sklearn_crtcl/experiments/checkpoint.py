"""The runner's checkpoints: a net in one safetensors file that cannot run code.

A checkpoint holds everything a fitted net of this package needs to go on
exactly as it would have: the tensors of skorch's ``f_params`` view of the
net (backbone, auxiliary modules, their extra state, the snapshot
``previous_state_dict_``; see :ref:`saving-and-loading`), the optimizers'
and loss scaler's states (the ``f_optimizer`` view) with their tensors in
the file and their other values as JSON, the fitted attributes that
``initialize()`` does not create (``classes_inferred_``, ``input_shape_``,
``n_features_in_``...), and the training history. The file is a plain
`safetensors <https://huggingface.co/docs/safetensors>`_ file: a JSON
header and raw tensor bytes, read with the safetensors library and
:func:`json.loads` only, so loading one never executes code, whatever the
file holds. The non-tensor parts travel as JSON strings in the header's
``__metadata__``.

:func:`save_net` returns the file's SHA-256; :func:`load_net` refuses a file
whose bytes do not have the expected digest before parsing anything.

Random states are not saved: the runner reseeds every net at every cycle
(its ``random_state`` is derived from the seed, the trial and the cycle).
"""

import hashlib
import json
import numbers
import struct
from pathlib import Path

import numpy as np
import torch

__all__ = ["CheckpointError", "save_net", "load_net", "sha256_of"]

FORMAT = "sklearn-crtcl-net/1"

# attributes of a net that its other parts restore, or that describe the
# process rather than the model
_NOT_FITTED = frozenset({"history_", "previous_state_dict_", "initialized_", "init_context_",
                         "virtual_params_", "callbacks_", "prefixes_",
                         "cuda_dependent_attributes_"})


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, or not the net's."""


def sha256_of(data):
    """The SHA-256 hex digest of ``data`` (bytes).

    Parameters
    ----------
    data : bytes

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# nested structures <-> JSON with tensors set aside
# ---------------------------------------------------------------------------


def _split(obj, prefix, tensors):
    """``obj`` as JSON-able data, its tensors moved to ``tensors`` under keys
    starting with ``prefix``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__array__": key}
    if isinstance(obj, dict):
        items = [[_split(k, prefix, tensors), _split(v, prefix, tensors)]
                 for k, v in obj.items()]
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        kind = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {kind: [_split(v, prefix, tensors) for v in obj]}
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if np.isfinite(value) else {"__float__": repr(value)}
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot save a {type(obj).__name__} in a checkpoint")


def _join(data, tensors):
    """The inverse of :func:`_split`."""
    if isinstance(data, dict):
        (kind, value), = data.items()
        if kind == "__tensor__":
            return tensors[value]
        if kind == "__array__":
            return tensors[value].numpy()
        if kind == "__dict__":
            return {_join(k, tensors): _join(v, tensors) for k, v in value}
        if kind == "__tuple__":
            return tuple(_join(v, tensors) for v in value)
        if kind == "__list__":
            return [_join(v, tensors) for v in value]
        if kind == "__float__":
            return float(value)
        raise CheckpointError(f"unknown entry {kind!r}")
    return data


def _fitted_attributes(net):
    """The fitted attributes ``initialize()`` does not set, with their values."""
    from sklearn.base import clone
    fresh = clone(net)
    fresh.set_params(warm_start=False)
    fresh.initialize()
    built = set(vars(fresh))
    return {name: value for name, value in vars(net).items()
            if name.endswith("_") and not name.startswith("_") and name not in built
            and name not in _NOT_FITTED}


def save_net(net, path):
    """Write a fitted net to a safetensors checkpoint, atomically.

    Parameters
    ----------
    net : ResNetClassifier
        A fitted net of this package (any of the four).
    path : str or path
        Destination; written through a temporary file moved in place.

    Returns
    -------
    sha256 : str
        The SHA-256 hex digest of the file's bytes.

    Raises
    ------
    TypeError
        If a fitted attribute has a type a checkpoint cannot hold (so that
        nothing is silently left out).
    """
    from safetensors.torch import save

    from ..nets._checkpoint import NetOptimizers, NetParams
    tensors = {f"params.{k}": v.detach().to("cpu").contiguous()
               for k, v in NetParams(net).state_dict().items()}
    metadata = {"format": FORMAT, "class": type(net).__name__}
    parts = {"optimizer": NetOptimizers(net).state_dict(),
             "fitted": _fitted_attributes(net),
             "history": net.history_.to_list()}
    for name, part in parts.items():
        try:
            metadata[name] = json.dumps(_split(part, f"{name}.", tensors), allow_nan=False)
        except TypeError as exc:
            raise TypeError(f"{type(net).__name__}: {exc} ({name})") from None
    data = save(tensors, metadata=metadata)
    from .report import _atomic_write_bytes
    _atomic_write_bytes(path, data)
    return sha256_of(data)


def _header(data):
    if len(data) < 8:
        raise CheckpointError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError("truncated (its header is longer than the file)")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("its header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise CheckpointError("its header has no metadata")
    return header["__metadata__"]


def load_net(net, path, sha256):
    """Restore a net written by :func:`save_net` into ``net``.

    The file is read once; its SHA-256 is checked before anything is parsed,
    and it is parsed with the safetensors library and :func:`json.loads`
    only (nothing in it can run code).

    Parameters
    ----------
    net : ResNetClassifier
        A net built with the parameters of the saved one (not necessarily
        initialised); it is initialised and given the saved state.
    path : str or path
        The checkpoint.
    sha256 : str
        Its expected SHA-256 hex digest.

    Returns
    -------
    net : ResNetClassifier

    Raises
    ------
    CheckpointError
        If the file is missing, its digest differs, it is not a checkpoint of
        this format, or it holds another kind of net; the message names the
        file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from ..nets._checkpoint import NetOptimizers, NetParams
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"the checkpoint {path} is missing") from None
    digest = sha256_of(data)
    if digest != sha256:
        raise CheckpointError(f"the checkpoint {path} fails its SHA-256 check (expected "
                              f"{sha256}, the file has {digest}): it was changed or damaged")
    try:
        metadata = _header(data)
        tensors = load(data)
    except (CheckpointError, SafetensorError) as exc:
        raise CheckpointError(f"the checkpoint {path} is not a safetensors file: {exc}") from None
    if metadata.get("format") != FORMAT or metadata.get("class") != type(net).__name__:
        raise CheckpointError(f"the checkpoint {path} holds {metadata.get('class')!r} in "
                              f"format {metadata.get('format')!r}, not a "
                              f"{type(net).__name__} in format {FORMAT!r}")
    try:
        parts = {name: _join(json.loads(metadata[name]), tensors)
                 for name in ("optimizer", "fitted", "history")}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint {path} has damaged metadata ({exc})") from None
    # the fitted attributes first: initialize() builds the module for the
    # saved input shape (input_shape_) and classes
    for name, value in parts["fitted"].items():
        setattr(net, name, value)
    net.initialize()
    params = {k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}
    NetParams(net).load_state_dict(params)
    NetOptimizers(net).load_state_dict(parts["optimizer"])
    from skorch.history import History
    net.history_ = History(parts["history"])
    return net

