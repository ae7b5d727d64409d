"""What the compiler checks of an agent step beyond its params: its tools, limits and schema.

Each problem names the field it belongs to, so the builder shows it beside that field.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from django.conf import settings

from flows import capabilities, catalog, templating
from flows.agent.tools import (
    TOOL_NAME,
    flow_tool_name,
    is_tool_capability,
    spec_kind,
    tool_name,
)
from flows.models import Flow

# (field, smallest, largest setting name or number)
LIMITS = (
    ("max_iterations", 1, 100),
    ("max_tool_calls", 0, 500),
    ("token_budget", 100, 10_000_000),
    ("time_budget_s", 1, "FLOWS_AGENT_MAX_TIME_S"),
    ("memory_tokens", 100, 1_000_000),
)


def check_config(config: dict[str, Any], owner) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, low, high in LIMITS:
        value = config.get(name)
        high = getattr(settings, high) if isinstance(high, str) else high
        if isinstance(value, int) and not low <= value <= high:
            problems.append((name, f"'{name}' must be {low} to {high:,}"))
    schema = config.get("output_schema")
    if schema is not None:
        problems += [("output_schema", p) for p in schema_problems(schema, "the output schema")]
    tools = config.get("tools")
    if tools is None:
        return problems
    if not isinstance(tools, list):
        return [*problems, ("tools", "'tools' must be a list of tools")]
    names: set[str] = set()
    for number, spec in enumerate(tools, 1):
        kind = spec_kind(spec)
        if kind is None:
            problems.append(
                (
                    "tools",
                    f"tool {number} must be an object with one of capability, flow, code or notes",
                )
            )
            continue
        found, offered = _check_tool(kind, spec, number, owner)
        problems += [("tools", p) for p in found]
        for name in offered:
            if name in names:
                problems.append(("tools", f"tool {number}: another tool is already named {name}"))
            names.add(name)
    return problems


def schema_problems(schema: Any, what: str) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{what} must be a JSON schema object"]
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"{what} is not a valid JSON schema: {exc.message}"]
    return []


def _check_tool(kind: str, spec: dict, number: int, owner) -> tuple[list[str], list[str]]:
    """(problems, the names the tool is offered under)."""
    where = f"tool {number}"
    if kind == "notes":
        return [], ["notes_save", "notes_read"]
    if kind == "capability":
        return _check_capability(spec, where)
    if kind == "flow":
        return _check_flow(spec, where, owner)
    return _check_code(spec, where)


def _check_capability(spec: dict, where: str) -> tuple[list[str], list[str]]:
    name = spec["capability"]
    if not isinstance(name, str) or not is_tool_capability(name):
        return [f"{where}: there is no capability {name!r} an agent can call"], []
    problems = []
    block_params = {p.name for p in catalog.get_block(name).params}
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        problems.append(f"{where}: 'fixed' must be an object of field: value")
        fixed = {}
    for field, value in fixed.items():
        if field not in block_params:
            problems.append(f"{where}: {name} has no field '{field}' to fix")
        elif isinstance(value, str):
            try:
                templating.check_template(value, templating.References())
            except templating.TemplateError as exc:
                problems.append(f"{where}: fixed '{field}': {exc}")
    if spec.get("ask_first") and not capabilities.get(name).writes:
        problems.append(f"{where}: {name} only reads; 'ask first' is for tools that change things")
    return problems, [tool_name(name)]


def _check_flow(spec: dict, where: str, owner) -> tuple[list[str], list[str]]:
    flow_id = spec["flow"]
    if isinstance(flow_id, bool) or not isinstance(flow_id, int):
        return [f"{where}: 'flow' must be the id of one of your flows"], []
    flow = Flow.objects.owned_by(owner).filter(pk=flow_id).first() if owner else None
    if flow is None:
        return [f"{where}: flow {flow_id} is not one of your flows"], []
    problems = []
    if flow.version_named(spec.get("version") or "latest") is None:
        problems.append(f"{where}: flow '{flow.name}' is not deployed yet")
    name = spec.get("name") or flow_tool_name(flow)
    if not TOOL_NAME.match(name):
        problems.append(f"{where}: the name {name!r} must be letters, digits, _ or - (at most 64)")
    return problems, [name]


def _check_code(spec: dict, where: str) -> tuple[list[str], list[str]]:
    from flows import sandbox

    problems = []
    name = spec.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        problems.append(
            f"{where}: a code tool needs a 'name' of letters, digits, _ or - (at most 64)"
        )
        name = None
    if not isinstance(spec.get("code"), str):
        problems.append(f"{where}: 'code' must be Python source defining main(args, ctx)")
    else:
        problem = sandbox.check_python_syntax(spec["code"], name or where)
        if problem:
            problems.append(f"{where}: {problem}")
    if not isinstance(spec.get("description"), str) or not spec["description"].strip():
        problems.append(f"{where}: a code tool needs a 'description' telling the model its use")
    if spec.get("parameters") is not None:
        problems += [f"{where}: {p}" for p in schema_problems(spec["parameters"], "'parameters'")]
    grants = spec.get("grants") or []
    if not isinstance(grants, list):
        problems.append(f"{where}: 'grants' must be a list of capability names")
    else:
        for grant in grants:
            if not isinstance(grant, str) or capabilities.get(grant) is None:
                problems.append(f"{where}: unknown capability {grant!r} in 'grants'")
    return problems, [name] if name else []
