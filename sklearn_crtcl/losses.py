"""Loss functions of the training schemes.

Pure functions on tensors, shared by the estimators in :mod:`sklearn_crtcl.nets`
and usable on their own.
"""

import numbers

import torch
from torch.nn import functional as F

__all__ = [
    "CRITIC_LOSSES",
    "wasserstein_critic_loss",
    "correctness_critic_loss",
    "critic_generator_loss",
    "loss_prediction_ranking_loss",
    "ema_warmup_decay",
    "ema_update",
    "consistency_loss",
]


# ---------------------------------------------------------------------------
# Critic loss (CrtCl, Rappazzo et al. 2024) and probabilistic correctness critics
# ---------------------------------------------------------------------------
#: The critic objectives: the paper's Wasserstein critic loss, and two
#: probabilistic ones whose critic outputs the logit of P(correct).
CRITIC_LOSSES = ("wasserstein", "bce", "tcp")


def wasserstein_critic_loss(scores, correct, reduction="sum"):
    r"""Wasserstein critic loss of CrtCl: incorrect minus correct scores.

    The critic :math:`C_\phi` scores the features :math:`F_\theta(x)` of the
    classifier; the batch is split into the correctly classified samples
    :math:`C_R` and the misclassified ones :math:`I`. The critic minimises

    .. math::

        \mathcal{L}_{cc} = \sum_{x \in I} C_\phi(F_\theta(x))
            - \sum_{x \in C_R} C_\phi(F_\theta(x))

    (Rappazzo, Ferber and Gomes, "Critic Loss for Image Classification",
    2024, Eq. 4), a mini-batch estimate of the Kantorovich-Rubinstein dual of
    the Wasserstein-1 distance between the score distributions of incorrect
    and correct predictions. Minimising it pushes the scores of correct
    predictions up and those of incorrect predictions down; a Lipschitz
    constraint on the critic (weight clipping, as in WGAN) keeps it bounded.
    With ``reduction="mean"`` each sum is replaced by the mean over its group
    (the textbook WGAN estimate, independent of the batch size and of the
    error rate).

    Parameters
    ----------
    scores : torch.Tensor of shape (B,)
        Critic scores :math:`C_\phi(F_\theta(x))` of the batch.
    correct : torch.Tensor of shape (B,), bool
        Whether the classifier predicted each sample correctly.
    reduction : {"sum", "mean"}, default="sum"
        ``"sum"``: Eq. 4 as written in the paper; ``"mean"``: group means.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``scores``.

    Raises
    ------
    ValueError
        If the shapes differ, ``correct`` is not boolean, ``reduction`` is
        unknown, or one of the two groups is empty (callers skip the critic
        step on such a batch: with one group only, the loss would just push
        every score in one direction).

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([0.5, -0.5, 1.0])
    >>> wasserstein_critic_loss(scores, torch.tensor([True, False, True]))
    tensor(-2.)
    >>> wasserstein_critic_loss(scores, torch.tensor([True, False, True]), reduction="mean")
    tensor(-1.2500)
    """
    if not isinstance(scores, torch.Tensor) or not isinstance(correct, torch.Tensor):
        raise TypeError("scores and correct must be torch tensors, got "
                        f"{type(scores).__name__} and {type(correct).__name__}")
    if scores.dim() != 1 or scores.shape != correct.shape:
        raise ValueError("scores and correct must be 1-d tensors of the same length, got "
                         f"shapes {tuple(scores.shape)} and {tuple(correct.shape)}")
    if correct.dtype != torch.bool:
        raise ValueError(f"correct must be a boolean tensor, got dtype {correct.dtype}")
    _check_reduction(reduction)
    n_correct = int(correct.sum())
    if n_correct == 0 or n_correct == correct.shape[0]:
        raise ValueError(
            "the Wasserstein critic loss needs both correct and incorrect predictions, got "
            f"{n_correct} correct of {correct.shape[0]}")
    wrong = ~correct
    if reduction == "mean":
        return scores[wrong].mean() - scores[correct].mean()
    return scores[wrong].sum() - scores[correct].sum()


def _check_reduction(reduction):
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' (the paper's Eq. 4 and 5) or 'mean', "
                         f"got {reduction!r}")


def _check_critic_loss(critic_loss):
    if critic_loss not in CRITIC_LOSSES:
        raise ValueError(f"critic_loss must be one of {CRITIC_LOSSES} ('wasserstein' is the "
                         f"paper's), got {critic_loss!r}")


def correctness_critic_loss(scores, target, critic_loss="bce", reduction="sum"):
    r"""Loss of a probabilistic correctness critic: its score is the logit of P(correct).

    The critic's score :math:`s = C_\phi(F_\theta(x))` is read as the logit of
    the probability that the classifier's prediction is right,
    :math:`\hat c(x) = \sigma(s)`. Two objectives train it:

    * ``"bce"``: binary cross-entropy on the event "the prediction is
      correct", :math:`c = [\hat y(x) = y]`,

      .. math::

          \mathcal{L}_{\mathrm{bce}} = \sum_{x \in B} -c \log \sigma(s)
              - (1 - c) \log(1 - \sigma(s));

    * ``"tcp"``: the true-class probability of ConfidNet (Corbiere et al.,
      "Addressing Failure Prediction by Learning Model Confidence",
      NeurIPS 2019): the critic regresses the softmax probability of the
      true class, :math:`\mathrm{TCP}(x) = p_\theta(y \mid x)`, with the
      squared error

      .. math::

          \mathcal{L}_{\mathrm{tcp}} = \sum_{x \in B}
              \big(\sigma(s) - \mathrm{TCP}(x)\big)^2 .

    Unlike the Wasserstein loss, both are defined on a batch whose
    predictions are all right (or all wrong), and neither needs a Lipschitz
    constraint: :math:`\sigma(s)` is bounded.

    Parameters
    ----------
    scores : torch.Tensor of shape (B,)
        Critic scores (logits of P(correct)).
    target : torch.Tensor of shape (B,)
        ``"bce"``: whether each prediction is correct (boolean);
        ``"tcp"``: the true-class probability, in ``[0, 1]`` (detached here).
    critic_loss : {"bce", "tcp"}, default="bce"
        The objective.
    reduction : {"sum", "mean"}, default="sum"
        Sum over the batch (like the paper's Eq. 4) or mean.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``scores``.

    Raises
    ------
    ValueError
        For shapes that differ, an empty batch, a ``"bce"`` target that is not
        boolean, a ``"tcp"`` target outside ``[0, 1]``, ``critic_loss`` not
        ``"bce"`` or ``"tcp"``, or an unknown ``reduction``.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([0.0, 0.0])
    >>> correctness_critic_loss(scores, torch.tensor([True, False]), reduction="mean")
    tensor(0.6931)
    >>> correctness_critic_loss(scores, torch.tensor([1.0, 0.0]), critic_loss="tcp")
    tensor(0.5000)
    """
    if not isinstance(scores, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("scores and target must be torch tensors, got "
                        f"{type(scores).__name__} and {type(target).__name__}")
    if scores.dim() != 1 or scores.shape != target.shape or scores.shape[0] == 0:
        raise ValueError("scores and target must be non-empty 1-d tensors of the same length, "
                         f"got shapes {tuple(scores.shape)} and {tuple(target.shape)}")
    if critic_loss not in ("bce", "tcp"):
        raise ValueError(f"correctness_critic_loss takes critic_loss 'bce' or 'tcp', got "
                         f"{critic_loss!r} (the Wasserstein loss is wasserstein_critic_loss)")
    _check_reduction(reduction)
    if critic_loss == "bce":
        if target.dtype != torch.bool:
            raise ValueError(f"the 'bce' target must be a boolean tensor (correct or not), got "
                             f"dtype {target.dtype}")
        return F.binary_cross_entropy_with_logits(scores, target.to(scores.dtype),
                                                  reduction=reduction)
    target = target.detach().to(scores.dtype)
    if not bool(((target >= 0) & (target <= 1)).all()):
        raise ValueError("the 'tcp' target (the true-class probability) must lie in [0, 1]")
    return F.mse_loss(torch.sigmoid(scores), target, reduction=reduction)


def critic_generator_loss(scores, gamma=0.04, reduction="sum", critic_loss="wasserstein"):
    r"""Generator loss of CrtCl: make the predictions look correct to the critic.

    The classifier, seen as the generator of the critic's inputs, is trained
    to make its predictions look correct to the critic. With the paper's
    Wasserstein critic (``critic_loss="wasserstein"``)

    .. math::

        \mathcal{L}_G = -\gamma \sum_{x \in B_u} C_\phi(F_\theta(x))

    over a batch :math:`B_u` of (unlabeled) images (Rappazzo et al. 2024,
    Eq. 5 and Algorithm 1, line 13, with the weight :math:`\gamma`). With a
    probabilistic critic (``"bce"`` or ``"tcp"``, whose score is the logit of
    P(correct), see :func:`correctness_critic_loss`) the classifier maximises
    the log-probability of being right:

    .. math::

        \mathcal{L}_G = -\gamma \sum_{x \in B_u} \log \sigma\big(C_\phi(F_\theta(x))\big),

    whose gradient fades where the critic is already sure the prediction is
    right (:math:`\partial \log\sigma(s)/\partial s = 1 - \sigma(s)`), unlike
    the Wasserstein score's constant pull. No label is needed. The gradient
    reaches the classifier through whichever of the critic's inputs are
    attached to its graph; CrtCl attaches only the output distribution. With
    ``reduction="mean"`` the sum becomes a mean, which divides the loss (and
    its gradient) by the batch size.

    Parameters
    ----------
    scores : torch.Tensor of shape (B,)
        Critic scores of the batch.
    gamma : float, default=0.04
        Weight :math:`\gamma` of the loss (0.04 for CIFAR-10/100 and 0.02 for
        SVHN in the paper).
    reduction : {"sum", "mean"}, default="sum"
        ``"sum"``: Eq. 5 as written in the paper; ``"mean"``: batch mean.
    critic_loss : {"wasserstein", "bce", "tcp"}, default="wasserstein"
        The critic's objective, which fixes how its score is read.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Raises
    ------
    ValueError
        If ``scores`` is not a non-empty 1-d tensor, ``gamma`` is not a
        finite number >= 0, or ``reduction`` or ``critic_loss`` is unknown.

    Examples
    --------
    >>> import torch
    >>> critic_generator_loss(torch.tensor([1.0, 3.0]), gamma=0.5)
    tensor(-2.)
    >>> critic_generator_loss(torch.tensor([1.0, 3.0]), gamma=0.5, reduction="mean")
    tensor(-1.)
    >>> critic_generator_loss(torch.tensor([0.0, 0.0]), gamma=1.0, critic_loss="bce")
    tensor(1.3863)
    """
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch tensor, got {type(scores).__name__}")
    if scores.dim() != 1 or scores.shape[0] == 0:
        raise ValueError(f"scores must be a non-empty 1-d tensor, got shape {tuple(scores.shape)}")
    if (isinstance(gamma, bool) or not isinstance(gamma, numbers.Real)
            or not 0 <= float(gamma) < float("inf")):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    _check_reduction(reduction)
    _check_critic_loss(critic_loss)
    if critic_loss != "wasserstein":
        scores = F.logsigmoid(scores)
    total = scores.mean() if reduction == "mean" else scores.sum()
    return -float(gamma) * total


# ---------------------------------------------------------------------------
# Loss prediction (LL4AL, Yoo & Kweon 2019; the training phase of LPLgrad)
# ---------------------------------------------------------------------------
def loss_prediction_ranking_loss(pred_loss, true_loss, margin=1.0):
    r"""Margin ranking loss between predicted and true per-sample losses (LL4AL).

    The batch of :math:`B` samples is split into :math:`P = \lfloor B/2 \rfloor`
    pairs, sample :math:`i` with sample :math:`B-1-i` (:math:`0 \le i < P`);
    with :math:`B` odd the middle sample is left out. For each pair the
    predicted losses :math:`\hat l` must be ordered like the true losses
    :math:`l`, by at least ``margin`` :math:`\xi`:

    .. math::

        L_{\text{rank}} = \frac{1}{P} \sum_{i=0}^{P-1}
            \max\big(0,\; \xi - s_i\,(\hat l_i - \hat l_{B-1-i})\big),
        \qquad
        s_i = \begin{cases} +1 & \text{if } l_i > l_{B-1-i} \\
                            -1 & \text{otherwise (ties included).} \end{cases}

    Only the sign of the true-loss difference is used, and the true losses
    are detached: no gradient flows into ``true_loss``. The loss compares
    pairs rather than regressing :math:`\hat l` on :math:`l`, so the
    predictor is insensitive to the overall scale of the loss, which shrinks
    during training (Yoo & Kweon, "Learning Loss for Active Learning",
    CVPR 2019, Eq. 2).

    Parameters
    ----------
    pred_loss : torch.Tensor of shape (B,)
        Predicted loss per sample (the output of the loss-prediction head).
    true_loss : torch.Tensor of shape (B,)
        True loss per sample (e.g. cross-entropy with ``reduction="none"``).
    margin : float, default=1.0
        Margin :math:`\xi` (1.0 in the paper).

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``pred_loss``. With fewer
        than two samples there is no pair and the loss is ``0`` (still
        attached to ``pred_loss``'s graph, with zero gradient).

    Raises
    ------
    ValueError
        If the inputs are not 1-d tensors of the same length, or ``margin``
        is negative or not finite.

    Examples
    --------
    >>> import torch
    >>> pred = torch.tensor([0.0, 2.0, 1.0], requires_grad=True)
    >>> true = torch.tensor([3.0, 5.0, 1.0])
    >>> loss_prediction_ranking_loss(pred, true)  # one pair: (0, 2)
    tensor(2., grad_fn=<MeanBackward0>)
    """
    if not isinstance(pred_loss, torch.Tensor) or not isinstance(true_loss, torch.Tensor):
        raise TypeError("pred_loss and true_loss must be torch tensors, got "
                        f"{type(pred_loss).__name__} and {type(true_loss).__name__}")
    if pred_loss.dim() != 1 or true_loss.dim() != 1:
        raise ValueError("pred_loss and true_loss must be 1-d (one loss per sample), got shapes "
                         f"{tuple(pred_loss.shape)} and {tuple(true_loss.shape)}")
    if pred_loss.shape[0] != true_loss.shape[0]:
        raise ValueError("pred_loss and true_loss must have the same length, got "
                         f"{pred_loss.shape[0]} and {true_loss.shape[0]}")
    if (isinstance(margin, bool) or not isinstance(margin, numbers.Real)
            or not float(margin) >= 0 or margin == float("inf")):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    n_pairs = pred_loss.shape[0] // 2
    if n_pairs == 0:
        return pred_loss.sum() * 0.0
    pred_diff = pred_loss[:n_pairs] - pred_loss.flip(0)[:n_pairs]
    true_loss = true_loss.detach()
    true_diff = true_loss[:n_pairs] - true_loss.flip(0)[:n_pairs]
    sign = torch.where(true_diff > 0, 1.0, -1.0).to(pred_diff.dtype)
    return torch.clamp(float(margin) - sign * pred_diff, min=0).mean()


# ---------------------------------------------------------------------------
# Mean-teacher consistency (TOD, Huang et al. 2021)
# ---------------------------------------------------------------------------
def ema_warmup_decay(step, decay):
    r"""Decay of the exponential moving average at optimizer step ``step``.

    .. math::

        \alpha_t = \min\Big(1 - \frac{1}{t + 1},\; \alpha\Big)

    At step :math:`t = 0` the decay is 0 (the teacher becomes a copy of the
    student); during the first steps the teacher is the plain average of the
    students seen so far, until that average would weigh the past more than
    ``decay`` does (Tarvainen & Valpola, "Mean teachers are better role
    models", NeurIPS 2017; used by TOD).

    Parameters
    ----------
    step : int
        Number of optimizer steps taken before this update (0 for the first).
    decay : float
        Target decay :math:`\alpha` in ``[0, 1]`` (0.999 in TOD).

    Returns
    -------
    float

    Examples
    --------
    >>> ema_warmup_decay(0, 0.999), ema_warmup_decay(3, 0.999), ema_warmup_decay(10**6, 0.999)
    (0.0, 0.75, 0.999)
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    _check_decay(decay)
    return min(1.0 - 1.0 / (int(step) + 1), float(decay))


def _check_decay(decay):
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay <= 1:
        raise ValueError(f"decay must be a number in [0, 1], got {decay!r}")


@torch.no_grad()
def ema_update(teacher, student, decay):
    r"""Move the teacher's weights towards the student's (in place).

    Every parameter of ``teacher`` becomes

    .. math::

        \tilde w \leftarrow \alpha\, \tilde w + (1 - \alpha)\, w

    (TOD, Eq. 6), where :math:`w` is the matching parameter of ``student``.
    Buffers (batch-norm running statistics and counters) are not averaged:
    they are copied from the student, so the teacher in eval mode normalises
    like the student does.

    Parameters
    ----------
    teacher : torch.nn.Module
        The averaged model, updated in place.
    student : torch.nn.Module
        The trained model; must have the same parameter and buffer names and
        shapes as ``teacher``.
    decay : float
        :math:`\alpha` in ``[0, 1]``; use :func:`ema_warmup_decay` for the
        warm-up schedule of Mean Teacher and TOD.

    Returns
    -------
    teacher : torch.nn.Module

    Raises
    ------
    ValueError
        If ``decay`` is outside ``[0, 1]`` or the two modules do not have the
        same parameters and buffers.
    """
    _check_decay(decay)
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    t_buffers = dict(teacher.named_buffers())
    s_buffers = dict(student.named_buffers())
    if t_params.keys() != s_params.keys() or t_buffers.keys() != s_buffers.keys():
        raise ValueError("teacher and student must have the same parameters and buffers")
    for name, t in t_params.items():
        s = s_params[name]
        if t.shape != s.shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(t.shape)} in the teacher "
                             f"but {tuple(s.shape)} in the student")
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for name, t in t_buffers.items():
        t.copy_(s_buffers[name])
    return teacher


def consistency_loss(student_logits, teacher_logits):
    r"""Mean squared difference between student and teacher outputs (TOD).

    .. math::

        L_U = \frac{1}{n K} \sum_{i=1}^{n} \big\| f(x_i; w) - f(x_i; \tilde w) \big\|_2^2

    for ``n`` samples with ``K`` outputs each: the unsupervised loss of TOD
    (Huang et al., "Semi-Supervised Active Learning with Temporal Output
    Discrepancy", ICCV 2021, Eq. 7) on the logits, averaged over the outputs
    too, as the reference implementation does with ``F.mse_loss`` (Eq. 7
    itself sums over the outputs; the two differ by the factor :math:`K`).
    The teacher outputs are detached: only the student is pulled towards the
    teacher.

    Parameters
    ----------
    student_logits : torch.Tensor of shape (n, K)
        Outputs of the trained model.
    teacher_logits : torch.Tensor of shape (n, K)
        Outputs of the moving-average model on the same inputs.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError("student_logits and teacher_logits must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    return F.mse_loss(student_logits, teacher_logits.detach())
