"""The active-learning benchmark runner of the CrtCl paper (Section IV).

Python API: :func:`run_experiment` with an :class:`ExperimentConfig`;
command line: ``python -m sklearn_crtcl.experiments`` (or the
``sklearn-crtcl-experiment`` console script). The calibration benchmark:
:func:`run_calibration` with a :class:`CalibrationConfig`, or
``python -m sklearn_crtcl.experiments.calibration``.
"""

from .methods import ABLATIONS, ALL_METHODS, EXTENSIONS, METHODS, PEERS, method_spec
from .report import RESULT_COLUMNS, area_under_curve, load_results, summary_table
from .runner import (PROTOCOLS, QUICK_PRESET, ExperimentConfig, export_results, load_state,
                     run_experiment)

__all__ = [
    "ABLATIONS",
    "ALL_METHODS",
    "CALIBRATION_METHODS",
    "CalibrationConfig",
    "METHODS",
    "PEERS",
    "EXTENSIONS",
    "PROTOCOLS",
    "QUICK_PRESET",
    "RESULT_COLUMNS",
    "ExperimentConfig",
    "area_under_curve",
    "export_results",
    "load_state",
    "load_results",
    "method_spec",
    "run_calibration",
    "run_experiment",
    "summary_table",
]

_CALIBRATION_NAMES = ("CALIBRATION_METHODS", "CalibrationConfig", "run_calibration")


def __getattr__(name):
    # imported on first use, so that ``python -m sklearn_crtcl.experiments.calibration``
    # does not find its module already imported by this package (runpy's warning)
    if name in _CALIBRATION_NAMES:
        from . import calibration
        return getattr(calibration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

