"""Random sampling: the baseline of every active-learning paper.

Each candidate gets an independent uniform score
:math:`u(x) \\sim \\mathcal{U}[0, 1)` and the :math:`n` highest are queried,
which is a uniform draw of :math:`n` samples without replacement. The model
is not used, unless a diversity selection asks for it: ``selection="balanced"``
draws a class-balanced random sample (round-robin over the predicted classes)
and ``selection="cluster"`` one random sample from each k-means cluster of the
embeddings, two baselines that separate the effect of diversity from that of
the score.
"""

import numpy as np
from sklearn.utils import check_random_state

from .._data import check_finite_chunked
from .._modal_compat import package_strategy
from ._common import count_rows, get_estimator, pool_size, resolve, select
from .selection import selection_doc

__all__ = ["random_scores", "random_sampling"]


def _validate(est, X_pool):
    """The estimator's own validation when it is a fitted net of this package,
    else the number of samples and, for an array of numbers, finiteness as float32
    (random sampling needs no model, but a pool with NaN is refused as by every
    other strategy)."""
    if hasattr(est, "_validate_X") and getattr(est, "initialized_", False):
        return est._validate_X(resolve(X_pool), reset=False, name="X_pool")
    n = pool_size(X_pool)
    if isinstance(X_pool, np.ndarray) and X_pool.dtype.kind in "fc":
        check_finite_chunked(X_pool, "X_pool")
    return n


def random_scores(classifier, X, *, random_state=None):
    """Independent uniform scores, one per sample.

    Parameters
    ----------
    classifier : estimator, modAL learner or None
        Not used (kept for the common signature of utility functions).
    X : array-like of shape (n, ...)
        The samples; only their number is used.
    random_state : int, RandomState instance or None, default=None
        Seed of the scores.

    Returns
    -------
    scores : ndarray of shape (n,)
        Uniform numbers in ``[0, 1)``.
    """
    if classifier is not None:
        get_estimator(classifier, "random_scores")
    n = pool_size(X)
    return check_random_state(random_state).random_sample(n)


@package_strategy
@selection_doc
def random_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                    batch_size=None, selection="topk", beta=1.0, cluster_pool=10,
                    pool_indices=None, return_proposal=False):
    """Query ``n_instances`` samples uniformly at random, without replacement.

    Parameters
    ----------
    classifier : estimator, modAL learner or None
        Not used to score; a fitted net of this package validates the pool
        (shape of the fitted images), any other estimator is accepted as is.
        ``selection="balanced"`` and ``"cluster"`` call its
        ``predict_proba``/``embed``.
    X_pool : array-like of shape (n, ...)
        The unlabeled pool, possibly a memory map: read once, chunk by chunk,
        to check that it is finite as float32 (an array of numbers; a pool with
        NaN is refused, as by every other strategy), and the candidates' rows
        by ``selection="balanced"``/``"cluster"``.
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Draw from this many candidates drawn at random first (the same
        distribution as drawing from the whole pool; accepted so that every
        strategy takes the same options).
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed: the same seed and pool size give the same query. One stream
        draws the candidates, then the scores, then the selection's draws.
    batch_size : int, optional
        Not used (accepted so that every strategy takes the same options).
    {selection_params}

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``.
    {proposal_return}

    Raises
    ------
    TypeError
        If ``selection="balanced"``/``"cluster"`` is asked without an
        estimator that has ``predict_proba``/``embed``.
    ValueError
        For an empty pool, a pool with NaN or infinity (as float32),
        ``n_instances`` larger than the number of
        candidates, or an invalid ``selection``, ``beta``,
        ``cluster_pool`` or ``return_proposal``.

    Notes
    -----
    Every ``selection`` is accepted, so that a whole experiment grid can pass
    the same options to every strategy. The scores are independent and
    uniform, so the stochastic selections (``"power"``, ``"softmax"``,
    ``"rank"``) are still a uniform draw without replacement (the scores and
    the Gumbel noise are exchangeable); only the indices drawn for a given
    seed differ from ``"topk"``. ``"balanced"`` and ``"cluster"`` are the random
    baselines of the diversity selections: a class-balanced random sample
    and one random sample per k-means cluster of the embeddings of
    ``cluster_pool * n_instances`` random candidates.

    With a stochastic selection, ``return_proposal=True`` gives the
    probabilities of the draw given the query's uniform scores (the
    selection's weights of those scores), valid for the importance estimate
    as any proposal; since the draw is uniform overall, the per-draw
    probabilities :math:`1 / (C - m + 1)` of :math:`C` candidates are valid
    too (with ``estimator="lure"`` they give the plain mean of the batch).
    """
    est = None
    if classifier is not None:  # (a Pipeline's steps: for "balanced" and "cluster")
        est, X_pool = get_estimator(classifier, "random_sampling", X_pool)
    rng = check_random_state(random_state)  # one stream: candidates first, then scores

    def score(X4, candidates):
        n = count_rows(X4) if candidates is None else len(candidates)
        return rng.random_sample(n)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=rng, validate=_validate, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, strategy="random_sampling",
                  pool_indices=pool_indices, shard=False, return_proposal=return_proposal)
