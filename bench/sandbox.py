"""The cold cost of one sandboxed step: a new Store, instantiation and the call, as the engine pays
it for every step run. Baseline: a fresh `python -c` process running the same trivial function.

Then the speed case for compiled steps: the Code Review Bot's prompt builder on one 60-file pull
request (tests/workloads.py), as a sandboxed Python step (plan.py's own functions), as the Rust
SDK's example in the sandbox (sdk/rust/examples/prompt_builder.rs; the same output), and as the
same Python run natively on the host, without a sandbox.

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
from tests.wasm_guests import (  # noqa: E402
    GUESTS,
    build_freestanding_c,
    prompt_builder_python,
    rust_guests,
)
from tests.workloads import pull_request_event as review_event  # noqa: E402
from tests.workloads import pull_request_files  # noqa: E402

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


class HostContext:
    """The `ctx` of a step run natively: settings, logs dropped, the files from memory."""

    def __init__(self, settings: dict, files: list):
        self.settings, self.files = settings, files

    def call(self, capability: str, payload: dict) -> list:
        return json.loads(json.dumps(self.files))

    def info(self, *parts: object) -> None:
        pass


def prompt_builders(runs: int) -> dict[str, list[float]]:
    """The prompt builder three ways on one 60-file pull request; checks they agree."""
    event, files = review_event(), pull_request_files()
    settings = {"context_size": 4000, "max_files": 40}
    source = prompt_builder_python()
    grants = {"github.pr.files": lambda payload: files}
    module = rust_guests()["prompt_builder"]
    context = {"settings": settings}
    native: dict = {}
    # On the host, the sandbox's `flowbuilder` module (CapabilityError) is a plain exception.
    host_source = source.replace(
        "from flowbuilder import CapabilityError", "CapabilityError = RuntimeError"
    )
    exec(compile(host_source, "prompt_builder", "exec"), native)

    def python() -> object:
        result = run_python_step(source, event, step="plan", context=context, capabilities=grants)
        assert result.ok, result.error
        return result.output

    def rust() -> object:
        result = run_wasm_step(module, event, step="plan", context=context, capabilities=grants)
        assert result.ok, result.error
        return result.output

    def host() -> object:
        return native["main"](json.loads(json.dumps(event)), HostContext(settings, files))

    assert python() == rust() == json.loads(json.dumps(host()))
    return {
        "prompt_python_sandbox": timings(python, runs),
        "prompt_rust_sandbox": timings(rust, runs),
        "prompt_python_host": timings(host, runs),
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
        **prompt_builders(max(args.runs // 4, 10)),
    }
    print(f"event for the prompt step: {len(json.dumps(event)) / 1024:.1f} KB of JSON")
    print(f"{'case':<22} {'runs':>5} {'p50 ms':>8} {'p90 ms':>8}")
    for name, samples in cases.items():
        print(f"{name:<22} {len(samples):>5} {p50(samples):>8.2f} {p90(samples):>8.2f}")
    figures = {
        "python_trivial_ms_p50": round(p50(cases["python_trivial"]), 2),
        "python_trivial_ms_p90": round(p90(cases["python_trivial"]), 2),
        "python_prompt_ms_p50": round(p50(cases["python_prompt"]), 2),
        "wasm_module_ms_p50": round(p50(cases["wasm_module"]), 3),
        "subprocess_ms_p50": round(p50(cases["subprocess"]), 2),
        "speedup_vs_subprocess": round(p50(cases["subprocess"]) / p50(cases["python_trivial"]), 1),
        **{
            f"{name}_ms_p50": round(p50(cases[name]), 2)
            for name in ("prompt_python_sandbox", "prompt_rust_sandbox", "prompt_python_host")
        },
        "prompt_rust_vs_python_sandbox": round(
            p50(cases["prompt_python_sandbox"]) / p50(cases["prompt_rust_sandbox"]), 1
        ),
        "prompt_rust_vs_python_host": round(
            p50(cases["prompt_python_host"]) / p50(cases["prompt_rust_sandbox"]), 2
        ),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
