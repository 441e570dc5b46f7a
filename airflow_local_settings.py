"""Airflow's local-settings hook: every Airflow process imports this module at start-up because
the repo root is on PYTHONPATH. It only applies version-gated fixes for bugs of the pinned
Airflow release; see include/analytics_ops/compat.py.
"""

from include.analytics_ops import compat

compat.apply()
