r"""Core-set selection: greedy k-center on the embeddings (Sener & Savarese, ICLR 2018).

*Active Learning for Convolutional Neural Networks: A Core-Set Approach*
chooses the batch :math:`S` so that every unlabeled sample is close to a
labeled or chosen one in the space of the penultimate features :math:`h(x)`
(:meth:`~sklearn_crtcl.ResNetClassifier.embed`), i.e. it approximately
minimises the covering radius

.. math::

    \max_{x \in U} \min_{c \in L \cup S} \lVert h(x) - h(c) \rVert_2 .

The greedy 2-approximation (farthest-first traversal) adds, one at a time,
the unlabeled sample farthest from every center, the labeled samples
:math:`L` being the initial centers:

.. math::

    x_{t+1} = \operatorname*{arg\,max}_{x \in U \setminus S_t}
    \min_{c \in L \cup S_t} \lVert h(x) - h(c) \rVert_2 .
"""

import numpy as np
from sklearn.metrics import pairwise_distances_argmin_min

from .._modal_compat import package_strategy
from ._common import (check_batch_size, get_estimator, method_outputs, prepare_candidates,
                      require_method, validate_rows)
from ._steps import record

__all__ = ["coreset_sampling"]


def _embed_method(est, batch_size):
    if callable(getattr(est, "_proba_and_embedding", None)):  # a net of this package
        return lambda rows: est.embed(rows, batch_size=batch_size)
    return est.embed


def _labeled_set(classifier, X_labeled):
    """``X_labeled``, else the ``X_training`` of a modAL learner; checked non-empty."""
    if X_labeled is None and hasattr(classifier, "query_strategy"):
        X_labeled = getattr(classifier, "X_training", None)
    if X_labeled is None:
        raise ValueError(
            "coreset_sampling needs the labeled samples as initial centers: pass X_labeled=, "
            "or query through a modAL ActiveLearner that has training data (X_training)")
    shape = getattr(X_labeled, "shape", None)
    n = shape[0] if shape is not None and len(shape) else len(X_labeled)
    if n == 0:
        raise ValueError("X_labeled is empty (0 samples); coreset_sampling needs at least one "
                         "labeled sample as initial center")
    return X_labeled


def _k_center(pool, labeled, n_instances):
    """Greedy k-center: positions into ``pool``, labeled rows as initial centers."""
    H = np.asarray(pool, dtype=np.float64)
    # distance of each pool row to its nearest labeled row, computed in chunks of
    # scikit-learn's working_memory (the pool-by-labeled matrix is never built)
    _, d = pairwise_distances_argmin_min(H, np.asarray(labeled, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64)
    sq = np.einsum("ij,ij->i", H, H)
    chosen = np.empty(n_instances, dtype=np.intp)
    for t in range(n_instances):
        record(d)  # the distances this step maximises (for the scikit-activeml utilities)
        j = int(np.argmax(d))  # ties: the smaller position
        chosen[t] = j
        d[j] = -np.inf  # never chosen again (the minimum below keeps it)
        if t + 1 < n_instances:
            to_j = np.sqrt(np.maximum(sq + sq[j] - 2.0 * (H @ H[j]), 0.0))
            np.minimum(d, to_j, out=d)
    return chosen


@package_strategy
def coreset_sampling(classifier, X_pool, n_instances=1, *, X_labeled=None, subset_size=None,
                     random_state=None, batch_size=None, pool_indices=None):
    r"""Query the batch that best covers the pool in embedding space (greedy k-center).

    .. math::

        x_{t+1} = \operatorname*{arg\,max}_{x \in U \setminus S_t}
        \min_{c \in L \cup S_t} \lVert h(x) - h(c) \rVert_2

    with :math:`h` the penultimate features, :math:`L` the labeled samples
    and :math:`S_t` the samples chosen so far (Sener & Savarese, ICLR 2018).
    Deterministic: ties go to the smaller index, and ``random_state`` only
    draws the candidate subset.

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or any subclass),
        or anything with ``embed``, or a modAL ``ActiveLearner`` wrapping
        one (its ``X_training`` are then the labeled samples).
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    X_labeled : array-like, optional
        The labeled samples, the initial centers. By default the
        ``X_training`` of the modAL learner passed as ``classifier``; given,
        it takes precedence.
    subset_size : int, optional
        Run on this many candidates drawn at random from the pool; ``None``
        uses the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the candidate draw.
    batch_size : int, optional
        Images per forward pass; defaults to the estimator's ``batch_size``.

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, in the order chosen.

    Raises
    ------
    TypeError
        If the estimator has no ``embed``.
    ValueError
        Without labeled samples (no ``X_labeled`` and no learner with
        ``X_training``), for an empty or invalid pool or labeled set, or
        ``n_instances`` larger than the number of candidates.

    Notes
    -----
    The distances to the labeled set are computed in chunks
    (:func:`sklearn.metrics.pairwise_distances_argmin_min`), then each of the
    ``n_instances`` steps costs one :math:`O(n D)` product for :math:`n`
    candidates of :math:`D` features.
    """
    est = get_estimator(classifier, "coreset_sampling")
    require_method(est, "embed", "coreset_sampling",
                   "a fitted estimator with embeddings, e.g. a ResNetClassifier")
    batch_size = check_batch_size(batch_size, est)
    # the pool and the labeled set as the net takes them (a Pipeline's steps)
    _, X_pool, X_labeled = get_estimator(classifier, "coreset_sampling", X_pool,
                                         _labeled_set(classifier, X_labeled))
    n_instances, X4, candidates, _ = prepare_candidates(
        est, X_pool, n_instances, subset_size, random_state, validate_rows, pool_indices)
    X_lab = validate_rows(est, X_labeled, name="X_labeled")
    embed = _embed_method(est, batch_size)
    chunk = 8 * batch_size
    pool = method_outputs(embed, X4, candidates, chunk)
    labeled = method_outputs(embed, X_lab, None, chunk)
    chosen = _k_center(pool, labeled, n_instances)
    return np.asarray(chosen if candidates is None else candidates[chosen], dtype=np.intp)
