"""The multi-tap head: the shape shared by the CrtCl critic and the LL4AL
loss-prediction module.

Each tapped tensor is globally average-pooled (when it is spatial), projected
by a linear layer to ``hidden`` dimensions and passed through a ReLU; the
embeddings are concatenated and a last linear layer outputs one scalar per
sample:

.. math::

    h(x) = w^\\top \\big[\\operatorname{ReLU}(W_1 \\operatorname{GAP}(t_1(x)) + b_1);
    \\dots; \\operatorname{ReLU}(W_k \\operatorname{GAP}(t_k(x)) + b_k)\\big] + b.
"""

import torch
from torch import nn

from .backbones import TAP_NAMES, forward_taps

__all__ = ["MultiTapHead", "tap_dims", "pool_taps"]


def pool_taps(tensors):
    """Globally average-pool each spatial tensor to ``(n, channels)``.

    Parameters
    ----------
    tensors : sequence of torch.Tensor
        Tensors of shape ``(n, C, H, W)`` (pooled) or ``(n, D)`` (kept).

    Returns
    -------
    list of torch.Tensor
        One ``(n, C)`` or ``(n, D)`` tensor per input.
    """
    out = []
    for t in tensors:
        if t.dim() == 4:
            out.append(t.mean(dim=(2, 3)))
        elif t.dim() == 2:
            out.append(t)
        else:
            raise ValueError(f"cannot pool a tap of shape {tuple(t.shape)}: expected 2 or 4 dims")
    return out


class MultiTapHead(nn.Module):
    """Pool, project and concatenate several feature maps into one scalar.

    Parameters
    ----------
    in_features : sequence of int
        Channels (or dimensions) of each tapped tensor, in the order they are
        passed to :meth:`forward`.
    hidden : int, default=128
        Width of each projection (128 in CrtCl and LL4AL).

    Examples
    --------
    >>> import torch
    >>> head = MultiTapHead([3, 16], hidden=8)
    >>> head([torch.zeros(5, 3, 8, 8), torch.zeros(5, 16, 4, 4)]).shape
    torch.Size([5])
    """

    def __init__(self, in_features, hidden=128):
        super().__init__()
        in_features = [int(d) for d in in_features]
        if not in_features:
            raise ValueError("MultiTapHead needs at least one tapped input")
        if int(hidden) < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        self.in_features = tuple(in_features)
        self.hidden = int(hidden)
        self.projections = nn.ModuleList(nn.Linear(d, self.hidden) for d in in_features)
        self.out = nn.Linear(self.hidden * len(in_features), 1)

    def forward(self, tensors):
        """Score a batch.

        Parameters
        ----------
        tensors : sequence of torch.Tensor
            One tensor per entry of ``in_features``, each ``(n, C, H, W)`` or
            ``(n, D)``.

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        if len(tensors) != len(self.projections):
            raise ValueError(
                f"expected {len(self.projections)} tapped tensors, got {len(tensors)}")
        pooled = pool_taps(tensors)
        emb = [torch.relu(proj(t)) for proj, t in zip(self.projections, pooled)]
        return self.out(torch.cat(emb, dim=1)).squeeze(1)


def tap_dims(module, taps, sample_shape=None):
    """Channels of the named taps of a backbone.

    Parameters
    ----------
    module : torch.nn.Module
        A :class:`~sklearn_crtcl.backbones.ResNet` (read from its attributes) or
        any module accepted by :func:`~sklearn_crtcl.backbones.forward_taps`
        (found by one forward pass on zeros of ``sample_shape``).
    taps : sequence of str
        Names from :data:`~sklearn_crtcl.backbones.TAP_NAMES`; ``"proba"``
        (the softmax of the logits) has the dimension of ``"logits"``.
    sample_shape : tuple of int, optional
        ``(C, H, W)`` of one input; needed only for modules without the
        ``in_channels``/``stage_channels``/``num_classes`` attributes.

    Returns
    -------
    list of int
    """
    unknown = [t for t in taps if t not in TAP_NAMES + ("proba",)]
    if unknown:
        raise ValueError(f"unknown taps {unknown}; valid names are {TAP_NAMES + ('proba',)}")
    if all(hasattr(module, a) for a in ("in_channels", "stage_channels", "num_classes")):
        dims = {"input": module.in_channels, "logits": module.num_classes,
                "proba": module.num_classes}
        dims.update({f"stage{i + 1}": c for i, c in enumerate(module.stage_channels)})
        return [dims[t] for t in taps]
    if sample_shape is None:
        raise ValueError("sample_shape is needed to find the tap dimensions of "
                         f"{type(module).__name__}")
    param = next(module.parameters())
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = forward_taps(module, torch.zeros((2,) + tuple(sample_shape),
                                                   dtype=param.dtype, device=param.device))
    finally:
        module.train(was_training)
    out["proba"] = out["logits"]
    return [out[t].shape[1] for t in taps]
