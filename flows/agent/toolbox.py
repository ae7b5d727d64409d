"""The tools of one agent step at run time: built from its `tools` field and the run's context,
each with the callable that performs a call (see flows.agent.tools for the field's shape)."""

from __future__ import annotations

from typing import Any

from flows import capabilities, catalog, templating
from flows.agent.tools import (
    NOTES_KEY,
    Tool,
    capability_schema,
    flow_tool_name,
    sample_schema,
    spec_kind,
    tool_name,
)
from flows.capabilities import CapabilityError
from flows.catalog import BlockContext
from flows.models import Flow


def build_tools(config: dict[str, Any], ctx: BlockContext) -> dict[str, Tool]:
    context = {"event": ctx.event, "settings": ctx.settings, "steps": ctx.steps, "run": ctx.run}
    tools: dict[str, Tool] = {}
    for spec in config.get("tools") or []:
        kind = spec_kind(spec)
        if kind == "capability":
            built = [capability_tool(spec, ctx, context)]
        elif kind == "flow":
            built = [flow_tool(spec, ctx)]
        elif kind == "code":
            built = [code_tool(spec, ctx)]
        elif kind == "notes":
            built = notes_tools(ctx)
        else:
            raise CapabilityError("an entry of 'tools' is not a tool: deploy the flow again")
        for tool in built:
            tools[tool.name] = tool
    return tools


def capability_tool(spec: dict, ctx: BlockContext, context: dict) -> Tool:
    name = spec["capability"]
    block = catalog.get_block(name)
    if block is None or capabilities.get(name) is None:
        raise CapabilityError(f"the tool {name} is not installed on this server")
    fixed = {k: templating.render_value(v, context) for k, v in (spec.get("fixed") or {}).items()}
    defaults = {}
    for param in block.params:
        if param.name not in fixed and templating.is_template(param.default):
            value = templating.render_value(param.default, context)
            if value not in (None, ""):
                defaults[param.name] = value
    call = ctx.capability(name)
    ask_first = bool(spec.get("ask_first"))
    description = block.description
    if block.outputs:
        description += f" Returns {block.outputs}."
    if ask_first:
        description += (
            " A person approves this action first: calling it records your proposal, it does "
            "not act."
        )
    return Tool(
        name=tool_name(name),
        description=description,
        parameters=capability_schema(name, set(fixed), defaults),
        kind="capability",
        capability=name,
        ask_first=ask_first,
        uses_database=capabilities.get(name).service is None,
        run=lambda args: call({**defaults, **args, **fixed}),
    )


def flow_tool(spec: dict, ctx: BlockContext) -> Tool:
    def describe() -> tuple[str, str, Any]:
        owner = Flow.objects.filter(pk=ctx.run["flow_id"]).values("owner_id")
        flow = Flow.objects.filter(owner_id__in=owner, pk=spec["flow"]).first()
        if flow is None:
            raise CapabilityError(f"flow {spec['flow']} is not one of yours")
        trigger = (flow.document or {}).get("trigger") or {}
        sample = (trigger.get("config") or {}).get("sample_event")
        text = flow.description or (flow.document or {}).get("description") or ""
        return flow_tool_name(flow), f"Runs the flow '{flow.name}'. {text}".strip(), sample

    default_name, description, sample = ctx.database(describe)
    parameters = sample_schema(sample) if isinstance(sample, dict) and sample else {}
    parameters = {"type": "object", **parameters, "description": "the input the flow gets"}
    version = spec.get("version") or "latest"
    return Tool(
        name=spec.get("name") or default_name,
        description=description,
        parameters=parameters,
        kind="flow",
        uses_database=True,
        run=lambda args: ctx.call_flow({"flow": spec["flow"], "version": version, "input": args}),
    )


def code_tool(spec: dict, ctx: BlockContext) -> Tool:
    from flows import sandbox

    grants = {g: ctx.capability(g) for g in spec.get("grants") or []}
    name = spec["name"]
    limits = sandbox.Limits.from_overrides(spec.get("limits") or None)
    sandbox_context = {"settings": ctx.settings, "steps": ctx.steps, "run": ctx.run}

    def run(args: dict[str, Any]) -> Any:
        result = sandbox.run_python_step(
            spec["code"],
            args,
            step=f"{ctx.step_id}:{name}",
            context=sandbox_context,
            capabilities=grants,
            limits=limits,
            on_log=ctx.log,
        )
        if not result.ok:
            raise CapabilityError(result.error or "the code tool failed")
        return result.output

    return Tool(
        name=name,
        description=spec["description"],
        parameters=spec.get("parameters") or {"type": "object", "properties": {}},
        kind="code",
        run=run,
    )


def notes_tools(ctx: BlockContext) -> list[Tool]:
    get, put = ctx.capability("kv.get"), ctx.capability("kv.set")

    def notes() -> dict[str, str]:
        stored = get({"key": NOTES_KEY})
        return stored if isinstance(stored, dict) else {}

    def save(args: dict[str, Any]) -> Any:
        name, text = args.get("name"), args.get("text", "")
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str):
            raise CapabilityError("notes_save needs a 'name' and a 'text' (both text)")
        kept = notes()
        if text:
            kept[name.strip()] = text
        else:
            kept.pop(name.strip(), None)
        put({"key": NOTES_KEY, "value": kept})
        return {"saved": name.strip(), "notes": sorted(kept)}

    def read(args: dict[str, Any]) -> Any:
        kept = notes()
        name = args.get("name")
        if not name:
            return {"notes": kept}
        if name not in kept:
            return {"found": False, "names": sorted(kept)}
        return {"found": True, "name": name, "text": kept[name]}

    return [
        Tool(
            name="notes_save",
            description="Save a fact under a name, to recall in later runs of this flow (an "
            "empty text deletes the note).",
            parameters={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "a short name for the fact"},
                    "text": {"type": "string", "description": "the fact"},
                },
                "required": ["name", "text"],
            },
            kind="notes",
            uses_database=True,
            run=save,
        ),
        Tool(
            name="notes_read",
            description="Recall the notes saved in earlier runs: one by name, or all of them.",
            parameters={
                "type": "object",
                "properties": {"name": {"type": "string", "description": "the note's name"}},
            },
            kind="notes",
            uses_database=True,
            run=read,
        ),
    ]
