"""One process of the two-process tests in ``test_distributed.py``.

Run by ``torchrun --standalone --nproc_per_node=2 distributed_worker.py OUT``
(gloo backend, CPU) after the test pickled :func:`fitted_nets` to
``OUT/nets.pkl``. The test module imports the same builders to compute the
single-process reference, so both sides train and query the same way.

Each process saves to ``OUT/rank<r>.pt``: the indices of every query of
:func:`queries`, and for every training of :func:`train_results` (layer-norm
backbones, augmented; plus a batch-norm net and a ``random_state=None``
net, whose processes must agree with each other) every module's state, the
per-epoch losses and the predictions (and a net given a different
``RandomState`` in each process); and the records of a small run of the
experiment runner in ``OUT/run`` (which only process 0 writes).
"""

import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch.callbacks import Callback, GradientNormClipping

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl import query as q

TINY = dict(module__width=2, max_epochs=3, input_shape=(1, 8, 8), device="cpu", random_state=0,
            batch_size=15, lr=0.05)


def data():
    """60 labeled digits (batches of 15 split 8/7 over two processes), 40 unlabeled,
    30 to predict."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    return X[:60], y[:60], X[60:100], X[100:130]


def training_nets():
    """The nets whose two-process training must match one process."""
    layer = dict(TINY, module__norm="layer", augment="flip+crop")
    return {
        "resnet": ResNetClassifier(**layer),
        "crtcl": CriticLossNet(critic__hidden=8, generator_stop_epoch=1.0, gamma=0.5, **layer),
        "tod": TODNet(**layer),
        # a gradient callback sees the whole batch's gradient, as in one process
        "clipped": CriticLossNet(critic__hidden=8, generator_stop_epoch=1.0, gamma=0.5,
                                 callbacks=[("clip", GradientNormClipping(0.05))], **layer),
        "clipped_resnet": ResNetClassifier(callbacks=[("clip", GradientNormClipping(0.05))],
                                           **layer),
    }


def fit(name, net):
    """Fit ``net`` (the semi-supervised ones with the unlabeled images)."""
    X, y, X_u, _ = data()
    if name in ("crtcl", "tod", "clipped"):
        return net.fit(X, y, X_unlabeled=X_u)
    return net.fit(X, y)


def summary(net):
    """Every module's state, the per-epoch training losses and the predictions."""
    states = {"module_": {k: v.detach().clone() for k, v in net.module_.state_dict().items()}}
    for aux, module in net._present_auxiliary_modules():
        states[aux.name] = {k: v.detach().clone() for k, v in module.state_dict().items()}
    return {"states": states, "train_loss": list(net.history[:, "train_loss"]),
            "proba": net.predict_proba(data()[3])}


def fitted_nets():
    """Nets fitted in one process (the test pickles them for the workers): the
    queries' nets, and a loss-prediction net trained on to check training
    from a fitted state (at the start of training, the per-sample losses are
    so close that the ranking loss's pair signs flip with rounding)."""
    X, y, X_u, _ = data()
    base = dict(TINY, max_epochs=2)
    return {
        "plain": ResNetClassifier(**base).fit(X, y),
        "crtcl": CriticLossNet(critic__hidden=8, **base).fit(X, y),
        "lossnet": LossPredictionNet(loss_head__hidden=8, **base).fit(X, y),
        "lossnet/layer": LossPredictionNet(loss_head__hidden=8, epoch_loss=1.0,
                                           **dict(TINY, module__norm="layer",
                                                  max_epochs=8)).fit(X, y),
    }


def train_on(net):
    """Continue training the pickled ``net`` for 2 epochs."""
    X, y, _, _ = data()
    return net.set_params(max_epochs=2, augment="flip+crop").partial_fit(X, y)


def queries(nets):
    """``{name: indices}`` of every strategy, with several selections and options."""
    X, _, X_u, X_test = data()
    pool = np.concatenate([X_u, X_test])  # 70 images
    rows = np.arange(5, 65)
    out = {}
    for selection in ("topk", "power", "balanced", "cluster"):
        opts = dict(n_instances=6, random_state=3, selection=selection)
        out[f"critic/{selection}"] = q.critic_sampling(nets["crtcl"], pool, **opts)
        out[f"entropy/{selection}"] = q.entropy_sampling(nets["plain"], pool, **opts)
    opts = dict(n_instances=5, random_state=1)
    out["cod"] = q.cod_sampling(nets["plain"], pool, **opts)
    out["gradnorm"] = q.gradient_norm_sampling(nets["plain"], pool, **opts)
    out["lossnet"] = q.loss_prediction_sampling(nets["lossnet"], pool, **opts)
    out["random"] = q.random_sampling(nets["plain"], pool, **opts)
    out["random/balanced"] = q.random_sampling(nets["plain"], pool, selection="balanced",
                                               **opts)
    out["badge"] = q.badge_sampling(nets["plain"], pool, **opts)
    out["coreset"] = q.coreset_sampling(nets["plain"], pool, X_labeled=X, **opts)
    out["entropy/subset"] = q.entropy_sampling(nets["plain"], pool, subset_size=23,
                                               pool_indices=rows, **opts)
    out["critic/rows"] = q.critic_sampling(nets["crtcl"], pool, pool_indices=rows, **opts)
    return {k: np.asarray(v) for k, v in out.items()}


class SeedProbe(Callback):
    """Records the torch seed a net trains with (its batch order)."""

    def on_train_begin(self, net, **kwargs):
        self.seed = net._torch_seed()


def train_results(nets):
    """Every training of the test: fresh nets, the pickled loss-prediction net
    trained on, a batch-norm net and an unseeded net."""
    X, y, _, _ = data()
    results = {name: summary(fit(name, net)) for name, net in training_nets().items()}
    results["lossnet"] = summary(train_on(nets["lossnet/layer"]))
    results["batchnorm"] = summary(ResNetClassifier(**TINY).fit(X, y))
    probe = SeedProbe()
    results["unseeded"] = summary(ResNetClassifier(
        **dict(TINY, random_state=None, module__norm="layer", callbacks=[("probe", probe)])
    ).fit(X, y))
    results["unseeded"]["seed"] = probe.seed
    # a different RandomState in each process: process 0's seed is used
    rank = torch.distributed.get_rank()
    results["random_state_instance"] = summary(ResNetClassifier(
        **dict(TINY, random_state=np.random.RandomState(rank), module__norm="layer")).fit(X, y))
    return results


RUN = dict(dataset="digits", methods=("random", "crtcl"), initial_size=20, query_size=10,
           n_cycles=1, n_trials=1, max_epochs=1, width=2, subset_size=100, device="cpu",
           progress=False, num_threads=1)


def run(output_dir):
    """The experiment runner's records (times left out)."""
    from sklearn_crtcl.experiments import run_experiment
    from sklearn_crtcl.experiments.report import TIME_COLUMNS

    records = run_experiment(**RUN, output_dir=str(output_dir))
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in records]


def main(out):
    """Run this process's share of the job; save its results under ``out``."""
    from sklearn_crtcl.distributed import init_distributed

    torch.set_num_threads(1)
    rank, size = init_distributed(backend="gloo")
    assert size == 2, size
    out = Path(out)
    with open(out / "nets.pkl", "rb") as f:
        nets = pickle.load(f)
    results = {"query": queries(nets), "train": train_results(nets), "run": run(out / "run")}
    # the command line under torchrun: the same run, process 0 reports
    import contextlib
    import io

    from sklearn_crtcl.experiments.cli import main as cli_main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli_main(["--dataset", "digits", "--methods", "random", "entropy",
                         "--initial-size", "20", "--query-size", "10", "--cycles", "1",
                         "--trials", "1", "--epochs", "1", "--width", "2", "--subset-size",
                         "100", "--device", "cpu", "--threads", "1", "--no-progress",
                         "--output-dir", str(out / "cli")])
    results["cli"] = (code, printed.getvalue())
    # an error in one process's share: raised in every process, none waits
    from sklearn_crtcl.distributed import gather_rows

    def fails_in_process_1(rows):
        if torch.distributed.get_rank() == 1:
            raise ValueError("bad image in the share")
        return rows * 2

    try:
        gather_rows(fails_in_process_1, np.arange(10))
        results["share_error"] = None
    except Exception as exc:
        results["share_error"] = (type(exc).__name__, str(exc))
    # unseeded queries: process 0's candidates and draws in both processes
    pool = np.concatenate(data()[2:])
    results["query_unseeded"] = [
        q.critic_sampling(nets["crtcl"], pool, n_instances=5, subset_size=20, random_state=None),
        q.random_sampling(nets["plain"], pool, n_instances=5, random_state=None),
        q.badge_sampling(nets["plain"], pool, n_instances=5, random_state=None)]
    torch.save(results, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
