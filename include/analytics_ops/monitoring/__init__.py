"""Monitoring of the jobs themselves: the registry of monitored jobs (``jobs``), the pure
health evaluation (``health.evaluate``), run-history sources (``sources``), persistence and
health-page queries (``store``) and the evaluation pass with its alerts (``evaluate``).

CLI: ``python -m include.analytics_ops.monitoring {evaluate,status}``.
"""
