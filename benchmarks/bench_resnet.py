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
    args = parser.parse_args(argv)

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

    t_hand, t_skorch = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        hand_epoch(model, optimizer, Xt, yt, args.batch_size, args.device)
        t_hand.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        net.partial_fit(X, y)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t_skorch.append(time.perf_counter() - t0)

    hand, skorch = statistics.median(t_hand), statistics.median(t_skorch)
    print(f"device={args.device} threads={torch.get_num_threads()} width={args.width} "
          f"n={args.n} images 1x{args.size}x{args.size} batch={args.batch_size} "
          f"rounds={args.rounds}")
    print(f"{'loop':<22}{'median s/epoch':>16}{'min':>10}{'max':>10}")
    for name, times in (("hand-written PyTorch", t_hand), ("ResNetClassifier", t_skorch)):
        print(f"{name:<22}{statistics.median(times):>16.3f}{min(times):>10.3f}{max(times):>10.3f}")
    print(f"ratio ResNetClassifier / hand-written: {skorch / hand:.3f}")


if __name__ == "__main__":
    main()
