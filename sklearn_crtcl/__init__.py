"""sklearn-crtcl: the Critic Loss for Image Classification (CrtCl) and deep
active learning, in the scikit-learn / skorch / modAL idiom."""

from . import _modal_compat  # noqa: F401  (makes modAL work with scikit-learn >= 1.8)
from .correctness import CorrectnessCritic, EnsembleCritic
from .data import DatasetArray
from .metrics import (brier_score, classwise_calibration_error, expected_calibration_error,
                      maximum_calibration_error, negative_log_likelihood, ood_auroc,
                      reliability_curve)
from .nets import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet

__version__ = "0.1.0"

__all__ = [
    "ResNetClassifier",
    "CriticLossNet",
    "LossPredictionNet",
    "TODNet",
    "CorrectnessCritic",
    "EnsembleCritic",
    "DatasetArray",
    "expected_calibration_error",
    "maximum_calibration_error",
    "classwise_calibration_error",
    "reliability_curve",
    "brier_score",
    "negative_log_likelihood",
    "ood_auroc",
    "__version__",
]
