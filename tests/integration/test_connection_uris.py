"""One connection path (issue 16): a connection given as an Airflow URI — percent-encoded
password, ``__extra__`` JSON, a host that carries its scheme — is read by Airflow's own rules
for every upstream: the analytics database (a real role whose password needs encoding, with
password authentication switched on for it), Airflow's API (a stub on loopback), the alert mail
server and the Slack webhook (the real receivers on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from include.analytics_ops import alerts, db
from include.analytics_ops.monitoring.sources import AirflowApiSource
from tests.conftest import REPO_ROOT

PASSWORD = "p@ss/w:rd"  # every character a URI must encode: p%40ss%2Fw%3Ard
ROLE = "aops_uri_user"


def extra_query(extra: dict) -> str:
    return "__extra__=" + quote(json.dumps(extra), safe="")


def _wait_until_passwords_are_checked(dsn: str) -> None:
    """``pg_reload_conf`` only signals the server: wait (bounded) until a wrong password is
    refused, i.e. the new pg_hba.conf rule is in force."""
    for _ in range(200):
        try:
            psycopg.connect(dsn, password="wrong", connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return
            raise
        threading.Event().wait(0.05)
    raise AssertionError("the server still lets the role in without its password")


@pytest.fixture
def password_role(devenv, db) -> Iterator[dict]:
    """A login role with PASSWORD that the server checks (scram-sha-256 for this role only:
    the harness's pg_hba.conf trusts everyone else)."""
    info = psycopg.conninfo.conninfo_to_dict(devenv.analytics_dsn)
    role = sql.Identifier(ROLE)
    with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(PASSWORD))
        )
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
    with psycopg.connect(devenv.analytics_dsn, autocommit=True) as owner:
        owner.execute(sql.SQL("GRANT SELECT ON public.analytics_ops_migrations TO {}").format(role))
    original = hba.read_text()
    rules = "".join(
        f"{kind} all {ROLE} {addr} scram-sha-256\n"
        for kind, addr in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128"))
    )
    try:
        hba.write_text(rules + original)
        with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
        _wait_until_passwords_are_checked(
            psycopg.conninfo.make_conninfo(devenv.analytics_dsn, user=ROLE)
        )
        yield info
    finally:
        hba.write_text(original)
        with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
        with psycopg.connect(devenv.analytics_dsn, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(role))
        with psycopg.connect(devenv.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(role))


def test_the_analytics_db_from_a_uri_with_an_encoded_password_and_extra(password_role, monkeypatch):
    info = password_role
    host = quote(info.get("host") or "localhost", safe="")  # a socket directory is a path
    port = f":{info['port']}" if info.get("port") else ""
    extra = {"sslmode": "disable", "options": "-c search_path=ops", "application_name": "uri"}
    uri = (
        f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@{host}{port}/{info['dbname']}"
        f"?{extra_query(extra)}"
    )
    assert "p%40ss%2Fw%3Ard" in uri
    monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_DB", uri)
    with db.connect(autocommit=True) as conn:  # what every task uses: PostgresHook
        row = conn.execute(
            "SELECT current_user, current_setting('search_path'),"
            " current_setting('application_name')"
        ).fetchone()
    assert row == (ROLE, "ops", "uri")  # the password was decoded and every extra applied

    # a CLI process reads the same connection the same way (no task around it)
    env = {k: v for k, v in os.environ.items() if k != db.DSN_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "include.analytics_ops.migrate", "--status"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**env, "AIRFLOW_CONN_ANALYTICS_DB": uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "applied" in result.stdout and "pending" not in result.stdout


@pytest.fixture
def api_stub() -> Iterator[tuple[str, list]]:
    """Airflow's API as far as the run source needs it: ``/auth/token`` issues a token for
    admin / PASSWORD; ``/api/v2/dags/<id>`` answers only with a bearer token it issued."""
    seen: list[tuple[str, str, dict | None]] = []
    tokens = {"from-extra", "issued"}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            seen.append(("POST", self.path, body))
            if body == {"username": "admin", "password": PASSWORD}:
                return self._reply(201, {"access_token": "issued"})
            return self._reply(401, {"detail": "Invalid credentials"})

        def do_GET(self):
            seen.append(("GET", self.path, None))
            auth = self.headers.get("Authorization") or ""
            if auth.removeprefix("Bearer ") not in tokens:
                return self._reply(401, {"detail": "Not authenticated"})
            return self._reply(200, {"dag_id": "d", "is_paused": True})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_airflows_api_from_a_uri_takes_the_token_from_extra_and_decodes_the_password(
    api_stub, monkeypatch
):
    address, seen = api_stub
    # Airflow's form for a host that keeps its own scheme: <conn type>://<scheme>://<host>
    extra = extra_query({"token": "from-extra"})
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", f"generic://http://{address}/?{extra}")
    source = AirflowApiSource.from_settings()
    assert source.base_url == f"http://{address}"
    assert source.is_paused("d") is True
    assert [(method, path) for method, path, _ in seen] == [("GET", "/api/v2/dags/d")]

    seen.clear()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API", f"http://admin:{quote(PASSWORD, safe='')}@{address}"
    )
    source = AirflowApiSource.from_settings()
    assert source.is_paused("d") is True
    assert seen[0] == ("POST", "/auth/token", {"username": "admin", "password": PASSWORD})


def test_alert_mail_from_a_smtp_uri_with_extra(db, receivers, monkeypatch):
    port = json.loads(os.environ["AIRFLOW_CONN_SMTP_DEFAULT"])["port"]
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "uri@example.com"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{port}/?{extra_query(extra)}"
    )
    outcome = alerts.raise_alert(db, "uri:smtp", "critical", "test", "mail from a URI")
    assert outcome.deliveries["email"]["ok"] is True, outcome.deliveries["email"]
    (_, mail) = receivers.box.messages[0]
    assert mail["From"] == "uri@example.com" and mail["Subject"] == "[CRITICAL] mail from a URI"


def test_slack_retries_after_a_rate_limit_and_reads_an_encoded_webhook_url(
    db, receivers, monkeypatch
):
    hook = receivers.hook
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SLACK", f"slackwebhook://:{quote(hook.url, safe='')}@/")
    hook.then = [429]  # Slack's rate limit once, then accepted
    outcome = alerts.raise_alert(db, "uri:slack", "critical", "test", "slack from a URI")
    assert outcome.deliveries["slack"] == {**outcome.deliveries["slack"], "ok": True, "status": 200}
    assert len(hook.posts) == 2 and hook.texts()[0] == hook.texts()[1]
    assert hook.posts[1]["path"] == "/services/T000/B000/XXXX"
