"""Progress reporting for the runner: bars on a terminal, plain lines otherwise.

Bars (tqdm, optional: ``pip install sklearn-crtcl[progress]``) are shown only
when standard error is a terminal, or in a Jupyter notebook, where tqdm draws
widgets. With the output redirected to a file, as in a batch job, bars would
fill the file with hundreds of redrawn lines, so there each finished cycle
prints one plain line and epochs are not reported; likewise without tqdm.
Nothing here touches a random number generator, so progress reporting never
changes results.
"""

import sys

from skorch.callbacks import Callback

__all__ = ["EpochProgressBar", "CycleProgress"]


def _tqdm():
    """tqdm's class, or ``None`` when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _stderr_is_terminal():
    """Whether ``sys.stderr`` is an interactive terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def _bar_class():
    """tqdm's class where bars are wanted, else ``None``.

    Bars are wanted when tqdm is installed and standard error is a terminal,
    or in a notebook (where ``tqdm.auto`` draws widgets rather than lines).
    """
    tqdm = _tqdm()
    if tqdm is None:
        return None
    if _stderr_is_terminal():
        return tqdm
    # in a Jupyter kernel tqdm.auto imports tqdm.notebook and returns a widget class
    widget = getattr(sys.modules.get("tqdm.notebook"), "tqdm_notebook", None)
    if isinstance(widget, type) and isinstance(tqdm, type) and issubclass(tqdm, widget):
        return tqdm
    return None


class EpochProgressBar(Callback):
    """A skorch callback showing one tqdm bar over the epochs of each ``fit``.

    skorch's own :class:`skorch.callbacks.ProgressBar` counts batches; this
    one advances once per epoch and shows the training loss. Without tqdm,
    when standard error is not a terminal (output redirected to a file) or
    with ``enabled=False``, it does nothing. The bar is not pickled, so a
    net carrying this callback can be saved mid-training.

    Parameters
    ----------
    enabled : bool, default=True
        Show the bar.
    desc : str, default="epochs"
        Label of the bar.
    """

    def __init__(self, enabled=True, desc="epochs"):
        self.enabled = enabled
        self.desc = desc

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Open a bar of ``net.max_epochs`` steps."""
        tqdm = _bar_class() if self.enabled else None
        self.bar_ = None
        if tqdm is not None:
            self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, leave=False,
                             unit="epoch", dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs):
        """Advance the bar by one epoch and show the last training loss."""
        bar = getattr(self, "bar_", None)
        if bar is None:
            return
        loss = net.history[-1].get("train_loss")
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Close the bar."""
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.close()
        self.bar_ = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("bar_", None)
        return state


class CycleProgress:
    """Progress over the cycles of one (method, trial) run.

    A tqdm bar when tqdm is installed and standard error is a terminal (or
    in a notebook), else one line per finished cycle printed on standard
    output; silent when ``enabled`` is false.

    Parameters
    ----------
    desc : str
        Label, e.g. ``"crtcl trial 1/3"``.
    total : int
        Number of cycles, cycle 0 included.
    initial : int
        Cycles already done (when resuming).
    enabled : bool
        Report at all.
    """

    def __init__(self, desc, total, initial=0, enabled=True):
        self.desc = desc
        self.total = total
        self.enabled = enabled
        tqdm = _bar_class() if enabled else None
        self.bar = None
        if tqdm is not None:
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="cycle",
                            dynamic_ncols=True)

    def cycle_done(self, record):
        """Report a finished cycle (its result record)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(n=record["n_labeled"], acc=f"{record['accuracy']:.3f}",
                                 ece=f"{record['ece']:.3f}", refresh=False)
            self.bar.update(1)
            return
        print(f"[{self.desc}] cycle {record['cycle']}/{self.total - 1}: "
              f"n_labeled={record['n_labeled']} accuracy={record['accuracy']:.4f} "
              f"ece={record['ece']:.4f} nll={record['nll']:.4f} "
              f"({record['wall_time']:.1f} s)", flush=True)

    def cycle_replayed(self, cycle):
        """Report a committed cycle recomputed (its record is already stored)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            return
        print(f"[{self.desc}] cycle {cycle}/{self.total - 1}: recomputed (its committed "
              "record is kept)", flush=True)

    def close(self):
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
