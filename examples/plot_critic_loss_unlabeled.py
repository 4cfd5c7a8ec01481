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
# ``SKLEARN_CRTCL_SMOKE=1`` in the environment runs the example at smoke size
# (fewer labels and epochs), as the test suite does.
import os

import matplotlib.pyplot as plt
import torch
from sklearn.metrics import roc_auc_score

from sklearn_crtcl import CriticLossNet, ResNetClassifier
from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.metrics import expected_calibration_error
from sklearn_crtcl.plotting import reliability_diagram

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
n_labeled = 100 if SMOKE else 300
X_lab, y_lab = X_train[:n_labeled], y_train[:n_labeled]
X_unlab = X_train[n_labeled:]  # their labels are never used
params = dict(module__width=8, max_epochs=2 if SMOKE else 40, batch_size=32, random_state=0)
print(f"labeled images {len(X_lab)}, unlabeled images {len(X_unlab)}, "
      f"test images {len(X_test)}")

# %%
# Both models share the backbone, the optimizer and the seed. ``X_unlabeled`` is
# where the generator steps draw their batches from.
baseline = ResNetClassifier(**params).fit(X_lab, y_lab)
crtcl = CriticLossNet(**params).fit(X_lab, y_lab, X_unlabeled=X_unlab)

fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col",
                         gridspec_kw={"height_ratios": [3, 1]})
print(f"{'model':<14}{'accuracy':>9}{'ECE':>7}")
for col, (name, model) in enumerate([("cross-entropy", baseline), ("CrtCl", crtcl)]):
    proba = model.predict_proba(X_test)
    acc = (model.predict(X_test) == y_test).mean()
    ece = expected_calibration_error(y_test, proba, labels=model.classes_)
    print(f"{name:<14}{acc:>9.3f}{ece:>7.3f}")
    reliability_diagram(y_test, proba, labels=model.classes_, ax=axes[0, col],
                        counts_ax=axes[1, col], title=name)
fig.tight_layout()
plt.show()

# %%
# The critic's score (higher = more likely correct) separates right from wrong
# predictions on held-out images: this is what ``critic_sampling`` ranks by.
# An area under the ROC curve of 0.5 is chance, 1 a perfect separation.
correct = crtcl.predict(X_test) == y_test
score = crtcl.predict_correctness(X_test)
if 0 < correct.sum() < len(correct):
    print(f"critic ROC AUC, correct vs wrong predictions: "
          f"{roc_auc_score(correct, score):.3f}")
else:
    print("critic ROC AUC undefined: every test prediction is "
          + ("right" if correct.all() else "wrong"))

# %%
# The losses, from the estimator's skorch history: the classifier's cross-entropy
# on the labeled images and the critic's Wasserstein loss (Eq. 4 of the paper) in
# the last epoch. The generator loss, which the critic gives the classifier on the
# unlabeled images (Eq. 5), is used only in the first 65 % of the epochs
# (``generator_stop_epoch``, as in the paper): its value is from the last of them.
history = crtcl.history
last = history[-1]
print(f"last epoch ({len(history)}): cross-entropy {last['train_loss']:.3f}, "
      f"critic loss {last['critic_loss']:.3f}")
with_generator = [e for e in history if e["generator_loss"] != 0]
if with_generator:
    print(f"generator loss in epoch {with_generator[-1]['epoch']}: "
          f"{with_generator[-1]['generator_loss']:.3f}")
