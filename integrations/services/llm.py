"""LLM: chat completions from any OpenAI-compatible server (OpenAI, Ollama, llama.cpp, LlamaEdge,
vLLM), through the `openai` package with the connection's base URL.

The package's HTTP client is given a transport that sends through the shared HTTP path, so its own
retries are off and ours (bounded, Retry-After aware, worded errors, private-address guard) apply.

Connection config: `base_url` (e.g. https://api.openai.com/v1, http://localhost:11434/v1), `model`
(the default), `context_size` (tokens; when set, the last message is trimmed to fit); secret:
`api_key` (local servers need none).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx
import openai
from django.conf import settings

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from integrations.capabilities import offer
from integrations.services.base import ServiceClient, ServiceError, short_detail

# Token counts are estimated, not tokenized: about four characters a token for English text and
# code, the usual rule of thumb, which keeps the platform free of per-model tokenizer files.
CHARS_PER_TOKEN = 4
TRUNCATION_NOTE = "\n[... truncated to fit the model's context]"
# Chat formats wrap each message in a few tokens of their own.
TOKENS_PER_MESSAGE = 8
ROLES = {"system", "user", "assistant"}
# What servers answer when a model cannot call tools (Ollama, llama.cpp without --jinja, vLLM
# without --enable-auto-tool-choice, OpenAI-compatible gateways).
NO_TOOLS = re.compile(
    r"does not support tools|tools? (is |are )?not supported|tool.?choice requires|"
    r"tools param requires|does not support (function|tool) call",
    re.I,
)
NO_TOOLS_HINT = (
    "An agent needs a model with tool calling: e.g. llama3.1, qwen2.5 or mistral-nemo on Ollama; "
    "llama.cpp's server started with --jinja; vLLM with --enable-auto-tool-choice"
)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def trim_to_budget(text: str, max_tokens: int) -> tuple[str, bool]:
    """`text` cut to about `max_tokens` tokens (4 characters each); True when it was cut.

    A cut text ends with a note saying so, and on a line boundary when one is near the end, so a
    diff is not broken mid-line.
    """
    limit = max(0, max_tokens) * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text, False
    if limit <= len(TRUNCATION_NOTE):
        return text[:limit], True
    cut = text[: limit - len(TRUNCATION_NOTE)]
    newline = cut.rfind("\n")
    if newline >= len(cut) * 0.8:
        cut = cut[:newline]
    return cut + TRUNCATION_NOTE, True


class LLMServer(ServiceClient):
    service = "llm"
    # Chat completions change nothing on the server: resending one is always safe.
    posts_are_idempotent = True

    def __init__(self, config: dict, secrets: dict | None, log=None):
        base_url = (config.get("base_url") or "").strip().rstrip("/")
        if not base_url:
            raise CapabilityError(
                "The LLM connection has no base URL (e.g. https://api.openai.com/v1 or "
                "http://localhost:11434/v1 for Ollama)."
            )
        self.base_url = base_url
        self.api_key = (secrets or {}).get("api_key", "")
        self.name = f"The LLM server at {httpx.URL(base_url).host}"
        super().__init__(
            base_url=base_url,
            headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
            guard=True,
            secrets=[self.api_key],
            log=log,
            timeout=settings.FLOWS_LLM_TIMEOUT_S,
        )

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        status = response.status_code
        detail = short_detail(response)
        code = _error_code(response)
        if status == 401:
            return self.fail(f"{self.name} says the API key is missing or invalid: {detail}.")
        if status in (400, 404, 422, 500, 501) and NO_TOOLS.search(detail):
            return self.fail(
                f"{self.name} says the model cannot call tools: {detail}. {NO_TOOLS_HINT}."
            )
        if status == 403:
            return self.fail(f"{self.name} refused the request: {detail}.")
        if status == 404:
            if "model" in detail.lower():
                return self.fail(f"{self.name} says: {detail}.")
            return self.fail(
                f"{self.name} has no {what or 'such endpoint'} (404): check the base URL, which "
                "usually ends in /v1."
            )
        if status == 429 and code == "insufficient_quota":
            return self.fail(f"{self.name} says the account's quota is used up: {detail}.")
        if status == 400 and ("context" in detail.lower() or code == "context_length_exceeded"):
            return self.fail(
                f"{self.name} says the prompt does not fit the model's context: {detail}. "
                "Set the connection's context size so prompts are trimmed to fit."
            )
        return super().error_for(response, what)

    def openai_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            # The package insists on a key; local servers ignore it.
            api_key=self.api_key or "unused",
            http_client=httpx.Client(transport=SharedPathTransport(self, "/chat/completions")),
            max_retries=0,
            timeout=self.timeout,
        )


class SharedPathTransport(httpx.BaseTransport):
    """Hands the openai package's requests to the shared HTTP path."""

    def __init__(self, service: ServiceClient, what: str):
        self.service = service
        self.what = what

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.service.send(request, what=self.what)


def _error_code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return (error.get("code") or error.get("type") or "") if isinstance(error, dict) else ""


def _messages(payload: dict) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if payload.get("system"):
        messages.append({"role": "system", "content": payload["system"]})
    given = payload.get("messages") or []
    if not isinstance(given, list):
        raise CapabilityError("llm.chat: 'messages' must be a list of {role, content}.")
    for i, message in enumerate(given):
        messages.append(_message(i, message))
    if payload.get("prompt"):
        messages.append({"role": "user", "content": payload["prompt"]})
    if not any(m["role"] == "user" for m in messages):
        raise CapabilityError("llm.chat needs a 'prompt' or 'messages' with a user message.")
    return messages


def _message(i: int, message: Any) -> dict[str, Any]:
    """One message of a conversation: text of a role, an assistant's tool calls, or the answer to
    one tool call."""
    if isinstance(message, dict) and message.get("role") == "tool":
        if isinstance(message.get("tool_call_id"), str) and isinstance(message.get("content"), str):
            return {k: message[k] for k in ("role", "tool_call_id", "content")}
        raise CapabilityError(
            f"llm.chat: message {i + 1} (a tool's answer) must be "
            "{role: tool, tool_call_id: text, content: text}."
        )
    if (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and message.get("tool_calls")
    ):
        calls = message["tool_calls"]
        if not isinstance(calls, list) or not all(_is_tool_call(c) for c in calls):
            raise CapabilityError(
                f"llm.chat: message {i + 1} has tool calls that are not "
                "{id, type: function, function: {name, arguments}}."
            )
        return {"role": "assistant", "content": message.get("content") or "", "tool_calls": calls}
    if (
        not isinstance(message, dict)
        or message.get("role") not in ROLES
        or not isinstance(message.get("content"), str)
    ):
        raise CapabilityError(
            f"llm.chat: message {i + 1} must be {{role: system|user|assistant, content: text}}."
        )
    return {"role": message["role"], "content": message["content"]}


def _is_tool_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (
        isinstance(call.get("id"), str)
        and isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments"), str)
    )


def message_tokens(message: dict[str, Any]) -> int:
    """A message's estimated size, its tool calls included."""
    size = estimate_tokens(message.get("content") or "")
    if message.get("tool_calls"):
        size += estimate_tokens(json.dumps(message["tool_calls"]))
    return size


def fit_context(
    messages: list[dict[str, str]], context_size: int, max_tokens: int | None
) -> tuple[list[dict[str, str]], str]:
    """Trim the last message so the prompt and the answer fit the context; say what was done."""
    reserve = max_tokens or min(1024, context_size // 4)
    budget = context_size - reserve - TOKENS_PER_MESSAGE * len(messages)
    used = sum(message_tokens(m) for m in messages)
    if used <= budget:
        return messages, ""
    others = used - message_tokens(messages[-1])
    room = budget - others
    if room <= 0:
        raise CapabilityError(
            f"llm.chat: the messages before the last need about {others} tokens, more than the "
            f"{budget} the model's context of {context_size} leaves after {reserve} for the answer."
        )
    text, _ = trim_to_budget(messages[-1]["content"], room)
    trimmed = [*messages[:-1], {**messages[-1], "content": text}]
    note = (
        f"Trimmed the last message from about {estimate_tokens(messages[-1]['content'])} to "
        f"{room} tokens to fit the model's context of {context_size} tokens."
    )
    return trimmed, note


def chat(ctx: CapabilityContext, payload: dict) -> dict:
    config = ctx.connection_config or {}
    forced = (ctx.limits or {}).get("model")
    model = payload.get("model") or forced or config.get("model")
    if not model:
        raise CapabilityError("llm.chat needs a 'model', or a default model in the connection.")
    if forced and model != forced:
        raise CapabilityError(f"This step may use only the model {forced}, not {model}.")
    messages = _messages(payload)
    truncated = False
    context_size = int(config.get("context_size") or 0)
    if context_size > 0:
        messages, note = fit_context(messages, context_size, payload.get("max_tokens"))
        if note:
            truncated = True
            ctx.log("warning", note)
    options: dict[str, Any] = {}
    if "temperature" in payload:
        options["temperature"] = payload["temperature"]
    if "max_tokens" in payload:
        options["max_tokens"] = payload["max_tokens"]
    if payload.get("tools"):
        options["tools"] = _tools(payload["tools"])
    with LLMServer(config, ctx.secrets, ctx.log) as server, server.openai_client() as client:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=messages, **options
            )
        except openai.OpenAIError as exc:
            raise server.fail(
                f"{server.name} gave an answer that is not a chat completion: {exc}",
                retryable=True,
            ) from None
        answer = read_completion(server, raw.http_response, model)
    content, usage = answer["content"], answer["usage"]
    if usage is None:
        # Some servers leave usage out: count by the same estimate used for trimming.
        prompt = sum(message_tokens(m) for m in messages)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": estimate_tokens(content),
            "total_tokens": prompt + estimate_tokens(content),
        }
    ctx.record_usage(usage)
    result = {
        "content": content,
        "model": answer["model"],
        "usage": usage,
        "finish_reason": answer["finish_reason"],
        "truncated": truncated,
    }
    if answer["tool_calls"]:  # only answers to calls that offered tools have them
        result["tool_calls"] = answer["tool_calls"]
    return result


def _tools(tools: Any) -> list[dict[str, Any]]:
    """The tools offered to the model, checked: OpenAI's function tools."""
    if not isinstance(tools, list):
        raise CapabilityError("llm.chat: 'tools' must be a list of function tools.")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("type") != "function"
            or not isinstance(function.get("name"), str)
            or not TOOL_NAME.match(function["name"])
        ):
            raise CapabilityError(
                f"llm.chat: tool {i + 1} must be {{type: function, function: {{name, description, "
                "parameters}}}} with a name of letters, digits, _ and - (at most 64)."
            )
    return tools


TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _tool_calls(message: dict) -> list[dict[str, Any]] | None:
    """The tool calls of an answer as {id, name, arguments (the model's text)}; None when they
    are malformed beyond use."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        return None
    found = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return None
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments)  # some servers send an object, not its text
        found.append(
            {
                "id": str(call.get("id") or f"call_{len(found) + 1}"),
                "name": function["name"],
                "arguments": arguments if isinstance(arguments, str) else "",
            }
        )
    return found


def read_completion(server: LLMServer, response: httpx.Response, model: str) -> dict[str, Any]:
    """The content, model, finish reason and usage of a chat completion answer.

    Anything else (HTML from a proxy, an empty body, JSON of another shape) is a retryable error
    that says what came back: such answers come from overloaded or restarting servers and
    gateways, which usually answer properly a moment later.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        message = None
    tool_calls = _tool_calls(message) if isinstance(message, dict) else None
    if tool_calls is None:
        message = None
    if not isinstance(message, dict):
        raise server.fail(
            f"{server.name} gave an answer that is not a chat completion for model {model}: "
            f"{_describe_body(response)}.",
            retryable=True,
            status=response.status_code,
        )
    usage = body.get("usage")
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    if not (isinstance(usage, dict) and all(isinstance(usage.get(k), int) for k in counts)):
        usage = None
    return {
        "content": content or "",
        "model": body.get("model") if isinstance(body.get("model"), str) else model,
        "finish_reason": first.get("finish_reason"),
        "usage": {k: usage[k] for k in counts} if usage else None,
        "tool_calls": tool_calls,
    }


def _describe_body(response: httpx.Response) -> str:
    text = response.text.strip()
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    if not text:
        return f"an empty body ({kind})"
    if text.startswith("<"):
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        named = f" titled “{' '.join(title.group(1).split())[:100]}”" if title else ""
        return f"an HTML page{named}"
    try:
        json.loads(text)
    except ValueError:
        return f"text that is not JSON ({kind}): “{' '.join(text.split())[:100]}”"
    return f"JSON without a message in choices: “{' '.join(text.split())[:100]}”"


offer(
    "llm.chat",
    service="llm",
    title="LLM: chat",
    description=(
        "Ask a chat model (OpenAI or any OpenAI-compatible server such as Ollama or llama.cpp) "
        "and get its answer. Token usage is recorded on the step."
    ),
    params=(
        Param("prompt", "text", label="Prompt", description="the user message"),
        Param("system", "text", label="System prompt", description="instructions for the model"),
        Param(
            "messages",
            "json",
            label="Messages",
            description="the conversation: a list of {role, content}, before the prompt",
        ),
        Param("model", "string", label="Model", description="defaults to the connection's model"),
        Param("temperature", "number", label="Temperature", description="0 to 2"),
        Param("max_tokens", "integer", label="Max tokens", description="longest answer"),
        Param(
            "tools",
            "json",
            label="Tools",
            description="functions the model may ask to call: a list of {type: function, "
            "function: {name, description, parameters}}; their calls come back in tool_calls",
        ),
    ),
    result=(
        "{content, model, usage: {prompt_tokens, completion_tokens, total_tokens}, "
        "finish_reason, truncated, tool_calls: [{id, name, arguments}]}"
    ),
)(chat)


def info(ctx: CapabilityContext, payload: dict) -> dict:
    """What the bound LLM connection says about its model, without a call to the server: steps
    that cut text for the model size it by the connection's context, not by a guess."""
    config = ctx.connection_config or {}
    try:
        context_size = int(config.get("context_size") or 0)
    except (TypeError, ValueError):
        context_size = 0
    return {
        "model": (ctx.limits or {}).get("model") or config.get("model") or "",
        "context_size": context_size if context_size > 0 else None,
    }


offer(
    "llm.info",
    service="llm",
    title="LLM: connection info",
    description=(
        "The LLM connection's default model and context size in tokens (null when the "
        "connection does not say), to size prompts; asks the server nothing."
    ),
    params=(),
    result="{model, context_size}",
)(info)


def test(config: dict, secrets: dict) -> tuple[bool, str]:
    """One cheap real call: the models the server offers."""
    with LLMServer(config, secrets) as server:
        body = server.request("GET", "/models", what="/models").json()
    models = [m.get("id", "") for m in body.get("data", []) if isinstance(m, dict)]
    listed = ", ".join(models[:10]) + (f" and {len(models) - 10} more" if len(models) > 10 else "")
    wanted = config.get("model")
    if wanted and wanted not in models:
        return False, (
            f"Connected, but the server does not offer the model {wanted}; "
            f"it offers: {listed or 'no models'}."
        )
    return True, f"Connected: the server offers {len(models)} model(s): {listed}."
