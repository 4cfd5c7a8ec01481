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
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from modAL.models import ActiveLearner  # noqa: E402

from sklearn_crtcl import (CriticLossNet, LossPredictionNet, ResNetClassifier,  # noqa: E402
                           TODNet)
from sklearn_crtcl.datasets import load_digits_images  # noqa: E402
from sklearn_crtcl.query import (cod_sampling, critic_sampling,  # noqa: E402
                                 gradient_norm_sampling, loss_prediction_sampling,
                                 random_sampling)

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
rng = np.random.RandomState(0)
initial = rng.choice(len(X_train), 50, replace=False)
params = dict(module__width=4 if SMOKE else 8, max_epochs=1 if SMOKE else 20, batch_size=32,
              classes=np.unique(y_train), random_state=0)

# %%
# Each strategy with the estimator that provides what it scores. The
# semi-supervised estimators also get the pool as ``X_unlabeled``.
setups = {
    "random": (ResNetClassifier, random_sampling, False),
    "critic (CrtCl)": (CriticLossNet, critic_sampling, True),
    "COD (TOD)": (TODNet, cod_sampling, True),
    "loss prediction (LL4AL)": (LossPredictionNet, loss_prediction_sampling, False),
    "gradient norm (LPLgrad)": (LossPredictionNet, gradient_norm_sampling, False),
}
n_cycles, n_query = (2, 10) if SMOKE else (3, 50)
curves = {}
for name, (Estimator, strategy, semi) in setups.items():
    pool = np.setdiff1d(np.arange(len(X_train)), initial)
    extra = {"X_unlabeled": X_train[pool]} if semi else {}
    learner = ActiveLearner(estimator=Estimator(**params), query_strategy=strategy,
                            X_training=X_train[initial], y_training=y_train[initial], **extra)
    sizes, accs = [len(initial)], [learner.score(X_test, y_test)]
    for cycle in range(n_cycles):
        idx, _ = learner.query(X_train[pool], n_instances=n_query, random_state=cycle)
        chosen = pool[idx]
        pool = np.setdiff1d(pool, chosen)
        extra = {"X_unlabeled": X_train[pool]} if semi else {}
        learner.teach(X_train[chosen], y_train[chosen], **extra)
        sizes.append(sizes[-1] + n_query)
        accs.append(learner.score(X_test, y_test))
    curves[name] = (sizes, accs)
    print(f"{name:>24}: " + "  ".join(f"{a:.3f}" for a in accs))

fig, ax = plt.subplots(figsize=(6, 4))
for name, (sizes, accs) in curves.items():
    ax.plot(sizes, accs, marker="o", label=name)
ax.set_xlabel("labeled images")
ax.set_ylabel("test accuracy")
ax.legend()
fig.tight_layout()
fig.savefig(os.environ.get("SKLEARN_CRTCL_EXAMPLE_OUT", ".") + "/modal_strategies.png")
