"""Cyclic Output Discrepancy (TOD, Huang et al., ICCV 2021).

Temporal Output Discrepancy estimates the loss of an unlabeled sample from
how much the model's output moves during training. Its active-learning form,
the cyclic output discrepancy, compares the model after this active-learning
cycle, :math:`w_c`, with the model after the previous one, :math:`w_{c-1}`:

.. math::

    D_{\\text{cyclic}}(x \\mid w_c, w_{c-1}) =
    \\big\\lVert \\operatorname{softmax} f(x; w_c) -
    \\operatorname{softmax} f(x; w_{c-1}) \\big\\rVert_2 ,

and queries the samples with the largest discrepancy. In the first cycle
:math:`w_{c-1}` is the initial (random) model.

No set-up is needed: :class:`~sklearn_crtcl.ResNetClassifier` (and every
subclass) keeps ``previous_state_dict_``, a CPU copy of its weights as they
were when the last ``fit`` began, i.e. at the end of the previous cycle.
"""

import weakref

import numpy as np
import torch
from torch.func import functional_call

from .._data import iter_batches
from .._modal_compat import package_strategy
from ._common import (check_batch_size, get_estimator, module_slots, require_module, select,
                      validate_pool)
from .selection import DEFAULT_SELECTION, selection_doc

__all__ = ["cyclic_output_discrepancy", "cod_sampling"]

# estimator -> (snapshot dict it was built from, device, the snapshot on that device)
_DEVICE_SNAPSHOTS = weakref.WeakKeyDictionary()


def _check_estimator(est, strategy):
    require_module(est, strategy)
    if getattr(est, "initialized_", False) and not hasattr(est, "previous_state_dict_"):
        raise TypeError(
            f"{strategy} needs the weights of the previous cycle: {type(est).__name__} has no "
            "previous_state_dict_ (ResNetClassifier and its subclasses set it in fit, and "
            "load_params restores it from the f_params files they save; after loading a "
            "file without it, fit again: that cycle compares with the loaded weights)")


def _check_ord(ord):
    if ord not in (1, 2):
        raise ValueError(f"ord must be 1 or 2, got {ord!r}")
    return ord


def _previous_state(est):
    """``previous_state_dict_`` on the estimator's device, cached per snapshot."""
    snapshot = getattr(est, "previous_state_dict_", None)
    if not isinstance(snapshot, dict):
        raise TypeError(
            f"{type(est).__name__} has no previous_state_dict_; fit it first (cod_sampling "
            "compares the model with its weights at the start of the last fit)")
    current = est.module_.state_dict()
    if set(snapshot) != set(current) or any(
            tuple(snapshot[k].shape) != tuple(v.shape) for k, v in current.items()):
        raise ValueError(
            "previous_state_dict_ does not match the current module_ (was the module "
            "re-initialised with another architecture?); fit the estimator again")
    device = next(iter(current.values())).device if current else torch.device("cpu")
    cached = _DEVICE_SNAPSHOTS.get(est)
    if cached is not None and cached[0] is snapshot and cached[1] == device:
        return cached[2]
    # one name per (submodule, attribute): what torch.func.functional_call swaps
    slots = [name for kind in ("parameters", "buffers")
             for name, _ in module_slots(est.module_, kind) if name in snapshot]
    on_device = {k: snapshot[k].to(device) for k in slots}
    try:
        _DEVICE_SNAPSHOTS[est] = (snapshot, device, on_device)
    except TypeError:  # an unhashable estimator: no cache
        pass
    return on_device


def _logits(out):
    if isinstance(out, torch.Tensor):
        return out
    raise TypeError(f"cod_sampling expects module_ to return a tensor of logits, got "
                    f"{type(out).__name__}")


def _cod_scores(est, X4, candidates, batch_size, ord):
    previous = _previous_state(est)
    module = est.module_
    out = np.empty(X4.shape[0] if candidates is None else len(candidates), dtype=np.float64)
    start = 0
    # the net's predict_proba rule (softmax of logits, or the output of a module
    # that returns probabilities), so that D compares what predict_proba returns
    to_proba = est._output_to_proba()
    with est._eval_mode(), torch.no_grad():
        for xb in iter_batches(X4, batch_size, est.device, indices=candidates):
            now = to_proba(_logits(module(xb)))
            before = to_proba(_logits(functional_call(module, previous, (xb,),
                                                      tie_weights=False)))
            d = torch.linalg.vector_norm(now - before, ord=ord, dim=1)
            out[start:start + len(d)] = d.cpu().numpy()
            start += len(d)
    return out


def cyclic_output_discrepancy(classifier, X, *, ord=2, batch_size=None):
    """Cyclic output discrepancy of each sample.

    .. math::

        D(x) = \\lVert \\operatorname{softmax} f(x; w_c) -
        \\operatorname{softmax} f(x; w_{c-1}) \\rVert_{\\text{ord}}

    where :math:`w_c` are the current weights and :math:`w_{c-1}` the
    weights when the last ``fit`` began (``previous_state_dict_``). Both
    models run in eval mode on the estimator's device, one batch at a time.

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or subclass), or a
        modAL learner wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read one batch at a time).
    ord : {1, 2}, default=2
        Norm of the difference of the probability vectors. The reference code
        of TOD scores :math:`\\tfrac12\\lVert\\cdot\\rVert_2^2`, which ranks
        samples exactly as ``ord=2``.
    batch_size : int, optional
        Samples per forward pass; defaults to the estimator's ``batch_size``.

    Returns
    -------
    discrepancy : ndarray of shape (n,)
        Zero for every sample when the model has not changed.
    """
    est, X = get_estimator(classifier, "cyclic_output_discrepancy", X)
    _check_estimator(est, "cyclic_output_discrepancy")
    ord = _check_ord(ord)
    batch_size = check_batch_size(batch_size, est)
    X4 = validate_pool(est, X)
    return _cod_scores(est, X4, None, batch_size, ord)


@package_strategy
@selection_doc
def cod_sampling(classifier, X_pool, n_instances=1, *, subset_size=None, random_state=None,
                 batch_size=None, ord=2, selection=DEFAULT_SELECTION, beta=1.0, cluster_pool=10,
                 pool_indices=None, return_proposal=False):
    """Query the samples with the largest cyclic output discrepancy (TOD's COD).

    .. math::

        S = \\operatorname{arg\\,max}_{S \\subset U,\\, |S| = n} \\sum_{x \\in S}
        \\lVert \\operatorname{softmax} f(x; w_c) -
        \\operatorname{softmax} f(x; w_{c-1}) \\rVert_2

    Works as a plain modAL query strategy: the estimator remembers the
    weights it had when its last ``fit`` began (``previous_state_dict_``),
    which in an ``ActiveLearner`` loop are the weights after the previous
    cycle (the initial weights in the first cycle).

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or any subclass:
        ``CriticLossNet``, ``LossPredictionNet``, ``TODNet``), or a modAL
        ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool (TOD
        uses 10,000); ``None`` scores the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the selection's draws.
    batch_size : int, optional
        Samples per forward pass; defaults to the estimator's ``batch_size``.
    ord : {1, 2}, default=2
        Norm of the difference of the probability vectors.
    {selection_params}

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, most preferred first: with
        ``selection="topk"``, largest discrepancy first (ties: smaller index
        first).
    {proposal_return}

    Raises
    ------
    TypeError
        If the estimator is not a net of this package or has no
        ``previous_state_dict_``.
    ValueError
        For an empty or invalid pool, ``n_instances`` larger than the number
        of candidates, or an invalid ``ord``, ``selection``, ``beta``,
        ``cluster_pool`` or ``return_proposal``.

    Notes
    -----
    The reference implementation of TOD takes the samples with the *lowest*
    discrepancy in the first cycle, comparing against an independently
    initialised network; here the first cycle is compared with the model's
    own initial weights and the largest discrepancies are taken in every
    cycle, as the paper describes.
    """
    est, X_pool = get_estimator(classifier, "cod_sampling", X_pool)
    _check_estimator(est, "cod_sampling")
    ord = _check_ord(ord)
    batch_size = check_batch_size(batch_size, est)

    def score(X4, candidates):
        return _cod_scores(est, X4, candidates, batch_size, ord)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=random_state, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, strategy="cod_sampling",
                  pool_indices=pool_indices, return_proposal=return_proposal)
