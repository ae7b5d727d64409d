"""The state of one running step as the host functions see it: its logs, its granted
capabilities, its deadline and the limits it broke.

Host functions are defined once per process, so they find the state of the step running on their
thread through `current()`; WASI output callbacks get it through a closure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flows.capabilities import CapabilityError

from .limits import Limits
from .results import StepResult

logger = logging.getLogger("flows.sandbox")

LEVELS = ("debug", "info", "warning", "error")
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return JSON_TYPES.get(type(value), type(value).__name__)


class RunState:
    def __init__(
        self,
        step: str,
        limits: Limits,
        capabilities: Mapping[str, Callable[[Any], Any]] | None,
        on_log: Callable[[str, str], None] | None,
    ):
        self.step = step
        self.limits = limits
        self.capabilities = dict(capabilities or {})
        self.on_log = on_log
        self.deadline = time.monotonic() + limits.timeout_s
        self.logs: list[tuple[str, str]] = []
        self.log_bytes = 0
        # A limit the host saw broken ("log", "timeout", "memory"); it decides the step's error.
        self.exceeded = ""
        # Why the host stopped the guest otherwise (a bad buffer, an abort), as users read it.
        self.failure = ""
        # Fuel left when the host stopped the guest by draining its fuel.
        self.fuel_left: int | None = None
        # Partial lines the guest wrote to stdout/stderr.
        self.pending = {"info": "", "warning": ""}
        self.lock = threading.Lock()
        self.started = time.perf_counter()

    def result(
        self, ok: bool, output: Any = None, error: str = "", kind: str = "", **extra: Any
    ) -> StepResult:
        """The step's result, with its logs and the time since the state was made."""
        return StepResult(
            ok=ok,
            output=output,
            error=error,
            error_kind=kind,
            logs=self.logs,
            duration_ms=(time.perf_counter() - self.started) * 1000,
            **extra,
        )

    def log(self, level: str, message: str) -> bool:
        """Records a log line; False once the step has written more than its log limit."""
        if level not in LEVELS:
            level = "info"
        size = len(message.encode("utf-8", "replace"))
        with self.lock:
            if self.exceeded:
                return False
            if self.log_bytes + size > self.limits.log_bytes:
                self.exceeded = "log"
                return False
            self.log_bytes += size
            self.logs.append((level, message))
        if self.on_log is not None:
            try:
                self.on_log(level, message)
            except Exception:
                logger.exception("on_log failed for step %r", self.step)
        return True

    def write_stream(self, level: str, data: bytes) -> None:
        """Output the guest wrote to stdout/stderr: each complete line becomes a log line."""
        with self.lock:
            lines = (self.pending[level] + data.decode("utf-8", "replace")).split("\n")
            self.pending[level] = lines.pop()
            if len(self.pending[level]) > self.limits.log_bytes:
                # A line without end counts too: it would otherwise grow in the host's memory.
                lines.append(self.pending[level])
                self.pending[level] = ""
        for line in lines:
            if not self.log(level, line):
                return

    def flush_streams(self) -> None:
        for level, rest in self.pending.items():
            if rest:
                self.pending[level] = ""
                self.log(level, rest)

    def past_deadline(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.exceeded = self.exceeded or "timeout"
            return True
        return False

    def call(self, name: str, payload_text: str) -> tuple[bool, str, bool]:
        """Performs a capability call: (ok, result JSON or error message, retryable)."""
        handler = self.capabilities.get(name)
        if handler is None:
            return False, f"capability '{name}' not granted", False
        try:
            payload = json.loads(payload_text)
        except ValueError as exc:
            return False, f"capability '{name}': the payload is not valid JSON ({exc})", False
        if not isinstance(payload, dict):
            return (
                False,
                f"capability '{name}': the payload must be a JSON object, not {json_type(payload)}",
                False,
            )
        try:
            result = handler(payload)
        except CapabilityError as exc:
            return False, exc.message, exc.retryable
        except Exception as exc:
            logger.warning("capability %r of step %r failed", name, self.step, exc_info=True)
            return False, str(exc) or type(exc).__name__, bool(getattr(exc, "retryable", False))
        try:
            return True, json.dumps(result, allow_nan=False), False
        except (TypeError, ValueError) as exc:
            return False, f"capability '{name}' returned a result that is not JSON ({exc})", False


_local = threading.local()


@contextmanager
def bound(state: RunState) -> Iterator[RunState]:
    """Makes `state` the one host functions on this thread see while the step runs."""
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(state)
    try:
        yield state
    finally:
        stack.pop()


def current() -> RunState:
    return _local.stack[-1]
