"""The active-learning benchmark runner of the CrtCl paper (Section IV).

Python API: :func:`run_experiment` with an :class:`ExperimentConfig`;
command line: ``python -m sklearn_crtcl.experiments`` (or the
``sklearn-crtcl-experiment`` console script).
"""

from .methods import ABLATIONS, ALL_METHODS, METHODS, PEERS, method_spec
from .report import RESULT_COLUMNS, area_under_curve, load_results, summary_table
from .runner import PROTOCOLS, QUICK_PRESET, ExperimentConfig, run_experiment

__all__ = [
    "ABLATIONS",
    "ALL_METHODS",
    "METHODS",
    "PEERS",
    "PROTOCOLS",
    "QUICK_PRESET",
    "RESULT_COLUMNS",
    "ExperimentConfig",
    "area_under_curve",
    "load_results",
    "method_spec",
    "run_experiment",
    "summary_table",
]
