"""Builds the Python-step runner: our WIT world and guest sources (runner/) → one component
(componentize-py) → native code (wasmtime), in settings.FLOWS_RUNNER_DIR.

The manifest records what the outputs were built from, so a build whose inputs are unchanged is a
fast no-op, and workers only ever deserialize native code whose digest the manifest vouches for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from django.conf import settings
from wasmtime import WasmtimeError
from wasmtime.component import Component

from .engine import engine_fingerprint, file_sha256, new_engine, wasmtime_version, write_atomically
from .results import SandboxError

WORLD = "runner"
APP_MODULE = "step_runner"
COMPONENT_FILE = "runner.wasm"
MANIFEST_FILE = "manifest.json"
BUILD_COMMAND = "python manage.py sandbox build"


def source_dir() -> Path:
    return Path(settings.BASE_DIR) / "runner"


def runner_dir() -> Path:
    return Path(settings.FLOWS_RUNNER_DIR)


@cache
def componentize_py_version() -> str:
    return version("componentize-py")


def source_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and path.suffix in {".py", ".wit"} and "__pycache__" not in path.parts
    )


def component_fingerprint(root: Path | None = None) -> str:
    """Changes whenever the runner's sources or the componentize-py version change."""
    root = root or source_dir()
    digest = hashlib.sha256(f"componentize-py {componentize_py_version()}\n".encode())
    for path in source_files(root):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(root).as_posix()} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def native_file_name() -> str:
    return f"runner-{engine_fingerprint()}.cwasm"


def read_manifest(directory: Path | None = None) -> dict[str, Any] | None:
    try:
        return json.loads(((directory or runner_dir()) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def outdated_reason(directory: Path | None = None) -> str:
    """Why the runner in `directory` cannot be used as it is ("" when it is up to date)."""
    directory = directory or runner_dir()
    manifest = read_manifest(directory)
    if manifest is None:
        return "it is not built"
    if manifest.get("component_fingerprint") != component_fingerprint():
        return "its sources or componentize-py changed since it was built"
    if manifest.get("native") != native_file_name():
        return "it was compiled for another wasmtime version or engine settings"
    for name, size in (
        (COMPONENT_FILE, manifest.get("component_size")),
        (manifest["native"], manifest.get("native_size")),
    ):
        path = directory / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or incomplete"
    return ""


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """One build at a time per runner directory (make targets may run side by side)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def componentize(output: Path) -> None:
    guest = source_dir() / "guest"
    command = [
        sys.executable,
        "-c",
        "import sys; from componentize_py import script; sys.exit(script())",
        "--wit-path",
        str(source_dir() / "wit"),
        "--world",
        WORLD,
        "componentize",
        APP_MODULE,
        "--python-path",
        str(guest),
        "--output",
        str(output),
    ]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The guest directory as working directory: no module of the project can shadow the guest's.
    done = subprocess.run(command, cwd=guest, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SandboxError(
            f"componentize-py failed (exit status {done.returncode}):\n"
            + (done.stderr or done.stdout).strip()
        )


def build_runner(
    *, force: bool = False, out: Callable[[str], None] = print, directory: Path | None = None
) -> bool:
    """Builds what is missing or stale; returns False when everything was already up to date."""
    directory = directory or runner_dir()
    with build_lock(directory):
        if not force and not outdated_reason(directory):
            out(f"The Python step runner in {directory} is up to date.")
            return False
        started = time.monotonic()
        manifest = read_manifest(directory) or {}
        fingerprint = component_fingerprint()
        component_path = directory / COMPONENT_FILE
        if (
            force
            or manifest.get("component_fingerprint") != fingerprint
            or not component_path.is_file()
            or file_sha256(component_path) != manifest.get("component_sha256")
        ):
            out(
                f"Building the Python step runner from {source_dir()} with componentize-py "
                f"{componentize_py_version()} (about 10 s)..."
            )
            partial = directory / f".{COMPONENT_FILE}.partial"
            componentize(partial)
            os.replace(partial, component_path)
            manifest = {
                "component_fingerprint": fingerprint,
                "componentize_py": componentize_py_version(),
                "component_sha256": file_sha256(component_path),
                "component_size": component_path.stat().st_size,
            }
            out(f"  component: {component_path} ({manifest['component_size'] / 1e6:.1f} MB)")
        native_path = directory / native_file_name()
        out(f"Compiling it to native code with wasmtime {wasmtime_version()} (about 10 s)...")
        try:
            component = Component(
                new_engine(parallel_compilation=True), component_path.read_bytes()
            )
            native = bytes(component.serialize())
        except WasmtimeError as exc:
            raise SandboxError(f"wasmtime could not compile {component_path}: {exc}") from exc
        write_atomically(native_path, native)
        manifest.update(
            {
                "wasmtime": wasmtime_version(),
                "engine": engine_fingerprint(),
                "native": native_path.name,
                "native_sha256": hashlib.sha256(native).hexdigest(),
                "native_size": len(native),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        out(f"  native code: {native_path} ({len(native) / 1e6:.1f} MB)")
        write_atomically(directory / MANIFEST_FILE, json.dumps(manifest, indent=2).encode() + b"\n")
        for stale in directory.glob("runner-*.cwasm"):
            if stale != native_path:
                stale.unlink(missing_ok=True)
        out(f"The Python step runner is ready ({time.monotonic() - started:.1f} s).")
        return True
