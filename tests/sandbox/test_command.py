"""`python manage.py sandbox run-step` and `sandbox declare`: local runs of steps and modules."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from flows import capabilities
from flows.capabilities import CapabilityContext
from flows.sandbox import module_capabilities

SLOW_STEP = """\
import time

def main(event, ctx):
    ctx.log("started review of", event["number"])
    time.sleep(1.5)
    ctx.warn("done")
    return {"number": event["number"], "verdict": "looks good"}
"""


def manage(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sandbox", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"number": 7}))
    return path


def test_run_step_streams_logs_to_stderr_while_running_and_prints_the_output(
    tmp_path: Path, event_file: Path
) -> None:
    step = tmp_path / "review.py"
    step.write_text(SLOW_STEP)
    process = manage("run-step", str(step), "--event", str(event_file))
    first_line = process.stderr.readline()
    # The first log line arrives while the step is still sleeping.
    assert first_line == "[info] started review of 7\n"
    assert process.poll() is None
    stdout, rest = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert rest == "[warning] done\n"
    assert json.loads(stdout) == {"number": 7, "verdict": "looks good"}


def test_run_step_exits_non_zero_with_the_steps_error(tmp_path: Path, event_file: Path) -> None:
    step = tmp_path / "review.py"
    step.write_text("def main(event, ctx):\n    while True:\n        pass\n")
    process = manage("run-step", str(step), "--event", str(event_file), "--timeout", "1")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stdout == ""
    assert stderr == "CommandError: step 'review' exceeded its 1 s time limit\n"


def test_run_step_says_when_the_runner_is_not_built(tmp_path: Path, event_file: Path) -> None:
    step = tmp_path / "review.py"
    step.write_text("def main(event, ctx):\n    return 1\n")
    process = manage("run-step", str(step), FLOWS_RUNNER_DIR=str(tmp_path / "no-runner"))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.endswith(
        "CommandError: the Python step runner cannot be used (it is not built): "
        "run `python manage.py sandbox build`\n"
    )


@pytest.fixture
def echo_capability() -> Iterator[list]:
    contexts: list = []

    @capabilities.register("test.echo", description="Echoes its payload (tests only).")
    def echo(context: CapabilityContext, payload: dict) -> dict:
        contexts.append(context)
        return {"echo": payload}

    yield contexts
    del capabilities.REGISTRY["test.echo"]


def test_run_step_grants_registered_capabilities_only(
    tmp_path: Path, event_file: Path, echo_capability: list
) -> None:
    step = tmp_path / "notify.py"
    step.write_text(
        "def main(event, ctx):\n"
        "    answer = ctx.call('test.echo', {'n': event['number']})\n"
        "    try:\n"
        "        ctx.call('nowhere.send', {})\n"
        "    except ctx.CapabilityError as exc:\n"
        "        return [answer, str(exc)]\n"
    )
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "sandbox",
        "run-step",
        str(step),
        "--event",
        str(event_file),
        "--grant",
        "test.echo",
        "--grant",
        "nowhere.send",
        stdout=out,
        stderr=err,
    )
    assert json.loads(out.getvalue()) == [
        {"echo": {"n": 7}},
        "capability 'nowhere.send' is not available to local runs",
    ]
    assert [(c.flow_id, c.run_id, c.step_id) for c in echo_capability] == [(0, None, "notify")]


def test_run_step_runs_a_wasm_module(guests: dict[str, bytes], tmp_path: Path) -> None:
    module = tmp_path / "hostile.wasm"
    module.write_bytes(guests["hostile"])
    event = tmp_path / "attack.json"
    event.write_text(json.dumps({"attack": "ungranted"}))
    out, err = io.StringIO(), io.StringIO()
    call_command("sandbox", "run-step", str(module), "--event", str(event), stdout=out, stderr=err)
    assert json.loads(out.getvalue()) == {
        "error": "capability 'github.pr.get' not granted",
        "retryable": False,
    }
    event.write_text(json.dumps({"attack": "logs"}))
    started = time.monotonic()
    with pytest.raises(CommandError) as failed:
        call_command("sandbox", "run-step", str(module), "--event", str(event), stderr=err)
    assert str(failed.value) == "step 'hostile' exceeded its 256 KB log limit"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            ["--memory", "4096"],
            "limit 'memory_mib' is 4096 MiB, above this server's maximum of 1024 MiB",
        ),
        (["--timeout", "0"], "limit 'timeout_s' must be a positive number, not 0.0"),
        (
            ["--event", "/nonexistent/event.json"],
            "cannot read /nonexistent/event.json: No such file or directory",
        ),
    ],
)
def test_run_step_refuses_bad_options(tmp_path: Path, options: list[str], error: str) -> None:
    step = tmp_path / "review.py"
    step.write_text("def main(event, ctx):\n    return 1\n")
    with pytest.raises(CommandError) as refused:
        call_command("sandbox", "run-step", str(step), *options)
    assert str(refused.value) == error


def test_declare_writes_the_capabilities_a_module_needs(
    guests: dict[str, bytes], tmp_path: Path
) -> None:
    module = tmp_path / "module.wasm"
    module.write_bytes(guests["hostile"])
    out = io.StringIO()
    call_command("sandbox", "declare", str(module), "kv.get", "llm.chat", stdout=out)
    assert out.getvalue() == f"{module} declares the capabilities kv.get, llm.chat\n"
    assert module_capabilities(module.read_bytes()) == ["kv.get", "llm.chat"]
    copy = tmp_path / "copy.wasm"
    call_command(
        "sandbox", "declare", str(module), "http.request", "--output", str(copy), stdout=out
    )
    assert module_capabilities(copy.read_bytes()) == ["http.request"]
    assert module_capabilities(module.read_bytes()) == ["kv.get", "llm.chat"]

    not_wasm = tmp_path / "notes.txt"
    not_wasm.write_text("hello")
    with pytest.raises(CommandError) as refused:
        call_command("sandbox", "declare", str(not_wasm), "kv.get")
    assert str(refused.value) == (
        f"{not_wasm}: not a WebAssembly module: it does not start with the \\0asm magic bytes"
    )


@pytest.mark.parametrize("language", ["rust", "c", "zig", "assemblyscript"])
def test_run_step_runs_an_sdk_example_with_a_local_key_value_store(
    sdk_modules: dict[str, bytes], language: str, tmp_path: Path
) -> None:
    module = tmp_path / "word_count.wasm"
    module.write_bytes(sdk_modules[f"{language}_word_count"])
    (tmp_path / "event.json").write_text(json.dumps({"text": "one two three"}))
    (tmp_path / "kv.json").write_text(json.dumps({"words_total": 10}))
    run_step = ["sandbox", "run-step", str(module), "--event", str(tmp_path / "event.json")]
    out, err = io.StringIO(), io.StringIO()
    kv = ["--kv", str(tmp_path / "kv.json")]
    call_command(*run_step, *kv, "--grant", "kv.get", "--grant", "kv.set", stdout=out, stderr=err)
    assert json.loads(out.getvalue()) == {"words": 3, "total": 13, "shout": "ONE TWO THREE"}
    assert err.getvalue().strip() == "[info] counted 3 words"
    with pytest.raises(CommandError, match="capability 'kv.set' not granted"):
        call_command(*run_step, "--grant", "kv.get", stdout=io.StringIO(), stderr=io.StringIO())
