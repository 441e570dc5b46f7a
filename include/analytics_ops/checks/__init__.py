"""Statistics of the six nightly metric checks (pure functions: no Airflow, no database).

``range_check`` / ``trend_check`` judge one metric on one day from its history and return a
:class:`CheckOutcome` (one ``analytics.check_results`` row); ``overall_status`` folds the six into
the proof status (legacy exit codes 0/1/2). Thresholds live in :class:`CheckConfig`, whose
``version`` is recorded with every row.
"""

from .config import ALGORITHM_VERSION, DEFAULT_CONFIG, METRICS, CheckConfig
from .formatting import format_change, format_value, human_number
from .stats import (
    CHECK_NAMES,
    EXIT_CODES,
    SEVERITY_RANK,
    ArrayStats,
    CheckOutcome,
    DayPoint,
    evaluate_arrays,
    exit_code,
    history_from_rows,
    overall_status,
    range_check,
    trend_check,
)

DEFAULT = DEFAULT_CONFIG

__all__ = [
    "ALGORITHM_VERSION",
    "CHECK_NAMES",
    "DEFAULT",
    "DEFAULT_CONFIG",
    "EXIT_CODES",
    "METRICS",
    "SEVERITY_RANK",
    "ArrayStats",
    "CheckConfig",
    "CheckOutcome",
    "DayPoint",
    "evaluate_arrays",
    "exit_code",
    "format_change",
    "format_value",
    "history_from_rows",
    "human_number",
    "overall_status",
    "range_check",
    "trend_check",
]
