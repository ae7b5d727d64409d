"""One agent step: the conversation with the model, its tool calls, its limits and its answer.

Each turn the model gets the conversation and the tools (OpenAI-compatible tool calling through
the `llm.chat` capability) and either answers or asks for tool calls. The calls of one turn run at
the same time, except those that use the run's database (the key-value store, other flows), which
run one after another; each result goes back to the model. A call of a tool that was not offered,
or with arguments that are not a JSON object, is refused with a message the model can act on.
The limits stop the step with an error that names the limit; nothing is retried, since a new
attempt would ask the model all over again.
"""

from __future__ import annotations

import contextvars
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema

from flows.agent.memory import Memory, summary_prompt
from flows.agent.tools import Tool
from flows.capabilities import CapabilityError
from flows.catalog import BlockContext

# What a tool's answer may take of the conversation, and of the trace shown in the run view.
RESULT_MAX_CHARS = 16_000
TRACE_MAX_CHARS = 4_000
PARALLEL_MAX = 8
FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class AgentStopped(CapabilityError):
    """A limit or an unusable answer ended the step (never retried)."""


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _preview(value: Any) -> Any:
    """A value as the trace keeps it: whole when small, else its text cut short."""
    text = _as_text(value)
    return value if len(text) <= TRACE_MAX_CHARS else _cut(text, TRACE_MAX_CHARS)


def parse_json(text: str) -> Any:
    """The JSON value of an answer: the whole text, a fenced block, or the outermost braces."""
    candidates = [text.strip(), *FENCED.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("the answer is not JSON")


class Agent:
    def __init__(self, config: dict[str, Any], ctx: BlockContext, tools: dict[str, Tool]):
        self.config = config
        self.ctx = ctx
        self.tools = tools
        self.chat = ctx.capability("llm.chat")
        self.deadline = time.monotonic() + config["time_budget_s"]
        self.turns = 0
        self.calls = 0
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.proposals: list[dict[str, Any]] = []

    # limits ----------------------------------------------------------------------------------
    def check_limits(self) -> None:
        config = self.config
        if time.monotonic() >= self.deadline:
            raise AgentStopped(
                f"the agent ran out of its time budget of {config['time_budget_s']} s "
                f"after {self.turns} model turns and {self.calls} tool calls"
            )
        if self.tokens["total_tokens"] >= config["token_budget"]:
            raise AgentStopped(
                f"the agent used {self.tokens['total_tokens']:,} tokens, its budget is "
                f"{config['token_budget']:,}: it stopped before asking the model again"
            )

    # the model -------------------------------------------------------------------------------
    def ask(
        self, messages: list[dict], *, tools: bool, purpose: str, limited: bool = True
    ) -> dict[str, Any]:
        if limited:
            self.check_limits()
        self.turns += 1
        payload: dict[str, Any] = {"messages": messages}
        if self.config.get("model"):
            payload["model"] = self.config["model"]
        if self.config.get("temperature") is not None:
            payload["temperature"] = self.config["temperature"]
        if tools and self.tools:
            payload["tools"] = [t.offered() for t in self.tools.values()]
        started = time.perf_counter()
        answer = self.chat(payload)
        usage = answer.get("usage") or {}
        for key in self.tokens:
            self.tokens[key] += usage.get(key) or 0
        self.ctx.trace(
            {
                "kind": "model",
                "turn": self.turns,
                "purpose": purpose,
                "content": _cut(answer.get("content") or "", TRACE_MAX_CHARS),
                "tool_calls": [c["name"] for c in answer.get("tool_calls") or []],
                "finish_reason": answer.get("finish_reason"),
                "tokens": usage,
                "duration_ms": (time.perf_counter() - started) * 1000,
            }
        )
        return answer

    # the conversation ------------------------------------------------------------------------
    def run(self, memory: Memory | None) -> dict[str, Any]:
        config = self.config
        prompt = _as_text(config["prompt"])
        system = _as_text(config.get("system") or "")
        schema = config.get("output_schema")
        if schema is not None:
            system += (
                "\n\nYour final answer must be only a JSON value, no other text, that satisfies "
                f"this JSON schema:\n{json.dumps(schema)}"
            )
        messages: list[dict[str, Any]] = [{"role": "system", "content": system.strip()}]
        if not messages[0]["content"]:
            messages = []
        messages += memory.messages() if memory else []
        messages.append({"role": "user", "content": prompt})
        while True:
            if self.turns >= config["max_iterations"]:
                raise AgentStopped(
                    f"the agent made {self.turns} model turns without a final answer: its "
                    f"limit is {config['max_iterations']} (max iterations)"
                )
            answer = self.ask(messages, tools=True, purpose="answer")
            calls = answer.get("tool_calls") or []
            if not calls:
                break
            if self.calls + len(calls) > config["max_tool_calls"]:
                raise AgentStopped(
                    f"the model asked for tool call {self.calls + len(calls)}; the limit is "
                    f"{config['max_tool_calls']} (max tool calls)"
                )
            messages.append(
                {
                    "role": "assistant",
                    "content": answer.get("content") or "",
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            for call, content in zip(calls, self.run_calls(calls), strict=True):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        text = answer.get("content") or ""
        output: dict[str, Any] = {"answer": text}
        if schema is not None:
            text, output["data"] = self.conform(messages, text, schema)
            output["answer"] = text
        if memory is not None:
            self.remember(memory, prompt, text)
        output.update(
            proposals=self.proposals,
            turns=self.turns,
            tool_calls=self.calls,
            tokens=self.tokens,
            memory_key=memory.key if memory else None,
        )
        return output

    # tool calls ------------------------------------------------------------------------------
    def run_calls(self, calls: list[dict[str, Any]]) -> list[str]:
        """Perform one turn's tool calls; the answers for the model, in the calls' order."""
        self.calls += len(calls)
        answers: list[str | None] = [None] * len(calls)
        concurrent: list[tuple[int, Tool, dict]] = []
        in_order: list[tuple[int, Tool, dict]] = []
        for index, call in enumerate(calls):
            tool = self.tools.get(call["name"])
            refusal, args = self.refusal(call, tool)
            if refusal is not None:
                answers[index] = refusal
                continue
            (in_order if tool.uses_database else concurrent).append((index, tool, args))
        self.check_limits()
        if len(concurrent) > 1:
            with ThreadPoolExecutor(max_workers=min(len(concurrent), PARALLEL_MAX)) as pool:
                futures = [
                    (index, pool.submit(contextvars.copy_context().run, self.perform, tool, args))
                    for index, tool, args in concurrent
                ]
                for index, future in futures:
                    answers[index] = future.result()
        else:
            in_order = concurrent + in_order
        for index, tool, args in in_order:
            answers[index] = self.perform(tool, args)
        return [a or "" for a in answers]

    def refusal(self, call: dict, tool: Tool | None) -> tuple[str | None, dict]:
        """The answer to a call that is not made (unknown tool, bad arguments, "ask first")."""
        name, raw = call["name"], call.get("arguments") or ""
        entry = {"kind": "tool", "name": name, "arguments": _preview(raw), "duration_ms": 0}
        if tool is None:
            offered = ", ".join(self.tools) or "none"
            message = f"There is no tool named {name!r}. The tools you may call are: {offered}."
            self.ctx.trace({**entry, "status": "refused", "error": message})
            self.ctx.log("warning", f"the model called {name!r}, which is not one of its tools")
            return message, {}
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            args = exc
        if not isinstance(args, dict):
            problem = (
                f"not a JSON object ({args})"
                if isinstance(args, ValueError)
                else (f"a JSON {type(args).__name__}, not an object")
            )
            message = (
                f"The arguments of {name} are {problem}. Call it again with a JSON object of its "
                "parameters."
            )
            self.ctx.trace({**entry, "status": "error", "error": message})
            return message, {}
        if tool.ask_first:
            self.proposals.append({"tool": name, "capability": tool.capability, "arguments": args})
            self.ctx.trace({**entry, "arguments": _preview(args), "status": "proposed"})
            return (
                f"Not done: {name} needs a person's approval, so your call was recorded as a "
                "proposal. Do not call it again for the same change; say in your answer what "
                "you proposed.",
                {},
            )
        return None, args

    def perform(self, tool: Tool, args: dict[str, Any]) -> str:
        started = time.perf_counter()
        entry: dict[str, Any] = {"kind": "tool", "name": tool.name, "arguments": _preview(args)}
        if tool.capability:
            entry["capability"] = tool.capability
        try:
            result = tool.run(args)
        except CapabilityError as exc:
            entry.update(status="error", error=exc.message)
            answer = f"The tool failed: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - a tool's failure is the model's to handle
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}")
            answer = f"The tool failed: {type(exc).__name__}: {exc}"
        else:
            entry.update(status="ok", result=_preview(result))
            answer = _cut(_as_text(result), RESULT_MAX_CHARS)
        entry["duration_ms"] = (time.perf_counter() - started) * 1000
        self.ctx.trace(entry)
        return answer

    # the answer ------------------------------------------------------------------------------
    def conform(self, messages: list[dict], text: str, schema: dict) -> tuple[str, Any]:
        """The answer's JSON value, valid for the schema: asked once more with the problem when
        it is not."""
        problem = _schema_problem(text, schema)
        if problem is None:
            return text, parse_json(text)
        self.ctx.log("warning", f"the answer does not match the output schema: {problem}")
        repair = [
            *messages,
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"Your answer does not match the required JSON schema: {problem}. "
                "Answer again with only the corrected JSON value, no other text.",
            },
        ]
        text = self.ask(repair, tools=False, purpose="repair").get("content") or ""
        problem = _schema_problem(text, schema)
        if problem is not None:
            raise AgentStopped(
                f"the agent's answer does not match the output schema, also after one repair "
                f"round: {problem}"
            )
        return text, parse_json(text)

    def remember(self, memory: Memory, prompt: str, answer: str) -> None:
        memory.add(prompt, answer)
        budget = self.config["memory_tokens"]
        oldest = memory.oldest_to_summarise(budget)
        if oldest:
            ask = [{"role": "user", "content": summary_prompt(memory.summary, oldest, budget)}]
            # The answer is given: keeping the memory in shape is not stopped by a budget.
            answer = self.ask(ask, tools=False, purpose="summary", limited=False)
            summary = answer.get("content") or ""
            memory.fold(len(oldest), summary.strip())
        self.ctx.capability("kv.set")({"key": memory.store_key, "value": memory.stored()})


def _schema_problem(text: str, schema: dict) -> str | None:
    try:
        value = parse_json(text)
    except ValueError:
        return "the answer is not JSON"
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message}" + (f" (at {where})" if where else "")
