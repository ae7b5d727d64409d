"""Real servers when a service they depend on is down, and two deployments on one Redis.

- Redis unreachable from the web server: a webhook is accepted (202, `queued_later`), its run is
  stored once, a retried delivery is not stored again, and the recovery sweep executes it once
  Redis is back.
- PostgreSQL unreachable: a webhook gets a 503 JSON answer and a person a plain page, in seconds.
- Two deployments sharing one Redis server never hear each other's run events.

The servers use the test database (PostgreSQL with DATABASE_URL set, else a SQLite file migrated
by a subprocess) and a Redis database of their own, so that their Celery queue is not shared
with other test runs on the machine.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from flows.models import Run

from . import live
from .conftest import document

DISTRIBUTED = settings.FLOWS_DISTRIBUTED
pytestmark = pytest.mark.django_db(transaction=True)

REDIS = "redis://127.0.0.1:6379/12"
GREETER = document()


class Deployment:
    """The database the servers share, seeded and read from the test process."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.sqlite_path = None if DISTRIBUTED else log_dir / "outages.sqlite3"
        self.db_url = live.postgres_url() if DISTRIBUTED else f"sqlite:///{self.sqlite_path}"

    def env(self, redis_url: str = REDIS, **extra: str) -> dict[str, str]:
        return live.server_env(self.db_url, redis_url, **extra)

    def seed(self, doc: dict) -> dict:
        if DISTRIBUTED:
            return live.seed(doc)
        out = live.run_manage(
            self.env(), "-m", "tests.engine.live", "seed", stdin=json.dumps({"document": doc})
        )
        return json.loads(out)

    def runs(self, flow_id: int) -> list[tuple[int, str]]:
        if DISTRIBUTED:
            return list(Run.objects.filter(flow_id=flow_id).values_list("pk", "status"))
        import sqlite3

        with sqlite3.connect(self.sqlite_path) as db:
            query = "select id, status from flows_run where flow_id = ?"
            return db.execute(query, (flow_id,)).fetchall()


@pytest.fixture(scope="module")
def deployment(django_db_setup, django_db_blocker):
    log_dir = Path(tempfile.mkdtemp(prefix="flowbuilder-outages-"))
    current = Deployment(log_dir)
    if not DISTRIBUTED:
        live.run_manage(current.env(), "manage.py", "migrate", "--noinput")
    live.run_manage(current.env(), "-c", "from flowbuilder.celery import app; app.control.purge()")
    return current


def closed_port() -> int:
    return live.free_port()  # nothing listens there once the probe socket is closed


def test_redis_down_a_webhook_is_accepted_once_and_runs_when_redis_is_back(deployment):
    info = deployment.seed(GREETER)
    down = deployment.env(f"redis://127.0.0.1:{closed_port()}/0")
    server, base = live.start_server(down, deployment.log_dir, program="uvicorn")
    worker = None
    try:
        hook = f"{base}/hooks/{info['token']}/"
        started = time.monotonic()
        first = httpx.post(hook, json={"name": "Ada"}, headers={"X-Delivery-Id": "d-1"})
        took = time.monotonic() - started
        assert first.status_code == 202, first.text
        answer = first.json()
        assert answer["status"] == "queued" and answer["queued_later"] is True
        assert "the run is stored and will start once the queue is back" in answer["note"]
        assert took < 5
        # The caller retries anyway: the same delivery is not stored twice.
        again = httpx.post(hook, json={"name": "Ada"}, headers={"X-Delivery-Id": "d-1"})
        assert again.status_code == 200
        assert (again.json()["run_id"], again.json()["duplicate"]) == (answer["run_id"], True)
        assert deployment.runs(info["flow_id"]) == [(answer["run_id"], "queued")]
    finally:
        server.stop()

    # Redis is back: the sweep (beat's, every minute) sends the stored run to a worker.
    up = deployment.env(FLOWS_RUN_STALE_S="0")
    worker = live.start_worker(up, deployment.log_dir, pool="solo")
    try:
        swept = live.run_manage(
            up,
            "-c",
            "import django; django.setup(); from flows.engine.executor import sweep_stale_runs; "
            "print(sweep_stale_runs()['redispatched'])",
        )
        assert swept.strip() == "1"
        live.wait_until(
            lambda: deployment.runs(info["flow_id"])[0][1] == "succeeded", 60, "the run to finish"
        )
        assert deployment.runs(info["flow_id"]) == [(answer["run_id"], "succeeded")]
    finally:
        worker.stop()


def test_postgres_down_webhooks_get_a_quick_503_and_people_a_plain_page(deployment):
    env = deployment.env()
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{closed_port()}/postgres"
    port = live.free_port()
    server = live.Process(f"uvicorn-{port}", live.SERVERS["uvicorn"](port), env, deployment.log_dir)
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert server.alive(), server.output()
        try:
            return httpx.get(base + "/accounts/login/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        live.wait_until(answering, 30, "the server to answer")
        started = time.monotonic()
        hook = httpx.post(f"{base}/hooks/some-token/", json={"name": "Ada"}, timeout=30)
        took = time.monotonic() - started
        assert hook.status_code == 503
        assert hook.headers["Content-Type"] == "application/json"
        assert hook.json()["stored"] is False
        assert "The database is unreachable: nothing was stored" in hook.json()["error"]
        assert hook.headers["Retry-After"] == "30"
        assert took < settings.DB_POOL_TIMEOUT_S + 3

        page = httpx.get(f"{base}/dashboard/", cookies={"sessionid": "x" * 32}, timeout=30)
        assert page.status_code == 503
        assert "text/html" in page.headers["Content-Type"]
        assert "cannot reach its database" in page.text
    finally:
        server.stop()


def test_two_deployments_on_one_redis_never_hear_each_others_run_events(deployment):
    """Deployment B shares A's Redis (and, for the test's sake, its database) but has its own
    SECRET_KEY, hence its own channel prefix: B's watcher of the same flow hears nothing."""
    info = deployment.seed(GREETER)
    env_a = deployment.env()
    env_b = deployment.env(SECRET_KEY="deployment-b-secret-key-0123456789-abcdefghijklmnop")
    session_b = live.run_manage(
        env_b,
        "-c",
        "import django; django.setup(); from django.contrib.auth.models import User; "
        "from tests.engine.live import session_key; "
        "print(session_key(User.objects.get(username='ada')))",
    ).strip()
    worker = live.start_worker(env_a, deployment.log_dir, pool="solo")
    server_a, base_a = live.start_server(env_a, deployment.log_dir, program="uvicorn")
    server_b, base_b = live.start_server(env_b, deployment.log_dir, program="uvicorn")
    watch = f"/ws/flows/{info['flow_id']}/"
    try:

        async def both() -> tuple[list, list]:
            b_ready = asyncio.Event()

            async def post() -> None:
                await b_ready.wait()
                async with httpx.AsyncClient() as client:
                    await client.post(f"{base_a}/hooks/{info['token']}/", json={"name": "Ada"})

            async def watch_b() -> list:
                heard: list = []
                try:
                    await live.read_events(
                        base_b,
                        watch,
                        session_b,
                        until=lambda e: False,
                        timeout=12,
                        on_event=lambda e: _append(heard, e),
                        on_open=_set(b_ready),
                    )
                except TimeoutError:
                    pass
                return heard

            heard_a, heard_b = await asyncio.gather(
                live.read_events(base_a, watch, info["ada"], on_open=post, timeout=30), watch_b()
            )
            return heard_a, heard_b

        heard_a, heard_b = asyncio.run(both())
        assert heard_a[-1]["type"] == "run" and heard_a[-1]["status"] == "succeeded"
        assert heard_b == []
    finally:
        for process in (server_a, server_b, worker):
            process.stop()


async def _append(events: list, event: dict) -> None:
    events.append(event)


def _set(flag: asyncio.Event):
    async def opened() -> None:
        flag.set()

    return opened
