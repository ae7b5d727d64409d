"""Execute one step of a plan: a host-side block, a Python step or an uploaded Wasm module.

Capabilities reach a step as plain callables `payload -> result`, one per binding of the plan;
each adds the bound connection's secrets and limits on the host side, so no secret ever enters
the sandbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows import capabilities as capability_registry
from flows import catalog, templating
from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Route
from flows.connections import BoundConnection
from flows.engine.errors import SkipRun

LogFn = Callable[[str, str], None]


@dataclass
class StepOutcome:
    status: str  # "succeeded" | "failed" | "skipped"
    output: Any = None
    error: str = ""
    retryable: bool = False
    fuel_used: int = 0
    duration_ms: float = 0.0
    input: Any = None
    skip_reason: str = ""
    port: str = ""  # the output port it leaves on ("" means "out")
    retry_after: float = 0.0  # seconds the service asked to wait before trying again
    usage: dict[str, Any] | None = None


@dataclass
class StepHooks:
    """What the engine offers a host-side block beyond its capabilities (an agent's needs)."""

    trace: Callable[[dict[str, Any]], None] = lambda entry: None
    call_flow: Callable[[dict[str, Any]], Any] | None = None
    # database(fn) -> fn(): on the thread that holds the run's database connection.
    database: Callable[[Callable[[], Any]], Any] = lambda fn: fn()


class Usage:
    """Per-step counters reported by capabilities (LLM token usage): numbers add up."""

    def __init__(self) -> None:
        self.totals: dict[str, Any] = {}

    def record(self, usage: dict) -> None:
        for key, value in (usage or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.totals[key] = self.totals.get(key, 0) + value
            else:
                self.totals[key] = value


def capability_callables(
    step: dict[str, Any],
    *,
    flow_id: int,
    run_id: int | None,
    connections: dict[int, BoundConnection],
    log: LogFn,
    usage: Usage,
) -> dict[str, Callable[[Any], Any]]:
    """One callable per capability the plan binds to this step, and no others."""
    callables: dict[str, Callable[[Any], Any]] = {}
    for name, binding in (step.get("bindings") or {}).items():
        capability = capability_registry.get(name)
        connection = connections.get(binding["connection"]) if binding.get("connection") else None
        callables[name] = _bind(
            name, capability, binding, connection, flow_id, run_id, step["id"], log, usage
        )
    return callables


def _bind(name, capability, binding, connection, flow_id, run_id, step_id, log, usage):
    def call(payload: Any) -> Any:
        if capability is None:
            raise CapabilityError(f"capability '{name}' is not installed on this server")
        if binding.get("connection"):
            if connection is None:
                raise CapabilityError(
                    f"the {binding['service']} connection bound to this flow no longer exists: "
                    "bind another one and deploy again"
                )
            if connection.problem:
                raise CapabilityError(connection.problem)
        ctx = CapabilityContext(
            flow_id=flow_id,
            run_id=run_id,
            step_id=step_id,
            secrets=connection.secrets if connection else None,
            connection_config=connection.config if connection else {},
            limits=binding.get("limits") or {},
            log=log,
            record_usage=usage.record,
        )
        return capability.handler(ctx, payload)

    return call


class EngineBlockContext:
    """The BlockContext a host-side block executes with."""

    def __init__(
        self,
        *,
        event: Any,
        settings: dict[str, Any],
        steps: dict[str, Any],
        step_id: str,
        run: dict[str, Any],
        capabilities: dict[str, Callable[[Any], Any]],
        log: LogFn,
        hooks: StepHooks | None = None,
    ):
        self.event = event
        self.settings = settings
        self.steps = steps
        self.step_id = step_id
        self.run = run
        self._capabilities = capabilities
        self._log = log
        self._hooks = hooks or StepHooks()

    def capability(self, name: str) -> Callable[[Any], Any]:
        if name not in self._capabilities:
            raise CapabilityError(f"capability '{name}' not granted")
        return self._capabilities[name]

    def log(self, level: str, message: str) -> None:
        self._log(level, message)

    def trace(self, entry: dict[str, Any]) -> None:
        self._hooks.trace(entry)

    def database(self, fn: Callable[[], Any]) -> Any:
        return self._hooks.database(fn)

    def call_flow(self, config: dict[str, Any]) -> Any:
        if self._hooks.call_flow is None:
            raise CapabilityError("this step cannot call other flows here")
        return self._hooks.call_flow(config)


def _json_problem(value: Any, what: str = "the step's output") -> str | None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        return f"{what} is not JSON: {exc}"
    return None


def render_config(step: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The step's configuration with its template fields evaluated; raises TemplateError naming
    the field."""
    config = dict(step["config"])
    for name in step.get("templated", []):
        if name in config:
            try:
                config[name] = templating.render_value(config[name], context)
            except templating.TemplateError as exc:
                raise templating.TemplateError(f"field '{name}': {exc}") from exc
    return config


def run_block(
    step: dict[str, Any], context: dict[str, Any], callables, log: LogFn, hooks=None
) -> StepOutcome:
    started = time.perf_counter()
    outcome = StepOutcome(status="failed")
    block = catalog.get_block(step["kind"])
    try:
        if block is None or block.execute is None:
            raise CapabilityError(f"block '{step['kind']}' is not installed on this server")
        config = render_config(step, context)
        problem = _json_problem(config, "a field's value")
        if problem:
            raise templating.TemplateError(problem)
        outcome.input = config
        ctx = EngineBlockContext(
            event=context["event"],
            settings=context["settings"],
            steps=context["steps"],
            step_id=step["id"],
            run=context["run"],
            capabilities=callables,
            log=log,
            hooks=hooks,
        )
        output = block.execute(config, ctx)
        if isinstance(output, Route):
            outcome.port, output = output.port, output.output
        problem = _json_problem(output)
        if problem:
            outcome.error = problem
        else:
            outcome.status, outcome.output = "succeeded", output
    except SkipRun as skip:
        outcome.status, outcome.output, outcome.skip_reason = "skipped", skip.output, skip.reason
    except CapabilityError as exc:
        outcome.error, outcome.retryable = exc.message, exc.retryable
        outcome.retry_after = getattr(exc, "retry_after", 0.0) or 0.0
    except templating.TemplateError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a block's bug fails its step, not the worker
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.retryable = bool(getattr(exc, "retryable", False))
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


def run_code(step: dict[str, Any], context: dict[str, Any], callables, log: LogFn) -> StepOutcome:
    from flows import sandbox

    started = time.perf_counter()
    outcome = StepOutcome(status="failed")
    outcome.input = {
        "grants": sorted(callables),
        "limits": step.get("limits"),
        "steps": sorted(context["steps"]),
    }
    try:
        limits = sandbox.Limits.from_overrides(step.get("limit_overrides") or None)
    except ValueError as exc:
        outcome.error = str(exc)
        return outcome
    sandbox_context = {
        "settings": context["settings"],
        "steps": context["steps"],
        "run": context["run"],
    }
    kwargs = {
        "step": step["id"],
        "context": sandbox_context,
        "capabilities": callables,
        "limits": limits,
        "on_log": log,
    }
    if step["kind"] == "code.python":
        result = sandbox.run_python_step(step["config"]["source"], context["event"], **kwargs)
    else:
        result = sandbox.run_wasm_step(step["artifact"], context["event"], **kwargs)
    outcome.fuel_used = result.fuel_used or 0
    outcome.duration_ms = result.duration_ms or (time.perf_counter() - started) * 1000
    if result.ok:
        outcome.status, outcome.output = "succeeded", result.output
    else:
        outcome.error, outcome.retryable = result.error, bool(result.retryable)
    return outcome


def run_step(
    step: dict[str, Any], context: dict[str, Any], callables, log: LogFn, hooks=None
) -> StepOutcome:
    if step["category"] == "code":
        return run_code(step, context, callables, log)
    return run_block(step, context, callables, log, hooks)
