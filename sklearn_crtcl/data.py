"""Image data that does not fit in memory: a torch ``Dataset`` as an array.

:class:`DatasetArray` wraps any map-style :class:`torch.utils.data.Dataset`
whose items are images (or ``(image, label, ...)`` tuples) and gives it the
face of a read-only ``(n, C, H, W)`` float32 array: ``shape``, ``dtype``,
``ndim``, ``len()`` and numpy indexing along the first axis. Every estimator
and query strategy of the package takes it wherever it takes an image array:

* inference (``predict_proba``, ``embed``, ``predict_correctness``,
  ``predict_loss``...) and the query strategies stream it, one
  :class:`torch.utils.data.DataLoader` per pass over the requested rows, with
  the wrapper's ``num_workers`` worker processes, in pinned memory when the
  batches go to a CUDA device; only the rows a query scores are read;
* training (``fit``, ``partial_fit``, ``X_unlabeled``) reads the images once
  into memory, as it does for any array: every epoch visits every sample.

:func:`sklearn_crtcl.datasets.load_image_folder` builds one from a folder of
image files.
"""

import numbers

import numpy as np
import torch

__all__ = ["DatasetArray"]

# DataLoader arguments that DatasetArray sets itself
_RESERVED_LOADER_ARGS = ("dataset", "batch_size", "shuffle", "sampler", "batch_sampler",
                         "num_workers", "collate_fn", "pin_memory", "pin_memory_device",
                         "drop_last")


def _is_pil_image(obj):
    return type(obj).__module__.split(".")[0] == "PIL"


def _item_image(item, index):
    """The image of one dataset item as a numpy array ``(C, H, W)``."""
    if (isinstance(item, (tuple, list)) and item
            and (isinstance(item[0], (torch.Tensor, np.ndarray)) or _is_pil_image(item[0]))):
        item = item[0]  # (image, label, ...), the torch convention
    if _is_pil_image(item):
        raise TypeError(
            f"item {index} of the dataset is a PIL image; DatasetArray takes images as "
            "(C, H, W) arrays or tensors: convert them in the dataset (e.g. "
            "np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255), or read a folder "
            "of image files with sklearn_crtcl.datasets.load_image_folder")
    if isinstance(item, torch.Tensor):
        if item.is_complex():
            raise ValueError(f"Complex data not supported: item {index} of the dataset has "
                             f"dtype {item.dtype}")
        item = item.detach().cpu()
        if item.dtype == torch.bfloat16:  # (numpy has no bfloat16)
            item = item.float()
        image = item.numpy()
    else:
        try:
            image = np.asarray(item)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"item {index} of the dataset is not an image array: "
                            f"{type(item).__name__} ({exc})") from None
    if image.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: item {index} of the dataset has dtype "
                         f"{image.dtype}")
    if image.dtype.kind not in "biuf":
        raise TypeError(f"item {index} of the dataset must be an image of numbers, got "
                        f"{type(item).__name__} with dtype {image.dtype}")
    if image.ndim == 2:
        image = image[np.newaxis]
    if image.ndim != 3:
        raise ValueError(f"item {index} of the dataset has shape {image.shape}; images must "
                         "be (C, H, W) (or (H, W) for a single channel)")
    return image


def _checked_image(item, index, image_shape):
    """One dataset item as a float32 image of ``image_shape``, checked finite."""
    image = _item_image(item, index)
    if image.shape != image_shape:
        raise ValueError(f"item {index} of the dataset has an image of shape {image.shape}, "
                         f"but item 0 has {image_shape}; all images must have the same shape")
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        kind = "NaN" if np.isnan(image).any() else "infinity"
        raise ValueError(f"Input contains {kind} (item {index} of the dataset); remove or "
                         "impute non-finite values before fitting or scoring")
    return image


class _ImageReader(torch.utils.data.Dataset):
    """The dataset's items as checked float32 images (what the loader's workers run)."""

    def __init__(self, dataset, image_shape):
        self.dataset = dataset
        self.image_shape = image_shape

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        index = int(index)
        return _checked_image(self.dataset[index], index, self.image_shape)


def _stack(images):
    """Collate checked images into one float32 batch tensor."""
    return torch.from_numpy(np.stack(images))


def _check_int(value, name, min_val):
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or value < min_val):
        what = "a positive integer" if min_val == 1 else "a non-negative integer"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _check_loader_params(num_workers, pin_memory, batch_size):
    """Validated ``(num_workers, pin_memory, batch_size)`` of a DatasetArray."""
    num_workers = _check_int(num_workers, "num_workers", 0)
    if not isinstance(pin_memory, (bool, np.bool_)):
        raise ValueError(f"pin_memory must be True or False, got {pin_memory!r}")
    return num_workers, bool(pin_memory), _check_int(batch_size, "batch_size", 1)


class DatasetArray:
    """A map-style torch ``Dataset`` of images, seen as an ``(n, C, H, W)`` array.

    The wrapper holds no images: it reads them from ``dataset`` when indexed
    or streamed. Estimators and query strategies of the package take it
    wherever they take an image array. Inference and scoring stream it
    batch by batch through one :class:`torch.utils.data.DataLoader` per pass
    (``num_workers`` worker processes; pinned memory when the batches go to
    a CUDA device), reading only the rows they need; training reads the
    training set into memory (see :ref:`image-folders`).

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        A map-style dataset (``len(dataset)`` and ``dataset[i]``; an
        ``IterableDataset`` is not supported) whose items are images, as
        torch tensors or numpy arrays of shape ``(C, H, W)`` (or ``(H, W)``
        for one channel), or tuples (or lists) whose first element is one,
        such as the ``(image, label)`` pairs of labeled datasets (the label
        is ignored). All images must have the shape of item 0, which is read
        once here. Values are converted to float32 as they are read (no
        scaling: normalise in the dataset).
    num_workers : int, default=0
        Worker processes of the ``DataLoader`` (``0``: the images are read
        in the calling process). Workers pay off when reading an item costs
        time (decoding image files).
    pin_memory : bool, default=True
        Put the batches in pinned (page-locked) memory when they go to a
        CUDA device, so that the copy to the GPU is asynchronous
        (``non_blocking=True``). Batches that stay on the CPU are never
        pinned.
    batch_size : int, default=128
        Images per ``DataLoader`` batch when indexing reads many rows at
        once (``X[rows]``, a strategy's chunk of candidates, ``fit``'s copy
        of the training set). Inference streams with the batch size of the
        net or strategy instead.
    loader_kwargs : dict, optional
        More arguments of the ``DataLoader`` (``prefetch_factor``,
        ``multiprocessing_context``, ``worker_init_fn``, ``timeout``...);
        those the wrapper sets itself (``batch_size``, ``sampler``,
        ``num_workers``, ``pin_memory``, ``collate_fn``...) are rejected.

    Attributes
    ----------
    shape : tuple of int
        ``(n, C, H, W)``.
    dtype : numpy.dtype
        Always ``float32``: the dtype of the images as read.
    ndim : int
        Always 4.

    Raises
    ------
    TypeError
        If ``dataset`` is not a map-style dataset, or item 0 is not an image
        array (a PIL image, a string...).
    ValueError
        For an empty dataset, an item 0 of the wrong number of dimensions,
        or invalid ``num_workers``, ``pin_memory``, ``batch_size`` or
        ``loader_kwargs``.

    Notes
    -----
    Indexing follows numpy along the first axis (an integer, a slice, an
    integer array or a boolean mask; further indices apply to the result)
    and returns new float32 numpy arrays; ``np.asarray(X)`` reads every
    image. Each image is checked as it is read (its shape against item 0's,
    and finiteness), since checking the whole dataset up front would read
    it twice: a bad item raises ``ValueError`` naming its index when it is
    reached.

    Examples
    --------
    >>> import torch
    >>> from sklearn_crtcl import DatasetArray
    >>> images = torch.utils.data.TensorDataset(torch.rand(10, 3, 8, 8),
    ...                                         torch.arange(10))
    >>> X = DatasetArray(images)
    >>> X.shape, X.dtype
    ((10, 3, 8, 8), dtype('float32'))
    >>> X[[0, 2]].shape
    (2, 3, 8, 8)
    """

    def __init__(self, dataset, *, num_workers=0, pin_memory=True, batch_size=128,
                 loader_kwargs=None):
        if isinstance(dataset, torch.utils.data.IterableDataset):
            raise TypeError("DatasetArray needs a map-style dataset (len(dataset) and "
                            "dataset[i]); an IterableDataset cannot be indexed")
        if isinstance(dataset, DatasetArray):
            raise TypeError("dataset is already a DatasetArray; pass its dataset")
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DatasetArray needs a map-style dataset with __len__ and "
                            f"__getitem__, got {type(dataset).__name__}")
        self.num_workers, self.pin_memory, self.batch_size = _check_loader_params(
            num_workers, pin_memory, batch_size)
        if loader_kwargs is None:
            loader_kwargs = {}
        if not isinstance(loader_kwargs, dict):
            raise TypeError(f"loader_kwargs must be a dict of DataLoader arguments or None, "
                            f"got {type(loader_kwargs).__name__}")
        reserved = sorted(set(loader_kwargs) & set(_RESERVED_LOADER_ARGS))
        if reserved:
            raise ValueError(f"loader_kwargs must not set {', '.join(reserved)}: DatasetArray "
                             "sets them itself (use its num_workers, pin_memory and "
                             "batch_size parameters)")
        self.loader_kwargs = dict(loader_kwargs)
        n = len(dataset)
        if n == 0:
            raise ValueError("Found a dataset with 0 items while a minimum of 1 is required "
                             "(the dataset is empty)")
        self.dataset = dataset
        image_shape = _item_image(dataset[0], 0).shape
        if min(image_shape) == 0:
            raise ValueError(f"item 0 of the dataset has shape {image_shape}: an image "
                             "without pixels")
        self._shape = (int(n),) + tuple(int(s) for s in image_shape)
        try:  # a DataLoader checks its arguments when built (no worker starts here)
            self._loader(np.zeros(1, dtype=np.intp), 1, pin=False)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"loader_kwargs: {exc}") from None

    # ------------------------------------------------------------------ array face
    @property
    def shape(self):
        """``(n, C, H, W)``: the number of images, then the shape of one."""
        return self._shape

    @property
    def dtype(self):
        """Always ``float32``: the dtype of the images as read."""
        return np.dtype(np.float32)

    @property
    def ndim(self):
        """Always 4: the number of dimensions, ``(n, C, H, W)``."""
        return 4

    def __len__(self):
        return self._shape[0]

    def __repr__(self):
        return (f"{type(self).__name__}({type(self.dataset).__name__}, shape={self.shape}, "
                f"num_workers={self.num_workers})")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("DatasetArray reads its images from the dataset: converting it "
                             "to an array always copies them (copy=False is impossible)")
        out = self._read(np.arange(len(self), dtype=np.intp))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if not key:
                return self[:]
            head, rest = key[0], key[1:]
            if head is None or head is Ellipsis:
                raise IndexError("DatasetArray is indexed along its first axis (samples) "
                                 "first: X[rows, ...]")
            out = self[head]
            if not rest:
                return out
            if isinstance(head, numbers.Integral):
                return out[rest]
            return out[(slice(None),) * (out.ndim - 3) + rest]
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
            i = self._normalise(np.asarray([key]))[0]
            return np.array(_checked_image(self.dataset[int(i)], int(i), self.shape[1:]))
        if isinstance(key, slice):
            return self._read(np.arange(*key.indices(len(self)), dtype=np.intp))
        rows = self._rows(key)
        out = self._read(rows.reshape(-1))
        return out.reshape(rows.shape + self.shape[1:])

    # ------------------------------------------------------------------ reading
    def _normalise(self, rows):
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            bad = rows[(rows < -n) | (rows >= n)][0]
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {n}")
        return np.where(rows < 0, rows + n, rows).astype(np.intp)

    def _rows(self, key):
        """Row indices (an intp array) of an index array or boolean mask."""
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        rows = np.asarray(key)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise IndexError(f"boolean index of shape {rows.shape} does not match the "
                                 f"{len(self)} samples")
            return np.flatnonzero(rows).astype(np.intp)
        if rows.size == 0:
            return np.zeros(rows.shape, dtype=np.intp)
        if rows.dtype.kind not in "iu":
            raise IndexError("only integers, slices, integer arrays and boolean masks are "
                             f"valid indices of a DatasetArray, got {rows.dtype} values")
        return self._normalise(rows)

    def _loader(self, rows, batch_size, pin):
        """One DataLoader over ``rows`` (in this order), with the wrapper's settings."""
        return torch.utils.data.DataLoader(
            _ImageReader(self.dataset, self.shape[1:]), batch_size=batch_size, sampler=rows,
            num_workers=self.num_workers, pin_memory=pin, collate_fn=_stack,
            **self.loader_kwargs)

    def _read(self, rows):
        """Images ``rows`` (a 1-d intp array) as a new float32 array."""
        out = np.empty((len(rows),) + self.shape[1:], dtype=np.float32)
        if self.num_workers and len(rows) > self.batch_size:
            start = 0
            for batch in self._loader(rows, self.batch_size, pin=False):
                out[start:start + len(batch)] = batch.numpy()
                start += len(batch)
        else:
            for j, i in enumerate(rows.tolist()):
                out[j] = _checked_image(self.dataset[i], i, self.shape[1:])
        return out

    def _iter_batches(self, batch_size, device=None, indices=None):
        """Float32 batch tensors of the rows ``indices`` (all rows by default),
        in order, read by one DataLoader and moved to ``device`` (pinned first
        when ``device`` is a CUDA device and ``pin_memory`` is on)."""
        rows = (np.arange(len(self), dtype=np.intp) if indices is None
                else self._rows(indices).reshape(-1))
        target = None if device is None else torch.device(device)
        pin = (self.pin_memory and target is not None and target.type == "cuda"
               and torch.cuda.is_available())
        for batch in self._loader(rows, batch_size, pin):
            yield batch if target is None else batch.to(target, non_blocking=True)
