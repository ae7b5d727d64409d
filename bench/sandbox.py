"""The cold cost of one sandboxed step: a new Store, instantiation and the call, as the engine pays
it for every step run. Baseline: a fresh `python -c` process running the same trivial function.

    .venv/bin/python bench/sandbox.py [--runs N]

Prints a table, then (last line) one JSON object with the figures. Needs the runner built
(`python manage.py sandbox build`) and the ziglang package (requirements-dev.txt) for the C guest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowbuilder.settings")

import django  # noqa: E402

django.setup()

from flows.sandbox import run_python_step, run_wasm_step  # noqa: E402
from tests.wasm_guests import GUESTS, build_freestanding_c  # noqa: E402

TRIVIAL = "def main(event, ctx):\n    return {'ok': True, 'keys': sorted(event)}\n"

PROMPT = """\
import textwrap

def main(event, ctx):
    pr = event["pull_request"]
    parts = [
        f"Review pull request #{pr['number']} in {event['repository']['full_name']}: {pr['title']}",
        textwrap.fill(pr["body"], 100),
        "Point out bugs, risky changes and missing tests. Be brief.",
    ]
    for f in event["files"]:
        parts.append(f"### {f['filename']} ({f['status']}, +{f['additions']} -{f['deletions']})")
        parts.append(f["patch"])
    prompt = "\\n\\n".join(parts)[:20_000]
    return {"messages": [{"role": "user", "content": prompt}], "chars": len(prompt)}
"""


def pull_request_event() -> dict:
    """About 30 KB of JSON shaped like a GitHub pull_request event with its changed files."""
    files = []
    for n in range(24):
        lines = [
            f"+    total += item.price * item.quantity  # line {i} of file {n}" for i in range(18)
        ]
        files.append(
            {
                "filename": f"shop/cart/module_{n}.py",
                "status": "modified",
                "additions": 18,
                "deletions": 3,
                "patch": "@@ -10,6 +10,21 @@ def total(cart):\n" + "\n".join(lines),
            }
        )
    return {
        "action": "opened",
        "repository": {"full_name": "octo/shop", "private": False},
        "pull_request": {
            "number": 42,
            "title": "Compute cart totals with quantities",
            "body": "This change makes the cart total account for quantities. " * 8,
            "user": {"login": "ada"},
        },
        "files": files,
    }


def timings(action: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="Samples per sandboxed case.")
    args = parser.parse_args()

    event = pull_request_event()
    small_event = {"action": "opened", "number": 42}

    def trivial() -> None:
        result = run_python_step(TRIVIAL, small_event, step="trivial")
        assert result.ok, result.error

    def prompt() -> None:
        result = run_python_step(PROMPT, event, step="prompt")
        assert result.ok and result.output["chars"] > 19_000, result.error

    with tempfile.TemporaryDirectory() as directory:
        module = build_freestanding_c(GUESTS / "echo.c", Path(directory) / "echo.wasm")
    grants = {"kv.get": lambda payload: {"value": "hello"}}

    def wasm() -> None:
        result = run_wasm_step(module, small_event, step="c", capabilities=grants)
        assert result.ok, result.error

    baseline = (
        "import json, sys\n" + TRIVIAL + "print(json.dumps(main(json.loads(sys.argv[1]), None)))\n"
    )

    def fresh_process() -> None:
        subprocess.run(
            [sys.executable, "-c", baseline, json.dumps(small_event)],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    cases = {
        "python_trivial": timings(trivial, args.runs),
        "python_prompt": timings(prompt, max(args.runs // 2, 10)),
        "wasm_module": timings(wasm, args.runs * 2),
        "subprocess": timings(fresh_process, max(args.runs // 5, 10), warmup=2),
    }
    print(f"event for the prompt step: {len(json.dumps(event)) / 1024:.1f} KB of JSON")
    print(f"{'case':<16} {'runs':>5} {'p50 ms':>8} {'p90 ms':>8}")
    for name, samples in cases.items():
        print(f"{name:<16} {len(samples):>5} {p50(samples):>8.2f} {p90(samples):>8.2f}")
    figures = {
        "python_trivial_ms_p50": round(p50(cases["python_trivial"]), 2),
        "python_trivial_ms_p90": round(p90(cases["python_trivial"]), 2),
        "python_prompt_ms_p50": round(p50(cases["python_prompt"]), 2),
        "wasm_module_ms_p50": round(p50(cases["wasm_module"]), 3),
        "subprocess_ms_p50": round(p50(cases["subprocess"]), 2),
        "speedup_vs_subprocess": round(p50(cases["subprocess"]) / p50(cases["python_trivial"]), 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
