"""The Wasm guests the tests and the sandbox bench build from source: C and Zig with PyPI's
`ziglang`, Rust with Debian's `rustc`/`cargo`, AssemblyScript with the npm package.

SDK builds are cached under build/guests/ by a digest of their sources and toolchain version (as
`sandbox build` caches the runner), so a test run rebuilds only what changed. `make test`
installs the toolchains when they are missing (see the Makefile's `sdk-toolchains`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache
from importlib.metadata import version
from pathlib import Path

from flows.sandbox.artifacts import declare_capabilities

ROOT = Path(__file__).resolve().parent.parent
GUESTS = Path(__file__).parent / "sandbox" / "guests"
SDK = ROOT / "sdk"
CACHE = ROOT / "build" / "guests"
CARGO_TARGET = ROOT / "build" / "cargo"
ZIG = [sys.executable, "-m", "ziglang"]
FREESTANDING_C = ["cc", "--target=wasm32-freestanding", "-O2", "-nostdlib", "-Wl,--no-entry"]
WASI_C = ["cc", "--target=wasm32-wasi", "-mexec-model=reactor", "-O2"]
ZIG_EXE = ["build-exe", "-target", "wasm32-freestanding", "-fno-entry", "-rdynamic"]

# Debian's toolchain, not a rustup one that may come first on PATH without the wasm targets.
CARGO = "/usr/bin/cargo"
RUSTC = "/usr/bin/rustc"
CARGO_CONFIG = SDK / "rust" / ".cargo" / "config.toml"
RUST_PACKAGES = "rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev"
ASC = SDK / "assemblyscript" / "node_modules" / ".bin" / "asc"

# The prompt builder of the Code Review Bot in Python: plan.py's own functions, with a main()
# that takes the same event and settings as the Rust example (sdk/rust/examples/prompt_builder.rs).
PROMPT_BUILDER_MAIN = """

def main(event, ctx):
    payload = event.get("payload") or {}
    repo = payload["repository"]["full_name"]
    number = payload["pull_request"]["number"]
    context = int_setting(ctx.settings, "context_size", 8192)
    part_chars = max(MIN_PART_CHARS, (context - PROMPT_TOKENS - ANSWER_TOKENS) * CHARS_PER_TOKEN)
    files = ctx.call("github.pr.files", {"repo": repo, "number": number})
    skipped, items = plan_files(files, ctx.settings, part_chars, None, repo)
    prompts = sum(len(item["parts"]) for item in items)
    ctx.info(f"{len(items)} files to review in {prompts} prompts; {len(skipped)} skipped")
    return {
        "repo": repo,
        "number": number,
        "part_chars": part_chars,
        "skipped": skipped,
        "items": items,
    }
"""


def prompt_builder_python() -> str:
    """plan.py with its main() (placeholder comment, LLM context lookup) replaced by the one above."""
    plan = (ROOT / "flow_templates" / "code-review-bot" / "plan.py").read_text()
    start, end = plan.index("\ndef main(event, ctx):"), plan.index("\ndef plan_files(")
    return plan[:start] + plan[end:] + PROMPT_BUILDER_MAIN


def build_freestanding_c(source: Path, output: Path) -> bytes:
    """Compile one C guest without libc; raises with the compiler's output when it fails."""
    built = subprocess.run(
        [*ZIG, *FREESTANDING_C, "-I", str(SDK / "c"), "-o", str(output), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{built.stderr}")
    return output.read_bytes()


def _run(command: list[str | Path], what: str, cwd: Path | None = None) -> None:
    built = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "RUSTC": RUSTC},
    )
    if built.returncode != 0:
        raise RuntimeError(f"building {what} failed:\n{built.stdout}\n{built.stderr}")


def _sources(*roots: Path) -> list[Path]:
    skip = {"target", "node_modules", "zig-cache", ".zig-cache"}
    found = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        found += [
            p
            for p in paths
            if p.is_file() and p.name != "Cargo.lock" and not skip & set(p.relative_to(ROOT).parts)
        ]
    return found


@contextmanager
def _locked():
    """One build at a time across test processes (pytest-xdist workers share build/)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_build(
    names: list[str], sources: list[Path], toolchain: str, build: Callable[[Path], None]
) -> dict[str, bytes]:
    """The modules `names`, built by `build(out_dir)` into out_dir/<name>.wasm, or taken from
    the cache when neither the sources nor the toolchain changed."""
    digest = hashlib.sha256(toolchain.encode())
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    folder = CACHE / digest.hexdigest()[:24]
    with _locked():
        if not all((folder / f"{name}.wasm").is_file() for name in names):
            scratch = Path(tempfile.mkdtemp(dir=CACHE))
            try:
                build(scratch)
                shutil.rmtree(folder, ignore_errors=True)
                scratch.rename(folder)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return {name: (folder / f"{name}.wasm").read_bytes() for name in names}


@cache
def rust_toolchain() -> str:
    missing = RuntimeError(
        "Debian's Rust toolchain for WebAssembly is missing: `make test` installs it, or run "
        f"apt-get install -y {RUST_PACKAGES}"
    )
    if not (Path(CARGO).is_file() and Path("/usr/lib/rustlib/wasm32-unknown-unknown").is_dir()):
        raise missing
    if not list(Path("/usr/share/cargo/registry").glob("serde_json-*")):
        raise missing
    return subprocess.run([RUSTC, "--version"], capture_output=True, text=True).stdout


def _cargo(manifest: Path, *args: str) -> list[str | Path]:
    return [
        CARGO,
        "build",
        "--release",
        "--quiet",
        "--config",
        CARGO_CONFIG,
        "--manifest-path",
        manifest,
        "--target-dir",
        CARGO_TARGET,
        *args,
    ]


def rust_guests() -> dict[str, bytes]:
    """The Rust SDK's examples (word_count, prompt_builder) and the hostile Rust guest."""
    hostile = GUESTS / "rust"
    out = CARGO_TARGET / "wasm32-unknown-unknown" / "release"

    def build(folder: Path) -> None:
        _run(_cargo(SDK / "rust" / "Cargo.toml", "--examples"), "the Rust SDK's examples")
        _run(_cargo(hostile / "Cargo.toml"), "the hostile Rust guest")
        for name in ("word_count", "prompt_builder"):
            shutil.copyfile(out / "examples" / f"{name}.wasm", folder / f"{name}.wasm")
        shutil.copyfile(out / "hostile.wasm", folder / "hostile.wasm")

    return cached_build(
        ["word_count", "prompt_builder", "hostile"],
        _sources(SDK / "rust", hostile),
        rust_toolchain(),
        build,
    )


def assemblyscript_toolchain() -> str:
    if not ASC.exists():
        raise RuntimeError(
            "The AssemblyScript compiler is missing: `make test` installs it, or run "
            "npm ci --prefix sdk/assemblyscript"
        )
    package = ASC.parent.parent / "assemblyscript" / "package.json"
    return "assemblyscript " + json.loads(package.read_text())["version"]


def assemblyscript_guests() -> dict[str, bytes]:
    """The AssemblyScript SDK's word-count example."""
    folder = SDK / "assemblyscript"

    def build(out: Path) -> None:
        _run(
            [
                ASC,
                "examples/word_count.ts",
                "--outFile",
                out / "word_count.wasm",
                "--optimize",
                "--runtime",
                "stub",
            ],
            "the AssemblyScript example",
            cwd=folder,
        )
        # AssemblyScript cannot write custom sections: its capabilities are declared after.
        built = out / "word_count.wasm"
        built.write_bytes(declare_capabilities(built.read_bytes(), ["kv.get", "kv.set"]))

    sources = _sources(folder / "assembly", folder / "examples", folder / "package.json")
    return cached_build(["word_count"], sources, assemblyscript_toolchain(), build)


def zig_and_c_guests() -> dict[str, bytes]:
    """The Zig and C SDKs' word-count examples (`zig_word_count`, `c_word_count`)."""
    zig, c = SDK / "zig", SDK / "c"

    def build(out: Path) -> None:
        _run(
            [
                *ZIG,
                *ZIG_EXE,
                "-O",
                "ReleaseSmall",
                f"-femit-bin={out / 'zig_word_count.wasm'}",
                "--dep",
                "flowbuilder",
                f"-Mroot={zig / 'examples' / 'word_count.zig'}",
                f"-Mflowbuilder={zig / 'flowbuilder.zig'}",
            ],
            "the Zig example",
            cwd=out,
        )
        build_freestanding_c(c / "examples" / "word_count.c", out / "c_word_count.wasm")

    toolchain = "ziglang " + version("ziglang")
    sources = _sources(zig, c)
    return cached_build(["zig_word_count", "c_word_count"], sources, toolchain, build)
