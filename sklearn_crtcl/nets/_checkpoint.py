"""What skorch's ``save_params`` / ``load_params`` see of a net: all of it.

skorch writes the ``f_params`` file from ``net.module_.state_dict()`` and the
``f_optimizer`` file from ``net.optimizer_.state_dict()``, and reads them back
with ``load_state_dict`` (``NeuralNet._get_module`` finds the object). For the
nets of this package it finds the two views below instead
(:meth:`~sklearn_crtcl.ResNetClassifier.load_params`), so skorch's own calls
(``save_params``, ``load_params``, ``Checkpoint``, ``LoadInitState``,
``TrainEndCheckpoint``) keep the whole net:

* ``f_params``: a flat dict of tensors (what ``use_safetensors=True`` stores):
  the backbone's ``state_dict`` under its own keys, then, for every auxiliary
  module the net holds, its ``state_dict`` with keys prefixed by its attribute
  (``critic_.``, ``loss_head_.``, ``teacher_.``, ``aux_head_.``), the numbers
  its description lists in ``extra_state`` (TOD's ``ema_step_``) as 0-d
  tensors, and the cyclic-output-discrepancy snapshot ``previous_state_dict_``
  with keys prefixed by ``previous_state_dict_.``;
* ``f_optimizer``: the classifier optimizer's ``state_dict`` with, next to its
  ``"state"`` and ``"param_groups"``, the state of every auxiliary optimizer
  under ``"<name>_optimizer_"`` and of the fp16 loss scaler under
  ``"grad_scaler_"`` (a plain :class:`torch.optim.Optimizer` ignores them).
"""

import numbers
import warnings

import numpy as np
import torch

PREVIOUS = "previous_state_dict_"
SCALER = "grad_scaler_"


def _prefixed(prefix, state):
    return {f"{prefix}.{key}": value for key, value in state.items()}


def _take(state, prefix):
    """Remove the entries of ``state`` under ``prefix.``; return them unprefixed."""
    head = prefix + "."
    keys = [key for key in state if key.startswith(head)]
    return {key[len(head):]: state.pop(key) for key in keys}


def _number_tensor(value, name):
    """A 0-d tensor holding the number ``value`` exactly (``.item()`` gives it back)."""
    if isinstance(value, (bool, np.bool_)):
        return torch.tensor(bool(value))
    if isinstance(value, numbers.Integral):
        return torch.tensor(int(value), dtype=torch.int64)
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=torch.float64)
    raise TypeError(f"{name} must be a Python number to be saved with the net, got "
                    f"{type(value).__name__}")


def _mismatch(own, state):
    """``(missing, unexpected, other_shapes)``: the sorted keys in which the state
    dict ``state`` does not fit the state dict ``own``."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(key for key in set(own) & set(state)
                    if tuple(own[key].shape) != tuple(state[key].shape))
    return missing, unexpected, shapes


def _check_fits(module, state, attribute):
    """A ``ValueError`` before any weight is copied when ``state`` does not fit ``module``."""
    missing, unexpected, shapes = _mismatch(module.state_dict(), state)
    if missing or unexpected or shapes:
        raise ValueError(
            f"the saved {attribute} does not fit the net's {attribute} (was it built with "
            f"other parameters?): missing keys {missing}, unexpected keys {unexpected}, "
            f"other shapes {shapes}")


def _check_backbone_fits(net, state):
    """A ``ValueError`` naming ``input_shape`` and ``classes`` when the saved
    backbone has other layers or shapes than the net's (before any weight is copied)."""
    own = net.module_.state_dict()
    missing, unexpected, shapes = _mismatch(own, state)
    if not (missing or unexpected or shapes):
        return
    details = "; ".join(f"{key}: {tuple(state[key].shape)} in the file, "
                        f"{tuple(own[key].shape)} here" for key in shapes[:3]) if shapes else (
        f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    raise ValueError(
        f"the saved backbone does not fit this {type(net).__name__}'s ({details}). "
        "Build the net as it was saved before initialize(): the same module and "
        "module__* parameters, input_shape (the (C, H, W) of its images: "
        f"{getattr(net, 'input_shape', None)!r} here) and classes (all labels: "
        f"{None if net.classes is None else len(net.classes)} here)")


def _legacy_warning(names, what):
    warnings.warn(
        f"the {what} file holds no state of {', '.join(names)} (it was written before "
        f"{what} files held the whole net): {'they keep' if len(names) > 1 else 'it keeps'} "
        "its current state; load it with its own f_<name> file, or save the net again",
        UserWarning, stacklevel=4)


class NetParams:
    """The ``f_params`` view of a net: all its weights and fitted tensors.

    Parameters
    ----------
    net : ResNetClassifier
        An initialised net.
    skip : collection of str, default=()
        Attributes (``"critic_"``...) that the same ``load_params`` call
        loads from their own ``f_<name>`` file: not loaded from this one.
    """

    def __init__(self, net, skip=()):
        self.net = net
        self.skip = frozenset(skip)

    def _reserved(self):
        net = self.net
        prefixes = tuple(aux.attribute + "." for aux in net.auxiliary_modules) + (PREVIOUS + ".",)
        names = {name for aux in net.auxiliary_modules for name in aux.extra_state}
        return prefixes, names

    def state_dict(self):
        """The flat dict of tensors that the ``f_params`` file holds.

        Returns
        -------
        dict of str to torch.Tensor
        """
        net = self.net
        state = dict(net.module_.state_dict())
        prefixes, names = self._reserved()
        clash = sorted(key for key in state if key.startswith(prefixes) or key in names)
        if clash:
            raise ValueError(f"the backbone's state_dict has keys {clash} that the net "
                             "uses for its other states; rename those submodules")
        for aux, module in net._present_auxiliary_modules():
            state.update(_prefixed(aux.attribute, module.state_dict()))
            for name in aux.extra_state:
                state[name] = _number_tensor(getattr(net, name), name)
        previous = vars(net).get(PREVIOUS)
        if isinstance(previous, dict):
            state.update(_prefixed(PREVIOUS, previous))
        return state

    def load_state_dict(self, state_dict):
        """Load what :meth:`state_dict` wrote (or a backbone-only file of
        earlier versions, with a warning for the auxiliary modules it lacks).

        Parameters
        ----------
        state_dict : dict of str to torch.Tensor

        Raises
        ------
        ValueError
            If the file holds other auxiliary modules than the net, or states
            that do not fit them (before any weight is copied).
        """
        net = self.net
        state = dict(state_dict)
        saved = {aux.attribute: _take(state, aux.attribute) for aux in net.auxiliary_modules}
        saved = {attribute: sub for attribute, sub in saved.items() if sub}
        extra = {name: state.pop(name) for aux in net.auxiliary_modules
                 for name in aux.extra_state if name in state}
        previous = _take(state, PREVIOUS)
        held = {aux.attribute: (aux, module) for aux, module in net._present_auxiliary_modules()}
        if saved and set(saved) != set(held):
            raise ValueError(
                f"the f_params file holds the auxiliary modules {sorted(saved)} but "
                f"{type(net).__name__} holds {sorted(held)}: build the net with the "
                "parameters it was saved with (e.g. consistency_head)")
        _check_backbone_fits(net, state)
        for attribute, sub in saved.items():
            if attribute not in self.skip:
                _check_fits(held[attribute][1], sub, attribute)
        net.module_.load_state_dict(state)
        for attribute, (aux, module) in held.items():
            if attribute in self.skip or attribute not in saved:
                continue
            module.load_state_dict(saved[attribute])
            for name in aux.extra_state:
                if name in extra:
                    setattr(net, name, extra[name].item())
        legacy = sorted(a for a in held if a not in saved and a not in self.skip)
        if legacy:
            _legacy_warning(legacy, "f_params")
        if previous:
            vars(net)[PREVIOUS] = {key: value.detach().to("cpu", copy=True)
                                   for key, value in previous.items()}
        else:  # the snapshot of other weights than those just loaded
            vars(net).pop(PREVIOUS, None)


class NetOptimizers:
    """The ``f_optimizer`` view of a net: all its optimizers and its loss scaler.

    Parameters
    ----------
    net : ResNetClassifier
        An initialised net.
    skip : collection of str, default=()
        Optimizer attributes (``"critic_optimizer_"``...) that the same
        ``load_params`` call loads from their own ``f_<name>`` file.
    """

    def __init__(self, net, skip=()):
        self.net = net
        self.skip = frozenset(skip)

    def _auxiliary_optimizers(self):
        return {aux.optimizer_attribute: getattr(self.net, aux.optimizer_attribute)
                for aux, _ in self.net._present_auxiliary_modules() if aux.optimizer}

    def state_dict(self):
        """``optimizer_.state_dict()`` with the other optimizers' and the loss
        scaler's states under their attribute names.

        Returns
        -------
        dict
        """
        state = dict(self.net.optimizer_.state_dict())
        for attribute, optimizer in self._auxiliary_optimizers().items():
            state[attribute] = optimizer.state_dict()
        scaler = getattr(self.net, SCALER, None)
        if scaler is not None:
            state[SCALER] = scaler.state_dict()
        return state

    def load_state_dict(self, state_dict):
        """Load what :meth:`state_dict` wrote (or a file of the classifier's
        optimizer only, with a warning for the optimizers it lacks).

        Parameters
        ----------
        state_dict : dict

        Raises
        ------
        ValueError
            If the file holds other auxiliary optimizers than the net.
        """
        net = self.net
        state = dict(state_dict)
        held = self._auxiliary_optimizers()
        declared = [aux.optimizer_attribute for aux in net.auxiliary_modules if aux.optimizer]
        saved = {attribute: state.pop(attribute) for attribute in declared
                 if attribute in state}
        scaler_state = state.pop(SCALER, None)
        if saved and set(saved) != set(held):
            raise ValueError(
                f"the f_optimizer file holds the optimizers {sorted(saved)} but "
                f"{type(net).__name__} holds {sorted(held)}")
        net.optimizer_.load_state_dict(state)
        for attribute, optimizer in held.items():
            if attribute in saved and attribute not in self.skip:
                optimizer.load_state_dict(saved[attribute])
        legacy = sorted(a for a in held if a not in saved and a not in self.skip)
        if legacy:
            _legacy_warning(legacy, "f_optimizer")
        scaler = getattr(net, SCALER, None)
        if scaler is not None and scaler_state:
            scaler.load_state_dict(scaler_state)
