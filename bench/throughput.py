"""Throughput of the engine, end to end: webhook POST → run → logs on a WebSocket.

A 3-step flow (filter, Python step, template) with no outside calls is driven through the HTTP
webhook of a real ASGI server: in embedded mode (SQLite, runs in the server's threads) and in
distributed mode (PostgreSQL, Redis, one Celery worker). It measures sustained runs per second,
the latency from POST to the run's completion (seen on the flow's WebSocket), and the log latency
from the guest's log call (the time the host stamped on the line) to the WebSocket client.

    .venv/bin/python bench/throughput.py [--runs 500] [--concurrency 16] [--modes embedded,distributed]

The last lines are one JSON object per mode (distributed last).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.engine import live  # noqa: E402

STEP = """
def main(event, ctx):
    n = event["body"]["n"]
    ctx.log("doubling " + str(n))
    return {"double": n * 2}
"""

DOCUMENT = {
    "schema": "flowbuilder/flow@1",
    "name": "Bench",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {"id": "check", "kind": "logic.filter", "config": {"condition": "{{ event.body.n is number }}"}},
        {"id": "double", "kind": "code.python", "config": {"source": STEP}},
        {"id": "say", "kind": "logic.template", "config": {"template": "{{ steps.double.double }}"}},
    ],
    "edges": [],
}
FINISHED = {"succeeded", "failed", "skipped", "cancelled"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def drive(base: str, info: dict, runs: int, concurrency: int, warmup: int) -> dict:
    from websockets.asyncio.client import connect

    sent: dict[int, float] = {}
    done: dict[int, float] = {}
    statuses: dict[int, str] = {}
    log_latency: list[float] = []
    all_done = asyncio.Event()
    expected: set[int] = set()

    async def listen(ws) -> None:
        async for text in ws:
            now = time.time()
            event = json.loads(text)
            if event["type"] == "log":
                log_latency.append((now - datetime.fromisoformat(event["time"]).timestamp()) * 1000)
            elif event["type"] == "run" and event["status"] in FINISHED:
                done.setdefault(event["run"], now)
                statuses[event["run"]] = event["status"]
                if expected and expected <= done.keys():
                    all_done.set()

    url = base.replace("http://", "ws://") + f"/ws/flows/{info['flow_id']}/"
    headers = {"Cookie": f"sessionid={info['ada']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        connect(url, origin=base, additional_headers=headers, max_queue=None) as ws,
        httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client,
    ):
        listener = asyncio.create_task(listen(ws))
        hook = f"/hooks/{info['token']}/"
        ids: list[int] = []

        async def post_all(numbers: range, measured: bool) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in numbers:
                queue.put_nowait(n)

            async def poster() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    started = time.time()
                    answer = await client.post(hook, json={"n": n})
                    answer.raise_for_status()
                    run_id = answer.json()["run_id"]
                    sent[run_id] = started
                    if measured:
                        ids.append(run_id)

            await asyncio.gather(*(poster() for _ in range(min(concurrency, len(numbers)))))

        # Warm-up: loads the runner, opens connections; not measured.
        await post_all(range(warmup), measured=False)
        deadline = time.monotonic() + 60
        while not set(sent) <= done.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

        first = time.time()
        await post_all(range(warmup, warmup + runs), measured=True)
        expected.update(ids)
        if not expected <= done.keys():
            try:
                await asyncio.wait_for(all_done.wait(), 300)
            except TimeoutError:
                pass
        last = max((done[i] for i in ids if i in done), default=time.time())
        listener.cancel()

    finished = [i for i in ids if i in done]
    latencies = [(done[i] - sent[i]) * 1000 for i in finished]
    failed = [i for i in finished if statuses[i] != "succeeded"]
    logs = log_latency[-len(finished):] if finished else []
    return {
        "runs": len(finished),
        "failed": len(failed),
        "missing": len(ids) - len(finished),
        "runs_per_s": round(len(finished) / (last - first), 1) if finished else 0.0,
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p99": round(percentile(latencies, 99), 1) if latencies else None,
        "log_latency_ms_p50": round(statistics.median(logs), 1) if logs else None,
        "log_latency_ms_p95": round(percentile(logs, 95), 1) if logs else None,
    }


def prepare_postgres(url: str) -> str:
    """A fresh database named flowbuilder_bench on the server of `url`; returns its URL."""
    import psycopg

    base, _, _ = url.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS flowbuilder_bench WITH (FORCE)")
        db.execute("CREATE DATABASE flowbuilder_bench")
    return base + "/flowbuilder_bench"


def bench_mode(mode: str, args, work: Path) -> dict:
    procs: list[live.Process] = []
    extra = {"FLOWS_SCHEDULER": "off", "LOG_LEVEL": "ERROR", "FLOWS_LOG_LEVEL": "WARNING"}
    if mode == "distributed":
        env = live.server_env(prepare_postgres(args.postgres), args.redis, **extra)
    else:
        env = live.server_env(f"sqlite:///{work / 'bench.sqlite3'}", **extra)
    try:
        live.run_manage(env, "manage.py", "migrate", "--noinput")
        request = {"document": DOCUMENT, "flow": {"max_concurrency": args.concurrency * 2}}
        info = json.loads(live.run_manage(env, "-m", "tests.engine.live", "seed", stdin=json.dumps(request)))
        if mode == "distributed":
            live.run_manage(env, "-c", "from flowbuilder.celery import app; app.control.purge()")
            procs.append(live.start_worker(env, work, concurrency=args.worker_concurrency))
        server, base = live.start_server(env, work, program=args.server)
        procs.append(server)
        result = asyncio.run(drive(base, info, args.runs, args.concurrency, args.warmup))
    finally:
        for proc in reversed(procs):
            proc.stop()
    return {"mode": mode, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="POSTs in flight at once")
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--server", default="uvicorn", choices=sorted(live.SERVERS))
    parser.add_argument("--worker-concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-bench-"))
    print(f"logs in {work}", file=sys.stderr)
    results = [bench_mode(mode, args, work) for mode in args.modes.split(",")]
    for result in sorted(results, key=lambda r: r["mode"] == "distributed"):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
