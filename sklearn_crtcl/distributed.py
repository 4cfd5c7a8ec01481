"""Data-parallel training and pool scoring over several processes.

The estimators and query strategies of this package run unchanged in every
process of a :mod:`torch.distributed` job (one process per GPU, started by
``torchrun``); once the default process group is initialised (for example
with :func:`init_distributed`), they cooperate:

* **Training** splits every mini-batch across the processes. All of them
  draw the same batches in the same order (the net's ``random_state``, or
  one seed agreed from process 0) and augment them whole; each takes its
  contiguous share of the rows, runs the forward passes on it, and gathers
  the per-sample outputs
  (logits, labels, critic scores, predicted losses...) of all shares with
  :func:`gather_batch`, whose result keeps its own rows in the autograd
  graph. Every loss is then computed on the *whole* batch, exactly as in a
  single process (batch-level terms such as the critic's one-sided-batch
  rule or the loss-prediction pairs included), and each process's backward
  pass yields the part of the gradient that flows through its own rows. Before
  every optimizer step, :func:`all_reduce_gradients` sums those parts: the
  step applies the gradient of the single-process loss on the same batch.
  Buffers (batch-normalisation statistics) are broadcast from process 0
  before every batch, as :class:`torch.nn.parallel.DistributedDataParallel`
  does.
* **Pool scoring** gives each process a contiguous share of the candidates
  (:func:`gather_rows`); the scores are gathered, and the selection runs on
  all of them in every process with the same random stream (process 0's),
  so every process returns the indices a single process would.

What is not the single-process computation: batch normalisation normalises
each share with its own statistics (as plain DDP does; torch's
:class:`~torch.nn.SyncBatchNorm` needs GPUs).
"""

import os

import numpy as np
import torch

from ._data import merge_short_tail

__all__ = ["init_distributed", "world", "shard_bounds", "gather_batch", "gather_rows",
           "all_reduce_gradients", "broadcast_state", "broadcast_object", "DistributedBatches"]


def _dist():
    return torch.distributed if torch.distributed.is_available() else None


def world():
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one.

    Returns
    -------
    rank : int
        This process's rank.
    world_size : int
        Number of processes (1 when :mod:`torch.distributed` is unavailable or
        not initialised).
    """
    dist = _dist()
    if dist is None or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def init_distributed(backend=None):
    """Initialise the default process group from ``torchrun``'s environment.

    Call it once at the start of a script launched with ``torchrun
    --nproc_per_node=N script.py``; the package's estimators and strategies
    then train and score data-parallel (see the module description). With
    CUDA, the process's GPU is set to ``cuda:LOCAL_RANK``, so ``device="cuda"``
    means that GPU. A no-op when the group is already initialised.

    Parameters
    ----------
    backend : {"nccl", "gloo"}, optional
        ``None``: ``"nccl"`` when CUDA is available, ``"gloo"`` otherwise.

    Returns
    -------
    rank : int
    world_size : int

    Raises
    ------
    RuntimeError
        If the environment variables of a launcher (``RANK``, ``WORLD_SIZE``,
        ``MASTER_ADDR``, ``MASTER_PORT``) are missing.
    ValueError
        If ``backend`` is not ``None``, ``"nccl"`` or ``"gloo"``.
    """
    dist = _dist()
    if dist is None:  # pragma: no cover - torch builds without distributed
        raise RuntimeError("this torch build has no torch.distributed")
    if backend not in (None, "nccl", "gloo"):
        raise ValueError(f"backend must be None, 'nccl' or 'gloo', got {backend!r}")
    if dist.is_initialized():
        return world()
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"init_distributed() needs the environment of a launcher; {', '.join(missing)} "
            "not set. Start the script with: torchrun --nproc_per_node=N script.py")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" or torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return world()


def shard_bounds(n, rank=None, world_size=None):
    """The contiguous rows ``[start, stop)`` of ``n`` that process ``rank`` takes.

    Shares differ by at most one row, the larger ones first (as
    :func:`numpy.array_split`).

    Parameters
    ----------
    n : int
        Number of rows.
    rank, world_size : int, optional
        Default: this process's (see :func:`world`).

    Returns
    -------
    start, stop : int
    """
    if rank is None or world_size is None:
        rank, world_size = world()
    base, extra = divmod(int(n), int(world_size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _comm_device(tensor=None):
    """The device collectives run on: CUDA with NCCL, else the tensor's (CPU)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if tensor is None else tensor.device


def gather_batch(local):
    """The rows of every process, concatenated in rank order; this process's rows
    stay attached to the autograd graph.

    The other processes' rows are detached copies. A loss computed on the
    result equals the single-process loss on the whole batch, and its
    gradient in this process is the part flowing through this process's
    rows; summing those parts over the processes
    (:func:`all_reduce_gradients`) gives the single-process gradient.

    Parameters
    ----------
    local : torch.Tensor of shape (n_local, ...)
        This process's rows (any dtype, bool included; ``n_local`` may differ
        between processes, and be 0).

    Returns
    -------
    torch.Tensor of shape (n_total, ...)
        ``local`` itself in a single process.
    """
    rank, size = world()
    if size == 1:
        return local
    dist = torch.distributed
    device = _comm_device(local)
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(size)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.long, device=device))
    sizes = [int(s) for s in sizes]
    send = local.detach()
    as_bool = send.dtype == torch.bool
    if as_bool:  # not every backend reduces booleans
        send = send.to(torch.uint8)
    send = send.to(device)
    longest = max(sizes)
    if send.shape[0] < longest:
        pad = send.new_zeros((longest - send.shape[0],) + tuple(send.shape[1:]))
        send = torch.cat([send, pad])
    parts = [torch.empty_like(send) for _ in range(size)]
    dist.all_gather(parts, send.contiguous())
    out = []
    for r, (part, n) in enumerate(zip(parts, sizes)):
        if r == rank:
            out.append(local)
            continue
        part = part[:n].to(local.device)
        out.append(part.bool() if as_bool else part.to(local.dtype))
    return torch.cat(out)


def _coalesced(tensors, collective):
    """Run ``collective`` in place on ``tensors``, one flat tensor per (device,
    dtype): the tensors are concatenated, the collective runs once on the
    collectives' device, and the result is copied back into each tensor."""
    buckets = {}
    for t in tensors:
        buckets.setdefault((t.device, t.dtype), []).append(t)
    for _, group in sorted(buckets.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        flat = torch.cat([t.reshape(-1) for t in group])
        moved = flat.to(_comm_device(flat))
        collective(moved)
        flat = moved.to(flat.device)
        start = 0
        for t in group:
            t.copy_(flat[start:start + t.numel()].view_as(t))
            start += t.numel()


def all_reduce_gradients(parameters):
    """Sum the gradients of ``parameters`` over the processes, in place.

    One collective per (device, dtype) bucket; parameters without a
    gradient are left alone (the same in every process, since every process
    runs the same computation on its share).

    Parameters
    ----------
    parameters : iterable of torch.nn.Parameter
    """
    if world()[1] == 1:
        return
    _coalesced([p.grad for p in parameters if p.grad is not None],
               torch.distributed.all_reduce)


def broadcast_state(modules, parameters=True, src=0):
    """Copy process ``src``'s buffers (and parameters) of ``modules`` to every process.

    One collective per (device, dtype) bucket (the batch-normalisation
    buffers are broadcast before every training batch).

    Parameters
    ----------
    modules : iterable of torch.nn.Module
    parameters : bool, default=True
        Broadcast the parameters too (``False``: buffers only, e.g. the
        batch-normalisation statistics before each batch).
    src : int, default=0
        Rank whose values every process takes.
    """
    if world()[1] == 1:
        return
    tensors = {}
    for module in modules:
        for t in list(module.buffers()) + (list(module.parameters()) if parameters else []):
            tensors.setdefault(id(t), t)  # a tensor shared by two modules, once
    with torch.no_grad():
        _coalesced(tensors.values(), lambda flat: torch.distributed.broadcast(flat, src=src))


def broadcast_object(obj, src=0):
    """Process ``src``'s ``obj`` (any picklable object) in every process.

    Parameters
    ----------
    obj : object
    src : int, default=0

    Returns
    -------
    object
        ``obj`` itself in a single process.
    """
    if world()[1] == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def gather_rows(fn, rows):
    """``fn(rows)`` computed in shares across the processes and gathered.

    Each process calls ``fn`` on its contiguous share of ``rows``; the
    outputs (arrays with one row per input row, or tuples of them) are
    concatenated in rank order in every process. If ``fn`` raises in one
    process, that process raises its error and every other process a
    :class:`RuntimeError` naming it (none waits forever).

    Parameters
    ----------
    fn : callable
        ``fn(rows_share) -> ndarray`` or tuple of ndarrays.
    rows : ndarray of int
        All rows to compute.

    Returns
    -------
    ndarray or tuple of ndarray
        What ``fn(rows)`` returns in a single process.
    """
    rank, size = world()
    if size == 1:
        return fn(rows)
    start, stop = shard_bounds(len(rows), rank, size)
    mine, error = None, None
    try:
        mine = fn(rows[start:stop]) if stop > start else None
    except Exception as exc:  # every process must reach the collective, then raise
        error = exc
    parts = [None] * size
    torch.distributed.all_gather_object(
        parts, (mine, None if error is None else f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    failed = [(r, msg) for r, (_, msg) in enumerate(parts) if msg is not None]
    if failed:
        r, msg = failed[0]
        raise RuntimeError(f"process {r} failed on its share of the rows: {msg}")
    parts = [p for p, _ in parts if p is not None]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(items, axis=0) for items in zip(*parts))
    return np.concatenate(parts, axis=0)


class DistributedBatches:
    """The training iterator of a distributed job: the same whole batches in
    every process, with synchronisation points.

    Wraps the net's batch iterator, which yields the same batches in every
    process (one seed): each batch is passed on whole, so that skorch
    records whole-batch sizes and the training steps augment the whole
    batch (the same random draws in every process, and as in one process)
    before taking their share of the rows (:func:`shard_bounds`).
    ``sync()`` runs before each batch and after the last one (the nets
    broadcast process 0's buffers there, so every process ends an epoch with
    the same model). A last batch with fewer than ``min_rows`` rows per
    process is merged into the one before, so no share is ever too small for
    batch normalisation.

    Parameters
    ----------
    iterator : iterable
        Batches ``(X, y)`` (tuples or lists of tensors with one row per sample).
    sync : callable, optional
        Called without arguments before each batch and after the last.
    min_rows : int, default=2
        Rows every process needs in a batch.
    """

    def __init__(self, iterator, sync=None, min_rows=2):
        self.iterator = iterator
        self.sync = sync
        self.min_rows = min_rows

    def __len__(self):
        return len(self.iterator)

    def _emit(self, batch):
        if self.sync is not None:
            self.sync()
        return batch

    def __iter__(self):
        for batch in merge_short_tail(self.iterator, self.min_rows * world()[1]):
            yield self._emit(batch)
        if self.sync is not None:
            self.sync()
