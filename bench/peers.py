"""The workload every low-code platform can do, measured as peers are: `POST {"title": ...}` to a
webhook, a code step that counts the words and upper-cases the title, the answer over HTTP, each
run stored with its steps.

For each mode (embedded: uvicorn and SQLite; distributed: uvicorn, a Celery worker, PostgreSQL
and Redis) and each answer path (`respond`: an `http.respond` step answers the POST; `wait`: the
same flow without it, answered through `?wait=10`), `wrk` holds 1, 8 and 32 connections open for
`--duration` seconds. Each combination prints one JSON line: requests per second (answered with
200), p50 and p99 milliseconds, CPU milliseconds per run by process (server, worker tree,
PostgreSQL, Redis; the bench's own wrk is not counted), the runs stored, and the peak resident
memory of the server and worker trees (`rss_mb`), with their memory when idle after start-up
(`idle_rss_mb`, and `idle_pss_mb`, which counts pages the processes share once), and the time to
the first answer after start-up.

    .venv/bin/python bench/peers.py [--duration 30] [--connections 1,8,32]
        [--modes embedded,distributed] [--paths respond,wait]
        [--server-processes 1] [--worker-processes N]

Needs `wrk` (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.respond import DOCUMENT as RESPONDS  # noqa: E402
from bench.throughput import CpuMeter, add_service_arguments, bench_env, seed  # noqa: E402
from bench.waiters import DOCUMENT as WAITED_FOR  # noqa: E402
from tests.engine import live  # noqa: E402

# wrk's request: a JSON body with a title of a few words.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"title": "fix the flaky login test"}'
wrk.headers["Content-Type"] = "application/json"
"""


def _rss_kb(pid: int, field: str = "Rss:") -> int:
    """Resident memory of a process and its live descendants, from /proc (Linux). "Pss:"
    counts pages shared between processes (a mapped runner, forked pool processes) once in all
    instead of once in each."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field):
                total = int(line.split()[1])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return total
    return total + sum(_rss_kb(int(child), field) for child in children)


class MemoryPeak:
    """The largest resident memory of the bench's processes, sampled every 100 ms."""

    def __init__(self, procs: dict[str, live.Process]):
        self.pids = [proc.proc.pid for proc in procs.values()]
        self.peak_kb = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def now_kb(self, field: str = "Rss:") -> int:
        return sum(_rss_kb(pid, field) for pid in self.pids)

    def _sample(self) -> None:
        while not self.done.wait(0.1):
            self.peak_kb = max(self.peak_kb, self.now_kb())

    def __enter__(self) -> MemoryPeak:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, connections: int, duration: float, work: Path) -> dict:
    """Requests, non-2xx answers, p50 and p99 of a wrk run."""
    script = work / "peers.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        [
            "wrk",
            f"-c{connections}",
            f"-t{min(connections, 2)}",
            f"-d{duration:g}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    latency = {
        p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
        "p50_ms": round(latency.get("50", 0.0), 1),
        "p99_ms": round(latency.get("99", 0.0), 1),
    }


def runs_stored(env: dict[str, str]) -> dict[str, int]:
    code = (
        "import django, json; django.setup(); "
        "from flows.models import Run, StepRun; "
        "print(json.dumps({'runs': Run.objects.count(), 'step_rows': StepRun.objects.count(), "
        "'unfinished': Run.objects.exclude(finished_at__isnull=False).count()}))"
    )
    return json.loads(live.run_manage(env, "-c", code))


def first_answer_ms(base: str, token: str, path: str) -> float:
    """The first request after start-up, on a new connection. The client is made before the
    clock starts: making one (its TLS context) takes httpx 15 to 20 ms, which is not the
    server's."""
    query = "?wait=10" if path == "wait" else ""
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        client.post(f"{base}/hooks/{token}/{query}", json={"title": "first"})
        return round((time.perf_counter() - started) * 1000, 1)


def bench_mode(mode: str, path: str, args, work: Path) -> list[dict]:
    procs: dict[str, live.Process] = {}
    env = bench_env(mode, args, work)
    env["FLOWS_WEBHOOK_MAX_WAIT_S"] = "10"
    document = RESPONDS if path == "respond" else WAITED_FOR
    lines = []
    try:
        info = seed(env, {"document": document, "flow": {"max_concurrency": 1000}})
        if mode == "distributed":
            live.run_manage(env, "-c", "from flowbuilder.celery import app; app.control.purge()")
            procs["worker"] = live.start_worker(env, work, concurrency=args.worker_processes)
        options = ("--workers", str(args.server_processes)) if args.server_processes > 1 else ()
        procs["server"], base = live.start_server(env, work, program="uvicorn", options=options)
        time.sleep(1)  # whatever warms up at start has had its chance
        idle_mb = round(MemoryPeak(procs).now_kb() / 1024)
        idle_pss_mb = round(MemoryPeak(procs).now_kb("Pss:") / 1024)
        first_ms = first_answer_ms(base, info["token"], path)
        url = f"{base}/hooks/{info['token']}/" + ("?wait=10" if path == "wait" else "")
        wrk(url, 2, 3, work)  # warm every process and connection
        for connections in args.connections:
            before = runs_stored(env)["runs"]
            meter = CpuMeter(procs)
            with MemoryPeak(procs) as memory:
                meter.begin()
                figures = wrk(url, connections, args.duration, work)
                live.wait_until(
                    lambda: runs_stored(env)["unfinished"] == 0, 120, "runs to finish", interval=0.5
                )
                stored = runs_stored(env)
                runs = stored["runs"] - before
                cpu = meter.per_run(max(runs, 1))
            cpu.pop("bench_client", None)
            answered = figures["requests"] - figures["non_2xx"]
            lines.append(
                {
                    "mode": mode,
                    "path": path,
                    "connections": connections,
                    "server_processes": args.server_processes,
                    "worker_processes": args.worker_processes or "default",
                    "requests_per_s": round(answered / args.duration, 1),
                    "p50_ms": figures["p50_ms"],
                    "p99_ms": figures["p99_ms"],
                    "non_2xx": figures["non_2xx"],
                    "socket_errors": figures["socket_errors"],
                    "runs_stored": runs,
                    "cpu_ms_per_run": {**cpu, "total": round(sum(cpu.values()), 2)},
                    "rss_mb": round(memory.peak_kb / 1024),
                    "idle_rss_mb": idle_mb,
                    "idle_pss_mb": idle_pss_mb,
                    "first_answer_ms": first_ms,
                }
            )
            print(json.dumps(lines[-1]), flush=True)
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--paths", default="respond,wait")
    parser.add_argument(
        "--server-processes", type=int, default=1, help="uvicorn's --workers (1: no supervisor)"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        help="the Celery worker's pool processes (default: FLOWS_WORKER_CONCURRENCY's default)",
    )
    add_service_arguments(parser)
    args = parser.parse_args()
    args.connections = [int(n) for n in args.connections.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("bench/peers.py needs wrk: apt-get install wrk")

    def stop(*_: object) -> None:  # stop the servers and workers on the way out
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-peers-"))
    print(f"logs in {work}", file=sys.stderr)
    for mode in args.modes.split(","):
        for path in args.paths.split(","):
            bench_mode(mode, path, args, work)


if __name__ == "__main__":
    main()
