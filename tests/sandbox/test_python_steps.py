"""Python steps: what `main(event, ctx)` sees, what comes back, and how errors read."""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path

import pytest
from django.conf import settings

from flows.capabilities import CapabilityError
from flows.sandbox import Limits, check_python_syntax, run_python_step

REVIEW = """\
def main(event, ctx):
    ctx.log("reviewing", event["number"])
    ctx.warn("a warning")
    files = ctx.call("github.pr.files", {"repo": ctx.settings["repo"], "number": event["number"]})
    return {
        "files": [f["filename"] for f in files],
        "previous": ctx.steps["fetch"],
        "run": ctx.run,
        "step": ctx.step,
    }
"""


def test_a_step_gets_its_event_context_and_capabilities_and_returns_json() -> None:
    calls = []

    def pr_files(payload: dict) -> list:
        calls.append(payload)
        return [{"filename": "a.py"}, {"filename": "b.py"}]

    live = []
    result = run_python_step(
        REVIEW,
        {"number": 7},
        step="review",
        context={
            "settings": {"repo": "octo/hello"},
            "steps": {"fetch": {"ok": True}},
            "run": {"flow_id": 3, "run_id": 41, "step": "review"},
        },
        capabilities={"github.pr.files": pr_files},
        on_log=lambda level, message: live.append((level, message)),
    )
    assert result.ok, result.error
    assert result.output == {
        "files": ["a.py", "b.py"],
        "previous": {"ok": True},
        "run": {"flow_id": 3, "run_id": 41, "step": "review"},
        "step": "review",
    }
    assert calls == [{"repo": "octo/hello", "number": 7}]
    assert result.logs == [("info", "reviewing 7"), ("warning", "a warning")]
    assert live == result.logs
    assert (result.error, result.error_kind, result.retryable) == ("", "", False)
    assert result.fuel_used > 0
    assert 0 < result.duration_ms < 1000


def test_logs_reach_on_log_while_the_step_is_still_running() -> None:
    seen_during_call = []
    live = []

    def probe(payload: dict) -> bool:
        seen_during_call.extend(live)
        return True

    run_python_step(
        "def main(event, ctx):\n    ctx.info('first')\n    ctx.call('probe')\n    ctx.error('last')\n",
        {},
        capabilities={"probe": probe},
        on_log=lambda level, message: live.append((level, message)),
    )
    assert seen_during_call == [("info", "first")]
    assert live == [("info", "first"), ("error", "last")]


def test_print_goes_to_the_log_line_by_line() -> None:
    result = run_python_step(
        "def main(event, ctx):\n    print('one', 2)\n    print('three\\nfour', end='')\n"
        "    ctx.debug('five')\n",
        {},
    )
    assert result.ok
    assert result.output is None
    assert result.logs == [
        ("info", "one 2"),
        ("info", "three"),
        ("debug", "five"),
        ("info", "four"),
    ]


def test_main_may_take_only_the_event() -> None:
    result = run_python_step("def main(event):\n    return event * 2\n", 21)
    assert (result.ok, result.output) == (True, 42)


def test_capability_errors_are_catchable_and_keep_their_retryable_flag() -> None:
    def flaky(payload: dict) -> None:
        raise CapabilityError("GitHub is down (503)", retryable=True)

    def broken(payload: dict) -> None:
        raise RuntimeError("connection reset")

    source = """\
from flowbuilder import CapabilityError

def main(event, ctx):
    caught = []
    for name in ("flaky", "broken", "missing"):
        try:
            ctx.call(name, {})
        except CapabilityError as exc:
            caught.append([str(exc), exc.retryable])
    try:
        ctx.call("flaky")
    except ctx.CapabilityError as exc:
        caught.append(["ctx.CapabilityError", exc.retryable])
    return caught
"""
    result = run_python_step(source, {}, capabilities={"flaky": flaky, "broken": broken})
    assert result.output == [
        ["GitHub is down (503)", True],
        ["connection reset", False],
        ["capability 'missing' not granted", False],
        ["ctx.CapabilityError", True],
    ]


def test_an_uncaught_retryable_capability_error_makes_the_step_retryable() -> None:
    def flaky(payload: dict) -> None:
        raise CapabilityError("rate limited, try again in 60 s", retryable=True)

    result = run_python_step(
        "def main(event, ctx):\n    return ctx.call('llm.chat', {'messages': []})\n",
        {},
        step="summarise",
        capabilities={"llm.chat": flaky},
    )
    assert (result.ok, result.error_kind, result.retryable) == (False, "capability", True)
    assert result.error == (
        "Traceback (most recent call last):\n"
        "  File \"step 'summarise'\", line 2, in main\n"
        "    return ctx.call('llm.chat', {'messages': []})\n"
        "           ~~~~~~~~^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "flowbuilder.CapabilityError: rate limited, try again in 60 s"
    )


def test_a_capability_result_that_is_not_json_is_an_error_for_the_guest() -> None:
    result = run_python_step(
        "def main(event, ctx):\n    try:\n        ctx.call('odd')\n"
        "    except ctx.CapabilityError as exc:\n        return str(exc)\n",
        {},
        capabilities={"odd": lambda payload: {1, 2}},
    )
    assert result.output == (
        "capability 'odd' returned a result that is not JSON "
        "(Object of type set is not JSON serializable)"
    )


def test_a_traceback_shows_only_the_users_code_with_its_line_numbers() -> None:
    source = "import json\n\ndef parse(text):\n    return json.loads(text)\n\n" + (
        "def main(event, ctx):\n    return parse(event['body'])\n"
    )
    result = run_python_step(source, {"body": "{oops"}, step="review")
    assert result.error_kind == "exception"
    lines = result.error.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1:5] == [
        "  File \"step 'review'\", line 7, in main",
        "    return parse(event['body'])",
        "  File \"step 'review'\", line 4, in parse",
        "    return json.loads(text)",
    ]
    assert lines[-1] == (
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    assert "step_runner" not in result.error
    assert "flowbuilder.py" not in result.error


def test_chained_exceptions_keep_both_tracebacks_without_runner_frames() -> None:
    source = (
        "def main(event, ctx):\n    try:\n        return 1 / 0\n"
        "    except ZeroDivisionError as exc:\n        raise ValueError('no ratio') from exc\n"
    )
    result = run_python_step(source, {}, step="ratio")
    assert result.error == (
        "Traceback (most recent call last):\n"
        "  File \"step 'ratio'\", line 3, in main\n"
        "    return 1 / 0\n"
        "           ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        "  File \"step 'ratio'\", line 5, in main\n"
        "    raise ValueError('no ratio') from exc\n"
        "ValueError: no ratio"
    )


def test_a_syntax_error_shows_the_line_in_the_steps_own_terms() -> None:
    result = run_python_step("def main(event, ctx):\n    return event +\n", {}, step="review")
    assert (result.error_kind, result.error) == (
        "syntax",
        "  File \"step 'review'\", line 2\n"
        "    return event +\n"
        "                  ^\n"
        "SyntaxError: invalid syntax",
    )


def test_a_step_without_main_says_so() -> None:
    result = run_python_step("answer = 42\n", {}, step="review")
    assert (result.error_kind, result.error) == (
        "invalid",
        "step 'review' does not define main(event, ctx)",
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def main(event, ctx):\n    return 1\n", None),
        (
            "def main(event, ctx):\n    return [1,\n",
            "step 'review': SyntaxError at line 2: '[' was never closed",
        ),
        (
            "def main(event, ctx):\nreturn 1\n",
            "step 'review': IndentationError at line 2: expected an indented block after function definition on line 1",
        ),
        ("x = 1\n", "step 'review' does not define main(event, ctx)"),
        ("x = '\0'\n", "step 'review': SyntaxError: source code string cannot contain null bytes"),
        # Syntax of the Python inside the sandbox (3.14), newer than the host's.
        ("type Pair = tuple[int, int]\n\ndef main(event, ctx):\n    return 1\n", None),
    ],
    ids=["fine", "unclosed", "indentation", "no main", "null byte", "new syntax"],
)
def test_check_python_syntax(source: str, problem: str | None) -> None:
    assert check_python_syntax(source, "review") == problem


def test_randomness_differs_between_runs() -> None:
    source = "import random, uuid\n\ndef main(event, ctx):\n    return [random.random(), str(uuid.uuid4())]\n"
    first, second = run_python_step(source, {}).output, run_python_step(source, {}).output
    assert first[0] != second[0] and first[1] != second[1]


def test_each_run_starts_from_a_fresh_interpreter() -> None:
    source = (
        "import json\n\nseen = []\n\ndef main(event, ctx):\n    seen.append(event)\n"
        "    json.counter = getattr(json, 'counter', 0) + 1\n    return [seen, json.counter]\n"
    )
    assert run_python_step(source, 1).output == [[1], 1]
    assert run_python_step(source, 2).output == [[2], 1]


def documented_modules() -> list[str]:
    text = (Path(settings.BASE_DIR) / "docs" / "sandbox.md").read_text()
    section = text.split("## Modules steps can import", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- `([a-z0-9_.]+)`", section, flags=re.MULTILINE)


def runner_modules() -> list[str]:
    tree = ast.parse((Path(settings.BASE_DIR) / "runner" / "guest" / "step_runner.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "STEP_MODULES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("STEP_MODULES not found")


def test_the_documented_modules_are_exactly_the_ones_steps_can_import() -> None:
    modules = documented_modules()
    assert modules == runner_modules()
    for required in (
        "json re textwrap difflib datetime math itertools collections functools string base64 "
        "hashlib html urllib.parse fnmatch random statistics dataclasses typing enum uuid"
    ).split():
        assert required in modules
    source = "\n".join(f"import {name}" for name in modules) + (
        "\n\ndef main(event, ctx):\n    return 'imported'\n"
    )
    assert run_python_step(source, {}).output == "imported"


def test_the_standard_library_works_inside_a_step() -> None:
    source = """\
import base64, collections, dataclasses, datetime, difflib, enum, fnmatch, functools, hashlib
import html, itertools, json, math, random, re, statistics, string, textwrap, typing, uuid
from urllib.parse import urlparse


@dataclasses.dataclass
class File:
    name: str
    additions: int


class Kind(enum.Enum):
    CODE = "code"


def main(event, ctx):
    files = [File(**f) for f in event["files"]]
    diff = list(difflib.unified_diff(["a\\n"], ["b\\n"], lineterm=""))
    return {
        "b64": base64.b64encode(b"hi").decode(),
        "counts": collections.Counter(f.name.split(".")[-1] for f in files),
        "year": datetime.date(2024, 5, 1).year,
        "parsed": datetime.datetime.strptime("2024-05-01 09:30", "%Y-%m-%d %H:%M").isoformat(),
        "diff": diff[-2:],
        "kind": Kind("code").name,
        "py": fnmatch.filter([f.name for f in files], "*.py"),
        "total": functools.reduce(lambda a, f: a + f.additions, files, 0),
        "sha": hashlib.sha256(b"x").hexdigest()[:8],
        "html": html.escape("<b>"),
        "pairs": list(itertools.pairwise([1, 2, 3])),
        "sqrt": math.isqrt(49),
        "choice": random.choice(["only"]),
        "words": re.findall(r"\\w+", "a b"),
        "mean": statistics.mean([1, 2, 3]),
        "upper": string.ascii_uppercase[:3],
        "wrapped": textwrap.wrap("aaa bbb", 3),
        "hint": typing.get_type_hints(File)["additions"].__name__,
        "uuid": len(str(uuid.uuid4())),
        "host": urlparse("https://github.com/octo/hello").netloc,
        "json": json.loads("[1]"),
    }
"""
    event = {"files": [{"name": "a.py", "additions": 3}, {"name": "b.md", "additions": 4}]}
    result = run_python_step(source, event)
    assert result.ok, result.error
    assert result.output == {
        "b64": "aGk=",
        "counts": {"py": 1, "md": 1},
        "year": 2024,
        "parsed": "2024-05-01T09:30:00",
        "diff": ["-a\n", "+b\n"],
        "kind": "CODE",
        "py": ["a.py"],
        "total": 7,
        "sha": "2d711642",
        "html": "&lt;b&gt;",
        "pairs": [[1, 2], [2, 3]],
        "sqrt": 7,
        "choice": "only",
        "words": ["a", "b"],
        "mean": 2,
        "upper": "ABC",
        "wrapped": ["aaa", "bbb"],
        "hint": "int",
        "uuid": 36,
        "host": "github.com",
        "json": [1],
    }


def test_an_event_that_is_not_json_is_refused_before_running() -> None:
    result = run_python_step("def main(event, ctx):\n    return 1\n", {"when": object()}, step="x")
    assert (result.ok, result.error_kind) == (False, "invalid")
    assert result.error == (
        "step 'x': its input is not JSON: Object of type object is not JSON serializable"
    )


def test_steps_run_side_by_side_in_threads_without_mixing_their_state() -> None:
    source = (
        "def main(event, ctx):\n    for i in range(20):\n        ctx.log(event['who'], i)\n"
        "    return ctx.call('whoami', {'who': event['who']})\n"
    )
    results: dict[str, object] = {}

    def run(who: str) -> None:
        results[who] = run_python_step(
            source,
            {"who": who},
            step=who,
            capabilities={"whoami": lambda payload, who=who: [who, payload["who"]]},
        )

    def spin() -> None:
        results["spinner"] = run_python_step(
            "def main(event, ctx):\n    while True:\n        pass\n",
            {},
            step="spinner",
            limits=Limits(timeout_s=1),
        )

    threads = [threading.Thread(target=spin)] + [
        threading.Thread(target=run, args=(f"worker-{n}",)) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for n in range(4):
        who = f"worker-{n}"
        result = results[who]
        assert result.ok, result.error
        assert result.output == [who, who]
        assert result.logs == [("info", f"{who} {i}") for i in range(20)]
    assert results["spinner"].error == "step 'spinner' exceeded its 1 s time limit"
