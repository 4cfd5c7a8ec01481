"""``CriticLossNet``: a ResNet trained with the Critic Loss for Image
Classification (CrtCl, Rappazzo, Ferber and Gomes 2024).

The classifier :math:`G_\\theta` is the generator of a generator-critic pair.
A critic :math:`C_\\phi` reads the image, the four stage outputs and the
output distribution of the classifier and learns, with the Wasserstein critic
loss, to score correct predictions above incorrect ones; its score, which needs
no label, is then a learned loss for the classifier on unlabeled data
(:math:`\\mathcal{L}_G = -\\gamma\\, \\overline{C_\\phi(F_\\theta(x_u))}`) and an
acquisition score for active learning (:meth:`CriticLossNet.predict_correctness`).
"""


import numpy as np
import torch
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_device

from .._checks import check_number
from ..backbones import TAP_NAMES, forward_taps, resnet18
from ..distributed import gather_batch
from ..heads import MultiTapHead, tap_dims
from ..metrics import correctness_auroc, correctness_calibration_error
from ..losses import (CRITIC_LOSSES, correctness_critic_loss, critic_generator_loss,
                      wasserstein_critic_loss)
from ._unlabeled import SemiSupervisedMixin
from .auxiliary import AuxiliaryModule
from .base import ResNetClassifier

__all__ = ["CriticLossNet", "Critic", "CRITIC_TAPS", "critic_inputs"]

#: The critic's inputs in CrtCl: the image, the four stage outputs and the
#: output distribution (softmax of the logits).
CRITIC_TAPS = ("input", "stage1", "stage2", "stage3", "stage4", "proba")

#: Every input a critic can read: the backbone's taps, ``"proba"`` (the
#: softmax output) and ``"proba_sorted"`` (the softmax output sorted in
#: decreasing order, a class-agnostic view of the confidence: its first entry
#: is the maximum softmax probability, the first two give the margin).
_ALL_TAPS = TAP_NAMES + ("proba", "proba_sorted")

#: Share of the labeled set held out for a probabilistic critic by
#: ``critic_split="auto"`` (chosen by measurement, see the docs' CrtCl page).
_AUTO_CRITIC_SPLIT = 0.2


def backbone_tap_dims(module, sample_shape=None):
    """Dimensions of every critic input of a backbone (see :data:`_ALL_TAPS`)."""
    names = TAP_NAMES + ("proba",)
    dims = dict(zip(names, tap_dims(module, names, sample_shape=sample_shape)))
    dims["proba_sorted"] = dims["proba"]
    return dims


def check_critic_taps(taps):
    """Validate a critic's tap names (a non-empty sequence of distinct names of
    :data:`_ALL_TAPS`) and return them as a tuple."""
    if isinstance(taps, str):
        raise ValueError(f"critic taps must be a sequence of tap names, got the string "
                         f"{taps!r}")
    taps = tuple(taps)
    if not taps:
        raise ValueError("the critic needs at least one tap")
    unknown = [t for t in taps if t not in _ALL_TAPS]
    if unknown:
        raise ValueError(f"unknown critic taps {unknown}; valid names are {_ALL_TAPS}")
    if len(set(taps)) != len(taps):
        raise ValueError(f"critic taps must not repeat, got {taps}")
    return taps


def _derived_tap(name, logits):
    """``"proba"`` or ``"proba_sorted"`` from the logits (differentiable)."""
    proba = torch.softmax(logits, dim=1)
    if name == "proba_sorted":
        return torch.sort(proba, dim=1, descending=True).values
    return proba


def critic_inputs(taps, names):
    """A critic's inputs from a backbone's taps, detached from its graph.

    Spatial taps are globally average-pooled to ``(n, C)``; ``"proba"`` is
    the softmax of the logits and ``"proba_sorted"`` the same sorted in
    decreasing order.

    Parameters
    ----------
    taps : mapping of str to torch.Tensor
        The output of :func:`~sklearn_crtcl.backbones.forward_taps`.
    names : sequence of str
        The inputs to compute (the critic's ``taps``).

    Returns
    -------
    dict of str to torch.Tensor
        One ``(n, d)`` tensor per name, without gradient.

    Examples
    --------
    >>> import torch
    >>> out = critic_inputs({"logits": torch.tensor([[0.0, 1.0]])}, ["proba_sorted"])
    >>> out["proba_sorted"]
    tensor([[0.7311, 0.2689]])
    """
    out = {}
    with torch.no_grad():
        for name in names:
            if name in ("proba", "proba_sorted"):
                out[name] = _derived_tap(name, taps["logits"])
            else:
                t = taps[name]
                out[name] = t.mean(dim=(2, 3)) if t.dim() == 4 else t.detach()
    return out



class Critic(MultiTapHead):
    """The CrtCl critic: a multi-tap head on named outputs of the classifier.

    Each input is globally average-pooled (when spatial), projected by a linear
    layer to ``hidden`` dimensions with a ReLU; the embeddings are concatenated
    and a last linear layer outputs one scalar per sample, the critic's score
    :math:`C_\\phi(F_\\theta(x))` (higher: the prediction looks correct):

    .. math::

        C_\\phi(F_\\theta(x)) = w^\\top \\big[\\operatorname{ReLU}(W_1
        \\operatorname{GAP}(t_1(x)) + b_1); \\dots; \\operatorname{ReLU}(W_k
        \\operatorname{GAP}(t_k(x)) + b_k)\\big] + b.

    With ``confidence_skip=True`` the critic learns a correction to the
    classifier's own confidence: a learned multiple :math:`a` (initially 1)
    of the logit of the maximum softmax probability
    :math:`\\hat p = \\max_k p_k` is added to the score,
    :math:`C_\\phi + a \\log\\frac{\\hat p}{1 - \\hat p}`, so that a probabilistic
    critic (whose score is the logit of P(correct)) starts from the
    classifier's confidence and needs to learn only what it misses. The
    skip reads the probabilities detached: CrtCl's generator loss reaches
    the classifier through the learned part only.

    Parameters
    ----------
    tap_dims : mapping of str to int
        Channels of every available tap of the backbone (``"input"``,
        ``"stage1"`` .. ``"stage4"``, ``"logits"``, ``"proba"``,
        ``"proba_sorted"``); :class:`CriticLossNet` passes them.
    taps : sequence of str, default=CRITIC_TAPS
        The taps the critic reads, in order. The paper uses the image, the
        four stage outputs and the output probabilities.
    hidden : int, default=128
        Width of each projection (128 in the paper).
    confidence_skip : bool, default=False
        Add :math:`a \\operatorname{logit}(\\max_k p_k)` to the score (needs
        ``"proba"`` or ``"proba_sorted"`` among the taps). Not in the paper.
    extra_inputs : mapping of str to int or None, default=None
        Inputs that are not taps of the backbone, by name and dimension,
        projected like the taps after them (in this order) and read from the
        same mapping in :meth:`forward`; e.g. the test-time view features of
        :class:`~sklearn_crtcl.CorrectnessCritic`. ``None`` (or empty): the
        taps only, the same module as without the parameter.

    Attributes
    ----------
    taps : tuple of str
        The taps read by :meth:`forward`.
    extra_inputs : tuple of str
        The names of the other inputs read by :meth:`forward`, after the taps.
    skip_scale : torch.nn.Parameter or None
        :math:`a`, with ``confidence_skip``.

    Examples
    --------
    >>> import torch
    >>> critic = Critic({"stage4": 16, "proba": 10}, taps=("stage4", "proba"), hidden=8)
    >>> critic({"stage4": torch.zeros(5, 16, 2, 2), "proba": torch.zeros(5, 10)}).shape
    torch.Size([5])
    """

    def __init__(self, tap_dims, taps=CRITIC_TAPS, hidden=128, confidence_skip=False,
                 extra_inputs=None):
        taps = check_critic_taps(taps)
        missing = [t for t in taps if t not in tap_dims]
        if missing:
            raise ValueError(f"tap_dims has no dimension for the taps {missing}")
        if confidence_skip and not {"proba", "proba_sorted"} & set(taps):
            raise ValueError(f"confidence_skip needs the taps 'proba' or 'proba_sorted', got "
                             f"{taps}")
        extra = dict(extra_inputs or {})
        clash = [k for k in extra if k in taps]
        if clash:
            raise ValueError(f"extra_inputs must not repeat tap names, got {clash}")
        super().__init__([tap_dims[t] for t in taps] + [int(d) for d in extra.values()],
                         hidden=hidden)
        self.taps = taps
        self.extra_inputs = tuple(extra)
        # no random numbers: the default critic is initialised as before
        self.skip_scale = torch.nn.Parameter(torch.ones(())) if confidence_skip else None

    def forward(self, taps):
        """Score a batch.

        Parameters
        ----------
        taps : mapping of str to torch.Tensor
            At least the tensors named in the attribute ``taps``, each
            ``(n, C, H, W)`` (pooled here) or ``(n, C)``.

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        score = super().forward([taps[name] for name in self.taps + self.extra_inputs])
        if self.skip_scale is None:
            return score
        # detached: in CrtCl's generator step only the learned correction reaches
        # the classifier (the skip alone would be an entropy-minimisation loss)
        proba = taps["proba"] if "proba" in self.taps else taps["proba_sorted"]
        top = proba.detach().amax(dim=1).clamp(1e-6, 1 - 1e-6)
        return score + self.skip_scale * (torch.log(top) - torch.log1p(-top))


class CriticLossNet(SemiSupervisedMixin, ResNetClassifier):
    """ResNet classifier trained with the Critic Loss (CrtCl).

    A :class:`~sklearn_crtcl.ResNetClassifier` with a critic network
    :math:`C_\\phi` (:class:`~sklearn_crtcl.nets.crtcl.Critic`) that reads
    the image, the four stage outputs and the output distribution of the
    classifier and scores how likely the prediction is correct (Rappazzo,
    Ferber and Gomes 2024, Algorithm 1). Each training step, on a labeled
    batch :math:`(x, y)`:

    1. one forward pass of the backbone gives the logits and the taps;
       the cross-entropy :math:`\\mathcal{L}_{CE}` trains the classifier
       (SGD, as in :class:`~sklearn_crtcl.ResNetClassifier`);
    2. the predictions are split into correct (:math:`C_R`) and incorrect
       (:math:`I`); on the taps detached from the classifier, the critic takes
       one ``critic_optimizer`` step (AdamW, lr 1e-3) on the Wasserstein
       critic loss (Eq. 4, in mean form,
       :func:`~sklearn_crtcl.losses.wasserstein_critic_loss`)

       .. math::

           \\mathcal{L}_{cc} = \\operatorname{mean}_{x \\in I} C_\\phi(F_\\theta(x))
               - \\operatorname{mean}_{x \\in C_R} C_\\phi(F_\\theta(x)),

       then its weights are clipped to ``[-clip_value, clip_value]``. A batch
       whose predictions are all correct (or all wrong) has no Wasserstein
       estimate: the critic step is skipped (no NaN, no one-sided update);
       ``critic_steps`` in the history counts the steps taken;
    3. during the first ``generator_stop_epoch`` epochs of each ``fit`` (the
       paper's :math:`E'`) and if ``gamma > 0``, the generator loss (Eq. 5,
       :func:`~sklearn_crtcl.losses.critic_generator_loss`)

       .. math::

           \\mathcal{L}_G = -\\gamma\\, \\operatorname{mean}_{x \\in B_u}
               C_\\phi(F_\\theta(x))

       on a batch :math:`B_u` of ``X_unlabeled`` (a fresh random batch per
       step), or on the labeled batch's images when ``fit`` got no
       ``X_unlabeled`` (the critic as a learned auxiliary loss). As in the
       paper, only the output distribution stays attached: the image and the
       stage outputs given to the critic are detached, so the gradient enters
       the classifier through its softmax output and from there flows
       through the whole network. The critic is not updated by
       :math:`\\mathcal{L}_G`.

    **Critic objectives** (``critic_loss``). ``"wasserstein"`` is the
    paper's critic above (the default: the published protocol is unchanged).
    ``"bce"`` and ``"tcp"`` make the critic probabilistic: its score
    :math:`s` is the logit of the probability that the prediction is right,
    :math:`\\hat c = \\sigma(s)`, trained with binary cross-entropy on
    "correct" or by regressing the true-class probability (ConfidNet,
    Corbiere et al. 2019), see
    :func:`~sklearn_crtcl.losses.correctness_critic_loss`; they need no
    weight clipping (``clip_value`` is not applied) and learn from one-sided
    batches too. Their generator loss maximises the log-probability of being
    right on the unlabeled batch,
    :math:`\\mathcal{L}_G = -\\gamma \\sum_{x \\in B_u} \\log\\sigma(C_\\phi(F_\\theta(x)))`
    (:func:`~sklearn_crtcl.losses.critic_generator_loss`).

    **What the critic learns from** (``critic_split``). Late in training
    nearly every training-set prediction is right, so a critic trained on the
    labeled batches sees few errors, and not the test set's kind. With
    ``critic_split`` a share of the labeled set (drawn once per ``fit`` from
    ``random_state``, or from torch's global generator when it is ``None``)
    is held out: the classifier never trains on it, and the critic takes its
    step on a batch of these images instead, classified in eval mode without
    augmentation, as test images are (one extra forward pass, without
    gradient, of ``batch_size * held / kept`` images per step). ``"auto"``
    holds out nothing for the Wasserstein critic (the paper's protocol) and
    20% for a probabilistic one (the docs' CrtCl page gives the
    measurements).

    The classifier takes **one** SGD step per labeled batch on the gradient
    of :math:`\\mathcal{L}_{CE} + \\mathcal{L}_G` instead of the paper's two
    sequential steps (line 10, then line 14 of Algorithm 1): the two agree to
    first order in the learning rate. Without ``X_unlabeled`` both terms come
    from the same forward pass and one backward pass. With ``X_unlabeled``
    the unlabeled batch has its own forward pass (batch normalisation uses
    its own statistics, as in the paper's separate step), started after the
    labeled graph has been freed, and its gradient is accumulated before the
    step. The critic is updated before :math:`\\mathcal{L}_G` is computed, as
    in Algorithm 1.

    Parameters
    ----------
    module : callable or torch.nn.Module, default=resnet18
        The backbone; it must expose its stage outputs through
        :func:`~sklearn_crtcl.backbones.forward_taps` (this package's
        :class:`~sklearn_crtcl.backbones.ResNet` or a torchvision ResNet).
    gamma : float, default=0.04
        Weight :math:`\\gamma` of the generator loss (0.04 for CIFAR-10/100,
        0.02 for SVHN in the paper). With ``gamma=0`` there is no generator
        step and the classifier trains exactly like a
        :class:`~sklearn_crtcl.ResNetClassifier` with the same
        ``random_state``; the critic still learns to score correctness.
    generator_stop_epoch : float, int or None, default=0.65
        :math:`E'`: the generator loss is used in the first
        ``generator_stop_epoch`` epochs of each ``fit``. A float in
        ``[0, 1]`` is a fraction of ``max_epochs`` (``0.65`` = 130 of 200
        epochs, as in the paper), an int an epoch count (``0``: never),
        ``None`` every epoch.
    clip_value : float or None, default=0.05
        Wasserstein critic only (``critic_loss="wasserstein"``; a
        probabilistic critic is bounded by its sigmoid and not clipped).
        The critic's weights are clipped to ``[-clip_value, clip_value]``
        after initialisation and after every critic step (WGAN weight
        clipping). The paper names weight clipping but gives no value. 0.05
        is chosen from measurements (the docs' fidelity page): with WGAN's
        0.01 the critic's gradient on its inputs is about 40 times smaller
        and the generator loss barely moves the classifier. ``None``
        disables clipping.
    loss_reduction : {"sum", "mean"}, default="sum"
        ``"sum"``: the critic loss (Eq. 4) and the generator loss (Eq. 5)
        sum over the batch, as the paper writes them; ``"mean"``: group and
        batch means (the generator's gradient is then ``batch_size`` times
        smaller).
    critic_loss : {"wasserstein", "bce", "tcp"}, default="wasserstein"
        The critic's objective: the paper's Wasserstein critic loss (Eq. 4),
        binary cross-entropy on "the prediction is correct", or the squared
        error to the true-class probability (ConfidNet). With ``"bce"`` and
        ``"tcp"``, :meth:`predict_correctness` returns probabilities.
    critic_split : "auto" or float in [0, 1), default="auto"
        Share of the labeled set held out from the classifier for the
        critic to learn from (see above); 0 trains the critic on the labeled
        batches, as the paper does. ``"auto"``: 0 for ``"wasserstein"``,
        0.2 for ``"bce"`` and ``"tcp"``.
    n_critic : int, default=1
        Critic steps per labeled batch (on the same detached features;
        one in Algorithm 1, five in WGAN).
    critic : callable or torch.nn.Module, default=Critic
        The critic. A callable is called as ``critic(tap_dims,
        **critic__params)`` with the channels of every tap of the backbone
        (a dict); a module is used as given. Its forward takes a dict of tap
        name to tensor (stage outputs already pooled to ``(n, C)``,
        ``"proba"`` the softmax output) and returns one score per sample; if
        it has a ``taps`` attribute, only those taps are computed.
    critic__taps : sequence of str, default=CRITIC_TAPS
        Taps read by the critic: ``"input"``, ``"stage1"`` .. ``"stage4"``,
        ``"logits"``, ``"proba"``.
    critic__hidden : int, default=128
        Width of the critic's projections (128 in the paper).
    critic__confidence_skip : "auto" or bool, default="auto"
        Whether the critic learns a correction to the classifier's own
        confidence (:class:`Critic`'s ``confidence_skip``). ``"auto"``: yes
        for a probabilistic critic of the default class that reads
        ``"proba"`` or ``"proba_sorted"``, no for the Wasserstein critic (the
        paper's) and for other critic classes (the argument is then not
        passed).
    critic_optimizer : type, default=torch.optim.AdamW
        Optimizer of the critic (AdamW in the paper).
    critic_optimizer__lr : float or None, default=1e-3
        Learning rate of the critic (1e-3 in the paper); ``None`` uses ``lr``.
    critic_lr_milestones : sequence of float or int or None, default=None
        Milestones of the critic's learning-rate schedule (decayed by
        ``lr_gamma``); ``None`` uses ``lr_milestones``.
    unlabeled_batch_size : int or None, default=None
        Size of the unlabeled batch of each generator step (at least 2);
        ``None`` uses ``batch_size``.
    **kwargs
        Any :class:`~sklearn_crtcl.ResNetClassifier` parameter (``lr``,
        ``max_epochs``, ``batch_size``, ``lr_milestones``, ``random_state``,
        ``module__width``, ``device``, ``precision``, ``channels_last``,
        ``compile``...) and any other ``critic__*`` or ``critic_optimizer__*``
        argument (e.g. ``critic_optimizer__weight_decay``; ``None`` leaves an
        argument out). The critic is the net's auxiliary module ``"critic"``
        (:class:`~sklearn_crtcl.nets.auxiliary.AuxiliaryModule`): it follows
        the net's ``precision`` and ``channels_last``, and its optimizer steps
        through the net's loss scaler with ``precision="fp16"``.

    Attributes
    ----------
    critic_ : torch.nn.Module
        The trained critic.
    critic_optimizer_ : torch.optim.Optimizer
        Its optimizer.
    critic_split_indices_ : ndarray of int
        Rows of the last ``fit``'s ``X`` held out for the critic
        (``critic_split``; empty without a split): the classifier did not
        train on them.
    fit_start_epoch_ : int
        Length of ``history_`` when the last ``fit`` began (epochs of a fit are
        counted from there for ``generator_stop_epoch`` and the schedules).
    module_, classes_, n_features_in_, input_shape_, history_ : see ResNetClassifier
        ``history_`` also holds, per batch and per epoch, ``critic_loss``
        (:math:`\\mathcal{L}_{cc}`, averaged over the batches that took a
        critic step; NaN for an epoch without one) and ``generator_loss``
        (:math:`\\mathcal{L}_G`, 0 for epochs without generator step), and
        per epoch ``critic_steps``. ``train_loss`` is the criterion's loss
        (cross-entropy by default). With validation data (``train_split``),
        each epoch also records ``critic_auroc`` (AUROC of the critic's
        score for "the prediction is correct" on the validation images),
        ``confidence_auroc`` (the same for the maximum softmax probability,
        the classifier's own confidence) and, for a probabilistic critic,
        ``critic_ece`` (the calibration error of P(correct),
        :func:`~sklearn_crtcl.metrics.correctness_calibration_error`).

    See Also
    --------
    sklearn_crtcl.losses.wasserstein_critic_loss : Eq. 4.
    sklearn_crtcl.losses.critic_generator_loss : Eq. 5.
    sklearn_crtcl.losses.correctness_critic_loss : The probabilistic objectives.
    sklearn_crtcl.CorrectnessCritic : A critic for an already fitted net.

    References
    ----------
    B. H. Rappazzo, A. Ferber and C. Gomes, "Critic Loss for Image
    Classification", arXiv:2409.15565, 2024.

    C. Corbiere, N. Thome, A. Bar-Hen, M. Cord and P. Perez, "Addressing
    Failure Prediction by Learning Model Confidence", NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crtcl.nets.crtcl import CriticLossNet
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X.reshape(-1, 1, 8, 8).astype("float32") / 16
    >>> net = CriticLossNet(module__width=4, critic__hidden=8, max_epochs=2,
    ...                     random_state=0, device="cpu")
    >>> net = net.fit(X[:200], y[:200], X_unlabeled=X[200:600])
    >>> net.predict_correctness(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        module=resnet18,
        *,
        gamma=0.04,
        generator_stop_epoch=0.65,
        clip_value=0.05,
        loss_reduction="sum",
        critic_loss="wasserstein",
        critic_split="auto",
        n_critic=1,
        critic=Critic,
        critic__taps=CRITIC_TAPS,
        critic__hidden=128,
        critic__confidence_skip="auto",
        critic_optimizer=torch.optim.AdamW,
        critic_optimizer__lr=1e-3,
        critic_lr_milestones=None,
        unlabeled_batch_size=None,
        **kwargs,
    ):
        super().__init__(
            module,
            critic__taps=critic__taps,
            critic__hidden=critic__hidden,
            critic__confidence_skip=critic__confidence_skip,
            critic_optimizer__lr=critic_optimizer__lr,
            **kwargs,
        )
        self.gamma = gamma
        self.generator_stop_epoch = generator_stop_epoch
        self.clip_value = clip_value
        self.loss_reduction = loss_reduction
        self.critic_loss = critic_loss
        self.critic_split = critic_split
        self.n_critic = n_critic
        self.critic = critic
        self.critic_optimizer = critic_optimizer
        self.critic_lr_milestones = critic_lr_milestones
        self.unlabeled_batch_size = unlabeled_batch_size

    #: The critic: built on the taps' channels (seed offset 2; 1 is the
    #: unlabeled-batch generator), its own optimizer and schedule, and the
    #: generator phase.
    auxiliary_modules = (
        AuxiliaryModule("critic", inputs="_tap_dims", seed_offset=2, optimizer=True,
                        milestones="critic_lr_milestones", phase="generator_stop_epoch",
                        switches="the generator loss", plain=("critic_loss", "critic_split")),
    )

    # ------------------------------------------------------------------ skorch set-up
    @property
    def _critic_milestones(self):
        # read by the critic's schedule callback of nets pickled before the
        # shared mechanism (MilestoneLR(milestones_param="_critic_milestones"))
        if self.critic_lr_milestones is None:
            return self.lr_milestones
        return self.critic_lr_milestones

    def _check_params(self):
        """Validate the parameters (see :meth:`ResNetClassifier._check_params`)."""
        super()._check_params()
        check_number(self.gamma, "gamma", min_val=0)
        check_number(self.clip_value, "clip_value", min_val=0, include_boundaries="neither",
                     allow_none=True)
        check_number(self.unlabeled_batch_size, "unlabeled_batch_size", integer=True,
                     min_val=2, allow_none=True)  # 2: batch normalisation
        check_number(self.n_critic, "n_critic", integer=True, min_val=1)
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' (the paper's Eq. 4 and 5) or "
                             f"'mean', got {self.loss_reduction!r}")
        if not isinstance(self.critic_loss, str) or self.critic_loss not in CRITIC_LOSSES:
            raise ValueError(f"critic_loss must be one of {CRITIC_LOSSES} ('wasserstein' is "
                             f"the paper's), got {self.critic_loss!r}")
        if not (isinstance(self.critic_split, str) and self.critic_split == "auto"):
            if isinstance(self.critic_split, str):
                raise ValueError(f"critic_split must be 'auto' or a number in [0, 1), got "
                                 f"{self.critic_split!r}")
            check_number(self.critic_split, "critic_split", min_val=0, max_val=1,
                         include_boundaries="left")
        self._check_critic_taps()

    def _check_critic_taps(self):
        """A generator loss needs a path into the classifier: the critic must
        read ``"proba"`` or ``"logits"``, the only taps left attached."""
        critic = getattr(self, "critic_", None) if self.initialized_ else self.critic
        if isinstance(critic, torch.nn.Module):
            taps = getattr(critic, "taps", _ALL_TAPS)
        else:
            taps = self.get_params_for("critic").get("taps", CRITIC_TAPS)
        if (isinstance(taps, str) or not hasattr(taps, "__iter__")
                or not set(taps) <= set(_ALL_TAPS)):
            return  # the critic's constructor names the problem
        if self.gamma > 0 and not {"proba", "proba_sorted", "logits"} & set(taps):
            raise ValueError(
                f"gamma={self.gamma!r} > 0 needs a critic that reads 'proba' or 'logits' "
                f"(or 'proba_sorted'; the generator loss reaches the classifier only "
                f"through them), but critic__taps is {tuple(taps)}; add 'proba' or set gamma=0")

    def get_params_for(self, prefix):
        """skorch's routed arguments, with ``critic__confidence_skip="auto"`` resolved.

        Parameters
        ----------
        prefix : str
            E.g. ``"critic"``.

        Returns
        -------
        dict
        """
        params = super().get_params_for(prefix)
        if prefix == "critic" and isinstance(params.get("confidence_skip"), str) \
                and params["confidence_skip"] == "auto":
            taps = params.get("taps", CRITIC_TAPS)
            reads_proba = (not isinstance(taps, str) and hasattr(taps, "__iter__")
                           and bool({"proba", "proba_sorted"} & set(taps)))
            if self._probabilistic and self.critic is Critic and reads_proba:
                params["confidence_skip"] = True
            else:
                del params["confidence_skip"]
        return params

    @property
    def _probabilistic(self):
        """Whether the critic's score is the logit of P(correct)."""
        return self.critic_loss != "wasserstein"

    def _critic_share(self):
        """``critic_split`` resolved: the held-out share of the labeled set."""
        if isinstance(self.critic_split, str):  # "auto"
            return _AUTO_CRITIC_SPLIT if self._probabilistic else 0.0
        return float(self.critic_split)

    def _tap_dims(self):
        return backbone_tap_dims(self.module_, getattr(self, "input_shape_", None))

    def initialize_module(self):
        """Build the backbone, then the critic on its taps.

        The critic is initialised inside a forked random state seeded from
        ``random_state`` (see
        :meth:`~sklearn_crtcl.ResNetClassifier.initialize_auxiliary_modules`):
        the backbone's initialisation and the batch order are those of a
        :class:`~sklearn_crtcl.ResNetClassifier` with the same
        ``random_state``. Its weights are clipped to ``clip_value``.

        Returns
        -------
        self : CriticLossNet
        """
        super().initialize_module()
        self._clip_critic()
        self._check_critic_taps()
        return self

    # ------------------------------------------------------------------ training
    def _generator_active(self):
        """Whether the current epoch has generator steps."""
        return self.gamma != 0 and self._in_phase("critic")

    def _critic_inputs(self, taps):
        """The critic's inputs from the backbone's taps, detached from the
        classifier's graph: spatial taps globally average-pooled, ``"proba"``
        the softmax of the logits."""
        return critic_inputs(taps, getattr(self.critic_, "taps", _ALL_TAPS))

    def _critic_scores(self, taps):
        """The critic's scores of a batch from the backbone's taps, as a numpy array
        (probabilities of being right for a probabilistic critic)."""
        scores = self.critic_(self._critic_inputs(taps)).reshape(-1).float()
        if self._probabilistic:
            scores = torch.sigmoid(scores)
        return scores.cpu().numpy()

    @torch.no_grad()
    def _clip_critic(self):
        clip = self.clip_value
        if clip is None or self._probabilistic:
            return
        for p in self.critic_.parameters():
            p.clamp_(-clip, clip)

    def _critic_step(self, inputs, correct, true_proba=None):
        """One critic update on detached inputs; ``None`` if the batch is one-sided
        and the critic a Wasserstein one (in a distributed job: the whole
        batch, see :func:`~sklearn_crtcl.distributed.gather_batch`).
        ``true_proba`` (the softmax probability of the true class) is the
        target of ``critic_loss="tcp"``."""
        correct = gather_batch(correct)
        if self.critic_loss == "wasserstein":
            n_correct = int(correct.sum())
            if n_correct == 0 or n_correct == correct.shape[0]:
                return None
        target = gather_batch(true_proba) if self.critic_loss == "tcp" else correct
        for _ in range(self.n_critic):
            self.critic_optimizer_.zero_grad()
            with self._autocast():
                scores = gather_batch(self.critic_(inputs).float())
            if self.critic_loss == "wasserstein":
                loss = wasserstein_critic_loss(scores, correct, reduction=self.loss_reduction)
            else:
                loss = correctness_critic_loss(scores, target, critic_loss=self.critic_loss,
                                               reduction=self.loss_reduction)
            self._backward(loss)
            self._step(self.critic_optimizer_)
            self._clip_critic()
        return loss.detach()

    def _generator_loss(self, inputs, logits):
        """:math:`\\mathcal{L}_G` (Eq. 5) with the critic frozen: ``inputs`` are
        the detached critic inputs, ``logits`` the attached logits of the same
        samples, whose softmax replaces the detached ``"proba"``; it is the
        only path from the loss into the classifier."""
        inputs = dict(inputs)
        for name in ("proba", "proba_sorted"):
            if name in inputs:
                inputs[name] = _derived_tap(name, logits)
        if "logits" in inputs:
            inputs["logits"] = logits
        params = list(self.critic_.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            with self._autocast():
                scores = self.critic_(inputs).float()
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
        return critic_generator_loss(gather_batch(scores), self.gamma,
                                     reduction=self.loss_reduction,
                                     critic_loss=self.critic_loss)

    # ------------------------------------------------------------------ the critic's data
    def _fit_encoded(self, X, y, classes, initialize, **kwargs):
        """Hold out ``critic_split`` of the labeled set for the critic, then train
        the classifier on the rest (see :meth:`ResNetClassifier._fit_encoded`)."""
        share = self._critic_share()
        n = X.shape[0]
        n_held = int(round(share * n))
        if share > 0 and not 1 <= n_held <= n - 1:
            if not isinstance(self.critic_split, str):
                raise ValueError(
                    f"critic_split={self.critic_split!r} of {n} labeled images holds out "
                    f"{n_held}: at least one image must be held out and one kept")
            n_held = 0  # "auto" on a tiny labeled set: the critic learns from its batches
        if n_held == 0:
            self.critic_split_indices_ = np.empty(0, dtype=np.intp)
            return super()._fit_encoded(X, y, classes, initialize, **kwargs)
        order = np.random.RandomState(self._draw_seed(offset=3) % 2 ** 32).permutation(n)
        held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])
        self.critic_split_indices_ = held
        self._X_critic = torch.from_numpy(np.ascontiguousarray(X[held]))
        self._y_critic = torch.from_numpy(np.ascontiguousarray(y[held]))
        self._critic_rows_per_step = n_held / (n - n_held)
        self._critic_generator = None
        try:
            return super()._fit_encoded(np.ascontiguousarray(X[kept]), y[kept], classes,
                                        initialize, **kwargs)
        finally:
            self._X_critic = self._y_critic = self._critic_generator = None

    def _held_out_batch(self):
        """A random batch of the held-out images and labels (``critic_split``),
        or ``None``: ``batch_size * held / kept`` rows (at least 2), drawn from
        a generator seeded by ``random_state`` (with ``None``, by a seed from
        torch's global generator)."""
        X_c = vars(self).get("_X_critic")
        if X_c is None:
            return None
        if self._critic_generator is None:
            self._critic_generator = torch.Generator().manual_seed(self._draw_seed(offset=3))
        n = X_c.shape[0]
        size = n if self.batch_size == -1 else int(np.ceil(self.batch_size
                                                           * self._critic_rows_per_step))
        idx = torch.randperm(n, generator=self._critic_generator)[:min(n, max(2, size))]
        x = self._to_memory_format(self._share(X_c[idx].to(self.device)))
        return x, self._share(self._y_critic[idx].to(self.device))

    def _critic_batch_inputs(self, inputs, logits, y):
        """What the critic learns from this step: the held-out batch classified in
        eval mode (``critic_split``), else the labeled batch's detached inputs.
        Returns ``(inputs, correct, true-class probability or None)``."""
        held = self._held_out_batch()
        if held is not None:
            x_c, y = held
            with self._eval_mode(), torch.no_grad(), self._autocast():
                taps_c = self._forward_taps(x_c)
                inputs, logits = self._critic_inputs(taps_c), taps_c["logits"]
        logits = logits.detach()
        correct = logits.argmax(dim=1) == y
        true_proba = None
        if self.critic_loss == "tcp":
            true_proba = torch.softmax(logits.float(), dim=1).gather(1, y.view(-1, 1)).view(-1)
        return inputs, correct, true_proba

    def train_step(self, batch, **fit_params):
        """One CrtCl step on a labeled batch (Algorithm 1, lines 6-14).

        One backbone forward on the labeled batch; a critic step on its
        detached taps; the gradient of :math:`\\mathcal{L}_{CE}` plus, in
        the generator phase, that of :math:`\\mathcal{L}_G` (on the labeled
        batch in the same backward, or on an unlabeled batch after a second
        forward, accumulated); one step of the classifier's optimizer.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Images and encoded labels.
        **fit_params : dict
            Unused.

        Returns
        -------
        dict
            ``{"loss": cross-entropy, "y_pred": logits of the labeled batch}``.
        """
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        x, y = self._training_batch(Xi), self._training_labels(yi)
        generator = self._generator_active()
        x_u = self._unlabeled_training_batch() if generator else None

        self.optimizer_.zero_grad()
        with self._autocast():
            taps = self._forward_taps(x)
            logits = taps["logits"]
            loss = self.get_loss(logits, y, X=Xi, training=True)
            inputs = self._critic_inputs(taps)
        if self.critic_loss == "wasserstein" and vars(self).get("_X_critic") is None:
            correct = logits.detach().argmax(dim=1) == y
            critic_loss = self._critic_step(inputs, correct)
        else:
            critic_loss = self._critic_step(*self._critic_batch_inputs(inputs, logits, y))

        g_loss = None
        if not generator:
            self._backward(loss)
        elif x_u is None:
            # the critic as a learned loss on the labeled batch: one backward of the sum
            g_loss = self._generator_loss(inputs, logits)
            self._backward(loss + g_loss)
        else:
            # free the labeled graph first, then accumulate the unlabeled gradient:
            # the same gradient as the sum, with one batch of activations in memory
            self._backward(loss)
            del taps, inputs
            with self._autocast():
                taps_u = self._forward_taps(x_u)
            g_loss = self._generator_loss(self._critic_inputs(taps_u), taps_u["logits"])
            self._backward(g_loss)
        self.notify("on_grad_computed",
                    named_parameters=TeeGenerator(self.module_.named_parameters()),
                    batch=batch, training=True)
        self._step(self.optimizer_)

        if critic_loss is not None:
            self.history.record_batch("critic_loss", critic_loss.item())
        if g_loss is not None:
            self.history.record_batch("generator_loss", g_loss.item())
        return {"loss": loss, "y_pred": logits}

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Record the epoch's ``critic_loss``, ``generator_loss`` and ``critic_steps``."""
        super().on_epoch_end(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                             **kwargs)
        batches = self.history[-1]["batches"]
        for key, empty in (("critic_loss", float("nan")), ("generator_loss", 0.0)):
            rows = [(b.get("train_batch_size", 1), b[key]) for b in batches if key in b]
            value = (float(np.average([v for _, v in rows], weights=[w for w, _ in rows]))
                     if rows else empty)
            self.history.record(key, value)
            if key == "critic_loss":
                self.history.record("critic_steps", len(rows))
        if dataset_valid is not None:
            for key, value in self._critic_diagnostics(dataset_valid).items():
                self.history.record(key, value)

    def _critic_diagnostics(self, dataset):
        """On ``dataset`` (eval mode, no augmentation): ``critic_auroc``, the AUROC
        of the critic's score for "the prediction is correct", ``confidence_auroc``,
        that of the maximum softmax probability (NaN both when all predictions are
        right or all wrong), and for a probabilistic critic ``critic_ece``, the
        calibration error of its P(correct)."""
        scores, confidence, correct = [], [], []
        with self._eval_mode(), torch.no_grad():
            for batch in self.get_iterator(dataset, training=False):
                Xi, yi = unpack_data(batch)
                taps = forward_taps(self.module_, to_device(Xi, self.device))
                scores.append(self._critic_scores(taps))
                confidence.append(torch.softmax(taps["logits"].float(), dim=1).amax(dim=1)
                                  .cpu().numpy())
                correct.append((taps["logits"].argmax(dim=1).cpu() == yi.cpu()))
        scores, correct = np.concatenate(scores), torch.cat(correct).numpy()
        out = {"critic_auroc": correctness_auroc(correct, scores),
               "confidence_auroc": correctness_auroc(correct, np.concatenate(confidence))}
        if self._probabilistic:
            out["critic_ece"] = correctness_calibration_error(correct, scores)
        return out

    # ------------------------------------------------------------------ inference
    def predict_correctness(self, X):
        """The critic's score of each image: higher means the prediction is more
        likely correct.

        One forward pass of the backbone and of the critic per batch, in eval
        mode. With the Wasserstein critic (``critic_loss="wasserstein"``) the
        scores only rank samples (they have no probability scale); with a
        probabilistic critic (``"bce"``, ``"tcp"``) they are the critic's
        probability that the prediction is right, :math:`\\sigma(C_\\phi)` in
        ``[0, 1]``. CrtCl queries the images with the *lowest* scores for
        labeling.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Images, possibly a memory map (read one batch at a time).

        Returns
        -------
        scores : ndarray of shape (n,)
            Wasserstein critic scores, or probabilities in ``[0, 1]``.
        """
        self.check_is_fitted()

        return self._inference_batches(
            X, lambda module, xb: self._critic_scores(forward_taps(module, xb)))
