"""What running a step returns, and the error for misuse of the sandbox's API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SandboxError(Exception):
    """An invalid artifact or request (not a failure of the step's own code)."""


# Why a step failed: "" when it succeeded.
ERROR_KINDS = (
    "",
    "exception",
    "syntax",
    "timeout",
    "memory",
    "fuel",
    "output",
    "log",
    "capability",
    "invalid",
)


@dataclass
class StepResult:
    ok: bool
    output: Any = None
    error: str = ""
    error_kind: str = ""
    logs: list[tuple[str, str]] = field(default_factory=list)
    fuel_used: int = 0
    duration_ms: float = 0.0
    retryable: bool = False
