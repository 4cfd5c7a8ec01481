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

The stochastic selections (:data:`STOCHASTIC_SELECTIONS`) know the
probabilities of their draw: :func:`log_weights` gives the log-weights that
:func:`choose` perturbs with Gumbel noise, and ``return_proposal=True`` (of
:func:`choose` and of every strategy) returns, from the same call, a
:class:`Proposal`: the first draw's probabilities over the candidates and
the per-draw probability of each picked candidate, which the
``"importance"`` estimate of :func:`~sklearn_crtcl.estimation.estimate_accuracy`
weights the batch's labels by (:ref:`selection-proposal`).
"""

import inspect
import math
import numbers
import textwrap
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ._common import _check_positive_int, require_method, top_k

__all__ = ["SELECTIONS", "STOCHASTIC_SELECTIONS", "DEFAULT_SELECTION", "SELECTION_PARAMS_DOC",
           "PROPOSAL_RETURN_DOC", "selection_doc", "check_selection", "log_weights", "Proposal",
           "choose"]

#: Values of the ``selection`` option of every scoring strategy, ``"topk"``
#: (the papers' selection) first.
SELECTIONS = ("topk", "power", "softmax", "rank", "balanced", "cluster")

#: The selections that draw the batch at random with known probabilities
#: (Gumbel-top-k), the only ones with a :class:`Proposal`
#: (``return_proposal=True``).
STOCHASTIC_SELECTIONS = ("power", "softmax", "rank")
_STOCHASTIC = STOCHASTIC_SELECTIONS

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
return_proposal : bool, default=False
    Also return the :class:`~sklearn_crtcl.query.Proposal` of the draw: the
    first draw's probabilities over the candidates and the per-draw
    probability of each returned index, what the ``"importance"`` estimate
    of :func:`~sklearn_crtcl.estimation.estimate_accuracy` needs
    (:ref:`selection-proposal`). Only for the stochastic selections
    (``"power"``, ``"softmax"``, ``"rank"``): a ``ValueError`` otherwise,
    before any scoring. The indices are the same as without it.
"""

#: The ``proposal`` item of the Returns section of every scoring strategy
#: (inserted by :func:`selection_doc`).
PROPOSAL_RETURN_DOC = """\
proposal : Proposal
    Only with ``return_proposal=True`` (the result is then the pair
    ``(indices, proposal)``): the probabilities of the draw over the
    candidates (``proposal.candidates``, rows of ``X_pool``: the whole pool,
    ``pool_indices`` or the random ``subset_size`` subset), with
    ``proposal.q`` the per-draw probability of each index, in the order of
    ``indices``. For
    ``estimate_accuracy(classifier, X_pool[proposal.candidates],
    "importance", X_labeled=X_pool[indices], y_labeled=..., q=proposal.q)``.
"""


def selection_doc(func):
    """Insert :data:`SELECTION_PARAMS_DOC` and :data:`PROPOSAL_RETURN_DOC` into a docstring.

    A decorator: the lines ``{selection_params}`` (in Parameters) and
    ``{proposal_return}`` (in Returns) of the docstring are replaced by the
    fragments, indented like the lines.

    Parameters
    ----------
    func : callable
        A strategy whose docstring contains the ``{selection_params}`` and
        ``{proposal_return}`` lines.

    Returns
    -------
    func : callable
        The same function, its ``__doc__`` completed.
    """
    default = inspect.signature(func).parameters["selection"].default
    fragments = {"{selection_params}": SELECTION_PARAMS_DOC.replace(
                     "{default}", repr(default).replace("'", '"')),
                 "{proposal_return}": PROPOSAL_RETURN_DOC}
    doc = func.__doc__ or ""
    for marker, fragment in fragments.items():
        line = next((line for line in doc.splitlines() if line.strip() == marker), None)
        if line is None:  # pragma: no cover
            raise ValueError(f"{func.__name__}'s docstring has no {marker} line")
        indent = line[:len(line) - len(line.lstrip())]
        doc = doc.replace(line, textwrap.indent(fragment, indent).rstrip("\n"), 1)
    func.__doc__ = doc
    return func


def _check_beta(beta):
    if (isinstance(beta, (bool, np.bool_)) or not isinstance(beta, numbers.Real)
            or not math.isfinite(beta) or beta <= 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    return float(beta)


def _check_stochastic(selection, what):
    if selection not in _STOCHASTIC:
        raise ValueError(
            f"{what} needs a stochastic selection, one of {_STOCHASTIC}; selection="
            f"{selection!r} does not draw its batch with known probabilities, so it has no "
            "proposal")


def check_selection(selection, beta, cluster_pool, est, strategy, *, return_proposal=False):
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
    return_proposal : bool, default=False
        Whether the :class:`Proposal` of the draw is asked for: only a
        stochastic selection (:data:`STOCHASTIC_SELECTIONS`) has one.

    Returns
    -------
    selection : str
    beta : float
    cluster_pool : int

    Raises
    ------
    ValueError
        For an unknown ``selection``, a ``beta`` that is not a finite number
        > 0, a ``cluster_pool`` that is not a positive integer, or
        ``return_proposal=True`` with a selection that is not stochastic.
    TypeError
        If ``return_proposal`` is not a bool, or if ``"balanced"`` or
        ``"cluster"`` is asked of an estimator without ``predict_proba`` or
        ``embed``.
    """
    if not isinstance(selection, str) or selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    beta = _check_beta(beta)
    cluster_pool = _check_positive_int(cluster_pool, "cluster_pool")
    if not isinstance(return_proposal, (bool, np.bool_)):
        raise TypeError(f"return_proposal must be True or False, got {return_proposal!r}")
    if return_proposal:
        _check_stochastic(selection, f"{strategy}(..., return_proposal=True)")
    if selection == "balanced":
        require_method(est, "predict_proba", strategy,
                       "a fitted classifier for selection='balanced'")
    elif selection == "cluster":
        require_method(est, "embed", strategy,
                       "an estimator with embeddings for selection='cluster', e.g. a "
                       "ResNetClassifier")
    return selection, beta, cluster_pool


def log_weights(scores, selection, beta=1.0, *, largest=True):
    r"""The log-weights of a stochastic selection's draw, one per candidate.

    A stochastic selection draws candidate :math:`i` with a probability
    proportional to :math:`w_i = e^{\beta \ell_i}` among those not yet
    drawn, with :math:`s_i` the score oriented so that larger is better and

    .. math::

        \ell_i = \log s_i \;(\texttt{"power"}; s_i - \min_j s_j
        \text{ if a score is negative}), \qquad
        \ell_i = s_i \;(\texttt{"softmax"}), \qquad
        \ell_i = -\log r_i \;(\texttt{"rank"}),

    :math:`r_i` the rank of :math:`s_i` (1 for the best; tied scores share
    their average rank, so that equal scores weigh the same whatever their
    position in the pool).
    :func:`choose` draws the batch by adding Gumbel noise to these very
    values (Gumbel-top-:math:`k`), and its :class:`Proposal` is computed
    from them.

    Parameters
    ----------
    scores : array-like of shape (n,)
        One score per candidate.
    selection : {"power", "softmax", "rank"}
        A stochastic selection (:data:`STOCHASTIC_SELECTIONS`).
    beta : float, default=1.0
        Coldness (finite, > 0).
    largest : bool, default=True
        Whether larger scores are better; the scores are negated otherwise.

    Returns
    -------
    log_weight : ndarray of shape (n,)
        :math:`\beta \ell_i`; ``-inf`` for a candidate of weight 0, which
        is drawn only after every candidate of positive weight (a NaN score;
        for ``"power"`` a score of 0 after the shift).

    Raises
    ------
    ValueError
        For a selection that is not stochastic, or a ``beta`` that is not a
        finite number > 0.
    """
    if not isinstance(selection, str) or selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    _check_stochastic(selection, "log_weights")
    beta = _check_beta(beta)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return _log_weights(scores if largest else -scores, selection, beta)


def _ranking(oriented):
    """Positions best first (largest ``oriented``), NaN last, ties by position."""
    return np.argsort(-oriented, kind="stable")


def _log_weights(oriented, selection, beta):
    """``beta`` times the log-weights of the stochastic selections; ``-inf``: weight 0."""
    n = len(oriented)
    if selection == "softmax":
        log_weight = oriented.copy()
    elif selection == "power":
        finite = oriented[np.isfinite(oriented)]
        shift = finite.min() if finite.size and finite.min() < 0 else 0.0
        shifted = oriented - shift
        log_weight = np.full(n, -np.inf)
        positive = shifted > 0  # NaN is not
        log_weight[positive] = np.log(shifted[positive])
    else:  # rank: 1 for the best score; tied scores share their average rank
        rank = rankdata(-np.where(np.isnan(oriented), -np.inf, oriented), method="average")
        log_weight = -np.log(rank)
    log_weight = beta * log_weight
    log_weight[np.isnan(oriented)] = -np.inf
    return log_weight


def _stochastic(oriented, log_weight, rng):
    """Gumbel-top-k order of the power, softmax and rank selections."""
    n = len(oriented)
    keys = log_weight + rng.gumbel(size=n)
    # keys first (largest), then the score (largest; NaN last), then the position
    by_score = np.where(np.isnan(oriented), -np.inf, oriented)
    return np.lexsort((np.arange(n), -by_score, -keys))


def _logsumexp(x):
    top = x.max() if x.size else -np.inf
    if not np.isfinite(top):
        return top
    return top + math.log(np.exp(x - top).sum())


def _draw_probabilities(log_weight, order):
    r"""First-draw probabilities over all positions, per-draw probabilities of ``order``.

    Draw :math:`m` takes ``order[m]`` with probability :math:`w_{i_m} /
    \sum_{i \notin \{i_1..i_{m-1}\}} w_i`, computed in log space: the
    remaining mass is accumulated from the undrawn candidates and the later
    draws (no ``1 - cumsum`` cancellation). A draw among weights 0 only (the
    positive ones exhausted) is deterministic: probability 1.
    """
    drawn = log_weight[order]
    rest = np.ones(len(log_weight), dtype=bool)
    rest[order] = False
    # log of the mass left before each draw: the undrawn ones plus draws m, m+1, ...
    left = np.logaddexp.accumulate(np.r_[_logsumexp(log_weight[rest]), drawn[::-1]])[1:][::-1]
    with np.errstate(invalid="ignore"):
        q = np.where(np.isneginf(drawn), 1.0, np.minimum(np.exp(drawn - left), 1.0))
    total = _logsumexp(log_weight)
    if np.isneginf(total):  # every weight 0: the first draw is deterministic
        p = np.zeros(len(log_weight))
        p[order[0]] = 1.0
    else:
        p = np.exp(log_weight - total)
    return p, q


@dataclass(frozen=True, eq=False)
class Proposal:
    r"""The probabilities with which a stochastic selection drew its batch.

    The batch is drawn from the :math:`C` candidates one at a time without
    replacement, candidate :math:`i` with a probability proportional to its
    weight :math:`w_i = e^{\beta \ell_i}` (:func:`log_weights`) among those
    not yet drawn. Gumbel-top-:math:`k` draws exactly this sequence in one
    go: the keys :math:`\beta \ell_i + G_i`, :math:`G_i \sim
    \operatorname{Gumbel}(0, 1)`, sorted in decreasing order, are the draws
    in order (Kool et al., ICML 2019). Draw :math:`m` takes :math:`i_m` with

    .. math::

        q_m = \frac{w_{i_m}}{\sum_{i \notin \{i_1, \dots, i_{m-1}\}} w_i}
            = \frac{p_{i_m}}{1 - \sum_{j < m} p_{i_j}},
        \qquad p_i = \frac{w_i}{\sum_{j=1}^{C} w_j}.

    Returned by :func:`choose` and by every scoring strategy with
    ``return_proposal=True``; ``q`` is what the ``"importance"`` estimate
    of :func:`~sklearn_crtcl.estimation.estimate_accuracy` needs, with the
    candidates as its ``X``.

    Attributes
    ----------
    q : ndarray of shape (n_instances,)
        The per-draw probabilities :math:`q_m` of the picked candidates, in
        draw order (the order of the returned indices). A candidate of
        weight 0, drawn only once every candidate of positive weight is
        drawn, is a deterministic pick: :math:`q_m = 1`.
    p : ndarray of shape (n_candidates,)
        The first draw's probabilities :math:`p_i` over the candidates (sum
        1), in the order of ``candidates``.
    candidates : ndarray of int of shape (n_candidates,)
        The rows of ``X_pool`` the batch was drawn from: the whole pool
        (``0..n-1``), the rows ``pool_indices``, or the random
        ``subset_size`` subset. The probabilities are over these candidates
        only, conditional on them: with a random subset, the importance
        estimate from them is unbiased for the accuracy on the candidates,
        and so, averaged over the subset's draw, for the pool.
    positions : ndarray of int of shape (n_instances,)
        The positions of the picked candidates in ``candidates``, in draw
        order (``candidates[positions]`` are the returned indices).
    selection : str
        The stochastic selection that drew the batch.
    beta : float
        Its coldness.
    """

    q: np.ndarray
    p: np.ndarray
    candidates: np.ndarray
    positions: np.ndarray
    selection: str
    beta: float

    @property
    def indices(self):
        """ndarray of int: The picked rows of ``X_pool``, in draw order."""
        return self.candidates[self.positions]

    @property
    def full_support(self):
        """bool: Whether every candidate could be drawn (:math:`p_i > 0` for all).

        The importance estimate is unbiased only then: a candidate of weight
        0 (a NaN score; for ``"power"`` the lowest score when one is
        negative, or a score of 0) is never drawn at random, so its error is
        never counted.
        """
        return bool(np.all(self.p > 0))


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
           rng=None, proba=None, embed=None, return_proposal=False):
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
    return_proposal : bool, default=False
        Also return the :class:`Proposal` of the draw, computed from the
        log-weights the draw used (:func:`log_weights`); a stochastic
        selection only (``ValueError`` otherwise). The positions are the
        same as without it.

    Returns
    -------
    positions : ndarray of int of shape (n_instances,)
        Distinct positions into ``scores``, most preferred first (for a
        stochastic selection, in draw order).
    proposal : Proposal
        Only with ``return_proposal=True``: its ``candidates`` are the
        positions ``0..n-1`` of ``scores``.

    Raises
    ------
    ValueError
        If ``return_proposal=True`` with a selection that is not stochastic.
    """
    if return_proposal:
        _check_stochastic(selection, "choose(..., return_proposal=True)")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    oriented = scores if largest else -scores
    if selection == "topk":
        return top_k(scores, n_instances, largest)
    if selection in _STOCHASTIC:
        log_weight = _log_weights(oriented, selection, beta)
        positions = _stochastic(oriented, log_weight, rng)[:n_instances]
        if not return_proposal:
            return positions
        p, q = _draw_probabilities(log_weight, positions)
        return positions, Proposal(q=q, p=p, candidates=np.arange(len(scores), dtype=np.intp),
                                   positions=positions.copy(), selection=selection,
                                   beta=float(beta))
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
