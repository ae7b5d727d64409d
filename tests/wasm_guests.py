"""The Wasm guests the tests and the sandbox bench build from C and Zig with PyPI's `ziglang`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GUESTS = Path(__file__).parent / "sandbox" / "guests"
ZIG = [sys.executable, "-m", "ziglang"]
FREESTANDING_C = ["cc", "--target=wasm32-freestanding", "-O2", "-nostdlib", "-Wl,--no-entry"]
WASI_C = ["cc", "--target=wasm32-wasi", "-mexec-model=reactor", "-O2"]
ZIG_EXE = ["build-exe", "-target", "wasm32-freestanding", "-fno-entry", "-rdynamic"]


def build_freestanding_c(source: Path, output: Path) -> bytes:
    """Compile one C guest without libc; raises with the compiler's output when it fails."""
    built = subprocess.run(
        [*ZIG, *FREESTANDING_C, "-o", str(output), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{built.stderr}")
    return output.read_bytes()
