"""Compiler errors in the shape the pages show them: on a node (step) and a field."""

from __future__ import annotations

from typing import Any


def structured_errors(exc: Exception) -> list[dict[str, str]]:
    """[{"step", "field", "message"}] from a CompileError; step and field may be empty."""
    errors: list[Any] = list(getattr(exc, "errors", None) or [str(exc)])
    result = []
    for error in errors:
        if isinstance(error, dict):
            step, field, message = error.get("step"), error.get("field"), error.get("message")
        else:
            step = getattr(error, "step", None)
            field = getattr(error, "field", None)
            message = getattr(error, "message", None) or str(error)
        result.append({"step": step or "", "field": field or "", "message": str(message)})
    return result
