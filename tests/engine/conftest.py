"""Fixtures of the engine tests: users, flows built from documents, and runs executed inline.

In-process tests execute runs inline (FLOWS_EXECUTOR="inline"): the same executor code the
Celery task and the embedded threads call, on the test's own database connection. The real
worker, server and threads are exercised by tests/engine/test_live.py through subprocesses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from flows.capabilities import REGISTRY, CapabilityContext, CapabilityError
from flows.capabilities import register as register_capability
from flows.catalog import CATALOG, Block, register_block
from flows.compiler import deploy
from flows.models import Flow, Run

WEBHOOK_DOC: dict[str, Any] = {
    "schema": "flowbuilder/flow@1",
    "name": "Greeter",
    "trigger": {"kind": "trigger.webhook", "config": {}},
    "settings": {"greeting": {"value": "Hello", "description": "first word"}},
    "connections": {},
    "steps": [
        {
            "id": "only_named",
            "kind": "logic.filter",
            "config": {"condition": "{{ event.body.name }}", "reason": "no name given"},
        },
        {
            "id": "greet",
            "kind": "logic.template",
            "config": {"template": "{{ settings.greeting }}, {{ event.body.name }}!"},
        },
    ],
    "edges": [["trigger", "only_named"], ["only_named", "greet"]],
}


def document(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(WEBHOOK_DOC)
    doc.update(copy.deepcopy(changes))
    return doc


@pytest.fixture(autouse=True)
def inline_runs(settings):
    settings.FLOWS_EXECUTOR = "inline"
    settings.FLOWS_STEP_RETRY_BACKOFF_S = 0.01
    # Users are made in most tests: the slow default hasher would dominate their time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("ada", password="pw-ada-12345")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", password="pw-bob-12345")


@pytest.fixture
def make_flow(user) -> Callable[..., Flow]:
    def make(doc: dict | None = None, *, owner=None, deployed: bool = True, **fields) -> Flow:
        doc = doc if doc is not None else document()
        owner = owner or user
        flow = Flow.objects.create(
            owner=owner,
            name=doc.get("name", "Flow"),
            slug=fields.pop("slug", f"flow-{Flow.objects.count() + 1}"),
            document=doc,
            **fields,
        )
        if deployed:
            deploy(flow, owner)
            flow.refresh_from_db()
        return flow

    return make


def last_run(flow: Flow) -> Run:
    return Run.objects.filter(flow=flow).order_by("-id").first()


@pytest.fixture
def secret_service() -> Iterator[None]:
    """A capability (and block) of service "vault" that leaks its connection's secret."""

    @register_capability("test.vault.read", service="vault", description="Leaky.")
    def read(ctx: CapabilityContext, payload: Any) -> Any:
        ctx.log("info", f"authenticating with {ctx.secrets['token']}")
        ctx.record_usage({"total_tokens": 7})
        raise CapabilityError(f"vault refused token {ctx.secrets['token']}")

    register_block(
        Block(
            kind="test.vault.read",
            category="integration",
            title="Vault read",
            description="Reads from the vault.",
            capabilities=("test.vault.read",),
            service="vault",
            execute=lambda config, ctx: ctx.capability("test.vault.read")({}),
        )
    )
    yield
    CATALOG.pop("test.vault.read")
    REGISTRY.pop("test.vault.read")
