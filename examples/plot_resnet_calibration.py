"""
ResNetClassifier: fit, predict_proba and calibration
=====================================================

Train the CIFAR-style ResNet-18 of the papers (at a small width) on scikit-learn's
digits, then measure how well its probabilities are calibrated with the expected
calibration error (ECE, Eq. 6 of the CrtCl paper) and a reliability diagram.
"""

# %%
# Data: 8x8 grey-level digits as (n, 1, 8, 8) float32 images, standardised.
# ``SKLEARN_CRTCL_SMOKE=1`` in the environment runs the example at smoke size
# (a few seconds: fewer images and epochs), as the test suite does.
import os

import matplotlib.pyplot as plt
import torch

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.metrics import (brier_score, expected_calibration_error,
                                   negative_log_likelihood)
from sklearn_crtcl.plotting import reliability_diagram

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
if SMOKE:
    X_train, y_train = X_train[:300], y_train[:300]
print(f"{len(X_train)} training and {len(X_test)} test images of shape {X_train.shape[1:]}")

# %%
# A scikit-learn classifier: ``fit`` / ``predict_proba`` / ``predict``.
clf = ResNetClassifier(module__width=8, max_epochs=2 if SMOKE else 30, batch_size=64,
                       random_state=0)
clf.fit(X_train, y_train)
proba = clf.predict_proba(X_test)
accuracy = (clf.predict(X_test) == y_test).mean()
scores = {
    "test accuracy": accuracy,
    "ECE (15 bins)": expected_calibration_error(y_test, proba, labels=clf.classes_),
    "Brier score": brier_score(y_test, proba, labels=clf.classes_),
    "negative log-likelihood": negative_log_likelihood(y_test, proba, labels=clf.classes_),
}
for name, value in scores.items():
    print(f"{name:<24} {value:.3f}")

# %%
# The reliability diagram: per-bin accuracy against the diagonal of perfect
# calibration, and below it how many test images fall in each confidence bin
# (a bin with few images says little).
ax = reliability_diagram(y_test, proba, labels=clf.classes_, title="ResNetClassifier")
plt.show()
