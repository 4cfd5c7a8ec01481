r"""Training criteria for the package's nets: focal loss and IQ losses.

Each criterion is a small :class:`torch.nn.Module` that maps the logits
``(n, n_classes)`` and the encoded labels ``(n,)`` to a loss, like the loss
classes of :mod:`torch.nn`, and has a ``reduction`` attribute (``"mean"``,
``"sum"`` or ``"none"``). Every estimator of the package takes one through
skorch's ``criterion=`` parameter, its arguments as ``criterion__*``
parameters::

    ResNetClassifier(criterion=FocalLoss, criterion__gamma=2.0)
    CriticLossNet(criterion=IQLoss, criterion__divergence="jensen_shannon")

:class:`~sklearn_crtcl.LossPredictionNet` ranks per-sample losses: it sets
``reduction="none"`` for the duration of one call, which all these criteria
(and torch's losses) support.

Both declare ``takes_logits = True``: with skorch's default
``predict_nonlinearity="auto"`` the nets then return the softmax of the
logits from ``predict_proba`` (skorch itself infers the softmax only for
:class:`torch.nn.CrossEntropyLoss`). A criterion of your own that takes
logits can declare it too.

Like torch's losses under :func:`torch.autocast`, the criteria compute in
float32 when given float16 or bfloat16 logits. Like
:class:`torch.nn.CrossEntropyLoss`, they ignore the samples whose target is
``ignore_index`` (default -100): a loss of 0, left out of the mean.

Label smoothing (Szegedy et al. 2016) needs no class of its own: it is
torch's ``criterion=torch.nn.CrossEntropyLoss,
criterion__label_smoothing=0.1``.
"""

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from ._checks import check_number

__all__ = ["FocalLoss", "IQLoss", "IQ_DIVERGENCES"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, owner):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{owner} reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_logits_and_target(input, target, owner):
    """Shapes and dtypes of ``(logits, labels)``; no device synchronisation."""
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{owner} takes torch tensors (logits, labels), got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if input.dim() != 2 or input.shape[1] < 2:
        raise ValueError(f"{owner} takes logits of shape (n_samples, n_classes) with "
                         f"n_classes >= 2, got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"{owner} takes floating-point logits, got dtype {input.dtype}")
    if target.dim() != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(f"{owner} takes one class index per sample: target of shape "
                         f"({input.shape[0]},), got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"{owner} takes integer class indices as target (as "
                        f"torch.nn.CrossEntropyLoss), got dtype {target.dtype}")


def _loss_precision(input):
    """Half-precision logits upcast to float32, as autocast does for torch's losses."""
    if input.dtype in (torch.float16, torch.bfloat16):
        return input.float()
    return input


def _check_ignore_index(ignore_index, owner):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{owner} ignore_index must be an integer (as "
                        f"torch.nn.CrossEntropyLoss's), got {ignore_index!r}")
    return int(ignore_index)


def _kept(target, ignore_index):
    """The samples whose target is not ``ignore_index``, and the target with the
    ignored ones set to class 0 (so that gathering stays in range)."""
    keep = target != ignore_index
    return keep, torch.where(keep, target, torch.zeros_like(target))


def _reduce(loss, reduction, keep):
    """Reduce per-sample losses as torch's losses with ``ignore_index``: the ignored
    samples are 0 (``"none"``), out of the sum, and out of the mean's count (all
    ignored: nan)."""
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "mean":
        return loss.sum() / keep.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


# ---------------------------------------------------------------------------
# Focal loss
# ---------------------------------------------------------------------------


class FocalLoss(torch.nn.Module):
    r"""Multiclass focal loss (Lin et al. 2017) on logits.

    With :math:`p_{i} = \operatorname{softmax}(z_i)_{y_i}` the predicted
    probability of the true class of sample :math:`i`,

    .. math::

        \ell_i = -\,\alpha_{y_i}\, (1 - p_{i})^{\gamma} \log p_{i}.

    :math:`\gamma = 0` and no ``alpha`` give the cross-entropy; :math:`\gamma >
    0` down-weights the samples already classified with confidence, which
    reduces over-confidence (Mukhoti et al. 2020). ``reduction="mean"`` is
    the plain mean :math:`\frac1n \sum_i \ell_i` (as the paper and
    :func:`torchvision.ops.sigmoid_focal_loss`), not the weighted mean
    :math:`\sum_i \ell_i / \sum_i \alpha_{y_i}` of
    ``torch.nn.CrossEntropyLoss(weight=...)``.

    :math:`\log p_i` is computed with :func:`torch.log_softmax` and
    :math:`1 - p_i` as ``-expm1(log p_i)`` (exact for :math:`p_i` near 1);
    the factor :math:`(1 - p_i)^\gamma` is evaluated on
    :math:`\max(1 - p_i, \text{tiny})`, so the gradient stays finite for
    :math:`0 < \gamma < 1` when :math:`p_i` rounds to 1.

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter :math:`\gamma \ge 0` (2 in the paper).
    alpha : array-like of shape (n_classes,) or None, default=None
        Per-class weights :math:`\alpha_k \ge 0`, in the order of the
        encoded labels (the net's ``classes_``); ``None``: all 1.
    reduction : {"mean", "sum", "none"}, default="mean"
        Mean or sum over the batch, or the per-sample losses.
    ignore_index : int, default=-100
        A target value that is ignored, as in
        :class:`torch.nn.CrossEntropyLoss`: its samples' losses are 0 and do
        not count in the mean (a batch of ignored samples only: nan).

    Attributes
    ----------
    alpha : torch.Tensor of shape (n_classes,) or None
        The class weights, a buffer (moves with the module to its device).

    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár, "Focal Loss for
    Dense Object Detection", ICCV 2017.
    J. Mukhoti, V. Kulharia, A. Sanyal, S. Golodetz, P. Torr and P. Dokania,
    "Calibrating Deep Neural Networks using Focal Loss", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_crtcl.criteria import FocalLoss
    >>> logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    >>> FocalLoss(gamma=2.0, reduction="none")(logits, y)
    tensor([0.0018, 0.7019])
    """

    #: The criterion takes logits: ``predict_nonlinearity="auto"`` is the softmax.
    takes_logits = True

    def __init__(self, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        super().__init__()
        check_number(gamma, "FocalLoss gamma", min_val=0)
        self.gamma = float(gamma)
        self.reduction = _check_reduction(reduction, "FocalLoss")
        self.ignore_index = _check_ignore_index(ignore_index, "FocalLoss")
        self.register_buffer("alpha", self._check_alpha(alpha))

    @staticmethod
    def _check_alpha(alpha):
        if alpha is None:
            return None
        if isinstance(alpha, (str, bytes)) or isinstance(alpha, numbers.Number):
            raise TypeError("FocalLoss alpha must be a sequence of per-class weights "
                            f"(n_classes,) or None, got {alpha!r}")
        if isinstance(alpha, torch.Tensor):
            alpha = alpha.detach().cpu().numpy()
        try:
            values = np.asarray(alpha, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"FocalLoss alpha must be numeric per-class weights, got "
                            f"{alpha!r}") from None
        if values.ndim != 1 or values.shape[0] < 2:
            raise ValueError("FocalLoss alpha must be a 1-D sequence of one weight per class "
                             f"(at least 2), got shape {values.shape}")
        if not np.all(np.isfinite(values)) or values.min() < 0:
            raise ValueError(f"FocalLoss alpha must hold finite weights >= 0, got "
                             f"{values.tolist()}")
        return torch.as_tensor(values, dtype=torch.float32)

    def check_n_classes(self, n_classes):
        """Raise ``ValueError`` unless ``alpha`` has one weight per class.

        The estimators call it when they build the criterion, before any
        training step.

        Parameters
        ----------
        n_classes : int
            Number of classes of the net.
        """
        if self.alpha is not None and self.alpha.shape[0] != n_classes:
            raise ValueError(f"FocalLoss alpha has {self.alpha.shape[0]} class weights but "
                             f"the net has {n_classes} classes")

    def forward(self, input, target):
        """Focal loss of a batch.

        Parameters
        ----------
        input : torch.Tensor of shape (n, n_classes)
            Logits.
        target : torch.Tensor of shape (n,)
            Class indices ``0 .. n_classes - 1``, or ``ignore_index``.

        Returns
        -------
        torch.Tensor
            A scalar, or the ``(n,)`` per-sample losses with ``reduction="none"``.
        """
        _check_logits_and_target(input, target, "FocalLoss")
        reduction = _check_reduction(self.reduction, "FocalLoss")
        if self.alpha is not None and self.alpha.shape[0] != input.shape[1]:
            raise ValueError(f"FocalLoss alpha has {self.alpha.shape[0]} class weights but "
                             f"the logits have {input.shape[1]} classes")
        keep, target = _kept(target.long(), self.ignore_index)
        log_p = F.log_softmax(_loss_precision(input), dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -log_p
        if self.gamma:
            one_minus_p = (-torch.expm1(log_p)).clamp(min=torch.finfo(log_p.dtype).tiny)
            loss = one_minus_p ** self.gamma * loss
        if self.alpha is not None:
            loss = self.alpha.to(loss.dtype)[target] * loss
        return _reduce(loss, reduction, keep)

    def extra_repr(self):
        """Arguments shown in the module's ``repr``.

        Returns
        -------
        str
        """
        alpha = None if self.alpha is None else [round(a, 4) for a in self.alpha.tolist()]
        return (f"gamma={self.gamma}, alpha={alpha}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")


# ---------------------------------------------------------------------------
# IQ loss
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Divergence:
    """``phi`` of one divergence and the inverse of its derivative."""

    phi: Callable  # torch tensor -> tensor (exact formula, on its domain)
    phi_float: Callable  # float -> float
    # slope -> x0 with phi'(x0) = slope (> 1); None when phi' <= 1 everywhere
    # (total variation: no continuation needed)
    x_at_slope: Optional[Callable]


_DIVERGENCE_SPECS = {
    # f(t) = -log t: phi(x) = 1 + log x, x > 0; phi' = 1/x
    "forward_kl": _Divergence(
        phi=lambda x: 1.0 + torch.log(x),
        phi_float=lambda x: 1.0 + math.log(x),
        x_at_slope=lambda s: 1.0 / s),
    # f(t) = t log t - t + 1: phi(x) = -exp(-x); phi' = exp(-x)
    "reverse_kl": _Divergence(
        phi=lambda x: -torch.exp(-x),
        phi_float=lambda x: -math.exp(-x),
        x_at_slope=lambda s: -math.log(s)),
    # f(t) = (sqrt t - 1)^2: phi(x) = x / (1 + x), x > -1; phi' = 1 / (1 + x)^2
    "squared_hellinger": _Divergence(
        phi=lambda x: x / (1.0 + x),
        phi_float=lambda x: x / (1.0 + x),
        x_at_slope=lambda s: 1.0 / math.sqrt(s) - 1.0),
    # f(t) = (t - 1)^2: phi(x) = x - x^2 / 4; phi' = 1 - x / 2
    "pearson_chi2": _Divergence(
        phi=lambda x: x - x * x / 4.0,
        phi_float=lambda x: x - x * x / 4.0,
        x_at_slope=lambda s: 2.0 * (1.0 - s)),
    # f(t) = |t - 1| / 2: phi(x) = x; phi' = 1
    "total_variation": _Divergence(
        phi=lambda x: x,
        phi_float=lambda x: x,
        x_at_slope=None),
    # f(t) = -(t + 1) log((t + 1) / 2) + t log t: phi(x) = log(2 - exp(-x)),
    # x > -log 2; phi' = 1 / (2 exp(x) - 1)
    "jensen_shannon": _Divergence(
        phi=lambda x: torch.log(2.0 - torch.exp(-x)),
        phi_float=lambda x: math.log(2.0 - math.exp(-x)),
        x_at_slope=lambda s: math.log((1.0 + 1.0 / s) / 2.0)),
}

#: Names of the divergences of :class:`IQLoss` (Table 1 of the IQ-loss poster).
IQ_DIVERGENCES = tuple(_DIVERGENCE_SPECS)


class IQLoss(torch.nn.Module):
    r"""IQ loss: non-adversarial f-divergence minimisation with logits as energies.

    The classifier's logits are read as energies :math:`\epsilon_k(x)`; the
    IQ loss of a labeled sample :math:`(x, y)` is

    .. math::

        \ell(x, y) = -\phi(\epsilon_y) + \alpha \log \sum_{k} e^{\epsilon_k / \alpha},

    the negated objective :math:`\mathbb{E}_{\rho_E}[\phi(\epsilon)] -
    \alpha \log Z`, :math:`Z = \sum_k e^{\epsilon_k/\alpha}`, of the IQ-loss
    poster (Gupta, Garg and Yuan), with :math:`\phi` set by the divergence
    (its Table 1):

    =========================  ==========================  ========================
    ``divergence``             :math:`\phi(x)`             domain of :math:`\phi`
    =========================  ==========================  ========================
    ``"forward_kl"``           :math:`1 + \log x`          :math:`x > 0`
    ``"reverse_kl"``           :math:`-e^{-x}`             all :math:`x`
    ``"squared_hellinger"``    :math:`x / (1 + x)`         :math:`x > -1`
    ``"pearson_chi2"``         :math:`x - x^2/4`           all :math:`x`
    ``"total_variation"``      :math:`x`                   all :math:`x`
    ``"jensen_shannon"``       :math:`\log(2 - e^{-x})`    :math:`x > -\log 2`
    =========================  ==========================  ========================

    With ``"total_variation"`` and :math:`\alpha = 1` the loss is the
    cross-entropy :math:`-\epsilon_y + \log\sum_k e^{\epsilon_k}` (the
    conjugate of the total variation restricts :math:`|x| \le 1/2`; as in
    the poster, :math:`\phi(x) = x` is used on the whole line).

    **Keeping it finite.** The logits are unconstrained, but
    :math:`\phi` of the forward KL, the squared Hellinger distance and
    Jensen-Shannon tends to :math:`-\infty` at the edge of its domain, and
    that of the reverse KL overflows for very negative :math:`x`. Each
    :math:`\phi` is increasing and concave, so its slope grows as :math:`x`
    decreases. Below the point :math:`x_0` where the slope reaches
    ``max_slope`` (:math:`\phi'(x_0) = s`), :math:`\phi` is continued by its
    tangent,

    .. math::

        \tilde\phi(x) = \begin{cases} \phi(x) & x \ge x_0, \\
            \phi(x_0) + s\,(x - x_0) & x < x_0, \end{cases}

    a concave, continuously differentiable function, finite on the whole
    line, whose gradient never exceeds :math:`s`:
    :math:`x_0 = 1/s` (forward KL), :math:`-\log s` (reverse KL),
    :math:`1/\sqrt{s} - 1` (squared Hellinger), :math:`2(1 - s)` (Pearson
    :math:`\chi^2`), :math:`\log\frac{1 + 1/s}{2}` (Jensen-Shannon); the
    total variation (slope 1) needs none. The minimisers are unchanged: at a
    minimum :math:`\phi'(\epsilon_y) = \operatorname{softmax}(\epsilon /
    \alpha)_y \le 1 < s`, a point of the exact part of :math:`\tilde\phi`.

    The nets' ``predict_proba`` is :math:`\operatorname{softmax}(\epsilon)`;
    the loss's Gibbs distribution is :math:`\operatorname{softmax}(\epsilon /
    \alpha)`, the same for :math:`\alpha = 1`.

    Parameters
    ----------
    divergence : str
        The f-divergence minimised, one of :data:`IQ_DIVERGENCES`:
        ``"forward_kl"``, ``"reverse_kl"``, ``"squared_hellinger"``,
        ``"pearson_chi2"``, ``"total_variation"``, ``"jensen_shannon"``.
    alpha : float, default=1.0
        Temperature :math:`\alpha > 0` of the regulariser
        :math:`\alpha \log Z`.
    max_slope : float, default=1.5
        Slope :math:`s > 1` of :math:`\phi` where its tangent continuation
        starts (see above); larger values follow :math:`\phi` further
        towards the edge of its domain, at the price of larger gradients.
    reduction : {"mean", "sum", "none"}, default="mean"
        Mean or sum over the batch, or the per-sample losses.
    ignore_index : int, default=-100
        A target value that is ignored, as in
        :class:`torch.nn.CrossEntropyLoss` (see :class:`FocalLoss`).

    Attributes
    ----------
    x0 : float or None
        Start :math:`x_0` of the tangent continuation (``None`` for the total
        variation).

    See Also
    --------
    FocalLoss : Another loss for calibrated classifiers.

    References
    ----------
    A. Gupta, D. Garg and R. Yuan, "Improving Image Classifiers with IQ Loss
    functions: Non-adversarial f-Divergence Minimization" (poster).
    D. Garg, S. Chakraborty, C. Cundy, J. Song and S. Ermon, "IQ-Learn:
    Inverse soft-Q Learning for Imitation", NeurIPS 2021.

    Examples
    --------
    >>> import torch
    >>> from sklearn_crtcl.criteria import IQLoss
    >>> logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> IQLoss("jensen_shannon", reduction="none")(logits, y)
    tensor([1.5038, 0.8234])
    """

    #: The criterion takes logits: ``predict_nonlinearity="auto"`` is the softmax.
    takes_logits = True

    def __init__(self, divergence, alpha=1.0, max_slope=1.5, reduction="mean",
                 ignore_index=-100):
        super().__init__()
        if not isinstance(divergence, str) or divergence not in _DIVERGENCE_SPECS:
            raise ValueError(f"IQLoss divergence must be one of {IQ_DIVERGENCES}, got "
                             f"{divergence!r}")
        check_number(alpha, "IQLoss alpha", min_val=0, include_boundaries="neither")
        check_number(max_slope, "IQLoss max_slope", min_val=1, include_boundaries="neither")
        self.divergence = divergence
        self.alpha = float(alpha)
        self.max_slope = float(max_slope)
        self.reduction = _check_reduction(reduction, "IQLoss")
        self.ignore_index = _check_ignore_index(ignore_index, "IQLoss")
        spec = _DIVERGENCE_SPECS[divergence]
        self.x0 = None if spec.x_at_slope is None else spec.x_at_slope(self.max_slope)

    def phi(self, x):
        r"""The divergence's :math:`\phi`, continued by its tangent below ``x0``.

        Parameters
        ----------
        x : torch.Tensor
            Energies :math:`\epsilon`, any shape.

        Returns
        -------
        torch.Tensor
            :math:`\tilde\phi(x)`, same shape and dtype; finite for every
            finite ``x``.
        """
        spec = _DIVERGENCE_SPECS[self.divergence]
        if self.x0 is None:
            return spec.phi(x)
        x0 = self.x0
        inside = spec.phi(torch.clamp(x, min=x0))  # never outside the domain
        tangent = spec.phi_float(x0) + self.max_slope * (x - x0)
        return torch.where(x >= x0, inside, tangent)

    def forward(self, input, target):
        """IQ loss of a batch.

        Parameters
        ----------
        input : torch.Tensor of shape (n, n_classes)
            Logits, read as energies.
        target : torch.Tensor of shape (n,)
            Class indices ``0 .. n_classes - 1``, or ``ignore_index``.

        Returns
        -------
        torch.Tensor
            A scalar, or the ``(n,)`` per-sample losses with ``reduction="none"``.
        """
        _check_logits_and_target(input, target, "IQLoss")
        reduction = _check_reduction(self.reduction, "IQLoss")
        input = _loss_precision(input)
        keep, target = _kept(target.long(), self.ignore_index)
        energy_y = input.gather(1, target[:, None]).squeeze(1)
        alpha = self.alpha
        log_z = torch.logsumexp(input / alpha, dim=1)
        loss = -self.phi(energy_y) + alpha * log_z
        return _reduce(loss, reduction, keep)

    def extra_repr(self):
        """Arguments shown in the module's ``repr``.

        Returns
        -------
        str
        """
        return (f"divergence={self.divergence!r}, alpha={self.alpha}, "
                f"max_slope={self.max_slope}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")
