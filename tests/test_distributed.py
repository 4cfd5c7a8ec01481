"""Data-parallel training and pool scoring (sklearn_crtcl.distributed).

The two-process tests run ``tests/distributed_worker.py`` under ``torchrun``
(two CPU processes, gloo backend) once per session and compare what each
process saved with the same computation in this single process: the same
query indices for every strategy, and training that matches single-process
training on the same batches within floating-point tolerance.
"""

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.backbones import NORMS, norm_layer, resnet18
from sklearn_crtcl.distributed import (DistributedBatches, all_reduce_gradients, broadcast_object,
                                       gather_batch, gather_rows, init_distributed, shard_bounds,
                                       world)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import distributed_worker as worker  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch built without torch.distributed")


# ---------------------------------------------------------------------------- one process
def test_single_process_helpers_are_identities():
    assert world() == (0, 1)
    t = torch.randn(5, 3, requires_grad=True)
    assert gather_batch(t) is t
    assert broadcast_object({"a": 1}) == {"a": 1}
    assert np.array_equal(gather_rows(lambda r: r * 2, np.arange(4)), [0, 2, 4, 6])
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    all_reduce_gradients([p])
    assert torch.equal(p.grad, torch.full((3,), 2.0))


@pytest.mark.parametrize("n, size", [(15, 2), (16, 2), (7, 3), (2, 4), (0, 2)])
def test_shard_bounds_cover_the_rows_in_order(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [b - a for a, b in bounds]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_sharded_batches_single_process_yields_the_batches_and_syncs():
    calls = []
    batches = [(torch.arange(4), torch.arange(4)), (torch.arange(3), torch.arange(3))]
    out = list(DistributedBatches(batches, sync=lambda: calls.append(1)))
    assert [len(b[0]) for b in out] == [4, 3]
    assert len(calls) == 3  # before each batch and after the last


def test_init_distributed_without_launcher_says_how(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node"):
        init_distributed()
    with pytest.raises(ValueError, match="backend"):
        init_distributed(backend="mpi")


def test_layer_norm_backbone():
    assert NORMS == ("batch", "layer")
    net = resnet18(num_classes=3, in_channels=1, width=2, norm="layer")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not list(net.buffers())
    x = torch.randn(4, 1, 8, 8)
    # each sample normalised on its own: a sample's output does not depend on its batch
    torch.testing.assert_close(net(x)[:1], net(x[:1]))
    assert isinstance(norm_layer("batch", 4), torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="norm must be one of"):
        resnet18(norm="group")
    X, y, _, _ = worker.data()
    clf = ResNetClassifier(**dict(worker.TINY, module__norm="layer", max_epochs=8)).fit(X, y)
    assert clf.history[-1, "train_loss"] < clf.history[0, "train_loss"] - 0.2


# ---------------------------------------------------------------------------- two processes
@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Run the worker in two processes once; return (rank-0, rank-1, fitted nets)."""
    out = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    nets = worker.fitted_nets()
    with open(out / "nets.pkl", "wb") as f:
        pickle.dump(nets, f)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "distributed_worker.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    with open(out / "nets.pkl", "rb") as f:  # fresh copies: the queries must not see a refit
        nets = pickle.load(f)
    ranks[0]["run_dir"] = out / "run"
    return ranks[0], ranks[1], nets


def _max_state_diff(a, b):
    diff = 0.0
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            x, y = a[name][key], b[name][key]
            if x.dtype.is_floating_point:
                diff = max(diff, float((x - y).abs().max()))
            else:
                assert torch.equal(x, y), (name, key)
    return diff


def test_queries_return_the_single_process_indices(two_processes):
    rank0, rank1, nets = two_processes
    expected = worker.queries(nets)
    assert rank0["query"].keys() == expected.keys()
    for name, indices in expected.items():
        np.testing.assert_array_equal(rank0["query"][name], indices, err_msg=name)
        np.testing.assert_array_equal(rank1["query"][name], indices, err_msg=name)


def test_command_line_under_torchrun(two_processes):
    rank0, rank1, _ = two_processes
    assert rank0["cli"][0] == 0 and rank1["cli"][0] == 0
    assert "Results (one row per method, trial, cycle)" in rank0["cli"][1]
    assert rank1["cli"][1] == ""  # process 0 reports
    csv = (rank0["run_dir"].parent / "cli" / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 * 2  # 2 methods x 2 cycles, written once


def test_an_error_in_one_share_is_raised_in_every_process(two_processes):
    rank0, rank1, _ = two_processes
    assert rank1["share_error"] == ("ValueError", "bad image in the share")
    assert rank0["share_error"] == (
        "RuntimeError", "process 1 failed on its share of the rows: ValueError: bad image in "
        "the share")


def test_unseeded_validation_split_is_rejected_in_a_distributed_job(monkeypatch):
    from skorch.dataset import ValidSplit

    from sklearn_crtcl.nets import base

    monkeypatch.setattr(base, "world", lambda: (0, 2))
    X, y, _, _ = worker.data()
    net = ResNetClassifier(**dict(worker.TINY, train_split=ValidSplit(0.2)))
    with pytest.raises(ValueError, match="give it a random_state"):
        net.fit(X, y)
    assert not hasattr(net, "module_")


def test_unseeded_queries_agree_across_processes(two_processes):
    rank0, rank1, _ = two_processes
    for a, b in zip(rank0["query_unseeded"], rank1["query_unseeded"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["resnet", "crtcl", "tod", "lossnet", "clipped",
                                  "clipped_resnet"])
def test_training_matches_one_process_on_the_same_batches(two_processes, name):
    rank0, rank1, nets = two_processes
    if name == "lossnet":
        single = worker.summary(worker.train_on(nets["lossnet/layer"]))
    else:
        single = worker.summary(worker.fit(name, worker.training_nets()[name]))
    # the processes hold the same model...
    assert _max_state_diff(rank0["train"][name]["states"], rank1["train"][name]["states"]) == 0
    # ... which is the single-process model, up to rounding (batches of 15 run as 8 + 7)
    assert _max_state_diff(single["states"], rank0["train"][name]["states"]) < 1e-4
    np.testing.assert_allclose(rank0["train"][name]["train_loss"], single["train_loss"],
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(rank0["train"][name]["proba"], single["proba"], rtol=0, atol=1e-5)
    # and it trained: the weights moved away from the initial ones
    assert single["train_loss"][-1] != single["train_loss"][0]


@pytest.mark.parametrize("name", ["batchnorm", "unseeded", "random_state_instance"])
def test_processes_agree_with_batch_norm_and_without_a_seed(two_processes, name):
    rank0, rank1, _ = two_processes
    assert _max_state_diff(rank0["train"][name]["states"], rank1["train"][name]["states"]) == 0
    np.testing.assert_array_equal(rank0["train"][name]["proba"], rank1["train"][name]["proba"])
    assert rank0["train"][name]["train_loss"] == rank1["train"][name]["train_loss"]
    if name == "unseeded":  # the same batches: one seed (process 0's) in both processes
        assert rank0["train"][name]["seed"] is not None
        assert rank0["train"][name]["seed"] == rank1["train"][name]["seed"]


def test_runner_in_two_processes(two_processes, tmp_path):
    rank0, rank1, _ = two_processes
    # the processes ran the same experiment... (NaN, an estimate a method cannot give,
    # as None: the records came back pickled, each NaN a float of its own)
    def same(records):
        return [{k: None if isinstance(v, float) and math.isnan(v) else v
                 for k, v in r.items()} for r in records]
    assert same(rank0["run"]) == same(rank1["run"])
    assert [(r["method"], r["cycle"], r["n_labeled"]) for r in rank0["run"]] == [
        ("random", 0, 20), ("random", 1, 30), ("crtcl", 0, 20), ("crtcl", 1, 30)]
    # ... which process 0 wrote, once
    out = rank0["run_dir"]
    csv = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv) == 1 + len(rank0["run"])
    from sklearn_crtcl.experiments.runner import load_state
    state = load_state(out)
    # random queries do not depend on the models: the labeled sets of one process
    single = worker.run(tmp_path / "single")
    assert [(r["method"], r["cycle"], r["n_labeled"]) for r in single] == \
        [(r["method"], r["cycle"], r["n_labeled"]) for r in rank0["run"]]
    single_state = load_state(tmp_path / "single")
    assert state["runs"]["random/0"]["labeled"] == single_state["runs"]["random/0"]["labeled"]


def test_batches_too_small_for_the_processes_are_rejected_before_training(monkeypatch):
    from sklearn_crtcl import CriticLossNet
    from sklearn_crtcl.nets import base

    monkeypatch.setattr(base, "world", lambda: (0, 4))  # as if in a job of 4 processes
    X, y, X_u, _ = worker.data()
    net = ResNetClassifier(**dict(worker.TINY, batch_size=7))
    with pytest.raises(ValueError, match="batch_size gives batches of 7 samples, too few for 4 "
                                         "processes.*at least 8"):
        net.fit(X, y)
    assert not hasattr(net, "module_")  # nothing was built
    crtcl = CriticLossNet(**dict(worker.TINY, batch_size=8, unlabeled_batch_size=6))
    with pytest.raises(ValueError, match="the unlabeled batch size gives batches of 6"):
        crtcl.fit(X, y, X_unlabeled=X_u)


def test_a_random_state_instance_per_process_trains_with_process_0s(two_processes):
    """Each process got RandomState(rank): all draw process 0's batches, which is the
    single-process training with RandomState(0)."""
    rank0, _, _ = two_processes
    X, y, _, _ = worker.data()
    single = worker.summary(ResNetClassifier(
        **dict(worker.TINY, random_state=np.random.RandomState(0), module__norm="layer")
    ).fit(X, y))
    assert _max_state_diff(single["states"],
                           rank0["train"]["random_state_instance"]["states"]) < 1e-4
