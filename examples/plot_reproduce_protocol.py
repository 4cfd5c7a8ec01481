"""
Reproducing the papers' active-learning protocol
=================================================

The CrtCl paper (Section IV) compares methods with one protocol: start from a
random labeled set, run cycles of query -> label -> retrain, record test accuracy
and ECE after every cycle, and average over trials (its Fig. 2).
:func:`~sklearn_crtcl.experiments.run_experiment` runs that protocol through
modAL's ``ActiveLearner``; the same runs are available from the command line as
``sklearn-crtcl-experiment``. Here: three methods on digits, at a size that runs
in a couple of minutes on a CPU.
"""

# %%
# ``SKLEARN_CRTCL_SMOKE=1`` in the environment runs the example at smoke size
# (one cycle, one trial, tiny networks), as the test suite does.
import os
import tempfile

import matplotlib.pyplot as plt
import torch

from sklearn_crtcl.experiments import run_experiment, summary_table
from sklearn_crtcl.plotting import plot_learning_curves

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
settings = dict(dataset="digits", methods=("random", "entropy", "tod"),
                initial_size=100, query_size=50, n_cycles=1 if SMOKE else 3,
                n_trials=1 if SMOKE else 2, max_epochs=1 if SMOKE else 15,
                width=4 if SMOKE else 8, batch_size=32, subset_size=500, seed=0,
                device="cpu", num_threads=1, progress=False)

# %%
# Every cycle is saved in ``output_dir`` (results.csv, labeled indices, the
# estimators), so an interrupted run continues with ``resume=True``. This example
# keeps nothing: it writes into a temporary directory, deleted at the end.
with tempfile.TemporaryDirectory() as run_dir:
    records = run_experiment(output_dir=run_dir, **settings)

print(summary_table(records))

# %%
# Accuracy and ECE against the number of labels: mean over trials with a band
# of one standard deviation, one line per method. The methods share the random
# initial labeled set, so their curves start at the same point.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
plot_learning_curves(records, metric="accuracy", ax=axes[0], title="Test accuracy")
plot_learning_curves(records, metric="ece", ax=axes[1],
                     title="Expected calibration error (lower is better)")
n_trials = settings["n_trials"]
fig.suptitle(f"Active learning on digits: {len(settings['methods'])} methods, "
             f"{n_trials} trial{'s' if n_trials > 1 else ''}")
fig.tight_layout()
plt.show()
