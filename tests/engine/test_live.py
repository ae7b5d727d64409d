"""The whole journey against real processes: an ASGI server (daphne) and, with REDIS_URL set, a
Celery worker, both on the test database; webhooks over HTTP, logs over real WebSockets.

Without REDIS_URL (embedded mode) the server runs runs in its own threads, on a SQLite file
database migrated and seeded by subprocesses, since the test process's SQLite database lives in
its memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from flows.engine.executor import WORKER_LOST

from . import live
from .conftest import document

DISTRIBUTED = settings.FLOWS_DISTRIBUTED
# Committed data: the server and the worker read the test database from other processes.
pytestmark = pytest.mark.django_db(transaction=True)

WORK = """
def main(event, ctx):
    ctx.log("hello " + event["body"]["name"])
    n = 0
    for i in range(200000):
        n += i
    ctx.warn("counted " + str(n))
    return {"sum": n}
"""

JOURNEY = document(
    steps=[
        {
            "id": "only_named",
            "kind": "logic.filter",
            "config": {"condition": "{{ event.body.name }}"},
        },
        {"id": "work", "kind": "code.python", "config": {"source": WORK}},
        {
            "id": "reply",
            "kind": "logic.template",
            "config": {"template": "{{ event.body.name }}: {{ steps.work.sum }}"},
        },
    ],
    edges=[],
)

SPIN = """
def main(event, ctx):
    if ctx.run["attempt"] == 1:
        ctx.log("spinning")
        while True:
            pass
    ctx.log("second attempt")
    return {"attempt": ctx.run["attempt"]}
"""

KILLABLE = document(
    steps=[
        {
            "id": "spin",
            "kind": "code.python",
            "config": {"source": SPIN},
            "limits": {"timeout_s": 120, "fuel": 200_000_000_000},
        }
    ],
    edges=[],
)


# Waits of a second or more park the run, and workers sweep for lost runs every second (the
# defaults, 5 s and 20 s, are too long for a test).
PARK_QUICKLY = {"FLOWS_PARK_MIN_S": "1", "FLOWS_WORKER_SWEEP_S": "1"}

COUNT = """
def main(event, ctx):
    word = ctx.run["item"]
    return {"word": word, "letters": len(word)}
"""

RESPONDER = {
    "schema": "flowbuilder/flow@2",
    "name": "Responder",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {
            "id": "each",
            "kind": "logic.foreach",
            "config": {"items": "{{ event.body.words }}", "concurrency": 2},
        },
        {"id": "count", "kind": "code.python", "parent": "each", "config": {"source": COUNT}},
        {
            "id": "answer",
            "kind": "http.respond",
            "config": {
                "status": 201,
                "body": {"letters": "{{ steps.each | map(attribute='letters') | list }}"},
            },
        },
        {"id": "pause", "kind": "logic.wait", "config": {"seconds": 3}},
        {"id": "after", "kind": "logic.template", "config": {"template": "resumed"}},
    ],
    "edges": [
        ["trigger", "out", "each"],
        ["each", "body", "count"],
        ["each", "out", "answer"],
        ["answer", "out", "pause"],
        ["pause", "out", "after"],
    ],
}


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    log_dir: Path
    server: live.Process
    worker: live.Process | None
    sqlite_path: Path | None

    def seed(self, doc: dict[str, Any]) -> dict[str, Any]:
        if DISTRIBUTED:
            return live.seed(doc)

        out = live.run_manage(
            self.env, "-m", "tests.engine.live", "seed", stdin=json.dumps({"document": doc})
        )
        return json.loads(out)

    def run_rows(self, flow_id: int) -> int:
        if DISTRIBUTED:
            from flows.models import Run

            return Run.objects.filter(flow_id=flow_id).count()
        with sqlite3.connect(self.sqlite_path) as db:
            return db.execute(
                "select count(*) from flows_run where flow_id = ?", (flow_id,)
            ).fetchone()[0]

    def latest_run(self, flow_id: int) -> int | None:
        if DISTRIBUTED:
            from flows.models import Run

            return Run.objects.filter(flow_id=flow_id).values_list("pk", flat=True).first()
        with sqlite3.connect(self.sqlite_path) as db:
            query = "select max(id) from flows_run where flow_id = ?"
            return db.execute(query, (flow_id,)).fetchone()[0]

    def restart_server(self) -> None:
        port = int(self.base.rsplit(":", 1)[1])
        self.server, _ = live.start_server(self.env, self.log_dir, port)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    # Outside pytest's rotating temporary folders, so the servers' logs outlive a failing run.
    log_dir = Path(tempfile.mkdtemp(prefix="flowbuilder-live-"))
    worker = sqlite_path = None
    if DISTRIBUTED:
        from flowbuilder.celery import app

        app.control.purge()  # messages left by an earlier, interrupted session
        env = live.server_env(live.postgres_url(), settings.REDIS_URL, **PARK_QUICKLY)
        worker = live.start_worker(env, log_dir)
    else:
        sqlite_path = log_dir / "embedded.sqlite3"
        env = live.server_env(f"sqlite:///{sqlite_path}", **PARK_QUICKLY)
        live.run_manage(env, "manage.py", "migrate", "--noinput")
    current = None
    try:
        server, base = live.start_server(env, log_dir)
        current = Stack(base, env, log_dir, server, worker, sqlite_path)
        yield current
        current.server.stop()
    finally:
        # A test may have replaced the worker: stop the one running now.
        running = current.worker if current is not None else worker
        if running:
            running.stop()


@pytest.fixture
def journey(stack):
    return stack


def test_a_webhook_runs_and_its_owner_reads_the_logs_live(journey):
    info = journey.seed(JOURNEY)
    posted = httpx.post(f"{journey.base}/hooks/{info['token']}/", json={"name": "Ada"})
    assert posted.status_code == 202
    run_id = posted.json()["run_id"]

    events = asyncio.run(live.read_events(journey.base, f"/ws/runs/{run_id}/", info["ada"]))

    lines = [(e["seq"], e["step"], e["level"], e["message"]) for e in events if e["type"] == "log"]
    assert lines == [
        (1, "work", "info", "hello Ada"),
        (2, "work", "warning", "counted 19999900000"),
    ]
    assert all(e["message"] in e["html"] for e in events if e["type"] == "log")
    steps = [(e["step"], e["attempt"], e["status"]) for e in events if e["type"] == "step"]
    assert len(steps) == len(set(steps))
    assert [s for s in steps if s[2] != "running"] == [
        ("only_named", 1, "succeeded"),
        ("work", 1, "succeeded"),
        ("reply", 1, "succeeded"),
    ]
    assert events[-1]["type"] == "run" and events[-1]["status"] == "succeeded"

    status = httpx.get(posted.json()["status_url"]).json()
    assert (status["status"], status["output"]) == ("succeeded", {"text": "Ada: 19999900000"})


def test_a_flow_watcher_sees_new_runs_live(journey):
    """The flow's socket sends no backlog: every event here crossed the channel layer live, from
    the worker (or the embedded executor) to the server."""
    info = journey.seed(JOURNEY)
    posted: list[httpx.Response] = []

    async def post() -> None:
        # The consumer joins the flow's group before it accepts: from here on, nothing is missed.
        async with httpx.AsyncClient() as client:
            posted.append(
                await client.post(f"{journey.base}/hooks/{info['token']}/", json={"name": "Lin"})
            )

    events = asyncio.run(
        live.read_events(journey.base, f"/ws/flows/{info['flow_id']}/", info["ada"], on_open=post)
    )
    run_id = posted[0].json()["run_id"]
    assert {e["run"] for e in events} == {run_id}
    kinds = [(e["type"], e.get("step"), e.get("status")) for e in events if e["type"] != "log"]
    assert kinds == [
        ("run", None, "running"),
        ("step", "only_named", "succeeded"),
        ("step", "work", "running"),
        ("step", "work", "succeeded"),
        ("step", "reply", "succeeded"),
        ("run", None, "succeeded"),
    ]
    assert [e["message"] for e in events if e["type"] == "log"] == [
        "hello Lin",
        "counted 19999900000",
    ]


def test_only_the_owner_may_watch_a_run_or_a_flow(journey):
    info = journey.seed(JOURNEY)
    # ?wait= answers with the output once the run is done: the flow as a serverless function.
    posted = httpx.post(
        f"{journey.base}/hooks/{info['token']}/?wait=20", json={"name": "B"}, timeout=30
    )
    assert posted.status_code == 200
    assert (posted.json()["status"], posted.json()["output"]) == (
        "succeeded",
        {"text": "B: 19999900000"},
    )
    run_id = posted.json()["run_id"]
    for path in (f"/ws/runs/{run_id}/", f"/ws/flows/{info['flow_id']}/"):
        assert asyncio.run(live.close_code(journey.base, path, info["bob"])) == 4403
        assert asyncio.run(live.close_code(journey.base, path, None)) == 4403
    events = asyncio.run(live.read_events(journey.base, f"/ws/runs/{run_id}/", info["ada"]))
    assert [e["message"] for e in events if e["type"] == "log"] == [
        "hello B",
        "counted 19999900000",
    ]
    assert events[-1]["status"] == "succeeded"


def test_bad_requests_get_clear_answers_and_write_nothing(journey):
    info = journey.seed(JOURNEY)
    hook = f"{journey.base}/hooks/{info['token']}/"
    malformed = httpx.post(hook, content=b"{oops", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json() == {
        "error": "The request body is not valid JSON: Expecting property name enclosed in double "
        "quotes at line 1 column 2."
    }
    huge = httpx.post(hook, json={"name": "x" * settings.FLOWS_WEBHOOK_MAX_BYTES})
    assert huge.status_code == 413
    assert huge.json() == {
        "error": f"The request body is larger than this server's limit of "
        f"{settings.FLOWS_WEBHOOK_MAX_BYTES} bytes."
    }
    assert journey.run_rows(info["flow_id"]) == 0


def test_a_run_whose_worker_is_killed_is_executed_again(journey):
    info = journey.seed(KILLABLE)
    posted = httpx.post(f"{journey.base}/hooks/{info['token']}/", json={})
    run_id = posted.json()["run_id"]
    spinning = asyncio.run(
        live.read_events(
            journey.base,
            f"/ws/runs/{run_id}/",
            info["ada"],
            until=lambda e: e.get("type") == "log" and e["message"] == "spinning",
        )
    )
    assert spinning[-1]["seq"] == 1

    if DISTRIBUTED:
        from flows.models import Run

        worker = Run.objects.get(pk=run_id).worker
        os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)  # the pool process running it
    else:
        journey.server.kill()  # the whole server, executor threads and all
        journey.restart_server()

    def finished() -> dict | None:
        status = httpx.get(posted.json()["status_url"]).json()
        return status if status["status"] in ("succeeded", "failed") else None

    status = live.wait_until(finished, 60, "the killed run to finish", interval=0.2)
    assert (status["status"], status["output"]) == ("succeeded", {"attempt": 2}), status

    events = asyncio.run(live.read_events(journey.base, f"/ws/runs/{run_id}/", info["ada"]))
    steps = [
        (e["attempt"], e["status"], e["error"])
        for e in events
        if e["type"] == "step" and e["status"] != "running"
    ]
    assert steps == [(1, "failed", WORKER_LOST), (2, "succeeded", "")]
    assert [e["message"] for e in events if e["type"] == "log"] == [
        "spinning",
        f"attempt 2: resuming after {WORKER_LOST}",
        "second attempt",
    ]


def test_a_flow_answers_its_caller_then_parks_and_resumes_after_a_restart(journey):
    """Loop items run as code steps in parallel, the caller gets the flow's own response at once
    (no ?wait), then the run parks on a wait, its worker (or server) restarts, and it resumes."""
    info = journey.seed(RESPONDER)
    posted = httpx.post(
        f"{journey.base}/hooks/{info['token']}/", json={"words": ["ab", "cde", "f"]}, timeout=30
    )
    assert posted.status_code == 201
    assert posted.json() == {"letters": [2, 3, 1]}

    def status_of(run_id: int) -> dict:
        return httpx.get(f"{journey.base}/hooks/{info['token']}/runs/{run_id}/").json()

    run_id = journey.latest_run(info["flow_id"])
    live.wait_until(
        lambda: status_of(run_id)["status"] == "waiting", 30, "the run to park on its wait"
    )
    if DISTRIBUTED:
        journey.worker.stop()  # a warm shutdown hands the parked run's message back
        journey.worker = live.start_worker(journey.env, journey.log_dir)
    else:
        journey.server.kill()  # its timer dies with it: the restarted server re-arms it
        journey.restart_server()

    def finished() -> dict | None:
        status = status_of(run_id)
        return status if status["status"] not in ("queued", "running", "waiting") else None

    status = live.wait_until(finished, 60, "the parked run to resume", interval=0.2)
    assert (status["status"], status["output"]) == ("succeeded", {"text": "resumed"}), status


@pytest.mark.skipif(
    not DISTRIBUTED,
    reason="embedded mode has no worker processes: its server recovers runs when it restarts "
    "(test_a_run_whose_worker_is_killed_is_executed_again)",
)
def test_runs_of_a_killed_worker_are_recovered_by_the_next_worker_without_beat(journey):
    info = journey.seed(KILLABLE)
    posted = httpx.post(f"{journey.base}/hooks/{info['token']}/", json={})
    run_id = posted.json()["run_id"]
    asyncio.run(
        live.read_events(
            journey.base,
            f"/ws/runs/{run_id}/",
            info["ada"],
            until=lambda e: e.get("type") == "log" and e["message"] == "spinning",
        )
    )
    journey.worker.kill()  # the main process and its pool at once: nobody hands the run back
    journey.worker = live.start_worker(journey.env, journey.log_dir)

    def finished() -> dict | None:
        status = httpx.get(posted.json()["status_url"]).json()
        return status if status["status"] in ("succeeded", "failed") else None

    status = live.wait_until(finished, 60, "the new worker to recover the run", interval=0.2)
    assert (status["status"], status["output"]) == ("succeeded", {"attempt": 2}), status


# A worker that takes a message from the queue and dies before it starts the run (the window
# between Celery reserving a message and a pool process claiming its run).
TAKE_AND_DIE = """
import os, signal, sys
from kombu import Connection
with Connection(sys.argv[1]) as connection:
    message = connection.channel().basic_get("celery", no_ack=False)
    print("took" if message is not None else "nothing", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not DISTRIBUTED, reason="messages wait in Redis only in distributed mode")
def test_runs_whose_messages_were_lost_with_a_process_run_within_seconds(journey):
    """Without the lost-message sweep these wait FLOWS_RUN_STALE_S (60 s) or, for a message
    taken by a dead worker, Redis's visibility timeout (6 h)."""
    from flows.engine.runs import create_run
    from flows.models import Flow, Run

    done = [{"id": "t", "kind": "logic.template", "config": {"template": "done"}}]
    info = journey.seed(document(steps=done, edges=[]))
    journey.worker.stop()
    # A worker took this run's message and died before it started the run.
    posted = httpx.post(f"{journey.base}/hooks/{info['token']}/", json={})
    taker = subprocess.run(
        [sys.executable, "-c", TAKE_AND_DIE, settings.CELERY_BROKER_URL],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert taker.stdout.strip() == "took", taker.stderr
    # A server stored this run and died before it sent the run's message.
    flow = Flow.objects.select_related("current_version").get(pk=info["flow_id"])
    version = flow.current_version
    unsent, _ = create_run(
        flow, trigger="webhook", event={}, plan=version.plan, version=version, enqueue=False
    )
    journey.worker = live.start_worker(
        {**journey.env, "FLOWS_UNSTARTED_MESSAGE_S": "1"}, journey.log_dir
    )

    def finished() -> list | None:
        runs = Run.objects.filter(pk__in=[posted.json()["run_id"], unsent.pk])
        # A run caught while running has not ended yet: wait on, not fail on it.
        ended = [(r.status, r.output) for r in runs if r.status not in ("queued", "running")]
        return ended if len(ended) == 2 else None

    ended = live.wait_until(finished, 20, "a worker to send both runs again", interval=0.2)
    assert ended == [("succeeded", {"text": "done"})] * 2
    journey.worker.stop()
    journey.worker = live.start_worker(journey.env, journey.log_dir)


TITLE = """
def main(event, ctx):
    title = event["body"]["title"]
    return {"words": len(title.split()), "upper": title.upper()}
"""


def _answers_of_redis() -> tuple[int, int]:
    """Subscribers of the answers channel, and run channels anybody listens to."""
    from redis import Redis

    client = Redis.from_url(settings.REDIS_URL)
    try:
        answers = client.pubsub_channels("*__answers")
        subscribers = sum(n for _, n in client.pubsub_numsub(*answers)) if answers else 0
        return subscribers, len(client.pubsub_channels("*__group__run-*"))
    finally:
        client.close()


def test_many_callers_waiting_at_once_each_get_their_own_answer(journey):
    """Waiters hold no subscription, no database connection and no thread: one subscription per
    server process hands every run's answer to its caller (bench/waiters.py measures the cost)."""
    info = journey.seed(
        document(
            steps=[{"id": "count", "kind": "code.python", "config": {"source": TITLE}}], edges=[]
        )
    )
    callers = 150
    seen: list[tuple[int, int]] = []

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=callers)
        async with httpx.AsyncClient(base_url=journey.base, timeout=90, limits=limits) as client:
            posts = [
                asyncio.create_task(
                    client.post(f"/hooks/{info['token']}/?wait=60", json={"title": f"caller {n}"})
                )
                for n in range(callers)
            ]
            while DISTRIBUTED and not all(p.done() for p in posts):
                seen.append(await asyncio.to_thread(_answers_of_redis))
                await asyncio.sleep(0.05)
            return await asyncio.gather(*posts)

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * callers
    assert [a.json()["output"] for a in answers] == [
        {"words": 2, "upper": f"CALLER {n}"} for n in range(callers)
    ]
    if DISTRIBUTED:
        assert seen, "the callers were answered before Redis could be looked at"
        assert {subscribers for subscribers, _ in seen} == {1}
        assert max(channels for _, channels in seen) == 0


def _executed_by(worker_id: str, process: live.Process) -> bool:
    """Whether a run's worker id names this process or one of its children (a pool process)."""
    pid = int(worker_id.rpartition(":")[2])
    root = process.proc.pid
    return pid == root or str(pid) in Path(f"/proc/{root}/task/{root}/children").read_text().split()


def _count_flow(journey) -> dict[str, Any]:
    return journey.seed(
        document(
            steps=[{"id": "count", "kind": "code.python", "config": {"source": TITLE}}], edges=[]
        )
    )


@pytest.mark.skipif(not DISTRIBUTED, reason="the embedded mode's server executes every run")
def test_a_server_executes_the_runs_its_callers_wait_for_and_queues_the_rest(journey):
    from flows.models import Run

    info = _count_flow(journey)
    hook = f"{journey.base}/hooks/{info['token']}/"
    journey.worker.stop()
    try:
        waited = httpx.post(hook + "?wait=10", json={"title": "no worker needed"}, timeout=30)
        assert waited.status_code == 200, waited.text
        assert waited.json()["output"] == {"words": 3, "upper": "NO WORKER NEEDED"}
        executed_by = Run.objects.get(pk=waited.json()["run_id"]).worker
        assert _executed_by(executed_by, journey.server), executed_by
        # Nobody waits for this one: it goes to the queue, where it waits for a worker.
        queued = httpx.post(hook, json={"title": "for the workers"}, timeout=30)
        assert queued.status_code == 202
    finally:
        journey.worker = live.start_worker(journey.env, journey.log_dir)

    def finished() -> Run | None:
        run = Run.objects.get(pk=queued.json()["run_id"])
        return run if run.status == "succeeded" else None

    run = live.wait_until(finished, 30, "the worker to execute the queued run", interval=0.1)
    assert _executed_by(run.worker, journey.worker), run.worker
    assert run.output == {"words": 3, "upper": "FOR THE WORKERS"}


@pytest.mark.skipif(not DISTRIBUTED, reason="the embedded mode's server executes every run")
def test_a_busy_server_queues_waited_for_runs_and_a_killed_ones_runs_are_recovered(journey):
    """FLOWS_SERVER_RUNS=1: while the server executes one run, the next caller's run goes to the
    workers. Then the server is killed mid-run: the workers' sweep sees its process gone and
    runs the run again."""
    from flows.models import Run

    spin = journey.seed(KILLABLE)
    count = _count_flow(journey)
    server, base = live.start_server({**journey.env, "FLOWS_SERVER_RUNS": "1"}, journey.log_dir)
    try:
        busy = httpx.post(f"{base}/hooks/{spin['token']}/?wait=0.5", json={}, timeout=30)
        assert busy.status_code == 202, busy.text  # still spinning, in the server
        spinning = Run.objects.get(pk=busy.json()["run_id"])
        assert spinning.status == "running"
        assert _executed_by(spinning.worker, server), spinning.worker

        waited = httpx.post(
            f"{base}/hooks/{count['token']}/?wait=20", json={"title": "the overflow"}, timeout=30
        )
        assert waited.status_code == 200, waited.text
        assert waited.json()["output"] == {"words": 2, "upper": "THE OVERFLOW"}
        executed_by = Run.objects.get(pk=waited.json()["run_id"]).worker
        assert _executed_by(executed_by, journey.worker), executed_by
    finally:
        server.kill()

    def finished() -> Run | None:
        run = Run.objects.get(pk=spinning.pk)
        return run if run.status in ("succeeded", "failed") else None

    run = live.wait_until(finished, 40, "the workers to recover the server's run", interval=0.2)
    assert (run.status, run.output, run.attempts) == ("succeeded", {"attempt": 2}, 2)
    assert _executed_by(run.worker, journey.worker), run.worker


def test_a_server_of_several_processes_warms_each_up_and_answers_its_callers(journey):
    """`uvicorn --workers 2` (docs/deploy.md) loads the app inside each process's event loop:
    the warm-up must still reach the database there, and every process answer its callers."""
    info = _count_flow(journey)
    server, base = live.start_server(
        journey.env, journey.log_dir, program="uvicorn", options=("--workers", "2")
    )
    try:
        with httpx.Client(base_url=base, timeout=30) as client:  # one kept-alive connection
            answers = [
                client.post(f"/hooks/{info['token']}/?wait=10", json={"title": f"call {n}"})
                for n in range(4)
            ]
    finally:
        server.stop()
    assert [(a.status_code, a.json()["output"]) for a in answers] == [
        (200, {"words": 2, "upper": f"CALL {n}"}) for n in range(4)
    ]
    log = server.output()
    assert log.count("Application startup complete") == 2, log
    assert "warming up this process failed" not in log, log
