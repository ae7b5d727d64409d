"""Python steps: the step's source runs in the generic interpreter component, in a fresh Store.

Nothing is compiled per step: the component is deserialized once per process from the native code
that `python manage.py sandbox build` produced, then every step instantiates it anew.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wasmtime import WasiConfig, WasmtimeError
from wasmtime.component import Component, ExportIndex, Linker, Variant

from .build import BUILD_COMMAND, outdated_reason, read_manifest, runner_dir
from .engine import Runtime, file_sha256, runtime
from .failures import classify_trap
from .limits import Limits, memory_message, output_message, timeout_message
from .results import SandboxError, StepResult
from .session import RunState, bound, current

logger = logging.getLogger("flows.sandbox")

HOST_INTERFACE = "flowbuilder:runner/host@0.1.0"


@dataclass
class Runner:
    component: Component
    linker: Linker
    run: ExportIndex
    check: ExportIndex


def host_log(_store: object, level: str, message: str) -> None:
    try:
        within_limit = current().log(level, message)
    except Exception as exc:
        logger.exception("log host function failed")
        raise WasmtimeError(f"host log failed: {exc}") from exc
    if not within_limit:
        # Raising WasmtimeError traps the guest right away (and touches no global state).
        raise WasmtimeError("flowbuilder: log limit exceeded")


def host_call(_store: object, name: str, payload: str) -> Variant:
    try:
        state = current()
        if state.past_deadline():
            raise WasmtimeError("flowbuilder: time limit exceeded")
        ok, text, retryable = state.call(name, payload)
    except WasmtimeError:
        raise
    except Exception as exc:
        logger.exception("call host function failed")
        raise WasmtimeError(f"host call failed: {exc}") from exc
    if ok:
        return Variant("ok", text)
    return Variant("err", json.dumps({"message": text, "retryable": retryable}))


def load_runner(rt: Runtime) -> Runner:
    """Deserializes the runner's native code, after checking it is the one our build wrote."""
    directory = runner_dir()
    reason = outdated_reason(directory)
    if reason:
        raise SandboxError(
            f"the Python step runner cannot be used ({reason}): run `{BUILD_COMMAND}`"
        )
    manifest = read_manifest(directory)
    assert manifest is not None
    native = directory / manifest["native"]
    if file_sha256(native) != manifest["native_sha256"]:
        raise SandboxError(
            f"{native} does not match the digest recorded when it was built: run "
            f"`{BUILD_COMMAND} --force`"
        )
    component = Component.deserialize_file(rt.engine, str(native))
    linker = Linker(rt.engine)
    linker.add_wasip2()
    with linker.root() as root, root.add_instance(HOST_INTERFACE) as host:
        host.add_func("log", host_log)
        host.add_func("call", host_call)
    run = component.get_export_index("run")
    check = component.get_export_index("check")
    if run is None or check is None:
        raise SandboxError(f"{native} lacks the run/check exports: run `{BUILD_COMMAND} --force`")
    return Runner(component, linker, run, check)


def python_runner(rt: Runtime) -> Runner:
    runner = rt.cache.get("python-runner")
    if runner is None:
        with rt.lock:
            runner = rt.cache.get("python-runner")
            if runner is None:
                runner = rt.cache["python-runner"] = load_runner(rt)
    assert isinstance(runner, Runner)
    return runner


def run_python_step(
    source: str,
    event: Any,
    *,
    step: str = "step",
    context: dict | None = None,
    capabilities: Mapping[str, Callable[[Any], Any]] | None = None,
    limits: Limits | None = None,
    on_log: Callable[[str, str], None] | None = None,
) -> StepResult:
    """Runs `main(event, ctx)` of `source` in a fresh sandbox and reports how it went."""
    limits = limits or Limits()
    state = RunState(step, limits, capabilities, on_log)
    finish = state.result

    try:
        event_json = json.dumps(event, allow_nan=False)
        context_json = json.dumps(context or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return finish(False, error=f"step '{step}': its input is not JSON: {exc}", kind="invalid")
    rt = runtime()
    try:
        runner = python_runner(rt)
    except SandboxError as exc:
        logger.error("%s", exc)
        return finish(False, error=str(exc), kind="invalid")

    store = rt.new_store(limits)
    # print() and sys.stderr reach the log through the runner; what the interpreter itself may
    # write to WASI stdout/stderr is discarded (no callback runs on wasmtime's I/O threads).
    store.set_wasi(WasiConfig())
    outcome: Any = None
    trap: Exception | None = None
    with rt.ticker, bound(state):
        try:
            instance = runner.linker.instantiate(store, runner.component)
            run = instance.get_func(store, runner.run)
            assert run is not None
            timeout_ms = int(limits.timeout_s * 1000)
            outcome = run(store, step, source, event_json, context_json, timeout_ms)
        except WasmtimeError as exc:
            trap = exc
    fuel_used = limits.fuel - store.get_fuel()
    del store

    if trap is not None or state.exceeded:
        kind, message = classify_trap(trap or WasmtimeError(""), state)
        return finish(False, error=message, kind=kind, fuel_used=fuel_used)
    if not isinstance(outcome, str):
        kind = outcome.kind
        message = {
            "memory": memory_message(step, limits),
            "timeout": timeout_message(step, limits),
        }.get(kind, outcome.message)
        return finish(
            False, error=message, kind=kind, fuel_used=fuel_used, retryable=outcome.retryable
        )
    size = len(outcome.encode())
    if size > limits.output_bytes:
        message = output_message(step, size, limits)
        return finish(False, error=message, kind="output", fuel_used=fuel_used)
    return finish(True, output=json.loads(outcome), fuel_used=fuel_used)


WARM_UP_SOURCE = "def main(event, ctx):\n    return {'words': len(str(event).split())}\n"


def warm_up() -> None:
    """Load the runner and run one empty step in this process, so that its first real run does
    not pay for it (about 150 ms); a runner that cannot run (not built) is logged."""
    result = run_python_step(WARM_UP_SOURCE, {"title": "warm up"}, step="warm-up")
    if not result.ok:
        logger.warning("the Python step runner could not be warmed up: %s", result.error)


def check_python_syntax(source: str, step: str) -> str | None:
    """What stops `source` from running as a step (a syntax error, no main), or None."""
    rt = runtime()
    try:
        runner = python_runner(rt)
    except SandboxError:
        # Before the runner is built, the host's compiler still catches almost everything.
        return host_syntax_check(source, step)
    limits = Limits()
    state = RunState(step, limits, None, None)
    store = rt.new_store(limits)
    store.set_wasi(WasiConfig())
    with rt.ticker, bound(state):
        try:
            instance = runner.linker.instantiate(store, runner.component)
            check = instance.get_func(store, runner.check)
            assert check is not None
            return check(store, step, source)
        except WasmtimeError as exc:
            return classify_trap(exc, state)[1]


def host_syntax_check(source: str, step: str) -> str | None:
    try:
        code = compile(source, f"step '{step}'", "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        return f"step '{step}': {type(exc).__name__}{where}: {exc.msg}"
    except ValueError as exc:
        return f"step '{step}': {exc}"
    if "main" not in code.co_names:
        return f"step '{step}' does not define main(event, ctx)"
    return None
