"""Fixtures of the web tests: users and logged-in clients, and for the browser tests a real ASGI
server (uvicorn) in a subprocess on the test database, a Celery worker in distributed mode, and
Chromium driven by Playwright."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from tests.engine.live import free_port
from tests.fakes.base import Answer, Recorded
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import FakeLLM

ROOT = Path(__file__).resolve().parents[2]
# Where the browser journeys save their screenshots: docs/screenshots/ with `make screenshots`
# (FLOWS_SCREENSHOTS=1), otherwise a temporary folder, so that a test run leaves the docs alone.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("FLOWS_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "flowbuilder-screenshots"
)
PASSWORD = "correct-horse-battery-9"

# A subprocess server shares the test database only when SQLite keeps it in a file.
_db = settings.DATABASES["default"]
if _db["ENGINE"].endswith("sqlite3") and not _db.get("TEST", {}).get("NAME"):
    _db_dir = tempfile.mkdtemp(prefix="flowbuilder-web-")
    atexit.register(shutil.rmtree, _db_dir, ignore_errors=True)
    _db.setdefault("TEST", {})["NAME"] = str(Path(_db_dir) / "test.sqlite3")


def make_user(username: str):
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD
    )


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def database_url() -> str:
    """The test database as a DATABASE_URL, for the server and worker subprocesses."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or "postgres"
    auth = f"{user}:{cfg['PASSWORD']}" if cfg.get("PASSWORD") else user
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{cfg['NAME']}"


class Server:
    def __init__(self, url: str, env: dict[str, str]):
        self.url = url
        self.env = env


class GatedLLM(FakeLLM):
    """The fake LLM server, which holds its answers while `gate` is clear: a test can look at a
    run while it waits on the model, then let it finish."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.gate.set()

    def complete(self, request: Recorded) -> Answer:
        self.gate.wait(timeout=30)
        return super().complete(request)


@pytest.fixture(scope="session")
def github_fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as github:
        yield github


@pytest.fixture(scope="session")
def llm_fake() -> Iterator[GatedLLM]:
    with GatedLLM(models=["reviewer-1"]) as llm:
        yield llm


@pytest.fixture(scope="session")
def static_root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="flowbuilder-static-")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "STATIC_ROOT": path},
        check=True,
    )
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def app_server(
    django_db_setup, django_db_blocker, static_root, github_fake, llm_fake
) -> Iterator[Server]:
    """Uvicorn serving the app (HTTP and WebSockets) on the test database."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        db_url = database_url()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "STATIC_ROOT": static_root,
        "FLOWS_PUBLIC_URL": url,
        "FLOWS_ALLOW_PRIVATE_HOSTS": "1",
        "FLOWS_GITHUB_API_URL": github_fake.url,
        "PYTHONUNBUFFERED": "1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "flowbuilder.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = None
    if settings.FLOWS_DISTRIBUTED:
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "flowbuilder",
                "worker",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
    try:
        wait_for_port(port, server)
        yield Server(url, env)
    finally:
        for process in (server, worker):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


# Per module: Playwright's event loop must be gone before tests that run their own loop.
@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import expect, sync_playwright

    # The machine is shared: give the server time before a check counts as failed.
    expect.set_options(timeout=15_000)

    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the tests
    # themselves are still plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, app_server, transactional_db) -> Iterator:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=app_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def greeter_document(name: str = "Greeter", trigger: dict | None = None) -> dict:
    """A small flow that deploys without connections: a manual trigger and a template step."""
    return {
        "schema": "flowbuilder/flow@1",
        "name": name,
        "description": "Says hello.",
        "trigger": trigger or {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "connections": {},
        "steps": [
            {
                "id": "greet",
                "kind": "logic.template",
                "config": {"template": "Hello {{ event.name }}"},
            }
        ],
        "edges": [["trigger", "greet"]],
        "layout": {"trigger": {"x": 40, "y": 120}, "greet": {"x": 300, "y": 120}},
    }


@pytest.fixture
def greeter(alice):
    from flows.models import Flow

    return Flow.objects.create(
        owner=alice, name="Greeter", slug="greeter", document=greeter_document()
    )
