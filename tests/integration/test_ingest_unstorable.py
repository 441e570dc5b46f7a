"""Rows PostgreSQL cannot store as they are (lone surrogates, NaN/Infinity) are dead letters with a
reason that ``ops.dead_letters`` stores, never a crash that blocks the rows after them.

Real PostgreSQL; the end-to-end case talks to a PostHog Query API stand-in on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from include.analytics_ops import store
from include.analytics_ops.ingest import STREAM
from include.analytics_ops.ingest.loader import INSERT_ONE_SQL, ingest_window, insert_one_params
from include.analytics_ops.ingest.validation import COLUMNS, Rules, split_rows
from tests.integration.test_ingest_loader import CFG, KEY, WINDOW, loaded_uuids, make_client

GOOD = "0192f0c1-8a2b-7c3d-9e4f-000000000001"
BAD = "0192f0c1-8a2b-7c3d-9e4f-000000000002"
AT = "2026-11-17T18:05:00.000Z"
AT_MS = WINDOW.start_ms + 5 * 60_000
RULES = Rules({"purchase": ("order_id",)}, {}, WINDOW.start_ms, WINDOW.end_ms)


def row(uuid: str = GOOD, **over) -> list:
    base = {
        "uuid": uuid,
        "event": "$pageview",
        "distinct_id": "seeker-1",
        "timestamp": AT,
        "created_at": AT,
        "properties": {"$current_url": "https://example.test/"},
        "created_ms": AT_MS,
    }
    base.update(over)
    return [base[c] for c in COLUMNS]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"event": "view\ud800"}, "'event' is not valid Unicode"),
        ({"distinct_id": "\udc00seeker"}, "'distinct_id' is not valid Unicode"),
        ({"properties": {"k\ud800": 1}}, "'properties' is not valid Unicode"),
        ({"properties": {"k": ["\ud800"]}}, "'properties' is not valid Unicode"),
        ({"properties": '{"k": "\ud800"}'}, "'properties' is not valid Unicode"),
        ({"event": "purchase", "properties": {"price": float("nan")}}, "missing required"),
        ({"event": "purchase", "properties": {"x": [float("-inf")]}}, "missing required"),
        ({"timestamp": float("inf")}, "unparseable timestamp"),
    ],
)
def test_an_unstorable_row_is_a_stored_dead_letter_and_the_good_row_loads(db, override, reason):
    good, bad = split_rows([row(BAD, **override), row()], COLUMNS, RULES)
    assert len(good) == 1 and len(bad) == 1
    _payload, why, key = bad[0]
    assert key == BAD and why.startswith(reason), why
    with db.transaction():  # what a committed page does with both
        for loaded in good:
            db.execute(INSERT_ONE_SQL, insert_one_params(loaded))
        assert store.add_dead_letters(db, STREAM, bad) == 1
    stored = db.execute("SELECT uuid::text FROM analytics.posthog_events").fetchall()
    assert stored == [(GOOD,)]
    (letter,) = store.open_dead_letters(db, STREAM)
    assert letter["source_key"] == BAD and letter["reason"] == why
    payload = db.execute("SELECT payload FROM ops.dead_letters").fetchone()[0]
    assert payload["uuid"] == BAD and set(payload) == set(COLUMNS)


# ----------------------------------------------------------------- end to end, over loopback
class QueryApi:
    """A Query API stand-in: the first page is one row whose ``properties`` hold a NaN token
    (valid for Python's json, refused by msgspec: the client raises UndecodableBody), the page
    after it one good row."""

    def __init__(self) -> None:
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                api.requests += 1
                values = body["query"]["values"]
                if "c_ms" in values:
                    rows = [row(properties=json.dumps({"price": 3}))]
                else:
                    rows = [row(BAD, properties={"price": float("nan"), "n": float("inf")})]
                answer = json.dumps({"columns": list(COLUMNS), "results": rows}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def query_api() -> Iterator[QueryApi]:
    api = QueryApi()
    yield api
    api.close()


def test_a_nan_in_an_undecodable_row_is_a_dead_letter_and_the_window_completes(
    db, pg_dsn, query_api
):
    with psycopg.connect(pg_dsn, autocommit=True) as conn, make_client(query_api.url) as client:
        result = ingest_window(conn, client, WINDOW, CFG, key=KEY)
    assert (result.status, result.loaded, result.dead_lettered) == ("partial", 1, 1)
    assert loaded_uuids(db, WINDOW) == [GOOD]
    (letter,) = store.open_dead_letters(db, STREAM)
    assert letter["source_key"] == BAD and letter["reason"].startswith("undecodable response body")
    payload = db.execute("SELECT payload FROM ops.dead_letters").fetchone()[0]
    assert payload["properties"] == {"price": "nan", "n": "inf"}
    checkpoint = db.execute("SELECT status FROM ops.checkpoints").fetchone()
    assert checkpoint == ("complete",)
