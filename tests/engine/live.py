"""Real processes for the live tests and the throughput bench: an ASGI server (daphne), a Celery
worker, seeding a database, and a WebSocket reader.

`python -m tests.engine.live seed` reads a flow document on stdin, creates two users with
sessions and the deployed flow in the database of DATABASE_URL, and prints what a client needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.keys import TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:g} s waiting for {what}")


class Process:
    """A subprocess in its own session, its output in a log file; stopped with its children."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as when a machine loses the process: no cleanup runs."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def server_env(database_url: str, redis_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    for name, value in TEST_KEYS.items():
        env.setdefault(name, value)
    env.update(
        DJANGO_SETTINGS_MODULE="flowbuilder.settings",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        FLOWS_SCHEDULER_TICK_S="0.2",
        PYTHONPATH=str(ROOT),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


SERVERS = {
    "daphne": lambda port: [
        str(BIN / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "flowbuilder.asgi:application",
    ],
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--ws",
        "websockets",
        "flowbuilder.asgi:application",
    ],
}


def start_server(
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    program: str = "daphne",
    options: tuple[str, ...] = (),
) -> tuple[Process, str]:
    """`options`: more of the server's own options (uvicorn's `--workers 2`)."""
    port = port or free_port()
    server = Process(f"{program}-{port}", [*SERVERS[program](port), *options], env, log_dir)
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if not server.alive():
            raise RuntimeError("the ASGI server exited:\n" + server.output())
        try:
            return httpx.get(base + "/hooks/ready-probe/runs/1/", timeout=1).status_code == 404
        except httpx.HTTPError:
            return False

    try:
        wait_until(answering, 30, "the ASGI server to answer", interval=0.1)
    except BaseException:
        server.stop()  # not left running to serve (or take runs from) whatever comes next
        raise
    return server, base


def start_worker(
    env: dict[str, str], log_dir: Path, concurrency: int | None = 1, pool: str = "prefork"
) -> Process:
    """A `celery worker`; concurrency None leaves the number of processes to its settings."""
    processes = [] if concurrency is None else [f"--concurrency={concurrency}"]
    worker = Process(
        "celery-worker",
        [
            str(BIN / "celery"),
            "-A",
            "flowbuilder",
            "worker",
            f"--pool={pool}",
            *processes,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=info",
        ],
        env,
        log_dir,
    )

    def ready() -> bool:
        if not worker.alive():
            raise RuntimeError("the Celery worker exited:\n" + worker.output())
        return " ready." in worker.output()

    try:
        wait_until(ready, 60, "the Celery worker to be ready", interval=0.1)
    except BaseException:
        worker.stop()  # a stray worker would take the runs of the next test or bench
        raise
    return worker


def postgres_url() -> str:
    """The URL of the test database, for servers and workers started as subprocesses."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def module_executor(name: str, github_url: str) -> Iterator[str]:
    """The executor a deployment really uses, for a test module: "embedded" (the executor's own
    threads) without Redis, else "celery", with a worker on the test database that reaches the
    fake GitHub at `github_url` (a worker learns the URL once, when it starts)."""
    from django.conf import settings

    if not settings.FLOWS_DISTRIBUTED:
        yield "embedded"
        return
    from flowbuilder.celery import app

    app.control.purge()  # messages left by an earlier, interrupted session
    env = server_env(
        postgres_url(),
        settings.REDIS_URL,
        FLOWS_GITHUB_API_URL=github_url,
        FLOWS_ALLOW_PRIVATE_HOSTS="1",
    )
    worker = start_worker(env, Path(tempfile.mkdtemp(prefix=f"flowbuilder-{name}-")))
    try:
        yield "celery"
    finally:
        worker.stop()


def run_manage(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# Seeding (runs where Django is set up: in the test process, or in a subprocess) -----------------


def session_key(user) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def seed(document: dict, connections: dict | None = None, **flow_fields: Any) -> dict[str, Any]:
    """Two users (ada owns the flow, bob does not), both logged in, and ada's deployed flow;
    `connections` ({alias: {service, config, secrets}}) become ada's and bind the aliases."""
    from django.contrib.auth import get_user_model

    from flows.compiler import deploy
    from flows.models import Flow
    from integrations.models import Connection

    users = get_user_model().objects
    # No passwords: they log in by session, and hashing one costs a good part of a second.
    ada = users.filter(username="ada").first() or users.create_user("ada")
    bob = users.filter(username="bob").first() or users.create_user("bob")
    for alias, spec in (connections or {}).items():
        connection = Connection(
            owner=ada, service=spec["service"], name=alias, config=spec.get("config") or {}
        )
        connection.set_secrets(spec.get("secrets") or {})
        connection.save()
        document["connections"][alias] = {"service": spec["service"], "connection": connection.pk}
    flow = Flow.objects.create(
        owner=ada,
        name=document.get("name", "Flow"),
        slug=f"flow-{Flow.objects.count() + 1}",
        document=document,
        **flow_fields,
    )
    deploy(flow, ada)
    return {
        "flow_id": flow.pk,
        "token": flow.webhook_token,
        "ada": session_key(ada),
        "bob": session_key(bob),
    }


# WebSockets -----------------------------------------------------------------------------------


async def read_events(
    base: str,
    path: str,
    session: str | None,
    *,
    until=lambda event: (
        event.get("type") == "run" and event.get("status") not in ("queued", "running")
    ),
    timeout: float = 30,
    on_event=None,
    on_open=None,
) -> list[dict[str, Any]]:
    """Events sent on a WebSocket until `until(event)` holds; raises ConnectionClosed if refused.
    `on_open` is awaited once the socket is open (the consumer has joined its group)."""
    from websockets.asyncio.client import connect

    headers = {"Cookie": f"sessionid={session}"} if session else {}
    url = base.replace("http://", "ws://") + path
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with connect(url, origin=base, additional_headers=headers) as ws:
            if on_open:
                await on_open()
            async for text in ws:
                event = json.loads(text)
                events.append(event)
                if on_event:
                    await on_event(event)
                if until(event):
                    break
    return events


async def close_code(base: str, path: str, session: str | None) -> int | None:
    """The close code a WebSocket gets right after connecting (None if it stays open)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    headers = {"Cookie": f"sessionid={session}"} if session else {}
    url = base.replace("http://", "ws://") + path
    async with connect(url, origin=base, additional_headers=headers) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        except TimeoutError:
            return None
    return None


if __name__ == "__main__":
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowbuilder.settings")
    django.setup()
    if sys.argv[1:] == ["seed"]:
        request = json.loads(sys.stdin.read())
        flow = request.get("flow", {})
        print(json.dumps(seed(request["document"], request.get("connections"), **flow)))
    else:
        raise SystemExit("usage: python -m tests.engine.live seed < request.json")
