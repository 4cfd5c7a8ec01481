"""CrtCl critic sampling: query the samples the critic deems least likely correct.

CrtCl (Section III-E of the CrtCl paper) trains a critic :math:`C_\\phi` on the
features :math:`F_\\theta(x)` of the classifier to tell correct predictions
from incorrect ones. For every unlabeled sample it computes

.. math::

    p_u = C_\\phi(F_\\theta(x_u)),

ranks the pool by :math:`p_u` and queries the :math:`n` samples with the
*lowest* values: those whose predictions are least likely to be correct.
"""

from .._modal_compat import package_strategy
from ._common import (check_method_chunk, get_estimator, method_scores, require_method, select,
                      validate_pool)
from .selection import DEFAULT_SELECTION, selection_doc

__all__ = ["critic_correctness", "critic_sampling"]

_NEEDS = "a fitted CriticLossNet"


def critic_correctness(classifier, X, *, batch_size=None):
    """Critic score of each sample: higher means more likely correctly classified.

    Parameters
    ----------
    classifier : CriticLossNet or modAL learner
        A fitted :class:`~sklearn_crtcl.CriticLossNet` (anything with
        ``predict_correctness(X)``), or a modAL learner wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read a few batches of rows at a time).
    batch_size : int, optional
        Rows passed to the estimator's scoring method per call (it runs them
        in forward passes of at most its own ``batch_size``); by default 8
        times the estimator's ``batch_size``.

    Returns
    -------
    scores : ndarray of shape (n,)
        :math:`C_\\phi(F_\\theta(x))` for every row of ``X``.
    """
    est, X = get_estimator(classifier, "critic_correctness", X)
    require_method(est, "predict_correctness", "critic_correctness", _NEEDS)
    chunk = check_method_chunk(batch_size, est)
    return method_scores(est.predict_correctness, validate_pool(est, X), None, chunk)


@package_strategy
@selection_doc
def critic_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                    batch_size=None, selection=DEFAULT_SELECTION, beta=1.0, cluster_pool=10,
                    pool_indices=None, return_proposal=False):
    """Query the samples with the lowest critic scores (CrtCl).

    .. math::

        S = \\operatorname{arg\\,min}_{S \\subset U,\\, |S| = n}
        \\sum_{x \\in S} C_\\phi(F_\\theta(x))

    Parameters
    ----------
    classifier : CriticLossNet or modAL learner
        A fitted :class:`~sklearn_crtcl.CriticLossNet` (anything with
        ``predict_correctness(X)``), or a modAL ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool (the
        papers use 10,000); ``None`` scores the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the selection's draws.
    batch_size : int, optional
        Rows passed to the estimator's scoring method per call (it runs them
        in forward passes of at most its own ``batch_size``); by default 8
        times the estimator's ``batch_size``.
    {selection_params}

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, most preferred first: with
        ``selection="topk"``, lowest critic score first (ties: smaller index
        first).
    {proposal_return}

    Raises
    ------
    TypeError
        If the estimator has no ``predict_correctness`` method, or lacks the
        ``predict_proba``/``embed`` that ``selection="balanced"``/``"cluster"``
        need.
    ValueError
        For an empty or invalid pool, ``n_instances`` larger than the number
        of candidates, or an invalid ``selection``, ``beta``,
        ``cluster_pool`` or ``return_proposal``.

    Examples
    --------
    >>> from modAL.models import ActiveLearner                  # doctest: +SKIP
    >>> learner = ActiveLearner(CriticLossNet(...), query_strategy=critic_sampling,
    ...                         X_training=X0, y_training=y0)  # doctest: +SKIP
    >>> idx, X_new = learner.query(X_pool, n_instances=100, subset_size=10000,
    ...                            random_state=0)             # doctest: +SKIP
    """
    est, X_pool = get_estimator(classifier, "critic_sampling", X_pool)
    require_method(est, "predict_correctness", "critic_sampling", _NEEDS)
    chunk = check_method_chunk(batch_size, est)

    def score(X4, candidates):
        return method_scores(est.predict_correctness, X4, candidates, chunk)

    return select(est, X_pool, n_instances, score, largest=False, subset_size=subset_size,
                  random_state=random_state, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, strategy="critic_sampling",
                  pool_indices=pool_indices, return_proposal=return_proposal)
