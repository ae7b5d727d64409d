"""A fake OpenAI-compatible server (as OpenAI, Ollama, llama.cpp and vLLM speak it): /v1/models and
/v1/chat/completions with usage counts, an optional API key, a context limit, OpenAI's error
bodies, and tool calling (`tools` in, `tool_calls` out).

    with FakeLLM(models=["llama3"]) as llm:
        config = {"base_url": llm.base_url, "model": "llama3"}
        llm.replies.append("Looks good.")     # next answers, in order; else it echoes the prompt
        llm.replies.append(calls(("github_file_read", {"path": "README.md"})))   # a tool call
        llm.no_tools.add("gemma")             # a model that refuses `tools`, as Ollama's do

A reply may also be a function of the request body (a scripted conversation that looks at what
the tools answered), returning text, `calls(...)` or an Answer (an error).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import Answer, FakeServer, Recorded


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass
class ToolCalls:
    """An answer asking for tool calls: (name, arguments) each; arguments given as text are sent
    as they are (malformed JSON, for one)."""

    calls: list[tuple[str, Any]]
    content: str | None = None
    ids: list[str] = field(default_factory=list)


def calls(*pairs: tuple[str, Any], content: str | None = None) -> ToolCalls:
    return ToolCalls(list(pairs), content)


Reply = str | ToolCalls | Answer | Callable[[dict], "str | ToolCalls | Answer"]


def openai_error(status: int, message: str, code: str, kind: str = "invalid_request_error"):
    return Answer(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


class FakeLLM(FakeServer):
    def __init__(
        self,
        models: list[str] | None = None,
        api_key: str | None = None,
        context_size: int | None = None,
    ):
        self.models = list(models or ["llama3"])
        self.api_key = api_key
        self.context_size = context_size
        self.replies: list[Reply] = []
        # Models that refuse requests with `tools` (Ollama's answer for models without them).
        self.no_tools: set[str] = set()
        self.next_call = 0
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def chats(self) -> list[dict]:
        """The bodies of every chat completion request, in order."""
        return [r.json for r in self.requests_to("POST", r"/v1/chat/completions")]

    def routes(self):
        return [
            ("GET", r"/v1/models", self.list_models),
            ("POST", r"/v1/chat/completions", self.complete),
        ]

    def not_found(self, request: Recorded) -> Answer:
        return Answer(404, "404 page not found")

    def answer(self, request: Recorded) -> Answer:
        if self.api_key is not None:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                with self.lock:
                    self.requests.append(request)
                return openai_error(
                    401,
                    "Incorrect API key provided. You can find your API key in your account.",
                    "invalid_api_key",
                )
        return super().answer(request)

    def rate_limit_next(self, retry_after: int = 1, *, times: int = 1) -> None:
        self.fail_next(
            429,
            {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            headers={"Retry-After": str(retry_after)},
            times=times,
        )

    def list_models(self, request: Recorded) -> Answer:
        return Answer(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "library"}
                    for m in self.models
                ],
            },
        )

    def complete(self, request: Recorded) -> Answer:
        body = request.json
        model = body.get("model")
        if model not in self.models:
            return openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "model_not_found",
            )
        messages = body.get("messages") or []
        if body.get("tools") and model in self.no_tools:
            return Answer(
                400,
                {
                    "error": {
                        "message": f"registry.ollama.ai/library/{model}:latest does not support "
                        "tools",
                        "type": "api_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        prompt = sum(
            tokens(m.get("content") or "")
            + (tokens(json.dumps(m["tool_calls"])) if m.get("tool_calls") else 0)
            for m in messages
        ) + (tokens(json.dumps(body["tools"])) if body.get("tools") else 0)
        if self.context_size is not None and prompt > self.context_size:
            return openai_error(
                400,
                f"This model's maximum context length is {self.context_size} tokens. However, "
                f"your messages resulted in {prompt} tokens.",
                "context_length_exceeded",
            )
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        reply: Reply = self.replies.pop(0) if self.replies else f"echo: {last[:200]}"
        if callable(reply):
            reply = reply(body)
        if isinstance(reply, Answer):
            return reply
        message: dict[str, Any] = {"role": "assistant", "content": reply}
        finish = "stop"
        if isinstance(reply, ToolCalls):
            message = {"role": "assistant", "content": reply.content, "tool_calls": []}
            for name, arguments in reply.calls:
                self.next_call += 1
                text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                message["tool_calls"].append(
                    {
                        "id": f"call_{self.next_call}",
                        "type": "function",
                        "function": {"name": name, "arguments": text},
                    }
                )
            finish = "tool_calls"
        completion = tokens(message["content"] or "")
        if message.get("tool_calls"):
            completion += tokens(json.dumps(message["tool_calls"]))
        return Answer(
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )
