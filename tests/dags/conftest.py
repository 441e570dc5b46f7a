"""Loads the DagBag once with every connection, Variable, database and network lookup made to
*raise* (apache/airflow tests its examples the same way): a DAG file that does I/O at parse time
fails to import and shows up in ``import_errors``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


class ParseTimeLookup(RuntimeError):
    pass


def _forbid(what: str):
    def raiser(*args, **kwargs):
        raise ParseTimeLookup(f"{what} at DAG parse time")

    return raiser


@pytest.fixture(scope="session")
def dagbag():
    import psycopg
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.variable import Variable as CoreVariable
    from airflow.sdk import BaseHook, Variable

    from include.analytics_ops import config

    mp = pytest.MonkeyPatch()
    mp.setattr(BaseHook, "get_connection", classmethod(_forbid("connection lookup")))
    mp.setattr(Variable, "get", staticmethod(_forbid("Variable.get")))
    mp.setattr(CoreVariable, "get", classmethod(_forbid("Variable.get")))
    mp.setattr(config, "_variable", _forbid("runtime setting (config.setting)"))
    mp.setattr(psycopg, "connect", _forbid("database connection"))
    mp.setattr(socket.socket, "connect", _forbid("network connection"))
    try:
        bag = DagBag(dag_folder=str(DAGS_DIR))
    finally:
        mp.undo()
    return bag


@pytest.fixture(scope="session")
def expected_dag_ids() -> set[str]:
    text = (Path(__file__).parent / "expected_dag_ids.txt").read_text()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
