"""The compared methods: one estimator paired with one query strategy each.

========  ==========================================  ===============================  =========
method    estimator                                    query strategy                   unlabeled
========  ==========================================  ===============================  =========
random    ResNetClassifier (cross-entropy)             random_sampling                  no
entropy   ResNetClassifier (cross-entropy)             entropy_sampling                  no
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

__all__ = ["METHODS", "MethodSpec", "METHOD_SPECS",
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
                   "sklearn_crtcl.query.entropy:entropy_sampling", False,
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
