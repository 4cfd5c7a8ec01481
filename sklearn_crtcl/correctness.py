"""``CorrectnessCritic``: a post-hoc critic for an already fitted net.

CrtCl's critic learns, during training, from the training batches, whose
predictions are almost all right late in training. A critic fitted *after*
training, on held-out labeled images the classifier never saw, learns from the
errors the classifier makes on new images. :class:`CorrectnessCritic` is a
scikit-learn meta-estimator in the shape of
:class:`~sklearn.calibration.CalibratedClassifierCV`: it wraps a fitted net
(usually in a :class:`~sklearn.frozen.FrozenEstimator`), reads its taps on the
held-out images and trains the package's critic head
(:class:`~sklearn_crtcl.nets.crtcl.Critic`) with a probabilistic correctness
objective (:func:`~sklearn_crtcl.losses.correctness_critic_loss`).
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._checks import check_number
from .augment import VIEWS
from .losses import correctness_critic_loss
from .nets.crtcl import Critic, backbone_tap_dims, check_critic_taps, critic_inputs

__all__ = ["CorrectnessCritic", "EnsembleCritic"]

_PROBA_TAPS = ("proba", "proba_sorted")

#: The default inputs of :class:`CorrectnessCritic`'s critic head (``critic_loss``
#: ``"bce"`` or ``"tcp"``).
DEFAULT_TAPS = ("stage4", "proba", "proba_sorted")

#: The default inputs of :class:`CorrectnessCritic`'s class probe
#: (``critic_loss="probe"``): the four stages, pooled, and the logits.
PROBE_TAPS = ("stage1", "stage2", "stage3", "stage4", "logits")

#: The inverse regularisation strengths among which the class probe chooses by
#: cross-validated log loss (``probe_C=None``).
PROBE_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

_OBJECTIVES = ("bce", "tcp", "probe")


def _unwrap(estimator):
    """The net behind a :class:`~sklearn.frozen.FrozenEstimator` (or the net itself)."""
    inner = estimator
    while type(inner).__name__ == "FrozenEstimator" and hasattr(inner, "estimator"):
        inner = inner.estimator
    return inner


def _check_fitted(net, who, why):
    """Raise a NotFittedError naming ``who`` (and ``why`` it is never refitted) unless
    ``net`` is fitted."""
    try:
        if callable(getattr(net, "check_is_fitted", None)):
            net.check_is_fitted()
        else:
            check_is_fitted(net)
    except NotFittedError:
        raise NotFittedError(f"{who} needs an already fitted estimator (it is never refitted: "
                             f"{why}); fit it, then pass FrozenEstimator(net)") from None


class _PosthocCritic(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """What the post-hoc critics share: the labeled set's checks, and ``predict``
    and ``predict_proba`` of the wrapped classifier (``_fitted`` names the
    attribute that ``fit`` sets)."""

    _fitted = None

    @staticmethod
    def _check_labeled(net, X, y):
        """``y`` as an array, and the classifier's classes; errors name what is wrong."""
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-d, got shape {y.shape}")
        n = getattr(X, "shape", (len(X),))[0]
        if len(y) != n:
            raise ValueError(f"X and y have different numbers of samples: {n} and {len(y)}")
        classes = np.asarray(net.classes_)
        unknown = np.setdiff1d(np.unique(y), classes)
        if unknown.size:
            raise ValueError(f"y has labels the classifier does not know: "
                             f"{unknown[:10].tolist()}")
        return y, classes

    def predict_proba(self, X):
        """The wrapped classifier's class probabilities.

        Parameters
        ----------
        X : array-like
            Images.

        Returns
        -------
        ndarray of shape (n, n_classes)
        """
        check_is_fitted(self, self._fitted)
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        """The wrapped classifier's predictions.

        Parameters
        ----------
        X : array-like
            Images.

        Returns
        -------
        ndarray of shape (n,)
        """
        check_is_fitted(self, self._fitted)
        return self.estimator_.predict(X)


def _view_features(logits, view_logits):
    """Features of the net's predictions on test-time views of a batch.

    ``logits``: ``(n, K)`` on the images; ``view_logits``: ``V`` tensors
    ``(n, K)``, one per view. Returns ``(n, 3V + 4)``: per view, the
    probability of the originally predicted class, the view's maximum
    probability and whether its predicted class is the original one; then the
    agreement rate, the mean and the standard deviation over the views of the
    predicted class's probability, and the maximum of the probabilities
    averaged over the image and its views (see :class:`CorrectnessCritic`).
    """
    proba = torch.softmax(logits.float(), dim=1)
    pred = proba.argmax(dim=1)
    pv = torch.stack([torch.softmax(v.float(), dim=1) for v in view_logits])  # (V, n, K)
    index = pred.view(1, -1, 1).expand(pv.shape[0], -1, 1)
    p_pred = pv.gather(2, index).squeeze(2)  # (V, n)
    p_max, v_pred = pv.max(dim=2)
    agree = (v_pred == pred).float()
    tta = (proba + pv.sum(dim=0)) / (pv.shape[0] + 1)
    return torch.cat([p_pred.T, p_max.T, agree.T,
                      torch.stack([agree.mean(dim=0), p_pred.mean(dim=0),
                                   p_pred.std(dim=0, unbiased=False), tta.amax(dim=1)], dim=1)],
                     dim=1)


class CorrectnessCritic(_PosthocCritic):
    """A probabilistic critic of a fitted net's predictions, trained post hoc.

    ``fit(X, y)`` runs the (frozen) net once on held-out labeled images, reads
    the critic's inputs from its taps (the image, the four stage outputs
    globally average-pooled, and the output distribution; see
    :func:`~sklearn_crtcl.backbones.forward_taps`), standardises each input
    dimension (but the probabilities) with the fitted images' mean and
    standard deviation, and trains
    a :class:`~sklearn_crtcl.nets.crtcl.Critic` head with AdamW on "is the
    net's prediction right" (``critic_loss="bce"``) or on the true-class
    probability (``"tcp"``, ConfidNet), or fits a class probe on them
    (``"probe"``, below). The net is not changed: any fitted
    :class:`~sklearn_crtcl.ResNetClassifier` (the four nets of the package,
    or one with a user backbone whose taps
    :func:`~sklearn_crtcl.backbones.forward_taps` reads) gets a critic
    without retraining. :meth:`predict_correctness` then returns the
    probability that the net's prediction is right, and
    :func:`~sklearn_crtcl.query.critic_sampling` queries by it.

    The class probe (``critic_loss="probe"``) learns from the held-out
    labels themselves rather than from "right or wrong": a multinomial
    logistic regression (scikit-learn's
    :class:`~sklearn.linear_model.LogisticRegression`, a linear probe of the
    frozen features, Alain and Bengio 2016) of the class on the standardised
    inputs :math:`z(x)` (by default the four stages, pooled, and the logits),
    its inverse regularisation :math:`C` chosen among :data:`PROBE_CS` by
    5-fold cross-validated log loss on the held-out images. The probability
    that the net's prediction :math:`\\hat y(x)` is right is the probe's
    probability of that class,

    .. math::

        \\hat P(\\text{correct} \\mid x) = \\operatorname{softmax}(W z(x) + b)_{\\hat y(x)},

    low where a second classifier, fitted on images the net never saw, puts
    its mass on another class. A binary objective sees only the held-out
    errors (a few hundred in 2,000 images); the probe learns from every
    label, and ranked the errors better than the critic head on held-out
    digits and Fashion-MNIST (the docs' CrtCl page). The probe is itself a
    classifier of the held-out images and can be more accurate than the net
    (it was on both data sets there): then the held-out labels are worth
    training on, too. It needs held-out images in number: fitted on 200
    Fashion-MNIST images (20 % of a labeled set of 1,000) it ranked the
    errors below the net's own confidence.

    With ``views``, the critic also reads the frozen net's predictions on
    deterministic test-time views of each image (a left-right flip, shifts by
    one or two pixels: the flip and the crop of the package's training
    augmentation, :mod:`sklearn_crtcl.augment`, at fixed offsets). Where the
    views disagree with the prediction, or give its class a lower
    probability, the prediction is more often wrong (test-time augmentation
    as an uncertainty estimate, Ayhan and Berens 2018; Liu et al. 2024 train
    a correctness-aware calibrator on transformed images). The net runs once
    per view on each batch (in eval mode, without gradients; no copy of ``X``
    is kept beyond a batch). The class probe reads each view's taps instead,
    beside the image's (its features are the taps of the image and of each
    view, side by side).

    ``predict``, ``predict_proba`` and ``classes_`` are those of the wrapped
    net, as with :class:`~sklearn.calibration.CalibratedClassifierCV` around
    a :class:`~sklearn.frozen.FrozenEstimator`.

    Parameters
    ----------
    estimator : fitted ResNetClassifier or FrozenEstimator of one
        The classifier to criticise; it must already be fitted (wrap it in
        :class:`~sklearn.frozen.FrozenEstimator` to say so explicitly). It is
        never refitted: the critic must learn from images the net has not
        trained on.
    critic_loss : {"bce", "tcp", "probe"}, default="bce"
        The critic's objective: the head's
        (:func:`~sklearn_crtcl.losses.correctness_critic_loss`), or the class
        probe (``"probe"``). ``hidden``, ``confidence_skip``, ``max_epochs``,
        ``lr`` and ``weight_decay`` apply to the head only, ``probe_C`` to
        the probe only.
    taps : sequence of str or None, default=None
        The net's outputs the critic reads (``"input"``, ``"stage1"`` ..
        ``"stage4"``, ``"logits"``, ``"proba"``, ``"proba_sorted"``; CrtCl's
        critic reads :data:`~sklearn_crtcl.nets.crtcl.CRITIC_TAPS`). ``None``:
        the objective's default, :data:`DEFAULT_TAPS` for the head (the last
        stage, the output distribution and its sorted version, which ranked
        errors better than CrtCl's taps on held-out digits and Fashion-MNIST,
        the docs' CrtCl page) and :data:`PROBE_TAPS` for the probe (the four
        stages and the logits).
    hidden : int, default=128
        Width of the critic's projections.
    confidence_skip : bool, default=True
        The critic learns a correction to the net's own confidence (see
        :class:`~sklearn_crtcl.nets.crtcl.Critic`): with little held-out data
        it stays close to the maximum softmax probability.
    views : sequence of str, default=()
        Test-time views whose predictions become one more critic input,
        among ``"flip"`` (the left-right flip), ``"shift"`` (the four
        one-pixel shifts: up, down, left, right, zero-filled) and
        ``"shift2"`` (the four two-pixel shifts); see
        :data:`sklearn_crtcl.augment.VIEWS`. ``()``: no views, the critic of
        the package before this parameter, bit for bit. With :math:`p` the
        net's probabilities on the image, :math:`\\hat y = \\arg\\max_k p_k`
        its prediction and :math:`p^{(v)}` its probabilities on view
        :math:`v = 1, \\dots, V`, the input ``"views"`` has :math:`3V + 4`
        dimensions, standardised like the taps: per view, the probability of
        the predicted class :math:`q_v = p^{(v)}_{\\hat y}`, the view's
        confidence :math:`\\max_k p^{(v)}_k` and its agreement
        :math:`a_v = [\\arg\\max_k p^{(v)}_k = \\hat y]`; then the agreement
        rate :math:`\\bar a = \\frac1V \\sum_v a_v`, the mean
        :math:`\\bar q = \\frac1V \\sum_v q_v` and spread
        :math:`\\sqrt{\\frac1V \\sum_v (q_v - \\bar q)^2}` of the predicted
        class's probability, and the confidence of the averaged prediction
        :math:`\\max_k \\frac{1}{V + 1}\\big(p_k + \\sum_v p^{(v)}_k\\big)`.
        Each view costs one more forward pass of the net in ``fit`` and
        :meth:`predict_correctness`. Measured (the docs' CrtCl page, 3
        seeds): on Fashion-MNIST (a net trained with flips) and digits the
        views ranked errors within 0.005 AUROC of the same critic without
        them, so they are off by default.
    max_epochs : int, default=50
        Passes over the held-out images.
    batch_size : int, default=128
        Mini-batch size of the critic's training, and of the net's forward
        passes.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-2
        AdamW weight decay.
    probe_C : float or None, default=None
        The class probe's inverse regularisation strength; ``None`` chooses
        it among :data:`PROBE_CS` by cross-validated log loss (stratified
        folds, unshuffled: deterministic; 5, or as many as the rarest class
        has images; ``C=1`` if it has one).
    random_state : int, RandomState instance or None, default=None
        Seed of the critic's initialisation and batch order (the probe is
        deterministic).

    Attributes
    ----------
    estimator_ : estimator
        The wrapped (fitted) estimator, as given.
    critic_ : Critic or LogisticRegression
        The trained critic head (on CPU), or the fitted class probe (its
        classes are the columns of the net's output).
    classes_ : ndarray
        The net's classes.
    tap_mean_, tap_scale_ : dict of str to ndarray
        Standardisation of each critic input.
    n_features_in_ : int
        Features of the net's inputs.
    loss_curve_ : list of float
        Mean critic loss per epoch (the head only).

    See Also
    --------
    sklearn_crtcl.CriticLossNet : The critic trained with the classifier (CrtCl).
    sklearn.calibration.CalibratedClassifierCV : The same shape, for calibration.

    References
    ----------
    C. Corbiere, N. Thome, A. Bar-Hen, M. Cord and P. Perez, "Addressing
    Failure Prediction by Learning Model Confidence", NeurIPS 2019.

    M. S. Ayhan and P. Berens, "Test-time Data Augmentation for Estimation of
    Heteroscedastic Aleatoric Uncertainty in Deep Neural Networks", MIDL 2018.

    D. Shanmugam, D. Blalock, G. Balakrishnan and J. Guttag, "Better
    Aggregation in Test-Time Augmentation", ICCV 2021.

    Y. Liu et al., "Optimizing Calibration by Gaining Aware of Prediction
    Correctness", 2024 (a calibrator trained on transformed images).

    G. Alain and Y. Bengio, "Understanding intermediate layers using linear
    classifier probes", arXiv:1610.01644, 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn_crtcl import CorrectnessCritic, ResNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X.reshape(-1, 1, 8, 8).astype("float32") / 16
    >>> net = ResNetClassifier(module__width=4, max_epochs=2, random_state=0,
    ...                        device="cpu").fit(X[:300], y[:300])
    >>> critic = CorrectnessCritic(FrozenEstimator(net), hidden=8, max_epochs=5,
    ...                            random_state=0).fit(X[300:600], y[300:600])
    >>> p = critic.predict_correctness(X[600:605])
    >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
    ((5,), True)
    """

    _fitted = "critic_"

    def __init__(self, estimator, *, critic_loss="bce", taps=None, hidden=128,
                 confidence_skip=True, views=(), max_epochs=50, batch_size=128, lr=1e-3,
                 weight_decay=1e-2, probe_C=None, random_state=None):
        self.estimator = estimator
        self.critic_loss = critic_loss
        self.taps = taps
        self.hidden = hidden
        self.confidence_skip = confidence_skip
        self.views = views
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.probe_C = probe_C
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if not isinstance(self.critic_loss, str) or self.critic_loss not in _OBJECTIVES:
            raise ValueError(f"critic_loss must be 'bce', 'tcp' or 'probe' (a post-hoc critic "
                             f"is probabilistic), got {self.critic_loss!r}")
        if self.probe_C is not None:
            check_number(self.probe_C, "probe_C", min_val=0, include_boundaries="neither")
        check_number(self.hidden, "hidden", integer=True, min_val=1)
        check_number(self.max_epochs, "max_epochs", integer=True, min_val=1)
        check_number(self.batch_size, "batch_size", integer=True, min_val=1)
        check_number(self.lr, "lr", min_val=0, include_boundaries="neither")
        check_number(self.weight_decay, "weight_decay", min_val=0)
        check_random_state(self.random_state)
        taps = self.taps
        if taps is not None and (isinstance(taps, str) or not hasattr(taps, "__iter__")):
            raise ValueError(f"taps must be a sequence of tap names, or None for the "
                             f"objective's default, got {taps!r}")
        self._view_fns()

    def _taps(self):
        """The tap names read: ``taps``, or the objective's default for ``None``."""
        if self.taps is not None:
            return tuple(self.taps)
        return PROBE_TAPS if self.critic_loss == "probe" else DEFAULT_TAPS

    def _view_fns(self):
        """The test-time view functions named by ``views`` (validated)."""
        views = self.views
        if isinstance(views, str) or not hasattr(views, "__iter__"):
            raise ValueError(f"views must be a sequence of view names among {sorted(VIEWS)} "
                             f"(e.g. ('flip', 'shift')), or () for none, got {views!r}")
        views = tuple(views)
        bad = [v for v in views if not isinstance(v, str) or v not in VIEWS]
        if bad:
            raise ValueError(f"views must name views among {sorted(VIEWS)}, got {bad!r}")
        if len(set(views)) != len(views):
            raise ValueError(f"views must not repeat, got {views!r}")
        return tuple(fn for v in views for fn in VIEWS[v])

    def _net(self):
        """The fitted net behind ``estimator``; errors name what is wrong."""
        net = _unwrap(self.estimator)
        if not all(hasattr(net, a) for a in ("_inference_batches", "initialize_module",
                                             "check_is_fitted")):
            raise TypeError(
                f"CorrectnessCritic reads the taps of one of this package's nets (a "
                f"ResNetClassifier or subclass, possibly in a FrozenEstimator), got "
                f"{type(net).__name__}")
        _check_fitted(net, "CorrectnessCritic", "the critic must learn from images the net "
                      "did not train on")
        return net

    # ------------------------------------------------------------------ features
    def _features(self, net, X):
        """The critic's inputs on ``X`` (CPU tensors, one per tap; with ``views``,
        ``"views"`` for the head, each view's taps ``"<tap>@<j>"`` for the probe)
        and the logits."""
        tap_names = self._taps()
        view_fns = self._view_fns()
        probe = self.critic_loss == "probe"
        names = tap_names
        if view_fns:
            names = names + (tuple(f"{k}@{j}" for j in range(len(view_fns)) for k in tap_names)
                             if probe else ("views",))

        def fn(module, xb):
            from .backbones import forward_taps
            taps = forward_taps(module, xb)
            inputs = critic_inputs(taps, tap_names)
            if view_fns:
                view_taps = [forward_taps(module, net._to_memory_format(f(xb)))
                             for f in view_fns]
                if probe:
                    for j, vt in enumerate(view_taps):
                        inputs.update({f"{k}@{j}": v for k, v in
                                       critic_inputs(vt, tap_names).items()})
                else:
                    inputs["views"] = _view_features(taps["logits"],
                                                     [vt["logits"] for vt in view_taps])
            return tuple(inputs[k].float().cpu().numpy() for k in names) + (
                taps["logits"].float().cpu().numpy(),)

        *feats, logits = net._inference_batches(X, fn, batch_size=self.batch_size)
        return ({k: torch.from_numpy(f) for k, f in zip(names, feats)},
                torch.from_numpy(logits))

    def _standardized(self, feats):
        # the probabilities stay as they are (in [0, 1]; the confidence skip reads them)
        return {k: v if k.split("@")[0] in _PROBA_TAPS else
                (v - torch.from_numpy(self.tap_mean_[k])) / torch.from_numpy(self.tap_scale_[k])
                for k, v in feats.items()}

    def _probe_inputs(self, feats):
        """The class probe's design matrix: the standardised inputs side by side."""
        return torch.cat(list(self._standardized(feats).values()), dim=1).double().numpy()

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y):
        """Train the critic on held-out labeled images.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Labeled images the net did *not* train on.
        y : array-like of shape (n,)
            Their labels (among the net's ``classes_``).

        Returns
        -------
        self : CorrectnessCritic
        """
        self._check_params()
        net = self._net()
        y, classes = self._check_labeled(net, X, y)
        probe = self.critic_loss == "probe"
        index = {label: i for i, label in enumerate(classes.tolist())}
        y_idx = torch.tensor([index[label] for label in y.tolist()], dtype=torch.long)
        if probe and len(np.unique(y_idx.numpy())) < 2:
            raise ValueError("critic_loss='probe' fits a classifier of the held-out labels: "
                             "y needs at least two classes")
        # the critic's taps and head, or the probe's taps (validated before the forward passes)
        dims = backbone_tap_dims(net.module_, getattr(net, "input_shape_", None))
        if probe:
            check_critic_taps(self._taps())
        else:
            seed = int(check_random_state(self.random_state).randint(2 ** 31 - 1))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                n_views = len(self._view_fns())
                critic = Critic(dims, taps=self._taps(), hidden=self.hidden,
                                confidence_skip=self.confidence_skip,
                                extra_inputs={"views": 3 * n_views + 4} if n_views else None)
        feats, logits = self._features(net, X)
        self.tap_mean_ = {k: v.mean(dim=0).numpy() for k, v in feats.items()}
        self.tap_scale_ = {k: np.where(s > 1e-6, s, 1.0).astype(np.float32)
                           for k, s in ((k, v.std(dim=0).numpy()) for k, v in feats.items())}
        self.estimator_ = self.estimator
        self.classes_ = classes
        self.n_features_in_ = getattr(net, "n_features_in_", None)
        if probe:
            self.critic_ = self._fit_probe(self._probe_inputs(feats), y_idx.numpy())
            return self
        correct = logits.argmax(dim=1) == y_idx
        target = correct
        if self.critic_loss == "tcp":
            target = torch.softmax(logits, dim=1).gather(1, y_idx.view(-1, 1)).view(-1)
        inputs = self._standardized(feats)
        optimizer = torch.optim.AdamW(critic.parameters(), lr=self.lr,
                                      weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        n = len(y)
        self.loss_curve_ = []
        critic.train()
        for _ in range(self.max_epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                optimizer.zero_grad()
                scores = critic({k: v[idx] for k, v in inputs.items()})
                loss = correctness_critic_loss(scores, target[idx], critic_loss=self.critic_loss,
                                               reduction="mean")
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            self.loss_curve_.append(total / n)
        critic.eval()
        self.critic_ = critic
        return self

    def _fit_probe(self, Z, y_idx):
        """The class probe: a multinomial logistic regression of ``y_idx`` on ``Z``,
        its ``C`` chosen by cross-validated log loss unless ``probe_C`` is given."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        probe = LogisticRegression(C=1.0 if self.probe_C is None else float(self.probe_C),
                                   max_iter=5000)
        # 5 folds (stratified, unshuffled: deterministic), fewer if a class is rarer;
        # none possible with a class of one image (then C=1)
        folds = int(min(5, np.bincount(y_idx)[np.unique(y_idx)].min()))
        if self.probe_C is not None or folds < 2:
            return probe.fit(Z, y_idx)
        search = GridSearchCV(probe, {"C": list(PROBE_CS)}, scoring="neg_log_loss",
                              cv=StratifiedKFold(folds)).fit(Z, y_idx)
        return search.best_estimator_

    def predict_correctness(self, X):
        """Probability that the net's prediction of each image is right.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Images.

        Returns
        -------
        p_correct : ndarray of shape (n,)
            :math:`\\sigma(C_\\phi(F_\\theta(x)))` for the head, the probe's
            probability of the net's predicted class for ``"probe"`` (0 for a
            class the held-out labels did not have); in ``[0, 1]``, higher:
            more likely right.
        """
        check_is_fitted(self, "critic_")
        feats, logits = self._features(self._net(), X)
        if self.critic_loss == "probe":
            # the probe's probability of the net's predicted class (0 for a class the
            # held-out labels did not have)
            proba = np.zeros(tuple(logits.shape), dtype=np.float64)
            proba[:, self.critic_.classes_] = self.critic_.predict_proba(
                self._probe_inputs(feats))
            return proba[np.arange(len(proba)), logits.argmax(dim=1).numpy()]
        with torch.no_grad():
            scores = self.critic_(self._standardized(feats))
        return torch.sigmoid(scores).numpy().astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags



#: The values of :class:`EnsembleCritic`'s ``calibration``.
_CALIBRATIONS = ("temperature", None)


class EnsembleCritic(_PosthocCritic):
    """A critic of a fitted classifier from copies of it trained on its own labels.

    Needs no labels beyond the labeled set: ``fit(X, y)`` takes the images
    the classifier was trained on and trains ``n_copies`` copies of the
    classifier (:func:`~sklearn.base.clone`: the same parameters, each with
    its own seed drawn from ``random_state``). With ``cv=None`` (the
    default) every copy trains on the whole labeled set: a deep ensemble
    (Lakshminarayanan et al., NeurIPS 2017) beside the classifier. With an
    int ``cv`` the copies are cross-fitted: the labeled set is split into
    ``cv`` stratified folds (``n_copies / cv`` times, each time shuffled
    anew: scikit-learn's
    :class:`~sklearn.model_selection.RepeatedStratifiedKFold`), each copy
    trains on all folds but one, and with ``calibration="temperature"`` its
    probabilities are temperature-scaled on the fold it did not see
    (scikit-learn's ``CalibratedClassifierCV(FrozenEstimator(copy),
    method="temperature")``, as ``CalibratedClassifierCV(cv=...)`` does with
    ``ensemble=True``). The probability that the classifier's prediction
    :math:`\\hat y(x)` is right is the copies' mean probability of that
    class,

    .. math::

        \\hat P(\\text{correct} \\mid x) = \\frac{1}{K} \\sum_{k=1}^{K}
        \\tilde p_k\\big(\\hat y(x) \\mid x\\big), \\qquad K = \\texttt{n\\_copies},

    low where models trained from the same labels, from other seeds, put
    their mass elsewhere. Its mean over unlabeled images is the copies'
    expected agreement with the classifier, which estimates its accuracy
    (the disagreement of two training runs estimates the test error, Jiang
    et al., ICLR 2022): :func:`~sklearn_crtcl.estimation.estimate_accuracy`
    with ``method="critic"`` computes it. With few labels the copies differ
    much, and their disagreement ranks the classifier's errors better than
    its own confidence (measured on digits and Fashion-MNIST: the docs'
    CrtCl page). Cross-fitted copies see less data than the classifier, so
    they are weaker and agree with it less: their mean underestimates its
    accuracy (the docs' estimation page).

    It costs ``n_copies`` more fits and ``n_copies`` more forward passes in
    :meth:`predict_correctness`; more copies rank better (less of the
    copies' noise in the mean). The classifier itself is never refitted.
    Unlike :class:`CorrectnessCritic`, it reads only ``predict_proba`` and
    ``classes_``: any scikit-learn classifier can be criticised, but one
    trained deterministically (a logistic regression) gives copies that do
    not differ.

    ``predict``, ``predict_proba`` and ``classes_`` are those of the wrapped
    classifier.

    Parameters
    ----------
    estimator : fitted classifier or FrozenEstimator of one
        The classifier to criticise (fitted on ``X, y`` of :meth:`fit`,
        usually). Its copies are trained with its parameters; a
        ``random_state`` parameter gets a seed per copy, and an unset
        ``classes`` parameter (the package's nets, skorch's classifiers) the
        classifier's classes, so that every copy has all its columns.
    n_copies : int, default=5
        Number of copies; with an int ``cv``, a multiple of it.
    cv : int or None, default=None
        ``None``: every copy trains on the whole labeled set. An int: the
        number of stratified folds of the cross-fitted copies; at least 2,
        and at most the number of images of the rarest class of ``y``.
    calibration : {None, "temperature"}, default=None
        Use the copies' probabilities as they are, or temperature-scale each
        cross-fitted copy on its held-out fold (needs an int ``cv``).
    random_state : int, RandomState instance or None, default=None
        Seed of the copies' seeds and of the folds.

    Attributes
    ----------
    estimator_ : estimator
        The wrapped (fitted) classifier, as given.
    estimators_ : list of estimators
        The ``n_copies`` fitted copies (each in a ``CalibratedClassifierCV``
        with ``calibration="temperature"``).
    classes_ : ndarray
        The classifier's classes.
    n_features_in_ : int or None
        Features of the classifier's inputs.

    See Also
    --------
    CorrectnessCritic : A critic trained on held-out labeled images.
    sklearn.calibration.CalibratedClassifierCV : Cross-fitted calibration.

    References
    ----------
    B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and Scalable
    Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017.

    Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing
    Generalization of SGD via Disagreement", ICLR 2022.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sklearn_crtcl import EnsembleCritic
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> clf = MLPClassifier((16,), max_iter=1000, random_state=0).fit(X[:300], y[:300])
    >>> critic = EnsembleCritic(FrozenEstimator(clf), n_copies=3, random_state=0).fit(
    ...     X[:300], y[:300])
    >>> p = critic.predict_correctness(X[300:305])
    >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
    ((5,), True)
    """

    _fitted = "estimators_"

    def __init__(self, estimator, *, n_copies=5, cv=None, calibration=None, random_state=None):
        self.estimator = estimator
        self.n_copies = n_copies
        self.cv = cv
        self.calibration = calibration
        self.random_state = random_state

    def _net(self):
        net = _unwrap(self.estimator)
        if not (hasattr(net, "predict_proba") and hasattr(net, "get_params")):
            raise TypeError(f"EnsembleCritic criticises a scikit-learn classifier with "
                            f"predict_proba, got {type(net).__name__}")
        _check_fitted(net, "EnsembleCritic", "its copies are trained beside it")
        return net

    def _check_params(self):
        check_number(self.n_copies, "n_copies", integer=True, min_val=1)
        if self.cv is not None:
            check_number(self.cv, "cv", integer=True, min_val=2)
            if self.n_copies % self.cv:
                raise ValueError(f"n_copies must be a multiple of cv (each draw of the folds "
                                 f"gives cv copies), got n_copies={self.n_copies}, "
                                 f"cv={self.cv}")
        if self.calibration is not None and (not isinstance(self.calibration, str)
                                             or self.calibration not in _CALIBRATIONS):
            raise ValueError(f"calibration must be None or 'temperature', got "
                             f"{self.calibration!r}")
        if self.calibration == "temperature" and self.cv is None:
            raise ValueError("calibration='temperature' fits each copy's temperature on the "
                             "fold it did not train on: it needs an int cv (cv=None trains "
                             "every copy on all the labels)")
        return check_random_state(self.random_state)

    def fit(self, X, y):
        """Train (and calibrate) the ``n_copies`` copies on ``X, y``.

        Parameters
        ----------
        X : array-like of shape (n, ...)
            The labeled images (usually those the classifier was trained on).
        y : array-like of shape (n,)
            Their labels (among the classifier's ``classes_``).

        Returns
        -------
        self : EnsembleCritic

        Raises
        ------
        ValueError
            For a bad ``n_copies``, ``cv`` or ``calibration``, labels the
            classifier does not know, or (with an int ``cv``) a class with
            fewer than ``cv`` images; before any fit.
        """
        from sklearn.base import clone
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator
        from sklearn.model_selection import RepeatedStratifiedKFold
        from sklearn.utils import _safe_indexing

        rng = self._check_params()
        net = self._net()
        y, classes = self._check_labeled(net, X, y)
        n = len(y)
        labels, counts = np.unique(y, return_counts=True)
        if self.cv is not None and counts.min() < self.cv:
            raise ValueError(
                f"EnsembleCritic(cv={self.cv}) needs at least {self.cv} images of each class "
                f"in y; class {labels[counts.argmin()]!r} has {counts.min()} (lower cv, or "
                f"cv=None)")
        seeds = rng.randint(2 ** 31 - 1, size=self.n_copies + 1)
        if self.cv is None:
            splits = [(np.arange(n), None)] * self.n_copies
        else:
            splits = RepeatedStratifiedKFold(
                n_splits=self.cv, n_repeats=self.n_copies // self.cv,
                random_state=int(seeds[0])).split(np.zeros((n, 1)), y)
        params = net.get_params(deep=False)
        estimators = []
        for k, (train, held) in enumerate(splits):
            copy = clone(net)
            if "random_state" in params:
                copy.set_params(random_state=int(seeds[k + 1]))
            if "classes" in params and params["classes"] is None:
                copy.set_params(classes=classes)
            copy.fit(X if held is None else _safe_indexing(X, train),
                     y if held is None else y[train])
            if self.calibration == "temperature":
                # one split, the whole held-out fold (the frozen copy needs no folds; with
                # at least cv images per class, every fold has every class)
                rows = np.arange(len(held))
                copy = CalibratedClassifierCV(FrozenEstimator(copy), method="temperature",
                                              cv=[(rows, rows)]).fit(_safe_indexing(X, held),
                                                                     y[held])
            estimators.append(copy)
        self.estimator_ = self.estimator
        self.estimators_ = estimators
        self.classes_ = classes
        self.n_features_in_ = getattr(net, "n_features_in_", None)
        return self

    def predict_correctness(self, X):
        """Probability that the classifier's prediction of each image is right.

        Parameters
        ----------
        X : array-like of shape (n, ...)
            Images.

        Returns
        -------
        p_correct : ndarray of shape (n,)
            The copies' mean (calibrated) probability of the classifier's
            predicted class (a copy without that class gives it 0); in
            ``[0, 1]``, higher: more likely right.
        """
        from .estimation import _label_columns

        check_is_fitted(self, "estimators_")
        net = self._net()
        predicted = np.asarray(net.predict_proba(X)).argmax(axis=1)
        rows = np.arange(len(predicted))
        total = np.zeros(len(predicted), dtype=np.float64)
        for est in self.estimators_:
            # the copy's probability of the predicted class, by label (a copy's
            # columns are its own classes_, in its own order)
            _, cols = _label_columns(net, len(self.classes_), est.classes_)
            proba = np.zeros((len(predicted), len(self.classes_)), dtype=np.float64)
            proba[:, cols] = est.predict_proba(X)
            total += proba[rows, predicted]
        return total / len(self.estimators_)

