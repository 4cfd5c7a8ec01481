"""``ResNetClassifier``: a skorch ``NeuralNetClassifier`` with scikit-learn manners."""

import contextlib
import functools
import inspect
import numbers
import warnings

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit, unpack_data
from skorch.utils import to_device
from skorch.callbacks import (BatchScoring, EarlyStopping, EpochScoring, EpochTimer,
                              PassthroughScoring, PrintLog)

from .._checks import check_device, check_number
from .._data import (MIN_NORM_VALUES, ArrayBatchLoader, as_image_array, iter_batches,
                     smallest_norm_map, training_array)
from ..augment import check_augment
from ..backbones import MIN_IMAGE_SIZE, ResNet, forward_taps, resnet18, resnet34
from ..callbacks import MilestoneLR, _user_lr_schedulers, epoch_count, milestone_epochs
from ..data import DatasetArray
from ..distributed import (DistributedBatches, all_reduce_gradients, broadcast_object,
                           broadcast_state, gather_batch, shard_bounds, world)
from ._checkpoint import NetOptimizers, NetParams

__all__ = ["ResNetClassifier", "DEFAULT_DEVICE", "EXPECTED_FAILED_CHECKS", "PRECISIONS"]

#: scikit-learn estimator checks that ``ResNetClassifier`` cannot pass, with the reason
#: (``check_estimator(..., expected_failed_checks=EXPECTED_FAILED_CHECKS)``).
EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_, and "
        "stores routed parameters such as module__width as attributes that are not in the "
        "signature: this is how skorch routes parameters to its modules and optimizers"),
}

#: ``"cuda"`` when a GPU is available when the package is imported, else ``"cpu"``.
DEFAULT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

#: Values of the ``precision`` parameter of every net: ``"auto"`` (bf16 on a
#: CUDA device that supports it, else fp16 on CUDA; fp32 elsewhere), ``"fp32"``,
#: ``"bf16"`` (autocast to bfloat16) and ``"fp16"`` (autocast to float16 with
#: gradient scaling).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Training arrays are moved to a GPU once per fit when they take at most this
# fraction of its free memory (the rest is left to activations and gradients).
_DEVICE_DATA_FRACTION = 0.25


def _softmax_last_dim(logits):
    """Class probabilities from logits (skorch's predict nonlinearity)."""
    return torch.softmax(logits, dim=-1)


def _is_softmax(nonlin):
    """Whether ``nonlin`` is the softmax over the last dimension (the package's, or
    skorch's ``partial(torch.softmax, dim=-1)``)."""
    return nonlin is _softmax_last_dim or (
        isinstance(nonlin, functools.partial) and nonlin.func is torch.softmax
        and not nonlin.args and nonlin.keywords in ({"dim": -1}, {"dim": 1}))


def _dataset_labels(dataset):
    """The labels of a map-style dataset of ``(image, label, ...)`` items."""
    labels = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(
                f"fit got a torch Dataset and y=None, but item {i} of the dataset is not an "
                "(image, label) pair; pass the labels as y")
        label = item[1]
        if isinstance(label, torch.Tensor):
            label = label.item() if label.numel() == 1 else label.cpu().numpy()
        labels.append(label)
    return np.asarray(labels)


def _accepted_kwargs(factory, kwargs, inferred):
    """``kwargs`` without the ``inferred`` names that ``factory`` does not accept
    (all of them kept when its signature has ``**kwargs`` or cannot be read)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names or k not in inferred}


def _looks_like_flat_images(n_features):
    """The image side if ``n_features`` is ``s*s`` or ``3*s*s`` with ``s >= 8``."""
    for channels in (1, 3):
        if n_features % channels:
            continue
        side = int(round((n_features // channels) ** 0.5))
        if side >= 8 and side * side * channels == n_features:
            return channels, side
    return None


def _pooled_stage4(taps):
    """``flatten(avgpool(stage4))``: the input of the final linear layer."""
    return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(taps["stage4"], 1), 1)


class ResNetClassifier(NeuralNetClassifier):
    """A ResNet image classifier that behaves like any scikit-learn classifier.

    A subclass of :class:`skorch.NeuralNetClassifier` with the defaults of the
    papers reproduced by this package (SGD, learning rate 0.1, momentum 0.9,
    weight decay 5e-4, batch 128, learning rate x0.1 at 80% of ``max_epochs``)
    and the manners of a scikit-learn estimator: labels of any type,
    ``classes_`` and ``n_features_in_`` set by ``fit``, images given as
    ``(n, C, H, W)`` arrays or as flat rows with ``input_shape``, input
    validated before any work, and reproducible training with
    ``random_state``.

    Parameters
    ----------
    module : callable or torch.nn.Module, default=resnet18
        The backbone: a function or class returning a module (called with the
        ``module__*`` parameters plus ``num_classes`` and ``in_channels``
        inferred from the data, each only if its signature accepts it), or an
        initialised module. Use
        :func:`~sklearn_crtcl.backbones.resnet18`,
        :func:`~sklearn_crtcl.backbones.resnet34`, or any module whose
        forward maps images to logits.
    criterion : type, default=torch.nn.CrossEntropyLoss
        Loss on the module's output (logits; probabilities with
        :class:`torch.nn.NLLLoss`, whose log skorch takes).
    optimizer : type, default=torch.optim.SGD
        Optimizer of the classifier.
    lr : float, default=0.1
        Initial learning rate.
    optimizer__momentum : float or None, default=0.9
        Momentum of SGD. Set it (and ``optimizer__weight_decay``) to ``None``
        when switching to an optimizer that takes no such argument.
    optimizer__weight_decay : float or None, default=5e-4
        L2 weight decay.
    max_epochs : int, default=200
        Epochs per ``fit``.
    batch_size : int, default=128
        Samples per mini-batch, in training and in inference (as in skorch,
        ``iterator_train__batch_size`` and ``iterator_valid__batch_size``
        override it: the latter for ``predict_proba``, ``predict``,
        :meth:`embed` and the auxiliary modules' scores too).
    lr_milestones : sequence of float or int, default=(0.8,)
        Where the learning rate is multiplied by ``lr_gamma``: fractions of
        ``max_epochs`` (``0.8`` = epoch 160 of 200) or epoch numbers. The
        schedule (callback ``"lr_schedule"``) restarts at every ``fit``. An
        empty sequence turns it off: the rate is never touched. With one of
        skorch's :class:`~skorch.callbacks.LRScheduler` callbacks in
        ``callbacks`` (which act on ``optimizer_``) the schedule steps aside
        whatever ``lr_milestones`` holds: the user's scheduler wins.
    lr_gamma : float, default=0.1
        Decay factor at each milestone.
    input_shape : tuple of int, optional
        ``(C, H, W)`` of one image; required to reshape flat rows
        ``(n, C*H*W)`` (e.g. after a scikit-learn transformer in a
        ``Pipeline``). Without it, flat rows are treated as one-pixel-high
        images ``(1, 1, n_features)``, with a ``UserWarning`` (once per
        ``fit``) when the row length is that of a square image of side
        >= 8 (``s*s`` or ``3*s*s`` features). ``initialize()`` builds the
        network for its channels (and, with ``classes``, for
        ``load_params``).
    augment : None, str or callable, default=None
        Data augmentation of the training batches: ``"flip"`` (random
        horizontal flips, as the CrtCl paper), ``"crop"`` (random crop of the
        image padded by 4 pixels), ``"flip+crop"`` (both, as the LL4AL, LPLgrad
        and TOD reference code), a :class:`~sklearn_crtcl.augment.RandomFlipCrop`
        with other settings, or any callable mapping a batch tensor
        ``(n, C, H, W)`` to one of the same shape. It acts on whole batches on
        their device; it is applied in training only, never in
        ``predict_proba``, scoring or query strategies. ``None`` (default):
        no augmentation, since flips or crops are wrong for some data (digits,
        non-image features).
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Arithmetic of the training steps (:data:`PRECISIONS`): ``"fp32"``
        plain float32; ``"bf16"`` or ``"fp16"``: the forward passes of the
        backbone and of the auxiliary modules (critic, loss head, teacher) and
        the losses run under :func:`torch.autocast` to bfloat16 or float16
        (weights, optimizer states and inference stay float32); ``"fp16"``
        scales the loss with one :class:`torch.amp.GradScaler` that every
        optimizer step goes through, and unscales the gradients before the
        ``on_grad_computed`` callbacks (e.g. skorch's
        :class:`~skorch.callbacks.GradientNormClipping`) see them, as
        torch's AMP recipe does before clipping. ``"auto"``: ``"bf16"`` on a
        CUDA device that supports it, ``"fp16"`` on an older one, ``"fp32"``
        on the CPU (bit-reproducible training) and other devices. On the CPU, ``"bf16"``
        and ``"fp16"`` work too (slowly: for testing).
    channels_last : bool or "auto", default="auto"
        Train in the channels-last memory format (modules and batches); the
        values are those of the default format, up to rounding. ``"auto"``:
        on a CUDA device when ``precision`` resolves to bf16 or fp16 (the
        layout of its tensor-core convolutions), else off.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the batch order and augmentation (in a
        forked torch generator: the global torch random state is left as it
        was). Same ``random_state``, same model on CPU. ``None``: every draw
        (the subclasses' unlabeled batches and held-out split included)
        comes from torch's global generator, as in skorch:
        ``torch.manual_seed`` before ``fit`` gives the same model on CPU.
    classes : array-like, optional
        All labels the model may see. Useful with ``warm_start`` in active
        learning, when the first labeled set may miss a class.
    train_split : callable or None, default=None
        skorch's validation split (e.g. ``ValidSplit(0.2, random_state=0)``:
        history then records ``valid_loss`` and ``valid_acc``, as skorch's
        ``NeuralNetClassifier``); ``None`` trains on all given samples, as
        the papers do, and a validation scoring callback of the user
        (``EpochScoring(..., on_train=False)``) is then a ``ValueError``
        before training, since it would record nothing.
    device : str, default=DEFAULT_DEVICE
        ``"cuda"`` when available at import time, else ``"cpu"``.
    verbose : int, default=0
        ``1`` prints skorch's per-epoch table.
    iterator_train, iterator_valid : type, default=ArrayBatchLoader
        Mini-batch loaders; :class:`~sklearn_crtcl._data.ArrayBatchLoader`
        slices in-memory arrays directly (no per-sample collation). Any
        ``DataLoader``-like class works. A trailing training batch too small
        for batch normalisation (fewer rows than give each of its layers 16
        values per channel: 16 rows for 8x8 images, a single row from 28x28
        on) is merged into the one before, unless
        ``iterator_train__min_last_batch`` says otherwise;
        ``iterator_train__drop_last=True`` drops it, as with a ``DataLoader``.
    iterator_train__shuffle : bool, default=True
        Draw a new order of the training samples at every epoch (seeded by
        ``random_state``), as the reference code of the papers does with its
        random samplers. ``False`` visits them in the given order, which
        trains badly when the data are sorted (e.g. by class, or by query
        score in active learning).
    compile : bool, default=False
        skorch's parameter: compile the backbone and the auxiliary modules
        with :func:`torch.compile` (arguments ``compile__*``), when the net
        is initialised. The training forward pass through the stage outputs
        (CrtCl, loss prediction, TOD's auxiliary head) is compiled too.
        Compiled modules are ``torch.compile`` wrappers: their
        ``state_dict`` keys start with ``_orig_mod.``, so files written by
        ``save_params`` load only into a net with the same setting.
    warm_start : bool, default=False
        With ``True``, ``fit`` of an initialised net continues from its
        weights, as in skorch: after a first ``fit`` (an active-learning
        cycle of the reference code), or after ``initialize()`` and
        ``load_params`` (the loaded weights; ``fit`` then sets
        ``classes_`` and the shapes from the data). The optimizers are
        created anew and the built-in learning-rate schedule restarts, as
        the reference code does each cycle; a skorch
        :class:`~skorch.callbacks.LRScheduler` of ``callbacks`` continues
        its schedule, as in skorch. ``partial_fit`` always continues,
        keeping the optimizers' state.
    **kwargs
        Any other :class:`skorch.NeuralNet` parameter (``module__width``,
        ``callbacks``, ``predict_nonlinearity``, ...). ``predict_nonlinearity``
        (default ``"auto"``) maps the module's output to ``predict_proba``
        on every path, by skorch's rules: ``"auto"`` is the softmax for
        :class:`torch.nn.CrossEntropyLoss` and for criteria declaring
        ``takes_logits`` (:class:`~sklearn_crtcl.criteria.FocalLoss`,
        :class:`~sklearn_crtcl.criteria.IQLoss`), the output itself for
        :class:`torch.nn.NLLLoss` and other criteria; ``None`` is the output
        itself; a callable is applied to the output tensor.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in ``fit`` (or ``classes``).
    n_features_in_ : int
        Features per sample as passed to ``fit`` (``C*H*W`` for images).
    input_shape_ : tuple of int
        ``(C, H, W)`` of the images the module sees.
    module_ : torch.nn.Module
        The trained backbone.
    history_ : skorch.history.History
        Per-epoch and per-batch records.
    previous_state_dict_ : dict of str to torch.Tensor
        CPU copy of the backbone's weights as they were when the last ``fit``
        began: the weights at the end of the previous ``fit`` (or the initial
        weights on the first one). Cyclic output discrepancy
        (:func:`~sklearn_crtcl.query.cod_sampling`) compares the model with it.
        Saved and restored with the weights by ``save_params(f_params=...)``
        and ``load_params``.
    fit_start_epoch_ : int
        Length of ``history_`` when the last ``fit`` began (the auxiliary
        modules' phases count epochs from there).
    grad_scaler_ : torch.amp.GradScaler or None
        The loss scaler of ``precision="fp16"`` (``None`` otherwise), shared by
        all optimizers; created anew with them.
    fit_interrupted_ : bool
        Whether the last ``fit`` (or ``partial_fit``) was stopped by a
        ``KeyboardInterrupt`` (Ctrl-C). As in skorch, an interrupted fit stops
        training, runs the callbacks' ``on_train_end`` and returns the net,
        so code that fits in a loop (a modAL
        :class:`~modAL.models.ActiveLearner`'s ``teach``) carries on unless
        it checks this flag, e.g. ``if learner.estimator.fit_interrupted_:
        break``; the experiment runner does, and stops.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crtcl import ResNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = ResNetClassifier(input_shape=(1, 8, 8), module__width=4, max_epochs=2,
    ...                        random_state=0, device="cpu").fit(X[:200] / 16, y[:200])
    >>> clf.predict_proba(X[:3] / 16).shape
    (3, 10)
    """

    def __init__(
        self,
        module=resnet18,
        *,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=0.1,
        optimizer__momentum=0.9,
        optimizer__weight_decay=5e-4,
        max_epochs=200,
        batch_size=128,
        lr_milestones=(0.8,),
        lr_gamma=0.1,
        input_shape=None,
        augment=None,
        precision="auto",
        channels_last="auto",
        random_state=None,
        classes=None,
        train_split=None,
        compile=False,
        warm_start=False,
        device=DEFAULT_DEVICE,
        verbose=0,
        iterator_train=ArrayBatchLoader,
        iterator_valid=ArrayBatchLoader,
        iterator_train__shuffle=True,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            classes=classes,
            train_split=train_split,
            compile=compile,
            warm_start=warm_start,
            device=device,
            verbose=verbose,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            optimizer__momentum=optimizer__momentum,
            optimizer__weight_decay=optimizer__weight_decay,
            iterator_train__shuffle=iterator_train__shuffle,
            **kwargs,
        )
        self.lr_milestones = lr_milestones
        self.lr_gamma = lr_gamma
        self.input_shape = input_shape
        self.augment = augment
        self.precision = precision
        self.channels_last = channels_last
        self.random_state = random_state

    # ------------------------------------------------------------------ skorch set-up
    #: The net's auxiliary modules (:class:`~sklearn_crtcl.nets.auxiliary.AuxiliaryModule`):
    #: none for the plain classifier; the subclasses declare theirs.
    auxiliary_modules = ()

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", EpochScoring("accuracy", name="valid_acc", lower_is_better=False)),
            ("lr_schedule", MilestoneLR()),
        ]
        for aux in self.auxiliary_modules:
            if aux.optimizer:
                fallback = None if aux.milestones == "lr_milestones" else "lr_milestones"
                callbacks.append((aux.schedule_callback, MilestoneLR(
                    optimizer_attr=aux.optimizer_attribute, milestones_param=aux.milestones,
                    fallback_param=fallback)))
        callbacks.append(("print_log", PrintLog()))
        return callbacks

    def _module_kwargs(self, prefix):
        """``get_params_for(prefix)`` completed with the shape of the data."""
        kwargs = self.get_params_for(prefix)
        shape = getattr(self, "input_shape_", None)
        if shape is None:  # initialize() before fit: input_shape, if given
            shape = self._declared_image_shape()
        if shape is not None:
            kwargs.setdefault("in_channels", shape[0])
        classes = getattr(self, "classes_inferred_", None)
        if self.classes is not None and len(self.classes):
            classes = self.classes
        if classes is not None:
            kwargs.setdefault("num_classes", len(classes))
        return kwargs

    def initialize(self):
        """Check the parameters, then initialise skorch's parts (modules,
        criterion, optimizers, callbacks).

        Returns
        -------
        self : ResNetClassifier
        """
        self._check_params()
        if not hasattr(self, "n_features_in_"):
            self._data_attributes_from_params()
        return super().initialize()

    def initialize_criterion(self):
        """Build the criterion; one that declares ``check_n_classes`` (e.g.
        :class:`~sklearn_crtcl.criteria.FocalLoss` with per-class ``alpha``) is
        checked against the number of classes here, before any training.

        Returns
        -------
        self : ResNetClassifier
        """
        super().initialize_criterion()
        check = getattr(self.criterion_, "check_n_classes", None)
        n_classes = self._module_kwargs("module").get("num_classes")
        if callable(check) and n_classes is not None:
            check(n_classes)
        return self

    def _get_predict_nonlinearity(self):
        # skorch's rules (``"auto"``: softmax for CrossEntropyLoss, the identity for
        # NLLLoss, whose module returns probabilities...; ``None``: the identity; a
        # callable), plus: "auto" is the softmax for a criterion declaring
        # ``takes_logits`` (the package's FocalLoss and IQLoss)
        nonlin = self.predict_nonlinearity
        if isinstance(nonlin, str) and nonlin == "auto":
            self.check_is_fitted()
            criterion = vars(self).get("criterion_")
            criterion = getattr(criterion, "_orig_mod", criterion)
            if getattr(criterion, "takes_logits", False):
                return _softmax_last_dim
        return super()._get_predict_nonlinearity()

    def _output_to_proba(self):
        """``out -> probabilities``: the predict nonlinearity applied to a module
        output (its first element if a tuple, as skorch does), in float32; the
        one rule of ``predict_proba`` on every path and of the query strategies
        that compare probabilities."""
        nonlin = self._get_predict_nonlinearity()

        def to_proba(out):
            if isinstance(out, tuple):
                out = out[0]
            return nonlin(out.float())
        return to_proba

    def _predicts_softmax(self):
        """Whether the predict nonlinearity is the softmax of the module output
        (a module that returns logits, e.g. under CrossEntropyLoss)."""
        return _is_softmax(self._get_predict_nonlinearity())

    def _declared_image_shape(self):
        """``input_shape`` as ``(C, H, W)`` (``(H, W)`` is one channel), or ``None``."""
        if self.input_shape is None:
            return None
        shape = tuple(int(s) for s in self.input_shape)
        return (1,) + shape if len(shape) == 2 else shape

    def _data_attributes_from_params(self):
        """Set the data attributes from ``input_shape`` and ``classes`` when both
        are given: ``initialize()`` then builds the net for the data, ready for
        ``load_params`` (as a fit would, without training)."""
        shape, classes = self.input_shape, self.classes
        if shape is None or classes is None or len(classes) < 2:
            return
        self.input_shape_ = self._declared_image_shape()
        self.n_features_in_ = int(np.prod(self.input_shape_))

    def initialize_module(self):
        """Build the backbone with ``num_classes`` and ``in_channels`` from the data,
        then the auxiliary modules (see :meth:`initialize_auxiliary_modules`)."""
        if isinstance(self.module, torch.nn.Module):
            super().initialize_module()
        else:
            # only the inferred arguments the module accepts (a module without
            # in_channels or num_classes gets neither)
            kwargs = self._module_kwargs("module")
            inferred = set(kwargs) - set(self.get_params_for("module"))
            self.module_ = self.initialized_instance(
                self.module, _accepted_kwargs(self.module, kwargs, inferred))
        self.initialize_auxiliary_modules()
        return self

    # ------------------------------------------------------------------ auxiliary modules
    def _auxiliary(self, name):
        """The :class:`AuxiliaryModule` description called ``name``."""
        for aux in self.auxiliary_modules:
            if aux.name == name:
                return aux
        raise KeyError(f"{type(self).__name__} has no auxiliary module {name!r}")

    def _present_auxiliary_modules(self):
        """``(description, module)`` of every auxiliary module the net holds now."""
        return [(aux, vars(self)[aux.attribute]) for aux in self.auxiliary_modules
                if isinstance(vars(self).get(aux.attribute), torch.nn.Module)]

    def initialize_auxiliary_modules(self):
        """Build the auxiliary modules declared in ``auxiliary_modules``.

        Each one is built after the backbone, in a forked torch random state
        seeded with ``random_state`` plus its ``seed_offset`` (the backbone's
        initialisation and the batch order stay those of a plain
        :class:`ResNetClassifier` with the same ``random_state``), and
        registered with skorch, which moves it to the device. A frozen module
        (``trainable=False``) gets parameters that do not require gradients; a
        module whose ``when`` method says no is removed.

        Returns
        -------
        self : ResNetClassifier
        """
        for aux in self.auxiliary_modules:
            if aux.when is not None and not getattr(self, aux.when)():
                if aux.attribute in vars(self):
                    delattr(self, aux.attribute)
                continue
            seed = None if aux.seed_offset is None else self._torch_seed(offset=aux.seed_offset)
            if seed is None:
                module = self._build_auxiliary(aux)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    module = self._build_auxiliary(aux)
            if not aux.trainable:
                for param in module.parameters():
                    param.requires_grad_(False)
            setattr(self, aux.attribute, module)
        return self

    def _build_auxiliary(self, aux):
        if aux.factory is not None:
            return getattr(self, aux.factory)()
        spec = getattr(self, aux.name)
        if isinstance(spec, torch.nn.Module):
            return spec
        if not callable(spec):
            raise TypeError(f"{aux.name} must be a callable returning a module or a module, "
                            f"got {spec!r}")
        args = () if aux.inputs is None else (getattr(self, aux.inputs)(),)
        kwargs = self.get_params_for(aux.name)
        try:
            inspect.signature(spec).bind(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TypeError):  # (ValueError: no signature to read)
                first = (f"the value of {aux.inputs}() ({args[0]!r}) as its first "
                         "positional argument, and " if args else "")
                raise TypeError(
                    f"{aux.name}={getattr(spec, '__name__', spec)!r} cannot be called as "
                    f"{type(self).__name__} builds it ({exc}): it must accept {first}the "
                    f"{aux.name}__* parameters as keyword arguments "
                    f"({', '.join(sorted(kwargs)) or 'none set'})") from None
        return spec(*args, **kwargs)

    def get_all_learnable_params(self):
        """The parameters of all modules and criteria, except frozen auxiliary modules'.

        Yields
        ------
        tuple of (str, torch.nn.Parameter)
        """
        frozen = {id(p) for aux, module in self._present_auxiliary_modules()
                  if not aux.trainable for p in module.parameters()}
        for name, param in super().get_all_learnable_params():
            if id(param) not in frozen:
                yield name, param

    def _main_optimizer_params(self):
        """Learnable parameters for ``optimizer_``: all but those of the
        auxiliary modules that have their own optimizer."""
        own = {id(p) for aux, module in self._present_auxiliary_modules()
               if aux.optimizer for p in module.parameters()}
        return [(name, p) for name, p in self.get_all_learnable_params() if id(p) not in own]

    def initialize_optimizer(self, *args, **kwargs):
        """One optimizer for the classifier (``optimizer_``), one per auxiliary
        module with its own (``<name>_optimizer_``).

        Parameters
        ----------
        *args, **kwargs
            Ignored (skorch's deprecated ``triggered_directly``).

        Returns
        -------
        self : ResNetClassifier
        """
        args, kw = self.get_params_for_optimizer("optimizer", self._main_optimizer_params())
        self.optimizer_ = self.optimizer(*args, **kw)
        for aux, _ in self._present_auxiliary_modules():
            if aux.optimizer:
                self._initialize_auxiliary_optimizer(aux)
        self._sync_grad_scaler(restart=True)
        return self

    def _initialize_auxiliary_optimizer(self, aux):
        """(Re)build the optimizer of ``aux`` from ``<name>_optimizer`` and its
        arguments; an ``lr`` of ``None`` (or none) is the net's ``lr``."""
        module = getattr(self, aux.attribute)
        args, kw = self.get_params_for_optimizer(aux.optimizer_name, module.named_parameters())
        kw.setdefault("lr", self.lr)
        context = (contextlib.nullcontext() if getattr(self, "init_context_", None) == "optimizer"
                   else self._current_init_context("optimizer"))
        with context:
            setattr(self, aux.optimizer_attribute, getattr(self, aux.optimizer_name)(*args, **kw))

    def _step_optimizer(self, step_fn):
        """Step every optimizer once: ``optimizer_`` with skorch's closure
        ``step_fn`` (it runs the training step, once or, for LBFGS, as often as
        the optimizer needs), then the auxiliary modules' optimizers on the
        gradients it left (skorch would run the closure once per optimizer)."""
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        if getattr(self, "grad_scaler_", None) is not None:
            if step_fn is not None:  # GradScaler takes no closure: run the step once
                step_fn()
            self._step(*optimizers)
            return
        if step_fn is not None and world()[1] > 1:
            closure = step_fn

            def step_fn():  # the gradients of every optimizer, summed over processes
                loss = closure()
                self._sync_gradients(*optimizers)
                return loss
        elif step_fn is None:
            self._sync_gradients(*optimizers)
        for name, optimizer in zip(self._optimizers, optimizers):
            if step_fn is None or name != "optimizer":
                optimizer.step()
            else:
                optimizer.step(step_fn)

    def _in_phase(self, name):
        """Whether the running epoch is within the phase of the auxiliary
        module ``name``: the first ``<phase parameter>`` epochs of each ``fit``
        (every epoch for ``None``)."""
        aux = self._auxiliary(name)
        if aux.phase is None:
            return True
        n_epochs = epoch_count(getattr(self, aux.phase), self.max_epochs, aux.phase)
        if n_epochs is None:
            return True
        history = getattr(self, "history_", None)
        epoch = (len(history) if history else 1) - 1 - getattr(self, "fit_start_epoch_", 0)
        return epoch < n_epochs

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the parameters (``set_params`` may have changed them) and
        remember where this ``fit`` starts (phases count epochs from there);
        apply ``precision`` (the loss scaler) and ``channels_last``. Warn
        (``UserWarning``) if skorch's ``EarlyStopping(load_best=True)`` is
        among the callbacks of a net with auxiliary modules: it restores
        ``module_`` only."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.fit_interrupted_ = False
        self._check_params()
        self._warn_early_stopping_load_best()
        self.fit_start_epoch_ = len(self.history)
        self._norm_cells = {}  # smallest_norm_map per image shape, for this fit
        self._sync_grad_scaler()
        self._apply_memory_format()

    def _warn_early_stopping_load_best(self):
        """skorch's ``EarlyStopping(load_best=True)`` copies back the best
        epoch's ``module_`` alone: the auxiliary modules would stay at the
        last epoch, out of step with the backbone."""
        aux = [a.attribute for a, _ in self._present_auxiliary_modules()]
        stoppers = [(name, cb) for name, cb in self.callbacks_
                    if isinstance(cb, EarlyStopping) and cb.load_best]
        if aux and stoppers:
            name, cb = stoppers[0]
            warnings.warn(
                f"the callback {name!r} is an EarlyStopping(load_best=True): skorch restores "
                "only module_ (the backbone) at its best epoch, not the auxiliary modules "
                f"({', '.join(aux)}), which keep the last epoch's weights. To restore the "
                "whole net at its best epoch, use EarlyStopping(load_best=False) with "
                f"skorch.callbacks.Checkpoint(monitor='{cb.monitor}_best', load_best=True), "
                "which loads the whole net (load_params(checkpoint=...))",
                UserWarning, stacklevel=2)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's training loop, noting a ``KeyboardInterrupt`` in ``fit_interrupted_``.

        skorch's ``partial_fit`` (which ``fit`` calls) catches the interrupt,
        runs ``on_train_end`` and returns the net; the flag lets a caller
        tell an interrupted fit from a finished one.

        Parameters
        ----------
        X, y : array-like
            The training data, as skorch passes them.
        epochs : int, optional
            Epochs to train (``max_epochs`` when ``None``).
        **fit_params : dict
            Passed on to skorch's ``fit_loop``.

        Returns
        -------
        self
        """
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.fit_interrupted_ = True
            raise

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer arguments, leaving out those set to ``None``."""
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return args, kwargs

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_", which includes its private
        # bookkeeping (``_params_to_validate``); parameters never start with "_".
        return [k for k in super()._get_param_names() if not k.startswith("_")]

    def set_params(self, **params):
        """Set parameters, as skorch does, keeping ``get_params`` in step.

        skorch applies the arguments of an initialised net's optimizers
        (``optimizer__*``, and ``<name>_optimizer__*`` of the auxiliary
        modules, e.g. ``critic_optimizer__*`` or ``loss_head_optimizer__*``)
        to the live optimizer only; the attribute is updated here too, so
        ``get_params`` and ``clone`` see the new value. For an auxiliary
        module ``<name>``: ``<name>__*`` rebuilds it (and, as for
        ``module__*`` in skorch, the whole net); a new ``<name>_optimizer``
        class, or an argument ``<name>_optimizer__*`` set to ``None`` (left
        out), rebuilds only its optimizer, with the arguments given alongside.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : ResNetClassifier
        """
        plain, rebuild = {}, []
        for aux in self.auxiliary_modules:
            # names that start with the module's name but are not its arguments
            plain.update({k: params.pop(k) for k in aux.plain_params if k in params})
            if not aux.optimizer:
                continue
            prefix = aux.optimizer_name + "__"
            opt_args = {k: params.pop(k) for k in list(params)
                        if k.startswith(prefix) and "param_groups" not in k}
            if aux.optimizer_name in plain or any(v is None for v in opt_args.values()):
                plain.update(opt_args)
                rebuild.append(aux)
            else:
                params.update(opt_args)  # skorch updates the live optimizer
        super().set_params(**params)
        prefixes = tuple(f"{name}__" for name in self._optimizers)
        for key, value in params.items():
            if key.startswith(prefixes) and "param_groups" not in key:
                vars(self)[key] = value
        vars(self).update(plain)
        if self.initialized_:
            for aux in rebuild:
                if aux.attribute in vars(self):
                    self._initialize_auxiliary_optimizer(aux)
        return self

    def _reject_fit_params(self, fit_params, takes="X and y"):
        """Raise ``TypeError`` naming fit arguments that nothing would receive
        (``epochs``, skorch's, is checked and passed on)."""
        fit_params = dict(fit_params)
        epochs = fit_params.pop("epochs", None)
        if epochs is not None:
            check_number(epochs, "epochs", integer=True, min_val=0)
        if not fit_params:
            return
        hint = ""
        if "X_unlabeled" in fit_params:
            hint = ("; only the semi-supervised nets (CriticLossNet, TODNet) train on "
                    "unlabeled images")
        raise TypeError(
            f"{type(self).__name__}.fit got unexpected keyword argument(s) "
            f"{', '.join(sorted(fit_params))}: it takes {takes} (and skorch's epochs=), "
            f"and the backbone's "
            f"forward takes only images{hint}")

    def _check_params(self):
        """Validate the parameters before any work.

        ``fit``, ``partial_fit`` and ``initialize`` call it first, so a bad
        value raises a ``ValueError`` or ``TypeError`` naming the parameter
        while a fitted model is still intact. Subclasses extend it.
        """
        check_number(self.max_epochs, "max_epochs", integer=True, min_val=1)
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not (
                size >= 1 or size == -1):
            raise ValueError(f"batch_size must be a positive integer, or -1 for one batch "
                             f"of all samples, got {size!r}")
        check_number(self.lr, "lr", min_val=0)
        check_number(self.lr_gamma, "lr_gamma", min_val=0, include_boundaries="neither")
        self._check_milestones(self.lr_milestones, "lr_milestones")
        for aux in self.auxiliary_modules:
            if aux.milestones != "lr_milestones":
                self._check_milestones(getattr(self, aux.milestones), aux.milestones)
            if aux.phase is not None:
                epoch_count(getattr(self, aux.phase), self.max_epochs, aux.phase)
        check_number(self.verbose, "verbose", integer=True, min_val=0)
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"warm_start must be True or False, got {self.warm_start!r}")
        input_shape = self.input_shape
        if input_shape is not None:
            if (not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (2, 3)
                    or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                               and s > 0 for s in input_shape)):
                raise ValueError(
                    f"input_shape must be a tuple (C, H, W) or (H, W) of positive integers, "
                    f"got {input_shape!r}")
        check_augment(self.augment)
        check_device(self.device)
        self._check_speed_params()
        check_random_state(self.random_state)

    def _check_speed_params(self):
        """Validate ``precision``, ``channels_last`` and ``compile`` (after ``device``)."""
        precision = self.precision
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                             f"got {precision!r}")
        channels_last = self.channels_last
        if not (isinstance(channels_last, (bool, np.bool_))
                or (isinstance(channels_last, str) and channels_last == "auto")):
            raise ValueError(f"channels_last must be True, False or 'auto', got "
                             f"{channels_last!r}")
        if not isinstance(self.compile, (bool, np.bool_)):
            raise ValueError(f"compile must be True or False (skorch's torch.compile switch), "
                             f"got {self.compile!r}")
        device = self._device_type()
        if precision in ("bf16", "fp16") and device not in ("cpu", "cuda"):
            raise ValueError(f"precision={precision!r} needs a CPU or CUDA device, got "
                             f"device={self.device!r}; use precision='fp32'")
        if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision='bf16' needs a GPU with bfloat16 support; use 'fp16' "
                             "(with gradient scaling) or 'auto'")

    def _check_milestones(self, milestones, name):
        if milestones is not None and (isinstance(milestones, (str, numbers.Number))
                                       or not hasattr(milestones, "__iter__")):
            raise ValueError(f"{name} must be a sequence of numbers (fractions of "
                             f"max_epochs or epoch numbers) or None, got {milestones!r}")
        try:
            milestone_epochs(milestones or (), self.max_epochs)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    def check_data(self, X, y):
        """No-op: ``fit`` validates the data (and sets ``classes_``) itself."""

    # ------------------------------------------------------------------ validation
    def _validate_X(self, X, reset, name="X", check_finite=True):
        """Validate ``X`` as images ``(n, C, H, W)``.

        With ``reset`` (a new fit) it returns ``(X4, n_features)`` and sets
        nothing: ``fit`` stores the shape once the whole call is validated.
        Without it, the net must be fitted and ``X`` must match the images
        it was fitted on; returns ``X4``.
        """
        if not reset:
            self.check_is_fitted()
            if not hasattr(self, "n_features_in_"):
                # initialize() builds the modules, but only fit knows the data
                raise NotFittedError(
                    f"This {type(self).__name__} instance is initialized but not fitted "
                    "yet. Call 'fit' with appropriate arguments before using this "
                    "estimator (to load saved parameters instead, set input_shape and "
                    "classes before initialize()).")
        X4, n_features = as_image_array(
            X, self.input_shape, name=name, check_finite=check_finite,
            n_features_expected=None if reset else self.n_features_in_,
            estimator_name=type(self).__name__)
        if reset:
            # flat rows without input_shape are (1, 1, n_features) "images": the
            # fallback for non-image features, which has no image size to check
            # (also with an explicit input_shape=(1, 1, n_features))
            if X4.shape[1:3] != (1, 1):
                self._check_image_size(X4.shape[2:], name)
            elif (self.input_shape is None and len(getattr(X, "shape", (0, 0))) == 2
                  and _looks_like_flat_images(n_features) is not None):
                channels, side = _looks_like_flat_images(n_features)
                warnings.warn(
                    f"{name} has flat rows of {n_features} features and no input_shape: they "
                    f"are read as one-pixel-high images (1, 1, {n_features}). If they are "
                    f"flattened {side}x{side} images, pass input_shape=({channels}, {side}, "
                    f"{side}); for other features, pass input_shape=(1, 1, {n_features}) "
                    "to silence this warning", UserWarning, stacklevel=4)
            return X4, n_features
        if tuple(X4.shape[1:]) != self.input_shape_:
            raise ValueError(
                f"{name} has images of shape {tuple(X4.shape[1:])}, but "
                f"{type(self).__name__} was fitted on images of shape {self.input_shape_}")
        return X4

    def _check_image_size(self, size, name):
        """The package's ResNets need images of at least ``MIN_IMAGE_SIZE`` pixels a side.

        Flat feature rows given without ``input_shape`` (seen as one-pixel-high
        single-channel rows: the fallback for non-image data, e.g. in
        scikit-learn's estimator checks) are not images and are not checked.
        """
        module = self.module
        ours = (module in (resnet18, resnet34) or isinstance(module, ResNet)
                or (isinstance(module, type) and issubclass(module, ResNet)))
        if ours and min(size) < MIN_IMAGE_SIZE:
            raise ValueError(
                f"{name} has images of {size[0]}x{size[1]} pixels; the ResNet backbones need "
                f"at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} (their three stride-2 stages "
                f"bring {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} down to 1x1; smaller images leave "
                "the last stages computing on padding). Upsample the images, or pass "
                "another module")

    def _encode_y(self, y, n_samples, reset, classes=None):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-d (one label per sample), got shape {y.shape}")
        if y.shape[0] != n_samples:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {n_samples}, y has {y.shape[0]}")
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {type_of_target(y)!r}")
        if reset:
            if classes is None and self.classes is not None and len(self.classes):
                classes = self.classes
            if classes is not None:
                classes = np.asarray(classes)
                if len(np.unique(classes)) != len(classes):
                    raise ValueError(f"classes has repeated labels: {classes!r}")
            else:
                classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contain only one class: {classes[0]!r}")
        else:
            classes = self.classes_
        lookup = {label: i for i, label in enumerate(classes.tolist())}
        try:
            y_enc = np.fromiter((lookup[label] for label in y.tolist()), dtype=np.int64,
                                count=len(y))
        except KeyError as exc:
            unknown = sorted(set(y.tolist()) - set(lookup), key=str)
            raise ValueError(
                f"y contains labels not among the classes {classes.tolist()}: {unknown}; "
                "pass all labels with the `classes` parameter") from exc
        return y_enc, classes

    def _validate_fit_data(self, X, y, reset, classes=None):
        """Validate the training data; return ``(X4, y_enc, classes, n_features)``.

        Nothing is stored on the estimator: a rejected call leaves a fitted
        model as it was. ``X4`` is a writable float32 array (a read-only
        memory map is copied once).
        """
        if reset:
            X4, n_features = self._validate_X(X, reset=True)
        else:
            X4, n_features = self._validate_X(X, reset=False), self.n_features_in_
        y_enc, classes = self._encode_y(y, X4.shape[0], reset=reset, classes=classes)
        if X4.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to fit "
                             f"(batch normalisation), got 1 sample")
        return training_array(X4), y_enc, classes, n_features

    # ------------------------------------------------------------------ randomness
    def _torch_seed(self, offset=0):
        shared = vars(self).get("_shared_seed")
        if shared is not None:  # a distributed fit: the seed process 0 drew
            return (shared + offset) % (2 ** 63)
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return (int(self.random_state) + offset) % (2 ** 63)
        return int(check_random_state(self.random_state).randint(2 ** 31 - 1)) + offset

    def _draw_seed(self, offset=0):
        """The seed of a draw of its own (unlabeled batches, the critic's
        held-out split and batches): ``random_state`` plus ``offset``; with
        ``random_state=None``, a seed drawn from torch's global generator, so
        that ``torch.manual_seed`` before ``fit`` reproduces the draws, as it
        does a skorch net's."""
        seed = self._torch_seed(offset=offset)
        if seed is None:
            seed = int(torch.randint(2 ** 63 - 1, (), dtype=torch.int64))
        return seed

    @contextlib.contextmanager
    def _seeded(self):
        """Seed torch inside a forked RNG, so the caller's global state is untouched."""
        seed = self._torch_seed()
        if seed is None:
            yield
            return
        devices = []
        if str(self.device).startswith("cuda") and torch.cuda.is_available():
            devices = list(range(torch.cuda.device_count()))
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    # ------------------------------------------------------------------ speed settings
    def _torch_device(self):
        """The net's device (its backbone's when ``device`` is ``None``)."""
        if self.device is not None:
            return torch.device(self.device)
        module = vars(self).get("module_")
        param = next(module.parameters(), None) if isinstance(module, torch.nn.Module) else None
        return torch.device("cpu") if param is None else param.device

    def _device_type(self):
        """``"cpu"``, ``"cuda"``...: the type of the net's device."""
        return self._torch_device().type

    def _amp_dtype(self):
        """The autocast dtype of the training steps (``None``: float32)."""
        precision = self.precision
        if precision == "auto":
            if self._device_type() != "cuda":
                return None
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def _uses_channels_last(self):
        if isinstance(self.channels_last, str):  # "auto"
            return self._device_type() == "cuda" and self._amp_dtype() is not None
        return bool(self.channels_last)

    def _autocast(self):
        """The context of the training forward passes and losses: autocast to
        the ``precision``'s dtype, or nothing for float32."""
        dtype = self._amp_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device_type(), dtype=dtype)

    def _sync_grad_scaler(self, restart=False):
        """Give ``precision="fp16"`` its loss scaler (a new one with ``restart``)."""
        if self._amp_dtype() != torch.float16:
            self.grad_scaler_ = None
        elif restart or getattr(self, "grad_scaler_", None) is None:
            self.grad_scaler_ = torch.amp.GradScaler(self._device_type())

    def _backward(self, loss):
        """``loss.backward()``, through the loss scaler with fp16."""
        scaler = getattr(self, "grad_scaler_", None)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _unscale_gradients(self, named_parameters):
        """With fp16, divide the gradients of the optimizers that hold any of
        ``named_parameters`` by the loss scale (``GradScaler.unscale_``, the
        AMP recipe before gradient clipping), so that ``on_grad_computed``
        callbacks see the true gradients; :meth:`_step` then steps them
        without unscaling again, and skips the step if they are not finite."""
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return
        ids = {id(p) for _, p in named_parameters}
        for name in self._optimizers:
            optimizer = getattr(self, name + "_")
            if any(id(p) in ids for group in optimizer.param_groups for p in group["params"]):
                scaler.unscale_(optimizer)

    def _step(self, *optimizers):
        """Step ``optimizers`` on the gradients of the last backward passes;
        with fp16, through the loss scaler (a step with infinite or NaN
        gradients is skipped; gradients already unscaled for
        ``on_grad_computed`` are not unscaled again), then update the scale
        once."""
        scaler = getattr(self, "grad_scaler_", None)
        self._sync_gradients(*optimizers)
        for optimizer in optimizers:
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
        if scaler is not None:
            scaler.update()

    # ------------------------------------------------------------------ several processes
    def _sync_gradients(self, *optimizers):
        """Sum the gradients of ``optimizers``' parameters over the processes of
        a distributed job (see :mod:`sklearn_crtcl.distributed`), unless
        ``on_grad_computed`` just did; a no-op in a single process."""
        if world()[1] == 1:
            return
        if vars(self).pop("_grads_summed", False):
            return
        all_reduce_gradients(p for optimizer in optimizers for group in optimizer.param_groups
                             for p in group["params"])

    def notify(self, method_name, **cb_kwargs):
        """skorch's callback dispatch; before ``on_grad_computed``, in a
        distributed job the gradients are summed over the processes (so
        gradient callbacks, e.g. clipping, see the whole batch's gradient, as
        in one process), and with ``precision="fp16"`` they are unscaled (so
        that skorch's :class:`~skorch.callbacks.GradientNormClipping` clips
        the true gradient, not the loss-scaled one).

        Parameters
        ----------
        method_name : str
            The callback method, e.g. ``"on_batch_begin"``.
        **cb_kwargs : dict
            Passed to the callbacks.
        """
        distributed = world()[1] > 1
        if distributed and method_name == "on_batch_begin":
            vars(self).pop("_grads_summed", None)
        elif method_name == "on_grad_computed":
            if distributed:
                all_reduce_gradients(p for _, p in cb_kwargs["named_parameters"])
                self._grads_summed = True
            self._unscale_gradients(cb_kwargs["named_parameters"])
        return super().notify(method_name, **cb_kwargs)

    def _all_modules(self):
        return [self.module_] + [m for _, m in self._present_auxiliary_modules()]

    def _min_last_batch(self, loader):
        """Rows a trailing training batch needs to stay on its own: enough that every
        batch-normalisation layer of the backbone gets :data:`MIN_NORM_VALUES`
        values per channel (the shapes of one sample's forward pass, on the meta
        device: :func:`smallest_norm_map`), at least 2; 2 for data the loader
        does not hold as arrays."""
        if loader._arrays is None or len(loader._arrays[0]) == 0:
            return 2
        sample = loader._arrays[0][:1]
        cache = getattr(self, "_norm_cells", None)
        if cache is None:
            cache = self._norm_cells = {}
        shape = tuple(sample.shape[1:])
        if shape not in cache:  # once per fit and image shape (a meta pass, ~50 ms)
            cache[shape] = smallest_norm_map(self.module_, sample)
        cells = cache[shape]
        return 2 if cells is None else max(2, -(-MIN_NORM_VALUES // max(cells, 1)))

    def get_iterator(self, dataset, training=False):
        """skorch's batch iterator; in a distributed job, wrapped in a
        :class:`~sklearn_crtcl.distributed.DistributedBatches` for training
        (the same whole batches in every process; the training steps take
        their share after augmentation).

        A trailing training batch too small for batch normalisation is merged
        into the one before (``ArrayBatchLoader``'s ``min_last_batch``, unless
        ``iterator_train__min_last_batch`` is given). Each process of a
        distributed job normalises its own share of a batch, so there the
        requirement holds per process: a job of ``P`` processes merges a tail
        with fewer than ``P`` times the rows one process would need.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
        training : bool, default=False

        Returns
        -------
        iterable of batches
        """
        iterator = super().get_iterator(dataset, training=training)
        if not training:
            return iterator
        # rows each process needs in a batch: every process normalises its own share
        # (no SyncBatchNorm), so in a job of several processes a trailing batch must
        # give each share what one process needs of the whole batch
        rows, size = 2, world()[1]
        if (isinstance(iterator, ArrayBatchLoader)
                and "min_last_batch" not in self.get_params_for("iterator_train")):
            rows = self._min_last_batch(iterator)
            iterator.min_last_batch = rows * size
        if size == 1:
            return iterator
        modules = self._all_modules()
        return DistributedBatches(iterator, lambda: broadcast_state(modules, parameters=False),
                                  min_rows=rows)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """skorch's loss; in a distributed training step, on the whole batch
        (every process's logits and labels, see
        :func:`~sklearn_crtcl.distributed.gather_batch`).

        Parameters
        ----------
        y_pred : torch.Tensor
            Logits of this process's rows.
        y_true : torch.Tensor
            Their encoded labels.
        X : object, optional
            Passed to skorch.
        training : bool, default=False
            Whether the loss is for a training step.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if training and world()[1] > 1:
            y_pred = gather_batch(y_pred)
            y_true = gather_batch(to_device(y_true, y_pred.device))
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def _check_distributed_batch(self, n, name="batch_size"):
        """In a distributed job, every process needs 2 rows of each batch of ``n``
        (batch normalisation): a clear error before training otherwise."""
        size = world()[1]
        if size > 1 and n < 2 * size:
            raise ValueError(
                f"{name} gives batches of {n} samples, too few for {size} processes: "
                f"distributed training splits every batch, and each process needs at "
                f"least 2 samples (batch normalisation); use at least {2 * size}")

    def _to_memory_format(self, x):
        """A 4-d batch in channels-last format when ``channels_last`` is on."""
        if x.dim() == 4 and self._uses_channels_last():
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _apply_memory_format(self):
        """Put the backbone and the auxiliary modules in the memory format of
        ``channels_last`` (back to the default format when it is off)."""
        on = self._uses_channels_last()
        modules = [self.module_] + [m for _, m in self._present_auxiliary_modules()]
        for module in modules:
            if on:
                module.to(memory_format=torch.channels_last)
            elif any(p.dim() == 4 and not p.is_contiguous() for p in module.parameters()):
                module.to(memory_format=torch.contiguous_format)

    def _forward_taps(self, x):
        """``forward_taps(module_, x)`` for the training steps, compiled with
        ``compile=True`` (skorch compiles ``module_``'s forward only)."""
        module = self.module_
        original = getattr(module, "_orig_mod", None)
        if original is None or not self.compile:
            return forward_taps(module, x)
        cached = vars(self).get("_compiled_taps")
        if cached is None or cached[0] is not original:
            fn = torch.compile(lambda inputs: forward_taps(original, inputs),
                               **self.get_params_for("compile"))
            cached = vars(self)["_compiled_taps"] = (original, fn)
        return cached[1](x)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_compiled_taps", None)  # rebuilt on first use
        state.pop("_fit_datasets", None)  # a fit's data, not the model
        state.pop("_norm_cells", None)  # measured again at the next fit
        return state

    def __setstate__(self, state):
        # nets pickled before these parameters existed trained with their defaults
        state.setdefault("precision", "auto")
        state.setdefault("channels_last", "auto")
        super().__setstate__(state)

    # ------------------------------------------------------------------ save_params / load_params
    def _get_module(self, name, msg):
        # skorch's save_params and load_params write and read ``f_<name>`` from
        # ``_get_module("<name>_")``'s state_dict; f_params and f_optimizer get views of
        # the whole net (nets/_checkpoint.py): the auxiliary modules, their optimizers,
        # their extra state and previous_state_dict_ travel with the backbone
        module = super()._get_module(name, msg)
        skip = vars(self).get("_loading_own_files", ())
        if name == "module_":
            return NetParams(self, skip=skip)
        if name == "optimizer_":
            return NetOptimizers(self, skip=skip)
        return module

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, use_safetensors=False, **kwargs):
        """skorch's ``load_params``, restoring the whole net.

        The ``f_params`` file of :meth:`save_params` (and of skorch's
        ``Checkpoint`` and ``TrainEndCheckpoint``) holds the backbone, every
        auxiliary module (with the numbers of its ``extra_state``) and
        ``previous_state_dict_``; the ``f_optimizer`` file holds every
        optimizer and the fp16 loss scaler (see :ref:`saving-and-loading`).
        A module or optimizer also given its own file in the same
        call (``f_critic=...``, or a checkpoint's ``f_critic``) is loaded from
        that file. A backbone-only ``f_params`` file of earlier versions loads
        the backbone, with a ``UserWarning`` naming the auxiliary modules left
        as they were, and removes ``previous_state_dict_`` (the snapshot of
        other weights).

        Parameters
        ----------
        f_params, f_optimizer, f_criterion, f_history : file-like object, str or None
            Files to load (``None``: not loaded).
        checkpoint : skorch.callbacks.Checkpoint, optional
            Load the files of this checkpoint (the explicit ``f_*`` win).
        use_safetensors : bool, default=False
            The files were written with ``use_safetensors=True``.
        **kwargs : dict
            ``f_<name>`` files of other modules (``f_critic``,
            ``f_critic_optimizer``...).

        Returns
        -------
        None

        Raises
        ------
        ValueError
            If the file holds other auxiliary modules than the net, or states
            that do not fit them.
        """
        own = {key for key, value in kwargs.items() if value is not None}
        if checkpoint is not None:
            own |= {key for key, value in vars(checkpoint).items()
                    if key.startswith("f_") and value is not None}
        self._loading_own_files = {key[2:] + "_" for key in own}
        try:
            return super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                                       f_criterion=f_criterion, f_history=f_history,
                                       checkpoint=checkpoint,
                                       use_safetensors=use_safetensors, **kwargs)
        finally:
            vars(self).pop("_loading_own_files", None)

    def _fits_on_device(self, *arrays, extra_bytes=0):
        """Whether ``arrays`` (numpy or torch) and ``extra_bytes`` more fit in a
        share of the free memory of the net's GPU; always ``False`` on other
        devices."""
        if self._device_type() != "cuda":
            return False
        nbytes = extra_bytes + sum(a.nbytes if isinstance(a, np.ndarray)
                                   else a.numel() * a.element_size() for a in arrays)
        free, _ = torch.cuda.mem_get_info(self._torch_device())
        return nbytes <= _DEVICE_DATA_FRACTION * free

    def _stage_training_data(self, X, y):
        """The training arrays as given (CPU), or moved to the GPU once for the
        whole ``fit`` when they fit there; batch order and augmentation draws
        are the same either way (they come from the CPU generator)."""
        if not self._fits_on_device(X, y):
            return X, y
        device = self._torch_device()
        return torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)

    # ------------------------------------------------------------------ training
    def augment_batch(self, X):
        """Augment a training batch with the net's ``augment`` setting.

        Every net calls it on each training batch (labeled and unlabeled),
        after moving it to the device; inference never does.

        Parameters
        ----------
        X : torch.Tensor of shape (n, C, H, W)
            A batch of images on the net's device.

        Returns
        -------
        torch.Tensor
            ``X`` itself when ``augment`` is ``None``, else the augmented batch.
        """
        augment = check_augment(self.augment)
        return X if augment is None else augment(X)

    def train_step_single(self, batch, **fit_params):
        """skorch's training step on the augmented batch, with the ``precision``
        and ``channels_last`` settings.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Images and encoded labels.
        **fit_params : dict
            Passed to :meth:`infer`.

        Returns
        -------
        dict
            ``{"loss": loss, "y_pred": logits}``.
        """
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        x, yi = self._training_batch(Xi), self._training_labels(yi)
        with self._autocast():
            y_pred = self.infer(x, **fit_params)
            loss = self.get_loss(y_pred, yi, X=x, training=True)
        self._backward(loss)
        return {"loss": loss, "y_pred": y_pred}

    def _training_batch(self, X):
        """A training batch on the device, augmented, in the memory format; in a
        distributed job, this process's share of it, augmented as a whole first
        (the same random draws in every process, and as in one process)."""
        return self._to_memory_format(self._share(self.augment_batch(to_device(X, self.device))))

    def _training_labels(self, y):
        """The labels of a training batch on the device (this process's share)."""
        return self._share(to_device(y, self.device))

    @staticmethod
    def _share(batch):
        """This process's rows of a whole batch (the batch itself in one process)."""
        if world()[1] == 1:
            return batch
        start, stop = shard_bounds(len(batch))
        return batch[start:stop]

    # ------------------------------------------------------------------ fitting
    def _fit_encoded(self, X, y, classes, initialize, restart_optimizers=False,
                     n_features=None, **fit_params):
        """Set up (initialise or continue) and train on validated, encoded data.

        If the set-up fails (e.g. an optimizer rejects its arguments), the
        estimator is restored as it was: a fitted model is never lost to a
        rejected call.
        """
        n = X.shape[0]
        self._check_distributed_batch(n if self.batch_size == -1 else min(self.batch_size, n))
        distributed = world()[1] > 1
        split = self.train_split
        if distributed and isinstance(split, ValidSplit) and isinstance(split.cv, float) \
                and split.random_state is None:
            raise ValueError(
                "train_split=ValidSplit(cv=...) draws its validation split at random; in a "
                "distributed job every process must draw the same one: give it a "
                "random_state, e.g. ValidSplit(0.2, random_state=0)")
        if distributed and not isinstance(self.random_state, numbers.Integral):
            # every process must draw the same batches: one seed, process 0's (drawn
            # from its RandomState, or at random without one)
            seed = self._torch_seed()
            self._shared_seed = int(broadcast_object(
                np.random.randint(2 ** 31 - 1) if seed is None else seed))
        saved = dict(vars(self))
        try:
            with self._seeded():
                try:
                    self._set_up_fit(X, classes, initialize, restart_optimizers, n_features)
                    if distributed:  # process 0's weights everywhere, as DDP starts
                        broadcast_state(self._all_modules())
                except BaseException:
                    vars(self).clear()
                    vars(self).update(saved)
                    raise
                try:
                    X_fit, y_fit = self._stage_training_data(X, y)
                    NeuralNetClassifier.partial_fit(self, X_fit, y_fit, **fit_params)
                finally:
                    self.classes_inferred_ = classes
                    vars(self).pop("_fit_datasets", None)
        finally:
            vars(self).pop("_shared_seed", None)
        return self

    def _set_up_fit(self, X, classes, initialize, restart_optimizers, n_features):
        self.classes_inferred_ = np.arange(len(classes))
        if n_features is not None:
            self.n_features_in_ = n_features
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        previous = self._module_snapshot() if self.initialized_ else None
        kept = self.initialized_ and not initialize
        if not kept:
            self.initialize()
        elif restart_optimizers:
            self._restart_optimizers()
        self._check_module_matches(len(classes), kept=kept)
        # weights as they were before this fit: the end of the previous fit,
        # or the initial weights on the first one (used by cod_sampling)
        self.previous_state_dict_ = previous or self._module_snapshot()

    def _restart_optimizers(self):
        """New optimizers for a warm-started ``fit`` (a new cycle of the
        reference code: no momentum carried over; the built-in schedules
        restart at every fit). With a skorch ``LRScheduler`` in the
        callbacks, the new ``optimizer_`` takes over the learning rates and
        the scheduler's entries (``initial_lr``...) of the old one's
        parameter groups: the user's schedule continues, as in skorch."""
        old_groups = self.optimizer_.param_groups if _user_lr_schedulers(self) else None
        self._initialize_optimizer()
        new_groups = self.optimizer_.param_groups
        if old_groups is None or len(old_groups) != len(new_groups):
            return
        for old, new in zip(old_groups, new_groups):
            new.update({k: v for k, v in old.items()
                        if k != "params" and (k == "lr" or k not in new)})

    def _module_snapshot(self):
        """A CPU copy of ``module_.state_dict()``."""
        return {k: v.detach().to("cpu", copy=True)
                for k, v in self.module_.state_dict().items()}

    def _check_module_matches(self, n_classes, kept=False):
        n_out = getattr(self.module_, "num_classes", None)
        if n_out is not None and n_out != n_classes:
            hint = ("; the module of an initialised net is kept (warm_start=True, "
                    "partial_fit): set classes before initialize()" if kept else "")
            raise ValueError(f"the module has {n_out} outputs but the data have {n_classes} "
                             f"classes; leave module__num_classes unset to infer it{hint}")
        n_in = getattr(self.module_, "in_channels", None)
        if n_in is not None and n_in != self.input_shape_[0]:
            raise ValueError(
                f"the module takes {n_in} input channels but the images have "
                f"{self.input_shape_[0]}; set module__in_channels={self.input_shape_[0]} before "
                "initialize(), or call fit")

    def _fitted_before(self):
        """Whether a previous fit set the data attributes (not just ``initialize()``)."""
        return self.initialized_ and hasattr(self, "n_features_in_")

    def _fit_input(self, X, y):
        """A torch ``Dataset`` given to ``fit`` as a :class:`DatasetArray`, with
        the labels of its ``(image, label)`` items when ``y`` is ``None`` (as
        skorch's ``fit(dataset, None)``)."""
        if isinstance(X, torch.utils.data.Dataset):
            if y is None:
                y = _dataset_labels(X)
            X = DatasetArray(X)
        return X, y

    def get_split_datasets(self, X, y=None, **fit_params):
        """skorch's training and validation datasets of the running ``fit``,
        remembered until it ends: they hold the encoded labels
        ``0 .. n_classes-1``, so :meth:`predict` on them (skorch's scoring
        callbacks) returns encoded labels, and labels from ``classes_`` on
        any other dataset.

        Parameters
        ----------
        X, y : array-like
            The training data, as skorch passes them.
        **fit_params : dict
            Passed to ``train_split``.

        Returns
        -------
        dataset_train : torch.utils.data.Dataset
        dataset_valid : torch.utils.data.Dataset or None
        """
        datasets = super().get_split_datasets(X, y, **fit_params)
        self._fit_datasets = tuple(d for d in datasets if d is not None)
        return datasets

    def _is_fit_dataset(self, X):
        """Whether ``X`` is (a ``Subset`` of) a dataset of the running ``fit``
        (see :meth:`get_split_datasets`)."""
        fit_datasets = vars(self).get("_fit_datasets", ())
        while True:
            if any(X is d for d in fit_datasets):
                return True
            if not isinstance(X, torch.utils.data.Subset):
                return False
            X = X.dataset

    def _check_scoring_callbacks(self):
        """A validation scoring callback of the user with no validation data
        (``train_split=None``) would record nothing: a ``ValueError`` before
        training."""
        if self.train_split is not None or not isinstance(self.callbacks, (list, tuple)):
            return
        for entry in self.callbacks:
            name, cb = entry if isinstance(entry, tuple) else (
                getattr(entry, "name", None) or type(entry).__name__, entry)
            if isinstance(cb, (EpochScoring, BatchScoring)) and not cb.on_train:
                raise ValueError(
                    f"the callback {name!r} scores the validation data (on_train=False), but "
                    f"train_split=None leaves no validation data, so it would record "
                    "nothing: set train_split (e.g. skorch.dataset.ValidSplit(0.2, "
                    "random_state=0)), or score the training data with on_train=True")

    def fit(self, X, y, **fit_params):
        """Train the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features), or Dataset
            Training images; flat rows are reshaped with ``input_shape``. A
            map-style torch ``Dataset`` is read through a
            :class:`~sklearn_crtcl.DatasetArray` (into memory, once).
        y : array-like of shape (n,) or None
            Labels of any type (strings, non-contiguous integers...).
            ``None`` with a ``Dataset`` of ``(image, label)`` pairs: its labels.
        **fit_params : dict
            Only skorch's ``epochs`` (an int: train this many epochs instead
            of ``max_epochs``; the learning-rate milestones and phases still
            count fractions of ``max_epochs``); any other raises a
            ``TypeError`` naming it before any work (the backbone's forward
            takes only images; ``X_unlabeled`` is for
            :class:`~sklearn_crtcl.CriticLossNet` and :class:`~sklearn_crtcl.TODNet`).

        Returns
        -------
        self : ResNetClassifier
        """
        self._check_params()
        self._reject_fit_params(fit_params)
        self._check_scoring_callbacks()
        X, y = self._fit_input(X, y)
        # as skorch: a warm start keeps the modules of an initialised net (also
        # right after initialize() and load_params); the data attributes are
        # set from X and y unless a previous fit set them
        warm = self.warm_start and self.initialized_
        reset = not (warm and self._fitted_before())
        X4, y_enc, classes, n_features = self._validate_fit_data(X, y, reset=reset)
        return self._fit_encoded(X4, y_enc, classes, initialize=not warm,
                                 restart_optimizers=warm,
                                 n_features=n_features if reset else None, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Continue training for ``max_epochs`` without re-initialising the module.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features), or Dataset
            Training images (see :meth:`fit`).
        y : array-like of shape (n,) or None
            Labels; after the first call they must be among ``classes_``
            (``None``: the labels of a ``Dataset``'s items).
        classes : array-like, optional
            All labels, needed on the first call if ``y`` does not show them
            all (later calls ignore it, as scikit-learn's ``partial_fit`` does).
        **fit_params : dict
            Only skorch's ``epochs`` (see :meth:`fit`); any other raises a
            ``TypeError`` naming it before any work.

        Returns
        -------
        self : ResNetClassifier
        """
        self._check_params()
        self._reject_fit_params(fit_params)
        self._check_scoring_callbacks()
        X, y = self._fit_input(X, y)
        reset = not self._fitted_before()
        X4, y_enc, classes_, n_features = self._validate_fit_data(
            X, y, reset=reset, classes=classes if reset else None)
        return self._fit_encoded(X4, y_enc, classes_, initialize=False,
                                 n_features=n_features if reset else None, **fit_params)

    # ------------------------------------------------------------------ inference
    @contextlib.contextmanager
    def _eval_mode(self, *modules):
        """Put ``module_``, the auxiliary modules (and ``modules``) in eval mode,
        restoring modes after."""
        modules = (self.module_,) + tuple(m for _, m in self._present_auxiliary_modules()) \
            + modules
        modules = tuple({id(m): m for m in modules}.values())
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            yield
        finally:
            for m, mode in zip(modules, modes):
                m.train(mode)

    def _inference_batches(self, X, fn, batch_size=None, name="X", indices=None,
                           modules=()):
        """Apply ``fn(module_, x_batch)`` to validated ``X`` in eval mode, no grad.

        ``X`` is validated (shape and finiteness, chunk by chunk) before any
        batch runs, then visited ``batch_size`` rows at a time (by default,
        as skorch's inference iterator: ``iterator_valid__batch_size`` if set,
        else the net's ``batch_size``; only ``indices`` if given); ``modules``
        are extra modules put in eval mode too. ``fn``
        returns a numpy array of one row per image (or a tuple of them).

        Returns the outputs of all batches, in one array per output (a tuple
        when ``fn`` returns a tuple): allocated once, at the first batch, and
        filled batch by batch, so that no per-batch output outlives its batch.
        (Keeping them in a list to concatenate at the end held one small
        block per batch between the forward passes' large ones: the heap could
        not give the freed memory back, and resident memory grew with the
        size of the pool, 72 MB after ``predict_proba`` of 100,000 images.)
        """
        X4 = self._validate_X(X, reset=False, name=name)
        n = X4.shape[0] if indices is None else len(indices)
        batch_size = (batch_size or self.get_params_for("iterator_valid").get("batch_size")
                      or self.batch_size)
        if batch_size == -1:  # skorch's "one batch of all samples"
            batch_size = max(1, n)
        out, single, start = None, False, 0
        with self._eval_mode(*modules), torch.no_grad():
            for xb in iter_batches(X4, batch_size, self.device, indices=indices):
                parts = fn(self.module_, self._to_memory_format(xb))
                if out is None:
                    single = not isinstance(parts, tuple)
                if single:
                    parts = (parts,)
                if out is None:
                    out = tuple(np.empty((n,) + part.shape[1:], dtype=part.dtype)
                                for part in parts)
                stop = start + len(parts[0])
                for i, target in enumerate(out):
                    target[start:stop] = parts[i]
                start = stop
                del parts, xb  # nothing of this batch outlives it
        if out is None:
            raise ValueError(f"{name} has no images to run the network on")
        return out[0] if single else out

    def predict_proba(self, X):
        """Class probabilities: the ``predict_nonlinearity`` of the module output.

        As in skorch: ``"auto"`` (default) is the softmax of the logits for
        :class:`torch.nn.CrossEntropyLoss` and for the package's criteria
        (which declare ``takes_logits``), the output itself for
        :class:`torch.nn.NLLLoss` (whose module returns probabilities);
        ``None`` is the output itself; a callable is applied to the output
        tensor.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features), or Dataset
            Images, possibly a memory map or a
            :class:`~sklearn_crtcl.DatasetArray` (read one batch at a time).
            A map-style torch ``Dataset`` of images or ``(image, label)``
            pairs (a ``skorch.dataset.Dataset`` of yours too) is read through
            a ``DatasetArray``; the training and validation datasets of the
            running ``fit`` (see :meth:`get_split_datasets`) go through
            skorch's own ``predict_proba`` (its scoring callbacks).

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
            Columns in the order of ``classes_``.
        """
        if isinstance(X, torch.utils.data.Dataset):
            if self._is_fit_dataset(X):  # skorch's own scoring callbacks
                return super().predict_proba(X)
            X = DatasetArray(X)
        to_proba = self._output_to_proba()
        return self._inference_batches(X, lambda m, xb: to_proba(m(xb)).cpu().numpy())

    def embed(self, X, batch_size=None):
        """Penultimate features: the backbone's pooled stage-4 output.

        The vector the final linear layer maps to the logits
        (``flatten(avgpool(stage4))``), for every image, computed batch by
        batch in eval mode without gradients, like :meth:`predict_proba` (a
        memory-mapped ``X`` is read one batch at a time). The diversity
        selection of the query strategies and the BADGE and CoreSet
        strategies use it.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Images.
        batch_size : int, optional
            Images per forward pass (default: ``iterator_valid__batch_size``
            if set, else the net's ``batch_size``, as :meth:`predict_proba`).

        Returns
        -------
        embeddings : ndarray of shape (n, n_embedding), float32
            ``n_embedding`` is the number of stage-4 channels (``8 * width``
            for the package's ResNets).

        Raises
        ------
        TypeError
            If the backbone exposes no stage outputs: neither a
            ``forward_taps`` method nor the torchvision ResNet layout (see
            :func:`~sklearn_crtcl.backbones.forward_taps`).
        """
        return self._inference_batches(
            X, lambda m, xb: _pooled_stage4(forward_taps(m, xb)).float().cpu().numpy(),
            batch_size=batch_size)

    def _proba_and_embedding(self, X, batch_size=None):
        """``(predict_proba(X), embed(X))`` from one forward pass per batch.

        For the query strategies that need both (BADGE): the logits and the
        pooled stage-4 features come from the same ``forward_taps`` call.
        Returns float32 arrays ``(n, n_classes)`` and ``(n, n_embedding)``.
        """
        to_proba = self._output_to_proba()

        def both(module, xb):
            taps = forward_taps(module, xb)
            return (to_proba(taps["logits"]).cpu().numpy(),
                    _pooled_stage4(taps).float().cpu().numpy())

        return self._inference_batches(X, both, batch_size=batch_size)

    def predict(self, X):
        """Most probable label per image.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features), or Dataset
            Images (see :meth:`predict_proba`).

        Returns
        -------
        y_pred : ndarray of shape (n,)
            Labels from ``classes_``, for arrays and for any ``Dataset`` of
            yours (a ``skorch.dataset.Dataset`` included); on the training
            and validation datasets of the running ``fit`` (those that
            skorch's scoring callbacks score, e.g. ``valid_acc``), the encoded
            labels ``0 .. n_classes-1`` that they hold, as skorch's
            ``NeuralNetClassifier.predict`` returns.
        """
        proba = self.predict_proba(X)
        if self._is_fit_dataset(X):
            return np.argmax(proba, axis=1)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags

