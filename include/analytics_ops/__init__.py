"""analytics-ops: the shared package behind the DAGs (imported as ``include.analytics_ops``).

Everything here is importable without the Airflow runtime; the few helpers that need Airflow
(connections, context) import it lazily inside the function.
"""
