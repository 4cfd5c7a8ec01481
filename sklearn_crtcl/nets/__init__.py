"""Estimators: one training scheme per module."""

from .base import DEFAULT_DEVICE, ResNetClassifier

__all__ = ["DEFAULT_DEVICE", "ResNetClassifier"]
