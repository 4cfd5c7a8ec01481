"""The dataset path: image folders and torch Datasets fed to the nets and the
query strategies through ``DatasetArray`` (a DataLoader per pass).

Every test works on files written here (PNG images via Pillow) or on tiny
in-memory datasets; the same computations on the equivalent numpy array are
the reference.
"""

import os
import sys

import numpy as np
import pytest
import torch

from sklearn_crtcl import CriticLossNet, DatasetArray, LossPredictionNet, ResNetClassifier
from sklearn_crtcl._data import as_image_array, iter_batches, training_array
from sklearn_crtcl.datasets import ImageFolderDataset, load_image_folder
from sklearn_crtcl.query import (
    badge_sampling,
    classifier_entropy,
    cod_sampling,
    coreset_sampling,
    critic_correctness,
    critic_sampling,
    cyclic_output_discrepancy,
    entropy_gradient_norm,
    entropy_sampling,
    gradient_norm_sampling,
    loss_prediction_sampling,
    predicted_loss,
    random_sampling,
)

Image = pytest.importorskip("PIL.Image")

CLASSES = ("ant", "bee", "cat")
N_PER_CLASS = 12
SIDE = 16
TINY = dict(module__width=2, max_epochs=1, batch_size=8, random_state=0, device="cpu")


def write_png(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 12 RGB images of 16x16 pixels; returns (root, pixels, labels)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.RandomState(0)
    pixels, labels = [], []
    for k, name in enumerate(CLASSES):
        for i in range(N_PER_CLASS):
            # class-dependent brightness, so that a tiny net learns something
            img = np.clip(rng.randint(0, 256, size=(SIDE, SIDE, 3)) // 2 + 60 * k, 0, 255)
            img = img.astype(np.uint8)
            write_png(os.path.join(root, name, f"img{i:02d}.png"), img)
            pixels.append(img)
            labels.append(k)
    return str(root), np.stack(pixels), np.asarray(labels)


@pytest.fixture(scope="module")
def data(folder):
    """The folder as a DatasetArray, the same images as a numpy array, the labels."""
    root, pixels, labels = folder
    X, y = load_image_folder(root, return_X_y=True)
    X_np = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return X, X_np, y


@pytest.fixture(scope="module")
def nets(data):
    """One fitted tiny net of each kind, fitted on the numpy images."""
    _, X_np, y = data
    return {
        "plain": ResNetClassifier(**TINY).fit(X_np, y),
        "critic": CriticLossNet(critic__hidden=4, **TINY).fit(X_np, y),
        "lossnet": LossPredictionNet(loss_head__hidden=4, **TINY).fit(X_np, y),
    }


@pytest.fixture
def no_materialising(monkeypatch):
    """Any np.asarray(DatasetArray) fails the test: the pool is never converted."""
    def refuse(self, dtype=None, copy=None):
        raise AssertionError("the whole DatasetArray was converted to an array")
    monkeypatch.setattr(DatasetArray, "__array__", refuse)


class ImageList(torch.utils.data.Dataset):
    """A tiny custom Dataset of (image, label) pairs that records its reads."""

    def __init__(self, images, labels=None, as_tuple=True):
        self.images = images
        self.labels = labels
        self.as_tuple = as_tuple
        self.reads = []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads.append(int(index))
        image = self.images[index]
        return (image, self.labels[index]) if self.as_tuple else image


# --------------------------------------------------------------------------- the folder
def test_load_image_folder_reads_the_written_images(folder):
    root, pixels, labels = folder
    bunch = load_image_folder(root)
    X = bunch.data
    assert isinstance(X, DatasetArray)
    assert X.shape == (36, 3, SIDE, SIDE) and X.dtype == np.float32 and X.ndim == 4
    assert len(X) == 36
    assert bunch.target_names == list(CLASSES)
    np.testing.assert_array_equal(bunch.target, labels)
    assert bunch.target.dtype == np.int64
    # sorted classes, then sorted files
    expected = [os.path.join(root, c, f"img{i:02d}.png") for c in CLASSES
                for i in range(N_PER_CLASS)]
    assert list(bunch.filenames) == expected
    expected_images = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(np.asarray(X), expected_images)
    np.testing.assert_array_equal(X[5], expected_images[5])
    assert 0 <= np.asarray(X).min() and np.asarray(X).max() <= 1
    # the dataset gives (image, label) pairs
    image, label = X.dataset[13]
    np.testing.assert_array_equal(image, expected_images[13])
    assert label == 1
    X2, y2 = load_image_folder(root, return_X_y=True)
    np.testing.assert_array_equal(y2, labels)


def test_unlabeled_folder_resizing_and_grayscale(folder, tmp_path):
    root, pixels, _ = folder
    # a folder of unlabeled images, with images in sub-folders too
    for i in range(3):
        write_png(str(tmp_path / "pool" / f"p{i}.png"), pixels[i])
    write_png(str(tmp_path / "pool" / "sub" / "q.png"), pixels[3])  # sorted last
    bunch = load_image_folder(tmp_path / "pool", labeled=False)
    assert bunch.target is None and bunch.target_names == []
    assert bunch.data.shape == (4, 3, SIDE, SIDE)
    np.testing.assert_array_equal(np.asarray(bunch.data),
                                  pixels[:4].transpose(0, 3, 1, 2) / np.float32(255))
    X, y = load_image_folder(tmp_path / "pool", labeled=False, return_X_y=True)
    assert y is None and isinstance(X.dataset[0], np.ndarray)
    # size= resizes with Pillow (bilinear); mode="L" gives one channel
    X, _ = load_image_folder(root, size=(8, 12), mode="L", return_X_y=True)
    assert X.shape == (36, 1, 8, 12)
    ref = Image.fromarray(pixels[0]).convert("L").resize((12, 8), Image.BILINEAR)
    np.testing.assert_array_equal(X[0][0], np.asarray(ref, dtype=np.float32) / 255)
    assert load_image_folder(root, size=8).data.shape == (36, 3, 8, 8)


def test_mixed_sizes_are_resized_with_size(tmp_path):
    write_png(str(tmp_path / "a" / "x.png"), np.zeros((16, 16, 3), np.uint8))
    write_png(str(tmp_path / "b" / "y.png"), np.full((20, 10, 3), 255, np.uint8))
    with pytest.raises(ValueError, match=r"different sizes.*y\.png.*20x10.*x\.png.*16x16"):
        load_image_folder(tmp_path)
    X, y = load_image_folder(tmp_path, size=16, return_X_y=True)
    assert X.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(X[1], np.ones((3, 16, 16), np.float32))


def test_bad_folders_fail_before_any_work(tmp_path, folder, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        load_image_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders.*labeled=False"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="holds no files"):
        load_image_folder(tmp_path / "empty", labeled=False)
    (tmp_path / "noclass" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folder.*holds no files"):
        load_image_folder(tmp_path / "noclass")
    # a file that is not an image, named in the error (hidden files are skipped)
    write_png(str(tmp_path / "mixed" / "a" / "ok.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "mixed" / "a" / ".DS_Store").write_bytes(b"junk")
    assert len(load_image_folder(tmp_path / "mixed").data) == 1
    (tmp_path / "mixed" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt.*not an image file"):
        load_image_folder(tmp_path / "mixed")
    root = folder[0]
    for kwargs, match in [({"size": 0}, "size must be"), ({"size": (8,)}, "size must be"),
                          ({"mode": "CMYK"}, "mode must be"),
                          ({"num_workers": -1}, "num_workers"),
                          ({"pin_memory": "yes"}, "pin_memory"),
                          ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=match):
            load_image_folder(root, **kwargs)
    with pytest.raises(TypeError, match="labeled"):
        load_image_folder(root, labeled="yes")
    with pytest.raises(TypeError, match="root must be a path"):
        ImageFolderDataset(3)
    # without Pillow: an ImportError that says how to install it
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_image_folder(root)


def test_a_file_that_breaks_after_the_scan_is_named_when_read(tmp_path):
    write_png(str(tmp_path / "a" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    write_png(str(tmp_path / "a" / "y.png"), np.zeros((8, 8, 3), np.uint8))
    X, _ = load_image_folder(tmp_path, return_X_y=True)
    (tmp_path / "a" / "y.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"y\.png"):
        X[1]


# --------------------------------------------------------------------------- the wrapper
def test_custom_dataset_indexing_like_numpy():
    rng = np.random.RandomState(1)
    images = torch.from_numpy(rng.rand(10, 2, 8, 8).astype(np.float32))
    ref = images.numpy().copy()
    ds = ImageList(images, torch.arange(10))
    X = DatasetArray(ds)
    assert X.shape == (10, 2, 8, 8) and X.dtype == np.float32 and len(X) == 10
    assert "DatasetArray(ImageList" in repr(X)
    mask = np.arange(10) % 3 == 0
    for key in [3, -1, slice(2, 7, 2), slice(None), [4, 1, 4], np.array([9, 0]),
                torch.tensor([2, 5]), mask, [], np.array([[1, 2], [3, 4]])]:
        np.testing.assert_array_equal(X[key], ref[key if not isinstance(key, torch.Tensor)
                                                   else key.numpy()])
    np.testing.assert_array_equal(X[[1, 2], 0], ref[[1, 2], 0])
    np.testing.assert_array_equal(X[4, 1, 2:4], ref[4, 1, 2:4])
    np.testing.assert_array_equal(np.asarray(X), ref)
    np.testing.assert_array_equal(np.stack(list(X)), ref)
    assert np.asarray(X, dtype=np.float64).dtype == np.float64
    # results are new arrays: writing to them leaves the dataset as it was
    X[0][...] = 7
    X[[1, 2]][...] = 7
    np.testing.assert_array_equal(images.numpy(), ref)
    for bad in [10, -11, [0, 10]]:
        with pytest.raises(IndexError, match="out of bounds"):
            X[bad]
    with pytest.raises(IndexError, match="valid indices"):
        X[np.array([0.5])]
    with pytest.raises(IndexError, match="boolean index"):
        X[np.ones(3, dtype=bool)]


def test_items_of_other_forms():
    rng = np.random.RandomState(2)
    # bare (H, W) uint8 arrays: one channel, cast to float32 without scaling
    images = [rng.randint(0, 256, size=(9, 9)).astype(np.uint8) for _ in range(4)]
    X = DatasetArray(ImageList(images, as_tuple=False))
    assert X.shape == (4, 1, 9, 9)
    np.testing.assert_array_equal(X[:], np.stack(images)[:, None].astype(np.float32))
    # list items [image, label], and TensorDataset
    X = DatasetArray(torch.utils.data.TensorDataset(torch.ones(3, 1, 8, 8), torch.zeros(3)))
    assert X.shape == (3, 1, 8, 8)
    X4, n_features = as_image_array(X)
    assert X4 is X and n_features == 64


def test_bad_datasets_and_items():
    with pytest.raises(ValueError, match="empty"):
        DatasetArray(ImageList([]))
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([np.zeros((1, 8, 8))])

    with pytest.raises(TypeError, match="map-style"):
        DatasetArray(Stream())
    with pytest.raises(TypeError, match="map-style"):
        DatasetArray(object())
    with pytest.raises(TypeError, match="PIL image"):
        DatasetArray(ImageList([Image.new("RGB", (8, 8))], as_tuple=False))
    with pytest.raises(TypeError, match="image of numbers"):
        DatasetArray(ImageList(["a string"], as_tuple=False))
    with pytest.raises(ValueError, match="shape"):
        DatasetArray(ImageList([np.zeros(5)], as_tuple=False))
    ok = ImageList([np.zeros((1, 8, 8))] * 2, as_tuple=False)
    for kwargs, err, match in [
            ({"num_workers": 1.5}, ValueError, "num_workers"),
            ({"num_workers": True}, ValueError, "num_workers"),
            ({"pin_memory": "auto"}, ValueError, "pin_memory"),
            ({"batch_size": 0}, ValueError, "batch_size"),
            ({"loader_kwargs": {"shuffle": True}}, ValueError, "must not set shuffle"),
            ({"loader_kwargs": {"prefetch_factor": 2}}, ValueError, "loader_kwargs"),
            ({"loader_kwargs": {"no_such_arg": 1}}, TypeError, "loader_kwargs"),
            ({"loader_kwargs": [1]}, TypeError, "loader_kwargs")]:
        with pytest.raises(err, match=match):
            DatasetArray(ok, **kwargs)
    # a bad later item is caught (with its index) when it is read
    items = [np.zeros((1, 8, 8))] * 3 + [np.zeros((1, 9, 8)), np.full((1, 8, 8), np.nan)]
    X = DatasetArray(ImageList(items, as_tuple=False))
    np.testing.assert_array_equal(X[:3], np.zeros((3, 1, 8, 8)))
    with pytest.raises(ValueError, match="item 3 .*shape"):
        X[3]
    with pytest.raises(ValueError, match="NaN.*item 4"):
        X[4]
    with pytest.raises(ValueError, match="NaN.*item 4"):
        list(iter_batches(X, 2, indices=[0, 4]))


def test_iter_batches_one_loader_same_batches(data, monkeypatch):
    X, X_np, _ = data
    built = []

    class Recording(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", Recording)
    idx = np.array([30, 2, 17, 2, 5, 11, 0])
    ours = list(iter_batches(X, 3, "cpu", indices=idx))
    ref = list(iter_batches(X_np, 3, "cpu", indices=idx))
    assert len(built) == 1 and built[0]["pin_memory"] is False  # CPU: nothing pinned
    assert [b.shape for b in ours] == [b.shape for b in ref]
    for a, b in zip(ours, ref):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    built.clear()
    assert sum(len(b) for b in iter_batches(X, 5)) == 36 and len(built) == 1


def test_pinned_memory_for_cuda_batches(data, monkeypatch):
    """Batches for a CUDA device are pinned (the decision, without a GPU)."""
    X, _, _ = data
    unpinned = DatasetArray(X.dataset, pin_memory=False)
    seen = []

    class Empty:
        def __init__(self, *args, **kwargs):
            seen.append(kwargs["pin_memory"])

        def __iter__(self):
            return iter(())

    monkeypatch.setattr(torch.utils.data, "DataLoader", Empty)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    list(iter_batches(X, 4, "cuda"))
    list(iter_batches(X, 4, torch.device("cuda", 0)))
    list(iter_batches(X, 4, "cpu"))
    list(iter_batches(unpinned, 4, "cuda"))
    assert seen == [True, True, False, False]


@pytest.mark.gpu
def test_cuda_inference_on_pinned_batches(data):
    X, X_np, y = data
    clf = ResNetClassifier(**{**TINY, "device": "cuda", "precision": "fp32"}).fit(X_np, y)
    batches = list(iter_batches(X, 8, "cuda"))
    assert all(b.is_cuda for b in batches)
    np.testing.assert_allclose(clf.predict_proba(X), clf.predict_proba(X_np), rtol=1e-5,
                               atol=1e-6)
    Xw = DatasetArray(X.dataset, num_workers=2, batch_size=8)
    np.testing.assert_allclose(clf.predict_proba(Xw), clf.predict_proba(X_np), rtol=1e-5,
                               atol=1e-6)


# --------------------------------------------------------------------------- the nets
def test_inference_equals_the_numpy_path(data, nets, no_materialising):
    X, X_np, _ = data
    for kind, net in nets.items():
        np.testing.assert_array_equal(net.predict_proba(X), net.predict_proba(X_np))
        np.testing.assert_array_equal(net.embed(X, batch_size=5), net.embed(X_np, batch_size=5))
        np.testing.assert_array_equal(net.predict(X), net.predict(X_np))
    np.testing.assert_array_equal(nets["critic"].predict_correctness(X),
                                  nets["critic"].predict_correctness(X_np))
    np.testing.assert_array_equal(nets["lossnet"].predict_loss(X),
                                  nets["lossnet"].predict_loss(X_np))


def test_inference_reads_each_image_once_in_order(nets):
    rng = np.random.RandomState(3)
    ds = ImageList(torch.from_numpy(rng.rand(20, 3, SIDE, SIDE).astype(np.float32)),
                   torch.zeros(20))
    X = DatasetArray(ds)
    ds.reads.clear()
    nets["plain"].predict_proba(X)  # validation reads nothing
    assert ds.reads == list(range(20))


def test_fit_on_a_dataset_array(data, nets):
    X, X_np, y = data
    clf = ResNetClassifier(**TINY).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X_np), nets["plain"].predict_proba(X_np))
    assert training_array(X).flags.writeable
    # X_unlabeled of a semi-supervised net may be a DatasetArray too
    ref = CriticLossNet(critic__hidden=4, **TINY).fit(X_np[:24], y[:24], X_unlabeled=X_np[24:])
    ours = CriticLossNet(critic__hidden=4, **TINY).fit(X[:24], y[:24],
                                                       X_unlabeled=X[np.arange(24, 36)])
    np.testing.assert_array_equal(ours.predict_proba(X_np), ref.predict_proba(X_np))
    Xu = DatasetArray(torch.utils.data.Subset(X.dataset, range(24, 36)))
    ours = CriticLossNet(critic__hidden=4, **TINY).fit(X_np[:24], y[:24], X_unlabeled=Xu)
    np.testing.assert_array_equal(ours.predict_proba(X_np), ref.predict_proba(X_np))


def test_mismatched_dataset_is_rejected_before_any_work(data, nets):
    X_da, _, y = data
    with pytest.raises(TypeError, match="wrap it in sklearn_crtcl.DatasetArray"):
        critic_sampling(nets["critic"], X_da.dataset)
    with pytest.raises(TypeError, match="wrap it in sklearn_crtcl.DatasetArray"):
        nets["plain"].embed(X_da.dataset)
    X = DatasetArray(ImageList([np.zeros((1, SIDE, SIDE))] * 4, as_tuple=False))
    with pytest.raises(ValueError, match="features"):
        nets["plain"].predict_proba(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        ResNetClassifier(**TINY).fit(X, y)


# --------------------------------------------------------------------------- strategies
def _strategies(X_labeled):
    """name -> (strategy, net kind, keyword arguments)."""
    return {
        "critic": (critic_sampling, "critic", {}),
        "critic-cluster": (critic_sampling, "critic", {"selection": "cluster"}),
        "lossnet": (loss_prediction_sampling, "lossnet", {"selection": "topk"}),
        "cod": (cod_sampling, "plain", {}),
        "gradnorm": (gradient_norm_sampling, "plain", {"selection": "topk"}),
        "entropy-balanced": (entropy_sampling, "plain", {"selection": "balanced"}),
        "random": (random_sampling, "plain", {}),
        "badge": (badge_sampling, "plain", {}),
        "coreset": (coreset_sampling, "plain", {"X_labeled": X_labeled}),
    }


@pytest.mark.parametrize("name", sorted(_strategies(None)))
def test_every_strategy_same_query_on_the_dataset(name, data, nets, no_materialising):
    X, X_np, _ = data
    labeled_ds = DatasetArray(torch.utils.data.Subset(X.dataset, range(6)))
    strategy, kind, kwargs = _strategies(None)[name]
    net = nets[kind]
    for options in [{}, {"subset_size": 20},
                    {"pool_indices": np.arange(5, 36, 2), "subset_size": 10}]:
        ref = strategy(net, X_np, n_instances=4, random_state=0, **options,
                       **{**kwargs, **({"X_labeled": X_np[:6]} if name == "coreset" else {})})
        ours = strategy(net, X, n_instances=4, random_state=0, **options,
                        **{**kwargs, **({"X_labeled": labeled_ds} if name == "coreset"
                                        else {})})
        np.testing.assert_array_equal(ours, ref)


def test_utilities_same_scores_on_the_dataset(data, nets, no_materialising):
    X, X_np, _ = data
    for util, kind in [(critic_correctness, "critic"), (predicted_loss, "lossnet"),
                       (cyclic_output_discrepancy, "plain"), (entropy_gradient_norm, "plain"),
                       (classifier_entropy, "plain")]:
        np.testing.assert_array_equal(util(nets[kind], X), util(nets[kind], X_np))


@pytest.mark.parametrize("strategy, kind", [(critic_sampling, "critic"),
                                            (cod_sampling, "plain")])
def test_a_query_reads_only_its_candidates(strategy, kind, nets):
    rng = np.random.RandomState(4)
    ds = ImageList(torch.from_numpy(rng.rand(60, 3, SIDE, SIDE).astype(np.float32)),
                   torch.zeros(60))
    X = DatasetArray(ds)
    ds.reads.clear()
    strategy(nets[kind], X, n_instances=3, subset_size=10, random_state=0)
    assert len(ds.reads) == 10 and len(set(ds.reads)) == 10
    ds.reads.clear()
    pool = np.arange(30, 60)
    idx = strategy(nets[kind], X, n_instances=3, subset_size=10, random_state=0,
                   pool_indices=pool)
    assert len(ds.reads) == 10 and set(ds.reads) <= set(pool) and set(idx) <= set(ds.reads)


def test_modal_learner_with_a_dataset_pool(data):
    """modAL's query on a DatasetArray pool returns the rows as an array; teach them."""
    modal = pytest.importorskip("modAL.models")
    X, X_np, y = data
    labeled = np.arange(0, 36, 4)
    learner = modal.ActiveLearner(ResNetClassifier(**TINY), query_strategy=entropy_sampling,
                                  X_training=X[labeled], y_training=y[labeled])
    unlabeled = np.setdiff1d(np.arange(36), labeled)
    idx, rows = learner.query(X, n_instances=3, random_state=0, pool_indices=unlabeled)
    assert not set(idx) & set(labeled)
    np.testing.assert_array_equal(idx, entropy_sampling(learner, X, n_instances=3,
                                                        random_state=0, pool_indices=unlabeled))
    assert isinstance(rows, np.ndarray)
    np.testing.assert_array_equal(rows, X_np[idx])
    learner.teach(rows, y[idx])
    np.testing.assert_array_equal(learner.X_training[-3:], X_np[idx])


def test_workers_give_identical_results(data, nets, monkeypatch):
    X, X_np, y = data
    Xw = DatasetArray(X.dataset, num_workers=2, batch_size=8)  # reads of > 8 rows use them
    with_workers = []

    class Recording(torch.utils.data.DataLoader):
        def __iter__(self):
            with_workers.append(self.num_workers)
            return super().__iter__()

    monkeypatch.setattr(torch.utils.data, "DataLoader", Recording)
    net = nets["critic"]
    np.testing.assert_array_equal(net.predict_proba(Xw), net.predict_proba(X))
    np.testing.assert_array_equal(Xw[np.arange(3, 30)], X_np[3:30])
    for strategy in (critic_sampling, cod_sampling):
        np.testing.assert_array_equal(
            strategy(net, Xw, n_instances=4, subset_size=20, random_state=0),
            strategy(net, X, n_instances=4, subset_size=20, random_state=0))
    clf = ResNetClassifier(**TINY).fit(Xw, y)
    np.testing.assert_array_equal(clf.predict_proba(X_np), nets["plain"].predict_proba(X_np))
    # the reads of Xw went through DataLoaders with the two workers: predict_proba, the
    # indexing, one chunk of each query, fit's copy of the training set (those of X,
    # through DataLoaders without workers)
    assert with_workers.count(2) == 5


def test_image_folder_with_a_symlink_loop_ends(tmp_path):
    """Symbolic links are followed, each folder once: a link back up does not loop."""
    import os

    from PIL import Image

    from sklearn_crtcl.datasets import load_image_folder

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    try:
        os.symlink(tmp_path / "a", tmp_path / "a" / "loop")  # a/loop/loop/... without end
    except (OSError, NotImplementedError):  # pragma: no cover - no symlinks here
        pytest.skip("cannot create symbolic links")
    X, y = load_image_folder(tmp_path, return_X_y=True)
    assert len(X) == 4 and list(y) == [0, 0, 1, 1]
