"""A burst of webhooks while the processes that carry them are killed: does any run get lost,
stuck or duplicated, and how long until the engine has recovered?

The production configuration (PostgreSQL, Redis, one uvicorn server, one Celery worker, no beat)
takes `--webhooks` POSTs (default 1,000) sent at `--rate` per second by `--senders` clients. Each
POST carries its own delivery id (`X-Delivery-Id`), and a client whose POST fails (refused,
reset, 5xx) sends it again with the same id until it is accepted, as GitHub's redelivery does.
During the burst, with SIGKILL (no clean-up), at a quarter, half and three quarters of it:

1. one pool process of the worker;
2. the worker's main process (its pool processes are left orphaned); a new worker starts 1 s
   later, as a supervisor (systemd, Kubernetes) would start it;
3. the server; a new one starts on the same port 1 s later.

Then it waits (at most `--settle` seconds) for every run to finish and prints one JSON line:

- `accepted`: webhooks answered 202 (or 200: already accepted under that delivery id);
- `finished`, `failed`: runs that succeeded, or failed (with their reasons in `failures`);
- `duplicated`: delivery ids with more than one run;
- `lost`: accepted webhooks without a run;
- `stuck`: runs still queued or running when the wait ended;
- `recovery_s`: for each kill, the time until every run created before it had finished, and
  the largest of the three;
- `resumed`: runs that a killed process had started and another one finished (`attempts` > 1).

    .venv/bin/python bench/chaos.py [--webhooks 1000] [--rate 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throughput import add_service_arguments, bench_env, seed  # noqa: E402
from tests.engine import live  # noqa: E402

# Two steps, the second busy for some milliseconds, so that kills find runs half-way.
COUNT = """
def main(event, ctx):
    title = event["body"]["title"]
    return {"words": len(title.split()), "title": title}
"""
SHOUT = """
def main(event, ctx):
    total = 0
    for i in range(60000):
        total += i % 7
    return {"upper": ctx.steps["count"]["title"].upper(), "checksum": total}
"""

DOCUMENT = {
    "schema": "flowbuilder/flow@2",
    "name": "Chaos",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {"id": "count", "kind": "code.python", "config": {"source": COUNT}},
        {"id": "shout", "kind": "code.python", "config": {"source": SHOUT}},
    ],
    "edges": [["trigger", "out", "count"], ["count", "out", "shout"]],
}

# Each run: its delivery id, status, attempts, error, and when it was created and finished.
RUNS_QUERY = """
import django, json; django.setup()
from flows.models import Run
print(json.dumps([
    [r.delivery_id, r.status, r.attempts, r.error[:200],
     r.created_at.timestamp(), r.finished_at.timestamp() if r.finished_at else None]
    for r in Run.objects.all()
]))
"""


class Stack:
    """The server and the worker, restarted where they were after a kill."""

    def __init__(self, env: dict[str, str], work: Path):
        self.env, self.work = env, work
        self.port = live.free_port()
        self.server, self.base = live.start_server(env, work, self.port, program="uvicorn")
        self.worker = live.start_worker(env, work, concurrency=None)
        self.orphans: list[int] = []  # pool processes of a killed worker main process

    def pool_processes(self) -> list[int]:
        pid = self.worker.proc.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def kill_worker_child(self) -> None:
        os.kill(self.pool_processes()[0], signal.SIGKILL)

    def kill_worker_main(self) -> None:
        self.orphans = self.pool_processes()
        os.kill(self.worker.proc.pid, signal.SIGKILL)
        self.worker.proc.wait(10)
        time.sleep(1)
        # Orphaned pool processes finish the task in hand and exit; stop() leaves none behind.
        self.worker = live.start_worker(self.env, self.work, concurrency=None)

    def kill_server(self) -> None:
        self.server.kill()
        time.sleep(1)
        self.server, _ = live.start_server(self.env, self.work, self.port, program="uvicorn")

    def stop(self) -> None:
        self.server.stop()
        self.worker.stop()
        for pid in self.orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def send(base: str, token: str, webhooks: int, rate: float, senders: int, sent: list):
    """Every webhook until it is accepted; `sent` gets each accepted delivery id."""
    posts = {"total": 0, "retried": 0}
    pending: asyncio.Queue[int] = asyncio.Queue()
    started = time.monotonic()

    async def client(client: httpx.AsyncClient) -> None:
        while True:
            try:
                n = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = {"X-Delivery-Id": f"chaos-{n}"}
            give_up = time.monotonic() + 120
            while True:
                posts["total"] += 1
                try:
                    answer = await client.post(
                        f"/hooks/{token}/", json={"title": f"chaos run {n}"}, headers=headers
                    )
                    if answer.status_code in (200, 202):
                        sent.append(n)
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > give_up:
                    break
                posts["retried"] += 1
                await asyncio.sleep(0.2)

    for n in range(webhooks):
        pending.put_nowait(n)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(senders)))
    return posts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=40, help="webhooks sent per second")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--settle", type=float, default=300, help="longest wait after the burst")
    add_service_arguments(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-chaos-"))
    env = bench_env("distributed", args, work)
    info = seed(env, {"document": DOCUMENT, "flow": {"max_concurrency": 1000}})
    live.run_manage(env, "-c", "from flowbuilder.celery import app; app.control.purge()")
    stack = Stack(env, work)
    accepted: list[int] = []
    kills: list[dict] = []
    begun = time.time()

    def chaos() -> None:
        plan = [
            ("worker pool process", stack.kill_worker_child),
            ("worker main process", stack.kill_worker_main),
            ("server", stack.kill_server),
        ]
        for fraction, (what, kill) in zip((0.25, 0.5, 0.75), plan, strict=True):
            live.wait_until(lambda f=fraction: len(accepted) >= args.webhooks * f, 600, what)
            at = time.time()
            kill()
            kills.append({"killed": what, "at": at})

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    try:
        posts = asyncio.run(
            send(stack.base, info["token"], args.webhooks, args.rate, args.senders, accepted)
        )
        killer.join(60)
        sent_s = time.time() - begun

        def runs() -> list:
            return json.loads(live.run_manage(env, "-c", RUNS_QUERY))

        def settled() -> list | None:
            rows = runs()
            open_ = [r for r in rows if r[1] in ("queued", "running", "waiting")]
            return None if open_ else rows

        try:
            rows = live.wait_until(settled, args.settle, "every run to finish", interval=1)
        except TimeoutError:
            rows = runs()
    finally:
        stack.stop()

    by_delivery: dict[str, list] = {}
    for row in rows:
        by_delivery.setdefault(row[0], []).append(row)
    finished_at = [r[5] for r in rows if r[5]]
    for kill in kills:
        before = [r for r in rows if r[4] <= kill["at"]]
        done = [r[5] for r in before]
        kill["recovery_s"] = round(max(done) - kill["at"], 2) if done and None not in done else None
        kill["at_s"] = round(kill.pop("at") - begun, 2)
    recoveries = [k["recovery_s"] for k in kills]
    failures: dict[str, int] = {}
    for row in rows:
        if row[1] == "failed":
            failures[row[3]] = failures.get(row[3], 0) + 1
    print(
        json.dumps(
            {
                "webhooks": args.webhooks,
                "accepted": len(set(accepted)),
                "finished": sum(1 for r in rows if r[1] == "succeeded"),
                "failed": sum(1 for r in rows if r[1] == "failed"),
                "duplicated": sum(1 for runs_ in by_delivery.values() if len(runs_) > 1),
                "lost": sum(1 for n in set(accepted) if f"chaos-{n}" not in by_delivery),
                "stuck": sum(1 for r in rows if r[1] in ("queued", "running", "waiting")),
                "recovery_s": None if None in recoveries else max(recoveries, default=0),
                "kills": kills,
                "resumed": sum(1 for r in rows if r[2] > 1),
                "posts": posts,
                "failures": failures,
                "send_s": round(sent_s, 2),
                "all_done_s": round(max(finished_at) - begun, 2) if finished_at else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
