"""
ResNetClassifier: fit, predict_proba and calibration
=====================================================

Train the CIFAR-style ResNet-18 of the papers (at a small width) on scikit-learn's
digits, then measure how well its probabilities are calibrated with the expected
calibration error (ECE, Eq. 6 of the CrtCl paper) and a reliability diagram.
"""

# %%
# Data: 8x8 grey-level digits as (n, 1, 8, 8) float32 images, standardised.
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklearn_crtcl import ResNetClassifier  # noqa: E402
from sklearn_crtcl.datasets import load_digits_images  # noqa: E402
from sklearn_crtcl.metrics import (brier_score, expected_calibration_error,  # noqa: E402
                                   negative_log_likelihood)
from sklearn_crtcl.plotting import reliability_diagram  # noqa: E402

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
if SMOKE:
    X_train, y_train = X_train[:300], y_train[:300]

# %%
# A scikit-learn classifier: ``fit`` / ``predict_proba`` / ``predict``.
clf = ResNetClassifier(module__width=8, max_epochs=2 if SMOKE else 30, batch_size=64,
                       random_state=0)
clf.fit(X_train, y_train)
proba = clf.predict_proba(X_test)
accuracy = (clf.predict(X_test) == y_test).mean()
print(f"accuracy {accuracy:.3f}")
print(f"ECE      {expected_calibration_error(y_test, proba, labels=clf.classes_):.4f}")
print(f"Brier    {brier_score(y_test, proba, labels=clf.classes_):.4f}")
print(f"NLL      {negative_log_likelihood(y_test, proba, labels=clf.classes_):.4f}")

# %%
# The reliability diagram: per-bin accuracy against the diagonal of perfect calibration.
ax = reliability_diagram(y_test, proba, labels=clf.classes_, title="ResNetClassifier")
plt.savefig(os.environ.get("SKLEARN_CRTCL_EXAMPLE_OUT", ".") + "/reliability_resnet.png")
