"""Throughput and memory of the query strategies of ``sklearn_crtcl.query``.

Measures, in one run and on the same pool of random ``3x32x32`` images:

* scoring throughput (samples/s) of ``critic_sampling``,
  ``loss_prediction_sampling`` and ``cod_sampling``, each next to
  ``predict_proba`` of the same estimator (same ResNet-18 backbone);
* exact per-sample entropy-gradient norms: the batched computation of
  ``gradient_norm_sampling`` against a naive loop of one backward pass per
  sample (and the largest relative difference between the two);
* querying a memory-mapped pool of 100,000 ``3x32x32`` float32 images
  (1.2 GB on disk): growth of anonymous resident memory (``RssAnon`` in
  ``/proc/self/status``, which leaves out the file's own pages) during the
  query, sampled every 5 ms in a thread, after giving freed heap memory back
  to the OS (a copy of a quarter of the pool is measured too, as a control).

With a GPU (``torch.cuda.is_available()``) the gradient-norm comparison is
repeated on it. Run ``python benchmarks/bench_query.py --help`` for the
options; the defaults suit a 2-core CPU machine (about 10 minutes, most of it
scoring the whole memory-mapped pool; ``--skip-whole-pool`` or
``--skip-memmap`` shorten it). Throughputs use the best wall-clock time of
``--repeats`` runs; ratios are medians over back-to-back pairs, by wall clock
and by CPU time (less sensitive to other processes on a shared machine).
"""

import argparse
import ctypes
import gc
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import torch

import sklearn_crtcl._modal_compat  # noqa: F401
from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.nets.crtcl import CriticLossNet
from sklearn_crtcl.nets.lossnet import LossPredictionNet
from sklearn_crtcl.query import (cod_sampling, critic_sampling, gradient_norm_sampling,
                                 loss_prediction_sampling, random_sampling)
from sklearn_crtcl.query.gradnorm import entropy_gradient_norm


def rss_anon_kb():
    """``RssAnon`` of this process in kB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("RssAnon not found in /proc/self/status")


def release_free_heap():
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so that a
    query cannot hide its allocations in memory freed by earlier work."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass


class PeakRss:
    """Sample ``RssAnon`` in a thread; ``growth_mb`` = peak during - before."""

    def __init__(self, interval=0.005):
        self.interval = interval

    def __enter__(self):
        gc.collect()
        release_free_heap()
        self.before = rss_anon_kb()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon_kb())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_kb())

    @property
    def growth_mb(self):
        return (self.peak - self.before) / 1024


def fitted_nets(width, device, seed=0, n_train=256):
    """The three estimators, fitted for one epoch on random labelled images."""
    rng = np.random.RandomState(seed)
    X = rng.rand(n_train, 3, 32, 32).astype(np.float32)
    y = np.arange(n_train) % 10
    common = dict(module__width=width, max_epochs=1, device=device, random_state=seed,
                  batch_size=128)
    return {
        "plain": ResNetClassifier(**common).fit(X, y),
        "critic": CriticLossNet(**common).fit(X, y),
        "lossnet": LossPredictionNet(**common).fit(X, y),
    }


class Timer:
    """Wall-clock and CPU times of the calls it measured.

    On a shared machine other processes slow the wall clock down more than
    the process's own CPU time (with one torch thread the latter is the work
    done), so both are kept.
    """

    def __init__(self):
        self.walls = []
        self.cpus = []

    def __call__(self, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.walls.append(time.perf_counter() - w)
        self.cpus.append(time.process_time() - c)
        return out

    @property
    def wall(self):
        """Best wall-clock time."""
        return min(self.walls)


def paired_ratio(base, other, cpu=False):
    """Median over repeats of ``time(base) / time(other)``, each pair measured
    back to back (so a change of machine load affects both alike)."""
    x, y = (base.cpus, other.cpus) if cpu else (base.walls, other.walls)
    return float(np.median(np.asarray(x) / np.asarray(y)))


def naive_grad_norms(module, X, device):
    """One backward pass per sample: the reference loop."""
    module.eval()
    out = []
    for x in X:
        module.zero_grad()
        logp = torch.log_softmax(module(torch.as_tensor(x[None]).to(device)), dim=1)
        (-(logp.exp() * logp).sum()).backward()
        out.append(sum(p.grad.norm() for p in module.parameters() if p.grad is not None)
                   .item())
    module.zero_grad()
    return np.asarray(out)


def throughput_section(nets, pool, repeats):
    """Per strategy: (name, predict_proba timer, strategy timer)."""
    pairs = [
        ("critic_sampling", nets["critic"], critic_sampling),
        ("loss_prediction_sampling", nets["lossnet"], loss_prediction_sampling),
        ("cod_sampling", nets["plain"], cod_sampling),
    ]
    for _, est, strategy in pairs:  # warm-up
        est.predict_proba(pool[:256])
        strategy(est, pool[:256], n_instances=10)
    timers = {name: (Timer(), Timer()) for name, _, _ in pairs}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, est, strategy in pairs:
            timers[name][0](lambda: est.predict_proba(pool))
            timers[name][1](lambda: strategy(est, pool, n_instances=100))
    return [(name, *timers[name]) for name, _, _ in pairs]


def gradnorm_section(est, pool, n_naive, n_batched, repeats, device):
    """Timers of the naive loop and of the batched computation, max. rel. difference."""
    module = est.module_
    X = pool[:max(n_naive, n_batched)]
    naive_grad_norms(module, X[:4], device)  # warm-up both
    entropy_gradient_norm(est, X[:32])
    naive, batched = Timer(), Timer()
    for _ in range(repeats):
        naive(lambda: naive_grad_norms(module, X[:n_naive], device))
        batched(lambda: gradient_norm_sampling(est, X[:n_batched], n_instances=10))
    ref = naive_grad_norms(module, X[:n_naive], device)
    got = entropy_gradient_norm(est, X[:n_naive])
    rel = float(np.max(np.abs(got - ref) / ref))
    return naive, batched, rel


def memmap_section(args, device):
    shape = (args.memmap_n, 3, 32, 32)
    nbytes = int(np.prod(shape)) * 4
    tmpdir = tempfile.mkdtemp(prefix="bench_query_", dir=args.tmpdir)
    try:
        free = shutil.disk_usage(tmpdir).free
        if free < nbytes * 1.2:
            print(f"skipping the memory-mapped pool: {free / 2**30:.1f} GiB free in {tmpdir}, "
                  f"{nbytes / 2**30:.2f} GiB needed")
            return []
        path = os.path.join(tmpdir, "pool.npy")
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        rng = np.random.RandomState(0)
        for start in range(0, shape[0], 5000):  # write in chunks: no big array in memory
            stop = min(start + 5000, shape[0])
            mm[start:stop] = rng.rand(stop - start, *shape[1:]).astype(np.float32)
        mm.flush()
        del mm
        pool = np.load(path, mmap_mode="r")
        nets = fitted_nets(args.memmap_width, device)
        queries = [
            ("reference: predict_proba(pool[:10000])", lambda: np.arange(
                len(nets["plain"].predict_proba(pool[:10000])))),
            ("random_sampling, whole pool", lambda: random_sampling(
                nets["plain"], pool, n_instances=1000, random_state=0)),
            ("cod_sampling, subset_size=10000", lambda: cod_sampling(
                nets["plain"], pool, n_instances=1000, subset_size=10000, random_state=0)),
            ("critic_sampling, subset_size=10000", lambda: critic_sampling(
                nets["critic"], pool, n_instances=1000, subset_size=10000, random_state=0)),
            ("gradient_norm_sampling, subset_size=2000", lambda: gradient_norm_sampling(
                nets["plain"], pool, n_instances=100, subset_size=2000, random_state=0)),
        ]
        # control: a real copy of a quarter of the pool, to show what the meter sees
        queries.append(("control: np.array(pool[:25000]) (a copy)",
                        lambda: np.arange(len(np.array(pool[:25000])))))
        if not args.skip_whole_pool:
            queries.append(("cod_sampling, whole pool", lambda: cod_sampling(
                nets["plain"], pool, n_instances=1000)))
        rows = []
        for name, fn in queries:
            with PeakRss() as rss:
                t = time.perf_counter()
                idx = fn()
                elapsed = time.perf_counter() - t
            assert len(np.unique(idx)) == len(idx)
            rows.append((name, elapsed, rss.growth_mb))
            print(f"  {name:45s} {elapsed:7.1f} s   RssAnon before {rss.before / 1024:6.0f} MB, "
                  f"growth {rss.growth_mb:7.1f} MB", flush=True)
        return rows
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 width (64 = paper)")
    parser.add_argument("--pool", type=int, default=4096, help="pool size for throughput")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest for small nets on a shared machine)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--naive", type=int, default=128, help="samples in the naive loop")
    parser.add_argument("--batched", type=int, default=512,
                        help="samples for the batched gradient norms")
    parser.add_argument("--gradnorm-threads", default="1",
                        help="CPU thread counts for the gradient-norm comparison")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memmap-n", type=int, default=100_000)
    parser.add_argument("--memmap-width", type=int, default=8)
    parser.add_argument("--skip-memmap", action="store_true")
    parser.add_argument("--skip-whole-pool", action="store_true",
                        help="skip COD on the whole 100,000-image memory map")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args(argv)
    args.gradnorm_threads = [int(t) for t in str(args.gradnorm_threads).split(",") if t]

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, device {args.device}, "
          f"ResNet-18 width {args.width}, pool {args.pool} x 3x32x32")
    pool = np.random.RandomState(1).rand(args.pool, 3, 32, 32).astype(np.float32)
    nets = fitted_nets(args.width, args.device)

    print("\nScoring throughput on the same pool: samples/s (best wall-clock time) and "
          "throughput ratio strategy / predict_proba (median over back-to-back pairs)")
    print(f"  {'strategy':26s} {'predict_proba':>14s} {'strategy':>9s} {'ratio wall':>11s} "
          f"{'ratio CPU':>10s}")
    n = len(pool)
    for name, pp, q in throughput_section(nets, pool, args.repeats):
        print(f"  {name:26s} {n / pp.wall:14.0f} {n / q.wall:9.0f} "
              f"{paired_ratio(pp, q):11.2f} {paired_ratio(pp, q, cpu=True):10.2f}")

    print(f"\nEntropy-gradient norms: samples/s, naive loop on {args.naive} samples, batched on "
          f"{args.batched}; ratio batched / naive (median over back-to-back pairs)")
    devices = [args.device]
    if args.device == "cpu" and torch.cuda.is_available():
        devices.append("cuda")
    for device in devices:
        est = nets["plain"] if device == args.device else fitted_nets(args.width, device)["plain"]
        thread_counts = args.gradnorm_threads if device == "cpu" else [args.threads]
        for threads in thread_counts:
            torch.set_num_threads(threads)
            naive, batched, rel = gradnorm_section(est, pool, args.naive, args.batched,
                                                   args.repeats, device)
            # throughput ratio = (n_batched / t_batched) / (n_naive / t_naive)
            scale = args.batched / args.naive
            print(f"  {device}, {threads} thread(s): naive {args.naive / naive.wall:7.1f}   "
                  f"batched {args.batched / batched.wall:7.1f}   ratio wall "
                  f"{scale * paired_ratio(naive, batched):5.2f}   ratio CPU "
                  f"{scale * paired_ratio(naive, batched, cpu=True):5.2f}   "
                  f"max. rel. difference {rel:.1e}")
        torch.set_num_threads(args.threads)
    if not torch.cuda.is_available():
        print("  cuda: not available")

    if not args.skip_memmap:
        print(f"\nMemory-mapped pool: {args.memmap_n} x 3x32x32 float32 "
              f"({args.memmap_n * 3 * 32 * 32 * 4 / 1e9:.2f} GB), ResNet-18 width "
              f"{args.memmap_width}")
        memmap_section(args, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
