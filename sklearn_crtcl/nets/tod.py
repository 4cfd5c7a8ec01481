"""``TODNet``: semi-supervised training with a mean teacher (TOD, Huang et al. 2021).

The classifier (student, weights :math:`w`) is trained on cross-entropy plus a
consistency loss between the student's outputs and a teacher's, on a labeled
batch :math:`x^L` and a random unlabeled batch :math:`x^U` (see
:class:`TODNet` for the two forms, the reference code's auxiliary head and the
paper's Eq. 7), where the teacher :math:`\\tilde w` is an exponential moving average of the student,
updated after every optimizer step :math:`t`:

.. math::

    \\tilde w \\leftarrow \\alpha_t \\tilde w + (1 - \\alpha_t) w,
    \\qquad \\alpha_t = \\min(1 - 1/(t + 1), \\alpha).
"""

import copy

import torch
from skorch.callbacks import PassthroughScoring
from skorch.dataset import unpack_data

from .._checks import check_number
from ..backbones import resnet18
from ..heads import tap_dims
from ..distributed import gather_batch
from ..losses import consistency_loss, ema_update, ema_warmup_decay
from ._unlabeled import SemiSupervisedMixin
from .auxiliary import AuxiliaryModule
from .base import ResNetClassifier

__all__ = ["TODNet"]


class TODNet(SemiSupervisedMixin, ResNetClassifier):
    """ResNet classifier trained with TOD's mean-teacher consistency loss.

    The semi-supervised training of "Semi-Supervised Active Learning with
    Temporal Output Discrepancy" (Huang et al., ICCV 2021). Besides the
    classifier (the *student*, ``module_``) the net keeps a *teacher*
    (``teacher_``): a copy of the student at initialisation, then an
    exponential moving average of the student's weights, updated after every
    optimizer step :math:`t` (counted from initialisation) as

    .. math::

        \\tilde w \\leftarrow \\alpha_t \\tilde w + (1 - \\alpha_t) w,
        \\qquad \\alpha_t = \\min\\Big(1 - \\frac{1}{t + 1}, \\alpha\\Big)

    (the warm-up of Mean Teacher: :math:`\\alpha_0 = 0`). The teacher is not
    trained by the optimizer; its batch-norm buffers are copied from the
    student at each update. With ``consistency_head="auxiliary"`` (default,
    as TOD's reference code) the student has a second, auxiliary linear head
    :math:`g` on the pooled stage-4 features beside its classifier :math:`f`,
    and each training step minimises

    .. math::

        L = \\frac{1}{B} \\sum_i \\operatorname{CE}(f(x_i; w), y_i)
            + \\lambda \\sum_{x \\in \\{x^L, x^U\\}}
              \\big[ \\operatorname{MSE}(g(x; w), f(x; \\tilde w))
                    + \\operatorname{MSE}(f(x; w), g(x; w)) \\big],

    with :math:`\\operatorname{MSE}(a, b) = \\frac{1}{nK} \\sum_{i=1}^n \\|a_i -
    b_i\\|_2^2` on logits (:func:`~sklearn_crtcl.losses.consistency_loss`):
    the auxiliary head follows the teacher's classifier and the two heads of
    the student follow each other (the logit-distance cost of Mean Teacher's
    code, from which TOD's code comes), so the classifier feels the teacher
    only through the auxiliary head. With ``consistency_head="main"`` (the
    form of the TOD paper's Eq. 7) the classifier itself follows the teacher:

    .. math::

        L = \\frac{1}{B} \\sum_i \\operatorname{CE}(f(x_i; w), y_i)
            + \\lambda \\big[ \\operatorname{MSE}(f(x^L; w), f(x^L; \\tilde w))
                    + \\operatorname{MSE}(f(x^U; w), f(x^U; \\tilde w)) \\big].

    :math:`x^L` is the (augmented) labeled batch and :math:`x^U` a batch drawn
    at random from ``X_unlabeled`` and augmented like it (without
    ``X_unlabeled``, only the labeled terms). As in the reference
    implementation the teacher runs in training mode (batch statistics)
    during training and sees the same augmented batch as the student.

    Parameters
    ----------
    module : callable or torch.nn.Module, default=resnet18
        The backbone (see :class:`~sklearn_crtcl.ResNetClassifier`).
    ema_decay : float, default=0.999
        EMA decay :math:`\\alpha` of the teacher (0.999 in TOD).
    unsupervised_weight : float, default=0.05
        Weight :math:`\\lambda` of the consistency loss (0.05 in TOD). With
        ``0`` the consistency terms are not computed and the student trains
        exactly like a :class:`~sklearn_crtcl.ResNetClassifier` with the same
        ``random_state`` (the teacher is still averaged).
    consistency_head : {"auxiliary", "main"}, default="auxiliary"
        Which student output follows the teacher: a second linear head
        (``aux_head_``) tied to the classifier by an MSE term, as TOD's
        reference code, or the classifier's logits themselves, as the paper's
        Eq. 7 (see above).
    unlabeled_batch_size : int or None, default=None
        Size of the unlabeled batches; ``None`` uses ``batch_size`` (as TOD).
    **kwargs
        Any :class:`~sklearn_crtcl.ResNetClassifier` parameter (``precision``,
        ``channels_last`` and ``compile`` apply to the teacher and the
        auxiliary head too: they are the net's auxiliary modules, see
        :class:`~sklearn_crtcl.nets.auxiliary.AuxiliaryModule`).

    Attributes
    ----------
    teacher_ : torch.nn.Module
        The moving-average model (same architecture as ``module_``; its
        parameters do not require gradients). It is saved and loaded with
        the student by ``save_params(f_params=...)`` / ``load_params``, with
        ``ema_step_``, and pickled with the net.
    aux_head_ : torch.nn.Linear
        The auxiliary head (``consistency_head="auxiliary"`` only), trained
        with the student by the same optimizer; not used for prediction.
    ema_step_ : int
        Optimizer steps since the teacher was initialised (the :math:`t` of
        the next update).
    module_, classes_, n_features_in_, history_ : see ResNetClassifier
        ``history_`` also holds ``consistency_loss`` per batch and per epoch
        (the unweighted sum of the consistency terms).

    References
    ----------
    S. Huang, T. Wang, H. Xiong, J. Huan and D. Dou, "Semi-Supervised Active
    Learning with Temporal Output Discrepancy", ICCV 2021.
    A. Tarvainen and H. Valpola, "Mean teachers are better role models",
    NeurIPS 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crtcl.nets.tod import TODNet
    >>> X, y = load_digits(return_X_y=True)
    >>> net = TODNet(input_shape=(1, 8, 8), module__width=4, max_epochs=2,
    ...              random_state=0, device="cpu")
    >>> net = net.fit(X[:100] / 16, y[:100], X_unlabeled=X[100:300] / 16)
    >>> net.predict_proba(X[:3] / 16).shape
    (3, 10)
    """

    def __init__(
        self,
        module=resnet18,
        *,
        ema_decay=0.999,
        unsupervised_weight=0.05,
        consistency_head="auxiliary",
        unlabeled_batch_size=None,
        **kwargs,
    ):
        super().__init__(module, **kwargs)
        self.ema_decay = ema_decay
        self.unsupervised_weight = unsupervised_weight
        self.consistency_head = consistency_head
        self.unlabeled_batch_size = unlabeled_batch_size

    #: The auxiliary head (trained with the student by ``optimizer_``; seed
    #: offset 3, 1 is the unlabeled-batch generator) and the teacher (frozen:
    #: an exponential moving average of the student, never an optimizer's).
    auxiliary_modules = (
        AuxiliaryModule("aux_head", factory="_build_aux_head", seed_offset=3,
                        when="_uses_auxiliary_head"),
        AuxiliaryModule("teacher", factory="_build_teacher", trainable=False,
                        extra_state=("ema_step_",)),
    )

    # ------------------------------------------------------------------ skorch set-up
    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        at = [name for name, _ in callbacks].index("print_log")
        callbacks.insert(at, ("consistency_loss",
                              PassthroughScoring(name="consistency_loss", on_train=True)))
        return callbacks

    def _check_params(self):
        """Validate the parameters (see :meth:`ResNetClassifier._check_params`)."""
        super()._check_params()
        check_number(self.ema_decay, "ema_decay", min_val=0, max_val=1)
        check_number(self.unsupervised_weight, "unsupervised_weight", min_val=0)
        if self.consistency_head not in ("auxiliary", "main"):
            raise ValueError(f"consistency_head must be 'auxiliary' (the TOD reference code) "
                             f"or 'main', got {self.consistency_head!r}")
        check_number(self.unlabeled_batch_size, "unlabeled_batch_size", integer=True,
                     min_val=2, allow_none=True)  # 2: batch normalisation

    def _uses_auxiliary_head(self):
        return self.consistency_head == "auxiliary"

    def _build_aux_head(self):
        """The auxiliary linear head on the pooled stage-4 features."""
        n_features, n_classes = tap_dims(self.module_, ("stage4", "logits"),
                                         sample_shape=getattr(self, "input_shape_", None))
        return torch.nn.Linear(n_features, n_classes)

    def _build_teacher(self):
        """The teacher at step 0: a copy of the student (consumes no random numbers)."""
        return copy.deepcopy(self.module_)

    def initialize_module(self):
        """Build the student, its auxiliary head (``consistency_head="auxiliary"``)
        and the teacher as a frozen copy of the student (EMA step 0).

        Returns
        -------
        self : TODNet
        """
        super().initialize_module()
        self.ema_step_ = 0
        return self

    # ------------------------------------------------------------------ training
    def train_step_single(self, batch, **fit_params):
        """Cross-entropy plus ``unsupervised_weight`` x the consistency terms.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Labeled images and encoded labels.
        **fit_params : dict
            Unused (the backbone's forward takes only images).

        Returns
        -------
        dict
            ``{"loss": total loss, "y_pred": student logits on the labeled batch}``.
        """
        self._set_training(True)  # student and teacher in training mode, as TOD
        Xi, yi = unpack_data(batch)
        x, y = self._training_batch(Xi), self._training_labels(yi)
        with self._autocast():
            logits, cons = self._consistency(x)
            loss = self.get_loss(logits, y, X=x, training=True)
            if cons is not None:
                x_u = self._unlabeled_training_batch()
                if x_u is not None:
                    cons = cons + self._consistency(x_u)[1]
                loss = loss + self.unsupervised_weight * cons
        if cons is not None:
            self.history.record_batch("consistency_loss", cons.item())
        self._backward(loss)
        return {"loss": loss, "y_pred": logits}

    def _consistency(self, x):
        """The student's main logits on ``x`` and the unweighted consistency term
        (``None`` when ``unsupervised_weight`` is 0)."""
        if not self.unsupervised_weight:
            return self.module_(x), None
        # the losses in float32 (a no-op in fp32; under autocast the logits are
        # bf16/fp16)
        # (in a distributed job, the terms are means over the whole batch)
        whole = gather_batch
        if self.consistency_head == "main":
            logits = self.module_(x)
            return logits, consistency_loss(whole(logits.float()),
                                            whole(self._teacher_logits(x).float()))
        taps = self._forward_taps(x)
        logits = taps["logits"]
        aux = whole(self.aux_head_(taps["stage4"].mean(dim=(2, 3))).float())
        # TOD's reference: the auxiliary head follows the teacher, the two heads
        # follow each other (neither side detached, hence plain mse_loss: the
        # consistency loss detaches its target)
        return logits, (consistency_loss(aux, whole(self._teacher_logits(x).float()))
                        + torch.nn.functional.mse_loss(whole(logits.float()), aux))

    def _teacher_logits(self, X):
        with torch.no_grad():
            return self.teacher_(X)

    def train_step(self, batch, **fit_params):
        """One optimizer step of the student, then one EMA update of the teacher.

        Parameters
        ----------
        batch : tuple of (torch.Tensor, torch.Tensor)
            Labeled images and encoded labels.
        **fit_params : dict
            Passed to :meth:`train_step_single`.

        Returns
        -------
        dict
            ``{"loss": total loss, "y_pred": logits}``.
        """
        step = super().train_step(batch, **fit_params)
        self.update_teacher()
        return step

    def update_teacher(self):
        """Move ``teacher_`` towards ``module_`` by one EMA step and count it.

        Uses the decay :func:`~sklearn_crtcl.losses.ema_warmup_decay`
        ``(ema_step_, ema_decay)`` and copies the student's buffers.

        Returns
        -------
        self : TODNet
        """
        decay = ema_warmup_decay(self.ema_step_, self.ema_decay)
        ema_update(self.teacher_, self.module_, decay)
        self.ema_step_ += 1
        return self
