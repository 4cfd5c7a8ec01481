"""The shared shape of the estimators' auxiliary modules.

Besides its backbone (``module_``), a net of this package may train or keep
other modules: the CrtCl critic, the LL4AL loss-prediction head, TOD's mean
teacher and auxiliary head. Each is described once, declaratively, by an
:class:`AuxiliaryModule` in the net's ``auxiliary_modules``; the base class
:class:`~sklearn_crtcl.ResNetClassifier` does the rest for all of them:

* builds them after the backbone, each in a forked random state seeded by
  ``random_state`` plus its own offset (the backbone's initialisation and
  the batch order stay those of a plain ``ResNetClassifier``);
* registers them with skorch, which moves them to the device, compiles
  them with ``compile=True``, switches their train/eval mode with the
  backbone's (and saves one alone with ``save_params(f_<name>=...)``);
* gives those with their own optimizer that optimizer
  (``<name>_optimizer``, arguments ``<name>_optimizer__*``, attribute
  ``<name>_optimizer_``; the classifier's ``optimizer_`` leaves their
  parameters out), a :class:`~sklearn_crtcl.callbacks.MilestoneLR` schedule
  (callback ``<name>_lr_schedule``), a new optimizer at every warm-started
  ``fit``, and ``set_params`` of ``<name>__*`` (rebuilds the module, as
  skorch does for ``module__*``), ``<name>_optimizer`` and
  ``<name>_optimizer__*``;
* freezes those that are not trained by gradient (an EMA teacher): no
  gradient, no optimizer;
* validates their phase cut-off parameter and tells the training step,
  through ``_in_phase(name)``, whether the running epoch is in the phase;
* puts them in eval mode with the backbone for inference;
* runs their forward passes and optimizer steps with the net's
  ``precision`` and ``channels_last`` settings;
* saves and loads them, with their optimizers and the numbers listed in
  ``extra_state``, with the backbone: skorch's ``save_params(f_params=...,
  f_optimizer=...)``, ``Checkpoint``, ``LoadInitState`` and
  ``TrainEndCheckpoint`` keep the whole net.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ["AuxiliaryModule"]


@dataclass(frozen=True)
class AuxiliaryModule:
    """Description of one auxiliary module of a net.

    A net lists these in its class attribute ``auxiliary_modules``;
    :class:`~sklearn_crtcl.ResNetClassifier` builds, seeds, registers,
    optimises, schedules and restarts them (see the module's description).

    Parameters
    ----------
    name : str
        The module's name: it lives in the attribute ``<name>_`` and takes
        the routed arguments ``<name>__*``. Without ``factory``, the net's
        parameter ``<name>`` holds a callable returning the module, or the
        module itself.
    factory : str, optional
        Name of a method of the net that returns the module (for modules that
        are not a user parameter, e.g. TOD's teacher, a copy of the student).
        ``None``: the net's ``<name>`` parameter is called as
        ``<name>(first_argument, **<name>__params)`` (see ``inputs``), or used
        as given if it is a module.
    inputs : str, optional
        Name of a method of the net whose result is the first positional
        argument of the ``<name>`` callable (e.g. the channels of the backbone
        outputs the head reads). ``None``: no positional argument.
    seed_offset : int, optional
        The module is initialised in a forked torch random state seeded with
        ``random_state + seed_offset``. ``None``: built without random numbers
        (e.g. a copy of the backbone), in the current random state.
    optimizer : bool, default=False
        Whether the module has its own optimizer: the net parameters
        ``<name>_optimizer`` (a class) and ``<name>_optimizer__*`` (its
        arguments; ``lr`` ``None`` or unset uses the net's ``lr``), the
        attribute ``<name>_optimizer_``, and a learning-rate schedule (the
        callback ``<name>_lr_schedule``). ``False``: a trainable module is
        trained by the classifier's ``optimizer_``.
    milestones : str, default="lr_milestones"
        Net parameter holding the milestones of the module's learning-rate
        schedule (with the net's ``lr_gamma``); when it is another parameter
        than ``"lr_milestones"``, its value ``None`` means ``lr_milestones``.
    phase : str, optional
        Net parameter holding the length of the module's phase in each
        ``fit``: a float in ``[0, 1]`` is a fraction of ``max_epochs``, an int
        a number of epochs, ``None`` every epoch (see
        :func:`~sklearn_crtcl.callbacks.epoch_count`). The net's training step
        asks ``_in_phase(name)``.
    switches : str, optional
        What the phase switches, in words (documentation and messages), e.g.
        ``"the generator loss"``.
    trainable : bool, default=True
        ``False`` freezes the module: its parameters do not require gradients
        and no optimizer sees them (an exponential-moving-average teacher).
    when : str, optional
        Name of a method of the net; the module exists only when it returns
        ``True`` (e.g. TOD's auxiliary head, only with
        ``consistency_head="auxiliary"``). ``None``: always. A module that may
        be absent cannot have its own optimizer.
    extra_state : tuple of str, default=()
        Net attributes holding numbers (``int``, ``float``, ``bool``) that
        belong to the module's state and are saved and loaded with it in the
        ``f_params`` file, e.g. TOD's EMA step count ``ema_step_``: a resumed
        training needs them to continue exactly.
    plain : tuple of str, default=()
        Other net parameters whose names start with ``<name>_`` but are not
        routed to the module (e.g. CrtCl's ``critic_loss``), beside the
        optimizer, milestones and phase parameters.

    Examples
    --------
    >>> from sklearn_crtcl.nets.auxiliary import AuxiliaryModule
    >>> critic = AuxiliaryModule("critic", inputs="_tap_dims", seed_offset=2,
    ...                          optimizer=True, milestones="critic_lr_milestones",
    ...                          phase="generator_stop_epoch",
    ...                          switches="the generator loss")
    >>> critic.attribute, critic.optimizer_name, critic.schedule_callback
    ('critic_', 'critic_optimizer', 'critic_lr_schedule')
    """

    name: str
    factory: Optional[str] = None
    inputs: Optional[str] = None
    seed_offset: Optional[int] = None
    optimizer: bool = False
    milestones: str = "lr_milestones"
    phase: Optional[str] = None
    switches: Optional[str] = None
    trainable: bool = True
    when: Optional[str] = None
    extra_state: Tuple[str, ...] = ()
    plain: Tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() \
                or self.name.startswith("_") or self.name.endswith("_") or "__" in self.name:
            raise ValueError(f"an auxiliary module's name must be an identifier without "
                             f"leading, trailing or double underscores, got {self.name!r}")
        if self.name in ("module", "criterion", "optimizer"):
            raise ValueError(f"{self.name!r} is skorch's own component, not an auxiliary module")
        if self.factory is not None and self.inputs is not None:
            raise ValueError("inputs is for the callable held by the net's parameter; a "
                             "factory method builds the module itself")
        if self.optimizer and not self.trainable:
            raise ValueError(f"the frozen module {self.name!r} cannot have an optimizer")
        if self.optimizer and self.when is not None:
            raise ValueError(f"the optional module {self.name!r} cannot have its own optimizer")
        if not isinstance(self.extra_state, tuple) or not all(
                isinstance(n, str) and n.isidentifier() and n.endswith("_")
                and not n.startswith("_") for n in self.extra_state):
            raise ValueError(f"extra_state must be a tuple of fitted attribute names (ending "
                             f"with '_'), got {self.extra_state!r}")

    @property
    def attribute(self):
        """str: the net attribute holding the module, ``<name>_``."""
        return self.name + "_"

    @property
    def optimizer_name(self):
        """str or None: the parameter holding the optimizer class, ``<name>_optimizer``."""
        return self.name + "_optimizer" if self.optimizer else None

    @property
    def optimizer_attribute(self):
        """str or None: the net attribute holding the optimizer, ``<name>_optimizer_``."""
        return self.name + "_optimizer_" if self.optimizer else None

    @property
    def schedule_callback(self):
        """str or None: the name of the learning-rate schedule callback, ``<name>_lr_schedule``."""
        return self.name + "_lr_schedule" if self.optimizer else None

    @property
    def plain_params(self):
        """tuple of str: net parameters that start with ``<name>`` but are not
        routed to the module (skorch would read ``critic_lr_milestones`` as an
        argument of ``critic``)."""
        names = (self.optimizer_name, self.milestones, self.phase) + tuple(self.plain)
        return tuple(n for n in names
                     if n is not None and n.startswith(self.name) and not n.startswith(
                         self.name + "__"))
