"""skorch callbacks shared by the estimators."""

import numbers

from skorch.callbacks import Callback, LRScheduler

__all__ = ["MilestoneLR", "milestone_epochs", "epoch_count"]


def epoch_count(value, max_epochs, name):
    """Turn a per-fit epoch setting (fraction or count) into a number of epochs.

    Used for settings such as ``generator_stop_epoch`` (CrtCl's E') and
    ``epoch_loss`` (LL4AL), counted from the start of each ``fit``.

    Parameters
    ----------
    value : float in [0, 1], int >= 0 or None
        A float is a fraction of ``max_epochs`` (``0.65`` of 200 is 130); an
        int is an epoch count; ``None`` means "never" and is returned as is.
    max_epochs : int
        Epochs of one ``fit``.
    name : str
        Name of the setting, for error messages.

    Returns
    -------
    int or None
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a float in [0, 1], an int >= 0 or None, "
                         f"got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return int(value)
    if not 0 <= value <= 1:
        raise ValueError(f"{name} as a float is a fraction of max_epochs and must be in "
                         f"[0, 1], got {value!r}; pass an int for an epoch count")
    return int(round(float(value) * max_epochs))


def milestone_epochs(milestones, max_epochs):
    """Turn learning-rate milestones into epoch indices.

    Parameters
    ----------
    milestones : sequence of int or float
        Each entry is either a fraction of ``max_epochs`` in ``(0, 1)`` (e.g.
        ``0.8`` for "at 80% of training") or an epoch number ``>= 1``.
    max_epochs : int
        Number of epochs of one ``fit``.

    Returns
    -------
    list of int
        Sorted epoch indices (0-based: the learning rate is decayed from that
        epoch on).
    """
    epochs = []
    for m in milestones:
        if isinstance(m, bool) or not isinstance(m, (int, float)) or m <= 0:
            raise ValueError(f"learning-rate milestones must be positive numbers, got {m!r}")
        epochs.append(int(round(m * max_epochs)) if m < 1 else int(m))
    return sorted(epochs)


def _user_lr_schedulers(net):
    """The names of skorch :class:`~skorch.callbacks.LRScheduler` callbacks of ``net``.

    skorch's ``LRScheduler`` always schedules the net's ``optimizer_``; the
    built-in :class:`MilestoneLR` of that optimizer steps aside when there is
    one.

    Parameters
    ----------
    net : skorch.NeuralNet
        An initialised net (``callbacks_`` set).

    Returns
    -------
    list of str
    """
    return [name for name, cb in getattr(net, "callbacks_", ())
            if isinstance(cb, LRScheduler)]


class MilestoneLR(Callback):
    """Multiply the learning rate of one optimizer by ``gamma`` at milestones.

    The schedule restarts at every call to ``fit``/``partial_fit`` (epochs are
    counted from the start of the call), so a ``warm_start`` net that is
    trained again in an active-learning cycle gets the full schedule again, as
    in the reference implementations, which build a new scheduler per cycle.

    It never touches the learning rate when it has no milestones (e.g.
    ``lr_milestones=()``), nor, on the classifier's ``optimizer_``, when the
    net has one of skorch's :class:`~skorch.callbacks.LRScheduler` callbacks
    (which always act on ``optimizer_``): the user's scheduler then sets the
    learning rate alone, as in a plain :class:`skorch.NeuralNetClassifier`.

    Parameters
    ----------
    optimizer_attr : str, optional
        Name of the optimizer attribute on the net; by default
        ``"optimizer_"``.
    milestones_param : str, default="lr_milestones"
        Name of the net parameter holding the milestones (see
        :func:`milestone_epochs`).
    gamma_param : str, default="lr_gamma"
        Name of the net parameter holding the decay factor.
    fallback_param : str, optional
        Name of the net parameter whose milestones are used when
        ``milestones_param`` holds ``None`` (e.g. ``critic_lr_milestones=None``
        follows ``lr_milestones``). Without it, ``None`` means no milestones.
    """

    def __init__(self, optimizer_attr="optimizer_", milestones_param="lr_milestones",
                 gamma_param="lr_gamma", fallback_param=None):
        self.optimizer_attr = optimizer_attr
        self.milestones_param = milestones_param
        self.gamma_param = gamma_param
        self.fallback_param = fallback_param

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Remember the base learning rates and the first epoch of this call
        (the parameter groups are left untouched when the schedule steps
        aside: they are then the user's scheduler's)."""
        self.start_epoch_ = len(net.history)
        milestones = getattr(net, self.milestones_param)
        fallback = getattr(self, "fallback_param", None)  # absent in older pickles
        if milestones is None and fallback is not None:
            milestones = getattr(net, fallback)
        self.milestone_epochs_ = milestone_epochs(milestones or (), net.max_epochs)
        self.active_ = bool(self.milestone_epochs_) and not (
            self.optimizer_attr == "optimizer_" and _user_lr_schedulers(net))
        if not self.active_:
            return
        for group in getattr(net, self.optimizer_attr).param_groups:
            # a learning rate that differs from the one this callback last set was
            # changed by the user (e.g. ``set_params(lr=...)``): it is the new base
            if "initial_lr" not in group or group["lr"] != group.get("scheduled_lr"):
                group["initial_lr"] = group["lr"]

    def on_epoch_begin(self, net, **kwargs):
        """Set the learning rate of the epoch that begins (nothing when the
        schedule has no milestones or steps aside for a user's scheduler)."""
        if not getattr(self, "active_", True):
            return
        epoch = len(net.history) - 1 - self.start_epoch_
        n_passed = sum(epoch >= m for m in self.milestone_epochs_)
        factor = getattr(net, self.gamma_param) ** n_passed
        for group in getattr(net, self.optimizer_attr).param_groups:
            group["lr"] = group["scheduled_lr"] = group["initial_lr"] * factor
