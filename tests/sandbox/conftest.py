"""Fixtures of the sandbox tests: the Python-step runner (built if stale), real Wasm guests built
from tests/sandbox/guests with the Zig toolchain from PyPI, and a private artifact store."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from django.core.management import call_command

from flows.sandbox import Limits, run_python_step
from tests.wasm_guests import FREESTANDING_C, GUESTS, SDK, WASI_C, ZIG, ZIG_EXE

# Small limits keep the hostile cases fast.
SMALL = {"timeout_s": 1, "memory_mib": 64, "log_bytes": 4096}


@pytest.fixture(scope="session", autouse=True)
def python_runner() -> None:
    """The runner component, as `make test` builds it (a no-op when it is up to date)."""
    call_command("sandbox", "build", stdout=io.StringIO())


@pytest.fixture(autouse=True)
def artifact_dir(settings: object, tmp_path: Path) -> Path:
    settings.FLOWS_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.FLOWS_ARTIFACT_DIR


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every guest module, compiled once per test session (side by side)."""
    out = tmp_path_factory.mktemp("guests")
    c_sdk = ["-I", SDK / "c"]
    commands = {
        "echo": [*ZIG, *FREESTANDING_C, *c_sdk, "-o", out / "echo.wasm", GUESTS / "echo.c"],
        "hostile": [
            *ZIG,
            *FREESTANDING_C,
            *c_sdk,
            "-o",
            out / "hostile.wasm",
            GUESTS / "hostile.c",
        ],
        "wasi": [*ZIG, *WASI_C, "-o", out / "wasi.wasm", GUESTS / "wasi.c"],
        "greet": [
            *ZIG,
            *ZIG_EXE,
            "-O",
            "ReleaseSmall",
            f"-femit-bin={out / 'greet.wasm'}",
            GUESTS / "greet.zig",
        ],
    }
    builds = {
        name: subprocess.Popen(
            [str(part) for part in command],
            cwd=out,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in commands.items()
    }
    modules = {}
    for name, build in builds.items():
        output, _ = build.communicate(timeout=600)
        assert build.returncode == 0, f"building the {name} guest failed:\n{output}"
        modules[name] = (out / f"{name}.wasm").read_bytes()
    modules["abort"] = wasmtime.wat2wasm((GUESTS / "abort.wat").read_text())
    return modules


@pytest.fixture
def small_limits() -> Limits:
    return Limits(**SMALL)


@pytest.fixture
def still_works() -> Callable[[], None]:
    """Checks that a normal step right after a failing one succeeds: nothing was left behind."""

    def check() -> None:
        result = run_python_step(
            "def main(event, ctx):\n    ctx.log('fine')\n    return {'sum': sum(event)}\n",
            [1, 2, 3],
            step="after",
        )
        assert (result.ok, result.output, result.logs) == (True, {"sum": 6}, [("info", "fine")])

    return check
