"""Throughput of the engine, end to end: webhook POST → run → logs on a WebSocket.

A 3-step flow (filter, Python step, template) with no outside calls is driven through the HTTP
webhook of a real ASGI server: in embedded mode (SQLite, runs in the server's threads) and in
distributed mode (PostgreSQL, Redis, one Celery worker). It measures sustained runs per second,
the latency from POST to the run's completion (seen on the flow's WebSocket), and the log latency
from the guest's log call (the time the host stamped on the line) to the WebSocket client, and
the CPU time a run costs the server, the worker, PostgreSQL and Redis.

    .venv/bin/python bench/throughput.py [--runs 500] [--concurrency 3] [--modes embedded,distributed]
        [--worker-concurrency N] [--worker-pool prefork] [--flow linear|fanout]
        [--answer-by websocket|wait]

`--answer-by wait` measures the path of callers who wait for their answer (`?wait=`): each POST
is answered when its run ends, and no WebSocket is open.

The last lines are one JSON object per mode (distributed last).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
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
    "schema": "flowbuilder/flow@2",
    "name": "Bench",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {
            "id": "check",
            "kind": "logic.filter",
            "config": {"condition": "{{ event.body.n is number }}"},
        },
        {"id": "double", "kind": "code.python", "config": {"source": STEP}},
        {
            "id": "say",
            "kind": "logic.template",
            "config": {"template": "{{ steps.double.double }}"},
        },
    ],
    "edges": [["trigger", "out", "check"], ["check", "out", "double"], ["double", "out", "say"]],
}
# The fan-out case: a loop of 10 items over an LLM that takes 50 ms a call, 5 items at once.
FANOUT = {
    "schema": "flowbuilder/flow@2",
    "name": "Fan-out bench",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {
            "id": "each",
            "kind": "logic.foreach",
            "config": {"items": "{{ range(10) | list }}", "concurrency": 5},
        },
        {
            "id": "ask",
            "kind": "llm.chat",
            "parent": "each",
            "config": {"prompt": "item {{ item }} of run {{ event.body.n }}"},
        },
    ],
    "edges": [["trigger", "out", "each"], ["each", "body", "ask"]],
}
FANOUT_LATENCY_S = 0.05
FINISHED = {"succeeded", "failed", "skipped", "cancelled", "succeeded_with_errors"}


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live descendants, from /proc (Linux)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return total
    return total + sum(_cpu_seconds(int(child)) for child in children)


def _cpu_of_programs(names: tuple[str, ...]) -> float:
    """CPU time of every process whose command starts with one of `names` (PostgreSQL, Redis),
    with that of their children that have exited (a PostgreSQL backend whose connection
    closed), so the total never goes down."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
            if os.path.basename(command.split(" ", 1)[0]).startswith(names):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                # utime, stime, and cutime, cstime: the children it has waited for.
                total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU milliseconds per run spent by the bench's server and worker (with its pool processes),
    by the bench's own client, and by the machine's PostgreSQL and Redis processes (shared: other
    work counts there too)."""

    def __init__(self, procs: dict[str, live.Process]):
        self.pids = {name: proc.proc.pid for name, proc in procs.items()}
        self.start: dict[str, float] = {}

    def sample(self) -> dict[str, float]:
        values = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        own = resource.getrusage(resource.RUSAGE_SELF)
        values["bench_client"] = own.ru_utime + own.ru_stime
        values["postgres"] = _cpu_of_programs(("postgres",))
        values["redis"] = _cpu_of_programs(("redis-server",))
        return values

    def begin(self) -> None:
        self.start = self.sample()

    def per_run(self, runs: int) -> dict[str, float]:
        end = self.sample()
        return {name: round((end[name] - self.start[name]) * 1000 / runs, 2) for name in end}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def drive(
    base: str,
    info: dict,
    runs: int,
    concurrency: int,
    warmup: int,
    meter: CpuMeter,
    answer_by: str = "websocket",
) -> dict:
    """Closed loop: each of `concurrency` clients posts an event, waits until its run has
    finished, then posts the next one. `answer_by` "websocket": the flow's WebSocket reports
    the end (and the log lines); "wait": the POST itself waits for it (`?wait=30`), and no
    WebSocket is open."""
    from websockets.asyncio.client import connect

    finished_at: dict[int, float] = {}
    statuses: dict[int, str] = {}
    waiters: dict[int, asyncio.Event] = {}
    log_latency: dict[int, float] = {}
    lost_events = 0

    def waiter(run_id: int) -> asyncio.Event:
        return waiters.setdefault(run_id, asyncio.Event())

    async def listen(ws) -> None:
        async for text in ws:
            now = time.time()
            event = json.loads(text)
            if event["type"] == "log":
                sent = datetime.fromisoformat(event["time"]).timestamp()
                log_latency[event["run"]] = (now - sent) * 1000
            elif event["type"] == "run" and event["status"] in FINISHED:
                finished_at.setdefault(event["run"], now)
                statuses[event["run"]] = event["status"]
                waiter(event["run"]).set()

    url = base.replace("http://", "ws://") + f"/ws/flows/{info['flow_id']}/"
    headers = {"Cookie": f"sessionid={info['ada']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    hook = f"/hooks/{info['token']}/"
    latencies: dict[int, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, limits=limits, timeout=60)
        )
        listener = None
        if answer_by == "websocket":
            ws = await stack.enter_async_context(
                connect(
                    url, origin=base, additional_headers=headers, max_queue=None, ping_interval=None
                )
            )
            listener = asyncio.create_task(listen(ws))

        async def one(n: int) -> int:
            nonlocal lost_events
            started = time.time()
            if answer_by == "wait":
                answer = await client.post(hook + "?wait=30", json={"n": n})
                answer.raise_for_status()
                run_id = answer.json()["run_id"]
                finished_at[run_id], statuses[run_id] = time.time(), answer.json()["status"]
                latencies[run_id] = (finished_at[run_id] - started) * 1000
                return run_id
            answer = await client.post(hook, json={"n": n})
            answer.raise_for_status()
            run_id = answer.json()["run_id"]
            try:
                await asyncio.wait_for(waiter(run_id).wait(), 30)
            except TimeoutError:
                lost_events += 1  # never seen on the WebSocket: ask the status URL instead
                while (status := (await client.get(answer.json()["status_url"])).json())[
                    "status"
                ] not in FINISHED:
                    await asyncio.sleep(0.05)
                finished_at[run_id], statuses[run_id] = time.time(), status["status"]
            latencies[run_id] = (finished_at[run_id] - started) * 1000
            return run_id

        async def loop(numbers: list[int], out: list[int]) -> None:
            while numbers:
                out.append(await one(numbers.pop()))

        async def phase(count: int, offset: int) -> list[int]:
            numbers, ids = list(range(offset, offset + count)), []
            await asyncio.gather(*(loop(numbers, ids) for _ in range(concurrency)))
            return ids

        await phase(warmup, 0)  # loads the runner and opens connections: not measured
        meter.begin()
        first = time.time()
        ids = await phase(runs, warmup)
        elapsed = time.time() - first
        cpu = meter.per_run(len(ids))
        if listener is not None:
            listener.cancel()

    measured = [latencies[i] for i in ids]
    logs = [log_latency[i] for i in ids if i in log_latency]
    return {
        "answer_by": answer_by,
        "runs": len(ids),
        "failed": sum(statuses[i] != "succeeded" for i in ids),
        "events_lost": lost_events,
        "concurrency": concurrency,
        "runs_per_s": round(len(ids) / elapsed, 1),
        "latency_ms_p50": round(statistics.median(measured), 1),
        "latency_ms_p99": round(percentile(measured, 99), 1),
        "log_latency_ms_p50": round(statistics.median(logs), 1) if logs else None,
        "log_latency_ms_p95": round(percentile(logs, 95), 1) if logs else None,
        "cpu_ms_per_run": cpu,
        "load_average": round(os.getloadavg()[0], 2),
    }


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the distributed mode's PostgreSQL and Redis are (a bench database is made there)."""
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    )


def prepare_postgres(url: str) -> str:
    """A fresh database named flowbuilder_bench on the server of `url`; returns its URL."""
    import psycopg

    base, _, _ = url.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS flowbuilder_bench WITH (FORCE)")
        db.execute("CREATE DATABASE flowbuilder_bench")
    return base + "/flowbuilder_bench"


def bench_env(mode: str, args, work: Path) -> dict[str, str]:
    """The server's and worker's environment: a fresh database, quiet logs, no quotas."""
    extra = {"FLOWS_SCHEDULER": "off", "LOG_LEVEL": "ERROR", "FLOWS_LOG_LEVEL": "WARNING"}
    # One owner's burst is the measure here, not something to refuse.
    extra |= {"FLOWS_OWNER_RUNS_PER_MINUTE": "0", "FLOWS_OWNER_CONCURRENT_RUNS": "0"}
    if mode == "distributed":
        return live.server_env(prepare_postgres(args.postgres), args.redis, **extra)
    return live.server_env(f"sqlite:///{work / 'bench.sqlite3'}", **extra)


def seed(env: dict[str, str], request: dict) -> dict:
    """Migrate the bench's database and create its users and deployed flow."""
    live.run_manage(env, "manage.py", "migrate", "--noinput")
    return json.loads(
        live.run_manage(env, "-m", "tests.engine.live", "seed", stdin=json.dumps(request))
    )


def bench_mode(mode: str, args, work: Path) -> dict:
    procs: dict[str, live.Process] = {}
    env = bench_env(mode, args, work)
    fake = None
    if args.flow == "fanout":
        from tests.fakes.llm import FakeLLM

        fake = FakeLLM().start()
        fake.latency = FANOUT_LATENCY_S
        env["FLOWS_ALLOW_PRIVATE_HOSTS"] = "1"
    try:
        request = {"document": DOCUMENT, "flow": {"max_concurrency": args.concurrency * 2}}
        if fake is not None:
            llm = {"service": "llm", "config": {"base_url": fake.base_url, "model": "llama3"}}
            request.update(document=FANOUT, connections={"llm": llm})
        info = seed(env, request)
        if mode == "distributed":
            live.run_manage(env, "-c", "from flowbuilder.celery import app; app.control.purge()")
            procs["worker"] = live.start_worker(
                env, work, concurrency=args.worker_concurrency, pool=args.worker_pool
            )
        procs["server"], base = live.start_server(env, work, program=args.server)
        result = asyncio.run(
            drive(
                base,
                info,
                args.runs,
                args.concurrency,
                args.warmup,
                CpuMeter(procs),
                args.answer_by,
            )
        )
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
        if fake is not None:
            fake.stop()
    return {"mode": mode, "flow": args.flow, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=3,
        help="clients posting at once (3: about the fewest that keep this 2-core machine busy)",
    )
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument(
        "--flow",
        default="linear",
        choices=["linear", "fanout"],
        help="linear: filter, Python, template; fanout: a loop of 10 LLM calls (50 ms), 5 at once",
    )
    parser.add_argument("--server", default="uvicorn", choices=sorted(live.SERVERS))
    parser.add_argument(
        "--answer-by",
        default="websocket",
        choices=["websocket", "wait"],
        help="how a client learns its run ended: the flow's WebSocket, or the POST's ?wait=30",
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=None,
        help="worker processes (default: the worker's own setting, FLOWS_WORKER_CONCURRENCY)",
    )
    parser.add_argument("--worker-pool", default="prefork", choices=["prefork", "threads", "solo"])
    add_service_arguments(parser)
    args = parser.parse_args()

    # Stopped from outside (timeout, kill): stop the server and worker on the way out, or they
    # would stay and take the next bench's runs from the shared broker. A second signal (as
    # `timeout` forwards its own) must not cut that clean-up short.
    def stop(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-bench-"))
    print(f"logs in {work}", file=sys.stderr)
    results = [bench_mode(mode, args, work) for mode in args.modes.split(",")]
    for result in sorted(results, key=lambda r: r["mode"] == "distributed"):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
