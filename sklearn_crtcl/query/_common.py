"""Selection helpers shared by every query strategy.

A strategy is ``strategy(classifier, X_pool, n_instances=1, **options)``. The
helpers here do what all of them share, in this order, before any scoring:

1. :func:`get_estimator` unwraps a modAL learner, resolves a scikit-learn
   ``Pipeline`` to its final estimator and the pool to the pool transformed
   by the steps before it, and rejects what the strategies cannot use (a
   committee);
2. the strategy checks that the estimator has what it needs (a clear
   ``TypeError`` otherwise) and its own options (``batch_size``...);
3. :func:`select` checks the batch-selection options
   (:func:`~sklearn_crtcl.query.selection.check_selection`),
   ``n_instances`` and ``subset_size``, validates the pool once (shape,
   finiteness chunk by chunk, never copying a memory map), draws the random
   candidate subset (:func:`prepare_candidates`), scores the candidates and
   takes ``n_instances`` of them with the requested ``selection``
   (:func:`~sklearn_crtcl.query.selection.choose`): the top scores, a
   stochastic batch (Gumbel-top-k) or a diverse batch (class round-robin,
   k-means clusters of the embeddings).

One random stream serves a query: ``check_random_state(random_state)`` draws
the candidates first, then whatever the selection needs (Gumbel noise, the
k-means seed), so the same model, pool and ``random_state`` always give the
same query. Ties are broken deterministically: among equal scores the smaller
pool index comes first (stable sort).
"""

import numbers
from dataclasses import replace

import numpy as np
from sklearn.pipeline import Pipeline
from scipy.sparse import issparse
from sklearn.utils import _safe_indexing, check_random_state

from .._checks import check_row_indices
from .._data import as_image_array
from ..data import DatasetArray
from ..distributed import broadcast_object, gather_rows, world

__all__ = ["get_estimator", "validate_pool", "validate_rows", "draw_candidates",
           "prepare_candidates", "select", "check_batch_size", "check_method_chunk",
           "method_scores", "method_outputs", "row_chunks", "take_rows", "module_slots",
           "count_rows", "resolve"]

def get_estimator(classifier, strategy, *X):
    """Return the estimator behind ``classifier`` (and ``X`` as that estimator takes it).

    A modAL learner is unwrapped to its ``estimator``. A scikit-learn
    :class:`~sklearn.pipeline.Pipeline` (also inside a learner) is resolved
    to its final step, and each ``X`` is transformed by the steps before it
    (``pipeline[:-1].transform(X)``, as ``Pipeline.predict_proba`` does), so
    that a strategy scores the transformed samples with the final net
    itself (its taps, embeddings, critic). The transformed pool keeps the
    rows of ``X``: indices, ``pool_indices`` and the strategy's result are
    rows of the pool as given.

    Parameters
    ----------
    classifier : estimator, Pipeline or modAL learner
        A modAL ``ActiveLearner`` (anything with ``estimator`` and
        ``query_strategy``), a ``Pipeline`` or the estimator itself.
    strategy : str
        Name of the calling strategy, for error messages.
    *X : array-like or None
        Samples the strategy reads (the pool, the labeled set); ``None`` is
        passed on as it is.

    Returns
    -------
    estimator : object
        Without ``X``.
    (estimator, *X) : tuple
        With ``X``: the estimator, then each ``X`` (unchanged without a
        Pipeline; else transformed when first validated, so that the
        strategy checks its options first).

    Raises
    ------
    TypeError
        For ``None``, a modAL committee, or a Pipeline without steps. (A
        step that changes the number of samples raises ``ValueError`` when
        the pool is validated.)
    """
    if classifier is None:
        raise TypeError(f"{strategy} needs a fitted estimator or a modAL learner as first "
                        "argument, got None")
    if hasattr(classifier, "learner_list"):
        raise TypeError(
            f"{strategy} scores the pool with one estimator; a modAL committee "
            f"({type(classifier).__name__}) is not supported: query with one of its learners")
    est = classifier
    if hasattr(classifier, "query_strategy") and hasattr(classifier, "estimator"):
        est = classifier.estimator
    if not isinstance(est, Pipeline):
        return (est, *X) if X else est
    if not est.steps:
        raise TypeError(f"{strategy} got a Pipeline without steps")
    transform = est[:-1].transform if len(est.steps) > 1 else None
    est = est.steps[-1][1]
    if not X:
        return est
    return (est, *(x if x is None or transform is None else _Transformed(x, transform, strategy)
                   for x in X))


class _Transformed:
    """Samples to be transformed by a Pipeline's steps before its last, once, when read.

    :func:`get_estimator` returns the pool as one, so that a strategy checks
    its options before the transform runs; :func:`resolve` (called by every
    validation of the pool: :func:`validate_pool`, :func:`validate_rows`,
    :func:`pool_size`) transforms it.
    """

    def __init__(self, X, transform, strategy):
        self.X, self.transform, self.strategy = X, transform, strategy
        self._out = None

    def resolve(self):
        if self._out is None:
            n = _n_samples(self.X)
            out = self.transform(self.X)
            if _n_samples(out) != n:
                raise ValueError(
                    f"the Pipeline's steps before its last turned {n} samples into "
                    f"{_n_samples(out)}; {self.strategy} needs one transformed row per sample")
            self._out = out
        return self._out


def resolve(X):
    """``X``, or the transformed samples for what :func:`get_estimator` returned."""
    return X.resolve() if isinstance(X, _Transformed) else X


def _n_samples(X):
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(X)


def require_method(est, method, strategy, needs):
    """Raise ``TypeError`` unless ``est`` has a callable ``method``.

    Parameters
    ----------
    est : object
        The unwrapped estimator.
    method : str
        Required method name.
    strategy : str
        Name of the calling strategy.
    needs : str
        What kind of estimator provides it (e.g. ``"a CriticLossNet"``).
    """
    if not callable(getattr(est, method, None)):
        raise TypeError(
            f"{strategy} needs {needs} (an estimator with a `{method}(X)` method), "
            f"got {type(est).__name__}")


def require_module(est, strategy):
    """Raise ``TypeError`` unless ``est`` is a skorch-style net of this package.

    The model-based strategies run ``est.module_`` themselves, batch by batch,
    on ``est.device``; they need :class:`~sklearn_crtcl.ResNetClassifier`
    (or a subclass).
    """
    missing = [a for a in ("_validate_X", "_eval_mode", "initialize_module")
               if not hasattr(est, a)]
    if missing:
        raise TypeError(
            f"{strategy} needs a ResNetClassifier (or a subclass, e.g. CriticLossNet) to run "
            f"its network; got {type(est).__name__}, which lacks {', '.join(missing)}")


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or value < 1):
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_batch_size(batch_size, est):
    """Return the scoring batch size: ``batch_size`` or the estimator's ``batch_size``.

    Parameters
    ----------
    batch_size : int or None
        Requested size.
    est : object
        Estimator whose ``batch_size`` is the default (128 if it has none).

    Returns
    -------
    int
    """
    batch_size = _check_positive_int(batch_size, "batch_size", allow_none=True)
    if batch_size is None:
        batch_size = getattr(est, "batch_size", None)
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            batch_size = 128
    return int(batch_size)


def check_method_chunk(batch_size, est):
    """Rows per call of an estimator's own scoring method (``predict_correctness``...).

    ``batch_size`` if given, else 8 batches of the estimator's ``batch_size``:
    the method batches its forward passes itself, so bigger calls only save
    per-call overhead (validation, switching to eval mode).

    Parameters
    ----------
    batch_size : int or None
        Requested rows per call.
    est : object
        The estimator.

    Returns
    -------
    int
    """
    if batch_size is None:
        return 8 * check_batch_size(None, est)
    return check_batch_size(batch_size, est)


def validate_pool(est, X_pool, name="X_pool"):
    """Validate the pool once and view it as images ``(n, C, H, W)``.

    Uses the estimator's own ``_validate_X`` (shape against the fitted data,
    finiteness chunk by chunk) when it has one, else
    :func:`~sklearn_crtcl._data.as_image_array`. A numpy array or memory map
    is only viewed, never copied.

    Parameters
    ----------
    est : object
        The unwrapped estimator.
    X_pool : array-like
        The unlabeled pool.
    name : str, default="X_pool"
        Name used in error messages.

    Returns
    -------
    X4 : ndarray of shape (n, C, H, W)
    """
    X_pool = resolve(X_pool)
    if hasattr(est, "_validate_X"):
        return est._validate_X(X_pool, reset=False, name=name)
    X4, _ = as_image_array(X_pool, getattr(est, "input_shape", None), name=name)
    return X4


def validate_rows(est, X, name="X_pool"):
    """Validate samples for an estimator's own methods (``predict_proba``, ``embed``).

    A net of this package validates them as images (:func:`validate_pool`);
    any other estimator gets them as given, as modAL's strategies pass them:
    a sparse matrix, a DataFrame, a list of texts for a text pipeline, rows
    with NaN for a classifier that accepts them. Their content is the
    estimator's business (its ``predict_proba`` raises its own error); only
    their number is checked here, and the rows are taken with scikit-learn's
    ``_safe_indexing`` (:func:`take_rows`), so a numpy array is not copied.

    Parameters
    ----------
    est : object
        The unwrapped estimator.
    X : array-like
        The samples.
    name : str, default="X_pool"
        Name used in error messages.

    Returns
    -------
    X : ndarray or array-like
        Images ``(n, C, H, W)`` for a net of this package, else ``X`` itself.

    Raises
    ------
    ValueError
        For ``None``, an object without a length, or no samples.
    """
    X = resolve(X)
    if hasattr(est, "_validate_X"):
        return validate_pool(est, X, name=name)
    pool_size(X, name=name)  # only their number is checked
    return X


def count_rows(X4):
    """The number of samples of what a ``validate`` function returned: the
    validated pool (any array-like) or, for random sampling, that number."""
    return X4 if isinstance(X4, (int, np.integer)) else _n_samples(X4)


def pool_size(X_pool, name="X_pool"):
    """Number of samples of a pool that is not validated as images.

    Parameters
    ----------
    X_pool : array-like
        The samples: anything with a ``shape`` or a length.
    name : str, default="X_pool"
        Name used in error messages.

    Returns
    -------
    n : int

    Raises
    ------
    ValueError
        For ``None``, an object without a length, or no samples.
    """
    X_pool = resolve(X_pool)
    if X_pool is None:
        raise ValueError(f"{name} is None; expected an array of samples")
    try:
        n = _n_samples(X_pool)
    except TypeError as exc:
        raise ValueError(f"{name} must be an array-like of samples, got "
                         f"{type(X_pool).__name__}") from exc
    if n == 0:
        raise ValueError(f"{name} is empty (0 samples): there is nothing to score")
    return n


def draw_candidates(n_pool, subset_size, random_state):
    """Draw the random candidate subset of the pool.

    Parameters
    ----------
    n_pool : int
        Number of samples in the pool.
    subset_size : int or None
        Number of candidates; ``None`` or ``>= n_pool`` means the whole pool.
    random_state : int, RandomState instance or None
        Seed of the draw (:func:`sklearn.utils.check_random_state`).

    Returns
    -------
    candidates : ndarray of int or None
        Sorted indices into the pool, or ``None`` for the whole pool.
    """
    if subset_size is None or subset_size >= n_pool:
        return None
    rng = check_random_state(random_state)
    return np.sort(rng.choice(n_pool, size=subset_size, replace=False)).astype(np.intp)


def top_k(scores, n_instances, largest):
    """Positions of the ``n_instances`` best scores, best first, ties by position.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Scores; NaN always ranks last.
    n_instances : int
        How many positions to return.
    largest : bool
        Highest scores first if True, lowest first otherwise.

    Returns
    -------
    ndarray of int of shape (n_instances,)
    """
    scores = np.asarray(scores, dtype=np.float64)
    key = -scores if largest else scores
    # NaN sorts last in numpy; a stable sort keeps the smaller index first on ties
    return np.argsort(key, kind="stable")[:n_instances]


def check_pool_indices(pool_indices, n_rows):
    """Validate ``pool_indices``: distinct row indices of an array of ``n_rows`` rows.

    Parameters
    ----------
    pool_indices : array-like of int or None
        The rows of ``X_pool`` that form the pool.
    n_rows : int
        Rows of ``X_pool``.

    Returns
    -------
    ndarray of intp or None
    """
    if pool_indices is None:
        return None
    return check_row_indices(pool_indices, n_rows, "pool_indices", "X_pool")


def prepare_candidates(est, X_pool, n_instances, subset_size=None, random_state=None,
                       validate=validate_pool, pool_indices=None):
    """Check the sizes, validate the pool, draw the candidates: the start of every query.

    Parameters
    ----------
    est : object
        The unwrapped estimator.
    X_pool : array-like
        The pool.
    n_instances : int
        Number of samples to select (positive, at most the number of
        candidates).
    subset_size : int or None, default=None
        Number of random candidates (``None``: the whole pool).
    random_state : int, RandomState instance or None, default=None
        Seed of the query.
    validate : callable, default=validate_pool
        ``validate(est, X_pool) -> X4``, the validated pool (or just its
        number of samples, for strategies that do not read it).
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool (the rest, e.g. the
        labeled images of a training set, is never read): the candidates
        are drawn among them, and the returned indices are rows of
        ``X_pool``. The same query as on ``X_pool[pool_indices]``, mapped
        back, without copying the pool.

    Returns
    -------
    n_instances : int
    X4 : ndarray or int
        What ``validate`` returned.
    candidates : ndarray of int or None
        Row indices of the candidates in ``X_pool`` (sorted, or in the order
        of ``pool_indices``), ``None`` for all rows.
    rng : numpy.random.RandomState
        The query's random stream, after the candidate draw: every later
        random choice of the query must come from it.
    """
    n_instances = _check_positive_int(n_instances, "n_instances")
    subset_size = _check_positive_int(subset_size, "subset_size", allow_none=True)
    X4 = validate(est, X_pool)
    n_rows = count_rows(X4)
    pool_indices = check_pool_indices(pool_indices, n_rows)
    n_pool = n_rows if pool_indices is None else len(pool_indices)
    n_candidates = n_pool if subset_size is None else min(subset_size, n_pool)
    if n_instances > n_candidates:
        where = (f"the pool has {n_pool} samples" if n_candidates == n_pool
                 else f"subset_size={subset_size} candidates are drawn")
        raise ValueError(f"n_instances={n_instances} is larger than the number of candidates: "
                         f"{where}")
    rng = check_random_state(random_state)
    candidates = draw_candidates(n_pool, subset_size, rng)
    if pool_indices is not None:
        candidates = pool_indices if candidates is None else pool_indices[candidates]
    if world()[1] > 1:
        # a distributed query: every process continues with process 0's
        # candidates and random stream, so all return process 0's indices
        candidates, rng = broadcast_object((candidates, rng))
    return n_instances, X4, candidates, rng


def take_rows(source, rows):
    """The rows ``rows`` of ``source``: scikit-learn's ``_safe_indexing`` for a
    DataFrame, a sparse matrix or a list (of the same type), ``source[rows]``
    for an array, memory map or tensor, a stacked array for another sequence.

    Parameters
    ----------
    source : array-like
        Samples.
    rows : ndarray of int
        Row indices.

    Returns
    -------
    array-like
    """
    if hasattr(source, "iloc") or issparse(source) or isinstance(source, list):
        return _safe_indexing(source, rows)  # rows of a DataFrame, a sparse matrix, a list
    if hasattr(source, "shape"):
        return source[rows]  # an array, a memory map, a tensor
    return np.asarray([source[int(i)] for i in rows])


def method_outputs(method, X, rows, chunk):
    """Call ``method`` on ``X[rows]``, ``chunk`` rows at a time; concatenate its outputs.

    Parameters
    ----------
    method : callable
        ``method(X_chunk)`` returning an array, or a tuple of arrays, with
        one row per sample (``predict_proba``, ``embed``...).
    X : array-like
        Samples (e.g. the validated pool).
    rows : ndarray of int or None
        Rows to use (all rows if None).
    chunk : int
        Rows per call.

    Returns
    -------
    ndarray or tuple of ndarray
        Outputs in the order of ``rows``.
    """
    if world()[1] > 1:  # each process computes its share of the rows
        rows = np.arange(_n_samples(X)) if rows is None else np.asarray(rows)
        return gather_rows(lambda share: _local_method_outputs(method, X, share, chunk), rows)
    return _local_method_outputs(method, X, rows, chunk)


def row_chunks(X, rows, chunk):
    """``(start, stop, X[rows[start:stop]])`` for consecutive chunks of rows.

    An array (or memory map) is sliced or indexed one chunk at a time; a
    :class:`~sklearn_crtcl.data.DatasetArray` is read by one ``DataLoader``
    over all the rows (its workers prefetch the next chunks).

    Parameters
    ----------
    X : array-like or DatasetArray
        Samples.
    rows : ndarray of int or None
        Rows to visit, in order (all rows if None).
    chunk : int
        Rows per chunk.

    Yields
    ------
    tuple of (int, int, ndarray)
    """
    n = _n_samples(X) if rows is None else len(rows)
    if isinstance(X, DatasetArray):
        start = 0
        for block in X._iter_batches(chunk, None, rows):
            yield start, start + len(block), block.numpy()
            start += len(block)
        return
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if rows is not None:
            block = take_rows(X, rows[start:stop])
        elif hasattr(X, "iloc"):  # a DataFrame's rows by position, whatever its index
            block = X.iloc[start:stop]
        else:  # an array, a memory map, a sparse matrix, a list
            block = X[start:stop]
        yield start, stop, block


def _local_method_outputs(method, X, rows, chunk):
    parts = []
    for start, stop, block in row_chunks(X, rows, chunk):
        out = method(block)
        items = out if isinstance(out, tuple) else (out,)
        for item in items:
            if len(item) != stop - start:
                raise ValueError(f"{getattr(method, '__name__', 'the method')} returned "
                                 f"{len(item)} rows for {stop - start} samples")
        parts.append(tuple(np.asarray(item) for item in items))
    if not parts:  # pragma: no cover - pools are never empty here
        raise ValueError("no samples")
    merged = tuple(np.concatenate(p, axis=0) for p in zip(*parts))
    return merged if isinstance(out, tuple) else merged[0]


def select(est, X_pool, n_instances, score, *, largest, subset_size=None, random_state=None,
           validate=validate_pool, selection="topk", beta=1.0, cluster_pool=10,
           strategy="the strategy", pool_indices=None, shard=True, return_proposal=False):
    """The body shared by every strategy: validate, draw, score, pick.

    Parameters
    ----------
    est : object
        The unwrapped estimator (already checked for what the strategy needs).
    X_pool : array-like
        The pool.
    n_instances : int
        Number of samples to select (positive, at most the number of
        candidates).
    score : callable
        ``score(X4, candidates) -> ndarray`` of one score per candidate
        (per pool sample when ``candidates`` is None), where ``X4`` is what
        ``validate`` returned.
    largest : bool
        Select the highest scores (True) or the lowest (False).
    subset_size : int or None, default=None
        Score only this many random candidates.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the selection's draws.
    validate : callable, default=validate_pool
        ``validate(est, X_pool) -> X4``, the validated pool (or just its
        number of samples, for strategies that do not read it).
    selection : str, default="topk"
        One of :data:`~sklearn_crtcl.query.selection.SELECTIONS`.
    beta : float, default=1.0
        Coldness of the stochastic selections.
    cluster_pool : int, default=10
        ``selection="cluster"`` clusters the ``cluster_pool * n_instances``
        best candidates.
    strategy : str, default="the strategy"
        Name of the calling strategy, for error messages.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool (see
        :func:`prepare_candidates`).
    shard : bool, default=True
        In a distributed job (:mod:`sklearn_crtcl.distributed`), each process
        scores its share of the candidates and the scores are gathered.
        ``False`` for scores that are not a function of each row (random
        draws from the query's stream): process 0's scores are used.
    return_proposal : bool, default=False
        Also return the :class:`~sklearn_crtcl.query.Proposal` of a
        stochastic selection, its ``candidates`` mapped to rows of
        ``X_pool`` (checked with the other options, before any work).

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, most preferred first.
    proposal : Proposal
        Only with ``return_proposal=True``.
    """
    from .selection import check_selection, choose  # (selection.py imports this module)

    selection, beta, cluster_pool = check_selection(selection, beta, cluster_pool, est,
                                                    strategy, return_proposal=return_proposal)
    n_instances, X4, candidates, rng = prepare_candidates(
        est, X_pool, n_instances, subset_size, random_state, validate, pool_indices)
    n_pool = count_rows(X4)
    n_candidates = n_pool if candidates is None else len(candidates)
    if world()[1] > 1 and shard:  # each process scores its share of the candidates
        rows = np.arange(n_pool) if candidates is None else candidates
        scores = gather_rows(
            lambda share: np.asarray(score(X4, share), dtype=np.float64).reshape(-1), rows)
    else:
        scores = np.asarray(score(X4, candidates), dtype=np.float64).reshape(-1)
        if world()[1] > 1:  # scores drawn from the stream: process 0's, and its stream
            scores, rng = broadcast_object((scores, rng))
    if scores.shape[0] != n_candidates:  # pragma: no cover - guards the scoring functions
        raise RuntimeError(f"scoring returned {scores.shape[0]} scores for {n_candidates} "
                           "candidates")
    source = X4 if hasattr(X4, "shape") else resolve(X_pool)  # random may not validate
    chunk = check_method_chunk(None, est)

    def pool_rows(positions):
        return positions if candidates is None else candidates[positions]

    def proba(positions):
        return method_outputs(est.predict_proba, source, pool_rows(positions), chunk)

    def embed(positions):
        return method_outputs(est.embed, source, pool_rows(positions), chunk)

    best = choose(scores, n_instances, largest=largest, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, rng=rng, proba=proba, embed=embed,
                  return_proposal=bool(return_proposal))
    if return_proposal:
        best, proposal = best
        proposal = replace(proposal, candidates=np.asarray(pool_rows(proposal.candidates),
                                                           dtype=np.intp))
    best = pool_rows(best)
    if len(best) != n_instances or len(np.unique(best)) != n_instances:  # pragma: no cover
        raise RuntimeError(f"selection {selection!r} returned {best!r}")
    best = np.asarray(best, dtype=np.intp)
    return (best, proposal) if return_proposal else best


def method_scores(method, X4, candidates, batch_size):
    """Call an estimator's scoring method on the pool, one chunk of rows at a time.

    Only ``batch_size`` rows are ever gathered (``X4[candidates[i:i + batch_size]]``
    or a slice), so scoring a candidate subset of a memory-mapped pool reads
    just those rows and never copies the pool; the estimator's own batching
    and device handling do the rest.

    Parameters
    ----------
    method : callable
        ``method(X_chunk) -> ndarray of shape (len(X_chunk),)``, e.g. a bound
        ``predict_correctness``.
    X4 : ndarray of shape (n, C, H, W)
        The validated pool.
    candidates : ndarray of int or None
        Rows to score (all rows if None).
    batch_size : int
        Rows per call.

    Returns
    -------
    scores : ndarray of shape (n_candidates,)
    """
    n = count_rows(X4) if candidates is None else len(candidates)
    out = np.empty(n, dtype=np.float64)
    for start, stop, rows in row_chunks(X4, candidates, batch_size):
        values = np.asarray(method(rows), dtype=np.float64).reshape(-1)
        if values.shape[0] != stop - start:
            raise ValueError(f"{getattr(method, '__name__', 'the scoring method')} returned "
                             f"{values.shape[0]} scores for {stop - start} samples")
        out[start:stop] = values
    return out


def module_slots(module, kind):
    """``(name, tensor)`` for every (submodule, attribute) holding a parameter or buffer.

    A module used at two places is listed once (torch.func cannot swap one
    attribute under two names), a tensor shared by two modules twice.
    """
    out = []
    for prefix, sub in module.named_modules():
        named = (sub.named_parameters(recurse=False) if kind == "parameters"
                 else sub.named_buffers(recurse=False))
        for local, tensor in named:
            if tensor is not None:
                out.append((f"{prefix}.{local}" if prefix else local, tensor))
    return out
