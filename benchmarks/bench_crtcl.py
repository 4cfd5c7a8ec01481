"""Cost of CrtCl training compared with plain cross-entropy training.

Measures, on the same data and batch size, the seconds per epoch and the peak
memory of

* ``ResNetClassifier`` (cross-entropy only),
* ``CriticLossNet`` without unlabeled data (critic step + generator loss on
  the labeled batch),
* ``CriticLossNet`` with ``X_unlabeled`` during the generator phase (an
  unlabeled batch of the same size per step),
* the same with unlabeled batches of half the size (``/2``), for reference,
* the same with one forward pass over the concatenated labeled and unlabeled
  batches (``+concat``), the alternative to the package's two passes.

Each configuration runs in a fresh subprocess (so peak memory is its own):
one warm-up epoch, then ``--epochs`` timed epochs. Two clocks are read per
epoch: wall-clock seconds (skorch's ``dur``) and, on CPU, the CPU seconds of
the process (``time.process_time``), which a shared machine's other load
does not inflate; ratios are given for both. With ``--rounds`` > 1 the
configurations are interleaved round by round and the median over all timed
epochs is reported. Peak memory is the growth of the process's peak resident
set size (``ru_maxrss``) during ``fit`` on CPU, and
``torch.cuda.max_memory_allocated`` on CUDA.

Usage::

    python benchmarks/bench_crtcl.py                  # CPU, defaults below
    python benchmarks/bench_crtcl.py --device cuda --rounds 3
    python benchmarks/bench_crtcl.py --threads 1 --phases    # where the time goes
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

def _cpu_timer():
    from skorch.callbacks import Callback

    class EpochCPUTimer(Callback):
        """Record the process's CPU seconds of each epoch as ``cpu_dur``."""

        def on_epoch_begin(self, net, **kwargs):
            self.start_ = time.process_time()

        def on_epoch_end(self, net, **kwargs):
            net.history.record("cpu_dur", time.process_time() - self.start_)

    return EpochCPUTimer()


class _PhaseClock:
    """CPU seconds spent in the backbone's forward passes and in ``backward``.

    The forward pass is timed from the first layer (``conv1``) to the last
    (``fc``), which both ``module.forward`` (``ResNetClassifier``) and
    ``forward_taps`` (``CriticLossNet``) run through; ``backward`` is every
    call of ``torch.Tensor.backward`` (for ``CriticLossNet`` this includes the
    critic's own, tiny, backward pass). What remains of an epoch is the rest
    of the step: optimizer steps, batch loading, the critic's pooling and
    update, skorch's bookkeeping.
    """

    def __init__(self):
        self.forward = self.backward = 0.0
        self._start = None

    def install(self, module):
        import torch

        def begin(*_):
            self._start = time.process_time()

        def end(*_):
            self.forward += time.process_time() - self._start

        module.conv1.register_forward_pre_hook(begin)
        module.fc.register_forward_hook(end)
        original = torch.Tensor.backward
        clock = self

        def backward(tensor, *args, **kwargs):
            start = time.process_time()
            try:
                return original(tensor, *args, **kwargs)
            finally:
                clock.backward += time.process_time() - start

        torch.Tensor.backward = backward

    def callback(self):
        from skorch.callbacks import Callback

        clock = self

        class EpochPhases(Callback):
            """Record the epoch's ``forward_cpu`` and ``backward_cpu`` seconds."""

            def on_train_begin(self, net, **kwargs):
                clock.install(net.module_)  # the module of this fit, once initialised

            def on_epoch_begin(self, net, **kwargs):
                self.at_ = (clock.forward, clock.backward)

            def on_epoch_end(self, net, **kwargs):
                net.history.record("forward_cpu", clock.forward - self.at_[0])
                net.history.record("backward_cpu", clock.backward - self.at_[1])

        return EpochPhases()


CONFIGS = ("ResNetClassifier", "CriticLossNet", "CriticLossNet+X_unlabeled",
           "CriticLossNet+X_unlabeled/2", "CriticLossNet+X_unlabeled+concat")


def _concat_net_class():
    """``CriticLossNet`` with one forward pass over the labeled and the
    unlabeled batch concatenated: the alternative to the package's two passes,
    kept here for the comparison only (batch normalisation then takes its
    statistics over both batches, and both batches' activations are held at
    once)."""
    import torch
    from skorch.dataset import unpack_data
    from skorch.utils import to_device

    from sklearn_crtcl.backbones import forward_taps
    from sklearn_crtcl.nets.crtcl import CriticLossNet

    class ConcatCriticLossNet(CriticLossNet):
        def train_step(self, batch, **fit_params):
            x_u = self.unlabeled_batch() if self._generator_active() else None
            if x_u is None:
                return super().train_step(batch, **fit_params)
            self._set_training(True)
            Xi, yi = unpack_data(batch)
            x, y = to_device(Xi, self.device), to_device(yi, self.device)
            n = x.shape[0]
            self.optimizer_.zero_grad()
            taps = forward_taps(self.module_, torch.cat([x, x_u]))
            logits, logits_u = taps["logits"][:n], taps["logits"][n:]
            inputs = self._critic_inputs(taps)
            labeled = {k: v[:n] for k, v in inputs.items()}
            unlabeled = {k: v[n:] for k, v in inputs.items()}
            loss = self.get_loss(logits, y, X=Xi, training=True)
            self._critic_step(labeled, logits.detach().argmax(dim=1) == y)
            (loss + self._generator_loss(unlabeled, logits_u)).backward()
            self.optimizer_.step()
            return {"loss": loss, "y_pred": logits}

    return ConcatCriticLossNet


def _make_data(n, n_unlabeled, size, seed):
    import numpy as np

    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    y = rng.randint(0, 10, size=n)
    X_u = rng.standard_normal((n_unlabeled, 1, size, size)).astype(np.float32)
    return X, y, X_u


def run_one(config, args):
    """Fit one configuration in this process; return its measurements."""
    import torch

    from sklearn_crtcl import ResNetClassifier  # noqa: F401  (import cost before baseline)
    from sklearn_crtcl.nets.crtcl import CriticLossNet

    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, X_u = _make_data(args.n, args.n_unlabeled, args.size, seed=0)
    clock = _PhaseClock() if args.phases else None
    callbacks = [("cpu_timer", _cpu_timer())]
    if clock is not None:
        callbacks.append(("phases", clock.callback()))
    common = dict(module__width=args.width, batch_size=args.batch_size,
                  max_epochs=args.epochs + 1, random_state=0, device=args.device, verbose=0,
                  callbacks=callbacks)
    if config == "ResNetClassifier":
        net, fit_kwargs = ResNetClassifier(**common), {}
    elif config == "CriticLossNet":
        net, fit_kwargs = CriticLossNet(generator_stop_epoch=None, **common), {}
    elif config.startswith("CriticLossNet+X_unlabeled"):
        b_u = args.batch_size // 2 if config.endswith("/2") else args.batch_size
        cls = _concat_net_class() if config.endswith("+concat") else CriticLossNet
        net = cls(generator_stop_epoch=None, unlabeled_batch_size=b_u, **common)
        fit_kwargs = {"X_unlabeled": X_u}
    else:
        raise ValueError(f"unknown configuration {config!r}")

    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    net.fit(X, y, **fit_kwargs)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    durs = [float(d) for d in net.history[:, "dur"]][1:]  # drop the warm-up epoch
    cpu = [float(d) for d in net.history[:, "cpu_dur"]][1:]
    out = {"config": config, "epoch_s": durs, "epoch_cpu_s": cpu, "total_s": total,
           "peak_rss_mib": rss_after / 1024.0,
           "rss_growth_mib": (rss_after - rss_before) / 1024.0}
    if clock is not None:
        out["forward_cpu_s"] = [float(d) for d in net.history[:, "forward_cpu"]][1:]
        out["backward_cpu_s"] = [float(d) for d in net.history[:, "backward_cpu"]][1:]
    if cuda:
        out["cuda_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=2048, help="labeled images")
    parser.add_argument("--n-unlabeled", type=int, default=2048, help="unlabeled images")
    parser.add_argument("--size", type=int, default=28, help="image height and width")
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 base width")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--phases", action="store_true",
                        help="also split each epoch's CPU time into backbone forward, "
                             "backward and the rest (CPU only)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phases and args.device != "cpu":
        parser.error("--phases reads CPU clocks: use it with --device cpu")

    if args._child:
        print(json.dumps(run_one(args._child, args)))
        return 0

    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or CONFIGS[0] not in configs:
        parser.error(f"--configs must include {CONFIGS[0]} and name only {CONFIGS}")
    child_args = list(argv if argv is not None else sys.argv[1:])
    results = {c: [] for c in configs}
    for r in range(args.rounds):
        for config in configs:
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), *child_args, "--_child", config],
                check=True, capture_output=True, text=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            results[config].append(res)
            print(f"round {r + 1}: {config:<28} wall {['%.2f' % d for d in res['epoch_s']]} "
                  f"cpu {['%.2f' % d for d in res['epoch_cpu_s']]}", file=sys.stderr)

    def median(config, key):
        return statistics.median(d for res in results[config] for d in res[key])

    base, base_cpu = median(CONFIGS[0], "epoch_s"), median(CONFIGS[0], "epoch_cpu_s")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
          f"cores, device {args.device}, torch threads {args.threads or 'default'}; ResNet-18 "
          f"width {args.width}, {args.n} images 1x{args.size}x{args.size}, batch "
          f"{args.batch_size}, {args.epochs} timed epochs x {args.rounds} rounds (median)")
    cuda = args.device.startswith("cuda")
    mem_key = "cuda_peak_mib" if cuda else "rss_growth_mib"
    mem_name = "peak CUDA MiB" if cuda else "RSS growth MiB"
    header = (f"{'configuration':<30}{'wall s/ep':>10}{'ratio':>7}{'CPU s/ep':>10}{'ratio':>7}"
              f"{mem_name:>16}{'peak RSS MiB':>14}")
    print(header)
    print("-" * len(header))
    summary = {}
    for config in configs:
        wall, cpu = median(config, "epoch_s"), median(config, "epoch_cpu_s")
        mem = max(res[mem_key] for res in results[config])
        rss = max(res["peak_rss_mib"] for res in results[config])
        summary[config] = {"wall_s_per_epoch": wall, "wall_ratio": wall / base,
                           "cpu_s_per_epoch": cpu, "cpu_ratio": cpu / base_cpu,
                           "memory_mib": mem, "peak_rss_mib": rss}
        print(f"{config:<30}{wall:>10.2f}{wall / base:>7.2f}{cpu:>10.2f}{cpu / base_cpu:>7.2f}"
              f"{mem:>16.1f}{rss:>14.1f}")
    if args.phases:
        print(f"\n{'CPU seconds per epoch':<30}{'forward':>10}{'backward':>10}{'rest':>10}"
              f"{'fwd+bwd share':>15}")
        for config in configs:
            fwd, bwd = median(config, "forward_cpu_s"), median(config, "backward_cpu_s")
            cpu = summary[config]["cpu_s_per_epoch"]
            summary[config].update(forward_cpu_s=fwd, backward_cpu_s=bwd)
            print(f"{config:<30}{fwd:>10.2f}{bwd:>10.2f}{cpu - fwd - bwd:>10.2f}"
                  f"{(fwd + bwd) / cpu:>15.2f}")
        plain = summary[CONFIGS[0]]
        share = plain["forward_cpu_s"] + plain["backward_cpu_s"]
        print(f"\nan unlabeled batch as large as the labeled one repeats the backbone's "
              f"forward and backward pass:\nfloor of the ratio = 1 + {share / base_cpu:.2f} "
              f"(the plain step's fwd+bwd share)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "runs": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
