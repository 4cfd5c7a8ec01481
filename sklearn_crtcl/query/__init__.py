"""Query strategies for deep active learning, as modAL-style callables.

Every strategy is ``strategy(classifier, X_pool, n_instances=1, **options)``
and returns the indices of the chosen samples in ``X_pool`` (most informative
first); beside it, a utility function returns one score per sample, as
:mod:`modAL.uncertainty` pairs ``classifier_entropy`` with
``entropy_sampling``.

* :func:`critic_sampling` / :func:`critic_correctness`: lowest critic scores
  of a ``CriticLossNet`` (CrtCl);
* :func:`cod_sampling` / :func:`cyclic_output_discrepancy`: largest change of
  the softmax output since the previous cycle (TOD), any net of the package;
* :func:`gradient_norm_sampling` / :func:`entropy_gradient_norm`: largest
  norm of the gradient of the predictive entropy (Ent-GradNorm, LPLgrad), any
  net of the package;
* :func:`loss_prediction_sampling` / :func:`predicted_loss`: highest predicted
  losses of a ``LossPredictionNet`` (LL4AL);
* :func:`random_sampling` / :func:`random_scores`: uniform, reproducible with
  ``random_state``;
* :func:`entropy_sampling` / :func:`classifier_entropy`: highest predictive
  entropy (the classic uncertainty baseline).

Common options: ``subset_size`` (score only that many random candidates, as
the papers do with 10,000; ``None`` = the whole pool), ``random_state`` (seed
of the query: the candidate draw, then any random choice of the selection),
``batch_size`` (samples per scoring batch; defaults to the estimator's), and
the batch selection, the same for all of the strategies above:
``selection`` (one of :data:`SELECTIONS`: ``"topk"`` takes the best scores,
as the papers do; ``"power"``, ``"softmax"`` and ``"rank"`` draw a stochastic
batch, Kirsch et al. 2023, ``"rank"`` (:data:`DEFAULT_SELECTION`) being the
default of every strategy above but :func:`random_sampling`, whose default is
``"topk"``; ``"balanced"`` goes round-robin over the predicted classes;
``"cluster"`` takes the best of each k-means cluster of the embeddings),
``beta`` (coldness of the stochastic draws) and ``cluster_pool``. With a
stochastic selection, ``return_proposal=True`` returns ``(indices,
proposal)``: the :class:`Proposal` gives the probability of each draw
(``proposal.q``), what the ``"importance"`` estimate of
:func:`~sklearn_crtcl.estimation.estimate_accuracy` needs
(:ref:`selection-proposal`).

Two peer strategies choose a diverse batch by themselves, from the
penultimate embeddings of any net of the package
(:meth:`~sklearn_crtcl.ResNetClassifier.embed`), and take no ``selection``:

* :func:`badge_sampling`: BADGE (Ash et al. 2020), k-means++ seeding on the
  gradient embeddings of the last layer;
* :func:`coreset_sampling`: core-set (Sener & Savarese 2018), greedy k-center
  with the labeled samples as initial centers.

The first argument may be a modAL learner, the estimator, or a scikit-learn
``Pipeline`` ending in a net of the package (the pool is transformed by its
other steps, then scored by the net). Scoring runs batch
by batch on the estimator's device; the pool (possibly a memory map) is never
copied. Every strategy returns distinct indices, most preferred first.
"""

from . import selection as _selection
from .badge import badge_sampling
from .cod import cod_sampling, cyclic_output_discrepancy
from .coreset import coreset_sampling
from .critic import critic_correctness, critic_sampling
from .entropy import classifier_entropy, entropy_sampling
from .gradnorm import entropy_gradient_norm, gradient_norm_sampling
from .lossprediction import loss_prediction_sampling, predicted_loss
from .random import random_sampling, random_scores
from .selection import Proposal

#: The values of the ``selection`` option of every scoring strategy
#: (``"topk"``, the papers' selection, first); see :ref:`batch-selection`.
SELECTIONS = _selection.SELECTIONS

#: The selections that draw the batch at random with known probabilities
#: (``"power"``, ``"softmax"``, ``"rank"``), the only ones with a
#: :class:`Proposal` (``return_proposal=True``); see :ref:`selection-proposal`.
STOCHASTIC_SELECTIONS = _selection.STOCHASTIC_SELECTIONS

#: The default ``selection`` of the scoring strategies, ``"rank"`` (a draw
#: with probabilities :math:`\propto \operatorname{rank}^{-\beta}`, which
#: depends on the order of the scores only); see :ref:`batch-selection`.
DEFAULT_SELECTION = _selection.DEFAULT_SELECTION

__all__ = [
    "critic_sampling",
    "critic_correctness",
    "cod_sampling",
    "cyclic_output_discrepancy",
    "gradient_norm_sampling",
    "entropy_gradient_norm",
    "loss_prediction_sampling",
    "predicted_loss",
    "random_sampling",
    "random_scores",
    "entropy_sampling",
    "classifier_entropy",
    "badge_sampling",
    "coreset_sampling",
    "SELECTIONS",
    "STOCHASTIC_SELECTIONS",
    "DEFAULT_SELECTION",
    "Proposal",
]
