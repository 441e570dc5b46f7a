"""The production deployment files: the compose file validates against the compose-spec schema
and carries what DESIGN §2/§5 and the deployment issue need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_validates_against_the_compose_spec():
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_airflow_services_are_there(compose):
    services = compose["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "airflow-init",
    ):
        assert name in services, name
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert "sandbox" in " ".join(services["sandbox"]["entrypoint"])


def test_common_env_runs_celery_with_project_on_pythonpath_and_no_examples(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["PYTHONPATH"] == "/opt/airflow"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith(":8080/execution/")
    assert env["AIRFLOW_CONN_ANALYTICS_DB"].startswith(
        "${AIRFLOW_CONN_ANALYTICS_DB:-postgresql://analytics:"
    )
    assert "@postgres:5432/analytics}" in env["AIRFLOW_CONN_ANALYTICS_DB"]


def test_code_is_mounted_and_secrets_come_from_env_file(compose):
    common = compose["x-airflow-common"]
    mounts = {v.split(":")[1] for v in common["volumes"]}
    assert {
        "/opt/airflow/dags",
        "/opt/airflow/plugins",
        "/opt/airflow/include",
        "/opt/airflow/airflow_local_settings.py",
    } <= mounts
    assert common["env_file"] == [{"path": ".env", "required": False}]
    text = COMPOSE.read_text()
    assert "phx_" not in text and "ghp_" not in text  # no upstream credentials in the file


def test_init_applies_migrations_creates_pools_and_sets_no_variables():
    init = (ROOT / "docker" / "init.sh").read_text()
    for step in (
        "airflow db migrate",
        "airflow users create",
        "python -m include.analytics_ops.migrate",
        "python -m include.analytics_ops.pools ensure",
    ):
        assert step in init, step
    # Deadlines are plain timedeltas now: nothing may depend on Variables being set at init.
    assert "variables" not in init
    assert (
        "CREATE DATABASE analytics"
        in (ROOT / "docker" / "postgres-init" / "10-analytics-db.sh").read_text()
    )


def test_postgres_init_passes_the_password_as_a_psql_variable_not_spliced_sql():
    script = (ROOT / "docker" / "postgres-init" / "10-analytics-db.sh").read_text()
    assert "PASSWORD :'analytics_password'" in script
    assert "<<-'SQL'" in script  # quoted heredoc: the shell does not expand inside the SQL
    assert "PASSWORD '${" not in script


def test_compose_requires_every_shared_secret_and_password():
    from tests.topology.compose import ComposeError, load_compose

    with pytest.raises(ComposeError, match=r"AIRFLOW_DB_PASSWORD|AIRFLOW_JWT_SECRET"):
        load_compose({})
    common = yaml.safe_load(COMPOSE.read_text())["x-airflow-common"]["environment"]
    for key, var in (
        ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
        ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY"),
        ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
    ):
        assert common[key].startswith("${" + var + ":?"), key
    text = COMPOSE.read_text()
    assert ":-airflow}" not in text and ":-analytics}" not in text  # no known default passwords
    secrets = {"AIRFLOW_JWT_SECRET": "j", "AIRFLOW_FERNET_KEY": "f", "AIRFLOW_API_SECRET_KEY": "s",
               "AIRFLOW_DB_PASSWORD": "p", "ANALYTICS_DB_PASSWORD": "a",
               "_AIRFLOW_WWW_USER_PASSWORD": "w"}  # fmt: skip
    for missing in secrets:
        with pytest.raises(ComposeError, match=missing):
            load_compose({k: v for k, v in secrets.items() if k != missing})
    full = load_compose(secrets)
    env = full["x-airflow-common"]["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "j"
    # every Airflow service shares the same secrets (the anchor is merged, not overridden)
    for name, svc in full["services"].items():
        if name.startswith("airflow-"):
            assert svc["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == "j", name


def test_the_ui_is_published_on_loopback_unless_the_user_opts_in():
    from tests.topology.compose import load_compose

    secrets = {k: "x" for k in ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY",
               "AIRFLOW_API_SECRET_KEY", "AIRFLOW_DB_PASSWORD", "ANALYTICS_DB_PASSWORD",
               "_AIRFLOW_WWW_USER_PASSWORD")}  # fmt: skip
    ports = load_compose(secrets)["services"]["airflow-apiserver"]["ports"]
    assert ports == ["127.0.0.1:8080:8080"]
    opened = load_compose({**secrets, "AIRFLOW_UI_BIND": "0.0.0.0"})
    assert opened["services"]["airflow-apiserver"]["ports"] == ["0.0.0.0:8080:8080"]


def test_init_refuses_passwords_that_a_url_would_mangle(tmp_path):
    init = ROOT / "docker" / "init.sh"
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(init)],
        env={**env, "AIRFLOW_DB_PASSWORD": "p@ss/word", "ANALYTICS_DB_PASSWORD": "ok"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "AIRFLOW_DB_PASSWORD must be set and URL-safe" in result.stderr
    assert "p@ss/word" not in result.stderr + result.stdout  # never echoed


def test_dockerfile_installs_exactly_the_runtime_lock_on_plain_python():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim-bookworm AS runtime" in dockerfile
    runtime = dockerfile.split("FROM runtime AS sandbox")[0]
    assert "pip install -r /tmp/requirements.txt && pip check" in runtime
    assert "requirements-dev" not in runtime
    # the default target (the last stage) is the runtime, without the dev tools
    assert dockerfile.rstrip().splitlines()[-1] == "FROM runtime AS production"
    compose = yaml.safe_load(COMPOSE.read_text())
    assert compose["x-airflow-common"]["build"] == {"context": ".", "target": "production"}
    assert compose["services"]["sandbox"]["build"]["target"] == "sandbox"


def test_env_example_has_placeholders_only():
    import json
    import re

    example = (ROOT / ".env.example").read_text()
    for conn in (
        "AIRFLOW_CONN_ANALYTICS_DB",
        "AIRFLOW_CONN_POSTHOG_API",
        "AIRFLOW_CONN_INVENTORY_API",
        "AIRFLOW_CONN_GITHUB_API",
    ):
        assert conn in example
    # Every credential in the example, active or commented, is a CHANGE_ME placeholder.
    for line in example.splitlines():
        value = line.lstrip("# ").partition("=")[2]
        if value.startswith("{"):
            fields = json.loads(value)
            for key in ("password", "login"):
                if key in fields:
                    assert "CHANGE_ME" in fields[key], line
        elif "://" in value and "@" in value:
            assert re.search(r"://[^:/@]+:CHANGE_ME@", value), line


def test_env_example_names_every_value_compose_requires():
    import re

    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", COMPOSE.read_text()))
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "AIRFLOW_DB_PASSWORD"} <= required
    example = (ROOT / ".env.example").read_text()
    for name in required:
        assert re.search(rf"^{name}=$", example, re.M), f"{name}= missing from .env.example"
