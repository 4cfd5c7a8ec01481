"""Image data sets as normalised ``(n, C, H, W)`` float32 arrays.

Every loader of a named data set in this module returns
``(X_train, X_test, y_train, y_test)`` where

* ``X_train`` and ``X_test`` are ``float32`` arrays of shape
  ``(n, C, H, W)``,
* ``y_train`` and ``y_test`` are ``int64`` arrays of class labels
  ``0 .. n_classes - 1``.

Normalisation
-------------
Pixel values are first scaled to ``[0, 1]`` (divided by the maximal pixel
value of the format: 16 for scikit-learn's digits, 255 otherwise).  Then a
per-channel standardisation is applied: for every channel ``c`` the mean
and standard deviation are computed on the **training split only** (over
all training images and pixels of that channel) and both splits are
transformed as ``(X[:, c] - mean_c) / std_c``.  The training split
therefore has per-channel mean 0 and standard deviation 1, while the test
split is transformed with the same statistics (so no information from the
test split leaks into the preprocessing).  When ``n_train`` is given the
statistics are computed on the selected training subset.

Only :func:`load_digits_images` (scikit-learn's bundled data) works without
any files.  Fashion-MNIST is read from the standard IDX files, CIFAR-10,
CIFAR-100 and SVHN from their standard distribution formats (python pickle
batches and MATLAB ``.mat`` files); these readers need nothing beyond
NumPy and SciPy.  ``torchvision`` is only used to *download* the CIFAR and
SVHN archives when ``download=True`` and the files are absent.

Image folders
-------------
:func:`load_image_folder` (and :class:`ImageFolderDataset`, the torch
``Dataset`` behind it) reads your own images from a folder of image files,
``root/<class>/<image files>``: the images stay on disk and are decoded
(with Pillow) when they are read, as float32 values in ``[0, 1]`` without
standardisation; the result is a :class:`~sklearn_crtcl.data.DatasetArray`
that the estimators and query strategies stream.
"""

import gzip
import io
import os
import pickle
import struct

import numpy as np
import torch

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_SYSTEM_DIR",
    "load_dataset",
    "load_digits_images",
    "load_fashion_mnist",
    "load_cifar10",
    "load_cifar100",
    "load_svhn",
    "read_idx",
    "ImageFolderDataset",
    "load_image_folder",
]

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES = ("digits", "fashion_mnist", "cifar10", "cifar100", "svhn")

#: Where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the
#: Fashion-MNIST IDX files.  Searched by :func:`load_fashion_mnist` when
#: ``data_home`` is None.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

_VISION_HINT = (
    "torchvision is required to download this data set; install it with "
    "`pip install sklearn-crtcl[vision]` (or `pip install torchvision` "
    "matching your torch build), or place the files under data_home yourself."
)

# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _default_data_home():
    """Return scikit-learn's data folder without creating it."""
    path = os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
    return os.path.expanduser(path)


def _resolve_data_home(data_home):
    if data_home is None:
        return _default_data_home()
    return os.path.expanduser(os.fspath(data_home))


def _check_n(n, n_available, name):
    """Validate a requested subset size; return None for "use all"."""
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int or None, got {n!r}.")
    n = int(n)
    if n < 1:
        raise ValueError(f"{name} must be a positive int or None, got {n}.")
    if n > n_available:
        raise ValueError(
            f"{name}={n} is larger than the number of available samples "
            f"({n_available})."
        )
    return n


def _stratified_indices(y, n, rng):
    """Indices of a stratified random subset of ``y`` of size ``n``.

    Every class gets ``floor(n * p_c)`` samples (``p_c`` its frequency in
    ``y``); the remaining samples go to the classes with the largest
    fractional parts (ties broken at random).  Within a class the samples
    are drawn uniformly without replacement.  The returned indices are
    sorted so the subset keeps the original order.
    """
    y = np.asarray(y)
    if n >= y.shape[0]:
        return np.arange(y.shape[0])
    classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = n * counts / y.shape[0]
    alloc = np.floor(exact).astype(np.int64)
    remainder = n - int(alloc.sum())
    if remainder > 0:
        frac = exact - alloc
        # random tie breaking: sort by (-frac, random key)
        order = np.lexsort((rng.random_sample(len(classes)), -frac))
        alloc[order[:remainder]] += 1
    chosen = []
    for k in range(len(classes)):
        members = np.flatnonzero(y_idx == k)
        if alloc[k] > 0:
            chosen.append(rng.choice(members, size=alloc[k], replace=False))
    return np.sort(np.concatenate(chosen))


def _subsample(X, y, n, rng, name):
    n = _check_n(n, y.shape[0], name)
    if n is None or n == y.shape[0]:
        return X, y
    idx = _stratified_indices(y, n, rng)
    return X[idx], y[idx]


def _to_float(X, scale):
    """Cast to a fresh float32 array scaled by ``1 / scale``."""
    X = np.array(X, dtype=np.float32)  # always a copy: callers' data untouched
    X /= np.float32(scale)
    return X


def _standardise(X_train, X_test):
    """Per-channel standardisation with statistics of ``X_train`` (in place).

    Both arrays must be float32 of shape ``(n, C, H, W)``.  Channels with
    zero variance on the training split are only centred.
    """
    n_channels = X_train.shape[1]
    for c in range(n_channels):
        channel = X_train[:, c]
        mean = channel.mean(dtype=np.float64)
        std = channel.std(dtype=np.float64)
        if not np.isfinite(std) or std <= 0:
            std = 1.0
        for X in (X_train, X_test):
            X[:, c] -= np.float32(mean)
            X[:, c] /= np.float32(std)
    return X_train, X_test


def _finish(X_train, X_test, y_train, y_test, scale, n_train, n_test, random_state):
    """Subsample, scale, standardise and cast a raw split."""
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    X_train, y_train = _subsample(X_train, y_train, n_train, rng, "n_train")
    X_test, y_test = _subsample(X_test, y_test, n_test, rng, "n_test")
    X_train = _to_float(X_train, scale)
    X_test = _to_float(X_test, scale)
    X_train, X_test = _standardise(X_train, X_test)
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    return X_train, X_test, y_train, y_test


def _check_labels(y, n_classes, path):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{path}: labels must be one-dimensional, got shape {y.shape}.")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{path}: labels must lie in [0, {n_classes - 1}], found values in "
            f"[{y.min()}, {y.max()}]; the file is corrupt or not the expected data set."
        )
    return y.astype(np.int64)


# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------


def load_digits_images(test_size=0.25, random_state=0):
    """Load scikit-learn's 8x8 handwritten digits as images.

    Works offline: the data ship with scikit-learn
    (:func:`sklearn.datasets.load_digits`, 1797 images, 10 classes).

    Parameters
    ----------
    test_size : float or int, default=0.25
        Fraction (float in ``(0, 1)``) or number (int) of samples put in
        the test split, as in :func:`sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seed of the stratified train/test split.

    Returns
    -------
    X_train : ndarray of shape (n_train, 1, 8, 8), dtype float32
        Training images, standardised with the training split's mean and
        standard deviation (see the module documentation).
    X_test : ndarray of shape (n_test, 1, 8, 8), dtype float32
        Test images, standardised with the training split's statistics.
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``0 .. 9``.
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels in ``0 .. 9``.

    Examples
    --------
    >>> from sklearn_crtcl.datasets import load_digits_images
    >>> X_train, X_test, y_train, y_test = load_digits_images()
    >>> X_train.shape, X_train.dtype
    ((1347, 1, 8, 8), dtype('float32'))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(
        images,
        digits.target,
        test_size=test_size,
        random_state=random_state,
        stratify=digits.target,
    )
    return _finish(X_train, X_test, y_train, y_test, 16.0, None, None, 0)


# --------------------------------------------------------------------------
# IDX format / Fashion-MNIST
# --------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_maybe_gzip(path):
    """Return the bytes of ``path``, decompressing gzip transparently.

    Compression is detected from the content (gzip magic ``1f 8b``), not
    from the file name.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as exc:
            raise ValueError(
                f"{path}: corrupt gzip data ({exc}); delete the file and get it again."
            ) from exc
    return raw


def read_idx(path):
    """Read an array stored in the IDX format (used by MNIST/Fashion-MNIST).

    The IDX format is a 4-byte magic number ``00 00 TT DD`` where ``TT``
    codes the element type (``0x08`` unsigned byte, ``0x09`` signed byte,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64) and
    ``DD`` the number of dimensions, followed by one big-endian uint32 per
    dimension and then the data in big-endian C order.

    Parameters
    ----------
    path : str or path-like
        File to read, either plain or gzip-compressed (detected from the
        content).

    Returns
    -------
    array : ndarray
        The stored array, converted to native byte order, with the shape
        given in the header.

    Raises
    ------
    ValueError
        If the file is not valid IDX: wrong magic number, unknown type
        code, truncated header, or a data size that does not match the
        dimensions (truncated file or trailing bytes).

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 4]))
    >>> read_idx(path)
    array([7, 1, 4], dtype=uint8)
    """
    path = os.fspath(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes).")
    zero1, zero2, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0 or type_code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected "
            "00 00 <type> <ndim> with type one of 08, 09, 0b, 0c, 0d, 0e); "
            "the file is corrupt or not an IDX file."
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions.")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(
            f"{path}: truncated IDX header ({ndim} dimensions declared, "
            f"file has {len(raw)} bytes)."
        )
    shape = struct.unpack(">" + "I" * ndim, raw[4:header_end])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {what}: header shape {tuple(shape)} needs "
            f"{expected} data bytes, found {actual}."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _fashion_search_dirs(data_home):
    if data_home is None:
        return [FASHION_MNIST_SYSTEM_DIR]
    root = os.path.expanduser(os.fspath(data_home))
    return [
        root,
        os.path.join(root, "FashionMNIST", "raw"),
        os.path.join(root, "fashion-mnist"),
    ]


def _find_in_dir(directory, filename):
    for candidate in (filename, filename + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _locate_fashion_files(data_home):
    searched = _fashion_search_dirs(data_home)
    report = []
    for directory in searched:
        found = {key: _find_in_dir(directory, name) for key, name in _FASHION_FILES.items()}
        missing = [_FASHION_FILES[k] for k, p in found.items() if p is None]
        if not missing:
            return found
        report.append((directory, missing))
    lines = [
        "Fashion-MNIST IDX files not found. Each of "
        + ", ".join(_FASHION_FILES.values())
        + " is needed (plain or .gz). Searched:"
    ]
    for directory, missing in report:
        state = "does not exist" if not os.path.isdir(directory) else "missing " + ", ".join(missing)
        lines.append(f"  {directory}: {state}")
    lines.append(
        "To get the files: on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` "
        f"(installs them in {FASHION_MNIST_SYSTEM_DIR}, used when data_home=None), or "
        "download them with torchvision: "
        "`torchvision.datasets.FashionMNIST(root, download=True)` and pass "
        "data_home=root (the files land in root/FashionMNIST/raw/)."
    )
    raise FileNotFoundError("\n".join(lines))


def _read_fashion_split(images_path, labels_path):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected unsigned-byte images of shape (n, 28, 28), "
            f"got {images.dtype} array of shape {images.shape}."
        )
    labels = _check_labels(labels, 10, labels_path)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} "
            f"holds {labels.shape[0]} labels."
        )
    return images[:, None, :, :], labels


def load_fashion_mnist(data_home=None, n_train=None, n_test=None, random_state=0):
    """Load Fashion-MNIST from the standard IDX files.

    The four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` are read, each
    either plain or gzip-compressed (``.gz``).  The official train/test
    split (60000/10000 images) is used.

    Parameters
    ----------
    data_home : str, path-like or None, default=None
        Where to look for the files.  If None, the location of the
        Debian/Ubuntu package ``dataset-fashion-mnist``
        (:data:`FASHION_MNIST_SYSTEM_DIR`, ``/usr/share/datasets/fashion-mnist``)
        is searched.  Otherwise the files are searched, in this order, in
        ``data_home`` itself, in the torchvision layout
        ``data_home/FashionMNIST/raw`` and in ``data_home/fashion-mnist``;
        the first folder holding all four files is used.
    n_train : int or None, default=None
        If given, a stratified random subset of that many training images
        is returned (class proportions preserved, up to rounding).
    n_test : int or None, default=None
        Same as ``n_train`` for the test split.
    random_state : int, RandomState instance or None, default=0
        Seed for the subsets; the same seed gives the same subsets.

    Returns
    -------
    X_train : ndarray of shape (n_train, 1, 28, 28), dtype float32
        Training images, standardised with the training split's statistics.
    X_test : ndarray of shape (n_test, 1, 28, 28), dtype float32
        Test images, standardised with the training split's statistics.
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``0 .. 9``.
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels in ``0 .. 9``.

    Raises
    ------
    FileNotFoundError
        If no searched folder holds all four files; the message names the
        missing files, the folders searched and how to get the data.
    ValueError
        If a file is corrupt (bad magic number, wrong size, wrong image
        shape, labels outside ``0 .. 9`` or image/label count mismatch).
    """
    paths = _locate_fashion_files(data_home)
    X_train, y_train = _read_fashion_split(paths["train_images"], paths["train_labels"])
    X_test, y_test = _read_fashion_split(paths["test_images"], paths["test_labels"])
    return _finish(X_train, X_test, y_train, y_test, 255.0, n_train, n_test, random_state)


# --------------------------------------------------------------------------
# torchvision download helper
# --------------------------------------------------------------------------


def _import_torchvision_datasets():
    """Import ``torchvision.datasets`` or raise ImportError with a hint."""
    try:
        import torchvision.datasets as tv_datasets
    except Exception as exc:  # broken builds can raise more than ImportError
        raise ImportError(f"{_VISION_HINT} (import failed: {exc!r})") from exc
    return tv_datasets


def _missing(paths):
    return [p for p in paths if not os.path.isfile(p)]


def _ensure_files(paths, data_home, download, name, download_fn, manual):
    """Make sure ``paths`` exist, downloading through torchvision if allowed."""
    missing = _missing(paths)
    if not missing:
        return
    if not download:
        raise FileNotFoundError(
            f"{name} files not found under {data_home}: missing "
            + ", ".join(missing)
            + f". Pass download=True to fetch them with torchvision "
            f"(needs `pip install sklearn-crtcl[vision]`), or {manual}"
        )
    tv_datasets = _import_torchvision_datasets()
    os.makedirs(data_home, exist_ok=True)
    download_fn(tv_datasets)
    missing = _missing(paths)
    if missing:
        raise FileNotFoundError(
            f"torchvision's download of {name} did not produce " + ", ".join(missing)
        )


# --------------------------------------------------------------------------
# CIFAR (python pickle batches)
# --------------------------------------------------------------------------

_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds plain containers and NumPy arrays.

    The CIFAR batches are pickles; refusing every other global means a
    tampered file cannot run code when it is read.
    """

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: CIFAR batches only hold "
                "dicts, lists and NumPy arrays"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # NumPy >= 2 renamed numpy.core to numpy._core; the old name
            # (used by the original CIFAR pickles) only works with a warning.
            module = "numpy._core." + module[len("numpy.core.") :]
        return super().find_class(module, name)


def _load_pickle(path):
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: cannot read CIFAR pickle batch ({exc}).") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}.")
    # Keys are str when read with encoding="latin1"; accept bytes too.
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_cifar_batch(path, label_key, n_classes):
    batch = _load_pickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise ValueError(
                f"{path}: missing key {key!r} (found {sorted(map(str, batch))})."
            )
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: 'data' must be a uint8 array of shape (n, 3072), got "
            f"{data.dtype} array of shape {data.shape}."
        )
    labels = _check_labels(np.asarray(batch[label_key]).reshape(-1), n_classes, path)
    if labels.shape[0] != data.shape[0]:
        raise ValueError(
            f"{path}: {data.shape[0]} images but {labels.shape[0]} labels."
        )
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_meta(path, key, n_classes):
    if not os.path.isfile(path):
        return
    meta = _load_pickle(path)
    if key in meta and len(meta[key]) != n_classes:
        raise ValueError(
            f"{path}: {key!r} lists {len(meta[key])} classes, expected {n_classes}."
        )


def _read_cifar(paths_train, paths_test, label_key, n_classes):
    train = [_read_cifar_batch(p, label_key, n_classes) for p in paths_train]
    X_test, y_test = _read_cifar_batch(paths_test, label_key, n_classes)
    X_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return X_train, X_test, y_train, y_test


def _cifar10_paths(root):
    base = os.path.join(root, "cifar-10-batches-py")
    train = [os.path.join(base, f"data_batch_{i}") for i in range(1, 6)]
    return base, train, os.path.join(base, "test_batch")


def load_cifar10(data_home=None, download=False, n_train=None, n_test=None, random_state=0):
    """Load CIFAR-10 as ``(n, 3, 32, 32)`` float32 images.

    Reads the "CIFAR-10 python version" layout that torchvision also uses:
    ``data_home/cifar-10-batches-py/`` with ``data_batch_1`` ...
    ``data_batch_5`` (training), ``test_batch`` and ``batches.meta``.  If
    these files exist they are read directly (no torchvision needed);
    otherwise, with ``download=True``,
    ``torchvision.datasets.CIFAR10(data_home, train=..., download=True)``
    fetches them first.

    Parameters
    ----------
    data_home : str, path-like or None, default=None
        Root folder holding ``cifar-10-batches-py`` (torchvision's ``root``).
        None means scikit-learn's data folder (``$SCIKIT_LEARN_DATA`` or
        ``~/scikit_learn_data``).
    download : bool, default=False
        Download the files through torchvision when they are missing.
    n_train : int or None, default=None
        If given, a stratified random subset of that many training images.
    n_test : int or None, default=None
        If given, a stratified random subset of that many test images.
    random_state : int, RandomState instance or None, default=0
        Seed for the subsets.

    Returns
    -------
    X_train : ndarray of shape (n_train, 3, 32, 32), dtype float32
        Training images, standardised per channel with the training split's
        statistics.
    X_test : ndarray of shape (n_test, 3, 32, 32), dtype float32
        Test images, standardised with the training split's statistics.
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``0 .. 9``.
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels in ``0 .. 9``.

    Raises
    ------
    FileNotFoundError
        If the files are missing and ``download`` is False.
    ImportError
        If the files are missing, ``download`` is True and torchvision
        cannot be imported.
    ValueError
        If a file is corrupt (wrong array shape or dtype, labels out of
        range, unexpected pickle content).

    Notes
    -----
    The batches are Python pickles; they are read with an unpickler that
    only allows dicts, lists and NumPy arrays, so a tampered file raises
    ValueError instead of running code.
    """
    root = _resolve_data_home(data_home)
    base, train_paths, test_path = _cifar10_paths(root)

    def fetch(tv):
        tv.CIFAR10(root, train=True, download=True)
        tv.CIFAR10(root, train=False, download=True)

    _ensure_files(
        train_paths + [test_path],
        root,
        download,
        "CIFAR-10",
        fetch,
        "extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
        "into data_home.",
    )
    _read_cifar_meta(os.path.join(base, "batches.meta"), "label_names", 10)
    X_train, X_test, y_train, y_test = _read_cifar([*train_paths], test_path, "labels", 10)
    return _finish(X_train, X_test, y_train, y_test, 255.0, n_train, n_test, random_state)


def load_cifar100(
    data_home=None,
    download=False,
    n_train=None,
    n_test=None,
    random_state=0,
    label_mode="fine",
):
    """Load CIFAR-100 as ``(n, 3, 32, 32)`` float32 images.

    Reads the "CIFAR-100 python version" layout that torchvision also uses:
    ``data_home/cifar-100-python/`` with ``train``, ``test`` and ``meta``.
    If these files exist they are read directly (no torchvision needed);
    otherwise, with ``download=True``,
    ``torchvision.datasets.CIFAR100(data_home, train=..., download=True)``
    fetches them first.

    Parameters
    ----------
    data_home : str, path-like or None, default=None
        Root folder holding ``cifar-100-python`` (torchvision's ``root``).
        None means scikit-learn's data folder (``$SCIKIT_LEARN_DATA`` or
        ``~/scikit_learn_data``).
    download : bool, default=False
        Download the files through torchvision when they are missing.
    n_train : int or None, default=None
        If given, a stratified random subset of that many training images.
    n_test : int or None, default=None
        If given, a stratified random subset of that many test images.
    random_state : int, RandomState instance or None, default=0
        Seed for the subsets.
    label_mode : {"fine", "coarse"}, default="fine"
        ``"fine"``: the 100 classes (``fine_labels``); ``"coarse"``: the 20
        super-classes (``coarse_labels``).

    Returns
    -------
    X_train : ndarray of shape (n_train, 3, 32, 32), dtype float32
        Training images, standardised per channel with the training split's
        statistics.
    X_test : ndarray of shape (n_test, 3, 32, 32), dtype float32
        Test images, standardised with the training split's statistics.
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``0 .. 99`` (``0 .. 19`` for ``"coarse"``).
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels.

    Raises
    ------
    FileNotFoundError
        If the files are missing and ``download`` is False.
    ImportError
        If the files are missing, ``download`` is True and torchvision
        cannot be imported.
    ValueError
        If a file is corrupt, or ``label_mode`` is not "fine" or "coarse".
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}.")
    label_key, n_classes = ("fine_labels", 100) if label_mode == "fine" else ("coarse_labels", 20)
    root = _resolve_data_home(data_home)
    base = os.path.join(root, "cifar-100-python")
    train_path, test_path = os.path.join(base, "train"), os.path.join(base, "test")

    def fetch(tv):
        tv.CIFAR100(root, train=True, download=True)
        tv.CIFAR100(root, train=False, download=True)

    _ensure_files(
        [train_path, test_path],
        root,
        download,
        "CIFAR-100",
        fetch,
        "extract cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
        "into data_home.",
    )
    meta_key = "fine_label_names" if label_mode == "fine" else "coarse_label_names"
    _read_cifar_meta(os.path.join(base, "meta"), meta_key, n_classes)
    X_train, X_test, y_train, y_test = _read_cifar([train_path], test_path, label_key, n_classes)
    return _finish(X_train, X_test, y_train, y_test, 255.0, n_train, n_test, random_state)


# --------------------------------------------------------------------------
# SVHN (MATLAB .mat files)
# --------------------------------------------------------------------------


def _read_svhn_mat(path):
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for bad files
        raise ValueError(f"{path}: cannot read SVHN .mat file ({exc}).") from exc
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables 'X' and 'y' in the .mat file.")
    X, y = mat["X"], mat["y"]
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise ValueError(
            f"{path}: 'X' must be a uint8 array of shape (32, 32, 3, n), got "
            f"{X.dtype} array of shape {X.shape}."
        )
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if y.shape[0] != X.shape[3]:
        raise ValueError(f"{path}: {X.shape[3]} images but {y.shape[0]} labels.")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise ValueError(
            f"{path}: SVHN labels must lie in [1, 10] (10 is digit 0), found "
            f"values in [{y.min()}, {y.max()}]."
        )
    y[y == 10] = 0
    # (H, W, C, n) -> (n, C, H, W)
    return np.ascontiguousarray(X.transpose(3, 2, 0, 1)), y


def load_svhn(data_home=None, download=False, n_train=None, n_test=None, random_state=0):
    """Load SVHN (cropped digits) as ``(n, 3, 32, 32)`` float32 images.

    Reads ``data_home/train_32x32.mat`` and ``data_home/test_32x32.mat``
    (the "format 2" files, also torchvision's layout) with
    :func:`scipy.io.loadmat`.  In these files ``X`` has shape
    ``(32, 32, 3, n)`` and ``y`` shape ``(n, 1)`` with label 10 standing for
    digit 0; the returned labels are the digits ``0 .. 9``.  If the files
    are missing and ``download=True``,
    ``torchvision.datasets.SVHN(data_home, split="train"/"test", download=True)``
    fetches them first.  The ``extra`` split is not used.

    Parameters
    ----------
    data_home : str, path-like or None, default=None
        Folder holding the ``.mat`` files (torchvision's ``root``).  None
        means scikit-learn's data folder (``$SCIKIT_LEARN_DATA`` or
        ``~/scikit_learn_data``).
    download : bool, default=False
        Download the files through torchvision when they are missing.
    n_train : int or None, default=None
        If given, a stratified random subset of that many training images.
    n_test : int or None, default=None
        If given, a stratified random subset of that many test images.
    random_state : int, RandomState instance or None, default=0
        Seed for the subsets.

    Returns
    -------
    X_train : ndarray of shape (n_train, 3, 32, 32), dtype float32
        Training images, standardised per channel with the training split's
        statistics.
    X_test : ndarray of shape (n_test, 3, 32, 32), dtype float32
        Test images, standardised with the training split's statistics.
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels (digits ``0 .. 9``).
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels (digits ``0 .. 9``).

    Raises
    ------
    FileNotFoundError
        If the files are missing and ``download`` is False.
    ImportError
        If the files are missing, ``download`` is True and torchvision
        cannot be imported.
    ValueError
        If a file is corrupt (wrong array shape or dtype, labels outside
        ``1 .. 10``).
    """
    root = _resolve_data_home(data_home)
    train_path = os.path.join(root, "train_32x32.mat")
    test_path = os.path.join(root, "test_32x32.mat")

    def fetch(tv):
        tv.SVHN(root, split="train", download=True)
        tv.SVHN(root, split="test", download=True)

    _ensure_files(
        [train_path, test_path],
        root,
        download,
        "SVHN",
        fetch,
        "download train_32x32.mat and test_32x32.mat from "
        "http://ufldl.stanford.edu/housenumbers/ into data_home.",
    )
    X_train, y_train = _read_svhn_mat(train_path)
    X_test, y_test = _read_svhn_mat(test_path)
    return _finish(X_train, X_test, y_train, y_test, 255.0, n_train, n_test, random_state)


# --------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------

#: Pillow modes :class:`ImageFolderDataset` converts images to, with their
#: number of channels.
_IMAGE_MODES = {"RGB": 3, "L": 1, "RGBA": 4}

_PILLOW_HINT = ("Pillow is required to read image files; install it with `pip install pillow`")


def _import_pillow():
    """``PIL.Image``, or an ``ImportError`` saying how to install Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(_PILLOW_HINT) from exc
    return Image


def _check_image_size(size):
    """``None`` or ``(height, width)`` of positive ints."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
                       and s > 0 for s in size)):
        raise ValueError(f"size must be None, a positive int or a (height, width) tuple of "
                         f"positive ints, got {size!r}")
    return (int(size[0]), int(size[1]))


def _folder_files(folder):
    """Every file under ``folder`` (recursively, hidden names skipped), sorted by
    relative path."""
    found = []
    seen = {os.path.realpath(folder)}  # symbolic links are followed, each folder once
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real not in seen:
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        found.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith("."))
    return sorted(found, key=lambda p: os.path.relpath(p, folder).split(os.sep))


class ImageFolderDataset(torch.utils.data.Dataset):
    """A folder of image files as a map-style torch ``Dataset``.

    The layout is the usual one, ``root/<class>/<image files>``: classes are
    the sub-folders of ``root`` (sorted by name; class ``k`` is the
    ``k``-th), and their images are every file under them (sub-folders
    included), sorted by path; files directly in ``root`` are ignored. With
    ``labeled=False``, every file under ``root`` is an unlabeled image.
    Names starting with ``.`` are skipped.

    The files are checked when the dataset is built: each one is opened
    once (its header only, not its pixels) to check that Pillow reads it
    and, without ``size``, that all images have the same size. Item ``i``
    is decoded when it is read: converted to ``mode``, resized to ``size``
    if given, as a float32 array ``(C, H, W)`` of values in ``[0, 1]``
    (pixel / 255).

    Parameters
    ----------
    root : str or path-like
        The folder.
    labeled : bool, default=True
        Whether the sub-folders of ``root`` are classes. ``False``: ``root``
        holds unlabeled images (at any depth).
    size : int or tuple of (int, int), optional
        ``(height, width)`` to resize every image to (bilinear, with
        Pillow; an int gives square images). Without it, all images must
        have the same size.
    mode : {"RGB", "L", "RGBA"}, default="RGB"
        Pillow mode the images are converted to: 3, 1 or 4 channels.

    Attributes
    ----------
    classes : list of str
        The class names (sub-folders), sorted; empty with ``labeled=False``.
    filenames : list of str
        Path of each image, in item order.
    targets : ndarray of shape (n,), dtype int64, or None
        Class index of each image (into ``classes``); ``None`` with
        ``labeled=False``.
    image_shape : tuple of int
        ``(C, H, W)`` of every image.

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``root`` does not exist.
    NotADirectoryError
        If ``root`` is a file.
    ValueError
        For a folder without class sub-folders (``labeled=True``) or without
        files, a class folder without files, a file Pillow cannot read
        (named), images of different sizes without ``size`` (both files
        named), or an invalid ``size`` or ``mode``.
    TypeError
        If ``root`` is not a path or ``labeled`` not a bool.

    See Also
    --------
    load_image_folder : The images as a :class:`~sklearn_crtcl.data.DatasetArray`, and
        the labels.

    Notes
    -----
    Item ``i`` is ``(image, label)`` with ``labeled=True`` (the torch
    convention), the image alone otherwise.
    """

    def __init__(self, root, *, labeled=True, size=None, mode="RGB"):
        Image = _import_pillow()
        if not isinstance(labeled, (bool, np.bool_)):
            raise TypeError(f"labeled must be True or False, got {labeled!r}")
        if not isinstance(mode, str) or mode not in _IMAGE_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _IMAGE_MODES))}, got "
                             f"{mode!r}")
        size = _check_image_size(size)
        try:
            folder = os.path.expanduser(os.fspath(root))
        except TypeError:
            raise TypeError(f"root must be a path to a folder, got {type(root).__name__}") \
                from None
        if not os.path.exists(folder):
            raise FileNotFoundError(f"image folder {folder!r} does not exist")
        if not os.path.isdir(folder):
            raise NotADirectoryError(f"{folder!r} is a file, not a folder of images")
        if labeled:
            classes = sorted(entry.name for entry in os.scandir(folder)
                             if entry.is_dir() and not entry.name.startswith("."))
            if not classes:
                raise ValueError(
                    f"{folder!r} has no class sub-folders: the layout is "
                    "root/<class>/<image files>; for a folder of unlabeled images pass "
                    "labeled=False")
            filenames, targets = [], []
            for k, name in enumerate(classes):
                files = _folder_files(os.path.join(folder, name))
                if not files:
                    raise ValueError(f"class folder {os.path.join(folder, name)!r} holds no "
                                     "files; every class needs at least one image")
                filenames.extend(files)
                targets.extend([k] * len(files))
            targets = np.asarray(targets, dtype=np.int64)
        else:
            classes, targets = [], None
            filenames = _folder_files(folder)
            if not filenames:
                raise ValueError(f"image folder {folder!r} holds no files")
        first = None
        for path in filenames:
            try:
                with Image.open(path) as image:
                    file_size = image.size  # (width, height): reads the header only
            except OSError as exc:  # (PIL.UnidentifiedImageError is an OSError)
                raise ValueError(f"{path!r} is not an image file that Pillow can read "
                                 f"({type(exc).__name__}: {exc}); remove it from the "
                                 "folder") from None
            if first is None:
                first = (path, file_size)
            elif size is None and file_size != first[1]:
                raise ValueError(
                    f"images of different sizes: {path!r} is {file_size[1]}x{file_size[0]} "
                    f"pixels (height x width) but {first[0]!r} is "
                    f"{first[1][1]}x{first[1][0]}; all images must have the same size, or "
                    "pass size=(height, width) to resize them")
        height, width = size if size is not None else (first[1][1], first[1][0])
        self.root = root
        self.labeled = bool(labeled)
        self.size = size
        self.mode = mode
        self.classes = classes
        self.filenames = filenames
        self.targets = targets
        self.image_shape = (_IMAGE_MODES[mode], height, width)

    def __len__(self):
        return len(self.filenames)

    def __getitem__(self, index):
        image = self.load_image(self.filenames[index])
        if self.targets is None:
            return image
        return image, int(self.targets[index])

    def load_image(self, path):
        """Decode one image file as the dataset's items hold it.

        Parameters
        ----------
        path : str or path-like
            An image file.

        Returns
        -------
        image : ndarray of shape (C, H, W), dtype float32
            Converted to ``mode``, resized to ``size`` if set, values in
            ``[0, 1]`` (pixel / 255).

        Raises
        ------
        ValueError
            If Pillow cannot decode the file, or (without ``size``) the image
            does not have the size of the dataset's images.
        """
        Image = _import_pillow()
        channels, height, width = self.image_shape
        try:
            with Image.open(path) as image:
                image = image.convert(self.mode)
                if self.size is not None and image.size != (width, height):
                    bilinear = getattr(Image, "Resampling", Image).BILINEAR
                    image = image.resize((width, height), resample=bilinear)
                pixels = np.asarray(image, dtype=np.uint8)
        except OSError as exc:
            raise ValueError(f"cannot decode the image file {os.fspath(path)!r} "
                             f"({type(exc).__name__}: {exc})") from None
        pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
        if pixels.shape != (height, width, channels):
            raise ValueError(
                f"{os.fspath(path)!r} is {pixels.shape[0]}x{pixels.shape[1]} pixels "
                f"(height x width) but the dataset's images are {height}x{width}; pass "
                "size=(height, width) to resize them")
        out = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
        out /= np.float32(255)
        return out

    def __repr__(self):
        kind = f"{len(self.classes)} classes" if self.labeled else "unlabeled"
        return (f"{type(self).__name__}({os.fspath(self.root)!r}, {len(self)} images, "
                f"{kind}, image_shape={self.image_shape})")


def load_image_folder(root, *, labeled=True, size=None, mode="RGB", num_workers=0,
                      pin_memory=True, batch_size=128, return_X_y=False):
    """Load a folder of image files, ``root/<class>/<image files>``, without reading it.

    The images are an :class:`~sklearn_crtcl.data.DatasetArray` over an
    :class:`ImageFolderDataset`: an ``(n, C, H, W)`` float32 array-like whose
    images are decoded (float32 in ``[0, 1]``, channels first) only when
    read. The package's estimators and query strategies take it wherever
    they take an image array: inference and queries stream the images in
    batches (``num_workers`` worker processes decode them), training reads
    the training set into memory. The layout is that of
    ``torchvision.datasets.ImageFolder`` and of scikit-learn's
    :func:`~sklearn.datasets.load_files`; torchvision is not needed.

    Parameters
    ----------
    root : str or path-like
        The folder: one sub-folder of image files per class (sorted by name;
        their files, sub-folders included, sorted by path). Names starting
        with ``.`` are skipped.
    labeled : bool, default=True
        ``False``: every file under ``root`` is an unlabeled image (no class
        sub-folders), e.g. an unlabeled pool.
    size : int or tuple of (int, int), optional
        ``(height, width)`` to resize every image to (bilinear); without it,
        all images must have the same size.
    mode : {"RGB", "L", "RGBA"}, default="RGB"
        Pillow mode the images are converted to (3, 1 or 4 channels).
    num_workers : int, default=0
        Worker processes that decode the images when they are streamed
        (see :class:`~sklearn_crtcl.data.DatasetArray`).
    pin_memory : bool, default=True
        Pin the batches in memory when they go to a CUDA device.
    batch_size : int, default=128
        Images per ``DataLoader`` batch when indexing reads many rows.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        data : DatasetArray of shape (n, C, H, W)
            The images.
        target : ndarray of shape (n,), dtype int64, or None
            Class index of each image; ``None`` with ``labeled=False``.
        target_names : list of str
            The class names (sub-folders): ``target_names[target[i]]`` is the
            class of image ``i``.
        filenames : ndarray of str
            The path of each image.
    (data, target) : tuple
        With ``return_X_y=True``.

    Raises
    ------
    ImportError
        If Pillow is not installed (``pip install pillow``).
    FileNotFoundError
        If ``root`` does not exist.
    ValueError
        For an empty folder, a folder without class sub-folders (with
        ``labeled=True``) or a class folder without files, a file that is
        not an image (named), images of different sizes without ``size``
        (named), or an invalid argument. Every file is checked (its header
        is read) before anything is returned.

    See Also
    --------
    ImageFolderDataset : The torch ``Dataset`` behind the images.

    Examples
    --------
    >>> from sklearn_crtcl import ResNetClassifier
    >>> from sklearn_crtcl.datasets import load_image_folder
    >>> X, y = load_image_folder("photos/", size=32, num_workers=4,
    ...                          return_X_y=True)  # doctest: +SKIP
    >>> clf = ResNetClassifier(max_epochs=30).fit(X[:500], y[:500])  # doctest: +SKIP
    >>> proba = clf.predict_proba(X)  # streamed, 4 decoding workers  # doctest: +SKIP
    """
    from sklearn.utils import Bunch

    from .data import DatasetArray, _check_loader_params

    if not isinstance(return_X_y, (bool, np.bool_)):
        raise TypeError(f"return_X_y must be True or False, got {return_X_y!r}")
    _check_loader_params(num_workers, pin_memory, batch_size)  # before reading the folder
    dataset = ImageFolderDataset(root, labeled=labeled, size=size, mode=mode)
    X = DatasetArray(dataset, num_workers=num_workers, pin_memory=pin_memory,
                     batch_size=batch_size)
    target = None if dataset.targets is None else dataset.targets.copy()
    if return_X_y:
        return X, target
    return Bunch(data=X, target=target, target_names=list(dataset.classes),
                 filenames=np.asarray(dataset.filenames))


# --------------------------------------------------------------------------
# Dispatcher
# --------------------------------------------------------------------------

_LOADERS = {
    "digits": load_digits_images,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
}


def load_dataset(name, **kwargs):
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`: ``"digits"``
        (:func:`load_digits_images`), ``"fashion_mnist"``
        (:func:`load_fashion_mnist`), ``"cifar10"`` (:func:`load_cifar10`),
        ``"cifar100"`` (:func:`load_cifar100`) or ``"svhn"``
        (:func:`load_svhn`).
    **kwargs
        Passed on to the loader.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        What the loader returns: float32 images of shape ``(n, C, H, W)``
        and int64 labels.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`DATASET_NAMES`.

    Examples
    --------
    >>> from sklearn_crtcl.datasets import load_dataset
    >>> X_train, X_test, y_train, y_test = load_dataset("digits", test_size=0.5)
    >>> X_test.shape
    (899, 1, 8, 8)
    """
    try:
        loader = _LOADERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown data set {name!r}; valid names are: " + ", ".join(DATASET_NAMES) + "."
        ) from None
    return loader(**kwargs)
