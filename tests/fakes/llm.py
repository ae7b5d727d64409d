"""A fake OpenAI-compatible server (as OpenAI, Ollama, llama.cpp and vLLM speak it): /v1/models and
/v1/chat/completions with usage counts, an optional API key, a context limit, and OpenAI's error
bodies.

    with FakeLLM(models=["llama3"]) as llm:
        config = {"base_url": llm.base_url, "model": "llama3"}
        llm.replies.append("Looks good.")     # next answers, in order; else it echoes the prompt
"""

from __future__ import annotations

import math
import time

from tests.fakes.base import Answer, FakeServer, Recorded


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


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
        self.replies: list[str] = []
        # Seconds each completion takes, and the most completions served at the same time.
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
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

    def dispatch(self, request: Recorded) -> Answer:
        # The model's latency, outside the lock the answers are made under, so calls overlap.
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self.answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

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
        return super().dispatch(request)

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
        prompt = sum(tokens(m.get("content") or "") for m in messages)
        if self.context_size is not None and prompt > self.context_size:
            return openai_error(
                400,
                f"This model's maximum context length is {self.context_size} tokens. However, "
                f"your messages resulted in {prompt} tokens.",
                "context_length_exceeded",
            )
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        content = self.replies.pop(0) if self.replies else f"echo: {last[:200]}"
        completion = tokens(content)
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
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )
