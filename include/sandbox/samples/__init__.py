"""Deterministic sample rows for tests, benchmarks and the demo (never imported by the DAGs)."""
