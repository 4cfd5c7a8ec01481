"""skorch overhead: one epoch of ``ResNetClassifier`` against a hand-written loop.

Both train the same backbone (CIFAR ResNet-18) on the same data with the same
batch size and optimizer (SGD 0.1, momentum 0.9, weight decay 5e-4). The hand
loop slices tensors directly (no DataLoader). Epochs alternate between the two
(after one warm-up epoch each) and the ratio of the median epoch times is
reported. The ``ResNetClassifier`` epoch is timed as a whole
``partial_fit`` call with ``max_epochs=1``, so it includes input validation
and skorch's callbacks.

Usage::

    python benchmarks/bench_resnet.py [--device cpu] [--width 16] [--n 2048] [--rounds 7]
                                      [--threads N]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.backbones import resnet18


def hand_epoch(model, optimizer, X, y, batch_size, device):
    model.train()
    criterion = torch.nn.CrossEntropyLoss()
    perm = torch.randperm(X.shape[0])
    for start in range(0, X.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        xb, yb = X[idx].to(device), y[idx].to(device)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.RandomState(0)
    X = rng.normal(size=(args.n, 1, args.size, args.size)).astype(np.float32)
    y = rng.randint(0, 10, size=args.n)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()

    torch.manual_seed(0)
    model = resnet18(num_classes=10, in_channels=1, width=args.width).to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net = ResNetClassifier(module__width=args.width, max_epochs=1, batch_size=args.batch_size,
                           device=args.device, random_state=0, warm_start=True)

    # warm-up (and initialisation of the net)
    hand_epoch(model, optimizer, Xt, yt, args.batch_size, args.device)
    net.fit(X, y)

    wall = {"hand": [], "skorch": []}
    cpu = {"hand": [], "skorch": []}

    def timed(key, fn):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        wall[key].append(time.perf_counter() - w0)
        cpu[key].append(time.process_time() - c0)

    for _ in range(args.rounds):
        timed("hand", lambda: hand_epoch(model, optimizer, Xt, yt, args.batch_size,
                                         args.device))
        timed("skorch", lambda: net.partial_fit(X, y))

    print(f"device={args.device} threads={torch.get_num_threads()} width={args.width} "
          f"n={args.n} images 1x{args.size}x{args.size} batch={args.batch_size} "
          f"rounds={args.rounds}")
    print(f"{'loop':<22}{'wall s/epoch':>14}{'min':>9}{'max':>9}{'CPU s/epoch':>14}")
    for name, key in (("hand-written PyTorch", "hand"), ("ResNetClassifier", "skorch")):
        print(f"{name:<22}{statistics.median(wall[key]):>14.3f}{min(wall[key]):>9.3f}"
              f"{max(wall[key]):>9.3f}{statistics.median(cpu[key]):>14.3f}")
    for label, d in (("wall", wall), ("CPU", cpu)):
        ratio = statistics.median(d["skorch"]) / statistics.median(d["hand"])
        print(f"ratio ResNetClassifier / hand-written ({label} time, medians): {ratio:.3f}")


if __name__ == "__main__":
    main()
