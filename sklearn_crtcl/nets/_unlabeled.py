"""Unlabeled data for the semi-supervised estimators (CrtCl, TOD).

:class:`SemiSupervisedMixin` adds ``fit(X, y, X_unlabeled=None,
unlabeled_indices=None)``: the
unlabeled images are validated like ``X`` before any training, and during
training :meth:`SemiSupervisedMixin.unlabeled_batch` draws a fresh random
batch of them per call from a dedicated generator seeded by ``random_state``
(or, with ``random_state=None``, from torch's global generator), so draws are
reproducible and do not disturb the shuffling of labeled batches.
"""

import numpy as np
import torch

from .._checks import check_row_indices
from .._data import as_image_array, training_array
from ..data import DatasetArray

__all__ = ["SemiSupervisedMixin"]


class SemiSupervisedMixin:
    """Mixin for :class:`~sklearn_crtcl.ResNetClassifier` subclasses that train
    on unlabeled images too.

    Subclasses call :meth:`unlabeled_batch` in their ``train_step``; it returns
    ``None`` when ``fit`` got no ``X_unlabeled``. The unlabeled batch size is
    the net's ``unlabeled_batch_size`` attribute if set (not ``None``), else
    ``batch_size``.
    """

    def _validate_unlabeled(self, X, X_unlabeled, unlabeled_indices=None):
        """Check ``X_unlabeled`` against ``X`` (same per-sample shape) and
        ``unlabeled_indices`` against it, without touching the estimator.

        Returns ``(images, rows)``: a float32 CPU tensor, and the rows of it
        to draw from as a long tensor (``None``: all rows). A float32,
        C-contiguous, writable array is used in place with its rows; any
        other ``X_unlabeled`` (a read-only memory map, a ``DatasetArray``,
        another dtype) is read at those rows only."""
        if X_unlabeled is None:
            if unlabeled_indices is not None:
                raise ValueError("unlabeled_indices selects rows of X_unlabeled; pass "
                                 "X_unlabeled too")
            return None, None
        X4, _ = as_image_array(X, self.input_shape, name="X")
        X4u, _ = as_image_array(X_unlabeled, self.input_shape, name="X_unlabeled")
        if X4u.shape[1:] != X4.shape[1:]:
            raise ValueError(
                f"X_unlabeled must have the same per-sample shape as X: X_unlabeled has "
                f"samples of shape {X4u.shape[1:]}, X has {X4.shape[1:]}")
        rows = None
        if unlabeled_indices is not None:
            rows = check_row_indices(unlabeled_indices, X4u.shape[0], "unlabeled_indices",
                                     "X_unlabeled")
            in_place = (isinstance(X4u, np.ndarray) and X4u.dtype == np.float32
                        and X4u.flags.c_contiguous and X4u.flags.writeable)
            if not in_place:  # a copy is needed anyway: of the rows only
                X4u, rows = X4u[np.sort(rows)], np.argsort(np.argsort(rows))
        X_u = torch.from_numpy(training_array(X4u))
        return X_u, None if rows is None else torch.from_numpy(rows.astype(np.int64))

    def _fit_with_unlabeled(self, fit_method, X, y, X_unlabeled, unlabeled_indices=None,
                            **fit_params):
        # parameters and arguments before the data, the data before any training
        self._check_params()
        self._reject_fit_params({k: v for k, v in fit_params.items() if k != "classes"},
                                takes="X, y, X_unlabeled and unlabeled_indices")
        X, y = self._fit_input(X, y)
        if isinstance(X_unlabeled, torch.utils.data.Dataset):
            X_unlabeled = DatasetArray(X_unlabeled)
        X_u, rows = self._validate_unlabeled(X, X_unlabeled, unlabeled_indices)
        n_u = None if X_u is None else (X_u.shape[0] if rows is None else len(rows))
        if n_u is not None and n_u < 2:
            raise ValueError(f"X_unlabeled needs at least 2 samples (unlabeled batches go "
                             f"through batch normalisation), got {n_u}")
        if n_u is not None:
            self._check_distributed_batch(self._unlabeled_batch_rows(n_u),
                                          name="the unlabeled batch size")
        self._X_unlabeled, self._unlabeled_rows = X_u, rows
        self._unlabeled_generator = None
        try:
            return getattr(super(), fit_method)(X, y, **fit_params)
        finally:
            self._X_unlabeled = self._unlabeled_rows = None
            self._unlabeled_generator = None

    def fit(self, X, y, X_unlabeled=None, unlabeled_indices=None, **fit_params):
        """Train on labeled images ``X``, ``y`` and unlabeled images ``X_unlabeled``.

        Parameters
        ----------
        X : array-like of shape (n, C, H, W), (n, H, W) or (n, n_features)
            Labeled images.
        y : array-like of shape (n,)
            Labels of any type.
        X_unlabeled : array-like or Dataset, optional
            Unlabeled images with the same per-sample shape as ``X`` (a torch
            ``Dataset`` is read through a :class:`~sklearn_crtcl.DatasetArray`). Without
            them, the unsupervised term is computed on the labeled batch.
        unlabeled_indices : array-like of int, optional
            Only these (distinct) rows of ``X_unlabeled`` are the unlabeled
            images: the same training as with ``X_unlabeled[unlabeled_indices]``,
            without copying a float32 array (e.g. the whole training set and
            the rows of its pool, as the experiment runner passes them; other
            arrays, memory maps and datasets are read at these rows only).
        **fit_params : dict
            Only skorch's ``epochs`` (see :meth:`ResNetClassifier.fit
            <sklearn_crtcl.ResNetClassifier.fit>`); any other raises a
            ``TypeError`` naming it before any work.

        Returns
        -------
        self
        """
        return self._fit_with_unlabeled("fit", X, y, X_unlabeled, unlabeled_indices,
                                        **fit_params)

    def partial_fit(self, X, y, classes=None, X_unlabeled=None, unlabeled_indices=None,
                    **fit_params):
        """Continue training without re-initialising; see :meth:`fit`.

        Parameters
        ----------
        X : array-like
            Labeled images.
        y : array-like of shape (n,)
            Labels.
        classes : array-like, optional
            All labels, on the first call.
        X_unlabeled : array-like, optional
            Unlabeled images.
        unlabeled_indices : array-like of int, optional
            Rows of ``X_unlabeled`` to use (see :meth:`fit`).
        **fit_params : dict
            Only skorch's ``epochs`` (see :meth:`ResNetClassifier.fit
            <sklearn_crtcl.ResNetClassifier.fit>`); any other raises a
            ``TypeError`` naming it before any work.

        Returns
        -------
        self
        """
        return self._fit_with_unlabeled("partial_fit", X, y, X_unlabeled, unlabeled_indices,
                                        classes=classes, **fit_params)

    def _stage_training_data(self, X, y):
        # the unlabeled images go to the GPU once per fit too, when all fit there
        # (only the rows of unlabeled_indices)
        X_u = getattr(self, "_X_unlabeled", None)
        rows = getattr(self, "_unlabeled_rows", None)
        if X_u is not None:
            n_u = X_u.shape[0] if rows is None else len(rows)
            if self._fits_on_device(X, y, extra_bytes=n_u * X_u[0].numel() * X_u.element_size()):
                self._X_unlabeled = (X_u if rows is None else X_u[rows]).to(
                    self._torch_device())
                self._unlabeled_rows = None
        return super()._stage_training_data(X, y)

    @property
    def has_unlabeled_data(self):
        """bool: whether the running ``fit`` was given ``X_unlabeled``."""
        return getattr(self, "_X_unlabeled", None) is not None

    def unlabeled_batch(self):
        """Draw a random batch of unlabeled images for the current training step.

        Returns
        -------
        torch.Tensor of shape (b, C, H, W) or None
            On the net's device; ``None`` when ``fit`` got no ``X_unlabeled``.
            Draws are uniform without replacement within a batch, from a CPU
            generator seeded by ``random_state`` at the first draw of ``fit``
            (with ``random_state=None``, by a seed drawn from torch's global
            generator: ``torch.manual_seed`` before ``fit`` reproduces them);
            the same draws whether the images wait on the CPU or, moved there
            once per ``fit``, on the GPU.
        """
        X_u = getattr(self, "_X_unlabeled", None)
        if X_u is None:
            return None
        if self._unlabeled_generator is None:
            seed = self._draw_seed(offset=1)
            self._unlabeled_generator = torch.Generator().manual_seed(seed)
        rows = getattr(self, "_unlabeled_rows", None)
        n_u = X_u.shape[0] if rows is None else len(rows)
        idx = torch.randperm(n_u, generator=self._unlabeled_generator)
        idx = idx[:self._unlabeled_batch_rows(n_u)]
        if rows is not None:
            idx = rows[idx]
        return X_u[idx.to(X_u.device)].to(self.device, non_blocking=True)

    def _unlabeled_training_batch(self):
        """:meth:`unlabeled_batch` augmented, in the memory format; in a
        distributed job, this process's share of it (augmented as a whole
        first, like the labeled batches)."""
        x_u = self.unlabeled_batch()
        if x_u is None:
            return None
        return self._to_memory_format(self._share(self.augment_batch(x_u)))

    def _unlabeled_batch_rows(self, n_unlabeled):
        size = getattr(self, "unlabeled_batch_size", None) or self.batch_size
        return n_unlabeled if size == -1 else min(int(size), n_unlabeled)
