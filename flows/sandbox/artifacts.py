"""Uploaded Wasm modules: the content-addressed store, ABI validation, declared capabilities and
compiled code (in memory per process, and native code on disk per engine fingerprint).

Layout under settings.FLOWS_ARTIFACT_DIR:
    <sha256>.wasm                          the module as uploaded
    native/<engine>/<sha256>.cwasm         native code we compiled from it
    native/<engine>/<sha256>.cwasm.sha256  its digest, checked before each deserialization
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from wasmtime import FuncType, MemoryType, Module, WasmtimeError

from .engine import Runtime, engine_fingerprint, file_sha256, runtime, write_atomically
from .failures import trap_reason
from .limits import format_size
from .results import SandboxError

CAPABILITIES_SECTION = "flowbuilder.capabilities"
MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"
ABI_DOC = "docs/wasm-abi.md"
DIGEST = re.compile(r"[0-9a-f]{64}")

I32, I64 = "i32", "i64"
EXPORTS = {"alloc": ([I32], [I32]), "run": ([I32, I32], [I64])}
IMPORTS = {
    ("flowbuilder", "log"): ([I32, I32, I32], []),
    ("flowbuilder", "call"): ([I32, I32, I32, I32], [I64]),
    # AssemblyScript's abort(message, file, line, column).
    ("env", "abort"): ([I32, I32, I32, I32], []),
}
WASI = "wasi_snapshot_preview1"


def artifact_dir() -> Path:
    return Path(settings.FLOWS_ARTIFACT_DIR)


def check_header(data: bytes) -> None:
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"expected the module's bytes, not {type(data).__name__}")
    if len(data) < 8 or data[:4] != MAGIC:
        raise SandboxError(
            "not a WebAssembly module: it does not start with the \\0asm magic bytes"
        )
    if data[4:8] != CORE_VERSION:
        if data[6:8] == b"\x01\x00":
            raise SandboxError(
                "this is a WebAssembly component; upload a core module that follows "
                f"the Flowbuilder ABI ({ABI_DOC})"
            )
        raise SandboxError(f"unsupported WebAssembly version {data[4:8].hex()}")


def _leb_u32(data: bytes, pos: int, bits: int = 32) -> tuple[int, int]:
    """An unsigned LEB128 number of at most `bits` bits at `pos`, and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift >= bits:
            raise SandboxError("not a valid WebAssembly module: a section header is truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _sections(data: bytes) -> Iterator[tuple[int, int, int, str, bytes]]:
    """(id, start, end, custom name, custom content) of each section, without compiling."""
    check_header(data)
    pos = 8
    while pos < len(data):
        section_id = data[pos]
        size, start = _leb_u32(data, pos + 1)
        end = start + size
        if end > len(data):
            raise SandboxError("not a valid WebAssembly module: a section runs past its end")
        name, content = "", b""
        if section_id == 0:
            name_len, name_start = _leb_u32(data, start)
            name_end = name_start + name_len
            if name_end > end:
                raise SandboxError("not a valid WebAssembly module: a custom section is malformed")
            name = data[name_start:name_end].decode("utf-8", "replace")
            content = bytes(data[name_end:end])
        yield section_id, pos, end, name, content
        pos = end


def _leb_encode(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def custom_sections(data: bytes) -> Iterator[tuple[str, bytes]]:
    for section_id, _start, _end, name, content in _sections(data):
        if section_id == 0:
            yield name, content


def module_capabilities(data: bytes) -> list[str]:
    """The capabilities a module declares in its `flowbuilder.capabilities` custom section."""
    declared = [content for name, content in custom_sections(data) if name == CAPABILITIES_SECTION]
    if not declared:
        return []
    if len(declared) > 1:
        raise SandboxError(f"the module has more than one {CAPABILITIES_SECTION} section")
    problem = (
        f"the {CAPABILITIES_SECTION} section must hold a JSON list of capability names, "
        'such as ["kv.get", "llm.chat"]'
    )
    try:
        # C strings may bring their terminating NUL along.
        names = json.loads(declared[0].rstrip(b"\0 \n").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SandboxError(problem) from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise SandboxError(problem)
    return list(dict.fromkeys(names))


def declare_capabilities(data: bytes, names: list[str]) -> bytes:
    """The module with a `flowbuilder.capabilities` section listing `names` (replacing any)."""
    kept = bytearray(data[:8])
    for section_id, start, end, name, _content in _sections(data):
        if not (section_id == 0 and name == CAPABILITIES_SECTION):
            kept += data[start:end]
    title = CAPABILITIES_SECTION.encode()
    body = _leb_encode(len(title)) + title + json.dumps(list(dict.fromkeys(names))).encode()
    return bytes(kept) + b"\x00" + _leb_encode(len(body)) + body


@dataclass
class ModuleSummary:
    """What a module asks of the host, read from its bytes without compiling them."""

    imports: list[str]
    memory_min_pages: int | None
    memory_max_pages: int | None
    memory64: bool = False

    @property
    def memory_min_bytes(self) -> int:
        return (self.memory_min_pages or 0) * PAGE


PAGE = 65536
IMPORT_KINDS = {0: "function", 1: "table", 2: "memory", 3: "global", 4: "tag"}


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _leb_u32(data, pos)
    if pos + length > len(data):
        raise SandboxError("not a valid WebAssembly module: a name runs past its section")
    return data[pos : pos + length].decode("utf-8", "replace"), pos + length


def _limits(data: bytes, pos: int) -> tuple[int, int | None, bool, int]:
    """(minimum, maximum, 64-bit, next position) of a memory or table type."""
    if pos >= len(data):
        raise SandboxError("not a valid WebAssembly module: limits are truncated")
    flags = data[pos]
    is64 = bool(flags & 0x04)
    minimum, pos = _leb_u32(data, pos + 1, 64)
    maximum = None
    if flags & 0x01:
        maximum, pos = _leb_u32(data, pos, 64)
    return minimum, maximum, is64, pos


def summarize_module(data: bytes) -> ModuleSummary:
    """The module's imports ("module.name") and its memory's declared size, in pages."""
    imports: list[str] = []
    memory: tuple[int, int | None, bool] | None = None
    for section_id, start, end, _custom, _content in _sections(data):
        if section_id not in (2, 5):
            continue
        _size, pos = _leb_u32(data, start + 1)
        body = data[:end]
        count, pos = _leb_u32(body, pos)
        for _ in range(count):
            if section_id == 5:
                minimum, maximum, is64, pos = _limits(body, pos)
                memory = memory or (minimum, maximum, is64)
                continue
            module, pos = _name(body, pos)
            name, pos = _name(body, pos)
            if pos >= len(body):
                raise SandboxError("not a valid WebAssembly module: an import is truncated")
            kind = body[pos]
            pos += 1
            if kind in (0, 4):
                if kind == 4:
                    pos += 1
                _index, pos = _leb_u32(body, pos)
            elif kind == 1:
                _min, _max, _is64, pos = _limits(body, pos + 1)
            elif kind == 2:
                minimum, maximum, is64, pos = _limits(body, pos)
                memory = memory or (minimum, maximum, is64)
            elif kind == 3:
                pos += 2
            else:
                raise SandboxError("not a valid WebAssembly module: an import has an unknown kind")
            imports.append(f"{module}.{name}")
    if memory is None:
        return ModuleSummary(imports, None, None)
    return ModuleSummary(imports, memory[0], memory[1], memory[2])


def check_memory(summary: ModuleSummary) -> None:
    """Refuses a module whose memory cannot fit any step's memory limit on this server."""
    if summary.memory64:
        raise SandboxError(
            f"the module declares a 64-bit memory; steps run with 32-bit memory (see {ABI_DOC})"
        )
    most = settings.FLOWS_STEP_MEMORY_MIB_MAX * 1024 * 1024
    if summary.memory_min_bytes > most:
        raise SandboxError(
            f"the module's memory starts at {format_size(summary.memory_min_bytes)} "
            f"({summary.memory_min_pages:,} pages of 64 KiB); steps on this server may use at most "
            f"{format_size(most)} (FLOWS_STEP_MEMORY_MIB_MAX)"
        )


def _signature(ty: FuncType) -> tuple[list[str], list[str]]:
    return [str(p) for p in ty.params], [str(r) for r in ty.results]


def _describe(signature: tuple[list[str], list[str]]) -> str:
    params, results = signature
    return f"({', '.join(params)}) -> ({', '.join(results)})"


@dataclass
class ModuleInfo:
    uses_wasi: bool
    has_initialize: bool


def check_abi(module: Module) -> ModuleInfo:
    """Refuses, with a clear message, a module that does not follow our ABI."""
    exports = {export.name: export.type for export in module.exports}
    if not isinstance(exports.get("memory"), MemoryType):
        raise SandboxError(f"the module does not export its memory as 'memory' (see {ABI_DOC})")
    for name, expected in EXPORTS.items():
        ty = exports.get(name)
        if not isinstance(ty, FuncType):
            raise SandboxError(f"the module does not export a function '{name}' (see {ABI_DOC})")
        if _signature(ty) != expected:
            raise SandboxError(
                f"the module's '{name}' has the signature {_describe(_signature(ty))}, "
                f"not {_describe(expected)} (see {ABI_DOC})"
            )
    uses_wasi = False
    for item in module.imports:
        key = (item.module, item.name or "")
        if item.module == WASI:
            uses_wasi = True
            continue
        expected = IMPORTS.get(key)
        if expected is None:
            raise SandboxError(
                f"the module imports '{item.module}.{item.name}', which Flowbuilder does not "
                f"provide (see {ABI_DOC})"
            )
        if not isinstance(item.type, FuncType) or _signature(item.type) != expected:
            raise SandboxError(
                f"the module imports '{item.module}.{item.name}' with the wrong type; "
                f"it must be a function {_describe(expected)} (see {ABI_DOC})"
            )
    initialize = exports.get("_initialize")
    return ModuleInfo(uses_wasi=uses_wasi, has_initialize=isinstance(initialize, FuncType))


def _native_path(digest: str) -> Path:
    return artifact_dir() / "native" / engine_fingerprint() / f"{digest}.cwasm"


def _load_native(rt: Runtime, digest: str) -> Module | None:
    """Our own earlier compilation of this module, if it is intact."""
    path = _native_path(digest)
    sidecar = path.with_name(path.name + ".sha256")
    try:
        recorded = sidecar.read_text().strip()
        if file_sha256(path) != recorded:
            return None
        return Module.deserialize_file(rt.engine, str(path))
    except (OSError, WasmtimeError):
        return None


def _compile(rt: Runtime, data: bytes, digest: str) -> Module:
    check_header(data)
    try:
        module = Module(rt.engine, data)
    except WasmtimeError as exc:
        raise SandboxError(f"not a valid WebAssembly module: {trap_reason(str(exc))}") from None
    native = bytes(module.serialize())
    path = _native_path(digest)
    try:
        write_atomically(path, native)
        write_atomically(
            path.with_name(path.name + ".sha256"), hashlib.sha256(native).hexdigest().encode()
        )
    except OSError:
        pass  # The cache is an optimisation: a read-only artifact dir still runs modules.
    return module


def load_module(rt: Runtime, data: bytes, digest: str) -> Module:
    """The compiled module: our cached native code when intact, else compiled (and cached)."""
    return _load_native(rt, digest) or _compile(rt, data, digest)


def store_artifact(data: bytes) -> str:
    """Validates an uploaded module (SandboxError says what is wrong), stores it and compiles its
    native code; returns its sha256 digest."""
    data = bytes(data)
    limit = settings.FLOWS_ARTIFACT_MAX_BYTES
    if len(data) > limit:
        raise SandboxError(
            f"the module is {format_size(len(data))}; the limit is {format_size(limit)}"
        )
    module_capabilities(data)
    check_memory(summarize_module(data))
    digest = hashlib.sha256(data).hexdigest()
    check_abi(load_module(runtime(), data, digest))
    path = artifact_dir() / f"{digest}.wasm"
    if not path.is_file() or file_sha256(path) != digest:
        write_atomically(path, data)
    return digest


def load_artifact(digest: str) -> bytes:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise SandboxError(f"{digest!r} is not an artifact digest (64 lowercase hex digits)")
    try:
        data = (artifact_dir() / f"{digest}.wasm").read_bytes()
    except FileNotFoundError:
        raise SandboxError(f"artifact {digest} not found") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise SandboxError(
            f"artifact {digest} is corrupt: its content no longer matches its digest"
        )
    return data
