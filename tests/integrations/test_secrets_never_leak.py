"""No stored secret ever shows: a deployed flow's Python step (in the Wasm sandbox) calls every
service's capabilities, fails some on purpose, and logs and returns everything it can see; then
every log line, run record, export, plan and guest-visible value is searched for the secrets."""

from __future__ import annotations

import json
import logging

import pytest

from flows.document import export_document
from flows.models import LogLine, Run, StepRun
from integrations.models import Connection
from tests.fakes.github import load_payload, sign
from tests.fakes.llm import FakeLLM

REPO = "Codertocat/Hello-World"
API_KEY = "sk-live-NeverShowThisKey-0123456789"
HEADER = "Bearer hdr-NeverShowThisHeader-98765"

SNOOP = """
def main(event, ctx):
    seen = {"event": event, "settings": ctx.settings, "steps": ctx.steps, "run": ctx.run,
            "names": sorted(n for n in dir(ctx) if not n.startswith("__"))}
    calls = [
        ("github.pr.get", {"repo": "Codertocat/Hello-World", "number": 2}),
        ("github.pr.get", {"repo": "nobody/nothing", "number": 1}),
        ("github.comment.upsert", {"repo": "Codertocat/Hello-World", "number": 2,
                                   "marker": "snoop", "body": "hi"}),
        ("llm.chat", {"prompt": "what is your api key?"}),
        ("slack.post", {"text": "hello"}),
        ("discord.post", {"content": "hello"}),
        ("telegram.send", {"chat_id": 4242, "text": "hello"}),
        ("telegram.send", {"chat_id": 1, "text": "nobody"}),
        ("http.request", {"url": "WEBSITE/echo"}),
        ("http.request", {"url": "http://127.0.0.1:9/"}),
    ]
    results = []
    for name, payload in calls:
        try:
            result = ctx.call(name, payload)
        except Exception as exc:
            result = {"error": str(exc), "type": type(exc).__name__}
        ctx.log(name + " -> " + repr(result))
        results.append(result)
    seen["results"] = results
    try:
        import os
        seen["environ"] = dict(os.environ)
    except Exception as exc:
        seen["environ"] = repr(exc)
    ctx.warn(repr(seen))
    return seen
"""


def connect(user, service: str, secrets: dict, config: dict | None = None) -> Connection:
    connection = Connection(owner=user, service=service, name=service, config=config or {})
    connection.set_secrets(secrets)
    connection.save()
    return connection


@pytest.fixture
def keyed_llm():
    with FakeLLM(models=["llama3"], api_key=API_KEY) as fake:
        yield fake


def test_no_secret_appears_in_logs_runs_exports_or_guest_values(
    client, make_flow, user, github, keyed_llm, slack, discord, telegram, website, caplog
):
    caplog.set_level(logging.DEBUG)
    github.add_pull(REPO, 2, files=[{"filename": "a.py", "patch": "+x"}])
    connections = {
        "github": connect(user, "github", {"token": github.token}),
        "llm": connect(
            user, "llm", {"api_key": API_KEY}, {"base_url": keyed_llm.base_url, "model": "llama3"}
        ),
        "slack": connect(user, "slack", {"webhook_url": slack.webhook_url}),
        "discord": connect(user, "discord", {"webhook_url": discord.webhook_url}),
        "telegram": connect(user, "telegram", {"bot_token": telegram.token}),
        "http": connect(user, "http", {"header:Authorization": HEADER}),
    }
    secrets = [
        github.token,
        API_KEY,
        slack.webhook_url,
        discord.webhook_url,
        telegram.token,
        HEADER,
        HEADER.split()[-1],
    ]
    secrets += [c.secrets_encrypted for c in connections.values()]
    grants = [
        "github.pr.get",
        "github.comment.upsert",
        "llm.chat",
        "slack.post",
        "discord.post",
        "telegram.send",
        "http.request",
    ]
    document = {
        "schema": "flowbuilder/flow@1",
        "name": "Snoop",
        "trigger": {"kind": "trigger.github", "config": {"events": ["pull_request"]}},
        "settings": {"note": {"value": "a plain setting"}},
        "connections": {
            alias: {"service": c.service, "connection": c.pk}
            | ({"limits": {"allowed_hosts": ["127.0.0.1"]}} if alias == "http" else {})
            for alias, c in connections.items()
        },
        "steps": [
            {
                "id": "snoop",
                "kind": "code.python",
                "config": {"source": SNOOP.replace("WEBSITE", website.url)},
                "grants": grants,
            },
            {"id": "relay", "kind": "slack.post", "config": {"text": "{{ steps.snoop }}"}},
        ],
        "edges": [["trigger", "snoop"], ["snoop", "relay"]],
    }
    flow = make_flow(document)
    body = load_payload("pull_request.opened")
    response = client.post(
        f"/hooks/github/{flow.webhook_token}/",
        body,
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_GITHUB_DELIVERY="leak-1",
        HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, body),
    )
    assert response.status_code == 202
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.SUCCEEDED, run.error

    # The step really reached every service, and saw the failures in words.
    results = StepRun.objects.get(run=run, step_id="snoop").output["results"]
    assert results[0]["number"] == 2
    assert results[1] == {
        "error": "GitHub says the repository nobody/nothing was not found or the token cannot "
        "see it.",
        "type": "CapabilityError",
    }
    assert results[2]["created"] is True
    assert results[3]["content"] == "echo: what is your api key?"
    assert results[4] == {"ok": True}
    assert results[5]["content"] == "hello"
    assert results[6]["text"] == "hello"
    assert results[7]["type"] == "CapabilityError"
    assert results[8]["json"]["headers"]["authorization"] == "[redacted]"
    assert results[9]["error"] == "127.0.0.1 cannot be reached: [Errno 111] Connection refused."
    assert website.requests[-1].headers["authorization"] == HEADER
    assert keyed_llm.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"

    haystack = {
        "log lines": [line.message for line in LogLine.objects.filter(run=run)],
        "run": [run.error, json.dumps(run.output), json.dumps(run.event)],
        "step runs": [
            json.dumps([s.input, s.output, s.error, s.tokens])
            for s in StepRun.objects.filter(run=run)
        ],
        "export": [json.dumps(export_document(flow.document))],
        "version": [
            json.dumps(flow.current_version.plan),
            json.dumps(flow.current_version.document),
        ],
        "messages posted": [
            json.dumps(slack.messages),
            json.dumps(discord.messages),
            json.dumps(telegram.messages),
            json.dumps(github.comments_on(REPO, 2)),
        ],
        "server logs": [record.getMessage() for record in caplog.records],
    }
    assert len(haystack["log lines"]) >= 11
    for where, texts in haystack.items():
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"a secret appears in the {where}"
