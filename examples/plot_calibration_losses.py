"""
Calibration: training criteria and temperature scaling
======================================================

The same ResNet-18 trained on scikit-learn's digits with four criteria —
cross-entropy, label smoothing (torch's ``CrossEntropyLoss(label_smoothing=...)``),
focal loss and an IQ loss (:mod:`sklearn_crtcl.criteria`) — and the
cross-entropy model temperature-scaled afterwards with scikit-learn's
``CalibratedClassifierCV(FrozenEstimator(net), method="temperature")``
(scikit-learn >= 1.8). Each is scored on held-out images: accuracy, ECE,
equal-mass ECE, NLL, and how well its maximum probability tells the digits
from out-of-distribution noise images (AUROC).
"""

# %%
# Data: digits split into training, calibration (for temperature scaling only)
# and test images. ``SKLEARN_CRTCL_SMOKE=1`` runs the example at smoke size.
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.criteria import FocalLoss, IQLoss
from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.metrics import (expected_calibration_error, negative_log_likelihood,
                                   ood_auroc)
from sklearn_crtcl.plotting import reliability_diagram

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(test_size=0.5, random_state=0)
X_cal, y_cal, X_test, y_test = X_test[:300], y_test[:300], X_test[300:], y_test[300:]
if SMOKE:
    X_train, y_train = X_train[:200], y_train[:200]
# out-of-distribution images: noise with the statistics of the standardised digits
X_ood = np.random.RandomState(0).standard_normal((300,) + X_test.shape[1:]).astype("float32")
print(f"{len(X_train)} training, {len(X_cal)} calibration, {len(X_test)} test images")

# %%
# One net per criterion, the criterion's arguments as ``criterion__*``.
params = dict(module__width=8, max_epochs=2 if SMOKE else 40, batch_size=64, random_state=0)
criteria = {
    "cross-entropy": {},
    "label smoothing 0.1": dict(criterion=torch.nn.CrossEntropyLoss,
                                criterion__label_smoothing=0.1),
    "focal loss (gamma 2)": dict(criterion=FocalLoss, criterion__gamma=2.0),
    "IQ loss (Jensen-Shannon)": dict(criterion=IQLoss,
                                     criterion__divergence="jensen_shannon"),
}
nets = {name: ResNetClassifier(**params, **kw).fit(X_train, y_train)
        for name, kw in criteria.items()}

# %%
# Temperature scaling of the cross-entropy net: the fitted net is frozen and
# one temperature is fitted on the calibration images.
try:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    scaled = CalibratedClassifierCV(FrozenEstimator(nets["cross-entropy"]),
                                    method="temperature").fit(X_cal, y_cal)
    nets["cross-entropy + temperature"] = scaled
except (ImportError, ValueError) as exc:  # scikit-learn < 1.8
    print(f"temperature scaling needs scikit-learn >= 1.8: {exc}")

# %%
# Scores on the test images (lower is better for ECE and NLL).
print(f"{'model':<28} {'accuracy':>8} {'ECE':>6} {'eq.-mass ECE':>12} {'NLL':>6} "
      f"{'OOD AUROC':>9}")
probas = {}
for name, net in nets.items():
    proba = probas[name] = net.predict_proba(X_test)
    print(f"{name:<28} {(proba.argmax(1) == y_test).mean():8.3f} "
          f"{expected_calibration_error(y_test, proba):6.3f} "
          f"{expected_calibration_error(y_test, proba, strategy='quantile'):12.3f} "
          f"{negative_log_likelihood(y_test, proba):6.3f} "
          f"{ood_auroc(proba, net.predict_proba(X_ood)):9.3f}")

# %%
# Reliability diagrams, with the number of test images in each confidence bin.
fig, axes = plt.subplots(1, len(probas), figsize=(3.2 * len(probas), 3.4),
                         layout="constrained")
for ax, (name, proba) in zip(axes, probas.items()):
    reliability_diagram(y_test, proba, ax=ax, title=name)
plt.show()
