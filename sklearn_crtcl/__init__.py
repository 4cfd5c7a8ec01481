"""sklearn-crtcl: the Critic Loss for Image Classification (CrtCl) and deep
active learning, in the scikit-learn / skorch / modAL idiom."""

from .metrics import (brier_score, expected_calibration_error, negative_log_likelihood,
                      reliability_curve)
from .nets import LossPredictionNet, ResNetClassifier, TODNet

__version__ = "0.1.0"

__all__ = [
    "ResNetClassifier",
    "LossPredictionNet",
    "TODNet",
    "expected_calibration_error",
    "reliability_curve",
    "brier_score",
    "negative_log_likelihood",
    "__version__",
]
