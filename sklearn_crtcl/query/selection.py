r"""Batch selection: how a strategy takes ``n_instances`` of its scored candidates.

Every strategy of :mod:`sklearn_crtcl.query` that ranks the pool by a score
(all but BADGE and Core-Set) takes the same options, ``selection``, ``beta``
and ``cluster_pool``, documented once (:data:`SELECTION_PARAMS_DOC`, inserted
into each strategy's docstring by :func:`selection_doc`) and applied by one
function, :func:`choose`, after the candidates are scored:

* ``"topk"``: the ``n_instances`` best scores (the papers' selection; the
  default of :func:`~sklearn_crtcl.query.random_sampling`);
* ``"power"``, ``"softmax"``, ``"rank"`` (``"rank"``, :data:`DEFAULT_SELECTION`,
  is the default of the scoring strategies): stochastic batch acquisition
  (Kirsch et al., TMLR 2023), a draw without replacement with probabilities
  :math:`\propto s^\beta`, :math:`e^{\beta s}`,
  :math:`\operatorname{rank}^{-\beta}`, by the Gumbel-top-k trick;
* ``"balanced"``: round-robin over the predicted classes of the candidates;
* ``"cluster"``: the best candidate of each k-means cluster of the
  embeddings of the best candidates.

The definitions, with their equations, are in :doc:`/strategies`
(:ref:`batch-selection`).
"""

import inspect
import math
import numbers
import textwrap
import warnings

import numpy as np

from ._common import _check_positive_int, require_method, top_k

__all__ = ["SELECTIONS", "DEFAULT_SELECTION", "SELECTION_PARAMS_DOC", "selection_doc",
           "check_selection", "choose"]

#: Values of the ``selection`` option of every scoring strategy, ``"topk"``
#: (the papers' selection) first.
SELECTIONS = ("topk", "power", "softmax", "rank", "balanced", "cluster")
_STOCHASTIC = ("power", "softmax", "rank")

#: The default ``selection`` of every scoring strategy: ``"rank"``, a draw with
#: probabilities :math:`\propto \operatorname{rank}^{-\beta}`, which depends on
#: the order of the scores only (the same batch for :math:`s` and
#: :math:`a s + b`, :math:`a > 0`, or any increasing function of :math:`s`),
#: so it prefers the best candidates as much when their scores are nearly equal
#: (``"power"`` is then close to uniform) as when they are spread out.
DEFAULT_SELECTION = "rank"

#: The ``selection``, ``beta`` and ``cluster_pool`` parameters, documented once
#: for every strategy (inserted by :func:`selection_doc`).
SELECTION_PARAMS_DOC = """\
selection : {"topk", "power", "softmax", "rank", "balanced", "cluster"}, default={default}
    How the batch is taken from the scored candidates (see
    :ref:`batch-selection`), with :math:`s` the score oriented so that larger
    is better (negated for strategies that query the lowest scores):
    ``"topk"`` the ``n_instances`` best scores; ``"power"``, ``"softmax"``,
    ``"rank"`` a random batch drawn without replacement with probabilities
    proportional to :math:`s^\\beta` (scores shifted by their minimum when
    one is negative), :math:`e^{\\beta s}` or
    :math:`\\operatorname{rank}^{-\\beta}` (stochastic batch acquisition,
    Kirsch et al. 2023; Gumbel-top-k): ``"rank"`` depends on the order of the
    scores only, ``"power"`` on their offset (nearly equal scores, e.g.
    0.959 to 0.960, give a nearly uniform draw), ``"softmax"`` on their
    scale; ``"balanced"`` round-robin over the
    candidates' predicted classes (``predict_proba`` argmax), best score first
    within each class, classes in the order of their best score;
    ``"cluster"`` the best-scoring candidate of each of ``n_instances``
    k-means clusters of the embeddings (``embed``) of the
    ``cluster_pool * n_instances`` best candidates, clusters in the order of
    their best score (a shortfall filled by score). A candidate whose score is
    NaN is picked only when too few others are left.
beta : float, default=1.0
    Coldness of the stochastic selections (finite, > 0): the larger, the
    closer to ``"topk"``. Not used by the other selections.
cluster_pool : int, default=10
    ``selection="cluster"`` clusters the
    ``min(n_candidates, cluster_pool * n_instances)`` best candidates. Not
    used by the other selections.
"""


def selection_doc(func):
    """Insert :data:`SELECTION_PARAMS_DOC` into ``func``'s docstring (a decorator).

    The line ``{selection_params}`` of the docstring is replaced by the
    fragment, indented like the line.

    Parameters
    ----------
    func : callable
        A strategy whose docstring contains the ``{selection_params}`` line.

    Returns
    -------
    func : callable
        The same function, its ``__doc__`` completed.
    """
    doc = func.__doc__ or ""
    marker = "{selection_params}"
    for line in doc.splitlines():
        if line.strip() == marker:
            indent = line[:len(line) - len(line.lstrip())]
            default = inspect.signature(func).parameters["selection"].default
            fragment = SELECTION_PARAMS_DOC.replace("{default}", repr(default).replace("'", '"'))
            fragment = textwrap.indent(fragment, indent).rstrip("\n")
            func.__doc__ = doc.replace(line, fragment, 1)
            return func
    raise ValueError(f"{func.__name__}'s docstring has no {marker} line")  # pragma: no cover


def check_selection(selection, beta, cluster_pool, est, strategy):
    """Validate the batch-selection options and what they need from the estimator.

    Parameters
    ----------
    selection : str
        One of :data:`SELECTIONS`.
    beta : float
        Coldness of the stochastic selections: a finite number > 0.
    cluster_pool : int
        Positive integer: ``selection="cluster"`` clusters the
        ``cluster_pool * n_instances`` best candidates.
    est : object or None
        The unwrapped estimator: ``"balanced"`` needs ``predict_proba``,
        ``"cluster"`` needs ``embed``.
    strategy : str
        Name of the calling strategy, for error messages.

    Returns
    -------
    selection : str
    beta : float
    cluster_pool : int

    Raises
    ------
    ValueError
        For an unknown ``selection``, a ``beta`` that is not a finite number
        > 0, or a ``cluster_pool`` that is not a positive integer.
    TypeError
        If ``"balanced"`` or ``"cluster"`` is asked of an estimator without
        ``predict_proba`` or ``embed``.
    """
    if not isinstance(selection, str) or selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if (isinstance(beta, (bool, np.bool_)) or not isinstance(beta, numbers.Real)
            or not math.isfinite(beta) or beta <= 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    cluster_pool = _check_positive_int(cluster_pool, "cluster_pool")
    if selection == "balanced":
        require_method(est, "predict_proba", strategy,
                       "a fitted classifier for selection='balanced'")
    elif selection == "cluster":
        require_method(est, "embed", strategy,
                       "an estimator with embeddings for selection='cluster', e.g. a "
                       "ResNetClassifier")
    return selection, float(beta), cluster_pool


def _ranking(oriented):
    """Positions best first (largest ``oriented``), NaN last, ties by position."""
    return np.argsort(-oriented, kind="stable")


def _stochastic(oriented, selection, beta, rng):
    """Gumbel-top-k order for the power, softmax and rank selections."""
    n = len(oriented)
    nan = np.isnan(oriented)
    if selection == "softmax":
        log_weight = oriented.copy()
    elif selection == "power":
        finite = oriented[np.isfinite(oriented)]
        shift = finite.min() if finite.size and finite.min() < 0 else 0.0
        shifted = oriented - shift
        log_weight = np.full(n, -np.inf)
        positive = shifted > 0  # NaN is not
        log_weight[positive] = np.log(shifted[positive])
    else:  # rank: 1 for the best score
        rank = np.empty(n)
        rank[_ranking(oriented)] = np.arange(1, n + 1)
        log_weight = -np.log(rank)
    keys = beta * log_weight + rng.gumbel(size=n)
    keys[nan] = -np.inf
    # keys first (largest), then the score (largest; NaN last), then the position
    by_score = np.where(nan, -np.inf, oriented)
    return np.lexsort((np.arange(n), -by_score, -keys))


def _balanced(ranking, labels, n_instances):
    """Round-robin over the classes ``labels`` of the ranked positions ``ranking``."""
    n = len(ranking)
    position = np.arange(n)
    by_label = np.lexsort((position, labels))
    sorted_labels = labels[by_label]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_labels)) + 1]
    counts = np.diff(np.r_[starts, n])
    within = np.empty(n, dtype=np.intp)  # rank of each position inside its class
    within[by_label] = position - np.repeat(starts, counts)
    classes, first = np.unique(labels, return_index=True)
    visit = np.empty(len(classes), dtype=np.intp)  # classes by their best score
    visit[np.argsort(first, kind="stable")] = np.arange(len(classes))
    turn = visit[np.searchsorted(classes, labels)]
    return ranking[np.lexsort((turn, within))[:n_instances]]


def _clusters(top, embeddings, n_instances, rng):
    """Best-ranked member of each k-means cluster of ``embeddings`` (rows of ``top``)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    seed = int(rng.randint(np.iinfo(np.int32).max))
    with warnings.catch_warnings():
        # duplicated embeddings leave clusters empty: the shortfall is filled by score
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=n_instances, n_init=1, random_state=seed).fit(
            np.asarray(embeddings, dtype=np.float64)).labels_
    _, first = np.unique(labels, return_index=True)
    return top[np.sort(first)]


def choose(scores, n_instances, *, largest, selection="topk", beta=1.0, cluster_pool=10,
           rng=None, proba=None, embed=None):
    """Take ``n_instances`` positions from the scores with the given selection.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        One score per candidate.
    n_instances : int
        Number of positions to take, at most ``n``.
    largest : bool
        Whether larger scores are better; the scores are negated otherwise.
    selection : str, default="topk"
        One of :data:`SELECTIONS` (see :data:`SELECTION_PARAMS_DOC`).
    beta : float, default=1.0
        Coldness of the stochastic selections.
    cluster_pool : int, default=10
        ``"cluster"`` clusters the ``cluster_pool * n_instances`` best
        candidates.
    rng : numpy.random.RandomState, optional
        Source of the Gumbel noise and of the k-means seed.
    proba : callable, optional
        ``proba(positions) -> ndarray (len(positions), n_classes)``, for
        ``"balanced"``.
    embed : callable, optional
        ``embed(positions) -> ndarray (len(positions), n_features)``, for
        ``"cluster"``.

    Returns
    -------
    positions : ndarray of int of shape (n_instances,)
        Distinct positions into ``scores``, most preferred first.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    oriented = scores if largest else -scores
    if selection == "topk":
        return top_k(scores, n_instances, largest)
    if selection in _STOCHASTIC:
        return _stochastic(oriented, selection, beta, rng)[:n_instances]
    ranking = _ranking(oriented)
    nan = np.isnan(oriented[ranking])
    finite_ranking, nan_ranking = ranking[~nan], ranking[nan]
    if selection == "balanced":
        picked = finite_ranking[:0]
        if len(finite_ranking):
            labels = np.argmax(np.asarray(proba(finite_ranking)), axis=1)
            picked = _balanced(finite_ranking, labels, n_instances)
    else:  # cluster
        m = min(len(finite_ranking), cluster_pool * n_instances)
        top = finite_ranking[:m]
        picked = top if m <= n_instances else _clusters(top, embed(top), n_instances, rng)
    if len(picked) < n_instances:  # fill by score (NaN last)
        rest = np.ones(len(scores), dtype=bool)
        rest[picked] = False
        order = np.r_[finite_ranking, nan_ranking]
        picked = np.r_[picked, order[rest[order]][:n_instances - len(picked)]]
    return np.asarray(picked, dtype=np.intp)
