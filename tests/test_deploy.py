"""docs/deploy.md, followed from a fresh copy of the repository: the `sh` blocks' commands are
run as written (only the port, and non-interactive flags for createsuperuser, change), with the
environment the page's `export` lines name, then the site is checked as a visitor and a webhook
caller see it: pages, static files, a login, a webhook run executed by the worker, beat running.

Bounded: the copy shares this checkout's .venv and the runner it built (FLOWS_RUNNER_DIR), so
`make setup` only migrates a fresh PostgreSQL database, gathers static files and loads templates.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.engine import live
from tests.engine.conftest import document

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "deploy.md"
POSTGRES = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379/13"
DATABASE = "flowbuilder_deploy_test"
OPERATOR_SET = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FLOWS_ENCRYPTION_KEY", "FLOWS_SIGNUP")
LONG_RUNNING = ("uvicorn", "celery")


def commands() -> tuple[list[str], list[str]]:
    """The exported names and the commands of the page's `sh` blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    exported, run = [], []
    for line in "\n".join(blocks).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("export "):
            exported.append(line.removeprefix("export ").split("=", 1)[0])
        elif line:
            run.append(line)
    return exported, run


def copy_checkout(target: Path) -> None:
    """What a clone of this working tree holds (committed or not), without build products."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())


@pytest.fixture
def database():
    base = POSTGRES.rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    yield f"{base}/{DATABASE}"
    with psycopg.connect(base + "/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def test_the_deploy_page_gives_a_working_site_from_a_fresh_copy(database):
    exported, steps = commands()
    clone = Path(tempfile.mkdtemp(prefix="flowbuilder-deploy-"))
    port = live.free_port()
    base = f"http://127.0.0.1:{port}"
    values = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FLOWS_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "FLOWS_PUBLIC_URL": base,
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    }
    assert exported == list(values)
    env = {k: v for k, v in os.environ.items() if k not in OPERATOR_SET}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(values, FLOWS_RUNNER_DIR=str(ROOT / "build" / "runner"))
    env.update(FLOWS_WORKER_CONCURRENCY="1", PYTHONUNBUFFERED="1")
    copy_checkout(clone)
    processes: list[subprocess.Popen] = []
    try:
        for step in steps:
            args = shlex.split(step)
            if "createsuperuser" in args:
                args += ["--noinput", "--username", "admin", "--email", "admin@example.com"]
                env["DJANGO_SUPERUSER_PASSWORD"] = "a-long-admin-password-42"
            if args[0].endswith(LONG_RUNNING):
                if "--port" in args:
                    args[args.index("--port") + 1] = str(port)
                log = (clone / f"{len(processes)}.log").open("ab")
                processes.append(
                    subprocess.Popen(
                        args,
                        cwd=clone,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                continue
            done = subprocess.run(
                args, cwd=clone, env=env, capture_output=True, text=True, timeout=240
            )
            assert done.returncode == 0, f"{step}:\n{done.stdout}\n{done.stderr}"
        assert len(processes) == 3, "the page runs a server, a worker and beat"

        def answering() -> bool:
            for process in processes:
                assert process.poll() is None, (
                    clone / f"{processes.index(process)}.log"
                ).read_text()
            try:
                return httpx.get(base + "/accounts/login/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        live.wait_until(answering, 60, "the server to answer", interval=0.2)
        login_page = httpx.get(base + "/accounts/login/").text
        for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', login_page):
            served = httpx.get(base + asset)
            assert served.status_code == 200, asset
            assert served.content
        assert "/static/css/app.css" in login_page

        # Signing in hashes the password: allow for a machine busy with other work.
        with httpx.Client(base_url=base, timeout=30) as browser:
            browser.get("/accounts/login/")
            logged_in = browser.post(
                "/accounts/login/",
                data={"username": "admin", "password": "a-long-admin-password-42"},
                headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": base},
            )
            assert logged_in.status_code == 302

        seeded = subprocess.run(
            [".venv/bin/python", "-m", "tests.engine.live", "seed"],
            cwd=clone,
            env={**env, "DJANGO_SETTINGS_MODULE": "flowbuilder.settings"},
            input=json.dumps({"document": document()}),
            capture_output=True,
            text=True,
            check=True,
        )
        token = json.loads(seeded.stdout)["token"]
        posted = httpx.post(f"{base}/hooks/{token}/", json={"name": "Ada"})
        assert posted.status_code == 202
        status_url = posted.json()["status_url"]
        finished = live.wait_until(
            lambda: (s := httpx.get(status_url).json())["status"] == "succeeded" and s,
            60,
            "the webhook's run to finish",
            interval=0.2,
        )
        assert finished["output"] == {"text": "Hello, Ada!"}
        assert "beat: Starting" in (clone / "2.log").read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(clone, ignore_errors=True)
