"""The compared methods: one estimator paired with one query strategy each.

========  ==========================================  ===============================  =========
method    estimator                                    query strategy                   unlabeled
========  ==========================================  ===============================  =========
random    ResNetClassifier (cross-entropy)             random_sampling                  no
entropy   ResNetClassifier (cross-entropy)             entropy_sampling (this module)   no
crtcl     CriticLossNet                                critic_sampling                  yes
ll4al     LossPredictionNet                            loss_prediction_sampling         no
lplgrad   LossPredictionNet                            gradient_norm_sampling           no
tod       TODNet                                       cod_sampling                     yes
========  ==========================================  ===============================  =========

"unlabeled" marks the semi-supervised estimators, whose ``fit`` receives the
remaining pool as ``X_unlabeled``. Estimators and strategies are imported
when first used.
"""

import importlib
from dataclasses import dataclass

import numpy as np

from ._progress import EpochProgressBar

__all__ = ["METHODS", "MethodSpec", "METHOD_SPECS", "entropy_sampling", "classifier_entropy",
           "make_estimator", "get_strategy"]


@dataclass(frozen=True)
class MethodSpec:
    """How one method of the benchmark is built.

    Parameters
    ----------
    name : str
        Method name used in results and on the command line.
    estimator : str
        ``"module:Class"`` of the estimator.
    strategy : str
        ``"module:function"`` of the query strategy.
    semi_supervised : bool
        Whether ``fit`` takes the unlabeled pool as ``X_unlabeled``.
    description : str
        One line for the documentation and ``--help``.
    """

    name: str
    estimator: str
    strategy: str
    semi_supervised: bool
    description: str


METHOD_SPECS = {
    spec.name: spec
    for spec in (
        MethodSpec("random", "sklearn_crtcl.nets.base:ResNetClassifier",
                   "sklearn_crtcl.query:random_sampling", False,
                   "cross-entropy ResNet, random queries (the paper's baseline)"),
        MethodSpec("entropy", "sklearn_crtcl.nets.base:ResNetClassifier",
                   "sklearn_crtcl.experiments.methods:entropy_sampling", False,
                   "cross-entropy ResNet, maximum predictive entropy"),
        MethodSpec("crtcl", "sklearn_crtcl.nets.crtcl:CriticLossNet",
                   "sklearn_crtcl.query:critic_sampling", True,
                   "critic loss (CrtCl), lowest predicted correctness"),
        MethodSpec("ll4al", "sklearn_crtcl.nets.lossnet:LossPredictionNet",
                   "sklearn_crtcl.query:loss_prediction_sampling", False,
                   "learning loss (LL4AL), highest predicted loss"),
        MethodSpec("lplgrad", "sklearn_crtcl.nets.lossnet:LossPredictionNet",
                   "sklearn_crtcl.query:gradient_norm_sampling", False,
                   "loss prediction with gradient norms (LPLgrad)"),
        MethodSpec("tod", "sklearn_crtcl.nets.tod:TODNet",
                   "sklearn_crtcl.query:cod_sampling", True,
                   "temporal output discrepancy (TOD), cyclic output discrepancy"),
    )
}

#: Names of the methods the runner knows, in the order they are run.
METHODS = tuple(METHOD_SPECS)


def _load(target):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def get_strategy(method):
    """The query strategy of a method.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    callable
        ``strategy(classifier, X_pool, n_instances=1, random_state=None,
        subset_size=None, ...) -> indices``.
    """
    return _load(METHOD_SPECS[method].strategy)


def make_estimator(method, *, classes, width, max_epochs, batch_size, device, warm_start,
                   random_state, progress=False, progress_desc="epochs"):
    """Build the (unfitted) estimator of a method.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    classes : array-like
        All labels of the data set, so a small labeled set missing a class
        still gives a model with every output.
    width : int
        ``module__width`` of the ResNet-18 backbone (64 in the paper).
    max_epochs : int
        Epochs per ``fit``.
    batch_size : int
        Mini-batch size.
    device : str
        Torch device.
    warm_start : bool
        Continue from the previous cycle's weights instead of retraining.
    random_state : int
        Seed of the weight initialisation and batch order.
    progress : bool, default=False
        Attach an :class:`~sklearn_crtcl.experiments._progress.EpochProgressBar`.
    progress_desc : str, default="epochs"
        Its label.

    Returns
    -------
    estimator : ResNetClassifier subclass
    """
    cls = _load(METHOD_SPECS[method].estimator)
    return cls(
        module__width=width,
        max_epochs=max_epochs,
        batch_size=batch_size,
        device=device,
        warm_start=warm_start,
        random_state=random_state,
        classes=np.asarray(classes),
        callbacks=[("epoch_progress", EpochProgressBar(enabled=progress, desc=progress_desc))],
    )


# ---------------------------------------------------------------------------
# Maximum-entropy sampling (written in the style of sklearn_crtcl.query, so it can
# move there as is)
# ---------------------------------------------------------------------------


def _entropy(proba):
    proba = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(proba > 0, proba * np.log(proba), 0.0)
    return -terms.sum(axis=1)


def classifier_entropy(classifier, X, *, batch_size=None):
    r"""Predictive entropy of each sample.

    .. math::

        H(x) = -\sum_{k=1}^{K} p_k(x) \log p_k(x), \qquad 0 \log 0 = 0,

    where :math:`p(x)` is the classifier's ``predict_proba``.

    Parameters
    ----------
    classifier : estimator or modAL learner
        A fitted classifier with ``predict_proba``, or a modAL learner
        wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read ``batch_size`` rows at a time).
    batch_size : int, optional
        Rows per ``predict_proba`` call; defaults to the estimator's
        ``batch_size``.

    Returns
    -------
    entropy : ndarray of shape (n,)
        In nats, between 0 and :math:`\log K`.
    """
    from ..query._common import (check_batch_size, get_estimator, method_scores,
                                 require_method, validate_pool)

    est = get_estimator(classifier, "classifier_entropy")
    require_method(est, "predict_proba", "classifier_entropy", "a fitted classifier")
    batch_size = check_batch_size(batch_size, est)
    return method_scores(lambda rows: _entropy(est.predict_proba(rows)),
                         validate_pool(est, X), None, batch_size)


def entropy_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                     batch_size=None):
    r"""Query the samples with the highest predictive entropy.

    Maximum-entropy uncertainty sampling:

    .. math::

        S = \operatorname{arg\,max}_{S \subset U,\, |S| = n}
        \sum_{x \in S} H(x),

    with :math:`H` of :func:`classifier_entropy`. Unlike
    ``modAL.uncertainty.entropy_sampling`` (modAL 0.4.1), the pool is scored
    ``batch_size`` rows at a time, a random candidate subset can be scored
    instead of the whole pool, and only the indices are returned, as every
    strategy of :mod:`sklearn_crtcl.query`.

    Parameters
    ----------
    classifier : estimator or modAL learner
        A fitted classifier with ``predict_proba``, or a modAL
        ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool;
        ``None`` scores the whole pool.
    random_state : int, RandomState instance or None, default=None
        Seed of the candidate draw.
    batch_size : int, optional
        Rows per ``predict_proba`` call; defaults to the estimator's
        ``batch_size``.

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Indices into ``X_pool``, highest entropy first (ties: smaller index
        first).

    Raises
    ------
    TypeError
        If the estimator has no ``predict_proba``.
    ValueError
        For an empty or invalid pool, or ``n_instances`` larger than the
        number of candidates.
    """
    from ..query._common import (check_batch_size, get_estimator, method_scores,
                                 require_method, select)

    est = get_estimator(classifier, "entropy_sampling")
    require_method(est, "predict_proba", "entropy_sampling", "a fitted classifier")
    batch_size = check_batch_size(batch_size, est)

    def score(X4, candidates):
        return method_scores(lambda rows: _entropy(est.predict_proba(rows)), X4, candidates,
                             batch_size)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=random_state)
