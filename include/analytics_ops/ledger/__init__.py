"""The legacy cron ledger: collect JSONL result lines into ``ops.ledger_entries``, alert on
non-zero exits, and report per-job statistics (``python -m include.analytics_ops.ledger stats``).
"""

from include.analytics_ops.ledger.collector import (
    CollectResult,
    FileResult,
    collect,
    collect_file,
    expand_paths,
    ledger_alert_key,
    parse_line,
)
from include.analytics_ops.ledger.stats import LedgerJobStats, format_stats, ledger_stats

__all__ = [
    "CollectResult",
    "FileResult",
    "LedgerJobStats",
    "collect",
    "collect_file",
    "expand_paths",
    "format_stats",
    "ledger_alert_key",
    "ledger_stats",
    "parse_line",
]
