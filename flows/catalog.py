"""The block catalog: one declaration per block kind drives validation, compilation, the builder's
forms and the docs.

Blocks register themselves with `register_block`. Core blocks (triggers, logic, code) live in
`flows.blocks`; integration blocks live in the `integrations` app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "string", "text", "code", "integer", "number", "boolean", "json", "choice", "list", "secret-ref"
    label: str = ""
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple[str, ...] = ()
    # Whether the value may contain template expressions ({{ event.x }}), evaluated at run time.
    templated: bool = False


@dataclass(frozen=True)
class Block:
    kind: str  # "trigger.webhook", "logic.filter", "code.python", "github.comment.upsert", ...
    category: str  # "trigger", "integration", "logic", "code"
    title: str
    description: str
    params: tuple[Param, ...] = ()
    # Capabilities the block needs (integration blocks) or may be granted (code blocks).
    capabilities: tuple[str, ...] = ()
    # The connection service this block needs, if any ("github", "llm", ...).
    service: str | None = None
    outputs: str = ""
    # The output ports edges may leave from (every step also has the optional `error` port).
    ports: tuple[str, ...] = ("out",)
    # A list param whose items' "port" names are further ports (logic.switch's cases).
    ports_from: str | None = None
    # Whether the block runs a body of steps (marked with "parent") from its "body" port.
    has_body: bool = False
    # Run by the engine itself rather than by `execute` (loops, waits, merges, sub-flows).
    control: bool = False
    # Host-side execution for non-code blocks: execute(config, ctx: BlockContext) -> output, where
    # config holds the step's field values with templates already rendered.
    execute: Callable[..., Any] | None = field(default=None, compare=False)
    # Blocks whose capabilities depend on their configuration (an agent's tools):
    # capabilities_from(config) -> capability names, bound like `capabilities`.
    capabilities_from: Callable[[dict], list[str]] | None = field(default=None, compare=False)
    # check(config, owner) -> [(field, problem)]: what the params alone cannot express.
    check: Callable[[dict, Any], list[tuple[str, str]]] | None = field(default=None, compare=False)
    # limits_from(config) -> the step's limits ({"timeout_s": ...}) from its configuration.
    limits_from: Callable[[dict], dict] | None = field(default=None, compare=False)
    # Whether its execution runs work on threads of its own that may log or use the key-value
    # store (an agent's parallel tool calls): it never runs on the run's coordinator thread.
    threaded: bool = False


@dataclass(frozen=True)
class Route:
    """What `execute` returns to leave on a port other than `out` (logic.if, logic.switch)."""

    port: str
    output: Any = None


class BlockContext(Protocol):
    """What a host-side block sees when it executes (implemented by the engine)."""

    event: Any
    settings: dict[str, Any]
    steps: dict[str, Any]  # outputs of earlier steps, by step id
    step_id: str
    run: dict[str, Any]  # flow_id, run_id, step, trigger, attempt (and a loop's item, index)

    def capability(self, name: str) -> Callable[[Any], Any]:
        """The capability `name` bound to this flow's connection; raises CapabilityError."""

    def log(self, level: str, message: str) -> None: ...

    def trace(self, entry: dict[str, Any]) -> None:
        """Record one entry of the step's trace (an agent's model turn or tool call): shown live
        under the step and stored with its step run."""

    def database(self, fn: Callable[[], Any]) -> Any:
        """fn() on the thread holding the run's database connection (a run uses one)."""

    def call_flow(self, config: dict[str, Any]) -> Any:
        """Run another flow of the owner as `flow.call` does ({flow, version, input}) and return
        its output; raises CapabilityError when it fails."""


def block_capabilities(block: Block, config: dict[str, Any]) -> list[str]:
    """The capabilities a step of this block is bound to with this configuration."""
    names = list(block.capabilities)
    if block.capabilities_from is not None:
        names += [n for n in block.capabilities_from(config) if n not in names]
    return names


ERROR_PORT = "error"


def block_ports(block: Block, config: dict[str, Any] | None = None) -> list[str]:
    """The ports a step of this block has with this configuration, `error` last (triggers have
    no error port: a trigger cannot fail)."""
    ports = list(block.ports)
    if block.ports_from:
        for item in (config or {}).get(block.ports_from) or []:
            port = item.get("port") if isinstance(item, dict) else None
            if isinstance(port, str) and port and port not in ports:
                ports.insert(len(ports) - 1 if "default" in ports else len(ports), port)
    if block.category != "trigger":
        ports.append(ERROR_PORT)
    return ports


CATALOG: dict[str, Block] = {}


def register_block(block: Block) -> Block:
    CATALOG[block.kind] = block
    return block


def get_block(kind: str) -> Block | None:
    return CATALOG.get(kind)


def blocks_by_category() -> dict[str, list[Block]]:
    grouped: dict[str, list[Block]] = {}
    for block in sorted(CATALOG.values(), key=lambda b: (b.category, b.title)):
        grouped.setdefault(block.category, []).append(block)
    return grouped
