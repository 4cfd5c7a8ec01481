"""Resident memory that inference keeps after it returns, on a memory-mapped pool.

Usage::

    python benchmarks/bench_inference_memory.py --n 30000 100000 [--width 8]

For each pool size ``n``, a file of ``n`` random ``3x32x32`` float32 images is
written under ``--tmpdir`` and opened as a read-only memory map; then, each in a
fresh process (so that one measurement's heap does not shape the next), a
``ResNetClassifier`` of ``--width`` fitted for one epoch on 128 of them runs
one of:

``predict_proba``
    the net's ``predict_proba(pool)``;
``entropy``
    :func:`~sklearn_crtcl.query.classifier_entropy` (the strategies' scoring loop);
``plain_loop``
    a hand-written loop: ``torch.no_grad`` forward passes of batches of 128
    whose softmax is copied into one preallocated array.

Printed per run: the growth of anonymous resident memory (``RssAnon`` of
``/proc/self/status``, which leaves out the mapped file's pages) from before
the call to after it returned and its result was freed, and the growth of the
file-backed resident pages (``RssFile``: the memory map's pages that the call
read, shared with the page cache and given back under memory pressure).
A result that does not depend on ``n`` is what "streamed, never copied" means;
the output itself is ``n * 10 * 4`` bytes (4 MB for 100,000 images).
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

MODES = ("predict_proba", "entropy", "plain_loop")


def _rss_mb():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def measure(path, mode, width):
    """Run one ``mode`` on the pool at ``path``; return the memory figures (MB)."""
    import torch

    from sklearn_crtcl import ResNetClassifier
    from sklearn_crtcl.query import classifier_entropy

    torch.set_num_threads(1)
    pool = np.load(path, mmap_mode="r")
    net = ResNetClassifier(module__width=width, max_epochs=1, batch_size=128, random_state=0,
                           device="cpu").fit(np.array(pool[:128]), np.arange(128) % 10)
    gc.collect()
    before = _rss_mb()
    start = time.perf_counter()
    if mode == "predict_proba":
        result = net.predict_proba(pool)
    elif mode == "entropy":
        result = classifier_entropy(net, pool)
    else:
        result = np.empty((len(pool), 10), np.float32)
        net.module_.eval()
        with torch.no_grad():
            for s in range(0, len(pool), 128):
                xb = torch.from_numpy(np.array(pool[s:s + 128], dtype=np.float32))
                result[s:s + 128] = torch.softmax(net.module_(xb), dim=1).numpy()
    elapsed = time.perf_counter() - start
    del result
    gc.collect()
    after = _rss_mb()
    return {"mode": mode, "n": len(pool), "width": width, "time_s": round(elapsed, 1),
            "anon_kept_mb": round(after["RssAnon"] - before["RssAnon"], 1),
            "file_pages_mb": round(after["RssFile"] - before["RssFile"], 1)}


def _write_pool(path, n):
    pool = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 3, 32, 32))
    rng = np.random.RandomState(0)
    for start in range(0, n, 5000):  # in chunks: no big array in memory
        stop = min(start + 5000, n)
        pool[start:stop] = rng.rand(stop - start, 3, 32, 32)
    pool.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[30000, 100000])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--one", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a measurement in its own process
        print(json.dumps(measure(args.one[0], args.one[1], args.width)))
        return 0
    print(f"{'mode':14s} {'n':>7s} {'time (s)':>9s} {'RssAnon kept (MB)':>18s} "
          f"{'RssFile read (MB)':>18s}")
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        for n in args.n:
            path = os.path.join(tmp, f"pool{n}.npy")
            _write_pool(path, n)
            for mode in args.modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--one", path, mode, "--width", str(args.width)],
                    check=True, capture_output=True, text=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                print(f"{mode:14s} {n:7d} {row['time_s']:9.1f} {row['anon_kept_mb']:18.1f} "
                      f"{row['file_pages_mb']:18.1f}", flush=True)
            os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
