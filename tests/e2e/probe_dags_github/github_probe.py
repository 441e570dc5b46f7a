"""Test fixture DAG: the GitHub nightly branch and the bug-risk group, wired by their factories.

Owner: data-platform (tests only; not deployed). When it fails: see tests/e2e/test_github_tasks.py.
"""

from datetime import UTC, datetime

from airflow.sdk import dag

from include.analytics_ops import callbacks
from include.analytics_ops.operators.github import add_bug_risk_group, add_github_branch


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args=callbacks.default_args(),
    tags=["github"],
    doc_md=__doc__,
)
def github_probe():
    _first, last = add_github_branch()
    last >> add_bug_risk_group()


github_probe()
