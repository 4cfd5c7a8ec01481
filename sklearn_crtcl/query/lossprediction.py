"""LL4AL loss-prediction sampling: query the samples with the highest predicted loss.

Learning Loss for Active Learning (Yoo & Kweon, CVPR 2019) attaches a small
loss-prediction module :math:`\\hat\\ell = h(F_\\theta(x))` to the multi-level
features of the backbone and trains it with a pairwise ranking loss. The
query takes the :math:`n` unlabeled samples with the *highest* predicted loss

.. math::

    S = \\operatorname{arg\\,max}_{S \\subset U,\\, |S| = n} \\sum_{x \\in S} \\hat\\ell(x).

(LPLgrad trains the same module jointly with the backbone but queries with
:func:`~sklearn_crtcl.query.gradient_norm_sampling` instead.)
"""

from .._modal_compat import package_strategy
from ._common import (check_method_chunk, get_estimator, method_scores, require_method, select,
                      validate_pool)
from .selection import DEFAULT_SELECTION, selection_doc

__all__ = ["predicted_loss", "loss_prediction_sampling"]

_NEEDS = "a fitted LossPredictionNet"


def predicted_loss(classifier, X, *, batch_size=None):
    """Predicted loss of each sample (higher means more informative).

    Parameters
    ----------
    classifier : LossPredictionNet or modAL learner
        A fitted :class:`~sklearn_crtcl.LossPredictionNet` (anything with
        ``predict_loss(X)``), or a modAL learner wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read a few batches of rows at a time).
    batch_size : int, optional
        Rows passed to the estimator's scoring method per call (it runs them
        in forward passes of at most its own ``batch_size``); by default 8
        times the estimator's ``batch_size``.

    Returns
    -------
    pred_loss : ndarray of shape (n,)
        :math:`\\hat\\ell(x)` for every row of ``X``.
    """
    est, X = get_estimator(classifier, "predicted_loss", X)
    require_method(est, "predict_loss", "predicted_loss", _NEEDS)
    chunk = check_method_chunk(batch_size, est)
    return method_scores(est.predict_loss, validate_pool(est, X), None, chunk)


@package_strategy
@selection_doc
def loss_prediction_sampling(classifier, X_pool, n_instances=1, *, subset_size=None,
                             random_state=None, batch_size=None, selection=DEFAULT_SELECTION,
                             beta=1.0, cluster_pool=10, pool_indices=None, return_proposal=False):
    """Query the samples with the highest predicted losses (LL4AL).

    Parameters
    ----------
    classifier : LossPredictionNet or modAL learner
        A fitted :class:`~sklearn_crtcl.LossPredictionNet` (anything with
        ``predict_loss(X)``), or a modAL ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool (LL4AL
        uses 10,000); ``None`` scores the whole pool.
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
        ``selection="topk"``, highest predicted loss first (ties: smaller
        index first).
    {proposal_return}

    Raises
    ------
    TypeError
        If the estimator has no ``predict_loss`` method, or lacks the
        ``predict_proba``/``embed`` that ``selection="balanced"``/``"cluster"``
        need.
    ValueError
        For an empty or invalid pool, ``n_instances`` larger than the number
        of candidates, or an invalid ``selection``, ``beta``,
        ``cluster_pool`` or ``return_proposal``.
    """
    est, X_pool = get_estimator(classifier, "loss_prediction_sampling", X_pool)
    require_method(est, "predict_loss", "loss_prediction_sampling", _NEEDS)
    chunk = check_method_chunk(batch_size, est)

    def score(X4, candidates):
        return method_scores(est.predict_loss, X4, candidates, chunk)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=random_state, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, strategy="loss_prediction_sampling",
                  pool_indices=pool_indices, return_proposal=return_proposal)
