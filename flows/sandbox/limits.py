"""Per-step limits: defaults and operator maxima from settings, and the messages users see."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

MIB = 1024 * 1024


def _setting(name: str) -> Any:
    return getattr(settings, name)


@dataclass(frozen=True)
class Limits:
    memory_mib: int = field(default_factory=lambda: _setting("FLOWS_STEP_MEMORY_MIB"))
    timeout_s: float = field(default_factory=lambda: _setting("FLOWS_STEP_TIMEOUT_S"))
    fuel: int = field(default_factory=lambda: _setting("FLOWS_STEP_FUEL"))
    output_bytes: int = field(default_factory=lambda: _setting("FLOWS_STEP_OUTPUT_BYTES"))
    log_bytes: int = field(default_factory=lambda: _setting("FLOWS_STEP_LOG_BYTES"))

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> Limits:
        """A step's limits: its overrides on top of the defaults, refused above the maxima."""
        if not overrides:
            return cls()
        if not isinstance(overrides, dict):
            raise ValueError('limits must be an object such as {"timeout_s": 60}')
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in MAXIMA:
                known = ", ".join(MAXIMA)
                raise ValueError(f"unknown limit '{name}' (known limits: {known})")
            whole = name != "timeout_s"
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (whole and not float(value).is_integer())
                or not math.isfinite(value)
                or value <= 0
            ):
                kind = "whole number" if whole else "number"
                raise ValueError(f"limit '{name}' must be a positive {kind}, not {value!r}")
            maximum = _setting(MAXIMA[name])
            if value > maximum:
                show = DISPLAY[name]
                raise ValueError(
                    f"limit '{name}' is {show(value)}, above this server's maximum of "
                    f"{show(maximum)}"
                )
            values[name] = int(value) if whole else value
        return cls(**values)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    def as_dict(self) -> dict[str, Any]:
        return {
            "memory_mib": self.memory_mib,
            "timeout_s": self.timeout_s,
            "fuel": self.fuel,
            "output_bytes": self.output_bytes,
            "log_bytes": self.log_bytes,
        }


MAXIMA = {
    "memory_mib": "FLOWS_STEP_MEMORY_MIB_MAX",
    "timeout_s": "FLOWS_STEP_TIMEOUT_S_MAX",
    "fuel": "FLOWS_STEP_FUEL_MAX",
    "output_bytes": "FLOWS_STEP_OUTPUT_BYTES_MAX",
    "log_bytes": "FLOWS_STEP_LOG_BYTES_MAX",
}


def format_size(size: int) -> str:
    """1048576 -> '1 MB', 2202009 -> '2.1 MB' (binary multiples, as in the limit settings)."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("KB", 1024), ("MB", MIB), ("GB", 1024 * MIB)):
        if size < scale * 1024 or unit == "GB":
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


DISPLAY: dict[str, Callable[[Any], str]] = {
    "memory_mib": lambda value: f"{int(value)} MiB",
    "timeout_s": lambda value: f"{value:g} s",
    "fuel": lambda value: f"{int(value):,}",
    "output_bytes": lambda value: format_size(int(value)),
    "log_bytes": lambda value: format_size(int(value)),
}


def timeout_message(step: str, limits: Limits) -> str:
    return f"step '{step}' exceeded its {limits.timeout_s:g} s time limit"


def memory_message(step: str, limits: Limits) -> str:
    return f"step '{step}' exceeded its {limits.memory_mib} MiB memory limit"


def fuel_message(step: str, limits: Limits) -> str:
    return f"step '{step}' ran out of fuel (limit {limits.fuel:,})"


def output_message(step: str, size: int, limits: Limits) -> str:
    return (
        f"step '{step}' returned {format_size(size)} of output; "
        f"the limit is {format_size(limits.output_bytes)}"
    )


def log_message(step: str, limits: Limits) -> str:
    return f"step '{step}' exceeded its {format_size(limits.log_bytes)} log limit"
