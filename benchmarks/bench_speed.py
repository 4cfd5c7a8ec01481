"""Speed of the nets and of the query strategies, each against plain PyTorch.

Sections (``--sections``, comma-separated; default ``epochs,query``):

``epochs``
    One training epoch of each net (``ResNetClassifier``, ``CriticLossNet``,
    ``LossPredictionNet``, ``TODNet``) under each speed setting (``fp32``;
    ``amp``: autocast to bfloat16, or float16 on a GPU without bfloat16;
    ``amp_cl``: AMP + channels-last; ``amp_cl_compile``: AMP + channels-last +
    ``torch.compile``) against a hand-written PyTorch loop with the same
    settings that does the same computation per step (same backbone and
    auxiliary modules, optimizers, batch size, shuffling, unlabeled batches,
    precision, memory format and compilation; the package's loss functions
    are reused, the loop is written here). After one warm-up epoch each
    (which includes compilation), the timed epochs of the net and of its hand
    loop alternate (the order switches every round); medians and the ratio
    net / hand are reported. A net's epoch is a whole ``partial_fit`` call
    with ``max_epochs=1`` (input validation and skorch's callbacks included).
``query``
    Pool-scoring throughput of every query strategy of
    ``sklearn_crtcl.query`` against a bare forward pass (``module(x)`` under
    ``torch.no_grad`` in eval mode, same batch size, same pool) of the
    strategy's own estimator, each pair timed back to back; and
    ``predict_proba`` of a ``ResNetClassifier`` for reference.
``gradnorm``
    Exact per-sample entropy-gradient norms: ``gradient_norm_sampling``'s
    batched computation against a loop of one backward pass per sample.
``memmap``
    Growth of anonymous resident memory (``RssAnon``) while querying a
    memory-mapped pool of ``--memmap-n`` images (1.2 GB for 100,000).

(``gradnorm`` and ``memmap`` are the former ``benchmarks/bench_query.py``,
unchanged; ``epochs`` replaces ``benchmarks/bench_resnet.py``.)

With ``--out DIR`` every section writes ``DIR/<section>.csv`` and
``DIR/<section>.md`` (the Markdown records the settings, the machine, the
torch version and the date). Rows for a GPU are written as "not measured"
when the run used none.

Usage::

    python benchmarks/bench_speed.py [--sections epochs,query] [--device cpu] [--threads 1]
        [--width 8] [--n 1024] [--n-unlabeled 1024] [--batch-size 128] [--rounds 7]
        [--nets resnet,crtcl,lossnet,tod] [--settings fp32,amp,amp_cl,amp_cl_compile]
        [--compile-backend inductor] [--pool 4096] [--query-size 100] [--repeats 5]
        [--out DIR]

Run ``python benchmarks/bench_speed.py --help`` for every option.
"""

import argparse
import contextlib
import copy
import csv
import ctypes
import datetime
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

import sklearn_crtcl._modal_compat  # noqa: F401
from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.backbones import forward_taps
from sklearn_crtcl.losses import (consistency_loss, critic_generator_loss, ema_update,
                                  ema_warmup_decay, loss_prediction_ranking_loss,
                                  wasserstein_critic_loss)
from sklearn_crtcl.nets.crtcl import CriticLossNet
from sklearn_crtcl.nets.lossnet import LOSS_HEAD_TAPS, LossPredictionNet
from sklearn_crtcl.nets.tod import TODNet

SECTIONS = ("epochs", "query", "gradnorm", "memmap")
NETS = {"resnet": ResNetClassifier, "crtcl": CriticLossNet, "lossnet": LossPredictionNet,
        "tod": TODNet}
#: Net parameters of the epoch benchmark: the auxiliary losses act in every epoch
#: (CrtCl's generator loss; the ranking loss reaches the backbone), so each
#: ``partial_fit`` epoch does the full work of the method.
NET_PARAMS = {"resnet": {}, "crtcl": {"generator_stop_epoch": None},
              "lossnet": {"epoch_loss": None}, "tod": {}}
SEMI_SUPERVISED = ("crtcl", "tod")
SETTINGS = ("fp32", "amp", "amp_cl", "amp_cl_compile")
NOT_MEASURED = "not measured"


# ---------------------------------------------------------------------------
# output: machine description, CSV and Markdown
# ---------------------------------------------------------------------------

def cpu_model():
    """The CPU model name (``lscpu``, else ``/proc/cpuinfo``, else ``platform``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device):
    """Settings common to every table: machine, device, torch version, date."""
    info = {
        "machine": f"{cpu_model()}, {os.cpu_count()} logical CPUs ({platform.system()} "
                   f"{platform.machine()})",
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["device"] += f" ({torch.cuda.get_device_name(torch.device(device))})"
    commit = git_commit()
    if commit:
        info["commit"] = commit
    return info


def git_commit():
    """Short hash of the checkout this script runs in (``""`` outside git)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        run = dict(cwd=here, capture_output=True, text=True, timeout=10)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
        if commit and subprocess.run(["git", "diff", "--quiet", "HEAD"],
                                     **run).returncode:
            commit += " (with uncommitted changes)"
        return commit
    except (OSError, subprocess.SubprocessError):
        return ""


def write_table(out_dir, name, title, columns, rows, settings, notes=()):
    """Write ``out_dir/name.csv`` (header ``columns``) and ``out_dir/name.md``.

    ``rows`` are dicts keyed by ``columns``; ``settings`` (a dict) and
    ``notes`` (sentences) head the Markdown table. Returns the two paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, f"{name}.csv")
    md_path = os.path.join(out_dir, f"{name}.md")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += [""] + [f"{note}" for note in notes] + ([""] if notes else [])
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    with open(md_path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return csv_path, md_path


def fmt(value, digits=3):
    """A number rounded for a table (strings pass through)."""
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


class Timer:
    """Wall-clock and CPU times of the calls it measured.

    On a shared machine other processes slow the wall clock down more than
    the process's own CPU time (with one torch thread the latter is the work
    done), so both are kept.
    """

    def __init__(self, device="cpu"):
        self.device = str(device)
        self.walls = []
        self.cpus = []

    def __call__(self, fn):
        """Run ``fn()``, record its times, return its result."""
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.walls.append(time.perf_counter() - w)
        self.cpus.append(time.process_time() - c)
        return out

    @property
    def wall(self):
        """Median wall-clock time."""
        return statistics.median(self.walls)

    @property
    def cpu(self):
        """Median CPU time."""
        return statistics.median(self.cpus)

    @property
    def best(self):
        """Best wall-clock time."""
        return min(self.walls)


def paired_ratio(base, other, cpu=False):
    """Median over repeats of ``time(base) / time(other)``, each pair measured
    back to back (so a change of machine load affects both alike)."""
    x, y = (base.cpus, other.cpus) if cpu else (base.walls, other.walls)
    return float(np.median(np.asarray(x) / np.asarray(y)))


# ---------------------------------------------------------------------------
# section "epochs": the nets against hand-written loops
# ---------------------------------------------------------------------------

def amp_dtype_name(device):
    """The AMP precision of ``device``: ``"bf16"`` on the CPU and on GPUs that
    support it, ``"fp16"`` on older GPUs."""
    if str(device).startswith("cuda") and not torch.cuda.is_bf16_supported():
        return "fp16"
    return "bf16"


def speed_setting(name, device):
    """``(precision, channels_last, compile)`` of a named speed setting."""
    amp = amp_dtype_name(device)
    return {"fp32": ("fp32", False, False), "amp": (amp, False, False),
            "amp_cl": (amp, True, False), "amp_cl_compile": (amp, True, True)}[name]


def make_net(kind, args, precision="fp32", channels_last=False, compile_=False):
    """An unfitted net of ``kind`` with the benchmark's settings (one epoch per fit)."""
    params = dict(module__width=args.width, max_epochs=1, batch_size=args.batch_size,
                  lr_milestones=None, device=args.device, random_state=0,
                  input_shape=(args.channels, args.size, args.size), classes=np.arange(10),
                  precision=precision, channels_last=channels_last, compile=compile_,
                  **NET_PARAMS[kind])
    if compile_ and args.compile_backend:
        params["compile__backend"] = args.compile_backend
    return NETS[kind](**params)


class HandLoop:
    """A hand-written PyTorch training loop doing per step what the net ``kind`` does.

    The modules are copies of those of an initialised (uncompiled, float32)
    net of the same kind; optimizers, losses and the order of the operations
    follow the net's training step:

    * ``resnet``: cross-entropy, one SGD step;
    * ``crtcl``: one forward of the labeled batch (stage outputs), a critic
      step (Wasserstein loss, AdamW, weight clipping) on the detached critic
      inputs, backward of the cross-entropy, a forward of a random unlabeled
      batch, the generator loss through the frozen critic, backward, one SGD
      step;
    * ``lossnet``: per-sample cross-entropy, the loss head on the four stage
      outputs (attached), cross-entropy + ranking loss, one SGD step of the
      backbone and one of the head;
    * ``tod``: student (stage outputs and auxiliary head) and teacher (no
      grad, training mode) on the labeled batch and on a random unlabeled
      batch, cross-entropy + 0.05 x consistency terms, one SGD step, one EMA
      update of the teacher.
    """

    def __init__(self, kind, args, X, y, X_unlabeled, precision, channels_last, compile_):
        self.kind = kind
        self.device = torch.device(args.device)
        self.batch_size = args.batch_size
        ref = make_net(kind, args)  # float32, default layout, uncompiled
        torch.manual_seed(1)
        ref.initialize()
        self.model = copy.deepcopy(ref.module_).to(self.device)
        modules = [self.model]
        self.critic = self.head = self.aux = self.teacher = None
        if kind == "crtcl":
            self.critic = copy.deepcopy(ref.critic_).to(self.device)
            self.clip = ref.clip_value
            self.gamma = ref.gamma
            self.critic_taps = tuple(ref.critic_.taps)
            modules.append(self.critic)
        elif kind == "lossnet":
            self.head = copy.deepcopy(ref.loss_head_).to(self.device)
            self.margin, self.lambda_ = ref.margin, ref.lambda_
            modules.append(self.head)
        elif kind == "tod":
            self.aux = copy.deepcopy(ref.aux_head_).to(self.device)
            self.teacher = copy.deepcopy(ref.teacher_).to(self.device)
            self.teacher_module = self.teacher  # the EMA acts on the uncompiled modules
            self.ema_decay, self.weight = ref.ema_decay, ref.unsupervised_weight
            self.ema_step = 0
            modules += [self.aux, self.teacher]
        self.modules = modules
        self.channels_last = channels_last
        if channels_last:
            for m in modules:
                m.to(memory_format=torch.channels_last)

        sgd = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
        main_params = list(self.model.parameters())
        if self.aux is not None:
            main_params += list(self.aux.parameters())
        self.opt = torch.optim.SGD(main_params, **sgd)
        self.optimizers = [self.opt]
        if self.critic is not None:
            self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=1e-3)
            self.optimizers.append(self.critic_opt)
            self._clip_critic()
        if self.head is not None:
            self.head_opt = torch.optim.SGD(self.head.parameters(), **sgd)
            self.optimizers.append(self.head_opt)
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)

        self.criterion = torch.nn.CrossEntropyLoss(
            reduction="none" if kind == "lossnet" else "mean")
        self.forward = self.model
        self.forward_taps = lambda inputs: forward_taps(self.model, inputs)
        if compile_:
            kw = {"backend": args.compile_backend} if args.compile_backend else {}
            model = self.model
            self.forward = torch.compile(model, **kw)
            self.forward_taps = torch.compile(lambda inputs: forward_taps(model, inputs), **kw)
            self.criterion = torch.compile(self.criterion, **kw)
            for name in ("critic", "head", "aux", "teacher"):
                if getattr(self, name) is not None:
                    setattr(self, name, torch.compile(getattr(self, name), **kw))

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.dtype = dtype
        self.scaler = torch.amp.GradScaler(self.device.type) if dtype == torch.float16 else None
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.X_unlabeled = None if X_unlabeled is None else torch.from_numpy(X_unlabeled)
        self.generator = torch.Generator().manual_seed(0)
        self.unlabeled_generator = torch.Generator().manual_seed(1)

    # helpers ---------------------------------------------------------------
    def autocast(self):
        """Autocast to the loop's AMP dtype, or nothing in float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _batch(self, x):
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _unlabeled(self):
        n = self.X_unlabeled.shape[0]
        idx = torch.randperm(n, generator=self.unlabeled_generator)[:self.batch_size]
        return self._batch(self.X_unlabeled[idx])

    def _backward(self, loss):
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def _step(self, *optimizers):
        for opt in optimizers:
            if self.scaler is None:
                opt.step()
            else:
                self.scaler.step(opt)
        if self.scaler is not None:
            self.scaler.update()

    @torch.no_grad()
    def _clip_critic(self):
        for p in self.critic.parameters():
            p.clamp_(-self.clip, self.clip)

    def _critic_inputs(self, taps):
        out = {}
        with torch.no_grad():
            for name in self.critic_taps:
                if name == "proba":
                    out[name] = torch.softmax(taps["logits"], dim=1)
                else:
                    t = taps[name]
                    out[name] = t.mean(dim=(2, 3)) if t.dim() == 4 else t.detach()
        return out

    # the steps --------------------------------------------------------------
    def step_resnet(self, x, y):
        """Cross-entropy, one SGD step."""
        self.opt.zero_grad()
        with self.autocast():
            loss = self.criterion(self.forward(x), y)
        self._backward(loss)
        self._step(self.opt)

    def step_crtcl(self, x, y):
        """CrtCl: critic step, cross-entropy, generator loss on an unlabeled batch."""
        x_u = self._unlabeled()
        self.opt.zero_grad()
        with self.autocast():
            taps = self.forward_taps(x)
            logits = taps["logits"]
            loss = self.criterion(logits, y)
            inputs = self._critic_inputs(taps)
        correct = logits.detach().argmax(dim=1) == y
        n_correct = int(correct.sum())
        if 0 < n_correct < correct.shape[0]:
            self.critic_opt.zero_grad()
            with self.autocast():
                scores = self.critic(inputs).float()
            self._backward(wasserstein_critic_loss(scores, correct, reduction="sum"))
            self._step(self.critic_opt)
            self._clip_critic()
        self._backward(loss)
        del taps, inputs
        with self.autocast():
            taps_u = self.forward_taps(x_u)
        inputs_u = self._critic_inputs(taps_u)
        inputs_u["proba"] = torch.softmax(taps_u["logits"], dim=1)
        params = list(self.critic.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            with self.autocast():
                scores_u = self.critic(inputs_u).float()
        finally:
            for p in params:
                p.requires_grad_(True)
        self._backward(critic_generator_loss(scores_u, self.gamma, reduction="sum"))
        self._step(self.opt)

    def step_lossnet(self, x, y):
        """LL4AL: cross-entropy + ranking loss of the loss head, two SGD steps."""
        self.opt.zero_grad()
        self.head_opt.zero_grad()
        with self.autocast():
            taps = self.forward_taps(x)
            logits = taps["logits"]
            true_loss = self.criterion(logits, y)
            pred_loss = self.head([taps[name] for name in LOSS_HEAD_TAPS]).reshape(-1).float()
            ranking = loss_prediction_ranking_loss(pred_loss, true_loss, margin=self.margin)
            loss = true_loss.mean() + self.lambda_ * ranking
        self._backward(loss)
        self._step(self.opt, self.head_opt)

    def _consistency(self, x):
        taps = self.forward_taps(x)
        logits = taps["logits"]
        aux = self.aux(taps["stage4"].mean(dim=(2, 3))).float()
        with torch.no_grad():
            teacher = self.teacher(x)
        return logits, (consistency_loss(aux, teacher.float())
                        + torch.nn.functional.mse_loss(logits.float(), aux))

    def step_tod(self, x, y):
        """TOD: cross-entropy + consistency on labeled and unlabeled batches, SGD,
        EMA update of the teacher."""
        self.opt.zero_grad()
        with self.autocast():
            logits, cons = self._consistency(x)
            loss = self.criterion(logits, y)
            x_u = self._unlabeled()
            cons = cons + self._consistency(x_u)[1]
            loss = loss + self.weight * cons
        self._backward(loss)
        self._step(self.opt)
        ema_update(self.teacher_module, self.model,
                   ema_warmup_decay(self.ema_step, self.ema_decay))
        self.ema_step += 1

    def epoch(self):
        """One epoch over the labeled set in a new random order."""
        for m in self.modules:
            m.train()
        step = getattr(self, f"step_{self.kind}")
        n = self.X.shape[0]
        perm = torch.randperm(n, generator=self.generator)
        for start in range(0, n, self.batch_size):
            idx = perm[start:start + self.batch_size]
            step(self._batch(self.X[idx]), self.y[idx].to(self.device, non_blocking=True))
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def epoch_pair(kind, setting, args, X, y, X_u):
    """Warm up, then time alternating epochs of the net and its hand loop.

    Returns a dict with the two :class:`Timer` objects and the first-epoch
    (warm-up) wall times.
    """
    precision, channels_last, compile_ = speed_setting(setting, args.device)
    if compile_:
        torch._dynamo.reset()  # each compiled pair starts with empty dynamo caches
    net = make_net(kind, args, precision, channels_last, compile_)
    fit_kw = {"X_unlabeled": X_u} if kind in SEMI_SUPERVISED else {}
    hand = HandLoop(kind, args, X, y, X_u if kind in SEMI_SUPERVISED else None,
                    precision, channels_last, compile_)
    t_hand, t_net = Timer(args.device), Timer(args.device)
    first = {}
    w = time.perf_counter()
    hand.epoch()
    first["hand"] = time.perf_counter() - w
    w = time.perf_counter()
    net.partial_fit(X, y, **fit_kw)
    first["net"] = time.perf_counter() - w
    for r in range(args.rounds):
        pair = [(t_hand, hand.epoch), (t_net, lambda: net.partial_fit(X, y, **fit_kw))]
        for timer, fn in (pair if r % 2 == 0 else pair[::-1]):
            timer(fn)
    return {"hand": t_hand, "net": t_net, "first": first}


def epochs_section(args, info):
    """Item 1: every net under every speed setting against its hand loop."""
    rng = np.random.RandomState(0)
    shape = (args.channels, args.size, args.size)
    X = rng.normal(size=(args.n,) + shape).astype(np.float32)
    y = rng.randint(0, 10, size=args.n).astype(np.int64)
    X_u = rng.normal(size=(args.n_unlabeled,) + shape).astype(np.float32)
    rows = []
    for kind in args.nets:
        fp32 = {}
        for setting in args.settings:
            precision, channels_last, compile_ = speed_setting(setting, args.device)
            row = {"net": NETS[kind].__name__, "setting": setting, "device": args.device,
                   "precision": precision, "channels_last": channels_last,
                   "compile": compile_}
            print(f"[epochs] {kind} {setting} ...", flush=True)
            try:
                res = epoch_pair(kind, setting, args, X, y, X_u)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                msg = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                print(f"  {msg}", flush=True)
                row.update({c: "" for c in ("net_s", "hand_s", "ratio", "ratio_cpu")},
                           note=msg)
                rows.append(row)
                continue
            net_t, hand_t = res["net"], res["hand"]
            if setting == "fp32":
                fp32 = {"net": net_t.wall, "hand": hand_t.wall}
            row.update(
                net_s=fmt(net_t.wall), hand_s=fmt(hand_t.wall),
                ratio=fmt(net_t.wall / hand_t.wall), ratio_cpu=fmt(net_t.cpu / hand_t.cpu),
                net_speedup_vs_fp32=fmt(fp32["net"] / net_t.wall, 2) if fp32 else "",
                hand_speedup_vs_fp32=fmt(fp32["hand"] / hand_t.wall, 2) if fp32 else "",
                net_first_s=fmt(res["first"]["net"], 1),
                hand_first_s=fmt(res["first"]["hand"], 1),
                note="")
            print(f"  net {net_t.wall:.3f} s  hand {hand_t.wall:.3f} s  ratio "
                  f"{net_t.wall / hand_t.wall:.3f} (CPU {net_t.cpu / hand_t.cpu:.3f}); first "
                  f"epochs net {res['first']['net']:.1f} s, hand {res['first']['hand']:.1f} s",
                  flush=True)
            rows.append(row)
    if not args.device.startswith("cuda"):
        for kind in args.nets:
            for setting in args.settings:
                precision, channels_last, compile_ = speed_setting(setting, "cuda")
                rows.append({"net": NETS[kind].__name__, "setting": setting, "device": "cuda",
                             "precision": "bf16 or fp16" if precision != "fp32" else precision,
                             "channels_last": channels_last, "compile": compile_,
                             **{c: NOT_MEASURED for c in (
                                 "net_s", "hand_s", "ratio", "ratio_cpu",
                                 "net_speedup_vs_fp32", "hand_speedup_vs_fp32",
                                 "net_first_s", "hand_first_s")},
                             "note": "no GPU in this run"})
    columns = ["net", "setting", "device", "precision", "channels_last", "compile", "net_s",
               "hand_s", "ratio", "ratio_cpu", "net_speedup_vs_fp32", "hand_speedup_vs_fp32",
               "net_first_s", "hand_first_s", "note"]
    settings = dict(info)
    settings.update({
        "torch threads": torch.get_num_threads(),
        "backbone": f"CIFAR ResNet-18, width {args.width}",
        "data": f"{args.n} labeled random {args.channels}x{args.size}x{args.size} images "
                f"(10 classes); {args.n_unlabeled} unlabeled images for CriticLossNet and "
                "TODNet (X_unlabeled, one unlabeled batch per step)",
        "batch size": args.batch_size,
        "optimizers": "SGD lr 0.1, momentum 0.9, weight decay 5e-4 (critic: AdamW lr 1e-3)",
        "net parameters": "max_epochs=1, lr_milestones=None, random_state=0; CriticLossNet "
                          "generator_stop_epoch=None (generator loss every epoch); "
                          "LossPredictionNet epoch_loss=None (ranking loss into the backbone "
                          "every epoch); the other parameters are the defaults",
        "timing": f"1 warm-up epoch each (net_first_s, hand_first_s: includes "
                  f"initialisation and compilation), then {args.rounds} rounds of one "
                  "epoch each, net and hand loop alternating (order switched every round); "
                  "medians; ratio = median net / median hand (wall clock), ratio_cpu the "
                  "same with CPU times; a net epoch is one partial_fit call",
        "AMP": f"precision={amp_dtype_name(args.device)!r} (autocast)",
        "compile backend": args.compile_backend or "inductor (torch.compile default)",
    })
    notes = ["speed-ups vs fp32 compare medians measured at different times of the run "
             "(not interleaved)."]
    return columns, rows, settings, notes


# ---------------------------------------------------------------------------
# section "query": the strategies against a bare forward pass
# ---------------------------------------------------------------------------

#: Estimator of each strategy (the runner's methods); others: ResNetClassifier.
STRATEGY_NETS = {"critic_sampling": "crtcl", "loss_prediction_sampling": "lossnet",
                 "gradient_norm_sampling": "lossnet", "cod_sampling": "tod"}
#: Work per pool image beyond one forward pass of the backbone.
STRATEGY_WORK = {
    "random_sampling": "none: no forward pass",
    "entropy_sampling": "1 forward pass + softmax entropy",
    "critic_sampling": "1 forward pass (stage outputs) + the critic",
    "loss_prediction_sampling": "1 forward pass (stage outputs) + the loss head",
    "gradient_norm_sampling": "forward + backward pass, per-sample gradient norms "
                              "(inherently more)",
    "cod_sampling": "2 forward passes: current and previous weights (inherently 2x)",
    "badge_sampling": "1 forward pass + k-means++ on gradient embeddings (inherently more)",
    "coreset_sampling": "1 forward pass of pool and labeled set + greedy k-center "
                        "(inherently more)",
}
SCORING_TARGET = ("entropy_sampling", "critic_sampling", "loss_prediction_sampling")


def query_strategies():
    """``name -> function`` of every ``*_sampling`` strategy of :mod:`sklearn_crtcl.query`."""
    import sklearn_crtcl.query as q
    return {name: getattr(q, name) for name in q.__all__ if name.endswith("_sampling")}


def fitted_nets(width, device, seed=0, n_train=256, batch_size=128, kinds=NETS):
    """Estimators of ``kinds``, fitted for one epoch on random labelled images.

    Returns ``(nets, X_train)``.
    """
    rng = np.random.RandomState(seed)
    X = rng.rand(n_train, 3, 32, 32).astype(np.float32)
    y = np.arange(n_train) % 10
    common = dict(module__width=width, max_epochs=1, device=device, random_state=seed,
                  batch_size=batch_size)
    return {kind: NETS[kind](**common).fit(X, y) for kind in kinds}, X


def bare_forward(module, X, batch_size, device):
    """``module(x)`` on every batch of tensor ``X``, eval mode, no grad."""
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                module(X[start:start + batch_size].to(device, non_blocking=True))
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
    finally:
        module.train(training)


def query_section(args, info):
    """Item 2: every strategy against a bare forward pass of its estimator."""
    strategies = query_strategies()
    kinds = sorted({STRATEGY_NETS.get(name, "resnet") for name in strategies})
    nets, X_lab = fitted_nets(args.width, args.device, batch_size=args.batch_size,
                              kinds=kinds)
    pool = np.random.RandomState(1).rand(args.pool, 3, 32, 32).astype(np.float32)
    pool_t = torch.from_numpy(pool)
    extra = {"coreset_sampling": {"X_labeled": X_lab}}

    def run(name):
        """One query of strategy ``name`` on the pool."""
        est = nets[STRATEGY_NETS.get(name, "resnet")]
        return strategies[name](est, pool, n_instances=args.query_size, random_state=0,
                                **extra.get(name, {}))

    def bare(name):
        """A bare forward pass of the backbone of ``name``'s estimator."""
        est = nets[STRATEGY_NETS.get(name, "resnet")]
        bare_forward(est.module_, pool_t, args.batch_size, args.device)

    for name in strategies:  # warm-up
        bare(name)
        run(name)
    timers = {name: (Timer(args.device), Timer(args.device)) for name in strategies}
    pp = (Timer(args.device), Timer(args.device))
    for r in range(args.repeats):
        print(f"[query] repeat {r + 1}/{args.repeats}", flush=True)
        for name in strategies:
            b, s = timers[name]
            b(lambda: bare(name))
            s(lambda: run(name))
        pp[0](lambda: bare_forward(nets["resnet"].module_, pool_t, args.batch_size,
                                   args.device))
        pp[1](lambda: nets["resnet"].predict_proba(pool))

    n = args.pool
    rows = []

    def add(name, est_name, work, base, other, target, note=""):
        """Append the table row of one strategy."""
        rows.append({"strategy": name, "estimator": est_name, "work_per_image": work,
                     "bare_forward_img_s": f"{n / base.wall:.0f}",
                     "strategy_img_s": f"{n / other.wall:.0f}",
                     "ratio": fmt(paired_ratio(base, other), 2),
                     "ratio_cpu": fmt(paired_ratio(base, other, cpu=True), 2),
                     "target": target, "note": note})

    add("predict_proba (reference)", "ResNetClassifier", "1 forward pass + softmax", *pp,
        "", "the package's own inference loop")
    for name in strategies:
        est = nets[STRATEGY_NETS.get(name, "resnet")]
        note = ""
        if name == "gradient_norm_sampling":
            note = "scoring batches of 64 (the strategy's default)"
        elif name == "random_sampling":
            note = "ratio >> 1: no network work"
        add(name, type(est).__name__, STRATEGY_WORK.get(name, "?"), *timers[name],
            ">= 0.9" if name in SCORING_TARGET else "", note)
        r = rows[-1]
        print(f"  {name:26s} bare {r['bare_forward_img_s']:>7s} img/s  strategy "
              f"{r['strategy_img_s']:>7s} img/s  ratio {r['ratio']} (CPU {r['ratio_cpu']})",
              flush=True)
    if not args.device.startswith("cuda"):
        rows.append({"strategy": "all", "estimator": "", "work_per_image": "",
                     **{c: NOT_MEASURED for c in ("bare_forward_img_s", "strategy_img_s",
                                                  "ratio", "ratio_cpu")},
                     "target": "", "note": "cuda: no GPU in this run"})
    columns = ["strategy", "estimator", "work_per_image", "bare_forward_img_s",
               "strategy_img_s", "ratio", "ratio_cpu", "target", "note"]
    settings = dict(info)
    settings.update({
        "torch threads": torch.get_num_threads(),
        "backbone": f"CIFAR ResNet-18, width {args.width}; estimators fitted for one epoch on "
                    "256 random images (float32; inference is float32 under every "
                    "precision setting)",
        "pool": f"{args.pool} random 3x32x32 images (a NumPy array)",
        "query": f"n_instances={args.query_size}, random_state=0, every other option the "
                 "strategy's default (scoring strategies: selection='power'; "
                 "coreset_sampling: X_labeled = the 256 training images)",
        "bare forward": f"est.module_(x) under torch.no_grad in eval mode, batches of "
                        f"{args.batch_size} sliced from the pool as a tensor",
        "timing": f"1 warm-up call each, then {args.repeats} repeats; each strategy timed right "
                  "after its bare forward pass; img/s from median wall times; ratio = median "
                  "over repeats of time(bare forward) / time(strategy) (1 = as fast as a bare "
                  "forward pass), ratio_cpu the same with CPU times",
    })
    return columns, rows, settings, []


# ---------------------------------------------------------------------------
# sections "gradnorm" and "memmap" (the former benchmarks/bench_query.py)
# ---------------------------------------------------------------------------

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
        """Peak growth of ``RssAnon`` in MB."""
        return (self.peak - self.before) / 1024


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


def gradnorm_pair(est, pool, n_naive, n_batched, repeats, device):
    """Timers of the naive loop and of the batched computation, max. rel. difference."""
    from sklearn_crtcl.query import gradient_norm_sampling
    from sklearn_crtcl.query.gradnorm import entropy_gradient_norm
    module = est.module_
    X = pool[:max(n_naive, n_batched)]
    naive_grad_norms(module, X[:4], device)  # warm-up both
    entropy_gradient_norm(est, X[:32])
    naive, batched = Timer(device), Timer(device)
    for _ in range(repeats):
        naive(lambda: naive_grad_norms(module, X[:n_naive], device))
        batched(lambda: gradient_norm_sampling(est, X[:n_batched], n_instances=10))
    ref = naive_grad_norms(module, X[:n_naive], device)
    got = entropy_gradient_norm(est, X[:n_naive])
    rel = float(np.max(np.abs(got - ref) / ref))
    return naive, batched, rel


def gradnorm_section(args, info):
    """Batched per-sample gradient norms against one backward pass per sample."""
    pool = np.random.RandomState(1).rand(max(args.naive, args.batched), 3, 32, 32).astype(
        np.float32)
    devices = [args.device]
    if args.device == "cpu" and torch.cuda.is_available():
        devices.append("cuda")
    rows = []
    for device in devices:
        est = fitted_nets(args.width, device, kinds=("resnet",))[0]["resnet"]
        thread_counts = args.gradnorm_threads if device == "cpu" else [args.threads]
        for threads in thread_counts:
            torch.set_num_threads(threads)
            naive, batched, rel = gradnorm_pair(est, pool, args.naive, args.batched,
                                                args.repeats, device)
            # throughput ratio = (n_batched / t_batched) / (n_naive / t_naive)
            scale = args.batched / args.naive
            rows.append({"device": device, "threads": threads,
                         "naive_img_s": f"{args.naive / naive.best:.1f}",
                         "batched_img_s": f"{args.batched / batched.best:.1f}",
                         "ratio": fmt(scale * paired_ratio(naive, batched), 2),
                         "ratio_cpu": fmt(scale * paired_ratio(naive, batched, cpu=True), 2),
                         "max_rel_difference": f"{rel:.1e}"})
            print(f"  {rows[-1]}", flush=True)
        torch.set_num_threads(args.threads)
    if not torch.cuda.is_available():
        rows.append({"device": "cuda", "threads": "", **{c: NOT_MEASURED for c in (
            "naive_img_s", "batched_img_s", "ratio", "ratio_cpu", "max_rel_difference")}})
    columns = ["device", "threads", "naive_img_s", "batched_img_s", "ratio", "ratio_cpu",
               "max_rel_difference"]
    settings = dict(info)
    settings.update({
        "backbone": f"CIFAR ResNet-18, width {args.width}, fitted one epoch",
        "samples": f"naive loop on {args.naive}, batched (gradient_norm_sampling) on "
                   f"{args.batched} random 3x32x32 images",
        "timing": f"{args.repeats} back-to-back pairs; img/s from the best wall time; ratio = "
                  "batched / naive throughput (median over pairs)",
    })
    return columns, rows, settings, []


def memmap_section(args, info):
    """Memory growth while querying a memory-mapped pool."""
    from sklearn_crtcl.query import (cod_sampling, critic_sampling, gradient_norm_sampling,
                                     random_sampling)
    shape = (args.memmap_n, 3, 32, 32)
    nbytes = int(np.prod(shape)) * 4
    tmpdir = tempfile.mkdtemp(prefix="bench_speed_", dir=args.tmpdir)
    rows = []
    try:
        free = shutil.disk_usage(tmpdir).free
        if free < nbytes * 1.2:
            print(f"skipping the memory-mapped pool: {free / 2**30:.1f} GiB free in {tmpdir}, "
                  f"{nbytes / 2**30:.2f} GiB needed")
            return None
        path = os.path.join(tmpdir, "pool.npy")
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        rng = np.random.RandomState(0)
        for start in range(0, shape[0], 5000):  # write in chunks: no big array in memory
            stop = min(start + 5000, shape[0])
            mm[start:stop] = rng.rand(stop - start, *shape[1:]).astype(np.float32)
        mm.flush()
        del mm
        pool = np.load(path, mmap_mode="r")
        nets = {k: v for k, v in fitted_nets(args.memmap_width, args.device,
                                              kinds=("resnet", "crtcl"))[0].items()}
        plain, critic = nets["resnet"], nets["crtcl"]
        queries = [
            ("reference: predict_proba(pool[:10000])", lambda: np.arange(
                len(plain.predict_proba(pool[:10000])))),
            ("random_sampling, whole pool", lambda: random_sampling(
                plain, pool, n_instances=1000, random_state=0)),
            ("cod_sampling, subset_size=10000", lambda: cod_sampling(
                plain, pool, n_instances=1000, subset_size=10000, random_state=0)),
            ("critic_sampling, subset_size=10000", lambda: critic_sampling(
                critic, pool, n_instances=1000, subset_size=10000, random_state=0)),
            ("gradient_norm_sampling, subset_size=2000", lambda: gradient_norm_sampling(
                plain, pool, n_instances=100, subset_size=2000, random_state=0)),
        ]
        # control: a real copy of a quarter of the pool, to show what the meter sees
        queries.append(("control: np.array(pool[:25000]) (a copy)",
                        lambda: np.arange(len(np.array(pool[:25000])))))
        if not args.skip_whole_pool:
            queries.append(("cod_sampling, whole pool", lambda: cod_sampling(
                plain, pool, n_instances=1000)))
        for name, fn in queries:
            with PeakRss() as rss:
                t = time.perf_counter()
                idx = fn()
                elapsed = time.perf_counter() - t
            assert len(np.unique(idx)) == len(idx)
            rows.append({"query": name, "time_s": fmt(elapsed, 1),
                         "rss_anon_before_mb": f"{rss.before / 1024:.0f}",
                         "rss_anon_growth_mb": fmt(rss.growth_mb, 1)})
            print(f"  {name:45s} {elapsed:7.1f} s   RssAnon before {rss.before / 1024:6.0f} MB, "
                  f"growth {rss.growth_mb:7.1f} MB", flush=True)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    columns = ["query", "time_s", "rss_anon_before_mb", "rss_anon_growth_mb"]
    settings = dict(info)
    settings.update({
        "pool": f"memory map of {args.memmap_n} random 3x32x32 float32 images "
                f"({nbytes / 1e9:.2f} GB)",
        "backbone": f"CIFAR ResNet-18, width {args.memmap_width}",
        "memory": "growth of RssAnon (/proc/self/status, leaves out the file's pages) during "
                  "the query, sampled every 5 ms, after malloc_trim",
    })
    return columns, rows, settings, []


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------

def _csv_list(choices):
    def parse(text):
        """Split and check a comma-separated list."""
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {list(choices)}")
        return items
    return parse


def build_parser():
    """The command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sections", type=_csv_list(SECTIONS), default=["epochs", "query"],
                        help=f"comma-separated, among {','.join(SECTIONS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 width (64 = papers)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=None, help="directory for the CSV and Markdown tables")
    g = parser.add_argument_group("epochs")
    g.add_argument("--nets", type=_csv_list(tuple(NETS)), default=list(NETS))
    g.add_argument("--settings", type=_csv_list(SETTINGS), default=list(SETTINGS))
    g.add_argument("--n", type=int, default=1024, help="labeled images")
    g.add_argument("--n-unlabeled", type=int, default=1024,
                   help="unlabeled images (CriticLossNet, TODNet)")
    g.add_argument("--channels", type=int, default=3)
    g.add_argument("--size", type=int, default=32, help="image height and width")
    g.add_argument("--rounds", type=int, default=7, help="timed epochs of each loop")
    g.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default: torch's, inductor)")
    g = parser.add_argument_group("query")
    g.add_argument("--pool", type=int, default=4096, help="pool size")
    g.add_argument("--query-size", type=int, default=100, help="n_instances of each query")
    g.add_argument("--repeats", type=int, default=5)
    g = parser.add_argument_group("gradnorm and memmap")
    g.add_argument("--naive", type=int, default=128, help="samples in the naive loop")
    g.add_argument("--batched", type=int, default=512,
                   help="samples for the batched gradient norms")
    g.add_argument("--gradnorm-threads", default="1",
                   help="CPU thread counts for the gradient-norm comparison")
    g.add_argument("--memmap-n", type=int, default=100_000)
    g.add_argument("--memmap-width", type=int, default=8)
    g.add_argument("--skip-whole-pool", action="store_true",
                   help="skip COD on the whole memory-mapped pool")
    g.add_argument("--tmpdir", default=None)
    return parser


def main(argv=None):
    """Run the selected sections; write their tables with ``--out``. Returns 0."""
    args = build_parser().parse_args(argv)
    args.gradnorm_threads = [int(t) for t in str(args.gradnorm_threads).split(",") if t]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        info = machine_info(args.device)
        print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
              f"{info['machine']}", flush=True)
        titles = {"epochs": "Epoch time: nets against hand-written PyTorch loops",
                  "query": "Pool-scoring throughput: query strategies against a bare "
                           "forward pass",
                  "gradnorm": "Per-sample entropy-gradient norms: batched against naive",
                  "memmap": "Querying a memory-mapped pool: memory growth"}
        sections = {"epochs": epochs_section, "query": query_section,
                    "gradnorm": gradnorm_section, "memmap": memmap_section}
        for name in args.sections:
            start = time.perf_counter()
            result = sections[name](args, info)
            print(f"[{name}] done in {time.perf_counter() - start:.0f} s", flush=True)
            if result is None or not args.out:
                continue
            columns, rows, settings, notes = result
            settings["command"] = "python benchmarks/bench_speed.py " + " ".join(
                sys.argv[1:] if argv is None else argv)
            for path in write_table(args.out, name, titles[name], columns, rows, settings,
                                    notes):
                print(f"wrote {path}", flush=True)
    finally:
        torch.set_num_threads(previous_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
