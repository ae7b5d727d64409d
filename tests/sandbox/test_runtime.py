"""The per-process runtime (one engine, one epoch ticker, recreated after fork) and the build of
the Python-step runner."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from flows.sandbox import run_python_step, run_wasm_step
from flows.sandbox.build import component_fingerprint, outdated_reason, read_manifest
from flows.sandbox.engine import (
    EPOCH_TICK_S,
    EpochTicker,
    engine_fingerprint,
    new_engine,
    runtime,
    wasmtime_version,
)


def test_one_engine_and_one_epoch_ticker_serve_every_step_of_a_process(
    guests: dict[str, bytes],
) -> None:
    first = runtime()
    run_python_step("def main(event, ctx):\n    return 1\n", {})
    run_wasm_step(guests["hostile"], {"attack": "none"})
    assert runtime() is first
    assert first.pid == os.getpid()
    tickers = [t for t in threading.enumerate() if t.name == "flowbuilder-epoch-ticker"]
    assert tickers == [first.ticker.thread]
    assert tickers[0].daemon


FORKING_WORKER = """
import json, os
import django
django.setup()
from flows.sandbox import Limits, run_python_step
from flows.sandbox.engine import runtime

LOOP = "def main(event, ctx):\\n    while True:\\n        pass\\n"
assert run_python_step("def main(event, ctx):\\n    return 1\\n", {}).ok
parent = runtime()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    timed_out = run_python_step(LOOP, {}, step="child", limits=Limits(timeout_s=1))
    fine = run_python_step("def main(event, ctx):\\n    return event + 1\\n", 41)
    report = [os.getpid(), runtime().pid, runtime() is parent, timed_out.error, fine.output]
    os.write(write, json.dumps(report).encode())
    os._exit(0)
os.close(write)
child = json.loads(os.read(read, 4096))
_, status = os.waitpid(pid, 0)
print(json.dumps({"parent": os.getpid(), "child": child, "status": status,
                  "parent_runtime_kept": runtime() is parent}))
"""


def test_a_deadline_set_while_the_ticker_is_held_up_counts_the_ticks_it_owes() -> None:
    ticker = EpochTicker(new_engine())
    assert ticker.lag() == 0  # idle: the next period starts from the current epoch
    # A ticker held up for 20 ticks' worth of time will add them at once when it wakes.
    ticker.started = time.monotonic() - 20.5 * EPOCH_TICK_S
    ticker.ticks = 0
    assert ticker.lag() >= 20
    ticker.ticks = 20
    assert ticker.lag() in (0, 1)


def test_a_forked_worker_creates_its_own_engine_and_ticker() -> None:
    # In a fresh interpreter, like a prefork worker pool: the parent ran a step before forking.
    done = subprocess.run(
        [sys.executable, "-c", FORKING_WORKER],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "flowbuilder.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    child_pid, runtime_pid, shared, timed_out, fine = report["child"]
    assert report["status"] == 0
    assert runtime_pid == child_pid != report["parent"]
    assert shared is False
    assert timed_out == "step 'child' exceeded its 1 s time limit"
    assert fine == 42
    assert report["parent_runtime_kept"] is True


def test_building_again_with_unchanged_inputs_is_a_fast_no_op() -> None:
    out = io.StringIO()
    started = time.monotonic()
    call_command("sandbox", "build", stdout=out)
    assert time.monotonic() - started < 1
    assert out.getvalue() == (
        f"The Python step runner in {settings.FLOWS_RUNNER_DIR} is up to date.\n"
    )
    manifest = read_manifest()
    assert manifest["wasmtime"] == wasmtime_version()
    assert manifest["native"] == f"runner-{engine_fingerprint()}.cwasm"
    assert manifest["component_fingerprint"] == component_fingerprint()


def test_the_runner_fingerprint_follows_its_sources_only(tmp_path: Path) -> None:
    sources = tmp_path / "runner"
    shutil.copytree(Path(settings.BASE_DIR) / "runner", sources)
    before = component_fingerprint(sources)
    assert before == component_fingerprint()
    (sources / "guest" / "__pycache__").mkdir(exist_ok=True)
    (sources / "guest" / "__pycache__" / "step_runner.cpython-314.pyc").write_bytes(b"\0")
    (sources / "notes.txt").write_text("not an input")
    assert component_fingerprint(sources) == before
    wit = sources / "wit" / "runner.wit"
    wit.write_text(wit.read_text() + "\n")
    assert component_fingerprint(sources) != before


def test_an_empty_runner_directory_is_reported_as_not_built(tmp_path: Path) -> None:
    assert outdated_reason(tmp_path) == "it is not built"
