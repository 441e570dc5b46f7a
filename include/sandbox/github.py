"""GitHub REST stand-in: ``GET /repos/{owner}/{repo}`` and ``GET /repos/{owner}/{repo}/issues``.

Follows GitHub's documented behaviour: the issues endpoint lists issues *and* pull requests (PRs
carry a ``pull_request`` object with ``merged_at``); ``state`` (default ``open``), ``since``
(updated_at ≥ since), ``sort`` (created|updated|comments, default created), ``direction`` (default
desc), ``labels``, ``assignee``, ``per_page`` (default 30, max 100), ``page``; ``Link`` header
pagination whose URLs point at ``/repositories/{id}/issues`` (as GitHub's do — follow them
verbatim); an ``ETag`` on every 200 and ``If-None-Match`` → 304 without a body that does not count
against the rate limit; ``X-RateLimit-*`` headers; 401 ``Bad credentials``; 404 ``Not Found``.

Sample repos (``constants.SAMPLE_REPOS``) and label convention:

- ``bug`` marks a bug; severity ``severity:critical|high|medium|low``; revenue impact
  ``revenue:<dollars per day>`` (e.g. ``revenue:2500``); other labels (``enhancement``,
  ``tech-debt``, ``good first issue``, ``ios``, ``android``) are noise.
- ``acme/storefront``: an unassigned open critical bug (revenue:2500) and a 45-day-old assigned
  critical bug (SLA breach, revenue:4000).
- ``acme/checkout``: an unassigned open critical bug (revenue:5000) and an open high bug
  (revenue:1200). Open revenue impact over all repos is > $10k/day.
- ``acme/mobile-app``: a 20-day-old open critical bug (revenue:800), medium/low noise.
- ``acme/data-pipeline``: healthy, mostly closed.
- ``acme/legacy-admin``: inactive (``active = false`` in analytics.projects, archived), no activity
  for months.

Data times are relative to ``GH_NOW`` (DEMO_DAY 12:00 PT).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from include.sandbox.constants import DEMO_DAY, GITHUB_TOKEN, SAMPLE_REPOS
from include.sandbox.data import rng_for
from include.sandbox.http import Request, Response, dumps
from include.sandbox.timeutil import PT, parse_datetime_us, us_to_dt

GH_NOW = datetime(DEMO_DAY.year, DEMO_DAY.month, DEMO_DAY.day, 12, 0, tzinfo=PT).astimezone(UTC)
RATE_LIMIT = 5000
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")
SIZES = {
    "acme/storefront": 110,
    "acme/checkout": 84,
    "acme/mobile-app": 62,
    "acme/data-pipeline": 48,
    "acme/legacy-admin": 41,
}
LABEL_COLORS = {"bug": "d73a4a", "enhancement": "a2eeef"}
DOCS = "https://docs.github.com/rest"
TITLES_BUG = (
    "{area} crashes when {thing} is empty",
    "{area}: wrong total shown for {thing}",
    "Timeout in {area} under load",
    "{area} returns 500 for {thing}",
    "{thing} not saved in {area}",
)
TITLES_OTHER = (
    "Add {thing} to {area}",
    "Refactor {area} {thing} handling",
    "Improve {area} performance",
    "Document {area} {thing}",
)
AREAS = ("search", "listing page", "cart", "payments", "login", "sitemap", "ETL job", "push")
THINGS = ("price filter", "saved homes", "coupon", "address", "photos", "schedule", "token")


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Planted issues: (repo, title, labels, assignee, state, age_days)
PLANTED = (
    (
        "acme/storefront",
        "Checkout button unresponsive on Safari",
        ["bug", "severity:critical", "revenue:2500"],
        None,
        2,
    ),
    (
        "acme/storefront",
        "Listing images fail to load for 10% of users",
        ["bug", "severity:critical", "revenue:4000"],
        "alice",
        45,
    ),
    (
        "acme/checkout",
        "Payment webhook drops Stripe retries",
        ["bug", "severity:critical", "revenue:5000"],
        None,
        6,
    ),
    (
        "acme/checkout",
        "Tax rounding off by a cent for CA orders",
        ["bug", "severity:high", "revenue:1200"],
        "bob",
        12,
    ),
    (
        "acme/mobile-app",
        "Android app logs users out after update",
        ["bug", "severity:critical", "revenue:800", "android"],
        "erin",
        20,
    ),
)


def generate_repo(repo: str, repo_id: int, seed: int) -> list[dict]:
    rng = rng_for(seed, "github", repo)
    n = SIZES.get(repo, 40)
    inactive = repo == "acme/legacy-admin"
    horizon = GH_NOW - (timedelta(days=150) if inactive else timedelta(0))
    planted = [p for p in PLANTED if p[0] == repo]
    items: list[dict] = []
    created_times = sorted(
        horizon - timedelta(days=rng.uniform(0, 200), minutes=rng.randrange(1440))
        for _ in range(n - len(planted))
    )
    specs = [(c, None) for c in created_times]
    for p in planted:
        specs.append((GH_NOW - timedelta(days=p[4], hours=3), p))
    specs.sort(key=lambda s: s[0])
    for number, (created, plant) in enumerate(specs, start=1):
        if plant is not None:
            _, title, labels, assignee, _age = plant
            updated = min(GH_NOW, created + timedelta(hours=rng.randrange(1, 48)))
            items.append(
                _item(
                    repo, repo_id, number, title, labels, assignee, "open", created, updated, None
                )
            )
            continue
        is_pr = rng.random() < 0.35
        area, thing = rng.choice(AREAS), rng.choice(THINGS)
        labels: list[str] = []
        if not is_pr and rng.random() < 0.45:
            labels.append("bug")
            labels.append(f"severity:{rng.choice(('high', 'medium', 'medium', 'low', 'low'))}")
            title = rng.choice(TITLES_BUG).format(area=area, thing=thing)
        else:
            title = rng.choice(TITLES_OTHER).format(area=area, thing=thing)
            if rng.random() < 0.4:
                labels.append(rng.choice(("enhancement", "tech-debt", "good first issue")))
        if repo == "acme/mobile-app" and rng.random() < 0.5:
            labels.append(rng.choice(("ios", "android")))
        age = (horizon - created).days
        closed_p = 0.85 if is_pr else (0.6 if age > 14 else 0.25)
        if repo == "acme/data-pipeline":
            closed_p = 0.95
        closed = rng.random() < closed_p
        lifetime = timedelta(hours=rng.uniform(2, 24 * 20))
        closed_at = min(created + lifetime, horizon) if closed else None
        updated = closed_at or min(horizon, created + timedelta(hours=rng.uniform(1, 24 * 30)))
        if not closed and "bug" in labels and rng.random() < 0.1:
            labels.append(f"revenue:{rng.randrange(1, 4) * 100}")
        assignee = rng.choice(USERS) if rng.random() < (0.7 if closed else 0.55) else None
        merged = closed_at if (is_pr and closed and rng.random() < 0.85) else None
        items.append(
            _item(
                repo,
                repo_id,
                number,
                title,
                labels,
                assignee,
                "closed" if closed else "open",
                created,
                updated,
                closed_at,
                is_pr=is_pr,
                merged_at=merged,
                author=rng.choice(USERS),
                comments=rng.randrange(0, 12),
            )
        )
    return items


def _item(
    repo,
    repo_id,
    number,
    title,
    labels,
    assignee,
    state,
    created,
    updated,
    closed_at,
    *,
    is_pr=False,
    merged_at=None,
    author="alice",
    comments=0,
) -> dict:
    api = f"https://api.github.com/repos/{repo}"
    kind = "pull" if is_pr else "issues"
    item = {
        "url": f"{api}/issues/{number}",
        "repository_url": api,
        "html_url": f"https://github.com/{repo}/{kind}/{number}",
        "id": repo_id * 10_000 + number,
        "node_id": f"I_sandbox{repo_id}_{number}",
        "number": number,
        "title": title,
        "user": {"login": author, "id": 1000 + USERS.index(author), "type": "User"},
        "labels": [_label(name) for name in labels],
        "state": state,
        "state_reason": "completed" if state == "closed" else None,
        "locked": False,
        "assignee": _user(assignee),
        "assignees": [_user(assignee)] if assignee else [],
        "milestone": None,
        "comments": comments,
        "created_at": iso(created),
        "updated_at": iso(updated),
        "closed_at": iso(closed_at),
        "author_association": "MEMBER",
        "body": f"Sandbox item {number} of {repo}.",
    }
    if is_pr:
        item["pull_request"] = {
            "url": f"{api}/pulls/{number}",
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
            "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
            "merged_at": iso(merged_at),
        }
    return item


def _label(name: str) -> dict:
    color = LABEL_COLORS.get(name) or ("b60205" if name.startswith("severity:") else "ededed")
    return {
        "id": int(hashlib.md5(name.encode()).hexdigest()[:8], 16),
        "name": name,
        "color": color,
        "default": name in ("bug", "enhancement"),
        "description": None,
    }


def _user(login: str | None) -> dict | None:
    if not login:
        return None
    return {"login": login, "id": 1000 + (USERS.index(login) if login in USERS else 99)}


class GitHubService:
    def __init__(self, sandbox) -> None:
        self.sb = sandbox
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.repos: dict[str, dict] = {}
            self.items: dict[str, list[dict]] = {}
            for i, (repo, name, active) in enumerate(SAMPLE_REPOS):
                repo_id = 700_001 + i
                self.repos[repo] = {"id": repo_id, "name": name, "active": active}
                self.items[repo] = generate_repo(repo, repo_id, self.sb.seed)
            self.rate_remaining = RATE_LIMIT
            self.rate_reset = int(time.time()) + 3600

    def set_rate_limit(self, remaining: int | None) -> None:
        with self._lock:
            self.rate_remaining = RATE_LIMIT if remaining is None else int(remaining)
            self.rate_reset = int(time.time()) + 3600

    # ------------------------------------------------------------------ HTTP
    def handle(self, req: Request) -> Response:
        auth = req.headers.get("Authorization") or ""
        if not auth:
            return Response(401, {"message": "Requires authentication", "documentation_url": DOCS})
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != GITHUB_TOKEN:
            return Response(401, {"message": "Bad credentials", "documentation_url": DOCS})
        faults = self.sb.faults_snapshot()
        self.sb.sleep_latency("github", faults)
        if self.sb.take_counter("github_secondary_limit"):
            return Response(
                403,
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few "
                    "minutes before you try again.",
                    "documentation_url": f"{DOCS}/using-the-rest-api/rate-limits-for-the-rest-api"
                    "#about-secondary-rate-limits",
                },
                headers=[("Retry-After", "1")],
            )
        now = time.time()
        with self._lock:
            if now >= self.rate_reset:
                self.rate_remaining = RATE_LIMIT
                self.rate_reset = int(now) + 3600
            if self.rate_remaining <= 0:
                wait = int(faults.get("github_rate_limit_reset_seconds") or 2)
                if self.rate_reset - now > wait:
                    self.rate_reset = int(now) + wait
                return Response(
                    403,
                    {
                        "message": "API rate limit exceeded for user ID 1001. If you reach out to "
                        "GitHub Support for help, please include the request ID.",
                        "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
                    },
                    headers=self._rate_headers(),
                )
        if req.method != "GET":
            return self._finish(Response(404, {"message": "Not Found", "documentation_url": DOCS}))
        resp = self._route(req, faults)
        return self._finish(resp, req)

    def _finish(self, resp: Response, req: Request | None = None) -> Response:
        if resp.status == 200 and req is not None:
            body = resp.encoded()
            etag = f'W/"{hashlib.sha256(body).hexdigest()[:40]}"'
            resp.body = body
            resp.headers.append(("ETag", etag))
            match = req.headers.get("If-None-Match")
            if match and etag.removeprefix("W/") in [
                m.strip().removeprefix("W/") for m in match.split(",")
            ]:
                resp = Response(304, None, headers=[("ETag", etag)])
        with self._lock:
            if resp.status != 304:
                self.rate_remaining -= 1
            resp.headers.extend(self._rate_headers())
        return resp

    def _rate_headers(self) -> list[tuple[str, str]]:
        remaining = max(self.rate_remaining, 0)
        return [
            ("X-RateLimit-Limit", str(RATE_LIMIT)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(self.rate_reset)),
            ("X-RateLimit-Used", str(RATE_LIMIT - remaining)),
            ("X-RateLimit-Resource", "core"),
        ]

    def _route(self, req: Request, faults: dict) -> Response:
        parts = [p for p in req.path.split("/") if p]
        repo = None
        rest: list[str] = []
        if parts[:1] == ["repos"] and len(parts) >= 3:
            repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        elif parts[:1] == ["repositories"] and len(parts) >= 2 and parts[1].isdigit():
            rid = int(parts[1])
            repo = next((r for r, meta in self.repos.items() if meta["id"] == rid), None)
            rest = parts[2:]
        if repo is None or repo not in self.repos:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS})
        fail = (faults.get("github_fail_repos") or {}).get(repo)
        if fail:
            return Response(int(fail), {"message": "Server Error", "documentation_url": DOCS})
        if not rest:
            return Response(200, self._repo_json(repo))
        if rest == ["issues"]:
            return self._issues(req, repo)
        if len(rest) == 2 and rest[0] == "issues" and rest[1].isdigit():
            item = next((i for i in self.items[repo] if i["number"] == int(rest[1])), None)
            if item:
                return Response(200, item)
        return Response(404, {"message": "Not Found", "documentation_url": DOCS})

    def _repo_json(self, repo: str) -> dict:
        meta = self.repos[repo]
        items = self.items[repo]
        owner, name = repo.split("/")
        latest = max(i["updated_at"] for i in items)
        return {
            "id": meta["id"],
            "node_id": f"R_sandbox{meta['id']}",
            "name": name,
            "full_name": repo,
            "private": True,
            "owner": {"login": owner, "id": 9001, "type": "Organization"},
            "html_url": f"https://github.com/{repo}",
            "description": f"{meta['name']} (sandbox)",
            "fork": False,
            "archived": not meta["active"],
            "disabled": False,
            "default_branch": "main",
            "open_issues_count": sum(1 for i in items if i["state"] == "open"),
            "created_at": "2023-02-01T17:00:00Z",
            "updated_at": latest,
            "pushed_at": latest,
        }

    def _issues(self, req: Request, repo: str) -> Response:
        q = req.query
        state = q.get("state", "open")
        sort = q.get("sort", "created")
        direction = q.get("direction", "desc")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments"):
            return _validation_failed("state/sort")
        if direction not in ("asc", "desc"):
            return _validation_failed("direction")
        try:
            per_page = min(max(int(q.get("per_page", 30)), 1), 100)
            page = max(int(q.get("page", 1)), 1)
        except ValueError:
            return _validation_failed("per_page/page")
        since = None
        if q.get("since"):
            since = parse_datetime_us(q["since"])
            if since is None:
                return _validation_failed("since")
        labels = [x.strip() for x in q.get("labels", "").split(",") if x.strip()]
        assignee = q.get("assignee")
        with self._lock:
            items = list(self.items[repo])
        out = []
        for item in items:
            if state != "all" and item["state"] != state:
                continue
            if since is not None and parse_datetime_us(item["updated_at"]) < since:
                continue
            names = {lab["name"] for lab in item["labels"]}
            if labels and not all(x in names for x in labels):
                continue
            login = item["assignee"]["login"] if item["assignee"] else None
            if assignee == "none" and login is not None:
                continue
            if assignee == "*" and login is None:
                continue
            if assignee not in (None, "none", "*") and login != assignee:
                continue
            out.append(item)
        key = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
        out.sort(key=lambda i: (i[key], i["number"]), reverse=direction == "desc")
        last_page = max(1, -(-len(out) // per_page))
        chunk = out[(page - 1) * per_page : page * per_page]
        headers = []
        link = self._link(req, repo, page, last_page)
        if link:
            headers.append(("Link", link))
        return Response(200, dumps(chunk), headers=headers)

    def _link(self, req: Request, repo: str, page: int, last: int) -> str:
        base = f"http://{req.host}/repositories/{self.repos[repo]['id']}/issues"
        params = [(k, v) for k, v in req.query_list if k != "page"]

        def url(p: int) -> str:
            return f"{base}?{urlencode([*params, ('page', str(p))])}"

        rels = []
        if page > 1:
            rels.append(f'<{url(page - 1)}>; rel="prev"')
        if page < last:
            rels.append(f'<{url(page + 1)}>; rel="next"')
            rels.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            rels.append(f'<{url(1)}>; rel="first"')
        return ", ".join(rels)

    # ------------------------------------------------------------------ mutation (control API)
    def touch(self, body: dict) -> Response:
        repo = body.get("repo")
        if repo not in self.repos:
            return Response(404, {"error": f"unknown repo {repo!r}"})
        with self._lock:
            items = self.items[repo]
            latest = max(parse_datetime_us(i["updated_at"]) for i in items)
            now_us = max(int(time.time()) * 1_000_000, latest + 1_000_000)
            now = us_to_dt(now_us)
            number = body.get("number")
            item = next((i for i in items if i["number"] == number), None) if number else None
            if item is None:
                number = int(number or max(i["number"] for i in items) + 1)
                item = _item(
                    repo,
                    self.repos[repo]["id"],
                    number,
                    body.get("title") or f"New item {number}",
                    list(body.get("labels") or []),
                    body.get("assignee"),
                    "open",
                    now,
                    now,
                    None,
                    is_pr=bool(body.get("pull_request")),
                )
                items.append(item)
            else:
                item = copy.deepcopy(item)
                items[:] = [item if i["number"] == number else i for i in items]
            if body.get("title"):
                item["title"] = body["title"]
            if "labels" in body and body["labels"] is not None:
                item["labels"] = [_label(n) for n in body["labels"]]
            if "assignee" in body:
                item["assignee"] = _user(body["assignee"])
                item["assignees"] = [_user(body["assignee"])] if body["assignee"] else []
            if body.get("state") in ("open", "closed"):
                item["state"] = body["state"]
                item["closed_at"] = iso(now) if body["state"] == "closed" else None
                item["state_reason"] = "completed" if body["state"] == "closed" else None
                if "pull_request" in item and body["state"] == "closed" and body.get("merged"):
                    item["pull_request"]["merged_at"] = iso(now)
            item["updated_at"] = iso(now)
        return Response(200, item)


def _validation_failed(field: str) -> Response:
    return Response(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Issue", "field": field, "code": "invalid"}],
            "documentation_url": DOCS,
        },
    )
