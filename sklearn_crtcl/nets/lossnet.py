"""``LossPredictionNet``: a ResNet trained jointly with a loss-prediction head
(LL4AL, Yoo & Kweon 2019; also the training phase of LPLgrad, Gul et al. 2024).

The head (:class:`~sklearn_crtcl.heads.MultiTapHead` on the four stage
outputs, the same shape as the CrtCl critic) learns to rank the samples of a
batch by their cross-entropy; the backbone is trained on

.. math::

    L = \\frac{1}{B} \\sum_{i=1}^{B} \\operatorname{CE}(f(x_i), y_i)
        + \\lambda\\, L_{\\text{rank}}(\\hat l, l),

with :math:`L_{\\text{rank}}` the margin ranking loss of
:func:`~sklearn_crtcl.losses.loss_prediction_ranking_loss`. After
``epoch_loss`` epochs the stage outputs are detached before the head, so the
ranking term no longer shapes the backbone.
"""


import numpy as np
import torch
from skorch.callbacks import PassthroughScoring
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_device

from .._checks import check_number
from ..backbones import forward_taps, resnet18
from ..callbacks import MilestoneLR, epoch_count
from ..heads import MultiTapHead, tap_dims
from ..losses import loss_prediction_ranking_loss
from .base import ResNetClassifier

__all__ = ["LossPredictionNet", "LOSS_HEAD_TAPS"]

#: Backbone outputs read by the loss-prediction head, in order.
LOSS_HEAD_TAPS = ("stage1", "stage2", "stage3", "stage4")

# offset of the loss head's seed from random_state (1 is used by the
# unlabeled-batch generator of the semi-supervised nets)
_HEAD_SEED_OFFSET = 7


class LossPredictionNet(ResNetClassifier):
    """ResNet classifier with a learned loss predictor (LL4AL / LPLgrad training).

    A :class:`~sklearn_crtcl.ResNetClassifier` with the loss-prediction module
    of Yoo & Kweon (2019): each of the four stage outputs of the backbone is
    globally average-pooled, projected to ``loss_head__hidden`` dimensions
    with a ReLU, and the concatenation is mapped to one scalar, the predicted
    loss :math:`\\hat l(x)`. Each training step runs the backbone once and
    minimises

    .. math::

        L = \\frac{1}{B} \\sum_i \\operatorname{CE}_i
            + \\lambda \\frac{1}{P} \\sum_{i<P}
            \\max\\big(0, \\xi - s_i (\\hat l_i - \\hat l_{B-1-i})\\big),
        \\quad s_i = \\operatorname{sign}^{\\pm}(\\operatorname{CE}_i -
        \\operatorname{CE}_{B-1-i}),

    pairing sample :math:`i` with sample :math:`B-1-i` (:math:`P = \\lfloor
    B/2 \\rfloor`; the middle sample of an odd batch is left out, ties give
    :math:`s_i = -1`, the true losses are detached). From epoch
    ``epoch_loss`` on (counted from the start of each ``fit``), the stage
    outputs are detached before the head: the head keeps learning, the
    backbone only sees the cross-entropy. The head has its own optimizer and
    learning-rate schedule (same milestones as the classifier).

    LPLgrad (Gul et al. 2024) trains its main and auxiliary models exactly
    this way and queries by the gradient norm of the predictive entropy
    instead of :meth:`predict_loss`.

    Parameters
    ----------
    module : callable or torch.nn.Module, default=resnet18
        The backbone; it must expose its stage outputs through
        :func:`~sklearn_crtcl.backbones.forward_taps` (this package's
        :class:`~sklearn_crtcl.backbones.ResNet` or a torchvision ResNet).
    lambda_ : float, default=1.0
        Weight :math:`\\lambda` of the ranking loss (1.0 in LL4AL). With
        ``lambda_=0`` the classifier trains exactly like a
        :class:`~sklearn_crtcl.ResNetClassifier` with the same
        ``random_state`` (the head is then trained on nothing).
    margin : float, default=1.0
        Margin :math:`\\xi` of the ranking loss (1.0 in LL4AL).
    epoch_loss : float, int or None, default=0.6
        Epoch of each ``fit`` from which the stage outputs are detached before
        the head: a float in ``[0, 1]`` is a fraction of ``max_epochs``
        (``0.6`` = epoch 120 of 200, as in LL4AL), an int is an epoch number
        (0 detaches from the start), ``None`` never detaches.
    loss_head : callable or torch.nn.Module, default=MultiTapHead
        The loss-prediction head. A callable is called as
        ``loss_head(in_features, **loss_head__params)`` with the channels of
        the four stage outputs; a module is used as given (it must map the
        list of the four stage outputs to one value per sample).
    loss_head__hidden : int, default=128
        Width of each projection of the head (128 in LL4AL).
    loss_head_optimizer : type, default=torch.optim.SGD
        Optimizer of the head (SGD in LL4AL).
    loss_head_optimizer__lr : float or None, default=0.1
        Learning rate of the head; ``None`` uses ``lr``.
    loss_head_optimizer__momentum : float or None, default=0.9
        Momentum of the head's SGD (``None`` to leave it out).
    loss_head_optimizer__weight_decay : float or None, default=5e-4
        Weight decay of the head (``None`` to leave it out).
    **kwargs
        Any :class:`~sklearn_crtcl.ResNetClassifier` parameter (``lr``,
        ``max_epochs``, ``batch_size``, ``lr_milestones``, ``random_state``,
        ``module__width``, ``device``...) and any other ``loss_head__*`` or
        ``loss_head_optimizer__*`` argument.

    Attributes
    ----------
    loss_head_ : torch.nn.Module
        The trained loss-prediction head.
    loss_head_optimizer_ : torch.optim.Optimizer
        Its optimizer.
    module_, classes_, n_features_in_, history_ : see ResNetClassifier
        ``history_`` also holds ``ranking_loss`` per batch and per epoch
        (the unweighted :math:`L_{\\text{rank}}`; ``train_loss`` is the total
        loss :math:`L`).

    See Also
    --------
    sklearn_crtcl.losses.loss_prediction_ranking_loss : the ranking loss.

    References
    ----------
    D. Yoo and I. S. Kweon, "Learning Loss for Active Learning", CVPR 2019.
    S. Gul, M. Elmahallawy, S. Madria and A. Tripathy, "LPLgrad: Optimizing
    Active Learning Through Gradient Norm Sample Selection and Auxiliary Model
    Training", 2024.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crtcl.nets.lossnet import LossPredictionNet
    >>> X, y = load_digits(return_X_y=True)
    >>> net = LossPredictionNet(input_shape=(1, 8, 8), module__width=4, max_epochs=2,
    ...                         loss_head__hidden=8, random_state=0, device="cpu")
    >>> net = net.fit(X[:200] / 16, y[:200])
    >>> net.predict_loss(X[:3] / 16).shape
    (3,)
    """

    def __init__(
        self,
        module=resnet18,
        *,
        lambda_=1.0,
        margin=1.0,
        epoch_loss=0.6,
        loss_head=MultiTapHead,
        loss_head__hidden=128,
        loss_head_optimizer=torch.optim.SGD,
        loss_head_optimizer__lr=0.1,
        loss_head_optimizer__momentum=0.9,
        loss_head_optimizer__weight_decay=5e-4,
        **kwargs,
    ):
        super().__init__(
            module,
            loss_head__hidden=loss_head__hidden,
            loss_head_optimizer__lr=loss_head_optimizer__lr,
            loss_head_optimizer__momentum=loss_head_optimizer__momentum,
            loss_head_optimizer__weight_decay=loss_head_optimizer__weight_decay,
            **kwargs,
        )
        self.lambda_ = lambda_
        self.margin = margin
        self.epoch_loss = epoch_loss
        self.loss_head = loss_head
        self.loss_head_optimizer = loss_head_optimizer

    def _get_param_names(self):
        # skorch treats names ending in "_" as fitted attributes; lambda_ is a
        # parameter (the name follows the paper's lambda, a Python keyword)
        return super()._get_param_names() + ["lambda_"]

    # ------------------------------------------------------------------ skorch set-up
    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        at = [name for name, _ in callbacks].index("print_log")
        callbacks[at:at] = [
            ("loss_head_lr_schedule", MilestoneLR(optimizer_attr="loss_head_optimizer_")),
            ("ranking_loss", PassthroughScoring(name="ranking_loss", on_train=True)),
        ]
        return callbacks

    def _check_params(self):
        """Validate the parameters (see :meth:`ResNetClassifier._check_params`)."""
        super()._check_params()
        check_number(self.lambda_, "lambda_", min_val=0)
        check_number(self.margin, "margin", min_val=0)
        self._epoch_loss_index(self.epoch_loss, self.max_epochs)

    @staticmethod
    def _epoch_loss_index(epoch_loss, max_epochs):
        """First epoch (0-based, within one fit) whose stage outputs are detached."""
        return epoch_count(epoch_loss, max_epochs, "epoch_loss")

    def initialize_module(self):
        """Build the backbone, then the loss head on its four stage outputs.

        The head is initialised inside a forked random state seeded from
        ``random_state``, so the backbone's initialisation and the batch order
        are those of a :class:`~sklearn_crtcl.ResNetClassifier` with the same
        ``random_state``.
        """
        super().initialize_module()
        head = self.loss_head
        if isinstance(head, torch.nn.Module):
            self.loss_head_ = head
            return self
        if not callable(head):
            raise TypeError(f"loss_head must be a callable returning a module or a module, "
                            f"got {head!r}")
        dims = tap_dims(self.module_, LOSS_HEAD_TAPS,
                        sample_shape=getattr(self, "input_shape_", None))
        kwargs = self.get_params_for("loss_head")
        seed = self._torch_seed(offset=_HEAD_SEED_OFFSET)
        if seed is None:
            self.loss_head_ = head(dims, **kwargs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.loss_head_ = head(dims, **kwargs)
        return self

    def initialize_criterion(self):
        """Build the criterion; it must have a ``reduction`` attribute (per-sample losses)."""
        super().initialize_criterion()
        if not hasattr(self.criterion_, "reduction"):
            raise TypeError(
                f"{type(self).__name__} needs per-sample losses: the criterion must be a "
                f"torch loss with a 'reduction' attribute, got {type(self.criterion_).__name__}")
        return self

    def initialize_optimizer(self, *args, **kwargs):
        """One optimizer for the backbone (``optimizer_``), one for the head
        (``loss_head_optimizer_``)."""
        args, kw = self.get_params_for_optimizer("optimizer", self.module_.named_parameters())
        self.optimizer_ = self.optimizer(*args, **kw)
        self._initialize_loss_head_optimizer()
        return self

    def _initialize_loss_head_optimizer(self):
        args, kw = self.get_params_for_optimizer("loss_head_optimizer",
                                                 self.loss_head_.named_parameters())
        kw.setdefault("lr", self.lr)
        with self._current_init_context("optimizer"):
            self.loss_head_optimizer_ = self.loss_head_optimizer(*args, **kw)

    def set_params(self, **params):
        """Set parameters, as skorch does, with two additions.

        ``loss_head_optimizer`` (a new optimizer class) rebuilds only the
        head's optimizer of an initialised net, with the
        ``loss_head_optimizer__*`` arguments given alongside; and
        ``loss_head_optimizer__*`` arguments are kept as attributes too (skorch
        only updates the live optimizer), so ``get_params`` and ``clone`` see
        the new values. ``loss_head__*`` re-initialises the head and, as for
        ``module__*`` in skorch, the whole net.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : LossPredictionNet
        """
        opt_args = {k: params.pop(k) for k in list(params)
                    if k.startswith("loss_head_optimizer__")}
        new_optimizer = "loss_head_optimizer" in params
        opt_class = params.pop("loss_head_optimizer", self.loss_head_optimizer)
        # a new class, or an argument removed (None), needs a new optimizer
        rebuild = new_optimizer or any(v is None for v in opt_args.values())
        if opt_args and not rebuild:
            params.update(opt_args)  # skorch updates the live optimizer
        super().set_params(**params)  # keeps loss_head_optimizer__* attributes in step
        if rebuild:
            vars(self).update(opt_args)
            vars(self)["loss_head_optimizer"] = opt_class
            if self.initialized_:
                self._initialize_loss_head_optimizer()
        return self

    # ------------------------------------------------------------------ training
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Remember where this ``fit`` starts (``epoch_loss`` counts from here)."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._check_params()
        self.fit_start_epoch_ = len(self.history)

    def _stage_outputs_detached(self):
        """Whether the current epoch detaches the stage outputs before the head."""
        first = self._epoch_loss_index(self.epoch_loss, self.max_epochs)
        if first is None:
            return False
        history = getattr(self, "history_", None)
        epoch = (len(history) if history else 1) - 1 - getattr(self, "fit_start_epoch_", 0)
        return epoch >= first

    def _per_sample_loss(self, logits, y):
        crit = self.criterion_
        reduction = crit.reduction
        crit.reduction = "none"
        try:
            return crit(logits, y)
        finally:
            crit.reduction = reduction

    def compute_losses(self, X, y, detach_features=None):
        """Per-sample losses, predicted losses and the ranking loss of a batch.

        One forward pass of the backbone (in its current mode) and of the head.

        Parameters
        ----------
        X : torch.Tensor of shape (B, C, H, W)
            Images, on the net's device.
        y : torch.Tensor of shape (B,)
            Encoded labels (``0 .. n_classes-1``), on the net's device.
        detach_features : bool, optional
            Detach the stage outputs before the head; default: as training
            does in the current epoch (from epoch ``epoch_loss`` of the
            running ``fit`` on).

        Returns
        -------
        logits : torch.Tensor of shape (B, n_classes)
        true_loss : torch.Tensor of shape (B,)
            Per-sample loss of the criterion (cross-entropy).
        pred_loss : torch.Tensor of shape (B,)
            Output of the head.
        ranking_loss : torch.Tensor
            Scalar :func:`~sklearn_crtcl.losses.loss_prediction_ranking_loss`.
        """
        if detach_features is None:
            detach_features = self._stage_outputs_detached()
        taps = forward_taps(self.module_, X)
        logits = taps["logits"]
        true_loss = self._per_sample_loss(logits, y)
        features = [taps[name] for name in LOSS_HEAD_TAPS]
        if detach_features:
            features = [f.detach() for f in features]
        pred_loss = self.loss_head_(features).reshape(-1)
        ranking = loss_prediction_ranking_loss(pred_loss, true_loss, margin=self.margin)
        return logits, true_loss, pred_loss, ranking

    def train_step_single(self, batch, **fit_params):
        """Forward the batch once, back-propagate CE + ``lambda_`` x ranking loss.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Images and encoded labels.
        **fit_params : dict
            Unused.

        Returns
        -------
        dict
            ``{"loss": total loss, "y_pred": logits}``.
        """
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi = self.augment_batch(to_device(Xi, self.device))
        yi = to_device(yi, self.device)
        logits, true_loss, _, ranking = self.compute_losses(Xi, yi)
        loss = true_loss.mean() + self.lambda_ * ranking
        loss.backward()
        self.history.record_batch("ranking_loss", ranking.item())
        return {"loss": loss, "y_pred": logits}

    def train_step(self, batch, **fit_params):
        """One update of the backbone and of the head from a single backward pass.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Images and encoded labels.
        **fit_params : dict
            Passed to :meth:`train_step_single`.

        Returns
        -------
        dict
            ``{"loss": total loss, "y_pred": logits}``.
        """
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.notify("on_grad_computed",
                    named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch, training=True)
        self._step_optimizer(None)
        return step

    # ------------------------------------------------------------------ inference
    def predict_loss(self, X):
        """Predicted loss of each image (the LL4AL uncertainty score).

        One forward pass of the backbone and of the head per batch, in eval
        mode; higher means the model expects a larger loss. The values rank
        samples: the ranking loss fixes their order, not their scale.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Images, possibly a memory map (read one batch at a time).

        Returns
        -------
        pred_loss : ndarray of shape (n,)
        """
        def score(module, xb):
            taps = forward_taps(module, xb)
            out = self.loss_head_([taps[name] for name in LOSS_HEAD_TAPS])
            return out.reshape(-1).float().cpu().numpy()

        self.check_is_fitted()
        parts = self._inference_batches(X, score, modules=(self.loss_head_,))
        return np.concatenate(parts, axis=0)
