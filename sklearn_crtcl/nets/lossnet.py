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

from .._checks import check_number
from ..backbones import forward_taps, resnet18
from ..callbacks import epoch_count
from ..distributed import gather_batch, world
from ..heads import MultiTapHead, tap_dims
from ..losses import loss_prediction_ranking_loss
from .auxiliary import AuxiliaryModule
from .base import ResNetClassifier

__all__ = ["LossPredictionNet", "LOSS_HEAD_TAPS"]

#: Backbone outputs read by the loss-prediction head, in order.
LOSS_HEAD_TAPS = ("stage1", "stage2", "stage3", "stage4")


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
        ``module__width``, ``device``, ``precision``, ``channels_last``,
        ``compile``...) and any other ``loss_head__*`` or
        ``loss_head_optimizer__*`` argument. The head is the net's auxiliary
        module ``"loss_head"``
        (:class:`~sklearn_crtcl.nets.auxiliary.AuxiliaryModule`): it follows
        the net's ``precision`` and ``channels_last``.

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

    #: The loss-prediction head: built on the stage outputs' channels (seed
    #: offset 7; 1 is the semi-supervised nets' unlabeled-batch generator), its
    #: own optimizer and schedule (the classifier's milestones), and the joint
    #: phase (the stage outputs are detached after it).
    auxiliary_modules = (
        AuxiliaryModule("loss_head", inputs="_loss_head_dims", seed_offset=7, optimizer=True,
                        phase="epoch_loss",
                        switches="the ranking loss's gradient into the backbone"),
    )

    # ------------------------------------------------------------------ skorch set-up
    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        at = [name for name, _ in callbacks].index("print_log")
        callbacks.insert(at, ("ranking_loss",
                              PassthroughScoring(name="ranking_loss", on_train=True)))
        return callbacks

    def _check_params(self):
        """Validate the parameters (see :meth:`ResNetClassifier._check_params`)."""
        super()._check_params()
        check_number(self.lambda_, "lambda_", min_val=0)
        check_number(self.margin, "margin", min_val=0)

    @staticmethod
    def _epoch_loss_index(epoch_loss, max_epochs):
        """First epoch (0-based, within one fit) whose stage outputs are detached."""
        return epoch_count(epoch_loss, max_epochs, "epoch_loss")

    def _loss_head_dims(self):
        """Channels of the four stage outputs the head reads."""
        return tap_dims(self.module_, LOSS_HEAD_TAPS,
                        sample_shape=getattr(self, "input_shape_", None))

    def initialize_criterion(self):
        """Build the criterion; it must have a ``reduction`` attribute (per-sample losses)."""
        super().initialize_criterion()
        if not hasattr(self.criterion_, "reduction"):
            raise TypeError(
                f"{type(self).__name__} needs per-sample losses: the criterion must be a "
                f"torch loss with a 'reduction' attribute, got {type(self.criterion_).__name__}")
        return self

    # ------------------------------------------------------------------ training
    def _stage_outputs_detached(self):
        """Whether the current epoch detaches the stage outputs before the head
        (after the ``epoch_loss`` phase of the running ``fit``)."""
        return not self._in_phase("loss_head")

    def _per_sample_loss(self, logits, y):
        crit = self.criterion_
        reduction = crit.reduction
        crit.reduction = "none"
        try:
            # skorch's loss of this process's rows (with NLLLoss, the log of a
            # module's probabilities, as skorch's NeuralNetClassifier takes it)
            return self.get_loss(logits, y)
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
            Per-sample loss of the criterion (cross-entropy by default).
        pred_loss : torch.Tensor of shape (B,)
            Output of the head.
        ranking_loss : torch.Tensor
            Scalar :func:`~sklearn_crtcl.losses.loss_prediction_ranking_loss`.
        """
        if detach_features is None:
            detach_features = self._stage_outputs_detached()
        taps = self._forward_taps(X)
        logits = taps["logits"]
        true_loss = self._per_sample_loss(logits, y)
        features = [taps[name] for name in LOSS_HEAD_TAPS]
        if detach_features:
            features = [f.detach() for f in features]
        pred_loss = self.loss_head_(features).reshape(-1).float()
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
        Xi, yi = self._training_batch(Xi), self._training_labels(yi)
        with self._autocast():
            logits, true_loss, pred_loss, ranking = self.compute_losses(Xi, yi)
            if world()[1] > 1:  # the whole batch's losses and pairs, as one process
                true_loss = gather_batch(true_loss)
                ranking = loss_prediction_ranking_loss(gather_batch(pred_loss), true_loss,
                                                       margin=self.margin)
            loss = true_loss.mean() + self.lambda_ * ranking
        self._backward(loss)
        self.history.record_batch("ranking_loss", ranking.item())
        return {"loss": loss, "y_pred": logits}

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
        return self._inference_batches(X, score)
