"""Gradient-norm sampling (Ent-GradNorm, as used in the query phase of LPLgrad).

Each unlabeled sample's predictive entropy is treated as its loss,

.. math::

    H(x) = -\\sum_{k=1}^{K} p_k(x) \\log p_k(x), \\qquad
    p(x) = \\operatorname{softmax} f(x; w),

its gradient with respect to all the model's parameters is taken (model in
eval mode, so batch normalisation uses its running statistics) and the
sample is scored by the size of that gradient. As in the reference
implementations, the size is the sum over parameter tensors :math:`w_t` of
the L2 norm of each tensor's gradient (``norm="sum"``),

.. math::

    g(x) = \\sum_t \\lVert \\nabla_{w_t} H(x) \\rVert_2 ,

or the L2 norm of the whole gradient (``norm="global"``),
:math:`\\sqrt{\\sum_t \\lVert \\nabla_{w_t} H(x) \\rVert_2^2}`. The samples with
the largest :math:`g(x)` are queried.

The per-sample gradients are exact and batched, never a loop over samples.
For the layers of a ResNet (``Conv2d``, ``Linear``, ``BatchNorm``) one
batched forward and one backward pass give each layer's input and
output gradient, from which each sample's gradient norm is assembled layer
by layer (a per-sample gradient is only ever held for one layer). Networks
with other parametrised layers fall back to :func:`torch.func.vmap` of
:func:`torch.func.grad`.
"""

import weakref

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from .._data import iter_batches
from .._modal_compat import package_strategy
from ._common import (check_batch_size, get_estimator, module_slots, require_module, select,
                      validate_pool)
from .selection import DEFAULT_SELECTION, selection_doc

__all__ = ["entropy_gradient_norm", "gradient_norm_sampling"]

_NORMS = ("sum", "global")
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# bytes of per-sample gradients the vmap fallback may hold at once
_VMAP_BUDGET = 256 * 2 ** 20


def _entropy(logits):
    """Entropy of the softmax of ``logits`` (one value per row)."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def _trainable(module):
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]


# --------------------------------------------------------------------------- layer rules
def _layer_supported(layer):
    """Whether the per-layer rules below compute this layer's per-sample gradients."""
    kind = type(layer)
    if kind is nn.Linear:
        return True
    if kind is nn.Conv2d:
        return (layer.groups == 1 and layer.padding_mode == "zeros"
                and not isinstance(layer.padding, str))
    if kind in _BN_TYPES:
        # eval mode uses the running statistics only when they are tracked
        return layer.track_running_stats and layer.running_mean is not None
    return False


def _hook_plan(module):
    """Layers with trainable parameters, or None if one of them has no rule."""
    layers, seen = [], set()
    for layer in module.modules():
        params = [p for p in layer.parameters(recurse=False) if p.requires_grad]
        if not params:
            continue
        if not _layer_supported(layer) or any(id(p) in seen for p in params):
            return None
        seen.update(id(p) for p in params)
        layers.append(layer)
    return layers


def _conv_weight_sq(a, g, layer):
    """Squared norm of each sample's gradient of a Conv2d weight.

    ``a``: layer input (B, Cin, H, W); ``g``: gradient of the output
    (B, Cout, Ho, Wo). The gradient of sample b is
    ``G_b[o, i, p, q] = sum_l g_b[o, l] x_b[i, l + (p, q)]`` (x zero-padded).
    Three exact ways, the cheapest for the layer's shape:

    * small output maps: Gram matrices of the patches,
      ``||G_b||^2 = sum_{l, l'} (g_b^T g_b)_{l l'} (U_b^T U_b)_{l l'}`` with
      ``U_b`` the unfolded input (never forms ``G_b``);
    * large output maps: the weight gradient of a grouped convolution, the
      batch folded into the channels with one group per sample;
    * in between: one batched matrix product per kernel offset ``(p, q)``.
    """
    B, c_in, h, w = a.shape
    c_out, _, kh, kw = layer.weight.shape
    ho, wo = g.shape[2], g.shape[3]
    L, K = ho * wo, c_in * kh * kw
    G = g.reshape(B, c_out, L)
    if L * L * (c_out + K) < c_out * L * K:
        U = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        gram_g = torch.bmm(G.transpose(1, 2), G)
        gram_u = torch.bmm(U.transpose(1, 2), U)
        return (gram_g * gram_u).sum(dim=(1, 2)).clamp_min(0)
    if L >= 256:
        per_sample = torch.nn.grad.conv2d_weight(
            a.reshape(1, B * c_in, h, w), (B * c_out, c_in, kh, kw),
            g.reshape(1, B * c_out, ho, wo), stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, groups=B)
        return per_sample.reshape(B, -1).pow(2).sum(dim=1)
    ph, pw = layer.padding
    sh, sw = layer.stride
    dh, dw = layer.dilation
    xp = F.pad(a, (pw, pw, ph, ph)) if (ph or pw) else a
    sq = a.new_zeros(B)
    for p in range(kh):
        for q in range(kw):
            xs = xp[:, :, p * dh: p * dh + sh * (ho - 1) + 1: sh,
                    q * dw: q * dw + sw * (wo - 1) + 1: sw]
            sq += torch.bmm(G, xs.reshape(B, c_in, L).transpose(1, 2)).pow(2).sum(dim=(1, 2))
    return sq


def _layer_sq_norms(layer, a, g):
    """``{parameter: (B,) squared norm of each sample's gradient}`` for one layer."""
    B = a.shape[0]
    out = {}
    if isinstance(layer, nn.Linear):
        if a.dim() == 2:
            g_sq = g.pow(2).sum(dim=1)
            out[layer.weight] = g_sq * a.pow(2).sum(dim=1)
        else:
            a2 = a.reshape(B, -1, a.shape[-1])
            g2 = g.reshape(B, -1, g.shape[-1])
            out[layer.weight] = torch.bmm(g2.transpose(1, 2), a2).pow(2).sum(dim=(1, 2))
            g_sq = g2.sum(dim=1).pow(2).sum(dim=1)
        if layer.bias is not None:
            out[layer.bias] = g_sq
    elif isinstance(layer, nn.Conv2d):
        out[layer.weight] = _conv_weight_sq(a, g, layer)
        if layer.bias is not None:
            out[layer.bias] = g.sum(dim=(2, 3)).pow(2).sum(dim=1)
    else:  # batch norm in eval mode: y = w * (x - mean) / sqrt(var + eps) + b, so
        # dL/dw = sum_spatial g * x / s - mean / s * sum_spatial g, s = sqrt(var + eps)
        g3 = g.reshape(B, g.shape[1], -1)
        gb = g3.sum(dim=2)
        if layer.weight is not None:
            ga = torch.linalg.vecdot(g3, a.reshape(B, a.shape[1], -1), dim=2)
            inv = torch.rsqrt(layer.running_var.float() + layer.eps)
            gw = (ga - layer.running_mean.float() * gb) * inv
            out[layer.weight] = gw.pow(2).sum(dim=1)
        if layer.bias is not None:
            out[layer.bias] = gb.pow(2).sum(dim=1)
    return out


class _Fallback(Exception):
    """The layer rules do not apply to this forward pass (a layer used twice)."""


def _sq_norms_hooks(module, xb, layers, params, copy_outputs=False):
    """(B, n_params) squared per-sample gradient norms, with hooks.

    A forward hook records each layer's input and puts a gradient hook on its
    output; one backward pass of the summed entropies (to the input, so that
    it visits the whole graph) fires each gradient hook as soon as the
    output's gradient is complete, which turns the layer's input and output
    gradient into per-sample squared norms and lets both go. Neither the
    layers' outputs nor their gradients are kept beyond what autograd keeps
    for a plain backward pass. Returns None when an output was modified in
    place after its layer (run again with ``copy_outputs``).
    """
    records = []
    hook_handles = []
    index = {id(p): j for j, p in enumerate(params)}
    sq = torch.zeros(xb.shape[0], len(params), dtype=torch.float32, device=xb.device)

    def gradient_hook(i):
        def hook(g):
            layer, a = records[i][0], records[i][1]
            records[i][1] = None  # free the layer's input
            with torch.no_grad():
                for p, value in _layer_sq_norms(layer, a.float(), g.float()).items():
                    sq[:, index[id(p)]] = value
        return hook

    def forward_hook(layer, inputs, output):
        # a weak reference: the output stays alive only as long as the network
        # itself needs it, yet an in-place change of it can still be detected
        records.append([layer, inputs[0].detach(), weakref.ref(output), output._version])
        if output.requires_grad:
            hook_handles.append(output.register_hook(gradient_hook(len(records) - 1)))
        # with copy_outputs the rest of the network gets a copy, so that in-place
        # operations after the layer (ReLU(inplace=True)) leave `output` intact
        return output.clone() if copy_outputs else None

    x = xb.detach().requires_grad_(True)
    handles = [layer.register_forward_hook(forward_hook) for layer in layers]
    try:
        with torch.enable_grad():
            logits = module(x)
            if not isinstance(logits, torch.Tensor):
                raise TypeError("gradient_norm_sampling expects module_ to return a tensor "
                                f"of logits, got {type(logits).__name__}")
            total = _entropy(logits).sum()
        for h in handles:
            h.remove()
        if len({id(r[0]) for r in records}) != len(records):
            raise _Fallback
        for r in records:
            output = r[2]()
            if output is not None and output._version != r[3]:
                # modified in place: its gradient would be the modified tensor's
                return None
        # layers that do not influence the output get no gradient: zero norms
        torch.autograd.grad(total, x, allow_unused=True)
    finally:
        for h in handles + hook_handles:
            h.remove()
    return sq


def _sq_norms_vmap(module, xb, names, params):
    """(B, n_params) squared per-sample gradient norms, with torch.func."""
    # every slot holding a trainable tensor maps to its canonical name, so that
    # the gradient sums over all uses of a tied tensor
    canonical = {id(p): n for n, p in zip(names, params)}
    aliases = [(slot, canonical[id(p)]) for slot, p in module_slots(module, "parameters")
               if id(p) in canonical]
    others = {slot: p for slot, p in module_slots(module, "parameters") if id(p) not in canonical}
    others.update(module_slots(module, "buffers"))
    detached = {n: p.detach() for n, p in zip(names, params)}

    def entropy_of(weights, x):
        full = dict(others)
        full.update((alias, weights[name]) for alias, name in aliases)
        logits = functional_call(module, full, (x.unsqueeze(0),), tie_weights=False)
        return _entropy(logits)[0]

    per_sample_grad = vmap(grad(entropy_of), in_dims=(None, 0))
    n_values = sum(p.numel() for p in params)
    chunk = max(1, min(xb.shape[0], _VMAP_BUDGET // max(1, 4 * n_values)))
    parts = []
    for start in range(0, xb.shape[0], chunk):
        g = per_sample_grad(detached, xb[start:start + chunk])
        parts.append(torch.stack([g[n].flatten(1).float().pow(2).sum(dim=1) for n in names],
                                 dim=1))
    return torch.cat(parts, dim=0)


def per_sample_grad_sq_norms(module, xb, method="auto"):
    """Squared norm of each sample's entropy gradient, per parameter tensor.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch of images to logits; must be in eval mode (so that the
        samples of a batch are independent).
    xb : torch.Tensor of shape (B, ...)
        A batch on the module's device.
    method : {"auto", "hooks", "vmap"}, default="auto"
        ``"hooks"``: the per-layer rules (``Conv2d``, ``Linear``,
        ``BatchNorm`` with running statistics); ``"vmap"``:
        :func:`torch.func.vmap` of :func:`torch.func.grad`; ``"auto"``: hooks
        when every parametrised layer has a rule, else vmap.

    Returns
    -------
    sq_norms : torch.Tensor of shape (B, n_tensors)
        :math:`\\lVert \\nabla_{w_t} H(x_b) \\rVert_2^2` for each trainable
        parameter tensor :math:`w_t` of ``module.named_parameters()``.

    Raises
    ------
    ValueError
        If the module is in training mode or has no trainable parameter, or
        ``method="hooks"`` cannot be used.
    """
    named = _trainable(module)
    if not named:
        raise ValueError("the module has no trainable parameters: there is no gradient norm")
    names = [n for n, _ in named]
    params = [p for _, p in named]
    if method not in ("auto", "hooks", "vmap"):
        raise ValueError(f"method must be 'auto', 'hooks' or 'vmap', got {method!r}")
    if any(m.training for m in module.modules()):
        raise ValueError("put the module in eval mode (module.eval()) first: in training "
                         "mode batch normalisation mixes the samples of a batch")
    if method != "vmap":
        layers = _hook_plan(module)
        if layers is None and method == "hooks":
            raise ValueError("the module has parametrised layers without a per-layer rule; "
                             "use method='vmap'")
        if layers is not None:
            try:
                sq = _sq_norms_hooks(module, xb, layers, params)
                if sq is None:
                    sq = _sq_norms_hooks(module, xb, layers, params, copy_outputs=True)
                return sq
            except _Fallback:
                if method == "hooks":
                    raise ValueError("a layer is used more than once in the forward pass; "
                                     "use method='vmap'") from None
    return _sq_norms_vmap(module, xb, names, params)


def _combine(sq, norm):
    if norm == "sum":
        return sq.clamp_min(0).sqrt().sum(dim=1)
    return sq.sum(dim=1).clamp_min(0).sqrt()


#: default samples per batched gradient computation (at most the estimator's
#: batch_size): the memory of a backward pass grows with it, the speed hardly
_DEFAULT_BATCH = 64


def _gradnorm_batch_size(batch_size, est):
    if batch_size is None:
        return min(_DEFAULT_BATCH, check_batch_size(None, est))
    return check_batch_size(batch_size, est)


def _check_norm(norm):
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    return norm


def _check_softmax_output(est, strategy):
    """The entropy is that of the softmax of the module output: it must be the
    net's ``predict_proba`` (a module that returns logits)."""
    predicts_softmax = getattr(est, "_predicts_softmax", None)
    if callable(predicts_softmax) and not predicts_softmax():
        raise ValueError(
            f"{strategy} differentiates the entropy of the softmax of the module's output, "
            f"so it needs a module that returns logits and predict_proba = their softmax; "
            f"{type(est).__name__} has predict_nonlinearity={est.predict_nonlinearity!r} "
            f"with criterion {type(est.criterion_).__name__} (a module that returns "
            "probabilities, as with NLLLoss, or another nonlinearity)")


def _gradnorm_scores(est, X4, candidates, batch_size, norm):
    _check_softmax_output(est, "the entropy gradient norm (gradient_norm_sampling)")
    module = est.module_
    out = np.empty(X4.shape[0] if candidates is None else len(candidates), dtype=np.float64)
    start = 0
    with est._eval_mode():
        for xb in iter_batches(X4, batch_size, est.device, indices=candidates):
            scores = _combine(per_sample_grad_sq_norms(module, xb), norm)
            out[start:start + len(scores)] = scores.detach().cpu().numpy()
            start += len(scores)
    return out


def entropy_gradient_norm(classifier, X, *, norm="sum", batch_size=None):
    """Norm of the gradient of each sample's predictive entropy (Ent-GradNorm).

    .. math::

        g(x) = \\sum_t \\lVert \\nabla_{w_t} H(x) \\rVert_2 \\quad
        (\\texttt{norm="sum"}), \\qquad
        g(x) = \\Big(\\sum_t \\lVert \\nabla_{w_t} H(x) \\rVert_2^2\\Big)^{1/2} \\quad
        (\\texttt{norm="global"})

    with :math:`H(x) = -\\sum_k p_k(x) \\log p_k(x)` and :math:`w_t` the
    trainable parameter tensors of ``module_`` (the backbone; the heads of
    ``CriticLossNet``/``LossPredictionNet`` are not included). The model is
    in eval mode; the gradients are exact and computed in batches.

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or subclass), or a
        modAL learner wrapping one.
    X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        Images, possibly a memory map (read one batch at a time).
    norm : {"sum", "global"}, default="sum"
        ``"sum"``: sum over parameter tensors of each tensor's L2 norm, as in
        the reference code of Ent-GradNorm/LPLgrad; ``"global"``: L2 norm of
        all gradients together.
    batch_size : int, optional
        Samples per batched gradient computation; defaults to 64 (or the
        estimator's ``batch_size`` if smaller). Memory grows with it roughly
        as in a training step.

    Returns
    -------
    grad_norms : ndarray of shape (n,)
    """
    est, X = get_estimator(classifier, "entropy_gradient_norm", X)
    require_module(est, "entropy_gradient_norm")
    norm = _check_norm(norm)
    batch_size = _gradnorm_batch_size(batch_size, est)
    X4 = validate_pool(est, X)
    return _gradnorm_scores(est, X4, None, batch_size, norm)


@package_strategy
@selection_doc
def gradient_norm_sampling(classifier, X_pool, n_instances=1, *, norm="sum", subset_size=None,
                           random_state=None, batch_size=None, selection=DEFAULT_SELECTION,
                           beta=1.0, cluster_pool=10, pool_indices=None, return_proposal=False):
    """Query the samples whose entropy gradient has the largest norm (LPLgrad).

    .. math::

        S = \\operatorname{arg\\,max}_{S \\subset U,\\, |S| = n} \\sum_{x \\in S}
        \\sum_t \\lVert \\nabla_{w_t} H(x) \\rVert_2

    Parameters
    ----------
    classifier : ResNetClassifier or modAL learner
        A fitted :class:`~sklearn_crtcl.ResNetClassifier` (or any subclass),
        or a modAL ``ActiveLearner`` wrapping one.
    X_pool : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
        The unlabeled pool, possibly a memory map (never copied).
    n_instances : int, default=1
        Number of samples to query.
    norm : {"sum", "global"}, default="sum"
        How the per-tensor gradients are combined (see
        :func:`entropy_gradient_norm`).
    subset_size : int, optional
        Score only this many candidates drawn at random from the pool (the
        references use 10,000); ``None`` scores the whole pool.
    pool_indices : array-like of int, optional
        Only these rows of ``X_pool`` form the pool, e.g. the unlabeled rows of
        the whole training set: the query is the same as on
        ``X_pool[pool_indices]`` (mapped back to rows of ``X_pool``), without
        copying the pool, and the other rows are never read.
    random_state : int, RandomState instance or None, default=None
        Seed of the query: the candidate draw, then the selection's draws.
    batch_size : int, optional
        Samples per batched gradient computation; defaults to 64 (or the
        estimator's ``batch_size`` if smaller).
    {selection_params}

    Returns
    -------
    indices : ndarray of int of shape (n_instances,)
        Distinct indices into ``X_pool``, most preferred first: with
        ``selection="topk"``, largest gradient norm first (ties: smaller
        index first).
    {proposal_return}

    Raises
    ------
    TypeError
        If the estimator is not a net of this package.
    ValueError
        For an unknown ``norm``, an empty or invalid pool, ``n_instances``
        larger than the number of candidates, or an invalid ``selection``,
        ``beta``, ``cluster_pool`` or ``return_proposal``.
    """
    est, X_pool = get_estimator(classifier, "gradient_norm_sampling", X_pool)
    require_module(est, "gradient_norm_sampling")
    norm = _check_norm(norm)
    batch_size = _gradnorm_batch_size(batch_size, est)

    def score(X4, candidates):
        return _gradnorm_scores(est, X4, candidates, batch_size, norm)

    return select(est, X_pool, n_instances, score, largest=True, subset_size=subset_size,
                  random_state=random_state, selection=selection, beta=beta,
                  cluster_pool=cluster_pool, strategy="gradient_norm_sampling",
                  pool_indices=pool_indices, return_proposal=return_proposal)
