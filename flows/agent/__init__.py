"""The `llm.agent` block: a model that plans, calls the tools the flow grants it, and answers.

Every tool is a capability bound at deploy time like any step's (or another deployed flow, or a
sandboxed Python function); each model turn and tool call is recorded in the step's trace, shown
live under the step in the run view and stored with the step run. docs/agents.md tells users how
to build one. Registered from FlowsConfig.ready().
"""

from __future__ import annotations

from typing import Any

from flows.agent.checks import check_config
from flows.agent.loop import Agent
from flows.agent.memory import Memory
from flows.agent.toolbox import build_tools
from flows.agent.tools import tool_capabilities
from flows.capabilities import CapabilityError
from flows.catalog import Block, BlockContext, Param, register_block

KIND = "llm.agent"
# Seconds the step's own time limit leaves beyond the time budget, to stop and report.
TIME_GRACE_S = 10


def run_agent(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    if not str(config.get("prompt") or "").strip():
        raise CapabilityError("the agent's user message is empty")
    tools = build_tools(config, ctx)
    memory = None
    key = str(config.get("memory_key") or "").strip()
    if key:
        memory = Memory.load(key, ctx.capability("kv.get"))
    return Agent(config, ctx, tools).run(memory)


def step_limits(config: dict[str, Any]) -> dict[str, Any]:
    budget = config.get("time_budget_s")
    return {"timeout_s": budget + TIME_GRACE_S} if isinstance(budget, int) else {}


AGENT = Block(
    kind=KIND,
    category="integration",
    title="LLM: agent",
    description="A model that plans and calls the tools you choose (your connections' "
    "capabilities, your other flows, Python functions, notes) until it can answer. Every tool "
    "call is checked and recorded like a step; limits keep it bounded.",
    params=(
        Param(
            "prompt",
            "text",
            label="User message",
            required=True,
            templated=True,
            description="What the agent is asked, e.g. `{{ event.payload.issue.body }}`.",
        ),
        Param(
            "system",
            "text",
            label="System prompt",
            templated=True,
            description="Instructions: the agent's role, what it may do, how to answer.",
        ),
        Param(
            "tools",
            "list",
            label="Tools",
            default=[],
            description="The tools the model may call; nothing else can be called.",
        ),
        Param(
            "model",
            "string",
            label="Model",
            templated=True,
            description="Defaults to the connection's model.",
        ),
        Param("temperature", "number", label="Temperature", description="0 to 2."),
        Param(
            "max_iterations",
            "integer",
            label="Max model turns",
            default=8,
            description="The step fails when the model has not answered after this many turns.",
        ),
        Param(
            "max_tool_calls",
            "integer",
            label="Max tool calls",
            default=20,
            description="The step fails when the model asks for more tool calls in all.",
        ),
        Param(
            "token_budget",
            "integer",
            label="Token budget",
            default=50_000,
            description="No model turn starts once the step has used this many tokens.",
        ),
        Param(
            "time_budget_s",
            "integer",
            label="Time budget (s)",
            default=120,
            description="No model turn or tool call starts after this many seconds.",
        ),
        Param(
            "output_schema",
            "json",
            label="Output JSON schema",
            description="When set, the answer must be JSON valid for it (asked once more with "
            "the problem, then the step fails); the value is in `data`.",
        ),
        Param(
            "memory_key",
            "string",
            label="Memory key",
            templated=True,
            description="Keeps the conversation across runs under this key, e.g. "
            "`issue-{{ event.payload.issue.number }}`; empty: each run starts afresh.",
        ),
        Param(
            "memory_tokens",
            "integer",
            label="Memory size (tokens)",
            default=2000,
            description="Beyond it, the oldest turns are summarised by the model.",
        ),
    ),
    capabilities=("llm.chat",),
    service="llm",
    outputs="{answer, data (with an output schema), proposals: [{tool, arguments}], turns, "
    "tool_calls, tokens, memory_key}",
    execute=run_agent,
    capabilities_from=tool_capabilities,
    check=check_config,
    limits_from=step_limits,
    threaded=True,
)

register_block(AGENT)
