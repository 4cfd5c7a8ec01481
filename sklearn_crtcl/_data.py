"""Input validation for image arrays and a fast mini-batch loader.

Validation never copies a large pool: shapes are checked on the array object,
finiteness is checked chunk by chunk, and conversion to float32 happens per
batch (:func:`iter_batches`). A memory-mapped pool stays on disk; a
:class:`~sklearn_crtcl.data.DatasetArray` (a torch ``Dataset`` of images) is
never read by validation, and :func:`iter_batches` streams it through a
``DataLoader``.
"""

import copy
import numbers

import numpy as np
import scipy.sparse as sp
import torch

from .data import DatasetArray

__all__ = ["as_image_array", "check_finite_chunked", "iter_batches", "training_array",
           "ArrayBatchLoader", "merge_short_tail", "smallest_norm_map", "MIN_NORM_VALUES"]

#: Fewest values per channel that a batch-normalisation layer should get from a
#: training batch: the nets merge a trailing batch that would give less into the one
#: before (:class:`ArrayBatchLoader`'s ``min_last_batch``). Measured on digits
#: (8x8 images, whose last ResNet stage is 1x1): a trailing batch of 2 rows in every
#: epoch takes a warm-started network from 0.97 to 0.53-0.62 test accuracy, 3 rows to
#: 0.92-0.94; from 16 rows on there is no harm.
MIN_NORM_VALUES = 16

_CHUNK = 4096


def _to_array(X, name):
    if isinstance(X, DatasetArray):  # streamed: never converted as a whole
        return X
    if isinstance(X, torch.utils.data.Dataset):
        raise TypeError(
            f"{name} is a torch Dataset ({type(X).__name__}); wrap it in "
            "sklearn_crtcl.DatasetArray(dataset) to pass its images as an array (read "
            "batch by batch through a DataLoader)")
    if sp.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported, "
            "pass a dense array (e.g. X.toarray())")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        if hasattr(X, "to_numpy"):  # pandas
            X = X.to_numpy()
        X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
    if X.dtype.kind == "O":
        # numbers stored as objects: convert (raises TypeError on strings/dicts)
        X = X.astype(np.float32)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {X.dtype}")
    return X


def check_finite_chunked(X, name="X"):
    """Raise ``ValueError`` if ``X`` is not finite as float32, reading it in chunks.

    The networks compute in float32, so a value is checked *after* its cast:
    a float64 beyond float32's range (``|x| > 3.4e38``) becomes infinity and is
    refused like NaN and infinity themselves. Each chunk is cast on its own (a
    memory map is never copied whole). A :class:`~sklearn_crtcl.data.DatasetArray`
    is not read here (that would read, e.g. decode, every image of the dataset
    once more): it checks each image, cast to float32, as it is read.

    Parameters
    ----------
    X : ndarray or DatasetArray
        Array of numbers (a memory map is read chunk by chunk, never copied).
    name : str, default="X"
        Name used in the error message.
    """
    if isinstance(X, DatasetArray) or X.dtype.kind not in "fc":
        return  # integers always fit in float32's range
    for start in range(0, X.shape[0], _CHUNK):
        chunk = X[start:start + _CHUNK]
        if chunk.dtype == np.float32:
            finite = np.isfinite(chunk)
        else:
            with np.errstate(over="ignore"):  # the overflow is what is looked for
                finite = np.isfinite(chunk.astype(np.float32))
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite.reshape(len(chunk), -1).all(axis=1))[0])
            if np.isnan(chunk).any():
                kind = "NaN"
            elif not np.isfinite(chunk).all():
                kind = "infinity"
            else:
                kind = (f"a value beyond float32's range (|x| > {np.finfo(np.float32).max:.3g}"
                        ", infinite once cast to float32, the networks' precision)")
            raise ValueError(f"Input {name} contains {kind} (first at sample {bad}); "
                             "remove or impute non-finite values before fitting or scoring")


def as_image_array(X, input_shape=None, name="X", check_finite=True, n_features_expected=None,
                   estimator_name="the estimator"):
    """Validate ``X`` and view it as images ``(n, C, H, W)`` without copying.

    Parameters
    ----------
    X : array-like or DatasetArray
        ``(n, C, H, W)`` images, ``(n, H, W)`` single-channel images, or flat
        ``(n, n_features)`` rows. A list, torch tensor or pandas frame is
        converted; a numpy array or memory map is only viewed; a
        :class:`~sklearn_crtcl.data.DatasetArray` is returned as it is,
        without reading any image.
    input_shape : tuple of int, optional
        ``(C, H, W)`` (or ``(H, W)``) of one image, used to reshape flat rows.
        Without it, flat rows are treated as ``(1, 1, n_features)`` images.
    name : str, default="X"
        Name used in error messages.
    check_finite : bool, default=True
        Check for NaN and infinity (chunk by chunk; a ``DatasetArray`` checks
        each image as it is read instead).
    n_features_expected : int, optional
        Features per sample the caller was fitted on; a mismatch raises the
        standard scikit-learn ``ValueError`` before any reshaping.
    estimator_name : str, default="the estimator"
        Name used in that message.

    Returns
    -------
    X4 : ndarray or DatasetArray of shape (n, C, H, W)
        A view of ``X`` (its original dtype; convert per batch), or the
        ``DatasetArray`` itself.
    n_features : int
        Features per sample as given: ``n_features`` for flat rows, ``C*H*W``
        otherwise.

    Raises
    ------
    TypeError
        For sparse input, non-numeric objects, or a torch ``Dataset`` not
        wrapped in a ``DatasetArray``.
    ValueError
        For empty input, complex numbers, NaN/inf, a wrong number of
        dimensions, or flat rows that do not match ``input_shape``.
    """
    if X is None:
        raise ValueError(f"{name} is None; expected an array of images")
    X = _to_array(X, name)
    if X.ndim == 0:
        raise ValueError(f"Expected an array of samples for {name}, got a scalar {X!r}")
    if X.ndim not in (2, 3, 4):
        hint = (" Reshape your data either using array.reshape(-1, 1) if your data has a "
                "single feature or array.reshape(1, -1) if it contains a single sample."
                if X.ndim == 1 else "")
        raise ValueError(
            f"{name} must have 2 (n, n_features), 3 (n, H, W) or 4 (n, C, H, W) dimensions, "
            f"got {X.ndim} with shape {X.shape}.{hint}")
    n = X.shape[0]
    if n == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required ({name} is empty)")
    if min(X.shape[1:]) == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of "
                         f"1 is required ({name} has no features)")
    n_features = int(np.prod(X.shape[1:]))
    if n_features_expected is not None and n_features != n_features_expected:
        raise ValueError(f"{name} has {n_features} features, but {estimator_name} is expecting "
                         f"{n_features_expected} features as input")
    if X.ndim == 2:
        if input_shape is not None:
            shape = tuple(int(s) for s in input_shape)
            if len(shape) == 2:
                shape = (1,) + shape
            if len(shape) != 3 or int(np.prod(shape)) != X.shape[1]:
                raise ValueError(
                    f"{name} has {X.shape[1]} features per row, which cannot be reshaped to "
                    f"input_shape={tuple(input_shape)} ({int(np.prod(shape))} values)")
            X = X.reshape((n,) + shape)
        else:
            X = X.reshape(n, 1, 1, X.shape[1])
    elif X.ndim == 3:
        X = X.reshape(n, 1, X.shape[1], X.shape[2])
    if check_finite:
        check_finite_chunked(X, name)
    return X, n_features


def training_array(X):
    """``X`` as a C-contiguous, writable float32 array, for training.

    Training reads every sample each epoch, so the training set is held in
    memory: the array is copied only when it is not float32 and contiguous
    already, or when it is read-only (e.g. a memory map opened with
    ``mode="r"``, which torch would otherwise wrap with a warning that the
    array is not writable). A :class:`~sklearn_crtcl.data.DatasetArray` is
    read once, through its ``DataLoader`` (its workers).

    Parameters
    ----------
    X : ndarray or DatasetArray
        Validated images.

    Returns
    -------
    ndarray of dtype float32
    """
    if isinstance(X, DatasetArray):
        return X[:]  # a new float32 array
    out = np.ascontiguousarray(X, dtype=np.float32)
    if not out.flags.writeable:
        out = out.copy()
    return out


def iter_batches(X, batch_size, device="cpu", indices=None):
    """Yield float32 batches of ``X`` as tensors on ``device``.

    Parameters
    ----------
    X : ndarray or DatasetArray of shape (n, C, H, W)
        Images (any numeric dtype, possibly memory-mapped), or a
        :class:`~sklearn_crtcl.data.DatasetArray`: its rows are read by one
        ``DataLoader`` with its ``num_workers``, in pinned memory when
        ``device`` is a CUDA device (and its ``pin_memory`` is on). The
        batches are the same either way.
    batch_size : int
        Samples per batch.
    device : str or torch.device, default="cpu"
        Where the tensors are sent (``non_blocking=True``).
    indices : array-like of int, optional
        Rows of ``X`` to visit, in this order (default: all rows). Only one
        batch of rows is ever gathered (or a few, prefetched by the workers
        of a ``DatasetArray``), so scoring a subset of a memory-mapped pool
        or of a dataset does not copy or read the rest.

    Yields
    ------
    torch.Tensor
        One batch; only one batch is ever converted at a time.
    """
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(X, DatasetArray):
        yield from X._iter_batches(batch_size, device, indices)
        return
    n = X.shape[0] if indices is None else len(indices)
    for start in range(0, n, batch_size):
        if indices is None:
            rows = X[start:start + batch_size]
        else:
            rows = X[np.asarray(indices[start:start + batch_size])]
        xb = np.ascontiguousarray(rows, dtype=np.float32)
        if not xb.flags.writeable:  # a view of a read-only memory map: copy this batch
            xb = xb.copy()
        yield torch.from_numpy(xb).to(device, non_blocking=True)


def merge_short_tail(batches, min_rows):
    """Pass batches on, the last one merged into the one before when it has fewer
    than ``min_rows`` rows and fewer than that one (a first and only batch is
    passed on as it is, and so is a last batch as large as the others: with a
    batch size below ``min_rows`` every batch is small, and merging the last
    would only make the epoch one batch shorter).

    Parameters
    ----------
    batches : iterable
        Batches: tuples or lists of tensors with one row per sample (``None``
        entries, e.g. missing targets, stay ``None``); a batch of another kind
        (a dict, say) is passed on unmerged.
    min_rows : int
        Rows the last batch needs to stay on its own.

    Yields
    ------
    batch
    """
    previous = None
    for batch in batches:
        if (previous is not None and type(batch) in (tuple, list)
                and len(batch[0]) < min(min_rows, len(previous[0]))):
            batch = type(batch)(None if a is None else torch.cat([a, b])
                                for a, b in zip(previous, batch))
            previous = None
        if previous is not None:
            yield previous
        previous = batch
    if previous is not None:
        yield previous


def smallest_norm_map(module, sample):
    """The fewest values per channel and per sample that a batch-normalisation layer
    of ``module`` normalises over: the smallest spatial size (``H * W`` for
    ``BatchNorm2d``; 1 for a ``BatchNorm1d`` on ``(n, C)``) of their inputs in one
    forward pass of ``sample``; ``None`` when the module has none, or when its
    forward cannot run on shapes alone.

    The pass runs on a copy of the module on PyTorch's ``"meta"`` device, which
    propagates shapes without computing anything: ``module`` itself (its
    parameters, running statistics, mode, device) is not touched, no random draw
    is taken, and none of the hooks registered on it fires.

    Parameters
    ----------
    module : torch.nn.Module
    sample : torch.Tensor
        One input batch (one row is enough); only its shape (and floating dtype)
        is used.

    Returns
    -------
    int or None
    """
    module = getattr(module, "_orig_mod", module)  # a torch.compile wrapper
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for m in module.modules()):
        return None
    # the copy gets meta tensors for the parameters and buffers, and no hooks
    memo = {}
    for m in module.modules():
        for name, value in vars(m).items():
            if name.endswith("hooks") and isinstance(value, dict):
                memo[id(value)] = type(value)()
        for p in m._parameters.values():
            if p is not None:
                memo[id(p)] = torch.nn.Parameter(torch.empty_like(p, device="meta"),
                                                 requires_grad=p.requires_grad)
        for b in m._buffers.values():
            if b is not None:
                memo[id(b)] = torch.empty_like(b, device="meta")
    sizes = []

    def hook(layer, inputs):
        sizes.append(int(np.prod(inputs[0].shape[2:], dtype=np.int64)))

    try:
        shadow = copy.deepcopy(module, memo).eval()
        for m in shadow.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.register_forward_pre_hook(hook)
        with torch.no_grad():
            dtype = (sample.dtype if sample.is_floating_point()
                     else torch.get_default_dtype())  # images still in uint8
            shadow(torch.empty(tuple(sample.shape), dtype=dtype, device="meta"))
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, copy.Error):
        # e.g. a forward that reads values (.item(), numpy), or a weight that a
        # pre-hook computes (spectral_norm), absent from the hookless copy
        return None
    return min(sizes) if sizes else None


class ArrayBatchLoader:
    """Mini-batches sliced directly from in-memory tensors.

    A drop-in replacement for :class:`torch.utils.data.DataLoader` as skorch's
    ``iterator_train``/``iterator_valid`` when the data are arrays: instead of
    indexing one sample at a time and collating, each batch is one slice (or
    one fancy index of a random permutation) of the whole tensor. Datasets
    that do not hold plain arrays fall back to a ``DataLoader``.

    A trailing batch with fewer than ``min_last_batch`` rows is merged into
    the batch before it (:func:`merge_short_tail`), so batch normalisation
    never normalises over a handful of values; with ``drop_last=True`` a
    trailing partial batch is dropped instead, as ``DataLoader`` does. The
    nets set ``min_last_batch`` for their training batches from their own
    network and images unless it is given (``iterator_train__min_last_batch``):
    enough rows that every batch-normalisation layer gets
    :data:`MIN_NORM_VALUES` values per channel,
    ``ceil(MIN_NORM_VALUES / smallest_norm_map(module, x))`` and at least 2
    (16 rows for 8x8 images, whose last ResNet stage is 1x1; 2, one sample
    merged, from 28x28 on).

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Usually a :class:`skorch.dataset.Dataset` built from arrays (or a
        ``Subset`` of one, as made by skorch's ``ValidSplit``).
    batch_size : int, default=128
        Samples per batch.
    shuffle : bool, default=False
        Draw a new random permutation (from torch's global generator) at every
        pass.
    drop_last : bool, default=False
        Drop a trailing batch smaller than ``batch_size`` (``DataLoader``'s
        meaning; every epoch then misses a few samples).
    min_last_batch : int, default=2
        A trailing batch with fewer rows is merged into the one before (the
        default merges a single sample); a trailing batch of ``batch_size``
        rows, a full one, never is.
    **kwargs
        More ``DataLoader`` arguments, used when falling back to a
        ``DataLoader``.

    Raises
    ------
    TypeError, ValueError
        If ``drop_last`` is not a bool or ``min_last_batch`` not an int of at
        least 1.
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, drop_last=False,
                 min_last_batch=2, **kwargs):
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        if (not isinstance(min_last_batch, numbers.Integral)
                or isinstance(min_last_batch, (bool, np.bool_)) or min_last_batch < 1):
            raise ValueError(f"min_last_batch must be an int >= 1, got {min_last_batch!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = bool(drop_last)
        self.min_last_batch = int(min_last_batch)
        self.kwargs = kwargs
        self._arrays = self._find_arrays(dataset)

    @staticmethod
    def _find_arrays(dataset):
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            indices = np.asarray(dataset.indices)
            dataset = dataset.dataset
        X, y = getattr(dataset, "X", None), getattr(dataset, "y", None)
        if not isinstance(X, (np.ndarray, torch.Tensor)):
            return None
        if y is not None and not isinstance(y, (np.ndarray, torch.Tensor)):
            return None
        X = torch.as_tensor(X)
        y = None if y is None else torch.as_tensor(y)
        if indices is not None:
            idx = torch.as_tensor(indices, dtype=torch.long)
            X = X[idx]
            y = None if y is None else y[idx]
        return X, y

    def _bounds(self, n):
        """Start of each batch, then ``n``."""
        bounds = list(range(0, n, self.batch_size)) + [n]
        tail = n - bounds[-2] if len(bounds) > 1 else 0
        if self.drop_last and 0 < tail < self.batch_size:
            del bounds[-1]
        elif len(bounds) > 2 and tail < min(self.min_last_batch, self.batch_size):
            del bounds[-2]
        return bounds

    def __len__(self):
        return len(self._bounds(len(self.dataset))) - 1

    def __iter__(self):
        if self._arrays is None:
            loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size,
                                                 shuffle=self.shuffle,
                                                 drop_last=self.drop_last, **self.kwargs)
            yield from merge_short_tail(loader, self.min_last_batch)
            return
        X, y = self._arrays
        n = X.shape[0]
        order = torch.randperm(n) if self.shuffle else None
        bounds = self._bounds(n)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            if order is None:
                xb = X[start:stop]
                yb = None if y is None else y[start:stop]
            else:
                idx = order[start:stop]
                xb = X[idx]
                yb = None if y is None else y[idx]
            yield xb, yb
