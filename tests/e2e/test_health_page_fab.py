"""Who may see the health page under the FAB auth manager (apache-airflow-providers-fab).

Decision: whoever may read every monitored DAG — the FAB roles Viewer, User, Op and Admin.
Refused: Public, and a custom role that can read only one of the DAGs (also when it adds
``?dag_id=<that DAG>``, which Airflow's own ``requires_access_dag`` would honour). A real
``airflow api-server`` with ``FabAuthManager``; users are created through FAB's security
manager in a separate process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.test_health_page import REPO_ROOT, airflow_api_server

pytestmark = pytest.mark.e2e

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PASSWORD = "Fab-test-pw-1"
USERS = {"viewer": "Viewer", "user": "User", "op": "Op", "admin": "Admin", "public": "Public",
         "onedag": "OneDag"}  # fmt: skip

CREATE_USERS = f"""
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    role = sm.find_role("OneDag") or sm.add_role("OneDag")
    for action, resource in (("can_read", "DAG:analytics_nightly"), ("can_read", "Website")):
        sm.add_permission_to_role(role, sm.create_permission(action, resource))
    for name, role_name in {USERS!r}.items():
        if sm.find_user(username=name) is None:
            sm.add_user(name, name, name, name + "@example.test", sm.find_role(role_name),
                        password={PASSWORD!r})
print("users ready")
"""


@pytest.fixture(scope="module")
def fab_server(devenv, tmp_path_factory):
    env = {"AIRFLOW__CORE__AUTH_MANAGER": FAB}
    full = devenv.env(**env)
    airflow_bin = str(Path(sys.executable).with_name("airflow"))
    for args in ([airflow_bin, "fab-db", "migrate"], [sys.executable, "-c", CREATE_USERS]):
        done = subprocess.run(
            args, env=full, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with airflow_api_server(devenv, tmp_path_factory.mktemp("fab"), auth_env=env) as server:
        yield server


def token(server, username: str) -> str:
    resp = httpx.post(
        f"{server.url}/auth/token",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    assert resp.status_code in (200, 201), (username, resp.status_code, resp.text[:300])
    return resp.json()["access_token"]


def test_an_import_error_in_airflows_metadata_shows_on_the_page(fab_server, devenv, db):
    """A DAG file that does not parse has no ``dag`` row at all: matched by its file name."""
    auth = {"Authorization": f"Bearer {token(fab_server, 'viewer')}"}
    api = f"{fab_server.url}/analytics-health/api/health.json"
    with psycopg.connect(devenv.dsn_for(devenv.airflow_db), autocommit=True) as meta:
        (error_id,) = meta.execute(
            "INSERT INTO import_error (timestamp, filename, bundle_name, stacktrace)"
            " VALUES (now(), %s, 'dags-folder', %s) RETURNING id",
            (
                str(REPO_ROOT / "dags" / "analytics_weekly.py"),
                "Traceback (most recent call last):\nSyntaxError: invalid syntax <here>",
            ),
        ).fetchone()
        try:
            data = httpx.get(api, headers=auth, timeout=60).json()
        finally:
            meta.execute("DELETE FROM import_error WHERE id = %s", (error_id,))
    weekly = next(j for j in data["jobs"] if j["key"] == "dag:analytics_weekly")
    assert weekly["state"] == "import_error"
    assert weekly["state_reason"] == "import error: SyntaxError: invalid syntax <here>"
    assert data["overall"]["status"] == "critical"


def test_fab_roles_that_read_the_dags_see_the_page_others_get_403(fab_server, db):
    api = f"{fab_server.url}/analytics-health/api/health.json"
    page = f"{fab_server.url}/analytics-health/"
    assert httpx.get(api, timeout=30).status_code == 401
    seen = {}
    for name in USERS:
        auth = {"Authorization": f"Bearer {token(fab_server, name)}"}
        seen[name] = httpx.get(api, headers=auth, timeout=60).status_code
        if name == "viewer":
            html = httpx.get(page, headers=auth, timeout=60)
            assert html.status_code == 200, fab_server.log_tail()
            # every registry DAG is listed, also on a database where nothing ran
            assert 'data-job="dag:analytics_weekly"' in html.text
        if name == "onedag":
            sneaky = httpx.get(
                api, headers=auth, params={"dag_id": "analytics_nightly"}, timeout=60
            )
            assert sneaky.status_code == 403
            assert "read access to the DAGs" in sneaky.json()["detail"]
    assert seen == {
        "viewer": 200,
        "user": 200,
        "op": 200,
        "admin": 200,
        "public": 403,
        "onedag": 403,
    }, fab_server.log_tail()
