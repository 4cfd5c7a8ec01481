"""Tests for sklearn_crtcl.datasets.

Every file-based loader is exercised on small files written here in the
real on-disk formats (IDX, CIFAR python pickles, SVHN .mat), so the tests
need neither network access nor torchvision.
"""

import gzip
import os
import pickle
import struct
import sys
import types
import warnings

import numpy as np
import pytest
from scipy.io import savemat
from sklearn.datasets import load_digits

from sklearn_crtcl import datasets
from sklearn_crtcl.datasets import (
    DATASET_NAMES,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits_images,
    load_fashion_mnist,
    load_svhn,
    read_idx,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def expected_standardised(raw_train, raw_test, scale=255.0):
    """Reference implementation: per-channel stats of the train split."""
    tr = raw_train.astype(np.float64) / scale
    te = raw_test.astype(np.float64) / scale
    mean = tr.mean(axis=(0, 2, 3), keepdims=True)
    std = tr.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    return (tr - mean) / std, (te - mean) / std


def assert_standardised(X):
    assert np.allclose(X.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    assert np.allclose(X.std(axis=(0, 2, 3)), 1.0, atol=1e-4)


def idx_bytes(array, type_code=0x08, dtype=">u1"):
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    return header + array.astype(dtype).tobytes()


def write_file(path, data, gz=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:
        path = path + ".gz"
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def make_fashion(directory, gz=False, n_train_per_class=4, n_test_per_class=2, seed=0,
                 train_labels=None):
    rng = np.random.RandomState(seed)
    if train_labels is None:
        train_labels = np.tile(np.arange(10), n_train_per_class)
    test_labels = np.tile(np.arange(10), n_test_per_class)[::-1].copy()
    train_images = rng.randint(0, 256, size=(len(train_labels), 28, 28)).astype(np.uint8)
    test_images = rng.randint(0, 256, size=(len(test_labels), 28, 28)).astype(np.uint8)
    # pixel (0, 0) holds the sample's index, so subsets can be traced back
    train_images[:, 0, 0] = np.arange(len(train_labels))
    test_images[:, 0, 0] = np.arange(len(test_labels))
    gz_flags = gz if isinstance(gz, (list, tuple)) else [gz] * 4
    write_file(os.path.join(directory, "train-images-idx3-ubyte"), idx_bytes(train_images), gz_flags[0])
    write_file(os.path.join(directory, "train-labels-idx1-ubyte"), idx_bytes(train_labels), gz_flags[1])
    write_file(os.path.join(directory, "t10k-images-idx3-ubyte"), idx_bytes(test_images), gz_flags[2])
    write_file(os.path.join(directory, "t10k-labels-idx1-ubyte"), idx_bytes(test_labels), gz_flags[3])
    return train_images, test_images, np.asarray(train_labels), test_labels


def write_pickle(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def make_cifar10(root, n_per_batch=20, n_test=20, seed=0):
    rng = np.random.RandomState(seed)
    base = os.path.join(root, "cifar-10-batches-py")
    raws, labels = [], []
    for i in range(1, 6):
        data = rng.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        # make the channels differ so per-channel standardisation matters
        data[:, :1024] //= 4
        lab = [(i + j) % 10 for j in range(n_per_batch)]
        write_pickle(os.path.join(base, f"data_batch_{i}"),
                     {"batch_label": f"training batch {i} of 5", "data": data, "labels": lab})
        raws.append(data)
        labels.extend(lab)
    test = rng.randint(0, 256, size=(n_test, 3072)).astype(np.uint8)
    test_labels = [9 - (j % 10) for j in range(n_test)]
    write_pickle(os.path.join(base, "test_batch"), {"data": test, "labels": test_labels})
    write_pickle(os.path.join(base, "batches.meta"),
                 {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072})
    return np.concatenate(raws), test, np.array(labels), np.array(test_labels)


def make_cifar100(root, n_train=200, n_test=100, seed=0):
    rng = np.random.RandomState(seed)
    base = os.path.join(root, "cifar-100-python")
    train = rng.randint(0, 256, size=(n_train, 3072)).astype(np.uint8)
    test = rng.randint(0, 256, size=(n_test, 3072)).astype(np.uint8)
    fine_train = [j % 100 for j in range(n_train)]
    fine_test = [99 - (j % 100) for j in range(n_test)]
    write_pickle(os.path.join(base, "train"), {
        "data": train, "fine_labels": fine_train, "coarse_labels": [f // 5 for f in fine_train]})
    write_pickle(os.path.join(base, "test"), {
        "data": test, "fine_labels": fine_test, "coarse_labels": [f // 5 for f in fine_test]})
    write_pickle(os.path.join(base, "meta"), {
        "fine_label_names": [f"f{k}" for k in range(100)],
        "coarse_label_names": [f"c{k}" for k in range(20)]})
    return train, test, np.array(fine_train), np.array(fine_test)


def make_svhn(root, n_train=30, n_test=20, seed=0):
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        X = rng.randint(0, 256, size=(32, 32, 3, n)).astype(np.uint8)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)
        savemat(os.path.join(root, f"{name}_32x32.mat"), {"X": X, "y": y})
        out += [X, digits]
    return out  # X_train_raw, y_train_digits, X_test_raw, y_test_digits


class FakeTorchvision:
    """Stand-in for torchvision.datasets that records calls and writes files."""

    def __init__(self, writer):
        self.calls = []
        self.writer = writer
        fake = self

        def make(name):
            def ctor(root, **kwargs):
                fake.calls.append((name, root, kwargs))
                fake.writer(root)
            return ctor

        self.module = types.ModuleType("torchvision")
        self.module.datasets = types.ModuleType("torchvision.datasets")
        for name in ("CIFAR10", "CIFAR100", "SVHN"):
            setattr(self.module.datasets, name, make(name))

    def install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "torchvision", self.module)
        monkeypatch.setitem(sys.modules, "torchvision.datasets", self.module.datasets)


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_labels():
    X_train, X_test, y_train, y_test = load_digits_images()
    assert X_train.shape == (1347, 1, 8, 8) and X_test.shape == (450, 1, 8, 8)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    target = load_digits().target
    np.testing.assert_array_equal(np.sort(np.concatenate([y_train, y_test])), np.sort(target))
    assert_standardised(X_train)
    # test split uses train statistics: close to, but not exactly, standardised
    assert abs(float(X_test.mean())) < 0.1
    assert X_test.mean() != pytest.approx(0.0, abs=1e-6)


def test_digits_split_is_stratified_and_reproducible():
    X_train, X_test, y_train, y_test = load_digits_images(test_size=0.5, random_state=3)
    full = np.bincount(load_digits().target)
    test_counts = np.bincount(y_test, minlength=10)
    assert np.all(np.abs(test_counts - full / 2) <= 1)
    again = load_digits_images(test_size=0.5, random_state=3)
    for a, b in zip((X_train, X_test, y_train, y_test), again):
        np.testing.assert_array_equal(a, b)
    other = load_digits_images(test_size=0.5, random_state=4)
    assert not np.array_equal(other[2], y_train)


def test_digits_values_match_reference_split():
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = load_digits_images(test_size=100, random_state=7)
    assert X_test.shape == (100, 1, 8, 8)
    digits = load_digits()
    raw_tr, raw_te, lab_tr, lab_te = train_test_split(
        digits.images[:, None], digits.target, test_size=100, random_state=7,
        stratify=digits.target)
    np.testing.assert_array_equal(y_train, lab_tr)
    np.testing.assert_array_equal(y_test, lab_te)
    exp_tr, exp_te = expected_standardised(raw_tr, raw_te, scale=16.0)
    np.testing.assert_allclose(X_train, exp_tr, atol=1e-5)
    np.testing.assert_allclose(X_test, exp_te, atol=1e-5)


# --------------------------------------------------------------------------
# IDX parser
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip_ubyte(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_file(str(tmp_path / "x-idx3-ubyte"), idx_bytes(arr), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


def test_read_idx_is_big_endian_for_wide_types(tmp_path):
    raw = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0x01, 0x02, 0x03, 0x04, 0xFF, 0xFF, 0xFF, 0xFE])
    path = write_file(str(tmp_path / "ints"), raw)
    out = read_idx(path)
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, [0x01020304, -2])
    floats = np.array([[1.5, -2.25]], dtype=np.float32)
    path = write_file(str(tmp_path / "floats"), idx_bytes(floats, 0x0D, ">f4"))
    np.testing.assert_array_equal(read_idx(path), floats)


def test_read_idx_gzip_detected_from_content(tmp_path):
    arr = np.array([3, 1, 4], dtype=np.uint8)
    path = str(tmp_path / "no-gz-suffix")
    with open(path, "wb") as f:
        f.write(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(path), arr)


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00", "not an IDX file"),
    (bytes([0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7]), "bad IDX magic number 0x12340801"),
    (bytes([0, 0, 0x07, 0x01, 0, 0, 0, 1, 7]), "bad IDX magic number"),
    (bytes([0, 0, 0x08, 0x00]), "0 dimensions"),
    (bytes([0, 0, 0x08, 0x03, 0, 0, 0, 1]), "truncated IDX header"),
    (bytes([0, 0, 0x08, 0x01, 0, 0, 0, 5, 1, 2]), r"truncated: header shape \(5,\) needs 5"),
    (bytes([0, 0, 0x08, 0x01, 0, 0, 0, 1, 1, 2]), "trailing bytes"),
])
def test_read_idx_errors(tmp_path, raw, match):
    path = write_file(str(tmp_path / "bad"), raw)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    path = write_file(str(tmp_path / "bad.gz"), data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(path)


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout, gz", [
    ("flat", False),
    ("flat", True),
    ("torchvision", True),
    ("torchvision", False),
    ("subdir", [True, False, False, True]),
])
def test_fashion_mnist_reads_files(tmp_path, layout, gz):
    directory = {
        "flat": tmp_path,
        "torchvision": tmp_path / "FashionMNIST" / "raw",
        "subdir": tmp_path / "fashion-mnist",
    }[layout]
    raw_tr, raw_te, lab_tr, lab_te = make_fashion(str(directory), gz=gz)
    X_train, X_test, y_train, y_test = load_fashion_mnist(data_home=str(tmp_path))
    assert X_train.shape == (40, 1, 28, 28) and X_test.shape == (20, 1, 28, 28)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(y_train, lab_tr)
    np.testing.assert_array_equal(y_test, lab_te)
    exp_tr, exp_te = expected_standardised(raw_tr[:, None], raw_te[:, None])
    np.testing.assert_allclose(X_train, exp_tr, atol=1e-5)
    np.testing.assert_allclose(X_test, exp_te, atol=1e-5)
    assert_standardised(X_train)


def test_fashion_mnist_system_dir_used_when_data_home_none(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    _, _, lab_tr, lab_te = make_fashion(str(system), gz=True, seed=5)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", str(system))
    _, _, y_train, y_test = load_fashion_mnist()
    np.testing.assert_array_equal(y_train, lab_tr)
    np.testing.assert_array_equal(y_test, lab_te)


def test_fashion_mnist_missing_files_message(tmp_path, monkeypatch):
    make_fashion(str(tmp_path), gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(data_home=str(tmp_path))
    msg = str(info.value)
    assert "missing t10k-labels-idx1-ubyte" in msg
    assert "train-images-idx3-ubyte" in msg  # all needed files are named
    assert str(tmp_path) in msg
    assert os.path.join(str(tmp_path), "FashionMNIST", "raw") + ": does not exist" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "FashionMNIST(root, download=True)" in msg

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere: does not exist"):
        load_fashion_mnist()


def test_fashion_mnist_stratified_subsets(tmp_path):
    # imbalanced training labels: class 0 has 20, classes 1..9 have 5 each
    labels = np.concatenate([np.zeros(20, int), np.repeat(np.arange(1, 10), 5)])
    make_fashion(str(tmp_path), train_labels=labels, n_test_per_class=6)
    X_train, X_test, y_train, y_test = load_fashion_mnist(
        data_home=str(tmp_path), n_train=26, n_test=30, random_state=1)
    assert X_train.shape == (26, 1, 28, 28) and X_test.shape == (30, 1, 28, 28)
    # 26 / 65 = 0.4 of each class: 8 of class 0, 2 of each other class
    np.testing.assert_array_equal(np.bincount(y_train), [8] + [2] * 9)
    np.testing.assert_array_equal(np.bincount(y_test), [3] * 10)
    # subsets keep the original file order (pixel (0, 0) is the index)
    assert np.all(np.diff(X_train[:, 0, 0, 0]) > 0)
    assert np.all(np.diff(X_test[:, 0, 0, 0]) > 0)
    # statistics are computed on the chosen training subset
    assert_standardised(X_train)

    again = load_fashion_mnist(data_home=str(tmp_path), n_train=26, n_test=30, random_state=1)
    np.testing.assert_array_equal(again[0], X_train)
    np.testing.assert_array_equal(again[1], X_test)
    other = load_fashion_mnist(data_home=str(tmp_path), n_train=26, n_test=30, random_state=2)
    assert not np.array_equal(other[0], X_train)
    np.testing.assert_array_equal(np.bincount(other[2]), [8] + [2] * 9)


def test_fashion_mnist_subset_remainder_goes_to_largest_fraction(tmp_path):
    labels = np.concatenate([np.zeros(20, int), np.repeat(np.arange(1, 10), 5)])
    make_fashion(str(tmp_path), train_labels=labels)
    # 13 / 65 = 0.2: 4 of class 0, 1 of each other -> 13 exactly
    _, _, y, _ = load_fashion_mnist(data_home=str(tmp_path), n_train=13)
    np.testing.assert_array_equal(np.bincount(y), [4] + [1] * 9)
    # 10 samples: exact 3.08 for class 0 and 0.77 for the others -> 3 + 7 ones
    _, _, y, _ = load_fashion_mnist(data_home=str(tmp_path), n_train=10)
    counts = np.bincount(y, minlength=10)
    assert counts[0] == 3 and counts.sum() == 10 and set(counts[1:]) == {0, 1}


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_train": 41}, ValueError, r"n_train=41 is larger than the number of available samples \(40\)"),
    ({"n_test": 0}, ValueError, "n_test must be a positive int"),
    ({"n_train": 0.5}, TypeError, "n_train must be a positive int or None"),
])
def test_fashion_mnist_bad_subset_sizes(tmp_path, kwargs, exc, match):
    make_fashion(str(tmp_path))
    with pytest.raises(exc, match=match):
        load_fashion_mnist(data_home=str(tmp_path), **kwargs)


def test_fashion_mnist_corrupt_files(tmp_path):
    make_fashion(str(tmp_path))
    labels_path = str(tmp_path / "train-labels-idx1-ubyte")
    write_file(labels_path, idx_bytes(np.full(40, 12)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        load_fashion_mnist(data_home=str(tmp_path))
    write_file(labels_path, idx_bytes(np.zeros(39)))
    with pytest.raises(ValueError, match="holds 40 images but .* holds 39 labels"):
        load_fashion_mnist(data_home=str(tmp_path))
    write_file(labels_path, idx_bytes(np.zeros(40)))
    write_file(str(tmp_path / "t10k-images-idx3-ubyte"), idx_bytes(np.zeros((20, 27, 28))))
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\)"):
        load_fashion_mnist(data_home=str(tmp_path))


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_real_debian_files():
    X_train, X_test, y_train, y_test = load_fashion_mnist(n_train=2000, n_test=1000)
    assert X_train.shape == (2000, 1, 28, 28) and X_test.shape == (1000, 1, 28, 28)
    # the real data are balanced: a stratified subset is exactly balanced
    np.testing.assert_array_equal(np.bincount(y_train), [200] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    assert_standardised(X_train)


# --------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# --------------------------------------------------------------------------


def test_cifar10_reads_pickle_batches(tmp_path):
    raw_tr, raw_te, lab_tr, lab_te = make_cifar10(str(tmp_path))
    X_train, X_test, y_train, y_test = load_cifar10(str(tmp_path))
    assert X_train.shape == (100, 3, 32, 32) and X_test.shape == (20, 3, 32, 32)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_array_equal(y_train, lab_tr)
    np.testing.assert_array_equal(y_test, lab_te)
    # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values (row-major)
    exp_tr, exp_te = expected_standardised(raw_tr.reshape(-1, 3, 32, 32), raw_te.reshape(-1, 3, 32, 32))
    np.testing.assert_allclose(X_train, exp_tr, atol=1e-5)
    np.testing.assert_allclose(X_test, exp_te, atol=1e-5)
    assert_standardised(X_train)
    # image 0, green channel, row 1, column 2 is byte 1024 + 32 + 2 of the row
    pixel = raw_tr[0, 1024 + 32 + 2] / 255.0
    green = raw_tr[:, 1024:2048] / 255.0
    assert X_train[0, 1, 1, 2] == pytest.approx((pixel - green.mean()) / green.std(), abs=1e-5)


def test_cifar10_subsets_and_dispatch(tmp_path):
    make_cifar10(str(tmp_path))
    X_train, X_test, y_train, y_test = load_cifar10(str(tmp_path), n_train=50, n_test=10, random_state=0)
    assert X_train.shape == (50, 3, 32, 32) and X_test.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(np.bincount(y_train), [5] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1] * 10)
    assert_standardised(X_train)
    via = load_dataset("cifar10", data_home=str(tmp_path), n_train=50, n_test=10, random_state=0)
    for a, b in zip((X_train, X_test, y_train, y_test), via):
        np.testing.assert_array_equal(a, b)


def test_cifar10_legacy_python2_pickles(tmp_path):
    """Original CIFAR batches: protocol 2, bytes keys, numpy.core globals."""
    _, _, lab_tr, _ = make_cifar10(str(tmp_path))
    base = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        with open(base / f"data_batch_{i}", "rb") as f:
            batch = pickle.load(f)
        legacy = {k.encode(): v for k, v in batch.items()}
        blob = pickle.dumps(legacy, protocol=2).replace(b"numpy._core.", b"numpy.core.")
        assert b"numpy.core.multiarray" in blob
        (base / f"data_batch_{i}").write_bytes(blob)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, y_train, _ = load_cifar10(str(tmp_path))
    np.testing.assert_array_equal(y_train, lab_tr)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_pickle_refuses_code(tmp_path):
    make_cifar10(str(tmp_path))
    write_pickle(str(tmp_path / "cifar-10-batches-py" / "test_batch"), {"data": _Evil(), "labels": []})
    with pytest.raises(ValueError, match="refusing to load .*system"):
        load_cifar10(str(tmp_path))


def test_cifar10_corrupt_files(tmp_path):
    make_cifar10(str(tmp_path))
    base = tmp_path / "cifar-10-batches-py"
    write_pickle(str(base / "data_batch_3"), {"data": np.zeros((4, 3071), np.uint8), "labels": [0] * 4})
    with pytest.raises(ValueError, match=r"data_batch_3: 'data' must be a uint8 array of shape \(n, 3072\)"):
        load_cifar10(str(tmp_path))
    write_pickle(str(base / "data_batch_3"), {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 10, 2]})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        load_cifar10(str(tmp_path))
    write_pickle(str(base / "data_batch_3"), {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match="4 images but 2 labels"):
        load_cifar10(str(tmp_path))
    write_pickle(str(base / "data_batch_3"), {"data": np.zeros((4, 3072), np.uint8)})
    with pytest.raises(ValueError, match="missing key 'labels'"):
        load_cifar10(str(tmp_path))
    (base / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot read CIFAR pickle batch"):
        load_cifar10(str(tmp_path))
    make_cifar10(str(tmp_path))
    write_pickle(str(base / "batches.meta"), {"label_names": ["a"] * 9})
    with pytest.raises(ValueError, match="lists 9 classes, expected 10"):
        load_cifar10(str(tmp_path))


def test_cifar10_missing_without_download(tmp_path):
    make_cifar10(str(tmp_path))
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_4")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 files not found.*data_batch_4.*download=True"):
        load_cifar10(str(tmp_path))


def test_cifar10_download_needs_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match=r"pip install sklearn-crtcl\[vision\]"):
        load_cifar10(str(tmp_path), download=True)
    with pytest.raises(ImportError, match=r"pip install sklearn-crtcl\[vision\]"):
        load_svhn(str(tmp_path), download=True)
    with pytest.raises(ImportError, match=r"pip install sklearn-crtcl\[vision\]"):
        load_cifar100(str(tmp_path), download=True)


def test_cifar10_present_files_do_not_need_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    make_cifar10(str(tmp_path))
    X_train, _, _, _ = load_cifar10(str(tmp_path), download=True)
    assert X_train.shape == (100, 3, 32, 32)


def test_cifar10_download_through_torchvision(tmp_path, monkeypatch):
    root = str(tmp_path / "new")
    fake = FakeTorchvision(lambda r: make_cifar10(r))
    fake.install(monkeypatch)
    _, _, y_train, _ = load_cifar10(root, download=True)
    assert fake.calls == [
        ("CIFAR10", root, {"train": True, "download": True}),
        ("CIFAR10", root, {"train": False, "download": True}),
    ]
    assert y_train.shape == (100,)


def test_download_that_produces_nothing(tmp_path, monkeypatch):
    FakeTorchvision(lambda r: None).install(monkeypatch)
    with pytest.raises(FileNotFoundError, match="download of SVHN did not produce"):
        load_svhn(str(tmp_path), download=True)


@pytest.mark.parametrize("label_mode, n_classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_reads_pickles(tmp_path, label_mode, n_classes):
    raw_tr, raw_te, fine_tr, fine_te = make_cifar100(str(tmp_path))
    X_train, X_test, y_train, y_test = load_cifar100(str(tmp_path), label_mode=label_mode)
    assert X_train.shape == (200, 3, 32, 32) and X_test.shape == (100, 3, 32, 32)
    assert X_train.dtype == np.float32 and y_test.dtype == np.int64
    div = 1 if label_mode == "fine" else 5
    np.testing.assert_array_equal(y_train, fine_tr // div)
    np.testing.assert_array_equal(y_test, fine_te // div)
    assert y_train.max() == n_classes - 1
    exp_tr, exp_te = expected_standardised(raw_tr.reshape(-1, 3, 32, 32), raw_te.reshape(-1, 3, 32, 32))
    np.testing.assert_allclose(X_train, exp_tr, atol=1e-5)
    np.testing.assert_allclose(X_test, exp_te, atol=1e-5)
    assert_standardised(X_train)


def test_cifar100_subsets_and_errors(tmp_path):
    make_cifar100(str(tmp_path))
    _, _, y_train, _ = load_cifar100(str(tmp_path), label_mode="coarse", n_train=40, random_state=0)
    np.testing.assert_array_equal(np.bincount(y_train), [2] * 20)
    with pytest.raises(ValueError, match="label_mode must be 'fine' or 'coarse'"):
        load_cifar100(str(tmp_path), label_mode="medium")
    write_pickle(str(tmp_path / "cifar-100-python" / "test"),
                 {"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 100], "coarse_labels": [0, 0]})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 99\]"):
        load_cifar100(str(tmp_path))
    os.remove(tmp_path / "cifar-100-python" / "train")
    with pytest.raises(FileNotFoundError, match="CIFAR-100 files not found.*cifar-100-python.train"):
        load_cifar100(str(tmp_path))


# --------------------------------------------------------------------------
# SVHN
# --------------------------------------------------------------------------


def test_svhn_reads_mat_files(tmp_path):
    raw_tr, dig_tr, raw_te, dig_te = make_svhn(str(tmp_path))
    X_train, X_test, y_train, y_test = load_svhn(str(tmp_path))
    assert X_train.shape == (30, 3, 32, 32) and X_test.shape == (20, 3, 32, 32)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    # label 10 in the file is digit 0
    np.testing.assert_array_equal(y_train, dig_tr)
    np.testing.assert_array_equal(y_test, dig_te)
    assert y_train[0] == 0 and y_train[10] == 0 and y_train[9] == 9
    assert_standardised(X_train)
    # axis mapping: returned [i, c, h, w] is file X[h, w, c, i]
    tr = raw_tr.astype(np.float64) / 255
    for i, c, h, w in [(0, 0, 0, 0), (3, 2, 5, 17), (29, 1, 31, 0), (7, 0, 1, 30)]:
        mean, std = tr[:, :, c, :].mean(), tr[:, :, c, :].std()
        assert X_train[i, c, h, w] == pytest.approx((tr[h, w, c, i] - mean) / std, abs=1e-5)
    exp_tr, exp_te = expected_standardised(raw_tr.transpose(3, 2, 0, 1), raw_te.transpose(3, 2, 0, 1))
    np.testing.assert_allclose(X_train, exp_tr, atol=1e-5)
    np.testing.assert_allclose(X_test, exp_te, atol=1e-5)


def test_svhn_subsets_default_home_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    make_svhn(str(tmp_path))
    X_train, X_test, y_train, y_test = load_svhn(n_train=10, n_test=10, random_state=0)
    np.testing.assert_array_equal(np.bincount(y_train), [1] * 10)
    assert X_test.shape == (10, 3, 32, 32)

    root = str(tmp_path / "dl")
    fake = FakeTorchvision(lambda r: make_svhn(r))
    fake.install(monkeypatch)
    load_dataset("svhn", data_home=root, download=True)
    assert fake.calls == [
        ("SVHN", root, {"split": "train", "download": True}),
        ("SVHN", root, {"split": "test", "download": True}),
    ]


def test_svhn_corrupt_files(tmp_path):
    make_svhn(str(tmp_path))
    path = str(tmp_path / "test_32x32.mat")
    savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]], np.uint8)})
    with pytest.raises(ValueError, match=r"labels must lie in \[1, 10\]"):
        load_svhn(str(tmp_path))
    savemat(path, {"X": np.zeros((32, 32, 2), np.uint8), "y": np.array([[1]], np.uint8)})
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3, n\)"):
        load_svhn(str(tmp_path))
    savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1]], np.uint8)})
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        load_svhn(str(tmp_path))
    savemat(path, {"images": np.zeros(3)})
    with pytest.raises(ValueError, match="expected variables 'X' and 'y'"):
        load_svhn(str(tmp_path))
    with open(path, "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="cannot read SVHN .mat file"):
        load_svhn(str(tmp_path))
    os.remove(path)
    with pytest.raises(FileNotFoundError, match="SVHN files not found.*test_32x32.mat"):
        load_svhn(str(tmp_path))


# --------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------


def test_dataset_names_constant():
    assert DATASET_NAMES == ("digits", "fashion_mnist", "cifar10", "cifar100", "svhn")


def test_load_dataset_digits_matches_loader():
    a = load_dataset("digits", random_state=1)
    b = load_digits_images(random_state=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_load_dataset_fashion_mnist(tmp_path):
    _, _, lab_tr, _ = make_fashion(str(tmp_path / "FashionMNIST" / "raw"))
    _, _, y_train, _ = load_dataset("fashion_mnist", data_home=str(tmp_path))
    np.testing.assert_array_equal(y_train, lab_tr)


@pytest.mark.parametrize("name", ["mnist", "CIFAR10", None])
def test_load_dataset_unknown_name(name):
    with pytest.raises(ValueError, match="valid names are: digits, fashion_mnist, cifar10, cifar100, svhn"):
        load_dataset(name)
