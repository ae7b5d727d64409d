"""Helpers for the integrations tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows.capabilities import REGISTRY, CapabilityContext


@dataclass
class Recorder:
    """What a capability reported while it ran: log lines and token usage."""

    logs: list[tuple[str, str]] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)

    def context(
        self,
        secrets: dict | None = None,
        config: dict | None = None,
        limits: dict | None = None,
    ) -> CapabilityContext:
        return CapabilityContext(
            flow_id=1,
            run_id=1,
            step_id="step",
            secrets=secrets,
            connection_config=config or {},
            limits=limits or {},
            log=lambda level, message: self.logs.append((level, message)),
            record_usage=self.usage.append,
        )


def call(name: str, ctx: CapabilityContext, payload: Any) -> Any:
    """Call a registered capability the way the engine does."""
    return REGISTRY[name].handler(ctx, payload)
