"""How good is CrtCl's critic, and how much does its generator loss move the classifier?

For each critic setting (clip value, loss reduction, critic steps per classifier
step, critic learning rate), trains a :class:`~sklearn_crtcl.CriticLossNet` on a
random labeled subset of Fashion-MNIST (or digits) with unlabeled images, then
measures on held-out images:

* ``acc``: test accuracy; ``ece``: expected calibration error (15 bins);
* ``critic_auroc``: AUROC of the critic's score for "the prediction is correct"
  (0.5 = no better than chance), next to ``entropy_auroc``, the same for the
  negative predictive entropy of the same model (a label-free baseline);
* ``class_auroc``: the AUROC of the best score that depends on the predicted
  class only (the mean critic score of each predicted class): how much of
  the critic's ranking the predicted class alone explains;
* ``grad_ratio``: on one batch of held-out images at the end of training,
  ``||d L_G / d logits|| / ||d L_CE / d logits||``, the size of the generator
  loss's gradient on the logits relative to cross-entropy's (both as the
  training step computes them, with the trained critic);
* ``at_clip``: the fraction of the critic's weights at the clip bound.

``gamma=0`` rows train the same classifier as plain cross-entropy (the critic
still learns), so comparing them with ``gamma>0`` rows shows what the
generator loss changes. One row per setting and seed; a summary with the mean
over seeds is printed at the end and written as CSV with ``--out``.

Usage::

    python benchmarks/probe_critic.py --dataset fashion_mnist --seeds 0 1 --out probe.csv
"""

import argparse
import csv
import itertools
import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sklearn_crtcl import CriticLossNet
from sklearn_crtcl.backbones import forward_taps
from sklearn_crtcl.metrics import expected_calibration_error

#: (name, CriticLossNet parameters) of the settings compared.
SETTINGS = [
    ("ce (gamma=0)", dict(gamma=0.0)),
    ("mean, clip 0.01", dict(loss_reduction="mean", clip_value=0.01)),
    ("sum, clip 0.01", dict(loss_reduction="sum", clip_value=0.01)),
    ("sum, clip 0.05", dict(loss_reduction="sum", clip_value=0.05)),
    ("sum, clip 0.1", dict(loss_reduction="sum", clip_value=0.1)),
    ("sum, clip 0.01, 5 critic steps", dict(loss_reduction="sum", clip_value=0.01, n_critic=5)),
    ("sum, clip 0.1, 5 critic steps", dict(loss_reduction="sum", clip_value=0.1, n_critic=5)),
]


def load(dataset, n_labeled, n_unlabeled, n_test, seed):
    from sklearn_crtcl.datasets import load_dataset
    X_tr, X_te, y_tr, y_te = load_dataset(dataset)
    rng = np.random.RandomState(seed)
    idx = rng.permutation(len(X_tr))
    lab, unl = idx[:n_labeled], idx[n_labeled:n_labeled + n_unlabeled]
    te = rng.permutation(len(X_te))[:n_test]
    return X_tr[lab], y_tr[lab], X_tr[unl], X_te[te], y_te[te]


def entropy_auroc(proba, correct):
    ent = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(1)
    return roc_auc_score(correct, -ent)


def class_auroc(pred, scores, correct):
    """AUROC of a score that only knows the predicted class: each class's mean score."""
    means = {c: scores[pred == c].mean() for c in np.unique(pred)}
    return roc_auc_score(correct, np.array([means[c] for c in pred]))


def grad_ratio(net, X, y):
    """||dL_G/dlogits|| / ||dL_CE/dlogits|| on one batch, as in a training step."""
    x = torch.as_tensor(np.ascontiguousarray(X[:net.batch_size], dtype=np.float32))
    yt = torch.as_tensor(net._encode_y(y[:net.batch_size], len(x), reset=False)[0])
    net.module_.train()
    taps = forward_taps(net.module_, x)
    logits = taps["logits"].detach().requires_grad_(True)
    ce = net.get_loss(logits, yt, training=True)
    g_ce, = torch.autograd.grad(ce, logits)
    gamma = net.gamma or 0.04  # gamma=0 rows: the gradient the default gamma would give
    old = net.gamma
    net.gamma = gamma
    try:
        g_loss = net._generator_loss(net._critic_inputs(taps), logits)
    finally:
        net.gamma = old
    g_g, = torch.autograd.grad(g_loss, logits)
    net.module_.eval()
    return float(g_g.norm() / g_ce.norm())


def run(args):
    rows = []
    names = [n for n, _ in SETTINGS if not args.settings or n in args.settings]
    for (name, params), seed in itertools.product(
            [s for s in SETTINGS if s[0] in names], args.seeds):
        X, y, X_u, X_te, y_te = load(args.dataset, args.n_labeled, args.n_unlabeled,
                                     args.n_test, seed)
        t0 = time.perf_counter()
        net = CriticLossNet(module__width=args.width, max_epochs=args.epochs,
                            batch_size=args.batch_size, augment=args.augment,
                            random_state=seed, device="cpu", **params)
        net.fit(X, y, X_unlabeled=X_u)
        proba = net.predict_proba(X_te)
        pred = net.classes_[proba.argmax(1)]
        correct = pred == y_te
        scores = net.predict_correctness(X_te)
        clip = net.clip_value
        w = torch.cat([p.detach().reshape(-1) for p in net.critic_.parameters()])
        row = dict(setting=name, seed=seed, acc=correct.mean(),
                   ece=expected_calibration_error(y_te, proba, n_bins=15),
                   critic_auroc=roc_auc_score(correct, scores),
                   entropy_auroc=entropy_auroc(proba, correct),
                   class_auroc=class_auroc(pred, scores, correct),
                   grad_ratio=grad_ratio(net, X_te, y_te),
                   at_clip=float((w.abs() >= 0.999 * clip).float().mean()) if clip else 0.0,
                   train_loss=net.history[-1, "train_loss"],
                   seconds=time.perf_counter() - t0)
        rows.append(row)
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)
    return rows


def summarize(rows):
    keys = ["acc", "ece", "critic_auroc", "entropy_auroc", "class_auroc", "grad_ratio",
            "at_clip", "train_loss"]
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        sel = [r for r in rows if r["setting"] == name]
        out.append({"setting": name, "n": len(sel),
                    **{k: float(np.mean([r[k] for r in sel])) for k in keys}})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--n-labeled", type=int, default=1000)
    p.add_argument("--n-unlabeled", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--augment", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--settings", nargs="*", help="names of SETTINGS to run (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="CSV file for the per-run rows")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args)
    summary = summarize(rows)
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print("\n| setting | n | " + " | ".join(k for k in summary[0] if k not in ("setting", "n"))
          + " |")
    for s in summary:
        print(f"| {s['setting']} | {s['n']} | "
              + " | ".join(f"{v:.3g}" for k, v in s.items() if k not in ("setting", "n")) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
