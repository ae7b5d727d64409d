"""Time from a webhook POST to its answer, for a flow webhook → Python step → http.respond (the
answer leaves as soon as the respond step runs), as a Slack slash command would see it.

    .venv/bin/python bench/respond.py [--requests 200] [--modes embedded,distributed]

Prints one JSON object per mode: p50, p95, p99 and max milliseconds, and the answers' statuses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throughput import add_service_arguments, bench_env, percentile, seed  # noqa: E402
from tests.engine import live  # noqa: E402

STEP = """
def main(event, ctx):
    title = event["body"]["title"]
    return {"words": len(title.split()), "upper": title.upper()}
"""

DOCUMENT = {
    "schema": "flowbuilder/flow@2",
    "name": "Slash command",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {},
    "connections": {},
    "steps": [
        {"id": "count", "kind": "code.python", "config": {"source": STEP}},
        {
            "id": "answer",
            "kind": "http.respond",
            "config": {"body": {"text": "{{ steps.count.upper }} ({{ steps.count.words }} words)"}},
        },
    ],
    "edges": [["trigger", "out", "count"], ["count", "out", "answer"]],
}


def bench_mode(mode: str, args, work: Path) -> dict:
    procs: dict[str, live.Process] = {}
    env = bench_env(mode, args, work)
    try:
        info = seed(env, {"document": DOCUMENT, "flow": {"max_concurrency": 8}})
        if mode == "distributed":
            procs["worker"] = live.start_worker(env, work)
        procs["server"], base = live.start_server(env, work)
        times, statuses = [], {}
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(args.warmup + args.requests):
                started = time.perf_counter()
                answer = client.post(f"/hooks/{info['token']}/", json={"title": f"fix bug {n}"})
                elapsed = (time.perf_counter() - started) * 1000
                if n >= args.warmup:
                    times.append(elapsed)
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    finally:
        for proc in reversed(procs.values()):
            proc.stop()
    return {
        "mode": mode,
        "requests": len(times),
        "statuses": statuses,
        "ms_p50": round(statistics.median(times), 1),
        "ms_p95": round(percentile(times, 95), 1),
        "ms_p99": round(percentile(times, 99), 1),
        "ms_max": round(max(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--modes", default="embedded,distributed")
    add_service_arguments(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flowbuilder-respond-"))
    for mode in args.modes.split(","):
        print(json.dumps(bench_mode(mode, args, work)))


if __name__ == "__main__":
    main()
