r"""BADGE: batch active learning by diverse gradient embeddings (Ash et al., ICLR 2020).

*Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds*
represents each unlabeled sample by the gradient of the cross-entropy loss,
with the model's own prediction :math:`\hat y = \arg\max_k p_k(x)` as label,
with respect to the weights of the final linear layer:

.. math::

    g(x) = \big(p(x) - e_{\hat y}\big) \otimes h(x) \in \mathbb{R}^{K D},

where :math:`p(x)` are the class probabilities and :math:`h(x)` the
penultimate features (:meth:`~sklearn_crtcl.ResNetClassifier.embed`). Its
norm measures uncertainty, the spread of a batch in that space its
diversity. The batch is the k-means++ seeding of the :math:`g(x)`: the
sample with the largest :math:`\lVert g(x) \rVert` first, then each next
sample drawn with probability proportional to the squared distance to its
nearest chosen sample,

.. math::

    P(x) = \frac{D(x)^2}{\sum_{x'} D(x')^2}, \qquad
    D(x) = \min_{c \in S} \lVert g(x) - g(c) \rVert_2 .

The :math:`K D`-dimensional embeddings are never built: with
:math:`a(x) = p(x) - e_{\hat y}`,
:math:`\langle g(x), g(x') \rangle = \langle a(x), a(x') \rangle\,
\langle h(x), h(x') \rangle`, so each step costs one product with the
:math:`n \times K` and one with the :math:`n \times D` matrix.
"""

import numpy as np

from .._modal_compat import package_strategy
from ._common import (check_batch_size, get_estimator, method_outputs, prepare_candidates,
                      require_method, validate_rows)
from ._steps import record

__all__ = ["badge_sampling"]


def _proba_embed_method(est, batch_size):
    """``rows -> (proba, embeddings)``: one forward pass per batch for a net of the package.

    Parameters
    ----------
    est : object
        The unwrapped estimator (with ``predict_proba`` and ``embed``).
    batch_size : int
        Images per forward pass of a net of this package.

    Returns
    -------
    callable
    """
    both = getattr(est, "_proba_and_embedding", None)
    if callable(both):
        return lambda rows: both(rows, batch_size=batch_size)
    return lambda rows: (est.predict_proba(rows), est.embed(rows))


def _draw(d2, taken, rng):
    """One index with probability proportional to ``d2`` (uniform among the
    untaken ones when every ``d2`` is 0); one uniform number from ``rng``."""
    u = rng.random_sample()
    cdf = np.cumsum(d2)
    total = cdf[-1]
    if total > 0 and np.isfinite(total):
        j = min(int(np.searchsorted(cdf, u * total, side="right")), len(d2) - 1)
        if d2[j] > 0:
            return j
        return int(np.flatnonzero(d2 > 0)[-1])  # u * total rounded up to the total
    free = np.flatnonzero(~taken)
    return int(free[min(int(u * len(free)), len(free) - 1)])


def _kmeanspp(proba, embeddings, n_instances, rng):
    """k-means++ seeding on the gradient embeddings, never building them.

    Parameters
    ----------
    proba : ndarray of shape (n, K)
        Class probabilities.
    embeddings : ndarray of shape (n, D)
        Penultimate features.
    n_instances : int
        Number of samples to choose (at most ``n``).
    rng : numpy.random.RandomState
        One ``random_sample()`` per choice after the first.

    Returns
    -------
    positions : ndarray of int of shape (n_instances,)
        Distinct positions, in the order chosen (the largest gradient norm
        first; ties: the smaller position).
    """
    P = np.asarray(proba, dtype=np.float64)
    H = np.asarray(embeddings, dtype=np.float64)
    n = P.shape[0]
    A = P.copy()
    A[np.arange(n), np.argmax(P, axis=1)] -= 1.0
    g2 = np.einsum("ij,ij->i", A, A) * np.einsum("ij,ij->i", H, H)  # ||g||^2
    chosen = np.empty(n_instances, dtype=np.intp)
    taken = np.zeros(n, dtype=bool)
    record(g2)  # the values of each step (for the scikit-activeml utilities)
    chosen[0] = int(np.argmax(g2))
    taken[chosen[0]] = True
    d2 = np.full(n, np.inf)
    for t in range(1, n_instances):
        c = chosen[t - 1]
        to_c = g2 + g2[c] - 2.0 * (A @ A[c]) * (H @ H[c])
        np.minimum(d2, np.maximum(to_c, 0.0), out=d2)
        d2[taken] = 0.0  # a chosen sample is never drawn again
        record(d2)
        chosen[t] = _draw(d2, taken, rng)
        taken[chosen[t]] = True
    return chosen


@package_strategy
def badge_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                   batch_size=None, pool_indices=None):
    r"""Query a diverse, uncertain batch: k-means++ on gradient embeddings (BADGE).

    .. math::

        g(x) = \big(p(x) - e_{\arg\max_k p_k(x)}\big) \otimes h(x), \qquad
        P(x \mid S) \propto \min_{c \in S} \lVert g(x) - g(c) \rVert_2^2 ,

    the first sample being the one with the largest :math:`\lVert g(x)
    \rVert` (Ash et al., ICLR 2020). The class probabilities :math:`p` and
    the penultimate features :math:`h` come from one forward pass per batch;
    the gradient embeddings are never built (their inner products factorise).
    Never returns an index twice, even on a pool of duplicated rows: once
    every remaining distance is 0, the next samples are drawn uniformly
    among those not chosen.

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or any subclass),
        or anything with ``predict_proba`` and ``embed``, or a modAL
        ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Run on this many candidates drawn at random from the pool; ``None``
        uses the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the k-means++ draws (one
        uniform number per sample after the first).
    batch_size : int, optional
        Images per forward pass; defaults to the estimator's ``batch_size``.

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, in the order chosen.

    Raises
    ------
    TypeError
        If the estimator has no ``predict_proba`` or no ``embed``.
    ValueError
        For an empty or invalid pool, or ``n_instances`` larger than the
        number of candidates.

    Notes
    -----
    Memory: :math:`n (K + D)` float64 numbers for :math:`n` candidates,
    :math:`K` classes and :math:`D` embedding features; each of the
    ``n_instances - 1`` draws costs :math:`O(n (K + D))`.
    """
    est, X_pool = get_estimator(classifier, "badge_sampling", X_pool)
    needs = "a fitted classifier with embeddings, e.g. a ResNetClassifier"
    require_method(est, "predict_proba", "badge_sampling", needs)
    require_method(est, "embed", "badge_sampling", needs)
    batch_size = check_batch_size(batch_size, est)
    n_instances, X4, candidates, rng = prepare_candidates(
        est, X_pool, n_instances, subset_size, random_state, validate_rows, pool_indices)
    proba, embeddings = method_outputs(_proba_embed_method(est, batch_size), X4, candidates,
                                       8 * batch_size)
    chosen = _kmeanspp(proba, embeddings, n_instances, rng)
    return np.asarray(chosen if candidates is None else candidates[chosen], dtype=np.intp)
