"""sklearn-crtcl: the Critic Loss for Image Classification (CrtCl) and deep
active learning, in the scikit-learn / skorch / modAL idiom."""

from .nets import ResNetClassifier

__version__ = "0.1.0"

__all__ = ["ResNetClassifier", "__version__"]
