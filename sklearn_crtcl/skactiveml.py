"""The package's query strategies as scikit-activeml query strategies.

`scikit-activeml <https://scikit-activeml.github.io>`_ (``pip install
sklearn-crtcl[skactiveml]``) queries with classes of
:class:`skactiveml.base.SingleAnnotatorPoolQueryStrategy`: ``X`` holds every
sample, labeled or not, and the unlabeled rows of ``y`` hold
``missing_label``. :class:`QueryStrategyAdapter` runs one strategy of
:mod:`sklearn_crtcl.query` that way; :class:`CriticSampling`,
:class:`CODSampling`, :class:`GradientNormSampling`,
:class:`LossPredictionSampling`, :class:`EntropySampling`,
:class:`RandomSampling`, :class:`BadgeSampling` and :class:`CoreSetSampling`
are the adapter with its strategy fixed.

The query is the package strategy's on the candidates: with
``candidates=None`` (the unlabeled rows) or an index array, the strategy
runs on those rows of ``X`` (its ``pool_indices``, never copying ``X``) and
the indices are rows of ``X``; with an array of samples, it runs on them and
the indices are rows of ``candidates``. The other direction, a package net
inside scikit-activeml's own strategies, needs no adapter:
``skactiveml.classifier.SklearnClassifier(ResNetClassifier(...))``.
"""

import copy
import inspect

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

try:
    from skactiveml.base import SingleAnnotatorPoolQueryStrategy
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.utils import (MISSING_LABEL, check_equal_missing_label, labeled_indices,
                                  unlabeled_indices)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sklearn_crtcl.skactiveml needs scikit-activeml: pip install "
                      "sklearn-crtcl[skactiveml] (scikit-activeml>=1.0,<1.1)") from exc

from .nets._unlabeled import SemiSupervisedMixin
from .query import (badge_sampling, classifier_entropy, cod_sampling, coreset_sampling,
                    critic_correctness, critic_sampling, cyclic_output_discrepancy,
                    entropy_gradient_norm, entropy_sampling, gradient_norm_sampling,
                    loss_prediction_sampling, predicted_loss, random_sampling, random_scores)
from .query._common import draw_candidates
from .query._steps import recording

__all__ = ["QueryStrategyAdapter", "STRATEGIES", "CriticSampling", "CODSampling",
           "GradientNormSampling", "LossPredictionSampling", "EntropySampling",
           "RandomSampling", "BadgeSampling", "CoreSetSampling"]

#: The package strategies the adapter runs, by name: ``(strategy, utility,
#: sign)``, where ``sign * utility(...)`` is the utility (higher is preferred),
#: or ``utility=None`` for the greedy strategies whose steps give the utilities.
STRATEGIES = {
    "critic": (critic_sampling, critic_correctness, -1.0),
    "cod": (cod_sampling, cyclic_output_discrepancy, 1.0),
    "gradient_norm": (gradient_norm_sampling, entropy_gradient_norm, 1.0),
    "loss_prediction": (loss_prediction_sampling, predicted_loss, 1.0),
    "entropy": (entropy_sampling, classifier_entropy, 1.0),
    "random": (random_sampling, random_scores, 1.0),
    "badge": (badge_sampling, None, None),
    "coreset": (coreset_sampling, None, None),
}

# set by the adapter itself, not through strategy_params (return_proposal: always
# False, a scikit-activeml query returns indices)
_SET_BY_ADAPTER = ("n_instances", "random_state", "pool_indices", "X_labeled", "return_proposal")


def _options(function):
    """The keyword-only options of a strategy or utility function."""
    return [name for name, p in inspect.signature(function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


class QueryStrategyAdapter(SingleAnnotatorPoolQueryStrategy):
    """A query strategy of :mod:`sklearn_crtcl.query` as a scikit-activeml strategy.

    Parameters
    ----------
    strategy : str or callable, default="entropy"
        A name of :data:`STRATEGIES` (``"critic"``, ``"cod"``,
        ``"gradient_norm"``, ``"loss_prediction"``, ``"entropy"``,
        ``"random"``, ``"badge"``, ``"coreset"``) or one of their functions,
        e.g. :func:`~sklearn_crtcl.query.critic_sampling`.
    strategy_params : dict, optional
        Options of the strategy, e.g. ``{"selection": "topk", "subset_size":
        10000}`` (not ``n_instances``, ``random_state``, ``pool_indices`` or
        ``X_labeled``, which the adapter sets, nor ``return_proposal``).
    missing_label : scalar or str or np.nan or None, default=np.nan
        The label of the unlabeled rows of ``y``.
    random_state : int, RandomState instance or None, default=None
        As in scikit-activeml: each query draws from a random state derived
        from it and the number of unlabeled samples
        (``skactiveml.utils.check_random_state(random_state, n_unlabeled + 1)``),
        which is the ``random_state`` the package strategy gets; a
        ``RandomState`` passed here is not advanced.

    Attributes
    ----------
    missing_label_ : scalar or str or np.nan or None
        The checked ``missing_label`` of the last query.
    random_state_ : numpy.random.RandomState
        The random state of the last query, as drawn before the strategy ran.

    Notes
    -----
    The utilities (``return_utilities=True``) are, for the scoring
    strategies, the strategy's score of every candidate it considered,
    oriented so that higher is preferred (the negated critic score for
    ``"critic"``), computed by the paired utility function of
    :mod:`sklearn_crtcl.query` (a second scoring pass); row ``i`` holds
    ``NaN`` for the samples chosen before step ``i``, as scikit-activeml's
    ``simple_batch`` does. For ``"badge"`` and ``"coreset"``, row ``i`` holds
    the values of step ``i`` of the greedy choice: the core-set distance of
    each candidate to its nearest center; BADGE's squared gradient norm at
    the first step and then the squared distance to the nearest chosen
    gradient embedding (the k-means++ weights). Non-candidates (and, with
    ``subset_size``, candidates not drawn into the subset) hold ``NaN``.
    With a stochastic ``selection`` the batch is drawn from, not the
    maximum of, the utilities.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_crtcl import CriticLossNet
    >>> from sklearn_crtcl.skactiveml import CriticSampling
    >>> X, y_true = load_digits(return_X_y=True)
    >>> X = X.reshape(-1, 1, 8, 8).astype("float32") / 16
    >>> y = np.full(len(X), np.nan); y[:100] = y_true[:100]  # NaN: not labeled yet
    >>> net = CriticLossNet(module__width=2, max_epochs=1, random_state=0, device="cpu")
    >>> idx = CriticSampling(random_state=0).query(X, y, net, batch_size=10)
    >>> idx.shape, bool(np.isnan(y[idx]).all())
    ((10,), True)
    """

    def __init__(self, strategy="entropy", strategy_params=None, missing_label=MISSING_LABEL,
                 random_state=None):
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.strategy = strategy
        self.strategy_params = strategy_params

    def _resolve_strategy(self):
        """``(name, strategy, utility, sign, options)``, checked."""
        strategy = self.strategy
        if isinstance(strategy, str):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; valid strategies: "
                                 + ", ".join(STRATEGIES))
            name = strategy
        else:
            names = [n for n, entry in STRATEGIES.items() if entry[0] is strategy]
            if not names:
                raise TypeError(
                    f"strategy must be a name of sklearn_crtcl.skactiveml.STRATEGIES or one of "
                    f"their functions ({', '.join(e[0].__name__ for e in STRATEGIES.values())}),"
                    f" got {strategy!r}")
            name = names[0]
        function, utility, sign = STRATEGIES[name]
        params = {} if self.strategy_params is None else self.strategy_params
        if not isinstance(params, dict):
            raise TypeError(f"strategy_params must be a dict of options of "
                            f"{function.__name__}, got {type(params).__name__}")
        allowed = [o for o in _options(function) if o not in _SET_BY_ADAPTER]
        for key in params:
            if key == "return_proposal":
                raise ValueError("strategy_params: 'return_proposal' is not supported: a "
                                 "scikit-activeml query returns indices (and utilities); call "
                                 f"{function.__name__}(..., return_proposal=True) itself for "
                                 "the probabilities of its draw")
            if key in _SET_BY_ADAPTER:
                raise ValueError(f"strategy_params: {key!r} is set by the adapter (batch_size "
                                 "of query is n_instances; random_state is the adapter's)")
            if key not in allowed:
                raise ValueError(f"strategy_params: {function.__name__} has no option {key!r};"
                                 f" its options: {', '.join(allowed)}")
        return name, function, utility, sign, dict(params)

    def query(self, X, y, clf, fit_clf=True, sample_weight=None, candidates=None, batch_size=1,
              return_utilities=False):
        """Determine for which candidate samples labels are to be queried.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            All samples, labeled and unlabeled: images ``(n, C, H, W)``,
            ``(n, H, W)`` or flat rows ``(n, n_features)``, as the net takes
            them.
        y : array-like of shape (n_samples,)
            Labels, ``missing_label`` for the unlabeled samples.
        clf : estimator or skactiveml.classifier.SklearnClassifier
            A net of the package (or a ``SklearnClassifier`` wrapping one,
            with the same ``missing_label``). With ``fit_clf=True`` a clone
            is fitted and ``clf`` is left as it was; otherwise it must be
            fitted.
        fit_clf : bool, default=True
            Fit (a clone of) ``clf`` on the labeled samples first. The
            semi-supervised nets (:class:`~sklearn_crtcl.CriticLossNet`,
            :class:`~sklearn_crtcl.TODNet`) also get the unlabeled rows of
            ``X`` as ``X_unlabeled`` (at least 2 of them).
        sample_weight : None
            Not supported: the nets take no sample weights (a ``TypeError``
            when given for an estimator whose ``fit`` has no
            ``sample_weight``).
        candidates : None, array-like of int of shape (n_candidates,) or \
                array-like of shape (n_candidates, ...), default=None
            ``None``: the unlabeled samples; indices: those rows of ``X``;
            samples: those samples (the utilities and indices then refer to
            them).
        batch_size : int, default=1
            Number of samples to query (the strategy's ``n_instances``);
            reduced, with scikit-activeml's warning, to the number of
            candidates.
        return_utilities : bool, default=False
            Also return the utilities.

        Returns
        -------
        query_indices : ndarray of int of shape (batch_size,)
            Rows of ``X`` (``candidates`` ``None`` or indices) or of
            ``candidates`` (samples), in the order the strategy chose them.
        utilities : ndarray of shape (batch_size, n_samples) or (batch_size, n_candidates)
            Only with ``return_utilities=True``; see the Notes of the class.
        """
        name, function, utility, sign, params = self._resolve_strategy()
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True)
        if batch_size == 0:  # scikit-activeml cut it to the number of candidates
            raise ValueError("there is no sample to query: every sample of y is labeled, or "
                             "candidates holds none that is not")
        if not isinstance(fit_clf, (bool, np.bool_)):
            raise TypeError(f"fit_clf must be a bool, got {fit_clf!r}")
        wrapped = isinstance(clf, SklearnClassifier)
        if wrapped:
            check_equal_missing_label(clf.missing_label, self.missing_label_)
        inner = clf.estimator if wrapped else clf
        if not hasattr(inner, "fit") or not hasattr(inner, "predict_proba"):
            raise TypeError(f"clf must be a net of sklearn_crtcl (or a skactiveml "
                            f"SklearnClassifier wrapping one), got {type(clf).__name__}")
        if sample_weight is not None and not has_fit_parameter(inner, "sample_weight"):
            raise TypeError(f"sample_weight is not supported: {type(inner).__name__}.fit takes "
                            "no sample weights")
        labeled = labeled_indices(y, self.missing_label_)
        unlabeled = unlabeled_indices(y, self.missing_label_)
        X_cand, mapping = self._transform_candidates(candidates, X, y)

        est = self._fitted_estimator(clf, wrapped, fit_clf, X, y, sample_weight, labeled,
                                     unlabeled)
        if name == "coreset":
            params["X_labeled"] = X[labeled]
        rng = self.random_state_
        pool_args = ((X, {"pool_indices": mapping}) if mapping is not None
                     else (X_cand, {}))
        with recording() as steps:
            indices = function(est, pool_args[0], batch_size, random_state=copy.deepcopy(rng),
                               **pool_args[1], **params)
        indices = np.asarray(indices, dtype=int)
        if not return_utilities:
            return indices
        n_out = len(X) if mapping is not None else len(X_cand)
        # the rows the strategy considered: the candidates, or the subset it drew of them
        rows = mapping if mapping is not None else np.arange(len(X_cand))
        stream = copy.deepcopy(rng)
        subset = draw_candidates(len(rows), params.get("subset_size"), stream)
        if subset is not None:
            rows = rows[subset]
        utilities = np.full((batch_size, n_out), np.nan)
        source = X if mapping is not None else X_cand
        if utility is None:  # the greedy strategies: the values of each step
            for i, values in enumerate(steps):
                utilities[i, rows] = values
        else:
            kwargs = {k: params[k] for k in _options(utility) if k in params}
            if name == "random":  # the scores random_sampling drew, from the same stream
                kwargs["random_state"] = stream
            scores = np.asarray(utility(est, source[rows], **kwargs), dtype=np.float64)
            utilities[:, rows] = sign * scores
        for i in range(batch_size):
            utilities[i, indices[:i]] = np.nan
        return indices, utilities

    def _fitted_estimator(self, clf, wrapped, fit_clf, X, y, sample_weight, labeled,
                          unlabeled):
        """The fitted net the package strategy scores with."""
        if fit_clf:
            inner = clf.estimator if wrapped else clf
            kwargs = {}
            if isinstance(inner, SemiSupervisedMixin) and len(unlabeled) > 0:
                # the unlabeled rows of X, without copying them
                kwargs = {"X_unlabeled": X, "unlabeled_indices": unlabeled}
            if sample_weight is not None:
                kwargs["sample_weight"] = (sample_weight if wrapped
                                           else np.asarray(sample_weight)[labeled])
            if wrapped:
                clf = clone(clf).fit(X, y, **kwargs)
            else:
                if len(labeled) == 0:
                    raise ValueError("y has no labeled sample (every label is missing_label "
                                     f"{self.missing_label_!r}); fit_clf=True needs some")
                clf = clone(clf).fit(X[labeled], y[labeled], **kwargs)
        else:
            check_is_fitted(clf)
        if not wrapped:
            return clf
        if not getattr(clf, "is_fitted_", False):
            raise ValueError(f"the SklearnClassifier could not fit its "
                             f"{type(clf.estimator).__name__} (see its warning); the "
                             f"strategy needs the fitted net")
        return clf.estimator_


def _named(name, strategy_name, summary):
    doc = f"""{summary}

    :class:`QueryStrategyAdapter` with ``strategy="{strategy_name}"``
    (:func:`~sklearn_crtcl.query.{STRATEGIES[strategy_name][0].__name__}`).

    Parameters
    ----------
    strategy_params : dict, optional
        Options of the strategy (see :class:`QueryStrategyAdapter`).
    missing_label : scalar or str or np.nan or None, default=np.nan
        The label of the unlabeled rows of ``y``.
    random_state : int, RandomState instance or None, default=None
        Seed, as in scikit-activeml (see :class:`QueryStrategyAdapter`).
    """

    def __init__(self, strategy_params=None, missing_label=MISSING_LABEL, random_state=None):
        QueryStrategyAdapter.__init__(self, strategy_name, strategy_params=strategy_params,
                                      missing_label=missing_label, random_state=random_state)

    return type(name, (QueryStrategyAdapter,),
                {"__init__": __init__, "__doc__": doc, "__module__": __name__})


CriticSampling = _named("CriticSampling", "critic",
                        "CrtCl: the lowest critic scores of a CriticLossNet.")
CODSampling = _named("CODSampling", "cod",
                     "TOD: the largest cyclic output discrepancy.")
GradientNormSampling = _named("GradientNormSampling", "gradient_norm",
                              "Ent-GradNorm (LPLgrad): the largest entropy-gradient norm.")
LossPredictionSampling = _named("LossPredictionSampling", "loss_prediction",
                                "LL4AL: the highest predicted losses of a LossPredictionNet.")
EntropySampling = _named("EntropySampling", "entropy",
                         "The highest predictive entropy.")
RandomSampling = _named("RandomSampling", "random",
                        "Uniform random sampling, with the package's batch selections.")
BadgeSampling = _named("BadgeSampling", "badge",
                       "BADGE: k-means++ seeding on the gradient embeddings.")
CoreSetSampling = _named("CoreSetSampling", "coreset",
                         "Core-set: greedy k-center on the embeddings, labeled rows as centers.")
