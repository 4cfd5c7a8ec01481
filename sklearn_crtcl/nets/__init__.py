"""Estimators: one training scheme per module."""

from .base import DEFAULT_DEVICE, ResNetClassifier
from .crtcl import CriticLossNet
from .lossnet import LossPredictionNet
from .tod import TODNet

__all__ = ["DEFAULT_DEVICE", "ResNetClassifier", "CriticLossNet", "LossPredictionNet", "TODNet"]
