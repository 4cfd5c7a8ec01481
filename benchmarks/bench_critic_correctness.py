"""Does a critic know when the classifier is wrong? Critics against the classifier's own confidence.

For each data set and seed, trains the nets below on a random labeled subset
(with the rest of a random subset as unlabeled images for the semi-supervised
ones) and measures, on a held-out test split, how well each score ranks the
right predictions above the wrong ones:

* ``auroc``: AUROC of the score for "the prediction is correct" (0.5 = chance);
* ``aupr_err``: average precision of the errors ranked by lowest score;
* ``ece_pc``: calibration error of P(correct) (15 equal-width bins), for the
  scores that are probabilities (the probabilistic critics, the maximum
  softmax probability, its temperature-scaled version);
* ``acc`` and ``ece`` of the classifier itself.

Models and their scores:

* ``ce``: a cross-entropy :class:`~sklearn_crtcl.ResNetClassifier`; scores
  ``max_proba`` (maximum softmax probability), ``neg_entropy``, ``margin``
  (top-1 minus top-2 probability), ``temp_max_proba`` (maximum probability
  after temperature scaling on the held-out images,
  ``CalibratedClassifierCV(FrozenEstimator(net), method="temperature")``),
  and ``posthoc_*`` (:class:`~sklearn_crtcl.CorrectnessCritic` fitted on the
  held-out images, with its defaults, with ``critic_loss="tcp"``, with
  CrtCl's taps, without the confidence skip:
  the only scores that use labels beyond the labeled set, with
  ``temp_max_proba``);
* ``ce-views``: the same cross-entropy net (same seed, same weights), its
  ``max_proba`` and the critics of :data:`VIEW_CRITICS`: ``posthoc_bce`` and
  ``posthoc_tcp`` again (the baselines on this run's net), and those that also
  read the net's predictions on test-time views (``CorrectnessCritic(views=...)``:
  ``*_views`` the flip and the four one-pixel shifts, ``*_flip`` the flip);
* ``ce-probe``: the same net again, its ``max_proba`` and ``temp_max_proba``,
  ``posthoc_tcp`` and the class probes of :data:`PROBE_CRITICS`
  (``CorrectnessCritic(critic_loss="probe")``: its defaults, with the flipped
  images' taps, with the head's taps), with each probe's own accuracy and
  chosen ``C``;
* ``ce-split0.2``: with no labels beyond the labeled set: a cross-entropy net
  on 80 % of it (a random share, seeded), its ``max_proba``, and
  ``posthoc_tcp``, ``posthoc_probe`` and ``posthoc_probe_flip`` fitted on the
  other 20 %;
* ``ce-ensemble``, ``ce-crossfit``, ...: with no labels beyond the labeled
  set: the net of ``ce-views`` (same seed, same weights), its ``max_proba``,
  and :class:`~sklearn_crtcl.EnsembleCritic` fitted on the labeled set itself
  (:data:`ENSEMBLE_CRITICS`): ``ensemble`` five copies of the net trained on
  it from other seeds, ``ensemble10`` ten (model ``ce-ensemble10``),
  ``ensemble20`` twenty (``ce-ensemble20``);
  ``crossfit`` five copies cross-fitted on its folds and temperature-scaled
  on the fold each did not see, ``crossfit_raw`` without the temperature,
  ``crossfit_2x5`` ten (the folds drawn twice, model ``ce-crossfit-2x5``);
* ``ll4al``: :class:`~sklearn_crtcl.LossPredictionNet`, score ``neg_pred_loss``;
* ``crtcl-*``: :class:`~sklearn_crtcl.CriticLossNet` with ``X_unlabeled``,
  score ``critic`` (``predict_correctness``), for the critic settings of
  :data:`VARIANTS`; each also reports its own ``max_proba``.

``--timing`` adds an interleaved per-epoch timing of the critic objectives
(``--timing-reps`` rounds, each fitting every objective once in turn, so the
shared CPU's drift hits them alike).

Every finished (data set, seed, model) is stored at once in ``--out``'s JSON
state; ``--resume`` skips them, so an interrupted run continues where it
stopped. The summary (mean and standard deviation over seeds) is printed as a
Markdown table and written beside the state.

``--models`` runs only the models named (e.g. ``--models ce-views`` with
``--resume`` adds them to a stored state and keeps its other rows).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_critic_correctness.py \\
        --datasets digits fashion_mnist --seeds 0 1 2 --timing \\
        --out docs/_static/results/critic_correctness --resume
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator

from sklearn_crtcl import (CorrectnessCritic, CriticLossNet, EnsembleCritic, LossPredictionNet,
                           ResNetClassifier)
from sklearn_crtcl.nets.crtcl import CRITIC_TAPS
from sklearn_crtcl.experiments.report import _atomic_write_bytes, _atomic_write_json
from sklearn_crtcl.metrics import (correctness_auroc, correctness_calibration_error,
                                   error_average_precision, expected_calibration_error)

#: (name, CriticLossNet parameters) of the critic settings compared. The
#: probabilistic critics learn a correction to the classifier's confidence
#: (critic__confidence_skip="auto") unless the name says "noskip".
_S4P = ("stage4", "proba", "proba_sorted")
VARIANTS = [
    ("crtcl-wasserstein", dict()),  # the paper's critic, package defaults
    ("crtcl-bce-batches", dict(critic_loss="bce", critic_split=0.0)),
    ("crtcl-bce-split0.1", dict(critic_loss="bce", critic_split=0.1)),
    ("crtcl-bce-split0.2", dict(critic_loss="bce", critic_split=0.2)),
    ("crtcl-tcp-split0.2", dict(critic_loss="tcp", critic_split=0.2)),
    ("crtcl-bce-split0.2-noskip", dict(critic_loss="bce", critic_split=0.2,
                                       critic__confidence_skip=False)),
    ("crtcl-bce-split0.2-5steps", dict(critic_loss="bce", critic_split=0.2, n_critic=5)),
    ("crtcl-bce-split0.2-s4p", dict(critic_loss="bce", critic_split=0.2, critic__taps=_S4P)),
    ("crtcl-bce-split0.2-gamma0", dict(critic_loss="bce", critic_split=0.2, gamma=0.0)),
    ("crtcl-bce-split0.2-gamma0.2", dict(critic_loss="bce", critic_split=0.2, gamma=0.2)),
    ("crtcl-bce-batches-gamma0", dict(critic_loss="bce", critic_split=0.0, gamma=0.0)),
]

#: (score name, CorrectnessCritic parameters) of the critics of model "ce".
CE_CRITICS = [
    ("posthoc_bce", dict()),
    ("posthoc_tcp", dict(critic_loss="tcp")),
    ("posthoc_bce_crtcl_taps", dict(taps=CRITIC_TAPS)),
    ("posthoc_bce_noskip", dict(confidence_skip=False)),
]

#: (score name, CorrectnessCritic parameters) of the critics that read the net's
#: predictions on test-time views (model "ce-views").
VIEW_CRITICS = [
    ("posthoc_bce", dict()),  # without views, on the same net
    ("posthoc_tcp", dict(critic_loss="tcp")),
    ("posthoc_bce_views", dict(views=("flip", "shift"))),
    ("posthoc_tcp_views", dict(critic_loss="tcp", views=("flip", "shift"))),
    ("posthoc_bce_flip", dict(views=("flip",))),
    ("posthoc_tcp_flip", dict(critic_loss="tcp", views=("flip",))),
]

#: (score name, CorrectnessCritic parameters) of the class probes against the head
#: (model "ce-probe", the net of "ce-views").
PROBE_CRITICS = [
    ("posthoc_tcp", dict(critic_loss="tcp")),  # the best head, on the same net
    ("posthoc_probe", dict(critic_loss="probe")),  # its defaults
    ("posthoc_probe_flip", dict(critic_loss="probe", views=("flip",))),
    ("posthoc_probe_s4p", dict(critic_loss="probe", taps=_S4P)),  # the head's taps
]

#: The critics of model "ce-split0.2", on a held-out share of the labeled set.
SPLIT_CRITICS = [c for c in PROBE_CRITICS if c[0] != "posthoc_probe_s4p"]

#: model -> (score name, EnsembleCritic parameters) of the models whose critics are
#: trained on the labeled set.
ENSEMBLE_CRITICS = {
    "ce-ensemble": [("ensemble", dict())],
    "ce-ensemble10": [("ensemble10", dict(n_copies=10))],
    "ce-ensemble20": [("ensemble20", dict(n_copies=20))],
    "ce-crossfit": [("crossfit", dict(cv=5, calibration="temperature")),
                    ("crossfit_raw", dict(cv=5))],
    "ce-crossfit-2x5": [("crossfit_2x5", dict(cv=5, n_copies=10, calibration="temperature"))],
}

#: Data set sizes: labeled, unlabeled, held-out (post-hoc critic and temperature), test,
#: and the training settings.
SIZES = {
    "digits": dict(n_labeled=300, n_unlabeled=600, n_heldout=400, n_test=449, epochs=30,
                   width=8, augment=None),
    "fashion_mnist": dict(n_labeled=1000, n_unlabeled=4000, n_heldout=2000, n_test=2000,
                          epochs=15, width=8, augment="flip"),
}


def load(dataset, sizes, seed):
    """Labeled, unlabeled, held-out and test images of one seed."""
    from sklearn_crtcl.datasets import load_dataset
    X_tr, X_te, y_tr, y_te = load_dataset(dataset)
    rng = np.random.RandomState(seed)
    idx = rng.permutation(len(X_tr))
    a, b = sizes["n_labeled"], sizes["n_labeled"] + sizes["n_unlabeled"]
    c = b + sizes["n_heldout"]
    if c > len(X_tr):
        raise ValueError(f"{dataset}: {c} training images requested, {len(X_tr)} available")
    te = rng.permutation(len(X_te))[:sizes["n_test"]]
    return dict(labeled=(X_tr[idx[:a]], y_tr[idx[:a]]), unlabeled=X_tr[idx[a:b]],
                heldout=(X_tr[idx[b:c]], y_tr[idx[b:c]]), test=(X_te[te], y_te[te]))


def _common(sizes, seed):
    return dict(module__width=sizes["width"], max_epochs=sizes["epochs"], batch_size=64,
                augment=sizes["augment"], random_state=seed, device="cpu")


def _rows(model, proba, y, scores, seconds, extra=None):
    """One row per score of a model."""
    classes = np.arange(proba.shape[1])
    correct = classes[proba.argmax(1)] == y
    base = dict(model=model, acc=float(correct.mean()),
                ece=float(expected_calibration_error(y, proba, n_bins=15)),
                fit_seconds=seconds, **(extra or {}))
    out = []
    for name, (s, is_proba) in scores.items():
        out.append(dict(base, score=name, auroc=correctness_auroc(correct, s),
                        aupr_err=error_average_precision(correct, s),
                        ece_pc=(correctness_calibration_error(correct, s) if is_proba
                                else float("nan"))))
    return out


def _confidence_scores(proba):
    srt = np.sort(proba, axis=1)[:, ::-1]
    ent = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(1)
    return {"max_proba": (srt[:, 0], True), "neg_entropy": (-ent, False),
            "margin": (srt[:, 0] - srt[:, 1], False)}


def _temp_max_proba(net, heldout, X_te):
    """The maximum probability after temperature scaling on the held-out images."""
    from sklearn.calibration import CalibratedClassifierCV
    cal = CalibratedClassifierCV(FrozenEstimator(net), method="temperature").fit(*heldout)
    return cal.predict_proba(X_te).max(1), True


def _posthoc(net, critics, X_fit, y_fit, X_te, seed):
    """The scores on ``X_te`` of the CorrectnessCritics ``(name, params)`` fitted on
    ``(X_fit, y_fit)``, and the fitted critics by name."""
    scores, fitted = {}, {}
    for name, params in critics:
        fitted[name] = CorrectnessCritic(FrozenEstimator(net), random_state=seed,
                                         **params).fit(X_fit, y_fit)
        scores[name] = (fitted[name].predict_correctness(X_te), True)
    return scores, fitted


def run_model(model, data, sizes, seed):
    """Train one model of one seed; return its rows."""
    X, y = data["labeled"]
    X_te, y_te = data["test"]
    common = _common(sizes, seed)
    t0 = time.perf_counter()
    if model == "ce":
        net = ResNetClassifier(**common).fit(X, y)
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = _confidence_scores(proba)
        scores["temp_max_proba"] = _temp_max_proba(net, data["heldout"], X_te)
        scores.update(_posthoc(net, CE_CRITICS, *data["heldout"], X_te, seed)[0])
        return _rows(model, proba, y_te, scores, seconds)
    if model == "ce-views":
        # the net of "ce" (same seed and data), its maximum probability and critics
        # without views beside the critics that read its test-time views
        net = ResNetClassifier(**common).fit(X, y)
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = {"max_proba": _confidence_scores(proba)["max_proba"]}
        scores.update(_posthoc(net, VIEW_CRITICS, *data["heldout"], X_te, seed)[0])
        return _rows(model, proba, y_te, scores, seconds)
    if model == "ce-probe":
        # the net of "ce-views" again: its maximum probability (temperature-scaled
        # too), the TCP head and the class probes, and each probe's own accuracy
        net = ResNetClassifier(**common).fit(X, y)
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = {"max_proba": _confidence_scores(proba)["max_proba"]}
        scores["temp_max_proba"] = _temp_max_proba(net, data["heldout"], X_te)
        critic_scores, critics = _posthoc(net, PROBE_CRITICS, *data["heldout"], X_te, seed)
        scores.update(critic_scores)
        extra = {}
        for name, critic in critics.items():
            if critic.critic_loss == "probe":
                feats, _ = critic._features(net, X_te)
                guess = critic.critic_.predict(critic._probe_inputs(feats))
                extra[f"{name}_acc"] = float(np.mean(net.classes_[guess] == y_te))
                extra[f"{name}_C"] = float(critic.critic_.C)
        return _rows(model, proba, y_te, scores, seconds, extra=extra)
    if model == "ce-split0.2":
        # the post-hoc critics on a held-out share of the labeled set itself
        order = np.random.RandomState(seed).permutation(len(y))
        n_held = int(round(0.2 * len(y)))
        held, kept = order[:n_held], order[n_held:]
        net = ResNetClassifier(**common).fit(X[kept], y[kept])
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = {"max_proba": _confidence_scores(proba)["max_proba"]}
        scores.update(_posthoc(net, SPLIT_CRITICS, X[held], y[held], X_te, seed)[0])
        return _rows(model, proba, y_te, scores, seconds)
    if model in ENSEMBLE_CRITICS:
        # the net of "ce-views" again, criticised by copies trained on its own labels
        net = ResNetClassifier(**common).fit(X, y)
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = {"max_proba": _confidence_scores(proba)["max_proba"]}
        extra = {}
        for name, params in ENSEMBLE_CRITICS[model]:
            t1 = time.perf_counter()
            critic = EnsembleCritic(FrozenEstimator(net), random_state=seed, **params).fit(X, y)
            scores[name] = (critic.predict_correctness(X_te), True)
            extra[f"{name}_seconds"] = time.perf_counter() - t1
        return _rows(model, proba, y_te, scores, seconds, extra=extra)
    if model == "ll4al":
        net = LossPredictionNet(**common).fit(X, y)
        seconds = time.perf_counter() - t0
        proba = net.predict_proba(X_te)
        scores = {"neg_pred_loss": (-net.predict_loss(X_te), False),
                  "max_proba": _confidence_scores(proba)["max_proba"]}
        return _rows(model, proba, y_te, scores, seconds)
    params = dict(VARIANTS)[model]
    net = CriticLossNet(**common, **params).fit(X, y, X_unlabeled=data["unlabeled"])
    seconds = time.perf_counter() - t0
    proba = net.predict_proba(X_te)
    scores = {"critic": (net.predict_correctness(X_te), net.critic_loss != "wasserstein"),
              "max_proba": _confidence_scores(proba)["max_proba"]}
    return _rows(model, proba, y_te, scores, seconds,
                 extra={"critic_steps": int(np.nansum(net.history[:, "critic_steps"]))})


def timing(sizes, data, reps, seed=0):
    """Seconds per epoch of each critic objective, fitted in turn ``reps`` times."""
    X, y = data["labeled"]
    settings = [("wasserstein", dict()), ("bce (auto split)", dict(critic_loss="bce")),
                ("tcp (auto split)", dict(critic_loss="tcp")),
                ("bce, no split", dict(critic_loss="bce", critic_split=0.0))]
    common = dict(_common(sizes, seed), max_epochs=3)
    out = {name: [] for name, _ in settings}
    for _ in range(reps):
        for name, params in settings:
            net = CriticLossNet(**common, **params)
            net.fit(X, y, X_unlabeled=data["unlabeled"])
            out[name].append(float(np.median(net.history[:, "dur"])))
    return out


def summarize(rows):
    """Mean and standard deviation over seeds per (dataset, model, score)."""
    keys = ("auroc", "aupr_err", "ece_pc", "acc", "ece")
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"], r["score"]), []).append(r)
    out = []
    for (dataset, model, score), sel in groups.items():
        row = dict(dataset=dataset, model=model, score=score, n=len(sel))
        for k in keys:
            v = np.array([r[k] for r in sel], dtype=float)
            row[k] = float(np.mean(v))
            row[k + "_std"] = float(np.std(v))
        out.append(row)
    return out


def markdown(summary, timings):
    lines = []
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        lines += [f"### {dataset}", "",
                  "| model | score | seeds | AUROC | AUPR-err | ECE of P(correct) | acc | ECE |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in summary:
            if s["dataset"] != dataset:
                continue
            fmt = lambda k: ("-" if np.isnan(s[k]) else f"{s[k]:.3f} ± {s[k + '_std']:.3f}")
            lines.append(f"| {s['model']} | {s['score']} | {s['n']} | {fmt('auroc')} | "
                         f"{fmt('aupr_err')} | {fmt('ece_pc')} | {s['acc']:.3f} | "
                         f"{s['ece']:.3f} |")
        lines.append("")
    for dataset, t in timings.items():
        ref = np.median(t["wasserstein"])
        lines += [f"### seconds per epoch, {dataset} (median of interleaved runs)", "",
                  "| critic | s/epoch | ratio to wasserstein |", "|---|---|---|"]
        for name, v in t.items():
            lines.append(f"| {name} | {np.median(v):.3f} | {np.median(v) / ref:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="*",
                   help="models to run (default: ce, ce-views, ce-probe, ce-split0.2, ce-ensemble, "
                        "ce-ensemble10, ce-ensemble20, ce-crossfit, ce-crossfit-2x5, ll4al "
                        "and every VARIANTS name)")
    p.add_argument("--timing", action="store_true", help="also time the objectives")
    p.add_argument("--timing-reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="critic_correctness",
                   help="path prefix: <out>.json (state), <out>.md (summary)")
    p.add_argument("--resume", action="store_true", help="skip what <out>.json already has")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fixed = ["ce", "ce-views", "ce-probe", "ce-split0.2", *ENSEMBLE_CRITICS, "ll4al"]
    models = args.models or fixed + [n for n, _ in VARIANTS]
    unknown = set(models) - set(fixed) - set(dict(VARIANTS))
    if unknown:
        p.error(f"unknown models {sorted(unknown)}")
    state_path = Path(args.out + ".json")
    state = {"rows": [], "done": [], "timings": {}}
    if args.resume and state_path.exists():
        state = json.loads(state_path.read_text())
    done = {tuple(d) for d in state["done"]}
    for dataset in args.datasets:
        sizes = SIZES[dataset]
        for seed in args.seeds:
            data = None
            for model in models:
                if (dataset, seed, model) in done:
                    continue
                data = data or load(dataset, sizes, seed)
                rows = run_model(model, data, sizes, seed)
                for r in rows:
                    r.update(dataset=dataset, seed=seed)
                    print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in r.items()), flush=True)
                state["rows"] += rows
                state["done"].append([dataset, seed, model])
                done.add((dataset, seed, model))
                _atomic_write_json(state_path, state)
        if args.timing and dataset not in state["timings"]:
            state["timings"][dataset] = timing(sizes, load(dataset, sizes, 0), args.timing_reps)
            _atomic_write_json(state_path, state)
    text = markdown(summarize(state["rows"]), state["timings"])
    _atomic_write_bytes(args.out + ".md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
