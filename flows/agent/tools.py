"""The tools an agent may call, each described to the model as an OpenAI function tool.

A step's `tools` field lists them, one object each:

- `{"capability": "github.file.read", "fixed": {"repo": "{{ settings.repo }}"}, "ask_first": false}`:
  a capability the flow has a connection for. Its JSON schema comes from the capability's one
  declaration (the params of its block), the same that drives the no-code block and validates
  every call. `fixed` values (templates) are set by the flow and hidden from the model; a param
  whose block default is a template (the event's repository, its issue number) defaults to it.
  `ask_first` (for capabilities that write) records a proposal instead of acting.
- `{"flow": 12}`: another deployed flow of the owner, run as `flow.call` runs it; described by the
  flow's description, its arguments shaped like its manual trigger's sample event.
- `{"code": "def main(args, ctx): ...", "name": "...", "description": "...", "parameters": {...},
  "grants": [...]}`: a Python function run in a fresh Wasm sandbox per call with its own grants.
- `{"notes": true}`: `notes_save` and `notes_read`, facts kept in the flow's key-value store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows import capabilities, catalog, templating

TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NOTES_KEY = "agent-notes"
# Capabilities that are no tool: the agent's own model, and blocks of the engine.
NOT_TOOLS = ("llm.",)
KINDS = ("capability", "flow", "code", "notes")


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    kind: str  # one of KINDS
    run: Callable[[dict[str, Any]], Any] = field(repr=False)
    capability: str = ""
    ask_first: bool = False
    # Whether a call needs the run's database (key-value store, other flows): such calls run one
    # after another on the agent's thread; the others run at the same time.
    uses_database: bool = False

    def offered(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def tool_name(capability: str) -> str:
    return capability.replace(".", "_")


def flow_tool_name(flow) -> str:
    """A called flow's tool name from its name: "Customer lookup" -> flow_customer_lookup."""
    base = "_".join(re.findall(r"[a-z0-9]+", flow.name.lower())) or str(flow.pk)
    return f"flow_{base}"[:64]


def param_schema(param: catalog.Param) -> dict[str, Any]:
    """A block param as JSON schema, for the model."""
    kinds = {
        "string": {"type": "string"},
        "text": {"type": "string"},
        "code": {"type": "string"},
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "list": {"type": "array", "items": {"type": "string"}},
        "choice": {"type": "string", "enum": list(param.choices)},
    }
    schema = dict(kinds.get(param.type, {}))
    description = param.description or param.label
    if description:
        schema["description"] = description
    if param.default is not None and not templating.is_template(param.default):
        schema["default"] = param.default
    return schema


def is_tool_capability(name: str) -> bool:
    block = catalog.get_block(name)
    return (
        capabilities.get(name) is not None
        and block is not None
        and block.execute is not None
        and not name.startswith(NOT_TOOLS)
    )


def capability_schema(name: str, hidden: set[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a capability's payload, from its block's params: fields the flow fixes
    are left out; a field with a default from the run is optional and says so."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in catalog.get_block(name).params:
        if param.name in hidden:
            continue
        schema = param_schema(param)
        if param.name in defaults:
            schema["description"] = (
                f"{schema.get('description', '')} (default: {defaults[param.name]})"
            ).strip()
        elif param.required or templating.is_template(param.default):
            required.append(param.name)
        properties[param.name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def sample_schema(sample: Any) -> dict[str, Any]:
    """A JSON schema shaped like a sample value (a flow's sample event)."""
    if isinstance(sample, bool):
        return {"type": "boolean"}
    if isinstance(sample, int):
        return {"type": "integer"}
    if isinstance(sample, float):
        return {"type": "number"}
    if isinstance(sample, str):
        return {"type": "string"}
    if isinstance(sample, list):
        return {"type": "array", "items": sample_schema(sample[0]) if sample else {}}
    if isinstance(sample, dict):
        return {
            "type": "object",
            "properties": {k: sample_schema(v) for k, v in sample.items()},
        }
    return {}


def tool_capabilities(config: dict[str, Any]) -> list[str]:
    """The capabilities the step's tools need bound (the notes and the memory use the store)."""
    names: list[str] = []
    tools = config.get("tools")
    for spec in tools if isinstance(tools, list) else []:
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("capability"), str):
            names.append(spec["capability"])
        if spec.get("code") is not None:
            names += [g for g in spec.get("grants") or [] if isinstance(g, str)]
        if spec.get("notes"):
            names += ["kv.get", "kv.set"]
    if config.get("memory_key"):
        names += ["kv.get", "kv.set"]
    return list(dict.fromkeys(names))


def spec_kind(spec: Any) -> str | None:
    """Which kind of tool an entry of `tools` is; None when it is none or several."""
    if not isinstance(spec, dict):
        return None
    found = [k for k in ("capability", "flow", "code", "notes") if spec.get(k) not in (None, "")]
    return found[0] if len(found) == 1 else None
