"""
CriticLossNet: a learned loss on unlabeled images
==================================================

CrtCl trains a critic to predict whether the classifier is right and uses it as a
loss on unlabeled images too (Eq. 5 of the CrtCl paper). Here a small labeled set
of digits and a larger unlabeled pool train a :class:`~sklearn_crtcl.CriticLossNet`;
we compare its accuracy and calibration with a plain cross-entropy
:class:`~sklearn_crtcl.ResNetClassifier`, and check that the critic's score tells
correct predictions from wrong ones.
"""

# %%
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from sklearn_crtcl import CriticLossNet, ResNetClassifier  # noqa: E402
from sklearn_crtcl.datasets import load_digits_images  # noqa: E402
from sklearn_crtcl.metrics import expected_calibration_error  # noqa: E402
from sklearn_crtcl.plotting import reliability_diagram  # noqa: E402

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
n_labeled = 100 if SMOKE else 300
X_lab, y_lab = X_train[:n_labeled], y_train[:n_labeled]
X_unlab = X_train[n_labeled:]  # their labels are never used
params = dict(module__width=8, max_epochs=2 if SMOKE else 40, batch_size=32, random_state=0)

# %%
# Both models share the backbone, the optimizer and the seed. ``X_unlabeled`` is
# where the generator steps draw their batches from.
baseline = ResNetClassifier(**params).fit(X_lab, y_lab)
crtcl = CriticLossNet(**params).fit(X_lab, y_lab, X_unlabeled=X_unlab)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, (name, model) in zip(axes, [("cross-entropy", baseline), ("CrtCl", crtcl)]):
    proba = model.predict_proba(X_test)
    acc = (model.predict(X_test) == y_test).mean()
    ece = expected_calibration_error(y_test, proba, labels=model.classes_)
    print(f"{name:>14}: accuracy {acc:.3f}  ECE {ece:.4f}")
    reliability_diagram(y_test, proba, labels=model.classes_, ax=ax, title=name)
fig.tight_layout()
fig.savefig(os.environ.get("SKLEARN_CRTCL_EXAMPLE_OUT", ".") + "/reliability_crtcl.png")

# %%
# The critic's score (higher = more likely correct) separates right from wrong
# predictions on held-out images: this is what ``critic_sampling`` ranks by.
correct = crtcl.predict(X_test) == y_test
score = crtcl.predict_correctness(X_test)
if 0 < correct.sum() < len(correct):
    print(f"critic ROC AUC (correct vs wrong): {roc_auc_score(correct, score):.3f}")
print("per-epoch losses:", crtcl.history[-1, ("train_loss", "critic_loss")])
