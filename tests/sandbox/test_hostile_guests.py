"""The hostile-guest corpus: each attack ends its own step with the exact error a user sees, and
a normal step run right after it in the same process succeeds."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from flows.sandbox import Limits, StepResult, run_python_step, run_wasm_step

SMALL = {"timeout_s": 1, "memory_mib": 64, "log_bytes": 4096}
NOT_PROVIDED = "Python steps can import only the modules listed in docs/sandbox.md"


def kv_get(payload: dict) -> dict:
    return {"value": payload}


def run_hostile(source: str, **limits: float) -> StepResult:
    result = run_python_step(
        source,
        {"pull_request": 1},
        step="hostile",
        capabilities={"kv.get": kv_get},
        limits=Limits(**{**SMALL, **limits}),
    )
    assert not result.ok
    assert result.output is None
    return result


# (source, error_kind, the error's last line)
PYTHON_ATTACKS = {
    "infinite loop": (
        "def main(event, ctx):\n    while True:\n        pass\n",
        "timeout",
        "step 'hostile' exceeded its 1 s time limit",
    ),
    "sleeping past the deadline": (
        "import time\n\ndef main(event, ctx):\n    time.sleep(60)\n",
        "timeout",
        "step 'hostile' exceeded its 1 s time limit",
    ),
    "memory bomb": (
        "def main(event, ctx):\n    hoard = []\n    while True:\n        hoard.append('x' * 2**20)\n",
        "memory",
        "step 'hostile' exceeded its 64 MiB memory limit",
    ),
    "one huge allocation": (
        "def main(event, ctx):\n    return len(bytearray(2**30))\n",
        "memory",
        "step 'hostile' exceeded its 64 MiB memory limit",
    ),
    "deep recursion": (
        "def down(n):\n    return down(n + 1)\n\ndef main(event, ctx):\n    return down(0)\n",
        "exception",
        "RecursionError: maximum recursion depth exceeded",
    ),
    "recursion in C code": (
        "import json\n\ndef main(event, ctx):\n    nested = []\n"
        "    for _ in range(100_000):\n        nested = [nested]\n    return json.dumps(nested)\n",
        "exception",
        "step 'hostile' overflowed its call stack (recursion too deep)",
    ),
    "reading /etc/passwd": (
        "def main(event, ctx):\n    with open('/etc/passwd') as f:\n        return f.read()\n",
        "exception",
        "FileNotFoundError: [Errno 44] No such file or directory: '/etc/passwd'",
    ),
    "opening a socket": (
        "import socket\n\ndef main(event, ctx):\n    return socket.create_connection(('1.1.1.1', 80))\n",
        "exception",
        f"ModuleNotFoundError: No module named 'socket': {NOT_PROVIDED}",
    ),
    "starting a subprocess": (
        "import subprocess\n\ndef main(event, ctx):\n    return subprocess.run(['id'])\n",
        "exception",
        f"ModuleNotFoundError: No module named 'subprocess': {NOT_PROVIDED}",
    ),
    "reaching the environment through os": (
        "def main(event, ctx):\n    import os\n    return dict(os.environ)\n",
        "exception",
        f"ModuleNotFoundError: No module named 'os': {NOT_PROVIDED}",
    ),
    "reaching sys through the builtins' loader": (
        "def main(event, ctx):\n    return repr(__loader__.load_module('sys'))\n",
        "exception",
        "NameError: name '__loader__' is not defined",
    ),
    "reaching posix through the built-in importer's class": (
        "def main(event, ctx):\n"
        "    found = [c for c in object.__subclasses__() if c.__name__ == 'BuiltinImporter']\n"
        "    return repr(found[0].load_module('posix'))\n",
        "exception",
        "ModuleNotFoundError: Python steps load modules only with import",
    ),
    "a module we don't provide": (
        "import requests\n\ndef main(event, ctx):\n    return requests.get('http://x')\n",
        "exception",
        f"ModuleNotFoundError: No module named 'requests': {NOT_PROVIDED}",
    ),
    "a submodule we don't provide": (
        "from urllib import request\n\ndef main(event, ctx):\n    return 1\n",
        "exception",
        f"ModuleNotFoundError: No module named 'urllib.request': {NOT_PROVIDED}",
    ),
    "a flood of stdout": (
        "def main(event, ctx):\n    while True:\n        print('spam ' * 10)\n",
        "log",
        "step 'hostile' exceeded its 4 KB log limit",
    ),
    "a flood of log calls": (
        "def main(event, ctx):\n    while True:\n        ctx.log('spam ' * 10)\n",
        "log",
        "step 'hostile' exceeded its 4 KB log limit",
    ),
    "an ungranted capability": (
        "def main(event, ctx):\n    return ctx.call('github.pr.get', {'repo': 'a/b', 'number': 1})\n",
        "capability",
        "flowbuilder.CapabilityError: capability 'github.pr.get' not granted",
    ),
    "a payload that is not JSON-serialisable": (
        "def main(event, ctx):\n    return ctx.call('kv.get', {'key': {1, 2}})\n",
        "capability",
        "flowbuilder.CapabilityError: capability 'kv.get': the payload is not JSON-serialisable: "
        "Object of type set is not JSON serializable",
    ),
    "a payload that is not an object": (
        "def main(event, ctx):\n    return ctx.call('kv.get', ['key'])\n",
        "capability",
        "flowbuilder.CapabilityError: capability 'kv.get': the payload must be a JSON object "
        "(a dict), not list",
    ),
    "a syntax error": (
        "def main(event, ctx):\n    return [1, 2\n",
        "syntax",
        "SyntaxError: '[' was never closed",
    ),
    "an uncaught exception": (
        "def main(event, ctx):\n    return event['missing']\n",
        "exception",
        "KeyError: 'missing'",
    ),
    "exiting the interpreter": (
        "def main(event, ctx):\n    raise SystemExit(3)\n",
        "exception",
        "SystemExit: 3",
    ),
    "a return value that is not JSON-serialisable": (
        "def main(event, ctx):\n    return {'when': object()}\n",
        "output",
        "step 'hostile' returned a value that is not JSON-serialisable: "
        "Object of type object is not JSON serializable",
    ),
    "a return value that is too big": (
        "def main(event, ctx):\n    return 'x' * 2_202_000\n",
        "output",
        "step 'hostile' returned 2.1 MB of output; the limit is 1 MB",
    ),
}


@pytest.mark.parametrize("attack", PYTHON_ATTACKS)
def test_python_attack_ends_only_its_own_step(attack: str, still_works: Callable) -> None:
    source, kind, last_line = PYTHON_ATTACKS[attack]
    started = time.monotonic()
    result = run_hostile(source)
    assert result.error_kind == kind
    assert result.error.splitlines()[-1] == last_line
    assert result.retryable is False
    assert time.monotonic() - started < 5
    still_works()


def test_an_exhausted_fuel_budget_names_the_limit(still_works: Callable) -> None:
    result = run_hostile("def main(event, ctx):\n    while True:\n        pass\n", fuel=50_000_000)
    assert (result.error_kind, result.error) == (
        "fuel",
        "step 'hostile' ran out of fuel (limit 50,000,000)",
    )
    assert result.fuel_used == 50_000_000
    still_works()


def test_a_time_limit_stops_the_step_close_to_its_deadline() -> None:
    started = time.monotonic()
    # Fuel enough for far longer than the limit: a fast machine burns the default 20 billion
    # units within 1.5 s, and then the fuel would stop the step first.
    result = run_hostile(
        "def main(event, ctx):\n    while True:\n        pass\n", timeout_s=1.5, fuel=10**13
    )
    elapsed = time.monotonic() - started
    assert result.error == "step 'hostile' exceeded its 1.5 s time limit"
    assert 1.5 <= elapsed < 2.5


def test_logs_written_before_a_flood_are_kept_up_to_the_limit() -> None:
    result = run_hostile("def main(event, ctx):\n    while True:\n        ctx.log('x' * 100)\n")
    assert result.logs == [("info", "x" * 100)] * 40
    assert result.error == "step 'hostile' exceeded its 4 KB log limit"


# (attack, error_kind, error)
MODULE_ATTACKS = {
    "loop": ("timeout", "step 'hostile' exceeded its 1 s time limit"),
    "memory": ("memory", "step 'hostile' exceeded its 64 MiB memory limit"),
    "logs": ("log", "step 'hostile' exceeded its 4 KB log limit"),
    "trap": (
        "exception",
        "step 'hostile' crashed: wasm trap: wasm `unreachable` instruction executed",
    ),
    "bad-buffer": (
        "exception",
        "step 'hostile': the module passed a buffer outside its memory (at 2147483632, 4096 bytes)",
    ),
    "big-output": ("output", "step 'hostile' returned 2 MB of output; the limit is 1 MB"),
    "not-json": (
        "output",
        "step 'hostile' returned output that is not JSON (Expecting value: line 1 column 1 "
        '(char 0)); expected {"ok": <output>} or {"error": "<message>"} (see docs/wasm-abi.md)',
    ),
}


# A call storm: a module calling a granted capability in a loop, as fast as the host answers.
COMPILED_ATTACKS = {
    **{name: MODULE_ATTACKS[name] for name in ("loop", "memory", "logs", "trap", "big-output")},
    "calls": ("timeout", "step 'hostile' exceeded its 1 s time limit"),
}


@pytest.fixture(scope="module")
def compiled_hostile(guests: dict[str, bytes], sdk_modules: dict[str, bytes]) -> dict[str, bytes]:
    """The hostile guest in C (tests/sandbox/guests/hostile.c) and in Rust, with the Rust SDK
    (tests/sandbox/guests/rust/)."""
    return {"c": guests["hostile"], "rust": sdk_modules["rust_hostile"]}


@pytest.mark.parametrize("language", ["c", "rust"])
@pytest.mark.parametrize("attack", COMPILED_ATTACKS)
def test_a_compiled_attack_ends_only_its_own_step(
    compiled_hostile: dict[str, bytes], language: str, attack: str, still_works: Callable
) -> None:
    module = compiled_hostile[language]
    started = time.monotonic()
    result = run_wasm_step(
        module,
        {"attack": attack},
        step="hostile",
        capabilities={"kv.get": kv_get},
        limits=Limits(**SMALL),
    )
    assert (result.ok, result.error_kind, result.error) == (False, *COMPILED_ATTACKS[attack])
    assert time.monotonic() - started < 5
    still_works()
    after = run_wasm_step(module, {"attack": "none"}, step="hostile")
    assert (after.ok, after.output) == (True, "no attack")


def test_a_rust_panic_leaves_its_message_in_the_log(compiled_hostile: dict[str, bytes]) -> None:
    result = run_wasm_step(compiled_hostile["rust"], {"attack": "trap"}, step="hostile")
    [(level, message)] = result.logs
    assert level == "error"
    assert message.startswith("panicked at 'the pull request has no files', src/lib.rs:")


def test_a_python_call_storm_meets_the_same_limit(still_works: Callable) -> None:
    result = run_hostile(
        "def main(event, ctx):\n    while True:\n        ctx.call('kv.get', {'key': 'storm'})\n"
    )
    assert (result.error_kind, result.error.splitlines()[-1]) == COMPILED_ATTACKS["calls"]
    still_works()


@pytest.mark.parametrize("attack", ["bad-buffer", "not-json"])
def test_module_attack_ends_only_its_own_step(
    guests: dict[str, bytes], attack: str, still_works: Callable
) -> None:
    result = run_wasm_step(
        guests["hostile"], {"attack": attack}, step="hostile", limits=Limits(**SMALL)
    )
    assert (result.ok, result.error_kind, result.error) == (False, *MODULE_ATTACKS[attack])
    still_works()
    after = run_wasm_step(guests["hostile"], {"attack": "none"}, step="hostile")
    assert (after.ok, after.output) == (True, "no attack")


@pytest.mark.parametrize(
    ("attack", "envelope"),
    [
        ("ungranted", {"error": "capability 'github.pr.get' not granted", "retryable": False}),
        (
            "malformed",
            {
                "error": "capability 'kv.get': the payload is not valid JSON (Expecting property "
                "name enclosed in double quotes: line 1 column 2 (char 1))",
                "retryable": False,
            },
        ),
        (
            "not-object",
            {
                "error": "capability 'kv.get': the payload must be a JSON object, not an array",
                "retryable": False,
            },
        ),
    ],
)
def test_module_capability_misuse_is_an_error_the_module_receives(
    guests: dict[str, bytes], attack: str, envelope: dict
) -> None:
    # The hostile module returns the call's result envelope as its output.
    result = run_wasm_step(
        guests["hostile"],
        {"attack": attack},
        step="hostile",
        capabilities={"kv.get": kv_get},
        limits=Limits(**SMALL),
    )
    assert (result.ok, result.output) == (True, envelope)


def test_a_stdout_flood_from_a_wasi_module_is_cut_at_the_log_limit(
    guests: dict[str, bytes], still_works: Callable
) -> None:
    started = time.monotonic()
    result = run_wasm_step(guests["wasi"], {"flood": True}, step="hostile", limits=Limits(**SMALL))
    assert (result.error_kind, result.error) == (
        "log",
        "step 'hostile' exceeded its 4 KB log limit",
    )
    assert result.logs[0] == ("info", "printing until the host says stop")
    # The host stops the module at its first write past the limit, not at its deadline.
    assert time.monotonic() - started < 0.9
    still_works()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            b"MZ\x90\x00 not wasm at all",
            "step 'upload': not a WebAssembly module: it does not start with the \\0asm magic bytes",
        ),
        (
            b"\0asm\x01\0\0\0\x01\x05garbage",
            "step 'upload': not a valid WebAssembly module: invalid leading byte (0x61) for type "
            "(at offset 0xb)",
        ),
        (
            b"\0asm\x01\0\0\0\x01\x7f",
            "step 'upload': not a valid WebAssembly module: unexpected end-of-file (at offset 0xa)",
        ),
        (
            b"\0asm\x0d\0\x01\0",
            "step 'upload': this is a WebAssembly component; upload a core module that follows "
            "the Flowbuilder ABI (docs/wasm-abi.md)",
        ),
    ],
    ids=["not wasm", "garbage section", "truncated", "a component"],
)
def test_a_malformed_wasm_file_is_refused_with_a_clear_error(
    data: bytes, error: str, still_works: Callable
) -> None:
    result = run_wasm_step(data, {}, step="upload")
    assert (result.ok, result.error_kind, result.error) == (False, "invalid", error)
    still_works()
