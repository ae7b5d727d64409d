"""Helpers of the template tests: real webhook payloads, scripted fakes, runs and their logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flows.models import LogLine, Run
from integrations.models import Connection
from tests.fakes.base import Answer, Recorded
from tests.fakes.github import FakeGitHub, load_payload
from tests.fakes.llm import FakeLLM

REPO = "octo/hello"


def payload(name: str) -> dict[str, Any]:
    """A real GitHub webhook payload (tests/fakes/payloads/<name>.json), to adapt per test."""
    return json.loads(load_payload(name))


class ScriptedLLM(FakeLLM):
    """The fake LLM answering each chat with `respond(messages)`: a text, or an Answer (an error)."""

    def __init__(self, **kwargs: Any):
        self.respond: Callable[[list[dict]], str | Answer] | None = None
        super().__init__(**kwargs)

    def complete(self, request: Recorded) -> Answer:
        answer = super().complete(request)
        if answer.status != 200 or self.respond is None:
            return answer
        reply = self.respond(request.json["messages"])
        if isinstance(reply, Answer):
            return reply
        answer.body["choices"][0]["message"]["content"] = reply
        return answer


class FeedGitHub(FakeGitHub):
    """The fake GitHub plus GET /repos/{owner}/{name}/issues (issues and pull requests)."""

    def __init__(self) -> None:
        self.listing: list[dict[str, Any]] = []
        super().__init__()

    def routes(self):
        return [
            ("GET", r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/issues", self.list_issues),
            *super().routes(),
        ]

    def list_issues(self, request: Recorded, owner: str, name: str) -> Answer:
        since = request.query.get("since", "")
        return Answer(200, [i for i in self.listing if i["updated_at"] >= since])


def connect(user, service: str, name: str, config: dict, secrets: dict) -> Connection:
    connection = Connection(owner=user, service=service, name=name, config=config)
    connection.set_secrets(secrets)
    connection.save()
    return connection


def run_of(answer: dict) -> Run:
    """The run a webhook answer started (inline: already finished)."""
    assert "run" in answer, answer
    return Run.objects.get(pk=answer["run"])


def log_of(run: Run, level: str | None = None) -> list[str]:
    lines = LogLine.objects.filter(run=run)
    if level:
        lines = lines.filter(level=level)
    return [f"{line.step_id}: {line.message}" for line in lines]
