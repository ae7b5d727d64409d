"""Uploaded Wasm modules: the core ABI of docs/wasm-abi.md (JSON in and out through `alloc` and
`run`; `log` and `call` imports), each run in a fresh Store from a pre-instantiated module.

Host functions must never raise (wasmtime-py would pass the exception through a process-wide
variable that threads share), so to stop a guest they record why and drain its fuel instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wasmtime import (
    Caller,
    Func,
    FuncType,
    InstancePre,
    Linker,
    Memory,
    Module,
    Trap,
    ValType,
    WasiConfig,
    WasmtimeError,
    _ffi,
)

from .artifacts import ABI_DOC, WASI, ModuleInfo, check_abi, load_artifact, load_module
from .engine import Runtime, runtime
from .failures import classify_trap, trap_reason
from .limits import Limits, memory_message, output_message
from .results import SandboxError, StepResult
from .session import RunState, bound, current, json_type

logger = logging.getLogger("flows.sandbox")

LEVELS = {0: "debug", 1: "info", 2: "warning", 3: "error"}
ERRNO_BADF, ERRNO_FAULT, ERRNO_INVAL, ERRNO_IO = 8, 21, 28, 29
MAX_IOVS = 1024
# Compiled modules kept per process.
MODULE_CACHE_SIZE = 64
U32 = 0xFFFFFFFF


@dataclass
class CompiledModule:
    module: Module
    pre: InstancePre
    info: ModuleInfo


class GuestFault(Exception):
    """The guest handed the host something unusable (a buffer outside its memory, ...)."""


def _halt(caller: Caller) -> None:
    """Stops the guest at its next instruction by draining its fuel (noting what it had left)."""
    state = current()
    context = caller._context()
    remaining = ctypes.c_uint64(0)
    error = _ffi.wasmtime_context_get_fuel(context, ctypes.byref(remaining))
    if error:
        _ffi.wasmtime_error_delete(error)
    elif state.fuel_left is None:
        state.fuel_left = remaining.value
    error = _ffi.wasmtime_context_set_fuel(context, 0)
    if error:
        _ffi.wasmtime_error_delete(error)


def _memory(caller: Caller) -> Memory:
    memory = caller.get("memory")
    if not isinstance(memory, Memory):
        raise GuestFault("the module has no exported memory")
    return memory


def _read(caller: Caller, memory: Memory, ptr: int, length: int) -> bytes:
    ptr, length = ptr & U32, length & U32
    if ptr + length > memory.data_len(caller):
        raise GuestFault(
            f"the module passed a buffer outside its memory (at {ptr}, {length} bytes)"
        )
    return bytes(memory.read(caller, ptr, ptr + length))


def _give(caller: Caller, memory: Memory, data: bytes) -> int:
    """Copies `data` into a buffer from the guest's `alloc`; returns (ptr << 32) | len."""
    state = current()
    alloc = caller.get("alloc")
    if not isinstance(alloc, Func):
        raise GuestFault("the module does not export 'alloc'")
    try:
        ptr = alloc(caller, len(data)) & U32
    except (Trap, WasmtimeError) as exc:
        text = str(exc)
        if "interrupt" in text:
            state.exceeded = state.exceeded or "timeout"
        elif "all fuel consumed" not in text:
            state.failure = f"step '{state.step}' crashed in alloc: {trap_reason(text)}"
        _halt(caller)
        return 0
    if ptr == 0 and data:
        state.exceeded = state.exceeded or "memory"
        _halt(caller)
        return 0
    if ptr + len(data) > memory.data_len(caller):
        raise GuestFault(f"the module's alloc returned a buffer outside its memory (at {ptr})")
    memory.write(caller, data, ptr)
    packed = (ptr << 32) | len(data)
    return packed - (1 << 64) if packed >= 1 << 63 else packed


def _guard(caller: Caller, exc: Exception) -> None:
    state = current()
    if isinstance(exc, GuestFault):
        state.failure = f"step '{state.step}': {exc}"
    else:
        logger.exception("host function failed for step %r", state.step)
        state.failure = f"step '{state.step}': the host failed: {exc}"
    _halt(caller)


def host_log(caller: Caller, level: int, ptr: int, length: int) -> None:
    try:
        state = current()
        text = _read(caller, _memory(caller), ptr, length).decode("utf-8", "replace")
        if not state.log(LEVELS.get(level, "info"), text):
            _halt(caller)
    except Exception as exc:
        _guard(caller, exc)


def host_call(caller: Caller, name_ptr: int, name_len: int, ptr: int, length: int) -> int:
    try:
        state = current()
        if state.past_deadline():
            _halt(caller)
            return 0
        memory = _memory(caller)
        raw_name = _read(caller, memory, name_ptr, name_len)
        raw_payload = _read(caller, memory, ptr, length)
        name = raw_name.decode("utf-8", "replace")
        try:
            ok, text, retryable = state.call(name, raw_payload.decode("utf-8"))
        except UnicodeDecodeError:
            ok, text, retryable = False, f"capability '{name}': the payload is not UTF-8", False
        if ok:
            envelope = '{"ok":' + text + "}"
        else:
            envelope = json.dumps({"error": text, "retryable": retryable})
        return _give(caller, memory, envelope.encode())
    except Exception as exc:
        _guard(caller, exc)
        return 0


def _assemblyscript_string(caller: Caller, memory: Memory, ptr: int) -> str:
    # AssemblyScript strings are UTF-16; their byte length sits in the 4 bytes before them.
    ptr &= U32
    if ptr < 4:
        return ""
    length = int.from_bytes(_read(caller, memory, ptr - 4, 4), "little")
    return _read(caller, memory, ptr, length).decode("utf-16-le", "replace")


def host_abort(caller: Caller, message_ptr: int, file_ptr: int, line: int, column: int) -> None:
    try:
        state = current()
        try:
            memory = _memory(caller)
            message = _assemblyscript_string(caller, memory, message_ptr) or "abort"
            where = _assemblyscript_string(caller, memory, file_ptr)
        except GuestFault:
            message, where = "abort", ""
        place = f" ({where}:{line}:{column})" if where else ""
        state.failure = f"step '{state.step}' aborted: {message}{place}"
        _halt(caller)
    except Exception as exc:
        _guard(caller, exc)


def host_fd_write(caller: Caller, fd: int, iovs: int, iovs_len: int, written: int) -> int:
    """WASI's fd_write for stdout and stderr, the only files a guest can write without
    preopened directories: each line goes to the step's log, on the step's own thread."""
    try:
        if fd not in (1, 2):
            return ERRNO_BADF
        state = current()
        memory = _memory(caller)
        count = iovs_len & U32
        if count > MAX_IOVS:
            return ERRNO_INVAL
        total = 0
        vectors = _read(caller, memory, iovs, count * 8)
        for index in range(count):
            ptr, length = struct.unpack_from("<II", vectors, index * 8)
            if not state.exceeded:
                state.write_stream(
                    "info" if fd == 1 else "warning", _read(caller, memory, ptr, length)
                )
            total += length
        if (written & U32) + 4 > memory.data_len(caller):
            return ERRNO_FAULT
        memory.write(caller, struct.pack("<I", total & U32), written & U32)
        if state.exceeded:
            _halt(caller)
        return 0
    except GuestFault:
        return ERRNO_FAULT
    except Exception as exc:
        _guard(caller, exc)
        return ERRNO_IO


def define_host_functions(linker: Linker) -> None:
    i32, i64 = ValType.i32(), ValType.i64()
    linker.allow_shadowing = True
    linker.define_func(
        WASI, "fd_write", FuncType([i32] * 4, [i32]), host_fd_write, access_caller=True
    )
    linker.define_func("flowbuilder", "log", FuncType([i32] * 3, []), host_log, access_caller=True)
    linker.define_func(
        "flowbuilder", "call", FuncType([i32] * 4, [i64]), host_call, access_caller=True
    )
    linker.define_func("env", "abort", FuncType([i32] * 4, []), host_abort, access_caller=True)


def core_linker(rt: Runtime) -> Linker:
    linker = rt.cache.get("core-linker")
    if linker is None:
        with rt.lock:
            linker = rt.cache.get("core-linker")
            if linker is None:
                linker = Linker(rt.engine)
                linker.define_wasi()
                define_host_functions(linker)
                rt.cache["core-linker"] = linker
    assert isinstance(linker, Linker)
    return linker


def _module_cache(rt: Runtime) -> OrderedDict[str, CompiledModule]:
    cache = rt.cache.setdefault("modules", OrderedDict())
    assert isinstance(cache, OrderedDict)
    return cache


def cached_module(rt: Runtime, digest: str) -> CompiledModule | None:
    cache = _module_cache(rt)
    with rt.lock:
        compiled = cache.get(digest)
        if compiled is not None:
            cache.move_to_end(digest)
        return compiled


def compiled_module(rt: Runtime, data: bytes, digest: str) -> CompiledModule:
    """The module ready to instantiate, from this process's cache or from load_module."""
    compiled = cached_module(rt, digest)
    if compiled is not None:
        return compiled
    module = load_module(rt, data, digest)
    info = check_abi(module)
    try:
        pre = core_linker(rt).instantiate_pre(module)
    except WasmtimeError as exc:
        raise SandboxError(
            f"the module's imports cannot be satisfied: {trap_reason(str(exc))} (see {ABI_DOC})"
        ) from None
    compiled = CompiledModule(module, pre, info)
    cache = _module_cache(rt)
    with rt.lock:
        cache[digest] = compiled
        while len(cache) > MODULE_CACHE_SIZE:
            cache.popitem(last=False)
    return compiled


def run_wasm_step(
    module: bytes | str,
    event: Any,
    *,
    step: str = "step",
    context: dict | None = None,
    capabilities: Mapping[str, Callable[[Any], Any]] | None = None,
    limits: Limits | None = None,
    on_log: Callable[[str, str], None] | None = None,
) -> StepResult:
    """Runs an uploaded module (its bytes, or its artifact digest) in a fresh sandbox."""
    limits = limits or Limits()
    state = RunState(step, limits, capabilities, on_log)
    finish = state.result

    try:
        request = json.dumps({"event": event, "context": context or {}}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        return finish(False, error=f"step '{step}': its input is not JSON: {exc}", kind="invalid")
    rt = runtime()
    try:
        compiled = cached_module(rt, module) if isinstance(module, str) else None
        if compiled is None:
            if isinstance(module, str):
                data, digest = load_artifact(module), module
            else:
                data = bytes(module)
                digest = hashlib.sha256(data).hexdigest()
            compiled = compiled_module(rt, data, digest)
    except SandboxError as exc:
        return finish(False, error=f"step '{step}': {exc}", kind="invalid")

    store = rt.new_store(limits)
    if compiled.info.uses_wasi:
        # No preopened directories, no environment, no network; fd_write is ours (see above).
        store.set_wasi(WasiConfig())
    raw: bytes | None = None
    oversize = 0
    trap: Exception | None = None
    memory: Memory | None = None
    with rt.ticker, bound(state):
        try:
            exports = compiled.pre.instantiate(store).exports(store)
            memory, alloc, run = exports["memory"], exports["alloc"], exports["run"]
            assert isinstance(memory, Memory) and isinstance(alloc, Func)
            assert isinstance(run, Func)
            if compiled.info.has_initialize:
                initialize = exports["_initialize"]
                assert isinstance(initialize, Func)
                initialize(store)
            ptr = alloc(store, len(request)) & U32
            if ptr == 0 or ptr + len(request) > memory.data_len(store):
                state.exceeded = "memory"
            else:
                memory.write(store, request, ptr)
                packed = run(store, ptr, len(request)) & ((1 << 64) - 1)
                out_ptr, out_len = packed >> 32, packed & U32
                if out_len > limits.output_bytes:
                    oversize = out_len
                elif out_ptr + out_len > memory.data_len(store):
                    state.failure = f"step '{step}' returned a buffer outside its memory"
                else:
                    raw = bytes(memory.read(store, out_ptr, out_ptr + out_len))
        except (Trap, WasmtimeError) as exc:
            trap = exc
    fuel_left = state.fuel_left if state.fuel_left is not None else store.get_fuel()
    fuel_used = limits.fuel - fuel_left
    state.flush_streams()

    if trap is not None or state.exceeded or state.failure:
        if state.exceeded == "memory" or (
            trap is not None
            and not state.exceeded
            and not state.failure
            and memory is not None
            and "unreachable" in str(trap)
            and memory.data_len(store) * 2 >= limits.memory_bytes
        ):
            # Out-of-memory guests abort with `unreachable` once memory.grow has failed.
            return finish(
                False, error=memory_message(step, limits), kind="memory", fuel_used=fuel_used
            )
        kind, message = classify_trap(trap or WasmtimeError(""), state)
        return finish(False, error=message, kind=kind, fuel_used=fuel_used)
    if oversize:
        message = output_message(step, oversize, limits)
        return finish(False, error=message, kind="output", fuel_used=fuel_used)
    assert raw is not None
    return _decode_output(step, raw, finish, fuel_used)


def _decode_output(step: str, raw: bytes, finish: Callable[..., StepResult], fuel_used: int):
    shape = f'{{"ok": <output>}} or {{"error": "<message>"}} (see {ABI_DOC})'
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        message = f"step '{step}' returned output that is not JSON ({exc}); expected {shape}"
        return finish(False, error=message, kind="output", fuel_used=fuel_used)
    if isinstance(envelope, dict) and "ok" in envelope:
        return finish(True, output=envelope["ok"], fuel_used=fuel_used)
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), str):
        return finish(
            False,
            error=envelope["error"],
            kind="exception",
            fuel_used=fuel_used,
            retryable=envelope.get("retryable") is True,
        )
    message = f"step '{step}' returned {json_type(envelope)}; expected {shape}"
    return finish(False, error=message, kind="output", fuel_used=fuel_used)
