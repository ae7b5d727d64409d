"""Uploaded modules built from C and Zig: the core ABI, declared capabilities, the artifact store
and its native-code cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import wasmtime

from flows.capabilities import CapabilityError
from flows.sandbox import (
    SandboxError,
    load_artifact,
    module_capabilities,
    run_wasm_step,
    store_artifact,
)
from flows.sandbox.artifacts import declare_capabilities
from flows.sandbox.engine import engine_fingerprint, runtime


def kv_get(payload: dict) -> dict:
    return {"value": f"hello for {payload['key']}"}


def test_a_c_module_gets_its_input_logs_and_calls_a_capability(guests: dict[str, bytes]) -> None:
    live = []
    result = run_wasm_step(
        guests["echo"],
        {"number": 7},
        step="echo",
        context={"settings": {"repo": "octo/hello"}, "steps": {}, "run": {"run_id": 1}},
        capabilities={"kv.get": kv_get},
        on_log=lambda level, message: live.append((level, message)),
    )
    assert result.ok, result.error
    assert result.output == {
        "input": {
            "event": {"number": 7},
            "context": {"settings": {"repo": "octo/hello"}, "steps": {}, "run": {"run_id": 1}},
        },
        "kv": {"ok": {"value": "hello for greeting"}},
    }
    assert result.logs == live == [("info", "echo: hello from C")]
    assert 0 < result.fuel_used < 100_000


def test_a_zig_module_runs_and_reports_its_own_errors(guests: dict[str, bytes]) -> None:
    def title(payload: dict) -> str:
        assert payload == {"key": "title"}
        return "Countess"

    result = run_wasm_step(
        guests["greet"], {"name": "Ada"}, step="greet", capabilities={"kv.get": title}
    )
    assert (result.ok, result.output) == (
        True,
        {"greeting": "Hello, Ada!", "title": {"ok": "Countess"}},
    )
    assert result.logs == [("info", "greet: looking up a title")]

    failed = run_wasm_step(guests["greet"], {}, step="greet")
    assert (failed.ok, failed.error_kind, failed.error) == (
        False,
        "exception",
        "the event has no name",
    )


def test_a_module_sees_capability_errors_as_error_envelopes(guests: dict[str, bytes]) -> None:
    def down(payload: dict) -> None:
        raise CapabilityError("the key-value store is unavailable", retryable=True)

    result = run_wasm_step(guests["echo"], {}, step="echo", capabilities={"kv.get": down})
    assert result.output["kv"] == {"error": "the key-value store is unavailable", "retryable": True}


def test_a_module_error_can_be_retryable(guests: dict[str, bytes]) -> None:
    result = run_wasm_step(guests["hostile"], {"attack": "error"}, step="hostile")
    assert (result.ok, result.error, result.retryable) == (
        False,
        "no pull request in the event",
        True,
    )


def test_a_wasi_module_prints_to_the_log_and_finds_no_files_and_no_environment(
    guests: dict[str, bytes],
) -> None:
    result = run_wasm_step(guests["wasi"], {}, step="wasi")
    assert result.ok, result.error
    assert result.output == {"passwd": "No such file or directory", "home": None}
    assert result.logs == [("info", "hello from wasi-libc"), ("warning", "a warning on stderr")]


def test_an_assemblyscript_abort_becomes_the_steps_error(guests: dict[str, bytes]) -> None:
    result = run_wasm_step(guests["abort"], {}, step="as")
    assert (result.error_kind, result.error) == (
        "exception",
        "step 'as' aborted: out of cheese (assembly/index.ts:7:3)",
    )


def test_modules_declare_the_capabilities_they_need(guests: dict[str, bytes]) -> None:
    assert module_capabilities(guests["echo"]) == ["kv.get"]
    assert module_capabilities(guests["greet"]) == ["kv.get"]
    assert module_capabilities(guests["hostile"]) == []
    declared = declare_capabilities(guests["hostile"], ["llm.chat", "kv.get", "llm.chat"])
    assert module_capabilities(declared) == ["llm.chat", "kv.get"]
    redeclared = declare_capabilities(declared, ["http.request"])
    assert module_capabilities(redeclared) == ["http.request"]
    # The declaration changes nothing else: the module still runs.
    assert run_wasm_step(redeclared, {"attack": "none"}).output == "no attack"


def test_a_malformed_capability_declaration_is_refused(guests: dict[str, bytes]) -> None:
    name = b"flowbuilder.capabilities"
    body = bytes([len(name)]) + name + b'{"kv.get": true}'
    data = guests["hostile"] + b"\x00" + bytes([len(body)]) + body
    message = (
        "the flowbuilder.capabilities section must hold a JSON list of capability names, "
        'such as ["kv.get", "llm.chat"]'
    )
    with pytest.raises(SandboxError) as refused:
        module_capabilities(data)
    assert str(refused.value) == message
    with pytest.raises(SandboxError):
        store_artifact(data)


def test_stored_artifacts_are_content_addressed_and_run_by_digest(
    guests: dict[str, bytes], artifact_dir: Path
) -> None:
    digest = store_artifact(guests["echo"])
    assert digest == hashlib.sha256(guests["echo"]).hexdigest()
    assert (artifact_dir / f"{digest}.wasm").read_bytes() == guests["echo"]
    assert store_artifact(guests["echo"]) == digest
    assert load_artifact(digest) == guests["echo"]
    result = run_wasm_step(digest, {"n": 1}, step="echo", capabilities={"kv.get": kv_get})
    assert result.output["input"]["event"] == {"n": 1}


def test_native_code_is_cached_per_engine_and_only_our_own_is_deserialized(
    guests: dict[str, bytes], artifact_dir: Path
) -> None:
    digest = store_artifact(guests["greet"])
    native = artifact_dir / "native" / engine_fingerprint() / f"{digest}.cwasm"
    sidecar = native.with_name(native.name + ".sha256")
    assert sidecar.read_text() == hashlib.sha256(native.read_bytes()).hexdigest()
    ours = native.read_bytes()

    # A native file that is not the one we wrote is compiled again, never deserialized.
    native.write_bytes(b"\x7fELF not what we compiled")
    runtime().cache.pop("modules", None)
    result = run_wasm_step(digest, {"name": "Bo"}, capabilities={"kv.get": lambda p: "x"})
    assert result.output["greeting"] == "Hello, Bo!"
    assert hashlib.sha256(native.read_bytes()).hexdigest() == sidecar.read_text()
    engine = wasmtime.Engine()
    with pytest.raises(wasmtime.WasmtimeError):
        # Our native code only loads on an engine with our settings (fuel, epochs).
        wasmtime.Module.deserialize(engine, ours)


@pytest.mark.parametrize(
    ("wat", "error"),
    [
        (
            '(module (memory (export "memory") 1))',
            "the module does not export a function 'alloc' (see docs/wasm-abi.md)",
        ),
        (
            '(module (func (export "alloc") (param i32) (result i32) i32.const 0)'
            ' (func (export "run") (param i32 i32) (result i64) i64.const 0))',
            "the module does not export its memory as 'memory' (see docs/wasm-abi.md)",
        ),
        (
            '(module (memory (export "memory") 1)'
            ' (func (export "alloc") (param i32) (result i32) i32.const 0)'
            ' (func (export "run") (param i32 i32) (result i32) i32.const 0))',
            "the module's 'run' has the signature (i32, i32) -> (i32), not (i32, i32) -> (i64) "
            "(see docs/wasm-abi.md)",
        ),
        (
            '(module (import "env" "fetch" (func)) (memory (export "memory") 1)'
            ' (func (export "alloc") (param i32) (result i32) i32.const 0)'
            ' (func (export "run") (param i32 i32) (result i64) i64.const 0))',
            "the module imports 'env.fetch', which Flowbuilder does not provide "
            "(see docs/wasm-abi.md)",
        ),
        (
            '(module (import "flowbuilder" "log" (func (param i32))) (memory (export "memory") 1)'
            ' (func (export "alloc") (param i32) (result i32) i32.const 0)'
            ' (func (export "run") (param i32 i32) (result i64) i64.const 0))',
            "the module imports 'flowbuilder.log' with the wrong type; it must be a function "
            "(i32, i32, i32) -> () (see docs/wasm-abi.md)",
        ),
    ],
    ids=["no alloc", "no memory", "wrong run", "unknown import", "wrong log"],
)
def test_uploads_that_do_not_follow_the_abi_are_refused(
    wat: str, error: str, artifact_dir: Path
) -> None:
    data = wasmtime.wat2wasm(wat)
    with pytest.raises(SandboxError) as refused:
        store_artifact(data)
    assert str(refused.value) == error
    assert not list(artifact_dir.glob("*.wasm"))
    result = run_wasm_step(data, {}, step="upload")
    assert (result.error_kind, result.error) == ("invalid", f"step 'upload': {error}")


def test_uploads_above_the_size_limit_are_refused(settings: object) -> None:
    settings.FLOWS_ARTIFACT_MAX_BYTES = 1024
    with pytest.raises(SandboxError, match=r"^the module is 1.5 KB; the limit is 1 KB$"):
        store_artifact(b"\0asm\x01\0\0\0" + b"\0" * 1528)


@pytest.mark.parametrize(
    ("digest", "error"),
    [
        (
            "../../etc/passwd",
            "'../../etc/passwd' is not an artifact digest (64 lowercase hex digits)",
        ),
        ("0" * 64, f"artifact {'0' * 64} not found"),
    ],
)
def test_loading_an_unknown_artifact_says_why(digest: str, error: str) -> None:
    with pytest.raises(SandboxError) as refused:
        load_artifact(digest)
    assert str(refused.value) == error
    result = run_wasm_step(digest, {}, step="gone")
    assert (result.error_kind, result.error) == ("invalid", f"step 'gone': {error}")


def test_a_tampered_artifact_is_refused(guests: dict[str, bytes], artifact_dir: Path) -> None:
    digest = store_artifact(guests["echo"])
    (artifact_dir / f"{digest}.wasm").write_bytes(guests["hostile"])
    with pytest.raises(SandboxError) as refused:
        load_artifact(digest)
    assert str(refused.value) == (
        f"artifact {digest} is corrupt: its content no longer matches its digest"
    )
