"""The compared methods: one estimator paired with one query strategy each.

============  ==========================================  ===============================  =========
method        estimator                                    query strategy                   unlabeled
============  ==========================================  ===============================  =========
random        ResNetClassifier (cross-entropy)             random_sampling                  no
entropy       ResNetClassifier (cross-entropy)             entropy_sampling                 no
crtcl         CriticLossNet                                critic_sampling                  yes
ll4al         LossPredictionNet                            loss_prediction_sampling         no
lplgrad       LossPredictionNet                            gradient_norm_sampling           no
tod           TODNet                                       cod_sampling                     yes
badge         ResNetClassifier (cross-entropy)             badge_sampling                   no
coreset       ResNetClassifier (cross-entropy)             coreset_sampling                 no
============  ==========================================  ===============================  =========

"unlabeled" marks the semi-supervised estimators, whose ``fit`` receives the
remaining pool as ``X_unlabeled``.

The two ablations of the CrtCl paper are methods too (not run by default):

* *auxiliary loss only* (Fig. 4): ``crtcl_loss``, ``ll4al_loss`` and
  ``tod_loss`` train like ``crtcl``, ``ll4al`` (= ``lplgrad``) and ``tod`` but
  query at random;
* *selection only* (Fig. 5): ``crtcl_query``, ``ll4al_query``,
  ``lplgrad_query`` and ``tod_query`` train the auxiliary network of the
  method without back-propagating its loss into the classifier (``gamma=0``;
  ``epoch_loss=0``, the stage outputs detached before the loss head from the
  first epoch; ``unsupervised_weight=0``), so the classifier is trained with
  cross-entropy only, and query with the method's strategy.

The peers of issue-level comparisons (not run by default): ``badge``
(BADGE, Ash et al. 2020) and ``coreset`` (CoreSet, Sener and Savarese 2018),
both with cross-entropy training like ``random`` and ``entropy``.

The methods query the top-k batch of their scores, as the papers do (the
strategies' own default is ``selection="rank"``). Any method that queries by
score also runs with another batch selection of the strategies
(``selection=``, see :doc:`/strategies`): the name
``"<method>:<selection>"``, e.g. ``"crtcl:softmax"`` or
``"lplgrad:balanced"``, is the method with that selection
(:func:`method_spec`).

The extensions (not run by default) are this package's own variants of a
method: ``crtcl_bce`` trains a :class:`~sklearn_crtcl.CriticLossNet` with a
probabilistic critic (``critic_loss="bce"``: binary cross-entropy on "the
prediction is right", learned from a held-out 20% of the labeled set, see
:doc:`/crtcl`) and queries the lowest P(correct); ``crtcl_bce_query`` is the
same critic with ``gamma=0`` (cross-entropy training of the classifier).

Estimators and strategies are imported when first used.
"""

import functools
import importlib
from dataclasses import dataclass, field, replace

import numpy as np

from ._progress import EpochProgressBar

__all__ = ["METHODS", "ALL_METHODS", "ABLATIONS", "PEERS", "EXTENSIONS", "MethodSpec", "METHOD_SPECS",
           "method_spec", "make_estimator", "get_strategy"]


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
    params : dict, optional
        Estimator parameters that make the method (the ablations' settings).
    ablation : bool, default=False
        Whether the method belongs to an ablation (not run by default).
    peer : bool, default=False
        Whether the method is a peer strategy from the literature beyond the
        papers (BADGE, CoreSet; not run by default).
    query_params : dict, optional
        Keyword arguments of the query strategy (e.g. ``selection``).
    extension : bool, default=False
        Whether the method is one of this package's variants beyond the
        papers (the probabilistic critics; not run by default).
    """

    name: str
    estimator: str
    strategy: str
    semi_supervised: bool
    description: str
    params: dict = field(default_factory=dict)
    ablation: bool = False
    peer: bool = False
    query_params: dict = field(default_factory=dict)
    extension: bool = False


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
        # ablation 1 (CrtCl paper, Fig. 4): each method's loss, random queries
        MethodSpec("crtcl_loss", "sklearn_crtcl.nets.crtcl:CriticLossNet",
                   "sklearn_crtcl.query:random_sampling", True,
                   "ablation: CrtCl training, random queries", ablation=True),
        MethodSpec("ll4al_loss", "sklearn_crtcl.nets.lossnet:LossPredictionNet",
                   "sklearn_crtcl.query:random_sampling", False,
                   "ablation: LL4AL/LPLgrad training, random queries", ablation=True),
        MethodSpec("tod_loss", "sklearn_crtcl.nets.tod:TODNet",
                   "sklearn_crtcl.query:random_sampling", True,
                   "ablation: TOD training, random queries", ablation=True),
        # ablation 2 (Fig. 5): each method's queries, auxiliary loss not back-propagated
        MethodSpec("crtcl_query", "sklearn_crtcl.nets.crtcl:CriticLossNet",
                   "sklearn_crtcl.query:critic_sampling", False,
                   "ablation: critic queries, cross-entropy training (gamma=0)",
                   params={"gamma": 0.0}, ablation=True),
        MethodSpec("ll4al_query", "sklearn_crtcl.nets.lossnet:LossPredictionNet",
                   "sklearn_crtcl.query:loss_prediction_sampling", False,
                   "ablation: loss-prediction queries, cross-entropy training "
                   "(loss head on detached features)",
                   params={"epoch_loss": 0}, ablation=True),
        MethodSpec("lplgrad_query", "sklearn_crtcl.nets.lossnet:LossPredictionNet",
                   "sklearn_crtcl.query:gradient_norm_sampling", False,
                   "ablation: gradient-norm queries, cross-entropy training "
                   "(loss head on detached features)",
                   params={"epoch_loss": 0}, ablation=True),
        MethodSpec("tod_query", "sklearn_crtcl.nets.tod:TODNet",
                   "sklearn_crtcl.query:cod_sampling", False,
                   "ablation: COD queries, cross-entropy training (unsupervised_weight=0)",
                   params={"unsupervised_weight": 0.0}, ablation=True),
        # peers: the strongest batch-diversity baselines, cross-entropy training
        MethodSpec("badge", "sklearn_crtcl.nets.base:ResNetClassifier",
                   "sklearn_crtcl.query:badge_sampling", False,
                   "peer: BADGE (k-means++ on gradient embeddings), cross-entropy ResNet",
                   peer=True),
        MethodSpec("coreset", "sklearn_crtcl.nets.base:ResNetClassifier",
                   "sklearn_crtcl.query:coreset_sampling", False,
                   "peer: CoreSet (greedy k-center on embeddings), cross-entropy ResNet",
                   peer=True),
        # extensions: the probabilistic critic (critic_loss="bce", held-out share)
        MethodSpec("crtcl_bce", "sklearn_crtcl.nets.crtcl:CriticLossNet",
                   "sklearn_crtcl.query:critic_sampling", True,
                   "extension: CrtCl with a probabilistic (BCE) critic, lowest P(correct)",
                   params={"critic_loss": "bce"}, extension=True),
        MethodSpec("crtcl_bce_query", "sklearn_crtcl.nets.crtcl:CriticLossNet",
                   "sklearn_crtcl.query:critic_sampling", False,
                   "extension: probabilistic (BCE) critic queries, cross-entropy training "
                   "(gamma=0)",
                   params={"critic_loss": "bce", "gamma": 0.0}, extension=True),
    )
}

#: Names of the methods the runner runs by default, in order.
METHODS = tuple(name for name, spec in METHOD_SPECS.items()
                if not (spec.ablation or spec.peer or spec.extension))

#: The peer strategies (not run by default): BADGE and CoreSet.
PEERS = tuple(name for name, spec in METHOD_SPECS.items() if spec.peer)

#: This package's variants beyond the papers (not run by default).
EXTENSIONS = tuple(name for name, spec in METHOD_SPECS.items() if spec.extension)

# strategies that pick a batch by score and take ``selection=``; random_sampling,
# badge_sampling and coreset_sampling choose their batch their own way
_SCORED = ("entropy", "crtcl", "ll4al", "lplgrad", "tod", "crtcl_query", "ll4al_query",
           "lplgrad_query", "tod_query", "crtcl_bce", "crtcl_bce_query")

#: Every method the runner knows, ablations included.
ALL_METHODS = tuple(METHOD_SPECS)

#: The methods of the CrtCl paper's two ablations (Fig. 4 and Fig. 5), each with
#: its reference row: ``random`` (cross-entropy, random queries).
ABLATIONS = {
    "loss": ("random", "crtcl_loss", "ll4al_loss", "tod_loss"),
    "query": ("random", "crtcl_query", "ll4al_query", "lplgrad_query", "tod_query"),
}


def method_spec(name):
    """The :class:`MethodSpec` of a method name, selection variants included.

    Parameters
    ----------
    name : str
        One of :data:`ALL_METHODS`, or ``"<method>:<selection>"`` for a
        method that queries by score with another batch selection of the
        strategies (e.g. ``"crtcl:softmax"``).

    Returns
    -------
    MethodSpec

    Raises
    ------
    ValueError
        For an unknown method or selection, or a selection on a method that
        does not pick its batch by score (``random``, the peers, the
        loss-only ablations).
    """
    if not isinstance(name, str):
        raise ValueError(f"a method name must be a string, got {name!r}")
    base, sep, selection = name.partition(":")
    if base not in METHOD_SPECS:
        raise ValueError(f"unknown method {name!r}; valid methods: " + ", ".join(ALL_METHODS)
                         + " (and '<method>:<selection>' variants)")
    spec = METHOD_SPECS[base]
    if not sep:
        if base in _SCORED:
            # the papers' methods take the top-k batch, whatever the strategies' default
            return replace(spec, query_params={**spec.query_params, "selection": "topk"})
        return spec
    from ..query.selection import SELECTIONS
    if base not in _SCORED:
        raise ValueError(f"method {base!r} does not pick its batch by score, so it takes no "
                         f"selection ({name!r}); selection variants exist for: "
                         + ", ".join(_SCORED))
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r} in {name!r}; valid selections: "
                         + ", ".join(SELECTIONS))
    return replace(spec, name=name, description=f"{spec.description}; {selection} selection",
                   query_params={**spec.query_params, "selection": selection})


def _load(target):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def get_strategy(method):
    """The query strategy of a method.

    Parameters
    ----------
    method : str
        One of :data:`ALL_METHODS` (or a selection variant, see
        :func:`method_spec`).

    Returns
    -------
    callable
        ``strategy(classifier, X_pool, n_instances=1, random_state=None,
        subset_size=None, ...) -> indices``, with the method's
        ``query_params`` bound.
    """
    spec = method_spec(method)
    strategy = _load(spec.strategy)
    if not spec.query_params:
        return strategy
    return functools.partial(strategy, **spec.query_params)


def make_estimator(method, *, classes, width, max_epochs, batch_size, device, warm_start,
                   random_state, augment=None, progress=False, progress_desc="epochs"):
    """Build the (unfitted) estimator of a method.

    Parameters
    ----------
    method : str
        One of :data:`ALL_METHODS` (or a selection variant, see
        :func:`method_spec`).
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
    augment : None or str, default=None
        Augmentation of the training batches (see
        :class:`~sklearn_crtcl.ResNetClassifier`).
    progress : bool, default=False
        Attach an :class:`~sklearn_crtcl.experiments._progress.EpochProgressBar`.
    progress_desc : str, default="epochs"
        Its label.

    Returns
    -------
    estimator : ResNetClassifier subclass
    """
    spec = method_spec(method)
    cls = _load(spec.estimator)
    return cls(
        module__width=width,
        max_epochs=max_epochs,
        batch_size=batch_size,
        device=device,
        warm_start=warm_start,
        random_state=random_state,
        augment=augment,
        classes=np.asarray(classes),
        callbacks=[("epoch_progress", EpochProgressBar(enabled=progress, desc=progress_desc))],
        **spec.params,
    )
