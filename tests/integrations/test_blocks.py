"""No-code integration blocks, end to end: a signed GitHub delivery starts a deployed flow whose
blocks call every service (fake servers), with templates over the event and earlier steps."""

from __future__ import annotations

import pytest

from flows.catalog import get_block
from flows.models import Run, StepRun
from integrations.models import Connection
from tests.fakes.github import load_payload, sign

REPO = "Codertocat/Hello-World"


def connect(user, service: str, name: str, secrets: dict, config: dict | None = None) -> int:
    connection = Connection(owner=user, service=service, name=name, config=config or {})
    connection.set_secrets(secrets)
    connection.save()
    return connection.pk


@pytest.fixture
def services(user, github, llm, slack, discord, website):
    github.add_pull(
        REPO,
        2,
        title="Update the README",
        files=[
            {"filename": "README.md", "status": "modified", "patch": "+hello"},
            {"filename": "docs/a.md", "status": "added", "patch": "+a"},
        ],
    )
    llm.replies.append("Two files changed; nothing risky.")
    return {
        "github": {
            "service": "github",
            "connection": connect(user, "github", "GH", {"token": github.token}),
        },
        "llm": {
            "service": "llm",
            "connection": connect(
                user, "llm", "LLM", {}, {"base_url": llm.base_url, "model": "llama3"}
            ),
        },
        "slack": {
            "service": "slack",
            "connection": connect(user, "slack", "Slack", {"webhook_url": slack.webhook_url}),
        },
        "discord": {
            "service": "discord",
            "connection": connect(user, "discord", "Discord", {"webhook_url": discord.webhook_url}),
        },
        "web": {
            "service": "http",
            "connection": connect(user, "http", "Web", {"header:X-Key": "key-123456"}),
            "limits": {"allowed_hosts": ["127.0.0.1"]},
        },
    }


def review_document(connections: dict, **step_changes) -> dict:
    steps = [
        {"id": "files", "kind": "github.pr.files", "config": {}},
        {
            "id": "summary",
            "kind": "llm.chat",
            "config": {
                "system": "You summarise pull requests.",
                "prompt": "Files: {{ steps.files | map(attribute='filename') | join(', ') }}",
                "max_tokens": 200,
            },
        },
        {
            "id": "comment",
            "kind": "github.comment.upsert",
            "config": {"marker": "summary", "body": "**Summary:** {{ steps.summary.content }}"},
        },
        {"id": "label", "kind": "github.labels.add", "config": {"labels": ["reviewed", "docs"]}},
        {
            "id": "notify",
            "kind": "slack.post",
            "config": {
                "text": "Reviewed {{ event.payload.pull_request.title }} "
                "(comment {{ steps.comment.comment.id }})"
            },
        },
        {
            "id": "discord",
            "kind": "discord.post",
            "config": {"content": "{{ steps.summary.content }}"},
        },
        {
            "id": "ping",
            "kind": "http.request",
            "config": {
                "method": "POST",
                "url": "%(site)s/echo",
                "json": {"pr": "{{ event.payload.number }}"},
            },
        },
    ]
    for step in steps:
        step["config"].update(step_changes.get(step["id"], {}))
    return {
        "schema": "flowbuilder/flow@1",
        "name": "No-code reviewer",
        "trigger": {
            "kind": "trigger.github",
            "config": {"events": ["pull_request.opened"], "repository": REPO},
        },
        "settings": {},
        "connections": connections,
        "steps": steps,
        "edges": [["trigger", "files"]]
        + [[a["id"], b["id"]] for a, b in zip(steps, steps[1:], strict=False)],
    }


def deliver(client, flow):
    body = load_payload("pull_request.opened")
    return client.post(
        f"/hooks/github/{flow.webhook_token}/",
        body,
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_GITHUB_DELIVERY="d-1",
        HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, body),
    )


def site_url(document: dict, website) -> dict:
    for step in document["steps"]:
        if step["id"] == "ping":
            step["config"]["url"] = step["config"]["url"] % {"site": website.url}
    return document


def test_a_pull_request_runs_every_integration_block(
    client, make_flow, services, github, llm, slack, discord, website
):
    flow = make_flow(site_url(review_document(services), website))
    assert deliver(client, flow).status_code == 202
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert llm.chats[0]["messages"] == [
        {"role": "system", "content": "You summarise pull requests."},
        {"role": "user", "content": "Files: README.md, docs/a.md"},
    ]
    assert llm.chats[0]["max_tokens"] == 200
    assert steps["summary"].tokens == {
        "prompt_tokens": 14,
        "completion_tokens": 9,
        "total_tokens": 23,
    }
    [comment] = github.comments_on(REPO, 2)
    assert comment["body"] == (
        "**Summary:** Two files changed; nothing risky.\n\n<!-- flowbuilder:summary -->"
    )
    assert github.labels_on(REPO, 2) == ["reviewed", "docs"]
    assert slack.messages == [
        {
            "via": "webhook",
            "text": f"Reviewed Update the README with new information. (comment {comment['id']})",
        }
    ]
    assert discord.messages[0]["content"] == "Two files changed; nothing risky."
    echoed = steps["ping"].output["json"]
    assert echoed["body"] == '{"pr":2}'
    assert echoed["headers"]["x-key"] == "[redacted]"
    assert website.requests[-1].headers["x-key"] == "key-123456"


def test_a_second_delivery_edits_the_same_comment(client, make_flow, services, github, website):
    flow = make_flow(site_url(review_document(services), website))
    deliver(client, flow)
    body = load_payload("pull_request.opened")
    client.post(
        f"/hooks/github/{flow.webhook_token}/",
        body,
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_GITHUB_DELIVERY="d-2",
        HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, body),
    )
    assert [r.status for r in Run.objects.filter(flow=flow)] == ["succeeded", "succeeded"]
    assert len(github.comments_on(REPO, 2)) == 1


def test_a_block_error_fails_the_run_with_the_services_words(
    client, make_flow, services, github, website
):
    github.add_token(github.token, "flowbot", {"pull_requests": "read", "issues": "read"})
    flow = make_flow(site_url(review_document(services), website))
    deliver(client, flow)
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.FAILED
    assert run.error == (
        "step 'comment': GitHub says this token lacks the issues: write or pull_requests: write "
        "permission."
    )


def test_binding_limits_from_the_flows_connection_apply_to_blocks(
    client, make_flow, services, website
):
    services["github"]["limits"] = {"repos": ["octo/elsewhere"]}
    flow = make_flow(site_url(review_document(services), website))
    deliver(client, flow)
    run = Run.objects.get(flow=flow)
    assert run.error == (
        "step 'files': This step may use only these GitHub repositories: octo/elsewhere; "
        "Codertocat/Hello-World is not one of them."
    )


def test_retryable_block_errors_are_retried_by_the_engine(
    client, make_flow, services, slack, website, settings
):
    settings.FLOWS_HTTP_ATTEMPTS = 1
    slack.fail_next(503, "service_unavailable")
    flow = make_flow(site_url(review_document(services), website))
    deliver(client, flow)
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.SUCCEEDED
    attempts = StepRun.objects.filter(run=run, step_id="notify").order_by("attempt")
    assert [(s.status, s.error) for s in attempts] == [
        ("failed", "Slack had a server error (503) for the incoming webhook: service_unavailable."),
        ("succeeded", ""),
    ]


def test_every_capability_is_offered_as_a_block_of_the_same_kind():
    kinds = [
        "llm.chat",
        "github.pr.get",
        "github.pr.files",
        "github.pr.diff",
        "github.pr.update",
        "github.comments.list",
        "github.comment.create",
        "github.comment.update",
        "github.comment.find",
        "github.comment.upsert",
        "github.labels.add",
        "github.issue.create",
        "github.issue.reply",
        "slack.post",
        "discord.post",
        "telegram.send",
        "http.request",
    ]
    for kind in kinds:
        block = get_block(kind)
        assert block.capabilities == (kind,)
        assert block.category == "integration"
        assert all(p.templated for p in block.params)
    assert [p.name for p in get_block("trigger.github").params] == ["events", "repository"]
    assert [p.name for p in get_block("trigger.telegram").params] == ["updates", "chats"]
