"""The registry of host capabilities that Wasm steps may call, and integration blocks reuse.

A capability is registered once, by name (``github.comment.upsert``), with the connection service
it needs (or None) and a handler. The compiler binds a step's granted capabilities to the flow's
connections and limits; at run time the engine turns each binding into a plain callable
``payload -> result`` and hands those, and only those, to the sandbox.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class CapabilityError(Exception):
    """A failure the guest sees as a catchable error. `retryable` tells whether a retry can help."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float = 0.0):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # Seconds the service asked to wait (Retry-After): the engine parks the run that long.
        self.retry_after = retry_after


@dataclass
class CapabilityContext:
    """What a handler knows about the call: whose flow, which run and step, and its binding."""

    flow_id: int
    run_id: int | None
    step_id: str
    # Decrypted secrets of the bound connection (never passed to the guest), or None.
    secrets: dict[str, Any] | None = None
    # Non-secret connection settings (base URL, default model, ...).
    connection_config: dict[str, Any] = field(default_factory=dict)
    # Limits from the binding: allowed repositories, hosts, model, ...
    limits: dict[str, Any] = field(default_factory=dict)
    # log(level, message): goes to the run's log with secrets redacted.
    log: Callable[[str, str], None] = lambda level, message: None
    # record_usage(dict): token usage and other per-step counters.
    record_usage: Callable[[dict], None] = lambda usage: None


Handler = Callable[[CapabilityContext, Any], Any]

# When the step making a capability call must be done (time.monotonic()), set by the engine
# around each step: a call never outlives its step's time limit, whatever its own timeout says.
step_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "step_deadline", default=None
)


def time_left() -> float | None:
    """Seconds the current step has left (None outside a step)."""
    deadline = step_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


@dataclass(frozen=True)
class Capability:
    name: str
    handler: Handler
    service: str | None = None
    description: str = ""
    # Human-readable payload and result shapes, for the docs and the builder.
    payload_doc: dict[str, str] = field(default_factory=dict)
    result_doc: str = ""
    # Whether a call changes something outside the run (posts, labels, stores): an agent's
    # "ask first" applies to these.
    writes: bool = False


REGISTRY: dict[str, Capability] = {}


def register(
    name: str,
    *,
    service: str | None = None,
    description: str = "",
    payload_doc: dict[str, str] | None = None,
    result_doc: str = "",
    writes: bool = False,
) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        REGISTRY[name] = Capability(
            name=name,
            handler=handler,
            service=service,
            description=description,
            payload_doc=payload_doc or {},
            result_doc=result_doc,
            writes=writes,
        )
        return handler

    return decorate


def get(name: str) -> Capability | None:
    return REGISTRY.get(name)
