"""What a Python step sees of Flowbuilder: the `ctx` passed to `main(event, ctx)`.

This module lives inside the sandbox (it is part of the runner component), so a step can write
`from flowbuilder import CapabilityError`.
"""

import json
import sys

from componentize_py_types import Err
from wit_world.imports import host


class CapabilityError(Exception):
    """A capability call failed; `retryable` tells whether running the step again may help."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def emit(level: str, parts: tuple) -> None:
    host.log(level, " ".join(str(part) for part in parts))


class Context:
    """The step's window on the run: its log, its capabilities, settings and earlier outputs."""

    CapabilityError = CapabilityError

    def __init__(self, step: str, settings: dict, steps: dict, run: dict):
        self.step = step
        self.settings = settings
        self.steps = steps
        self.run = run

    def log(self, *parts: object) -> None:
        emit("info", parts)

    def debug(self, *parts: object) -> None:
        emit("debug", parts)

    def info(self, *parts: object) -> None:
        emit("info", parts)

    def warn(self, *parts: object) -> None:
        emit("warning", parts)

    warning = warn

    def error(self, *parts: object) -> None:
        emit("error", parts)

    def call(self, capability: str, payload: dict | None = None):
        """Calls a granted capability with a JSON object and returns its JSON-decoded result."""
        if not isinstance(capability, str):
            raise CapabilityError(
                f"the capability name must be a string, not {type(capability).__name__}"
            )
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise CapabilityError(
                f"capability '{capability}': the payload must be a JSON object (a dict), "
                f"not {type(payload).__name__}"
            )
        try:
            text = json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CapabilityError(
                f"capability '{capability}': the payload is not JSON-serialisable: {exc}"
            ) from None
        try:
            result = host.call(capability, text)
        except Err as err:
            failure = json.loads(err.value)
            raise CapabilityError(failure["message"], failure["retryable"]) from None
        return json.loads(result)

    def __repr__(self) -> str:
        return f"<ctx of step '{self.step}'>"


class LogStream:
    """sys.stdout / sys.stderr of a step: each complete line becomes one log line."""

    def __init__(self, level: str):
        self.level = level
        self.pending = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            host.log(self.level, line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            host.log(self.level, line)

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def capture_output() -> tuple[LogStream, LogStream]:
    sys.stdout = LogStream("info")
    sys.stderr = LogStream("warning")
    return sys.stdout, sys.stderr
