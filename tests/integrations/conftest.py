"""Fixtures for the integrations tests: the fake services, pointed at through settings and
connection config, and a recorder of what capabilities log and report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from flows.compiler import deploy
from flows.models import Flow
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import FakeLLM
from tests.fakes.web import FakeWebsite
from tests.integrations.support import Recorder


@pytest.fixture(autouse=True)
def quick_retries(settings) -> None:
    # The fakes listen on 127.0.0.1, which outbound requests refuse unless allowed.
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = True
    settings.FLOWS_HTTP_BACKOFF_S = 0.01
    # Runs execute in the caller, so a test sees a run's outcome as soon as it is started.
    settings.FLOWS_EXECUTOR = "inline"
    settings.FLOWS_STEP_RETRY_BACKOFF_S = 0.01


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("ada")


@pytest.fixture
def make_flow(user):
    """A flow of `user` with this document, deployed unless deployed=False."""

    def make(document: dict, *, deployed: bool = True) -> Flow:
        flow = Flow.objects.create(
            owner=user,
            name=document.get("name", "Flow"),
            slug=f"flow-{Flow.objects.count() + 1}",
            document=document,
        )
        if deployed:
            deploy(flow, user)
            flow.refresh_from_db()
        return flow

    return make


@pytest.fixture
def github(settings) -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        settings.FLOWS_GITHUB_API_URL = fake.url
        yield fake


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(models=["llama3", "qwen2.5-coder"]) as fake:
        yield fake


@pytest.fixture
def website() -> Iterator[FakeWebsite]:
    with FakeWebsite() as fake:
        yield fake


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
