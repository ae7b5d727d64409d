"""Turns how a sandboxed step ended (a trap, a limit the host saw broken) into what users read."""

from __future__ import annotations

from wasmtime import ExitTrap

from .limits import fuel_message, log_message, memory_message, timeout_message
from .session import RunState


def trap_reason(text: str) -> str:
    """The cause of a wasmtime error without its Wasm backtrace."""
    if "Caused by:" in text:
        causes = [line.strip() for line in text.split("Caused by:", 1)[1].splitlines()]
        return "; ".join(cause for cause in causes if cause)
    lines = text.strip().splitlines()
    return lines[0] if lines else "unknown error"


def classify_trap(exc: Exception, state: RunState) -> tuple[str, str]:
    """(error_kind, message) for a step whose Wasm execution stopped with `exc`."""
    step, limits = state.step, state.limits
    if state.exceeded == "log":
        return "log", log_message(step, limits)
    if state.exceeded == "timeout":
        return "timeout", timeout_message(step, limits)
    if state.exceeded == "memory":
        return "memory", memory_message(step, limits)
    if state.failure:
        return "exception", state.failure
    if isinstance(exc, ExitTrap):
        return "exception", f"step '{step}' exited with status {exc.code}"
    text = str(exc)
    if "all fuel consumed" in text:
        return "fuel", fuel_message(step, limits)
    if "wasm trap: interrupt" in text:
        return "timeout", timeout_message(step, limits)
    if "exceeds memory limits" in text or "memory minimum size" in text:
        return "memory", memory_message(step, limits)
    if "call stack exhausted" in text:
        return "exception", f"step '{step}' overflowed its call stack (recursion too deep)"
    return "exception", f"step '{step}' crashed: {trap_reason(text)}"
