"""Maximum-entropy uncertainty sampling (the runner's ``entropy`` method).

The classic uncertainty baseline, in the protocol of this package: batched
scoring, an optional random candidate subset, indices only. It works with any
fitted classifier with ``predict_proba``: a net of this package gets the pool
as images, any other classifier gets the rows as given (a sparse matrix, a
DataFrame, a list of texts: only their number is checked).
"""

from .._modal_compat import package_strategy
from ..metrics import _check_proba, _entropy
from ._common import (check_batch_size, get_estimator, method_scores, require_method, select,
                      validate_rows)
from .selection import DEFAULT_SELECTION, selection_doc

__all__ = ["entropy_sampling", "classifier_entropy"]


def _entropy_of(est):
    """Rows -> their entropy under ``est.predict_proba``, rows renormalised as modAL's."""
    name = f"{type(est).__name__}.predict_proba(X)"
    return lambda rows: _entropy(_check_proba(est.predict_proba(rows), normalized=False,
                                              name=name))


def classifier_entropy(classifier, X, *, batch_size=None):
    r"""Predictive entropy of each sample.

    .. math::

        H(x) = -\sum_{k=1}^{K} p_k(x) \log p_k(x), \qquad 0 \log 0 = 0,

    where :math:`p(x)` is the classifier's ``predict_proba``, each row divided
    by its sum first, as in ``modAL.uncertainty.classifier_entropy`` (which
    calls :func:`scipy.stats.entropy`): rows of non-negative scores that do
    not sum to 1 get modAL's entropy. Negative, NaN or infinite values, and
    all-zero rows, raise a ``ValueError`` (modAL returns ``nan`` or ``-inf``
    for them): logits from a skorch net with ``predict_nonlinearity=None`` are
    not probabilities.

    Parameters
    ----------
    classifier : estimator or modAL learner
        A fitted classifier with ``predict_proba``, or a modAL learner
        wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read ``batch_size`` rows at a time);
        for a classifier that is not a net of this package, its own feature
        rows.
    batch_size : int, optional
        Rows per ``predict_proba`` call; defaults to the estimator's
        ``batch_size``.

    Returns
    -------
    entropy : ndarray of shape (n,)
        In nats, between 0 and :math:`\log K`.

    Raises
    ------
    TypeError
        If the estimator has no ``predict_proba``.
    ValueError
        For an empty or invalid ``X``, or a ``predict_proba`` output with
        negative, NaN or infinite values or an all-zero row.
    """
    est, X = get_estimator(classifier, "classifier_entropy", X)
    require_method(est, "predict_proba", "classifier_entropy", "a fitted classifier")
    batch_size = check_batch_size(batch_size, est)
    return method_scores(_entropy_of(est), validate_rows(est, X, name="X"), None, batch_size)


@package_strategy
@selection_doc
def entropy_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                     batch_size=None, selection=DEFAULT_SELECTION, beta=1.0, cluster_pool=10,
                     pool_indices=None, return_proposal=False):
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
        The unlabeled pool, possibly a memory map (never copied); for a
        classifier that is not a net of this package, its own feature rows.
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool;
        ``None`` scores the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the selection's draws.
    batch_size : int, optional
        Rows per ``predict_proba`` call; defaults to the estimator's
        ``batch_size``.
    {selection_params}

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, most preferred first: with
        ``selection="topk"``, highest entropy first (ties: smaller index
        first).
    {proposal_return}

    Raises
    ------
    TypeError
        If the estimator has no ``predict_proba``, or no ``embed`` for
        ``selection="cluster"``.
    ValueError
        For an empty or invalid pool, ``n_instances`` larger than the number
        of candidates, or an invalid ``selection``, ``beta``,
        ``cluster_pool`` or ``return_proposal``, or a ``predict_proba``
        output that :func:`classifier_entropy` refuses.
    """
    est, X_pool = get_estimator(classifier, "entropy_sampling", X_pool)
    require_method(est, "predict_proba", "entropy_sampling", "a fitted classifier")
    batch_size = check_batch_size(batch_size, est)

    def score(X4, candidates):
        return method_scores(_entropy_of(est), X4, candidates, batch_size)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=random_state, validate=validate_rows, selection=selection,
                  beta=beta, cluster_pool=cluster_pool, strategy="entropy_sampling",
                  pool_indices=pool_indices, return_proposal=return_proposal)
