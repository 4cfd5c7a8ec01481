"""
Active learning with modAL: every query strategy
=================================================

Each strategy of :mod:`sklearn_crtcl.query` is a plain modAL query strategy. This
example runs three query cycles with each one, in ``modAL.models.ActiveLearner``,
on digits, and plots test accuracy against the number of labels.

Importing :mod:`sklearn_crtcl` makes modAL work with scikit-learn >= 1.8 and gives
``learner.query`` one protocol under modAL 0.4.1 and 0.4.2.
"""

# %%
# ``SKLEARN_CRTCL_SMOKE=1`` in the environment runs the example at smoke size
# (smaller networks, fewer epochs and queries), as the test suite does.
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from modAL.models import ActiveLearner

from sklearn_crtcl import CriticLossNet, LossPredictionNet, ResNetClassifier, TODNet
from sklearn_crtcl.datasets import load_digits_images
from sklearn_crtcl.plotting import plot_learning_curves
from sklearn_crtcl.query import (cod_sampling, critic_sampling, gradient_norm_sampling,
                                 loss_prediction_sampling, random_sampling)

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
rng = np.random.RandomState(0)
initial = rng.choice(len(X_train), 50, replace=False)
params = dict(module__width=4 if SMOKE else 8, max_epochs=1 if SMOKE else 20, batch_size=32,
              classes=np.unique(y_train), random_state=0)

# %%
# Each strategy with the estimator that provides what it scores. The
# semi-supervised estimators also get the pool as ``X_unlabeled``. Every
# strategy starts from the same 50 random labels: the two strategies that use
# :class:`~sklearn_crtcl.LossPredictionNet` start from the same model, and their
# curves share their first point.
setups = {
    "random": (ResNetClassifier, random_sampling, False),
    "critic (CrtCl)": (CriticLossNet, critic_sampling, True),
    "COD (TOD)": (TODNet, cod_sampling, True),
    "loss prediction (LL4AL)": (LossPredictionNet, loss_prediction_sampling, False),
    "gradient norm (LPLgrad)": (LossPredictionNet, gradient_norm_sampling, False),
}
n_cycles, n_query = (2, 10) if SMOKE else (3, 50)
records = []
for name, (Estimator, strategy, semi) in setups.items():
    pool = np.setdiff1d(np.arange(len(X_train)), initial)
    extra = {"X_unlabeled": X_train[pool]} if semi else {}
    learner = ActiveLearner(estimator=Estimator(**params), query_strategy=strategy,
                            X_training=X_train[initial], y_training=y_train[initial], **extra)
    n_labeled = len(initial)
    records.append({"strategy": name, "n_labeled": n_labeled,
                    "accuracy": learner.score(X_test, y_test)})
    for cycle in range(n_cycles):
        idx, _ = learner.query(X_train[pool], n_instances=n_query, random_state=cycle)
        chosen = pool[idx]
        pool = np.setdiff1d(pool, chosen)
        extra = {"X_unlabeled": X_train[pool]} if semi else {}
        learner.teach(X_train[chosen], y_train[chosen], **extra)
        n_labeled += n_query
        records.append({"strategy": name, "n_labeled": n_labeled,
                        "accuracy": learner.score(X_test, y_test)})

# %%
# Test accuracy after each cycle, one row per strategy, one column per size
# of the labeled set.
sizes = sorted({r["n_labeled"] for r in records})
print("test accuracy (columns: number of labeled images)")
print(f"{'strategy':<25}" + "".join(f"{n:>8}" for n in sizes))
for name in setups:
    accs = [r["accuracy"] for r in records if r["strategy"] == name]
    print(f"{name:<25}" + "".join(f"{a:>8.3f}" for a in accs))

# %%
# The same numbers as learning curves (one trial, so the bands of one
# standard deviation have zero width).
ax = plot_learning_curves(records, metric="accuracy", group="strategy",
                          title="modAL query strategies on digits")
ax.figure.set_size_inches(7, 4.5)
ax.figure.tight_layout()
plt.show()
