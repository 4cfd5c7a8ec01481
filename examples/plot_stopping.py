"""
When to stop labeling: accuracy without a test set
==================================================

An active-learning loop has no labeled test set, yet after every round someone
must decide whether another round of labels is worth paying for. This example
runs a modAL ``ActiveLearner`` with a :class:`~sklearn_crtcl.ResNetClassifier`
and entropy sampling (a stochastic batch, the strategies' default ``"rank"``
selection), and after each round

* estimates the model's accuracy on the unlabeled pool with
  :func:`~sklearn_crtcl.estimation.estimate_accuracy`: average confidence,
  the temperature-scaled confidence, ATC and DoC (fitted on the new batch),
  the temperature fitted on every batch so far, each with the probabilities
  of the model that queried it (``held_out=``), and the importance-weighted
  estimate from the new batch's labels, weighted by the probabilities the
  query drew them with (``return_proposal=True``), with its 95 % interval
  (Korn-Graubard's, the default);
* asks the stopping criteria of :mod:`sklearn_crtcl.stopping` for their
  verdicts, and stops itself when the last round's labels no longer paid for
  the errors they saved (the break-even gain of the importance estimate, an
  error costing as much as a label) or
  the predictions have stabilized (Bloodgood and Vijay-Shanker 2009), or after
  a budget of rounds.

The data is Fashion-MNIST when its files are installed
(``/usr/share/datasets/fashion-mnist``), scikit-learn's digits otherwise; the
first printed line says which. See :doc:`/estimation`.
"""

# %%
# ``SKLEARN_CRTCL_SMOKE=1`` in the environment runs the example at smoke size
# (fewer images, epochs and rounds), as the test suite does.
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from modAL.models import ActiveLearner

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.datasets import load_digits_images, load_fashion_mnist
from sklearn_crtcl.estimation import estimate_accuracy
from sklearn_crtcl.experiments.estimates import estimation_record
from sklearn_crtcl.query import entropy_sampling
from sklearn_crtcl.stopping import (AccuracyGain, ClassificationChange, MaxUncertainty,
                                    OverallUncertainty, StabilizingPredictions,
                                    plot_estimates, stopping_summary)

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
try:
    X_train, X_test, y_train, y_test = load_fashion_mnist(
        n_train=600 if SMOKE else 2000, n_test=300 if SMOKE else 1000, random_state=0)
    data = "Fashion-MNIST"
except FileNotFoundError:
    X_train, X_test, y_train, y_test = load_digits_images(random_state=0)
    data = "digits (Fashion-MNIST is not installed)"
rng = np.random.RandomState(0)
labeled = rng.choice(len(X_train), 50 if SMOKE else 100, replace=False)
pool = np.setdiff1d(np.arange(len(X_train)), labeled)
stop_set = X_train[rng.choice(pool, 200, replace=False)]  # fixed unlabeled stop set
n_query, max_rounds = (30, 3) if SMOKE else (100, 8)
print(f"data {data}: pool {len(pool)} images, test {len(X_test)} images, "
      f"{len(labeled)} initial labels, {n_query} labels per round")

# %%
# The loop. Each round the model queries a batch, drawn without replacement
# with probabilities that fall with the rank of the entropy (the default
# ``selection="rank"``, :math:`p_i \propto 1/r_i`). With
# ``return_proposal=True`` the same query also returns its
# :class:`~sklearn_crtcl.query.Proposal`: ``proposal.q`` holds the probability
# with which each image of the batch was drawn, what the importance estimate
# weights the batch's labels by. The batch is labeled, the estimates and
# verdicts are computed (the model has not been trained on the batch yet), and
# then the model learns it.
learner = ActiveLearner(
    estimator=ResNetClassifier(module__width=4 if SMOKE else 8, max_epochs=2 if SMOKE else 8,
                               batch_size=32, classes=np.unique(y_train), random_state=0),
    query_strategy=entropy_sampling, X_training=X_train[labeled], y_training=y_train[labeled])
# the price of an error, in labels, on the N images the model will classify (here
# the test split stands for them, as in the costs in hindsight below): a round
# pays if it raised the accuracy by at least n_query / (price x N)
price = 1.0
criteria = [StabilizingPredictions(stop_set), ClassificationChange(stop_set, threshold=0.01),
            OverallUncertainty(0.05), MaxUncertainty(0.2),
            AccuracyGain("importance", min_gain=0.02),
            AccuracyGain.break_even(price, population=len(X_test), labels_per_round=n_query,
                                    method="importance")]
records = []
held = []  # each round's batch: (probabilities of that round's model, labels)
for cycle in range(max_rounds):
    X_pool = X_train[pool]
    idx, _, proposal = learner.query(X_pool, n_instances=n_query, random_state=cycle,
                                     return_proposal=True)
    # the whole pool was scored (no subset_size): the draw was over X_pool
    record = estimation_record(learner, X_pool, X_test, y_test,
                               methods=("confidence", "temperature", "atc", "doc",
                                        "importance"),
                               criteria=criteria, X_labeled=X_pool[idx],
                               y_labeled=y_train[pool[idx]], q=proposal.q,
                               y_pool=y_train[pool])
    batch = dict(X_labeled=X_pool[idx], y_labeled=y_train[pool[idx]])
    pooled = estimate_accuracy(learner, X_pool, "temperature", held_out=held, **batch)
    held.append((learner.predict_proba(batch["X_labeled"]), batch["y_labeled"]))
    record.update(cycle=cycle, n_labeled=len(labeled), est_temperature_pooled=pooled.estimate)
    records.append(record)
    verdicts = ", ".join(f"{c.name} {'stop' if record['stop_' + c.name] else 'go'}"
                         for c in criteria)
    print(f"round {cycle}: {len(labeled)} labels, pool accuracy {record['pool_accuracy']:.3f}"
          f" (test {record['accuracy']:.3f}); estimated: importance "
          f"{record['est_importance']:.3f} [{record['est_importance_low']:.3f}, "
          f"{record['est_importance_high']:.3f}], confidence {record['est_confidence']:.3f}, "
          f"temperature-scaled {record['est_temperature']:.3f} (pooled "
          f"{record['est_temperature_pooled']:.3f}), ATC {record['est_atc']:.3f}, "
          f"DoC {record['est_doc']:.3f}")
    print(f"    verdicts: {verdicts}")
    if record["stop_break_even_importance"] or record["stop_stabilizing_predictions"]:
        why = ("the last round's labels no longer paid for the errors they saved"
               if record["stop_break_even_importance"] else "the predictions stabilized")
        print(f"stopped after round {cycle}: {why}")
        break
    chosen = pool[idx]
    learner.teach(X_train[chosen], y_train[chosen])
    labeled, pool = np.r_[labeled, chosen], np.setdiff1d(pool, chosen)

# %%
# ATC and DoC fit their threshold on the new batch, which entropy sampling chose
# among the hardest images: they read the pool as harder than it is. Average
# confidence needs no labels but trusts the model's calibration; temperature
# scaling measures its over-confidence on the batch, and the pooled fit on every
# batch so far, with more labels for its one parameter. The
# importance estimate weights each label by its selection probability and is
# unbiased for the pool; its interval shrinks with the batch size.
#
# In hindsight: for each criterion, the round at which it would first have
# stopped and the cost there (labels plus a price per test error, Pullar-Strecker
# et al. 2022) against the cheapest round.
print("criterion, price per error, stop round, cost, best round, best cost")
for row in stopping_summary(records, prices=(0.1, 1.0, 10.0)):
    print(f"{row['criterion']:<26} price {row['price']:<4} stop {row['stop_cycle']:>2} "
          f"({'fired' if row['stopped'] else 'never fired'}) cost {row['cost']:8.1f}  "
          f"best {row['best_cycle']:>2} cost {row['best_cost']:8.1f}")

# %%
# Estimated and true accuracy of the pool per round (the band: the importance
# estimate's 95 % interval).
ax = plot_estimates(records, truth="pool_accuracy",
                    title=f"Accuracy on the unlabeled pool, {data.split(' ')[0]}")
ax.figure.set_size_inches(7, 4.5)
ax.figure.tight_layout()
plt.show()
