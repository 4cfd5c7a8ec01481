"""Training-time data augmentation on batch tensors.

The papers reproduced by this package augment their training images: the CrtCl
paper with random horizontal flips, the LL4AL, LPLgrad and TOD reference code
with flips and a random crop of the image padded by 4 pixels. Here the same
transformations act on a whole mini-batch tensor at once, on the device the
batch lives on (no per-image Python loop), so they cost almost nothing next to
a forward pass, on the CPU or a GPU.

Every net of the package takes an ``augment`` parameter (see
:func:`check_augment`); augmentation is applied to training batches only, never
to ``predict_proba``, scoring or query strategies. The same flip and crop, at
fixed offsets (:func:`hflip`, :func:`shift`, :data:`VIEWS`), give the
deterministic test-time views that :class:`~sklearn_crtcl.CorrectnessCritic`
reads with ``views``. The random draws come from
torch's global CPU generator, which the nets seed from ``random_state`` (in a
forked random state) during ``fit``: the same ``random_state`` gives the same
augmented batches on any device.
"""

import numbers

import torch
from torch.nn import functional as F

__all__ = ["RandomFlipCrop", "AUGMENTATIONS", "VIEWS", "check_augment", "hflip", "pad_crop", "shift"]


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
            x = pad_crop(x, p, offsets)
        return x


def pad_crop(x, padding, offsets):
    """Zero-pad a batch by ``padding`` pixels and crop it back at given offsets.

    The crop of :class:`RandomFlipCrop`, with the offsets given instead of
    drawn: image ``i`` of the result is the padded image ``i`` from row
    ``offsets[0, i]`` and column ``offsets[1, i]`` (each in
    ``[0, 2 * padding]``; ``padding`` is the unshifted image).

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W)
        Images, on any device.
    padding : int
        Pixels of zero padding on every side.
    offsets : torch.Tensor of shape (2, n)
        Row and column offsets of each crop, integers, on ``x``'s device.

    Returns
    -------
    torch.Tensor of shape (n, C, H, W)
    """
    n, c, h, w = x.shape
    p = int(padding)
    padded = F.pad(x, (p, p, p, p))
    rows = offsets[0][:, None] + torch.arange(h, device=x.device)  # (n, H)
    cols = offsets[1][:, None] + torch.arange(w, device=x.device)  # (n, W)
    return padded[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def shift(x, dy, dx):
    """Translate a batch by ``(dy, dx)`` pixels, filling with zeros.

    :func:`pad_crop` at the fixed offset ``(p - dy, p - dx)``, with
    ``p = max(|dy|, |dx|)``: the content moves ``dy`` rows down and ``dx``
    columns right (negative: up, left); it is the crop of
    :class:`RandomFlipCrop` at one of its offsets, without random draws.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W)
        Images.
    dy, dx : int
        Rows down and columns right.

    Returns
    -------
    torch.Tensor of shape (n, C, H, W)

    Examples
    --------
    >>> import torch
    >>> shift(torch.arange(4.0).view(1, 1, 1, 4), 0, 1)
    tensor([[[[0., 0., 1., 2.]]]])
    """
    p = max(abs(int(dy)), abs(int(dx)))
    if not p:
        return x
    offsets = torch.tensor([[p - int(dy)], [p - int(dx)]], device=x.device).expand(2, len(x))
    return pad_crop(x, p, offsets)


def hflip(x):
    """Flip a batch left-right (the flip of :class:`RandomFlipCrop`, on every image).

    Parameters
    ----------
    x : torch.Tensor of shape (N, C, H, W)
        A batch of images.

    Returns
    -------
    torch.Tensor of shape (N, C, H, W)
        The images mirrored along their width.
    """
    return x.flip(3)


def _shifts(k):
    return tuple((lambda x, dy=dy, dx=dx: shift(x, dy, dx))
                 for dy, dx in ((-k, 0), (k, 0), (0, -k), (0, k)))


#: Deterministic test-time views by name, each a tuple of functions of a batch
#: tensor: ``"flip"`` (the left-right flip), ``"shift"`` (the four one-pixel
#: translations: up, down, left, right) and ``"shift2"`` (the four two-pixel
#: ones). :class:`~sklearn_crtcl.CorrectnessCritic` reads the net's predictions
#: on them (its ``views`` parameter).
VIEWS = {
    "flip": (hflip,),
    "shift": _shifts(1),
    "shift2": _shifts(2),
}


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
