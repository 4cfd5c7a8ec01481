import io
import pickle

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl._data import ArrayBatchLoader
from sklearn_crtcl.callbacks import milestone_epochs
from sklearn_crtcl.nets.base import DEFAULT_DEVICE


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def small(**kw):
    params = dict(input_shape=(1, 8, 8), module__width=4, max_epochs=2, batch_size=64,
                  random_state=0, device="cpu")
    params.update(kw)
    return ResNetClassifier(**params)


def test_defaults_follow_the_papers():
    net = ResNetClassifier()
    assert net.optimizer is torch.optim.SGD
    assert net.lr == 0.1 and net.optimizer__momentum == 0.9
    assert net.optimizer__weight_decay == 5e-4
    assert net.batch_size == 128 and net.max_epochs == 200
    assert tuple(net.lr_milestones) == (0.8,) and net.lr_gamma == 0.1
    assert net.train_split is None
    assert net.device == DEFAULT_DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    assert milestone_epochs(net.lr_milestones, 200) == [160]


def test_learning_rate_drops_at_eighty_percent(digits):
    from skorch.callbacks import Callback

    X, y = digits
    lrs = []

    class LrLogger(Callback):
        def on_epoch_end(self, net, **kwargs):
            lrs.append(net.optimizer_.param_groups[0]["lr"])

    net = small(max_epochs=5, callbacks=[("lr_log", LrLogger())]).fit(X[:100], y[:100])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01])
    # restarts at every fit (warm start too)
    lrs.clear()
    net.set_params(warm_start=True)
    net.fit(X[:100], y[:100])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01])
    # a learning rate changed by the user between fits is the new base
    lrs.clear()
    net.set_params(lr=0.05)
    net.fit(X[:100], y[:100])
    assert lrs == pytest.approx([0.05, 0.05, 0.05, 0.05, 0.005])


def test_string_and_noncontiguous_labels(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"], dtype=object)
    net = small().fit(X[:300], names[y[:300]])
    assert list(net.classes_) == sorted(names.tolist())
    pred = net.predict(X[300:350])
    assert set(pred) <= set(names.tolist())
    proba = net.predict_proba(X[300:350])
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(pred, net.classes_[proba.argmax(1)])

    odd = np.array([3, 10, 42])[y[:300] % 3]
    net = small().fit(X[:300], odd)
    np.testing.assert_array_equal(net.classes_, [3, 10, 42])
    assert set(net.predict(X[:20])) <= {3, 10, 42}


def test_image_layouts_and_n_features(digits):
    X, y = digits
    X4 = X.reshape(-1, 1, 8, 8)
    a = small(input_shape=None).fit(X4[:200], y[:200])
    b = small().fit(X[:200], y[:200])
    c = small(input_shape=None).fit(X4[:200, 0], y[:200])  # (n, H, W)
    for net in (a, b, c):
        assert net.input_shape_ == (1, 8, 8)
        assert net.n_features_in_ == 64
    np.testing.assert_allclose(a.predict_proba(X4[200:220]), b.predict_proba(X[200:220]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.predict_proba(X4[200:220]), c.predict_proba(X4[200:220, 0]),
                               rtol=1e-5, atol=1e-6)
    # flat rows without input_shape: a one-pixel-high image (with a warning naming
    # input_shape, since 64 features could be 8x8 images)
    with pytest.warns(UserWarning, match="input_shape"):
        d = small(input_shape=None).fit(X[:200], y[:200])
    assert d.input_shape_ == (1, 1, 64)
    with pytest.raises(ValueError, match="expecting 64 features"):
        b.predict(X[:5, :32])
    with pytest.raises(ValueError, match="cannot be reshaped"):
        small(input_shape=(1, 7, 7)).fit(X[:50], y[:50])
    # partial_fit right after initialize() (e.g. before load_params) sets the data attributes
    net = small(classes=np.arange(10), input_shape=None)
    net.initialize()  # built without knowing the data: 3 input channels by default
    with pytest.raises(ValueError, match="module__in_channels=1"):
        net.partial_fit(X4[:100], y[:100])
    net = small(classes=np.arange(10), input_shape=None, module__in_channels=1)
    net.initialize()
    net.partial_fit(X4[:100], y[:100])
    assert net.n_features_in_ == 64
    # with input_shape and classes, initialize() builds the net for the data
    net = small(classes=np.arange(10)).initialize()
    assert net.module_.in_channels == 1 and net.input_shape_ == (1, 8, 8)
    net.partial_fit(X[:100], y[:100])


def test_random_state_reproducible_and_global_rng_untouched(digits):
    X, y = digits
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    p1 = small(random_state=7).fit(X[:200], y[:200]).predict_proba(X[200:260])
    assert torch.equal(torch.get_rng_state(), before)
    p2 = small(random_state=7).fit(X[:200], y[:200]).predict_proba(X[200:260])
    p3 = small(random_state=8).fit(X[:200], y[:200]).predict_proba(X[200:260])
    np.testing.assert_array_equal(p1, p2)
    assert np.abs(p1 - p3).max() > 1e-4


def test_clone_params_and_set_params_routing(digits):
    X, y = digits
    net = small(module__width=4)
    params = net.get_params()
    assert params["module__width"] == 4 and params["input_shape"] == (1, 8, 8)
    assert not any(k.startswith("_") for k in params)
    cloned = clone(net)
    assert cloned.get_params()["module__width"] == 4
    net.fit(X[:100], y[:100])
    assert net.module_.width == 4
    net.set_params(module__width=6)
    net.fit(X[:100], y[:100])
    assert net.module_.width == 6 and net.module_.stage_channels[0] == 6
    assert not hasattr(clone(net), "module_")
    # optimizer arguments set on a fitted net reach the optimizer and get_params
    net.set_params(optimizer__momentum=0.5)
    assert net.optimizer_.param_groups[0]["momentum"] == 0.5
    assert net.get_params()["optimizer__momentum"] == 0.5
    assert clone(net).optimizer__momentum == 0.5


def test_grid_search_cross_val_and_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), small(max_epochs=1))
    scores = cross_val_score(pipe, X[:240], y[:240], cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    grid = GridSearchCV(small(max_epochs=1), {"module__width": [2, 4]}, cv=2)
    grid.fit(X[:160], y[:160])
    assert grid.best_params_["module__width"] in (2, 4)
    assert grid.best_estimator_.module_.width == grid.best_params_["module__width"]


def test_training_actually_learns(digits):
    X, y = digits
    net = small(module__width=8, max_epochs=8, lr=0.05).fit(X[:1000], y[:1000])
    acc = (net.predict(X[1000:1400]) == y[1000:1400]).mean()
    assert acc > 0.8
    losses = net.history[:, "train_loss"]
    assert losses[-1] < losses[0]


def test_pickle_joblib_and_save_params_round_trips(digits, tmp_path):
    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    net = small().fit(X[:200], labels[:200])
    expected = net.predict_proba(X[200:230])

    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict_proba(X[200:230]), expected)
    np.testing.assert_array_equal(restored.classes_, net.classes_)

    buf = io.BytesIO()
    joblib.dump(net, buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).predict(X[200:230]), net.predict(X[200:230]))

    f = tmp_path / "params.pt"
    net.save_params(f_params=f)
    fresh = small(classes=net.classes_)
    fresh.fit(X[:20], labels[:20])  # same architecture, then overwrite the weights
    fresh.load_params(f_params=f)
    np.testing.assert_array_equal(fresh.predict_proba(X[200:230]), expected)


@pytest.mark.parametrize("bad, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), "NaN"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), "infinity"),
    (lambda X: X[:0], "0 sample"),
    (lambda X: X.ravel(), "Reshape your data"),
    (lambda X: X.reshape(len(X), 1, 1, 8, 8), "dimensions"),
    (lambda X: X.astype(np.complex64), "Complex"),
])
def test_bad_X_raises_before_training(digits, bad, match):
    X, y = digits
    net = small()
    Xb = bad(X[:50].copy())
    with pytest.raises(ValueError, match=match):
        net.fit(Xb, y[:len(Xb)] if Xb.ndim > 1 else y[:50])
    assert not hasattr(net, "module_")  # no work was done


def test_sparse_input_is_a_type_error(digits):
    X, y = digits
    with pytest.raises(TypeError, match="sparse"):
        small().fit(sp.csr_matrix(X[:50]), y[:50])


@pytest.mark.parametrize("y_bad, match", [
    (lambda y: np.zeros_like(y), "only one class"),
    (lambda y: y + 0.5, "Unknown label type"),
    (lambda y: y[:-1], "inconsistent numbers of samples"),
    (lambda y: None, "requires y"),
])
def test_bad_y_raises_before_training(digits, y_bad, match):
    X, y = digits
    net = small()
    with pytest.raises(ValueError, match=match):
        net.fit(X[:50], y_bad(y[:50].copy()))
    assert not hasattr(net, "module_")


def test_unknown_label_with_classes_and_warm_start(digits):
    X, y = digits
    net = small(classes=np.arange(5))
    with pytest.raises(ValueError, match="not among the classes"):
        net.fit(X[:100], y[:100])
    warm = small(warm_start=True, classes=np.arange(10))
    warm.fit(X[:100][y[:100] < 5], y[:100][y[:100] < 5])  # first set misses classes 5..9
    warm.fit(X[:100], y[:100])
    assert len(warm.classes_) == 10


def test_inputs_not_modified(digits):
    X, y = digits
    Xc, yc = X[:100].copy(), y[:100].copy()
    net = small().fit(Xc, yc)
    net.predict_proba(Xc)
    np.testing.assert_array_equal(Xc, X[:100])
    np.testing.assert_array_equal(yc, y[:100])


def test_predict_before_fit_is_not_fitted_error(digits):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        small().predict(digits[0][:3])


def test_array_batch_loader_merges_single_sample_tail():
    from skorch.dataset import Dataset
    X = np.arange(129 * 2, dtype=np.float32).reshape(129, 2)
    y = np.arange(129)
    loader = ArrayBatchLoader(Dataset(X, y), batch_size=64, shuffle=False)
    sizes = [len(xb) for xb, _ in loader]
    assert sizes == [64, 65] and len(loader) == 2
    torch.manual_seed(0)
    shuffled = ArrayBatchLoader(Dataset(X, y), batch_size=64, shuffle=True)
    seen = torch.cat([yb for _, yb in shuffled])
    assert sorted(seen.tolist()) == list(range(129))
    assert seen.tolist() != list(range(129))
    # a batch of one sample can be fitted: 129 = 128 + 1 would crash batch norm otherwise
    Xi = np.random.RandomState(0).normal(size=(129, 1, 8, 8)).astype(np.float32)
    yi = np.arange(129) % 3
    small(batch_size=128, max_epochs=1, input_shape=None).fit(Xi, yi)


def test_memmap_prediction_does_not_copy(tmp_path, digits):
    X, y = digits
    net = small().fit(X[:100], y[:100])
    mm = np.lib.format.open_memmap(tmp_path / "pool.npy", mode="w+", dtype=np.float32,
                                   shape=(300, 64))
    mm[:] = X[:300]
    mm.flush()
    ro = np.load(tmp_path / "pool.npy", mmap_mode="r")
    np.testing.assert_allclose(net.predict_proba(ro), net.predict_proba(X[:300]), rtol=1e-6)


def test_embed_is_the_input_of_the_final_layer_batch_by_batch(digits, tmp_path):
    X, y = digits
    net = small().fit(X[:100], y[:100])
    emb = net.embed(X[100:150])
    assert emb.dtype == np.float32 and emb.shape == (50, 8 * 4)  # 8 * module__width
    with torch.no_grad():
        logits = net.module_.fc(torch.from_numpy(emb)).numpy()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               net.predict_proba(X[100:150]), rtol=1e-4, atol=1e-6)
    # batch size and a read-only memory map do not change it
    path = tmp_path / "X.npy"
    np.save(path, np.asarray(X[100:150], dtype=np.float32))
    np.testing.assert_allclose(net.embed(np.load(path, mmap_mode="r"), batch_size=7), emb,
                               rtol=1e-5, atol=1e-6)
    assert net.module_.training  # the modes are restored
    with pytest.raises(ValueError, match="expecting 64 features"):
        net.embed(X[:5, :32])



class _CtrlCAtEpoch(Callback):
    """Presses Ctrl-C (raises KeyboardInterrupt) at the end of epoch ``epoch`` of a fit."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) - net.fit_start_epoch_ == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("semi_supervised", [False, True])
def test_ctrl_c_in_fit_returns_the_net_as_skorch_does_and_sets_fit_interrupted(
        digits, semi_supervised):
    from modAL.models import ActiveLearner

    from sklearn_crtcl import CriticLossNet

    X, y = digits[0][:80], digits[1][:80]
    params = dict(input_shape=(1, 8, 8), module__width=4, max_epochs=4, batch_size=32,
                  random_state=0, device="cpu", warm_start=True,
                  callbacks=[("ctrl_c", _CtrlCAtEpoch(epoch=2))])
    net = CriticLossNet(**params) if semi_supervised else ResNetClassifier(**params)
    kwargs = {"X_unlabeled": digits[0][80:120]} if semi_supervised else {}
    # skorch's convention: the fit stops after the epoch, runs on_train_end and returns
    learner = ActiveLearner(estimator=net, X_training=X[:60], y_training=y[:60], **kwargs)
    assert learner.estimator is net and len(net.history) == 2
    assert net.fit_interrupted_ is True
    # the next fit (modAL's teach) is not interrupted: the flag goes back to False
    net.set_params(callbacks__ctrl_c__epoch=None)
    learner.teach(X[60:], y[60:], **kwargs)
    assert len(net.history) == 2 + 4 and net.fit_interrupted_ is False


def test_inference_keeps_no_per_batch_output_past_its_batch(digits):
    # outputs are copied into arrays allocated once: a batch's output tensor is freed
    # before the next batch runs (a list of per-batch outputs pinned the heap, and
    # resident memory grew with the pool: benchmarks/bench_inference_memory.py)
    import weakref

    X, y = digits
    net = small(max_epochs=1, batch_size=50).fit(X[:100], y[:100])
    alive_at_next_batch = []
    previous = []

    def fn(module, xb):
        alive_at_next_batch.extend(ref() is not None for ref in previous)
        out = torch.softmax(module(xb), dim=1).numpy()  # holds the tensor's memory
        previous[:] = [weakref.ref(out)]
        return out

    proba = net._inference_batches(X[:230], fn, batch_size=50)
    assert len(alive_at_next_batch) == 4 and not any(alive_at_next_batch)
    np.testing.assert_allclose(proba, net.predict_proba(X[:230]), rtol=0, atol=0)
    both = net._inference_batches(X[:230], lambda m, xb: (fn(m, xb), fn(m, xb)[:, :3]),
                                  batch_size=50)
    assert isinstance(both, tuple) and both[0].shape == (230, 10) and both[1].shape == (230, 3)


def test_array_batch_loader_drop_last_and_min_last_batch_on_arrays_and_fallback():
    """``drop_last`` (DataLoader's meaning) and ``min_last_batch`` hold for arrays and for
    the DataLoader fallback alike; bad values are refused."""
    from skorch.dataset import Dataset
    X = np.arange(138 * 2, dtype=np.float32).reshape(138, 2)
    y = np.arange(138)

    class Plain(torch.utils.data.Dataset):  # not arrays: the DataLoader fallback
        def __len__(self):
            return 138

        def __getitem__(self, i):
            return torch.as_tensor(X[i]), int(y[i])

    for ds in (Dataset(X, y), Plain()):
        sizes = lambda **kw: [len(xb) for xb, _ in ArrayBatchLoader(ds, batch_size=64, **kw)]  # noqa
        assert sizes() == [64, 64, 10]
        assert sizes(drop_last=True) == [64, 64]
        assert sizes(min_last_batch=16) == [64, 74]
        assert sizes(min_last_batch=10) == [64, 64, 10]
        merged = torch.cat([yb for _, yb in ArrayBatchLoader(ds, batch_size=64, min_last_batch=16)])
        assert sorted(merged.tolist()) == list(range(138))
    assert len(ArrayBatchLoader(Dataset(X, y), batch_size=64, min_last_batch=16)) == 2
    assert len(ArrayBatchLoader(Dataset(X, y), batch_size=64, drop_last=True)) == 2
    assert len(ArrayBatchLoader(Dataset(X[:10], y[:10]), batch_size=64, drop_last=True)) == 0
    with pytest.raises(ValueError, match="min_last_batch"):
        ArrayBatchLoader(Dataset(X, y), min_last_batch=0)
    with pytest.raises(TypeError, match="drop_last"):
        ArrayBatchLoader(Dataset(X, y), drop_last="yes")


def test_merge_short_tail_merges_only_a_short_last_batch():
    from sklearn_crtcl._data import merge_short_tail

    def sizes(lengths, min_rows):
        batches = [(torch.zeros(n), None) for n in lengths]
        return [len(b[0]) for b in merge_short_tail(batches, min_rows)]

    assert sizes([4, 4, 2], 3) == [4, 6]
    assert sizes([4, 4, 3], 3) == [4, 4, 3]
    assert sizes([3, 3, 3], 5) == [3, 3, 3]  # a full last batch stays, however small
    assert sizes([2], 5) == [2]  # a first and only batch too
    merged = list(merge_short_tail([(torch.arange(4), None), (torch.arange(4, 5), None)], 2))
    assert len(merged) == 1 and merged[0][1] is None
    assert merged[0][0].tolist() == [0, 1, 2, 3, 4]


def test_smallest_norm_map_of_the_backbone():
    """The fewest values per channel a batch norm of the ResNet sees per sample: its
    last stage's map, 1x1 for 8x8 images and 4x4 for 28x28; None without batch norm."""
    from sklearn_crtcl._data import smallest_norm_map
    from sklearn_crtcl.backbones import resnet18
    net = resnet18(num_classes=3, in_channels=1, width=2)
    net.train()
    before = [b.clone() for b in net.buffers()]
    assert smallest_norm_map(net, torch.zeros(1, 1, 8, 8)) == 1
    assert smallest_norm_map(net, torch.zeros(1, 1, 28, 28)) == 16
    assert net.training and all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
    # shapes only, on a meta copy: no hook of the module fires, nothing moves
    calls = []
    net.layer4.register_forward_hook(lambda *args: calls.append(args))
    assert smallest_norm_map(net, torch.zeros(1, 1, 8, 8, dtype=torch.uint8)) == 1
    assert calls == [] and all(p.device.type == "cpu" for p in net.parameters())
    net(torch.zeros(2, 1, 8, 8))
    assert len(calls) == 1
    # weights computed by hooks or parametrizations still give their shapes
    spectral = torch.nn.Sequential(
        torch.nn.utils.parametrizations.spectral_norm(torch.nn.Conv2d(1, 2, 3)),
        torch.nn.BatchNorm2d(2))
    assert smallest_norm_map(spectral, torch.zeros(1, 1, 8, 8)) == 36

    class ReadsValues(torch.nn.Module):  # a forward that needs values, not shapes
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(1)

        def forward(self, x):
            return self.bn(x) * float(x.sum())

    assert smallest_norm_map(ReadsValues(), torch.zeros(1, 1, 8, 8)) is None
    assert smallest_norm_map(resnet18(num_classes=3, in_channels=1, width=2, norm="layer"),
                             torch.zeros(1, 1, 8, 8)) is None


@pytest.mark.parametrize("side, last", [(8, [32, 34]), (28, [32, 2])])
def test_fit_merges_a_trailing_batch_too_small_for_batch_norm(side, last):
    """418 = 13 x 32 + 2: on 8x8 images (a 1x1 last stage) the 2 rows would be all that
    batch norm normalises over, and are merged into the batch before (a warm-started
    digits network fell from 0.97 to 0.53-0.62 test accuracy with them); on 28x28 images
    (4x4) they give it 32 values and stay. iterator_train__min_last_batch and
    iterator_train__drop_last override it, as in skorch."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(418, 1, side, side)).astype(np.float32)
    y = np.arange(418) % 3

    def sizes(**kw):
        net = small(batch_size=32, max_epochs=1, input_shape=None, **kw).fit(X, y)
        return [b["train_batch_size"] for b in net.history[-1, "batches"]]

    got = sizes()
    assert got[-2:] == last and sum(got) == 418
    assert sizes(iterator_train__min_last_batch=2)[-2:] == [32, 2]
    assert sizes(iterator_train__drop_last=True)[-2:] == [32, 32]
    # a full last batch is never merged, even when every batch is below the need
    net = small(batch_size=11, max_epochs=1, input_shape=None).fit(X[:44], y[:44])
    assert [b["train_batch_size"] for b in net.history[-1, "batches"]] == [11] * 4


def test_distributed_batches_give_every_process_the_rows_of_one(monkeypatch):
    """Each process of a distributed job normalises its own share of a batch (no
    SyncBatchNorm), so the trailing batch must give every share the 16 rows one process
    needs on 8x8 images: 436 = 13 x 32 + 20 keeps its 20 rows in one process, but in
    two they would be shares of 10 and are merged; a layer-norm backbone needs 2."""
    from skorch.dataset import Dataset

    from sklearn_crtcl.distributed import DistributedBatches
    from sklearn_crtcl.nets import base

    rng = np.random.RandomState(0)
    X = rng.normal(size=(436, 1, 8, 8)).astype(np.float32)
    y = np.arange(436) % 3

    def loader(size, **kw):
        monkeypatch.setattr(base, "world", lambda: (0, size))
        net = small(batch_size=32, **kw).initialize()
        return net.get_iterator(Dataset(X, y), training=True)

    one = loader(1)
    assert isinstance(one, ArrayBatchLoader) and one.min_last_batch == 16
    assert [len(xb) for xb, _ in one][-2:] == [32, 20]
    two = loader(2)
    assert isinstance(two, DistributedBatches) and two.min_rows == 16
    assert two.iterator.min_last_batch == 32
    assert [len(xb) for xb, _ in two.iterator][-2:] == [32, 52]
    assert len(two) == 13
    layer = loader(2, module__norm="layer")
    assert layer.min_rows == 2 and layer.iterator.min_last_batch == 4
    assert [len(xb) for xb, _ in layer.iterator][-1] == 20
    given = loader(2, iterator_train__min_last_batch=5)  # the user's value, as it is
    assert given.min_rows == 2 and given.iterator.min_last_batch == 5
