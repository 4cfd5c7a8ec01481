"""Training-time data augmentation on batch tensors.

The papers reproduced by this package augment their training images: the CrtCl
paper with random horizontal flips, the LL4AL, LPLgrad and TOD reference code
with flips and a random crop of the image padded by 4 pixels. Here the same
transformations act on a whole mini-batch tensor at once, on the device the
batch lives on (no per-image Python loop), so they cost almost nothing next to
a forward pass, on the CPU or a GPU.

Every net of the package takes an ``augment`` parameter (see
:func:`check_augment`); augmentation is applied to training batches only, never
to ``predict_proba``, scoring or query strategies. The random draws come from
torch's global CPU generator, which the nets seed from ``random_state`` (in a
forked random state) during ``fit``: the same ``random_state`` gives the same
augmented batches on any device.
"""

import numbers

import torch
from torch.nn import functional as F

__all__ = ["RandomFlipCrop", "AUGMENTATIONS", "check_augment"]


class RandomFlipCrop:
    """Random horizontal flip and padded random crop of a batch of images.

    Each image of the batch is flipped left-right with probability
    ``flip_prob`` (if ``flip``), then, if ``padding > 0``, zero-padded by
    ``padding`` pixels on every side and cropped back to its size at an
    offset drawn uniformly per image (torchvision's ``RandomHorizontalFlip``
    and ``RandomCrop(size, padding)``, for a whole batch at once).

    Parameters
    ----------
    flip : bool, default=True
        Random horizontal flips.
    padding : int, default=4
        Pixels of zero padding for the random crop; ``0`` disables cropping.
        4 is the value of the LL4AL, LPLgrad and TOD reference code on 32x32
        images; use less on small images (e.g. 1 on 8x8 digits).
    flip_prob : float, default=0.5
        Probability of flipping an image.

    Examples
    --------
    >>> import torch
    >>> aug = RandomFlipCrop(flip=True, padding=2)
    >>> aug(torch.zeros(8, 3, 16, 16)).shape
    torch.Size([8, 3, 16, 16])
    """

    def __init__(self, flip=True, padding=4, flip_prob=0.5):
        if not isinstance(flip, bool):
            raise TypeError(f"flip must be True or False, got {flip!r}")
        if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        if (isinstance(flip_prob, bool) or not isinstance(flip_prob, numbers.Real)
                or not 0 <= flip_prob <= 1):
            raise ValueError(f"flip_prob must be a number in [0, 1], got {flip_prob!r}")
        self.flip = flip
        self.padding = int(padding)
        self.flip_prob = float(flip_prob)

    def __repr__(self):
        return (f"RandomFlipCrop(flip={self.flip}, padding={self.padding}, "
                f"flip_prob={self.flip_prob})")

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.flip, self.padding, self.flip_prob)
                == (other.flip, other.padding, other.flip_prob))

    def __hash__(self):
        return hash((type(self), self.flip, self.padding, self.flip_prob))

    def __call__(self, x):
        """Augment a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (n, C, H, W)
            Images, on any device.

        Returns
        -------
        torch.Tensor of shape (n, C, H, W)
            A new tensor on the same device (``x`` is not modified).
        """
        if x.dim() != 4:
            raise ValueError(f"augmentation expects a batch of images (n, C, H, W), got a "
                             f"tensor of shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if self.flip:
            # draws on the CPU generator: the same images flip on every device
            mask = (torch.rand(n) < self.flip_prob).to(x.device).view(n, 1, 1, 1)
            x = torch.where(mask, x.flip(3), x)
        p = self.padding
        if p:
            offsets = torch.randint(0, 2 * p + 1, (2, n)).to(x.device)
            padded = F.pad(x, (p, p, p, p))
            rows = offsets[0][:, None] + torch.arange(h, device=x.device)  # (n, H)
            cols = offsets[1][:, None] + torch.arange(w, device=x.device)  # (n, W)
            x = padded[torch.arange(n, device=x.device)[:, None, None, None],
                       torch.arange(c, device=x.device)[None, :, None, None],
                       rows[:, None, :, None], cols[:, None, None, :]]
        return x


#: The augmentations that ``augment`` accepts by name.
AUGMENTATIONS = {
    "flip": RandomFlipCrop(flip=True, padding=0),
    "crop": RandomFlipCrop(flip=False, padding=4),
    "flip+crop": RandomFlipCrop(flip=True, padding=4),
}


def check_augment(augment):
    """Resolve a net's ``augment`` parameter to a callable (or ``None``).

    Parameters
    ----------
    augment : None, str or callable
        ``None`` (no augmentation); ``"flip"`` (random horizontal flips, as
        the CrtCl paper); ``"crop"`` (random crop with 4 pixels of padding);
        ``"flip+crop"`` (both, as the LL4AL, LPLgrad and TOD reference code);
        or any callable mapping a batch tensor ``(n, C, H, W)`` to an
        augmented batch of the same shape on the same device, e.g.
        :class:`RandomFlipCrop` with other settings. A callable that draws
        random numbers from torch's global generator is reproducible under the
        net's ``random_state``.

    Returns
    -------
    callable or None

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything else that is not callable.
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        try:
            return AUGMENTATIONS[augment]
        except KeyError:
            raise ValueError(f"augment must be None, a callable or one of "
                             f"{sorted(AUGMENTATIONS)}, got {augment!r}") from None
    if not callable(augment):
        raise TypeError(f"augment must be None, a name among {sorted(AUGMENTATIONS)} or a "
                        f"callable on a batch tensor, got {augment!r}")
    return augment
