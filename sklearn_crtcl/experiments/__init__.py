"""The active-learning benchmark runner of the CrtCl paper (Section IV).

Python API: :func:`run_experiment` with an :class:`ExperimentConfig`;
command line: ``python -m sklearn_crtcl.experiments`` (or the
``sklearn-crtcl-experiment`` console script). The calibration benchmark:
:func:`run_calibration` with a :class:`CalibrationConfig`, or
``python -m sklearn_crtcl.experiments.calibration``.
"""

from .calibration import CALIBRATION_METHODS, CalibrationConfig, run_calibration
from .methods import ABLATIONS, ALL_METHODS, METHODS, PEERS, method_spec
from .report import RESULT_COLUMNS, area_under_curve, load_results, summary_table
from .runner import PROTOCOLS, QUICK_PRESET, ExperimentConfig, run_experiment

__all__ = [
    "ABLATIONS",
    "ALL_METHODS",
    "CALIBRATION_METHODS",
    "CalibrationConfig",
    "METHODS",
    "PEERS",
    "PROTOCOLS",
    "QUICK_PRESET",
    "RESULT_COLUMNS",
    "ExperimentConfig",
    "area_under_curve",
    "load_results",
    "method_spec",
    "run_calibration",
    "run_experiment",
    "summary_table",
]
