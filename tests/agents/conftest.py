"""Fixtures of the agent tests: the fake LLM (which speaks tool calling) and fake GitHub, a user
whose connections point at them, and agent flows built from a few fields.

Runs execute inline (FLOWS_EXECUTOR="inline") unless a test says otherwise: the engine's own
executor, with the real capabilities, sandbox and key-value store. test_agent_modes.py runs the
scripted conversations on the executor a deployment uses (embedded threads, or a Celery worker
in distributed mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from flows.compiler import deploy
from flows.models import Flow
from integrations.models import Connection
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import FakeLLM

REPO = "octo/hello"


@pytest.fixture(scope="session", autouse=True)
def python_runner() -> None:
    """The Python step interpreter component, for code tools (a no-op when up to date)."""
    from flows.sandbox.build import build_runner

    build_runner(out=lambda line: None)


@pytest.fixture(autouse=True)
def product_settings(settings) -> None:
    settings.FLOWS_EXECUTOR = "inline"
    # The fakes listen on 127.0.0.1, which outbound requests refuse unless allowed.
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = True
    settings.FLOWS_HTTP_BACKOFF_S = 0.01
    settings.FLOWS_STEP_RETRY_BACKOFF_S = 0.01
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(models=["llama3.1", "gemma"]) as fake:
        yield fake


@pytest.fixture
def github(settings) -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        settings.FLOWS_GITHUB_API_URL = fake.url
        fake.add_repo(REPO)
        yield fake


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("ada", password="pw-ada-12345")


def connect(user, service: str, config: dict, secrets: dict) -> Connection:
    connection = Connection(owner=user, service=service, name=service, config=config)
    connection.set_secrets(secrets)
    connection.save()
    return connection


@pytest.fixture
def llm_connection(user, llm) -> Connection:
    return connect(user, "llm", {"base_url": llm.base_url, "model": "llama3.1"}, {"api_key": ""})


@pytest.fixture
def github_connection(user, github) -> Connection:
    return connect(user, "github", {}, {"token": github.token})


def agent_document(config: dict[str, Any], connections: dict[str, int], **extra: Any) -> dict:
    """A flow of one agent step (manual trigger), its connections bound by service."""
    return {
        "schema": "flowbuilder/flow@2",
        "name": extra.pop("name", "Assistant"),
        "description": extra.pop("description", "Answers questions."),
        "trigger": {"kind": "trigger.manual", "config": {"sample_event": {}}},
        "settings": extra.pop("settings", {}),
        "connections": {
            service: {"service": service, "connection": pk} for service, pk in connections.items()
        },
        "steps": [{"id": "agent", "kind": "llm.agent", "config": config}],
        "edges": [["trigger", "out", "agent"]],
        **extra,
    }


@pytest.fixture
def agent_flow(user, llm_connection) -> Callable[..., Flow]:
    """Deploy a flow of one agent step with this config (and these other connections)."""

    def make(config: dict[str, Any], *, connections: dict[str, Connection] | None = None, **extra):
        bound = {"llm": llm_connection.pk}
        bound.update({s: c.pk for s, c in (connections or {}).items()})
        document = agent_document(config, bound, **extra)
        flow = Flow.objects.create(
            owner=user,
            name=document["name"],
            slug=f"flow-{Flow.objects.count() + 1}",
            description=document["description"],
            document=document,
        )
        deploy(flow, user)
        flow.refresh_from_db()
        return flow

    return make


@pytest.fixture
def make_helper_flow(user) -> Callable[[], Flow]:
    """A deployed flow another flow's agent may call: it greets the name it is given."""

    def make() -> Flow:
        document = {
            "schema": "flowbuilder/flow@2",
            "name": "Greeter",
            "description": "Says hello to a name.",
            "trigger": {"kind": "trigger.manual", "config": {"sample_event": {"name": "Ada"}}},
            "settings": {},
            "connections": {},
            "steps": [
                {
                    "id": "greet",
                    "kind": "logic.template",
                    "config": {"template": "Hello {{ event.name }}"},
                }
            ],
            "edges": [["trigger", "out", "greet"]],
        }
        flow = Flow.objects.create(
            owner=user,
            name="Greeter",
            slug="greeter",
            description="Says hello to a name.",
            document=document,
        )
        deploy(flow, user)
        flow.refresh_from_db()
        return flow

    return make
