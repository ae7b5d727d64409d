"""What callers who wait for their answer (`POST /hooks/<token>/?wait=60`) cost, many at once.

N callers post at the same moment to one server process (uvicorn) and each waits for its own
run's output; the runs (a Python step) go through the worker (distributed) or the server's own
threads (embedded). For each caller it takes the time to its answer, the run's own life (created
to finished, queueing included, from the answer), and the delay between the run's end and the
caller's answer: what waiting itself costs.

    .venv/bin/python bench/waiters.py [--callers 200,1000] [--modes embedded,distributed]

Prints one JSON object per mode and number of callers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.respond import STEP  # noqa: E402
from bench.throughput import (  # noqa: E402
    CpuMeter,
    add_service_arguments,
    bench_env,
    percentile,
    seed,
)
from tests.engine import live  # noqa: E402

DOCUMENT = {
    "schema": "flowbuilder/flow@2",
    "name": "Waited for",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [{"id": "count", "kind": "code.python", "config": {"source": STEP}}],
    "edges": [["trigger", "out", "count"]],
}


async def burst(base: str, token: str, callers: int, wait_s: float) -> list[dict]:
    """`callers` posts at once; each waits `wait_s` for its answer (0: takes the 202)."""
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(base_url=base, timeout=wait_s + 30, limits=limits) as client:

        async def one(n: int) -> dict:
            started = time.time()
            query = f"?wait={wait_s:g}" if wait_s else ""
            answer = await client.post(
                f"/hooks/{token}/{query}", json={"title": f"caller number {n}"}
            )
            received = time.time()
            body = answer.json()
            result = {"status": answer.status_code, "answer_ms": (received - started) * 1000}
            if answer.status_code == 200 and body.get("finished_at"):
                created = datetime.fromisoformat(body["created_at"]).timestamp()
                finished = datetime.fromisoformat(body["finished_at"]).timestamp()
                result["run_ms"] = (finished - created) * 1000
                result["delay_ms"] = (received - finished) * 1000
                result["right"] = body["output"] == {
                    "words": 3,
                    "upper": f"CALLER NUMBER {n}",
                }
            return result

        return await asyncio.gather(*(one(n) for n in range(callers)))


def settled(env: dict[str, str]) -> bool:
    """No run of the bench's database is queued or running."""
    code = (
        "import django; django.setup(); from flows.models import Run; "
        "print(Run.objects.filter(status__in=['queued', 'running']).count())"
    )
    return live.run_manage(env, "-c", code).strip() == "0"


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
    }


def bench_mode(mode: str, callers: list[int], args, work: Path) -> list[dict]:
    procs: dict[str, live.Process] = {}
    env = bench_env(mode, args, work)
    env["FLOWS_WEBHOOK_MAX_WAIT_S"] = str(args.wait)
    figures = []
    try:
        info = seed(env, {"document": DOCUMENT, "flow": {"max_concurrency": 1000}})
        if mode == "distributed":
            live.run_manage(env, "-c", "from flowbuilder.celery import app; app.control.purge()")
            procs["worker"] = live.start_worker(env, work, concurrency=None)
        procs["server"], base = live.start_server(env, work, program="uvicorn")
        asyncio.run(burst(base, info["token"], 20, args.wait))  # warm the runner and the hub
        for count in callers:
            # The same burst without waiting first: the server's CPU per request without waiters.
            meter = CpuMeter(procs)
            meter.begin()
            asyncio.run(burst(base, info["token"], count, 0))
            live.wait_until(lambda: settled(env), 300, "the runs to finish", interval=0.5)
            unwaited = meter.per_run(count)
            meter.begin()
            started = time.perf_counter()
            results = asyncio.run(burst(base, info["token"], count, args.wait))
            elapsed = time.perf_counter() - started
            answered = [r for r in results if "delay_ms" in r]
            statuses: dict[int, int] = {}
            for r in results:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            figures.append(
                {
                    "mode": mode,
                    "callers": count,
                    "statuses": statuses,
                    "wrong_answers": sum(1 for r in answered if not r["right"]),
                    "seconds": round(elapsed, 2),
                    "answer_ms": summary([r["answer_ms"] for r in results]),
                    "run_ms": summary([r["run_ms"] for r in answered]),
                    "delay_after_run_ms": summary([r["delay_ms"] for r in answered]),
                    "cpu_ms_per_run": meter.per_run(count),
                    "cpu_ms_per_run_unwaited": unwaited,
                }
            )
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="200,1000")
    parser.add_argument("--wait", type=float, default=120)
    parser.add_argument("--modes", default="embedded,distributed")
    add_service_arguments(parser)
    args = parser.parse_args()
    callers = [int(n) for n in args.callers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-waiters-"))
    for mode in args.modes.split(","):
        for figure in bench_mode(mode, callers, args, work):
            print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
