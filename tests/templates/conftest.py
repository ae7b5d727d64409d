"""Fixtures of the template tests: the fake services, a user whose connections point at them, and
helpers that take a template from "use template" through deploy to runs started by real webhook
deliveries.

Runs execute inline (FLOWS_EXECUTOR="inline"): the engine's own executor, called by start_run
inside the webhook request, with the real sandbox and capabilities. test_template_worker.py runs
the flagship through a real Celery worker process when the suite runs in distributed mode.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from flows.compiler import deploy
from flows.models import Flow
from gallery.registry import use_template
from integrations.models import Connection
from tests.fakes.github import sign
from tests.templates.support import FeedGitHub, ScriptedLLM, connect


@pytest.fixture(scope="session", autouse=True)
def python_runner() -> None:
    """The Python step interpreter component (a fast no-op when it is up to date)."""
    from flows.sandbox.build import build_runner

    build_runner(out=lambda line: None)


@pytest.fixture(autouse=True)
def product_settings(settings) -> None:
    settings.FLOWS_EXECUTOR = "inline"
    # The fakes listen on 127.0.0.1, which outbound requests refuse unless allowed.
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = True
    settings.FLOWS_HTTP_BACKOFF_S = 0.01
    settings.FLOWS_STEP_RETRY_BACKOFF_S = 0.01


@pytest.fixture
def github(settings) -> Iterator[FeedGitHub]:
    with FeedGitHub() as fake:
        settings.FLOWS_GITHUB_API_URL = fake.url
        yield fake


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(models=["llama3"], context_size=2048) as fake:
        yield fake


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("ada", password="pw-ada-12345")


@pytest.fixture
def github_connection(user, github) -> Connection:
    return connect(user, "github", "GitHub", {}, {"token": github.token})


@pytest.fixture
def llm_connection(user, llm) -> Connection:
    return connect(user, "llm", "Local model", {"base_url": llm.base_url, "model": "llama3"}, {})


@pytest.fixture
def from_template(user) -> Callable[..., Flow]:
    """Use a template, fill in its settings, bind its connections, deploy it."""

    def make(slug: str, settings: dict[str, Any], **changes: Callable[[dict], None]) -> Flow:
        flow = use_template(slug, user)
        document = copy.deepcopy(flow.document)
        for name, value in settings.items():
            document["settings"][name]["value"] = value
        for change in changes.values():
            change(document)
        unbound = [a for a, c in document["connections"].items() if c["connection"] is None]
        assert not unbound, f"use_template left connections unbound: {unbound}"
        flow.document = document
        flow.save()
        deploy(flow, user, note="from the template")
        flow.refresh_from_db()
        return flow

    return make


@pytest.fixture
def deliver(client: Client) -> Callable[..., dict]:
    """POST a GitHub webhook delivery, signed with the flow's secret, to its hook URL."""

    def send(flow: Flow, event: str, body: dict, delivery: str | None = None) -> dict:
        raw = json.dumps(body).encode()
        response = client.post(
            f"/hooks/github/{flow.webhook_token}/",
            data=raw,
            content_type="application/json",
            HTTP_X_GITHUB_EVENT=event,
            HTTP_X_GITHUB_DELIVERY=delivery or str(uuid.uuid4()),
            HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, raw),
        )
        assert response.status_code in (200, 202), response.content
        return response.json()

    return send
